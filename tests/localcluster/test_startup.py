"""Startup time, a second cluster beside the first, and clean teardown."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kube.rest import Kube
from localdev.kube import procs
from localdev.kube.controlplane import LocalCluster
from tests.localcluster.helpers import wait_for

pytestmark = pytest.mark.cluster

# The target is 15 s on a 2-core machine; the assertion leaves room for a loaded CI host.
STARTUP_LIMIT = 45.0


def test_session_cluster_startup_time(kube_cluster: Any) -> None:
    seconds = kube_cluster.startup_seconds
    print(f"\n{kube_cluster.backend} cluster ready for the first API call in {seconds:.2f}s")
    assert kube_cluster.startup_seconds is not None and kube_cluster.startup_seconds < STARTUP_LIMIT


def test_second_cluster_starts_beside_the_first_and_leaves_nothing_behind(kube_cluster: Any) -> None:
    if not isinstance(kube_cluster, LocalCluster):
        pytest.skip("local backend only")
    started = time.monotonic()
    with LocalCluster(agent="thread") as second:
        nodes = Kube(second.api_client()).list("/api/v1/nodes")[0]
        elapsed = time.monotonic() - started
        pids = [p.pid for p in second.processes.values()]
        state = second.state_dir
        assert second.server != kube_cluster.server
    print(f"\nsecond local cluster (cached binaries, in-process agent) to first API call: {elapsed:.2f}s")
    assert len(nodes) == 4
    assert elapsed < STARTUP_LIMIT
    assert not any(procs.pid_alive(pid) for pid in pids)
    assert not state.exists()


_KILLED_PARENT = """
import json, sys, time
from pathlib import Path
from localdev.kube.controlplane import LocalCluster
cluster = LocalCluster(Path(sys.argv[1])).start()
print(json.dumps([p.pid for p in cluster.processes.values()]), flush=True)
time.sleep(600)
"""


def test_children_die_with_a_killed_parent(tmp_path: Path, kube_cluster: Any) -> None:
    """SIGKILL leaves no cleanup code a chance: the parent-death signal must take the children down."""
    if not isinstance(kube_cluster, LocalCluster):
        pytest.skip("local backend only")
    parent = subprocess.Popen(
        [sys.executable, "-c", _KILLED_PARENT, str(tmp_path / "cluster")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert parent.stdout is not None
        pids = json.loads(parent.stdout.readline())
        assert pids and all(procs.pid_alive(p) for p in pids)
    finally:
        parent.kill()
        parent.wait()
    wait_for(lambda: not any(procs.pid_alive(p) for p in pids), "children of the killed parent to exit", 15)
