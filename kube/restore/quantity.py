"""Kubernetes resource quantities (``10Gi``, ``1.5G``, ``500M``, ``1e9``, ``20000000000``) as bytes.

Only what volume sizes need: parsing to an exact :class:`~decimal.Decimal` (so ``1.5Gi`` is not
subject to float rounding) and rounding up to whole bytes the way the API server does.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12),
            "P": Decimal(10**15), "E": Decimal(10**18)}

# sign, digits with an optional fraction (".5" and "5." are accepted, as by the API server), suffix
_QUANTITY = re.compile(r"^([+-]?)(\d+\.?\d*|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE]?)$")

GIB = 2**30


def parse_quantity(text: str | int | float) -> Decimal:
    """The exact value of a quantity; raises ValueError naming the bad text."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a quantity")
    if isinstance(text, int):
        return Decimal(text)
    if isinstance(text, float):
        # JSON numbers in hand-written manifests; repr keeps what was written.
        return Decimal(repr(text))
    match = _QUANTITY.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (forms like 20Gi, 1.5G, 500M, 1e9)")
    sign, number, suffix = match.groups()
    try:
        value = Decimal(number)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimal numbers
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from None
    if suffix in _BINARY:
        value *= _BINARY[suffix]
    elif suffix[:1] in ("e", "E"):
        value = value.scaleb(int(suffix[1:]))
    else:
        value *= _DECIMAL[suffix]
    return -value if sign == "-" else value


def quantity_bytes(text: str | int | float) -> int:
    """Whole bytes, rounded up (a fractional byte still needs a byte)."""
    return math.ceil(parse_quantity(text))


def format_gib(size: int) -> str:
    """``20Gi`` for whole GiB sizes, plain bytes otherwise."""
    return f"{size // GIB}Gi" if size % GIB == 0 else str(size)
