"""Settings are re-read when their source changes, without restarting anything."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import CoreV1Api, V1ConfigMap, V1ObjectMeta

from schemas.settings import SettingsError, SettingsProvider


def _touch_later(path: Path, text: str, bump: int) -> None:
    path.write_text(text)
    st = path.stat()
    # Filesystems with coarse mtimes could hide a quick rewrite; move the clock forward.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def test_file_changes_apply_and_a_broken_file_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("backup_max_workers: 3\n")
    provider = SettingsProvider.from_file(path, min_interval=0)
    assert provider.current().backup_max_workers == 3

    _touch_later(path, "backup_max_workers: 9\nnode_schedule_policy: prefer\n", 1)
    assert provider.current().backup_max_workers == 9
    assert provider.current().node_schedule_policy.value == "prefer"

    _touch_later(path, "backup_max_workers: nine\n", 2)
    assert provider.current().backup_max_workers == 9
    assert provider.last_error is not None and "backup_max_workers" in provider.last_error

    _touch_later(path, "backup_max_workers: 4\n", 3)
    assert provider.current().backup_max_workers == 4
    assert provider.last_error is None


def test_a_broken_file_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("no_such_setting: 1\n")
    with pytest.raises(SettingsError, match="unknown setting 'no_such_setting'"):
        SettingsProvider.from_file(path)
    with pytest.raises(SettingsError, match="cannot read settings file"):
        SettingsProvider.from_file(tmp_path / "missing.yaml")


@pytest.mark.cluster
def test_configmap_source_reloads_on_new_resource_version(kube_cluster: Any, kube_namespace: str) -> None:
    core = CoreV1Api(kube_cluster.api_client())
    first = V1ConfigMap(
        metadata=V1ObjectMeta(name="settings"), data={"settings.yaml": "restore_max_workers: 2\n"}
    )
    core.create_namespaced_config_map(kube_namespace, first)
    provider = SettingsProvider.from_configmap(core, kube_namespace, "settings", min_interval=0)
    assert provider.current().restore_max_workers == 2
    core.patch_namespaced_config_map(
        "settings", kube_namespace, {"data": {"settings.yaml": "restore_max_workers: 8\n"}}
    )
    assert provider.current().restore_max_workers == 8
    core.patch_namespaced_config_map("settings", kube_namespace, {"data": {"settings.yaml": "nope: 1\n"}})
    assert provider.current().restore_max_workers == 8  # a broken edit keeps the last good settings
    assert provider.last_error is not None and "unknown setting 'nope'" in provider.last_error
