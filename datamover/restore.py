"""Restoring a snapshot into a directory.

The manifest is read in order and files are restored in windows: for each window the needed
blobs are grouped by pack, adjacent blobs are fetched with one range read, decoded (opened,
decompressed, checked against their chunk id) by worker threads and written at their offsets.
Each pack range is read once per window however many files share it.  Every file's content
digest is verified: single-chunk files by their chunk's check (the digest is the chunk id),
larger ones by hashing the written file.  Metadata (owner, mode, times) is set after the
content; directories last, deepest first, so their mtimes stick.

Safety: manifest paths must be relative, without '.', '..' or empty components, strictly in
walk order (no duplicates), never below a symlink or file of the same snapshot, and every
parent directory must resolve (realpath) to itself inside the target, so nothing is written
through a symlink that leaves it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISDIR, S_ISLNK, S_ISREG
from typing import Any

import zstandard

from vault.store import ObjectStore

from .crypto import Crypto
from .errors import DataCorrupt, ObjectMissing, PathNotInSnapshot, UnsafeChoice, UnsafePath, store_errors
from .index import ChunkIndex, load_index
from .manifest import Entry, ManifestReader
from .models import MAX_ERROR_PATHS, Progress, ProgressCallback, RestoreSummary
from .packs import BlobEntry, decode_blob
from .repo import Repo, pack_key

_WINDOW_BYTES = 512 * 1024 * 1024
_RANGE_MAX = 16 * 1024 * 1024
_RANGE_GAP = 1024 * 1024  # read through gaps smaller than this rather than issue another request
_PROGRESS_INTERVAL = 0.5
_THREADED_HASH_BYTES = 64 * 1024 * 1024


@dataclass(eq=False)
class _OutFile:
    rel: str
    path: str
    entry: Entry
    fd: int = -1  # open only for multi-chunk files; single-chunk files are written whole by a worker


@dataclass
class _Window:
    files: list[_OutFile] = field(default_factory=list)
    links: list[tuple[str, str, Entry]] = field(default_factory=list)
    # pack id -> chunk id -> (blob, [(file, offset)])
    plan: dict[str, dict[bytes, tuple[BlobEntry, list[tuple[_OutFile, int]]]]] = field(default_factory=dict)
    bytes: int = 0


def _max_open_files() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, min(1000, (soft - 64) // 2))


class _Restore:
    def __init__(self, repo: Repo, index: ChunkIndex, target: str, summary: RestoreSummary, *,
                 workers: int, verify: bool, progress: ProgressCallback | None,
                 files_total: int, bytes_total: int) -> None:
        self.store = repo.store
        self.crypto: Crypto = repo.crypto
        self.index = index
        self.target = target
        self.target_real = os.path.realpath(target)
        self.summary = summary
        self.verify = verify
        self.progress = progress
        self.files_total = files_total
        self.bytes_total = bytes_total
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="kbc-restore")
        self.max_fds = _max_open_files()
        self.window = _Window()
        self.dirs: list[tuple[str, Entry]] = []
        # A restore of chosen paths into a directory that was there leaves that directory's own
        # owner, mode and times alone.
        self.stamp_root = True
        self.prev_key: tuple[str, ...] | None = None
        self.last_leaf: tuple[str, ...] | None = None
        self.safe_parents: set[str] = {""}
        self.chown = os.geteuid() == 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self.written_by_thread: dict[int, int] = {}
        self.downloaded_by_thread: dict[int, int] = {}
        self._last_progress = 0.0

    # --- paths ----------------------------------------------------------------------------

    def _check(self, entry: Entry) -> tuple[str, str]:
        """(relative path, absolute path) of a manifest entry, or UnsafePath."""
        rel = entry.get("p")
        if rel == "." and self.prev_key is None:
            if entry.get("t") != "d":
                raise UnsafePath("snapshot root entry is not a directory", key=".")
            self.prev_key = ()
            return rel, self.target
        parts = _safe_parts(rel)
        key = tuple(parts)
        if self.prev_key is None or key <= self.prev_key:
            raise UnsafePath(f"snapshot entry {rel!r} is out of order or duplicated", key=str(rel))
        if self.last_leaf is not None and key[: len(self.last_leaf)] == self.last_leaf:
            raise UnsafePath(f"snapshot entry {rel!r} lies below a symlink or file", key=str(rel))
        self.prev_key = key
        self.last_leaf = None if entry.get("t") == "d" else key
        self._check_parent("/".join(parts[:-1]), str(rel))
        return str(rel), os.path.join(self.target, *parts)

    def _check_parent(self, parent: str, rel: str) -> None:
        if parent in self.safe_parents:
            return
        path = os.path.join(self.target, parent)
        expected = os.path.join(self.target_real, parent)
        if os.path.realpath(path) != expected or not os.path.isdir(path):
            raise UnsafePath(
                f"refusing to write {rel!r}: its directory {parent!r} is not a directory inside the target "
                "(missing, or a symlink leading elsewhere)",
                key=rel,
            )
        self.safe_parents.add(parent)

    # --- entries --------------------------------------------------------------------------

    def add(self, entry: Entry) -> None:
        rel, path = self._check(entry)
        kind = entry.get("t")
        if kind == "d":
            if rel != ".":
                _make_dir(path)
            if rel != "." or self.stamp_root:
                self.dirs.append((path, entry))
            self.summary.dirs += 1
        elif kind == "l":
            _clear(path)
            os.symlink(entry["lt"], path)
            self._meta_path(path, entry, symlink=True)
            self.summary.symlinks += 1
        elif kind == "h":
            target_parts = _safe_parts(entry.get("lt"))
            if tuple(target_parts) >= tuple(rel.split("/")):
                raise UnsafePath(f"hard link {rel!r} points to a later entry {entry.get('lt')!r}", key=rel)
            self.window.links.append((path, os.path.join(self.target, *target_parts), entry))
        elif kind == "f":
            self._add_file(rel, path, entry)
        else:
            raise DataCorrupt(f"snapshot entry {rel!r} has unknown type {kind!r}", key=rel)
        w = self.window
        if w.bytes >= _WINDOW_BYTES or len(w.files) >= self.max_fds or len(w.links) >= 10_000:
            self.flush()

    def _add_file(self, rel: str, path: str, entry: Entry) -> None:
        chunks = entry.get("c") or []
        out = _OutFile(rel, path, entry)
        if not chunks:
            if entry.get("s"):
                raise DataCorrupt(f"snapshot entry {rel!r} has {entry['s']} bytes but no chunks", key=rel)
            fd = _create(path)
            try:
                self._meta_fd(fd, out)
            finally:
                os.close(fd)
            self.summary.files += 1
            self.summary.files_verified += 1
            return
        if len(chunks) > 1:
            out.fd = _create(path)
            if entry["s"]:
                os.ftruncate(out.fd, entry["s"])
        offset = 0
        plan = self.window.plan
        for cid_hex, length in chunks:
            cid = bytes.fromhex(cid_hex)
            loc = self.index.lookup(cid)
            if loc is None:
                raise ObjectMissing(
                    f"chunk {cid_hex} of {rel!r} is in no pack of the vault (its pack was deleted or lost)",
                    key=rel,
                )
            pack_id, blob = loc
            slot = plan.setdefault(pack_id, {}).get(cid)
            if slot is None:
                plan[pack_id][cid] = (blob, [(out, offset)])
            else:
                slot[1].append((out, offset))
            offset += length
        self.window.files.append(out)
        self.window.bytes += entry["s"]

    # --- windows --------------------------------------------------------------------------

    def flush(self) -> None:
        w, self.window = self.window, _Window()
        futures: list[Future[None]] = []
        for pack_id, blobs in w.plan.items():
            ordered = sorted(blobs.values(), key=lambda b: b[0].offset)
            for group in _ranges(ordered):
                futures.append(self.pool.submit(self._fetch, pack_id, group))
        try:
            for future in futures:
                while True:
                    try:
                        future.result(timeout=_PROGRESS_INTERVAL)
                        break
                    except TimeoutError:
                        self._report()
        except BaseException:
            for future in futures:
                future.cancel()
            for out in w.files:
                if out.fd >= 0:
                    os.close(out.fd)
            raise
        for out in w.files:
            self._finish_file(out)
        for path, target, entry in w.links:
            self._link(path, target, entry)
        self._report()

    def _fetch(self, pack_id: str, group: list[tuple[BlobEntry, list[tuple[_OutFile, int]]]]) -> None:
        try:
            self._fetch_group(pack_id, group)
        except DataCorrupt as err:
            # The pack is what is damaged; the files are what an operator has lost: name both.
            files = sorted({out.rel for _, dests in group for out, _ in dests})
            named = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
            raise DataCorrupt(f"{err}; it holds data of {named}", key=err.key) from err

    def _fetch_group(self, pack_id: str, group: list[tuple[BlobEntry, list[tuple[_OutFile, int]]]]) -> None:
        key = pack_key(pack_id)
        start = group[0][0].offset
        end = group[-1][0].offset + group[-1][0].length
        with store_errors(key):
            data = self.store.get(key, start=start, end=end - 1)
        if len(data) != end - start:
            raise DataCorrupt(f"vault object {key} is corrupted: truncated", key=key)
        tid = threading.get_ident()
        self.downloaded_by_thread[tid] = self.downloaded_by_thread.get(tid, 0) + len(data)
        dctx = self._dctx()
        view = memoryview(data)
        written = 0
        for blob, dests in group:
            rel_off = blob.offset - start
            plain = decode_blob(self.crypto, dctx, blob, view[rel_off:rel_off + blob.length], object_key=key)
            # Zeros need no writing into a pre-sized multi-chunk file: they stay holes (sparse
            # images restore sparse).  Only near-empty compressed blobs are worth checking.
            zeros = blob.length * 64 < blob.raw_len and plain.count(0) == len(plain)
            for out, offset in dests:
                if out.fd >= 0:
                    if not zeros:
                        _pwrite_all(out.fd, plain, offset)
                else:
                    self._write_small(out, plain, blob.chunk_id)
                written += len(plain)
        self.written_by_thread[tid] = self.written_by_thread.get(tid, 0) + written

    def _write_small(self, out: _OutFile, plain: bytes, chunk_id: bytes) -> None:
        # The whole file is this one chunk, verified by decode_blob, and its id is the file digest.
        if out.entry.get("h") != chunk_id.hex() or len(plain) != out.entry["s"]:
            raise DataCorrupt(f"snapshot entry {out.rel!r}: content digest mismatch", key=out.rel)
        fd = _create(out.path)
        try:
            _pwrite_all(fd, plain, 0)
            self._meta_fd(fd, out)
        finally:
            os.close(fd)

    def _dctx(self) -> zstandard.ZstdDecompressor:
        dctx: zstandard.ZstdDecompressor | None = getattr(self._local, "dctx", None)
        if dctx is None:
            dctx = self._local.dctx = zstandard.ZstdDecompressor()
        return dctx

    def _finish_file(self, out: _OutFile) -> None:
        s = self.summary
        s.files += 1
        s.bytes += out.entry["s"]
        if out.fd < 0:
            s.files_verified += 1
            return
        try:
            if self.verify:
                digest = _hash_fd(self.crypto, out.fd)
                if digest != out.entry.get("h"):
                    raise DataCorrupt(f"restored file {out.rel!r} does not match its digest", key=out.rel)
                s.files_verified += 1
            self._meta_fd(out.fd, out)
        finally:
            os.close(out.fd)
            out.fd = -1

    def _link(self, path: str, target: str, entry: Entry) -> None:
        rel = entry["p"]
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            raise UnsafePath(f"hard link {rel!r}: target {entry['lt']!r} was not restored", key=rel) from None
        if not S_ISREG(st.st_mode) or os.path.realpath(target) != os.path.join(self.target_real, entry["lt"]):
            raise UnsafePath(
                f"hard link {rel!r}: target {entry['lt']!r} is not a file inside the target", key=rel
            )
        _clear(path)
        os.link(target, path, follow_symlinks=False)
        self.summary.hardlinks += 1

    # --- metadata -------------------------------------------------------------------------

    def _warn(self, path: str, what: str) -> None:
        with self._lock:
            self.summary.metadata_warnings += 1
            if len(self.summary.warning_paths) < MAX_ERROR_PATHS:
                self.summary.warning_paths.append(f"{path}: {what}")

    def _meta_fd(self, fd: int, out: _OutFile) -> None:
        e = out.entry
        if self.chown:
            try:
                os.fchown(fd, e["u"], e["g"])
            except OSError as exc:
                self._warn(out.rel, f"owner not set ({exc.strerror})")
        os.fchmod(fd, e["m"])
        os.utime(fd, ns=(e["at"], e["mt"]))

    def _meta_path(self, path: str, e: Entry, *, symlink: bool = False) -> None:
        if self.chown:
            try:
                os.chown(path, e["u"], e["g"], follow_symlinks=False)
            except OSError as exc:
                self._warn(e["p"], f"owner not set ({exc.strerror})")
        if not symlink:
            os.chmod(path, e["m"])
        try:
            os.utime(path, ns=(e["at"], e["mt"]), follow_symlinks=False)
        except OSError as exc:
            self._warn(e["p"], f"times not set ({exc.strerror})")

    def finish(self) -> None:
        self.flush()
        for path, entry in reversed(self.dirs):
            self._meta_path(path, entry)
        self.pool.shutdown(wait=True)
        self._report(force=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        for out in self.window.files:
            if out.fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(out.fd)

    def _report(self, *, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < _PROGRESS_INTERVAL:
            return
        self._last_progress = now
        written = sum(self.written_by_thread.values())
        self.progress(Progress(
            files_done=self.summary.files, bytes_done=min(written, self.bytes_total),
            files_total=self.files_total, bytes_total=self.bytes_total,
        ))


class _Selection:
    """The chosen paths of a partial restore, and the directories above them."""

    def __init__(self, paths: Sequence[str]) -> None:
        wanted: list[str] = []
        for raw in paths:
            # From the volume's root: "/site", "./site" and "site/" all name site.
            rel = raw.lstrip("/").removeprefix("./").rstrip("/")
            try:
                wanted.append("" if rel in ("", ".") else "/".join(_safe_parts(rel)))  # "": everything
            except UnsafePath:
                raise UnsafeChoice(f"chosen path {raw!r} leaves the volume or is not normalised "
                                   "(no '..', '.' or empty parts)", key=raw) from None
        if not wanted:
            raise UnsafeChoice("no path chosen to restore", key="")
        self.paths = sorted(set(wanted))
        self.everything = "" in self.paths

    def _chosen(self, rel: str) -> bool:
        return self.everything or any(rel == p or rel.startswith(p + "/") for p in self.paths)

    def wants(self, entry: Entry, summary: RestoreSummary) -> bool:
        rel = str(entry.get("p"))
        if rel == ".":
            return True
        if self._chosen(rel):
            link = entry.get("lt")
            if entry.get("t") == "h" and not self._chosen(str(link)):
                # Its data lives at the link's target, which was not chosen: say so, restore the rest.
                summary.warning_paths.append(f"{rel}: hard link to {link}, which was not chosen")
                return False
            return True
        return entry.get("t") == "d" and any(p.startswith(rel + "/") for p in self.paths)

    def missing(self, store: ObjectStore, repo: Repo, snapshot_id: str) -> list[str]:
        """The chosen paths the snapshot does not hold (one pass over its manifest)."""
        left = {p for p in self.paths if p}
        with ManifestReader(store, repo.crypto, snapshot_id) as reader:
            for entry in reader.entries():
                left.discard(str(entry.get("p")))
                if not left:
                    break
        return sorted(left)


def _exists(target: str, entry: Entry) -> bool:
    return os.path.lexists(os.path.join(target, *str(entry.get("p")).split("/")))


def _safe_parts(rel: Any) -> list[str]:
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\0" in rel:
        raise UnsafePath(f"snapshot entry path {rel!r} is absolute or invalid", key=str(rel))
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafePath(f"snapshot entry path {rel!r} leaves the target or is not normalised", key=rel)
    return parts


def _ranges(blobs: list[tuple[BlobEntry, list[tuple[_OutFile, int]]]]
            ) -> list[list[tuple[BlobEntry, list[tuple[_OutFile, int]]]]]:
    """Group blobs (sorted by offset) into ranges worth one read each."""
    groups: list[list[tuple[BlobEntry, list[tuple[_OutFile, int]]]]] = []
    current: list[tuple[BlobEntry, list[tuple[_OutFile, int]]]] = []
    start = end = 0
    for item in blobs:
        blob = item[0]
        if current and (blob.offset - end > _RANGE_GAP or blob.offset + blob.length - start > _RANGE_MAX):
            groups.append(current)
            current = []
        if not current:
            start = blob.offset
        current.append(item)
        end = blob.offset + blob.length
    if current:
        groups.append(current)
    return groups


def _clear(path: str) -> None:
    """Remove whatever is at path (never following a symlink)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _make_dir(path: str) -> None:
    try:
        # Private until the end: the final mode may forbid writing the children.
        os.mkdir(path, 0o700)
    except FileExistsError:
        st = os.lstat(path)
        if S_ISDIR(st.st_mode) and not S_ISLNK(st.st_mode):
            os.chmod(path, 0o700 | (st.st_mode & 0o777))
            return
        os.unlink(path)
        os.mkdir(path, 0o700)


