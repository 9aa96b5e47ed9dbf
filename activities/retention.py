"""Retention: which committed backups of this cluster have outlived their TTL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from temporalio import activity

from activities.context import current
from activities.errors import product_errors
from schemas.errors import BackupCenterError
from vault import catalog
from vault.store import ObjectStoreError


class ExpiredBackup(BaseModel):
    vault: str
    name: str
    expired_at: datetime


@activity.defn
@product_errors
def find_expired_backups() -> list[ExpiredBackup]:
    """Backups this cluster made whose expiry has passed, in every live vault.

    Only the source cluster deletes a backup for retention: other clusters sharing the vault
    would merely hide it, and the source's own sweep removes it for everyone.
    """
    ctx = current()
    manager = ctx.vaults()
    now = datetime.now(UTC)
    expired: list[ExpiredBackup] = []
    for entry in manager.list():
        try:
            backups = catalog.list_backups(manager.store(entry.name))
        except (BackupCenterError, ObjectStoreError) as err:
            # One unreachable or damaged vault must not stop the sweep of the others.
            activity.logger.warning("vault %s skipped by the retention sweep: %s", entry.name, err)
            continue
        for backup in backups:
            record = backup.record
            if record is None or record.source_cluster != ctx.settings.cluster_id:
                continue
            if record.expires_at is not None and record.expires_at <= now:
                expired.append(
                    ExpiredBackup(vault=entry.name, name=backup.name, expired_at=record.expires_at)
                )
    return expired


ACTIVITIES: list[Callable[..., Any]] = [find_expired_backups]
