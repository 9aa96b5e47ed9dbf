"""The ObjectStore contract, run against both backends (FileStore and OssStore via the local server)."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from vault.store import (
    InvalidKey,
    InvalidRange,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
)

MiB = 1024 * 1024


def keys_of(store: ObjectStore, prefix: str = "", **kwargs: object) -> list[str]:
    return [e.key if isinstance(e, ObjectInfo) else e for e in store.list(prefix, **kwargs)]  # type: ignore[arg-type]


def test_put_get_head_roundtrip(store: ObjectStore) -> None:
    info = store.put("a/b.json", b'{"x": 1}')
    assert info.key == "a/b.json" and info.size == 8
    assert store.get("a/b.json") == b'{"x": 1}'
    head = store.head("a/b.json")
    assert head.size == 8 and head.etag
    assert store.exists("a/b.json") and not store.exists("a/c.json")


def test_overwrite_replaces_whole_object(store: ObjectStore) -> None:
    store.put("k", b"first version, long")
    store.put("k", b"second")
    assert store.get("k") == b"second"
    assert store.head("k").size == 6


def test_empty_object(store: ObjectStore) -> None:
    store.put("empty", b"")
    assert store.get("empty") == b""
    assert store.head("empty").size == 0
    out = io.BytesIO()
    assert store.get_stream("empty", out) == 0 and out.getvalue() == b""


def test_missing_object(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound) as err:
        store.get("no/such")
    assert err.value.key == "no/such"
    with pytest.raises(ObjectNotFound):
        store.head("no/such")
    with pytest.raises(ObjectNotFound):
        store.get_stream("no/such", io.BytesIO())


def test_put_if_absent(store: ObjectStore) -> None:
    store.put("claim", b"mine", if_absent=True)
    with pytest.raises(ObjectExists) as err:
        store.put("claim", b"theirs", if_absent=True)
    assert err.value.key == "claim"
    assert store.get("claim") == b"mine"


def test_put_if_absent_race_has_one_winner(store: ObjectStore) -> None:
    winners: list[int] = []
    losers: list[int] = []
    barrier = threading.Barrier(8)

    def contender(n: int) -> None:
        barrier.wait()
        try:
            store.put("race/lock.json", f"writer {n}".encode(), if_absent=True)
            winners.append(n)
        except ObjectExists:
            losers.append(n)

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(losers) == 7
    assert store.get("race/lock.json") == f"writer {winners[0]}".encode()


def test_ranges(store: ObjectStore) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB spanning several checksum blocks
    store.put("r", data)
    assert store.get("r", start=0, end=0) == data[:1]
    assert store.get("r", start=10, end=19) == data[10:20]
    assert store.get("r", start=300_000, end=700_000) == data[300_000:700_001]
    assert store.get("r", start=len(data) - 5) == data[-5:]
    assert store.get("r", end=99) == data[:100]
    assert store.get("r", start=5, end=len(data) + 1000) == data[5:]  # end is clamped
    with pytest.raises(InvalidRange):
        store.get("r", start=len(data))
    with pytest.raises(InvalidRange):
        store.get("r", start=10, end=5)


def test_put_stream_known_and_unknown_size(store: ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(3 * MiB + 12345)
    store.put_stream("big/known", io.BytesIO(data), size=len(data))
    store.put_stream("big/unknown", io.BytesIO(data))
    for key in ("big/known", "big/unknown"):
        assert store.head(key).size == len(data)
        assert store.get(key) == data
        path = tmp_path / key.replace("/", "_")
        with open(path, "wb") as f:
            assert store.get_stream(key, f) == len(data)
        assert path.read_bytes() == data
        buffer = io.BytesIO()
        store.get_stream(key, buffer)
        assert buffer.getvalue() == data


def test_put_stream_small_and_exact_part_boundary(store: ObjectStore) -> None:
    for size in (0, 1, 256 * 1024, 512 * 1024, 768 * 1024):
        data = os.urandom(size)
        store.put_stream(f"s/{size}", io.BytesIO(data))
        assert store.get(f"s/{size}") == data


def test_put_stream_size_mismatch_leaves_nothing(store: ObjectStore) -> None:
    data = os.urandom(MiB)
    with pytest.raises(ObjectStoreError):
        store.put_stream("short", io.BytesIO(data), size=len(data) + 1)
    with pytest.raises(ObjectStoreError):
        store.put_stream("long", io.BytesIO(data), size=len(data) - 1)
    assert not store.exists("short") and not store.exists("long")


def test_put_stream_if_absent(store: ObjectStore) -> None:
    data = os.urandom(2 * MiB)
    store.put_stream("once", io.BytesIO(data), if_absent=True)
    with pytest.raises(ObjectExists):
        store.put_stream("once", io.BytesIO(os.urandom(2 * MiB)), if_absent=True)
    assert store.get("once") == data


def test_list_in_key_order_with_prefix_and_pages(store: ObjectStore) -> None:
    keys = ["a-b", "a/b", "a/c/d", "a/c/e", "a0", "b", "b/x/y/z", "é/1", "a/\u4e2d"]
    for key in keys:
        store.put(key, key.encode())
    expected = sorted(keys)  # code-point order equals OSS's UTF-8 byte order
    assert keys_of(store) == expected
    assert keys_of(store, page_size=2) == expected
    assert keys_of(store, "a/") == [k for k in expected if k.startswith("a/")]
    assert keys_of(store, "a") == [k for k in expected if k.startswith("a")]
    infos = [e for e in store.list("b") if isinstance(e, ObjectInfo)]
    assert {i.key: i.size for i in infos} == {"b": 1, "b/x/y/z": 7}


def test_list_with_delimiter(store: ObjectStore) -> None:
    for key in ["backups/one/backup.json", "backups/one/lock.json", "backups/one/res/x",
                "backups/two/lock.json", "backups/top.json", "data/p1", "vault.json"]:
        store.put(key, b"x")
    assert keys_of(store, delimiter="/") == ["backups/", "data/", "vault.json"]
    assert keys_of(store, "backups/", delimiter="/") == ["backups/one/", "backups/top.json", "backups/two/"]
    assert keys_of(store, "backups/", delimiter="/", page_size=1) == [
        "backups/one/", "backups/top.json", "backups/two/"]
    assert keys_of(store, "backups/one/", delimiter="/") == [
        "backups/one/backup.json", "backups/one/lock.json", "backups/one/res/"]
    assert keys_of(store, "backups/o", delimiter="/") == ["backups/one/"]
    assert keys_of(store, "nothing/", delimiter="/") == []


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put("d/1", b"x")
    store.put("d/2", b"y")
    store.delete("d/1")
    store.delete("d/1")
    store.delete("never/existed")
    assert keys_of(store, "d/") == ["d/2"]
    store.delete("d/2")
    assert keys_of(store) == []
    assert keys_of(store, delimiter="/") == []


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/./b", "../up", "a/..", "x" * 1024, "nul\x00"])
def test_invalid_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        store.put(key, b"x")


def test_check_and_storage_class(store: ObjectStore) -> None:
    store.check()
    assert store.storage_class() == "Standard"  # type: ignore[attr-defined]


def test_two_clients_see_the_same_objects(make_store: object) -> None:
    first = make_store()  # type: ignore[operator]
    second = make_store()  # type: ignore[operator]
    first.put("shared/x", b"from first")
    assert second.get("shared/x") == b"from first"
    with pytest.raises(ObjectExists):
        second.put("shared/x", b"from second", if_absent=True)
