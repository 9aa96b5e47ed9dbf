"""``backupctl demo``: the product's main job end to end on the embedded defaults.

Starts the local environment (Temporal dev server, local Kubernetes, workers), seeds the sample
application, creates the default file:// vault, backs the application up (resources, disk
snapshots, NAS files through a node worker, with one node excluded by policy), converts the NAS
volume to a disk snapshot, restores it into mapped namespaces (the NAS volume as a disk volume from
the converted snapshot), checks every restored file against its digest, restores it again into a
new cluster of another region (snapshots copied across regions through the ECS API of the local
endpoint) and checks the files there, deletes the backup (its conversion goes with it), and prints
what happened and where to look in the Web UI.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from kubernetes.config import new_client_from_config
from rich.table import Table
from temporalio.client import Client

from backupctl import jobctl
from backupctl.console import console, state_dir
from backupctl.vault_cmd import manager as vault_manager
from kube.rest import Kube
from localdev import devenv, ecs_process
from localdev.kube.seed import seed_sample_app, verify_volume_files
from localdev.second_cluster import REGION as REGION_B
from localdev.second_cluster import second_cluster
from schemas.settings import Settings, SettingsProvider
from schemas.specs import BackupSpec, ConvertSpec, DeleteSpec, JobKind, RestoreSpec
from schemas.status import JobStatus
from workers.client import connect
from workflows.backup import BackupWorkflow
from workflows.convert import ConvertWorkflow
from workflows.delete import DeleteWorkflow
from workflows.restore import RestoreWorkflow

VAULT = "default"
NAS_CLASS = "alibabacloud-cnfs-nas"
# WaitForFirstConsumer: the local cluster has two zones, where an Immediate disk class is refused.
DISK_CLASS = "alicloud-disk-topology-alltype"


EXCLUDED_LABEL = "backupcenter.io/agent-excluded"


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
    settings: Settings, backup: str, mapping: dict[str, str], classes: dict[str, str]
) -> JobStatus:
    client = await connect(settings)
    name = f"restore-{backup}"
    # Same cluster: the originals still hold their node ports, so the copies get new ones.
    spec = RestoreSpec(
        name=name,
        backup=backup,
        vault=VAULT,
        namespace_mapping=mapping,
        storage_class_mapping=classes,
        preserve_node_ports=False,
    )
    await jobctl.start_job(
        client,
        settings,
        "restore",
        name,
        RestoreWorkflow.run,
        spec,
        vault=VAULT,
        summary=f"demo restore of {backup} into {', '.join(mapping.values())}",
    )
    return await jobctl.wait_job(client, "restore", name)


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


async def _delete(settings: Settings, backup: str) -> JobStatus:
    client = await connect(settings)
    spec = DeleteSpec(name=f"backup-{backup}", target_kind=JobKind.backup, target=backup, vault=VAULT)
    await jobctl.start_job(
        client,
        settings,
        "delete",
        spec.name,
        DeleteWorkflow.run,
        spec,
        vault=VAULT,
        summary=f"demo delete of backup {backup}",
    )
    return await jobctl.wait_job(client, "delete", spec.name)


def demo(
    keep: Annotated[bool, typer.Option(help="Leave the environment running afterwards")] = True,
    temporal_port: Annotated[int, typer.Option(help="Temporal frontend port")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port")] = 8233,
) -> None:
    """Run the demo: environment up, sample app, backup, convert NAS → disk, restore into mapped
    namespaces, verify, delete."""
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

    manifest = seed_sample_app(new_client_from_config(str(env.kubeconfig)))
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

    console.rule("4. backup")
    kube = Kube(new_client_from_config(str(env.kubeconfig)))
    excluded = _exclude_one_nas_node(kube, manifest)
    name = f"demo-{datetime.now(UTC):%Y%m%d%H%M%S}"
    spec = BackupSpec(name=name, vault=VAULT, include_namespaces=manifest["namespaces"])
    settings = SettingsProvider.from_environment().current()

    async def run_backup() -> JobStatus:
        client: Client = await connect(settings)
        await jobctl.start_job(
            client,
            settings,
            "backup",
            name,
            BackupWorkflow.run,
            spec,
            vault=VAULT,
            summary=f"demo backup of {', '.join(spec.include_namespaces)}",
        )
        return await jobctl.wait_job(client, "backup", name)

    try:
        status = asyncio.run(run_backup())
    finally:
        if excluded:
            kube.patch(f"/api/v1/nodes/{excluded}", {"metadata": {"labels": {EXCLUDED_LABEL: None}}})

    restored = problems = deleted = converted = elsewhere = None
    elsewhere_problems: list[str] = []
    if status.phase.finished and status.phase.value in ("Completed", "PartiallyFailed"):
        console.rule("5. convert the NAS volume to a disk snapshot")
        converted = asyncio.run(_convert(settings, name))
        for step in converted.steps:
            if step.name.startswith("convert "):
                console.print(f"{step.name}: {step.message or step.state.value}", soft_wrap=True)
        # Restored from the converted snapshot as a disk volume; without a conversion, as NAS files.
        classes = {NAS_CLASS: DISK_CLASS} if converted.phase.value == "Completed" else {}
        console.rule("6. restore into mapped namespaces")
        mapping = {ns: f"{ns}-restored" for ns in manifest["namespaces"]}
        restored = asyncio.run(_restore(settings, name, mapping, classes))
        volumes = next((s for s in restored.steps if s.name == "restore volumes"), None)
        console.print(f"\nrestore volumes: {volumes.message if volumes else '-'}", soft_wrap=True)
        if restored.phase.value in ("Completed", "PartiallyFailed"):
            console.rule("7. verify every restored file")
            moved = {
                **manifest,
                "volumes": [{**v, "namespace": mapping[v["namespace"]]} for v in manifest["volumes"]],
            }
            problems = verify_volume_files(new_client_from_config(str(env.kubeconfig)), moved, timeout=120)
            for problem in problems:
                console.print(f"[red]{problem}[/red]")
            files = sum(len(v["files"]) for v in moved["volumes"])
            console.print(
                f"{files - len(problems)} of {files} files match their digests"
                if problems is not None
                else ""
            )
            console.rule(f"8. restore into a new cluster in region {REGION_B}")
            elsewhere, elsewhere_problems = asyncio.run(
                _restore_elsewhere(settings, state, name, classes, manifest, bool(env.ecs_endpoint))
            )
            copy = next((s for s in elsewhere.steps if s.name.startswith("copy snapshots")), None)
            if copy is not None:
                console.print(f"{copy.name}: {copy.message or copy.state.value}", soft_wrap=True)
            for problem in elsewhere_problems:
                console.print(f"[red]second cluster: {problem}[/red]")
            files = sum(len(v["files"]) for v in manifest["volumes"])
            console.print(
                f"second cluster: {files - len(elsewhere_problems)} of {files} files match their digests"
            )
        console.rule("9. delete the backup (and its conversion)")
        deleted = asyncio.run(_delete(settings, name))

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
    failed = [
        j
        for j in (status, converted, restored, elsewhere, deleted)
        if j is not None and j.phase.value not in ("Completed", "PartiallyFailed")
    ]
    if not keep:
        devenv.down(state)
        console.print("environment stopped")
    else:
        console.print("environment left running: `backupctl dev status`, `backupctl dev down`")
    raise typer.Exit(1 if failed or problems or elsewhere_problems else jobctl.exit_code(status))
