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

import errno
import fcntl
import mmap
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from vault.fileformat import (  # noqa: F401 (BLOCK_SIZE, TMP_DIR: part of this store's interface)
    BLOCK_SIZE,
    COPY_SIZE,
    IO_SIZE,
    MAX_SEGMENT,
    NO_COPY_FILE_RANGE,
    OBJECT_SUFFIX,
    TMP_DIR,
    Background,
    BlockWriter,
    Footer,
    SourceFailed,
    decode_segment,
    encode_segment,
    fsync_dir,
    read_footer,
    read_full,
    regular_file,
    resolve_range,
    source_chunks,
)
from vault.store import (
    InvalidKey,
    ObjectCorrupt,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectStoreError,
    StoreUnavailable,
    check_key,
)

# A temporary file this old that no writer holds locked is a dead writer's.
DEAD_WRITER_SECONDS = 60.0


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
        segments = [encode_segment(s) for s in check_key(key).split("/")]
        if any(len(s.encode()) > MAX_SEGMENT for s in segments):
            raise InvalidKey(f"a path segment is longer than the file store's {MAX_SEGMENT} bytes", key=key)
        segments[-1] += OBJECT_SUFFIX
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

        def fill(writer: BlockWriter) -> None:
            for i in range(0, len(view), IO_SIZE):
                writer.write(view[i : i + IO_SIZE])

        return self._write(key, fill, if_absent)

    def put_stream(self, key: str, stream: BinaryIO, *, size: int | None = None,
                   if_absent: bool = False) -> ObjectInfo:
        def check_size(total: int) -> None:
            if size is not None and total > size:
                raise ObjectStoreError(f"stream is longer than the declared {size} bytes", key=key)

        def chunks() -> Iterator[memoryview]:
            buf = memoryview(bytearray(IO_SIZE))
            total = 0
            while True:
                n = read_full(stream, buf)
                total += n
                check_size(total)
                if n:
                    yield buf[:n]
                if n < len(buf):
                    return

        def fill(writer: BlockWriter) -> None:
            copied: int | None = None
            source = regular_file(stream)
            if source is not None:
                start = stream.tell()
                copied = writer.copy_file(source, start)
                if copied is not None:
                    stream.seek(start + copied)  # consumed, as if it had been read
            if copied is None:
                for chunk in source_chunks(chunks()):
                    writer.write(chunk)
            check_size(writer.length)
            if size is not None and writer.length != size:
                raise ObjectStoreError(f"stream ended after {writer.length} of {size} bytes", key=key)

        return self._write(key, fill, if_absent)

    def _write(self, key: str, fill: Callable[[BlockWriter], None], if_absent: bool) -> ObjectInfo:
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
            try:
                # Held until the file is published or removed: a temporary file nobody holds
                # locked belongs to a writer that died (cleanup_incomplete_uploads).
                fcntl.flock(fd, fcntl.LOCK_EX)
                writer = BlockWriter(fd)
                try:
                    fill(writer)
                    etag = writer.finish()
                    # link and replace keep the inode, so this is the published object's mtime.
                    mtime = os.fstat(fd).st_mtime
                finally:
                    writer.abandon()
                self._publish(tmp, final, key, if_absent)
            finally:
                os.close(fd)
            return ObjectInfo(key=key, size=writer.length, etag=etag, last_modified=mtime)
        except SourceFailed as failed:
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
            fsync_dir(final.parent)
            return
        raise ObjectStoreError(f"object {key}: its directory kept disappearing while writing", key=key)

    # --- reads --------------------------------------------------------------------------------
    def get(self, key: str, *, start: int | None = None, end: int | None = None) -> bytes:
        fd = self._open(key)
        try:
            footer = read_footer(fd, key)
            first, last = resolve_range(key, footer.length, start, end)
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
            footer = read_footer(fd, key)
            out_fd = regular_file(out) if out.writable() else None
            if out_fd is not None and self._copy_out(key, fd, footer, out, out_fd):
                return footer.length
            # Reads are block-aligned, so each buffer holds whole blocks (the last may be short).
            step = max(footer.block_size, IO_SIZE - IO_SIZE % footer.block_size)
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

    def _copy_out(self, key: str, fd: int, footer: Footer, out: BinaryIO, out_fd: int) -> bool:
        """In-kernel copy into a regular file, verifying each chunk in the page cache meanwhile.

        False: the kernel cannot copy between these files (nothing was written).  On corruption
        ``out`` holds unverified bytes: the caller discards it, as the interface says.
        """
        bs = footer.block_size
        if bs % mmap.ALLOCATIONGRANULARITY:
            return False
        step = max(bs, COPY_SIZE - COPY_SIZE % bs)
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

        verifier = Background(verify)
        offset = 0
        try:
            while offset < footer.length and not verifier.failed:
                want = min(step, footer.length - offset)
                done = 0
                while done < want:
                    try:
                        n = os.copy_file_range(fd, out_fd, want - done, offset + done, base + offset + done)
                    except OSError as err:
                        if offset + done == 0 and err.errno in NO_COPY_FILE_RANGE:
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
            footer = read_footer(fd, key)
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
        start_dir = self.root.joinpath(*(encode_segment(s) for s in base.split("/"))) if base else self.root
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
                        entries.append((decode_segment(e.name), e.name, True))
                    elif not is_dir and e.name.endswith(OBJECT_SUFFIX):
                        entries.append((decode_segment(e.name[: -len(OBJECT_SUFFIX)]), e.name, False))
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
                    elif entry.name.endswith(OBJECT_SUFFIX):
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

    def cleanup_incomplete_uploads(self, older_than: float = 3600.0,
                                   unlocked_after: float = DEAD_WRITER_SECONDS) -> int:
        """Remove temporary files of writers that died mid-upload; returns how many.

        A live writer holds its file locked (flock), and the lock goes with the process: a file
        nobody holds is removed once ``unlocked_after`` seconds old (the margin covers the moment
        between creating and locking it), any file once ``older_than`` (where locks do not work)."""
        removed = 0
        now = time.time()
        try:
            entries = list(os.scandir(self._tmp))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                age = now - entry.stat(follow_symlinks=False).st_mtime
                if age >= older_than or (age >= unlocked_after and not _locked(entry.path)):
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _locked(path: str) -> bool:
    """Whether a live writer holds the file (its flock); False when it is free to remove."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError:
        return True  # cannot tell: leave it to the age rule
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
