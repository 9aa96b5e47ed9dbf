"""OssStore specifics: endpoints, error mapping, encryption headers, faults, aborted uploads."""

from __future__ import annotations

import io
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import oss2
import pytest

from localdev.oss_server import LocalOssServer
from tests.vault.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, CREDENTIALS, REGION
from vault.credentials import OssCredentials
from vault.ossstore import OssStore, endpoint_for
from vault.store import ObjectCorrupt, ObjectNotFound, ObjectStoreError, StoreUnavailable

MiB = 1024 * 1024
GiB = 1024 * MiB


class PatternStream(io.RawIOBase):
    """``size`` pseudo-random bytes made on the fly (1 GiB never sits in memory), hashed as read."""

    def __init__(self, size: int, seed: int = 1) -> None:
        self.size = size
        self.pos = 0
        self.base = blake3.blake3(seed.to_bytes(8, "little")).digest(length=4 * MiB + 4096)
        self.hash = blake3.blake3()

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        n = min(len(buf), self.size - self.pos, 4 * MiB)
        if n <= 0:
            return 0
        block, offset = divmod(self.pos, 4 * MiB)
        shift = (block * 4099) % 4096  # every 4 MiB block differs from its neighbours
        start = shift + offset
        chunk = self.base[start : start + n]
        if len(chunk) < n:  # wraps past the end of base: take the rest from the front
            chunk += self.base[: n - len(chunk)]
        buf[:n] = chunk
        self.hash.update(chunk)
        self.pos += n
        return n


class HashingSink(io.RawIOBase):
    def __init__(self) -> None:
        self.hash = blake3.blake3()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.hash.update(data)
        self.size += len(data)
        return len(data)


def uploads_left(server: LocalOssServer, bucket: str) -> int:
    state = server.bucket(bucket)
    assert state is not None
    return len(state.uploads)


# --- endpoints and construction -------------------------------------------------------------
def test_endpoint_follows_region_and_network() -> None:
    assert endpoint_for("cn-hangzhou", "internal") == "https://oss-cn-hangzhou-internal.aliyuncs.com"
    assert endpoint_for("ap-southeast-1", "public") == "https://oss-ap-southeast-1.aliyuncs.com"
    internal = OssStore("my-bucket", "p", credentials=CREDENTIALS, region="cn-beijing", network="internal")
    public = OssStore("my-bucket", "p", credentials=CREDENTIALS, region="cn-beijing", network="public")
    assert internal.endpoint == "https://oss-cn-beijing-internal.aliyuncs.com"
    assert public.endpoint == "https://oss-cn-beijing.aliyuncs.com"
    assert internal.url == "oss://my-bucket/p/"
    with pytest.raises(ValueError, match="network"):
        endpoint_for("cn-beijing", "lan")


def test_credentials_never_show(make_oss_store: Callable[..., OssStore]) -> None:
    store = make_oss_store()
    assert ACCESS_KEY_SECRET not in repr(store) and ACCESS_KEY_SECRET not in repr(CREDENTIALS)
    assert ACCESS_KEY_ID not in repr(CREDENTIALS)  # masked: LTAI****-id


# --- errors ---------------------------------------------------------------------------------
def test_wrong_secret_is_unavailable(make_oss_store: Callable[..., OssStore]) -> None:
    store = make_oss_store(credentials=OssCredentials(ACCESS_KEY_ID, "wrong-secret-value"))
    with pytest.raises(StoreUnavailable, match="secret does not match") as err:
        store.check()
    assert "wrong-secret-value" not in str(err.value)


def test_unknown_key_id_is_unavailable(make_oss_store: Callable[..., OssStore]) -> None:
    store = make_oss_store(credentials=OssCredentials("LTAI-nobody", ACCESS_KEY_SECRET))
    with pytest.raises(StoreUnavailable, match="AccessKey id is not valid"):
        store.put("k", b"x")


def test_missing_bucket_is_unavailable(oss_server: LocalOssServer) -> None:
    store = OssStore("no-such-bucket", "", credentials=CREDENTIALS, endpoint=oss_server.endpoint,
                     region=REGION)
    with pytest.raises(StoreUnavailable, match="bucket no-such-bucket in region cn-hangzhou does not exist"):
        store.check()
    with pytest.raises(StoreUnavailable):
        store.exists("k")  # HEAD answers carry the error code in a header: still NoSuchBucket


def test_access_denied_is_unavailable(oss_server: LocalOssServer,
                                      make_oss_store: Callable[..., OssStore]) -> None:
    store = make_oss_store()
    oss_server.set_faults(access_denied=True)
    with pytest.raises(StoreUnavailable, match="no permission"):
        store.get("k")


def test_unreachable_endpoint_is_unavailable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = OssStore("bkt", "", credentials=CREDENTIALS, endpoint=f"http://127.0.0.1:{port}", attempts=2,
                     backoff=0.01, timeout=2)
    with pytest.raises(StoreUnavailable, match="cannot reach OSS endpoint"):
        store.check()


