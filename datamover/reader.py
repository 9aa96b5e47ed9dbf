"""Reading files for a backup, in worker threads.

Each file is opened without following symlinks (and without blocking, should a FIFO have taken
its place), checked with fstat before and after reading, cut into chunks by FastCDC (files up to
the minimum chunk size are one chunk, read whole), hashed with blake3 and handed to the PackSink.
Whatever goes wrong is recorded on the job (vanished, unreadable, changed), never raised, so one
bad file does not stop the volume; store failures from the sink do propagate.
"""

from __future__ import annotations

import errno
import io
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from stat import S_IMODE, S_ISREG
from typing import Any, Protocol

import zstandard
from pyfastcdc import FastCDC

from .crypto import Crypto
from .models import PathErrorReason
from .packs import encode_blob
from .repo import ChunkerParams

_O_NOATIME = getattr(os, "O_NOATIME", 0)


@dataclass(slots=True)
class FileJob:
    rel: str
    path: str
    st: os.stat_result
    batch: Batch
    chunks: list[tuple[bytes, int]] = field(default_factory=list)
    digest: bytes = b""
    final_st: os.stat_result | None = None
    error: tuple[PathErrorReason, str] | None = None
    changed: str = ""
    total: int = 0  # bytes read: the size recorded, so it always matches the chunks
    done: bool = False


class Batch:
    def __init__(self) -> None:
        self.jobs: list[FileJob] = []
        self.bytes = 0
        self.future: Future[None] | None = None


class ChunkSink(Protocol):
    def add(self, chunk_id: bytes, data: bytes | memoryview) -> bool: ...


class Reader:
    """Reads files in worker threads; one FastCDC and one progress counter per thread."""

    def __init__(self, crypto: Crypto, params: ChunkerParams, sink: ChunkSink) -> None:
        self.crypto = crypto
        self.params = params
        self.sink = sink
        self._local = threading.local()
        self.read_by_thread: dict[int, int] = {}

    def _cdc(self) -> FastCDC:
        cdc: FastCDC | None = getattr(self._local, "cdc", None)
        if cdc is None:
            p = self.params
            cdc = self._local.cdc = FastCDC(
                p.avg_size, min_size=p.min_size, max_size=p.max_size, seed=self.crypto.cdc_seed
            )
        return cdc

    def run_batch(self, batch: Batch) -> None:
        tid = threading.get_ident()
        self.read_by_thread.setdefault(tid, 0)
        for job in batch.jobs:
            try:
                self._read(job, tid)
            finally:
                job.done = True

    def _open(self, path: str) -> int:
        # O_NONBLOCK: should a FIFO have replaced the file since the walk, open must not hang
        # waiting for a writer (fstat then reports it); regular-file reads ignore the flag.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            # O_NOATIME: a backup should not touch the volume (needs ownership or CAP_FOWNER).
            return os.open(path, flags | _O_NOATIME)
        except PermissionError:
            if not _O_NOATIME:
                raise
            return os.open(path, flags)

    def _read(self, job: FileJob, tid: int) -> None:
        try:
            fd = self._open(job.path)
        except FileNotFoundError:
            job.error = ("vanished", "deleted during backup")
            return
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                job.error = ("changed", "replaced by a symlink during backup")
            else:
                job.error = ("unreadable", f"{type(exc).__name__}: {exc.strerror or exc}")
            return
        try:
            before = os.fstat(fd)
            if not S_ISREG(before.st_mode):
                job.error = ("changed", "no longer a regular file")
                return
            total = job.total = self._chunk(fd, before.st_size, job, tid)
            after = os.fstat(fd)
        except OSError as exc:
            job.error = ("unreadable", f"{type(exc).__name__}: {exc.strerror or exc}")
            return
        finally:
            os.close(fd)
        job.final_st = before
        if (
            after.st_size != before.st_size
            or after.st_mtime_ns != before.st_mtime_ns
            or after.st_ctime_ns != before.st_ctime_ns
            or total != before.st_size
        ):
            job.changed = f"size/mtime changed while reading ({before.st_size} -> {after.st_size} bytes)"
        # A file replaced or modified between listing and opening but stable while read is a
        # consistent version: it is stored with the metadata seen at open (final_st).

    def _chunk(self, fd: int, size: int, job: FileJob, tid: int) -> int:
        sink, crypto = self.sink, self.crypto
        if size <= self.params.min_size:
            # Below the minimum chunk size FastCDC would return the whole file: skip it.  Read one
            # byte more than expected to notice growth.
            data = read_small(fd, size)
            cid = crypto.chunk_id(data)
            job.digest = cid
            if data:
                sink.add(cid, data)
                job.chunks = [(cid, len(data))]
            self.read_by_thread[tid] += len(data)
            return len(data)
        hasher = crypto.hasher()
        total = 0
        with io.FileIO(fd, closefd=False) as f:
            for chunk in self._cdc().cut_stream(f):
                view = chunk.data  # valid until the next chunk: sink.add copies what it keeps
                cid = crypto.chunk_id(view)
                hasher.update(view)
                sink.add(cid, view)
                job.chunks.append((cid, chunk.length))
                total += chunk.length
                self.read_by_thread[tid] += chunk.length
        job.digest = hasher.digest()
        return total


