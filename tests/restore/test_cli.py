"""``backupctl restore`` and ``backupctl delete`` as an operator runs them (real processes)."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any, NamedTuple

import pytest

from backupctl.console import BadInput
from backupctl.restore_cmd import parse_mapping
from tests.conftest import BACKUPCTL
from tests.product_fixtures import Product
from tests.restore.helpers import backup

pytestmark = pytest.mark.cluster


class Ran(NamedTuple):
    code: int
    out: str
    err: str


def test_mappings_parse_and_refuse_with_a_clear_reason() -> None:
    assert parse_mapping("--namespace-mapping", "a:b, c=d") == {"a": "b", "c": "d"}
    assert parse_mapping("--image-registry-mapping", "docker.io/library/=reg.example.com:5000/team/",
                         separators="=") == {"docker.io/library/": "reg.example.com:5000/team/"}
    assert parse_mapping("--namespace-mapping", None) == {}
    with pytest.raises(BadInput, match="'a' is not old:new or old=new"):
        parse_mapping("--namespace-mapping", "a")
    with pytest.raises(BadInput, match="'a' is mapped twice"):
        parse_mapping("--namespace-mapping", "a:b,a:c")


async def test_restore_cli_lifecycle(product: Product, temporal_env: Any, kube_namespace: str) -> None:
    source, kube = kube_namespace, product.kube
    kube.create(f"/api/v1/namespaces/{source}/configmaps", {"metadata": {"name": "cm"}, "data": {"k": "v"}})
    kube.create(f"/api/v1/namespaces/{source}/secrets", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    backup_name = await backup(product, source, volume_data=False)
    address = temporal_env.client.service_client.config.target_host
    env = dict(os.environ, BACKUPCENTER_TEMPORAL_ADDRESS=address, COLUMNS="250",
               BACKUPCENTER_SETTINGS=str(product.settings_path),
               BACKUPCENTER_STATE_DIR=str(product.ctx.state_dir))

    async def cli(*args: str) -> Ran:
        # Asynchronously: this test's event loop also runs the product's worker.
        proc = await asyncio.create_subprocess_exec(BACKUPCTL, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        return Ran(proc.returncode or 0, out.decode(), err.decode())

    offered = await cli("restore", "backups", "--vault", "main")
    assert offered.code == 0, offered.err
    assert backup_name in offered.out and "cluster-a" in offered.out

    bad = await cli("restore", "create", "r-bad", "--backup", backup_name, "--vault", "main",
                    "--namespace-mapping", "x")
    assert bad.code == 2 and "--namespace-mapping: 'x' is not old:new" in bad.err

    name, target = f"r-{uuid.uuid4().hex[:8]}", f"{source}-cli"
    try:
        made = await cli("restore", "create", name, "--backup", backup_name, "--vault", "main",
                         "--namespace-mapping", f"{source}:{target}", "--exclude-resources", "secrets",
                         "--wait")
        assert made.code == 0, made.out + made.err
        assert kube.get(f"/api/v1/namespaces/{target}/configmaps/cm")
        assert kube.get(f"/api/v1/namespaces/{target}/secrets/s") is None

        shown = await cli("restore", "describe", name, "--missing")
        assert shown.code == 0, shown.err
        assert "Completed" in shown.out
        assert "secrets is excluded by the restore's resource selection" in shown.out
        assert name in (await cli("restore", "list")).out

        again = await cli("restore", "create", name, "--backup", backup_name, "--vault", "main")
        assert again.code == 1 and f"restore name '{name}' is already in use" in again.err

        deleted = await cli("delete", "restore", name)
        assert deleted.code == 0, deleted.out + deleted.err
        gone = await cli("restore", "describe", name)
        assert gone.code == 1 and "not found" in gone.err
    finally:
        kube.delete(f"/api/v1/namespaces/{target}")
