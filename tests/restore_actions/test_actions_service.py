"""Services: cluster IPs, node ports, health check node ports (requirements §8)."""

import json
from datetime import UTC, datetime
from typing import Any, cast

from kube.discovery import ApiResource
from kube.export import _clean
from kube.rest import Kube, KubeError
from kube.restore.actions import restore_item
from kube.restore.actions.service import EXPLICIT_NODE_PORTS, LAST_APPLIED, owned_node_ports, service_action
from kube.restore.apply import ApplyOptions, ObjectApplier, node_port_taken
from kube.restore.explain import ItemStatus
from schemas.specs import ExistingResourcePolicy

from .objects import ctx, meta

SERVICES = ApiResource(group="", version="v1", plural="services", kind="Service", namespaced=True)


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


def two_ports(kind: str) -> dict[str, Any]:
    """A service with two node ports, as listed from the API server (no trace of who set them)."""
    svc = service(kind)
    svc["spec"]["ports"].append({"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP",
                                 "nodePort": 30443})
    return svc


def test_cluster_ips_are_dropped() -> None:
    out = restore_item(service(), ctx()).objects[0]
    assert "clusterIP" not in out["spec"] and "clusterIPs" not in out["spec"]
    assert out["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]


def test_headless_services_stay_headless() -> None:
    out = restore_item(service(cluster_ip="None"), ctx()).objects[0]
    assert out["spec"]["clusterIP"] == "None"
    assert out["spec"]["clusterIPs"] == ["None"]


def test_auto_assigned_node_ports_are_dropped_by_default() -> None:
    # No trace of a user setting them: the allocator chose them, the target chooses anew.
    for kind in ("NodePort", "LoadBalancer"):
        out = restore_item(service(kind), ctx()).objects[0]
        assert "nodePort" not in out["spec"]["ports"][0]
        assert out["spec"]["type"] == kind


def test_node_ports_in_the_last_applied_configuration_are_kept() -> None:
    for kind in ("NodePort", "LoadBalancer"):
        svc = two_ports(kind)
        applied = {"spec": {"type": kind, "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                                                    {"name": "https", "port": 443}]}}
        svc["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(applied)}
        out = restore_item(svc, ctx()).objects[0]
        http, https = out["spec"]["ports"]
        assert http["nodePort"] == 30080
        assert "nodePort" not in https  # applied without one: auto-assigned
        assert out["metadata"]["annotations"][LAST_APPLIED] == json.dumps(applied)  # kubectl needs it


def test_last_applied_ports_match_by_name_or_port_and_protocol() -> None:
    svc = two_ports("NodePort")
    # Unnamed in the manifest: matched by port and (default) protocol.
    unnamed: dict[str, Any] = {"spec": {"ports": [{"port": 443, "nodePort": 30443}]}}
    svc["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(unnamed)}
    http, https = restore_item(svc, ctx()).objects[0]["spec"]["ports"]
    assert "nodePort" not in http and https["nodePort"] == 30443
    # Named, with the port number changed since by another client: matched by name.
    named: dict[str, Any] = {"spec": {"ports": [{"name": "http", "port": 8000, "nodePort": 30080}]}}
    svc["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(named)}
    http, https = restore_item(svc, ctx()).objects[0]["spec"]["ports"]
    assert http["nodePort"] == 30080 and "nodePort" not in https


def test_unreadable_last_applied_configuration_keeps_nothing() -> None:
    svc = service("NodePort")
    svc["metadata"]["annotations"] = {LAST_APPLIED: "{not json"}
    assert "nodePort" not in restore_item(svc, ctx()).objects[0]["spec"]["ports"][0]


def managed_fields(*owned: tuple[int, str]) -> list[dict[str, Any]]:
    """managedFields as the API server writes them: one manager (server-side apply) owns the node
    port of the ``owned`` ports, another (the client that created the service) owns the rest."""
    def ports(with_node_port: bool) -> dict[str, Any]:
        fields: dict[str, Any] = {".": {}, "f:name": {}, "f:port": {}, "f:protocol": {}}
        if with_node_port:
            fields["f:nodePort"] = {}
        return {f'k:{{"port":{port},"protocol":"{protocol}"}}': dict(fields) for port, protocol in owned}
    return [
        {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:spec": {"f:type": {}, "f:ports": ports(True)}}},
        {"manager": "backupcenter", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:metadata": {"f:labels": {}},
                      "f:spec": {"f:ports": {'k:{"port":443,"protocol":"TCP"}': {".": {}, "f:port": {}}}}}},
    ]


def test_node_ports_owned_in_managed_fields_are_kept() -> None:
    # As the exporter writes the service: managedFields gone, their verdict in an annotation.
    for kind in ("NodePort", "LoadBalancer"):
        svc = two_ports(kind)
        svc["metadata"]["managedFields"] = managed_fields((80, "TCP"))
        exported = _clean(svc, SERVICES)
        assert "managedFields" not in exported["metadata"]
        assert exported["metadata"]["annotations"][EXPLICIT_NODE_PORTS] == "80/TCP"
        out = restore_item(exported, ctx()).objects[0]
        http, https = out["spec"]["ports"]
        assert http["nodePort"] == 30080 and "nodePort" not in https
        assert EXPLICIT_NODE_PORTS not in out["metadata"]["annotations"]  # bookkeeping of the backup
    # A service listed from a cluster (managedFields still there) is judged the same way.
    svc = two_ports("NodePort")
    svc["metadata"]["managedFields"] = managed_fields((443, "TCP"))
    http, https = service_action(svc, ctx()).objects[0]["spec"]["ports"]
    assert "nodePort" not in http and https["nodePort"] == 30443


def test_ownership_of_other_fields_or_protocols_is_not_explicit() -> None:
    svc = two_ports("NodePort")
    svc["metadata"]["managedFields"] = managed_fields((80, "UDP"))  # another port entry
    exported = _clean(svc, SERVICES)
    assert EXPLICIT_NODE_PORTS not in (exported["metadata"].get("annotations") or {})
    assert all("nodePort" not in p for p in restore_item(exported, ctx()).objects[0]["spec"]["ports"])
    keys: dict[str, Any] = {"k:nope": {"f:nodePort": {}}, "v:1": {"f:nodePort": {}}}
    garbled = {"fieldsV1": {"f:spec": {"f:ports": keys}}}
    assert owned_node_ports([{"manager": "m"}, garbled]) == set()


def test_preserve_node_ports_keeps_all() -> None:
    for kind in ("NodePort", "LoadBalancer"):
        out = restore_item(two_ports(kind), ctx(preserve_node_ports=True)).objects[0]
        assert [p["nodePort"] for p in out["spec"]["ports"]] == [30080, 30443]


def test_an_isolated_restore_takes_none_of_the_sources_traffic() -> None:
    """Beside the running source (a drill): explicit node ports, the load balancer and its provider
    annotations stay the source's; the restored service is ClusterIP."""
    svc = two_ports("LoadBalancer")
    svc["metadata"]["annotations"] = {
        EXPLICIT_NODE_PORTS: "80/TCP,443/TCP",
        "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-id": "lb-123",
        "external-dns.alpha.kubernetes.io/hostname": "shop.example.com",
        "team": "shop",
    }
    svc["spec"].update(loadBalancerIP="1.2.3.4", externalTrafficPolicy="Local", healthCheckNodePort=32000)
    assert [p.get("nodePort") for p in restore_item(svc, ctx()).objects[0]["spec"]["ports"]] == [30080, 30443]
    for preserve in (True, False):
        out = restore_item(svc, ctx(isolated=True, preserve_node_ports=preserve)).objects[0]
        assert out["spec"]["type"] == "ClusterIP"
        assert all("nodePort" not in p for p in out["spec"]["ports"])
        assert not {"loadBalancerIP", "externalTrafficPolicy", "healthCheckNodePort"} & set(out["spec"])
        kept = set(out["metadata"].get("annotations") or {}) - {"backupcenter.io/backup"}
        assert kept == {"team"}


def test_stray_node_ports_of_cluster_ip_services_are_dropped() -> None:
    svc = service()
    svc["spec"]["ports"][0]["nodePort"] = 30001
    svc["metadata"]["annotations"] = {EXPLICIT_NODE_PORTS: "80/TCP"}
    for preserve in (True, False):
        out = restore_item(svc, ctx(preserve_node_ports=preserve)).objects[0]
        assert "nodePort" not in out["spec"]["ports"][0]


def test_health_check_node_port_of_local_load_balancers() -> None:
    svc = service("LoadBalancer", policy="Local", health=32000)
    kept = restore_item(svc, ctx(preserve_node_ports=True)).objects[0]
    assert kept["spec"]["healthCheckNodePort"] == 32000
    dropped = restore_item(svc, ctx(preserve_node_ports=False)).objects[0]
    assert "healthCheckNodePort" not in dropped["spec"]
    assert dropped["spec"]["externalTrafficPolicy"] == "Local"
    # The default, even when the manifest set it: kept only with preserve_node_ports, as before.
    ports = [{"name": "http", "port": 80, "nodePort": 30080}]
    applied = {"spec": {"healthCheckNodePort": 32000, "ports": ports}}
    svc["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(applied)}
    default = restore_item(svc, ctx()).objects[0]
    assert "healthCheckNodePort" not in default["spec"]
    assert default["spec"]["ports"][0]["nodePort"] == 30080


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


ALLOCATED = ('Service "web" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is '
             'already allocated')


class RefusingKube:
    """Answers every request with one API error."""

    def __init__(self, error: KubeError) -> None:
        self.error = error

    def request(self, method: str, path: str, **_: Any) -> Any:
        raise self.error


def applier(error: KubeError) -> ObjectApplier:
    options = ApplyOptions(restore_name="r1", policy=ExistingResourcePolicy.none,
                           started_at=datetime.now(UTC))
    return ObjectApplier(cast(Kube, RefusingKube(error)), options)


def test_a_taken_node_port_fails_the_item_naming_port_and_service() -> None:
    svc = restore_item(service("NodePort"), ctx(preserve_node_ports=True)).objects[0]
    status, error, uid, _ = applier(KubeError(422, "Invalid", ALLOCATED)).apply(SERVICES, svc)
    assert status is ItemStatus.failed and uid == ""
    assert error is not None and error.code == "NodePortTaken"
    assert error.short() == ("RestoreError: Service shop/web: node port 30080 is already allocated in the "
                             "target cluster")
    assert ALLOCATED in (error.detail or "")
    fixes = " ".join(error.fixes)
    assert "Free the port" in fixes and "--preserve-node-ports" in fixes


def test_taken_health_check_and_several_node_ports() -> None:
    message = ('Service "web" is invalid: [spec.ports[0].nodePort: Invalid value: 30080: provided port is '
               'already allocated, spec.ports[1].nodePort: Invalid value: 30443: provided port is already '
               'allocated, spec.healthCheckNodePort: Invalid value: 32000: provided port is already '
               'allocated]')
    error = node_port_taken(two_ports("LoadBalancer"), KubeError(422, "Invalid", message))
    assert error is not None and "node port 30080, 30443, 32000 is" in error.message


def test_other_refusals_stay_generic() -> None:
    svc = service("NodePort")
    invalid = KubeError(422, "Invalid", 'Service "web" is invalid: spec.ports[0].nodePort: Invalid value: '
                        '99999: provided port is not in the valid range. The range of valid ports is '
                        '30000-32767')
    assert node_port_taken(svc, invalid) is None
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("web")}
    assert node_port_taken(cm, KubeError(422, "Invalid", ALLOCATED)) is None
    _, error, _, _ = applier(invalid).apply(SERVICES, svc)
    assert error is not None and error.code == "RestoreItemFailed" and "valid range" in error.message
