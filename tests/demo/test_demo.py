"""`make demo` runs `backupctl demo`: it must complete on a fresh state directory, tell the disaster
story (namespaces deleted, restored, every file back), run again on the same state directory (as a
second `make demo` does: the cluster's data stays), and leave nothing running when asked not to
keep the environment."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from localdev.processes import free_port, port_open
from tests.conftest import BACKUPCTL

pytestmark = pytest.mark.cluster


def _check_story(out: str, ui_port: int) -> None:
    """The output checks every demo run must pass."""
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
    # The disaster: the application's namespaces are deleted and gone, then restored under the same
    # names from the backup, every file back (2 disk volumes from snapshots, the NAS one from files).
    assert "kubectl delete namespace demo-app demo-web" in out
    assert re.search(r"namespaces demo-app, demo-web deleted: gone after \d+ s", out), out[-3000:]
    assert "2 PVCs from snapshots (0 converted), 1 filled by node workers" in out, out[-3000:]
    disaster = re.search(
        r"disaster: namespaces demo-app, demo-web deleted; restore Completed (\d+) s after the "
        r"deletion; 9 of 9 files match their digests",
        out,
    )
    assert disaster is not None, out[-3000:]
    assert re.search(r"deleted → restore completed\W+\d+\.\d s", out), out[-3000:]
    # Disk snapshots are ECS snapshots of the local endpoint: the backup lists their ids, the delete
    # request deleted them (the demo's StatefulSet has 2 disk volumes).
    ecs_ids = re.search(r"ecs_snapshots\W+(\d+) in cn-hangzhou: (s-[a-z0-9]{20})", out)
    assert ecs_ids is not None, out[-3000:]
    assert re.search(rf"ecs_snapshots\W+{ecs_ids.group(1)} ECS snapshots deleted", out), out[-3000:]
    assert "ECS (local test double): http://127.0.0.1:" in out and "ECS endpoint" in out
    assert f"http://127.0.0.1:{ui_port}" in out
    # The Kubernetes-native door: the backup and the disaster restore are objects applied with kubectl,
    # the backup's `kubectl describe` is shown (steps and Events), and deleting the object deletes it.
    assert "applicationbackup.backupcenter.io/demo-" in out and "created" in out
    assert "kubectl -n backup-center describe applicationbackup demo-" in out
    assert re.search(r"Normal\s+Completed\s+\S+\s+backupcenter\s+backup demo-\d+ Completed", out), out[-3000:]
    assert "applicationrestore.backupcenter.io/restore-demo-" in out
    # The backup verified through its own kind, every chunk read, before anything else touches it.
    assert "backupverification.backupcenter.io/demo-" in out, out[-3000:]
    assert re.search(r"verify backup\W+demo-\d+-check: Completed", out), out[-3000:]
    assert re.search(r"findings\W+0\b", out), out[-3000:]
    # And drilled: restored beside the running application, checked, removed, the report kept.
    assert "restoredrill.backupcenter.io/demo-" in out, out[-3000:]
    assert re.search(r"restore drill\W+demo-\d+-drill: Completed", out), out[-3000:]
    assert re.search(r"differences\W+0\b", out) and re.search(r"rto_seconds\W+\d+", out), out[-3000:]
    assert "delete applicationbackup demo-" in out


def test_demo_runs_end_to_end_twice(tmp_path: Path) -> None:
    """`make demo` then `make demo`: the first run leaves the environment (and the cluster's data)
    behind, the second resets what the first seeded and restored, and passes the same checks."""
    temporal_port, ui_port = free_port(), free_port()
    state = tmp_path / "dev"
    env = dict(os.environ, BACKUPCENTER_STATE_DIR=str(state))
    env.pop("BACKUPCENTER_SETTINGS", None)
    ports = ["--temporal-port", str(temporal_port), "--ui-port", str(ui_port)]
    try:
        first = subprocess.run(
            [BACKUPCTL, "demo", *ports], env=env, capture_output=True, text=True, timeout=600
        )
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        _check_story(first.stdout, ui_port)
        assert "nothing left by an earlier demo run" in first.stdout
        assert "environment left running" in first.stdout

        second = subprocess.run(
            [BACKUPCTL, "demo", "--no-keep", *ports], env=env, capture_output=True, text=True, timeout=600
        )
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        out = second.stdout
        _check_story(out, ui_port)
        # What the first run left (its in-place restore and its mapped copies) was removed first.
        assert (
            "left by an earlier demo run, removed: namespaces demo-app, demo-app-restored, demo-web, "
            "demo-web-restored" in out
        ), out[:3000]
        assert "environment stopped" in out
    finally:
        subprocess.run([BACKUPCTL, "dev", "down"], env=env, capture_output=True, timeout=120)
    assert not port_open("127.0.0.1", temporal_port) and not port_open("127.0.0.1", ui_port)
    # The vault is there, and each run's delete request removed its backup.
    vault = state / "vault"
    assert list(vault.rglob("vault.json*"))
    assert not list(vault.rglob("backup.json*"))
