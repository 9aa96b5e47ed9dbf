"""RBAC is real: a minted identity gets exactly what its Role grants."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from kube.rest import Kube
from localdev.kube.agent.__main__ import api_client_for
from tests.localcluster.helpers import http_status, wait_for

pytestmark = pytest.mark.cluster


def test_limited_identity_is_refused_what_its_role_does_not_grant(
    kube_cluster: Any, kube_namespace: str
) -> None:
    ns, admin = kube_namespace, Kube(kube_cluster.api_client())
    user = f"reader-{uuid.uuid4().hex[:6]}"
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
    admin.create(
        f"{rbac}/roles",
        {
            "metadata": {"name": "configmap-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
    )
    admin.create(
        f"{rbac}/rolebindings",
        {
            "metadata": {"name": "configmap-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader"},
            "subjects": [kube_cluster.identity_subject(user)],
        },
    )
    limited = Kube(api_client_for(kube_cluster.mint_identity(user, ["backup-readers"])))

    # The authorizer learns of new bindings through a watch: allow it a moment.
    wait_for(
        lambda: http_status(lambda: limited.list(f"/api/v1/namespaces/{ns}/configmaps")) == 200,
        "configmaps allowed",
    )
    assert http_status(lambda: limited.list(f"/api/v1/namespaces/{ns}/secrets")) == 403
    assert http_status(lambda: limited.list("/api/v1/namespaces/default/configmaps")) == 403
    assert (
        http_status(
            lambda: limited.create(f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "x"}})
        )
        == 403
    )
    assert http_status(lambda: limited.list("/api/v1/nodes")) == 403
    # Who the server thinks this is: the minted user, not the admin.
    review = limited.create(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert review is not None
    subject = kube_cluster.identity_subject(user)
    expected = (
        f"system:serviceaccount:{subject['namespace']}:{subject['name']}"
        if subject["kind"] == "ServiceAccount"
        else user
    )
    assert review["status"]["userInfo"]["username"] == expected
    if subject["kind"] == "User":  # client-cert identities carry the groups they were minted with
        assert "backup-readers" in review["status"]["userInfo"]["groups"]
