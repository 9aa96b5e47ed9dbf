"""Credentials for OSS vaults: from the environment, or from a Kubernetes Secret's data.

A vault's spec names a Secret; it never holds the key itself.  The values live only in an
:class:`OssCredentials`, whose repr masks them, so they cannot leak through logs or errors.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from vault.redact import mask_key_id

ENV_ACCESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_SECURITY_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"

# Secret data keys accepted for each value, first match wins: our own names, then the names other
# Alibaba Cloud components use in their Secrets, then the environment-variable names.
SECRET_KEYS = {
    "access_key_id": ("access-key-id", "accessKeyId", "AccessKeyId", "akId", ENV_ACCESS_KEY_ID),
    "access_key_secret": ("access-key-secret", "accessKeySecret", "AccessKeySecret", "akSecret",
                          ENV_ACCESS_KEY_SECRET),
    "security_token": ("security-token", "securityToken", "SecurityToken", ENV_SECURITY_TOKEN),
}


class CredentialsError(ValueError):
    """Credentials are missing or malformed; the message names what is missing, never a value."""


@dataclass(frozen=True)
class OssCredentials:
    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        sts = ", sts" if self.security_token else ""
        return f"OssCredentials({mask_key_id(self.access_key_id)}{sts})"

    def secrets(self) -> tuple[str, ...]:
        """The values that must never appear in output (for scrubbing messages)."""
        return tuple(v for v in (self.access_key_secret, self.security_token) if v)


def credentials_from_env(environ: Mapping[str, str] | None = None) -> OssCredentials | None:
    """The standard Alibaba Cloud variables, or None when the key id or secret is not set."""
    env = os.environ if environ is None else environ
    key_id = env.get(ENV_ACCESS_KEY_ID, "").strip()
    secret = env.get(ENV_ACCESS_KEY_SECRET, "").strip()
    if not key_id and not secret:
        return None
    if not key_id or not secret:
        missing = ENV_ACCESS_KEY_ID if not key_id else ENV_ACCESS_KEY_SECRET
        raise CredentialsError(f"environment variable {missing} is not set")
    token = env.get(ENV_SECURITY_TOKEN, "").strip() or None
    return OssCredentials(key_id, secret, token)


def credentials_from_secret(data: Mapping[str, str | bytes], *, base64_encoded: bool = True,
                            secret_name: str = "the credentials Secret") -> OssCredentials:
    """Credentials from a Kubernetes Secret's ``data`` (base64 values) or ``stringData``.

    Pass ``base64_encoded=False`` for ``stringData`` or values already decoded.
    """

    def value(field_name: str) -> str | None:
        for name in SECRET_KEYS[field_name]:
            raw = data.get(name)
            if raw is None:
                continue
            if base64_encoded:
                try:
                    raw = base64.b64decode(raw, validate=True)
                except (binascii.Error, ValueError):
                    raise CredentialsError(f"{secret_name}: key {name!r} is not valid base64") from None
            text = raw.decode() if isinstance(raw, bytes) else raw
            return text.strip() or None
        return None

    key_id = value("access_key_id")
    secret = value("access_key_secret")
    for field_name, got in (("access_key_id", key_id), ("access_key_secret", secret)):
        if not got:
            names = " or ".join(repr(n) for n in SECRET_KEYS[field_name][:2])
            raise CredentialsError(f"{secret_name} has no {names} key")
    assert key_id is not None and secret is not None
    return OssCredentials(key_id, secret, value("security_token"))
