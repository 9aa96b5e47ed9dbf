"""Exporting the selected objects of a cluster into the vault.

Objects are streamed page by page (``limit`` + ``continue``) into one zstd-compressed JSON-lines
bundle per resource and version, spooled to a temporary file and uploaded; nothing holds a
whole resource type in memory and nothing passes through workflow payloads.  An index records,
per type, version and namespace, the count and a digest of the objects, so a restore (and an
operator) can tell what the backup holds without reading the bundles.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import zstandard
from pydantic import BaseModel, Field

from kube.discovery import NEVER_BACKED_UP, ApiResource, matches
from kube.rest import Kube
from kube.restore.actions.service import record_explicit_node_ports
from schemas.backup import ExportSummary
from schemas.specs import BackupMode, ClusterResources
from vault.store import ObjectCorrupt, ObjectNotFound, ObjectStore

PAGE_SIZE = 500
INDEX_NAME = "index.json"


def resources_prefix(backup: str) -> str:
    return f"backups/{backup}/resources/"


def bundle_key(backup: str, resource: ApiResource) -> str:
    group = resource.group or "core"
    return f"{resources_prefix(backup)}{group}/{resource.version}/{resource.plural}.jsonl.zst"


class NamespaceCount(BaseModel):
    count: int = 0
    digest: str = ""


class BundleIndex(BaseModel):
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    preferred: bool
    key: str
    count: int
    bytes: int
    namespaces: dict[str, NamespaceCount] = Field(default_factory=dict)


class ResourceIndex(BaseModel):
    """Written to ``resources/index.json``: what the backup holds, by type, version, namespace."""

    backup: str
    namespaces: list[str]
    bundles: list[BundleIndex] = Field(default_factory=list)

    def total_objects(self, preferred_only: bool = True) -> int:
        return sum(b.count for b in self.bundles if b.preferred or not preferred_only)


@dataclass
class ExportSelection:
    backup: str
    namespaces: list[str]
    mode: BackupMode = BackupMode.application
    label_selector: str | None = None
    include_resources: list[str] = field(default_factory=list)
    exclude_resources: list[str] = field(default_factory=list)
    cluster_resources: ClusterResources = ClusterResources.related
    page_size: int = PAGE_SIZE


# Data protection keeps volumes and the objects needed to recreate them.
_DATA_PROTECTION_TYPES = (
    "persistentvolumeclaims",
    "persistentvolumes",
    "storageclasses.storage.k8s.io",
    "namespaces",
)


def selected_resources(resources: list[ApiResource], sel: ExportSelection) -> list[ApiResource]:
    chosen = []
    for res in resources:
        if res.group_resource in NEVER_BACKED_UP:
            continue
        if sel.mode is BackupMode.data_protection and not matches(res, _DATA_PROTECTION_TYPES):
            continue
        if res.plural == "namespaces":
            chosen.append(res)  # always: a restore needs the namespaces themselves
            continue
        if sel.include_resources and not matches(res, sel.include_resources):
            continue
        if sel.exclude_resources and matches(res, sel.exclude_resources):
            continue
        if not res.namespaced and sel.cluster_resources is ClusterResources.none:
            continue
        chosen.append(res)
    return chosen


def _clean(item: dict[str, Any], resource: ApiResource) -> dict[str, Any]:
    # List items carry no kind/apiVersion; managedFields is bookkeeping that restore drops anyway.
    item["apiVersion"] = resource.group_version
    item["kind"] = resource.kind
    if resource.kind == "Service" and not resource.group:
        # The one fact restore needs from managedFields: which node ports a user set (a manager
        # owns them) rather than the allocator; recorded as an annotation (see actions_service).
        record_explicit_node_ports(item)
    item.get("metadata", {}).pop("managedFields", None)
    return item


def _pages(
    kube: Kube, path: str, label_selector: str | None, page_size: int
) -> Iterator[list[dict[str, Any]]]:
    token = ""
    while True:
        query: dict[str, Any] = {"limit": page_size}
        if token:
            query["continue"] = token
        if label_selector:
            query["labelSelector"] = label_selector
        page = kube.request("GET", path, query=query, timeout=120)
        yield page.get("items") or []
        token = page.get("metadata", {}).get("continue") or ""
        if not token:
            return


@dataclass
class _References:
    """Cluster-scoped objects the namespaced selection uses (for cluster_resources=related)."""

    volumes: set[str] = field(default_factory=set)
    storage_classes: set[str] = field(default_factory=set)
    custom_kinds: set[str] = field(default_factory=set)  # group_resource of custom resources
    cluster_roles: set[str] = field(default_factory=set)
    service_accounts: set[tuple[str, str]] = field(default_factory=set)

    def note(self, item: dict[str, Any], resource: ApiResource) -> None:
        spec = item.get("spec") or {}
        if resource.plural == "persistentvolumeclaims" and not resource.group:
            if spec.get("volumeName"):
                self.volumes.add(spec["volumeName"])
            if spec.get("storageClassName"):
                self.storage_classes.add(spec["storageClassName"])
        elif resource.group_resource == "rolebindings.rbac.authorization.k8s.io":
            ref = item.get("roleRef") or {}
            if ref.get("kind") == "ClusterRole":
                self.cluster_roles.add(ref.get("name", ""))
        elif resource.plural == "serviceaccounts" and not resource.group:
            meta = item.get("metadata", {})
            self.service_accounts.add((meta.get("namespace", ""), meta.get("name", "")))

    def wants(self, item: dict[str, Any], resource: ApiResource, namespaces: set[str]) -> bool:
        name = item.get("metadata", {}).get("name", "")
        gr = resource.group_resource
        if resource.plural == "namespaces" and not resource.group:
            return name in namespaces
        if resource.plural == "persistentvolumes" and not resource.group:
            return name in self.volumes
        if gr == "storageclasses.storage.k8s.io":
            return name in self.storage_classes
        if gr == "customresourcedefinitions.apiextensions.k8s.io":
            spec = item.get("spec", {})
            return f"{spec.get('names', {}).get('plural')}.{spec.get('group')}" in self.custom_kinds
        if gr == "clusterrolebindings.rbac.authorization.k8s.io":
            subjects = item.get("subjects") or []
            used = any(
                s.get("kind") == "ServiceAccount"
                and (s.get("namespace"), s.get("name")) in self.service_accounts
                for s in subjects
            )
            if used:
                self.cluster_roles.add((item.get("roleRef") or {}).get("name", ""))
            return used
        if gr == "clusterroles.rbac.authorization.k8s.io":
            return name in self.cluster_roles
        return False


class _NamespaceDigests:
    """Per namespace: how many objects and the sha256 of their JSON lines, in bundle order (what the
    index records, and what a verification recomputes)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, Any]] = {}

    def add(self, item: dict[str, Any]) -> bytes:
        line = json.dumps(item, separators=(",", ":"), sort_keys=True).encode() + b"\n"
        ns = item.get("metadata", {}).get("namespace", "")
        count, digest = self._seen.get(ns, (0, None))
        if digest is None:
            digest = hashlib.sha256()
        digest.update(line)
        self._seen[ns] = (count + 1, digest)
        return line

    def counts(self) -> dict[str, NamespaceCount]:
        seen = sorted(self._seen.items())
        return {ns: NamespaceCount(count=c, digest=d.hexdigest()) for ns, (c, d) in seen}


