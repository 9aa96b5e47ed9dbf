"""``backupctl restore files``: chosen paths of a volume's file-level copy into a local directory,
or (a job) into a PVC of the cluster — one in use, through its pod's mount, or one no pod mounts,
through a temporary pod — as an operator runs it (a real process), the same path-safety rules as
a full restore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backupctl import jobctl
from kube import job_objects
from schemas.specs import JobKind
from schemas.status import JobPhase
from tests.backup.test_verify import BIG_FILE, protected_app
from tests.cli_runner import Ran, cli_env, run_cli
from tests.localcluster.helpers import create, pod, pvc
from tests.product_fixtures import Product
from tests.restore.test_disaster import mounted

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


async def test_restore_files_to_a_local_directory(
    product: Product, temporal_env: Any, kube_agent: Any, kube_namespace: str, tmp_path: Path
) -> None:
    ns = kube_namespace
    name = await protected_app(product, kube_agent, ns)  # NAS volume `shared` (files), disk volume `data`
    env = cli_env(product, temporal_env)

    async def cli(*args: str) -> Ran:
        return await run_cli(env, "restore", "files", "--backup", name, "--vault", product.vault, *args)

    dst = tmp_path / "out"
    code, out, err = await cli("--volume", f"{ns}/shared", "--path", "site", "--path", BIG_FILE,
                               "--to-dir", str(dst))
    assert code == 0, (out, err)
    restored = {str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file()}
    assert restored == {"site/index.html", "site/app.js", BIG_FILE}, restored
    assert (dst / "site" / "index.html").read_bytes() == b"<h1>shop</h1>\n"
    assert len((dst / BIG_FILE).read_bytes()) == 2 * 1024 * 1024

    # Files already there are kept unless --overwrite.
    (dst / "site" / "index.html").write_bytes(b"edited")
    site = ["--volume", f"{ns}/shared", "--path", "site", "--to-dir", str(dst)]
    code, out, _ = await cli(*site)
    assert code == 0 and "2 already there kept" in out
    assert (dst / "site" / "index.html").read_bytes() == b"edited"
    code, out, _ = await cli(*site, "--overwrite")
    assert code == 0 and (dst / "site" / "index.html").read_bytes() == b"<h1>shop</h1>\n"

    # Refused, nothing written: a path leaving the volume, one the backup lacks, a disk-snapshot volume.
    elsewhere = tmp_path / "nothing"
    for args, words in (
        (["--volume", f"{ns}/shared", "--path", "../etc"], "--path"),
        (["--volume", f"{ns}/shared", "--path", "site/missing.html"], "site/missing.html"),
        (["--volume", f"{ns}/data", "--path", "x"], "disk snapshot"),
    ):
        code, out, err = await cli(*args, "--to-dir", str(elsewhere))
        assert code == 2 and words in err, (args, out, err)
        assert not elsewhere.exists()


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def job_pods(product: Product, ns: str) -> list[str]:
    pods = product.kube.list(f"/api/v1/namespaces/{ns}/pods", labelSelector="backupcenter.io/file-restore")[0]
    return [p["metadata"]["name"] for p in pods]


async def test_restore_files_into_a_live_pvc(
    product: Product, temporal_env: Any, kube_agent: Any, kube_namespace: str, tmp_path: Path
) -> None:
    ns = kube_namespace
    # The product namespace (deploy/namespace.yaml), where a CLI job's object is made.
    home = product.settings.product_namespace
    product.kube.create("/api/v1/namespaces", {"metadata": {"name": home}}, exist_ok=True)
    name = await protected_app(product, kube_agent, ns)
    env = cli_env(product, temporal_env)
    live = mounted(product.kube, kube_agent, ns, "web", "shared")
    blob = (live / BIG_FILE).read_bytes()
    # Since the backup: one file of site/ edited, one lost, one added; a file outside site/ changed.
    (live / "site" / "index.html").write_bytes(b"edited")
    (live / "site" / "app.js").unlink()
    (live / "site" / "new.txt").write_bytes(b"added since")
    (live / BIG_FILE).write_bytes(b"changed since")

    async def cli(*args: str) -> Ran:
        return await run_cli(env, "restore", "files", "--backup", name, "--vault", product.vault,
                             "--volume", f"{ns}/shared", *args)

    code, out, err = await cli("--path", "site", "--to-pvc", f"{ns}/shared", "--name", "site-back", "--wait")
    assert code == 0, (out, err)
    status = await jobctl.job_status(product.client, JobKind.files.value, "site-back")
    assert status.phase is JobPhase.completed, status.render_table()
    assert status.summary["kept_existing"] == 1, status.summary
    after = tree(live)
    assert after["site/app.js"] == b"run()\n" * 300  # restored
    assert after["site/index.html"] == b"edited"  # already there: kept
    assert after["site/new.txt"] == b"added since"  # not in the backup: untouched
    assert after[BIG_FILE] == b"changed since"  # not chosen: untouched
    assert job_pods(product, ns) == []  # pod web's own mount was used
    # Like every job, it has its custom resource (kubectl get filerestores).
    obj = product.kube.get(job_objects.object_path(JobKind.files, home, "site-back"))
    assert obj is not None and obj["status"]["phase"] == "Completed", obj
    assert obj["spec"]["targetPvc"] == "shared" and obj["spec"]["paths"] == ["site"]

    code, out, err = await cli("--path", "site/index.html", "--to-pvc", f"{ns}/shared", "--overwrite",
                               "--name", "index-back", "--wait")
    assert code == 0, (out, err)
    after = tree(live)
    assert after["site/index.html"] == b"<h1>shop</h1>\n" and after["site/new.txt"] == b"added since"
    assert after[BIG_FILE] == b"changed since"

    # Under a directory of the PVC: the paths keep their place below it.
    code, out, err = await cli("--path", BIG_FILE, "--to-pvc", f"{ns}/shared:recovered/today", "--wait")
    assert code == 0, (out, err)
    assert (live / "recovered" / "today" / BIG_FILE).read_bytes() == blob
    assert (live / BIG_FILE).read_bytes() == b"changed since"

    # Refused before any job starts (exit 2, nothing written).
    before = tree(live)
    for args, words in (
        (["--path", "../etc"], "--path"),
        (["--path", "site/missing.html"], "site/missing.html"),
        (["--path", "site", "--to-pvc", f"{ns}/shared:../up"], "--to-pvc"),
        (["--path", "site", "--to-pvc", f"{ns}/shared", "--to-dir", "/tmp/x"], "one of them"),
    ):
        full = args if "--to-pvc" in args else [*args, "--to-pvc", f"{ns}/shared"]
        code, out, err = await cli(*full)
        assert code == 2 and words in err, (args, out, err)
    assert tree(live) == before

    # A target PVC that does not exist: the job fails naming it, and makes nothing.
    code, out, err = await cli("--path", "site", "--to-pvc", f"{ns}/nothing-here", "--name", "nowhere",
                               "--wait")
    assert code != 0
    failed = await jobctl.job_status(product.client, JobKind.files.value, "nowhere")
    assert failed.phase is JobPhase.failed and failed.error is not None
    assert f"{ns}/nothing-here" in failed.error.message, failed.error
    assert job_pods(product, ns) == []

    # A directory of the live volume that is a symlink (it could point outside): the job refuses it.
    outside = tmp_path / "outside"
    outside.mkdir()
    (live / "escape").symlink_to(outside)
    code, out, err = await cli("--path", "site", "--to-pvc", f"{ns}/shared:escape/in", "--name", "via-link",
                               "--wait")
    assert code != 0
    refused = await jobctl.job_status(product.client, JobKind.files.value, "via-link")
    assert refused.phase is JobPhase.failed and refused.error is not None
    assert refused.error.code == "InvalidSpec" and "escape in volume" in refused.error.message, refused.error
    assert list(outside.iterdir()) == [] and not (live / "in").exists()


async def test_restore_files_into_a_pvc_no_pod_mounts(
    product: Product, temporal_env: Any, kube_agent: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    name = await protected_app(product, kube_agent, ns)
    env = cli_env(product, temporal_env)
    create(product.kube, ns, pvc("spare", "alibabacloud-cnfs-nas", modes=("ReadWriteMany",)))
    code, out, err = await run_cli(env, "restore", "files", "--backup", name, "--vault", product.vault,
                                   "--volume", f"{ns}/shared", "--path", "site", "--to-pvc", f"{ns}/spare",
                                   "--name", "into-spare", "--wait")
    assert code == 0, (out, err)
    status = await jobctl.job_status(product.client, JobKind.files.value, "into-spare")
    planned = status.step("find the files and the volume").message or ""
    assert "temporary pod" in planned, status.render_table()
    # The temporary pod is gone once the job ends; a pod of the PVC's own then sees the files.
    assert job_pods(product, ns) == []
    create(product.kube, ns, pod("reader", {"data": "spare"}))
    spare = mounted(product.kube, kube_agent, ns, "reader", "spare")
    assert tree(spare) == {"site/index.html": b"<h1>shop</h1>\n", "site/app.js": b"run()\n" * 300}
