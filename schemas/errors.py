"""Error codes as data.

Every failure the product reports has a code.  The code carries a short message template
(shown in lists), likely causes and fixes (shown by ``describe``), and whether retrying the
same step can help.  The catalogue lives in :mod:`schemas.error_catalog` (entries of
:mod:`schemas.error_codes`); this module renders and raises them.

A raised :class:`BackupCenterError` renders its message from the template and the params it
was given.  Params are plain strings that name objects (a PVC, a bucket, a node); never pass
credentials into them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from schemas.error_catalog import CATALOGUE
from schemas.error_codes import ErrorCode


class ErrorInfo(BaseModel):
    """A rendered error as stored in job status and shown by ``describe``."""

    code: str
    kind: str
    message: str
    causes: list[str] = Field(default_factory=list)
    fixes: list[str] = Field(default_factory=list)
    retryable: bool = False
    final: bool = False  # see ErrorCode.final
    detail: str | None = Field(default=None, description="Lower-level cause, e.g. the API server's reply")

    def short(self) -> str:
        return f"{self.kind}: {self.message}"


def lookup(code: str) -> ErrorCode:
    try:
        return CATALOGUE[code]
    except KeyError:
        raise KeyError(f"unknown error code {code!r}") from None


def all_codes() -> dict[str, ErrorCode]:
    return dict(CATALOGUE)


class BackupCenterError(Exception):
    """An error of the product, carrying a catalogue code and the params of its message."""

    def __init__(self, code: str, *, detail: str | None = None, **params: Any) -> None:
        self.code = code
        self.params = {k: str(v) for k, v in params.items()}
        self.detail = detail
        self._final: bool | None = None
        entry = lookup(code)
        missing = entry.placeholders() - self.params.keys()
        if missing:
            raise ValueError(f"error {code}: missing params {sorted(missing)}")
        self.entry = entry
        self.message = entry.template.format(**self.params)
        super().__init__(self.short())

    def as_final(self) -> BackupCenterError:
        """Mark this error final (see ErrorCode.final) where its code is final only in some uses:
        a bad field of the job's own spec is, a credentials Secret still to be made is not."""
        self._final = True
        return self

    @property
    def retryable(self) -> bool:
        return self.entry.retryable

    def short(self) -> str:
        text = f"{self.entry.kind}: {self.message}"
        if self.detail:
            text += f" ({self.detail})"
        return text

    def info(self) -> ErrorInfo:
        return ErrorInfo(
            code=self.code,
            kind=self.entry.kind,
            message=self.message,
            causes=list(self.entry.causes),
            fixes=list(self.entry.fixes),
            retryable=self.entry.retryable,
            final=self.entry.final if self._final is None else self._final,
            detail=self.detail,
        )
