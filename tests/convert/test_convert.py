"""Storage-class conversion end to end on the local cluster: NAS files become a disk snapshot, a
restore mapping NAS → disk restores from it, a delete request resets it; bind timeouts, cancel and
bad target classes leave nothing behind."""

from __future__ import annotations

import re
from typing import Any

import pytest

from backupctl import jobctl
from kube.convert import CONVERT_LABEL, TEMPORARY_LABEL
from kube.volumes import SNAPSHOT_API
from localdev.kube.agent import csi_mount_path
from schemas.convert import ConvertState
from schemas.specs import ConvertSpec
from schemas.status import JobPhase, JobStatus
from tests.localcluster.helpers import create, get, owned_contents, pod, pvc, pvc_path, running_pod, wait_for
from tests.product_fixtures import Product
from tests.restore.helpers import backup, delete, finished, restore, unique, wait_phase
from vault import conversions
from workflows.convert import ConvertWorkflow

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]

NAS = "alibabacloud-cnfs-nas"
DISK = "alicloud-disk-topology-alltype"
FILES = {"index.html": b"<h1>shop</h1>\n", "assets/app.js": b"console.log(1)\n" * 500, "empty/.keep": b""}


async def start(product: Product, backup_name: str, *, name: str | None = None, **fields: Any) -> str:
    name = name or unique("c")
    spec = ConvertSpec(name=name, backup=backup_name, vault=product.vault, **fields)
    await jobctl.start_job(
        product.client,
        product.settings,
        "convert",
        name,
        ConvertWorkflow.run,
        spec,
        vault=spec.vault,
        summary=f"test conversion {name}",
    )
    return name


async def nas_backup(product: Product, kube_agent: Any, ns: str) -> str:
    """A pod writing into a shared NAS volume, backed up (its files at file level)."""
    kube = product.kube
    create(kube, ns, pvc("shared", NAS, modes=("ReadWriteMany",)))
    create(kube, ns, pod("web", {"data": "shared"}))
    running = wait_for(lambda: running_pod(kube, ns, "web"), "pod web Running")
    volume = wait_for(lambda: get(kube, pvc_path(ns, "shared"))["spec"].get("volumeName"), "PVC bound")
    mount = csi_mount_path(
        kube_agent.kubelet_root(running["spec"]["nodeName"]), running["metadata"]["uid"], volume
    )
    for rel, data in FILES.items():
        (mount / rel).parent.mkdir(parents=True, exist_ok=True)
        (mount / rel).write_bytes(data)
    return await backup(product, ns)


def temporaries(product: Product, name: str) -> list[str]:
    selector = f"{TEMPORARY_LABEL}={name}"
    return [
        o["metadata"]["name"]
        for path in ("/api/v1/pods", "/api/v1/persistentvolumeclaims")
        for o in product.kube.list(path, labelSelector=selector)[0]
    ]


def snapshots_of(product: Product, name: str) -> list[dict[str, Any]]:
    """The conversion's snapshots: contents it took over (its VolumeSnapshots are removed once ready)."""
    selector = f"{CONVERT_LABEL}={name}"
    return owned_contents(product.kube, selector)


def record(product: Product, name: str) -> Any:
    return conversions.get_conversion(product.ctx.vaults().store(product.vault), name)


