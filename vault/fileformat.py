"""The on-disk format of ``file://`` vault objects (vault/filestore.py is the store built on it).

Each file holds the object's bytes followed by a footer: one 16-byte BLAKE3 digest per 256 KiB
block, then a fixed trailer (magic, block size, length, BLAKE3 of the digest table).  A read
verifies exactly the blocks it returns, so a ranged read of a large pack costs at most two blocks
of extra reading, and a flipped bit always raises ObjectCorrupt.  Key segments map to file names
with ``%`` escaped as ``%25`` and object files ending in ``%o`` (see encode_segment).

Also here: the block writer (digests computed and data flushed in the background while a stream is
copied in, in-kernel copies from regular files) and the small I/O helpers it needs.
"""


from __future__ import annotations

import contextlib
import errno
import mmap
import os
import queue
import stat
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import blake3

from vault.store import (
    InvalidRange,
    ObjectCorrupt,
)

BLOCK_SIZE = 256 * 1024
_DIGEST_LEN = 16
_MAGIC = b"BCVAULT1"
# magic, block size, reserved, data length, BLAKE3 of (block size, length, digest table)
_TRAILER = struct.Struct("<8sIIQ32s")
_TABLE_HEADER = struct.Struct("<IQ")
# Large enough that syscall and per-call Python overhead vanish; a multiple of BLOCK_SIZE so only
# the last buffer of an object holds a partial block.
IO_SIZE = 32 * BLOCK_SIZE
COPY_SIZE = 128 * BLOCK_SIZE  # per in-kernel copy step; whole blocks, page-aligned offsets
_FLUSH_EVERY = 64 * 1024 * 1024
NO_COPY_FILE_RANGE = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF})
TMP_DIR = "%tmp"
OBJECT_SUFFIX = "%o"  # '%' in a segment is always escaped to "%25", so no escaped segment ends so
MAX_SEGMENT = 255 - len(OBJECT_SUFFIX)  # bytes; file systems' name limit


def encode_segment(segment: str) -> str:
    return segment.replace("%", "%25")


def decode_segment(name: str) -> str:
    return name.replace("%25", "%")


def _table_digest(block_size: int, length: int, table: bytes) -> bytes:
    return blake3.blake3(_TABLE_HEADER.pack(block_size, length) + table).digest()


def _block_digest(block: memoryview | bytes) -> bytes:
    return blake3.blake3(block).digest(length=_DIGEST_LEN)


@dataclass(frozen=True)
class Footer:
    block_size: int
    length: int
    table: bytes
    tree: bytes

    @property
    def etag(self) -> str:
        return self.tree[:16].hex()

    def verify(self, key: str, first_block: int, data: memoryview) -> None:
        """Check ``data`` (whole blocks from ``first_block``, the last one possibly short)."""
        bs = self.block_size
        for i in range(0, len(data), bs):
            n = first_block + i // bs
            if _block_digest(data[i : i + bs]) != self.table[n * _DIGEST_LEN : (n + 1) * _DIGEST_LEN]:
                raise ObjectCorrupt(
                    f"block {n} (bytes {n * bs}-{min((n + 1) * bs, self.length) - 1}) does not match "
                    "its checksum",
                    key=key,
                )