def _create(path: str) -> int:
    # O_RDWR: multi-chunk files are read back to verify their digest.
    flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ETXTBSY, errno.EACCES):
            raise
    _clear(path)  # a symlink, directory or read-only file stands where the file goes
    return os.open(path, flags, 0o600)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _hash_fd(crypto: Crypto, fd: int) -> str:
    # The re-read of a restored file: a big one is hashed on every core (a 4 GiB image alone
    # took ~2 s on one), small ones stay single-threaded (many are hashed at once anyway).
    hasher = crypto.hasher(threads=os.fstat(fd).st_size >= _THREADED_HASH_BYTES)
    offset = 0
    while True:
        block = os.pread(fd, 8 * 1024 * 1024, offset)
        if not block:
            return hasher.hexdigest()
        hasher.update(block)
        offset += len(block)


def check_paths(store: ObjectStore, snapshot_id: str, paths: Sequence[str], *, key: bytes | None = None
                ) -> list[str]:
    """The chosen ``paths`` of a partial restore, normalised, once they are known to be safe and
    held by the snapshot: raises UnsafeChoice or PathNotInSnapshot (what restore_tree would raise
    before writing anything), so a job can refuse a bad choice before it prepares a volume."""
    repo = Repo.open(store, key, create=False)
    chosen = _Selection(paths)
    missing = chosen.missing(store, repo, snapshot_id)
    if missing:
        raise PathNotInSnapshot(f"snapshot {snapshot_id} holds no {', '.join(map(repr, missing))}",
                                key=missing[0])
    return chosen.paths


