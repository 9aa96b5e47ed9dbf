"""Faults injected at the local endpoint give the documented product errors."""

from __future__ import annotations

import logging
import socket

import pytest

from alicloud.credentials import AccessKey
from alicloud.ecs import EcsClient
from alicloud.errors import EcsError
from alicloud.retry import BackoffPolicy
from localdev.ecs_server import LocalEcsServer, ManualClock
from tests.alicloud.constants import FAST, KEY_ID, SECRET


def test_forbidden_ram_is_a_non_retryable_permission_error(
    client: EcsClient, ecs_server: LocalEcsServer
) -> None:
    ecs_server.faults.deny("DescribeSnapshots")
    with pytest.raises(EcsError) as caught:
        client.describe_snapshots(["s-x"])
    err = caught.value
    assert (err.code, err.ecs_code, err.http_status) == ("EcsPermission", "Forbidden.RAM", 403)
    assert not err.retryable and not err.transient
    assert err.message.startswith("the ECS-snapshot related ram policy is missing")
    assert "DescribeSnapshots" in err.message
    assert any("deploy/policies/ecs-snapshot.json" in fix for fix in err.info().fixes)
    assert len(ecs_server.calls("DescribeSnapshots")) == 1  # not retried


def test_permission_denied_on_copy_is_cross_region_failed(
    client: EcsClient, ecs_server: LocalEcsServer
) -> None:
    source = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    ecs_server.faults.deny("CopySnapshot")
    with pytest.raises(EcsError) as caught:
        client.copy_snapshot(source, "cn-beijing", "restore-x")
    err = caught.value
    assert err.code == "CrossRegionFailed" and not err.retryable
    assert err.short().startswith(f"RestoreError: ECS snapshot cross region request failed: {source}")
    assert "ram policy is missing" in err.message
    assert any("deploy/policies" in fix for fix in err.info().fixes)


def test_throttled_twice_then_succeeds(client: EcsClient, ecs_server: LocalEcsServer) -> None:
    sid = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    ecs_server.faults.throttle(2)
    assert client.describe_snapshot(sid).ready
    calls = ecs_server.calls("DescribeSnapshots")
    assert [c.code for c in calls] == ["Throttling.User", "Throttling.User", ""]


def test_throttled_beyond_the_budget_is_a_clear_retryable_error(
    ecs_server: LocalEcsServer, credentials: AccessKey
) -> None:
    client = EcsClient("cn-hangzhou", credentials, ecs_server.endpoint, backoff=BackoffPolicy(3, 0.01, 0.02))
    ecs_server.faults.throttle(10, action="DescribeSnapshots", code="Throttling")
    with pytest.raises(EcsError) as caught:
        client.describe_snapshots(["s-x"])
    err = caught.value
    assert err.code == "EcsThrottled" and err.retryable
    assert err.message == "ECS API DescribeSnapshots was throttled: gave up after 3 attempt(s)"
    assert len(ecs_server.calls("DescribeSnapshots")) == 3


def test_service_unavailable_is_retried(client: EcsClient, ecs_server: LocalEcsServer) -> None:
    ecs_server.faults.unavailable(1)
    assert client.describe_snapshots(["s-x"]) == {}
    assert [c.status for c in ecs_server.calls()] == [503, 200]


def test_unreachable_endpoint_is_unavailable(credentials: AccessKey) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = EcsClient(
        "cn-hangzhou", credentials, f"http://127.0.0.1:{port}", backoff=FAST, connect_timeout=1
    )
    with pytest.raises(EcsError) as caught:
        client.describe_snapshots(["s-x"])
    err = caught.value
    assert err.code == "EcsUnavailable" and err.retryable
    assert "after 4 attempt(s)" in err.message


