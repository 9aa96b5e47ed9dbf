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
from vault.store import M, ObjectInfo, ObjectNotFound, ObjectStore, get_model, put_model

RESTORES_PREFIX = "restores/"
RUN = "run.json"
DISCOVERY = "discovery.json"
CONTEXT = "context.json"
SOURCES = "volume-sources.json"
EXPLAIN = "explain.jsonl.zst"

_RESOURCES = TypeAdapter(list[ApiResource])


def restore_prefix(cluster_id: str, name: str) -> str:
    return f"{RESTORES_PREFIX}{cluster_id}/{name}/"


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


def get_optional(store: ObjectStore, key: str) -> bytes | None:
    try:
        return store.get(key)
    except ObjectNotFound:
        return None


class RestoreFolder:
    """One restore's folder in the vault (the layout above): every key and record of it, by name."""

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix

    @classmethod
    def of(cls, store: ObjectStore, cluster_id: str, name: str) -> RestoreFolder:
        return cls(store, restore_prefix(cluster_id, name))

    def key(self, name: str) -> str:
        return self.prefix + name

    # --- JSON records (run.json, context.json, volume-sources.json, ...) ------------------------
    def read(self, name: str, model: type[M]) -> M | None:
        return get_model(self.store, self.prefix + name, model)

    def require(self, name: str, model: type[M]) -> M:
        """A record an earlier step of the restore wrote (ObjectNotFound naming it if not)."""
        found = self.read(name, model)
        if found is None:
            raise ObjectNotFound(f"{name} of the restore is missing", key=self.prefix + name)
        return found

    def write(self, name: str, record: BaseModel) -> None:
        put_model(self.store, self.prefix + name, record, indent=None)

    def put_discovery(self, resources: list[ApiResource]) -> None:
        self.store.put(self.prefix + DISCOVERY, _RESOURCES.dump_json(resources))

    def discovery(self) -> list[ApiResource]:
        return _RESOURCES.validate_json(self.store.get(self.prefix + DISCOVERY))

    # --- per-phase outcomes and owners, explanations -------------------------------------------
    def outcomes_key(self, phase: Phase) -> str:
        # The phase number first: listing the folder returns the phases in restore order.
        return f"{self.prefix}outcomes/{phase.value}-{phase.name}.jsonl.zst"

    def owners_key(self, phase: Phase) -> str:
        return f"{self.prefix}owners/{phase.value}-{phase.name}.json"

    @property
    def explain_key(self) -> str:
        return self.prefix + EXPLAIN

    def read_owners(self, before: Phase) -> dict[str, str]:
        """New uids recorded by the phases before ``before`` (owner_key -> uid)."""
        owners: dict[str, str] = {}
        for phase in Phase:
            if phase >= before:
                break
            raw = get_optional(self.store, self.owners_key(phase))
            if raw:
                owners.update(json.loads(raw))
        return owners

    def read_outcomes(self, phase: Phase | None = None) -> Iterator[ItemOutcome]:
        """Outcomes of one phase, or of every phase in restore order, streamed."""
        keys = [self.outcomes_key(phase)] if phase is not None else [
            e.key for e in self.store.list(self.prefix + "outcomes/") if isinstance(e, ObjectInfo)]
        for key in keys:
            if phase is not None and not self.store.exists(key):
                return
            for line in read_bundle(self.store, key):
                yield ItemOutcome.model_validate(line)

    def read_explanations(self) -> Iterator[Explanation]:
        if not self.store.exists(self.explain_key):
            return
        for line in read_bundle(self.store, self.explain_key):
            yield Explanation.model_validate(line)

    # --- the folder as a whole ------------------------------------------------------------------
    def claim(self, marker: RunMarker) -> int:
        """Make the folder this run's: leftovers of an earlier restore of the same name are removed.

        Returns how many stale objects were removed.  A retry of the same run keeps its objects.
        """
        found = self.read(RUN, RunMarker)
        if found is not None and found.uid == marker.uid:
            return 0
        removed = self.delete()
        self.write(RUN, marker)
        return removed

    def delete(self) -> int:
        keys = [e.key for e in self.store.list(self.prefix) if isinstance(e, ObjectInfo)]
        for key in keys:
            self.store.delete(key)
        return len(keys)

