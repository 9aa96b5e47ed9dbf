"""FileStore specifics: on-disk layout, corruption detection, atomic writes, leftovers."""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vault.filestore import BLOCK_SIZE, TMP_DIR, FileStore, _locked
from vault.store import InvalidKey, ObjectCorrupt, ObjectStoreError, StoreUnavailable


@pytest.fixture
def fs(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "vault", create=True)


def object_file(fs: FileStore, key: str) -> Path:
    segments = key.replace("%", "%25").split("/")
    return fs.root.joinpath(*segments[:-1], segments[-1] + "%o")


def test_layout_is_browsable_and_object_and_prefix_coexist(fs: FileStore) -> None:
    fs.put("a", b"object a")
    fs.put("a/b", b"object a/b")
    fs.put("100%/x", b"percent")
    assert (fs.root / "a%o").is_file() and (fs.root / "a" / "b%o").is_file()
    assert (fs.root / "100%25" / "x%o").is_file()
    assert [e.key for e in fs.list()] == ["100%/x", "a", "a/b"]  # type: ignore[union-attr]
    assert fs.get("a") == b"object a" and fs.get("a/b") == b"object a/b"
    assert list(fs.list(delimiter="/"))[1:] == [fs.head("a"), "a/"]


def test_url_and_root_must_be_absolute(tmp_path: Path) -> None:
    assert FileStore(tmp_path).url == f"file://{tmp_path}"
    with pytest.raises(ValueError, match="absolute"):
        FileStore("relative/dir")


def test_flipped_bit_is_detected_and_names_the_key(fs: FileStore, tmp_path: Path) -> None:
    data = os.urandom(3 * BLOCK_SIZE + 100)
    fs.put("packs/p1", data)
    path = object_file(fs, "packs/p1")
    raw = bytearray(path.read_bytes())
    raw[BLOCK_SIZE + 7] ^= 0x01  # inside block 1
    path.write_bytes(bytes(raw))
    # Reads that do not touch block 1 are still served (and verified).
    assert fs.get("packs/p1", start=0, end=BLOCK_SIZE - 1) == data[:BLOCK_SIZE]
    assert fs.get("packs/p1", start=2 * BLOCK_SIZE) == data[2 * BLOCK_SIZE:]
    out = tmp_path / "restored"
    reads = (
        lambda: fs.get("packs/p1"),
        lambda: fs.get("packs/p1", start=BLOCK_SIZE + 5, end=BLOCK_SIZE + 9),
        lambda: fs.get_stream("packs/p1", io.BytesIO()),
        lambda: fs.get_stream("packs/p1", out.open("wb")),  # the in-kernel copy path
    )
    for read in reads:
        with pytest.raises(ObjectCorrupt) as err:
            read()
        assert err.value.key == "packs/p1"
        assert "block 1" in str(err.value)


@pytest.mark.parametrize("damage", ["truncate", "append", "footer", "table"])
def test_damaged_files_are_corrupt_not_garbage(fs: FileStore, damage: str) -> None:
    fs.put("k", os.urandom(BLOCK_SIZE * 2))
    path = object_file(fs, "k")
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[:-10]
    elif damage == "append":
        raw += b"extra"
    elif damage == "footer":
        raw[-40] ^= 0xFF
    else:
        raw[BLOCK_SIZE * 2 + 3] ^= 0xFF  # the digest table right after the data
    path.write_bytes(bytes(raw))
    with pytest.raises(ObjectCorrupt):
        fs.get("k")
    with pytest.raises(ObjectCorrupt):
        fs.head("k")


