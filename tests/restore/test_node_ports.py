"""Node ports on a restore into a mapped namespace of the same cluster: auto-assigned ones are
allocated anew, an explicitly set one is kept, and since the original still holds it, that one
Service fails alone, naming its port, while the rest of the restore completes."""

from __future__ import annotations

import random
from typing import Any

import pytest

from kube.rest import KubeError
from schemas.status import JobPhase
from tests.localcluster.helpers import get
from tests.product_fixtures import Product
from tests.restore.helpers import backup, by_name, outcomes, restore

pytestmark = pytest.mark.cluster

APPLY_PATCH = "application/apply-patch+yaml"
PORT = {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}


def services_path(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/services"


def apply_explicit(product: Product, ns: str, name: str) -> int:
    """A NodePort Service whose port is in the manifest, created by server-side apply (as
    `kubectl apply --server-side` does): the field manager owns the nodePort."""
    for _ in range(10):
        node_port = random.randint(30000, 32700)
        spec = {"type": "NodePort", "selector": {"app": "web"}, "ports": [{**PORT, "nodePort": node_port}]}
        body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
        try:
            product.kube.request("PATCH", f"{services_path(ns)}/{name}", body=body, content_type=APPLY_PATCH,
                                 query={"fieldManager": "kubectl"})
            return node_port
        except KubeError as err:
            if "already allocated" not in err.message:
                raise
    raise AssertionError("no free node port found")


def node_ports(svc: dict[str, Any]) -> tuple[int, int | None]:
    spec = svc["spec"]
    return spec["ports"][0]["nodePort"], spec.get("healthCheckNodePort")


async def test_auto_assigned_ports_move_and_a_taken_explicit_port_fails_alone(
    product: Product, kube_namespace: str
) -> None:
    source, kube = kube_namespace, product.kube
    kube.create(f"/api/v1/namespaces/{source}/configmaps",
                {"metadata": {"name": "settings"}, "data": {"a": "1"}})
    for name, spec in (
        ("svc-np", {"type": "NodePort"}),
        ("svc-lb", {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}),
    ):
        body = {"metadata": {"name": name}, "spec": {**spec, "selector": {"app": "web"}, "ports": [PORT]}}
        kube.create(services_path(source), body)
    explicit = apply_explicit(product, source, "svc-explicit")
    auto = ("svc-np", "svc-lb")
    before = {name: node_ports(get(kube, f"{services_path(source)}/{name}")) for name in auto}
    assert before["svc-lb"][1], "a LoadBalancer/Local service gets a healthCheckNodePort"
    backup_name = await backup(product, source, volume_data=False)

    target = f"{source}-p"
    try:
        # The originals keep running and keep their ports.
        status = await restore(product, backup_name, namespace_mapping={source: target})
        assert status.phase is JobPhase.partially_failed, (status.error, status.item_errors)
        assert status.error is None and status.item_errors_total == 1, status.item_errors
        (issue,) = status.item_errors
        assert issue.code == "NodePortTaken" and issue.item == f"services/{target}/svc-explicit", issue
        assert f"Service {target}/svc-explicit: node port {explicit} is already allocated" in issue.message
        assert int(status.summary["failed"]) == 1

        # The auto-assigned ports were dropped: the target allocated new ones, health check included.
        after = {name: node_ports(get(kube, f"{services_path(target)}/{name}")) for name in auto}
        for name in after:
            assert after[name][0] and after[name][0] != before[name][0], (name, before, after)
        assert after["svc-lb"][1] and after["svc-lb"][1] != before["svc-lb"][1], (before, after)
        restored_lb = get(kube, f"{services_path(target)}/svc-lb")["spec"]
        assert restored_lb["externalTrafficPolicy"] == "Local"
        assert kube.get(f"{services_path(target)}/svc-explicit") is None
        assert get(kube, f"/api/v1/namespaces/{target}/configmaps/settings")["data"] == {"a": "1"}
        # The original still holds its explicit port.
        assert node_ports(get(kube, f"{services_path(source)}/svc-explicit"))[0] == explicit

        # The outcome in the vault carries the causes and fixes `restore describe` shows.
        found = by_name(outcomes(product, status.name))
        failed = found[("Service", "svc-explicit")]
        assert failed.status.value == "failed" and failed.error is not None
        assert failed.error.code == "NodePortTaken" and "provided port is already allocated" in (
            failed.error.detail or "")
        assert any("--preserve-node-ports" in fix for fix in failed.error.fixes)
        assert {found[("Service", n)].status.value for n in auto} == {"created"}
    finally:
        kube.delete(f"/api/v1/namespaces/{target}")
