"""The oss2 SDK's own test suite, run against the local OSS server (`make conformance`).

The local OSS server (localdev/oss_server.py) stands for OSS in every test of the product; this run
checks it against tests nobody here wrote: the test modules shipped in the sdist of the installed
oss2 release (fetched once with ``pip download`` into ``.cache/``, unchanged), for the operations the
product and common tools use.  Tests of features the double refuses (and the product never uses) are
listed in :mod:`tests.conformance.oss2_excluded` with the reason; everything else must pass.  The
few tests with a race of their own (the SDK's, not the server's) are listed there too and run
again after a failed attempt, every attempt printed.

    python -m tests.conformance.oss2_sdk [-k EXPR] [--keep]

prints ``oss2 conformance: selected N, passed P, failed F, excluded E`` and exits non-zero when a
selected test failed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from localdev.oss_server import LocalOssServer
from tests.conformance.oss2_excluded import EXCLUDED, KMS_AS_RSA, MODULES, RETRIED, RETRY_ATTEMPTS

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "oss2-sdk"
PLUGIN = "oss2_conformance_plugin"
PACKAGE = "oss2_sdk_tests"  # the sdist's `tests` package, renamed so it cannot shadow ours
ACCESS_KEY, SECRET = "conformance-ak", "conformance-secret"


def sdist(version: str) -> Path:
    """The oss2 sdist of ``version`` (its tests are in it), downloaded once."""
    path = CACHE / f"oss2-{version}.tar.gz"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             "-d", str(CACHE), f"oss2=={version}"],
            check=True,
        )
    if not path.exists():
        raise SystemExit(f"pip download did not produce {path}")
    return path


def extract_tests(archive: Path, into: Path) -> Path:
    """The sdist's tests/ (and its LICENSE beside them) as package ``PACKAGE`` under ``into``."""
    target = into / PACKAGE
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/")[0]
        wanted = (f"{top}/tests/", f"{top}/LICENSE")
        members = [m for m in tar.getmembers() if m.name.startswith(wanted)]
        tar.extractall(into / "sdist", members=members, filter="data")
    shutil.copytree(into / "sdist" / top / "tests", target)
    shutil.copy(into / "sdist" / top / "LICENSE", target / "LICENSE")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="keyword", help="only tests matching this pytest -k expression")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    version = importlib.metadata.version("oss2")
    work = Path(tempfile.mkdtemp(prefix="oss2-conformance-"))
    try:
        tests = extract_tests(sdist(version), work)
        missing = [m for m in MODULES if not (tests / m).exists()]
        if missing:
            raise SystemExit(f"oss2 {version}'s sdist has no {', '.join(missing)}")
        (work / "pytest.ini").write_text("[pytest]\n")
        # The tests open their data files as tests/<name>, relative to where they run.
        (work / "tests").symlink_to(PACKAGE)
        report = work / "report.json"
        (work / "exclusions.json").write_text(json.dumps(EXCLUDED))
        retried = {key: {"reason": why, "attempts": RETRY_ATTEMPTS} for key, why in RETRIED.items()}
        (work / "retried.json").write_text(json.dumps(retried))
        shutil.copy(Path(__file__).with_name("oss2_plugin.py"), work / f"{PLUGIN}.py")
        with LocalOssServer(work / "oss", {ACCESS_KEY: SECRET}, advertise_self=True) as server:
            env = {
                **os.environ,
                "OSS_TEST_ACCESS_KEY_ID": ACCESS_KEY,
                "OSS_TEST_ACCESS_KEY_SECRET": SECRET,
                "OSS_TEST_ENDPOINT": server.endpoint,
                "OSS_TEST_REGION": server.region,
                "OSS2_CONFORMANCE_REPORT": str(report),
                "OSS2_CONFORMANCE_EXCLUDED": str(work / "exclusions.json"),
                "OSS2_CONFORMANCE_RETRIED": str(work / "retried.json"),
                "OSS2_CONFORMANCE_KMS_AS_RSA": "1" if KMS_AS_RSA else "0",
            }
            command = [
                sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                PLUGIN, "-c", str(work / "pytest.ini"), "--rootdir", str(work),
                "--timeout", "120", "-o", "log_level=WARNING", "--no-header", "-rf",
                *(["-k", args.keyword] if args.keyword else []),
                *(f"{PACKAGE}/{m}" for m in MODULES),
            ]
            done = subprocess.run(command, cwd=work, env=env)
        result = json.loads(report.read_text()) if report.exists() else None
        if result is None:
            print(f"oss2 conformance: pytest ended {done.returncode} before reporting", flush=True)
            return 1
        print(
            f"oss2 conformance (oss2 {version}, {len(MODULES)} modules): selected {result['selected']}, "
            f"passed {result['passed']}, failed {len(result['failed'])}, excluded {result['excluded']} "
            f"({len(EXCLUDED)} listed with reasons in tests/conformance/oss2_excluded.py)"
            + ("; KMS client-side encryption run with the RSA provider" if KMS_AS_RSA else ""),
            flush=True,
        )
        for nodeid in result["failed"]:
            print(f"  FAILED {nodeid}: {result['messages'].get(nodeid, 'skipped')[:300]}")
        for nodeid, failures in result["retried"].items():
            outcome = "failed" if nodeid in result["failed"] else "passed"
            print(f"  retried {nodeid} (a race of the SDK's own, see oss2_excluded.RETRIED): "
                  f"{len(failures)} failed attempt(s) before the last, which {outcome}")
            for message in failures:
                print(f"    {message[:200]}")
        for key in result["stale_exclusions"]:
            print(f"  stale exclusion (no such test): {key}")
        for key in result["stale_retries"]:
            print(f"  stale retry (no such test): {key}")
        ok = not result["failed"] and not result["stale_exclusions"] and not result["stale_retries"]
        ok = ok and result["passed"] == result["selected"]
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
