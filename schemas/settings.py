"""Product settings (requirements.md §5, our names) and how they are loaded and re-read.

Settings come from, in increasing precedence: defaults, a YAML file or a ConfigMap
(key ``settings.yaml``), and ``BACKUPCENTER_<FIELD>`` environment variables.  Unknown keys and
wrong types are refused with an error naming the field.  Workers re-read the source when it
changes (:class:`SettingsProvider`), so no restart is needed to apply a new value — unlike the
reference product, whose controller must restart.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.common import Duration, K8sName, describe_validation_error

log = logging.getLogger(__name__)

ENV_PREFIX = "BACKUPCENTER_"
CONFIGMAP_KEY = "settings.yaml"


class NodeSchedulePolicy(StrEnum):
    exclude = "exclude"  # all nodes but those labelled agent-excluded
    include = "include"  # only nodes labelled agent-included
    prefer = "prefer"  # included first, then unlabelled, then excluded


class VaultRegistryKind(StrEnum):
    file = "file"  # JSON files under the state directory (one machine: the local environment)
    kubernetes = "kubernetes"  # ConfigMaps in the product namespace (shared by every replica)


class Settings(BaseModel):
    """Every tunable of the product.  Defaults are the reference product's."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # Concurrency (reference: backup_max_worker_num and friends).
    backup_max_workers: int = Field(15, ge=1, le=1000, description="Concurrent backup jobs")
    restore_max_workers: int = Field(5, ge=1, le=1000, description="Concurrent restore jobs")
    delete_max_workers: int = Field(30, ge=1, le=1000, description="Concurrent delete requests")
    schedule_max_workers: int = Field(20, ge=1, le=1000, description="Concurrent scheduled backups")
    convert_max_workers: int = Field(15, ge=1, le=1000, description="Concurrent conversion jobs")
    verify_max_workers: int = Field(5, ge=1, le=1000, description="Concurrent backup verifications")
    drill_max_workers: int = Field(2, ge=1, le=1000, description="Concurrent restore drills")
    snapshot_batch_size: int = Field(20, ge=1, le=500, description="VolumeSnapshots created at a time")
    export_page_size: int = Field(500, ge=10, le=5000, description="Objects per list request when exporting")
    restore_apply_parallelism: int = Field(
        16, ge=1, le=256, description="Create requests in flight per restore"
    )

    node_schedule_policy: NodeSchedulePolicy = NodeSchedulePolicy.exclude
    agent_excluded_label: str = "backupcenter.io/agent-excluded"
    agent_included_label: str = "backupcenter.io/agent-included"
    enable_ecs_snapshot: bool = False
    # Alibaba Cloud, for ECS disk snapshots (used when enable_ecs_snapshot is on).  Empty region: the
    # nodes' topology.kubernetes.io/region label.  Empty endpoint: ALIBABA_CLOUD_ECS_ENDPOINT, else the
    # SDK's public endpoint of the region (the local environment points it at localdev.ecs_server).
    # Empty credentials Secret (in product_namespace; keys AccessKeyId, AccessKeySecret, optional
    # SecurityToken): the ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET/_SECURITY_TOKEN environment.
    region: str = Field("", pattern=r"^([a-z0-9]+(-[a-z0-9]+)+)?$", description="e.g. cn-hangzhou")
    ecs_endpoint: str = ""
    cloud_credentials_secret: str = ""
    ecs_copy_parallelism: int = Field(5, ge=1, le=100, description="Snapshot copies in flight per restore")

    # Timeouts.
    export_timeout_minutes: int = Field(60, ge=1, le=7 * 24 * 60, description="velero_timeout_minutes")
    snapshot_ready_timeout: Duration = timedelta(minutes=10)
    # A cross-region copy of a large disk snapshot takes hours on ECS.
    ecs_copy_timeout: Duration = timedelta(hours=6)
    pvc_bind_timeout: Duration = timedelta(minutes=5)
    node_pickup_timeout: Duration = timedelta(minutes=2)
    operator_wait_timeout: Duration = timedelta(hours=24)
    vault_check_interval: Duration = timedelta(minutes=5)
    retention_sweep_interval: Duration = timedelta(hours=1)
    # Unreferenced volume-data packs younger than this are kept when backups are deleted, so a
    # backup running at the same time (or resumed after a crash) can still use them.
    pack_gc_grace: Duration = timedelta(hours=48)
    # A worker that stops heartbeating this long is presumed dead; its activity moves elsewhere.
    # Every activity heartbeats (workers/liveness.py), so this is what a killed worker costs.
    heartbeat_timeout: Duration = timedelta(seconds=5)

    # Where things are.
    kubelet_root_path: str = "/var/lib/kubelet"
    product_namespace: K8sName = "backup-center"
    vault_registry: VaultRegistryKind = VaultRegistryKind.file
    cluster_id: K8sName = "local"
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue_prefix: K8sName = "backup-center"


