"""One source: the CRDs are generated from the job specs, and the API server judges objects as the
specs' own validators do (what it cannot judge is listed, and the controller refuses it)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic.alias_generators import to_camel

from schemas.resources import BY_KIND, ObjectSpecError, object_spec, render_crds, spec_from_object
from schemas.specs import BackupSpec
from tests.conftest import REPO
from tests.crd.conftest import Kubectl
from tests.product_fixtures import Product

pytestmark = [pytest.mark.cluster]


def test_the_shipped_crds_are_the_generated_ones() -> None:
    shipped = (REPO / "deploy" / "crds.yaml").read_text()
    stale = "deploy/crds.yaml is stale: run `python -m schemas.resources > deploy/crds.yaml`"
    assert shipped == render_crds(), stale


def test_every_spec_field_is_in_the_schema_and_nothing_else() -> None:
    for doc in yaml.safe_load_all(render_crds()):
        rk = BY_KIND[doc["spec"]["names"]["kind"]]
        props = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        model = {n for n in rk.spec_model.model_fields if n != "name"}
        assert set(props) == {to_camel(n) for n in model} | set(rk.steering_fields), rk.kind


# (kind, spec): accepted or refused alike by the API server and the model.
SAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("ApplicationBackup", {"vault": "main"}),
    ("ApplicationBackup", {"vault": "main", "includeNamespaces": ["a", "b"], "ttl": "7d12h"}),
    ("ApplicationBackup", {"vault": "main", "includeNamespaces": ["a"], "excludeNamespaces": ["b"]}),
    ("ApplicationBackup", {"vault": "main", "includeResources": ["pvc"], "excludeResources": ["pods"]}),
    ("ApplicationBackup", {"vault": "main", "ttl": "30 days"}),
    ("ApplicationBackup", {"vault": "Main"}),
    ("ApplicationBackup", {"vault": "main", "mode": "everything"}),
    ("ApplicationBackup", {"vault": "main", "clusterResources": "all", "volumeData": False}),
    ("ApplicationBackup", {"includeNamespaces": ["a"]}),
    ("ApplicationBackup", {"vault": "main", "includeNamespaces": ["UPPER"]}),
    ("ApplicationRestore", {"backup": "b1", "vault": "main", "namespaceMapping": {"a": "b"}}),
    ("ApplicationRestore", {"backup": "b1", "vault": "main", "namespaceMapping": {"A_b": "b"}}),
    ("ApplicationRestore", {"backup": "b1", "vault": "main", "namespaceMapping": {"a": "B"}}),
    ("ApplicationRestore", {"backup": "b1", "vault": "main", "storageClassMapping": {"x.y": "z"}}),
    ("ApplicationRestore", {"backup": "b1", "vault": "main", "existingResourcePolicy": "update"}),
    ("ApplicationRestore", {"backup": "b1", "vault": "main", "existingResourcePolicy": "replace"}),
    ("ApplicationRestore", {"vault": "main"}),
    ("ConvertToSnapshot", {"backup": "b1", "vault": "main", "storageClassMapping": {"nas": "disk"}}),
    ("ConvertToSnapshot", {"backup": "b1", "vault": "main", "storageClassMapping": {}}),
    ("DeleteRequest", {"targetKind": "backup", "target": "b1"}),
    ("DeleteRequest", {"targetKind": "cluster", "target": "b1"}),
]


def _manifest(kind: str, name: str, namespace: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {"apiVersion": "backupcenter.io/v1alpha1", "kind": kind,
         "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    )


def _model_accepts(kind: str, name: str, spec: dict[str, Any]) -> bool:
    try:
        spec_from_object({"kind": kind, "metadata": {"name": name}, "spec": spec})
    except ObjectSpecError:
        return False
    return True


def test_the_api_server_and_the_model_judge_alike(product: Product, kubectl: Kubectl) -> None:
    home = product.settings.product_namespace
    verdicts = []
    for i, (kind, spec) in enumerate(SAMPLES):
        name = f"sample-{i}"
        done = kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=_manifest(kind, name, home, spec),
                           check=False)
        verdicts.append((kind, spec, done.returncode == 0, _model_accepts(kind, name, spec), done.stderr))
    disagree = [(k, s, api, model, err) for k, s, api, model, err in verdicts if api != model]
    assert disagree == []
    # Both sides refuse something, and accept something: the samples test the rules, not one side.
    assert {api for _, _, api, _, _ in verdicts} == {True, False}


def test_names_the_schema_cannot_check_are_refused_by_the_model() -> None:
    # A cycle below a minute, or a cron field out of range, pass the pattern; the model refuses them.
    from schemas.specs import PlanSpec

    for cycle in ("30s", "61 * * * *"):
        with pytest.raises(ValueError):
            PlanSpec.model_validate({"name": "p", "cycle": cycle, "template": {"vault": "main"}})


def test_object_spec_round_trips() -> None:
    spec = BackupSpec(name="b1", vault="main", include_namespaces=["a"], label_selector="app=web", ttl="2d")
    obj = {"kind": "ApplicationBackup", "metadata": {"name": "b1"}, "spec": object_spec(spec)}
    expected = {"vault": "main", "includeNamespaces": ["a"], "labelSelector": "app=web", "ttl": "2d"}
    assert obj["spec"] == expected
    assert spec_from_object(obj) == spec
