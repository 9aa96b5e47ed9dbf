"""Who signed a request to the local ECS endpoint: RPC v1 signatures, timestamps, nonces and STS tokens,
checked as ECS's API gateway checks them (see localdev/ecs_server.py)."""

from __future__ import annotations

import base64
import calendar
import hmac
import threading
import time
from collections.abc import Mapping
from urllib.parse import quote

from localdev.ecs_state import HASHES, SIGNATURE_WINDOW_SECONDS, EcsApiError, StsCredentials, missing_param

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
        (secret + "&").encode(), string_to_sign(method, params).encode(), HASHES[signature_method]
    ).digest()
    return base64.b64encode(digest).decode()


class Authenticator:
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
                raise missing_param(name)
        key_id = params["AccessKeyId"]
        sts = self.sts.get(key_id)
        secret = sts.access_key_secret if sts else self.keys.get(key_id)
        if secret is None:
            raise EcsApiError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        if key_id in self.disabled:
            raise EcsApiError(400, "InvalidAccessKeyId.Inactive", "Specified access key is disabled.")
        method_name = params["SignatureMethod"]
        if method_name not in HASHES or params.get("SignatureVersion", "1.0") != "1.0":
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
