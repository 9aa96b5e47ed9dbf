"""The ECS client over real HTTP against the local endpoint: the snapshot lifecycle of backup and restore."""

from __future__ import annotations

import pytest

from alicloud.credentials import AccessKey
from alicloud.ecs import EcsClient
from alicloud.errors import EcsError
from localdev.ecs_server import LocalEcsServer, ManualClock
from schemas.errors import BackupCenterError
from tests.alicloud.constants import FAST, KEY_ID, SECRET


def test_create_then_describe_progresses_to_accomplished(
    client: EcsClient, ecs_server: LocalEcsServer, clock: ManualClock
) -> None:
    disk = ecs_server.register_disk("cn-hangzhou", 40)
    sid = client.create_snapshot(disk, name="backup-demo-pvc", retention_days=30)
    assert sid.startswith("s-")

    info = client.describe_snapshot(sid)
    assert (info.status, info.progress, info.ready) == ("progressing", 0, False)
    assert (info.region, info.size_gib, info.retention_days) == ("cn-hangzhou", 40, 30)
    assert info.source_disk_id == disk and info.name == "backup-demo-pvc"

    clock.advance(1)  # half of the 2 s a 40 GiB snapshot takes
    assert client.describe_snapshot(sid).progress == 50

    clock.advance(1)
    done = client.describe_snapshot(sid)
    assert (done.status, done.progress, done.ready) == ("accomplished", 100, True)


def test_copy_to_another_region_shows_progress(
    client: EcsClient, ecs_server: LocalEcsServer, clock: ManualClock
) -> None:
    source = ecs_server.register_snapshot("cn-hangzhou", 40, ready=True)
    copy_id = client.copy_snapshot(source, "cn-beijing", "restore-demo-copy", retention_days=7)
    assert copy_id != source

    beijing = client.for_region("cn-beijing")
    copied = beijing.describe_snapshot(copy_id)
    assert copied.region == "cn-beijing"
    assert (copied.source_snapshot_id, copied.source_region) == (source, "cn-hangzhou")
    assert (copied.status, copied.retention_days, copied.size_gib) == ("progressing", 7, 40)
    # The copy lives in the destination region only.
    assert client.describe_snapshots([copy_id]) == {}

    clock.advance(2)  # 40 GiB at 5 GiB/s: 8 s
    assert beijing.describe_snapshot(copy_id).progress == 25
    clock.advance(6)
    assert beijing.describe_snapshot(copy_id).ready


def test_copy_is_idempotent_for_a_retried_activity(client: EcsClient, ecs_server: LocalEcsServer) -> None:
    source = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    first = client.copy_snapshot(source, "cn-beijing", "restore-r1-pvc-a")
    again = client.copy_snapshot(source, "cn-beijing", "restore-r1-pvc-a")
    assert first == again
    assert len(ecs_server.snapshots("cn-beijing")) == 1
    other = client.copy_snapshot(source, "cn-beijing", "restore-r2-pvc-a")
    assert other != first


def test_copy_of_unfinished_snapshot_is_not_ready_and_retryable(
    client: EcsClient, ecs_server: LocalEcsServer
) -> None:
    source = ecs_server.register_snapshot("cn-hangzhou", 40)
    with pytest.raises(EcsError) as caught:
        client.copy_snapshot(source, "cn-beijing", "restore-early")
    assert caught.value.code == "EcsSnapshotNotReady"
    assert caught.value.retryable and source in caught.value.message


def test_set_retention_days(client: EcsClient, ecs_server: LocalEcsServer) -> None:
    sid = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    assert client.describe_snapshot(sid).retention_days is None
    client.set_retention_days(sid, 14)
    assert client.describe_snapshot(sid).retention_days == 14
    with pytest.raises(BackupCenterError) as caught:
        client.set_retention_days(sid, 0)
    assert caught.value.code == "InvalidSpec"


def test_retention_expiry_releases_the_snapshot(
    client: EcsClient, ecs_server: LocalEcsServer, clock: ManualClock
) -> None:
    sid = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True, retention_days=1)
    clock.advance(86400 + 1)
    with pytest.raises(EcsError) as caught:
        client.describe_snapshot(sid)
    assert caught.value.code == "EcsSnapshotNotFound"


def test_delete(client: EcsClient, ecs_server: LocalEcsServer) -> None:
    sid = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    assert client.delete_snapshot(sid) is True
    assert ecs_server.snapshot(sid) is None
    # Deleting again is fine for cleanup (the snapshot may also have expired by retention) ...
    assert client.delete_snapshot(sid) is False
    # ... unless the caller wants to know.
    with pytest.raises(EcsError) as caught:
        client.delete_snapshot(sid, missing_ok=False)
    assert caught.value.code == "EcsSnapshotNotFound"


def test_describe_many_leaves_out_unknown_ids(client: EcsClient, ecs_server: LocalEcsServer) -> None:
    ids = [ecs_server.register_snapshot("cn-hangzhou", 20, ready=True) for _ in range(130)]
    found = client.describe_snapshots([*ids, "s-doesnotexist000000"])
    assert set(found) == set(ids)  # more than one DescribeSnapshots batch of 100