class _Bundle:
    """One resource-version bundle being written: zstd JSON lines spooled to a temp file."""

    def __init__(self, resource: ApiResource) -> None:
        self.resource = resource
        # Closed in finish(), after the upload: the bundle outlives this constructor.
        self.file = tempfile.TemporaryFile(prefix="export-")  # noqa: SIM115
        self._zstd = zstandard.ZstdCompressor(level=3).stream_writer(self.file, closefd=False)
        self.count = 0
        self.digests = _NamespaceDigests()

    def add(self, item: dict[str, Any]) -> None:
        self._zstd.write(self.digests.add(item))
        self.count += 1

    def finish(self, store: ObjectStore, key: str) -> BundleIndex:
        self._zstd.close()
        size = self.file.tell()
        self.file.seek(0)
        store.put_stream(key, self.file, size=size)
        self.file.close()
        res = self.resource
        return BundleIndex(
            group=res.group,
            version=res.version,
            plural=res.plural,
            kind=res.kind,
            namespaced=res.namespaced,
            preferred=res.preferred,
            key=key,
            count=self.count,
            bytes=size,
            namespaces=self.digests.counts(),
        )


Progress = Callable[[int, int, str], None]  # (types done, types total, current type)


def export(
    kube: Kube,
    store: ObjectStore,
    resources: list[ApiResource],
    sel: ExportSelection,
    *,
    progress: Progress | None = None,
) -> ExportSummary:
    chosen = selected_resources(resources, sel)
    namespaced = [r for r in chosen if r.namespaced]
    # ClusterRoleBindings name the ClusterRoles they need, so roles come after bindings.
    cluster_scoped = sorted(
        (r for r in chosen if not r.namespaced),
        key=lambda r: r.group_resource == "clusterroles.rbac.authorization.k8s.io",
    )
    namespaces = set(sel.namespaces)
    refs = _References()
    # CRDs are related when their custom resources have objects in the selection.
    builtin_groups = {
        "",
        "apps",
        "batch",
        "policy",
        "autoscaling",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "discovery.k8s.io",
        "coordination.k8s.io",
        "events.k8s.io",
        "node.k8s.io",
        "scheduling.k8s.io",
        "resource.k8s.io",
        "admissionregistration.k8s.io",
        "certificates.k8s.io",
        "snapshot.storage.k8s.io",
    }
    index = ResourceIndex(backup=sel.backup, namespaces=sorted(namespaces))
    total = len(chosen)
    # Listing every namespace at once is cheaper than one request per namespace unless the
    # selection is a small part of a big cluster.
    per_namespace = 0 < len(namespaces) <= 8

    for done, res in enumerate(namespaced + cluster_scoped):
        if progress:
            progress(done, total, res.group_resource + "/" + res.version)
        bundle = _Bundle(res)
        if res.namespaced:
            paths = [res.list_path(ns) for ns in sorted(namespaces)] if per_namespace else [res.list_path()]
            for path in paths:
                for items in _pages(kube, path, sel.label_selector, sel.page_size):
                    if progress:
                        progress(done, total, res.group_resource + "/" + res.version)
                    for item in items:
                        if item.get("metadata", {}).get("namespace") not in namespaces:
                            continue
                        refs.note(item, res)
                        bundle.add(_clean(item, res))
            if bundle.count and res.group not in builtin_groups:
                refs.custom_kinds.add(res.group_resource)
        else:
            for items in _pages(kube, res.list_path(), None, sel.page_size):
                if progress:
                    progress(done, total, res.group_resource + "/" + res.version)
                for item in items:
                    if sel.cluster_resources is ClusterResources.all or refs.wants(item, res, namespaces):
                        bundle.add(_clean(item, res))
        index.bundles.append(bundle.finish(store, bundle_key(sel.backup, res)))
    if progress:
        progress(total, total, "")

    index_key = resources_prefix(sel.backup) + INDEX_NAME
    store.put(index_key, index.model_dump_json().encode())
    pvcs = sum(b.count for b in index.bundles if b.plural == "persistentvolumeclaims" and not b.group)
    return ExportSummary(
        objects=index.total_objects(preferred_only=True),
        versions_captured=index.total_objects(preferred_only=False),
        bundles=len(index.bundles),
        bytes=sum(b.bytes for b in index.bundles),
        index_key=index_key,
        persistent_volume_claims=pvcs,
    )


