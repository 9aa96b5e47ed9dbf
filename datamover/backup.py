"""Backing up one volume's tree into the vault.

The calling thread walks the tree in manifest order, decides per file whether the parent
snapshot's chunks can be reused (same size, mtime, ctime and inode, and every chunk still in
the vault), and hands the rest, in small batches, to reader threads (reader.py), which chunk
(FastCDC), hash (blake3) and pass chunks to the PackSink; results are written to the manifest
in walk order, so the manifest streams out while the tree is still being read.  On a tree of
many small files, those go to reader processes instead (one per core): per file, Python's cost
is most of the work there, and threads share one interpreter lock.  With the native part
installed, the walk and its merge with the parent run in native code (kbc_fastwalk.Scan, see
_scan): directories and unchanged files arrive as manifest rows already encoded, so a daily run
over a million unchanged files makes no Python object per file; the Python merge (_walk) stays
for version-1 parents and installs without it, and the two write the same manifests.

Files are checked before and after reading (fstat size, mtime, ctime); a file that changed,
vanished, could not be read, or is a special file is reported per path in the summary.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import stat
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from functools import partial
from itertools import chain
from pathlib import Path
from stat import S_IMODE, S_ISDIR, S_ISLNK, S_ISREG

import msgpack

from vault.store import ObjectExists, ObjectStore

from .errors import SnapshotNotFound
from .index import IndexCache, load_index
from .locks import acquire_backup_lock
from .manifest import (
    R_CHANGED,
    R_CHUNKS,
    R_CTIME,
    R_DIGEST,
    R_INODE,
    R_MTIME,
    R_PATH,
    R_SIZE,
    R_TYPE,
    ManifestReader,
    ManifestWriter,
    Row,
    path_key,
    read_footer,
)
from .models import ErrorList, Progress, ProgressCallback, SnapshotSummary
from .reader import Batch, FileJob, FileOutcome, ProcessBatch, Reader, init_reader_process, read_in_process
from .repo import Repo, snapshot_key
from .sink import PACK_TARGET, PackSink
from .walk import NativeScan, walk

log = logging.getLogger(__name__)

# A batch is what one reader thread takes at a time: many small files amortise the executor's
# per-task cost, a big file goes alone.
_BATCH_BYTES = 8 * 1024 * 1024
_BATCH_FILES = 128
# Entries waiting to be written in order behind a slow file; bounds the manifest backlog.
_MAX_PENDING = 20_000
_PROGRESS_INTERVAL = 0.5
# Small files to read before starting reader processes: starting one costs a few hundred ms, which a
# daily run touching a few changed files should not pay.
PROCESSES_AFTER_FILES = 2048


class ReaderProcessDied(BrokenProcessPool):
    """A reader process ended abruptly; what it read is lost, the run stops and can be retried."""


def _reader_died(paths: list[str]) -> ReaderProcessDied:
    return ReaderProcessDied(
        f"a reader process died (killed, or out of memory) while this backup read {paths[0]} and "
        f"{len(paths) - 1} more files; nothing was committed and the backup can be retried"
    )


def default_processes(workers: int) -> int:
    """Reader processes for small files: one per core, up to ``workers``; none on one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(workers, cores) if cores > 1 else 0


def new_snapshot_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:12]


@dataclass(slots=True)
class _Counts:
    # Plain ints: counting on the pydantic summary costs a validated setattr per file.
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    bytes: int = 0
    chunks: int = 0
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0


def _seek(rel: str, cur: Row | None, advance: Callable[[], Row | None]) -> tuple[Row | None, Row | None]:
    """(the parent's row for rel or None, the parent's next row): skips what was deleted since.

    The merge-join of the walk with the parent manifest (both in path_key order); the backup's
    loop matches the usual case, the next row being rel's, by string equality before calling this."""
    key = path_key(rel)
    while cur is not None:
        cur_key = path_key(cur[R_PATH])
        if cur_key >= key:
            if cur_key == key:
                return cur, advance()
            return None, cur
        cur = advance()
    return None, None


# Marks a hard link in the pending queue: written (and counted) only if its first link was read.
_LINK = FileJob("", "", os.stat_result((0,) * 10), Batch())
# Marks rows the native scan encoded, (None, rows, count, files, bytes, chunks, dirs), in the queue.
_RAW = FileJob("", "", os.stat_result((0,) * 10), Batch())


