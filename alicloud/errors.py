"""ECS error codes mapped to the product's error codes.

The SDK raises ``ServerException`` (ECS answered with an error code) or ``ClientException`` (the SDK could
not get an answer: network, DNS, timeouts).  :func:`map_sdk_error` turns either into an :class:`EcsError`,
a :class:`~schemas.errors.BackupCenterError` that also keeps the ECS facts (code, request id, HTTP status)
for ``describe`` and support tickets.  Whether it is worth retrying comes from the catalogue entry
(``retryable``); :attr:`EcsError.transient` marks the subset that the client's backoff loop retries at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException

from schemas.errors import BackupCenterError
from vault.redact import scrub

# ECS codes by product meaning.  Sources: the ECS API reference (common error codes and the error tables
# of CreateSnapshot, CopySnapshot, DescribeSnapshots, DeleteSnapshot, ModifySnapshotAttribute).
THROTTLING_CODES = frozenset({"Throttling", "Throttling.User", "Throttling.Api", "Throttling.Resource"})
UNAVAILABLE_CODES = frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableTemporary",
        "InternalError",
        "InternalError.Dispatch",
        "UnknownError",
        "InvalidOperation.Conflict",
    }
)
PERMISSION_CODES = frozenset(
    {
        "Forbidden.RAM",
        "Forbidden",
        "NoPermission",
        "Forbidden.NotSupportRAM",
        "Forbidden.SubUser",
        "InvalidOperation.Unauthorized",
        "InvalidUser.NotInWhiteList",
    }
)
CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "InvalidAccessKeyId",
        # The SDK rewrites SignatureDoesNotMatch to this when only the secret is wrong.
        "InvalidAccessKeySecret",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidSecurityToken.Expired",
        "InvalidSecurityToken.Malformed",
        "InvalidSecurityToken.MismatchWithAccessKey",
        "InvalidTimeStamp.Expired",
        "Forbidden.AccessKeyDisabled",
    }
)
NOT_FOUND_CODES = frozenset({"InvalidSnapshotId.NotFound", "InvalidSnapshot.NotFound"})
REGION_CODES = frozenset(
    {
        "InvalidRegionId.NotFound",
        "InvalidRegionId.MalFormed",
        "InvalidRegionId.NotExists",
        "Forbidden.RegionId",
    }
)
QUOTA_CODES = frozenset({"QuotaExceed.Snapshot", "QuotaExceed.SnapshotQuota", "QuotaExceed.SnapshotCopy"})
NOT_READY_CODES = frozenset({"InvalidSnapshotId.NotReady", "IncorrectSnapshotStatus"})
SERVICE_DISABLED_CODES = frozenset({"InvalidAccountStatus.SnapshotServiceUnavailable"})
# The destination region refuses copies from here; for a restore that is a cross-region failure.
COPY_REFUSED_CODES = frozenset(
    {
        "RegionNotSupportCopy",
        "OperationDenied.NonCompliantDestinationRegion",
        "InvalidSnapshotCategory.NotSupportCrossRegionCopy",
        "InvalidSnapshotCategory.NotSupportCopy",
    }
)
# ClientException codes of the SDK that mean "no answer", worth retrying.
SDK_TRANSIENT_CODES = frozenset({"SDK.HttpError", "SDK.ServerUnreachable"})


@dataclass(frozen=True)
class CallContext:
    """What a call was about, so errors can name the snapshot and region at fault."""

    action: str
    region: str
    snapshot: str | None = None
    dest_region: str | None = None


class EcsError(BackupCenterError):
    """A product error raised by the ECS client layer."""

    def __init__(
        self,
        code: str,
        *,
        action: str,
        ecs_code: str | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
        detail: str | None = None,
        **params: str,
    ) -> None:
        self.action = action
        self.ecs_code = ecs_code
        self.request_id = request_id
        self.http_status = http_status
        if ecs_code:
            params.setdefault("ecs_code", ecs_code)
        super().__init__(code, detail=detail, action=action, **params)

    def with_params(self, **params: str) -> EcsError:
        """The same error with some message parameters replaced (e.g. the number of attempts)."""
        merged = {k: v for k, v in self.params.items() if k not in ("action", "ecs_code")}
        merged.update(params)
        return EcsError(
            self.code,
            action=self.action,
            ecs_code=self.ecs_code,
            request_id=self.request_id,
            http_status=self.http_status,
            detail=self.detail,
            **merged,
        )

    @property
    def transient(self) -> bool:
        """Retrying the very same call after a short pause may succeed (throttling, unavailability)."""
        return self.code in ("EcsThrottled", "EcsUnavailable")

    @property
    def throttled(self) -> bool:
        return self.code == "EcsThrottled"

    def __repr__(self) -> str:
        return f"EcsError({self.code!r}, ecs_code={self.ecs_code!r}, message={self.message!r})"


def _detail(ecs_code: str, message: str, request_id: str | None, secrets: tuple[str, ...]) -> str:
    text = f"{ecs_code}: {message}"
    if request_id:
        text += f" [RequestId {request_id}]"
    return scrub(text, *secrets)


def map_server_error(
    exc: ServerException, ctx: CallContext, *, access_key: str = "", secrets: tuple[str, ...] = ()
) -> EcsError:
    """Map an ECS error answer to the product's code for it."""
    code = str(exc.get_error_code() or "")
    status = exc.get_http_status()
    request_id = exc.get_request_id()
    make = partial(
        EcsError,
        action=ctx.action,
        ecs_code=code,
        request_id=request_id,
        http_status=status,
        detail=_detail(code, str(exc.get_error_msg() or ""), request_id, secrets),
    )
    if code in THROTTLING_CODES:
        return make("EcsThrottled", attempts="1")
    if code in UNAVAILABLE_CODES or (status is not None and status >= 500):
        return make("EcsUnavailable", attempts="1", reason=code)
    if code in PERMISSION_CODES:
        return make("EcsPermission")
    if code in CREDENTIAL_CODES:
        reason = _CREDENTIAL_REASONS.get(code, code)
        return make("EcsCredentialsInvalid", access_key=access_key or "?", reason=reason)
    if code in NOT_FOUND_CODES:
        return make("EcsSnapshotNotFound", snapshot=ctx.snapshot or "?", region=ctx.region)
    if code in REGION_CODES:
        # CopySnapshot reports an unknown destination as InvalidRegionId.NotExists.
        region = ctx.dest_region if code == "InvalidRegionId.NotExists" and ctx.dest_region else ctx.region
        return make("EcsRegionNotOpen", region=region)
    if code in QUOTA_CODES:
        return make("EcsQuotaExceeded", region=ctx.dest_region or ctx.region)
    if code in NOT_READY_CODES:
        return make("EcsSnapshotNotReady", snapshot=ctx.snapshot or "?")
    if code in SERVICE_DISABLED_CODES:
        return make("EcsSnapshotServiceDisabled", region=ctx.region)
    return make("EcsRequestFailed")


