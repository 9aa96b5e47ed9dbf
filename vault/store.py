"""The object-store interface every vault backend implements.

Object-store semantics only: no rename, no locking, no directories.  Keys are '/'-separated
strings relative to the vault's root (bucket + prefix).  Every backend verifies a checksum on
read: a corrupted object raises, it is never returned.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError

from schemas.errors import BackupCenterError


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: float  # seconds since the epoch


class ObjectStoreError(Exception):
    """Base of all store errors; ``key`` names the object at fault when there is one."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class ObjectNotFound(ObjectStoreError):
    pass


class ObjectExists(ObjectStoreError):
    """put(..., if_absent=True) found the key already present."""


class ObjectCorrupt(ObjectStoreError):
    """Stored bytes do not match their checksum."""


class StoreUnavailable(ObjectStoreError):
    """The store cannot be reached or used at all (missing bucket, denied, network).

    The message is the cause as an operator should read it after
    ``VaultError: backup vault is unavailable: `` (no credentials in it).
    """


class InvalidRange(ObjectStoreError):
    """The requested byte range starts beyond the end of the object (HTTP 416)."""


class InvalidKey(ObjectStoreError, ValueError):
    """The key cannot name an object in every backend (empty, too long, '.'/'..' or empty segments)."""


MAX_KEY_BYTES = 1023  # OSS's limit; FileStore keeps the same so keys move between backends


def check_key(key: str) -> str:
    """Reject keys that not every backend can store, so both behave the same for the same key."""
    if not isinstance(key, str) or not key:
        raise InvalidKey("object key must be a non-empty string", key=key if isinstance(key, str) else None)
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"object key is longer than {MAX_KEY_BYTES} bytes", key=key)
    if "\x00" in key or key.startswith(("/", "\\")):
        raise InvalidKey("object key must not start with '/' or '\\' nor contain NUL", key=key)
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKey("object key has an empty, '.' or '..' path segment", key=key)
    return key


def as_product_error(err: ObjectStoreError) -> BackupCenterError:
    """The catalogue error an operator sees for a store error (VaultUnavailable, VaultObject*)."""
    if isinstance(err, StoreUnavailable):
        return BackupCenterError("VaultUnavailable", cause=str(err))
    if isinstance(err, ObjectCorrupt):
        return BackupCenterError("VaultObjectCorrupt", key=err.key or "?", reason=str(err))
    return BackupCenterError("VaultObjectFailed", key=err.key or "?", detail=str(err))


@contextmanager
def product_errors_of_store() -> Iterator[None]:
    """Store errors raised inside leave as the product errors an operator sees (as_product_error), for
    the vault's read API that the CLI and the activities share.  Activities need not use it: their
    boundary (activities.errors.product_errors) maps the same way."""
    try:
        yield
    except ObjectStoreError as err:
        raise as_product_error(err) from err


@runtime_checkable
class ObjectStore(Protocol):
    """What the product needs from a bucket.  Implementations: vault.filestore, vault.ossstore."""

    url: str

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> ObjectInfo: ...

    def put_stream(self, key: str, stream: BinaryIO, *, size: int | None = None,
                   if_absent: bool = False) -> ObjectInfo:
        """Upload a large object (multipart / parallel where the backend supports it)."""
        ...

    def get(self, key: str, *, start: int | None = None, end: int | None = None) -> bytes:
        """Whole object, or bytes [start, end] inclusive (HTTP range semantics).

        ``start`` defaults to 0 and ``end`` to the last byte; an ``end`` past the object is clamped,
        a ``start`` past it raises InvalidRange.
        """
        ...

    def get_stream(self, key: str, out: BinaryIO) -> int:
        """Write the whole object to ``out``; returns the byte count.

        The checksum is verified while streaming; on ObjectCorrupt ``out`` may hold part of the
        object and must be discarded by the caller.
        """
        ...

    def head(self, key: str) -> ObjectInfo: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "", *, delimiter: str | None = None,
             page_size: int = 1000) -> Iterator[ObjectInfo | str]:
        """Objects under prefix in key order; with a delimiter, common prefixes are yielded as str."""
        ...

    def delete(self, key: str) -> None:
        """Idempotent: deleting a missing key is not an error."""
        ...

    def check(self) -> None:
        """Raise StoreUnavailable with the cause when the store cannot be used."""
        ...


M = TypeVar("M", bound=BaseModel)


def get_model(store: ObjectStore, key: str, model: type[M]) -> M | None:
    """A JSON record of the vault: None when absent, ObjectCorrupt (naming the key) when it does not
    parse as ``model``."""
    try:
        raw = store.get(key)
    except ObjectNotFound:
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        problem = err.errors()[0]["msg"]
        raise ObjectCorrupt(f"not a valid {model.__name__} record: {problem}", key=key) from None


def put_model(
    store: ObjectStore, key: str, record: BaseModel, *, if_absent: bool = False, indent: int | None = 2
) -> ObjectInfo:
    """Write a JSON record (indented, for people reading the vault, unless ``indent=None``)."""
    return store.put(key, record.model_dump_json(indent=indent).encode(), if_absent=if_absent)

