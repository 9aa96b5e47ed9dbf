"""`backup verify` end to end: a good backup verifies (metadata only and with --read-data), and each kind
of damage done behind the product's back — a flipped byte in a pack, a lost snapshot manifest, a lost
disk snapshot, a truncated resource bundle — fails the job naming the object at fault and what it breaks.

Each test damages a backup of its own.  Packs deduplicate across the session's backups, so every vault
file a test damages is put back byte for byte afterwards."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from backupctl import jobctl
from datamover.index import load_index
from datamover.manifest import ManifestReader
from datamover.repo import Repo, pack_key, snapshot_key
from kube.export import read_index
from schemas.backup import SnapshotState
from schemas.specs import VerifySpec
from schemas.status import JobPhase, JobStatus
from schemas.verify import VerifyFinding, VerifyReport
from tests.backup.test_backup_workflow import owned_of
from tests.cli_runner import Ran, cli_env, run_cli
from tests.localcluster.helpers import SNAPSHOTS, wait_for
from tests.product_fixtures import Product
from tests.restore.helpers import backup, finished
from tests.restore.test_disaster import app, mounted
from vault import catalog, verifications
from vault.fileformat import OBJECT_SUFFIX, encode_segment
from vault.store import ObjectStore
from workflows.verify import VerifyWorkflow

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]

# Random, so its chunks (and the pack holding them) are this backup's alone; bigger than one file store
# block, so the middle of the pack is in a block no read of the pack's trailer touches.
BIG_FILE, BIG_SIZE = "blob.bin", 2 * 1024 * 1024


async def protected_app(product: Product, agent: Any, ns: str) -> str:
    """A backup of an app with a disk volume `data` (CSI snapshot) and a NAS volume `shared` (file level)."""
    app(product, agent, ns)
    (mounted(product.kube, agent, ns, "web", "shared") / BIG_FILE).write_bytes(os.urandom(BIG_SIZE))
    return await backup(product, ns)


async def verify(product: Product, backup_name: str, *, read_data: bool = False
                 ) -> tuple[JobStatus, VerifyReport]:
    """Run a verify job to its end; its status and the report it left in the vault."""
    name = f"{backup_name}-{uuid.uuid4().hex[:6]}"
    spec = VerifySpec(name=name, backup=backup_name, vault=product.vault, read_data=read_data)
    await jobctl.start_job(product.client, product.settings, "verify", name, VerifyWorkflow.run, spec,
                           vault=spec.vault, summary=f"test verify {name}")
    status = await finished(product, "verify", name, 180)
    store = vault_store(product)
    key = str(status.summary["report"])
    assert key.startswith(f"backups/{backup_name}/verify/") and key.endswith(f"-{name}.json")
    assert store.exists(key)
    report = verifications.latest(store, backup_name)
    assert report is not None and report.job == name, report
    assert (report.backup, report.vault, report.read_data) == (backup_name, product.vault, read_data)
    assert report.passed is (status.phase is JobPhase.completed), (report, status.render_table())
    return status, report


def vault_store(product: Product) -> ObjectStore:
    return product.ctx.vaults().store(product.vault)


def vault_file(product: Product, key: str) -> Path:
    """Where the file store keeps object `key` (vault/filestore.py: `a/b` is `<root>/a/b%o`)."""
    *dirs, last = (encode_segment(s) for s in key.split("/"))
    return product.vault_dir.joinpath(*dirs, last + OBJECT_SUFFIX)


@contextmanager
def put_back(path: Path) -> Iterator[Path]:
    """Whatever the test does to this vault file, it is as it was afterwards."""
    original = path.read_bytes()
    try:
        yield path
    finally:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(original)


def file_snapshot(store: ObjectStore, backup_name: str, ns: str) -> str:
    """The data mover snapshot id of the backup's NAS volume."""
    records = catalog.volume_records(store, backup_name)
    assert records is not None
    return records.files[f"{ns}/shared"]


def pack_of_big_file(store: ObjectStore, snapshot_id: str) -> str:
    """The key of the pack holding the first chunk of the random file."""
    repo = Repo.open(store, None, create=False)
    with ManifestReader(store, repo.crypto, snapshot_id) as reader:
        [entry] = [e for e in reader.entries() if e.get("t") == "f" and e["p"].endswith(BIG_FILE)]
    found = load_index(repo, recover=False, require_packs=False).lookup(bytes.fromhex(entry["c"][0][0]))
    assert found is not None, "the random file's chunk is in no pack index"
    return pack_key(found[0])