def read_small(fd: int, size: int) -> bytes:
    """The whole file, expected to be ``size`` bytes, in one read when it is.

    Asking for one byte more shows growth without a second read; a file that grew or shrank
    after this read is caught by the fstat that follows.
    """
    data = os.read(fd, size + 1)
    if len(data) >= size or not data:
        return data
    parts = [data]
    while part := os.read(fd, size + 1):
        parts.append(part)
    return b"".join(parts)


# --- small files, in reader processes ----------------------------------------------------------
#
# A file of a few KiB costs a reader thread tens of microseconds of Python, and threads share one
# interpreter lock: on a tree of many small files the reading, hashing, compressing and sealing of
# each file go to reader processes instead, a batch at a time.  A process returns, per file, what
# a reader thread would have recorded on the job plus the sealed blobs; the backup's thread applies
# them (PackSink.add_sealed deduplicates as add does).  Nothing but file data and results crosses.

# Per file: (row fields after path and type, or None when it could not be read; the error; the
# "changed while read" detail or ""; the encoded chunks (id, blob, plain length, flags)).  Row
# fields: (m, u, g, mt, at, s, i, ct, chunks, digest, x), as in manifest.py.
FileOutcome = tuple[
    "tuple[Any, ...] | None", "tuple[PathErrorReason, str] | None", str, list[tuple[bytes, bytes, int, int]]
]


class ProcessBatch:
    """Small files sent to a reader process; its outcomes come back in the same order."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.future: Future[list[FileOutcome]] | None = None
        self.outcomes: list[FileOutcome] | None = None
        self.next = 0  # the next outcome to write (files leave the pending queue in order)


class _CollectingSink:
    """A reader process's sink: encodes (compresses, seals) each chunk and keeps it to return."""

    def __init__(self, crypto: Crypto, level: int) -> None:
        self.crypto = crypto
        self.cctx = zstandard.ZstdCompressor(level=level)
        self.blobs: list[tuple[bytes, bytes, int, int]] = []

    def add(self, chunk_id: bytes, data: bytes | memoryview) -> bool:
        blob, flags = encode_blob(self.crypto, self.cctx, chunk_id, data)
        self.blobs.append((chunk_id, blob, len(data), flags))
        return True


_process_reader: tuple[Reader, _CollectingSink] | None = None


def init_reader_process(crypto: Crypto, params: ChunkerParams, level: int) -> None:
    global _process_reader
    sink = _CollectingSink(crypto, level)
    _process_reader = (Reader(crypto, params, sink), sink)


def read_in_process(paths: list[str]) -> list[FileOutcome]:
    """Runs in a reader process: each file read as a reader thread would (see Reader._read)."""
    if _process_reader is None:
        raise RuntimeError("reader process not initialised")
    reader, sink = _process_reader
    tid = threading.get_ident()
    reader.read_by_thread[tid] = 0
    out: list[FileOutcome] = []
    for path in paths:
        job = FileJob(path, path, _NO_STAT, _NO_BATCH)
        sink.blobs = []
        reader._read(job, tid)
        st = job.final_st
        if job.error is not None or st is None:
            out.append((None, job.error or ("unreadable", "no status"), "", []))
            continue
        fields = (S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, st.st_atime_ns, job.total,
                  st.st_ino, st.st_ctime_ns, tuple(job.chunks), job.digest, 1 if job.changed else 0)
        out.append((fields, None, job.changed, sink.blobs))
    return out


_NO_STAT = os.stat_result((0,) * 10)
_NO_BATCH = Batch()
