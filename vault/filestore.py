"""The ``file://`` vault backend: objects as files under one directory.

Layout: key ``a/b/c`` is the file ``<root>/a/b/c%o``.  Path segments are the key's segments with
``%`` written as ``%25``; object files end in ``%o``, which no escaped segment can end in, so an
object ``a`` and objects under ``a/`` live side by side (``a%o`` and directory ``a``) exactly as in
a bucket.  Temporary files live in ``<root>/%tmp`` (no key maps there).

Each file holds the object's bytes followed by a footer: one 16-byte BLAKE3 digest per 256 KiB
block, then a fixed trailer (magic, block size, length, BLAKE3 of the digest table).  A read
verifies exactly the blocks it returns, so a ranged read of a large pack costs at most two blocks
of extra reading, and a flipped bit always raises ObjectCorrupt.  The ETag is derived from the
digest table: equal bytes give equal ETags.

Writes go to a temporary file under ``<root>/%tmp``, are fsynced, and become visible with
``os.replace`` (overwrite) or ``os.link`` (put-if-absent: the link fails when the name exists, so of
two writers exactly one wins).  Readers see a whole old object or a whole new one, never a mix.
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
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import blake3

from vault.store import (
    InvalidKey,
    InvalidRange,
    ObjectCorrupt,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectStoreError,
    StoreUnavailable,
    check_key,
)

BLOCK_SIZE = 256 * 1024
_DIGEST_LEN = 16
_MAGIC = b"BCVAULT1"
# magic, block size, reserved, data length, BLAKE3 of (block size, length, digest table)
_TRAILER = struct.Struct("<8sIIQ32s")
_TABLE_HEADER = struct.Struct("<IQ")
# Large enough that syscall and per-call Python overhead vanish; a multiple of BLOCK_SIZE so only
# the last buffer of an object holds a partial block.
_IO_SIZE = 32 * BLOCK_SIZE
_COPY_SIZE = 128 * BLOCK_SIZE  # per in-kernel copy step; whole blocks, page-aligned offsets
_FLUSH_EVERY = 64 * 1024 * 1024
_NO_COPY_FILE_RANGE = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF})
TMP_DIR = "%tmp"
_OBJECT_SUFFIX = "%o"  # '%' in a segment is always escaped to "%25", so no escaped segment ends so
_MAX_SEGMENT = 255 - len(_OBJECT_SUFFIX)  # bytes; file systems' name limit


def _encode(segment: str) -> str:
    return segment.replace("%", "%25")


def _decode(name: str) -> str:
    return name.replace("%25", "%")


def _table_digest(block_size: int, length: int, table: bytes) -> bytes:
    return blake3.blake3(_TABLE_HEADER.pack(block_size, length) + table).digest()


def _block_digest(block: memoryview | bytes) -> bytes:
    return blake3.blake3(block).digest(length=_DIGEST_LEN)


@dataclass(frozen=True)
class _Footer:
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


def _read_footer(fd: int, key: str) -> _Footer:
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
    return _Footer(block_size, length, table, tree)


def _resolve_range(key: str, length: int, start: int | None, end: int | None) -> tuple[int, int]:
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


class _Background:
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


class _BlockWriter:
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
        hasher = _Background(lambda item: self._hash_range(*item))
        copied = 0
        try:
            while not hasher.failed:
                chunk = 0
                while chunk < _COPY_SIZE:
                    try:
                        n = os.copy_file_range(src_fd, self.fd, _COPY_SIZE - chunk, offset + copied + chunk,
                                               self.length + chunk)
                    except OSError as err:
                        if copied + chunk == 0 and err.errno in _NO_COPY_FILE_RANGE:
                            return None  # e.g. across file systems on an old kernel: read and write
                        raise _blame(err, src_fd, offset + copied + chunk) from err
                    if n == 0:
                        break
                    chunk += n
                if chunk:
                    hasher.submit((self.length, chunk))
                    self._advance(chunk)
                    copied += chunk
                if chunk < _COPY_SIZE:
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


class _SourceFailed(Exception):
    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _blame(err: OSError, src_fd: int, offset: int) -> OSError | _SourceFailed:
    """An in-kernel copy failed: if the source cannot be read there either, it is the source's fault."""
    try:
        os.pread(src_fd, 1, offset)
    except OSError:
        return _SourceFailed(err)
    return err


