"""Vault I/O benchmark: upload and download of 1 GiB in large objects, to file:// and to the local
OSS server, against ``cp`` of the same data in the same run.

Run: ``.venv/bin/python bench/vault_io.py`` (options: --size-mib, --objects, --repeat, --skip-oss).
Prints ``name: value`` lines; ratios are time ratios, ours/cp (1.0 = as fast as cp, 2.0 = twice as
long).  Every timing is the best of ``--repeat`` rounds; within a round cp and our steps alternate,
each started after ``sync``, so all see the same (noisy) disk.  Our file:// writes are durable
(fsync before they become visible) and cp's are not, so a cp+fsync baseline is printed too.  The
OSS server runs in its own process (as OSS would), so client and server do not share one
interpreter lock; it is a Python test double, so its numbers measure the client's parallel
multipart path against a CPU-bound server, not OSS.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Runnable as a script from any directory: make the repository importable.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import blake3  # noqa: E402

from vault.credentials import OssCredentials  # noqa: E402
from vault.filestore import FileStore  # noqa: E402
from vault.ossstore import OssStore  # noqa: E402
from vault.store import ObjectStore  # noqa: E402

MiB = 1024 * 1024
GOAL_FILE_RATIO = 1.5


def make_data(directory: Path, objects: int, size: int) -> list[Path]:
    directory.mkdir(parents=True)
    paths = []
    for n in range(objects):
        path = directory / f"object-{n:02d}.bin"
        # Incompressible and different per object, generated fast (BLAKE3 extendable output).
        path.write_bytes(blake3.blake3(f"vault bench {n}".encode()).digest(length=size))
        paths.append(path)
    return paths


def timed(prepare: Callable[[], None], action: Callable[[], None]) -> float:
    prepare()
    os.sync()
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


Step = tuple[Callable[[], None], Callable[[], None]]  # (prepare, timed action)


def best_times(runs: int, steps: dict[str, Step]) -> dict[str, float]:
    """Best time of each step over ``runs`` rounds; steps alternate so all see the same disk weather."""
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(runs):
        for name, (prepare, action) in steps.items():
            best[name] = min(best[name], timed(prepare, action))
    return best


def digest(path: Path) -> bytes:
    return blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(path).digest()


def reset_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def upload(store: ObjectStore, sources: list[Path]) -> None:
    for path in sources:
        with open(path, "rb", buffering=0) as f:
            store.put_stream(f"bench/{path.name}", f, size=path.stat().st_size)


def download(store: ObjectStore, sources: list[Path], target: Path) -> None:
    for path in sources:
        with open(target / path.name, "wb") as out:
            store.get_stream(f"bench/{path.name}", out)


def verify(sources: list[Path], target: Path) -> None:
    for path in sources:
        if digest(path) != digest(target / path.name):
            raise SystemExit(f"downloaded {path.name} differs from the source")


def start_oss_server(root: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "localdev.oss_server", "--root", str(root), "--bucket", "bench-vault",
         "--key", "bench-ak:bench-secret"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("endpoint: "):
        proc.kill()
        raise SystemExit(f"local OSS server did not start: {line!r}")
    return proc, line.split(": ", 1)[1].strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024, help="total data (default 1024 = 1 GiB)")
    parser.add_argument("--objects", type=int, default=8, help="number of objects (default 8 x 128 MiB)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best time of each step counts")
    parser.add_argument("--threads", type=int, default=4, help="parallel parts of the OSS store")
    parser.add_argument("--skip-oss", action="store_true")
    parser.add_argument("--workdir", help="default: a temporary directory")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="vault-bench-", dir=args.workdir))
    total = args.size_mib * MiB
    size = total // args.objects
    mb = args.objects * size / 1e6
    server: subprocess.Popen[str] | None = None
    try:
        sources = make_data(work / "src", args.objects, size)
        copies = work / "cp-dst"
        print(f"data: {args.objects} objects x {size // MiB} MiB = {args.objects * size // MiB} MiB")
        print(f"workdir: {work}")

        def cp() -> None:
            subprocess.run(["cp", *map(str, sources), str(copies)], check=True)

        def cp_sync() -> None:
            cp()
            subprocess.run(["sync", *(str(copies / p.name) for p in sources)], check=True)

        file_store = FileStore(work / "file-vault", create=True)
        out = work / "file-out"
        upload(file_store, sources)  # the download steps read these objects
        best = best_times(args.repeat, {
            "cp": (lambda: reset_dir(copies), cp),
            "cp+fsync": (lambda: reset_dir(copies), cp_sync),
            "upload": (lambda: reset_dir(work / "file-upload"),
                       lambda: upload(FileStore(work / "file-upload"), sources)),
            "download": (lambda: reset_dir(out), lambda: download(file_store, sources, out)),
        })
        verify(sources, out)
        cp_time, cp_sync_time, up, down = best["cp"], best["cp+fsync"], best["upload"], best["download"]
        print(f"cp MB/s: {mb / cp_time:.0f}")
        print(f"cp+fsync MB/s: {mb / cp_sync_time:.0f}")
        print(f"file upload MB/s: {mb / up:.0f}")
        print(f"file download MB/s: {mb / down:.0f}")
        print(f"file upload ratio (ours/cp): {up / cp_time:.2f}")
        print(f"file download ratio (ours/cp): {down / cp_time:.2f}")
        print(f"file upload ratio (ours/cp+fsync): {up / cp_sync_time:.2f}")
        for what, ratio in (("upload", up / cp_time), ("download", down / cp_time)):
            verdict = "met" if ratio <= GOAL_FILE_RATIO else "not met"
            print(f"file {what} goal (within {GOAL_FILE_RATIO}x of cp): {verdict}")
        for leftover in ("file-vault", "file-upload", "file-out"):
            shutil.rmtree(work / leftover, ignore_errors=True)

        if not args.skip_oss:
            server, endpoint = start_oss_server(work / "oss-root")
            store = OssStore("bench-vault", "vault", credentials=OssCredentials("bench-ak", "bench-secret"),
                             endpoint=endpoint, threads=args.threads)
            out = work / "oss-out"
            oss = best_times(max(1, min(args.repeat, 2)), {
                "upload": (lambda: None, lambda: upload(store, sources)),
                "download": (lambda: reset_dir(out), lambda: download(store, sources, out)),
            })
            up, down = oss["upload"], oss["download"]
            verify(sources, out)
            print(f"oss parallel parts: {args.threads} x {store.part_size // MiB} MiB")
            print(f"oss upload MB/s: {mb / up:.0f}")
            print(f"oss download MB/s: {mb / down:.0f}")
            print(f"oss upload ratio (ours/cp): {up / cp_time:.2f}")
            print(f"oss download ratio (ours/cp): {down / cp_time:.2f}")
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
