"""Detached background processes for the local development environment.

``backupctl dev up`` starts servers that must outlive the CLI; ``dev down`` must stop exactly
those and nothing else.  Each process is recorded as ``<state_dir>/<name>.json`` with its pid,
command line and start time; stopping checks the pid still runs the recorded program before
signalling, so a recycled pid is never killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class ProcessRecord:
    name: str
    pid: int
    argv: list[str]
    log: str
    started_at: float
    endpoints: dict[str, str]


def _record_path(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.json"


def _proc_cmdline(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return None


# Children started by this process: right after fork their /proc cmdline is still ours, so ask
# the Popen object instead of /proc while we can.
_children: dict[int, subprocess.Popen[bytes]] = {}


def is_running(record: ProcessRecord) -> bool:
    child = _children.get(record.pid)
    if child is not None:
        return child.poll() is None
    cmdline = _proc_cmdline(record.pid)
    if cmdline is None:
        return False
    try:
        with open(f"/proc/{record.pid}/stat") as handle:
            if handle.read().split(") ", 1)[1].startswith("Z"):
                return False  # a zombie no longer runs anything
    except (OSError, IndexError):
        return False
    # The recorded program must still be what runs under this pid.
    return os.path.basename(record.argv[0]) in cmdline


def read_record(state_dir: Path, name: str) -> ProcessRecord | None:
    path = _record_path(state_dir, name)
    try:
        return ProcessRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def spawn(
    state_dir: Path,
    name: str,
    argv: list[str],
    *,
    endpoints: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcessRecord:
    """Start ``argv`` in its own session, logging to ``<state_dir>/<name>.log``, and record it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the CLI and its terminal's signals
            env=env,
            cwd=cwd,
        )
    _children[proc.pid] = proc
    record = ProcessRecord(name, proc.pid, argv, str(log_path), time.time(), endpoints or {})
    tmp = _record_path(state_dir, name).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2))
    tmp.replace(_record_path(state_dir, name))
    return record


def stop(state_dir: Path, name: str, *, timeout: float = 15.0) -> bool:
    """Stop a recorded process (SIGTERM, then SIGKILL); return whether one was running."""
    record = read_record(state_dir, name)
    if record is None:
        return False
    was_running = is_running(record)
    if was_running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and is_running(record):
            _reap(record.pid)
            time.sleep(0.1)
        if is_running(record):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pid, signal.SIGKILL)
            _reap(record.pid)
    _record_path(state_dir, name).unlink(missing_ok=True)
    return was_running


def _reap(pid: int) -> None:
    # Only our own children can be reaped; others are reaped by init.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_HANDED_OUT: set[int] = set()  # not bound until its server starts: never the same one twice


def free_port() -> int:
    """A port nothing listens on, from below the kernel's ephemeral range.

    A port the kernel hands out for bind(0) is one it also gives outgoing connections: between
    choosing it and a server binding it, the Temporal dev server's own internal connections took
    one (``bind: address already in use`` for its UI port). Below the range only listeners compete.
    """
    rng = random.Random()
    low = _ephemeral_low()
    for _ in range(100):
        port = rng.randrange(10_000, low) if low > 10_100 else 0
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = int(sock.getsockname()[1])
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port found below the ephemeral range")


def wait_for_port(host: str, port: int, *, timeout: float, record: ProcessRecord | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if record is not None and not is_running(record):
            raise RuntimeError(f"{record.name} exited during start-up; see {record.log}")
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")
