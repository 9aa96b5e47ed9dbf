"""Benchmark of the volume data mover against restic, measured in the same run.

Generates about 1 GiB of mixed files (many small, some medium, a few large; part compressible
text, part random) in a temporary directory, then times, for our data mover (encrypted, into a
file:// FileStore) and for Debian's restic (local repository, always encrypted):

    full backup, re-backup after changing 1% of the files, restore

Both run as separate processes and are timed the same way (wall clock of the whole process, so
interpreter start-up counts against us); peak RSS is the VmHWM of each process.
Prints ``<name> ratio (ours/restic): X`` lines (goal: every ratio <= 1.0) and MB/s figures.

    .venv/bin/python bench/datamover.py [--size-mib 1024] [--workers 4] [--keep DIR]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
KEY = bytes(range(32))  # the benchmark's throwaway encryption key
PEAK_RSS_GOAL_MIB = 512


# --- dataset ------------------------------------------------------------------------------------

def _text_corpus(rng: random.Random, size: int) -> bytes:
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
             for _ in range(5000)]
    out: list[str] = []
    total = 0
    while total < size:
        line = " ".join(rng.choices(words, k=rng.randint(4, 16))) + f" {rng.randint(0, 10**9)}\n"
        out.append(line)
        total += len(line)
    return "".join(out).encode()[:size]


class _Content:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.corpus = _text_corpus(self.rng, 8 * MIB)

    def make(self, size: int, compressible: bool) -> bytes:
        if not compressible:
            return self.rng.randbytes(size)
        parts = []
        remaining = size
        while remaining > 0:
            n = min(remaining, self.rng.randint(4096, 256 * 1024))
            start = self.rng.randrange(0, len(self.corpus) - n)
            parts.append(self.corpus[start:start + n])
            remaining -= n
        return b"".join(parts)


def generate(root: Path, total_mib: int, seed: int = 42) -> list[Path]:
    """~total_mib of files: 20% small (1-16 KiB), 30% medium (256 KiB-4 MiB), 50% large."""
    content = _Content(seed)
    rng = content.rng
    scale = total_mib * MIB
    files: list[Path] = []

    def write(path: Path, size: int, compressible: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.make(size, compressible))
        files.append(path)

    budget = scale * 20 // 100
    i = 0
    while budget > 0:
        size = int(2 ** rng.uniform(10, 14))
        write(root / "small" / f"d{i // 200:03d}" / f"f{i:05d}.{'txt' if i % 2 else 'bin'}", size, i % 2 == 1)
        budget -= size
        i += 1
    budget = scale * 30 // 100
    i = 0
    while budget > 0:
        size = int(2 ** rng.uniform(18, 22))
        write(root / "medium" / f"m{i:04d}.dat", size, i % 3 != 0)
        budget -= size
        i += 1
    large = scale * 50 // 100 // 4
    for i, compressible in enumerate((False, True, False, True)):
        write(root / "large" / f"large{i}.img", large, compressible)
    (root / "empty-dir").mkdir()
    os.symlink("large/large0.img", root / "link-to-large")
    os.link(root / "medium" / "m0000.dat", root / "hardlink-to-m0000")
    return files


def change_one_percent(files: list[Path], seed: int) -> int:
    """Rewrite 1% of the files (new content, same size class); returns the bytes changed."""
    content = _Content(seed)
    rng = random.Random(seed)
    chosen = rng.sample(files, max(1, len(files) // 100))
    changed = 0
    for path in chosen:
        size = path.stat().st_size
        data = bytearray(path.read_bytes())
        # Overwrite a slice in place: realistic edits keep most chunks, and every byte counts.
        n = min(size, max(1, size // 10), 64 * 1024)
        at = rng.randrange(0, max(1, size - n))
        data[at:at + n] = content.make(n, False)
        path.write_bytes(bytes(data))
        changed += n
    return changed


def tree_size(root: Path) -> tuple[int, int]:
    files = total = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            if os.path.islink(os.path.join(dirpath, name)):
                continue
            files += 1
            total += st.st_size
    return files, total


# --- running the two tools ----------------------------------------------------------------------

def _vm_hwm_mib(pid: int | str) -> int:
    """Peak resident set of a live process.  Not ru_maxrss: after fork+exec that also counts the
    parent's memory at fork time, which here is the benchmark's own."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


