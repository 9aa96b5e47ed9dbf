"""Pytest plugin: one Kubernetes cluster per test session (`pytest_plugins = ["tests.kube_fixtures"]`).

Backend, chosen by the environment:
  default                                  the local control plane (etcd + kube-apiserver +
                                           kube-controller-manager + the local agent), started on first use
  BACKUPCENTER_TEST_KUBECONFIG=path        an existing cluster
  BACKUPCENTER_TEST_BACKEND=kubeconfig     an existing cluster, from $KUBECONFIG (or ~/.kube/config)
  BACKUPCENTER_TEST_BACKEND=k3s            K3s in a container (testcontainers; needs a Docker engine)

Fixtures:
  kube_cluster    session-scoped: .kubeconfig_path, .api_client(), .mint_identity(user, groups),
                  .identity_subject(user), .agent (faults, kubelet_root; None off the local backend),
                  .backend, .startup_seconds
  kube_namespace  a fresh namespace for one test, deleted afterwards
  kube_agent      the local agent's handle; skips the test on backends without one
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from kube import job_objects
from kube.rest import Kube
from localdev.kube.backends import BackendUnavailable, ExternalCluster, k3s_cluster
from localdev.kube.build import KUBE_VERSION, find_binaries
from localdev.kube.controlplane import LocalCluster
from schemas import resources

_STARTED: dict[str, Any] = {}


def selected_backend() -> tuple[str, Path | None]:
    """(backend name, kubeconfig for external backends)."""
    explicit = os.environ.get("BACKUPCENTER_TEST_KUBECONFIG")
    if explicit:
        return "kubeconfig", Path(explicit)
    backend = os.environ.get("BACKUPCENTER_TEST_BACKEND", "local").lower()
    if backend == "kubeconfig":
        return backend, Path(os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config")
    if backend not in ("local", "k3s"):
        raise pytest.UsageError(f"BACKUPCENTER_TEST_BACKEND={backend!r}: expected local, kubeconfig or k3s")
    return backend, None


def pytest_report_header(config: pytest.Config) -> str:
    backend, kubeconfig = selected_backend()
    if backend == "kubeconfig":
        return f"kube backend: existing cluster from {kubeconfig}"
    if backend == "k3s":
        return "kube backend: k3s container (testcontainers)"
    binaries = find_binaries()
    where = (
        f"{binaries.source}: {binaries.kube_apiserver.parent}"
        if binaries
        else "not built yet: built on first use"
    )
    return f"kube backend: local control plane, kube-apiserver {KUBE_VERSION} ({where}) + local agent"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _STARTED:
        terminalreporter.write_line(
            f"kube backend {_STARTED['backend']}: ready for the first API call in {_STARTED['seconds']:.2f}s"
        )


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[LocalCluster | ExternalCluster]:
    backend, kubeconfig = selected_backend()
    started = time.monotonic()
    with ExitStack() as stack:
        cluster: LocalCluster | ExternalCluster
        if backend == "local":
            cluster = stack.enter_context(LocalCluster())
        elif backend == "k3s":
            unavailable = ""
            try:
                cluster = stack.enter_context(k3s_cluster())
            except BackendUnavailable as exc:
                unavailable = str(exc)
            if unavailable:
                pytest.fail(unavailable, pytrace=False)
        else:
            assert kubeconfig is not None
            if not kubeconfig.exists():
                pytest.fail(f"kube backend {backend}: kubeconfig {kubeconfig} does not exist", pytrace=False)
            cluster = ExternalCluster(kubeconfig)
            stack.callback(cluster.stop)
        # The first successful API call marks the end of startup, on every backend.
        kube = Kube(cluster.api_client())
        kube.list("/api/v1/namespaces", limit=1)
        seconds = time.monotonic() - started
        # The product's custom resources are part of its deployment (deploy/crds.yaml).
        job_objects.install_crds(kube, list(resources.crds()))
        cluster.startup_seconds = seconds
        _STARTED.update(backend=backend, seconds=seconds)
        yield cluster


@pytest.fixture
def kube_agent(kube_cluster: LocalCluster | ExternalCluster) -> Any:
    if kube_cluster.agent is None:
        pytest.skip("needs the local agent (local backend only)")
    return kube_cluster.agent


@pytest.fixture
def kube_namespace(kube_cluster: LocalCluster | ExternalCluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube = Kube(kube_cluster.api_client())
    kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    kube.delete(f"/api/v1/namespaces/{name}")
