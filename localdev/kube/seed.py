"""Demo data: a sample application with every kind of object a backup must carry, and known file contents
in its volumes, so a demo can prove a restore brought back the same bytes.

    manifest = seed_sample_app(api_client)        # or: python -m localdev.kube.seed --kubeconfig KUBECONFIG
    problems = verify_volume_files(api_client, manifest)   # [] when every file is back, byte for byte
    remove_sample_app(api_client)                  # the sample namespaces, their restored copies, the CRD

Seeding is idempotent, and waits for a sample namespace still being deleted to be gone first.

Files are written where the kubelet mounted each volume (the node's kubelet root, from its
localdev.backupcenter.io/kubelet-root annotation), so this works against a detached dev cluster too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient

from kube.rest import Kube, KubeError, Obj
from localdev.kube.agent.model import csi_mount_path, kubelet_root_of
from localdev.kube.agent.placement import pod_claims

APP_NS = "demo-app"
WEB_NS = "demo-web"
DISK_CLASS = "alicloud-disk-topology-alltype"
NAS_CLASS = "alibabacloud-cnfs-nas"
WIDGET_GROUP = "demo.backupcenter.io"
IMAGE_WEB = "docker.io/library/nginx:1.27"
IMAGE_DB = "docker.io/library/postgres:16"
IMAGE_TOOLS = "docker.io/library/busybox:1.36"


SEED_LABEL = "demo.backupcenter.io/seed"
SAMPLE_NAMESPACES = (APP_NS, WEB_NS)
WIDGET_CRD = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{WIDGET_GROUP}"


def _labels(app: str) -> dict[str, str]:
    return {"app": app, SEED_LABEL: "true"}


def _container(name: str, image: str, mounts: list[Obj] | None = None, port: int | None = None) -> Obj:
    container: Obj = {"name": name, "image": image}
    if mounts:
        container["volumeMounts"] = mounts
    if port:
        container["ports"] = [{"containerPort": port}]
    return container


def _objects() -> list[tuple[str, Obj]]:
    """(collection path, object) in creation order."""
    web_labels, db_labels, up_labels = _labels("web"), _labels("db"), _labels("uploader")
    widget_crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{WIDGET_GROUP}"},
        "spec": {
            "group": WIDGET_GROUP,
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "conversion": {"strategy": "None"},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": version == "v1",
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer"}, "color": {"type": "string"}},
                                },
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                    "subresources": {"status": {}},
                }
                for version in ("v1", "v1beta1")
            ],
        },
    }
    ns_path = "/api/v1/namespaces"
    app, web = f"{ns_path}/{APP_NS}", f"{ns_path}/{WEB_NS}"
    return [
        (ns_path, {"metadata": {"name": APP_NS, "labels": {SEED_LABEL: "true"}}}),
        (ns_path, {"metadata": {"name": WEB_NS, "labels": {SEED_LABEL: "true"}}}),
        ("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", widget_crd),
        (
            f"{app}/configmaps",
            {
                "metadata": {"name": "db-config", "labels": db_labels},
                "data": {"POSTGRES_DB": "orders", "max_connections": "100"},
            },
        ),
        (
            f"{app}/secrets",
            {
                "metadata": {"name": "db-credentials", "labels": db_labels},
                "type": "Opaque",
                "stringData": {"username": "app", "password": "demo-password-not-secret"},
            },
        ),
        (
            f"{web}/configmaps",
            {
                "metadata": {"name": "web-config", "labels": web_labels},
                "data": {"index.html": "<h1>backup center demo</h1>\n"},
            },
        ),
        (
            f"{web}/secrets",
            {
                "metadata": {"name": "web-tls", "labels": web_labels},
                "type": "Opaque",
                "stringData": {"token": "demo-token"},
            },
        ),
        (
            f"{app}/services",
            {
                "metadata": {"name": "db", "labels": db_labels},
                "spec": {"clusterIP": "None", "selector": db_labels, "ports": [{"name": "pg", "port": 5432}]},
            },
        ),
        (
            f"{app}/services",
            {
                "metadata": {"name": "db-read", "labels": db_labels},
                "spec": {"type": "ClusterIP", "selector": db_labels, "ports": [{"name": "pg", "port": 5432}]},
            },
        ),
        (
            f"{web}/services",
            {
                "metadata": {"name": "web", "labels": web_labels},
                "spec": {
                    "type": "NodePort",
                    "selector": web_labels,
                    "ports": [{"name": "http", "port": 80, "targetPort": 80, "nodePort": 30080}],
                },
            },
        ),
        (
            f"{web}/services",
            {
                "metadata": {"name": "web-public", "labels": web_labels},
                "spec": {
                    "type": "LoadBalancer",
                    "externalTrafficPolicy": "Local",
                    "selector": web_labels,
                    "ports": [{"name": "http", "port": 80, "targetPort": 80}],
                },
            },
        ),
        (
            f"/apis/networking.k8s.io/v1/namespaces/{WEB_NS}/ingresses",
            {
                "metadata": {"name": "web", "labels": web_labels},
                "spec": {
                    "rules": [
                        {
                            "host": "demo.example.com",
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {"service": {"name": "web", "port": {"number": 80}}},
                                    }
                                ]
                            },
                        }
                    ]
                },
            },
        ),
        (
            f"{app}/persistentvolumeclaims",
            {
                "metadata": {"name": "shared-files", "labels": up_labels},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": NAS_CLASS,
                    "resources": {"requests": {"storage": "20Gi"}},
                },
            },
        ),
        (
            f"/apis/apps/v1/namespaces/{WEB_NS}/deployments",
            {
                "metadata": {"name": "web", "labels": web_labels},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": web_labels},
                    "template": {
                        "metadata": {"labels": web_labels},
                        "spec": {"containers": [_container("nginx", IMAGE_WEB, port=80)]},
                    },
                },
            },
        ),
        (
            f"/apis/apps/v1/namespaces/{APP_NS}/deployments",
            {
                "metadata": {"name": "uploader", "labels": up_labels},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": up_labels},
                    "template": {
                        "metadata": {"labels": up_labels},
                        "spec": {
                            "containers": [
                                _container(
                                    "uploader", IMAGE_TOOLS, [{"name": "files", "mountPath": "/srv/files"}]
                                )
                            ],
                            "volumes": [
                                {"name": "files", "persistentVolumeClaim": {"claimName": "shared-files"}}
                            ],
                        },
                    },
                },
            },
        ),
        (
            f"/apis/apps/v1/namespaces/{APP_NS}/statefulsets",
            {
                "metadata": {"name": "db", "labels": db_labels},
                "spec": {
                    "serviceName": "db",
                    "replicas": 2,
                    "selector": {"matchLabels": db_labels},
                    "template": {
                        "metadata": {"labels": db_labels},
                        "spec": {
                            "containers": [
                                _container(
                                    "postgres",
                                    IMAGE_DB,
                                    [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
                                    port=5432,
                                )
                            ]
                        },
                    },
                    "volumeClaimTemplates": [
                        {
                            "metadata": {"name": "data", "labels": db_labels},
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "storageClassName": DISK_CLASS,
                                "resources": {"requests": {"storage": "20Gi"}},
                            },
                        }
                    ],
                },
            },
        ),
    ]


def _widgets() -> list[tuple[str, Obj]]:
    base = f"/apis/{WIDGET_GROUP}"
    return [
        (
            f"{base}/v1/namespaces/{APP_NS}/widgets",
            {
                "apiVersion": f"{WIDGET_GROUP}/v1",
                "kind": "Widget",
                "metadata": {"name": "blue"},
                "spec": {"size": 3, "color": "blue"},
            },
        ),
        (
            f"{base}/v1beta1/namespaces/{WEB_NS}/widgets",
            {
                "apiVersion": f"{WIDGET_GROUP}/v1beta1",
                "kind": "Widget",
                "metadata": {"name": "red"},
                "spec": {"size": 1, "color": "red"},
            },
        ),
    ]


# Volume files: (namespace, claim) -> {relative path: content}. Contents are deterministic, so a restore
# can be checked against digests alone.
def _volume_files() -> dict[tuple[str, str], dict[str, bytes]]:
    files: dict[tuple[str, str], dict[str, bytes]] = {}
    for ordinal in range(2):
        files[(APP_NS, f"data-db-{ordinal}")] = {
            "PG_VERSION": b"16\n",
            f"base/orders-{ordinal}.dat": bytes((i * 7 + ordinal) % 256 for i in range(64 * 1024)),
            "conf/postgresql.conf": f"# replica {ordinal}\nmax_connections = 100\n".encode(),
        }
    files[(APP_NS, "shared-files")] = {
        "uploads/report-2024.csv": b"id,amount\n" + b"".join(f"{i},{i * 3}\n".encode() for i in range(1000)),
        "uploads/logo.bin": bytes(range(256)) * 32,
        "README.txt": b"shared NAS volume of the uploader deployment\n",
    }
    return files


def find_mount(kube: Kube, namespace: str, claim: str) -> Path | None:
    """Where a running pod has the claim mounted, under its node's kubelet root (None if nowhere yet)."""
    pvc = kube.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
    volume = ((pvc or {}).get("spec") or {}).get("volumeName")
    if not volume:
        return None
    for pod in kube.list(f"/api/v1/namespaces/{namespace}/pods")[0]:
        if (pod.get("status") or {}).get("phase") != "Running" or claim not in pod_claims(pod):
            continue
        node = kube.get(f"/api/v1/nodes/{pod['spec']['nodeName']}")
        root = kubelet_root_of(node or {})
        if root:
            mount = csi_mount_path(root, pod["metadata"]["uid"], volume)
            if mount.is_dir():
                return mount
    return None