def test_kms_permission_is_an_object_failure(oss_server: LocalOssServer,
                                             make_oss_store: Callable[..., OssStore]) -> None:
    store = make_oss_store(encryption="kms", kms_key_id="key-1")
    oss_server.set_faults(kms_denied=True)
    with pytest.raises(ObjectStoreError, match="KMS") as err:
        store.put("k", b"x")
    assert not isinstance(err.value, StoreUnavailable)


def test_corrupted_object_is_detected(oss_server: LocalOssServer, bucket: str,
                                      make_oss_store: Callable[..., OssStore], tmp_path: Path) -> None:
    store = make_oss_store()
    data = os.urandom(3 * MiB)
    store.put_stream("p", io.BytesIO(data))
    state = oss_server.bucket(bucket)
    assert state is not None
    segment = state.objects["vault/p"].segments[1]
    path = state.data_path(segment.file)
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0x01
    path.write_bytes(bytes(raw))  # bit rot at rest: OSS's stored CRC no longer matches
    with pytest.raises(ObjectCorrupt) as err:
        store.get("p")
    assert err.value.key == "p"
    with pytest.raises(ObjectCorrupt):
        store.get_stream("p", HashingSink())  # type: ignore[arg-type]
    with open(tmp_path / "out", "wb") as out, pytest.raises(ObjectCorrupt):
        store.get_stream("p", out)  # the parallel ranged path


@pytest.mark.parametrize("parallel", [True, False])
def test_an_object_replaced_mid_read_is_named_not_mixed(oss_server: LocalOssServer, bucket: str,
                                                        make_oss_store: Callable[..., OssStore],
                                                        tmp_path: Path, parallel: bool) -> None:
    """Reads pin the ETag they started with (If-Match): an object replaced between the first look and
    the ranged reads (parallel), or between a cut connection and its resume (sequential), fails as
    "replaced while it was read" — never bytes of two versions, never a false "corrupt"."""
    store = make_oss_store()
    first, second = os.urandom(3 * MiB), os.urandom(3 * MiB)
    store.put_stream("p", io.BytesIO(first))
    real_head = store._bucket.head_object
    replaced: list[bool] = []

    def head_then_replace(key: str, **kwargs: object) -> object:
        meta = real_head(key, **kwargs)
        if not replaced:
            replaced.append(True)
            make_oss_store().put_stream("p", io.BytesIO(second))
        return meta

    store._bucket.head_object = head_then_replace
    out_path = tmp_path / "out"
    with open(out_path, "wb") as out, pytest.raises(ObjectStoreError) as err:
        store.get_stream("p", out if parallel else HashingSink())  # type: ignore[arg-type]
    assert not isinstance(err.value, ObjectCorrupt), err.value
    assert "replaced while it was read" in str(err.value) and err.value.key == "p"
    # Read again from the start, the new version comes whole.
    with open(out_path, "wb") as out:
        assert store.get_stream("p", out) == len(second)
    assert out_path.read_bytes() == second


# --- encryption and credentials -------------------------------------------------------------
@pytest.mark.parametrize(("encryption", "key_id", "expected"), [
    ("oss-managed", None, {"x-oss-server-side-encryption": "AES256"}),
    ("kms", "kms-key-7",
     {"x-oss-server-side-encryption": "KMS", "x-oss-server-side-encryption-key-id": "kms-key-7"}),
])
def test_server_side_encryption_headers(oss_server: LocalOssServer, bucket: str,
                                        make_oss_store: Callable[..., OssStore], encryption: str,
                                        key_id: str | None, expected: dict[str, str]) -> None:
    store = make_oss_store(encryption=encryption, kms_key_id=key_id)
    store.put("small", b"x")
    store.put_stream("large", io.BytesIO(os.urandom(2 * MiB)))
    state = oss_server.bucket(bucket)
    assert state is not None
    for key in ("vault/small", "vault/large"):
        headers = state.objects[key].headers
        assert {k: headers[k] for k in expected} == expected


def test_sts_token_credentials(tmp_path: Path) -> None:
    server = LocalOssServer(tmp_path, keys={"STS.key": "sts-secret"}, security_tokens={"STS.key": "token-1"})
    endpoint = server.start()
    try:
        server.create_bucket("sts-bucket")
        good = OssStore("sts-bucket", "", credentials=OssCredentials("STS.key", "sts-secret", "token-1"),
                        endpoint=endpoint)
        good.put("k", b"x")
        assert good.get("k") == b"x"
        stale = OssStore("sts-bucket", "", credentials=OssCredentials("STS.key", "sts-secret", "token-0"),
                         endpoint=endpoint, attempts=1)
        with pytest.raises(StoreUnavailable):
            stale.get("k")
    finally:
        server.stop()


# --- multipart: aborts and leftovers --------------------------------------------------------
def test_interrupted_multipart_upload_is_aborted(oss_server: LocalOssServer, bucket: str,
                                                 make_oss_store: Callable[..., OssStore]) -> None:
    store = make_oss_store()

    class Interrupted(PatternStream):
        def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
            if self.pos >= 5 * 256 * 1024:
                raise KeyboardInterrupt  # the worker is being stopped mid-upload
            return super().readinto(buf)

    with pytest.raises(KeyboardInterrupt):
        store.put_stream("big", Interrupted(8 * MiB))  # type: ignore[arg-type]
    assert uploads_left(oss_server, bucket) == 0
    with pytest.raises(ObjectNotFound):
        store.head("big")


