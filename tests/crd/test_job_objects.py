"""Jobs as custom resources, driven with kubectl through the controller (real API server, real Temporal)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from backupctl import jobctl
from schemas.specs import BackupSpec
from tests.backup.test_backup_workflow import seed
from tests.backup.test_backup_workflow import start as start_cli_backup
from tests.crd.conftest import Kubectl
from tests.product_fixtures import Product
from tests.worker_process import WorkerProcess
from vault import catalog, verifications

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


def backup_manifest(name: str, namespace: str, *, vault: str = "main", extra: str = "") -> str:
    return f"""
apiVersion: backupcenter.io/v1alpha1
kind: ApplicationBackup
metadata:
  name: {name}
  namespace: {namespace}
spec:
  vault: {vault}
  includeNamespaces: [{namespace_of_app(name)}]
{extra}"""


_APPS: dict[str, str] = {}


def namespace_of_app(backup: str) -> str:
    return _APPS[backup]


def new_backup(app_ns: str) -> str:
    name = f"ab-{uuid.uuid4().hex[:8]}"
    _APPS[name] = app_ns
    return name


@contextlib.asynccontextmanager
async def stuck_backup(
    product: Product, kubectl: Kubectl, kube_agent: Any, ns: str
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """An ApplicationBackup of ``ns`` waiting for an operator at 'wait snapshots ready': the disk
    driver's snapshots never get ready until the block ends.  Yields its name and object."""
    home = product.settings.product_namespace
    seed(product, kube_agent, ns, configmaps=1)
    name = new_backup(ns)
    kube_agent.faults.snapshots_never_ready(True)
    try:
        kubectl.apply(backup_manifest(name, home))
        waiting = await in_thread(kubectl.wait_phase, "applicationbackup", name, home, {"WaitingForOperator"})
        yield name, waiting
    finally:
        kube_agent.faults.snapshots_never_ready(False)


