"""The product's ECS snapshot rules without a cluster: retention from the TTL, what a cross-region
restore copies or refuses, copies found by name, deletes that honour Retain — against the local endpoint."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from alicloud import snapshots
from alicloud.ecs import EcsClient
from kube.restore.records import RestoreFolder
from localdev.ecs_server import LocalEcsServer
from schemas.backup import SnapshotState, VolumeRecords
from schemas.ecs import CopyRecord
from schemas.errors import BackupCenterError
from vault.filestore import FileStore

DISK = "diskplugin.csi.alibabacloud.com"


def state(pvc: str, ecs_id: str = "", region: str = "cn-hangzhou", **fields: object) -> SnapshotState:
    return SnapshotState(
        namespace="app", pvc=pvc, snapshot=f"snap-{pvc}", ready=True, handle=ecs_id or f"s-local-{pvc}",
        driver=DISK, ecs_id=ecs_id, ecs_region=region if ecs_id else "", **fields,
    )


@pytest.mark.parametrize(
    ("ttl", "default", "days"),
    [
        (timedelta(days=30), None, 30),
        (timedelta(days=3, hours=1), 9, 4),  # rounded up: the snapshot never expires before the backup
        (timedelta(minutes=5), None, 1),
        (timedelta(days=400_000), None, 65536),  # ECS's upper bound
        (None, 9, 9),  # no TTL: the class's retentionDays
        (None, None, None),
    ],
)
def test_retention_days(ttl: timedelta | None, default: int | None, days: int | None) -> None:
    assert snapshots.retention_days(ttl, default) == days


def test_same_region_plans_nothing() -> None:
    records = VolumeRecords(region="cn-hangzhou", snapshots=[state("data", "s-1")], files={"app/nas": "x"})
    plan = snapshots.plan_copies(records, {"app/data", "app/nas"}, "cn-hangzhou")
    assert not plan.cross_region and plan.items == []


def test_cross_region_plans_the_selected_disk_snapshots() -> None:
    records = VolumeRecords(
        region="cn-hangzhou",
        snapshots=[state("data", "s-1", size_gib=20, retention_days=7), state("logs", "s-2")],
    )
    plan = snapshots.plan_copies(records, {"app/data"}, "cn-beijing")
    assert plan.cross_region and (plan.source_region, plan.target_region) == ("cn-hangzhou", "cn-beijing")
    assert [(i.key, i.snapshot, i.region, i.size_gib, i.retention_days) for i in plan.items] == [
        ("app/data", "s-1", "cn-hangzhou", 20, 7)
    ]


def test_cross_region_refuses_file_level_and_non_ecs_volumes() -> None:
    records = VolumeRecords(
        region="cn-hangzhou",
        snapshots=[state("data", "s-1"), state("other", "")],  # "other": a snapshot ECS does not know
        files={"app/nas": "snap-1"},
    )
    with pytest.raises(BackupCenterError) as caught:
        snapshots.plan_copies(records, {"app/data", "app/nas", "app/other"}, "cn-beijing")
    assert caught.value.code == "CrossRegionNonDisk"
    assert caught.value.message == (
        "only disk type PVs support cross-region restore in current version: app/nas, app/other"
    )
    # Not selected, not refused.
    assert snapshots.plan_copies(records, {"app/data"}, "cn-beijing").items


def test_copies_replace_handles_and_are_deleted_even_without_a_recorded_id(
    ecs_server: LocalEcsServer, client: EcsClient, tmp_path: Path
) -> None:
    store = FileStore(tmp_path)
    folder = RestoreFolder.of(store, "c", "r1")
    source = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    records = VolumeRecords(region="cn-hangzhou", snapshots=[state("data", source), state("logs", "s-x")])
    name = snapshots.copy_name("r1", "wf/run", "app/data")
    assert name == snapshots.copy_name("r1", "wf/run", "app/data")
    assert name != snapshots.copy_name("r1", "wf/run2", "app/data")
    copy = client.copy_snapshot(source, "cn-beijing", name)
    # The same request again (a retried activity) gets the same copy: the client token is derived.
    assert client.copy_snapshot(source, "cn-beijing", name) == copy
    record = CopyRecord(
        key="app/data", source=source, source_region="cn-hangzhou", target_region="cn-beijing", name=name
    )
    snapshots.write_copy(folder, record)
    assert snapshots.with_copies(records, folder) == records  # no id recorded yet: no handle change
    snapshots.write_copy(folder, record.model_copy(update={"copy_id": copy}))
    seen = snapshots.with_copies(records, folder)
    assert [(s.handle, s.ecs_id, s.ecs_region) for s in seen.snapshots] == [
        (copy, copy, "cn-beijing"), ("s-x", "s-x", "cn-hangzhou")
    ]

    # Interrupted before the id was written: the copy is found by its name and deleted all the same.
    snapshots.write_copy(folder, record)
    result = snapshots.delete_copies(lambda region: client.for_region(region), folder)
    assert (result.deleted, result.missing) == (1, 0)
    assert ecs_server.snapshot(copy) is None and ecs_server.snapshot(source) is not None
    assert snapshots.read_copies(folder) == []


def test_delete_backup_snapshots_keeps_retained_ones(ecs_server: LocalEcsServer, client: EcsClient) -> None:
    kept = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    gone = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    records = VolumeRecords(
        snapshots=[
            state("a", gone),
            state("b", kept, deletion_policy="Retain"),
            state("c", "s-already-released"),
            state("d"),  # not an ECS snapshot: nothing to do
        ]
    )
    result = snapshots.delete_backup_snapshots(lambda region: client.for_region(region), records)
    assert (result.deleted, result.missing, result.left, result.left_total) == (1, 1, [kept], 1)
    assert ecs_server.snapshot(gone) is None and ecs_server.snapshot(kept) is not None
    assert result.message() == (
        f"1 ECS snapshots deleted; 1 already gone; 1 left (snapshot class deletionPolicy Retain): {kept}"
    )
