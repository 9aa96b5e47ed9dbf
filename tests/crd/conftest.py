"""A real controller process (`backupctl controller`) beside the session's in-process workers, and
`kubectl` as the person at the keyboard uses it."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube.rest import Kube
from localdev.kube.build import kubectl as kubectl_binary
from tests.conftest import REPO
from tests.product_fixtures import Product
from tests.worker_process import WorkerProcess


class Kubectl:
    def __init__(self, kubeconfig: str | Path) -> None:
        self.kubeconfig = str(kubeconfig)

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [kubectl_binary(), "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done

    def apply(self, manifest: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-f", "-", stdin=manifest, check=check)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        done = self.run("-n", namespace, "get", kind, name, "-o", "json", check=False)
        if done.returncode != 0:
            assert "NotFound" in done.stderr, done.stderr
            return None
        found: dict[str, Any] = json.loads(done.stdout)
        return found

    @staticmethod
    def wait_for(probe: Callable[[], Any], what: str, timeout: float = 90) -> Any:
        """The first truthy answer of ``probe`` (polled every 0.3 s); AssertionError naming
        ``what`` (called with the last answer when it is a function) after ``timeout``."""
        deadline = time.monotonic() + timeout
        found = None
        while time.monotonic() < deadline:
            found = probe()
            if found:
                return found
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}: last seen {found!r}")

    def wait_phase(
        self, kind: str, name: str, namespace: str, phases: set[str], timeout: float = 90
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            obj = self.get(kind, name, namespace)
            return obj if ((obj or {}).get("status") or {}).get("phase") in phases else None

        found: dict[str, Any] = self.wait_for(reached, f"{kind} {name} to reach {phases}", timeout)
        return found

    def wait_gone(self, kind: str, name: str, namespace: str, timeout: float = 90) -> None:
        self.wait_for(lambda: self.get(kind, name, namespace) is None, f"{kind} {name} to go", timeout)


@pytest.fixture(scope="session")
def kubectl(product: Product, kube_cluster: Any) -> Kubectl:
    # The product namespace, where admins keep job objects (deploy/namespace.yaml).
    namespace = product.settings.product_namespace
    product.kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}}, exist_ok=True)
    return Kubectl(kube_cluster.kubeconfig_path)


def controller_identity(kube_cluster: Any, kube: Kube) -> Path:
    """A kubeconfig holding exactly the controller's roles of deploy/controller.yaml, not admin."""
    docs = [d for d in yaml.safe_load_all((REPO / "deploy" / "controller.yaml").read_text()) if d]
    user = f"controller-{uuid.uuid4().hex[:6]}"
    subject = [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]
    for doc in docs:
        name = doc["metadata"]["name"]
        if doc["kind"] == "ClusterRole" and name == "backup-center-controller":
            kube.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", doc, exist_ok=True)
            kube.create(
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                {"metadata": {"name": user}, "subjects": subject,
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}},
            )
    path: Path = kube_cluster.mint_identity(user)
    return path


@pytest.fixture(scope="module")
def controller(
    product: Product, temporal_env: Any, kube_cluster: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """`backupctl controller` with the session product's settings (its workers run in this process),
    under the controller's own ClusterRole: the tests prove the role is enough."""
    log = tmp_path_factory.mktemp("controller") / "controller.log"
    proc = WorkerProcess(
        product,
        temporal_env.client.service_client.config.target_host,
        product.settings_path,
        log,
        command=("controller",),
        args=(),
    )
    proc.env["KUBECONFIG"] = str(controller_identity(kube_cluster, product.kube))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