def restore_tree(
    store: ObjectStore,
    snapshot_id: str,
    target: Path | str,
    *,
    key: bytes | None = None,
    progress: ProgressCallback | None = None,
    workers: int = 4,
    verify: bool = True,
    cache_dir: Path | None = None,
    paths: Sequence[str] | None = None,
    overwrite: bool = True,
) -> RestoreSummary:
    """Write snapshot ``snapshot_id`` under ``target`` (created if missing).

    Existing entries at the snapshot's paths are replaced (kept, when ``overwrite`` is false);
    other files in target are left alone.  ``paths`` restores only those files and directories
    (with the directories above them), each relative to the volume's root; one the snapshot does
    not hold is refused (PathNotInSnapshot) before anything is written.  Raises UnsafePath,
    ObjectMissing / DataCorrupt (naming the vault object) or EncryptionKeyMismatch; owner changes
    the OS refuses are counted as metadata warnings.
    """
    started = time.monotonic()
    repo = Repo.open(store, key, create=False)
    chosen = _Selection(paths) if paths is not None else None
    if chosen is not None:
        missing = chosen.missing(store, repo, snapshot_id)
        if missing:
            raise PathNotInSnapshot(f"snapshot {snapshot_id} holds no {', '.join(map(repr, missing))}",
                                    key=missing[0])
    target_str = os.fspath(target)
    existed = os.path.isdir(target_str)
    os.makedirs(target_str, exist_ok=True)
    summary = RestoreSummary(snapshot_id=snapshot_id, target=target_str)
    with ManifestReader(store, repo.crypto, snapshot_id) as reader:
        if reader.header.get("snapshot_id") != snapshot_id:
            raise DataCorrupt(f"vault object {reader.key} holds another snapshot", key=reader.key)
        footer = reader.footer()
        # Restores read index objects only: a chunk whose pack is gone then fails loudly with
        # the pack's name when it is fetched.
        index = load_index(repo, recover=False, require_packs=False, cache_dir=cache_dir)
        job = _Restore(repo, index, target_str, summary, workers=workers, verify=verify, progress=progress,
                       files_total=int(footer.get("files", 0)), bytes_total=int(footer.get("bytes", 0)))
        job.stamp_root = not existed
        kept: set[str] = set()  # files left as they were: a hard link to one must not join them
        try:
            for entry in reader.entries():
                if chosen is not None and not chosen.wants(entry, summary):
                    continue
                rel = str(entry.get("p"))
                if not overwrite and rel != "." and _exists(target_str, entry):
                    if entry.get("t") != "d":
                        summary.kept_existing += 1
                        kept.add(rel)
                    continue
                if entry.get("t") == "h" and entry.get("lt") in kept:
                    summary.warning_paths.append(f"{rel}: hard link to {entry.get('lt')}, which was already "
                                                 "there and kept: not linked to it")
                    continue
                job.add(entry)
            job.finish()
        finally:
            job.close()
        summary.bytes_downloaded = sum(job.downloaded_by_thread.values())
    summary.duration_seconds = round(time.monotonic() - started, 3)
    return summary
