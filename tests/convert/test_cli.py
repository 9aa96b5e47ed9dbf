"""``backupctl convert`` and ``backupctl delete convert`` as an operator runs them (real processes)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli_runner import Ran, cli_env, run_cli
from tests.convert.test_convert import DISK, NAS, nas_backup
from tests.product_fixtures import Product
from tests.restore.helpers import unique

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


async def test_convert_cli_lifecycle(
    product: Product, temporal_env: Any, kube_agent: Any, kube_namespace: str
) -> None:
    backup_name = await nas_backup(product, kube_agent, kube_namespace)
    env = cli_env(product, temporal_env)

    async def cli(*args: str) -> Ran:
        return await run_cli(env, *args)

    bad = await cli(
        "convert",
        "create",
        "c-bad",
        "--backup",
        backup_name,
        "--vault",
        "main",
        "--storage-class-mapping",
        NAS,
    )
    assert bad.code == 2 and "is not old:new or old=new" in bad.err, bad
    name = unique("cc")
    made = await cli(
        "convert",
        "create",
        name,
        "--backup",
        backup_name,
        "--vault",
        "main",
        "--storage-class-mapping",
        f"{NAS}:{DISK}",
        "--convert-to-access-modes",
        "ReadWriteOnce",
        "--wait",
    )
    assert made.code == 0, made.out + made.err
    again = await cli(
        "convert",
        "create",
        name,
        "--backup",
        backup_name,
        "--vault",
        "main",
        "--storage-class-mapping",
        f"{NAS}:{DISK}",
    )
    assert again.code == 1 and f"convert name '{name}' is already in use" in again.err, again
    described = await cli("convert", "describe", name)
    assert described.code == 0 and f"convert {kube_namespace}/shared" in described.out, described
    listed = await cli("convert", "records", "--vault", "main", "--backup", backup_name)
    assert listed.code == 0 and name in listed.out and "Completed" in listed.out, listed
    reset = await cli("delete", "convert", name)
    assert reset.code == 0, reset.out + reset.err
    listed = await cli("convert", "records", "--vault", "main", "--backup", backup_name)
    assert name not in listed.out and "0 conversion(s)" in listed.out, listed
    # A delete of a conversion that does not exist is refused before anything starts.
    missing = await cli("delete", "convert", "no-such-conversion", "--no-wait")
    assert missing.code == 2, missing
    assert "conversion 'no-such-conversion' not found" in missing.err and "started" not in missing.out
