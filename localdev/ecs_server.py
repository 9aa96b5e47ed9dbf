"""LOCAL ECS ENDPOINT: a test double of Alibaba Cloud's ECS API, for tests and the demo.  Not the cloud.

It speaks the ECS RPC protocol (version 2014-05-26) over real HTTP for the actions the product uses:
CreateSnapshot, DescribeSnapshots, CopySnapshot, DeleteSnapshot and ModifySnapshotAttribute.  The real
``aliyun-python-sdk-ecs`` client is pointed at it (``EcsClient(..., endpoint=server.endpoint)``).

What it checks like ECS does:

* request signatures, RPC style v1 as the installed SDK sends them (``SignatureMethod`` HMAC-SHA1, also
  HMAC-SHA256; ``StringToSign = METHOD&%2F&percent(canonical query)``, key ``secret + "&"``), against the
  configured AccessKeys and issued STS tokens; timestamps (15 minutes window) and nonce reuse.  The SDK
  compares our ``SignatureDoesNotMatch`` message with its own string-to-sign, exactly as with ECS.
  (The newer ACS3-HMAC-SHA256 header signature is not sent by the installed SDK and is not accepted.)
* ECS error codes, HTTP statuses and JSON error bodies ``{RequestId, HostId, Code, Message, Recommend}``.
* regions: a fixed set; anything else is ``InvalidRegionId.NotFound``.
* snapshots progress over time (configurable GiB/s for creation and for copies), copies land in the
  destination region with ``SourceSnapshotId``/``SourceRegionId``, retention days expire snapshots,
  client tokens make create/copy idempotent, names are validated like ECS validates them.

Fault injection (:attr:`LocalEcsServer.faults`): throttling for the next N calls or at a rate, server
errors, ``Forbidden.RAM`` for an action, slow copies, snapshot service disabled in a region, failing a
snapshot, a snapshot quota.

How the local disk driver gets consistent snapshot ids: in process it calls
:meth:`LocalEcsServer.register_snapshot` (simplest: returns the ``s-...`` id at once); across processes it
calls the unsigned admin API under ``/__local__/`` (``POST /__local__/snapshots``), or registers a disk
(``register_disk`` / ``POST /__local__/disks``) and sends a signed ``CreateSnapshot`` through the SDK.
``GET``/``DELETE /__local__/snapshots/<id>`` read one snapshot of any region (status, ``SourceSnapshotId`` of
a copy) and release one; :mod:`localdev.kube.agent.ecs` is the agent's side of this.

Run standalone: ``python -m localdev.ecs_server --port 8765 --region cn-hangzhou --region cn-beijing``.
"""

from __future__ import annotations

import argparse
import base64
import calendar
import hashlib
import hmac
import json
import random
import re
import signal
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

API_VERSION = "2014-05-26"
SIGNATURE_WINDOW_SECONDS = 15 * 60
_ACTIONS = (
    "CreateSnapshot",
    "DescribeSnapshots",
    "CopySnapshot",
    "DeleteSnapshot",
    "ModifySnapshotAttribute",
)
_HASHES = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}
_REGION_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")
# ECS: 2-128 characters, starts with a letter, no http(s):// and no "auto" prefix (automatic snapshots).
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9:_.\-]{1,127}$")


class EcsApiError(Exception):
    """An ECS error answer: HTTP status, code and message as ECS sends them."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def _missing(name: str) -> EcsApiError:
    return EcsApiError(
        400,
        "MissingParameter",
        f'The input parameter "{name}" that is mandatory for processing this request is not supplied.',
    )


def _snapshot_not_found() -> EcsApiError:
    return EcsApiError(404, "InvalidSnapshotId.NotFound", "The specified snapshot does not exist.")


THROTTLE_MESSAGES = {
    "Throttling": "Request was denied due to request throttling.",
    "Throttling.User": "Request was denied due to user flow control.",
    "Throttling.Api": "Request was denied due to api flow control.",
}
UNAVAILABLE_MESSAGES = {
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
    "InternalError": (
        500,
        "The request processing has failed due to some unknown error, exception or failure.",
    ),
}
RAM_MESSAGE = "User not authorized to operate on the specified resource, or this API doesn't support RAM."


# --- time ------------------------------------------------------------------------------------------------


class ManualClock:
    """A clock tests move by hand, so snapshot progress is deterministic."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


# --- fault injection -------------------------------------------------------------------------------------


