"""Where a restore keeps its working data in the vault, and how it writes and reads it.

``restores/<cluster>/<restore>/`` holds, per run (restore names are per cluster, vaults are shared):

``run.json``                     the run that owns the prefix (a reused name clears older leftovers)
``discovery.json``               the target cluster's served resources
``context.json``                 the RestoreContext learnt from the target (classes, image rules, PVs)
``volume-sources.json``          how each PVC gets its data (snapshot, files, none)
``outcomes/<phase>.jsonl.zst``   one ItemOutcome per restored object, per phase
``owners/<phase>.json``          new uids of restored objects, for ownerReferences of later phases
``explain.jsonl.zst``            why something is missing (kube.restore.explain)

Activities rewrite a whole object on retry, so a retried activity never duplicates lines.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator

import zstandard
from pydantic import BaseModel, TypeAdapter

from kube.discovery import ApiResource
from kube.export import read_bundle
from kube.restore.explain import Explanation, ItemOutcome
from kube.restore.order import Phase
from vault.store import ObjectInfo, ObjectNotFound, ObjectStore

RESTORES_PREFIX = "restores/"
RUN = "run.json"
DISCOVERY = "discovery.json"
CONTEXT = "context.json"
SOURCES = "volume-sources.json"
EXPLAIN = "explain.jsonl.zst"

_RESOURCES = TypeAdapter(list[ApiResource])


def restore_prefix(cluster_id: str, name: str) -> str:
    return f"{RESTORES_PREFIX}{cluster_id}/{name}/"


def outcomes_key(prefix: str, phase: Phase) -> str:
    # The phase number first: listing the folder returns the phases in restore order.
    return f"{prefix}outcomes/{phase.value}-{phase.name}.jsonl.zst"


def owners_key(prefix: str, phase: Phase) -> str:
    return f"{prefix}owners/{phase.value}-{phase.name}.json"


class RunMarker(BaseModel):
    uid: str
    backup: str


class JsonLinesSpool:
    """zstd JSON lines spooled to a temporary file, uploaded in one put: memory stays flat."""

    def __init__(self) -> None:
        # Closed by upload() or discard(): the spool outlives any one with-block.
        self._file = tempfile.TemporaryFile(prefix="restore-")  # noqa: SIM115
        self._zstd = zstandard.ZstdCompressor(level=3).stream_writer(self._file, closefd=False)
        self.count = 0

    def write(self, item: BaseModel) -> None:
        self._zstd.write(item.model_dump_json().encode() + b"\n")
        self.count += 1

    def upload(self, store: ObjectStore, key: str) -> None:
        self._zstd.close()
        size = self._file.tell()
        self._file.seek(0)
        store.put_stream(key, self._file, size=size)
        self._file.close()

    def discard(self) -> None:
        self._zstd.close()
        self._file.close()


def put_json(store: ObjectStore, key: str, model: BaseModel) -> None:
    store.put(key, model.model_dump_json().encode())


def put_resources(store: ObjectStore, key: str, resources: list[ApiResource]) -> None:
    store.put(key, _RESOURCES.dump_json(resources))


def get_resources(store: ObjectStore, key: str) -> list[ApiResource]:
    return _RESOURCES.validate_json(store.get(key))


def get_optional(store: ObjectStore, key: str) -> bytes | None:
    try:
        return store.get(key)
    except ObjectNotFound:
        return None


def read_owners(store: ObjectStore, prefix: str, before: Phase) -> dict[str, str]:
    """New uids recorded by the phases before ``before`` (owner_key -> uid)."""
    owners: dict[str, str] = {}
    for phase in Phase:
        if phase >= before:
            break
        raw = get_optional(store, owners_key(prefix, phase))
        if raw:
            owners.update(json.loads(raw))
    return owners


def read_outcomes(store: ObjectStore, prefix: str, phase: Phase | None = None) -> Iterator[ItemOutcome]:
    """Outcomes of one phase, or of every phase in restore order, streamed."""
    keys = [outcomes_key(prefix, phase)] if phase is not None else [
        e.key for e in store.list(prefix + "outcomes/") if isinstance(e, ObjectInfo)]
    for key in keys:
        if phase is not None and not store.exists(key):
            return
        for line in read_bundle(store, key):
            yield ItemOutcome.model_validate(line)


def read_explanations(store: ObjectStore, prefix: str) -> Iterator[Explanation]:
    if not store.exists(prefix + EXPLAIN):
        return
    for line in read_bundle(store, prefix + EXPLAIN):
        yield Explanation.model_validate(line)


def claim_prefix(store: ObjectStore, prefix: str, marker: RunMarker) -> int:
    """Make the prefix this run's: leftovers of an earlier restore of the same name are removed.

    Returns how many stale objects were removed.  A retry of the same run keeps its objects.
    """
    raw = get_optional(store, prefix + RUN)
    if raw is not None and RunMarker.model_validate_json(raw).uid == marker.uid:
        return 0
    removed = delete_prefix(store, prefix)
    put_json(store, prefix + RUN, marker)
    return removed


def delete_prefix(store: ObjectStore, prefix: str) -> int:
    keys = [e.key for e in store.list(prefix) if isinstance(e, ObjectInfo)]
    for key in keys:
        store.delete(key)
    return len(keys)

