"""Real worker processes (`backupctl worker control|node`) for kill tests: own task queues, the
session's Temporal server, cluster and product state directory."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

from schemas.settings import Settings, SettingsProvider
from tests.conftest import BACKUPCTL
from tests.product_fixtures import Product


def write_settings(path: Path, *, cluster: str, prefix: str, extra: str = "") -> Path:
    path.write_text(f"cluster_id: {cluster}\ntask_queue_prefix: {prefix}\n" + extra)
    return path


class WorkerProcess:
    """One `backupctl worker ...` process; killed with SIGKILL and started again by the tests."""

    def __init__(
        self,
        product: Product,
        temporal_address: str,
        settings_path: Path,
        log: Path,
        *,
        args: tuple[str, ...] = ("control",),
        command: tuple[str, ...] = ("worker",),
    ) -> None:
        self.command = command
        self.settings_path = settings_path
        self.args = args
        self.env = dict(
            os.environ,
            BACKUPCENTER_SETTINGS=str(settings_path),
            BACKUPCENTER_TEMPORAL_ADDRESS=temporal_address,
            BACKUPCENTER_STATE_DIR=str(product.ctx.state_dir),
            KUBECONFIG=str(product.ctx.kubeconfig),
            BACKUPCENTER_LOG_LEVEL="WARNING",
        )
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def settings(self) -> Settings:
        return SettingsProvider.from_file(self.settings_path).current()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [BACKUPCTL, *self.command, *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


# Kill tests make export pages small (a kill lands mid-export) and snapshots slow to time out.
KILL_TEST_SETTINGS = "heartbeat_timeout: 3s\nexport_page_size: 20\nsnapshot_ready_timeout: 10m\n"


def control_process(
    product: Product, temporal_address: str, tmp: Path, *, cluster: str = "cluster-a", extra: str = ""
) -> WorkerProcess:
    """`backupctl worker control` on a task queue of its own (not started yet)."""
    settings = write_settings(
        tmp / "worker-settings.yaml",
        cluster=cluster,
        prefix=f"rel{uuid.uuid4().hex[:6]}",
        extra=KILL_TEST_SETTINGS + extra,
    )
    return WorkerProcess(product, temporal_address, settings, tmp / "worker.log")
