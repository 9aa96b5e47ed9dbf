"""``backupctl restore files``: chosen paths of a volume's file-level copy into a local directory,
as an operator runs it (a real process), the same path-safety rules as a full restore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.backup.test_verify import BIG_FILE, protected_app
from tests.cli_runner import Ran, cli_env, run_cli
from tests.product_fixtures import Product

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="session")]


async def test_restore_files_to_a_local_directory(
    product: Product, temporal_env: Any, kube_agent: Any, kube_namespace: str, tmp_path: Path
) -> None:
    ns = kube_namespace
    name = await protected_app(product, kube_agent, ns)  # NAS volume `shared` (files), disk volume `data`
    env = cli_env(product, temporal_env)

    async def cli(*args: str) -> Ran:
        return await run_cli(env, "restore", "files", "--backup", name, "--vault", product.vault, *args)

    dst = tmp_path / "out"
    code, out, err = await cli("--volume", f"{ns}/shared", "--path", "site", "--path", BIG_FILE,
                               "--to-dir", str(dst))
    assert code == 0, (out, err)
    restored = {str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file()}
    assert restored == {"site/index.html", "site/app.js", BIG_FILE}, restored
    assert (dst / "site" / "index.html").read_bytes() == b"<h1>shop</h1>\n"
    assert len((dst / BIG_FILE).read_bytes()) == 2 * 1024 * 1024

    # Files already there are kept unless --overwrite.
    (dst / "site" / "index.html").write_bytes(b"edited")
    site = ["--volume", f"{ns}/shared", "--path", "site", "--to-dir", str(dst)]
    code, out, _ = await cli(*site)
    assert code == 0 and "2 already there kept" in out
    assert (dst / "site" / "index.html").read_bytes() == b"edited"
    code, out, _ = await cli(*site, "--overwrite")
    assert code == 0 and (dst / "site" / "index.html").read_bytes() == b"<h1>shop</h1>\n"

    # Refused, nothing written: a path leaving the volume, one the backup lacks, a disk-snapshot volume.
    elsewhere = tmp_path / "nothing"
    for args, words in (
        (["--volume", f"{ns}/shared", "--path", "../etc"], "--path"),
        (["--volume", f"{ns}/shared", "--path", "site/missing.html"], "site/missing.html"),
        (["--volume", f"{ns}/data", "--path", "x"], "disk snapshot"),
    ):
        code, out, err = await cli(*args, "--to-dir", str(elsewhere))
        assert code == 2 and words in err, (args, out, err)
        assert not elsewhere.exists()