def _special_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "unknown file type"


def _file_head(rel: str, st: os.stat_result) -> Row:
    """The fields of a file row known from its lstat (chunks, digest and changed flag follow)."""
    return (rel, "f", S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, st.st_atime_ns,
            st.st_size, st.st_ino, st.st_ctime_ns)


class _Backup:
    def __init__(self, repo: Repo, root: str, *, volume_id: str, snapshot_id: str, parent: str | None,
                 progress: ProgressCallback | None, workers: int, sink: PackSink, writer: ManifestWriter,
                 parent_reader: ManifestReader | None, processes: int, processes_after: int,
                 native: bool = True) -> None:
        self.repo = repo
        self.root = root
        self.sink = sink
        self.writer = writer
        self.progress = progress
        self.reader = Reader(repo.crypto, repo.chunker, sink)
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="kbc-read")
        # Reader processes for small files, started once the tree shows it has many (see reader.py).
        self.process_workers = processes
        self.processes_after = processes_after
        self.procs: ProcessPoolExecutor | None = None
        self.small_batch = ProcessBatch()
        self.small_seen = 0
        self.bytes_read_in_processes = 0
        self.parent_reader = parent_reader
        # The native scan merges the walk with a version-2 parent (or none) itself; else the
        # parent's rows in walk order, merged with the walk here (see _seek).
        # Without a parent every file goes to Python anyway: the native walk alone is quicker then.
        self.native_scan = native and NativeScan is not None and (
            parent_reader is not None and parent_reader.version == 2
        )
        self.parent_rows: Iterable[Row] = (
            chain.from_iterable(parent_reader.row_frames()) if parent_reader and not self.native_scan else ()
        )
        est = parent_reader.footer() if parent_reader else {}
        self.est_files = int(est.get("files", 0))
        self.est_bytes = int(est.get("bytes", 0))
        self.summary = SnapshotSummary(
            snapshot_id=snapshot_id, volume_id=volume_id, manifest_key=snapshot_key(snapshot_id),
            parent_snapshot=parent, encrypted=repo.crypto.encrypted,
        )
        self.errors = ErrorList()
        self.counts = _Counts()
        # Rows waiting behind a file still being read; the manifest is written in walk order.
        # With a job (or the reader-process batch of a small file) the row is that file's head;
        # _LINK marks a hard link, None a complete row.
        self.pending: deque[tuple[Row, FileJob | ProcessBatch | None]] = deque()
        self.batch = Batch()
        self.links: dict[tuple[int, int], str] = {}
        self.failed_links: set[str] = set()
        self.files_seen = 0
        self.bytes_seen = 0
        self.files_done = 0
        self.bytes_unmodified = 0
        self.scanning = True
        self._last_progress = 0.0

    # --- walking --------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._walk()
            self.scanning = False
            self._submit_batch()
            self._submit_small_batch()
            while self.pending:
                self._drain(block=True)
            self.sink.flush()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            if self.procs is not None:
                self.procs.shutdown(wait=True, cancel_futures=True)
        self._report(force=True)

    @property
    def bytes_read(self) -> int:
        return sum(self.reader.read_by_thread.values()) + self.bytes_read_in_processes

    def _scan(self) -> None:
        """The walk merged with the parent in native code: directories and unchanged files come
        as rows already encoded, every other entry with the parent's row for it (kbc_fastwalk.Scan)."""
        assert NativeScan is not None
        self._visit(".", self.root, os.lstat(self.root), None)
        reader = self.parent_reader
        frames: Iterable[bytes] = reader.raw_row_frames() if reader is not None else ()
        scan = iter(NativeScan(self.root, os.path.join(self.root, ""), frames, self.sink.index.members))
        pending, add_raw = self.pending, self.writer.add_raw
        unpack = partial(msgpack.unpackb, use_list=False, unicode_errors="surrogateescape")
        counts = self.counts
        while True:
            try:
                batch = next(scan)
            except StopIteration:
                break
            except ValueError as exc:  # a parent row that does not parse
                raise (reader.corrupt(str(exc)) if reader is not None else exc) from None
            for item in batch:
                rel = item[0]
                if rel is None:
                    _, rows, count, files, size, chunks, dirs = item
                    if pending:
                        pending.append((item, _RAW))
                    else:
                        add_raw(rows, count, chunks)
                    self._count_unmodified(files, size, chunks)
                    counts.dirs += dirs
                    continue
                _, path, st, error, old = item
                if st is None:
                    self._walk_error(rel, error)
                    continue
                self._visit(rel, path, st, unpack(old) if old is not None else None)
            if pending:
                self._drain(block=len(pending) >= _MAX_PENDING)
            self._report()

    def _walk(self) -> None:
        # The loop every entry of the volume goes through: unchanged files (what a daily run
        # mostly sees) are handled inline, without a call per file, and counted in locals.
        if self.native_scan:
            self._scan()
            return
        pending = self.pending
        add_row = self.writer.add_row
        rows: Iterator[Row] = iter(self.parent_rows)
        advance = partial(next, rows, None)
        cur = advance()
        stored = self.sink.index.members
        ticks = n_unmodified = bytes_unmodified = chunks_unmodified = 0
        for rel, path, st, error in walk(self.root):
            if st is None:
                self._walk_error(rel, error)
                continue
            if cur is None:
                old = None
            elif cur[R_PATH] == rel:
                old, cur = cur, advance()
            else:
                old, cur = _seek(rel, cur, advance)
            ticks += 1
            if ticks & 1023 == 0:
                self._count_unmodified(n_unmodified, bytes_unmodified, chunks_unmodified)
                n_unmodified = bytes_unmodified = chunks_unmodified = 0
                # Unchanged files queue behind a file being read without a drain each: drain
                # (and bound the queue) now and then.
                if pending:
                    self._drain(block=len(pending) >= _MAX_PENDING)
                self._report()
            mode = st.st_mode
            if old is not None and S_ISREG(mode) and st.st_nlink == 1 and old[R_TYPE] == "f":
                size = st.st_size
                if (not old[R_CHANGED] and old[R_SIZE] == size and old[R_MTIME] == st.st_mtime_ns
                        and old[R_CTIME] == st.st_ctime_ns and old[R_INODE] == st.st_ino):
                    chunks = old[R_CHUNKS]
                    # Reuse only chunks the vault still holds (a parent's packs may have been collected).
                    if (chunks[0][0] in stored if len(chunks) == 1
                            else all(c[0] in stored for c in chunks)):
                        n_unmodified += 1
                        bytes_unmodified += size
                        chunks_unmodified += len(chunks)
                        row = (rel, "f", S_IMODE(mode), st.st_uid, st.st_gid, st.st_mtime_ns, st.st_atime_ns,
                               size, st.st_ino, st.st_ctime_ns, chunks, old[R_DIGEST], 0)
                        if pending:
                            pending.append((row, None))
                        else:
                            add_row(row)
                        continue
            self._visit(rel, path, st, old)
            # Drain every so often (files are read in batches anyway), or when the queue is full.
            if pending and (ticks & 127 == 0 or len(pending) >= _MAX_PENDING):
                self._drain(block=len(pending) >= _MAX_PENDING)
        self._count_unmodified(n_unmodified, bytes_unmodified, chunks_unmodified)

    def _count_unmodified(self, files: int, size: int, chunks: int) -> None:
        self.files_seen += files
        self.files_done += files
        self.bytes_seen += size
        self.bytes_unmodified += size
        s = self.counts
        s.files_unmodified += files
        s.files += files
        s.bytes += size
        s.chunks += chunks

    def _walk_error(self, rel: str, exc: OSError | None) -> None:
        if isinstance(exc, FileNotFoundError):
            self.errors.add(rel, "vanished", "deleted during backup")
        else:
            detail = f"{type(exc).__name__}: {exc.strerror or exc}" if exc else "unknown error"
            self.errors.add(rel, "unreadable", detail)

    def _emit(self, row: Row) -> None:
        """A row complete and counted already; written behind any file still being read."""
        if self.pending:
            self.pending.append((row, None))
        else:
            self.writer.add_row(row)

    def _visit(self, rel: str, path: str, st: os.stat_result, old: Row | None) -> None:
        mode = st.st_mode
        if S_ISDIR(mode):
            self.counts.dirs += 1
            self._emit((rel, "d", S_IMODE(mode), st.st_uid, st.st_gid, st.st_mtime_ns, st.st_atime_ns))
        elif S_ISLNK(mode):
            try:
                target = os.readlink(path)
            except OSError as exc:
                self._walk_error(rel, exc)
                return
            self.counts.symlinks += 1
            self._emit((rel, "l", S_IMODE(mode), st.st_uid, st.st_gid, st.st_mtime_ns, st.st_atime_ns,
                        target))
        elif S_ISREG(mode):
            self._visit_file(rel, path, st, old)
        else:
            self.errors.add(rel, "special", f"{_special_kind(mode)} not backed up")

    def _visit_file(self, rel: str, path: str, st: os.stat_result, old: Row | None) -> None:
        if st.st_nlink > 1:
            link_key = (st.st_dev, st.st_ino)
            first = self.links.get(link_key)
            if first is not None:
                # Counted when written: the first link may still fail to be read.
                self.pending.append(((rel, "h", *_file_head(rel, st)[2:R_SIZE], first), _LINK))
                return
            self.links[link_key] = rel
        self.files_seen += 1
        self.bytes_seen += st.st_size
        head = _file_head(rel, st)
        if old is not None and old[R_TYPE] == "f":
            if self._unchanged(old, st):
                chunks = old[R_CHUNKS]
                s = self.counts
                s.files_unmodified += 1
                s.files += 1
                s.bytes += st.st_size
                s.chunks += len(chunks)
                self.files_done += 1
                self.bytes_unmodified += st.st_size
                self._emit((*head, chunks, old[R_DIGEST], 0))
                return
            self.counts.files_changed += 1
        else:
            self.counts.files_new += 1
        if st.st_size <= self.reader.params.min_size and self._small_files_in_processes():
            small = self.small_batch
            small.paths.append(path)
            self.pending.append((head, small))
            if len(small.paths) >= _BATCH_FILES:
                self._submit_small_batch()
            return
        if self.batch.jobs and (
            self.batch.bytes + st.st_size > _BATCH_BYTES or len(self.batch.jobs) >= _BATCH_FILES
        ):
            self._submit_batch()
        job = FileJob(rel, path, st, self.batch)
        self.batch.jobs.append(job)
        self.batch.bytes += st.st_size
        self.pending.append((head, job))

    def _small_files_in_processes(self) -> bool:
        if self.procs is not None:
            return True
        self.small_seen += 1
        if not self.process_workers or self.small_seen < self.processes_after:
            return False
        # Spawned, not forked: the node worker is a threaded process (Temporal's worker).
        try:
            self.procs = ProcessPoolExecutor(
                self.process_workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=init_reader_process,
                initargs=(self.repo.crypto, self.reader.params, self.sink.level),
            )
        except (OSError, ImportError) as exc:
            # No POSIX semaphores (a container without /dev/shm): reader threads do it all.
            log.warning("reader processes unavailable (%s); small files are read by threads", exc)
            self.process_workers = 0
            return False
        return True

    def _unchanged(self, old: Row, st: os.stat_result) -> bool:
        """The rule _walk applies inline to single-link files, for the first link of a hard-linked one."""
        if old[R_CHANGED] or (old[R_SIZE], old[R_MTIME], old[R_CTIME], old[R_INODE]) != (
            st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino
        ):
            return False
        stored = self.sink.index.members
        return all(c[0] in stored for c in old[R_CHUNKS])

    def _submit_batch(self) -> None:
        if self.batch.jobs:
            self.batch.future = self.pool.submit(self.reader.run_batch, self.batch)
            self.batch = Batch()

    def _submit_small_batch(self) -> None:
        small = self.small_batch
        if small.paths and self.procs is not None:
            try:
                small.future = self.procs.submit(read_in_process, small.paths)
            except BrokenProcessPool:
                raise _reader_died(small.paths) from None
            self.small_batch = ProcessBatch()

    def _collect(self, batch: ProcessBatch) -> list[FileOutcome]:
        """What a reader process returned for a batch (its future is done); chunks go to the sink."""
        if batch.outcomes is None:
            if batch.future is None:
                raise AssertionError("collecting a batch that was never submitted")
            try:
                batch.outcomes = outcomes = batch.future.result()
            except BrokenProcessPool:
                raise _reader_died(batch.paths) from None
            batch.future = None
            self.sink.add_sealed([blob for outcome in outcomes for blob in outcome[3]])
            self.bytes_read_in_processes += sum(o[0][5] for o in outcomes if o[0] is not None)
        return batch.outcomes

    # --- writing in order -----------------------------------------------------------------

    def _drain(self, *, block: bool) -> None:
        pending, add_row = self.pending, self.writer.add_row
        while pending:
            row, job = pending[0]
            if job is None:
                pending.popleft()
                add_row(row)
                continue
            if job is _LINK:
                pending.popleft()
                self._finish_link(row)
                continue
            if job is _RAW:
                pending.popleft()
                self.writer.add_raw(row[1], row[2], row[5])
                continue
            if isinstance(job, ProcessBatch):
                if job.outcomes is None:
                    if job.future is not None and job.future.done():
                        self._collect(job)
                    elif not block:
                        break
                    else:
                        self._wait_for_batch(job)
                assert job.outcomes is not None
                outcome = job.outcomes[job.next]
                job.next += 1
                pending.popleft()
                self._finish_outcome(row, outcome)
                block = False
                continue
            if not job.done:
                if not block:
                    break
                self._wait_for(job)
            pending.popleft()
            self._finish(row, job)
            block = False

    def _wait_for_batch(self, batch: ProcessBatch) -> None:
        if batch is self.small_batch:
            self._submit_small_batch()  # the batch is still being filled
        future = batch.future
        if future is None:
            raise AssertionError("waiting for files that were never submitted")
        while True:
            try:
                future.result(timeout=_PROGRESS_INTERVAL)
                break
            except FuturesTimeout:
                self._report()
        self._collect(batch)

    def _finish_outcome(self, head: Row, outcome: FileOutcome) -> None:
        fields, error, changed, _ = outcome
        rel = head[R_PATH]
        self.files_done += 1
        if fields is None:
            reason, detail = error or ("unreadable", "unknown error")
            self.errors.add(rel, reason, detail)
            self.failed_links.add(rel)
            return
        if changed:
            self.errors.add(rel, "changed", changed)
        s = self.counts
        s.files += 1
        s.bytes += fields[5]
        s.chunks += len(fields[8])
        self.writer.add_row((rel, "f", *fields))

    def _wait_for(self, job: FileJob) -> None:
        if job.batch is self.batch:
            self._submit_batch()  # the job sits in the batch still being filled
        future = job.batch.future
        if future is None:
            raise AssertionError("waiting for a file that was never submitted")
        while not job.done:
            try:
                # Wake up now and then to report progress while a big file is read.
                future.result(timeout=_PROGRESS_INTERVAL)
            except FuturesTimeout:
                self._report()

    def _finish(self, head: Row, job: FileJob) -> None:
        s = self.counts
        self.files_done += 1
        if job.error is not None:
            reason, detail = job.error
            self.errors.add(job.rel, reason, detail)
            self.failed_links.add(job.rel)
            return
        if job.final_st is not None:
            head = _file_head(job.rel, job.final_st)
        # The size recorded is what was read, so it always matches the chunks.
        chunks = tuple(job.chunks)
        row = (*head[:R_SIZE], job.total, *head[R_SIZE + 1:R_CHUNKS], chunks, job.digest,
               1 if job.changed else 0)
        if job.changed:
            self.errors.add(job.rel, "changed", job.changed)
        s.files += 1
        s.bytes += job.total
        s.chunks += len(chunks)
        self.writer.add_row(row)

    def _finish_link(self, row: Row) -> None:
        target = row[7]
        if target in self.failed_links:
            self.errors.add(row[R_PATH], "unreadable", f"hard link to {target}, which could not be read")
            return
        self.counts.hardlinks += 1
        self.writer.add_row(row)

    def _report(self, *, force: bool = False) -> bool:
        if self.progress is None:
            return False
        now = time.monotonic()
        if not force and now - self._last_progress < _PROGRESS_INTERVAL:
            return False
        self._last_progress = now
        done = self.bytes_unmodified + self.bytes_read
        self.progress(Progress(
            files_done=self.files_done, bytes_done=min(done, self.bytes_seen),
            files_total=self.files_seen, bytes_total=self.bytes_seen, scanning=self.scanning and not force,
            estimated_files=self.est_files, estimated_bytes=self.est_bytes,
        ))
        return True


