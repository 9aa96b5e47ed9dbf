"""The node scheduling policy: exclude (default), include, prefer; virtual nodes never."""

from __future__ import annotations

import pytest

from schemas.placement import explain, place
from schemas.settings import parse_settings
from schemas.volumes import Mount, VolumeMethod, VolumePlan

EX, IN = "backupcenter.io/agent-excluded", "backupcenter.io/agent-included"
NODES = {
    "plain": {},
    "in": {IN: "true"},
    "out": {EX: "true"},
    "virtual": {"type": "virtual-kubelet"},
}


def plan(*nodes: str) -> VolumePlan:
    return VolumePlan(
        namespace="app",
        pvc="shared",
        method=VolumeMethod.files,
        mounts=[Mount(node=n, pod=f"p-{n}", pod_uid=f"uid-{n}") for n in nodes],
    )


@pytest.mark.parametrize(
    ("policy", "expected", "refused"),
    [
        ("exclude", ["plain", "in"], {"out", "virtual", "gone"}),
        ("include", ["in"], {"plain", "out", "virtual", "gone"}),
        ("prefer", ["in", "plain", "out"], {"virtual", "gone"}),
    ],
)
def test_policies(policy: str, expected: list[str], refused: set[str]) -> None:
    settings = parse_settings({"node_schedule_policy": policy}, environ={})
    result = place(plan("out", "plain", "virtual", "in", "gone"), NODES, settings)
    assert result.nodes == expected
    assert set(result.refused) == refused
    assert result.refused["virtual"] == "virtual nodes never run volume jobs"


def test_no_eligible_node_is_explained() -> None:
    settings = parse_settings({}, environ={})
    result = place(plan("out", "virtual"), NODES, settings)
    assert result.nodes == []
    why = explain(plan("out", "virtual"), result)
    assert "out: labelled backupcenter.io/agent-excluded=true (policy exclude)" in why
    assert explain(plan(), place(plan(), NODES, settings)) == "it is not mounted by any running pod"
