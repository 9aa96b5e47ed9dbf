"""Backing up one volume's tree into the vault.

The calling thread walks the tree in manifest order, decides per file whether the parent
snapshot's chunks can be reused (same size, mtime, ctime and inode, and every chunk still in
the vault), and hands the rest, in small batches, to reader threads (reader.py), which chunk
(FastCDC), hash (blake3) and pass chunks to the PackSink; results are written to the manifest
in walk order, so the manifest streams out while the tree is still being read.

Files are checked before and after reading (fstat size, mtime, ctime); a file that changed,
vanished, could not be read, or is a special file is reported per path in the summary.
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import asdict, dataclass
from pathlib import Path
from stat import S_IMODE, S_ISDIR, S_ISLNK, S_ISREG

from vault.store import ObjectExists, ObjectStore

from .errors import SnapshotNotFound
from .index import IndexCache, load_index
from .locks import acquire_backup_lock
from .manifest import Entry, ManifestReader, ManifestWriter, path_key, read_footer
from .models import ErrorList, Progress, ProgressCallback, SnapshotSummary
from .reader import Batch, FileJob, Reader
from .repo import Repo, snapshot_key
from .sink import PACK_TARGET, PackSink
from .walk import walk

# A batch is what one reader thread takes at a time: many small files amortise the executor's
# per-task cost, a big file goes alone.
_BATCH_BYTES = 8 * 1024 * 1024
_BATCH_FILES = 128
# Entries waiting to be written in order behind a slow file; bounds the manifest backlog.
_MAX_PENDING = 20_000
_PROGRESS_INTERVAL = 0.5


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


class _ParentCursor:
    """Merge-join over the parent manifest: both sides come in path_key order."""

    def __init__(self, entries: Iterator[Entry]) -> None:
        self._it = entries
        self._cur: Entry | None = None
        self._key: tuple[str, ...] = ()
        self._advance()

    def _advance(self) -> None:
        self._cur = next(self._it, None)
        if self._cur is not None:
            self._key = path_key(self._cur["p"])

    def find(self, rel: str) -> Entry | None:
        key = path_key(rel)
        while self._cur is not None and self._key < key:
            self._advance()
        if self._cur is not None and self._key == key:
            return self._cur
        return None


def _base_entry(rel: str, st: os.stat_result, kind: str) -> Entry:
    return {
        "p": rel, "t": kind, "m": S_IMODE(st.st_mode), "u": st.st_uid, "g": st.st_gid,
        "mt": st.st_mtime_ns, "at": st.st_atime_ns,
    }


def _file_fields(entry: Entry, st: os.stat_result) -> None:
    entry.update(s=st.st_size, i=st.st_ino, ct=st.st_ctime_ns)


def _special_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "unknown file type"


class _Backup:
    def __init__(self, repo: Repo, root: str, *, volume_id: str, snapshot_id: str, parent: str | None,
                 progress: ProgressCallback | None, workers: int, sink: PackSink, writer: ManifestWriter,
                 parent_reader: ManifestReader | None) -> None:
        self.repo = repo
        self.root = root
        self.sink = sink
        self.writer = writer
        self.progress = progress
        self.reader = Reader(repo, sink)
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="kbc-read")
        self.parent = _ParentCursor(parent_reader.entries()) if parent_reader else None
        est = parent_reader.footer() if parent_reader else {}
        self.est_files = int(est.get("files", 0))
        self.est_bytes = int(est.get("bytes", 0))
        self.summary = SnapshotSummary(
            snapshot_id=snapshot_id, volume_id=volume_id, manifest_key=snapshot_key(snapshot_id),
            parent_snapshot=parent, encrypted=repo.crypto.encrypted,
        )
        self.errors = ErrorList()
        self.counts = _Counts()
        self.pending: deque[tuple[Entry, FileJob | None]] = deque()
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
            for item in walk(self.root):
                if item.error is not None or item.st is None:
                    self._walk_error(item.rel, item.error)
                    continue
                self._visit(item.rel, item.path, item.st)
                self._drain(block=len(self.pending) >= _MAX_PENDING)
            self.scanning = False
            self._submit_batch()
            while self.pending:
                self._drain(block=True)
            self.sink.flush()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self._report(force=True)

    def _walk_error(self, rel: str, exc: OSError | None) -> None:
        if isinstance(exc, FileNotFoundError):
            self.errors.add(rel, "vanished", "deleted during backup")
        else:
            detail = f"{type(exc).__name__}: {exc.strerror or exc}" if exc else "unknown error"
            self.errors.add(rel, "unreadable", detail)

    def _visit(self, rel: str, path: str, st: os.stat_result) -> None:
        mode = st.st_mode
        if S_ISDIR(mode):
            self._emit(_base_entry(rel, st, "d"), None)
        elif S_ISLNK(mode):
            try:
                target = os.readlink(path)
            except OSError as exc:
                self._walk_error(rel, exc)
                return
            entry = _base_entry(rel, st, "l")
            entry["lt"] = target
            self._emit(entry, None)
        elif S_ISREG(mode):
            self._visit_file(rel, path, st)
        else:
            self.errors.add(rel, "special", f"{_special_kind(mode)} not backed up")

    def _visit_file(self, rel: str, path: str, st: os.stat_result) -> None:
        if st.st_nlink > 1:
            link_key = (st.st_dev, st.st_ino)
            first = self.links.get(link_key)
            if first is not None:
                entry = _base_entry(rel, st, "h")
                entry["lt"] = first
                self._emit(entry, None)
                return
            self.links[link_key] = rel
        self.files_seen += 1
        self.bytes_seen += st.st_size
        entry = _base_entry(rel, st, "f")
        _file_fields(entry, st)
        old = self.parent.find(rel) if self.parent else None
        if old is not None and self._unchanged(old, st):
            entry["c"] = old["c"]
            entry["h"] = old["h"]
            self.counts.files_unmodified += 1
            self.bytes_unmodified += st.st_size
            self._emit(entry, None)
            return
        if old is not None and old.get("t") == "f":
            self.counts.files_changed += 1
        else:
            self.counts.files_new += 1
        if self.batch.jobs and (
            self.batch.bytes + st.st_size > _BATCH_BYTES or len(self.batch.jobs) >= _BATCH_FILES
        ):
            self._submit_batch()
        job = FileJob(rel, path, st, self.batch)
        self.batch.jobs.append(job)
        self.batch.bytes += st.st_size
        self._emit(entry, job)

    def _unchanged(self, old: Entry, st: os.stat_result) -> bool:
        if old.get("t") != "f" or old.get("x"):
            return False
        now = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        if (old["s"], old["mt"], old["ct"], old["i"]) != now:
            return False
        # Reuse only chunks the vault still holds (a parent's packs may have been collected).
        known = self.sink.known
        return all(known(bytes.fromhex(c[0])) for c in old["c"])

    def _submit_batch(self) -> None:
        if self.batch.jobs:
            self.batch.future = self.pool.submit(self.reader.run_batch, self.batch)
            self.batch = Batch()

    # --- writing in order -----------------------------------------------------------------

    def _emit(self, entry: Entry, job: FileJob | None) -> None:
        self.pending.append((entry, job))

    def _drain(self, *, block: bool) -> None:
        pending = self.pending
        while pending:
            entry, job = pending[0]
            if job is not None and not job.done:
                if not block:
                    break
                self._wait_for(job)
            pending.popleft()
            self._finish(entry, job)
            block = False
        self._report()

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

    def _finish(self, entry: Entry, job: FileJob | None) -> None:
        s = self.counts
        if job is not None:
            if job.error is not None:
                reason, detail = job.error
                self.errors.add(job.rel, reason, detail)
                self.failed_links.add(job.rel)
                self.files_done += 1
                return
            if job.final_st is not None:
                st = job.final_st
                entry.update(_base_entry(job.rel, st, "f"))
                _file_fields(entry, st)
            entry["s"] = job.total
            entry["c"] = job.chunks
            entry["h"] = job.digest
            if job.changed:
                entry["x"] = 1
                self.errors.add(job.rel, "changed", job.changed)
        kind = entry["t"]
        if kind == "f":
            s.files += 1
            s.bytes += entry["s"]
            s.chunks += len(entry["c"])
            self.files_done += 1
        elif kind == "d":
            s.dirs += 1
        elif kind == "l":
            s.symlinks += 1
        elif kind == "h":
            if entry["lt"] in self.failed_links:
                detail = f"hard link to {entry['lt']}, which could not be read"
                self.errors.add(entry["p"], "unreadable", detail)
                return
            s.hardlinks += 1
        self.writer.add(entry)

    def _report(self, *, force: bool = False) -> bool:
        if self.progress is None:
            return False
        now = time.monotonic()
        if not force and now - self._last_progress < _PROGRESS_INTERVAL:
            return False
        self._last_progress = now
        done = self.bytes_unmodified + sum(self.reader.read_by_thread.values())
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
) -> SnapshotSummary:
    """Back up the tree under ``root`` as one snapshot of ``volume_id``.

    ``parent_snapshot`` (the previous snapshot of the same volume) makes the run incremental:
    files whose size, mtime, ctime and inode are unchanged are not read again.  A missing parent
    falls back to a full read (``parent_snapshot`` is then None in the summary).  Passing the
    same ``snapshot_id`` again after the snapshot was written returns its summary without work,
    so a retried activity is idempotent.  Paths that could not be captured faithfully are in
    ``summary.errors``; the snapshot is still written and usable for the rest.
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
        index = load_index(repo, cache_dir=cache_dir)
        if parent_snapshot:
            try:
                parent_reader = ManifestReader(store, repo.crypto, parent_snapshot)
            except SnapshotNotFound:
                parent_snapshot = None
        cache = IndexCache(cache_dir, repo.repo_id) if cache_dir is not None else None
        sink = PackSink(repo, index, pack_size=pack_size, compression_level=compression_level,
                        index_cache=cache)
        header = {
            "kind": "kbc-snapshot", "version": 1, "snapshot_id": snapshot_id, "volume_id": volume_id,
            "parent": parent_snapshot, "created": time.time(),
        }
        writer = ManifestWriter(repo.crypto, snapshot_id, header)
        job = _Backup(
            repo, root_str, volume_id=volume_id, snapshot_id=snapshot_id, parent=parent_snapshot,
            progress=progress, workers=workers, sink=sink, writer=writer, parent_reader=parent_reader,
        )
        job.run()
        s = job.summary.model_copy(update={**asdict(job.counts), "errors": job.errors})
        s.bytes_read = sum(job.reader.read_by_thread.values())
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