@dataclass
class Faults:
    """Injected misbehaviour.  ``action=None`` means every action.  Thread-safe through the server lock."""

    _next: list[tuple[str | None, str]] = field(default_factory=list)
    throttle_rate: float = 0.0
    throttle_rate_action: str | None = None
    denied: dict[tuple[str, str | None], str] = field(default_factory=dict)
    copy_slowdown: float = 1.0
    service_disabled: set[str] = field(default_factory=set)
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def throttle(self, count: int, action: str | None = None, code: str = "Throttling.User") -> None:
        """The next ``count`` calls (of ``action``) answer with a throttling error."""
        if code not in THROTTLE_MESSAGES:
            raise ValueError(f"not a throttling code: {code}")
        self._next.extend([(action, code)] * count)

    def unavailable(self, count: int, action: str | None = None, code: str = "ServiceUnavailable") -> None:
        """The next ``count`` calls (of ``action``) answer 503 ServiceUnavailable (or 500 InternalError)."""
        if code not in UNAVAILABLE_MESSAGES:
            raise ValueError(f"not a server error code: {code}")
        self._next.extend([(action, code)] * count)

    def throttle_at_rate(self, rate: float, action: str | None = None) -> None:
        """Throttle a random share ``rate`` (0..1) of calls, reproducibly (seeded)."""
        self.throttle_rate, self.throttle_rate_action = rate, action

    def deny(self, action: str, code: str = "Forbidden.RAM", access_key_id: str | None = None) -> None:
        """Refuse ``action`` (``"*"`` for all) with a 403 permission error, for one key or all keys."""
        self.denied[(action, access_key_id)] = code

    def allow(self, action: str, access_key_id: str | None = None) -> None:
        self.denied.pop((action, access_key_id), None)

    def slow_copies(self, factor: float) -> None:
        """Copies started from now on take ``factor`` times longer."""
        self.copy_slowdown = max(1.0, factor)

    def disable_snapshot_service(self, region: str) -> None:
        self.service_disabled.add(region)

    def clear(self) -> None:
        self._next.clear()
        self.throttle_rate, self.throttle_rate_action = 0.0, None
        self.denied.clear()
        self.copy_slowdown = 1.0
        self.service_disabled.clear()

    def check(self, action: str, access_key_id: str) -> None:
        """Raise the injected error for this call, if any.  Called after authentication, like ECS."""
        for i, (wanted, code) in enumerate(self._next):
            if wanted in (None, action):
                del self._next[i]
                if code in THROTTLE_MESSAGES:
                    raise EcsApiError(400, code, THROTTLE_MESSAGES[code])
                status, message = UNAVAILABLE_MESSAGES[code]
                raise EcsApiError(status, code, message)
        rate_applies = self.throttle_rate and self.throttle_rate_action in (None, action)
        if rate_applies and self.rng.random() < self.throttle_rate:
            raise EcsApiError(400, "Throttling", THROTTLE_MESSAGES["Throttling"])
        for key in ((action, access_key_id), (action, None), ("*", access_key_id), ("*", None)):
            if key in self.denied:
                raise EcsApiError(403, self.denied[key], RAM_MESSAGE)


# --- state -----------------------------------------------------------------------------------------------


@dataclass
class _Disk:
    disk_id: str
    region: str
    size_gib: int


@dataclass
class _Snapshot:
    snapshot_id: str
    region: str
    size_gib: int
    created_at: float
    duration: float
    name: str = ""
    description: str = ""
    disk_id: str = ""
    retention_days: int | None = None
    source_snapshot_id: str = ""
    source_region: str = ""
    failed: bool = False

    def progress(self, now: float) -> int:
        if self.duration <= 0:
            return 100
        return min(100, int((now - self.created_at) * 100 / self.duration))

    def status(self, now: float) -> str:
        if self.failed:
            return "failed"
        return "accomplished" if self.progress(now) >= 100 else "progressing"

    def expired(self, now: float) -> bool:
        return self.retention_days is not None and now >= self.created_at + self.retention_days * 86400

    def to_api(self, now: float) -> dict[str, Any]:
        status = self.status(now)
        remain = 0 if status != "progressing" else max(0, int(self.created_at + self.duration - now))
        return {
            "SnapshotId": self.snapshot_id,
            "SnapshotName": self.name,
            "Description": self.description,
            "RegionId": self.region,
            "Status": status,
            "Progress": f"{self.progress(now)}%",
            "RemainTime": remain,
            "Available": status == "accomplished",
            "SourceDiskId": self.disk_id,
            "SourceDiskSize": str(self.size_gib),
            "SourceDiskType": "data",
            "SourceSnapshotId": self.source_snapshot_id,
            "SourceRegionId": self.source_region,
            "RetentionDays": self.retention_days or 0,
            "CreationTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at)),
            "Category": "standard",
            "Usage": "none",
            "Encrypted": False,
            "InstantAccess": False,
            "Tags": {"Tag": []},
        }


