"""Which node worker copies a volume: the node scheduling policy (requirements.md §4).

Eligible nodes are those where the volume is mounted.  Virtual nodes never run volume jobs.
The policy then filters or orders them:

- ``exclude`` (default): every node but those labelled ``<agent-excluded>=true``;
- ``include``: only nodes labelled ``<agent-included>=true``;
- ``prefer``: included nodes first, then unlabelled ones, then excluded ones.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from schemas.settings import NodeSchedulePolicy, Settings
from schemas.volumes import VolumePlan

VIRTUAL_NODE_LABELS = {"type": "virtual-kubelet"}


class Placement(BaseModel):
    nodes: list[str]  # in order of preference
    refused: dict[str, str]  # node -> why it cannot take the volume


def is_virtual(labels: Mapping[str, str]) -> bool:
    return any(labels.get(k) == v for k, v in VIRTUAL_NODE_LABELS.items())


def place(plan: VolumePlan, node_labels: Mapping[str, Mapping[str, str]], settings: Settings) -> Placement:
    included, excluded = settings.agent_included_label, settings.agent_excluded_label
    mounted = list(dict.fromkeys(m.node for m in plan.mounts))
    refused: dict[str, str] = {}
    ranked: list[tuple[int, str]] = []
    for node in mounted:
        labels = node_labels.get(node)
        if labels is None:
            refused[node] = "the node no longer exists"
            continue
        if is_virtual(labels):
            refused[node] = "virtual nodes never run volume jobs"
            continue
        is_in, is_out = labels.get(included) == "true", labels.get(excluded) == "true"
        policy = settings.node_schedule_policy
        if policy is NodeSchedulePolicy.exclude and is_out:
            refused[node] = f"labelled {excluded}=true (policy exclude)"
        elif policy is NodeSchedulePolicy.include and not is_in:
            refused[node] = f"not labelled {included}=true (policy include)"
        else:
            rank = 0 if is_in else (2 if is_out else 1)
            ranked.append((rank if policy is NodeSchedulePolicy.prefer else 0, node))
    ranked.sort(key=lambda r: r[0])  # stable: mount order breaks ties
    return Placement(nodes=[n for _, n in ranked], refused=refused)


def explain(plan: VolumePlan, placement: Placement) -> str:
    if not plan.mounts:
        return "it is not mounted by any running pod"
    return "; ".join(f"{node}: {why}" for node, why in placement.refused.items())