def test_wrong_secret_is_a_credentials_error(ecs_server: LocalEcsServer) -> None:
    bad_secret = "definitely-the-wrong-secret"
    client = EcsClient("cn-hangzhou", AccessKey(KEY_ID, bad_secret), ecs_server.endpoint, backoff=FAST)
    with pytest.raises(EcsError) as caught:
        client.describe_snapshots(["s-x"])
    err = caught.value
    # The server answers SignatureDoesNotMatch; the SDK recognises its own string-to-sign and reports
    # InvalidAccessKeySecret, as it does against ECS.
    assert ecs_server.calls()[-1].code == "SignatureDoesNotMatch"
    assert (err.code, err.ecs_code) == ("EcsCredentialsInvalid", "InvalidAccessKeySecret")
    assert not err.retryable
    assert (
        err.message == "ECS rejected the credentials of AccessKey LTAI****ey01: the AccessKey secret is wrong"
    )
    assert bad_secret not in f"{err} {err!r} {err.detail} {err.info()}"


def test_unknown_and_disabled_keys(ecs_server: LocalEcsServer) -> None:
    unknown = EcsClient("cn-hangzhou", AccessKey("LTAInobodyknows0000", SECRET), ecs_server.endpoint)
    with pytest.raises(EcsError) as caught:
        unknown.describe_snapshots(["s-x"])
    assert (caught.value.code, caught.value.ecs_code) == (
        "EcsCredentialsInvalid",
        "InvalidAccessKeyId.NotFound",
    )

    ecs_server.disable_key(KEY_ID)
    disabled = EcsClient("cn-hangzhou", AccessKey(KEY_ID, SECRET), ecs_server.endpoint)
    with pytest.raises(EcsError) as caught:
        disabled.describe_snapshots(["s-x"])
    assert caught.value.ecs_code == "InvalidAccessKeyId.Inactive"
    assert "disabled" in caught.value.message


def test_snapshot_service_disabled(client: EcsClient, ecs_server: LocalEcsServer) -> None:
    ecs_server.faults.disable_snapshot_service("cn-hangzhou")
    with pytest.raises(EcsError) as caught:
        client.describe_snapshots(["s-x"])
    assert caught.value.code == "EcsSnapshotServiceDisabled"


def test_slow_copies(client: EcsClient, ecs_server: LocalEcsServer, clock: ManualClock) -> None:
    source = ecs_server.register_snapshot("cn-hangzhou", 40, ready=True)
    ecs_server.faults.slow_copies(10)
    copy_id = client.copy_snapshot(source, "cn-beijing", "restore-slow")
    clock.advance(8)  # a normal copy would be done now
    assert client.for_region("cn-beijing").describe_snapshot(copy_id).progress == 10


def test_failed_snapshot_is_reported(client: EcsClient, ecs_server: LocalEcsServer) -> None:
    sid = ecs_server.register_snapshot("cn-hangzhou", 40)
    ecs_server.fail_snapshot(sid)
    info = client.describe_snapshot(sid)
    assert info.failed and not info.ready


def test_secrets_never_in_repr_errors_or_logs(
    ecs_server: LocalEcsServer, caplog: pytest.LogCaptureFixture
) -> None:
    sts = ecs_server.issue_sts()
    creds = AccessKey(sts.access_key_id, sts.access_key_secret, sts.security_token)
    client = EcsClient("cn-hangzhou", creds, ecs_server.endpoint, backoff=FAST)
    shown = f"{client} {client!r} {creds} {creds!r}"
    ecs_server.faults.deny("DescribeSnapshots")
    with caplog.at_level(logging.DEBUG, logger="aliyunsdkcore"), pytest.raises(EcsError) as caught:
        client.describe_snapshots(["s-x"])
    err = caught.value
    shown += f" {err} {err!r} {err.detail} {err.info().model_dump_json()} {caught.value.__cause__!r}"
    shown += " ".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "the SDK is expected to log the request and the server error"
    for secret in (sts.access_key_secret, sts.security_token):
        assert secret not in shown
    assert sts.access_key_id not in f"{client!r} {creds!r}"  # only the masked id is shown
