"""The repository-level chunk index: which chunks the vault already holds, and where.

Built at the start of every run from the per-pack index objects (``data/index/``), fetched in
parallel and optionally cached on local disk (they are immutable, named by pack id).  Packs
without an index object — a run died between uploading a pack and its index — are re-indexed
from the pack's trailer, so a resumed backup never uploads them again.  Index objects whose pack
is gone are ignored, so nothing deduplicates against data that no longer exists.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Container, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from vault.store import ObjectExists, ObjectInfo, ObjectStore

from .errors import store_errors
from .packs import BlobEntry, open_index, read_pack_index, table_entry, table_ids
from .repo import INDEX_PREFIX, PACKS_PREFIX, Repo, index_key, pack_id_of, pack_key

# A chunk's place: the pack's number in ChunkIndex.tables, shifted, or-ed with the entry's position.
_POS_BITS = 32
_POS_MASK = (1 << _POS_BITS) - 1


@dataclass
class ChunkIndex:
    """Chunk id -> (pack, entry), compact: one dict slot with an int per chunk.

    Loaded pack indexes stay as their fixed-size entry tables (bytes) and an entry is unpacked
    only when looked up.  A backup only asks whether a chunk is there: loaded with
    ``lookups=False`` the index is a set of ids and nothing else (about half the memory at a
    million chunks).  ``members`` is what to test ``in`` against, either way."""

    locations: dict[bytes, int] = field(default_factory=dict)
    tables: list[tuple[str, bytes | list[BlobEntry]]] = field(default_factory=list)
    packs: set[str] = field(default_factory=set)
    recovered_packs: int = 0
    dangling_indexes: int = 0
    lookups: bool = True
    ids: set[bytes] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.members: Container[bytes] = self.locations if self.lookups else self.ids

    def _add(self, pack_id: str, table: bytes | list[BlobEntry], ids: list[bytes]) -> None:
        self.packs.add(pack_id)
        if not self.lookups:
            self.ids.update(ids)
            return
        base = len(self.tables) << _POS_BITS
        self.tables.append((pack_id, table))
        setdefault = self.locations.setdefault
        # setdefault: a chunk stored twice (two concurrent backups) keeps its first location.
        for slot, chunk_id in enumerate(ids, base):
            setdefault(chunk_id, slot)

    def add_pack(self, pack_id: str, entries: list[BlobEntry]) -> None:
        self._add(pack_id, entries, [e.chunk_id for e in entries])

    def add_table(self, pack_id: str, table: bytes) -> None:
        """A pack index as opened by packs.open_index."""
        self._add(pack_id, table, table_ids(table))

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self.members

    def __len__(self) -> int:
        return len(self.locations) if self.lookups else len(self.ids)

    def items(self) -> Iterator[tuple[bytes, tuple[str, BlobEntry]]]:
        """Every chunk with its (pack, entry)."""
        for chunk_id in self.locations:
            found = self.lookup(chunk_id)
            if found is not None:
                yield chunk_id, found

    def lookup(self, chunk_id: bytes) -> tuple[str, BlobEntry] | None:
        if not self.lookups:
            raise RuntimeError("chunk index loaded for membership only (lookups=False)")
        slot = self.locations.get(chunk_id)
        if slot is None:
            return None
        pack_id, table = self.tables[slot >> _POS_BITS]
        pos = slot & _POS_MASK
        return pack_id, table[pos] if isinstance(table, list) else table_entry(table, pos)


def list_ids(store: ObjectStore, prefix: str) -> dict[str, ObjectInfo]:
    return {pack_id_of(o.key): o for o in store.list(prefix) if isinstance(o, ObjectInfo)}


def load_index(repo: Repo, *, workers: int = 8, recover: bool = True, require_packs: bool = True,
               cache_dir: Path | None = None, lookups: bool = True) -> ChunkIndex:
    """The vault's chunk index.

    ``recover`` re-indexes packs that have no index object; ``require_packs`` drops index
    objects whose pack is missing.  Backups want both (never dedup against lost data); restores
    want neither (a missing pack must fail loudly, by name, when its data is needed).
    """
    store = repo.store
    # Indexes first, then packs: a pack is uploaded before its index, so every index listed
    # here has its pack in the second listing unless the pack is really gone.
    index_ids = list_ids(store, INDEX_PREFIX)
    pack_ids = list_ids(store, PACKS_PREFIX) if (recover or require_packs) else {}
    cache = IndexCache(cache_dir, repo.repo_id) if cache_dir is not None else None
    index = ChunkIndex(lookups=lookups)

    def fetch(pack_id: str) -> tuple[str, bytes]:
        key = index_key(pack_id)
        sealed = cache.get(pack_id) if cache else None
        if sealed is None:
            with store_errors(key):
                sealed = store.get(key)
            if cache:
                cache.put(pack_id, sealed)
        return pack_id, open_index(repo.crypto, sealed, object_key=key)

    def recover_one(pack_id: str) -> tuple[str, list[BlobEntry]]:
        sealed, entries = read_pack_index(store, repo.crypto, pack_key(pack_id))
        with contextlib.suppress(ObjectExists):
            store.put(index_key(pack_id), sealed, if_absent=True)
        return pack_id, entries

    live = [p for p in index_ids if p in pack_ids] if require_packs else list(index_ids)
    orphans = [p for p in pack_ids if p not in index_ids] if recover else []
    index.dangling_indexes = len(index_ids) - len(live)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for pack_id, table in pool.map(fetch, live):
            index.add_table(pack_id, table)
        for pack_id, entries in pool.map(recover_one, orphans):
            index.add_pack(pack_id, entries)
            index.recovered_packs += 1
    return index


class IndexCache:
    """Pack indexes on local disk, still sealed; safe to share because they never change.

    Filled by index loads and by backups (with the indexes of the packs they upload)."""

    def __init__(self, root: Path, repo_id: str) -> None:
        self.dir = root / repo_id / "index"
        self.dir.mkdir(parents=True, exist_ok=True)

    def get(self, pack_id: str) -> bytes | None:
        try:
            return (self.dir / pack_id).read_bytes()
        except OSError:
            return None

    def put(self, pack_id: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.dir / pack_id)
        except OSError:
            # A cache that cannot be written only costs speed.
            with contextlib.suppress(OSError):
                os.unlink(tmp)
