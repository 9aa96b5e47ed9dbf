"""`backupctl dev up/down/status` underneath: a detached cluster, twice in a row, data kept across."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kube.rest import Kube
from localdev.kube import devcluster, procs
from localdev.kube.agent.__main__ import api_client_for

pytestmark = pytest.mark.cluster


def test_up_status_down_twice(tmp_path: Path, kube_cluster: Any) -> None:
    if kube_cluster.backend != "local":
        pytest.skip("local backend only")
    state = tmp_path / "dev"
    try:
        first = devcluster.up(state)
        assert first["running"] and first["kubeconfig"] == str(state / "kubeconfig")
        assert set(first["components"]) == {"etcd", "kube-apiserver", "kube-controller-manager", "agent"}
        assert devcluster.up(state)["components"] == first["components"], "a second up leaves it alone"
        kube = Kube(api_client_for(state / "kubeconfig"))
        kube.create("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "survives"}})
        assert len(kube.list("/api/v1/nodes")[0]) == 4
        devcluster.down(state)
        assert not devcluster.status(state)["running"]
        assert not any(procs.pid_alive(c["pid"]) for c in first["components"].values())

        second = devcluster.up(state)
        assert second["running"]
        kube = Kube(api_client_for(state / "kubeconfig"))
        assert kube.get("/api/v1/namespaces/default/configmaps/survives") is not None
        status = devcluster.status(state)
        assert status["running"] and status["server"] == second["server"]
        devcluster.down(state)
        assert not any(procs.pid_alive(c["pid"]) for c in second["components"].values())
        assert devcluster.status(state)["components"] == {}
    finally:
        devcluster.down(state)