def _create_all(kube: Kube, objects: list[tuple[str, Obj]]) -> list[dict[str, str]]:
    created = []
    for path, obj in objects:
        deadline = time.monotonic() + 30
        while True:
            try:
                kube.create(path, obj, exist_ok=True)
                break
            except KubeError as exc:
                # A CRD's resource (404) or a new namespace's default service account (403 from admission)
                # shows up a moment after its creation.
                if exc.status not in (403, 404) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        meta = obj["metadata"]
        created.append({"path": path, "name": meta["name"]})
    return created


def _wait(what: str, probe: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"seed: timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def wait_gone(kube: Kube, paths: list[str], timeout: float) -> None:
    """Wait until every object is really gone (404), not just marked for deletion."""
    _wait(
        f"{', '.join(p.rsplit('/', 1)[-1] for p in paths)} to be gone",
        lambda: all(kube.get(p) is None for p in paths),
        timeout,
    )


def remove_sample_app(
    api_client: ApiClient, *, namespaces: list[str] | tuple[str, ...] = (), timeout: float = 300.0
) -> list[str]:
    """Delete what seeding (and restoring the sample) created: the sample namespaces, every namespace
    carrying the seed label (restored copies keep it), the given ``namespaces`` and the Widget CRD;
    wait until they are gone. Returns the names of the namespaces that were there."""
    kube = Kube(api_client)
    labelled, _ = kube.list("/api/v1/namespaces", labelSelector=f"{SEED_LABEL}=true")
    wanted = {*SAMPLE_NAMESPACES, *namespaces, *(n["metadata"]["name"] for n in labelled)}
    paths = [f"/api/v1/namespaces/{ns}" for ns in sorted(wanted)]
    present = [p.rsplit("/", 1)[-1] for p in paths if _delete(kube, p)]
    _delete(kube, WIDGET_CRD)
    wait_gone(kube, [*paths, WIDGET_CRD], timeout)
    return present


def _delete(kube: Kube, path: str) -> bool:
    """Delete; False when already gone. A namespace still terminating answers 409: it is on its way."""
    try:
        return kube.delete(path)
    except KubeError as exc:
        if exc.status == 409:
            return True
        raise


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seed_sample_app(
    api_client: ApiClient, *, write_files: bool = True, timeout: float = 120.0
) -> dict[str, Any]:
    """Create the sample application (idempotent), wait for its pods, write its volume files, and return a
    manifest: {"namespaces", "objects", "volumes": [{"namespace", "claim", "storageClass", "files":
    {path: sha256}}]}."""
    kube = Kube(api_client)
    # A sample namespace (or the CRD) still being deleted refuses new objects: let it go first.
    terminating = [
        path
        for path in (*(f"/api/v1/namespaces/{ns}" for ns in SAMPLE_NAMESPACES), WIDGET_CRD)
        if ((kube.get(path) or {}).get("metadata") or {}).get("deletionTimestamp")
    ]
    if terminating:
        wait_gone(kube, terminating, timeout)
    objects = _create_all(kube, _objects())
    objects += _create_all(kube, _widgets())
    volumes = []
    for (namespace, claim), files in _volume_files().items():
        entry: dict[str, Any] = {
            "namespace": namespace,
            "claim": claim,
            "storageClass": NAS_CLASS if claim == "shared-files" else DISK_CLASS,
            "files": {path: _digest(data) for path, data in files.items()},
        }
        if write_files:
            mount: Path = _wait(
                f"a running pod mounting {namespace}/{claim}",
                lambda n=namespace, c=claim: find_mount(kube, n, c),
                timeout,
            )
            for rel, data in files.items():
                target = mount / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            entry["writtenTo"] = str(mount)
        volumes.append(entry)
    return {"namespaces": [APP_NS, WEB_NS], "objects": objects, "volumes": volumes}


def verify_volume_files(api_client: ApiClient, manifest: dict[str, Any], timeout: float = 60.0) -> list[str]:
    """Problems found comparing the volumes' files with the manifest ([] when all match)."""
    kube = Kube(api_client)
    problems = []
    for volume in manifest["volumes"]:
        namespace, claim = volume["namespace"], volume["claim"]
        try:
            mount: Path = _wait(
                f"a running pod mounting {namespace}/{claim}",
                lambda n=namespace, c=claim: find_mount(kube, n, c),
                timeout,
            )
        except TimeoutError as exc:
            problems.append(str(exc))
            continue
        for rel, digest in volume["files"].items():
            path = mount / rel
            if not path.is_file():
                problems.append(f"{namespace}/{claim}: {rel} is missing")
            elif _digest(path.read_bytes()) != digest:
                problems.append(f"{namespace}/{claim}: {rel} differs")
    return problems


def main(argv: list[str] | None = None) -> int:
    from localdev.kube.agent.__main__ import api_client_for

    parser = argparse.ArgumentParser(
        prog="python -m localdev.kube.seed", description="Seed the demo application."
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--no-files", action="store_true", help="create the objects only")
    parser.add_argument("--verify", type=Path, help="check the volumes against a manifest written earlier")
    parser.add_argument("--output", type=Path, help="write the manifest here (default: stdout)")
    parser.add_argument(
        "--remove", action="store_true", help="delete the sample app and its restored copies instead"
    )
    args = parser.parse_args(argv)
    client = api_client_for(args.kubeconfig)
    if args.remove:
        removed = remove_sample_app(client)
        print(f"removed namespaces: {', '.join(removed) or 'none'}")
        return 0
    if args.verify:
        problems = verify_volume_files(client, json.loads(args.verify.read_text()))
        for problem in problems:
            print(problem, file=sys.stderr)
        print("all volume files match" if not problems else f"{len(problems)} problem(s)")
        return 1 if problems else 0
    manifest = seed_sample_app(client, write_files=not args.no_files)
    text = json.dumps(manifest, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
