"""Services: cluster IPs, node ports, health check node ports (requirements §8)."""

from typing import Any

from kube.restore.actions import restore_item
from kube.restore.actions_service import service_action

from .objects import ctx, meta


def service(
    kind: str = "ClusterIP",
    *,
    cluster_ip: str = "172.16.3.4",
    policy: str | None = None,
    health: int | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": kind,
        "clusterIP": cluster_ip,
        "clusterIPs": [cluster_ip],
        "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
    }
    if kind in ("NodePort", "LoadBalancer"):
        spec["ports"][0]["nodePort"] = 30080
    if policy:
        spec["externalTrafficPolicy"] = policy
    if health:
        spec["healthCheckNodePort"] = health
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("web"),
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": "47.1.2.3"}]}},
    }


def test_cluster_ips_are_dropped() -> None:
    out = restore_item(service(), ctx()).objects[0]
    assert "clusterIP" not in out["spec"] and "clusterIPs" not in out["spec"]
    assert out["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]


def test_headless_services_stay_headless() -> None:
    out = restore_item(service(cluster_ip="None"), ctx()).objects[0]
    assert out["spec"]["clusterIP"] == "None"
    assert out["spec"]["clusterIPs"] == ["None"]


def test_node_ports_are_kept_by_default() -> None:
    for kind in ("NodePort", "LoadBalancer"):
        out = restore_item(service(kind), ctx()).objects[0]
        assert out["spec"]["ports"][0]["nodePort"] == 30080


def test_node_ports_are_dropped_unless_preserved() -> None:
    for kind in ("NodePort", "LoadBalancer"):
        out = restore_item(service(kind), ctx(preserve_node_ports=False)).objects[0]
        assert "nodePort" not in out["spec"]["ports"][0]


def test_stray_node_ports_of_cluster_ip_services_are_dropped() -> None:
    svc = service()
    svc["spec"]["ports"][0]["nodePort"] = 30001
    out = restore_item(svc, ctx()).objects[0]
    assert "nodePort" not in out["spec"]["ports"][0]


def test_health_check_node_port_of_local_load_balancers() -> None:
    svc = service("LoadBalancer", policy="Local", health=32000)
    kept = restore_item(svc, ctx(preserve_node_ports=True)).objects[0]
    assert kept["spec"]["healthCheckNodePort"] == 32000
    dropped = restore_item(svc, ctx(preserve_node_ports=False)).objects[0]
    assert "healthCheckNodePort" not in dropped["spec"]
    assert dropped["spec"]["externalTrafficPolicy"] == "Local"


def test_health_check_node_port_outside_local_load_balancers_is_dropped() -> None:
    svc = service("LoadBalancer", policy="Cluster", health=32000)
    assert "healthCheckNodePort" not in restore_item(svc, ctx()).objects[0]["spec"]


def test_load_balancer_status_is_not_restored() -> None:
    out = restore_item(service("LoadBalancer"), ctx()).objects[0]
    assert "status" not in out


def test_external_name_services_pass() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("ext"),
        "spec": {"type": "ExternalName", "externalName": "db.example.com"},
    }
    assert service_action(svc, ctx()).objects[0]["spec"] == {
        "type": "ExternalName",
        "externalName": "db.example.com",
    }