@contextmanager
def flipped_pack(product: Product, backup_name: str, ns: str) -> Iterator[str]:
    """One byte flipped in the middle of the pack holding the NAS volume's random file (put back
    afterwards); yields the pack's key."""
    store = vault_store(product)
    pack = pack_of_big_file(store, file_snapshot(store, backup_name, ns))
    middle = store.head(pack).size // 2  # the object's bytes come first in its file, then the footer
    with put_back(vault_file(product, pack)) as path:
        with path.open("r+b") as f:
            f.seek(middle)
            byte = f.read(1)[0]
            f.seek(middle)
            f.write(bytes([byte ^ 0xFF]))
        yield pack


def disk_snapshot(product: Product, backup_name: str) -> SnapshotState:
    """The backup's one disk snapshot, as its volume records keep it."""
    records = catalog.volume_records(vault_store(product), backup_name)
    assert records is not None
    [state] = records.snapshots
    return state


def cause_of(status: JobStatus, affects: str, *at_fault: str) -> str:
    """The job failed BackupVerifyFailed, every cause naming one of `at_fault` before its "affects:" (nothing
    else is blamed); the first cause that says it affects `affects`."""
    assert status.phase is JobPhase.failed, status.render_table()
    assert status.error is not None and status.error.code == "BackupVerifyFailed", status.error
    causes = [c.partition("affects:") for c in status.error.causes]
    assert causes and all(any(f in head for f in at_fault if f) for head, _, _ in causes), status.error.causes
    found = [head + sep + tail for head, sep, tail in causes if affects in tail]
    assert found, status.error.causes
    return found[0]


def findings_for(report: VerifyReport, affected: str) -> list[VerifyFinding]:
    """The report's findings that say they affect `affected`: there are some."""
    found = [f for f in report.findings if any(affected in a for a in f.affects)]
    assert not report.passed and found, report.findings
    return found


def restorable(report: VerifyReport, volume: str) -> bool:
    return any(volume in r for r in report.restorable)


