"""Stub activities registered under the real activities' names, so the job workflows' own paths
(retry, skip, cancel, cleanup, slot release) run on the time-skipping server without a cluster or a
vault — the way temporalio/samples-python tests its workflows.  A test sets ``SCRIPT`` (how many
times an activity fails, and how) and reads ``CALLS`` (what ran, with which arguments)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

import activities.context  # noqa: F401  (imported by the workers at start: the workflow sandbox expects it loaded)
import schemas.slots  # noqa: F401
from kube.restore.order import Phase
from schemas.backup import ExportSummary
from schemas.errors import BackupCenterError
from schemas.restore import DiscoverResult, FinishResult, GroupPlan, GroupResult, RestorePlan
from schemas.settings import Settings
from schemas.vault import BackupOutcome, BackupRecord

# activity name -> failures left: ("retryable"|"final", count)
SCRIPT: dict[str, tuple[str, int]] = {}
CALLS: list[tuple[str, Any]] = []
CONFIG_PHASE = int(Phase.config)


def reset(**script: tuple[str, int]) -> None:
    SCRIPT.clear()
    SCRIPT.update(script)
    CALLS.clear()


def called(name: str) -> list[Any]:
    return [args for called_name, args in CALLS if called_name == name]


def _run(name: str, *args: Any) -> None:
    CALLS.append((name, args))
    how, left = SCRIPT.get(name, ("", 0))
    if left <= 0:
        return
    SCRIPT[name] = (how, left - 1)
    err = BackupCenterError("VaultUnavailable", cause=f"stub {name} failed")
    if how == "final":
        err = BackupCenterError("InvalidSpec", field="spec.name", reason="stub: final").as_final()
    info = err.info()
    # Non-retryable: the step's operator decides at once (no transient retries to wait through).
    raise ApplicationError(info.short(), info.model_dump(mode="json"), type=err.code, non_retryable=True)


def _stub(name: str, result: Any = None) -> Any:
    @activity.defn(name=name)
    async def stub(*args: Any) -> Any:
        _run(name, *args)
        return result() if callable(result) else result

    return stub


@activity.defn(name="request_slot")
async def request_slot(kind: str, holder: str, limit: int) -> None:
    """Every job gets its slot at once: the grant comes back as the signal the slots workflow sends."""
    CALLS.append(("request_slot", (kind, holder, limit)))
    await activity.client().get_workflow_handle(holder).signal("slot_granted")


def _record() -> BackupRecord:
    now = datetime.now(UTC)
    return BackupRecord(
        name="stub", uid="stub", source_cluster="stub", phase=BackupOutcome.completed,
        started_at=now, completed_at=now,
    )


STUBS = [
    request_slot,
    _stub("release_slot"),
    _stub("publish_job_object", False),
    _stub("remove_job_object", False),
    _stub("load_settings", Settings),
    # backup (volume_data off)
    _stub("validate_backup"),
    _stub("check_vault"),
    _stub("resolve_namespaces", ["app"]),
    _stub("discover_resources", 12),
    _stub(
        "export_resources",
        ExportSummary(
            objects=3, versions_captured=3, bundles=1, bytes=100, index_key="i", persistent_volume_claims=0
        ),
    ),
    _stub("commit_backup", _record),
    _stub("cleanup_backup", 0),
    # restore: one phase (config) to apply
    _stub("validate_restore", RestorePlan(source_cluster="a", namespaces=["app"], objects=3)),
    _stub("check_restore_vault", 1),
    _stub(
        "discover_target",
        DiscoverResult(served=5, groups=[GroupPlan(phase=CONFIG_PHASE, resources=["configmaps"])]),
    ),
    _stub("apply_group", GroupResult(phase=CONFIG_PHASE, counts={"created": 3})),
    _stub("skip_group", GroupResult(phase=CONFIG_PHASE, counts={"failed": 3})),
    _stub("finish_restore", FinishResult()),
    _stub("cleanup_restore", {"temporaries_removed": 0}),
]
