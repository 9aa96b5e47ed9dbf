"""A real Kubernetes control plane on loopback: etcd, kube-apiserver (RBAC, TLS, client-cert identities),
kube-controller-manager, and the local agent playing nodes and storage.

    with LocalCluster() as cluster:           # a temp state dir, removed at stop
        core = kubernetes.client.CoreV1Api(cluster.api_client())
        limited = cluster.mint_identity("alice", ["team-a"])   # a kubeconfig path

Attached clusters (the default) die with the process that started them: children run in their own
process group with a parent-death signal, and atexit and SIGTERM/SIGHUP handlers stop them. Detached
ones (`detached=True`, for `backupctl dev up`) outlive it and record their PIDs (see devcluster.py).
Several clusters can run at once: each has its own state dir and ports.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal

from kubernetes.client import ApiClient

from kube.rest import Kube
from localdev.kube import procs
from localdev.kube.agent import Faults, LocalAgent
from localdev.kube.agent.__main__ import api_client_for
from localdev.kube.agent.model import AGENT_NAMESPACE, REGION, STATUS_CONFIGMAP, Layout
from localdev.kube.build import Binaries, ensure_binaries
from localdev.kube.pki import Pki, ensure_pki, write_kubeconfig

AgentMode = Literal["process", "thread", "none"]
SERVICE_CIDR = "10.96.0.0/16"
_REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 90.0

# Controllers a laptop has no use for, or whose job the agent does: node lifecycle would evict pods of
# a paused agent; attach/detach has nothing to attach; cloud ones have no cloud.
_KCM_CONTROLLERS = ",".join(
    [
        "*",
        "-node-lifecycle-controller",
        "-horizontal-pod-autoscaler-controller",
        "-persistentvolume-attach-detach-controller",
        "-cloud-node-lifecycle-controller",
        "-service-lb-controller",
        "-node-route-controller",
        "-node-ipam-controller",
        "-resourceclaim-controller",
        "-device-taint-eviction-controller",
        "-storage-version-migrator-controller",
    ]
)


class ClusterStartError(RuntimeError):
    """A component did not start; the message carries the tail of its log."""


class AgentProcess:
    """Handle on an agent running as a child process (what the fixture and `dev up` start)."""

    def __init__(self, popen: subprocess.Popen[bytes] | None, pid: int, layout: Layout, kube: Kube) -> None:
        self.popen = popen
        self.pid = pid
        self.layout = layout
        self.faults = Faults(kube)

    def kubelet_root(self, node: str) -> Path:
        return self.layout.kubelet_root(node)


class LocalCluster:
    backend = "local"

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        agent: AgentMode = "process",
        controller_manager: bool = True,
        snapshot_store: Path | None = None,
        detached: bool = False,
        name: str = "backupcenter-local",
        region: str = REGION,
        ecs_endpoint: str | None = None,
    ) -> None:
        self._owns_state = state_dir is None
        self.state_dir = (
            Path(tempfile.mkdtemp(prefix="backupcenter-kube-")) if state_dir is None else state_dir
        )
        self.state_dir = self.state_dir.resolve()
        self.name = name
        self.agent_mode: AgentMode = agent
        self.want_controller_manager = controller_manager
        self.layout = Layout.of(self.state_dir, snapshot_store)
        # The cluster's region (node labels) and the local ECS endpoint its disk snapshots live in.
        self.region = region
        self.ecs_endpoint = ecs_endpoint
        self.detached = detached
        self.kubeconfig_path = self.state_dir / "kubeconfig"
        self.server = ""
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.agent: AgentProcess | LocalAgent | None = None
        self.binaries: Binaries | None = None
        self.pki: Pki | None = None
        self.ports: dict[str, int] = {}
        self.startup_seconds: float | None = None
        self._api_client: ApiClient | None = None

    # --- public API ----------------------------------------------------------------------------------

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    def api_client(self) -> ApiClient:
        """An ApiClient for the admin identity (group system:masters). Shared; do not close it."""
        if self._api_client is None:
            self._api_client = api_client_for(self.kubeconfig_path)
        return self._api_client

    def mint_identity(self, user: str, groups: list[str] | tuple[str, ...] = ()) -> Path:
        """A kubeconfig for a new identity (user, groups) signed by the cluster CA: no restart needed.
        It holds no permissions until RBAC grants some to the user or one of its groups."""
        assert self.pki is not None, "start() the cluster first"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in user)
        pair = self.pki.issue_client(safe, user, list(groups))
        return write_kubeconfig(
            self.state_dir / "identities" / f"{safe}.kubeconfig",
            self.server,
            self.pki.ca.cert,
            pair,
            user,
            self.name,
        )

    def identity_subject(self, user: str) -> dict[str, str]:
        """The RBAC subject to bind for an identity made by mint_identity."""
        return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}

    def kubelet_root(self, node: str) -> Path:
        return self.layout.kubelet_root(node)

    @property
    def faults(self) -> Faults:
        return Faults(Kube(self.api_client()))

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- start ---------------------------------------------------------------------------------------

    def start(self) -> LocalCluster:
        """Start everything and wait until the API answers and the agent is ready. A port taken between
        choosing it and binding it (another process was quicker) is retried once with fresh ports."""
        try:
            return self._start()
        except ClusterStartError as exc:
            if "address already in use" not in str(exc):
                raise
        (self.state_dir / "ports.json").unlink(missing_ok=True)
        return self._start()

    def _start(self) -> LocalCluster:
        started = time.monotonic()
        self.binaries = ensure_binaries()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.pki = ensure_pki(self.state_dir / "pki")
        self.ports = self._choose_ports()
        self.server = f"https://127.0.0.1:{self.ports['apiserver']}"
        write_kubeconfig(
            self.kubeconfig_path,
            self.server,
            self.pki.ca.cert,
            self.pki.admin,
            "backupcenter-admin",
            self.name,
        )
        if not self.detached:
            _register(self)
        try:
            # Everything starts at once; each waits for what it needs, which saves seconds.
            self._spawn("etcd", self._etcd_args())
            self._spawn("kube-apiserver", self._apiserver_args())
            if self.want_controller_manager and self.binaries.kube_controller_manager is not None:
                self._spawn("kube-controller-manager", self._kcm_args())
            if self.agent_mode == "process":
                popen = self._spawn("agent", self._agent_args())
                self.agent = AgentProcess(popen, popen.pid, self.layout, Kube(self.api_client()))
            elif self.agent_mode == "thread":
                agent = LocalAgent(
                    api_client_for(self.kubeconfig_path),
                    self.state_dir,
                    snapshot_store=self.layout.snapshot_store,
                    region=self.region,
                    ecs_endpoint=self.ecs_endpoint,
                )
                agent.start()  # it retries until the API server answers
                self.agent = agent
            self._write_pids()
            self._wait_apiserver(started + READY_TIMEOUT)
            self._wait_agent(started + READY_TIMEOUT)
        except BaseException:
            # Detached or not, a half-started cluster is of no use: take down what did start.
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _choose_ports(self) -> dict[str, int]:
        """Reuse the ports of a previous run of this state dir when free (etcd remembers its peer URL)."""
        recorded: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError):
            recorded = json.loads((self.state_dir / "ports.json").read_text())
        ports: dict[str, int] = {}
        for key in ("etcd", "etcd-peer", "apiserver"):
            wanted = recorded.get(key)
            ports[key] = (
                wanted
                if wanted and _port_free(wanted) and wanted not in ports.values()
                else procs.free_port()
            )
        (self.state_dir / "ports.json").write_text(json.dumps(ports))
        return ports

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        # The agent runs `-m localdev.kube.agent` from the state dir: make this checkout importable there.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
        popen = procs.spawn(
            args, self.logs_dir / f"{name}.log", detached=self.detached, cwd=self.state_dir, env=env
        )
        self.processes[name] = popen
        return popen

    def _write_pids(self) -> None:
        record = {
            "pids": {name: p.pid for name, p in self.processes.items()},
            "ports": self.ports,
            "server": self.server,
            "kubeconfig": str(self.kubeconfig_path),
            "started_at": time.time(),
        }
        (self.state_dir / "pids.json").write_text(json.dumps(record, indent=2))

    def _etcd_args(self) -> list[str]:
        assert self.binaries is not None
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        return [
            str(self.binaries.etcd),
            "--name",
            "default",
            "--data-dir",
            str(self.state_dir / "etcd"),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"default={peer}",
            # A throwaway cluster: durability is not worth the fsync latency on every write.
            "--unsafe-no-fsync",
            "--log-level",
            "warn",
            "--quota-backend-bytes",
            str(2 << 30),
        ]

    def _apiserver_args(self) -> list[str]:
        assert self.binaries is not None and self.pki is not None
        pki = self.pki
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports['apiserver']}",
            f"--tls-cert-file={pki.serving.cert}",
            f"--tls-private-key-file={pki.serving.key}",
            f"--client-ca-file={pki.ca.cert}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            f"--cert-dir={self.state_dir / 'pki'}",
            "--profiling=false",
            "--v=0",
        ]

    def _kcm_args(self) -> list[str]:
        assert self.binaries is not None and self.pki is not None
        return [
            str(self.binaries.kube_controller_manager),
            f"--kubeconfig={self.kubeconfig_path}",
            "--leader-elect=false",
            "--secure-port=0",
            f"--controllers={_KCM_CONTROLLERS}",
            f"--service-account-private-key-file={self.pki.sa_key}",
            f"--root-ca-file={self.pki.ca.cert}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--v=0",
        ]

    def _agent_args(self) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "localdev.kube.agent",
            "--kubeconfig",
            str(self.kubeconfig_path),
            "--state-dir",
            str(self.state_dir),
        ]
        if self.layout.snapshot_store != self.state_dir / "snapshots":
            args += ["--snapshot-store", str(self.layout.snapshot_store)]
        if self.region != REGION:
            args += ["--region", self.region]
        if self.ecs_endpoint:
            args += ["--ecs-endpoint", self.ecs_endpoint]
        return args

    def _check_alive(self) -> None:
        for name, popen in self.processes.items():
            code = popen.poll()
            if code is not None:
                raise ClusterStartError(
                    f"{name} exited with code {code} during start; log {self.logs_dir / (name + '.log')}:\n"
                    + procs.log_tail(self.logs_dir / f"{name}.log")
                )

    def _ssl_context(self) -> ssl.SSLContext:
        assert self.pki is not None
        ctx = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        ctx.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))
        return ctx

    def _get(self, path: str, ctx: ssl.SSLContext) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.ports["apiserver"], context=ctx, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def _wait_apiserver(self, deadline: float) -> None:
        ctx = self._ssl_context()
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                status, body = self._get("/readyz", ctx)
                if status == 200:
                    return
                last = body.decode(errors="replace")[-500:]
            except (OSError, http.client.HTTPException) as exc:
                last = str(exc)
            time.sleep(0.1)
        raise ClusterStartError(
            f"kube-apiserver not ready: {last}\n" + procs.log_tail(self.logs_dir / "kube-apiserver.log")
        )

    def _wait_agent(self, deadline: float) -> None:
        if isinstance(self.agent, LocalAgent):
            self.agent.wait_ready(max(1.0, deadline - time.monotonic()))
            return
        if not isinstance(self.agent, AgentProcess):
            return
        ctx = self._ssl_context()
        path = f"/api/v1/namespaces/{AGENT_NAMESPACE}/configmaps/{STATUS_CONFIGMAP}"
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                status, body = self._get(path, ctx)
                data = (json.loads(body).get("data") or {}) if status == 200 else {}
                if data.get("ready") == "true" and data.get("pid") == str(self.agent.pid):
                    return
            time.sleep(0.1)
        raise ClusterStartError("local agent not ready:\n" + procs.log_tail(self.logs_dir / "agent.log"))

    # --- stop ----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every process this object started (agent first, etcd last) and drop a temp state dir."""
        if isinstance(self.agent, LocalAgent):
            self.agent.stop()
        for name in ("agent", "kube-controller-manager", "kube-apiserver", "etcd"):
            popen = self.processes.pop(name, None)
            if popen is not None:
                procs.terminate(popen.pid, timeout=5.0 if name != "etcd" else 10.0)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=1)
        if self._api_client is not None:
            with contextlib.suppress(Exception):
                self._api_client.close()
            self._api_client = None
        _unregister(self)
        if self._owns_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- cleanup on exit, whatever the exit ------------------------------------------------------------------

_LIVE: set[LocalCluster] = set()
_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


def _stop_all() -> None:
    with _LOCK:
        clusters = list(_LIVE)
    for cluster in clusters:
        with contextlib.suppress(Exception):
            cluster.stop()


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    _stop_all()
    # Then die of the same signal, as if we had not been in the way.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _register(cluster: LocalCluster) -> None:
    global _HANDLERS_INSTALLED
    with _LOCK:
        _LIVE.add(cluster)
        if _HANDLERS_INSTALLED:
            return
        _HANDLERS_INSTALLED = True
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            # Only where nobody else asked for the signal: never override an application's handler.
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)


def _unregister(cluster: LocalCluster) -> None:
    with _LOCK:
        _LIVE.discard(cluster)


def cluster_info(cluster: LocalCluster) -> dict[str, Any]:
    return {
        "server": cluster.server,
        "kubeconfig": str(cluster.kubeconfig_path),
        "state_dir": str(cluster.state_dir),
        "pids": {name: p.pid for name, p in cluster.processes.items()},
        "startup_seconds": cluster.startup_seconds,
    }
