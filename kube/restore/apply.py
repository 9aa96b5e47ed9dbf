"""Creating restored objects in the target cluster, many at a time, with one outcome per object.

For each backed-up object the pure pipeline (:func:`kube.restore.restore_item`) gives the object(s)
to create; this module creates them and says what happened:

- ``created``: the POST succeeded, or the object exists and carries this restore's label: an
  earlier attempt of this same restore created it (activities are retried, and that is not
  "exists");
- ``exists``: an object of that name exists and the existing-resource policy is ``none``;
- ``updated``: it existed and policy ``update`` replaced it with the backed-up state;
- ``skipped`` / ``failed``: the actions' verdict, or the API server's refusal (per item: one bad
  object never stops the others).

Objects are streamed and a bounded number is in flight, so memory does not grow with the backup.
API-server overload (429, 5xx, broken connections) is retried per request a few times; if it
persists :class:`ApiUnavailable` stops the whole run, and the caller's retry starts over safely.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import urllib3

from kube.discovery import ApiResource
from kube.rest import MERGE_PATCH, Kube, KubeError
from kube.restore.actions import restore_item
from kube.restore.actions.meta import copied, dangling_owners, owner_key
from kube.restore.context import RESTORE_LABEL, ActionResult, RestoreContext
from kube.restore.explain import ItemOutcome, ItemStatus
from kube.restore.kinds import describe, group_resource
from kube.restore.versions import VersionChoice
from schemas.errors import BackupCenterError, ErrorInfo
from schemas.restore import Samples
from schemas.specs import ExistingResourcePolicy
from schemas.status import ItemIssue

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_PARALLELISM = 16
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
REQUEST_ATTEMPTS = 4
TICK_SECONDS = 1.0
# How the API server's port allocator refuses a node port (or healthCheckNodePort) in use.
ALLOCATED_PORT = re.compile(
    r"spec\.(?:ports\[\d+\]\.nodePort|healthCheckNodePort): Invalid value: (\d+): provided port is already "
    r"allocated")

Obj = dict[str, Any]
# Adjusts one object about to be created (e.g. a PVC's data source); an ActionResult with an
# error fails the item instead.
Prepare = Callable[[Obj, Obj], ActionResult | None]


class ApiUnavailable(Exception):
    """The API server kept answering 429/5xx or dropping connections."""


@dataclass(frozen=True)
class ApplyOptions:
    restore_name: str
    policy: ExistingResourcePolicy
    started_at: datetime
    parallelism: int = DEFAULT_PARALLELISM


@dataclass
class Applied:
    outcome: ItemOutcome
    uid: str = ""


def object_path(resource: ApiResource, namespace: str, name: str) -> str:
    return resource.list_path(namespace if resource.namespaced else None) + "/" + name


def _meta(obj: Obj) -> dict[str, Any]:
    meta: dict[str, Any] = obj.get("metadata") or {}
    return meta


def _target_names(original: Obj, ctx: RestoreContext) -> tuple[str, str]:
    """(namespace, name) an object has in the target, for outcomes of objects never created."""
    meta = _meta(original)
    name = str(meta.get("name", ""))
    if original.get("kind") == "Namespace" and not meta.get("namespace"):
        return "", ctx.map_namespace(name)
    namespace = str(meta.get("namespace") or "")
    return (ctx.map_namespace(namespace) if namespace else ""), name


def _item_error(obj: Obj, reason: str) -> ErrorInfo:
    return BackupCenterError("RestoreItemFailed", item=describe(obj), reason=reason).info()


def node_port_taken(obj: Obj, err: KubeError) -> ErrorInfo | None:
    """The catalogued error for a Service whose node port is held in the target, e.g. 422
    ``Service "web" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is
    already allocated``; None for any other refusal."""
    if obj.get("kind") != "Service" or err.status != 422:
        return None
    ports = [m.group(1) for m in ALLOCATED_PORT.finditer(err.message)]
    if not ports:
        return None
    meta = _meta(obj)
    service = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    return BackupCenterError("NodePortTaken", service=service, port=", ".join(dict.fromkeys(ports)),
                             detail=f"{err.status} {err.reason}: {err.message}").info()


def _refused(obj: Obj, err: KubeError) -> ErrorInfo:
    taken = node_port_taken(obj, err)
    if taken is not None:
        return taken
    why = f"{err.status} {err.reason}: {err.message}" if err.reason else f"{err.status}: {err.message}"
    return _item_error(obj, f"the API server refused it: {why}")


class ObjectApplier:
    """Creates (or updates) restored objects; thread-safe, one per restore run and cluster."""

    def __init__(self, kube: Kube, options: ApplyOptions) -> None:
        self.kube = kube
        self.options = options

    # --- requests with per-request retries of transient faults ------------------------------
    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Obj:
        delay = 0.2
        for attempt in range(REQUEST_ATTEMPTS):
            try:
                return self.kube.request(method, path, body=body, content_type=content_type)
            except KubeError as err:
                if err.status not in TRANSIENT_STATUS or attempt == REQUEST_ATTEMPTS - 1:
                    if err.status in TRANSIENT_STATUS:
                        raise ApiUnavailable(f"{method} {path}: {err}") from err
                    raise
            except (urllib3.exceptions.HTTPError, OSError) as err:
                if attempt == REQUEST_ATTEMPTS - 1:
                    raise ApiUnavailable(f"{method} {path}: {err}") from err
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _get(self, path: str) -> Obj | None:
        try:
            return self._call("GET", path)
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    # --- one object -------------------------------------------------------------------------
    def apply(self, resource: ApiResource, obj: Obj) -> tuple[ItemStatus, ErrorInfo | None, str, list[str]]:
        """Create one object: (status, error, uid, warnings)."""
        meta = _meta(obj)
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name", ""))
        path = object_path(resource, namespace, name)
        for _ in range(3):  # an object deleted between our POST and GET is created again
            try:
                created = self._call("POST", resource.list_path(namespace if resource.namespaced else None),
                                     obj)
                return ItemStatus.created, None, str(_meta(created).get("uid", "")), []
            except KubeError as err:
                if err.status != 409:
                    return ItemStatus.failed, _refused(obj, err), "", []
            existing = self._get(path)
            if existing is not None:
                return self._existing(resource, path, existing, obj)
        return ItemStatus.failed, _item_error(obj, "it was reported as existing but kept vanishing"), "", []

    def _existing(self, resource: ApiResource, path: str, existing: Obj, desired: Obj
                  ) -> tuple[ItemStatus, ErrorInfo | None, str, list[str]]:
        meta = _meta(existing)
        uid = str(meta.get("uid", ""))
        ours = (meta.get("labels") or {}).get(RESTORE_LABEL) == self.options.restore_name
        update = self.options.policy is ExistingResourcePolicy.update
        if ours:
            # An earlier attempt of this restore got here first.  Under policy update it may have
            # updated an object that predates the restore: report what that attempt did.
            created_at = _timestamp(meta.get("creationTimestamp"))
            predates = created_at is not None and created_at < self.options.started_at
            return (ItemStatus.updated if update and predates else ItemStatus.created), None, uid, []
        if not update:
            return ItemStatus.exists, None, uid, []
        return self._update(path, existing, desired)

    def _update(self, path: str, existing: Obj, desired: Obj
                ) -> tuple[ItemStatus, ErrorInfo | None, str, list[str]]:
        """Replace with the backed-up state; where the server refuses a spec change (immutable
        fields), at least the labels and annotations are brought back, with a warning."""
        for _ in range(3):
            body = copied(desired)
            body.setdefault("metadata", {})["resourceVersion"] = _meta(existing).get("resourceVersion")
            try:
                updated = self._call("PUT", path, body)
                return ItemStatus.updated, None, str(_meta(updated).get("uid", "")), []
            except KubeError as err:
                if err.status in (400, 422):
                    return self._update_metadata(path, desired, err.message)
                if err.status != 409:
                    return ItemStatus.failed, _refused(desired, err), "", []
            # Changed meanwhile (409): take the new version and try again.
            fresh = self._get(path)
            if fresh is None:
                return ItemStatus.failed, _item_error(desired, "it was deleted while it was updated"), "", []
            existing = fresh
        return ItemStatus.failed, _item_error(desired, "it kept changing while it was updated"), "", []

    def _update_metadata(self, path: str, desired: Obj, refusal: str
                         ) -> tuple[ItemStatus, ErrorInfo | None, str, list[str]]:
        patch = {"metadata": {"labels": _meta(desired).get("labels") or {},
                              "annotations": _meta(desired).get("annotations") or {}}}
        try:
            patched = self._call("PATCH", path, patch, content_type=MERGE_PATCH)
        except KubeError as err:
            return ItemStatus.failed, _refused(desired, err), "", []
        warning = (f"{describe(desired)}: only labels and annotations were updated; the API server "
                   f"refused the backed-up state: {refusal}")
        return ItemStatus.updated, None, str(_meta(patched).get("uid", "")), [warning]

    # --- one backed-up object through the pipeline ------------------------------------------
    def restore_object(self, original: Obj, choice: VersionChoice, source: ApiResource, ctx: RestoreContext,
                       prepare: Prepare | None = None) -> list[Applied]:
        resource = group_resource(source.group, source.plural)
        kind = str(original.get("kind", source.kind))
        namespace, name = _target_names(original, ctx)

        def outcome(status: ItemStatus, **fields: Any) -> ItemOutcome:
            return ItemOutcome(resource=resource, kind=kind, namespace=fields.pop("namespace", namespace),
                               name=fields.pop("name", name), status=status, **fields)

        unserved = choice.item_error(namespace, name)
        if unserved is not None or choice.target is None:
            return [Applied(outcome(ItemStatus.failed, error=unserved, reason=choice.problem() or ""))]
        result = restore_item(original, ctx)
        if result.error is not None:
            return [Applied(outcome(ItemStatus.failed, error=result.error, warnings=result.warnings))]
        if result.skip_reason is not None:
            return [Applied(outcome(ItemStatus.skipped, reason=result.skip_reason, warnings=result.warnings))]
        applied: list[Applied] = []
        for obj in result.objects:
            warnings = list(result.warnings) if not applied else []
            target_ns, target_name = str(_meta(obj).get("namespace") or ""), str(_meta(obj).get("name", ""))
            verdict = prepare(original, obj) if prepare is not None else None
            if verdict is not None:
                warnings += verdict.warnings
                if verdict.error is not None:
                    applied.append(Applied(outcome(ItemStatus.failed, namespace=target_ns, name=target_name,
                                                   error=verdict.error, warnings=warnings)))
                    continue
            # Asked of the object as created (its namespace mapped): owners keyed by target names.
            owners = dangling_owners(obj, ctx) if _meta(obj).get("ownerReferences") else []
            status, error, uid, more = self.apply(choice.target, obj)
            applied.append(Applied(outcome(status, namespace=target_ns, name=target_name, error=error,
                                           warnings=warnings + more, dangling_owners=owners), uid))
        return applied


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class Recorder:
    """Tallies outcomes (in the caller's thread), remembers new uids, keeps bounded samples."""

    write: Callable[[ItemOutcome], None]
    counts: dict[str, int] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    samples: Samples = field(default_factory=Samples)

    def record(self, applied: list[Applied]) -> None:
        for item in applied:
            out = item.outcome
            self.write(out)
            self.counts[out.status.value] = self.counts.get(out.status.value, 0) + 1
            if item.uid:
                self.owners[owner_key(out.kind, out.namespace, out.name)] = item.uid
            label = "/".join(p for p in (out.resource, out.namespace, out.name) if p)
            if out.status is ItemStatus.failed:
                message = out.error.short() if out.error else out.reason
                code = out.error.code if out.error else None
                self.samples.error(ItemIssue(item=label, message=message, code=code))
            for warning in out.warnings:
                self.samples.warning(ItemIssue(item=label, message=warning))


def run_bounded(pool: ThreadPoolExecutor, items: Iterable[T], fn: Callable[[T], R],
                consume: Callable[[R], None], *, limit: int, tick: Callable[[], None] | None = None) -> None:
    """``fn`` over ``items`` on the pool with at most ``limit`` in flight; ``consume`` runs in the
    caller's thread (so it needs no lock), and ``tick`` too, between results (heartbeat, cancel)."""
    pending: set[Future[R]] = set()

    def drain() -> None:
        nonlocal pending
        # A bounded wait: tick (the heartbeat) runs even while one slow request holds everything.
        done, pending = wait(pending, timeout=TICK_SECONDS, return_when=FIRST_COMPLETED)
        for future in done:
            consume(future.result())
        if tick is not None:
            tick()

    try:
        for item in items:
            while len(pending) >= limit:
                drain()
            pending.add(pool.submit(fn, item))
        while pending:
            drain()
    finally:
        for future in pending:
            future.cancel()
