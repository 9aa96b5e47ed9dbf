"""The settings every job reads at its start (no worker restart needed when they change)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.context import current
from schemas.settings import Settings


@activity.defn
def load_settings() -> Settings:
    """The settings as they are now."""
    return current().settings


ACTIVITIES: list[Callable[..., Any]] = [load_settings]
