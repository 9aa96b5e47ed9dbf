"""The product's custom resources: jobs as Kubernetes objects (``kubectl apply``, GitOps).

One source: each kind's OpenAPI schema is generated from the pydantic spec of its job (field names in
camelCase, as Kubernetes APIs spell them; the object's name is ``metadata.name``), the model
validators' CEL twins (``CEL_RULES`` in schemas/specs.py) become ``x-kubernetes-validations``, and
the status schema from :class:`ObjectStatus`.  ``deploy/crds.yaml`` is this module's output
(``python -m schemas.resources``); tests/crd/test_crd_schema.py proves the two agree, and that the API
server and pydantic judge sample objects alike.

Kinds are named as the reference product names them, so its FAQ's commands translate word for word:
``kubectl -n backup-center describe applicationbackup <name>``.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError
from pydantic.alias_generators import to_camel

from schemas.common import DNS1123_LABEL as _LABEL
from schemas.specs import (
    BackupSpec,
    ConvertSpec,
    DeleteSpec,
    DrillSpec,
    FileRestoreSpec,
    JobKind,
    PlanSpec,
    RestoreSpec,
    VerifySpec,
)
from schemas.status import JobPhase, JobStatus, StepState
from schemas.vault import VaultSpec

LABEL_PATTERN = _LABEL.pattern
GROUP = "backupcenter.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# The annotation that steers a waiting job: ``retry`` or ``skip``, optionally with a suffix
# (``retry-2``) so the same decision can be given again; the controller acknowledges each value in
# ``status.steering``.
STEER_ANNOTATION = f"{GROUP}/steer"
# Set on objects the product made for jobs started by ``backupctl`` (the CLI door).
STARTED_BY_ANNOTATION = f"{GROUP}/started-by"
# Memo of a job workflow started for an object: the object's namespace (a CLI job's object is in
# the product namespace).
OBJECT_NAMESPACE_MEMO = "object_namespace"


@dataclass(frozen=True)
class Column:
    name: str
    path: str
    type: str = "string"
    priority: int = 0


@dataclass(frozen=True)
class ResourceKind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec_model: type[BaseModel]
    job_kind: JobKind | None  # None: not a job (a vault, a plan)
    columns: tuple[Column, ...] = ()
    # Spec fields the object adds to its model's (the model's name is the object's name).
    steering_fields: dict[str, Any] = field(default_factory=dict)
    status_model: type[BaseModel] | None = None  # None: ObjectStatus, a job's
    immutable_spec: bool = False

    @property
    def singular(self) -> str:
        return self.kind.lower()


_JOB_COLUMNS = (
    Column("Phase", ".status.phase"),
    Column("Step", ".status.currentStep"),
    Column("Progress", ".status.progress"),
)
_AGE = Column("Age", ".metadata.creationTimestamp", "date")
_CANCEL = {
    "cancel": {
        "type": "boolean",
        "description": "true stops the job and removes what it made "
        "(kubectl patch … --type merge -p '{\"spec\":{\"cancel\":true}}')",
    }
}

KINDS: dict[JobKind, ResourceKind] = {
    JobKind.backup: ResourceKind(
        "ApplicationBackup",
        "applicationbackups",
        ("abk",),
        BackupSpec,
        JobKind.backup,
        (*_JOB_COLUMNS, Column("Vault", ".spec.vault"), _AGE),
        _CANCEL,
    ),
    JobKind.restore: ResourceKind(
        "ApplicationRestore",
        "applicationrestores",
        ("ark",),
        RestoreSpec,
        JobKind.restore,
        (*_JOB_COLUMNS, Column("Backup", ".spec.backup"), Column("Vault", ".spec.vault"), _AGE),
        _CANCEL,
    ),
    JobKind.convert: ResourceKind(
        "ConvertToSnapshot",
        "converttosnapshots",
        ("cts",),
        ConvertSpec,
        JobKind.convert,
        (*_JOB_COLUMNS, Column("Backup", ".spec.backup"), Column("Vault", ".spec.vault"), _AGE),
        _CANCEL,
    ),
    JobKind.delete: ResourceKind(
        "DeleteRequest",
        "deleterequests",
        ("dr",),
        DeleteSpec,
        JobKind.delete,
        (*_JOB_COLUMNS, Column("Target", ".spec.target"), Column("Of", ".spec.targetKind"), _AGE),
        {},
    ),
    JobKind.verify: ResourceKind(
        "BackupVerification",
        "backupverifications",
        ("bvf",),
        VerifySpec,
        JobKind.verify,
        (*_JOB_COLUMNS, Column("Backup", ".spec.backup"), Column("Vault", ".spec.vault"), _AGE),
        {},
    ),
    JobKind.drill: ResourceKind(
        "RestoreDrill",
        "restoredrills",
        ("rdr",),
        DrillSpec,
        JobKind.drill,
        (*_JOB_COLUMNS, Column("Backup", ".spec.backup"), Column("Vault", ".spec.vault"), _AGE),
        {},
    ),
    JobKind.files: ResourceKind(
        "FileRestore",
        "filerestores",
        ("frs",),
        FileRestoreSpec,
        JobKind.files,
        (*_JOB_COLUMNS, Column("Backup", ".spec.backup"), Column("Volume", ".spec.volume"),
         Column("Target", ".spec.targetPvc"), _AGE),
        {},
    ),
}


# --- status ---------------------------------------------------------------------------------------
class ObjectStepStatus(BaseModel):
    name: str
    state: str
    attempts: int = 0
    progress: str | None = None
    message: str | None = None


class ObjectError(BaseModel):
    code: str
    message: str
    causes: list[str] = Field(default_factory=list)
    fixes: list[str] = Field(default_factory=list)


class Condition(BaseModel):
    type: str
    status: str  # "True", "False" or "Unknown", as Kubernetes conditions say it
    reason: str
    message: str = ""
    lastTransitionTime: datetime | None = None


class Steering(BaseModel):
    """The controller's acknowledgement of the last steering annotation it acted on."""

    value: str
    action: str
    result: str
    at: datetime | None = None


