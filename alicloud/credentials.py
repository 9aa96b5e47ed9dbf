"""Alibaba Cloud credentials: an AccessKey pair, optionally with an STS security token.

Two sources: the process environment (the variable names of Alibaba Cloud's own tools) and the ``data``
of a Kubernetes Secret.  The secret parts never appear in ``repr``/``str``, and loader errors name the
missing key, never a value.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.errors import BackupCenterError
from vault.redact import mask_key_id

ENV_ACCESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_SECURITY_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"


@dataclass(frozen=True)
class AccessKey:
    """Credentials the ECS client signs with.  ``security_token`` set means STS credentials."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.access_key_id or not self.access_key_secret:
            raise BackupCenterError("CloudCredentialsMissing", reason="AccessKey id or secret is empty")

    @property
    def is_sts(self) -> bool:
        return self.security_token is not None

    @property
    def masked_id(self) -> str:
        return mask_key_id(self.access_key_id)

    def secrets(self) -> tuple[str, ...]:
        """The values that must never be shown, for :func:`vault.redact.scrub`."""
        return tuple(v for v in (self.access_key_secret, self.security_token) if v)

    def __repr__(self) -> str:
        kind = "sts" if self.is_sts else "access-key"
        return f"AccessKey(id={self.masked_id}, kind={kind})"

    __str__ = __repr__


def credentials_from_env(environ: Mapping[str, str] | None = None) -> AccessKey:
    """Read ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``_SECRET`` and the optional ``ALIBABA_CLOUD_SECURITY_TOKEN``."""
    env = os.environ if environ is None else environ
    key_id = env.get(ENV_ACCESS_KEY_ID, "").strip()
    secret = env.get(ENV_ACCESS_KEY_SECRET, "").strip()
    missing = [
        name for name, value in ((ENV_ACCESS_KEY_ID, key_id), (ENV_ACCESS_KEY_SECRET, secret)) if not value
    ]
    if missing:
        raise BackupCenterError(
            "CloudCredentialsMissing", reason=f"environment variable(s) {', '.join(missing)} not set"
        )
    token = env.get(ENV_SECURITY_TOKEN, "").strip() or None
    return AccessKey(key_id, secret, token)


# Secret keys are matched loosely: `AccessKeyId`, `access-key-id`, `accessKeyID` and the environment
# variable spelling all mean the same, because clusters carry Secrets written for different tools.
_ALIASES = {
    "accesskeyid": "id",
    "akid": "id",
    "accesskeysecret": "secret",
    "aksecret": "secret",
    "securitytoken": "token",
    "ststoken": "token",
}


def _normalise(key: str) -> str:
    key = re.sub(r"[^a-z0-9]", "", key.lower())
    return key.removeprefix("alibabacloud").removeprefix("alicloud").removeprefix("aliyun")


def credentials_from_secret_data(data: Mapping[str, str | bytes], *, encoded: bool = True) -> AccessKey:
    """Build credentials from a Kubernetes Secret.

    ``data`` is the Secret's ``data`` (base64 values, ``encoded=True``) or ``stringData`` (plain values,
    ``encoded=False``).  Recognised keys: AccessKeyId / access-key-id / ALIBABA_CLOUD_ACCESS_KEY_ID,
    AccessKeySecret / access-key-secret / ALIBABA_CLOUD_ACCESS_KEY_SECRET, and the optional
    SecurityToken / security-token / ALIBABA_CLOUD_SECURITY_TOKEN.
    """
    found: dict[str, str] = {}
    for raw_key, raw_value in data.items():
        role = _ALIASES.get(_normalise(raw_key))
        if role is None:
            continue
        found[role] = _decode(raw_key, raw_value, encoded).strip()
    missing = [
        name for name, role in (("AccessKeyId", "id"), ("AccessKeySecret", "secret")) if not found.get(role)
    ]
    if missing:
        raise BackupCenterError(
            "CloudCredentialsMissing", reason=f"credentials Secret has no {' or '.join(missing)} key"
        )
    return AccessKey(found["id"], found["secret"], found.get("token") or None)


def _decode(key: str, value: str | bytes, encoded: bool) -> str:
    raw = value.encode() if isinstance(value, str) else value
    if encoded:
        try:
            raw = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BackupCenterError(
                "CloudCredentialsMissing", reason=f"credentials Secret key {key!r} is not valid base64"
            ) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BackupCenterError(
            "CloudCredentialsMissing", reason=f"credentials Secret key {key!r} is not UTF-8 text"
        ) from None
