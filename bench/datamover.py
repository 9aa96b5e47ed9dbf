"""Benchmark of the volume data mover against restic 0.18.1 and kopia 0.21.1, measured in the same run.

Datasets (generated in a temporary directory):

    mixed    ~1 GiB of mixed files (many small, some medium, a few large; part text, part random)
    small    200,000 files of 1-4 KiB
    large    one 4 GiB file
    million  1,000,000 files of 1-4 KiB (the incremental, unchanged and memory figures; no restore)

Steps, for our data mover (encrypted, into a file:// FileStore), restic and kopia (local
repositories, always encrypted, each tool's default settings): full backup, backup after changing
1% of the files (of the bytes, for ``large``), backup of the unchanged tree, restore.

Every run is a separate process timed the same way (wall clock of the whole process, so interpreter
start-up counts against us); peak RSS is the VmHWM of each process, summed with its live child
processes' (our reader processes).  Each round runs every step for
the three tools back to back (the order rotates) and the best round counts.  Prints
``<dataset> <step> ratio (ours/restic): X`` and ``… ratio (ours/kopia): X`` lines (goal: every
ratio <= 1.0), MB/s, files/s and peak RSS.  restic and kopia are built by ``python -m bench.peers``.

    .venv/bin/python bench/datamover.py [--datasets mixed,small,large,million] [--quick] [--rounds 2]
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
from dataclasses import dataclass
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


def _tree_hwm_mib(pid: int) -> int:
    """The peak resident sets of a process and its live descendants (our reader processes), summed."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _vm_hwm_mib(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return total


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
            peak = max(peak, _tree_hwm_mib(proc.pid))
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


# --- datasets -----------------------------------------------------------------------------------

def generate_small(root: Path, count: int, seed: int = 7) -> list[Path]:
    """``count`` files of 1-4 KiB, 1,000 per directory (half text, half random)."""
    content = _Content(seed)
    rng = content.rng
    files: list[Path] = []
    for i in range(count):
        if i % 1000 == 0:
            (root / f"d{i // 1000:04d}").mkdir(parents=True, exist_ok=True)
        path = root / f"d{i // 1000:04d}" / f"f{i:07d}"
        path.write_bytes(content.make(rng.randint(1024, 4096), i % 2 == 0))
        files.append(path)
    return files


