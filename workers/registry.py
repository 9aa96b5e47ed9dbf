"""Which workflows and activities each worker pool runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def control_workflows() -> list[type]:
    return []


def control_activities() -> list[Callable[..., Any]]:
    return []


def node_activities() -> list[Callable[..., Any]]:
    return []
