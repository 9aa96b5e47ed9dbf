"""The development cluster behind `backupctl dev up/down/status`: a LocalCluster started detached.

Its processes outlive the command; their PIDs are recorded in <state_dir>/pids.json, the admin
kubeconfig is <state_dir>/kubeconfig, and etcd's data stays in <state_dir>/etcd so objects survive a
down/up cycle. A PID is only signalled when /proc shows it still runs a command of this state dir, so
a recycled PID is never hit.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from localdev.kube import procs
from localdev.kube.controlplane import LocalCluster

# Stop order: clients of the API first, the store last.
_STOP_ORDER = ("agent", "kube-controller-manager", "kube-apiserver", "etcd")


def _record(state_dir: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((state_dir / "pids.json").read_text())
        return data
    except (OSError, ValueError):
        return {}


def _ours(pid: int, state_dir: Path) -> bool:
    """The PID runs a command of this dev cluster (not a process that reused the number)."""
    if not procs.pid_alive(pid):
        return False
    marker = str(state_dir.resolve())
    return any(marker in arg for arg in procs.pid_cmdline(pid))


def status(state_dir: Path) -> dict[str, Any]:
    """What runs and where: {"running", "server", "kubeconfig", "state_dir", "components": {name: {...}}}."""
    state_dir = state_dir.resolve()
    record = _record(state_dir)
    components = {
        name: {
            "pid": pid,
            "alive": _ours(int(pid), state_dir),
            "log": str(state_dir / "logs" / f"{name}.log"),
        }
        for name, pid in (record.get("pids") or {}).items()
    }
    running = bool(components) and all(c["alive"] for c in components.values())
    return {
        "running": running,
        "partially_running": not running and any(c["alive"] for c in components.values()),
        "server": record.get("server") if components else None,
        "kubeconfig": str(state_dir / "kubeconfig") if components else None,
        "state_dir": str(state_dir),
        "components": components,
    }


def _agent_uses(state_dir: Path, ecs_endpoint: str | None) -> bool:
    """The running agent registers disk snapshots with this ECS endpoint (or with none, as asked)."""
    pid = (_record(state_dir).get("pids") or {}).get("agent")
    args = procs.pid_cmdline(int(pid)) if pid else []
    given = args[args.index("--ecs-endpoint") + 1] if "--ecs-endpoint" in args[:-1] else None
    return given == ecs_endpoint


def up(state_dir: Path, *, ecs_endpoint: str | None = None) -> dict[str, Any]:
    """Start the dev cluster (or leave a running one alone) and return its status.  A running cluster
    whose agent uses another ECS endpoint is restarted (its objects and data stay)."""
    state_dir = state_dir.resolve()
    current = status(state_dir)
    if current["running"] and _agent_uses(state_dir, ecs_endpoint):
        return current
    if current["running"] or current["partially_running"]:
        down(state_dir)
    started = time.monotonic()
    cluster = LocalCluster(state_dir, detached=True, name="backupcenter-dev", ecs_endpoint=ecs_endpoint)
    cluster.start()
    result = status(state_dir)
    result["startup_seconds"] = round(time.monotonic() - started, 2)
    return result


def down(state_dir: Path) -> None:
    """Stop every recorded process of the dev cluster; data (etcd, volumes) stays for the next up."""
    state_dir = state_dir.resolve()
    pids = _record(state_dir).get("pids") or {}
    for name in _STOP_ORDER:
        pid = pids.get(name)
        if pid and _ours(int(pid), state_dir):
            procs.terminate(int(pid), timeout=10.0)
    (state_dir / "pids.json").unlink(missing_ok=True)
