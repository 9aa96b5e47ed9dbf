"""describe and --wait show a running volume copy's progress (from its heartbeats): bytes on the
copy's step, files, throughput and ETA in its message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backupctl.jobctl import MIB, LiveCopy, copy_progress, with_live_copies
from schemas.specs import JobKind
from schemas.status import JobStatus, StepStatus

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def copy(**fields: object) -> LiveCopy:
    base: dict[str, object] = {"volume": "app/data", "files_done": 300, "files_total": 1200,
                               "bytes_done": 64 * MIB, "bytes_total": 256 * MIB,
                               "started_at": NOW - timedelta(seconds=8)}
    return LiveCopy.model_validate({**base, **fields})


def test_progress_names_files_bytes_rate_and_eta() -> None:
    assert copy_progress(copy(), NOW) == (
        "copying app/data: 300/1200 files, 64/256 MiB (25%), 8.0 MiB/s, ETA 25 s"
    )
    # Still walking the tree: no totals to divide by, no rate before the first byte.
    assert copy_progress(copy(bytes_done=0, bytes_total=0, files_total=0, files_done=0), NOW) == (
        "copying app/data: 0/0 files, 0/0 MiB"
    )


def test_the_copy_shows_on_its_volume_step_else_the_current_one() -> None:
    status = JobStatus(kind=JobKind.backup, name="b", current_step="file-level volumes",
                       steps=[StepStatus(name="file-level volumes"), StepStatus(name="volume app/data")])
    shown = with_live_copies(status, [copy()], NOW)
    step = shown.step("volume app/data")
    assert step.progress is not None and (step.progress.done, step.progress.total) == (64, 256)
    assert step.message is not None and "8.0 MiB/s, ETA 25 s" in step.message
    assert status.step("volume app/data").progress is None  # the queried status is left alone
    # A restore has one volumes step: the copy shows there.
    restore = JobStatus(kind=JobKind.restore, name="r", current_step="restore volumes",
                        steps=[StepStatus(name="restore volumes", message="2 created")])
    step = with_live_copies(restore, [copy()], NOW).step("restore volumes")
    assert step.message is not None and step.message.startswith("2 created; copying app/data: 300/1200")
