"""Error codes as data.

Every failure the product reports has a code.  The code carries a short message template
(shown in lists), likely causes and fixes (shown by ``describe``), and whether retrying the
same step can help.  The catalogue lives in :mod:`schemas.error_catalog`; this module holds
the mechanism only.

A raised :class:`BackupCenterError` renders its message from the template and the params it
was given.  Params are plain strings that name objects (a PVC, a bucket, a node); never pass
credentials into them.
"""

from __future__ import annotations

import string
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorCode(BaseModel):
    """One entry of the error catalogue."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(description="Stable identifier, e.g. VaultUnavailable")
    kind: str = Field(description="Error family shown before the message, e.g. VaultError")
    template: str = Field(description="str.format template of the short message")
    causes: tuple[str, ...] = ()
    fixes: tuple[str, ...] = ()
    retryable: bool = Field(
        default=False, description="Whether running the same step again may succeed without a change"
    )
    final: bool = Field(
        default=False,
        description="No operator action can mend it within the job (its spec is fixed): the job ends "
        "Failed at once instead of waiting for an operator",
    )

    def placeholders(self) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.template) if name}


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


_CATALOGUE: dict[str, ErrorCode] = {}


def register(*codes: ErrorCode) -> None:
    for code in codes:
        existing = _CATALOGUE.get(code.code)
        if existing is not None and existing != code:
            raise ValueError(f"error code {code.code!r} registered twice with different content")
        _CATALOGUE[code.code] = code


def lookup(code: str) -> ErrorCode:
    # Importing the catalogue here (not at module import) keeps this module free of cycles.
    from schemas import error_catalog  # noqa: F401

    try:
        return _CATALOGUE[code]
    except KeyError:
        raise KeyError(f"unknown error code {code!r}") from None


def all_codes() -> dict[str, ErrorCode]:
    from schemas import error_catalog  # noqa: F401

    return dict(_CATALOGUE)


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