def read_footer(fd: int, key: str) -> Footer:
    file_size = os.fstat(fd).st_size
    if file_size < _TRAILER.size:
        raise ObjectCorrupt("file is shorter than its checksum footer", key=key)
    magic, block_size, _, length, tree = _TRAILER.unpack(
        os.pread(fd, _TRAILER.size, file_size - _TRAILER.size)
    )
    if magic != _MAGIC or block_size == 0:
        raise ObjectCorrupt("checksum footer is missing or damaged", key=key)
    blocks = -(-length // block_size)
    if length + blocks * _DIGEST_LEN + _TRAILER.size != file_size:
        raise ObjectCorrupt("file size does not match its footer (truncated or appended to)", key=key)
    table = os.pread(fd, blocks * _DIGEST_LEN, length)
    if _table_digest(block_size, length, table) != tree:
        raise ObjectCorrupt("checksum table is damaged", key=key)
    return Footer(block_size, length, table, tree)


def resolve_range(key: str, length: int, start: int | None, end: int | None) -> tuple[int, int]:
    """Inclusive [first, last] of a read; last < first means the empty object read whole."""
    if start is None and end is None:
        return 0, length - 1
    first = 0 if start is None else start
    last = length - 1 if end is None else min(end, length - 1)
    if first < 0 or (end is not None and end < first):
        raise InvalidRange(f"invalid byte range {start}-{end}", key=key)
    if first >= length:
        raise InvalidRange(f"range starts at {first} but the object has {length} bytes", key=key)
    return first, last


class Background:
    """Runs ``work(item)`` for each submitted item, in order, on one helper thread.

    Used to hash or verify chunk k while the caller copies chunk k+1 in the kernel (the copy
    releases the interpreter lock, hashing does not).
    """

    def __init__(self, work: Callable[[tuple[int, int]], None]) -> None:
        self._work = work
        self._items: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        self._failures: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="vault-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._items.get()) is not None:
            if not self._failures:
                try:
                    self._work(item)
                except BaseException as err:  # handed to the submitting thread by close()
                    self._failures.append(err)

    @property
    def failed(self) -> bool:
        return bool(self._failures)

    def submit(self, item: tuple[int, int]) -> None:
        self._items.put(item)

    def close(self) -> None:
        self._items.put(None)
        self._thread.join()
        if self._failures:
            raise self._failures[0]


class _Flusher:
    """Background fdatasync every _FLUSH_EVERY bytes written.

    The disk then writes while we copy, and the final fsync finds little left: a durable write
    costs about what ``cp`` + ``sync`` does instead of copy time plus flush time.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._wake = threading.Event()
        self._stopping = False
        self._error: OSError | None = None
        self._thread: threading.Thread | None = None

    def kick(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="vault-flush", daemon=True)
            self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                os.fdatasync(self.fd)
            except OSError as err:
                self._error = err  # reported by close(): a later fsync on this fd may not repeat it
                return

    def close(self) -> None:
        if self._thread is not None:
            self._stopping = True
            self._wake.set()
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error


class BlockWriter:
    """Writes object bytes to a file while hashing each block; finishes with the footer."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.length = 0
        self.digests: list[bytes] = []
        self._flusher = _Flusher(fd)
        self._unflushed = 0

    def _hash(self, data: memoryview) -> None:
        # Callers hand over whole blocks except at the very end, so blocks never straddle calls.
        if self.length % BLOCK_SIZE:
            raise AssertionError("a partial block was followed by more data")
        for i in range(0, len(data), BLOCK_SIZE):
            self.digests.append(_block_digest(data[i : i + BLOCK_SIZE]))

    def _advance(self, n: int) -> None:
        self.length += n
        self._unflushed += n
        if self._unflushed >= _FLUSH_EVERY:
            self._unflushed = 0
            self._flusher.kick()

    def write(self, data: memoryview) -> None:
        self._hash(data)
        self._put_at(data, self.length)
        self._advance(len(data))

    def _put_at(self, data: memoryview | bytes, offset: int) -> None:
        # Positional writes: the in-kernel copy does not move the file offset.
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.pwrite(self.fd, view[written:], offset + written)

    def copy_file(self, src_fd: int, offset: int) -> int | None:
        """Copy a regular file from ``offset`` to its end inside the kernel (no trip through Python
        buffers), hashing the bytes as they landed in our file (not the source, which may change
        meanwhile).  None: not possible here.
        """
        hasher = Background(lambda item: self._hash_range(*item))
        copied = 0
        try:
            while not hasher.failed:
                chunk = 0
                while chunk < COPY_SIZE:
                    try:
                        n = os.copy_file_range(src_fd, self.fd, COPY_SIZE - chunk, offset + copied + chunk,
                                               self.length + chunk)
                    except OSError as err:
                        if copied + chunk == 0 and err.errno in NO_COPY_FILE_RANGE:
                            return None  # e.g. across file systems on an old kernel: read and write
                        raise _blame(err, src_fd, offset + copied + chunk) from err
                    if n == 0:
                        break
                    chunk += n
                if chunk:
                    hasher.submit((self.length, chunk))
                    self._advance(chunk)
                    copied += chunk
                if chunk < COPY_SIZE:
                    break
        finally:
            hasher.close()
        return copied

    def _hash_range(self, offset: int, length: int) -> None:
        with mmap.mmap(self.fd, length, offset=offset, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                for i in range(0, length, BLOCK_SIZE):
                    self.digests.append(_block_digest(view[i : i + BLOCK_SIZE]))
            finally:
                view.release()

    def finish(self) -> str:
        table = b"".join(self.digests)
        tree = _table_digest(BLOCK_SIZE, self.length, table)
        self._put_at(table + _TRAILER.pack(_MAGIC, BLOCK_SIZE, 0, self.length, tree), self.length)
        self._flusher.close()
        os.fsync(self.fd)
        return tree[:16].hex()

    def abandon(self) -> None:
        with contextlib.suppress(OSError):
            self._flusher.close()


class SourceFailed(Exception):
    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _blame(err: OSError, src_fd: int, offset: int) -> OSError | SourceFailed:
    """An in-kernel copy failed: if the source cannot be read there either, it is the source's fault."""
    try:
        os.pread(src_fd, 1, offset)
    except OSError:
        return SourceFailed(err)
    return err


def regular_file(stream: BinaryIO) -> int | None:
    """The descriptor of a stream that is a seekable regular file (eligible for in-kernel copy)."""
    try:
        fd = stream.fileno()
        if not stream.seekable() or not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return fd
    except (AttributeError, OSError, ValueError):
        return None


def source_chunks(chunks: Iterable[memoryview]) -> Iterator[memoryview]:
    """Tell errors of reading the caller's stream apart from errors of writing the store."""
    it = iter(chunks)
    while True:
        try:
            chunk = next(it)
        except StopIteration:
            return
        except OSError as err:
            raise SourceFailed(err) from err
        yield chunk


def read_full(stream: BinaryIO, buf: memoryview) -> int:
    """Fill ``buf`` from ``stream`` unless it ends first; returns the bytes read."""
    filled = 0
    readinto = getattr(stream, "readinto", None)
    while filled < len(buf):
        if readinto is not None:
            n = readinto(buf[filled:])
        else:
            chunk = stream.read(len(buf) - filled)
            n = len(chunk) if chunk else 0
            buf[filled : filled + n] = chunk
        if not n:
            break
        filled += n
    return filled


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
