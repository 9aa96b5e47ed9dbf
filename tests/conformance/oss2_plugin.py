"""pytest plugin for the oss2 conformance run (tests/conformance/oss2_sdk.py): deselects the
exclusions listed in ``$OSS2_CONFORMANCE_EXCLUDED``, retries the racy tests listed in
``$OSS2_CONFORMANCE_RETRIED`` and writes what ran to
``$OSS2_CONFORMANCE_REPORT`` (JSON).  Self-contained: the run copies it beside the SDK's tests, where
a ``tests`` directory (theirs) hides this repository's package."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from _pytest.runner import runtestprotocol

EXCLUDED: dict[str, str] = json.loads(Path(os.environ["OSS2_CONFORMANCE_EXCLUDED"]).read_text())
RETRIED: dict[str, Any] = json.loads(Path(os.environ["OSS2_CONFORMANCE_RETRIED"]).read_text())
_outcomes: dict[str, str] = {}
_attempts: dict[str, list[str]] = {}  # a retried test's failed attempts, with their messages
_excluded: list[str] = []
_used: set[str] = set()
_retried_used: set[str] = set()  # RETRIED keys that matched a test
_messages: dict[str, str] = {}


def _key(nodeid: str, table: dict[str, Any]) -> str | None:
    """The key of ``table`` covering ``nodeid`` (module, class or test), if any."""
    local = nodeid.split("/", 1)[-1]
    parts = local.split("::")
    for n in range(len(parts), 0, -1):
        key = "::".join(parts[:n])
        if key in table:
            return key
    return None


def _exclusion(nodeid: str) -> str | None:
    return _key(nodeid, EXCLUDED)


def _crash(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    return f"{report.when}: {crash.message if crash else report.longrepr}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """A test in RETRIED runs again after a failed attempt, up to its attempts; only the last
    attempt is reported as the test's result, the failed ones are kept for the summary."""
    key = _key(item.nodeid, RETRIED)
    if key is None:
        return None
    _retried_used.add(key)
    attempts = int(RETRIED[key]["attempts"])
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for attempt in range(1, attempts + 1):
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        failed = [r for r in reports if r.failed]
        if not failed or attempt == attempts:
            break
        _attempts.setdefault(item.nodeid, []).append(_crash(failed[0]))
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _kms_as_rsa() -> None:
    """The SDK's crypto tests choose between an RSA and a KMS CryptoBucket; KMS is another service
    (unreachable here), so the KMS one is the RSA one (see oss2_excluded.KMS_AS_RSA)."""
    common = sys.modules.get("oss2_sdk_tests.common")
    if common is None or getattr(common.OssTestCase, "_kms_as_rsa", False):
        return
    original = common.OssTestCase.setUp

    def set_up(self: Any) -> None:
        original(self)
        self.kms_crypto_bucket = self.rsa_crypto_bucket

    common.OssTestCase.setUp = set_up
    common.OssTestCase._kms_as_rsa = True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("OSS2_CONFORMANCE_KMS_AS_RSA") == "1":
        _kms_as_rsa()
    kept, dropped = [], []
    for item in items:
        key = _exclusion(item.nodeid)
        if key is None:
            kept.append(item)
        else:
            _used.add(key)
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        _excluded.extend(i.nodeid for i in dropped)
    items[:] = kept


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        _outcomes[report.nodeid] = "failed"
        _messages.setdefault(report.nodeid, _crash(report))
    elif report.skipped:
        _outcomes.setdefault(report.nodeid, "skipped")
    elif report.when == "call":
        _outcomes.setdefault(report.nodeid, "passed")


def pytest_sessionfinish(session: pytest.Session, exitstatus: Any) -> None:
    path = os.environ.get("OSS2_CONFORMANCE_REPORT")
    if not path:
        return
    by = {k: sorted(n for n, o in _outcomes.items() if o == k) for k in ("passed", "failed", "skipped")}
    with open(path, "w") as out:
        json.dump(
            {
                "selected": len(_outcomes),
                "passed": len(by["passed"]),
                "failed": by["failed"] + by["skipped"],  # a skipped test did not show conformance
                "excluded": len(_excluded),
                "stale_exclusions": sorted(set(EXCLUDED) - _used),
                "stale_retries": sorted(set(RETRIED) - _retried_used),
                "retried": _attempts,
                "messages": _messages,
            },
            out,
        )
