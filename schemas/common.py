"""Small validated value types shared by specs and settings: Kubernetes names, durations, cycles."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, ValidationError, WithJsonSchema

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_dns_label(value: str) -> str:
    """Namespaces and job names: DNS-1123 labels (63 chars, lowercase alphanumerics and '-')."""
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    if len(value) > 63:
        raise ValueError(f"{value!r} is longer than 63 characters")
    if not DNS1123_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a valid Kubernetes name (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit)"
        )
    return value


def check_dns_subdomain(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        raise ValueError(f"{value!r} is not a valid Kubernetes object name")
    return value


# The JSON schemas say what the validators check, so a custom resource's OpenAPI schema (generated
# from these models, schemas/resources.py) lets the API server refuse a bad name at admission.
K8sName = Annotated[
    str,
    AfterValidator(check_dns_label),
    WithJsonSchema({"type": "string", "maxLength": 63, "pattern": DNS1123_LABEL.pattern}),
]
K8sObjectName = Annotated[
    str,
    AfterValidator(check_dns_subdomain),
    WithJsonSchema({"type": "string", "maxLength": 253, "pattern": _DNS1123_SUBDOMAIN.pattern}),
]

_DURATION_PART = re.compile(r"(\d+)(d|h|ms|m|s)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: object) -> timedelta:
    """Parse Go-style durations such as ``6h30m``, ``90s``, ``2d``; plain numbers are seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration")
    text = value.strip()
    if not text:
        raise ValueError("empty duration")
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"{value!r} is not a duration (use forms like 90s, 10m, 6h30m, 7d)")
    if total <= 0:
        raise ValueError(f"{value!r} must be longer than zero")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds == 0:
        return f"{int(value.total_seconds() * 1000)}ms"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


DURATION_PATTERN = r"^([0-9]+(d|h|ms|m|s))+$"

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]

# --- 5-field cron --------------------------------------------------------------------------
_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)


def _check_cron_field(text: str, name: str, low: int, high: int) -> None:
    for item in text.split(","):
        base, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ValueError(f"{name} step {step!r} is not a positive number")
        if base == "*":
            continue
        start, _, end = base.partition("-")
        for bound in (start, end) if end else (start,):
            if not bound.isdigit():
                raise ValueError(f"{name} value {bound!r} is not a number")
            if not low <= int(bound) <= high:
                raise ValueError(f"{name} value {bound} is outside {low}-{high}")
        if end and int(start) > int(end):
            raise ValueError(f"{name} range {base!r} runs backwards")


def check_cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(f"{value!r} is not a 5-field cron expression (minute hour day month weekday)")
    for text, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        _check_cron_field(text, name, low, high)
    return " ".join(fields)


def check_cycle(value: object) -> str:
    """A plan's cycle: a 5-field cron expression or an interval such as ``6h30m``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("cycle must be a cron expression or an interval such as 6h30m")
    text = value.strip()
    if " " in text:
        return check_cron(text)
    try:
        interval = parse_duration(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a 5-field cron expression nor an interval such as 6h30m"
        ) from None
    if interval < timedelta(minutes=1):
        raise ValueError(f"interval {text!r} is shorter than one minute")
    return text


# Five space-separated cron fields, or an interval; the field ranges are checked by check_cycle.
CYCLE_PATTERN = r"^([0-9*,/-]+( [0-9*,/-]+){4}|([0-9]+(d|h|ms|m|s))+)$"

Cycle = Annotated[
    str,
    BeforeValidator(check_cycle),
    WithJsonSchema({"type": "string", "pattern": CYCLE_PATTERN}),
]


def is_cron(cycle: str) -> bool:
    return " " in cycle.strip()


def describe_validation_error(source: str, err: ValidationError, *, what: str = "field") -> str:
    """One line naming the field and the value at fault (the first error of a pydantic error)."""
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(root)"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown {what} {field!r}"
    msg = first["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return f"{source}: {field}: {msg} (got {first.get('input')!r})"
