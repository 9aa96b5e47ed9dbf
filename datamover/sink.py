"""Where backup workers send chunks: dedup against the vault, compress, seal, pack, upload.

Many reader threads call ``add``; packs are uploaded by a small pool.  Memory stays bounded:
one pack being filled plus at most ``max_inflight`` finished packs waiting for the store (a
reader blocks when the slots are taken, which throttles reading to the store's speed).

Crash safety: a pack is written before its index object, both put-if-absent, and a chunk only
counts as stored (for dedup by later files) once its pack's index is written.  A run killed at
any point leaves packs the next run finds (index objects, or the pack trailer) and skips.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import zstandard

from vault.store import ObjectExists

from .index import ChunkIndex, IndexCache
from .packs import PackBuilder, encode_blob
from .repo import Repo, index_key, pack_key

# 8 MiB: what a run killed mid-way loses (the pack being filled and those still uploading) stays
# near 5% of a 500 MiB volume (bench/datamover_resume.py), and memory stays low; still few objects.
PACK_TARGET = 8 * 1024 * 1024


class PackSink:
    def __init__(self, repo: Repo, index: ChunkIndex, *, pack_size: int = PACK_TARGET,
                 compression_level: int = 3, upload_workers: int = 2, max_inflight: int = 3,
                 index_cache: IndexCache | None = None) -> None:
        self.repo = repo
        self.index_cache = index_cache
        self.index = index
        self.pack_size = pack_size
        self.level = compression_level
        self._lock = threading.Lock()
        self._pending: set[bytes] = set()
        self._pack = PackBuilder()
        self._pool = ThreadPoolExecutor(upload_workers, thread_name_prefix="kbc-upload")
        self._slots = threading.BoundedSemaphore(max_inflight)
        self._futures: list[Future[None]] = []
        self._error: BaseException | None = None
        self._local = threading.local()
        self.new_chunks = 0
        self.new_bytes = 0
        self.uploaded_bytes = 0
        self.packs_uploaded = 0

    def _cctx(self) -> zstandard.ZstdCompressor:
        cctx: zstandard.ZstdCompressor | None = getattr(self._local, "cctx", None)
        if cctx is None:
            cctx = self._local.cctx = zstandard.ZstdCompressor(level=self.level)
        return cctx

    def add(self, chunk_id: bytes, data: bytes | memoryview) -> bool:
        """Store one chunk unless the vault (or a pack being built) has it.  True when new."""
        if self._error is not None:
            raise self._error
        with self._lock:
            if chunk_id in self.index.members or chunk_id in self._pending:
                return False
            self._pending.add(chunk_id)
        # Compression and sealing run outside the lock, in the reader's thread (they release the GIL).
        blob, flags = encode_blob(self.repo.crypto, self._cctx(), chunk_id, data)
        with self._lock:
            full = self._append(chunk_id, blob, len(data), flags)
        if full is not None:
            self._submit(full)
        return True

    def add_sealed(self, blobs: list[tuple[bytes, bytes, int, int]]) -> None:
        """Store chunks already encoded (packs.encode_blob) by a reader process, unless known:
        (chunk id, blob, plain length, flags) each."""
        if self._error is not None:
            raise self._error
        full: list[PackBuilder] = []
        with self._lock:
            known, pending = self.index.members, self._pending
            for chunk_id, blob, raw_len, flags in blobs:
                if chunk_id in known or chunk_id in pending:
                    continue
                pending.add(chunk_id)
                pack = self._append(chunk_id, blob, raw_len, flags)
                if pack is not None:
                    full.append(pack)
        for pack in full:
            self._submit(pack)

    def _append(self, chunk_id: bytes, blob: bytes, raw_len: int, flags: int) -> PackBuilder | None:
        """Under the lock: the blob goes into the pack being built; a full pack is returned."""
        self._pack.add(chunk_id, blob, raw_len, flags)
        self.new_chunks += 1
        self.new_bytes += raw_len
        if self._pack.size < self.pack_size:
            return None
        full, self._pack = self._pack, PackBuilder()
        return full

    def _submit(self, pack: PackBuilder) -> None:
        self._slots.acquire()
        try:
            future = self._pool.submit(self._upload, pack)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        with self._lock:
            self._futures = [f for f in self._futures if not f.done()]
            self._futures.append(future)

    def _upload(self, pack: PackBuilder) -> None:
        try:
            pack_id, data, sealed_index = pack.finish(self.repo.crypto)
            store = self.repo.store
            # ObjectExists: identical bytes are already stored (content-addressed).
            with contextlib.suppress(ObjectExists):
                store.put(pack_key(pack_id), data, if_absent=True)
            with contextlib.suppress(ObjectExists):
                store.put(index_key(pack_id), sealed_index, if_absent=True)
            if self.index_cache is not None:
                self.index_cache.put(pack_id, sealed_index)
            with self._lock:
                self.index.add_pack(pack_id, pack.entries)
                self._pending.difference_update(e.chunk_id for e in pack.entries)
                self.uploaded_bytes += len(data) + len(sealed_index)
                self.packs_uploaded += 1
        except BaseException as exc:
            if self._error is None:
                self._error = exc
            raise

    def flush(self) -> None:
        """Upload the last partial pack and wait for every upload; re-raise the first failure."""
        if self._error is None:
            with self._lock:
                last, self._pack = self._pack, PackBuilder()
            if last.entries:
                self._submit(last)
        with self._lock:
            futures = list(self._futures)
        for future in futures:
            future.exception()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
