"""`backupctl dev up`, `status`, `down` work twice in a row; the Web UI answers while up; down
leaves nothing of ours running."""

from __future__ import annotations

import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from localdev.processes import free_port, port_open
from tests.conftest import BACKUPCTL

pytestmark = pytest.mark.cluster


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BACKUPCTL, "dev", *args], env=env, capture_output=True, text=True, timeout=300)


def test_up_status_down_twice(tmp_path: Path) -> None:
    temporal_port, ui_port = free_port(), free_port()
    env = dict(os.environ, BACKUPCENTER_STATE_DIR=str(tmp_path / "dev"), COLUMNS="200")
    ports = ["--temporal-port", str(temporal_port), "--ui-port", str(ui_port)]
    for _ in range(2):
        up = _cli(env, "up", *ports)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"Temporal Web UI:     http://127.0.0.1:{ui_port}" in up.stdout
        assert "KUBECONFIG=" in up.stdout and "worker-node-node-a1" in up.stdout
        # The settings file the workers read is in the state directory, and dev up says where.
        settings = tmp_path / "dev" / "settings.yaml"
        assert f"Settings:            {settings}" in up.stdout, up.stdout
        assert "re-read" in settings.read_text()
        control = next(line for line in up.stdout.splitlines() if line.startswith("Worker worker-control:"))
        pid = control.rsplit(" ", 1)[1]
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"BACKUPCENTER_SETTINGS={settings}".encode() in environ
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}", timeout=10) as page:
            assert page.status == 200
        status = _cli(env, "status")
        assert status.returncode == 0
        for component in ("temporal", "kubernetes", "worker-control", "worker-node-node-b1"):
            line = next(row for row in status.stdout.splitlines() if f" {component} " in row)
            assert "running" in line, status.stdout
        assert "worker-node-virtual" not in status.stdout  # virtual nodes get no node worker
        # The persistent SQLite file of the dev server.
        assert (tmp_path / "dev" / "temporal.db").exists()
        down = _cli(env, "down")
        assert down.returncode == 0, down.stderr
        assert "temporal" in down.stdout and "kubernetes" in down.stdout
        assert not port_open("127.0.0.1", temporal_port) and not port_open("127.0.0.1", ui_port)
        after = _cli(env, "status")
        assert "running" not in after.stdout.replace("partially_running", "")


def test_the_cli_reads_the_local_settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from backupctl.console import load_settings

    monkeypatch.delenv("BACKUPCENTER_SETTINGS", raising=False)
    monkeypatch.setenv("BACKUPCENTER_STATE_DIR", str(tmp_path))
    assert load_settings().cluster_id != "edited-locally"
    (tmp_path / "settings.yaml").write_text("cluster_id: edited-locally\n")
    assert load_settings().cluster_id == "edited-locally"
