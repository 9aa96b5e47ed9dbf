"""The local ECS endpoint at the protocol level: signatures, error bodies, admin API, command line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest

from alicloud.credentials import AccessKey
from alicloud.ecs import EcsClient
from localdev.ecs_server import LocalEcsServer, sign
from tests.alicloud.constants import KEY_ID, SECRET


def _params(action: str = "DescribeSnapshots", **extra: str) -> dict[str, str]:
    return {
        "Action": action,
        "Version": "2014-05-26",
        "Format": "JSON",
        "RegionId": "cn-hangzhou",
        "AccessKeyId": KEY_ID,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": uuid.uuid4().hex,
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }


def _signed(params: dict[str, str], secret: str = SECRET, method: str = "POST") -> dict[str, str]:
    return {**params, "Signature": sign(method, params, secret, params["SignatureMethod"])}


def _send(
    endpoint: str, query: dict[str, str], *, body: dict[str, str] | None = None, method: str = "POST"
) -> tuple[int, dict[str, Any]]:
    data = urlencode(body).encode() if body else None
    request = urllib.request.Request(f"{endpoint}/?{urlencode(query)}", data=data, method=method)
    if body:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _admin(endpoint: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(f"{endpoint}{path}", data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=5) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def test_success_and_error_bodies_look_like_ecs(ecs_server: LocalEcsServer) -> None:
    status, body = _send(ecs_server.endpoint, _signed(_params()))
    assert status == 200 and body["TotalCount"] == 0 and body["RequestId"]

    status, body = _send(ecs_server.endpoint, _signed(_params(RegionId="mars-north-1")))
    assert status == 404
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert body["Code"] == "InvalidRegionId.NotFound"
    assert "InvalidRegionId.NotFound" in body["Recommend"]


@pytest.mark.parametrize(
    ("tweak", "status", "code"),
    [
        (lambda p: p.pop("Signature"), 400, "MissingParameter"),
        (lambda p: p.update(RegionId="cn-beijing"), 400, "SignatureDoesNotMatch"),  # changed after signing
        (lambda p: p.update(Action="RunInstances"), 400, "SignatureDoesNotMatch"),
        (lambda p: p.update(AccessKeyId="LTAInobody000000"), 404, "InvalidAccessKeyId.NotFound"),
    ],
)
def test_request_checks(ecs_server: LocalEcsServer, tweak: Any, status: int, code: str) -> None:
    query = _signed(_params())
    tweak(query)
    got_status, body = _send(ecs_server.endpoint, query)
    assert (got_status, body["Code"]) == (status, code)
    if code == "SignatureDoesNotMatch":
        # The SDK parses the part after the colon to tell a wrong secret from a malformed request.
        assert body["Message"].split(":")[1].startswith("POST&%2F&")


def test_unknown_action_and_version(ecs_server: LocalEcsServer) -> None:
    status, body = _send(ecs_server.endpoint, _signed(_params("RunInstances")))
    assert (status, body["Code"]) == (404, "InvalidAction.NotFound")
    status, body = _send(ecs_server.endpoint, _signed(_params(Version="2099-01-01")))
    assert (status, body["Code"]) == (400, "InvalidVersion")


def test_replayed_nonce_and_stale_timestamp(ecs_server: LocalEcsServer) -> None:
    query = _signed(_params())
    assert _send(ecs_server.endpoint, query)[0] == 200
    status, body = _send(ecs_server.endpoint, query)
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")

    stale = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    status, body = _send(ecs_server.endpoint, _signed(_params(Timestamp=stale)))
    assert (status, body["Code"]) == (400, "InvalidTimeStamp.Expired")


def test_hmac_sha256_and_form_body_parameters_are_verified(ecs_server: LocalEcsServer) -> None:
    sid = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    query = _params(SignatureMethod="HMAC-SHA256")
    form = {"SnapshotIds": json.dumps([sid])}
    query["Signature"] = sign("POST", {**query, **form}, SECRET, "HMAC-SHA256")
    status, body = _send(ecs_server.endpoint, query, body=form)
    assert status == 200 and body["Snapshots"]["Snapshot"][0]["SnapshotId"] == sid

    query = _params()
    query["Signature"] = sign("POST", {**query, **form}, SECRET)
    status, body = _send(ecs_server.endpoint, query, body={"SnapshotIds": json.dumps(["s-other"])})
    assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")


def test_client_token_reused_with_other_parameters(ecs_server: LocalEcsServer) -> None:
    a = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    b = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    copy = {
        "DestinationRegionId": "cn-beijing",
        "DestinationSnapshotName": "restore-a",
        "ClientToken": "tok-1",
    }
    status, first = _send(ecs_server.endpoint, _signed(_params("CopySnapshot", SnapshotId=a, **copy)))
    assert status == 200
    status, again = _send(ecs_server.endpoint, _signed(_params("CopySnapshot", SnapshotId=a, **copy)))
    assert again["SnapshotId"] == first["SnapshotId"]
    status, body = _send(ecs_server.endpoint, _signed(_params("CopySnapshot", SnapshotId=b, **copy)))
    assert (status, body["Code"]) == (400, "IdempotentParameterMismatch")


def test_copy_rules(ecs_server: LocalEcsServer) -> None:
    sid = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    same = _params(
        "CopySnapshot", SnapshotId=sid, DestinationRegionId="cn-hangzhou", DestinationSnapshotName="x1"
    )
    status, body = _send(ecs_server.endpoint, _signed(same))
    assert (status, body["Code"]) == (403, "InvalidOperation.NotSupportCopyInSameRegion")
    missing = _params("CopySnapshot", SnapshotId="s-nothere", DestinationRegionId="cn-beijing")
    status, body = _send(ecs_server.endpoint, _signed(missing))
    assert (status, body["Code"]) == (403, "InvalidSnapshotId.NotFound")


def test_admin_api_for_other_processes(ecs_server: LocalEcsServer, credentials: AccessKey) -> None:
    endpoint = ecs_server.endpoint
    disk = _admin(endpoint, "/__local__/disks", {"RegionId": "cn-beijing", "SizeGiB": 30})["DiskId"]
    sid = _admin(endpoint, "/__local__/snapshots", {"RegionId": "cn-beijing", "SizeGiB": 30, "DiskId": disk})[
        "SnapshotId"
    ]
    listed = _admin(endpoint, "/__local__/snapshots")["Snapshots"]
    assert [s["SnapshotId"] for s in listed] == [sid]

    client = EcsClient("cn-beijing", credentials, endpoint)
    _admin(endpoint, "/__local__/faults", {"deny": {"action": "DescribeSnapshots"}})
    with pytest.raises(Exception, match="ram policy is missing"):
        client.describe_snapshots([sid])
    _admin(endpoint, "/__local__/faults", {"clear": True})
    assert client.describe_snapshot(sid).source_disk_id == disk


def test_runs_as_a_module(credentials: AccessKey) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "localdev.ecs_server", "--port", "0", "--key", f"{KEY_ID}={SECRET}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["regions"] == ["cn-hangzhou", "cn-beijing"]
        client = EcsClient("cn-hangzhou", credentials, info["endpoint"])
        assert client.describe_snapshots(["s-x"]) == {}
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_delete_snapshot_as_the_api_reference_describes_it(ecs_server: LocalEcsServer) -> None:
    """DeleteSnapshot (ECS API reference): an unknown id is ignored; a snapshot disks were created
    from is refused (403 SnapshotCreatedDisk) unless Force=true; one still being created goes, its
    creation canceled."""
    endpoint = ecs_server.endpoint
    status, body = _send(endpoint, _signed(_params("DeleteSnapshot", SnapshotId="s-neverexisted00000000")))
    assert status == 200 and set(body) == {"RequestId"}

    used = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    _admin(endpoint, "/__local__/disks", {"RegionId": "cn-hangzhou", "SizeGiB": 20, "SourceSnapshotId": used})
    status, body = _send(endpoint, _signed(_params("DeleteSnapshot", SnapshotId=used)))
    assert (status, body["Code"]) == (403, "SnapshotCreatedDisk")
    assert ecs_server.snapshot(used) is not None
    status, _ = _send(endpoint, _signed(_params("DeleteSnapshot", SnapshotId=used, Force="true")))
    assert status == 200 and ecs_server.snapshot(used) is None

    creating = ecs_server.register_snapshot("cn-hangzhou", 20, ready=False)
    status, _ = _send(endpoint, _signed(_params("DeleteSnapshot", SnapshotId=creating)))
    assert status == 200 and ecs_server.snapshot(creating) is None


def test_the_client_deletes_a_snapshot_a_disk_was_made_from(
    ecs_server: LocalEcsServer, credentials: AccessKey
) -> None:
    """What a backup's delete does after a restore from its snapshot: force, and say whether it was there."""
    client = EcsClient("cn-hangzhou", credentials, ecs_server.endpoint)
    sid = ecs_server.register_snapshot("cn-hangzhou", 20, ready=True)
    ecs_server.register_disk("cn-hangzhou", 20, source_snapshot_id=sid)
    with pytest.raises(Exception, match="SnapshotCreatedDisk"):
        client.delete_snapshot(sid)
    assert client.delete_snapshot(sid, force=True) is True
    assert client.delete_snapshot(sid, force=True) is False  # gone: known from DescribeSnapshots


