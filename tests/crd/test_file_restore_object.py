"""A file restore through its own kind (FileRestore), applied with kubectl and run by the
controller: chosen files of a backed-up volume go back into the live PVC; a choice the controller
can judge bad (a path leaving the volume) ends the object Failed before any job starts."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from backupctl import jobctl
from tests.backup.test_verify import protected_app
from tests.crd.conftest import Kubectl
from tests.product_fixtures import Product
from tests.restore.test_disaster import mounted
from tests.worker_process import WorkerProcess

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


def manifest(name: str, home: str, backup: str, ns: str, paths: str, extra: str = "") -> str:
    return f"""
apiVersion: backupcenter.io/v1alpha1
kind: FileRestore
metadata: {{name: {name}, namespace: {home}}}
spec:
  backup: {backup}
  vault: main
  volume: {ns}/shared
  paths: {paths}
  targetNamespace: {ns}
  targetPvc: shared
{extra}"""


async def test_file_restore_through_its_own_kind(
    product: Product, controller: WorkerProcess, kubectl: Kubectl, kube_agent: Any, kube_namespace: str
) -> None:
    ns, home = kube_namespace, product.settings.product_namespace
    backup = await protected_app(product, kube_agent, ns)
    live = mounted(product.kube, kube_agent, ns, "web", "shared")
    (live / "site" / "index.html").write_bytes(b"broken by a bad deploy")
    (live / "site" / "app.js").unlink()

    name = f"fr-{uuid.uuid4().hex[:8]}"
    kubectl.apply(manifest(name, home, backup, ns, "[site]", "  overwrite: true"))
    obj = await asyncio.to_thread(kubectl.wait_phase, "filerestore", name, home, {"Completed", "Failed"}, 120)
    assert obj["status"]["phase"] == "Completed", obj["status"]
    assert (live / "site" / "index.html").read_bytes() == b"<h1>shop</h1>\n"
    assert (live / "site" / "app.js").read_bytes() == b"run()\n" * 300
    table = kubectl.run("-n", home, "get", "filerestores", name).stdout
    columns = ["NAME", "PHASE", "STEP", "PROGRESS", "BACKUP", "VOLUME", "TARGET", "AGE"]
    assert table.splitlines()[0].split() == columns
    described = kubectl.run("-n", home, "describe", "filerestore", name).stdout
    assert "write the files" in described and "Completed" in described.split("Events:")[1]
    status = await jobctl.job_status(product.client, "files", name)  # the same job through the CLI's door
    assert status.summary["files"] == 2, status.summary

    bad = f"fr-{uuid.uuid4().hex[:8]}"
    kubectl.apply(manifest(bad, home, backup, ns, "['../etc']"))
    obj = await asyncio.to_thread(kubectl.wait_phase, "filerestore", bad, home, {"Failed"})
    assert "spec.paths" in obj["status"]["message"] and "../etc" in obj["status"]["message"], obj["status"]
    assert await jobctl.job_exists(product.client, "files", bad) is False
    kubectl.run("-n", home, "delete", f"filerestore/{name}", f"filerestore/{bad}")