async def test_nas_volume_converted_to_disk_then_restored_from_the_snapshot(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    source, kube = kube_namespace, product.kube
    backup_name = await nas_backup(product, kube_agent, source)
    name = await start(
        product, backup_name, storage_class_mapping={NAS: DISK}, convert_to_access_modes=["ReadWriteOnce"]
    )
    status = await finished(product, "convert", name, 180)
    assert status.phase is JobPhase.completed, (status.error, status.item_errors)
    step = status.step(f"convert {source}/shared")
    assert step.message and f"{NAS} → {DISK}: snapshot s-" in step.message
    saved = record(product, name)
    assert saved.state is ConvertState.committed and [v.source for v in saved.volumes] == [f"{source}/shared"]
    converted = saved.volumes[0]
    assert converted.driver == "diskplugin.csi.alibabacloud.com" and converted.access_modes == [
        "ReadWriteOnce"
    ]
    assert re.fullmatch(rf"{source}/shared-for-convert\d{{12}}", converted.snapshot)
    [snap] = snapshots_of(product, name)
    assert snap["status"]["readyToUse"] is True and snap["spec"]["deletionPolicy"] == "Retain"
    assert converted.owned and converted.content == snap["metadata"]["name"]
    # Owned by the conversion, not the namespace: no VolumeSnapshot is left there.
    assert kube.list(f"{SNAPSHOT_API}/namespaces/{source}/volumesnapshots")[0] == []
    assert temporaries(product, name) == []  # temporary PVC and pod are gone

    target = f"{source}-c"
    try:
        restored = await restore(
            product, backup_name, namespace_mapping={source: target}, storage_class_mapping={NAS: DISK}
        )
        assert restored.phase is JobPhase.completed, (restored.error, restored.item_errors)
        message = restored.step("restore volumes").message or ""
        assert "1 PVCs from snapshots (1 converted), 0 filled by node workers" in message, message
        claim = get(kube, pvc_path(target, "shared"))
        assert claim["spec"]["storageClassName"] == DISK and claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert claim["spec"]["dataSource"]["kind"] == "VolumeSnapshot"
        running = wait_for(lambda: running_pod(kube, target, "web"), "restored pod web Running")
        path = csi_mount_path(
            kube_agent.kubelet_root(running["spec"]["nodeName"]),
            running["metadata"]["uid"],
            get(kube, pvc_path(target, "shared"))["spec"]["volumeName"],
        )
        for rel, data in FILES.items():
            assert (path / rel).read_bytes() == data, rel
    finally:
        kube.delete(f"/api/v1/namespaces/{target}")

    # A delete request of type Convert resets it: snapshot and record gone, the name runs again.
    deleted = await delete(product, "convert", name)
    assert deleted.phase is JobPhase.completed, deleted.error
    assert wait_for(lambda: not snapshots_of(product, name), "converted snapshot deleted")
    assert record(product, name) is None
    await start(
        product,
        backup_name,
        name=name,
        storage_class_mapping={NAS: DISK},
        convert_to_access_modes=["ReadWriteOnce"],
    )
    again = await finished(product, "convert", name, 180)
    assert again.phase is JobPhase.completed, again.error
    assert (await delete(product, "backup", backup_name)).phase is JobPhase.completed
    # Deleting the backup takes its conversions along: snapshots and records.
    assert wait_for(lambda: not snapshots_of(product, name), "snapshot deleted with the backup")
    assert record(product, name) is None


async def test_bind_timeout_names_the_tmp_pvc_and_cancel_leaves_nothing(
    product: Product, kube_agent: Any, kube_namespace: str
) -> None:
    backup_name = await nas_backup(product, kube_agent, kube_namespace)
    original = product.settings_path.read_text()
    kube_agent.faults.never_bind(DISK)
    try:
        product.settings_path.write_text(original + "pvc_bind_timeout: 3s\n")
        name = await start(
            product, backup_name, storage_class_mapping={NAS: DISK}, convert_to_access_modes=["ReadWriteOnce"]
        )
        waiting = await wait_phase(product, "convert", name, JobPhase.waiting_for_operator, timeout=120)
        assert waiting.error is not None
        assert re.fullmatch(
            rf"RestoreError: create cluster resources timeout: wait for created tmp pvc {kube_namespace}/"
            r"shared-for-convert\d{12} for convertion bound time out",
            waiting.error.short(),
        ), waiting.error
        assert temporaries(product, name)  # still there while the operator decides
        await jobctl.signal_job(product.client, "convert", name, "cancel")
        status = await finished(product, "convert", name, 60)
        assert status.phase is JobPhase.canceled
        assert temporaries(product, name) == [] and snapshots_of(product, name) == []
        assert record(product, name).state is ConvertState.failed
    finally:
        kube_agent.faults.never_bind(DISK, enabled=False)
        product.settings_path.write_text(original)
    assert (await delete(product, "convert", name)).phase is JobPhase.completed
    assert record(product, name) is None


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("no-such-class", "ConvertError: storageclass no-such-class not exists"),
        (
            "unsupported-local",
            "ConvertError: only support convert to storageclass with CSI diskplugin or "
            "nasplugin provisioner: unsupported-local uses rancher.io/local-path",
        ),
        (
            "alicloud-disk-immediate",
            "ConvertError: current cluster is multi-zoned: storageclass "
            "alicloud-disk-immediate uses volumeBindingMode Immediate",
        ),
    ],
)
async def test_bad_target_classes_are_refused_before_anything_is_created(
    product: Product, kube_namespace: str, target: str, expected: str
) -> None:
    create(product.kube, kube_namespace, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    backup_name = await backup(product, kube_namespace)
    name = await start(product, backup_name, storage_class_mapping={NAS: target})
    waiting: JobStatus = await wait_phase(product, "convert", name, JobPhase.waiting_for_operator)
    assert waiting.error is not None and waiting.error.short() == expected
    assert waiting.current_step == "validate"
    await jobctl.signal_job(product.client, "convert", name, "cancel")
    assert (await finished(product, "convert", name, 60)).phase is JobPhase.canceled
    assert record(product, name) is None and temporaries(product, name) == []