class ObjectStatus(BaseModel):
    """``.status`` of a job object: what the job's workflow pushes on every step transition."""

    phase: str | None = None
    currentStep: str | None = None
    progress: str | None = None
    message: str | None = None
    workflowId: str | None = None
    observedGeneration: int | None = None
    startedAt: datetime | None = None
    completedAt: datetime | None = None
    steps: list[ObjectStepStatus] = Field(default_factory=list)
    error: ObjectError | None = None
    itemErrors: int = 0
    warnings: int = 0
    summary: dict[str, str] = Field(default_factory=dict)
    conditions: list[Condition] = Field(default_factory=list)
    steering: Steering | None = None


class LocationStatus(BaseModel):
    """``.status`` of a BackupLocation: the vault's availability, as the registry has it."""

    phase: str | None = None  # Available, Unavailable, Unknown, or Failed (not created)
    lastValidated: datetime | None = None
    lastSuccess: datetime | None = None
    message: str | None = None
    vaultId: str | None = None
    storageClass: str | None = None
    observedGeneration: int | None = None


class ScheduleStatus(BaseModel):
    """``.status`` of a BackupSchedule: its Temporal Schedule's state and last run."""

    phase: str | None = None  # Active, Paused or Failed
    message: str | None = None
    cycle: str | None = None
    lastRun: str | None = None
    lastRunAt: datetime | None = None
    lastResult: str | None = None
    nextRun: datetime | None = None
    runs: int = 0
    skipped: int = 0
    observedGeneration: int | None = None


LOCATION = ResourceKind(
    "BackupLocation",
    "backuplocations",
    ("bl",),
    VaultSpec,
    None,
    (
        Column("Phase", ".status.phase"),
        Column("Last Validated", ".status.lastValidated", "date"),
        Column("URL", ".spec.url"),
        Column("Shareable", ".spec.shareable", "boolean"),
        _AGE,
    ),
    {
        "shareable": {
            "type": "boolean",
            "description": "Tenants may back up into it and restore from it (their own namespace only)",
        }
    },
    LocationStatus,
    immutable_spec=True,
)
SCHEDULE = ResourceKind(
    "BackupSchedule",
    "backupschedules",
    ("bs",),
    PlanSpec,
    None,
    (
        Column("Phase", ".status.phase"),
        Column("Cycle", ".spec.cycle"),
        Column("Last Run", ".status.lastRun"),
        Column("Result", ".status.lastResult"),
        Column("Next Run", ".status.nextRun", "date"),
        _AGE,
    ),
    {},
    ScheduleStatus,
)
ALL_KINDS: tuple[ResourceKind, ...] = (*KINDS.values(), LOCATION, SCHEDULE)
BY_KIND = {rk.kind: rk for rk in ALL_KINDS}


class PublishRequest(BaseModel):
    """A job's status for its object (see kube/job_objects.py)."""

    kind: JobKind
    name: str
    namespace: str | None = Field(default=None, description="None: the CLI job's object, product namespace")
    status: ObjectStatus
    mirror_spec: dict[str, Any] | None = None
    previous_phase: str | None = Field(default=None, description="the last push's phase (an Event on change)")


