"""The demo seed: every kind a backup must carry, running pods, and volume files to check a restore by."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kube.rest import Kube
from localdev.kube.seed import APP_NS, WEB_NS, WIDGET_GROUP, seed_sample_app, verify_volume_files
from tests.localcluster.helpers import get, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture
def seeded(kube_cluster: Any, kube_agent: Any) -> Iterator[dict[str, Any]]:
    yield seed_sample_app(kube_cluster.api_client())
    kube = Kube(kube_cluster.api_client())
    for ns in (APP_NS, WEB_NS):
        kube.delete(f"/api/v1/namespaces/{ns}")


def test_seed_creates_a_running_app_with_known_volume_files(
    kube_cluster: Any, seeded: dict[str, Any]
) -> None:
    kube = Kube(kube_cluster.api_client())
    db = get(kube, f"/apis/apps/v1/namespaces/{APP_NS}/statefulsets/db")
    assert (
        db["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "alicloud-disk-topology-alltype"
    )
    wait_for(
        lambda: (
            get(kube, f"/apis/apps/v1/namespaces/{WEB_NS}/deployments/web")
            .get("status", {})
            .get("readyReplicas")
            == 2
        ),
        "web deployment ready",
    )

    services = {s["metadata"]["name"]: s for s in kube.list(f"/api/v1/namespaces/{WEB_NS}/services")[0]}
    services.update({s["metadata"]["name"]: s for s in kube.list(f"/api/v1/namespaces/{APP_NS}/services")[0]})
    assert services["db"]["spec"]["clusterIP"] == "None"
    assert services["web"]["spec"]["ports"][0]["nodePort"] == 30080
    public = services["web-public"]
    assert public["spec"]["externalTrafficPolicy"] == "Local" and public["spec"]["healthCheckNodePort"]
    wait_for(
        lambda: (
            get(kube, f"/api/v1/namespaces/{WEB_NS}/services/web-public")["status"]
            .get("loadBalancer", {})
            .get("ingress")
        ),
        "load balancer address",
    )
    assert get(kube, f"/apis/networking.k8s.io/v1/namespaces/{WEB_NS}/ingresses/web")

    # The custom resource is served in both versions; each reads the other's objects.
    assert (
        get(kube, f"/apis/{WIDGET_GROUP}/v1beta1/namespaces/{APP_NS}/widgets/blue")["spec"]["color"] == "blue"
    )
    assert get(kube, f"/apis/{WIDGET_GROUP}/v1/namespaces/{WEB_NS}/widgets/red")["spec"]["size"] == 1

    assert {v["claim"] for v in seeded["volumes"]} == {"data-db-0", "data-db-1", "shared-files"}
    assert verify_volume_files(kube_cluster.api_client(), seeded) == []
    # The check is not vacuous: a changed byte is reported.
    victim = seeded["volumes"][0]
    Path(victim["writtenTo"], "PG_VERSION").write_text("15\n")
    assert verify_volume_files(kube_cluster.api_client(), seeded) == [
        f"{APP_NS}/{victim['claim']}: PG_VERSION differs"
    ]