def generate_large(root: Path, size_mib: int, seed: int = 11) -> list[Path]:
    """One file of ``size_mib`` (random: nothing to compress or deduplicate)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "disk.img"
    rng = random.Random(seed)
    with open(path, "wb") as out:
        for _ in range(size_mib):
            out.write(rng.randbytes(MIB))
    return [path]


def change_large(files: list[Path], seed: int) -> int:
    """Overwrite 1% of the single file's bytes, as 64 KiB extents spread over it."""
    rng = random.Random(seed)
    (path,) = files
    size = path.stat().st_size
    extent = 64 * 1024
    changed = 0
    with open(path, "r+b") as f:
        for _ in range(max(1, size // 100 // extent)):
            f.seek(rng.randrange(0, size - extent))
            f.write(rng.randbytes(extent))
            changed += extent
    return changed


@dataclass(frozen=True)
class Dataset:
    name: str
    make: Any  # (root) -> files
    change: Any  # (files, seed) -> bytes changed
    steps: tuple[str, ...]


FULL, CHANGED, UNCHANGED, RESTORE = "full", "1% changed", "unchanged", "restore"
TOOLS = ("ours", "restic", "kopia")


def datasets(args: argparse.Namespace) -> dict[str, Dataset]:
    every = (FULL, CHANGED, UNCHANGED, RESTORE)
    return {
        "mixed": Dataset("mixed", lambda r: generate(r, args.size_mib), change_one_percent, every),
        "small": Dataset("small", lambda r: generate_small(r, args.small_files), change_one_percent, every),
        "large": Dataset("large", lambda r: generate_large(r, args.large_mib), change_large, every),
        "million": Dataset("million", lambda r: generate_small(r, args.million_files, seed=13),
                           change_one_percent, (FULL, CHANGED, UNCHANGED)),
    }


# --- the three tools ------------------------------------------------------------------------------

class _Tool:
    """One tool's repository in one round: backups of the source, a restore of the last one."""

    name = ""

    def __init__(self, rdir: Path, src: Path, args: argparse.Namespace, peers: dict[str, Path]) -> None:
        self.rdir, self.src, self.args, self.peers = rdir, src, args, peers
        self.summary: dict[str, Any] = {}

    def backup(self) -> Run:
        raise NotImplementedError

    def restore(self, target: Path) -> Run:
        raise NotImplementedError


class _Ours(_Tool):
    name = "ours"

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.common = ["--store", str(self.rdir / "vault"), *([] if self.args.no_encrypt else ["--encrypt"])]
        self.last: str | None = None

    def backup(self) -> Run:
        parent = ["--parent", self.last] if self.last else []
        run, self.summary = ours("backup", *self.common, "--src", str(self.src), *parent,
                                 workers=self.args.workers)
        self.last = str(self.summary["snapshot_id"])
        return run

    def restore(self, target: Path) -> Run:
        assert self.last is not None
        run, _ = ours("restore", *self.common, "--snapshot", self.last, "--dst", str(target),
                      workers=self.args.workers)
        return run


class _Restic(_Tool):
    name = "restic"

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.env = dict(os.environ, RESTIC_REPOSITORY=str(self.rdir / "restic-repo"),
                        RESTIC_PASSWORD_FILE=str(self.rdir / "password"),
                        RESTIC_CACHE_DIR=str(self.rdir / "restic-cache"))
        (self.rdir / "password").write_text("bench-password\n")
        self._run(["init"])

    def _run(self, cmd: list[str]) -> Run:
        return _run([str(self.peers["restic"]), *cmd], self.env)

    def backup(self) -> Run:
        return self._run(["backup", "--host", "bench", str(self.src)])

    def restore(self, target: Path) -> Run:
        return self._run(["restore", "latest", "--target", str(target)])


class _Kopia(_Tool):
    name = "kopia"

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.env = dict(os.environ, KOPIA_PASSWORD="bench-password",
                        KOPIA_CONFIG_PATH=str(self.rdir / "kopia-config" / "repository.config"),
                        KOPIA_CACHE_DIRECTORY=str(self.rdir / "kopia-cache"),
                        KOPIA_LOG_DIR=str(self.rdir / "kopia-logs"), KOPIA_CHECK_FOR_UPDATES="false")
        self._run(["repository", "create", "filesystem", "--path", str(self.rdir / "kopia-repo")])
        self.root_object = ""

    def _run(self, cmd: list[str]) -> Run:
        return _run([str(self.peers["kopia"]), *cmd], self.env)

    def backup(self) -> Run:
        run = self._run(["snapshot", "create", str(self.src), "--json"])
        self.root_object = json.loads(run.stdout)["rootEntry"]["obj"]
        return run

    def restore(self, target: Path) -> Run:
        return self._run(["snapshot", "restore", self.root_object, str(target)])


_TOOL_TYPES: dict[str, type[_Tool]] = {"ours": _Ours, "restic": _Restic, "kopia": _Kopia}


# --- the benchmark ------------------------------------------------------------------------------

QUICK = {"size_mib": 256, "small_files": 20_000, "large_mib": 512, "million_files": 100_000}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="mixed,small,large,million")
    parser.add_argument("--size-mib", type=int, default=1024, help="the mixed dataset's size")
    parser.add_argument("--small-files", type=int, default=200_000)
    parser.add_argument("--large-mib", type=int, default=4096)
    parser.add_argument("--million-files", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help=f"smaller datasets: {QUICK}")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="repeat all steps; the best round counts")
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
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    sys.path.insert(0, str(REPO))
    from bench.peers import build

    peers = build()
    chosen = [d.strip() for d in args.datasets.split(",") if d.strip()]
    known = datasets(args)
    unknown = [d for d in chosen if d not in known]
    if unknown:
        parser.error(f"unknown datasets {unknown}; known: {', '.join(known)}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-datamover-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    ok = True
    try:
        for name in chosen:
            ok &= _bench(work / name, known[name], args, peers)
            shutil.rmtree(work / name, ignore_errors=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(f"goals met: {'yes' if ok else 'no'}")
    return 0


def _bench(work: Path, ds: Dataset, args: argparse.Namespace, peers: dict[str, Path]) -> bool:
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    t = time.perf_counter()
    files = ds.make(src)
    nfiles, nbytes = tree_size(src)
    mb = nbytes / 1e6
    took = time.perf_counter() - t
    print(f"== {ds.name}: {nfiles} files, {nbytes / MIB:.0f} MiB (generated in {took:.1f}s)", flush=True)
    runs: dict[tuple[str, str], list[Run]] = {(s, tool): [] for s in ds.steps for tool in TOOLS}
    for rnd in range(args.rounds):
        # Fresh directories per round, all deleted only at the end: right after deleting tens of
        # thousands of files, creating files is several times slower on some file systems, which
        # would penalise whoever restores next.
        rdir = work / f"round{rnd + 1}"
        shutil.rmtree(rdir, ignore_errors=True)
        rdir.mkdir()
        order = TOOLS[rnd % 3:] + TOOLS[:rnd % 3]
        tools = {name: _TOOL_TYPES[name](rdir, src, args, peers) for name in order}
        for step in ds.steps:
            if step == CHANGED:
                changed = ds.change(files, 100 + rnd)
            for name in order:
                tool = tools[name]
                run = tool.restore(rdir / f"restore-{name}") if step == RESTORE else tool.backup()
                runs[(step, name)].append(run)
        line = ", ".join(
            f"{step} " + "/".join(f"{runs[(step, tool)][-1].seconds:.2f}" for tool in TOOLS)
            for step in ds.steps
        )
        print(f"  round {rnd + 1} (ours/restic/kopia s): {line}; {changed / MIB:.1f} MiB changed", flush=True)
        if RESTORE in ds.steps:
            _check_identical(src, rdir / "restore-ours")
        if nfiles < 1000:
            # Few files (the 4 GiB one): deleting is cheap, and keeping every round's vaults and
            # restores would take tens of GiB of disk.
            shutil.rmtree(rdir, ignore_errors=True)
    ok = True
    best = {key: min(r.seconds for r in rs) for key, rs in runs.items()}
    for step in ds.steps:
        for peer in ("restic", "kopia"):
            ratio = best[(step, "ours")] / best[(step, peer)]
            ok &= ratio <= 1.0
            print(f"{ds.name} {step} ratio (ours/{peer}): {ratio:.2f}")
    for step in ds.steps:
        print(f"{ds.name} {step} " + ", ".join(
            f"{tool} {mb / best[(step, tool)]:.0f} MB/s {nfiles / best[(step, tool)]:.0f} files/s"
            for tool in TOOLS))
    for name in TOOLS:
        peak = max(r.rss_mib for (_, tool), rs in runs.items() if tool == name for r in rs)
        print(f"{ds.name} peak memory {name} MiB: {peak}")
        if name == "ours":
            ok &= peak <= PEAK_RSS_GOAL_MIB
    return ok


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
