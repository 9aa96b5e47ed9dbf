"""Fixtures: a local ECS endpoint on a free port, driven by the real SDK client over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alicloud.credentials import AccessKey
from alicloud.ecs import EcsClient
from localdev.ecs_server import LocalEcsServer, ManualClock
from tests.alicloud.constants import FAST, KEY_ID, REGIONS, SECRET


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ecs_server(clock: ManualClock) -> Iterator[LocalEcsServer]:
    # 20 GiB/s create and 5 GiB/s copy: a 40 GiB disk snapshots in 2 s and copies in 8 s of clock time.
    server = LocalEcsServer(
        {KEY_ID: SECRET},
        REGIONS,
        clock=clock,
        create_gib_per_second=20.0,
        copy_gib_per_second=5.0,
        seed=7,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def credentials() -> AccessKey:
    return AccessKey(KEY_ID, SECRET)


@pytest.fixture
def client(ecs_server: LocalEcsServer, credentials: AccessKey) -> EcsClient:
    return EcsClient("cn-hangzhou", credentials, ecs_server.endpoint, backoff=FAST)