def test_failed_stream_leaves_no_object_and_no_temporary(fs: FileStore) -> None:
    class Broken(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
            if self.sent > 20 * BLOCK_SIZE:
                raise OSError("source disk failed")
            n = len(buf)
            buf[:n] = b"x" * n
            self.sent += n
            return n

    fs.put("k", b"old")
    with pytest.raises(OSError, match="source disk failed"):
        fs.put_stream("k", Broken())  # type: ignore[arg-type]
    assert fs.get("k") == b"old"
    assert list((fs.root / TMP_DIR).iterdir()) == []


def test_cleanup_of_crashed_writers(fs: FileStore) -> None:
    fs.check()
    stale = fs.root / TMP_DIR / "dead-writer.tmp"
    stale.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    fresh = fs.root / TMP_DIR / "live-writer.tmp"
    fresh.write_bytes(b"partial")
    assert fs.cleanup_incomplete_uploads(older_than=3600) == 1
    assert not stale.exists() and fresh.exists()


_KILLED_WRITER = """
import sys, time
from vault.filestore import FileStore

class Slow:
    def read(self, n=-1):
        print("writing", flush=True)
        time.sleep(60)
        return b""

FileStore(sys.argv[1]).put_stream("big", Slow())
"""


def test_a_killed_writers_file_goes_at_once_a_live_ones_stays(fs: FileStore) -> None:
    # The killed writer: its temporary file stays behind, unlocked.
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(fs.root)], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    [dead] = list((fs.root / TMP_DIR).iterdir())
    # A live writer in this process, blocked in its source.
    release = threading.Event()

    class Blocked(io.RawIOBase):
        def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
            release.wait(30)
            return 0

    live = threading.Thread(target=fs.put_stream, args=("live", Blocked()))
    live.start()
    try:
        deadline = time.monotonic() + 10
        # Until the live writer holds its lock: between creating and locking its file the store
        # relies on the unlocked_after margin, which this test sets to zero below.
        while not any(p != dead and _locked(str(p)) for p in (fs.root / TMP_DIR).iterdir()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert fs.cleanup_incomplete_uploads() == 0  # both younger than a minute
        assert fs.cleanup_incomplete_uploads(unlocked_after=0) == 1  # no age needed: nobody holds it
        [left] = list((fs.root / TMP_DIR).iterdir())
        assert left != dead and not dead.exists()
    finally:
        release.set()
        live.join()
    assert fs.get("live") == b"" and list((fs.root / TMP_DIR).iterdir()) == []


def test_delete_prunes_empty_directories(fs: FileStore) -> None:
    fs.put("a/b/c/d", b"x")
    fs.put("a/keep", b"y")
    fs.delete("a/b/c/d")
    assert not (fs.root / "a" / "b").exists()
    assert (fs.root / "a").is_dir()


def test_empty_leftover_directories_are_not_prefixes(fs: FileStore) -> None:
    (fs.root / "ghost" / "deeper").mkdir(parents=True)
    fs.put("real/x", b"x")
    assert list(fs.list(delimiter="/")) == ["real/"]


def test_missing_root_is_unavailable(tmp_path: Path) -> None:
    fs = FileStore(tmp_path / "nope")
    with pytest.raises(StoreUnavailable, match="does not exist"):
        fs.check()
    with pytest.raises(StoreUnavailable):
        fs.put("k", b"x")


def test_unusable_root_is_unavailable(tmp_path: Path) -> None:
    # A file where the store's temporary directory belongs: writes cannot work (works as root too,
    # unlike permission bits).
    fs = FileStore(tmp_path / "v", create=True)
    (fs.root / TMP_DIR).write_bytes(b"in the way")
    with pytest.raises(StoreUnavailable, match="not writable"):
        fs.check()


def test_overlong_segment_is_refused(fs: FileStore) -> None:
    with pytest.raises(InvalidKey, match="segment"):
        fs.put("x" * 300, b"x")


def test_foreign_directory_in_the_way(fs: FileStore) -> None:
    (fs.root / "k%o").mkdir()
    with pytest.raises(ObjectStoreError, match="in the way"):
        fs.put("k", b"x")


def test_put_stream_from_a_regular_file_copies_in_kernel(fs: FileStore, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(70 * 1024 * 1024 + 12345)  # past the background-flush threshold, odd tail
    source = tmp_path / "source.bin"
    source.write_bytes(b"header--" + data)
    calls: list[int] = []
    real_copy = os.copy_file_range

    def counting_copy(*args: int) -> int:
        calls.append(args[2])
        return real_copy(*args)

    monkeypatch.setattr(os, "copy_file_range", counting_copy)
    with open(source, "rb") as f:
        f.read(8)  # the caller already consumed a header: the object starts where the stream is
        info = fs.put_stream("copied", f)
        assert f.read() == b""  # consumed, as a read loop would leave it
    assert calls and info.size == len(data)
    assert fs.get("copied") == data
    with open(source, "rb") as f, pytest.raises(ObjectStoreError, match="longer than the declared"):
        fs.put_stream("sized", f, size=100)
    assert not fs.exists("sized")


def test_put_stream_falls_back_when_the_kernel_cannot_copy(fs: FileStore, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(*args: int) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", unsupported)
    data = os.urandom(3 * BLOCK_SIZE + 1)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    with open(source, "rb") as f:
        fs.put_stream("fallback", f, size=len(data))
    assert fs.get("fallback") == data


def test_get_stream_into_a_file_continues_where_the_file_is(fs: FileStore, tmp_path: Path) -> None:
    data = os.urandom(200 * BLOCK_SIZE + 3)
    fs.put("big", data)
    target = tmp_path / "out.bin"
    with open(target, "wb") as out:
        out.write(b"prefix")
        assert fs.get_stream("big", out) == len(data)
        out.write(b"suffix")
    assert target.read_bytes() == b"prefix" + data + b"suffix"
