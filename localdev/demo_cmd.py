"""``backupctl demo``: the product's main job end to end on the embedded defaults.

Starts the local environment (Temporal dev server, local Kubernetes, workers), removes what an
earlier demo run left in the cluster (the sample namespaces, their restored copies, the demo's CRD
and node label) so every run starts from the same state, seeds the sample application, creates the
default file:// vault, backs the application up (resources, disk snapshots, NAS files through a
node worker, with one node excluded by policy), converts the NAS volume to a disk snapshot,
restores it into mapped namespaces (the NAS volume as a disk volume from the converted snapshot),
checks every restored file against its digest, restores it again into a new cluster of another
region (snapshots copied across regions through the ECS API of the local endpoint) and checks the
files there, then plays the disaster: deletes the application's namespaces, waits until they are
gone, restores the backup under the same names and checks every file (disk and NAS) again, timing
deletion → restore Completed. Finally it deletes the backup (its conversion goes with it) and
prints what happened and where to look in the Web UI.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from kubernetes.client import ApiClient
from kubernetes.config import new_client_from_config
from rich.table import Table
from temporalio.client import Client

from backupctl import jobctl
from backupctl.console import console, settings_provider, state_dir
from backupctl.vault_cmd import manager as vault_manager
from kube.rest import Kube
from localdev import demo_objects, devenv, ecs_process
from localdev.kube.seed import remove_sample_app, seed_sample_app, verify_volume_files, wait_gone
from localdev.second_cluster import REGION as REGION_B
from localdev.second_cluster import second_cluster
from schemas.resources import object_spec
from schemas.settings import Settings
from schemas.specs import BackupSpec, ConvertSpec, JobKind, RestoreSpec
from schemas.status import JobStatus
from workers.client import connect
from workflows.convert import ConvertWorkflow
from workflows.restore import RestoreWorkflow

VAULT = "default"
NAS_CLASS = "alibabacloud-cnfs-nas"
# WaitForFirstConsumer: the local cluster has two zones, where an Immediate disk class is refused.
DISK_CLASS = "alicloud-disk-topology-alltype"


EXCLUDED_LABEL = "backupcenter.io/agent-excluded"
RESTORED_SUFFIX = "-restored"  # the mapped restore's namespaces: <ns>-restored
GONE_TIMEOUT = 300.0  # seconds for deleted namespaces to be really gone


def _reset(kube: Kube, api: ApiClient) -> None:
    """Remove what earlier demo runs left (``backupctl dev down`` keeps the cluster's data): the
    sample namespaces and their restored copies, the sample CRD, and the node label of the node
    policy step; wait until they are gone, so seeding and restoring start from a clean cluster."""
    from localdev.kube.seed import SAMPLE_NAMESPACES

    restored = [f"{ns}{RESTORED_SUFFIX}" for ns in SAMPLE_NAMESPACES]
    started = time.monotonic()
    removed = remove_sample_app(api, namespaces=restored, timeout=GONE_TIMEOUT)
    took = time.monotonic() - started
    nodes, _ = kube.list("/api/v1/nodes")
    unlabelled = []
    for node in nodes:
        if EXCLUDED_LABEL in (node["metadata"].get("labels") or {}):
            name = node["metadata"]["name"]
            kube.patch(f"/api/v1/nodes/{name}", {"metadata": {"labels": {EXCLUDED_LABEL: None}}})
            unlabelled.append(name)
    if removed or unlabelled:
        console.print(
            f"left by an earlier demo run, removed: namespaces {', '.join(removed) or '-'}"
            + (f"; label {EXCLUDED_LABEL} of {', '.join(unlabelled)}" if unlabelled else "")
            + f" (gone after {took:.0f} s)",
            soft_wrap=True,
        )
    else:
        console.print("nothing left by an earlier demo run")


def _exclude_one_nas_node(kube: Kube, manifest: dict[str, Any]) -> str | None:
    """Label one node that mounts the shared NAS volume as excluded, to show the policy at work:
    the volume is then copied by the node worker of another node that mounts it."""
    nas = [v for v in manifest["volumes"] if v["storageClass"] == "alibabacloud-cnfs-nas"]
    if not nas:
        return None
    ns, claim = nas[0]["namespace"], nas[0]["claim"]
    pods, _ = kube.list(f"/api/v1/namespaces/{ns}/pods")
    nodes = sorted(
        {
            p["spec"].get("nodeName")
            for p in pods
            if p["spec"].get("nodeName")
            and any(
                (v.get("persistentVolumeClaim") or {}).get("claimName") == claim
                for v in p["spec"].get("volumes", [])
            )
        }
    )
    if len(nodes) < 2:
        return None
    kube.patch(f"/api/v1/nodes/{nodes[0]}", {"metadata": {"labels": {EXCLUDED_LABEL: "true"}}})
    console.print(
        f"node {nodes[0]} labelled {EXCLUDED_LABEL}=true: {ns}/{claim} must be copied on {nodes[1]}"
    )
    return str(nodes[0])


async def _convert(settings: Settings, backup: str) -> JobStatus:
    client = await connect(settings)
    name = f"convert-{backup}"
    # The shared NAS volume becomes a disk volume: disks attach to one node, hence ReadWriteOnce.
    spec = ConvertSpec(
        name=name,
        backup=backup,
        vault=VAULT,
        storage_class_mapping={NAS_CLASS: DISK_CLASS},
        convert_to_access_modes=["ReadWriteOnce"],
    )
    await jobctl.start_job(
        client,
        settings,
        "convert",
        name,
        ConvertWorkflow.run,
        spec,
        vault=VAULT,
        summary=f"demo conversion of {backup}: NAS → disk",
    )
    return await jobctl.wait_job(client, "convert", name)


async def _restore(
    settings: Settings, spec: RestoreSpec, summary: str, *, kubeconfig: Path | None = None
) -> JobStatus:
    """A restore job: started like ``backupctl restore create`` does, or (``kubeconfig``) by applying its
    ApplicationRestore object, as a person with kubectl does."""
    if kubeconfig is not None:
        home = settings.product_namespace
        demo_objects.apply_job(kubeconfig, JobKind.restore, spec.name, home, object_spec(spec))
        client = await connect(settings)
        status = await demo_objects.follow(client, kubeconfig, JobKind.restore, spec.name, home)
        table = demo_objects.run_kubectl(kubeconfig, "-n", home, "get", "applicationrestores", spec.name)
        console.print(table, markup=False)
        return status
    client = await connect(settings)
    await jobctl.start_job(
        client, settings, "restore", spec.name, RestoreWorkflow.run, spec, vault=VAULT, summary=summary
    )
    return await jobctl.wait_job(client, "restore", spec.name)


def _restore_mapped(
    settings: Settings, backup: str, mapping: dict[str, str], classes: dict[str, str]
) -> JobStatus:
    # Same cluster: the originals still hold their node ports. Auto-assigned ones are allocated anew
    # (preserve_node_ports=False, the default); web's nodePort 30080 was set in its manifest and is
    # kept, so that one Service fails with NodePortTaken (its fix in `restore describe`) while the
    # rest is restored. The new cluster of step 8 gets it back with its port.
    spec = RestoreSpec(
        name=f"restore-{backup}",
        backup=backup,
        vault=VAULT,
        namespace_mapping=mapping,
        storage_class_mapping=classes,
        preserve_node_ports=False,
    )
    return asyncio.run(
        _restore(settings, spec, f"demo restore of {backup} into {', '.join(mapping.values())}")
    )


def files_matching(manifest: dict[str, Any], problems: list[str]) -> int:
    """How many of the manifest's files matched, given verify_volume_files' problems (a volume no
    running pod mounts counts all its files as not matching)."""
    matched = 0
    for volume in manifest["volumes"]:
        key = f"{volume['namespace']}/{volume['claim']}"
        found = [p for p in problems if p.startswith(f"{key}:") or p.split()[-1] == key]
        if any(not p.startswith(f"{key}:") for p in found):
            continue
        matched += len(volume["files"]) - len(found)
    return matched


@dataclass
class Disaster:
    namespaces: list[str]
    gone_after: float = 0.0  # seconds from the delete request until every namespace was gone
    restored: JobStatus | None = None
    seconds: float | None = None  # namespaces gone → restore completed
    problems: list[str] = field(default_factory=list)
    files: int = 0


def _request(settings: Settings, kubeconfig: Path, kind: JobKind, name: str, home: str,
             spec: dict[str, Any]) -> JobStatus:
    """A request object applied with kubectl, followed to its end and described."""
    demo_objects.apply_job(kubeconfig, kind, name, home, spec)

    async def run() -> JobStatus:
        return await demo_objects.follow(await connect(settings), kubeconfig, kind, name, home)

    status = asyncio.run(run())
    demo_objects.describe(kubeconfig, kind, name, home)
    for step in status.steps:
        console.print(f"{step.name}: {step.message or step.state.value}", soft_wrap=True)
    return status


def _verify(settings: Settings, kubeconfig: Path, backup: str, home: str) -> JobStatus:
    """The backup checked end to end — resources, every chunk of its file-level volumes, its disk
    snapshots — through kubectl; the report is kept with the backup in the vault."""
    spec = {"backup": backup, "vault": VAULT, "readData": True}
    return _request(settings, kubeconfig, JobKind.verify, f"{backup}-check", home, spec)


def _drill(settings: Settings, kubeconfig: Path, backup: str, home: str) -> JobStatus:
    """The backup restored into scratch namespaces beside the running application, checked and
    removed again (a RestoreDrill object); the report (RTO, RPO) is kept with the backup."""
    spec = {"backup": backup, "vault": VAULT}
    return _request(settings, kubeconfig, JobKind.drill, f"{backup}-drill", home, spec)


def _disaster(
    settings: Settings, kube: Kube, api: ApiClient, backup: str, manifest: dict[str, Any], kubeconfig: Path
) -> Disaster:
    """Delete the application's namespaces (everything in them goes: pods, PVCs, the volumes of
    Delete classes), wait until they are gone, restore the backup under the same names, check the
    files of every volume, disk and NAS alike."""
    result = Disaster(namespaces=list(manifest["namespaces"]))
    result.files = sum(len(v["files"]) for v in manifest["volumes"])
    names = ", ".join(result.namespaces)
    asked = datetime.now(UTC)
    paths = [f"/api/v1/namespaces/{ns}" for ns in result.namespaces]
    for path in paths:
        kube.delete(path)
    console.print(f"kubectl delete namespace {' '.join(result.namespaces)}")
    try:
        wait_gone(kube, paths, GONE_TIMEOUT)
    except TimeoutError as exc:
        result.problems = [str(exc)]
        console.print(f"[red]disaster: {exc}[/red]")
        return result
    gone = datetime.now(UTC)
    result.gone_after = (gone - asked).total_seconds()
    console.print(f"namespaces {names} deleted: gone after {result.gone_after:.0f} s (404)")
    # Under the same names. The namespaces' Services are gone, so their node ports are free: the
    # application comes back with every port it had.
    spec = RestoreSpec(
        name=f"restore-{backup}-in-place", backup=backup, vault=VAULT, preserve_node_ports=True
    )
    result.restored = status = asyncio.run(
        _restore(settings, spec, f"demo restore of {backup} after its namespaces were deleted",
                 kubeconfig=kubeconfig)
    )
    if status.completed_at is not None:
        completed = status.completed_at
        if completed.tzinfo is None:
            completed = completed.replace(tzinfo=UTC)
        result.seconds = (completed - gone).total_seconds()
    volumes = next((s for s in status.steps if s.name == "restore volumes"), None)
    console.print(f"\nrestore volumes: {volumes.message if volumes else '-'}", soft_wrap=True)
    matched = 0
    if status.phase.value in ("Completed", "PartiallyFailed"):
        result.problems = verify_volume_files(api, manifest, timeout=120)
        matched = files_matching(manifest, result.problems)
    else:
        result.problems = [f"restore {status.phase.value}: no file checked"]
    for problem in result.problems:
        console.print(f"[red]disaster: {problem}[/red]")
    after = f"{result.seconds:.0f} s after the deletion" if result.seconds is not None else "(no end time)"
    console.print(
        f"disaster: namespaces {names} deleted; restore {status.phase.value} {after}; "
        f"{matched} of {result.files} files match their digests",
        soft_wrap=True,
    )
    return result


async def _restore_elsewhere(
    settings: Settings,
    state: Path,
    backup: str,
    classes: dict[str, str],
    manifest: dict[str, Any],
    with_ecs: bool,
) -> tuple[JobStatus, list[str]]:
    """Restore into a new cluster of another region (as after losing the first) and check the files."""
    client = await connect(settings)
    ecs = ecs_process.up(state) if with_ecs else None
    async with second_cluster(
        client,
        vault_name=VAULT,
        vault_url=f"file://{state / 'vault'}",
        snapshot_store=devenv.snapshot_store(state),
        ecs=ecs,
        product_namespace=settings.product_namespace,
    ) as other:
        console.print(
            f"cluster {other.settings.cluster_id} in region {REGION_B}: workers on "
            f"{other.settings.task_queue_prefix}-*"
        )
        name = f"restore-{backup}-{other.settings.cluster_id}"
        spec = RestoreSpec(name=name, backup=backup, vault=VAULT, storage_class_mapping=classes)
        await jobctl.start_job(
            client,
            other.settings,
            "restore",
            name,
            RestoreWorkflow.run,
            spec,
            vault=VAULT,
            summary=f"demo restore of {backup} into cluster {other.settings.cluster_id}",
        )
        status = await jobctl.wait_job(client, "restore", name)
        problems: list[str] = []
        if status.phase.value in ("Completed", "PartiallyFailed"):
            problems = await asyncio.to_thread(verify_volume_files, other.api_client(), manifest, 120)
        return status, problems


async def _delete(settings: Settings, backup: str, kubeconfig: Path) -> JobStatus:
    """``kubectl delete applicationbackup``: the controller asks for the data's deletion with the
    DeleteRequest ``<backup>-dbr`` and lets the object go once it completed."""
    home = settings.product_namespace
    console.print(f"$ kubectl -n {home} delete applicationbackup {backup}", markup=False)
    await asyncio.to_thread(
        demo_objects.run_kubectl, kubeconfig, "-n", home, "delete", "applicationbackup", backup,
        "--wait=false",
    )
    client = await connect(settings)
    return await demo_objects.follow(client, kubeconfig, JobKind.delete, f"{backup}-dbr", home)


def demo(
    keep: Annotated[bool, typer.Option(help="Leave the environment running afterwards")] = True,
    temporal_port: Annotated[int, typer.Option(help="Temporal frontend port")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port")] = 8233,
) -> None:
    """Run the demo: environment up, reset and seed the sample app, backup, convert NAS → disk,
    restore into mapped namespaces and into a new cluster, delete the namespaces and restore them,
    verify every file each time, delete the backup."""
    state = state_dir()
    console.rule("1. local environment")
    env = devenv.up(state, temporal_port=temporal_port, ui_port=ui_port)
    assert env.kubeconfig is not None
    os.environ["BACKUPCENTER_TEMPORAL_ADDRESS"] = env.temporal.address
    os.environ["KUBECONFIG"] = str(env.kubeconfig)
    console.print(f"Temporal {env.temporal.address}, Web UI {env.temporal.ui_url}")
    console.print(f"Kubernetes: KUBECONFIG={env.kubeconfig}; workers: {', '.join(env.workers)}")
    if env.ecs_endpoint:
        console.print(f"ECS (local test double): {env.ecs_endpoint}; disk snapshots are ECS snapshots")

    console.rule("2. sample application")
    api = new_client_from_config(str(env.kubeconfig))
    kube = Kube(api)
    _reset(kube, api)
    manifest = seed_sample_app(api)
    console.print(
        f"namespaces {', '.join(manifest['namespaces'])}: {len(manifest['objects'])} objects, "
        f"{len(manifest['volumes'])} volumes with known files"
    )

    console.rule("3. vault")
    vaults = vault_manager()
    vault_dir = state / "vault"
    vault_dir.mkdir(parents=True, exist_ok=True)
    entry = vaults.create({"name": VAULT, "url": f"file://{vault_dir}"})
    console.print(f"vault {VAULT}: {entry.spec.url} ({vaults.check(VAULT).phase.value})")

    console.rule("4. backup, through kubectl: an ApplicationBackup object")
    excluded = _exclude_one_nas_node(kube, manifest)
    name = f"demo-{datetime.now(UTC):%Y%m%d%H%M%S}"
    spec = BackupSpec(name=name, vault=VAULT, include_namespaces=manifest["namespaces"])
    settings = settings_provider().current()
    home = settings.product_namespace
    kubeconfig = env.kubeconfig

    async def run_backup() -> JobStatus:
        client: Client = await connect(settings)
        return await demo_objects.follow(client, kubeconfig, JobKind.backup, name, home)

    try:
        demo_objects.apply_job(kubeconfig, JobKind.backup, name, home, object_spec(spec))
        status = asyncio.run(run_backup())
    finally:
        if excluded:
            kube.patch(f"/api/v1/nodes/{excluded}", {"metadata": {"labels": {EXCLUDED_LABEL: None}}})
    demo_objects.describe(kubeconfig, JobKind.backup, name, home)

    restored = problems = deleted = converted = elsewhere = disaster = verified = drilled = None
    elsewhere_problems: list[str] = []
    files = sum(len(v["files"]) for v in manifest["volumes"])
    if status.phase.finished and status.phase.value in ("Completed", "PartiallyFailed"):
        console.rule("4b. verify the backup without restoring it: a BackupVerification object")
        verified = _verify(settings, kubeconfig, name, home)
        console.rule("4c. restore drill: the backup restored beside the application, checked, removed")
        drilled = _drill(settings, kubeconfig, name, home)
        console.rule("5. convert the NAS volume to a disk snapshot")
        converted = asyncio.run(_convert(settings, name))
        for step in converted.steps:
            if step.name.startswith("convert "):
                console.print(f"{step.name}: {step.message or step.state.value}", soft_wrap=True)
        # Restored from the converted snapshot as a disk volume; without a conversion, as NAS files.
        classes = {NAS_CLASS: DISK_CLASS} if converted.phase.value == "Completed" else {}
        console.rule("6. restore into mapped namespaces")
        mapping = {ns: f"{ns}{RESTORED_SUFFIX}" for ns in manifest["namespaces"]}
        restored = _restore_mapped(settings, name, mapping, classes)
        volumes = next((s for s in restored.steps if s.name == "restore volumes"), None)
        console.print(f"\nrestore volumes: {volumes.message if volumes else '-'}", soft_wrap=True)
        for issue in restored.item_errors:
            console.print(f"{issue.item}: {issue.message}", soft_wrap=True)
        taken = [i.item for i in restored.item_errors if i.code == "NodePortTaken"]
        if taken:
            console.print(
                f"expected beside the running original: {', '.join(taken)} keeps its explicit node "
                "port, which the original still holds (the new cluster and the restore after the "
                "namespaces are deleted get it back)",
                soft_wrap=True,
            )
        if restored.phase.value in ("Completed", "PartiallyFailed"):
            console.rule("7. verify every restored file")
            moved = {
                **manifest,
                "volumes": [{**v, "namespace": mapping[v["namespace"]]} for v in manifest["volumes"]],
            }
            problems = verify_volume_files(api, moved, timeout=120)
            for problem in problems:
                console.print(f"[red]{problem}[/red]")
            console.print(f"{files_matching(moved, problems)} of {files} files match their digests")
            # Before the disaster: this restore, like the mapped one, uses the conversion's snapshot.
            console.rule(f"8. restore into a new cluster in region {REGION_B}")
            elsewhere, elsewhere_problems = asyncio.run(
                _restore_elsewhere(settings, state, name, classes, manifest, bool(env.ecs_endpoint))
            )
            copy = next((s for s in elsewhere.steps if s.name.startswith("copy snapshots")), None)
            if copy is not None:
                console.print(f"{copy.name}: {copy.message or copy.state.value}", soft_wrap=True)
            for problem in elsewhere_problems:
                console.print(f"[red]second cluster: {problem}[/red]")
            console.print(
                f"second cluster: {files_matching(manifest, elsewhere_problems)} of {files} "
                "files match their digests"
            )
        console.rule("9. disaster: delete the namespaces, restore them from the backup")
        disaster = _disaster(settings, kube, api, name, manifest, kubeconfig)
        console.rule("10. delete the backup (and its conversion)")
        deleted = asyncio.run(_delete(settings, name, kubeconfig))

    console.print()
    console.rule("summary")
    table = Table("what", "result")
    table.add_row("backup", f"{name}: {status.phase.value}")
    for key, value in status.summary.items():
        table.add_row(f"  {key}", str(value))
    for step in status.steps:
        if step.name.startswith("volume ") or step.name == "wait snapshots ready":
            table.add_row(f"  {step.name}", f"{step.state.value} {step.message or ''}")
    if excluded:
        table.add_row("node policy", f"{excluded} labelled {EXCLUDED_LABEL}=true during the backup")
    if converted is not None:
        table.add_row("conversion", f"convert-{name}: {converted.phase.value}")
        for step in converted.steps:
            if step.name.startswith("convert "):
                table.add_row(f"  {step.name}", f"{step.state.value} {step.message or ''}")
    if verified is not None:
        table.add_row("verify backup", f"{verified.name}: {verified.phase.value}")
        for key in ("findings", "checked_chunks", "checked_bytes_read", "checked_disk_snapshots", "report"):
            if key in verified.summary:
                table.add_row(f"  {key.removeprefix('checked_')}", str(verified.summary[key]))
    if drilled is not None:
        table.add_row("restore drill", f"{drilled.name}: {drilled.phase.value}")
        for key in ("scratch", "rto_seconds", "rpo_seconds", "differences", "report"):
            if key in drilled.summary:
                table.add_row(f"  {key}", str(drilled.summary[key]))
    if restored is not None:
        table.add_row("restore", f"restore-{name}: {restored.phase.value}")
        for key, value in restored.summary.items():
            table.add_row(f"  {key}", str(value))

    if problems is not None:
        table.add_row("volume files", "all match" if not problems else f"{len(problems)} problem(s)")
    if elsewhere is not None:
        table.add_row(f"restore in region {REGION_B}", f"{elsewhere.name}: {elsewhere.phase.value}")
        for key in ("created", "failed", "ecs_copies"):
            if key in elsewhere.summary:
                table.add_row(f"  {key}", str(elsewhere.summary[key]))
        table.add_row(
            "  volume files",
            "all match" if not elsewhere_problems else f"{len(elsewhere_problems)} problem(s)",
        )
    if disaster is not None and disaster.restored is None:
        table.add_row("disaster restore", f"not started: {'; '.join(disaster.problems)}")
    if disaster is not None and disaster.restored is not None:
        table.add_row("disaster restore", f"{disaster.restored.name}: {disaster.restored.phase.value}")
        table.add_row(
            "  namespaces deleted",
            f"{', '.join(disaster.namespaces)} (gone after {disaster.gone_after:.0f} s)",
        )
        table.add_row(
            "  deleted → restore completed",
            f"{disaster.seconds:.1f} s" if disaster.seconds is not None else "-",
        )
        for key in ("created", "failed"):
            if key in disaster.restored.summary:
                table.add_row(f"  {key}", str(disaster.restored.summary[key]))
        table.add_row(
            "  volume files",
            "all match" if not disaster.problems else f"{len(disaster.problems)} problem(s)",
        )
    if deleted is not None:
        table.add_row("delete backup", deleted.phase.value)
        if "ecs_snapshots" in deleted.summary:
            table.add_row("  ecs_snapshots", str(deleted.summary["ecs_snapshots"]))
    if env.ecs_endpoint:
        table.add_row("ECS endpoint", f"{env.ecs_endpoint} (local test double of the ECS API)")
    table.add_row("vault", f"{VAULT} → {vault_dir}")
    table.add_row("Web UI", f"{env.temporal.ui_url}/namespaces/{settings.temporal_namespace}/workflows")
    table.add_row("stuck jobs", f"query BackupPhase = 'WaitingForOperator' in {env.temporal.ui_url}")
    console.print(table)
    after = disaster.restored if disaster else None
    jobs = (status, verified, drilled, converted, restored, elsewhere, after, deleted)
    failed = [j for j in jobs if j is not None and j.phase.value not in ("Completed", "PartiallyFailed")]
    if not keep:
        devenv.down(state)
        console.print("environment stopped (its data stays in the state directory for the next run)")
    else:
        console.print("environment left running: `backupctl dev status`, `backupctl dev down`")
    bad_files = problems or elsewhere_problems or (disaster.problems if disaster else None)
    raise typer.Exit(1 if failed or bad_files else jobctl.exit_code(status))
