"""``backupctl vault ...`` end to end on a temporary state directory."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from backupctl.console import BadInput
from backupctl.vault_cmd import manager, vault_app
from localdev.oss_server import LocalOssServer
from schemas.errors import BackupCenterError
from schemas.vault import BackupOutcome, BackupRecord
from tests.vault.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from vault.catalog import claim_backup, commit_backup

app = typer.Typer()
app.add_typer(vault_app, name="vault")


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


Run = Callable[..., Result]


@pytest.fixture
def cli(tmp_path: Path) -> Run:
    runner = CliRunner()
    state = tmp_path / "state"

    def run(*args: str, cluster: str = "cluster-a") -> Result:
        return runner.invoke(app, ["vault", *args, "--state-dir", str(state), "--cluster-id", cluster])

    return run


def test_file_vault_lifecycle(cli: Run, tmp_path: Path) -> None:
    run = cli
    url = f"file://{tmp_path / 'vault'}"
    created = run("create", "local", "--url", url)
    assert created.exit_code == 0, created.output
    assert "vault local Available" in created.output
    assert run("create", "local", "--url", url).exit_code == 0  # same spec again: fine

    changed = run("create", "local", "--url", f"file://{tmp_path / 'elsewhere'}")
    assert isinstance(changed.exception, BackupCenterError) and changed.exception.code == "VaultImmutable"

    listed = run("list")
    assert "local" in listed.output and "Available" in listed.output and "1 vault(s)" in listed.output
    assert run("check").exit_code == 0

    shutil.rmtree(tmp_path / "vault")
    failed = run("check", "local")
    assert failed.exit_code == 1
    assert "VaultError: backup vault is unavailable: directory" in failed.output
    described = run("describe", "local", "--no-backups")
    assert "Unavailable" in described.output and "fix:" in described.output

    deleted = run("delete", "local")
    assert deleted.exit_code == 0 and "deleted" in deleted.output
    reused = run("create", "local", "--url", url)
    assert isinstance(reused.exception, BackupCenterError) and reused.exception.code == "VaultNameReused"
    assert "Deleted" in run("list", "--all").output


@pytest.mark.parametrize(("args", "message"), [
    (["--url", "oss://Bad_Bucket/x", "--region", "cn-hangzhou"], "invalid url: bucket name 'Bad_Bucket'"),
    (["--url", "oss://good-bucket/x", "--region", "xx-nowhere-1"], "invalid region: 'xx-nowhere-1'"),
    (["--url", "oss://good-bucket/x"], "invalid region: is required"),
    (["--url", "ftp://host/x"], "invalid url:"),
    (["--url", "file:///tmp/x", "--encryption", "kms"], "invalid encryption:"),
    (["--url", "oss://good-bucket/x", "--region", "cn-hangzhou", "--credentials-secret", "a/b/c"],
     "--credentials-secret"),
])
def test_bad_input_names_the_field(cli: Run, args: list[str], message: str) -> None:
    result = cli("create", "v", *args)
    assert isinstance(result.exception, BadInput), result.output
    assert message in str(result.exception)


def test_oss_vault_with_env_credentials_and_backups_of_another_cluster(
        cli: Run, oss_server: LocalOssServer, bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    run = cli
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
    spec = ["--url", f"oss://{bucket}/shared", "--region", "cn-hangzhou", "--endpoint", oss_server.endpoint]
    assert run("create", "shared", *spec).exit_code == 0
    # Another cluster attached to the same bucket commits a backup ...
    other = manager(tmp_path / "other-state", "cluster-b")
    other.create({"name": "shared", "url": f"oss://{bucket}/shared", "region": "cn-hangzhou",
                  "endpoint": oss_server.endpoint})
    store = other.store("shared")
    claim_backup(store, "nightly-1", cluster_id="cluster-b", uid="run-1")
    now = datetime.now(UTC)
    commit_backup(store, BackupRecord(name="nightly-1", uid="run-1", source_cluster="cluster-b",
                                      phase=BackupOutcome.completed, started_at=now, completed_at=now,
                                      resource_count=7))
    claim_backup(store, "nightly-2", cluster_id="cluster-b", uid="run-2")  # still running there
    # ... and this cluster offers it, but not the one in progress.
    described = run("describe", "shared")
    assert described.exit_code == 0, described.output
    assert "nightly-1" in described.output and "cluster-b" in described.output
    assert "nightly-2" not in described.output
    assert "nightly-2" in run("describe", "shared", "--all-backups").output

    oss_server.set_faults(missing_buckets=[bucket])
    result = run("check", "shared")
    assert result.exit_code == 1 and f"bucket {bucket} in region cn-hangzhou does not exist" in result.output


def test_denied_bucket_outside_the_default_policy_gets_the_cnfs_oss_hint(
        cli: Run, oss_server: LocalOssServer, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
    oss_server.set_faults(access_denied=True)
    spec = ["--url", f"oss://{bucket}/x", "--region", "cn-hangzhou", "--endpoint", oss_server.endpoint]
    result = cli("create", "denied", *spec)
    assert result.exit_code == 1
    assert "backup vault is unavailable: no permission" in str(result.exception)
    assert f"bucket {bucket} is not one of them: use a bucket named cnfs-oss-<something>" in result.output
    assert cli("list").output.count("denied") == 0  # nothing was registered
