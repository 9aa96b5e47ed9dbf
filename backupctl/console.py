"""Shared terminal output and the CLI's settings/state locations."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from schemas.settings import Settings, SettingsProvider

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class BadInput(Exception):
    """Bad input found before anything started: reported in one line, exit code 2."""


def state_dir() -> Path:
    """Where the local environment keeps its state (servers, kubeconfig, vault registry)."""
    return Path(os.environ.get("BACKUPCENTER_STATE_DIR", ".dev")).absolute()


def settings_provider() -> SettingsProvider:
    """``BACKUPCENTER_SETTINGS`` when set; else the local environment's settings file, when `backupctl
    dev up` made one in the state directory (so the CLI sees what the local workers see)."""
    if os.environ.get("BACKUPCENTER_SETTINGS"):
        return SettingsProvider.from_environment()
    local = state_dir() / "settings.yaml"
    return SettingsProvider.from_file(local) if local.is_file() else SettingsProvider.from_environment()


def load_settings() -> Settings:
    return settings_provider().current()
