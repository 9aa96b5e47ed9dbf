"""Reports kept with their backup: verifications ``backups/<name>/verify/<finished>-<job>.json`` and
restore drills ``backups/<name>/drills/<finished>-<job>.json``.

Written once per job (put-if-absent) beside the backup's records, so they go with the backup when it
is deleted; the newest is what listings show.  The finish time in the key keeps a job asked again
under the same name from meeting its predecessor's report.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from schemas.drill import DrillReport
from schemas.verify import VerifyReport
from vault.catalog import backup_prefix
from vault.store import ObjectCorrupt, ObjectExists, ObjectInfo, ObjectStore, get_model, put_model

VERIFY_DIR = "verify/"
DRILL_DIR = "drills/"


R = TypeVar("R", bound=BaseModel)


def _folder(report: BaseModel) -> str:
    return DRILL_DIR if isinstance(report, DrillReport) else VERIFY_DIR


def report_key(report: VerifyReport | DrillReport) -> str:
    # Microseconds: two reports of one backup finishing in the same second still sort by time.
    stamp = f"{report.finished_at:%Y%m%dT%H%M%S.%fZ}"
    return f"{backup_prefix(report.backup)}{_folder(report)}{stamp}-{report.job}.json"


def record(store: ObjectStore, report: VerifyReport | DrillReport) -> str:
    """Keep the report; its key.  Idempotent: a retried write of the same report succeeds."""
    key = report_key(report)
    try:
        put_model(store, key, report, if_absent=True)
    except ObjectExists:
        if get_model(store, key, type(report)) != report:
            raise
    return key


def _latest(store: ObjectStore, backup: str, folder: str, model: type[R]) -> R | None:
    """The newest readable report, or None (keys sort by finish time; an unreadable report is
    passed over, never the listing's failure)."""
    keys = sorted((o.key for o in store.list(backup_prefix(backup) + folder)
                   if isinstance(o, ObjectInfo) and o.key.endswith(".json")), reverse=True)
    for key in keys:
        try:
            report = get_model(store, key, model)
        except ObjectCorrupt:
            continue
        if report is not None:
            return report
    return None


def latest(store: ObjectStore, backup: str) -> VerifyReport | None:
    """The newest verification of the backup."""
    return _latest(store, backup, VERIFY_DIR, VerifyReport)


def latest_drill(store: ObjectStore, backup: str) -> DrillReport | None:
    """The newest restore drill of the backup."""
    return _latest(store, backup, DRILL_DIR, DrillReport)
