"""The local ECS endpoint of the development environment: :mod:`localdev.ecs_server` (a test double of
Alibaba Cloud's ECS API, not the cloud) as a detached process of ``backupctl dev up``.

The dev cluster's disk driver registers its snapshots there (``--ecs-endpoint``), and the workers talk to
it through the real aliyun SDK (settings ``enable_ecs_snapshot``, ``ecs_endpoint`` and
``cloud_credentials_secret``), so the demo's disk snapshots are ECS snapshots with ``s-...`` ids.

A throwaway AccessKey is generated once into ``<state>/ecs-keys.json`` (mode 0600) and handed to the
endpoint as a file (never on its command line) and to the product as the Secret ``ecs-local-credentials``
of its namespace.  The port is remembered in ``<state>/ecs-port``: the detached cluster agent keeps the
endpoint it was started with.  Snapshots live in the endpoint's memory only; ``dev down`` forgets them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from localdev import processes

PROCESS_NAME = "ecs"
REGIONS = ("cn-hangzhou", "cn-beijing")
CREDENTIALS_SECRET = "ecs-local-credentials"
_REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class LocalEcs:
    endpoint: str
    pid: int
    access_key_id: str
    keys_file: Path

    def secret_data(self) -> dict[str, str]:
        keys: dict[str, str] = json.loads(self.keys_file.read_text())
        return {"AccessKeyId": self.access_key_id, "AccessKeySecret": keys[self.access_key_id]}


def _keys(state: Path) -> tuple[str, Path]:
    path = state / "ecs-keys.json"
    with contextlib.suppress(OSError, ValueError):
        keys = json.loads(path.read_text())
        if isinstance(keys, dict) and len(keys) == 1:
            return str(next(iter(keys))), path
    key_id = "LTAIlocal" + secrets.token_hex(6)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({key_id: secrets.token_hex(16)}, handle)
    return key_id, path


def _port(state: Path) -> int:
    path = state / "ecs-port"
    with contextlib.suppress(OSError, ValueError):
        port = int(path.read_text())
        if not processes.port_open("127.0.0.1", port):
            return port
    port = processes.free_port()
    path.write_text(str(port))
    return port


def up(state: Path, *, timeout: float = 30.0) -> LocalEcs:
    """Start the endpoint detached (or return the one already running from ``state``)."""
    key_id, keys_file = _keys(state)
    record = processes.read_record(state, PROCESS_NAME)
    if record is not None and processes.is_running(record):
        return LocalEcs(record.endpoints["endpoint"], record.pid, key_id, keys_file)
    port = _port(state)
    endpoint = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "localdev.ecs_server", "--port", str(port), "--keys-file", str(keys_file)]
    for region in REGIONS:
        argv += ["--region", region]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
    record = processes.spawn(state, PROCESS_NAME, argv, endpoints={"endpoint": endpoint}, env=env)
    try:
        processes.wait_for_port("127.0.0.1", port, timeout=timeout, record=record)
    except Exception:
        processes.stop(state, PROCESS_NAME)
        raise
    return LocalEcs(endpoint, record.pid, key_id, keys_file)


def install_credentials(kubeconfig: Path, namespace: str, ecs: LocalEcs) -> None:
    """The product's credentials for the local endpoint, as the Secret its settings name."""
    from kubernetes.config import new_client_from_config

    from kube.rest import Kube

    kube = Kube(new_client_from_config(str(kubeconfig)))
    kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}}, exist_ok=True)
    path = f"/api/v1/namespaces/{namespace}/secrets"
    body = {"metadata": {"name": CREDENTIALS_SECRET}, "stringData": ecs.secret_data()}
    if kube.create(path, body, exist_ok=True) is None:
        kube.patch(f"{path}/{CREDENTIALS_SECRET}", {"stringData": ecs.secret_data()})


def down(state: Path) -> bool:
    return processes.stop(state, PROCESS_NAME)


def status(state: Path) -> dict[str, str]:
    record = processes.read_record(state, PROCESS_NAME)
    if record is None or not processes.is_running(record):
        return {"state": "stopped"}
    return {
        "state": "running",
        "pid": str(record.pid),
        "endpoint": record.endpoints.get("endpoint", ""),
        "note": "local test double of the ECS API",
        "log": record.log,
    }
