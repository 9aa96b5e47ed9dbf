"""Disk-backed bucket state of the local OSS server (a test double; see localdev.oss_server).

Objects are data files plus one small JSON metadata file each, so 1 GiB objects never sit in
memory and a restarted server still has its buckets.  A multipart object keeps its part files as
segments: completing an upload moves files, it never copies bytes.  One lock per bucket makes
"check then publish" (forbid-overwrite) atomic.

Layout under the server root::

    <bucket>/bucket.json               name, storage class, region, creation time
    <bucket>/meta/<sha256(key)>.json   one object's metadata (key, size, ETag, CRC, headers, segments)
    <bucket>/data/<uuid>               object bytes (one file, or one per multipart segment)
    <bucket>/uploads/<id>/upload.json  an in-progress multipart upload; parts next to it
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localdev.oss_crc64 import crc64_combine

MIN_PART_SIZE = 100 * 1024  # OSS rejects smaller parts (except the last) at completion


class BucketError(Exception):
    """An OSS error the HTTP layer renders: status, code, message."""

    def __init__(
        self, status: int, code: str, message: str, *, extra: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or []  # more elements of the error document (e.g. <Condition>)


@dataclass
class Segment:
    file: str  # name under <bucket>/data
    size: int


@dataclass
class ObjectMeta:
    key: str
    size: int
    etag: str  # upper-case hex, no quotes; "<hex>-<parts>" for multipart objects
    crc64: int
    mtime: float
    object_type: str  # Normal | Multipart
    headers: dict[str, str]  # content-type, x-oss-meta-*, server-side encryption
    segments: list[Segment] = field(default_factory=list)


@dataclass
class Part:
    number: int
    size: int
    etag: str
    md5: str  # hex, for the multipart ETag
    crc64: int
    mtime: float
    file: str  # name under the upload's directory


@dataclass
class Upload:
    upload_id: str
    key: str
    initiated: float
    headers: dict[str, str]
    parts: dict[int, Part] = field(default_factory=dict)


@dataclass
class BucketInfo:
    name: str
    storage_class: str
    region: str
    created: float


def _write_json(path: Path, value: object) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


class Bucket:
    """One bucket's objects and uploads."""

    def __init__(self, root: Path, info: BucketInfo) -> None:
        self.root = root
        self.info = info
        self.lock = threading.RLock()
        self.objects: dict[str, ObjectMeta] = {}
        self.keys: list[str] = []  # sorted, for listing by prefix and marker
        self.uploads: dict[str, Upload] = {}
        for sub in ("meta", "data", "uploads"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    # --- persistence --------------------------------------------------------------------------
    @classmethod
    def create(cls, root: Path, info: BucketInfo) -> Bucket:
        root.mkdir(parents=True, exist_ok=True)
        _write_json(root / "bucket.json", asdict(info))
        return cls(root, info)

    @classmethod
    def load(cls, root: Path) -> Bucket:
        bucket = cls(root, BucketInfo(**json.loads((root / "bucket.json").read_text())))
        for path in (root / "meta").glob("*.json"):
            raw = json.loads(path.read_text())
            raw["segments"] = [Segment(**s) for s in raw["segments"]]
            meta = ObjectMeta(**raw)
            bucket.objects[meta.key] = meta
        bucket.keys = sorted(bucket.objects)
        for path in (root / "uploads").glob("*/upload.json"):
            raw = json.loads(path.read_text())
            raw["parts"] = {int(n): Part(**p) for n, p in raw["parts"].items()}
            upload = Upload(**raw)
            bucket.uploads[upload.upload_id] = upload
        return bucket

    def _meta_path(self, key: str) -> Path:
        return self.root / "meta" / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def data_path(self, name: str) -> Path:
        return self.root / "data" / name

    def new_data_file(self) -> Path:
        return self.data_path(uuid.uuid4().hex)

    def _upload_dir(self, upload_id: str) -> Path:
        return self.root / "uploads" / upload_id

    def _save_upload(self, upload: Upload) -> None:
        _write_json(self._upload_dir(upload.upload_id) / "upload.json", asdict(upload))

    # --- objects ------------------------------------------------------------------------------
    def get(self, key: str) -> ObjectMeta:
        with self.lock:
            meta = self.objects.get(key)
        if meta is None:
            raise BucketError(404, "NoSuchKey", "The specified key does not exist.")
        return meta

    def check_absent(self, key: str) -> None:
        if key in self.objects:
            raise BucketError(409, "FileAlreadyExists",
                              "The object you specified already exists and can not be overwritten.")

    def publish(self, meta: ObjectMeta, *, forbid_overwrite: bool) -> None:
        """Make ``meta`` (whose data files exist) the object at its key."""
        with self.lock:
            if forbid_overwrite:
                self.check_absent(meta.key)
            old = self.objects.get(meta.key)
            _write_json(self._meta_path(meta.key), asdict(meta))
            self.objects[meta.key] = meta
            if old is None:
                bisect.insort(self.keys, meta.key)
        if old is not None:
            self._remove_segments(old.segments)

    def delete(self, key: str) -> None:
        with self.lock:
            old = self.objects.pop(key, None)
            if old is None:
                return
            del self.keys[bisect.bisect_left(self.keys, key)]
            self._meta_path(key).unlink(missing_ok=True)
        self._remove_segments(old.segments)

    def _remove_segments(self, segments: Iterable[Segment]) -> None:
        # Readers hold open file descriptors, so unlinking under them is safe on POSIX.
        for seg in segments:
            self.data_path(seg.file).unlink(missing_ok=True)

    def list_objects(self, prefix: str, marker: str, delimiter: str,
                     limit: int) -> tuple[list[ObjectMeta | str], bool]:
        """Objects and common prefixes after ``marker`` in key order; (entries, truncated)."""
        entries: list[ObjectMeta | str] = []
        with self.lock:
            keys = self.keys
            i = max(bisect.bisect_right(keys, marker) if marker else 0, bisect.bisect_left(keys, prefix))
            while i < len(keys) and keys[i].startswith(prefix):
                key = keys[i]
                common = ""
                if delimiter:
                    cut = key.find(delimiter, len(prefix))
                    if cut >= 0:
                        common = key[: cut + len(delimiter)]
                if common and common <= marker:
                    # Everything under a prefix returned on an earlier page: skip past it.
                    i = bisect.bisect_left(keys, common + "\U0010ffff")
                    continue
                if len(entries) == limit:
                    return entries, True
                if common:
                    entries.append(common)
                    i = bisect.bisect_left(keys, common + "\U0010ffff")
                else:
                    entries.append(self.objects[key])
                    i += 1
        return entries, False

    # --- multipart ----------------------------------------------------------------------------
    def initiate(self, key: str, headers: dict[str, str]) -> Upload:
        upload = Upload(upload_id=uuid.uuid4().hex.upper(), key=key, initiated=time.time(), headers=headers)
        self._upload_dir(upload.upload_id).mkdir(parents=True)
        with self.lock:
            self.uploads[upload.upload_id] = upload
            self._save_upload(upload)
        return upload

    def upload(self, upload_id: str, key: str) -> Upload:
        with self.lock:
            upload = self.uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise BucketError(404, "NoSuchUpload",
                              "The specified upload does not exist. The upload ID may be invalid, "
                              "or the upload may have been aborted or completed.")
        return upload

    def part_path(self, upload_id: str, name: str) -> Path:
        return self._upload_dir(upload_id) / name

    def add_part(self, upload_id: str, key: str, part: Part) -> None:
        with self.lock:
            upload = self.upload(upload_id, key)  # aborted meanwhile: NoSuchUpload, the caller cleans up
            old = upload.parts.get(part.number)
            upload.parts[part.number] = part
            self._save_upload(upload)
        if old is not None and old.file != part.file:
            self.part_path(upload_id, old.file).unlink(missing_ok=True)

    def abort(self, upload_id: str, key: str) -> None:
        with self.lock:
            self.upload(upload_id, key)
            del self.uploads[upload_id]
        self._remove_tree(self._upload_dir(upload_id))

    def _remove_tree(self, directory: Path) -> None:
        for path in directory.glob("*"):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            directory.rmdir()

    def complete(self, upload_id: str, key: str, wanted: list[tuple[int, str]], *,
                 forbid_overwrite: bool) -> ObjectMeta:
        with self.lock:
            upload = self.upload(upload_id, key)
            if not wanted:
                raise BucketError(400, "MalformedXML", "The XML you provided was not well-formed.")
            numbers = [n for n, _ in wanted]
            if numbers != sorted(set(numbers)):
                raise BucketError(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
            parts: list[Part] = []
            for number, etag in wanted:
                part = upload.parts.get(number)
                if part is None or part.etag.upper() != etag.strip('"').upper():
                    raise BucketError(400, "InvalidPart",
                                      f"Part {number} was not uploaded or its ETag differs.")
                parts.append(part)
            for part in parts[:-1]:
                if part.size < MIN_PART_SIZE:
                    raise BucketError(400, "EntityTooSmall", f"Part {part.number} is smaller than 100 KB.")
            if forbid_overwrite:
                self.check_absent(key)
            crc = 0
            for part in parts:
                crc = crc64_combine(crc, part.crc64, part.size)
            digest = hashlib.md5(b"".join(bytes.fromhex(p.md5) for p in parts)).hexdigest().upper()
            segments = []
            for part in parts:
                name = uuid.uuid4().hex
                os.replace(self.part_path(upload_id, part.file), self.data_path(name))
                segments.append(Segment(name, part.size))
            meta = ObjectMeta(key=key, size=sum(p.size for p in parts), etag=f"{digest}-{len(parts)}",
                              crc64=crc, mtime=time.time(), object_type="Multipart",
                              headers=dict(upload.headers), segments=segments)
            self.publish(meta, forbid_overwrite=forbid_overwrite)
            del self.uploads[upload_id]
        self._remove_tree(self._upload_dir(upload_id))
        return meta

    def list_uploads(self, prefix: str, key_marker: str, id_marker: str,
                     limit: int) -> tuple[list[Upload], bool]:
        with self.lock:
            ordered = sorted(self.uploads.values(), key=lambda u: (u.key, u.upload_id))

        def after_markers(u: Upload) -> bool:
            # Only an upload-id marker lets uploads of the marker key itself through.
            if u.key == key_marker:
                return bool(id_marker) and u.upload_id > id_marker
            return u.key > key_marker

        selected = [u for u in ordered if u.key.startswith(prefix) and after_markers(u)]
        return selected[:limit], len(selected) > limit

    def iter_segments(self, meta: ObjectMeta) -> Iterator[tuple[Path, int]]:
        for seg in meta.segments:
            yield self.data_path(seg.file), seg.size
