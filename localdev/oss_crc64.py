"""CRC-64/ECMA-182 as OSS computes it (``x-oss-hash-crc64ecma``), and combining CRCs of parts.

OSS uses the reflected ECMA-182 polynomial with all-ones initial value and final xor (the variant
also called CRC-64/XZ; check value of b"123456789" is 0x995DC9BBDF1939FA).  The byte-wise work is
done by crcmod's C extension (a dependency of oss2); the part combination for multipart uploads is
the GF(2) matrix method zlib uses for crc32_combine, so completing an upload never re-reads data.
"""

from __future__ import annotations

import threading

import crcmod

_POLY = 0x142F0E1EBA9EA3693  # x^64 + ECMA-182 polynomial, as crcmod wants it
_REFLECTED_POLY = 0xC96C5795D7870F42
_MASK = (1 << 64) - 1

_crc_fun = crcmod.mkCrcFun(_POLY, initCrc=0, rev=True, xorOut=_MASK)


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC of ``data``; pass the CRC of preceding bytes as ``crc`` to continue a running CRC."""
    return int(_crc_fun(data, crc))


def _times(matrix: list[int], vector: int) -> int:
    total = 0
    row = 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _square(matrix: list[int]) -> list[int]:
    return [_times(matrix, matrix[n]) for n in range(64)]


# _zero_ops[k] advances a CRC register over 2**k zero bytes.  Built once, lazily: 64 squarings.
_zero_ops: list[list[int]] = []
_ops_lock = threading.Lock()


def _operators() -> list[list[int]]:
    with _ops_lock:
        if not _zero_ops:
            one_bit = [_REFLECTED_POLY] + [1 << n for n in range(63)]
            op = one_bit
            for _ in range(3):  # 1 bit -> 8 bits = one zero byte
                op = _square(op)
            for _ in range(64):
                _zero_ops.append(op)
                op = _square(op)
        return _zero_ops


def crc64_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC of A+B from crc(A), crc(B) and len(B)."""
    if len2 <= 0:
        return crc1
    ops = _operators()
    k = 0
    while len2:
        if len2 & 1:
            crc1 = _times(ops[k], crc1)
        len2 >>= 1
        k += 1
    return (crc1 ^ crc2) & _MASK