def read_index(store: ObjectStore, backup: str) -> ResourceIndex:
    return ResourceIndex.model_validate_json(store.get(resources_prefix(backup) + INDEX_NAME))


def read_bundle(store: ObjectStore, key: str) -> Iterator[dict[str, Any]]:
    """Objects of one bundle, streamed."""
    with tempfile.TemporaryFile(prefix="bundle-") as spool:
        store.get_stream(key, spool)
        spool.seek(0)
        reader = zstandard.ZstdDecompressor().stream_reader(spool)
        buffer = b""
        while chunk := reader.read(1 << 20):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line:
                    yield json.loads(line)
        if buffer.strip():
            yield json.loads(buffer)


def check_bundle(store: ObjectStore, bundle: BundleIndex) -> str | None:
    """Why a bundle does not hold what the index says (None when it does): it must decode, and
    each namespace's objects must match the index's count and digest (computed as the export did)."""
    digests = _NamespaceDigests()
    try:
        for item in read_bundle(store, bundle.key):
            digests.add(item)
    except ObjectNotFound:
        return "is missing"
    except (ObjectCorrupt, zstandard.ZstdError, ValueError) as err:
        # (Another store error, an outage, raises: not the backup's fault; the caller retries.)
        return f"does not decode: {err}"
    got = digests.counts()
    if got == bundle.namespaces:
        return None
    wrong = sorted(ns or "(cluster)" for ns in set(got) | set(bundle.namespaces)
                   if got.get(ns) != bundle.namespaces.get(ns))
    objects = sum(c.count for c in got.values())
    return (f"holds {objects} of {bundle.count} objects or other content than exported "
            f"(namespaces: {', '.join(wrong)})")
