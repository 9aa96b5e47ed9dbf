"""The ``oss://bucket/prefix`` vault backend, through the ``oss2`` SDK.

Every request is retried on transient faults (connection errors, cut bodies, 5xx, 429, CRC
mismatches in transit) with capped exponential backoff.  Writes whose answer was lost are
resolved, not guessed: a put-if-absent that finds the key taken after an ambiguous attempt, or a
multipart completion whose upload is gone, compares the stored object's size and CRC-64 with what
was sent, and succeeds only if they match.

Large objects go up as parallel multipart uploads (a bounded number of parts in memory at once);
any failure aborts the upload so no parts are left to bill storage, and
:meth:`OssStore.cleanup_incomplete_uploads` removes leftovers of crashed writers.  Whole-object
reads are verified against the CRC-64 OSS keeps (``x-oss-hash-crc64ecma``); ranged reads check
their length and pin the object's ETag (``If-Match``) so parts of two versions are never mixed.

Errors map to the store's exceptions: the bucket missing, access denied, bad keys, an unreachable
endpoint -> StoreUnavailable (the cause reads well after "backup vault is unavailable: "); one
object failing -> ObjectStoreError naming the key.  Messages never carry credentials.
"""

from __future__ import annotations

import http.client
import os
import random
import stat
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, TypeVar

import oss2
import requests
import urllib3
from oss2.models import PartInfo

from vault.credentials import OssCredentials
from vault.redact import scrub
from vault.store import (
    InvalidRange,
    ObjectCorrupt,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectStoreError,
    StoreUnavailable,
    check_key,
)

T = TypeVar("T")

MiB = 1024 * 1024
MAX_PARTS = 10_000
ARCHIVE_STORAGE_CLASSES = frozenset({"Archive", "ColdArchive", "DeepColdArchive"})
ENCRYPTIONS = ("none", "oss-managed", "kms")
NETWORKS = ("internal", "public")

# Faults below the HTTP status level: the connection broke while sending or receiving.
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


def endpoint_for(region: str, network: str) -> str:
    """The OSS endpoint of ``region`` for the network mode: in-region (VPC) or public internet."""
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {', '.join(NETWORKS)}, got {network!r}")
    suffix = "-internal" if network == "internal" else ""
    return f"https://oss-{region}{suffix}.aliyuncs.com"


class _Retry(Exception):
    """A transient failure worth another attempt; carries the error to raise if attempts run out."""

    def __init__(self, final: ObjectStoreError) -> None:
        super().__init__(str(final))
        self.final = final


