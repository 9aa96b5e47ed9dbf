"""`make demo` runs `backupctl demo`: it must complete on a fresh state directory, and leave
nothing running when asked not to keep the environment."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from localdev.processes import free_port, port_open
from tests.conftest import BACKUPCTL

pytestmark = pytest.mark.cluster


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    temporal_port, ui_port = free_port(), free_port()
    env = dict(os.environ, BACKUPCENTER_STATE_DIR=str(tmp_path / "dev"))
    env.pop("BACKUPCENTER_SETTINGS", None)
    done = subprocess.run(
        [BACKUPCTL, "demo", "--no-keep", "--temporal-port", str(temporal_port), "--ui-port", str(ui_port)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "backup" in out and "Completed" in out
    assert "9 of 9 files match their digests" in out
    assert "restore-demo-" in out and "delete backup" in out
    # The NAS volume was converted to a disk snapshot, and the restore used it (the digests above).
    assert "convert-demo-" in out and "alicloud-disk-topology-alltype: snapshot s-" in out
    assert "(1 converted), 0 filled by node workers" in out
    # A new cluster in another region gets the application back: its 3 disk snapshots (2 backed up,
    # 1 converted) are copied across regions, and every file matches there too.
    assert "3 snapshots copied from cn-hangzhou to cn-beijing" in out
    assert "second cluster: 9 of 9 files match their digests" in out
    # Disk snapshots are ECS snapshots of the local endpoint: the backup lists their ids, the delete
    # request deleted them (the demo's StatefulSet has 2 disk volumes).
    ecs_ids = re.search(r"ecs_snapshots\W+(\d+) in cn-hangzhou: (s-[a-z0-9]{20})", out)
    assert ecs_ids is not None, out[-3000:]
    assert re.search(rf"ecs_snapshots\W+{ecs_ids.group(1)} ECS snapshots deleted", out), out[-3000:]
    assert "ECS (local test double): http://127.0.0.1:" in out and "ECS endpoint" in out
    assert f"http://127.0.0.1:{ui_port}" in out
    assert "environment stopped" in out
    assert not port_open("127.0.0.1", temporal_port) and not port_open("127.0.0.1", ui_port)
    # The vault is there, and the demo's delete request removed its backup.
    vault = tmp_path / "dev" / "vault"
    assert list(vault.rglob("vault.json*"))
    assert not list(vault.rglob("backup.json*"))
