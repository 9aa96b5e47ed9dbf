"""Child processes of the local cluster: start them so they cannot outlive us by accident, stop them surely.

Attached children (tests) get their own process group, so one signal reaches everything they forked,
and PR_SET_PDEATHSIG, so the kernel kills them if this process dies without running any cleanup
(SIGKILL, OOM). Detached children (`backupctl dev up`) get a new session and no death signal: they are
meant to outlive the command, and are found again by the PID files recorded for them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pdeathsig_preexec() -> Callable[[], None]:
    # Resolve prctl before fork: the child must not import or look anything up.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return preexec


def spawn(
    args: Sequence[str],
    log_path: Path,
    *,
    detached: bool = False,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start args with stdout and stderr appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        command = list(args)
        preexec: Callable[[], None] | None = None
        if not detached:
            # setpriv sets the death signal in the exec'd child without a Python preexec_fn, which is
            # unsafe when other threads run; fall back to preexec_fn only where setpriv is missing.
            setpriv = shutil.which("setpriv")
            if setpriv:
                command = [setpriv, "--pdeathsig", "KILL", "--", *command]
            else:
                preexec = _pdeathsig_preexec()
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,
        )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def pid_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def terminate(pid: int, timeout: float = 10.0, *, group: bool = True) -> None:
    """SIGTERM the process (and its group), then SIGKILL whatever is left after timeout."""

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    if not pid_alive(pid):
        return
    send(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            break
        time.sleep(0.05)
    # The group may hold children of the leader that outlived it; kill them all either way.
    send(signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