def _regular_file(stream: BinaryIO) -> int | None:
    """The descriptor of a stream that is a seekable regular file (eligible for in-kernel copy)."""
    try:
        fd = stream.fileno()
        if not stream.seekable() or not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return fd
    except (AttributeError, OSError, ValueError):
        return None


def _source(chunks: Iterable[memoryview]) -> Iterator[memoryview]:
    """Tell errors of reading the caller's stream apart from errors of writing the store."""
    it = iter(chunks)
    while True:
        try:
            chunk = next(it)
        except StopIteration:
            return
        except OSError as err:
            raise _SourceFailed(err) from err
        yield chunk


def _read_full(stream: BinaryIO, buf: memoryview) -> int:
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


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore:
    """An ObjectStore over a local (or mounted) directory."""

    def __init__(self, root: str | Path, *, create: bool = False) -> None:
        self.root = Path(root)
        if not self.root.is_absolute():
            raise ValueError(f"file store root must be an absolute path, got {str(root)!r}")
        self.url = "file://" + quote(str(self.root))
        self._tmp = self.root / TMP_DIR
        if create:
            self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    # --- paths --------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        segments = [_encode(s) for s in check_key(key).split("/")]
        if any(len(s.encode()) > _MAX_SEGMENT for s in segments):
            raise InvalidKey(f"a path segment is longer than the file store's {_MAX_SEGMENT} bytes", key=key)
        segments[-1] += _OBJECT_SUFFIX
        return self.root.joinpath(*segments)

    def _open(self, key: str) -> int:
        path = self._path(key)
        try:
            return os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key}", key=key) from None
        except OSError as err:
            raise self._os_error(err, key) from err

    def _os_error(self, err: OSError, key: str | None) -> ObjectStoreError:
        if not self.root.is_dir():
            return StoreUnavailable(f"directory {self.root} does not exist")
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return ObjectStoreError(f"permission denied on {err.filename or self.root}", key=key)
        if err.errno == errno.ENOSPC:
            return ObjectStoreError(f"no space left on the file system of {self.root}", key=key)
        return ObjectStoreError(f"{err.strerror or err}", key=key)

    # --- writes -------------------------------------------------------------------------------
    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> ObjectInfo:
        view = memoryview(data)

        def fill(writer: _BlockWriter) -> None:
            for i in range(0, len(view), _IO_SIZE):
                writer.write(view[i : i + _IO_SIZE])

        return self._write(key, fill, if_absent)

    def put_stream(self, key: str, stream: BinaryIO, *, size: int | None = None,
                   if_absent: bool = False) -> ObjectInfo:
        def check_size(total: int) -> None:
            if size is not None and total > size:
                raise ObjectStoreError(f"stream is longer than the declared {size} bytes", key=key)

        def chunks() -> Iterator[memoryview]:
            buf = memoryview(bytearray(_IO_SIZE))
            total = 0
            while True:
                n = _read_full(stream, buf)
                total += n
                check_size(total)
                if n:
                    yield buf[:n]
                if n < len(buf):
                    return

        def fill(writer: _BlockWriter) -> None:
            copied: int | None = None
            source = _regular_file(stream)
            if source is not None:
                start = stream.tell()
                copied = writer.copy_file(source, start)
                if copied is not None:
                    stream.seek(start + copied)  # consumed, as if it had been read
            if copied is None:
                for chunk in _source(chunks()):
                    writer.write(chunk)
            check_size(writer.length)
            if size is not None and writer.length != size:
                raise ObjectStoreError(f"stream ended after {writer.length} of {size} bytes", key=key)

        return self._write(key, fill, if_absent)

    def _write(self, key: str, fill: Callable[[_BlockWriter], None], if_absent: bool) -> ObjectInfo:
        final = self._path(key)
        if if_absent and final.is_file():
            # Cheap early answer; the link below is what actually decides a race.
            raise ObjectExists(f"object {key} already exists", key=key)
        try:
            self._tmp.mkdir(exist_ok=True)
        except FileNotFoundError:
            raise StoreUnavailable(f"directory {self.root} does not exist") from None
        except OSError as err:
            raise self._os_error(err, key) from err
        tmp = self._tmp / f"{uuid.uuid4().hex}.tmp"
        try:
            # Read-write: the in-kernel copy path hashes the file through a read-only mapping.
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            writer = _BlockWriter(fd)
            try:
                fill(writer)
                etag = writer.finish()
                # link and replace keep the inode, so this is the published object's mtime.
                mtime = os.fstat(fd).st_mtime
            finally:
                writer.abandon()
                os.close(fd)
            self._publish(tmp, final, key, if_absent)
            return ObjectInfo(key=key, size=writer.length, etag=etag, last_modified=mtime)
        except _SourceFailed as failed:
            raise failed.error from None  # the caller's stream failed, not the store
        except OSError as err:
            raise self._os_error(err, key) from err
        finally:
            tmp.unlink(missing_ok=True)

    def _publish(self, tmp: Path, final: Path, key: str, if_absent: bool) -> None:
        # Only foreign files or directories in the vault's directory can be in the way.
        in_the_way = ObjectStoreError(f"object {key}: a foreign file or directory is in the way", key=key)
        for _ in range(10):
            try:
                final.parent.mkdir(parents=True, exist_ok=True)
                if if_absent:
                    os.link(tmp, final)
                else:
                    os.replace(tmp, final)
            except FileNotFoundError:
                continue  # a concurrent delete pruned the parent directory just now: make it again
            except FileExistsError:
                if if_absent and final.is_file():
                    raise ObjectExists(f"object {key} already exists", key=key) from None
                raise in_the_way from None
            except (NotADirectoryError, IsADirectoryError):
                raise in_the_way from None
            _fsync_dir(final.parent)
            return
        raise ObjectStoreError(f"object {key}: its directory kept disappearing while writing", key=key)

    # --- reads --------------------------------------------------------------------------------
    def get(self, key: str, *, start: int | None = None, end: int | None = None) -> bytes:
        fd = self._open(key)
        try:
            footer = _read_footer(fd, key)
            first, last = _resolve_range(key, footer.length, start, end)
            if last < first:
                return b""
            bs = footer.block_size
            first_block = first // bs
            block_start = first_block * bs
            block_end = min((last // bs + 1) * bs, footer.length)
            raw = os.pread(fd, block_end - block_start, block_start)
            if len(raw) != block_end - block_start:
                raise ObjectCorrupt("file is shorter than its footer says", key=key)
            view = memoryview(raw)
            footer.verify(key, first_block, view)
            if first == block_start and last + 1 == block_end:
                return raw
            return bytes(view[first - block_start : last + 1 - block_start])
        finally:
            os.close(fd)

    def get_stream(self, key: str, out: BinaryIO) -> int:
        fd = self._open(key)
        try:
            footer = _read_footer(fd, key)
            out_fd = _regular_file(out) if out.writable() else None
            if out_fd is not None and self._copy_out(key, fd, footer, out, out_fd):
                return footer.length
            # Reads are block-aligned, so each buffer holds whole blocks (the last may be short).
            step = max(footer.block_size, _IO_SIZE - _IO_SIZE % footer.block_size)
            buf = memoryview(bytearray(step))
            offset = 0
            while offset < footer.length:
                want = min(step, footer.length - offset)
                n = os.preadv(fd, [buf[:want]], offset)
                if n != want:
                    raise ObjectCorrupt("file is shorter than its footer says", key=key)
                footer.verify(key, offset // footer.block_size, buf[:want])
                out.write(buf[:want])
                offset += want
            return footer.length
        finally:
            os.close(fd)

    def _copy_out(self, key: str, fd: int, footer: _Footer, out: BinaryIO, out_fd: int) -> bool:
        """In-kernel copy into a regular file, verifying each chunk in the page cache meanwhile.

        False: the kernel cannot copy between these files (nothing was written).  On corruption
        ``out`` holds unverified bytes: the caller discards it, as the interface says.
        """
        bs = footer.block_size
        if bs % mmap.ALLOCATIONGRANULARITY:
            return False
        step = max(bs, _COPY_SIZE - _COPY_SIZE % bs)
        out.flush()
        base = out.tell()

        def verify(item: tuple[int, int]) -> None:
            offset, length = item
            with mmap.mmap(fd, length, offset=offset, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    footer.verify(key, offset // bs, view)
                finally:
                    view.release()

        verifier = _Background(verify)
        offset = 0
        try:
            while offset < footer.length and not verifier.failed:
                want = min(step, footer.length - offset)
                done = 0
                while done < want:
                    try:
                        n = os.copy_file_range(fd, out_fd, want - done, offset + done, base + offset + done)
                    except OSError as err:
                        if offset + done == 0 and err.errno in _NO_COPY_FILE_RANGE:
                            return False
                        raise
                    if n == 0:
                        raise ObjectCorrupt("file is shorter than its footer says", key=key)
                    done += n
                verifier.submit((offset, want))
                offset += want
        finally:
            verifier.close()
        out.seek(base + footer.length)
        return True

    def head(self, key: str) -> ObjectInfo:
        fd = self._open(key)
        try:
            footer = _read_footer(fd, key)
            return ObjectInfo(key=key, size=footer.length, etag=footer.etag,
                              last_modified=os.fstat(fd).st_mtime)
        finally:
            os.close(fd)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    # --- listing ------------------------------------------------------------------------------
    def list(self, prefix: str = "", *, delimiter: str | None = None,
             page_size: int = 1000) -> Iterator[ObjectInfo | str]:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        # Walk from the deepest directory the prefix names completely; its last partial segment
        # filters that directory's entries.
        base, _, partial = prefix.rpartition("/")
        start_dir = self.root.joinpath(*(_encode(s) for s in base.split("/"))) if base else self.root
        key_base = f"{base}/" if base else ""
        last_prefix: str | None = None
        for key, is_dir in self._walk(start_dir, key_base, partial, descend=delimiter != "/"):
            if is_dir:  # only with delimiter "/": a directory with objects is one common prefix
                yield key
                continue
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    if common != last_prefix:
                        last_prefix = common
                        yield common
                    continue
            try:
                yield self.head(key)
            except ObjectNotFound:
                continue  # deleted while we listed

    def _walk(self, directory: Path, key_base: str, name_prefix: str,
              descend: bool) -> Iterator[tuple[str, bool]]:
        """(key, is_common_prefix) in key order below ``directory``."""
        entries: list[tuple[str, str, bool]] = []  # (key segment, file name, is a directory)
        try:
            with os.scandir(directory) as it:
                for e in it:
                    is_dir = e.is_dir(follow_symlinks=False)
                    if is_dir and e.name != TMP_DIR:
                        entries.append((_decode(e.name), e.name, True))
                    elif not is_dir and e.name.endswith(_OBJECT_SUFFIX):
                        entries.append((_decode(e.name[: -len(_OBJECT_SUFFIX)]), e.name, False))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as err:
            raise self._os_error(err, None) from err
        # Everything under directory "x" has keys starting "x/", so sorting directories as "x/"
        # interleaves them with objects exactly as the full keys sort.
        entries.sort(key=lambda e: e[0] + "/" if e[2] else e[0])
        for segment, name, is_dir in entries:
            if not segment.startswith(name_prefix):
                continue
            key = key_base + segment
            if not is_dir:
                yield key, False
            elif descend:
                yield from self._walk(directory / name, key + "/", "", descend)
            elif self._holds_objects(directory / name):
                yield key + "/", True

    def _holds_objects(self, directory: Path) -> bool:
        # Deletes prune empty directories, but a crash between unlink and prune can leave some.
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        if self._holds_objects(Path(entry.path)):
                            return True
                    elif entry.name.endswith(_OBJECT_SUFFIX):
                        return True
        except OSError:
            return False
        return False

    # --- deletes and upkeep -------------------------------------------------------------------
    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as err:
            raise self._os_error(err, key) from err
        parent = path.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break  # not empty (or gone): stop pruning
            parent = parent.parent

    def check(self) -> None:
        if not self.root.is_dir():
            raise StoreUnavailable(f"directory {self.root} does not exist")
        try:
            self._tmp.mkdir(exist_ok=True)
            probe = self._tmp / f"check-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise StoreUnavailable(f"directory {self.root} is not writable: {err.strerror or err}") from err

    def storage_class(self) -> str:
        return "Standard"

    def cleanup_incomplete_uploads(self, older_than: float = 3600.0) -> int:
        """Remove temporary files of writers that died mid-upload; returns how many."""
        removed = 0
        cutoff = time.time() - older_than
        try:
            entries = list(os.scandir(self._tmp))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