def test_describe_snapshots_pages_with_next_token(ecs_server: LocalEcsServer) -> None:
    """NextToken/MaxResults paging (the ECS API reference's, PageNumber being deprecated): each page
    continues after the last snapshot given, so snapshots made meanwhile shift nothing; bad values
    are refused."""
    endpoint = ecs_server.endpoint
    name = f"paged-{uuid.uuid4().hex[:6]}"
    made = {ecs_server.register_snapshot("cn-hangzhou", 20, name=name, ready=True) for _ in range(25)}
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        extra = {"SnapshotName": name, "MaxResults": "10", **({"NextToken": token} if token else {})}
        status, body = _send(endpoint, _signed(_params(**extra)))
        assert status == 200 and body["TotalCount"] >= 25, body
        seen += [s["SnapshotId"] for s in body["Snapshots"]["Snapshot"]]
        pages += 1
        if pages == 1:  # newer snapshots arrive while the listing is walked: they come first, not here
            ecs_server.register_snapshot("cn-hangzhou", 20, name=name, ready=True)
        token = body["NextToken"]
        if not token:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 25 and set(seen) == made

    for bad in ({"MaxResults": "0"}, {"MaxResults": "101"}, {"NextToken": "not-a-token"}):
        status, body = _send(endpoint, _signed(_params(**bad)))
        assert (status, body["Code"]) == (400, "InvalidParameter"), (bad, body)
        assert next(iter(bad)) in body["Message"]


def test_the_client_walks_every_page(ecs_server: LocalEcsServer, credentials: AccessKey) -> None:
    client = EcsClient("cn-hangzhou", credentials, ecs_server.endpoint)
    name = f"many-{uuid.uuid4().hex[:6]}"
    made = [ecs_server.register_snapshot("cn-hangzhou", 20, name=name, ready=True) for _ in range(130)]
    before = len(ecs_server.calls("DescribeSnapshots"))
    assert {s.snapshot_id for s in client.find_snapshots(name=name)} == set(made)  # pages of 100 and 30
    assert set(client.describe_snapshots(made)) == set(made)  # two id batches, each one page
    assert len(ecs_server.calls("DescribeSnapshots")) - before == 4
