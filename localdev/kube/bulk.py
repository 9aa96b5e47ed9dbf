"""Creating many objects fast, for reliability tests and benchmarks (not used by the product)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kube.rest import Kube

Obj = dict[str, Any]


def create_many(
    kube: Kube, path_of: Callable[[Obj], str], objects: Iterable[Obj], *, threads: int = 16
) -> int:
    """POST every object (409 = already there is fine); returns how many were sent."""

    def one(obj: Obj) -> None:
        kube.create(path_of(obj), obj, exist_ok=True)

    count = 0
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(one, objects):
            count += 1
    return count


def configmaps(namespace: str, count: int, *, value_bytes: int = 256, prefix: str = "cm") -> Iterable[Obj]:
    value = "x" * value_bytes
    for i in range(count):
        yield {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{prefix}-{i:05d}", "namespace": namespace, "labels": {"bulk": prefix}},
            "data": {"value": value, "index": str(i)},
        }


def secrets(namespace: str, count: int, *, prefix: str = "secret") -> Iterable[Obj]:
    for i in range(count):
        yield {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{prefix}-{i:05d}", "namespace": namespace},
            "stringData": {"password": f"p-{i}"},
        }


def deployments(namespace: str, count: int, *, prefix: str = "app") -> Iterable[Obj]:
    for i in range(count):
        name = f"{prefix}-{i:04d}"
        yield {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]},
                },
            },
        }


def path_of(obj: Obj) -> str:
    ns = obj["metadata"]["namespace"]
    if obj["kind"] == "Deployment":
        return f"/apis/apps/v1/namespaces/{ns}/deployments"
    return f"/api/v1/namespaces/{ns}/{obj['kind'].lower()}s"
