"""Fixtures of the vault tests: the local OSS server, and stores of both backends.

Every test that takes ``store`` runs twice: against a FileStore in a temporary directory, and
against an OssStore talking through oss2 over HTTP to the local OSS server (a fresh bucket per
test, faults cleared afterwards).  Small part sizes make the OSS store use multipart uploads and
parallel ranged downloads even for the few-MiB objects of the contract tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localdev.oss_server import LocalOssServer
from vault.credentials import OssCredentials
from vault.filestore import FileStore
from vault.ossstore import OssStore
from vault.store import ObjectStore

ACCESS_KEY_ID = "LTAI-test-key-id"
ACCESS_KEY_SECRET = "test-secret-that-must-not-leak"
CREDENTIALS = OssCredentials(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
REGION = "cn-hangzhou"
SMALL_PARTS = {"part_size": 256 * 1024, "multipart_threshold": 512 * 1024, "threads": 4, "backoff": 0.01}

_bucket_numbers = itertools.count()


@pytest.fixture(scope="session")
def oss_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalOssServer]:
    server = LocalOssServer(tmp_path_factory.mktemp("local-oss"), keys={ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                            region=REGION)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(oss_server: LocalOssServer) -> Iterator[str]:
    """A fresh, empty Standard bucket on the local server; faults cleared afterwards."""
    name = f"vault-test-{next(_bucket_numbers)}"
    oss_server.create_bucket(name)
    try:
        yield name
    finally:
        oss_server.clear_faults()


@pytest.fixture
def make_oss_store(oss_server: LocalOssServer, bucket: str) -> Callable[..., OssStore]:
    def make(prefix: str = "vault", **options: object) -> OssStore:
        settings: dict[str, object] = {**SMALL_PARTS, **options}
        settings.setdefault("credentials", CREDENTIALS)
        return OssStore(bucket, prefix, endpoint=oss_server.endpoint, region=REGION, **settings)  # type: ignore[arg-type]

    return make


@pytest.fixture(params=["file", "oss"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], ObjectStore]:
    """A factory of stores over ONE location (two calls = two clients of the same vault)."""
    if backend == "file":
        return lambda: FileStore(tmp_path / "vault", create=True)
    make_oss: Callable[..., OssStore] = request.getfixturevalue("make_oss_store")
    return lambda: make_oss()


@pytest.fixture
def store(make_store: Callable[[], ObjectStore]) -> ObjectStore:
    return make_store()