async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_apply_backup_then_restore_into_a_mapped_namespace(
    product: Product, controller: WorkerProcess, kubectl: Kubectl, kube_agent: Any, kube_namespace: str
) -> None:
    ns, home = kube_namespace, product.settings.product_namespace
    seed(product, kube_agent, ns, configmaps=3)
    name = new_backup(ns)
    kubectl.apply(backup_manifest(name, home))
    obj = await in_thread(kubectl.wait_phase, "applicationbackup", name, home, {"Completed", "Failed"})
    status = obj["status"]
    assert status["phase"] == "Completed", status
    assert status["workflowId"] == f"backup-{name}"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Ready": "True", "Stuck": "False"}
    assert all(s["state"] in ("Succeeded", "Skipped") for s in status["steps"]), status["steps"]
    assert status["progress"].startswith(f"{len(status['steps'])}/{len(status['steps'])} steps")

    # kubectl get: the printer columns; kubectl describe: the steps and the Events.
    table = kubectl.run("-n", home, "get", "applicationbackups", name).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "STEP", "PROGRESS", "VAULT", "AGE"]
    assert row.split()[:2] == [name, "Completed"] and " main " in row
    described = kubectl.run("-n", home, "describe", "applicationbackup", name).stdout
    assert "export resources" in described and "Succeeded" in described
    assert "Events:" in described and "Completed" in described.split("Events:")[1]

    # The same job through the other door.
    cli = await jobctl.job_status(product.client, "backup", name)
    assert cli.phase.value == "Completed"
    # The data is in the vault: the backup is usable.
    assert catalog.get_backup(product.ctx.vaults().store("main"), name) is not None

    # Verified through its own kind: the report is kept with the backup.
    check = f"bv-{uuid.uuid4().hex[:8]}"
    kubectl.apply(f"""
apiVersion: backupcenter.io/v1alpha1
kind: BackupVerification
metadata: {{name: {check}, namespace: {home}}}
spec: {{backup: {name}, vault: main, readData: true}}
""")
    obj = await in_thread(kubectl.wait_phase, "backupverification", check, home, {"Completed", "Failed"})
    assert obj["status"]["phase"] == "Completed", obj["status"]
    assert obj["status"]["summary"]["findings"] == "0"
    report = verifications.latest(product.ctx.vaults().store("main"), name)
    assert report is not None and report.job == check and report.passed and report.read_data
    # A request kind: deleted and applied again under the same name, it runs again.
    kubectl.run("-n", home, "delete", "backupverification", check)
    await asyncio.sleep(2.5)  # later than the first job's start by more than the clock slack
    kubectl.apply(f"""
apiVersion: backupcenter.io/v1alpha1
kind: BackupVerification
metadata: {{name: {check}, namespace: {home}}}
spec: {{backup: {name}, vault: main}}
""")
    again = await in_thread(kubectl.wait_phase, "backupverification", check, home, {"Completed", "Failed"})
    assert again["status"]["phase"] == "Completed", again["status"]
    second = verifications.latest(product.ctx.vaults().store("main"), name)
    assert second is not None and second.job == check and not second.read_data  # the new run's report
    kubectl.run("-n", home, "delete", "backupverification", check)

    # A restore drill through its own kind: restored beside the source, checked, removed.
    drill = f"rd-{uuid.uuid4().hex[:8]}"
    kubectl.apply(f"""
apiVersion: backupcenter.io/v1alpha1
kind: RestoreDrill
metadata: {{name: {drill}, namespace: {home}}}
spec: {{backup: {name}, vault: main}}
""")
    obj = await in_thread(kubectl.wait_phase, "restoredrill", drill, home, {"Completed", "Failed"}, 180)
    assert obj["status"]["phase"] == "Completed", obj["status"]
    drilled = verifications.latest_drill(product.ctx.vaults().store("main"), name)
    assert drilled is not None and drilled.job == drill and drilled.passed, drilled
    assert all(kubectl.get("namespace", n, "default") is None for n in drilled.scratch.values())
    kubectl.run("-n", home, "delete", "restoredrill", drill)

    target = f"{ns}-copy"
    restore = f"ar-{uuid.uuid4().hex[:8]}"
    kubectl.apply(f"""
apiVersion: backupcenter.io/v1alpha1
kind: ApplicationRestore
metadata: {{name: {restore}, namespace: {home}}}
spec:
  backup: {name}
  vault: main
  namespaceMapping: {{{ns}: {target}}}
""")
    try:
        obj = await in_thread(kubectl.wait_phase, "applicationrestore", restore, home,
                              {"Completed", "PartiallyFailed", "Failed"}, 120)
        assert obj["status"]["phase"] == "Completed", obj["status"]
        assert product.kube.get(f"/api/v1/namespaces/{target}/configmaps/cfg-2") is not None
        table = kubectl.run("-n", home, "get", "applicationrestores", restore).stdout
        columns = ["NAME", "PHASE", "STEP", "PROGRESS", "BACKUP", "VAULT", "AGE"]
        assert table.splitlines()[0].split() == columns
    finally:
        product.kube.delete(f"/api/v1/namespaces/{target}")


async def test_a_cli_job_has_its_object_too(product: Product, kubectl: Kubectl, kube_namespace: str) -> None:
    """One product, two doors: a job started by backupctl is listed by kubectl (without a controller:
    the job's own workflow makes and updates its object)."""
    ns, home = kube_namespace, product.settings.product_namespace
    product.kube.create(f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "one"}, "data": {}})
    name = f"cli-{uuid.uuid4().hex[:8]}"
    handle = await start_cli_backup(product, BackupSpec(name=name, vault="main", include_namespaces=[ns]))
    await handle.result()
    obj = kubectl.get("applicationbackup", name, home)
    assert obj is not None
    assert obj["metadata"]["annotations"]["backupcenter.io/started-by"] == "backupctl"
    assert obj["spec"] == {"vault": "main", "includeNamespaces": [ns]}
    assert obj["status"]["phase"] == "Completed"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            "vault: main\n  includeNamespaces: [a]\n  excludeNamespaces: [b]",
            "give includeNamespaces or excludeNamespaces, not both",
        ),
        ("vault: main\n  ttl: 3 days", "spec.ttl"),
        ("vault: Main_Vault", "spec.vault"),
        ("includeNamespaces: [a]", "spec.vault: Required value"),
    ],
)
async def test_bad_objects_are_refused_at_admission(
    product: Product, kubectl: Kubectl, spec: str, field: str
) -> None:
    name = f"bad-{uuid.uuid4().hex[:6]}"
    home = product.settings.product_namespace
    done = kubectl.apply(f"""
apiVersion: backupcenter.io/v1alpha1
kind: ApplicationBackup
metadata: {{name: {name}, namespace: {home}}}
spec:
  {spec}
""", check=False)
    assert done.returncode != 0
    assert field in done.stderr, done.stderr
    assert kubectl.get("applicationbackup", name, home) is None
    assert await jobctl.job_exists(product.client, "backup", name) is False