def steer_hint(kind: ResourceKind, namespace: str, name: str) -> str:
    return (
        f"kubectl -n {namespace} annotate --overwrite {kind.singular} {name} {STEER_ANNOTATION}=retry "
        f"(or =skip), or set spec.cancel: true"
    )


def job_conditions(phase: str, message: str, *, stuck: tuple[str, str] | None = None) -> list[Condition]:
    """A job object's Ready and Stuck conditions (``stuck``: the reason and message when it waits for
    an operator); transition times are set by whoever writes them."""
    ready = phase in (JobPhase.completed.value, JobPhase.partially_failed.value)
    return [
        Condition(
            type="Ready",
            status="True" if ready else "False",
            reason=phase,
            message=message,
        ),
        Condition(
            type="Stuck",
            status="True" if stuck else "False",
            reason=stuck[0] if stuck else "NotStuck",
            message=stuck[1] if stuck else "",
        ),
    ]


def object_status(status: JobStatus, *, workflow_id: str, namespace: str) -> ObjectStatus:
    """The object's view of a job's status: steps, error, counts and the Ready and Stuck conditions
    (their transition times are kept by the workflow's mirror, workflows/job_object.py)."""
    kind = KINDS[status.kind]
    done = sum(1 for s in status.steps if s.state in (StepState.succeeded, StepState.skipped))
    progress = f"{done}/{len(status.steps)} steps"
    current = next((s for s in status.steps if s.name == status.current_step), None)
    if current is not None and current.progress is not None:
        progress += f"; {current.progress.render()}"
    error = status.error
    message = error.short() if error else None
    if message is None and status.phase.finished:
        message = f"{status.kind.value} {status.name} {status.phase.value}"
    stuck = None
    if status.phase is JobPhase.waiting_for_operator:
        stuck = (
            error.code if error else status.phase.value,
            f"step {status.current_step!r} waits for an operator: {message}. Fix the cause, then "
            f"{steer_hint(kind, namespace, status.name)}",
        )
    conditions = job_conditions(
        status.phase.value,
        message or (f"at step {status.current_step}" if status.current_step else ""),
        stuck=stuck,
    )
    return ObjectStatus(
        phase=status.phase.value,
        currentStep=status.current_step,
        progress=progress,
        message=message,
        workflowId=workflow_id,
        startedAt=status.started_at,
        completedAt=status.completed_at,
        steps=[
            ObjectStepStatus(
                name=s.name,
                state=s.state.value,
                attempts=s.attempts,
                progress=s.progress.render() if s.progress else None,
                message=s.error.short() if s.error else s.message,
            )
            for s in status.steps
        ],
        error=ObjectError(code=error.code, message=error.short(), causes=error.causes, fixes=error.fixes)
        if error
        else None,
        itemErrors=status.item_errors_total,
        warnings=status.warnings_total,
        summary={k: str(v) for k, v in status.summary.items()},
        conditions=conditions,
    )


# --- spec <-> object --------------------------------------------------------------------------
class ObjectSpecError(ValueError):
    """A job object's spec that its job model refuses; the message names the field (camelCase)."""