_CREDENTIAL_REASONS = {
    "InvalidAccessKeySecret": "the AccessKey secret is wrong",
    "SignatureDoesNotMatch": "the request signature does not match (wrong secret?)",
    "InvalidAccessKeyId.NotFound": "the AccessKey id does not exist",
    "InvalidAccessKeyId.Inactive": "the AccessKey is disabled",
    "InvalidSecurityToken.Expired": "the STS security token expired",
    "InvalidSecurityToken.MismatchWithAccessKey": "the STS security token belongs to another AccessKey",
    "InvalidTimeStamp.Expired": "the request timestamp is outside the accepted window (clock skew)",
}


def map_client_error(exc: ClientException, ctx: CallContext, *, secrets: tuple[str, ...] = ()) -> EcsError:
    """Map an SDK-side failure (no usable answer from ECS)."""
    code = str(exc.get_error_code() or "")
    message = scrub(str(exc.get_error_msg() or ""), *secrets)
    if code in SDK_TRANSIENT_CODES:
        return EcsError(
            "EcsUnavailable",
            action=ctx.action,
            ecs_code=code,
            attempts="1",
            reason="no answer from the ECS endpoint",
            detail=f"{code}: {message}",
        )
    if code in ("SDK.InvalidRegionId", "SDK.EndpointResolvingError"):
        return EcsError(
            "EcsRegionNotOpen", action=ctx.action, ecs_code=code, region=ctx.region, detail=message
        )
    return EcsError("EcsRequestFailed", action=ctx.action, ecs_code=code, detail=f"{code}: {message}")


def map_sdk_error(
    exc: Exception, ctx: CallContext, *, access_key: str = "", secrets: tuple[str, ...] = ()
) -> EcsError | None:
    """Map a ServerException or ClientException; ``None`` for anything else (a bug, let it surface)."""
    if isinstance(exc, ServerException):
        return map_server_error(exc, ctx, access_key=access_key, secrets=secrets)
    if isinstance(exc, ClientException):
        return map_client_error(exc, ctx, secrets=secrets)
    return None


# Errors of a CopySnapshot that mean "this account cannot copy snapshots to that region".
_CROSS_REGION_CODES = frozenset({"EcsPermission", "EcsCredentialsInvalid", "EcsRegionNotOpen"})


def cross_region_error(err: EcsError, snapshot_id: str) -> BackupCenterError:
    """Turn a failed cross-region CopySnapshot into the restore's ``CrossRegionFailed`` error.

    Permission, credential and region problems become ``RestoreError: ECS snapshot cross region
    request failed`` with the policy fix; other errors (quota, not found, throttling) keep their own,
    clearer code.
    """
    if err.code in _CROSS_REGION_CODES or (err.ecs_code or "") in COPY_REFUSED_CODES:
        return EcsError(
            "CrossRegionFailed",
            action=err.action,
            ecs_code=err.ecs_code,
            request_id=err.request_id,
            http_status=err.http_status,
            snapshot=snapshot_id,
            reason=err.message,
            detail=err.detail,
        )
    return err
