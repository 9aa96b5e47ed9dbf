"""The conformance run's pytest plugin, on tests of its own: a test listed as racy is run again after
a failed attempt and counts by its last one; a test failing every attempt (what a fault of the server
does) still fails; exclusions are left out; a listed test that does not exist is reported stale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PLUGIN = Path(__file__).with_name("oss2_plugin.py")

TESTS = '''
import os

def test_racy():
    n = int(open("count").read()) if os.path.exists("count") else 0
    open("count", "w").write(str(n + 1))
    assert n >= 2, f"attempt {n + 1} lost the race"

def test_broken():
    assert False, "the server answered wrongly"

def test_fine():
    pass

def test_left_out():
    assert False, "never runs"
'''


def test_retried_tests_count_by_their_last_attempt(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(TESTS)
    (tmp_path / "conformance_plugin.py").write_text(PLUGIN.read_text())
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "excluded.json").write_text(json.dumps({"test_sample.py::test_left_out": "not served"}))
    retried = {
        "test_sample.py::test_racy": {"reason": "a race", "attempts": 4},
        "test_sample.py::test_broken": {"reason": "a race", "attempts": 3},
        "test_sample.py::test_gone": {"reason": "a race", "attempts": 2},
    }
    (tmp_path / "retried.json").write_text(json.dumps(retried))
    env = {
        "OSS2_CONFORMANCE_EXCLUDED": str(tmp_path / "excluded.json"),
        "OSS2_CONFORMANCE_RETRIED": str(tmp_path / "retried.json"),
        "OSS2_CONFORMANCE_REPORT": str(tmp_path / "report.json"),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conformance_plugin",
         "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), "test_sample.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr  # test_broken fails
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["selected"], report["passed"], report["excluded"]) == (3, 2, 1), report
    assert report["failed"] == ["test_sample.py::test_broken"]
    assert (tmp_path / "count").read_text() == "3"  # two lost races, then a pass
    attempts = report["retried"]
    assert [m.split("\n")[0] for m in attempts["test_sample.py::test_racy"]] == [
        "call: AssertionError: attempt 1 lost the race", "call: AssertionError: attempt 2 lost the race"]
    assert len(attempts["test_sample.py::test_broken"]) == 2  # and the third, reported as the result
    assert report["stale_retries"] == ["test_sample.py::test_gone"]