def _model_fields(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    """Field name -> nested spec model (whose keys are renamed too), or None for a value."""
    out: dict[str, type[BaseModel] | None] = {}
    for name, info in model.model_fields.items():
        ann = info.annotation
        out[name] = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return out


def _to_snake(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    fields = _model_fields(model)
    by_camel = {to_camel(name): name for name in fields}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = by_camel.get(key, key)  # an unknown key stays, and the model refuses it by name
        nested = fields.get(name)
        out[name] = _to_snake(nested, value) if nested and isinstance(value, dict) else value
    return out


def _to_camel(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    fields = _model_fields(model)
    out: dict[str, Any] = {}
    for name, value in data.items():
        nested = fields.get(name)
        out[to_camel(name)] = _to_camel(nested, value) if nested and isinstance(value, dict) else value
    return out


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(to_camel(p) if isinstance(p, str) else str(p) for p in loc)


def spec_from_object(obj: dict[str, Any]) -> BaseModel:
    """The job spec an object asks for (steering fields left out); ObjectSpecError names the field."""
    rk = BY_KIND[obj["kind"]]
    spec = {k: v for k, v in (obj.get("spec") or {}).items() if k not in rk.steering_fields}
    data = {"name": obj["metadata"]["name"], **_to_snake(rk.spec_model, spec)}
    try:
        return rk.spec_model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = "metadata.name" if first["loc"][:1] == ("name",) else f"spec.{_field_path(first['loc'])}"
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown field"
        raise ObjectSpecError(f"{rk.kind} {obj['metadata']['name']}: {where}: {msg}") from None


def object_spec(spec: BaseModel) -> dict[str, Any]:
    """The ``spec`` of the object that stands for a job started elsewhere (``backupctl``)."""
    data = spec.model_dump(mode="json", exclude={"name"}, exclude_defaults=True)
    return _to_camel(type(spec), data)


# --- OpenAPI schemas ----------------------------------------------------------------------------
def _cel_rules(model: type[BaseModel]) -> list[dict[str, str]]:
    rules: list[dict[str, str]] = []
    for cls in reversed(model.__mro__):
        for rule, message in cls.__dict__.get("CEL_RULES", ()):
            rules.append({"rule": rule, "message": message})
    return rules


def _structural(node: Any, defs: dict[str, Any], *, camel: bool) -> Any:
    """A pydantic JSON schema node as a Kubernetes structural schema: references inlined, optional
    values ``nullable``, no titles or defaults (pydantic applies the defaults; the API server would
    write them into every object)."""
    if isinstance(node, list):
        return [_structural(n, defs, camel=camel) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _structural({**target, **rest}, defs, camel=camel)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1 and len(node["anyOf"]) == 2:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            optional: dict[str, Any] = _structural({**options[0], **rest}, defs, camel=camel)
            optional["nullable"] = True
            return optional
        raise ValueError(f"a union of several types cannot be a structural schema: {node}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "default", "$defs"):
            continue
        if key == "properties":
            out[key] = {
                (to_camel(name) if camel else name): _structural(v, defs, camel=camel)
                for name, v in value.items()
            }
        elif key == "required":
            out[key] = [to_camel(n) if camel else n for n in value]
        elif key in ("propertyNames", "patternProperties"):
            # Map keys (namespace names, say) cannot have a schema of their own in a CRD: CEL rules.
            if key == "patternProperties":
                ((pattern, values),) = value.items()
                out["additionalProperties"] = _structural(values, defs, camel=camel)
                key_rules = {"pattern": pattern}
            else:
                key_rules = value
            checks = out.setdefault("x-kubernetes-validations", [])
            if "pattern" in key_rules:
                checks.append({"rule": f"self.all(k, k.matches(r'{key_rules['pattern']}'))",
                               "message": "keys must be Kubernetes names"})
            if "maxLength" in key_rules:
                checks.append({"rule": f"self.all(k, size(k) <= {key_rules['maxLength']})",
                               "message": f"keys must be at most {key_rules['maxLength']} characters"})
        elif key == "additionalProperties":
            if value is False:
                continue  # structural schemas prune unknown fields; the controller's model refuses them
            out[key] = _structural(value, defs, camel=camel)
        else:
            out[key] = _structural(value, defs, camel=camel)
    return out


def _model_schema(model: type[BaseModel], *, camel: bool) -> dict[str, Any]:
    raw = model.model_json_schema(mode="validation")
    schema: dict[str, Any] = _structural(raw, raw.get("$defs", {}), camel=camel)
    return schema


def spec_schema(rk: ResourceKind) -> dict[str, Any]:
    schema = _model_schema(rk.spec_model, camel=True)
    schema["properties"].pop("name", None)
    schema["required"] = [n for n in schema.get("required", []) if n != "name"]
    if not schema["required"]:
        del schema["required"]
    schema["properties"].update(copy.deepcopy(rk.steering_fields))
    rules = _cel_rules(rk.spec_model)
    if rk.immutable_spec:
        message = f"a {rk.kind}'s spec cannot change: create another"
        rules.append({"rule": "self == oldSelf", "message": message})
    if rules:
        schema["x-kubernetes-validations"] = rules
    return schema


def crd(rk: ResourceKind) -> dict[str, Any]:
    status = _model_schema(rk.status_model or ObjectStatus, camel=False)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{rk.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": rk.kind,
                "plural": rk.plural,
                "singular": rk.singular,
                "shortNames": list(rk.short_names),
                "categories": ["backupcenter"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": c.name, "type": c.type, "jsonPath": c.path, "priority": c.priority}
                        for c in rk.columns
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {
                                    "type": "object",
                                    # Job names become workflow ids and vault folders: DNS labels.
                                    "properties": {
                                        "name": {"type": "string", "maxLength": 63, "pattern": LABEL_PATTERN}
                                    },
                                },
                                "spec": spec_schema(rk),
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def crds() -> Iterator[dict[str, Any]]:
    for rk in ALL_KINDS:
        yield crd(rk)


def render_crds() -> str:
    header = "# Generated by `python -m schemas.resources` from the job specs in schemas/; do not edit.\n"
    return header + yaml.safe_dump_all(list(crds()), sort_keys=False, width=120, allow_unicode=True)


if __name__ == "__main__":
    sys.stdout.write(render_crds())
