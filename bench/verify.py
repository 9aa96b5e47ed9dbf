"""Benchmark of a file-level snapshot's verification (``backup verify``) against ``restic check``.

Backs up the data mover benchmark's mixed dataset (bench/datamover.py, ~1 GiB) with our data mover
(encrypted, file:// vault) and with restic 0.18.1 (bench/peers.py), then times, best of ``--rounds``:

    metadata   ours: manifest, chunk index, packs exist      restic check
    read-data  ours: + every chunk decrypts to its id        restic check --read-data

Prints ``verify <step> seconds``, ``MB/s`` and ``verify <step> ratio (ours/restic): X``.

    .venv/bin/python bench/verify.py [--size-mib 1024] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.datamover import KEY, MIB, _run, generate, tree_size  # noqa: E402
from bench.peers import build  # noqa: E402


def _check(vault: str, snapshot_id: str, read_data: bool) -> None:
    """Child process: one verification, as restic's check is one process (start-up counts)."""
    from datamover import check
    from vault.filestore import FileStore

    store = FileStore(vault)
    repo, index = check.open_index(store, KEY)
    result = check.check_snapshot(store, snapshot_id, repo=repo, index=index, read_data=read_data)
    if result.problems:
        raise SystemExit(f"our verification found problems in a good snapshot: {result.problems}")
    if read_data and result.bytes_read == 0:
        raise SystemExit("--read-data read nothing")


def _ours(vault: Path, snapshot_id: str, read_data: bool) -> float:
    flags = ["--read-data"] if read_data else []
    cmd = [sys.executable, __file__, "--op-check", str(vault), snapshot_id, *flags]
    return _run(cmd).seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--op-check", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--read-data", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.op_check:
        vault, snapshot = args.op_check
        _check(vault, snapshot, args.read_data)
        return 0
    from datamover import backup_tree
    from vault.filestore import FileStore

    restic = build()["restic"]
    work = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    try:
        src = work / "src"
        generate(src, args.size_mib)
        files, size = tree_size(src)
        print(f"dataset: {files} files, {size / MIB:.0f} MiB; load average {os.getloadavg()[0]:.2f}")
        vault = work / "vault"
        snapshot = backup_tree(FileStore(vault, create=True), src, volume_id="bench", key=KEY).snapshot_id
        env = dict(os.environ, RESTIC_REPOSITORY=str(work / "restic-repo"), RESTIC_PASSWORD="bench-password",
                   RESTIC_CACHE_DIR=str(work / "restic-cache"))
        _run([str(restic), "init"], env)
        _run([str(restic), "backup", "--host", "bench", str(src)], env)
        ok = True
        for step, flags in (("metadata", []), ("read-data", ["--read-data"])):
            ours = min(_ours(vault, snapshot, step == "read-data") for _ in range(args.rounds))
            theirs = min(_run([str(restic), "check", *flags], env).seconds for _ in range(args.rounds))
            ratio = ours / theirs
            ok &= ratio <= 1.0
            print(f"verify {step} seconds: ours {ours:.2f}, restic {theirs:.2f}")
            print(f"verify {step} MB/s: ours {size / 1e6 / ours:.0f}, restic {size / 1e6 / theirs:.0f}")
            print(f"verify {step} ratio (ours/restic): {ratio:.2f}")
        print(f"goals met: {'yes' if ok else 'no'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