def test_unknown_snapshot_is_not_found(client: EcsClient) -> None:
    with pytest.raises(EcsError) as caught:
        client.describe_snapshot("s-bp1nothere00000000")
    err = caught.value
    assert err.code == "EcsSnapshotNotFound" and not err.retryable
    assert "s-bp1nothere00000000" in err.message and "cn-hangzhou" in err.message


def test_unknown_region_is_not_open(ecs_server: LocalEcsServer, credentials: AccessKey) -> None:
    client = EcsClient("eu-nowhere-9", credentials, ecs_server.endpoint, backoff=FAST)
    with pytest.raises(EcsError) as caught:
        client.describe_snapshots(["s-x"])
    err = caught.value
    assert (err.code, err.ecs_code, err.http_status) == ("EcsRegionNotOpen", "InvalidRegionId.NotFound", 404)
    assert "eu-nowhere-9" in err.message


def test_copy_to_unknown_region_is_a_cross_region_failure(
    client: EcsClient, ecs_server: LocalEcsServer
) -> None:
    source = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    with pytest.raises(BackupCenterError) as caught:
        client.copy_snapshot(source, "eu-nowhere-9", "restore-x")
    err = caught.value
    assert err.code == "CrossRegionFailed"
    assert err.short().startswith("RestoreError: ECS snapshot cross region request failed")
    assert "eu-nowhere-9" in err.message


def test_quota_exceeded(ecs_server: LocalEcsServer, client: EcsClient) -> None:
    ecs_server.state.snapshot_quota = 1
    disk = ecs_server.register_disk("cn-hangzhou", 20)
    client.create_snapshot(disk, name="first")
    with pytest.raises(EcsError) as caught:
        client.create_snapshot(disk, name="second")
    assert caught.value.code == "EcsQuotaExceeded" and "cn-hangzhou" in caught.value.message


def test_sts_credentials(ecs_server: LocalEcsServer) -> None:
    sts = ecs_server.issue_sts()
    creds = AccessKey(sts.access_key_id, sts.access_key_secret, sts.security_token)
    client = EcsClient("cn-hangzhou", creds, ecs_server.endpoint, backoff=FAST)
    sid = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    assert client.describe_snapshot(sid).ready
    assert ecs_server.calls("DescribeSnapshots")[-1].access_key_id == sts.access_key_id


def test_sts_token_of_another_key_is_refused(ecs_server: LocalEcsServer) -> None:
    first, second = ecs_server.issue_sts(), ecs_server.issue_sts()
    creds = AccessKey(first.access_key_id, first.access_key_secret, second.security_token)
    with pytest.raises(EcsError) as caught:
        EcsClient("cn-hangzhou", creds, ecs_server.endpoint, backoff=FAST).describe_snapshots(["s-x"])
    assert caught.value.code == "EcsCredentialsInvalid"
    assert caught.value.ecs_code == "InvalidSecurityToken.MismatchWithAccessKey"


def test_expired_sts_token(ecs_server: LocalEcsServer) -> None:
    sts = ecs_server.issue_sts(ttl_seconds=-1)
    creds = AccessKey(sts.access_key_id, sts.access_key_secret, sts.security_token)
    with pytest.raises(EcsError) as caught:
        EcsClient("cn-hangzhou", creds, ecs_server.endpoint, backoff=FAST).describe_snapshots(["s-x"])
    assert caught.value.code == "EcsCredentialsInvalid" and "expired" in caught.value.message


def test_sts_is_not_overridden_by_legacy_sdk_env(
    ecs_server: LocalEcsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK would prefer these variables over explicitly given STS credentials.
    monkeypatch.setenv("ALIYUN_ACCESS_KEY_ID", "LTAIsomeoneelse0000")
    monkeypatch.setenv("ALIYUN_ACCESS_KEY_SECRET", "not-this-one")
    sts = ecs_server.issue_sts()
    creds = AccessKey(sts.access_key_id, sts.access_key_secret, sts.security_token)
    EcsClient("cn-hangzhou", creds, ecs_server.endpoint, backoff=FAST).describe_snapshots(["s-x"])
    assert ecs_server.calls()[-1].access_key_id == sts.access_key_id


def test_from_env_reads_credentials_and_endpoint(ecs_server: LocalEcsServer) -> None:
    env = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
        "ALIBABA_CLOUD_ECS_ENDPOINT": ecs_server.endpoint,
    }
    client = EcsClient.from_env("cn-beijing", environ=env, backoff=FAST)
    assert client.endpoint == ecs_server.endpoint
    assert client.describe_snapshots([]) == {}
    sid = ecs_server.register_snapshot("cn-beijing", 20, ready=True)
    assert client.describe_snapshot(sid).region == "cn-beijing"


def test_create_snapshot_validates_names_like_ecs(client: EcsClient, ecs_server: LocalEcsServer) -> None:
    disk = ecs_server.register_disk("cn-hangzhou", 20)
    with pytest.raises(EcsError) as caught:
        client.create_snapshot(disk, name="auto-backup")  # "auto" is reserved for automatic snapshots
    assert caught.value.code == "EcsRequestFailed"
    assert caught.value.ecs_code == "InvalidSnapshotName.Malformed"
