"""The local disk driver's link to the local ECS endpoint (unsigned admin API): register, describe (copies
name their source), release; an unreachable endpoint is a clear error."""

from __future__ import annotations

import pytest

from alicloud.ecs import EcsClient
from localdev.ecs_server import LocalEcsServer, ManualClock
from localdev.kube.agent.ecs import EcsLinkError, LocalEcsLink
from localdev.processes import free_port


def test_register_describe_copy_and_release(
    ecs_server: LocalEcsServer, client: EcsClient, clock: ManualClock
) -> None:
    link = LocalEcsLink(ecs_server.endpoint)
    sid = link.register_snapshot("cn-hangzhou", 20, disk_id="d-abc", name="snapcontent-1", retention_days=9)
    found = link.describe(sid)
    assert found is not None
    assert (found["RegionId"], found["SourceDiskId"], found["RetentionDays"]) == ("cn-hangzhou", "d-abc", 9)
    assert found["Status"] == "progressing"  # ECS snapshots take time; the driver waits for accomplished

    clock.advance(5)
    copy = client.copy_snapshot(sid, "cn-beijing", "restore-r1-abc")
    seen = link.describe(copy)
    assert seen is not None and (seen["RegionId"], seen["SourceSnapshotId"]) == ("cn-beijing", sid)

    assert link.delete(copy) is True
    assert link.delete(copy) is False  # already gone: not an error for the driver
    assert link.describe(copy) is None


def test_refusals_and_unreachable_endpoint(ecs_server: LocalEcsServer) -> None:
    link = LocalEcsLink(ecs_server.endpoint)
    with pytest.raises(EcsLinkError, match=r"InvalidRegionId\.NotFound"):
        link.register_snapshot("us-west-1", 20, disk_id="d-x", name="n-1", retention_days=None)
    gone = LocalEcsLink(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(EcsLinkError, match="unreachable"):
        gone.describe("s-x")
