"""ECS snapshot operations over Alibaba Cloud's (blocking) Python SDK.

One :class:`EcsClient` talks to one region.  Its methods are synchronous and may sleep while backing off
from throttling, so activities call them from a thread pool, never from the event loop.  Waiting for a
snapshot to finish is not done here: workflows poll :meth:`EcsClient.describe_snapshots` so that a long
copy survives worker restarts.

Endpoints: by default the SDK resolves the region's public ECS endpoint and we talk HTTPS.  An override
(``endpoint="http://127.0.0.1:8765"``, or env ``ALIBABA_CLOUD_ECS_ENDPOINT``) sends every request there
instead; tests and the demo point it at :mod:`localdev.ecs_server`.

Every SDK failure becomes an :class:`~alicloud.errors.EcsError` (see :mod:`alicloud.errors`); the SDK's
own exception is dropped from the chain because its text can hold the signed request.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, Literal
from urllib.parse import urlsplit

from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.auth.credentials import StsTokenCredential
from aliyunsdkcore.auth.signers.sts_token_signer import StsTokenSigner
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.http import protocol_type
from aliyunsdkcore.request import RpcRequest
from aliyunsdkecs.request.v20140526.CopySnapshotRequest import CopySnapshotRequest
from aliyunsdkecs.request.v20140526.CreateSnapshotRequest import CreateSnapshotRequest
from aliyunsdkecs.request.v20140526.DeleteSnapshotRequest import DeleteSnapshotRequest
from aliyunsdkecs.request.v20140526.DescribeSnapshotsRequest import DescribeSnapshotsRequest
from aliyunsdkecs.request.v20140526.ModifySnapshotAttributeRequest import ModifySnapshotAttributeRequest
from pydantic import BaseModel, ConfigDict

from alicloud.credentials import AccessKey, credentials_from_env
from alicloud.errors import CallContext, EcsError, cross_region_error, map_sdk_error
from alicloud.retry import BackoffPolicy, call_with_backoff
from vault.redact import install_sdk_log_filter

ENV_ECS_ENDPOINT = "ALIBABA_CLOUD_ECS_ENDPOINT"
# DescribeSnapshots accepts at most 100 ids per call, and 100 is also its largest page.
_DESCRIBE_BATCH = 100
_RETENTION_RANGE = (1, 65536)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

SnapshotStatus = Literal["progressing", "accomplished", "failed"]


class SnapshotInfo(BaseModel):
    """What the product needs to know about one ECS snapshot (serialisable as an activity result)."""

    model_config = ConfigDict(frozen=True)

    snapshot_id: str
    region: str
    status: SnapshotStatus
    progress: int
    size_gib: int | None = None
    retention_days: int | None = None
    name: str = ""
    source_disk_id: str | None = None
    source_snapshot_id: str | None = None
    source_region: str | None = None
    creation_time: str | None = None

    @property
    def ready(self) -> bool:
        return self.status == "accomplished"

    @property
    def failed(self) -> bool:
        return self.status == "failed"


class EcsClient:
    """ECS snapshot API of one region, with credentials, endpoint and throttling backoff."""

    #: Every ECS action this client calls; deploy/policies/ecs-snapshot.json must allow each.
    ACTIONS = (
        "CreateSnapshot",
        "DescribeSnapshots",
        "CopySnapshot",
        "DeleteSnapshot",
        "ModifySnapshotAttribute",
    )

    def __init__(
        self,
        region: str,
        credentials: AccessKey,
        endpoint: str | None = None,
        *,
        backoff: BackoffPolicy | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
    ) -> None:
        if not region:
            raise ValueError("region must not be empty")
        self._region = region
        self._credentials = credentials
        self._endpoint = _normalise_endpoint(endpoint) if endpoint else None
        self._backoff = backoff or BackoffPolicy()
        self._timeouts = (connect_timeout, read_timeout)
        install_sdk_log_filter()
        self._acs = self._make_sdk_client()

    @classmethod
    def from_env(cls, region: str, *, environ: Mapping[str, str] | None = None, **kwargs: Any) -> EcsClient:
        """Credentials from ``ALIBABA_CLOUD_*`` variables, endpoint from ``ALIBABA_CLOUD_ECS_ENDPOINT``."""
        env = os.environ if environ is None else environ
        kwargs.setdefault("endpoint", env.get(ENV_ECS_ENDPOINT) or None)
        return cls(region, credentials_from_env(env), **kwargs)

    def for_region(self, region: str) -> EcsClient:
        """A client of another region with the same credentials, endpoint and policies."""
        return EcsClient(
            region,
            self._credentials,
            self._endpoint,
            backoff=self._backoff,
            connect_timeout=self._timeouts[0],
            read_timeout=self._timeouts[1],
        )

    @property
    def region(self) -> str:
        return self._region

    @property
    def endpoint(self) -> str | None:
        return self._endpoint

    def __repr__(self) -> str:
        return (
            f"EcsClient(region={self._region!r}, endpoint={self._endpoint or 'sdk-default'!r}, "
            f"credentials={self._credentials!r})"
        )

    __str__ = __repr__

    # --- operations ---------------------------------------------------------------------------------

    def describe_snapshots(self, snapshot_ids: Iterable[str]) -> dict[str, SnapshotInfo]:
        """Snapshots of this region by id.  Ids ECS does not know are left out (not an error)."""
        ids = list(dict.fromkeys(snapshot_ids))
        found: dict[str, SnapshotInfo] = {}
        for start in range(0, len(ids), _DESCRIBE_BATCH):
            batch = ids[start : start + _DESCRIBE_BATCH]
            ctx = CallContext("DescribeSnapshots", self._region, snapshot=",".join(batch))
            for item in self._pages(partial(_describe_request, batch), ctx):
                info = _parse_snapshot(item, self._region)
                found[info.snapshot_id] = info
        return found

    def find_snapshots(self, *, name: str) -> list[SnapshotInfo]:
        """Snapshots of this region with exactly this name (a copy whose id an interrupted caller never
        learnt is found by the name it gave it)."""
        ctx = CallContext("DescribeSnapshots", self._region)
        items = self._pages(partial(_named_request, name), ctx)
        return [info for info in (_parse_snapshot(i, self._region) for i in items) if info.name == name]

    def _pages(self, request: Callable[[str], RpcRequest], ctx: CallContext) -> list[Mapping[str, Any]]:
        """Every snapshot of a DescribeSnapshots query, page by page with NextToken (ECS's paging:
        each page continues after the last one given, so snapshots made or deleted meanwhile shift
        nothing; PageNumber paging is deprecated)."""
        items: list[Mapping[str, Any]] = []
        token = ""
        while True:
            body = self._call(partial(request, token), ctx)
            items += body.get("Snapshots", {}).get("Snapshot", []) or []
            token = str(body.get("NextToken") or "")
            if not token:
                return items

    def describe_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        """One snapshot; ``EcsSnapshotNotFound`` if it does not exist (expired, deleted)."""
        info = self.describe_snapshots([snapshot_id]).get(snapshot_id)
        if info is None:
            raise EcsError(
                "EcsSnapshotNotFound", action="DescribeSnapshots", snapshot=snapshot_id, region=self._region
            )
        return info

    def create_snapshot(
        self,
        disk_id: str,
        *,
        name: str | None = None,
        retention_days: int | None = None,
        description: str | None = None,
        client_token: str | None = None,
    ) -> str:
        """Start a snapshot of a disk; returns the new snapshot id (status ``progressing``)."""
        _check_retention(retention_days)
        token = client_token or (_token("CreateSnapshot", self._region, disk_id, name) if name else None)

        def build() -> RpcRequest:
            req = CreateSnapshotRequest()
            req.set_DiskId(disk_id)
            if name:
                req.set_SnapshotName(name)
            if description:
                req.set_Description(description)
            if retention_days is not None:
                req.set_RetentionDays(retention_days)
            if token:
                req.set_ClientToken(token)
            return req

        body = self._call(build, CallContext("CreateSnapshot", self._region))
        return str(body["SnapshotId"])

    def copy_snapshot(
        self,
        snapshot_id: str,
        dest_region: str,
        name: str,
        *,
        retention_days: int | None = None,
        description: str | None = None,
        client_token: str | None = None,
    ) -> str:
        """Copy a snapshot of this region to ``dest_region``; returns the copy's id in that region.

        The request carries a client token derived from (source, destination, name) unless one is given,
        so an activity retried after a lost answer gets the same copy instead of a second one.
        Permission, credential and region failures raise ``CrossRegionFailed`` (the restore's error);
        quota, not-found and throttling errors keep their own codes.
        """
        _check_retention(retention_days)
        token = client_token or _token("CopySnapshot", self._region, snapshot_id, dest_region, name)

        def build() -> RpcRequest:
            req = CopySnapshotRequest()
            req.set_SnapshotId(snapshot_id)
            req.set_DestinationRegionId(dest_region)
            req.set_DestinationSnapshotName(name)
            req.set_DestinationSnapshotDescription(description or name)
            if retention_days is not None:
                req.set_RetentionDays(retention_days)
            req.set_ClientToken(token)
            return req

        ctx = CallContext("CopySnapshot", self._region, snapshot=snapshot_id, dest_region=dest_region)
        try:
            body = self._call(build, ctx)
        except EcsError as err:
            raise cross_region_error(err, snapshot_id) from None
        return str(body["SnapshotId"])

    def delete_snapshot(self, snapshot_id: str, *, force: bool = False, missing_ok: bool = True) -> bool:
        """Delete a snapshot.  Returns False if it was already gone (and ``missing_ok``), True otherwise.

        ECS answers a DeleteSnapshot of an unknown id with success ("the request is ignored", says the API
        reference), so whether it was there is asked first.  ``force`` deletes a snapshot disks were
        created from (else ECS refuses it with SnapshotCreatedDisk)."""
        try:
            self.describe_snapshot(snapshot_id)
        except EcsError as err:
            if missing_ok and err.code == "EcsSnapshotNotFound":
                return False
            raise

        def build() -> RpcRequest:
            req = DeleteSnapshotRequest()
            req.set_SnapshotId(snapshot_id)
            if force:
                req.set_Force(True)
            return req

        self._call(build, CallContext("DeleteSnapshot", self._region, snapshot=snapshot_id))
        return True

    def set_retention_days(self, snapshot_id: str, days: int) -> None:
        """Set how many days ECS keeps the snapshot before releasing it automatically."""
        _check_retention(days)

        def build() -> RpcRequest:
            req = ModifySnapshotAttributeRequest()
            req.set_SnapshotId(snapshot_id)
            req.set_RetentionDays(days)
            return req

        self._call(build, CallContext("ModifySnapshotAttribute", self._region, snapshot=snapshot_id))

    # --- plumbing -----------------------------------------------------------------------------------

    def _make_sdk_client(self) -> AcsClient:
        creds = self._credentials
        loopback = self._endpoint is not None and (urlsplit(self._endpoint).hostname or "") in _LOOPBACK
        client = AcsClient(
            ak=creds.access_key_id,
            secret=creds.access_key_secret,
            region_id=self._region,
            # Retries are ours (bounded, counted, mapped); the SDK's would hide throttling from us.
            auto_retry=False,
            connect_timeout=self._timeouts[0],
            timeout=self._timeouts[1],
            # The SDK applies HTTP(S)_PROXY but ignores NO_PROXY; a local endpoint must never be proxied.
            proxy={"http": None, "https": None} if loopback else None,
        )
        if creds.security_token:
            # Set the STS signer directly: given only `credential=`, the SDK would prefer ALIYUN_ACCESS_KEY_*
            # environment variables over it and silently sign with other credentials.
            client._signer = StsTokenSigner(
                StsTokenCredential(creds.access_key_id, creds.access_key_secret, creds.security_token)
            )
        client.append_user_agent("k8s-backup-center", "0.1")
        return client

    def _prepare(self, request: RpcRequest) -> None:
        if self._endpoint:
            request.set_endpoint(self._endpoint)
            scheme = urlsplit(self._endpoint).scheme
            request.set_protocol_type(protocol_type.HTTPS if scheme == "https" else protocol_type.HTTP)
        else:
            request.set_protocol_type(protocol_type.HTTPS)

    def _call(self, build: Callable[[], RpcRequest], ctx: CallContext) -> dict[str, Any]:
        creds = self._credentials

        def once() -> dict[str, Any]:
            # A fresh request per attempt: the SDK mutates requests while signing them.
            request = build()
            self._prepare(request)
            try:
                raw = self._acs.do_action_with_exception(request)
            except (ServerException, ClientException) as exc:
                mapped = map_sdk_error(exc, ctx, access_key=creds.masked_id, secrets=creds.secrets())
                assert mapped is not None
                # `from None`: the SDK exception's text may contain the signed request.
                raise mapped from None
            try:
                body = json.loads(raw)
            except (TypeError, ValueError):
                raise EcsError(
                    "EcsRequestFailed",
                    action=ctx.action,
                    ecs_code="InvalidResponse",
                    detail="answer is not JSON",
                ) from None
            if not isinstance(body, dict):
                raise EcsError("EcsRequestFailed", action=ctx.action, ecs_code="InvalidResponse")
            return body

        return call_with_backoff(once, policy=self._backoff)


def _page_request(token: str) -> DescribeSnapshotsRequest:
    req = DescribeSnapshotsRequest()
    req.set_MaxResults(_DESCRIBE_BATCH)
    if token:
        req.set_NextToken(token)
    return req


def _describe_request(ids: list[str], token: str) -> RpcRequest:
    req = _page_request(token)
    req.set_SnapshotIds(json.dumps(ids))
    return req


def _named_request(name: str, token: str) -> RpcRequest:
    req = _page_request(token)
    req.set_SnapshotName(name)
    return req


def _parse_snapshot(item: Mapping[str, Any], default_region: str) -> SnapshotInfo:
    status = str(item.get("Status", "progressing"))
    if status not in ("progressing", "accomplished", "failed"):
        status = "progressing"
    retention = _int_or_none(item.get("RetentionDays"))
    return SnapshotInfo(
        snapshot_id=str(item["SnapshotId"]),
        region=str(item.get("RegionId") or default_region),
        status=status,
        progress=_percent(item.get("Progress")),
        size_gib=_int_or_none(item.get("SourceDiskSize")),
        retention_days=retention if retention and retention > 0 else None,
        name=str(item.get("SnapshotName") or ""),
        source_disk_id=item.get("SourceDiskId") or None,
        source_snapshot_id=item.get("SourceSnapshotId") or None,
        source_region=item.get("SourceRegionId") or None,
        creation_time=item.get("CreationTime") or None,
    )


def _percent(value: Any) -> int:
    match = re.match(r"\s*(\d+)", str(value or "0"))
    return min(100, int(match.group(1))) if match else 0


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _check_retention(days: int | None) -> None:
    low, high = _RETENTION_RANGE
    if days is not None and not low <= days <= high:
        raise EcsError(
            "InvalidSpec", action="validate", field="retentionDays", reason=f"must be {low}..{high}"
        )


def _token(*parts: str | None) -> str:
    # ECS accepts up to 64 ASCII characters; a digest keeps the token stable and short.
    digest = hashlib.sha256("|".join(p or "" for p in parts).encode()).hexdigest()
    return f"bc-{digest[:40]}"


def _normalise_endpoint(endpoint: str) -> str:
    endpoint = endpoint.strip().rstrip("/")
    if "://" not in endpoint:
        endpoint = "https://" + endpoint
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid ECS endpoint {endpoint!r}: expected http(s)://host[:port]")
    return endpoint