async def test_what_only_the_controller_can_judge_ends_failed_with_an_event(
    product: Product, controller: WorkerProcess, kubectl: Kubectl
) -> None:
    home = product.settings.product_namespace
    name = f"nv-{uuid.uuid4().hex[:6]}"
    _APPS[name] = "default"
    kubectl.apply(backup_manifest(name, home, vault="no-such-vault"))
    obj = await in_thread(kubectl.wait_phase, "applicationbackup", name, home, {"Failed"})
    assert "spec.vault" in obj["status"]["message"] and "no-such-vault" in obj["status"]["message"]
    described = kubectl.run("-n", home, "describe", "applicationbackup", name).stdout
    assert "no-such-vault" in described.split("Events:")[1]
    assert await jobctl.job_exists(product.client, "backup", name) is False

    restore = f"nr-{uuid.uuid4().hex[:6]}"
    kubectl.apply(f"""
apiVersion: backupcenter.io/v1alpha1
kind: ApplicationRestore
metadata: {{name: {restore}, namespace: {home}}}
spec: {{backup: never-made, vault: main}}
""")
    obj = await in_thread(kubectl.wait_phase, "applicationrestore", restore, home, {"Failed"})
    assert "spec.backup" in obj["status"]["message"] and "never-made" in obj["status"]["message"]
    assert await jobctl.job_exists(product.client, "restore", restore) is False
    kubectl.run("-n", home, "delete", f"applicationbackup/{name}", f"applicationrestore/{restore}")


def steer(kubectl: Kubectl, kind: str, name: str, namespace: str, value: str) -> None:
    kubectl.run("-n", namespace, "annotate", "--overwrite", kind, name, f"backupcenter.io/steer={value}")


async def test_stuck_then_retry_through_the_object_then_delete_deletes_the_data(
    product: Product, controller: WorkerProcess, kubectl: Kubectl, kube_agent: Any, kube_namespace: str
) -> None:
    home = product.settings.product_namespace
    async with stuck_backup(product, kubectl, kube_agent, kube_namespace) as (name, obj):
        conditions = {c["type"]: c for c in obj["status"]["conditions"]}
        stuck = conditions["Stuck"]
        assert stuck["status"] == "True" and stuck["reason"] == "SnapshotNotReady"
        # Ready has been False since the job began: its transition time is kept, not renewed per push.
        assert conditions["Ready"]["status"] == "False"
        assert conditions["Ready"]["lastTransitionTime"] <= stuck["lastTransitionTime"]
        assert conditions["Ready"]["lastTransitionTime"] >= obj["status"]["startedAt"][:19]
        hint = f"annotate --overwrite applicationbackup {name} backupcenter.io/steer=retry"
        assert hint in stuck["message"]
        assert obj["status"]["currentStep"] == "wait snapshots ready"
        described = kubectl.run("-n", home, "describe", "applicationbackup", name).stdout
        assert "SnapshotNotReady" in described.split("Events:")[1]
        # A step that cannot be skipped: refused, and said so.
        steer(kubectl, "applicationbackup", name, home, "skip")
        obj = await in_thread(wait_steering, kubectl, name, home, "skip")
        assert obj["status"]["steering"]["result"].startswith("refused: step 'wait snapshots ready'")
    steer(kubectl, "applicationbackup", name, home, "retry")
    obj = await in_thread(kubectl.wait_phase, "applicationbackup", name, home, {"Completed", "Failed"})
    assert obj["status"]["phase"] == "Completed", obj["status"]
    assert obj["status"]["steering"]["result"] == "sent retry to step 'wait snapshots ready'"
    assert {s["name"]: s["attempts"] for s in obj["status"]["steps"]}["wait snapshots ready"] == 2
    after = {c["type"]: c for c in obj["status"]["conditions"]}
    assert after["Stuck"]["status"] == "False" and after["Ready"]["status"] == "True"
    assert after["Stuck"]["lastTransitionTime"] >= stuck["lastTransitionTime"]

    # Deleting the object deletes the backup: through a DeleteRequest, held by a finalizer until done.
    store = product.ctx.vaults().store("main")
    assert list(store.list(catalog.backup_prefix(name)))
    kubectl.run("-n", home, "delete", "applicationbackup", name, "--wait=false")
    await in_thread(kubectl.wait_gone, "applicationbackup", name, home, 120)
    request = kubectl.get("deleterequest", f"{name}-dbr", home)
    assert request is not None and request["status"]["phase"] == "Completed", request
    assert list(store.list(catalog.backup_prefix(name))) == []
    assert await jobctl.job_exists(product.client, "backup", name) is False
    kubectl.run("-n", home, "delete", "deleterequest", f"{name}-dbr")