@dataclass
class Run:
    seconds: float
    cpu: float  # user + system seconds of the process
    rss_mib: int
    stdout: str


def _run(cmd: Sequence[str], env: dict[str, str] | None = None) -> Run:
    """Wall time, CPU time, peak RSS (VmHWM sampled every 20 ms) and stdout of one process."""
    # Start every measurement with no dirty pages, so nobody pays for the previous step's writes.
    os.sync()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _vm_hwm_mib(proc.pid))
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stdout[-2000:]}\n{stderr[-4000:]}")
    return Run(elapsed, usage.ru_utime + usage.ru_stime, peak, stdout)


def ours(op: str, *args: str, workers: int) -> tuple[Run, dict[str, Any]]:
    run = _run([sys.executable, str(Path(__file__).resolve()), "--op", op, "--workers", str(workers), *args])
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    # The child reports its own exact peak just before exiting.
    run.rss_mib = max(run.rss_mib, int(summary.pop("_peak_rss_mib")))
    return run, summary


def _op_main(args: argparse.Namespace) -> None:
    """Child process: one data-mover operation, summary as JSON on stdout."""
    sys.path.insert(0, str(REPO))
    from datamover import backup_tree, restore_tree
    from vault.filestore import FileStore

    store = FileStore(args.store, create=True)
    key = KEY if args.encrypt else None
    if args.op == "backup":
        result: dict[str, object] = backup_tree(
            store, args.src, volume_id="bench", parent_snapshot=args.parent, key=key, workers=args.workers
        ).model_dump(mode="json")
    else:
        result = restore_tree(
            store, args.snapshot, args.dst, key=key, workers=args.workers
        ).model_dump(mode="json")
    result["_peak_rss_mib"] = _vm_hwm_mib("self")
    print(json.dumps(result))


def restic(args: Sequence[str], env: dict[str, str]) -> Run:
    return _run(["restic", *args], env)


