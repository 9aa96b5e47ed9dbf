"""Faults on demand: the agent misbehaves when asked to, and recovers when the fault is cleared."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from kube.rest import Kube
from tests.localcluster.helpers import (
    create,
    pvc,
    pvc_phase,
    snapshot,
    snapshot_path,
    status,
    stays,
    wait_for,
)

pytestmark = pytest.mark.cluster


@pytest.fixture
def faults(kube_agent: Any) -> Iterator[Any]:
    kube_agent.faults.clear()
    yield kube_agent.faults
    kube_agent.faults.clear()


def _bound_disk(kube: Kube, ns: str) -> None:
    create(kube, ns, pvc("d", "alicloud-disk-immediate"))
    wait_for(lambda: pvc_phase(kube, ns, "d") == "Bound", "claim bound")


def test_snapshot_never_ready_until_the_fault_is_cleared(
    kube_cluster: Any, faults: Any, kube_namespace: str
) -> None:
    ns, kube = kube_namespace, Kube(kube_cluster.api_client())
    _bound_disk(kube, ns)
    faults.snapshots_never_ready()
    create(kube, ns, snapshot("stuck", "d"))
    path = snapshot_path(ns, "stuck")
    wait_for(lambda: status(kube, path).get("boundVolumeSnapshotContentName"), "content created")
    stays(lambda: not status(kube, path).get("readyToUse"), "snapshot not ready", seconds=1.5)
    faults.snapshots_never_ready(False)
    wait_for(
        lambda: status(kube, path).get("readyToUse"), "snapshot ready once the fault is cleared", timeout=15
    )


def test_slow_snapshots(kube_cluster: Any, faults: Any, kube_namespace: str) -> None:
    ns, kube = kube_namespace, Kube(kube_cluster.api_client())
    _bound_disk(kube, ns)
    faults.slow_snapshots(2.0)
    started = time.monotonic()
    create(kube, ns, snapshot("slow", "d"))
    wait_for(
        lambda: status(kube, snapshot_path(ns, "slow")).get("readyToUse"), "slow snapshot ready", timeout=20
    )
    assert time.monotonic() - started >= 1.5


def test_class_that_never_binds(kube_cluster: Any, faults: Any, kube_namespace: str) -> None:
    ns, kube = kube_namespace, Kube(kube_cluster.api_client())
    faults.never_bind("alicloud-disk-immediate")
    create(kube, ns, pvc("never", "alicloud-disk-immediate"))
    stays(lambda: pvc_phase(kube, ns, "never") == "Pending", "claim pending", seconds=1.5)
    faults.never_bind("alicloud-disk-immediate", enabled=False)
    wait_for(lambda: pvc_phase(kube, ns, "never") == "Bound", "claim bound once the fault is cleared")
