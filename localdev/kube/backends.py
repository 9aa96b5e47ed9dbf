"""Clusters the test suite can run against besides the LocalCluster: an existing one (a kubeconfig), or
K3s in a container (testcontainers, needs a Docker engine). They offer the same surface as LocalCluster
(kubeconfig_path, api_client(), mint_identity(), identity_subject()) but no local agent: a real cluster
has its own kubelets and CSI drivers, so agent-dependent tests skip there.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import ApiClient

from kube.rest import Kube
from localdev.kube.agent.__main__ import api_client_for

IDENTITY_NAMESPACE = "backupcenter-test-identities"


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here; the message says why and what to do."""


class ExternalCluster:
    """An existing cluster reached through a kubeconfig whose identity may create ServiceAccounts and
    RBAC objects. Identities are ServiceAccounts with short-lived tokens: a real cluster's CA key is
    not ours to sign with, so the groups asked for cannot be granted (bind the subject instead)."""

    agent = None
    startup_seconds: float | None = None

    def __init__(self, kubeconfig: Path, backend: str = "kubeconfig") -> None:
        self.kubeconfig_path = kubeconfig.resolve()
        self.backend = backend
        self._api_client: ApiClient | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="backupcenter-ext-"))
        self.server = self._current_cluster()["server"]

    def _current_cluster(self) -> dict[str, Any]:
        config = yaml.safe_load(self.kubeconfig_path.read_text())
        context_name = config.get("current-context")
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster = dict(next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"]))
        ca_file = cluster.pop("certificate-authority", None)
        if ca_file:
            # Embed it: the minted kubeconfig lives elsewhere, where a relative path would break.
            path = (self.kubeconfig_path.parent / ca_file).resolve()
            cluster["certificate-authority-data"] = base64.b64encode(path.read_bytes()).decode()
        return cluster

    def api_client(self) -> ApiClient:
        if self._api_client is None:
            self._api_client = api_client_for(self.kubeconfig_path)
        return self._api_client

    @staticmethod
    def _sa_name(user: str) -> str:
        return re.sub(r"[^a-z0-9-]", "-", user.lower()).strip("-")[:63] or "identity"

    def mint_identity(self, user: str, groups: list[str] | tuple[str, ...] = ()) -> Path:
        kube = Kube(self.api_client())
        name = self._sa_name(user)
        kube.create("/api/v1/namespaces", {"metadata": {"name": IDENTITY_NAMESPACE}}, exist_ok=True)
        kube.create(
            f"/api/v1/namespaces/{IDENTITY_NAMESPACE}/serviceaccounts",
            {"metadata": {"name": name}},
            exist_ok=True,
        )
        token = kube.create(
            f"/api/v1/namespaces/{IDENTITY_NAMESPACE}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 7200},
            },
        )
        assert token is not None
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "target", "cluster": self._current_cluster()}],
            "users": [{"name": name, "user": {"token": token["status"]["token"]}}],
            "contexts": [{"name": "target", "context": {"cluster": "target", "user": name}}],
            "current-context": "target",
        }
        path = self._dir / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def identity_subject(self, user: str) -> dict[str, str]:
        return {"kind": "ServiceAccount", "name": self._sa_name(user), "namespace": IDENTITY_NAMESPACE}

    def kubelet_root(self, node: str) -> Path:
        raise BackendUnavailable(f"{self.backend}: kubelet roots live on the nodes, not on this machine")

    def stop(self) -> None:
        if self._api_client is not None:
            with contextlib.suppress(Exception):
                self._api_client.close()
            self._api_client = None


def docker_available() -> str | None:
    """None when a Docker engine answers, else why not."""
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as exc:
        where = os.environ.get("DOCKER_HOST") or "/var/run/docker.sock"
        return f"no Docker engine reachable at {where} ({type(exc).__name__}: {exc})"
    return None


@contextlib.contextmanager
def k3s_cluster(image: str = "rancher/k3s:latest") -> Iterator[ExternalCluster]:
    """K3s in a container. Fails with BackendUnavailable, not a stack trace, where Docker is missing."""
    why = docker_available()
    if why:
        raise BackendUnavailable(
            f"BACKUPCENTER_TEST_BACKEND=k3s needs a Docker engine: {why}. Start Docker (or set DOCKER_HOST), "
            "or unset BACKUPCENTER_TEST_BACKEND to use the built-in local control plane."
        )
    from testcontainers.k3s import K3SContainer

    with K3SContainer(image=os.environ.get("BACKUPCENTER_K3S_IMAGE", image)) as k3s:
        path = Path(tempfile.mkdtemp(prefix="backupcenter-k3s-")) / "kubeconfig"
        path.write_text(k3s.config_yaml())
        cluster = ExternalCluster(path, backend="k3s")
        try:
            yield cluster
        finally:
            cluster.stop()