async def test_a_deleted_object_stays_until_its_delete_request_completed(
    product: Product, controller: WorkerProcess, kubectl: Kubectl
) -> None:
    """Deleting a backup frees its job name a moment before its DeleteRequest completes; the object
    must stay until the request says Completed, not go as soon as no job of its name exists (seen in
    CI: the ApplicationBackup was gone while its DeleteRequest was still InProgress)."""
    home = product.settings.product_namespace
    name = f"hd-{uuid.uuid4().hex[:6]}"
    _APPS[name] = "default"
    request = f"{name}-dbr"
    # The object: nothing started for it (created canceled), but the controller's finalizer is on it.
    kubectl.apply(backup_manifest(name, home, extra="  cancel: true"))
    await in_thread(kubectl.wait_phase, "applicationbackup", name, home, {"Canceled"})
    # Its request in progress, whose job no longer owns the name: made by hand after the object (the
    # controller leaves objects marked as a CLI job's alone), its status set as the delete job would.
    kubectl.apply(f"""
apiVersion: backupcenter.io/v1alpha1
kind: DeleteRequest
metadata:
  name: {request}
  namespace: {home}
  annotations: {{backupcenter.io/started-by: backupctl}}
spec: {{targetKind: backup, target: {name}}}
""")

    def set_phase(phase: str) -> None:
        kubectl.run("-n", home, "patch", "deleterequest", request, "--subresource=status", "--type",
                    "merge", "-p", f'{{"status":{{"phase":"{phase}"}}}}')

    set_phase("InProgress")
    kubectl.run("-n", home, "delete", "applicationbackup", name, "--wait=false")
    await asyncio.sleep(6)  # three of the delete handler's retries
    held = kubectl.get("applicationbackup", name, home)
    assert held is not None and held["metadata"].get("deletionTimestamp"), held
    set_phase("Completed")
    await in_thread(kubectl.wait_gone, "applicationbackup", name, home, 30)

    # A new object of that name meets the earlier object's Completed request: not its own (older than
    # it), so that request goes rather than counting as this object's deletion being done.
    await asyncio.sleep(1.1)  # creation times have whole seconds
    kubectl.apply(backup_manifest(name, home, extra="  cancel: true"))
    await in_thread(kubectl.wait_phase, "applicationbackup", name, home, {"Canceled"})
    kubectl.run("-n", home, "delete", "applicationbackup", name, "--wait=false")
    await in_thread(kubectl.wait_gone, "deleterequest", request, home, 30)
    await in_thread(kubectl.wait_gone, "applicationbackup", name, home, 30)


def wait_steering(kubectl: Kubectl, name: str, namespace: str, value: str) -> dict[str, Any]:
    def acknowledged() -> dict[str, Any] | None:
        obj = kubectl.get("applicationbackup", name, namespace) or {}
        return obj if ((obj.get("status") or {}).get("steering") or {}).get("value") == value else None

    found: dict[str, Any] = kubectl.wait_for(acknowledged, f"steering {value} acknowledged", 30)
    return found


