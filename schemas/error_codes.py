"""One entry of the error catalogue, and the registry the catalogue fills (schemas.error_catalog)."""

from __future__ import annotations

import string

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


def register(catalogue: dict[str, ErrorCode], *codes: ErrorCode) -> None:
    for code in codes:
        existing = catalogue.get(code.code)
        if existing is not None and existing != code:
            raise ValueError(f"error code {code.code!r} registered twice with different content")
        catalogue[code.code] = code