def backup_tree(
    store: ObjectStore,
    root: Path | str,
    *,
    volume_id: str,
    parent_snapshot: str | None = None,
    key: bytes | None = None,
    progress: ProgressCallback | None = None,
    workers: int = 4,
    snapshot_id: str | None = None,
    cache_dir: Path | None = None,
    compression_level: int = 3,
    pack_size: int = PACK_TARGET,
    lock_wait_seconds: float = 3600,
    processes: int | None = None,
    processes_after: int = PROCESSES_AFTER_FILES,
    native: bool = True,
) -> SnapshotSummary:
    """Back up the tree under ``root`` as one snapshot of ``volume_id``.

    ``parent_snapshot`` (the previous snapshot of the same volume) makes the run incremental:
    files whose size, mtime, ctime and inode are unchanged are not read again.  A missing parent
    falls back to a full read (``parent_snapshot`` is then None in the summary).  Passing the
    same ``snapshot_id`` again after the snapshot was written returns its summary without work,
    so a retried activity is idempotent.  Paths that could not be captured faithfully are in
    ``summary.errors``; the snapshot is still written and usable for the rest.  Once
    ``processes_after`` small files (one chunk each) were seen, the rest of them are read by
    ``processes`` reader processes (default: one per core, up to ``workers``; 0 reads all in threads).
    ``native=False`` merges the walk with the parent in Python, as without the native part.
    """
    started = time.monotonic()
    root_str = os.fspath(root)
    if not S_ISDIR(os.lstat(root_str).st_mode):
        raise NotADirectoryError(f"backup root {root_str} is not a directory")
    repo = Repo.open(store, key, create=True)
    snapshot_id = snapshot_id or new_snapshot_id()
    if snapshot_id and store.exists(snapshot_key(snapshot_id)):
        return SnapshotSummary.model_validate(read_footer(store, repo.crypto, snapshot_id))

    lock = acquire_backup_lock(store, owner=f"volume {volume_id}", wait_seconds=lock_wait_seconds)
    sink: PackSink | None = None
    writer: ManifestWriter | None = None
    parent_reader: ManifestReader | None = None
    try:
        index = load_index(repo, cache_dir=cache_dir, lookups=False)
        if parent_snapshot:
            try:
                parent_reader = ManifestReader(store, repo.crypto, parent_snapshot)
            except SnapshotNotFound:
                parent_snapshot = None
        cache = IndexCache(cache_dir, repo.repo_id) if cache_dir is not None else None
        sink = PackSink(repo, index, pack_size=pack_size, compression_level=compression_level,
                        index_cache=cache)
        header = {
            "kind": "kbc-snapshot", "version": 2, "snapshot_id": snapshot_id, "volume_id": volume_id,
            "parent": parent_snapshot, "created": time.time(),
        }
        writer = ManifestWriter(repo.crypto, snapshot_id, header)
        job = _Backup(
            repo, root_str, volume_id=volume_id, snapshot_id=snapshot_id, parent=parent_snapshot,
            progress=progress, workers=workers, sink=sink, writer=writer, parent_reader=parent_reader,
            processes=default_processes(workers) if processes is None else processes,
            processes_after=processes_after, native=native,
        )
        job.run()
        s = job.summary.model_copy(update={**asdict(job.counts), "errors": job.errors})
        s.bytes_read = job.bytes_read
        s.new_chunks, s.new_bytes = sink.new_chunks, sink.new_bytes
        s.packs_uploaded, s.uploaded_bytes = sink.packs_uploaded, sink.uploaded_bytes
        s.duration_seconds = round(time.monotonic() - started, 3)
        # The snapshot object is written last: it is the commit point of this volume's backup.
        body, size = writer.finish(s.model_dump(mode="json"))
        try:
            store.put_stream(s.manifest_key, body, size=size, if_absent=True)
        except ObjectExists:
            return SnapshotSummary.model_validate(read_footer(store, repo.crypto, snapshot_id))
        return s
    finally:
        if sink is not None:
            sink.close()
        if writer is not None:
            writer.close()
        if parent_reader is not None:
            parent_reader.close()
        lock.release()
