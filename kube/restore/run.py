"""One restore phase from the vault into the cluster, and the final explanation of what is missing.

Everything is read from and written to the restore's vault folder (:mod:`kube.restore.records`):
the backup's bundles are streamed object by object, outcomes are spooled and uploaded, and only
counts and bounded samples are returned.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from kube.discovery import ApiResource
from kube.export import BundleIndex, ResourceIndex, read_bundle, read_index
from kube.rest import Kube
from kube.restore.apply import ApplyOptions, ObjectApplier, Prepare, Recorder, object_path, run_bounded
from kube.restore.context import RestoreContext
from kube.restore.explain import ItemOutcome, ItemStatus, MissingReason, explain_missing
from kube.restore.kinds import canonical_resource, group_resource
from kube.restore.order import Phase
from kube.restore.records import CONTEXT, SOURCES, JsonLinesSpool, RestoreFolder
from kube.restore.selection import bundle_resource, item_selected, selected_bundles
from kube.restore.versions import VersionChoice, choose_versions
from kube.restore.volumes import VolumeSources, data_source_preparer
from schemas.errors import ErrorInfo
from schemas.restore import GroupPlan, GroupResult, Samples
from schemas.specs import RestoreSpec
from schemas.status import ItemIssue

Progress = Callable[[int, str], None]  # (objects done, current resource)
HEARTBEAT_SECONDS = 1.0


class Plan:
    """The backup's index, the target's discovery and the version chosen per resource."""

    def __init__(self, folder: RestoreFolder, spec: RestoreSpec) -> None:
        self.index: ResourceIndex = read_index(folder.store, spec.backup)
        self.target: list[ApiResource] = folder.discovery()
        self.bundles = selected_bundles(self.index, spec, self.target)
        self.choices: dict[str, VersionChoice] = choose_versions(self.bundles, self.target)

    def source_bundle(self, resource: str) -> BundleIndex | None:
        """The bundle to read objects from: the chosen one, else (unserved) any captured one."""
        choice = self.choices.get(resource)
        if choice is None:
            return None
        if choice.bundle is not None:
            return choice.bundle
        captured = [b for b in self.bundles
                    if canonical_resource(group_resource(b.group, b.plural)) == resource]
        return max(captured, key=lambda b: b.preferred, default=None)


def restore_group(kube: Kube, folder: RestoreFolder, spec: RestoreSpec, group: GroupPlan,
                  options: ApplyOptions, *, progress: Progress | None = None) -> GroupResult:
    """Create the objects of one phase, resource after resource (the phase's order), the objects
    of one resource in parallel.  Outcomes go to the vault; counts come back."""
    store = folder.store
    plan = Plan(folder, spec)
    phase = Phase(group.phase)
    base = folder.require(CONTEXT, RestoreContext)
    known_owners = folder.read_owners(phase)
    prepare: Prepare | None = None
    if phase is Phase.storage:
        sources = folder.read(SOURCES, VolumeSources)
        if sources is not None:
            prepare = data_source_preparer(sources)

    spool = JsonLinesSpool()
    recorder = Recorder(spool.write)
    applier = ObjectApplier(kube, options)
    current = [""]
    last_beat = [0.0]

    def tick() -> None:
        now = time.monotonic()
        if progress is not None and now - last_beat[0] >= HEARTBEAT_SECONDS:
            last_beat[0] = now
            progress(sum(recorder.counts.values()), current[0])

    try:
        with ThreadPoolExecutor(options.parallelism, thread_name_prefix="restore-apply") as pool:
            for resource in group.resources:
                bundle = plan.source_bundle(resource)
                if bundle is None:
                    continue
                current[0] = resource
                last_beat[0] = 0.0
                tick()  # before the bundle download, which may take a while
                source = bundle_resource(bundle, plan.target)
                # Owners restored so far (earlier phases and resources) rebind ownerReferences.
                ctx = base.model_copy(update={"owner_uids": {**known_owners, **recorder.owners}})
                work = partial(applier.restore_object, choice=plan.choices[resource], source=source, ctx=ctx,
                               prepare=prepare)
                objects = (o for o in read_bundle(store, bundle.key) if item_selected(o, source, spec))
                run_bounded(pool, objects, work, recorder.record, limit=options.parallelism * 4, tick=tick)
        spool.upload(store, folder.outcomes_key(phase))
    except BaseException:
        spool.discard()
        raise
    store.put(folder.owners_key(phase), json.dumps(recorder.owners).encode())
    if progress is not None:
        progress(sum(recorder.counts.values()), "")
    return GroupResult(phase=group.phase, counts=recorder.counts, samples=recorder.samples)


def _is_restored(item: ItemOutcome) -> bool:
    return item.status in (ItemStatus.created, ItemStatus.updated)


def explain_restore(kube: Kube, folder: RestoreFolder, spec: RestoreSpec) -> tuple[dict[str, int], Samples]:
    """Write every explanation to the vault; return counts by reason and bounded samples.

    Restored objects with owners the restore could not rebind are looked up: the garbage
    collector may have removed them since (the FAQ's "Completed but something is missing").
    """
    plan = Plan(folder, spec)
    restored: set[tuple[str, str, str]] = set()
    gone: set[tuple[str, str, str]] = set()
    for item in folder.read_outcomes():
        if not _is_restored(item):
            continue
        restored.add(item.key())
        choice = plan.choices.get(canonical_resource(item.resource))
        target = choice.target if choice is not None else None
        if item.dangling_owners and target is not None and kube.get(
                object_path(target, item.namespace, item.name)) is None:
            gone.add(item.key())
    present = restored - gone if gone else None

    counts: dict[str, int] = {}
    samples = Samples()
    spool = JsonLinesSpool()
    try:
        for entry in explain_missing(plan.index, spec, folder.read_outcomes(), present=present):
            spool.write(entry)
            counts[entry.reason.value] = counts.get(entry.reason.value, 0) + 1
            if entry.reason is not MissingReason.failed:  # failed items are listed as item errors already
                samples.warning(ItemIssue(item=f"missing: {entry.reason.value}", message=entry.message))
        spool.upload(folder.store, folder.explain_key)
    except BaseException:
        spool.discard()
        raise
    return counts, samples


def skip_group(
    folder: RestoreFolder, spec: RestoreSpec, group: GroupPlan, error: ErrorInfo | None
) -> GroupResult:
    """The operator skipped a phase: every selected object of it without an outcome counts as failed,
    with the step's error, so the summary's ``failed`` and ``describe --missing`` account for them.
    Objects an attempt already restored keep their outcomes."""
    plan = Plan(folder, spec)
    phase = Phase(group.phase)
    ctx = folder.require(CONTEXT, RestoreContext)
    earlier = list(folder.read_outcomes(phase))
    known = {o.key() for o in earlier}
    reason = f"not restored: its restore step was skipped after {error.short() if error else 'a failure'}"
    spool = JsonLinesSpool()
    counts: dict[str, int] = {}
    try:
        for item in earlier:
            spool.write(item)
            counts[item.status.value] = counts.get(item.status.value, 0) + 1
        for resource in group.resources:
            bundle = plan.source_bundle(resource)
            if bundle is None:
                continue
            source = bundle_resource(bundle, plan.target)
            for obj in read_bundle(folder.store, bundle.key):
                if not item_selected(obj, source, spec):
                    continue
                meta = obj.get("metadata") or {}
                source_ns = str(meta.get("namespace") or "")
                namespace = ctx.map_namespace(source_ns) if source_ns else ""
                outcome = ItemOutcome(resource=resource, kind=str(obj.get("kind", "")), namespace=namespace,
                                      name=str(meta.get("name", "")), status=ItemStatus.failed, reason=reason)
                if outcome.key() in known:
                    continue
                spool.write(outcome)
                counts[ItemStatus.failed.value] = counts.get(ItemStatus.failed.value, 0) + 1
        spool.upload(folder.store, folder.outcomes_key(phase))
    except BaseException:
        spool.discard()
        raise
    return GroupResult(phase=group.phase, counts=counts)
