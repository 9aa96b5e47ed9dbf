"""Specs, settings, value types and the error catalogue: what is accepted and how refusals read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from schemas.common import check_cycle, describe_validation_error, format_duration, parse_duration
from schemas.errors import BackupCenterError, all_codes
from schemas.settings import NodeSchedulePolicy, SettingsError, parse_settings, parse_settings_yaml
from schemas.specs import BackupSpec, ConvertSpec, FileRestoreSpec, PlanSpec, RestoreSpec
from schemas.status import ItemIssue, JobPhase, JobStatus, StepStatus


def test_defaults_are_the_reference_products() -> None:
    s = parse_settings({}, environ={})
    assert (s.backup_max_workers, s.restore_max_workers, s.delete_max_workers) == (15, 5, 30)
    assert (s.schedule_max_workers, s.convert_max_workers, s.snapshot_batch_size) == (20, 15, 20)
    assert s.export_timeout_minutes == 60
    assert s.node_schedule_policy is NodeSchedulePolicy.exclude
    assert s.vault_check_interval == timedelta(minutes=5)
    assert s.kubelet_root_path == "/var/lib/kubelet"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("backup_max_worker: 3", "settings.yaml: unknown setting 'backup_max_worker'"),
        ("backup_max_workers: lots", "settings.yaml: backup_max_workers: Input should be a valid integer"),
        (
            "backup_max_workers: 0",
            "settings.yaml: backup_max_workers: Input should be greater than or equal to 1",
        ),
        ("snapshot_ready_timeout: soon", "settings.yaml: snapshot_ready_timeout: 'soon' is not a duration"),
        ("node_schedule_policy: random", "settings.yaml: node_schedule_policy: Input should be"),
        ("cluster_id: Prod_1", "settings.yaml: cluster_id: 'Prod_1' is not a valid Kubernetes name"),
        ("- a\n- b", "settings.yaml: must be a mapping"),
        ("a: [", "settings.yaml: line"),
    ],
)
def test_bad_settings_name_the_field_and_value(text: str, expected: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse_settings_yaml(text, source="settings.yaml", environ={})
    message = str(err.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_environment_overrides_file_and_unknown_env_is_refused() -> None:
    s = parse_settings_yaml(
        "backup_max_workers: 3", source="f", environ={"BACKUPCENTER_BACKUP_MAX_WORKERS": "7"}
    )
    assert s.backup_max_workers == 7
    with pytest.raises(SettingsError, match="BACKUPCENTER_BACKUP_MAX"):
        parse_settings({}, environ={"BACKUPCENTER_BACKUP_MAX": "7"})


@pytest.mark.parametrize(
    ("text", "seconds"), [("6h30m", 23400), ("90s", 90), ("2d", 172800), ("1h1m1s", 3661), (30, 30)]
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds
    assert parse_duration(format_duration(parse_duration(text))).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "6x", "h", "10 m", "-5", "0s", "1h-1m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("cycle", ["1 4 * * *", "*/15 * * * 1-5", "0 0 1,15 * *", "6h30m", "1h"])
def test_good_cycles(cycle: str) -> None:
    assert check_cycle(cycle) == cycle


@pytest.mark.parametrize(
    ("cycle", "why"),
    [
        ("1 4 * *", "not a 5-field cron"),
        ("61 4 * * *", "minute value 61 is outside 0-59"),
        ("1 25 * * *", "hour value 25"),
        ("1 4 * * mon", "day of week value 'mon' is not a number"),
        ("5 4 10-2 * *", "runs backwards"),
        ("*/0 * * * *", "step '0'"),
        ("6h30", "neither a 5-field cron expression nor an interval"),
        ("30s", "shorter than one minute"),
    ],
)
def test_bad_cycles_say_why(cycle: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_cycle(cycle)


def test_backup_spec_validation_names_the_field() -> None:
    ok = BackupSpec(name="nightly", vault="main", include_namespaces=["app"])
    assert ok.cluster_resources.value == "related" and ok.volume_data
    with pytest.raises(ValidationError) as err:
        BackupSpec(name="Nightly_1", vault="main")
    assert describe_validation_error("spec", err.value) == (
        "spec: name: 'Nightly_1' is not a valid Kubernetes name (lowercase letters, digits and '-', "
        "starting and ending with a letter or digit) (got 'Nightly_1')"
    )
    with pytest.raises(ValidationError, match="not both"):
        BackupSpec(name="b", vault="v", include_namespaces=["a"], exclude_namespaces=["b"])
    with pytest.raises(ValidationError) as err:
        BackupSpec(name="b", vault="v", colour="blue")  # type: ignore[call-arg]
    assert "unknown field 'colour'" in describe_validation_error("spec", err.value)


def test_other_specs() -> None:
    r = RestoreSpec(name="r", backup="b", vault="v", namespace_mapping={"app": "app-copy"})
    # Only explicitly set node ports are kept by default (auto-assigned ones are taken at the source).
    assert not r.preserve_node_ports and r.existing_resource_policy.value == "none"
    with pytest.raises(ValidationError, match="at least one"):
        ConvertSpec(name="c", backup="b", vault="v", storage_class_mapping={})
    plan = PlanSpec(name="p", cycle="6h30m", template={"vault": "v"})
    assert plan.template.vault == "v"
    with pytest.raises(ValidationError, match="cycle"):
        PlanSpec(name="p", cycle="every day", template={"vault": "v"})


def test_file_restore_spec() -> None:
    base = {"name": "f", "backup": "b", "vault": "v", "volume": "app/data", "paths": ["site"],
            "target_namespace": "app", "target_pvc": "data"}
    spec = FileRestoreSpec.model_validate({**base, "subdir": "/restored/today/"})
    assert spec.subdir == "restored/today" and spec.target == "app/data:restored/today"
    assert not spec.overwrite and FileRestoreSpec.model_validate(base).target == "app/data"
    for field, value, words in (
        ("subdir", "a/../../etc", "leaves the volume"),
        ("subdir", "a//b", "not normalised"),
        ("volume", "data", "not <namespace>/<pvc>"),
        ("volume", "App/data", "not <namespace>/<pvc>"),
        ("paths", [], "at least one"),
    ):
        with pytest.raises(ValidationError, match=words):
            FileRestoreSpec.model_validate({**base, field: value})


def test_error_catalogue_is_complete_and_renders() -> None:
    codes = all_codes()
    assert len(codes) >= 25
    for code in codes.values():
        assert code.causes and code.fixes, code.code
        assert code.kind.endswith("Error"), code.code
    err = BackupCenterError("VaultUnavailable", cause="bucket does not exist")
    assert str(err) == "VaultError: backup vault is unavailable: bucket does not exist"
    assert err.retryable
    info = err.info()
    assert info.code == "VaultUnavailable" and len(info.fixes) == 3
    with pytest.raises(ValueError, match="missing params"):
        BackupCenterError("SnapshotNotReady", snapshot="s")
    timeout = BackupCenterError(
        "ResourceTimeout",
        what="wait for created tmp pvc default/demo-pvc-for-convert202311151045 "
        "for convertion bound time out",
    )
    assert timeout.message.startswith("create cluster resources timeout: wait for created tmp pvc")


def test_status_bounds_item_lists_and_renders_a_step_table() -> None:
    status = JobStatus(kind="backup", name="b", steps=[StepStatus(name="export resources")])
    for i in range(JobStatus.MAX_LISTED_ISSUES + 50):
        status.add_item_error(ItemIssue(item=f"configmaps/app/cm-{i}", message="boom"))
    assert status.item_errors_total == JobStatus.MAX_LISTED_ISSUES + 50
    assert len(status.item_errors) == JobStatus.MAX_LISTED_ISSUES
    table = status.render_table()
    assert "| export resources | Pending | 0 |" in table
    assert JobPhase.partially_failed.finished and not JobPhase.waiting_for_operator.finished


def test_final_errors_end_a_job_only_where_no_operator_can_mend_them() -> None:
    from schemas.errors import BackupCenterError

    assert BackupCenterError("NotFound", kind="backup", name="b").info().final
    assert BackupCenterError("NoTargetNamespace", reason="none exists").info().final
    # A bad field is final in a job's own spec, not where a Secret or setting can still be fixed.
    missing_secret = BackupCenterError("InvalidSpec", field="credentials", reason="no OSS credentials")
    assert not missing_secret.info().final
    bad_field = BackupCenterError("InvalidSpec", field="label_selector", reason="bad").as_final()
    assert bad_field.info().final
    waits = BackupCenterError("SnapshotNotReady", snapshot="s", pvc="p", timeout="8s", reason="r")
    assert not waits.info().final
