"""Turning product errors into Temporal activity failures the workflows understand.

An activity that raises :class:`BackupCenterError` fails with an ``ApplicationError`` whose type
is the error code and whose single detail is the rendered :class:`ErrorInfo`.  Codes marked
non-retryable in the catalogue skip Temporal's retries: running the same step again cannot
help until something changes, and the operator decides that.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

from temporalio.exceptions import ApplicationError

from schemas.errors import BackupCenterError
from vault.store import ObjectStoreError, as_product_error

F = TypeVar("F", bound=Callable[..., Any])


def to_application_error(err: BackupCenterError) -> ApplicationError:
    info = err.info()
    return ApplicationError(
        info.short(),
        info.model_dump(mode="json"),
        type=err.code,
        non_retryable=not err.retryable,
    )


def product_errors(fn: F) -> F:
    """Decorator for activities: re-raise product errors as typed ApplicationErrors.

    It is also the one place where vault store errors become product errors (VaultUnavailable,
    VaultObjectCorrupt, VaultObjectFailed: see vault.store.as_product_error), so activities and the
    domain code under them let ``ObjectStoreError`` rise instead of translating it on the way.
    """
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except BackupCenterError as err:
                raise to_application_error(err) from None
            except ObjectStoreError as err:
                raise to_application_error(as_product_error(err)) from None

        return cast(F, async_wrapper)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BackupCenterError as err:
            raise to_application_error(err) from None
        except ObjectStoreError as err:
            raise to_application_error(as_product_error(err)) from None

    return cast(F, wrapper)
