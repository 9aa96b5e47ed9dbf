"""Opening a vault's object store from its spec or URL, with errors that name the field at fault."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from schemas.errors import BackupCenterError
from schemas.vault import StoreSpec, VaultSpec
from vault.credentials import CredentialsError, OssCredentials, credentials_from_env
from vault.filestore import FileStore
from vault.ossstore import OssStore
from vault.store import ObjectStore


def invalid(field: str, reason: str) -> BackupCenterError:
    return BackupCenterError("InvalidSpec", field=field, reason=reason)


def from_validation_error(err: ValidationError, *, prefix: str = "") -> BackupCenterError:
    """The first problem of a pydantic error as InvalidSpec naming its field."""
    first = err.errors()[0]
    field = prefix + (".".join(str(p) for p in first["loc"]) or "spec")
    if first["type"] == "extra_forbidden":
        return invalid(field, "unknown field")
    message = first["msg"].removeprefix("Value error, ")
    return invalid(field, message)


def parse_store_spec(url: str, **fields: Any) -> StoreSpec:
    """A StoreSpec from a URL and optional fields, or InvalidSpec naming the bad field."""
    try:
        return StoreSpec(url=url, **fields)
    except ValidationError as err:
        raise from_validation_error(err) from None


def open_store(spec: StoreSpec | VaultSpec | str, *, credentials: OssCredentials | None = None,
               create: bool = False, **oss_options: Any) -> ObjectStore:
    """The ObjectStore of a vault.

    ``spec`` may be a bare URL.  For oss:// the credentials come from the argument (e.g. loaded from
    the vault's Secret) or else from the ALIBABA_CLOUD_* environment variables.  ``create`` makes a
    file:// directory that does not exist yet.  ``oss_options`` pass through to :class:`OssStore`
    (part size, threads, attempts, timeout).
    """
    if isinstance(spec, str):
        spec = parse_store_spec(spec)
    location, prefix = spec.location
    if spec.scheme == "file":
        return FileStore(location, create=create)
    if credentials is None:
        try:
            credentials = credentials_from_env()
        except CredentialsError as err:
            raise invalid("credentials", str(err)) from None
        if credentials is None:
            raise invalid("credentials", "no OSS credentials: name a Secret in the vault spec or set "
                                         "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    return OssStore(location, prefix, credentials=credentials, region=spec.region, network=spec.network.value,
                    endpoint=spec.endpoint, encryption=spec.encryption.value, kms_key_id=spec.kms_key_id,
                    **oss_options)