class SettingsError(ValueError):
    """A one-line error naming the field and the value at fault."""


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key in _NON_SETTING_ENV:
            continue
        field = key[len(ENV_PREFIX) :].lower()
        # YAML scalars give "15" -> 15 and "true" -> True, as in the file.
        values[field] = yaml.safe_load(raw) if raw else raw
    return values


# Environment variables with our prefix that select sources rather than set a value.
_NON_SETTING_ENV = {
    "BACKUPCENTER_SETTINGS",
    "BACKUPCENTER_STATE_DIR",
    "BACKUPCENTER_TEST_BACKEND",
    "BACKUPCENTER_TEST_KUBECONFIG",
    "BACKUPCENTER_KUBECONFIG",
    "BACKUPCENTER_VAULT_KEY",
    "BACKUPCENTER_LOG_LEVEL",
}


def parse_settings(
    document: Mapping[str, Any] | None,
    *,
    source: str = "settings",
    environ: Mapping[str, str] | None = None,
) -> Settings:
    values: dict[str, Any] = dict(document or {})
    env_values = _env_values(os.environ if environ is None else environ)
    try:
        if env_values:
            # Validate env overrides on their own first so their error names the variable.
            unknown = set(env_values) - set(Settings.model_fields)
            if unknown:
                name = sorted(unknown)[0]
                raise SettingsError(f"environment: unknown setting {ENV_PREFIX}{name.upper()}")
        return Settings.model_validate({**values, **env_values})
    except ValidationError as err:
        raise SettingsError(describe_validation_error(source, err, what="setting")) from None


def parse_settings_yaml(text: str, *, source: str, environ: Mapping[str, str] | None = None) -> Settings:
    try:
        document = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise SettingsError(f"{source}:{where} is not valid YAML") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise SettingsError(f"{source}: must be a mapping of setting names to values")
    return parse_settings(document, source=source, environ=environ)


def load_settings_file(path: Path, *, environ: Mapping[str, str] | None = None) -> Settings:
    try:
        text = path.read_text()
    except OSError as err:
        raise SettingsError(f"{path}: cannot read settings file: {err.strerror}") from None
    return parse_settings_yaml(text, source=str(path), environ=environ)


class SettingsProvider:
    """Returns the current settings, re-reading the source when it changed.

    ``fetch`` returns ``(version, text)``; the text is parsed only when the version changes
    (a file's mtime and size, a ConfigMap's resourceVersion).  A source that turns invalid
    keeps the last good settings and logs why, so a typo cannot stop running workers.
    """

    def __init__(
        self,
        fetch: Callable[[], tuple[str, str]] | None,
        *,
        source: str,
        min_interval: float = 2.0,
    ) -> None:
        self._fetch = fetch
        self._source = source
        self._min_interval = min_interval
        self._lock = threading.Lock()
        self._version: str | None = None
        self._checked_at = 0.0
        self._settings = parse_settings({}, source=source)
        self.last_error: str | None = None
        if fetch is not None:
            version, text = fetch()
            # The first load must succeed: a worker must not start on a broken configuration.
            self._settings = parse_settings_yaml(text, source=source)
            self._version = version

    @classmethod
    def from_file(cls, path: Path, *, min_interval: float = 2.0) -> SettingsProvider:
        def fetch() -> tuple[str, str]:
            try:
                stat = path.stat()
                return f"{stat.st_mtime_ns}:{stat.st_size}", path.read_text()
            except OSError as err:
                raise SettingsError(f"{path}: cannot read settings file: {err.strerror}") from None

        return cls(fetch, source=str(path), min_interval=min_interval)

    @classmethod
    def from_configmap(
        cls, core_api: Any, namespace: str, name: str, *, min_interval: float = 10.0
    ) -> SettingsProvider:
        def fetch() -> tuple[str, str]:
            cm = core_api.read_namespaced_config_map(name, namespace)
            return cm.metadata.resource_version, (cm.data or {}).get(CONFIGMAP_KEY, "")

        return cls(fetch, source=f"configmap {namespace}/{name}", min_interval=min_interval)

    @classmethod
    def from_environment(cls) -> SettingsProvider:
        path = os.environ.get("BACKUPCENTER_SETTINGS")
        if path:
            return cls.from_file(Path(path))
        return cls(None, source="defaults")

    def current(self) -> Settings:
        if self._fetch is None:
            return self._settings
        with self._lock:
            now = time.monotonic()
            if now - self._checked_at < self._min_interval:
                return self._settings
            self._checked_at = now
            try:
                version, text = self._fetch()
                if version != self._version:
                    self._settings = parse_settings_yaml(text, source=self._source)
                    self._version = version
                    self.last_error = None
                    log.info("settings reloaded from %s", self._source)
            except (SettingsError, OSError) as err:
                if str(err) != self.last_error:
                    log.error("keeping previous settings: %s", err)
                self.last_error = str(err)
            return self._settings
