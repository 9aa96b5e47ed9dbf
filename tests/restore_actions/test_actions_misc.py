"""Namespaces, service accounts, secrets, skipped kinds and CRDs."""

from typing import Any

import pytest

from kube.restore.actions import restore_item
from kube.restore.context import RESTORE_LABEL

from .objects import ctx, meta


def namespace(name: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": meta(name, namespace=None, labels={"kubernetes.io/metadata.name": name, "team": "a"}),
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def test_namespaces_are_renamed_by_the_mapping() -> None:
    out = restore_item(namespace(), ctx(namespace_mapping={"shop": "shop-restored"})).objects[0]
    assert out["metadata"]["name"] == "shop-restored"
    assert out["metadata"]["labels"] == {"team": "a", RESTORE_LABEL: "r1"}
    assert "spec" not in out and "status" not in out


def test_unmapped_namespaces_keep_their_name() -> None:
    assert (
        restore_item(namespace("web"), ctx(namespace_mapping={"shop": "x"})).objects[0]["metadata"]["name"]
        == "web"
    )


def test_service_account_token_references_are_dropped() -> None:
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta("app"),
        "secrets": [{"name": "app-token-x8z2q"}, {"name": "registry-creds"}],
        "imagePullSecrets": [{"name": "registry-creds"}],
    }
    out = restore_item(sa, ctx()).objects[0]
    assert out["secrets"] == [{"name": "registry-creds"}]
    assert out["imagePullSecrets"] == [{"name": "registry-creds"}]
    sa["secrets"] = [{"name": "app-token-x8z2q"}]
    assert "secrets" not in restore_item(sa, ctx()).objects[0]


def test_service_account_token_secrets_are_skipped_with_a_reason() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": meta("app-token-x8z2q", annotations={"kubernetes.io/service-account.name": "app"}),
        "data": {"token": "ZXlK"},
    }
    result = restore_item(secret, ctx())
    assert result.objects == [] and result.error is None
    assert result.skip_reason and "token" in result.skip_reason
    assert result.warnings == []


def test_other_secrets_are_restored() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": meta("db"),
        "data": {"password": "cGFzcw=="},
    }
    out = restore_item(secret, ctx()).objects[0]
    assert out["data"] == {"password": "cGFzcw=="} and out["type"] == "Opaque"


@pytest.mark.parametrize(
    ("api", "kind"),
    [
        ("v1", "Endpoints"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("v1", "Event"),
        ("events.k8s.io/v1", "Event"),
    ],
)
def test_cluster_managed_kinds_are_skipped(api: str, kind: str) -> None:
    result = restore_item({"apiVersion": api, "kind": kind, "metadata": meta("x")}, ctx())
    assert result.objects == [] and result.skip_reason and "recreated" in result.skip_reason


def test_crds_pass_through() -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": meta("widgets.demo.backupcenter.io", namespace=None),
        "spec": {
            "group": "demo.backupcenter.io",
            "names": {"plural": "widgets", "kind": "Widget"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
        "status": {"acceptedNames": {"kind": "Widget"}},
    }
    out = restore_item(crd, ctx(namespace_mapping={"shop": "x"})).objects[0]
    assert out["spec"] == crd["spec"]
    assert "status" not in out and "uid" not in out["metadata"]


def test_an_isolated_restore_skips_ingresses_and_suspends_cronjobs() -> None:
    """Beside the running source (a drill): no Ingress claims its hosts, no CronJob runs its schedule."""
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta("web"),
               "spec": {"rules": [{"host": "shop.example.com"}]}}
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta("nightly"),
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "busybox"}]}}}}}}
    assert restore_item(ingress, ctx()).objects[0]["spec"]["rules"][0]["host"] == "shop.example.com"
    assert "suspend" not in restore_item(cron, ctx()).objects[0]["spec"]
    skipped = restore_item(ingress, ctx(isolated=True))
    assert skipped.objects == [] and skipped.skip_reason and "hosts" in skipped.skip_reason
    suspended = restore_item(cron, ctx(isolated=True))
    assert suspended.objects[0]["spec"]["suspend"] is True and suspended.warnings
    assert "suspend" not in cron["spec"]  # the backed-up object is not changed in place
