"""pytest plugin for the oss2 conformance run (tests/conformance/oss2_sdk.py): deselects the
exclusions listed in ``$OSS2_CONFORMANCE_EXCLUDED`` and writes what ran to
``$OSS2_CONFORMANCE_REPORT`` (JSON).  Self-contained: the run copies it beside the SDK's tests, where
a ``tests`` directory (theirs) hides this repository's package."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

EXCLUDED: dict[str, str] = json.loads(Path(os.environ["OSS2_CONFORMANCE_EXCLUDED"]).read_text())
_outcomes: dict[str, str] = {}
_excluded: list[str] = []
_used: set[str] = set()
_messages: dict[str, str] = {}


def _exclusion(nodeid: str) -> str | None:
    """The EXCLUDED key covering ``nodeid`` (module, class or test), if any."""
    local = nodeid.split("/", 1)[-1]
    parts = local.split("::")
    for n in range(len(parts), 0, -1):
        key = "::".join(parts[:n])
        if key in EXCLUDED:
            return key
    return None


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
        crash = getattr(report.longrepr, "reprcrash", None)
        _messages.setdefault(report.nodeid, f"{report.when}: {crash.message if crash else report.longrepr}")
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
                "messages": _messages,
            },
            out,
        )
