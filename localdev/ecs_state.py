"""The local ECS endpoint's state: regions, disks, snapshots progressing over time, client tokens,
quotas, injected faults, and ECS's error codes (see localdev/ecs_server.py for what it is and is not)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import string
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "2014-05-26"
SIGNATURE_WINDOW_SECONDS = 15 * 60
ACTIONS = (
    "CreateSnapshot",
    "DescribeSnapshots",
    "CopySnapshot",
    "DeleteSnapshot",
    "ModifySnapshotAttribute",
)
HASHES = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}
_REGION_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")
# ECS: 2-128 characters, starts with a letter, no http(s):// and no "auto" prefix (automatic snapshots).
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9:_.\-]{1,127}$")


class EcsApiError(Exception):
    """An ECS error answer: HTTP status, code and message as ECS sends them."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def missing_param(name: str) -> EcsApiError:
    return EcsApiError(
        400,
        "MissingParameter",
        f'The input parameter "{name}" that is mandatory for processing this request is not supplied.',
    )


def snapshot_not_found() -> EcsApiError:
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
    # Disks created from this snapshot: DeleteSnapshot refuses it then, unless Force=true.
    disks: set[str] = field(default_factory=set)

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
            raise missing_param(name)
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

    def register_disk(
        self, region: str, size_gib: int, disk_id: str | None = None, *, source_snapshot_id: str = ""
    ) -> str:
        """A disk, created empty or (``source_snapshot_id``) from a snapshot of its region."""
        with self.lock:
            self.check_region(region)
            source = self._find(region, source_snapshot_id) if source_snapshot_id else None
            disk_id = disk_id or self._new_id("d", region)
            self.disks[disk_id] = _Disk(disk_id, region, size_gib)
            if source is not None:
                source.disks.add(disk_id)
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
            raise missing_param("DiskId")
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
        snaps.sort(key=_listing_order)
        if "NextToken" in p or "MaxResults" in p:
            return self._token_page(snaps, p, now)
        # PageNumber/PageSize: what ECS calls deprecated (pages shift when snapshots come and go).
        page_number = _int_param(p, "PageNumber", 1, low=1)
        page_size = _int_param(p, "PageSize", 10, low=1, high=100)
        page = snaps[(page_number - 1) * page_size : page_number * page_size]
        return {
            "TotalCount": len(snaps),
            "PageNumber": page_number,
            "PageSize": page_size,
            "NextToken": "",
            "Snapshots": {"Snapshot": [s.to_api(now) for s in page]},
        }

    @staticmethod
    def _token_page(snaps: list[_Snapshot], p: Mapping[str, str], now: float) -> dict[str, Any]:
        """NextToken/MaxResults paging: the token names the last snapshot given, so a page continues
        after it however many snapshots were created or deleted meanwhile."""
        limit = _int_param(p, "MaxResults", 10, low=1, high=100, code="InvalidParameter")
        token = p.get("NextToken") or ""
        total = len(snaps)
        if token:
            try:
                after = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
                key = (float(after[0]), str(after[1]))
            except (ValueError, TypeError, IndexError, KeyError):
                raise EcsApiError(
                    400, "InvalidParameter", "The specified parameter NextToken is not valid."
                ) from None
            snaps = [s for s in snaps if _listing_order(s) > key]
        page = snaps[:limit]
        more = len(snaps) > limit
        next_token = ""
        if more:
            last = _listing_order(page[-1])
            next_token = base64.urlsafe_b64encode(json.dumps([last[0], last[1]]).encode()).decode()
        return {
            "TotalCount": total,
            "MaxResults": limit,
            "NextToken": next_token,
            "Snapshots": {"Snapshot": [s.to_api(now) for s in page]},
        }

    def copy_snapshot(self, region: str, p: Mapping[str, str]) -> dict[str, Any]:
        self._expire()
        source_id = p.get("SnapshotId") or ""
        if not source_id:
            raise missing_param("SnapshotId")
        dest = p.get("DestinationRegionId") or ""
        if not dest:
            raise missing_param("DestinationRegionId")
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
            raise missing_param("SnapshotId")
        snap = self.snapshots.get(sid)
        if snap is None or snap.region != region:
            return {}  # the API reference: "If the snapshot does not exist, the request is ignored."
        if snap.disks and (p.get("Force") or "").lower() != "true":
            raise EcsApiError(403, "SnapshotCreatedDisk", "The snapshot has been used to create disk(s).")
        del self.snapshots[sid]  # one still being created: its creation is canceled with it
        return {}

    def modify_snapshot_attribute(self, region: str, p: Mapping[str, str]) -> dict[str, Any]:
        self._expire()
        sid = p.get("SnapshotId") or ""
        if not sid:
            raise missing_param("SnapshotId")
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


def _listing_order(snap: _Snapshot) -> tuple[float, str]:
    """DescribeSnapshots lists the newest first (ties by id); keyed on -creation time."""
    return (-snap.created_at, snap.snapshot_id)


def _int_param(
    p: Mapping[str, str],
    name: str,
    default: int,
    *,
    low: int,
    high: int | None = None,
    code: str | None = None,
) -> int:
    raw = p.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        code = code or f"Invalid{name}.Malformed"
        raise EcsApiError(400, code, f"The specified parameter {name} is not valid.")
    return value