@dataclass(frozen=True)
class StsCredentials:
    """Temporary credentials issued by :meth:`LocalEcsServer.issue_sts` (for tests of the STS path)."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str = field(repr=False)
    expires_at: float = 0.0


@dataclass(frozen=True)
class CallRecord:
    """One API call as the server saw it (for assertions: attempts, codes)."""

    action: str
    region: str
    access_key_id: str
    status: int
    code: str


class EcsState:
    """Disks and snapshots of all regions, with the ECS rules.  All methods hold the lock."""

    def __init__(
        self,
        regions: Iterable[str],
        *,
        clock: Callable[[], float],
        create_gib_per_second: float,
        copy_gib_per_second: float,
        min_seconds: float,
        snapshot_quota: int | None,
        faults: Faults,
        seed: int | None = None,
    ) -> None:
        self.regions = list(dict.fromkeys(regions))
        self.clock = clock
        self.create_speed = create_gib_per_second
        self.copy_speed = copy_gib_per_second
        self.min_seconds = min_seconds
        self.snapshot_quota = snapshot_quota
        self.faults = faults
        self.lock = threading.RLock()
        self.disks: dict[str, _Disk] = {}
        self.snapshots: dict[str, _Snapshot] = {}
        # client token -> (fingerprint of the request, snapshot id)
        self.tokens: dict[str, tuple[str, str]] = {}
        self._rng = random.Random(seed)

    # ids look like ECS ids: a 2-character region code, then lowercase letters and digits.
    def _new_id(self, prefix: str, region: str) -> str:
        code = hashlib.sha1(region.encode()).hexdigest()[:2]
        tail = "".join(self._rng.choices(string.ascii_lowercase + string.digits, k=18))
        return f"{prefix}-{code}{tail}"

    def _expire(self) -> None:
        now = self.clock()
        for sid in [s.snapshot_id for s in self.snapshots.values() if s.expired(now)]:
            del self.snapshots[sid]

    def check_region(self, region: str | None, *, name: str = "RegionId") -> str:
        if not region:
            raise _missing(name)
        if not _REGION_RE.match(region):
            raise EcsApiError(400, "InvalidRegionId.MalFormed", "The specified RegionId is not valid.")
        if region not in self.regions:
            raise EcsApiError(404, "InvalidRegionId.NotFound", "The specified RegionId does not exist.")
        if region in self.faults.service_disabled:
            raise EcsApiError(
                403,
                "InvalidAccountStatus.SnapshotServiceUnavailable",
                "Snapshot service has not been opened yet.",
            )
        return region

    def _duration(self, size_gib: int, speed: float, factor: float = 1.0) -> float:
        return max(self.min_seconds, size_gib / speed) * factor if speed > 0 else 0.0

    def _check_quota(self, region: str) -> None:
        if self.snapshot_quota is None:
            return
        if sum(1 for s in self.snapshots.values() if s.region == region) >= self.snapshot_quota:
            raise EcsApiError(403, "QuotaExceed.Snapshot", "The maximum number of snapshots is exceeded.")

    def _find(self, region: str, snapshot_id: str, status: int = 404) -> _Snapshot:
        snap = self.snapshots.get(snapshot_id)
        if snap is None or snap.region != region:
            raise EcsApiError(status, "InvalidSnapshotId.NotFound", "The specified snapshot does not exist.")
        return snap

    def _idempotent(self, token: str | None, fingerprint: str) -> str | None:
        if not token:
            return None
        if len(token) > 64 or not token.isascii():
            raise EcsApiError(400, "InvalidClientToken.Malformed", "The specified ClientToken is not valid.")
        known = self.tokens.get(token)
        if known is None:
            return None
        if known[0] != fingerprint:
            raise EcsApiError(
                400,
                "IdempotentParameterMismatch",
                "Request uses a client token in a previous request but is not identical to that request.",
            )
        return known[1]

    # --- admin (in-process) ---

    def register_disk(self, region: str, size_gib: int, disk_id: str | None = None) -> str:
        with self.lock:
            self.check_region(region)
            disk_id = disk_id or self._new_id("d", region)
            self.disks[disk_id] = _Disk(disk_id, region, size_gib)
            return disk_id

    def register_snapshot(
        self,
        region: str,
        size_gib: int,
        *,
        disk_id: str = "",
        name: str = "",
        retention_days: int | None = None,
        ready: bool = False,
    ) -> str:
        with self.lock:
            self.check_region(region)
            self._check_quota(region)
            sid = self._new_id("s", region)
            duration = 0.0 if ready else self._duration(size_gib, self.create_speed)
            self.snapshots[sid] = _Snapshot(
                sid, region, size_gib, self.clock(), duration, name, "", disk_id, retention_days
            )
            return sid

    # --- actions ---

    def create_snapshot(self, region: str, p: Mapping[str, str]) -> dict[str, Any]:
        disk_id = p.get("DiskId") or ""
        if not disk_id:
            raise _missing("DiskId")
        name = _check_name(p.get("SnapshotName"), "SnapshotName")
        description = _check_description(p.get("Description"))
        retention = _retention(p.get("RetentionDays"))
        fingerprint = json.dumps(["CreateSnapshot", region, disk_id, name, description, retention])
        existing = self._idempotent(p.get("ClientToken"), fingerprint)
        if existing:
            return {"SnapshotId": existing}
        disk = self.disks.get(disk_id)
        if disk is None or disk.region != region:
            raise EcsApiError(404, "InvalidDiskId.NotFound", "The specified disk does not exist.")
        self._check_quota(region)
        sid = self._new_id("s", region)
        self.snapshots[sid] = _Snapshot(
            sid,
            region,
            disk.size_gib,
            self.clock(),
            self._duration(disk.size_gib, self.create_speed),
            name,
            description,
            disk_id,
            retention,
        )
        if p.get("ClientToken"):
            self.tokens[p["ClientToken"]] = (fingerprint, sid)
        return {"SnapshotId": sid}

    def describe_snapshots(self, region: str, p: Mapping[str, str]) -> dict[str, Any]:
        self._expire()
        now = self.clock()
        ids: list[str] | None = None
        if p.get("SnapshotIds"):
            try:
                parsed = json.loads(p["SnapshotIds"])
            except ValueError:
                parsed = None
            if (
                not isinstance(parsed, list)
                or len(parsed) > 100
                or not all(isinstance(i, str) for i in parsed)
            ):
                raise EcsApiError(
                    400, "InvalidSnapshotIds.Malformed", "The specified parameter SnapshotIds is not valid."
                )
            ids = parsed
        page_number = _int_param(p, "PageNumber", 1, low=1)
        page_size = _int_param(p, "PageSize", 10, low=1, high=100)
        wanted_status = p.get("Status", "all")
        snaps = [s for s in self.snapshots.values() if s.region == region]
        if ids is not None:
            snaps = [s for s in snaps if s.snapshot_id in ids]
        if p.get("DiskId"):
            snaps = [s for s in snaps if s.disk_id == p["DiskId"]]
        if p.get("SnapshotName"):
            snaps = [s for s in snaps if s.name == p["SnapshotName"]]
        if wanted_status != "all":
            snaps = [s for s in snaps if s.status(now) == wanted_status]
        snaps.sort(key=lambda s: (-s.created_at, s.snapshot_id))
        page = snaps[(page_number - 1) * page_size : page_number * page_size]
        return {
            "TotalCount": len(snaps),
            "PageNumber": page_number,
            "PageSize": page_size,
            "NextToken": "",
            "Snapshots": {"Snapshot": [s.to_api(now) for s in page]},
        }

    def copy_snapshot(self, region: str, p: Mapping[str, str]) -> dict[str, Any]:
        self._expire()
        source_id = p.get("SnapshotId") or ""
        if not source_id:
            raise _missing("SnapshotId")
        dest = p.get("DestinationRegionId") or ""
        if not dest:
            raise _missing("DestinationRegionId")
        name = _check_name(p.get("DestinationSnapshotName"), "SnapshotName")
        description = _check_description(p.get("DestinationSnapshotDescription"))
        retention = _retention(p.get("RetentionDays"))
        fingerprint = json.dumps(["CopySnapshot", region, source_id, dest, name, description, retention])
        existing = self._idempotent(p.get("ClientToken"), fingerprint)
        if existing:
            return {"SnapshotId": existing}
        # CopySnapshot answers 403 (not 404) for an unknown source, per the ECS API reference.
        source = self._find(region, source_id, status=403)
        if dest == region:
            raise EcsApiError(
                403,
                "InvalidOperation.NotSupportCopyInSameRegion",
                "Copying snapshot in the same region is not supported.",
            )
        if dest not in self.regions:
            raise EcsApiError(403, "InvalidRegionId.NotExists", "Region not exists.")
        if dest in self.faults.service_disabled:
            raise EcsApiError(
                403,
                "InvalidAccountStatus.SnapshotServiceUnavailable",
                "Snapshot service has not been opened yet.",
            )
        if source.status(self.clock()) != "accomplished":
            raise EcsApiError(
                403, "InvalidSnapshotId.NotReady", "The specified snapshot has not completed yet."
            )
        self._check_quota(dest)
        sid = self._new_id("s", dest)
        self.snapshots[sid] = _Snapshot(
            sid,
            dest,
            source.size_gib,
            self.clock(),
            self._duration(source.size_gib, self.copy_speed, self.faults.copy_slowdown),
            name,
            description,
            source.disk_id,
            retention,
            source_snapshot_id=source.snapshot_id,
            source_region=region,
        )
        if p.get("ClientToken"):
            self.tokens[p["ClientToken"]] = (fingerprint, sid)
        return {"SnapshotId": sid}

    def delete_snapshot(self, region: str, p: Mapping[str, str]) -> dict[str, Any]:
        self._expire()
        sid = p.get("SnapshotId") or ""
        if not sid:
            raise _missing("SnapshotId")
        self._find(region, sid)
        del self.snapshots[sid]
        return {}

    def modify_snapshot_attribute(self, region: str, p: Mapping[str, str]) -> dict[str, Any]:
        self._expire()
        sid = p.get("SnapshotId") or ""
        if not sid:
            raise _missing("SnapshotId")
        snap = self._find(region, sid)
        if not any(p.get(k) for k in ("RetentionDays", "SnapshotName", "Description")):
            raise EcsApiError(400, "NoAttributeToModify", "No attribute to be modified in this request.")
        if p.get("RetentionDays"):
            snap.retention_days = _retention(p["RetentionDays"])
        if p.get("SnapshotName"):
            snap.name = _check_name(p["SnapshotName"], "SnapshotName")
        if p.get("Description"):
            snap.description = _check_description(p["Description"])
        return {}

    def dispatch(self, action: str, region: str, params: Mapping[str, str]) -> dict[str, Any]:
        handler = {
            "CreateSnapshot": self.create_snapshot,
            "DescribeSnapshots": self.describe_snapshots,
            "CopySnapshot": self.copy_snapshot,
            "DeleteSnapshot": self.delete_snapshot,
            "ModifySnapshotAttribute": self.modify_snapshot_attribute,
        }[action]
        with self.lock:
            return handler(region, params)


def _check_name(value: str | None, param: str) -> str:
    if not value:
        return ""
    if not _NAME_RE.match(value) or value.lower().startswith(("http", "auto")):
        raise EcsApiError(403, f"Invalid{param}.Malformed", f"The specified {param} is wrongly formed.")
    return value


def _check_description(value: str | None) -> str:
    if not value:
        return ""
    if not 2 <= len(value) <= 256 or value.startswith(("http://", "https://")):
        raise EcsApiError(403, "InvalidDescription.Malformed", "The specified description is wrongly formed.")
    return value


def _retention(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    try:
        days = int(value)
    except ValueError:
        days = 0
    if not 1 <= days <= 65536:
        raise EcsApiError(403, "InvalidRetentionDays.Malformed", "The specified RetentionDays is not valid.")
    return days


def _int_param(p: Mapping[str, str], name: str, default: int, *, low: int, high: int | None = None) -> int:
    raw = p.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        raise EcsApiError(400, f"Invalid{name}.Malformed", f"The specified parameter {name} is not valid.")
    return value


# --- signatures ------------------------------------------------------------------------------------------


def _percent(text: str) -> str:
    # RFC 3986 unreserved characters stay; everything else is %XX of its UTF-8 bytes.
    return quote(text, safe="-_.~")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """The RPC v1 string-to-sign of a request (all parameters but ``Signature``)."""
    canonical = "&".join(
        f"{_percent(k)}={_percent(v)}" for k, v in sorted(params.items()) if k != "Signature"
    )
    return f"{method.upper()}&{_percent('/')}&{_percent(canonical)}"


def sign(method: str, params: Mapping[str, str], secret: str, signature_method: str = "HMAC-SHA1") -> str:
    digest = hmac.new(
        (secret + "&").encode(), string_to_sign(method, params).encode(), _HASHES[signature_method]
    ).digest()
    return base64.b64encode(digest).decode()


class _Authenticator:
    """Checks who signed a request, like ECS's API gateway."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self.keys = dict(keys)
        self.disabled: set[str] = set()
        self.sts: dict[str, StsCredentials] = {}
        self._nonces: dict[str, float] = {}
        self._lock = threading.Lock()

    def authenticate(self, method: str, params: Mapping[str, str]) -> str:
        for name in ("AccessKeyId", "Signature", "SignatureMethod", "SignatureNonce", "Timestamp"):
            if not params.get(name):
                raise _missing(name)
        key_id = params["AccessKeyId"]
        sts = self.sts.get(key_id)
        secret = sts.access_key_secret if sts else self.keys.get(key_id)
        if secret is None:
            raise EcsApiError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        if key_id in self.disabled:
            raise EcsApiError(400, "InvalidAccessKeyId.Inactive", "Specified access key is disabled.")
        method_name = params["SignatureMethod"]
        if method_name not in _HASHES or params.get("SignatureVersion", "1.0") != "1.0":
            raise EcsApiError(
                400,
                "InvalidParameter.SignatureMethod",
                f"Specified signature method {method_name} is not supported.",
            )
        expected = sign(method, params, secret, method_name)
        if not hmac.compare_digest(expected, params["Signature"]):
            raise EcsApiError(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. server string to sign is:"
                + string_to_sign(method, params),
            )
        self._check_time_and_nonce(params["Timestamp"], params["SignatureNonce"])
        if sts is not None:
            self._check_token(sts, params.get("SecurityToken"))
        return key_id

    def _check_time_and_nonce(self, timestamp: str, nonce: str) -> None:
        try:
            signed_at = calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ"))
        except ValueError:
            raise EcsApiError(
                400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
            ) from None
        now = time.time()
        if abs(now - signed_at) > SIGNATURE_WINDOW_SECONDS:
            raise EcsApiError(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )
        with self._lock:
            for old in [n for n, t in self._nonces.items() if now - t > SIGNATURE_WINDOW_SECONDS]:
                del self._nonces[old]
            if nonce in self._nonces:
                raise EcsApiError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
            self._nonces[nonce] = now

    def _check_token(self, sts: StsCredentials, token: str | None) -> None:
        if not token:
            raise EcsApiError(400, "InvalidSecurityToken.Malformed", "Specified SecurityToken is malformed.")
        if not hmac.compare_digest(token, sts.security_token):
            owner = next((s for s in self.sts.values() if s.security_token == token), None)
            if owner is not None:
                raise EcsApiError(
                    400,
                    "InvalidSecurityToken.MismatchWithAccessKey",
                    "Specified SecurityToken mismatch with the AccessKey.",
                )
            raise EcsApiError(400, "InvalidSecurityToken.Malformed", "Specified SecurityToken is malformed.")
        if time.time() >= sts.expires_at:
            raise EcsApiError(400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.")


# --- HTTP ------------------------------------------------------------------------------------------------


class LocalEcsServer:
    """The local ECS endpoint.  ``start()`` returns its endpoint, e.g. ``http://127.0.0.1:40123``."""

    def __init__(
        self,
        keys: Mapping[str, str] | None = None,
        regions: Iterable[str] = ("cn-hangzhou", "cn-beijing"),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        create_gib_per_second: float = 20.0,
        copy_gib_per_second: float = 5.0,
        min_seconds: float = 1.0,
        snapshot_quota: int | None = None,
        clock: Callable[[], float] | None = None,
        seed: int | None = None,
    ) -> None:
        self.faults = Faults()
        self.state = EcsState(
            regions,
            clock=clock or time.time,
            create_gib_per_second=create_gib_per_second,
            copy_gib_per_second=copy_gib_per_second,
            min_seconds=min_seconds,
            snapshot_quota=snapshot_quota,
            faults=self.faults,
            seed=seed,
        )
        self.auth = _Authenticator(keys or {})
        self._host, self._port = host, port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._calls: list[CallRecord] = []

    # --- lifecycle ---

    def start(self) -> str:
        if self._httpd is not None:
            return self.endpoint
        handler = type("_BoundHandler", (_Handler,), {"server_ref": self})
        self._httpd = ThreadingHTTPServer((self._host, self._port), handler)
        self._httpd.daemon_threads = True
        # A short poll interval keeps stop() fast (shutdown waits for the next poll).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="local-ecs", daemon=True
        )
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> LocalEcsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def regions(self) -> list[str]:
        return list(self.state.regions)

    # --- in-process admin API ---

    def add_key(self, access_key_id: str, secret: str) -> None:
        self.auth.keys[access_key_id] = secret

    def disable_key(self, access_key_id: str) -> None:
        self.auth.disabled.add(access_key_id)

    def issue_sts(self, ttl_seconds: float = 3600.0) -> StsCredentials:
        """Issue temporary credentials (``STS.`` key id, secret and token) valid for ``ttl_seconds``."""
        creds = StsCredentials(
            access_key_id="STS." + uuid.uuid4().hex[:20],
            access_key_secret=uuid.uuid4().hex,
            security_token=base64.b64encode(uuid.uuid4().bytes * 4).decode(),
            expires_at=time.time() + ttl_seconds,
        )
        self.auth.sts[creds.access_key_id] = creds
        return creds

    def register_disk(self, region: str, size_gib: int, disk_id: str | None = None) -> str:
        """A disk CreateSnapshot can snapshot; returns its ``d-...`` id."""
        return self.state.register_disk(region, size_gib, disk_id)

    def register_snapshot(
        self,
        region: str,
        size_gib: int,
        *,
        disk_id: str = "",
        name: str = "",
        retention_days: int | None = None,
        ready: bool = False,
    ) -> str:
        """A snapshot created outside the API (the local disk driver's); progresses like any other."""
        return self.state.register_snapshot(
            region, size_gib, disk_id=disk_id, name=name, retention_days=retention_days, ready=ready
        )

    def fail_snapshot(self, snapshot_id: str) -> None:
        with self.state.lock:
            self.state.snapshots[snapshot_id].failed = True

    def snapshot(self, snapshot_id: str) -> dict[str, Any] | None:
        """The snapshot as DescribeSnapshots would show it, or None (deleted, expired, unknown)."""
        with self.state.lock:
            self.state._expire()
            snap = self.state.snapshots.get(snapshot_id)
            return snap.to_api(self.state.clock()) if snap else None

    def snapshots(self, region: str | None = None) -> list[dict[str, Any]]:
        with self.state.lock:
            self.state._expire()
            now = self.state.clock()
            return [s.to_api(now) for s in self.state.snapshots.values() if region in (None, s.region)]

    def calls(self, action: str | None = None, code: str | None = None) -> list[CallRecord]:
        with self.state.lock:
            return [c for c in self._calls if action in (None, c.action) and code in (None, c.code)]

    # --- request handling ---

    def handle_api(self, method: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        request_id = str(uuid.uuid4()).upper()
        action = params.get("Action", "")
        region = params.get("RegionId", "")
        key_id = params.get("AccessKeyId", "")
        try:
            key_id = self.auth.authenticate(method, params)
            if params.get("Version") != API_VERSION:
                raise EcsApiError(400, "InvalidVersion", "Specified parameter Version is not valid.")
            if action not in _ACTIONS:
                raise EcsApiError(
                    404,
                    "InvalidAction.NotFound",
                    "Specified api is not found, please check your url and method.",
                )
            with self.state.lock:
                self.faults.check(action, key_id)
                region = self.state.check_region(region)
            body = self.state.dispatch(action, region, params)
            status, code = 200, ""
        except EcsApiError as err:
            status, code = err.status, err.code
            body = {
                "Code": err.code,
                "Message": err.message,
                "HostId": "ecs.local",
                "Recommend": f"https://api.aliyun.com/troubleshoot?q={err.code}&product=Ecs&requestId={request_id}",
            }
        body["RequestId"] = request_id
        with self.state.lock:
            self._calls.append(CallRecord(action, region, key_id, status, code))
        return status, body

    def handle_admin(self, method: str, path: str, payload: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Unsigned control API for other local processes (the demo's disk driver, fault scripts)."""
        try:
            if method == "POST" and path == "/__local__/disks":
                disk_id = self.register_disk(
                    str(payload["RegionId"]), int(payload["SizeGiB"]), payload.get("DiskId")
                )
                return 200, {"DiskId": disk_id}
            if method == "POST" and path == "/__local__/snapshots":
                sid = self.register_snapshot(
                    str(payload["RegionId"]),
                    int(payload["SizeGiB"]),
                    disk_id=str(payload.get("DiskId", "")),
                    name=str(payload.get("Name", "")),
                    retention_days=payload.get("RetentionDays"),
                    ready=bool(payload.get("Ready", False)),
                )
                return 200, {"SnapshotId": sid}
            if method == "GET" and path == "/__local__/snapshots":
                return 200, {"Snapshots": self.snapshots()}
            if path.startswith("/__local__/snapshots/") and method in ("GET", "DELETE"):
                # One snapshot, in any region: the local disk driver checks status, region and the source
                # of copies (GET) and releases the snapshot of a deleted content (DELETE), as a CSI driver
                # calls DescribeSnapshots/DeleteSnapshot.
                sid = path.removeprefix("/__local__/snapshots/")
                if method == "DELETE":
                    with self.state.lock:
                        gone = self.state.snapshots.pop(sid, None) is None
                    if gone:
                        raise _snapshot_not_found()
                    return 200, {}
                found = self.snapshot(sid)
                if found is None:
                    raise _snapshot_not_found()
                return 200, found
            if method == "POST" and path == "/__local__/faults":
                self._apply_faults(payload)
                return 200, {}
        except EcsApiError as err:
            return err.status, {"Code": err.code, "Message": err.message}
        except (KeyError, TypeError, ValueError) as err:
            return 400, {"Code": "InvalidParameter", "Message": f"bad admin request: {err}"}
        return 404, {"Code": "NotFound", "Message": f"no admin route {method} {path}"}

    def _apply_faults(self, payload: Mapping[str, Any]) -> None:
        with self.state.lock:
            if payload.get("clear"):
                self.faults.clear()
            if "throttle" in payload:
                spec = payload["throttle"]
                self.faults.throttle(
                    int(spec["count"]), spec.get("action"), spec.get("code", "Throttling.User")
                )
            if "unavailable" in payload:
                spec = payload["unavailable"]
                self.faults.unavailable(int(spec["count"]), spec.get("action"))
            if "throttle_rate" in payload:
                spec = payload["throttle_rate"]
                self.faults.throttle_at_rate(float(spec["rate"]), spec.get("action"))
            if "deny" in payload:
                spec = payload["deny"]
                self.faults.deny(str(spec["action"]), spec.get("code", "Forbidden.RAM"))
            if "allow" in payload:
                self.faults.allow(str(payload["allow"]["action"]))
            if "slow_copies" in payload:
                self.faults.slow_copies(float(payload["slow_copies"]))


class _Handler(BaseHTTPRequestHandler):
    server_ref: LocalEcsServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:  # admin API only: the RPC API is GET/POST
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path.startswith("/__local__/"):
            try:
                payload = json.loads(raw or b"{}")
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                self._reply(400, {"Code": "InvalidParameter", "Message": "admin body must be a JSON object"})
                return
            self._reply(*self.server_ref.handle_admin(method, url.path, payload))
            return
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        if raw and "application/x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
            # Body parameters are signed together with the query, as the SDK signs them.
            params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        status, body = self.server_ref.handle_api(method, params)
        self._reply(status, body)

    def _reply(self, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if "RequestId" in body:
            self.send_header("x-acs-request-id", str(body["RequestId"]))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines would carry signatures and tokens; the call log (LocalEcsServer.calls) is enough.
        return


# --- command line ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local ECS endpoint (test double) for the backup center.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--region", action="append", dest="regions", help="repeatable; default two regions")
    parser.add_argument("--key", action="append", default=[], help="ACCESS_KEY_ID=SECRET, repeatable")
    parser.add_argument(
        "--keys-file",
        help="JSON object {access key id: secret}; keeps secrets off the command line (visible in ps)",
    )
    parser.add_argument("--create-speed", type=float, default=20.0, help="GiB per second for CreateSnapshot")
    parser.add_argument("--copy-speed", type=float, default=5.0, help="GiB per second for CopySnapshot")
    args = parser.parse_args(argv)
    keys = dict(k.split("=", 1) for k in args.key)
    if args.keys_file:
        with open(args.keys_file) as handle:
            keys.update({str(k): str(v) for k, v in json.load(handle).items()})
    if not keys:
        # A throwaway key of this local double, printed so scripts can use it.
        keys = {"LTAIlocal" + uuid.uuid4().hex[:12]: uuid.uuid4().hex}
    server = LocalEcsServer(
        keys,
        args.regions or ("cn-hangzhou", "cn-beijing"),
        host=args.host,
        port=args.port,
        create_gib_per_second=args.create_speed,
        copy_gib_per_second=args.copy_speed,
    )
    endpoint = server.start()
    # Keys given in a file stay out of the log; a generated throwaway key is printed so scripts can use it.
    shown = {k: ("<from --keys-file>" if args.keys_file else v) for k, v in keys.items()}
    print(json.dumps({"endpoint": endpoint, "regions": server.regions, "keys": shown}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
