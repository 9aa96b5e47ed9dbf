"""Exceptions of the data mover.

Each carries ``key``: the vault object (or restore path) at fault, so the activity layer can
name it in the job status.  ``code`` is the error-catalogue code the activity maps it to.
Messages never contain key material.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from vault.store import ObjectCorrupt, ObjectNotFound, ObjectStoreError


class DataMoverError(Exception):
    code = "DataMoverError"
    retryable = False

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class EncryptionKeyMismatch(DataMoverError):
    """The key given does not decrypt the vault's objects."""

    code = "EncryptionKeyMismatch"


class EncryptionKeyRequired(DataMoverError):
    """The vault is encrypted but no key was given."""

    code = "EncryptionKeyRequired"


class EncryptionNotEnabled(DataMoverError):
    """A key was given for a vault whose data is not encrypted; mixing would leak chunk ids."""

    code = "EncryptionNotEnabled"


class ObjectMissing(DataMoverError):
    """A vault object the data needs is gone (deleted, never written, lost)."""

    code = "VaultObjectMissing"


class SnapshotNotFound(ObjectMissing):
    code = "SnapshotNotFound"


class DataCorrupt(DataMoverError):
    """A vault object's bytes fail authentication, digest or format checks."""

    code = "VaultObjectCorrupt"


class UnsafePath(DataMoverError):
    """A manifest names a path outside the restore target."""

    code = "RestorePathUnsafe"


class UnsafeChoice(UnsafePath):
    """A path chosen for a partial restore that leaves the volume or is not normalised."""


class PathNotInSnapshot(DataMoverError):
    """A path chosen for a partial restore that the snapshot does not hold."""

    code = "RestorePathNotInSnapshot"


class VaultBusy(DataMoverError):
    """Garbage collection holds the vault; the backup waited and gave up.  Retry later."""

    code = "VaultBusy"
    retryable = True


@contextmanager
def store_errors(key: str, *, missing: type[ObjectMissing] | None = None, what: str = "") -> Iterator[None]:
    """Turn the store's errors about ``key`` into data mover errors that name it."""
    try:
        yield
    except ObjectNotFound:
        cls = missing or ObjectMissing
        raise cls(f"{what or 'vault object'} {key} is missing" if not what else f"{what} not found ({key})",
                  key=key) from None
    except ObjectCorrupt as exc:
        raise DataCorrupt(f"vault object {key} is corrupted: {exc}", key=key) from None
    except ObjectStoreError as exc:
        if exc.key is None:
            exc.key = key
        raise
