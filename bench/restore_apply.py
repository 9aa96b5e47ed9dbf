"""Benchmark: restoring 10,000 ConfigMaps and 1,000 Secrets into an empty cluster.

The objects are created in a first local cluster and exported with the backup's exporter
(kube/export.py) into a file:// vault.  A second, empty local cluster is the restore target.
Ours is the restore's apply path as the restore activities run it: discovery of the target, the
phase plan, then every phase (kube.restore.run.restore_group: bundles streamed from the vault,
item actions, parallel requests, outcomes written back to the vault).  The baseline, in the same
run and the same target cluster: ``kubectl create -f`` of the same objects, cleaned the same way,
into another namespace.

    .venv/bin/python bench/restore_apply.py [--parallelism 16]

Prints ``name: value`` lines and ``restore ratio (ours/kubectl): X`` (time ratio; goal <= 1.0).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script: the repository root must win over bench/ on the import path.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:1] = [str(ROOT)]

from kube import discovery, export  # noqa: E402
from kube.rest import Kube  # noqa: E402
from kube.restore.actions import restore_item  # noqa: E402
from kube.restore.apply import DEFAULT_PARALLELISM, ApplyOptions  # noqa: E402
from kube.restore.context import RestoreContext  # noqa: E402
from kube.restore.records import CONTEXT, RestoreFolder  # noqa: E402
from kube.restore.run import restore_group  # noqa: E402
from kube.restore.target import plan_groups, target_context  # noqa: E402
from localdev.kube import bulk  # noqa: E402
from localdev.kube.controlplane import LocalCluster  # noqa: E402
from schemas.specs import ExistingResourcePolicy, RestoreSpec  # noqa: E402
from vault.filestore import FileStore  # noqa: E402
from vault.store import ObjectStore  # noqa: E402

CONFIGMAPS, SECRETS = 10_000, 1_000
NAMESPACE, BASELINE_NAMESPACE = "bench", "bench-kubectl"
KUBECTL = "/usr/bin/kubectl"
# Created by the target cluster itself in every namespace: neither side creates it.
CLUSTER_MADE = {("ConfigMap", "kube-root-ca.crt")}


def seed(cluster: LocalCluster) -> float:
    started = time.monotonic()
    kube = Kube(cluster.api_client())
    kube.create("/api/v1/namespaces", {"metadata": {"name": NAMESPACE}}, exist_ok=True)
    objects = [*bulk.configmaps(NAMESPACE, CONFIGMAPS, value_bytes=512), *bulk.secrets(NAMESPACE, SECRETS)]
    bulk.create_many(kube, bulk.path_of, objects, threads=16)
    return time.monotonic() - started


def back_up(cluster: LocalCluster, store: ObjectStore) -> int:
    kube = Kube(cluster.api_client())
    summary = export.export(kube, store, discovery.discover(kube),
                            export.ExportSelection(backup="bench", namespaces=[NAMESPACE]))
    return summary.objects


def ours(cluster: LocalCluster, store: ObjectStore, parallelism: int) -> tuple[float, dict[str, int]]:
    """The restore's apply path, timed from discovery to the last outcome written."""
    kube = Kube(cluster.api_client())
    spec = RestoreSpec(name="bench-restore", backup="bench", vault="bench")
    folder = RestoreFolder.of(store, "bench-target", spec.name)
    options = ApplyOptions(spec.name, ExistingResourcePolicy.none, datetime.now(UTC), parallelism=parallelism)
    started = time.monotonic()
    found = discovery.discover(kube)
    folder.put_discovery(found)
    folder.write(CONTEXT, target_context(kube, spec, "backup-center"))
    counts: dict[str, int] = {}
    for group in plan_groups(export.read_index(store, "bench"), spec, found):
        result = restore_group(kube, folder, spec, group, options)
        for status, n in result.counts.items():
            counts[status] = counts.get(status, 0) + n
    return time.monotonic() - started, counts


def kubectl_manifest(store: ObjectStore, path: Path) -> int:
    """The same objects, cleaned by the same item actions, as one List in another namespace."""
    spec = RestoreSpec(name="bench-kubectl", backup="bench", vault="bench",
                       namespace_mapping={NAMESPACE: BASELINE_NAMESPACE})
    ctx = RestoreContext.from_spec(spec)
    items: list[dict[str, Any]] = []
    for bundle in export.read_index(store, "bench").bundles:
        if not bundle.preferred or bundle.group or bundle.plural not in ("configmaps", "secrets"):
            continue
        for obj in export.read_bundle(store, bundle.key):
            if (obj["kind"], obj["metadata"]["name"]) in CLUSTER_MADE:
                continue
            items += restore_item(obj, ctx).objects
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return len(items)


def kubectl_seconds(cluster: LocalCluster, manifest: Path) -> float:
    Kube(cluster.api_client()).create("/api/v1/namespaces", {"metadata": {"name": BASELINE_NAMESPACE}})
    started = time.monotonic()
    subprocess.run([KUBECTL, "--kubeconfig", str(cluster.kubeconfig_path), "create", "-f", str(manifest)],
                   stdout=subprocess.DEVNULL, check=True)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallelism", type=int, default=DEFAULT_PARALLELISM,
                        help="requests in flight (the restore_apply_parallelism setting)")
    args = parser.parse_args()
    if not Path(KUBECTL).is_file():
        print(f"kubectl is not installed at {KUBECTL}: the baseline cannot run")
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-restore-"))
    try:
        store = FileStore(work / "vault", create=True)
        with LocalCluster() as source:
            print(f"seed seconds: {seed(source):.1f}")
            print(f"objects backed up: {back_up(source, store)}")
        with LocalCluster() as target:
            seconds, counts = ours(target, store, args.parallelism)
            objects = kubectl_manifest(store, work / "objects.json")
            baseline = kubectl_seconds(target, work / "objects.json")
        restored = counts.get("created", 0)
        print(f"restore outcomes: {', '.join(f'{k}={v}' for k, v in sorted(counts.items()))}")
        print(f"parallel requests: {args.parallelism}")
        print(f"objects created by kubectl: {objects}")
        print(f"kubectl create seconds: {baseline:.2f}")
        print(f"restore apply seconds: {seconds:.2f}")
        print(f"kubectl objects per second: {objects / baseline:.0f}")
        print(f"restore objects per second: {restored / seconds:.0f}")
        print(f"restore ratio (ours/kubectl): {seconds / baseline:.2f}")
        return 0 if counts.get("failed", 0) == 0 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