class OssStore:
    """An ObjectStore over one OSS bucket and key prefix."""

    def __init__(self, bucket: str, prefix: str = "", *, credentials: OssCredentials,
                 region: str | None = None, network: str = "internal", endpoint: str | None = None,
                 encryption: str = "none", kms_key_id: str | None = None,
                 part_size: int = 16 * MiB, multipart_threshold: int = 32 * MiB, threads: int = 4,
                 attempts: int = 8, timeout: float = 60.0, backoff: float = 0.1) -> None:
        if endpoint is None:
            if not region:
                raise ValueError("region is required unless an explicit endpoint is given")
            endpoint = endpoint_for(region, network)
        if encryption not in ENCRYPTIONS:
            raise ValueError(f"encryption must be one of {', '.join(ENCRYPTIONS)}, got {encryption!r}")
        if kms_key_id and encryption != "kms":
            raise ValueError("kms_key_id is only valid with encryption 'kms'")
        if part_size < 100 * 1024:
            raise ValueError("part_size must be at least 100 KiB (the OSS minimum)")
        self.bucket_name = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"oss://{bucket}/{self.prefix}"
        self.region = region
        self.endpoint = endpoint
        self.encryption = encryption
        self.kms_key_id = kms_key_id
        self.part_size = part_size
        self.multipart_threshold = max(multipart_threshold, part_size)
        self.threads = max(1, threads)
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._secrets = credentials.secrets()
        if credentials.security_token:
            auth: Any = oss2.StsAuth(credentials.access_key_id, credentials.access_key_secret,
                                     credentials.security_token)
        else:
            auth = oss2.Auth(credentials.access_key_id, credentials.access_key_secret)
        # CRCs are computed here over whole parts (oss2's adapter would hash 8 KiB at a time).
        self._bucket = oss2.Bucket(auth, endpoint, bucket, session=oss2.Session(pool_size=self.threads + 4),
                                   connect_timeout=timeout, enable_crc=False)

    def __repr__(self) -> str:
        return f"OssStore({self.url!r}, endpoint={self.endpoint!r})"

    # --- helpers ------------------------------------------------------------------------------
    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _write_headers(self, *, if_absent: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/octet-stream"}
        if self.encryption == "oss-managed":
            headers["x-oss-server-side-encryption"] = "AES256"
        elif self.encryption == "kms":
            headers["x-oss-server-side-encryption"] = "KMS"
            if self.kms_key_id:
                headers["x-oss-server-side-encryption-key-id"] = self.kms_key_id
        if if_absent:
            headers["x-oss-forbid-overwrite"] = "true"
        return headers

    def _where(self) -> str:
        return f"bucket {self.bucket_name}" + (f" in region {self.region}" if self.region else "")

    def _message(self, err: oss2.exceptions.OssError) -> str:
        text = f"{err.code or err.status}: {err.message}" if err.code else str(err.body)[:300]
        if err.request_id:
            text += f" (request id {err.request_id})"
        return scrub(text, *self._secrets)

    def _translate(self, err: BaseException, key: str | None) -> ObjectStoreError | _Retry:
        """Map an SDK or transport error to a store error, or to _Retry when worth retrying."""
        if isinstance(err, (oss2.exceptions.RequestError, *_TRANSPORT_ERRORS)):
            reason = scrub(str(getattr(err, "exception", err)), *self._secrets)[:300]
            return _Retry(StoreUnavailable(f"cannot reach OSS endpoint {self.endpoint}: {reason}", key=key))
        if isinstance(err, oss2.exceptions.InconsistentError):
            return _Retry(ObjectStoreError(f"object {key}: data changed in transit (CRC-64 mismatch)",
                                           key=key))
        if not isinstance(err, oss2.exceptions.OssError):
            return ObjectStoreError(scrub(f"{type(err).__name__}: {err}", *self._secrets), key=key)
        code, status = err.code, err.status
        if status >= 500 or status == 429:
            return _Retry(StoreUnavailable(f"OSS keeps failing at {self.endpoint}: {self._message(err)}",
                                           key=key))
        if code == "NoSuchBucket":
            return StoreUnavailable(f"{self._where()} does not exist", key=key)
        if code == "InvalidAccessKeyId":
            return StoreUnavailable("the AccessKey id is not valid (deleted, disabled or mistyped)", key=key)
        if code == "SignatureDoesNotMatch":
            return StoreUnavailable("the AccessKey secret does not match the AccessKey id", key=key)
        if code in ("SecurityTokenExpired", "InvalidSecurityToken"):
            return StoreUnavailable("the STS security token expired or is not valid", key=key)
        if code == "RequestTimeTooSkewed":
            return StoreUnavailable("this machine's clock is more than 15 minutes off", key=key)
        if code == "AccessDenied" or status == 403:
            if "kms" in (err.message or "").lower():
                return ObjectStoreError(f"object {key}: KMS key not usable: {self._message(err)}", key=key)
            return StoreUnavailable(f"no permission on {self._where()}: {self._message(err)}", key=key)
        if code == "NoSuchKey" or (status == 404 and code in ("", None)):
            return ObjectNotFound(f"no object {key}", key=key)
        if code == "FileAlreadyExists" or status == 409:
            return ObjectExists(f"object {key} already exists", key=key)
        if code == "InvalidRange" or status == 416:
            return InvalidRange(f"object {key}: {self._message(err)}", key=key)
        if code == "PreconditionFailed" or status == 412:
            # The read pins the ETag it started with: asking again for that version cannot succeed.
            return ObjectStoreError(f"object {key} was replaced while it was read", key=key)
        return ObjectStoreError(f"object {key}: {self._message(err)}", key=key)

    def _call(self, key: str | None, fn: Callable[[], T]) -> T:
        """Run ``fn`` with retries on transient faults; raise the mapped store error."""
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except (ObjectStoreError, _CorruptRead):
                raise
            except Exception as err:
                mapped = self._translate(err, key)
                if isinstance(mapped, _Retry):
                    if attempt == self.attempts:
                        raise mapped.final from None
                    self._sleep(attempt)
                    continue
                raise mapped from None
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int) -> None:
        delay = min(self.backoff * (2 ** (attempt - 1)), 3.0)
        time.sleep(delay * (0.5 + random.random()))

    # --- writes -------------------------------------------------------------------------------
    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> ObjectInfo:
        full = self._full(key)
        crc = oss2.utils.Crc64()
        crc.update(data)
        ambiguous = False

        def attempt() -> ObjectInfo:
            nonlocal ambiguous
            try:
                result = self._bucket.put_object(full, data, headers=self._write_headers(if_absent=if_absent))
            except oss2.exceptions.ServerError as err:
                if ambiguous and err.code == "FileAlreadyExists":
                    # An earlier attempt may have stored it and lost the answer: ours if it matches.
                    info = self._matching(key, full, len(data), crc.crc)
                    if info is not None:
                        return info
                ambiguous = ambiguous or err.status >= 500
                raise
            except Exception:
                ambiguous = True
                raise
            if result.crc is not None and result.crc != crc.crc:
                raise oss2.exceptions.InconsistentError("put object CRC mismatch", result.request_id)
            return ObjectInfo(key=key, size=len(data), etag=result.etag, last_modified=time.time())

        return self._call(key, attempt)

    def _matching(self, key: str, full: str, size: int, crc: int | None) -> ObjectInfo | None:
        meta = self._bucket.head_object(full)
        if meta.content_length == size and (crc is None or meta.server_crc == crc):
            return ObjectInfo(key=key, size=size, etag=meta.etag,
                              last_modified=float(meta.last_modified or 0))
        return None

    def put_stream(self, key: str, stream: BinaryIO, *, size: int | None = None,
                   if_absent: bool = False) -> ObjectInfo:
        full = self._full(key)
        if size is not None and size <= self.multipart_threshold:
            data = _read_exactly(stream, size)
            if len(data) != size:
                raise ObjectStoreError(f"stream ended after {len(data)} of {size} bytes", key=key)
            if stream.read(1):
                raise ObjectStoreError(f"stream is longer than the declared {size} bytes", key=key)
            return self.put(key, data, if_absent=if_absent)
        part_size = self.part_size
        if size is not None:
            part_size = max(part_size, -(-size // MAX_PARTS))
        first = _read_exactly(stream, part_size)
        if size is None and len(first) < part_size:
            return self.put(key, first, if_absent=if_absent)  # small after all: one request
        return self._multipart(key, full, stream, first, part_size, size, if_absent)

    def _multipart(self, key: str, full: str, stream: BinaryIO, first: bytes, part_size: int,
                   size: int | None, if_absent: bool) -> ObjectInfo:
        headers = self._write_headers(if_absent=if_absent)
        upload_id: str = self._call(
            key, lambda: self._bucket.init_multipart_upload(full, headers=headers).upload_id)
        try:
            parts = self._upload_parts(key, full, upload_id, stream, first, part_size)
            total = sum(p.size for p in parts)
            if size is not None and total != size:
                raise ObjectStoreError(f"stream held {total} bytes, {size} were declared", key=key)
            return self._complete(key, full, upload_id, parts, total, if_absent)
        except BaseException:
            self.abort_upload(key, upload_id)
            raise

    def _upload_parts(self, key: str, full: str, upload_id: str, stream: BinaryIO, first: bytes,
                      part_size: int) -> list[PartInfo]:
        def send(number: int, data: bytes) -> PartInfo:
            crc = oss2.utils.Crc64()
            crc.update(data)

            def attempt() -> PartInfo:
                result = self._bucket.upload_part(full, upload_id, number, data)
                if result.crc is not None and result.crc != crc.crc:
                    raise oss2.exceptions.InconsistentError("upload part CRC mismatch", result.request_id)
                return PartInfo(number, result.etag, size=len(data), part_crc=crc.crc)

            return self._call(key, attempt)

        parts: list[PartInfo] = []
        pending: deque[Future[PartInfo]] = deque()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="oss-part") as pool:
            try:
                number, data = 1, first
                while data:
                    # Bound memory: at most threads + 1 parts read ahead of the uploads.
                    while len(pending) > self.threads:
                        parts.append(pending.popleft().result())
                    pending.append(pool.submit(send, number, data))
                    if len(data) < part_size:
                        break
                    number += 1
                    if number > MAX_PARTS:
                        raise ObjectStoreError(f"object {key} needs more than {MAX_PARTS} parts", key=key)
                    data = _read_exactly(stream, part_size)
                while pending:
                    parts.append(pending.popleft().result())
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return parts

    def _complete(self, key: str, full: str, upload_id: str, parts: list[PartInfo], total: int,
                  if_absent: bool) -> ObjectInfo:
        expected_crc = oss2.utils.calc_obj_crc_from_parts(parts)
        headers = {"x-oss-forbid-overwrite": "true"} if if_absent else None
        ambiguous = False

        def attempt() -> ObjectInfo:
            nonlocal ambiguous
            try:
                result = self._bucket.complete_multipart_upload(full, upload_id, parts, headers=headers)
            except oss2.exceptions.ServerError as err:
                if ambiguous and err.code in ("NoSuchUpload", "FileAlreadyExists"):
                    # The lost answer of an earlier attempt may have been our success.
                    info = self._matching(key, full, total, expected_crc)
                    if info is not None:
                        return info
                ambiguous = ambiguous or err.status >= 500
                raise
            except Exception:
                ambiguous = True
                raise
            if result.crc is not None and expected_crc is not None and result.crc != expected_crc:
                raise ObjectCorrupt("completed object's CRC-64 differs from its parts'", key=key)
            return ObjectInfo(key=key, size=total, etag=result.etag, last_modified=time.time())

        return self._call(key, attempt)

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Abort one multipart upload (best effort: a failure here must not hide the first error)."""
        full = self._full(key)
        try:
            self._call(key, lambda: self._bucket.abort_multipart_upload(full, upload_id))
        except ObjectNotFound:
            pass
        except ObjectStoreError:
            pass  # cleanup_incomplete_uploads() will find it later

    def cleanup_incomplete_uploads(self, older_than: float = 6 * 3600.0) -> int:
        """Abort multipart uploads under the prefix started more than ``older_than`` seconds ago."""
        cutoff = time.time() - older_than
        uploads = self._call(None, lambda: list(oss2.MultipartUploadIterator(self._bucket,
                                                                             prefix=self.prefix)))
        stale = [u for u in uploads if not u.is_prefix() and u.initiation_date <= cutoff]
        for upload in stale:
            self.abort_upload(upload.key[len(self.prefix):], upload.upload_id)
        return len(stale)

    # --- reads --------------------------------------------------------------------------------
    def get(self, key: str, *, start: int | None = None, end: int | None = None) -> bytes:
        full = self._full(key)
        ranged = start is not None or end is not None
        if ranged and ((start is not None and start < 0) or (end is not None and end < (start or 0))):
            raise InvalidRange(f"invalid byte range {start}-{end}", key=key)

        def attempt() -> bytes:
            headers = {"x-oss-range-behavior": "standard"}
            result = self._bucket.get_object(full, byte_range=(start or 0, end) if ranged else None,
                                             headers=headers)
            data = b"".join(_body_chunks(result))
            if len(data) != result.content_length:
                raise oss2.exceptions.InconsistentError("short body", result.request_id)
            if not ranged:
                crc = oss2.utils.Crc64()
                crc.update(data)
                if result.server_crc is not None and crc.crc != result.server_crc:
                    raise _CorruptRead(result.request_id)
            return data

        return self._call_verified(key, attempt)

    def _call_verified(self, key: str, fn: Callable[[], T]) -> T:
        # A CRC mismatch is retried once (it may be a bad transfer); twice in a row it is the object.
        try:
            return self._call(key, fn)
        except _CorruptRead:
            try:
                return self._call(key, fn)
            except _CorruptRead as again:
                raise ObjectCorrupt(f"object {key} does not match its CRC-64 (request id {again.request_id})",
                                    key=key) from None

    def get_stream(self, key: str, out: BinaryIO) -> int:
        full = self._full(key)
        meta = self._call(key, lambda: self._bucket.head_object(full))
        size = int(meta.content_length or 0)
        if size > self.multipart_threshold and self.threads > 1 and _positional_fd(out) is not None:
            # Positional writes let a bad transfer be fetched again over the same bytes.
            self._call_verified(key, lambda: self._get_parallel(key, full, out, size, meta.etag,
                                                                meta.server_crc))
        else:
            crc = self._get_sequential(key, full, out, size, meta.etag)
            if meta.server_crc is not None and crc != meta.server_crc:
                raise ObjectCorrupt(f"object {key} does not match its CRC-64", key=key)
        return size

    def _get_sequential(self, key: str, full: str, out: BinaryIO, size: int, etag: str) -> int:
        """Stream into ``out``; returns the CRC-64 of what was written."""
        crc = oss2.utils.Crc64()
        done = 0
        failures = 0
        # Resume after a cut connection from the last byte written: ``out`` cannot be rewound.
        while done < size:
            try:
                headers = {"If-Match": f'"{etag}"', "x-oss-range-behavior": "standard"}
                result = self._bucket.get_object(full, byte_range=(done, size - 1), headers=headers)
                for chunk in _body_chunks(result):
                    crc.update(chunk)
                    out.write(chunk)
                    done += len(chunk)
                if done < size:
                    raise oss2.exceptions.InconsistentError("short body", result.request_id)
            except Exception as err:
                mapped = self._translate(err, key)
                failures += 1
                if not isinstance(mapped, _Retry) or failures >= self.attempts:
                    raise (mapped.final if isinstance(mapped, _Retry) else mapped) from None
                self._sleep(failures)
        return int(crc.crc)

    def _get_parallel(self, key: str, full: str, out: BinaryIO, size: int, etag: str,
                      server_crc: int | None) -> None:
        out.flush()
        fd = _positional_fd(out)
        assert fd is not None
        base = out.tell()
        step = self.part_size
        ranges = [(off, min(off + step, size) - 1) for off in range(0, size, step)]

        def fetch(first: int, last: int) -> int:
            def attempt() -> int:
                headers = {"If-Match": f'"{etag}"', "x-oss-range-behavior": "standard"}
                result = self._bucket.get_object(full, byte_range=(first, last), headers=headers)
                crc = oss2.utils.Crc64()
                position = base + first
                for chunk in _body_chunks(result):
                    crc.update(chunk)
                    _pwrite_all(fd, chunk, position)
                    position += len(chunk)
                if position - (base + first) != last - first + 1:
                    raise oss2.exceptions.InconsistentError("short body", result.request_id)
                return int(crc.crc)

            return self._call(key, attempt)

        with ThreadPoolExecutor(self.threads, thread_name_prefix="oss-get") as pool:
            crcs = list(pool.map(lambda r: fetch(*r), ranges))
        combiner = oss2.utils.Crc64()
        total_crc = 0
        for (first, last), part_crc in zip(ranges, crcs, strict=True):
            total_crc = combiner.combine(total_crc, part_crc, last - first + 1)
        out.seek(base + size)
        if server_crc is not None and total_crc != server_crc:
            raise _CorruptRead("")

    def head(self, key: str) -> ObjectInfo:
        full = self._full(key)
        meta = self._call(key, lambda: self._bucket.head_object(full))
        return ObjectInfo(key=key, size=int(meta.content_length or 0), etag=meta.etag,
                          last_modified=float(meta.last_modified or 0))

    def exists(self, key: str) -> bool:
        full = self._full(key)
        return bool(self._call(key, lambda: self._bucket.object_exists(full)))

    def list(self, prefix: str = "", *, delimiter: str | None = None,
             page_size: int = 1000) -> Iterator[ObjectInfo | str]:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        full_prefix = self.prefix + prefix
        cut = len(self.prefix)
        marker = ""

        def fetch_page() -> Any:
            return self._bucket.list_objects(prefix=full_prefix, delimiter=delimiter or "", marker=marker,
                                             max_keys=min(page_size, 1000))

        while True:
            page = self._call(None, fetch_page)
            entries: list[tuple[str, ObjectInfo | str]] = [
                (o.key, ObjectInfo(key=o.key[cut:], size=o.size, etag=o.etag,
                                   last_modified=float(o.last_modified)))
                for o in page.object_list
            ]
            entries += [(p, p[cut:]) for p in page.prefix_list]
            # One page spans (marker, next_marker]: sorting within it keeps global key order.
            for _, entry in sorted(entries, key=lambda e: e[0]):
                yield entry
            if not page.is_truncated:
                return
            marker = page.next_marker

    # --- deletes and checks -------------------------------------------------------------------
    def delete(self, key: str) -> None:
        full = self._full(key)
        self._call(key, lambda: self._bucket.delete_object(full))

    def check(self) -> None:
        """Raise StoreUnavailable unless the bucket exists and we may list and read it."""
        self.storage_class()
        self._call(None, lambda: self._bucket.list_objects(prefix=self.prefix, max_keys=1))

    def storage_class(self) -> str:
        info = self._call(None, self._bucket.get_bucket_info)
        return str(info.storage_class)


class _CorruptRead(Exception):
    def __init__(self, request_id: str) -> None:
        super().__init__("CRC-64 mismatch")
        self.request_id = request_id


def _body_chunks(result: Any) -> Iterator[bytes]:
    # oss2's read() without a size walks the body 8 KiB at a time; large pieces cost far less.
    while chunk := result.read(MiB):
        yield chunk


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    chunks = []
    left = n
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def _positional_fd(out: BinaryIO) -> int | None:
    """The file descriptor of a regular, seekable file (parallel writes need pwrite)."""
    try:
        fd = out.fileno()
        if not out.seekable():
            return None
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except (AttributeError, OSError, ValueError):
        return None