# --- the benchmark ------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="repeat all steps; the best round counts")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument("--no-encrypt", action="store_true", help="run ours without encryption")
    parser.add_argument("--op", choices=["backup", "restore"], help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--dst", help=argparse.SUPPRESS)
    parser.add_argument("--parent", help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", help=argparse.SUPPRESS)
    parser.add_argument("--encrypt", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.op:
        _op_main(args)
        return 0
    if shutil.which("restic") is None:
        print("restic not found: apt-get install restic", file=sys.stderr)
        return 2

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-datamover-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _bench(work, args)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


STEPS = ("full backup", "incremental backup", "restore")


@dataclass
class _Round:
    work: Path  # this round's directory: vault, restic repository, restore targets
    src: Path
    common: list[str]
    env: dict[str, str]
    workers: int
    state: dict[str, Any] = field(default_factory=dict)

    def step(self, name: str, tool: str) -> Run:
        if tool == "restic":
            target = str(self.work / "restore-restic")
            cmd = ["restore", "latest", "--target", target] if name == "restore" else [
                "backup", "--host", "bench", str(self.src)]
            return restic(cmd, self.env)
        if name == "full backup":
            run, self.state["full"] = ours("backup", *self.common, "--src", str(self.src),
                                           workers=self.workers)
        elif name == "incremental backup":
            parent = str(self.state["full"]["snapshot_id"])
            run, self.state["incr"] = ours("backup", *self.common, "--src", str(self.src), "--parent", parent,
                                           workers=self.workers)
        else:
            run, _ = ours("restore", *self.common, "--snapshot", str(self.state["incr"]["snapshot_id"]),
                          "--dst", str(self.work / "restore-ours"), workers=self.workers)
        return run


def _bench(work: Path, args: argparse.Namespace) -> int:
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    t = time.perf_counter()
    files = generate(src, args.size_mib)
    nfiles, nbytes = tree_size(src)
    mb = nbytes / 1e6
    print(f"dataset: {nfiles} files, {nbytes / MIB:.0f} MiB (generated in {time.perf_counter() - t:.1f}s)")
    (work / "password").write_text("bench-password\n")
    enc = [] if args.no_encrypt else ["--encrypt"]
    runs: dict[tuple[str, str], list[Run]] = {(s, t): [] for s in STEPS for t in ("ours", "restic")}

    # The machine may be shared: each round measures every step for both tools back to back
    # (who goes first alternates), and the best round of each counts.
    for rnd in range(args.rounds):
        # Fresh directories per round, all deleted only at the end: right after deleting tens of
        # thousands of files, creating files is several times slower on some file systems, which
        # would penalise whoever restores next.
        rdir = work / f"round{rnd + 1}"
        shutil.rmtree(rdir, ignore_errors=True)
        rdir.mkdir()
        common = ["--store", str(rdir / "vault"), *enc]
        env = dict(os.environ, RESTIC_REPOSITORY=str(rdir / "restic-repo"),
                   RESTIC_PASSWORD_FILE=str(work / "password"), RESTIC_CACHE_DIR=str(rdir / "restic-cache"))
        restic(["init"], env)
        order = ("ours", "restic") if rnd % 2 == 0 else ("restic", "ours")
        ctx = _Round(work=rdir, src=src, common=common, env=env, workers=args.workers)
        for name in STEPS:
            if name == "incremental backup":
                changed = change_one_percent(files, seed=100 + rnd)
            for tool in order:
                runs[(name, tool)].append(ctx.step(name, tool))
        line = ", ".join(
            f"{name} {runs[(name, 'ours')][-1].seconds:.2f}s vs {runs[(name, 'restic')][-1].seconds:.2f}s"
            for name in STEPS
        )
        incr, full = ctx.state["incr"], ctx.state["full"]
        print(f"  round {rnd + 1}: {line}; incremental: {changed / MIB:.1f} MiB changed in "
              f"{incr['files_changed']} files, {incr['new_bytes'] / MIB:.1f} MiB new; "
              f"ours uploaded {full['uploaded_bytes'] / MIB:.0f} MiB in the full backup")
    _check_identical(src, rdir / "restore-ours")

    ok = True
    best = {key: min(r.seconds for r in rs) for key, rs in runs.items()}
    for name in STEPS:
        ratio = best[(name, "ours")] / best[(name, "restic")]
        ok &= ratio <= 1.0
        print(f"{name} ratio (ours/restic): {ratio:.2f}")
    for name in STEPS:
        for tool in ("ours", "restic"):
            print(f"{name} {tool} MB/s: {mb / best[(name, tool)]:.0f}")
    for name in STEPS:
        for tool in ("ours", "restic"):
            print(f"{name} {tool} cpu seconds: {min(r.cpu for r in runs[(name, tool)]):.2f}")
    peak = max(r.rss_mib for (_, tool), rs in runs.items() if tool == "ours" for r in rs)
    restic_peak = max(r.rss_mib for (_, tool), rs in runs.items() if tool == "restic" for r in rs)
    print(f"peak memory ours MiB: {peak}")
    print(f"peak memory restic MiB: {restic_peak}")
    ok &= peak <= PEAK_RSS_GOAL_MIB
    print(f"goals met: {'yes' if ok else 'no'}")
    return 0


def _check_identical(src: Path, dst: Path) -> None:
    """Full content comparison of the restored tree (outside the timings)."""
    for dirpath, dirnames, names in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        other = dst / rel
        for name in names + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            a, b = os.path.join(dirpath, name), other / name
            if os.path.islink(a):
                assert os.readlink(a) == os.readlink(b), a
            else:
                assert filecmp.cmp(a, b, shallow=False), f"restored {b} differs"
                assert os.stat(a).st_mtime_ns == os.stat(b).st_mtime_ns, f"mtime of {b} differs"


if __name__ == "__main__":
    sys.exit(main())
