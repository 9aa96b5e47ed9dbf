"""Verification reports kept with their backup: ``backups/<name>/verify/<finished>-<job>.json``.

Written once per verification (put-if-absent) beside the backup's records, so they go with the
backup when it is deleted; the newest is what listings show.  The finish time in the key keeps a
verification asked again under the same job name from meeting its predecessor's report.
"""

from __future__ import annotations

from schemas.verify import VerifyReport
from vault.catalog import backup_prefix
from vault.store import ObjectCorrupt, ObjectExists, ObjectInfo, ObjectStore, get_model, put_model

VERIFY_DIR = "verify/"


def report_key(report: VerifyReport) -> str:
    # Microseconds: two verifications of one backup finishing in the same second still sort by time.
    stamp = f"{report.finished_at:%Y%m%dT%H%M%S.%fZ}"
    return f"{backup_prefix(report.backup)}{VERIFY_DIR}{stamp}-{report.job}.json"


def record(store: ObjectStore, report: VerifyReport) -> str:
    """Keep the report; its key.  Idempotent: a retried write of the same report succeeds."""
    key = report_key(report)
    try:
        put_model(store, key, report, if_absent=True)
    except ObjectExists:
        if get_model(store, key, VerifyReport) != report:
            raise
    return key


def latest(store: ObjectStore, backup: str) -> VerifyReport | None:
    """The newest readable verification of the backup, or None (keys sort by finish time; an
    unreadable report is passed over, never the listing's failure)."""
    keys = sorted((o.key for o in store.list(backup_prefix(backup) + VERIFY_DIR)
                   if isinstance(o, ObjectInfo) and o.key.endswith(".json")), reverse=True)
    for key in keys:
        try:
            report = get_model(store, key, VerifyReport)
        except ObjectCorrupt:
            continue
        if report is not None:
            return report
    return None
