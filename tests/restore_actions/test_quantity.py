from decimal import Decimal

import pytest

from kube.restore.quantity import GIB, format_gib, parse_quantity, quantity_bytes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20Gi", 20 * GIB),
        ("1Ki", 1024),
        ("1Mi", 2**20),
        ("1Ti", 2**40),
        ("2Pi", 2 * 2**50),
        ("1Ei", 2**60),
        ("1k", 1000),
        ("1M", 10**6),
        ("1G", 10**9),
        ("1T", 10**12),
        ("21474836480", 20 * GIB),  # plain bytes
        ("1.5Gi", 3 * 2**29),  # decimals, exactly
        ("0.5Gi", 2**29),
        (".5Gi", 2**29),
        ("5.", 5),
        ("1e9", 10**9),
        ("1E3", 1000),
        ("2.5e+3", 2500),
        ("+3Mi", 3 * 2**20),
        (" 10Gi ", 10 * GIB),
        ("0", 0),
    ],
)
def test_parses_quantities_to_exact_bytes(text: str, expected: int) -> None:
    assert parse_quantity(text) == expected


def test_fractions_of_a_byte_round_up() -> None:
    assert parse_quantity("1500m") == Decimal("1.5")
    assert quantity_bytes("1500m") == 2
    assert quantity_bytes("1.1") == 2
    assert quantity_bytes("100n") == 1


def test_json_numbers_are_quantities() -> None:
    assert quantity_bytes(1024) == 1024
    assert quantity_bytes(1.5) == 2


def test_negative_quantities_parse() -> None:
    assert parse_quantity("-1Gi") == -GIB


@pytest.mark.parametrize("text", ["", "Gi", "10GB", "10gi", "10 Gi", "1.2.3", "ten", "1e", "10Ki5", "--1"])
def test_rejects_what_is_not_a_quantity(text: str) -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(text)


def test_rejects_booleans() -> None:
    with pytest.raises(ValueError):
        parse_quantity(True)


def test_formats_whole_gib() -> None:
    assert format_gib(20 * GIB) == "20Gi"
    assert format_gib(GIB + 1) == str(GIB + 1)