def test_failed_multipart_upload_is_aborted(oss_server: LocalOssServer, bucket: str,
                                            make_oss_store: Callable[..., OssStore]) -> None:
    store = make_oss_store(attempts=2)

    class DenyAfterFirstParts(PatternStream):
        def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
            if self.pos >= 3 * 256 * 1024 and not oss_server.faults.missing_buckets:
                oss_server.set_faults(missing_buckets=[bucket])  # the bucket vanishes mid-upload
            return super().readinto(buf)

    with pytest.raises(StoreUnavailable, match="does not exist"):
        store.put_stream("big", DenyAfterFirstParts(4 * MiB))  # type: ignore[arg-type]
    oss_server.clear_faults()
    # The abort could not reach the bucket either: the leftover is found and removed later.
    assert uploads_left(oss_server, bucket) == 1
    assert store.cleanup_incomplete_uploads(older_than=0) == 1
    assert uploads_left(oss_server, bucket) == 0


def test_cleanup_keeps_recent_uploads_and_other_prefixes(oss_server: LocalOssServer, bucket: str,
                                                         make_oss_store: Callable[..., OssStore]) -> None:
    raw = oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), oss_server.endpoint, bucket)
    raw.init_multipart_upload("vault/crashed-writer")
    raw.init_multipart_upload("other-vault/not-ours")
    store = make_oss_store()
    assert store.cleanup_incomplete_uploads() == 0  # younger than the default 6 hours
    assert store.cleanup_incomplete_uploads(older_than=0) == 1
    assert [u.key for u in oss2.MultipartUploadIterator(raw)] == ["other-vault/not-ours"]


# --- faults ---------------------------------------------------------------------------------
def _upload_and_verify_under_faults(server: LocalOssServer, bucket: str, store: OssStore, size: int,
                                    tmp_path: Path | None) -> None:
    server.set_faults(error_rate=0.1, drop_rate=0.1, seed=size % 1000)
    source = PatternStream(size, seed=size)
    info = store.put_stream("big/object", source, size=size, if_absent=True)  # type: ignore[arg-type]
    assert info.size == size
    sink = HashingSink()
    assert store.get_stream("big/object", sink) == size  # type: ignore[arg-type]
    assert sink.hash.digest() == source.hash.digest()
    if tmp_path is not None:  # the parallel ranged download too
        with open(tmp_path / "download", "wb") as out:
            store.get_stream("big/object", out)
        assert blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(tmp_path / "download").digest() == \
            source.hash.digest()
    stats = server.stats
    assert stats.injected_errors > 0 and stats.dropped_connections > 0
    server.clear_faults()
    assert uploads_left(server, bucket) == 0
    assert store.head("big/object").size == size
    store.delete("big/object")  # the server keeps data on disk: don't leave a GiB in the temp dir


def test_64mib_upload_survives_5xx_and_dropped_connections(oss_server: LocalOssServer, bucket: str,
                                                           make_oss_store: Callable[..., OssStore],
                                                           tmp_path: Path) -> None:
    store = make_oss_store(part_size=4 * MiB, multipart_threshold=4 * MiB)
    _upload_and_verify_under_faults(oss_server, bucket, store, 64 * MiB, tmp_path)


@pytest.mark.slow
def test_1gib_upload_survives_5xx_and_dropped_connections(oss_server: LocalOssServer, bucket: str,
                                                          make_oss_store: Callable[..., OssStore]) -> None:
    started = time.monotonic()
    store = make_oss_store(part_size=16 * MiB, multipart_threshold=16 * MiB)
    _upload_and_verify_under_faults(oss_server, bucket, store, GiB, None)
    assert time.monotonic() - started < 60, "the 1 GiB fault test must stay under a minute to run by default"


def test_lost_answers_of_put_if_absent_are_resolved(oss_server: LocalOssServer,
                                                    make_oss_store: Callable[..., OssStore]) -> None:
    # Half of the dropped connections lose the answer of a write that succeeded; the retry then
    # finds the key taken and must recognise its own object instead of reporting ObjectExists.
    store = make_oss_store(attempts=12)
    oss_server.set_faults(drop_rate=0.3, seed=7)
    for n in range(40):
        store.put(f"claims/{n}", f"claim {n}".encode(), if_absent=True)
    oss_server.clear_faults()
    assert oss_server.stats.dropped_connections > 0
    assert [store.get(f"claims/{n}") for n in range(40)] == [f"claim {n}".encode() for n in range(40)]


def test_latency_fault(oss_server: LocalOssServer, make_oss_store: Callable[..., OssStore]) -> None:
    store = make_oss_store()
    oss_server.set_faults(latency=0.2)
    started = time.monotonic()
    store.put("k", b"x")
    assert time.monotonic() - started >= 0.2
