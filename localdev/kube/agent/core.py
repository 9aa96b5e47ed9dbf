"""The local agent: plays kubelets, a CSI driver, a snapshot controller and a cloud on a real API server.

Level-triggered: watches only say "something changed"; every pass then reads the world afresh and each
controller moves it one step. Its own writes wake it again until nothing is left to do, and a resync
every few seconds covers anything a watch missed. One reconcile thread, so controllers never race.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient

from kube.rest import Kube, KubeError
from localdev.kube.agent import bootstrap, nodes
from localdev.kube.agent.cloud import CloudLoadBalancers
from localdev.kube.agent.crds import API_VERSION as SNAPSHOT_API
from localdev.kube.agent.ecs import LocalEcsLink
from localdev.kube.agent.faults import Faults
from localdev.kube.agent.kubelet import Kubelet
from localdev.kube.agent.model import (
    AGENT_NAMESPACE,
    FAULTS_CONFIGMAP,
    NODES,
    REGION,
    STATUS_CONFIGMAP,
    Layout,
)
from localdev.kube.agent.provisioner import Provisioner
from localdev.kube.agent.scheduler import Scheduler
from localdev.kube.agent.snapshotter import Snapshotter
from localdev.kube.agent.util import Events, log, rfc3339
from localdev.kube.agent.world import observe

HEARTBEAT_SECONDS = 10.0
GC_SECONDS = 30.0

# (path, extra query) of each watch; a change to any of them wakes the reconcile loop.
_WATCHES: tuple[tuple[str, dict[str, str]], ...] = (
    ("/api/v1/pods", {}),
    ("/api/v1/persistentvolumeclaims", {}),
    ("/api/v1/persistentvolumes", {}),
    ("/api/v1/services", {}),
    (
        f"/api/v1/namespaces/{AGENT_NAMESPACE}/configmaps",
        {"fieldSelector": f"metadata.name={FAULTS_CONFIGMAP}"},
    ),
    (f"/apis/{SNAPSHOT_API}/volumesnapshots", {}),
    (f"/apis/{SNAPSHOT_API}/volumesnapshotcontents", {}),
)


class LocalAgent:
    def __init__(
        self,
        api_client: ApiClient,
        state_dir: Path,
        *,
        snapshot_store: Path | None = None,
        resync: float = 5.0,
        region: str = REGION,
        ecs_endpoint: str | None = None,
    ) -> None:
        self.layout = Layout.of(state_dir, snapshot_store)
        self.kube = Kube(api_client)
        self.faults = Faults(self.kube)
        self.region = region
        # Disk snapshots are ECS snapshots of this region when an endpoint is given (see agent/ecs.py).
        self.ecs = LocalEcsLink(ecs_endpoint) if ecs_endpoint else None
        self._resync = resync
        events = Events(self.kube)
        self._provisioner = Provisioner(self.kube, self.layout, events, region=region, ecs=self.ecs)
        self._scheduler = Scheduler(self.kube)
        self._kubelet = Kubelet(self.kube, self.layout)
        self._snapshotter = Snapshotter(self.kube, self.layout, events, ecs=self.ecs, region=region)
        self._cloud = CloudLoadBalancers(self.kube)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self.passes = 0

    def kubelet_root(self, node: str) -> Path:
        return self.layout.kubelet_root(node)

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Run in background threads of this process (see run() for a process of its own)."""
        thread = threading.Thread(target=self.run, name="local-agent", daemon=True)
        thread.start()
        self._threads.append(thread)

    def wait_ready(self, timeout: float = 60.0) -> None:
        if not self._ready.wait(timeout):
            raise TimeoutError(f"local agent not ready after {timeout:.0f}s")

    def stop(self, timeout: float = 10.0, *, wait: bool = True) -> None:
        """Stop, and (wait=True) wait for the threads; then no connection of ours is left open (an API
        server being shut down waits for its clients' connections to go). A signal handler passes
        wait=False: it must not block the thread it interrupted."""
        self._stop.set()
        self._wake.set()
        self.kube.close()  # unblocks the watch threads
        if not wait:
            return
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        self.kube.close()  # whatever a pass in flight opened meanwhile

    def run(self) -> None:
        """Bootstrap (retrying until the API server answers), then reconcile until stop()."""
        self._bootstrap()
        if self._stop.is_set():
            return
        for path, query in _WATCHES:
            self._spawn(self._watch_loop, path, query)
        self._spawn(self._heartbeat_loop)
        self._ready.set()
        log.info("local agent ready: state in %s", self.layout.state_dir)
        self._reconcile_loop()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(
            target=target, args=args, daemon=True, name=f"local-agent-{target.__name__}"
        )
        thread.start()
        self._threads.append(thread)

    def _bootstrap(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                bootstrap.install(self.kube, self.region)
                nodes.register_nodes(self.kube, self.layout, self.region)
                self._publish_status()
                return
            except Exception as exc:  # the API server may still be starting: connection refused, 503, ...
                log.debug("bootstrap not yet possible: %s", exc)
                self._stop.wait(delay)
                delay = min(delay * 1.5, 1.0)

    def _publish_status(self) -> None:
        data = {
            "ready": "true",
            "pid": str(os.getpid()),
            "stateDir": str(self.layout.state_dir),
            "snapshotStore": str(self.layout.snapshot_store),
            "region": self.region,
            "ecsEndpoint": self.ecs.endpoint if self.ecs else "",
            "kubeletRoots": json.dumps({n.name: str(self.layout.kubelet_root(n.name)) for n in NODES}),
            "heartbeat": rfc3339(),
        }
        path = f"/api/v1/namespaces/{AGENT_NAMESPACE}/configmaps"
        try:
            self.kube.patch(f"{path}/{STATUS_CONFIGMAP}", {"data": data})
        except KubeError as exc:
            if exc.status != 404:
                raise
            self.kube.create(
                path,
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": STATUS_CONFIGMAP, "namespace": AGENT_NAMESPACE},
                    "data": data,
                },
            )

    # --- loops ---------------------------------------------------------------------------------------

    def _watch_loop(self, path: str, query: dict[str, str]) -> None:
        while not self._stop.is_set():
            try:
                _, version = self.kube.list(path, limit=1, **query)
                self._wake.set()  # whatever happened while we were not watching
                for event in self.kube.watch(path, version, timeout_seconds=50, **query):
                    if self._stop.is_set():
                        return
                    if event.get("type") == "ERROR":
                        break
                    if event.get("type") != "BOOKMARK":
                        self._wake.set()
            except Exception as exc:
                log.debug("watch %s: %s", path, exc)
                self._stop.wait(1.0)

    def _heartbeat_loop(self) -> None:
        beats = 0
        while not self._stop.wait(HEARTBEAT_SECONDS):
            beats += 1
            try:
                nodes.heartbeat(self.kube, refresh_status=beats % 4 == 0)
                self._publish_status()
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)

    def _reconcile_loop(self) -> None:
        next_gc = 0.0
        timeout = 0.0
        while not self._stop.is_set():
            self._wake.wait(timeout)
            if self._stop.is_set():
                return
            self._wake.clear()
            # Coalesce a burst of events (our own writes come in bursts) into one pass.
            self._stop.wait(0.02)
            gc = time.monotonic() >= next_gc
            if gc:
                next_gc = time.monotonic() + GC_SECONDS
            try:
                due = self.reconcile_once(collect_garbage=gc)
            except Exception as exc:
                log.warning("reconcile pass failed: %s", exc)
                due = None
            timeout = self._resync if due is None else min(self._resync, max(due, 0.05))

    def reconcile_once(self, *, collect_garbage: bool = False) -> float | None:
        self.passes += 1
        world = observe(self.kube)
        self._provisioner.reconcile(world)
        self._scheduler.reconcile(world)
        self._kubelet.reconcile(world, collect_garbage=collect_garbage)
        due = self._snapshotter.reconcile(world)
        self._cloud.reconcile(world)
        return due
