"""The activity boundary (activities.errors.product_errors), run with the SDK's ActivityEnvironment:
product errors and vault store errors leave an activity as the typed failures the workflows read,
with the catalogue's words; nothing else is translated on the way."""

from __future__ import annotations

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.errors import product_errors
from schemas.errors import BackupCenterError
from vault.store import ObjectCorrupt, ObjectNotFound, StoreUnavailable


def _raising(err: Exception) -> object:
    @activity.defn(name="raising")
    @product_errors
    def raising() -> None:
        raise err

    return raising


@pytest.mark.parametrize(
    ("raised", "code", "words", "retryable"),
    [
        (StoreUnavailable("connection refused"), "VaultUnavailable", "connection refused", True),
        (ObjectCorrupt("digest mismatch", key="backups/b1/index.json"), "VaultObjectCorrupt",
         "backups/b1/index.json", False),
        (ObjectNotFound("gone", key="packs/p1"), "VaultObjectFailed", "packs/p1", True),
        (BackupCenterError("NotFound", kind="backup", name="b9"), "NotFound", "b9", False),
    ],
)
def test_store_and_product_errors_leave_as_catalogue_failures(
    raised: Exception, code: str, words: str, retryable: bool
) -> None:
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(_raising(raised))  # type: ignore[arg-type]
    failure = caught.value
    assert failure.type == code
    assert words in str(failure)
    [detail] = failure.details
    assert isinstance(detail, dict) and detail["code"] == code and detail["causes"] and detail["fixes"]
    assert failure.non_retryable is not retryable


def test_other_errors_are_not_dressed_up() -> None:
    with pytest.raises(ValueError, match="a bug"):
        ActivityEnvironment().run(_raising(ValueError("a bug")))  # type: ignore[arg-type]
