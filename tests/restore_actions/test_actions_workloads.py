"""Pod templates of every workload kind: registry mapping then rewrite rules; pods' node binding."""

from typing import Any

import pytest

from kube.restore.actions import restore_item
from kube.restore.actions.workloads import images_action, pod_specs
from kube.restore.images import parse_image_rules

from .objects import ctx, deployment, meta, pod_spec

MAPPING = {"docker.io/library/": "registry.example.com/my-registry/"}


def workload(kind: str, *images: str, api: str = "apps/v1") -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": "x"}}, "spec": pod_spec(*images)}
    spec: dict[str, Any]
    if kind == "CronJob":
        spec = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}}
    else:
        spec = {"selector": {"matchLabels": {"app": "x"}}, "template": template}
    return {"apiVersion": api, "kind": kind, "metadata": meta("x"), "spec": spec}


def images(obj: dict[str, Any]) -> list[str]:
    return [
        c["image"]
        for spec in pod_specs(obj)
        for name in ("initContainers", "containers")
        for c in spec.get(name) or []
    ]


@pytest.mark.parametrize(
    ("kind", "api"),
    [
        ("Deployment", "apps/v1"),
        ("StatefulSet", "apps/v1"),
        ("DaemonSet", "apps/v1"),
        ("ReplicaSet", "apps/v1"),
        ("Job", "batch/v1"),
        ("CronJob", "batch/v1"),
        ("ReplicationController", "v1"),
        ("Deployment", "extensions/v1beta1"),
        ("Rollout", "argoproj.io/v1alpha1"),
    ],  # any kind with spec.template.spec.containers
)
def test_images_of_every_workload_kind_are_rewritten(kind: str, api: str) -> None:
    obj = workload(kind, "docker.io/library/app1:v1", "quay.io/team/sidecar:1", api=api)
    out = restore_item(obj, ctx(image_registry_mapping=MAPPING)).objects[0]
    assert images(out) == ["registry.example.com/my-registry/app1:v1", "quay.io/team/sidecar:1"]


def test_pod_containers_init_and_ephemeral_containers_are_rewritten() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta("p"),
        "spec": {
            **pod_spec("app1:v1", init=("busybox:1.36",)),
            "ephemeralContainers": [{"name": "debug", "image": "busybox:1.36"}],
        },
    }
    out = restore_item(pod, ctx(image_registry_mapping=MAPPING)).objects[0]
    assert out["spec"]["containers"][0]["image"] == "registry.example.com/my-registry/app1:v1"
    assert out["spec"]["initContainers"][0]["image"] == "registry.example.com/my-registry/busybox:1.36"
    assert out["spec"]["ephemeralContainers"][0]["image"] == "registry.example.com/my-registry/busybox:1.36"


def test_registry_mapping_runs_before_rewrite_rules() -> None:
    rules = parse_image_rules(
        {"a": "registry.example.com/my-registry/app1:v1,registry.example.com/app/app1:v2"}
    )
    out = restore_item(
        deployment("docker.io/library/app1:v1"), ctx(image_registry_mapping=MAPPING, image_rules=rules)
    ).objects[0]
    assert images(out) == ["registry.example.com/app/app1:v2"]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("app1:v1,app2:v2", "docker.io/library/app2:v2"),
        ("app1,app2", "docker.io/library/app2:v1"),
        ("v1:v2", "docker.io/library/app1:v2"),
        (
            "docker.io/library/app1:v1,registry.cn-beijing.aliyuncs.com/my-registry/app2:v2",
            "registry.cn-beijing.aliyuncs.com/my-registry/app2:v2",
        ),
    ],
)
def test_rewrite_rules_apply_to_pod_templates(rule: str, expected: str) -> None:
    rules = parse_image_rules({"case1": rule})
    out = restore_item(deployment("docker.io/library/app1:v1", "redis:7"), ctx(image_rules=rules)).objects[0]
    assert images(out) == [expected, "redis:7"]


def test_rewrite_warnings_reach_the_result() -> None:
    rules = parse_image_rules({"case1": "v1:v2"})
    result = restore_item(deployment("app1:v1@sha256:" + "c" * 64), ctx(image_rules=rules))
    assert images(result.objects[0]) == ["app1:v2"]
    assert any("digest dropped" in w for w in result.warnings)


def test_no_mapping_no_copy() -> None:
    obj = deployment("nginx")
    assert images_action(obj, ctx()).objects[0] is not None
    assert images(images_action(obj, ctx()).objects[0]) == ["nginx"]


def test_objects_without_pod_templates_are_untouched() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("c"),
        "data": {"template": "spec: {containers: []}"},
    }
    out = restore_item(cm, ctx(image_registry_mapping=MAPPING)).objects[0]
    assert out["data"] == cm["data"]


def pod(**spec: Any) -> dict[str, Any]:
    body = {**pod_spec("nginx:1.25"), "nodeName": "cn-hangzhou.192.168.0.10", **spec}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta("p"),
        "spec": body,
        "status": {"phase": "Running", "podIP": "10.0.0.5"},
    }


def test_pods_lose_their_node() -> None:
    out = restore_item(pod(), ctx()).objects[0]
    assert "nodeName" not in out["spec"]
    assert "status" not in out


def test_injected_token_volumes_are_dropped_with_their_mounts() -> None:
    obj = pod(
        serviceAccountName="app",
        volumes=[
            {
                "name": "kube-api-access-x7k2p",
                "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
            },
            {"name": "app-token-abcde", "secret": {"secretName": "app-token-abcde"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "certs", "secret": {"secretName": "tls-certs"}},
        ],
    )
    obj["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
        {"name": "app-token-abcde", "mountPath": "/legacy"},
        {"name": "data", "mountPath": "/data"},
        {"name": "certs", "mountPath": "/certs"},
    ]
    out = restore_item(obj, ctx()).objects[0]
    assert [v["name"] for v in out["spec"]["volumes"]] == ["data", "certs"]
    assert [m["name"] for m in out["spec"]["containers"][0]["volumeMounts"]] == ["data", "certs"]


def test_workload_templates_keep_their_labels() -> None:
    out = restore_item(deployment("nginx"), ctx()).objects[0]
    assert out["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    assert out["spec"]["selector"] == {"matchLabels": {"app": "web"}}


def job(manual: bool = False) -> dict[str, Any]:
    uid_labels = {"controller-uid": "old-uid", "batch.kubernetes.io/controller-uid": "old-uid"}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": dict(uid_labels)},
        "template": {
            "metadata": {"labels": {**uid_labels, "job-name": "migrate", "app": "db"}},
            "spec": {**pod_spec("app1:v1"), "restartPolicy": "Never"},
        },
    }
    if manual:
        spec["manualSelector"] = True
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta("migrate"), "spec": spec}


def test_jobs_lose_the_labels_derived_from_their_old_uid() -> None:
    out = restore_item(job(), ctx(image_registry_mapping=MAPPING)).objects[0]
    assert "selector" not in out["spec"]
    assert out["spec"]["template"]["metadata"]["labels"] == {"job-name": "migrate", "app": "db"}
    assert images(out) == ["registry.example.com/my-registry/app1:v1"]


def test_jobs_with_a_manual_selector_keep_it() -> None:
    out = restore_item(job(manual=True), ctx()).objects[0]
    assert out["spec"]["selector"]["matchLabels"]["controller-uid"] == "old-uid"
