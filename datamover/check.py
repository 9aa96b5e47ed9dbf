"""Checking a file-level snapshot without restoring it (``backupctl backup verify``).

Without ``read_data``: the manifest decodes, every chunk it references is in the chunk index, and
every pack holding one exists.  With ``read_data`` (like ``restic check --read-data``): every pack is
read as well and every referenced chunk decrypts and matches its id.  Nothing is written; each
problem names the vault object at fault and the files it affects.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import zstandard

from vault.store import ObjectCorrupt, ObjectInfo, ObjectNotFound, ObjectStore

from .errors import DataCorrupt, ObjectMissing
from .index import ChunkIndex, list_ids, load_index
from .manifest import ManifestReader
from .packs import BlobEntry, decode_blob
from .repo import PACKS_PREFIX, Repo, pack_key, snapshot_key

# Files named per problem: enough to act on, small enough for a report.
MAX_AFFECTED = 20


@dataclass
class Problem:
    object: str  # the vault object at fault
    problem: str
    files: list[str] = field(default_factory=list)  # paths inside the volume it affects (first few)
    more_files: int = 0


@dataclass
class SnapshotCheck:
    snapshot_id: str
    files: int = 0
    chunks: int = 0
    packs: int = 0
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)


def _affected(paths: list[str]) -> tuple[list[str], int]:
    unique = sorted(set(paths))
    return unique[:MAX_AFFECTED], max(0, len(unique) - MAX_AFFECTED)


def open_index(store: ObjectStore, key: bytes | None = None) -> tuple[Repo, ChunkIndex]:
    """The vault's data mover repository and its chunk index, as a restore reads them: index
    objects only (recovering packs without one would write index objects, and a check writes
    nothing), whether or not their packs are still there (that is checked per snapshot)."""
    repo = Repo.open(store, key, create=False)
    return repo, load_index(repo, recover=False, require_packs=False)


def stored_packs(store: ObjectStore) -> dict[str, ObjectInfo]:
    """The packs in the vault (listed once for all the snapshots checked)."""
    return list_ids(store, PACKS_PREFIX)


def check_snapshot(
    store: ObjectStore,
    snapshot_id: str,
    *,
    repo: Repo,
    index: ChunkIndex,
    stored: dict[str, ObjectInfo] | None = None,
    read_data: bool = False,
    workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> SnapshotCheck:
    """Problems are what the vault holds wrongly (missing, corrupt); an unreachable vault or a wrong
    key raises, so the caller retries instead of calling good data bad."""
    result = SnapshotCheck(snapshot_id)
    # Per pack, each chunk once (a chunk used by many files, or many times in one, is read once),
    # with the first file using it, for the report.
    by_pack: dict[str, dict[bytes, tuple[BlobEntry, str]]] = {}
    missing: list[str] = []
    manifest = snapshot_key(snapshot_id)
    try:
        with ManifestReader(store, repo.crypto, snapshot_id) as reader:
            if reader.header.get("snapshot_id") != snapshot_id:
                raise DataCorrupt(f"vault object {manifest} holds another snapshot", key=manifest)
            for entry in reader.entries():
                chunks = entry.get("c")
                if entry.get("t") != "f" or not chunks:
                    continue
                result.files += 1
                for chunk_hex, _length in chunks:
                    result.chunks += 1
                    cid = bytes.fromhex(chunk_hex)
                    found = index.lookup(cid)
                    if found is None:
                        missing.append(entry["p"])
                    else:
                        by_pack.setdefault(found[0], {}).setdefault(cid, (found[1], entry["p"]))
            reader.footer()  # a restore reads it: it must decode too
    except ObjectMissing:
        result.problems.append(Problem(manifest, "the snapshot's manifest is missing"))
        return result
    except (DataCorrupt, ValueError, OSError) as err:
        result.problems.append(Problem(manifest, f"the snapshot's manifest is corrupt: {err}"))
        return result
    if missing:
        files, more = _affected(missing)
        result.problems.append(Problem(snapshot_key(snapshot_id), f"references {len(missing)} chunk(s) that "
                                       "no pack in the vault holds", files, more))
    if stored is None:
        stored = stored_packs(store)
    result.packs = len(by_pack)
    for pack_id in sorted(by_pack):
        if pack_id not in stored:
            files, more = _affected([path for _, path in by_pack[pack_id].values()])
            result.problems.append(Problem(pack_key(pack_id), "pack is missing", files, more))
    if read_data:
        present = [p for p in sorted(by_pack) if p in stored]
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="kbc-check") as pool:
            for read, problem in pool.map(lambda p: _read_pack(store, repo, p, list(by_pack[p].values())),
                                          present):
                result.bytes_read += read
                if progress is not None:
                    progress(read)
                if problem is not None:
                    result.problems.append(problem)
    return result


def _read_pack(
    store: ObjectStore, repo: Repo, pack_id: str, blobs: list[tuple[BlobEntry, str]]
) -> tuple[int, Problem | None]:
    """Read one pack and decode every chunk of it the snapshot uses."""
    key = pack_key(pack_id)
    try:
        data = store.get(key)
    except (ObjectNotFound, ObjectCorrupt) as err:
        # Gone since the listing, or failing the store's own checksum; other store errors (an
        # outage) raise: that is not the backup's fault, and the activity retries.
        files, more = _affected([path for _, path in blobs])
        what = "missing" if isinstance(err, ObjectNotFound) else f"corrupt: {err}"
        return 0, Problem(key, f"pack is {what}", files, more)
    dctx = zstandard.ZstdDecompressor()
    view = memoryview(data)
    bad: list[str] = []
    first = ""
    for blob, path in blobs:
        try:
            if blob.offset + blob.length > len(data):
                raise DataCorrupt(f"vault object {key} is corrupted: truncated", key=key)
            decode_blob(repo.crypto, dctx, blob, view[blob.offset:blob.offset + blob.length], object_key=key)
        except DataCorrupt as err:
            bad.append(path)
            first = first or str(err)
    if not bad:
        return len(data), None
    files, more = _affected(bad)
    return len(data), Problem(key, f"{len(bad)} chunk(s) do not decode to their id ({first})", files, more)