async def test_a_good_backup_verifies_with_and_without_reading_data(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    name = await protected_app(product, kube_agent, ns)

    status, report = await verify(product, name)
    assert status.phase is JobPhase.completed, (status.error, status.render_table())
    assert report.passed and report.findings == []
    assert restorable(report, f"{ns}/data") and restorable(report, f"{ns}/shared"), report.restorable
    for what in ("bundles", "objects", "volumes", "manifests", "disk_snapshots"):
        assert report.checked.get(what, 0) > 0, (what, report.checked)

    status, deep = await verify(product, name, read_data=True)
    assert status.phase is JobPhase.completed, (status.error, status.render_table())
    assert deep.passed and deep.findings == [] and deep.restorable == report.restorable
    for what in ("bundles", "objects", "volumes", "manifests", "disk_snapshots", "chunks", "packs"):
        assert deep.checked.get(what, 0) > 0, (what, deep.checked)
    assert deep.checked.get("bytes_read", 0) >= BIG_SIZE, deep.checked  # the random file's pack was read


async def test_a_flipped_byte_in_a_pack_is_found_by_reading_data_only(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    name = await protected_app(product, kube_agent, ns)
    with flipped_pack(product, name, ns) as pack:
        # Existence and metadata only: the pack is there, as big as ever.
        status, report = await verify(product, name)
        assert status.phase is JobPhase.completed, (status.error, status.render_table())
        assert report.passed and report.findings == []

        status, report = await verify(product, name, read_data=True)
    cause_of(status, f"{ns}/shared", pack)
    assert pack in {f.object for f in findings_for(report, f"{ns}/shared")}
    assert not restorable(report, f"{ns}/shared") and restorable(report, f"{ns}/data"), report.restorable


async def test_a_lost_snapshot_manifest_fails_its_volume(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    name = await protected_app(product, kube_agent, ns)
    key = snapshot_key(file_snapshot(vault_store(product), name, ns))
    with put_back(vault_file(product, key)) as path:
        path.unlink()
        status, report = await verify(product, name)
    cause_of(status, f"{ns}/shared", key)
    assert key in {f.object for f in findings_for(report, f"{ns}/shared")}
    assert not restorable(report, f"{ns}/shared") and restorable(report, f"{ns}/data"), report.restorable


async def test_lost_volume_records_fail_every_volume(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    """Without volumes.json nothing says how the volumes were kept: not a pass with zero volumes."""
    name = await protected_app(product, kube_agent, kube_namespace)
    key = f"backups/{name}/volumes.json"
    with put_back(vault_file(product, key)) as path:
        path.unlink()
        status, report = await verify(product, name)
    assert status.phase is JobPhase.failed and status.error is not None
    assert any(key in c and "volume records are missing" in c for c in status.error.causes), status.error
    assert not report.passed


async def test_a_disk_snapshot_lost_out_of_band_fails_its_pvc(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    name = await protected_app(product, kube_agent, ns)
    state = disk_snapshot(product, name)
    # Gone from the cloud (its data) and from the cluster (the retained content the backup owns).
    product.kube.delete(f"{SNAPSHOTS}/volumesnapshotcontents/{state.content}")
    wait_for(lambda: not owned_of(product, name), "the backup's snapshot content gone")
    shutil.rmtree(kube_agent.layout.snapshot_dir(state.handle))

    status, report = await verify(product, name)
    # Named by its snapshot (content, handle or VolumeSnapshot), affecting its PVC.
    cause_of(status, f"{ns}/data", state.content, state.handle, state.snapshot)
    assert findings_for(report, f"{ns}/data")
    # The NAS volume, copied to the vault, is still restorable.
    assert not restorable(report, f"{ns}/data") and restorable(report, f"{ns}/shared"), report.restorable


async def test_a_truncated_resource_bundle_fails_its_namespace(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    name = await protected_app(product, kube_agent, ns)
    store = vault_store(product)
    bundle = next(b for b in read_index(store, name).bundles if b.plural == "configmaps" and b.preferred)
    assert bundle.key.startswith(f"backups/{name}/resources/")
    assert bundle.key.endswith("/configmaps.jsonl.zst")
    with put_back(vault_file(product, bundle.key)):
        data = store.get(bundle.key)
        store.put(bundle.key, data[: len(data) // 2])  # a whole object, only shorter: no store error
        status, report = await verify(product, name)
    cause_of(status, ns, bundle.key)
    assert bundle.key in {f.object for f in findings_for(report, ns)}
    # Only resources are lost: both volumes are still restorable.
    assert restorable(report, f"{ns}/data") and restorable(report, f"{ns}/shared"), report.restorable


async def test_the_cli_verifies_and_restore_backups_shows_the_verdict(
    product: Product, temporal_env: Any, kube_agent: Any, kube_namespace: str
) -> None:
    name = await protected_app(product, kube_agent, kube_namespace)
    env = cli_env(product, temporal_env)

    async def cli(*args: str) -> Ran:
        return await run_cli(env, *args)

    code, out, err = await cli("backup", "verify", "never-made", "--vault", product.vault)
    assert code == 2 and "never-made" in err, (out, err)  # refused before anything starts
    code, out, err = await cli("restore", "backups", "--vault", product.vault)
    row = next(line for line in out.splitlines() if name in line)
    assert "never" in row, out
    code, out, err = await cli("backup", "verify", name, "--vault", product.vault, "--read-data", "--wait")
    assert code == 0, (out, err)
    assert "verification" in out and "Completed" in out, out
    code, out, err = await cli("restore", "backups", "--vault", product.vault)
    row = next(line for line in out.splitlines() if name in line)
    assert "passed" in row and "data read" in row, out
    code, out, err = await cli("backup", "drill", "never-made", "--vault", product.vault)
    assert code == 2 and "never-made" in err, (out, err)
    code, out, err = await cli("backup", "drill", name, "--vault", product.vault, "--wait")
    assert code == 0, (out, err)
    assert "restore drill" in out and "Completed" in out, out
    code, out, err = await cli("restore", "backups", "--vault", product.vault)
    rows = [line for line in out.splitlines() if name in line]
    assert rows and rows[0].count("passed") == 2 and "RTO" in rows[0], out