async def test_cancel_through_the_spec(
    product: Product, controller: WorkerProcess, kubectl: Kubectl, kube_agent: Any, kube_namespace: str
) -> None:
    home = product.settings.product_namespace
    async with stuck_backup(product, kubectl, kube_agent, kube_namespace) as (name, obj):
        # A DeleteRequest of a job still running says so, with the fix.
        request = f"{name}-early"
        kubectl.apply(f"""
apiVersion: backupcenter.io/v1alpha1
kind: DeleteRequest
metadata: {{name: {request}, namespace: {home}}}
spec: {{targetKind: backup, target: {name}}}
""")
        early = await in_thread(
            kubectl.wait_phase, "deleterequest", request, home, {"WaitingForOperator", "Failed"}
        )
        assert early["status"]["error"]["code"] == "JobStillRunning", early["status"]
        assert any("spec.cancel: true" in fix for fix in early["status"]["error"]["fixes"])
        kubectl.run("-n", home, "patch", "applicationbackup", name, "--type", "merge",
                    "-p", '{"spec":{"cancel":true}}')
        obj = await in_thread(kubectl.wait_phase, "applicationbackup", name, home, {"Canceled", "Failed"})
    assert obj["status"]["phase"] == "Canceled", obj["status"]
    assert obj["status"]["observedGeneration"] == 2
    # Cleanup ran: nothing of the backup is left in the vault.
    assert list(product.ctx.vaults().store("main").list(catalog.backup_prefix(name))) == []
    described = kubectl.run("-n", home, "describe", "applicationbackup", name).stdout
    assert "CancelRequested" in described and "Canceled" in described.split("Events:")[1]
    # Now the delete goes through (retried through its object) and takes the backup's object along.
    steer(kubectl, "deleterequest", request, home, "retry")
    done = await in_thread(kubectl.wait_phase, "deleterequest", request, home, {"Completed", "Failed"})
    assert done["status"]["phase"] == "Completed", done["status"]
    await in_thread(kubectl.wait_gone, "applicationbackup", name, home)


async def test_a_killed_controller_neither_duplicates_nor_loses_a_job(
    product: Product, controller: WorkerProcess, kubectl: Kubectl, kube_agent: Any, kube_namespace: str
) -> None:
    home = product.settings.product_namespace
    async with stuck_backup(product, kubectl, kube_agent, kube_namespace) as (name, obj):
        controller.kill9()
        # While the controller is down, the object still follows its job (the workflow pushes).
        steer_cli = await jobctl.job_status(product.client, "backup", name)
        assert steer_cli.phase.value == "WaitingForOperator"
    await jobctl.signal_job(product.client, "backup", name, "retry")
    obj = await in_thread(kubectl.wait_phase, "applicationbackup", name, home, {"Completed", "Failed"})
    assert obj["status"]["phase"] == "Completed"
    controller.start()
    # The restarted controller resumes every object: this one is not started again.
    another = new_backup(kube_namespace)
    kubectl.apply(backup_manifest(another, home))
    await in_thread(kubectl.wait_phase, "applicationbackup", another, home, {"Completed"})
    runs = [wf async for wf in product.client.list_workflows(f"WorkflowId = 'backup-{name}'")]
    assert len(runs) == 1


async def test_two_controllers_start_each_job_once(
    product: Product, controller: WorkerProcess, kubectl: Kubectl, kube_namespace: str
) -> None:
    """Two replicas, as deploy/controller.yaml runs: every object still starts exactly one job."""
    ns, home = kube_namespace, product.settings.product_namespace
    product.kube.create(f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "one"}, "data": {}})
    second = WorkerProcess(product, controller.env["BACKUPCENTER_TEMPORAL_ADDRESS"], controller.settings_path,
                           controller.log.with_name("controller-2.log"), command=("controller",), args=())
    second.env["KUBECONFIG"] = controller.env["KUBECONFIG"]
    second.start()
    try:
        names = [new_backup(ns) for _ in range(6)]
        kubectl.apply("\n---\n".join(backup_manifest(name, home) for name in names))
        for name in names:
            obj = await in_thread(
                kubectl.wait_phase, "applicationbackup", name, home, {"Completed", "Failed"}
            )
            assert obj["status"]["phase"] == "Completed", obj["status"]
        for name in names:
            runs = [wf async for wf in product.client.list_workflows(f"WorkflowId = 'backup-{name}'")]
            assert len(runs) == 1, name
            events = kubectl.run(
                "-n", home, "get", "events", "--field-selector", f"involvedObject.name={name}",
                "-o", "jsonpath={.items[*].reason}",
            ).stdout.split()
            assert events.count("Completed") == 1 and "Failed" not in events, events
    finally:
        second.stop()
