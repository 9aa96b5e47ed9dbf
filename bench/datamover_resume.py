"""How much a backup killed half way has to send again when it is retried.

A node worker can be killed at any moment (eviction, OOM, a node going away).  The retried backup
reads the volume again but uploads only chunks the vault does not hold yet; what the killed run had
read but not yet stored (chunks in the pack being filled, packs still uploading) is read and sent
again.  This benchmark backs up a ~500 MiB mixed volume in a child process, SIGKILLs the child's
whole process group once half the bytes were read, then runs the backup again and prints:

    resume read at kill: X%        (of the volume's bytes)
    resume stored at kill: Y%      (what the vault holds afterwards, unsent packs recovered)
    resume re-sent after kill: Z%  (read before the kill but not stored: sent twice; goal < 10%)
    resume second run uploaded: W% (of the volume's bytes)

    .venv/bin/python bench/datamover_resume.py [--size-mib 500] [--kill-at 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KEY = bytes(range(32))
GOAL = 0.10


def _child(store_dir: str, src: str) -> None:
    """The backup to be killed: progress as JSON lines on stdout."""
    sys.path.insert(0, str(REPO))
    from datamover import backup_tree
    from datamover.models import Progress
    from vault.filestore import FileStore

    def report(p: Progress) -> None:
        print(json.dumps({"bytes_done": p.bytes_done}), flush=True)

    backup_tree(FileStore(store_dir, create=True), src, volume_id="bench", key=KEY, progress=report)
    print(json.dumps({"finished": True}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=500)
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction of the bytes read")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    sys.path.insert(0, str(REPO))
    from bench.datamover import generate, tree_size
    from datamover import backup_tree
    from datamover.index import load_index
    from datamover.repo import Repo
    from vault.filestore import FileStore

    work = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    try:
        src, vault = work / "src", work / "vault"
        generate(src, args.size_mib)
        _, total = tree_size(src)
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(vault), str(src)],
            stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        assert proc.stdout is not None
        read_at_kill = 0
        for line in proc.stdout:
            msg = json.loads(line)
            if msg.get("finished"):
                print("resume: the backup finished before it could be killed; use a bigger --size-mib")
                return 1
            read_at_kill = int(msg["bytes_done"])
            if read_at_kill >= args.kill_at * total:
                os.killpg(proc.pid, signal.SIGKILL)  # the worker and its reader processes, as a pod kill
                break
        proc.wait()
        time.sleep(0.2)
        store = FileStore(vault)
        index = load_index(Repo.open(store, KEY), recover=True)
        stored = sum(entry.raw_len for _, (_, entry) in index.items())
        second = backup_tree(store, src, volume_id="bench", key=KEY)
        re_sent = max(0, read_at_kill - stored) / total
        print(f"resume read at kill: {read_at_kill / total:.1%}")
        print(f"resume stored at kill: {stored / total:.1%}")
        print(f"resume re-sent after kill: {re_sent:.1%} (goal < {GOAL:.0%})")
        print(f"resume second run uploaded: {second.new_bytes / total:.1%}")
        print(f"goals met: {'yes' if re_sent < GOAL else 'no'}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
