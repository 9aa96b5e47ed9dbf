"""The RAM policy documents shipped in deploy/policies cover what the product calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alicloud.ecs import EcsClient

POLICIES = Path(__file__).resolve().parents[2] / "deploy" / "policies"


def _load(name: str) -> dict[str, Any]:
    doc = json.loads((POLICIES / name).read_text())
    assert doc["Version"] == "1"
    for statement in doc["Statement"]:
        assert statement["Effect"] == "Allow"
        assert statement["Action"] and statement["Resource"]
    return doc


def _allowed(doc: dict[str, Any]) -> dict[str, set[str]]:
    """Action -> resources it is allowed on."""
    allowed: dict[str, set[str]] = {}
    for statement in doc["Statement"]:
        resources = statement["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        for action in statement["Action"]:
            allowed.setdefault(action, set()).update(resources)
    return allowed


def test_ecs_policy_allows_every_action_the_client_calls() -> None:
    allowed = _allowed(_load("ecs-snapshot.json"))
    for action in EcsClient.ACTIONS:
        assert f"ecs:{action}" in allowed, action
    for group_action in ("CreateSnapshotGroup", "DeleteSnapshotGroup", "DescribeSnapshotGroups"):
        assert f"ecs:{group_action}" in allowed


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("oss:PutObject", "acs:oss:*:*:cnfs-oss-*/*"),
        ("oss:GetObject", "acs:oss:*:*:cnfs-oss-*/*"),
        ("oss:DeleteObject", "acs:oss:*:*:cnfs-oss-*/*"),
        ("oss:ListObjects", "acs:oss:*:*:cnfs-oss-*"),
        ("oss:GetBucketInfo", "acs:oss:*:*:cnfs-oss-*"),
        ("kms:List*", "*"),
        ("kms:DescribeKey", "*"),
        ("kms:GenerateDataKey", "*"),
        ("kms:Decrypt", "*"),
    ],
)
def test_vault_policy(action: str, resource: str) -> None:
    assert resource in _allowed(_load("oss-vault.json")).get(action, set())
