"""A LOCAL OSS SERVER: a test double of Alibaba Cloud OSS for the tests, the demo and benchmarks.

It is not OSS.  It speaks enough of the OSS REST API, over real HTTP, for everything the product
does through ``oss2``: Put/Get/Head/Delete object, ranged GET, conditional GET/HEAD (If-Match,
If-None-Match, If-Modified-Since, If-Unmodified-Since), ListObjects (v1 and v2), multipart upload
(initiate, upload part, complete — also ``x-oss-complete-all`` — abort, list uploads, list parts),
``x-oss-forbid-overwrite``, GetBucketInfo with the bucket's storage class, per-object storage class
(an archived object's data is refused with InvalidObjectState: RestoreObject is not implemented),
server-side-encryption headers (stored and echoed), user metadata (UTF-8 too), GetObject's
``response-*`` header overrides, and ``x-oss-hash-crc64ecma`` on every write and read; and what common
tools use: ListBuckets (GetService), CopyObject, DeleteMultipleObjects and presigned URLs.  Anything
else — another sub-resource (``?acl``, ``?tagging``, ``?append``, ``?symlink``, …), tagging headers, ACLs
other than private, UploadPartCopy, conditional copies, a delimiter on ListMultipartUploads — is
refused with ``501 NotImplemented`` naming it, never answered plausibly (ListLiveChannel answers, truly,
that there are none: creating one is refused).  The oss2 SDK's own tests run against it (``make
conformance``, tests/conformance/).

Requests must carry a valid OSS V1 signature (``Authorization: OSS <ak>:<signature>``, what oss2
signs by default, or in a presigned URL) made with one of the configured keys; errors come back as
OSS error codes in OSS's XML body with an ``x-oss-request-id`` (and ``x-oss-ec`` where known).
Buckets are served path-style (what oss2 uses against an IP endpoint) and virtual-host style.
Three parts: the buckets and their objects on disk (:mod:`localdev.oss_buckets`), who signed a
request (:mod:`localdev.oss_auth`), and the HTTP handler here.

Faults can be injected for every request: a 5xx rate, dropped connections (cut mid-body), added
latency, AccessDenied, NoSuchBucket for chosen buckets, and AccessDenied for KMS-encrypted writes
(a missing KMS permission).  Set them from Python (:meth:`LocalOssServer.set_faults`), over HTTP
(``PUT /-/faults`` with a JSON body; ``GET /-/faults``, ``GET /-/stats``), or with command-line
flags of ``python -m localdev.oss_server``.

Usage::

    server = LocalOssServer(tmp_path, keys={"test-ak": "test-secret"})
    endpoint = server.start()          # "http://127.0.0.1:<port>"
    server.create_bucket("demo-vault")
    ...
    server.stop()
"""

from __future__ import annotations

import argparse
import base64
import email.utils
import hashlib
import json
import os
import random
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from localdev.oss_auth import SUBRESOURCES, verify_v1
from localdev.oss_buckets import (
    Bucket,
    BucketError,
    BucketInfo,
    ObjectMeta,
    Part,
    Segment,
)
from localdev.oss_crc64 import crc64

ARCHIVE_CLASSES = ("Archive", "ColdArchive", "DeepColdArchive")
STORAGE_CLASSES = ("Standard", "IA", *ARCHIVE_CLASSES)
_IO = 1024 * 1024
_OWNER = "localoss"

_SSE_ALGORITHMS = ("AES256", "KMS", "SM4")
# OSS's detailed error codes (header x-oss-ec, element <EC>), only where OSS's own material gives the
# value; for other errors the double sends none rather than a made-up one.
_EC = {"NoSuchKey": "0026-00000001"}
# GetObject's response-header overrides (query parameters) and the header each one sets.
_RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
# The sub-resources this double implements; any other signed one (?acl, ?tagging, ...) is refused.
_BUCKET_SUBRESOURCES = frozenset({
    "bucketInfo", "location", "uploads", "continuation-token", "delete", "live", "security-token",
})
_OBJECT_SUBRESOURCES = frozenset({
    "uploadId", "partNumber", "uploads", "objectMeta", "security-token", *_RESPONSE_OVERRIDES,
})
# The ACL an object here has (access needs a signature): asking for it is a no-op, any other refused.
_PRIVATE_ACLS = ("default", "private")
# The control characters XML 1.0 forbids but OSS accepts in the keys of a DeleteMultipleObjects body.
_XML_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@dataclass
class Faults:
    """What goes wrong, per request.  Rates are probabilities in [0, 1]."""

    error_rate: float = 0.0  # answer 500 InternalError / 503 ServiceUnavailable
    drop_rate: float = 0.0  # cut the connection (mid-body where there is one)
    latency: float = 0.0  # seconds added before answering
    access_denied: bool = False  # every request: 403 AccessDenied
    missing_buckets: list[str] = field(default_factory=list)  # these answer 404 NoSuchBucket
    kms_denied: bool = False  # writes asking for KMS encryption: 403 AccessDenied (KMS permission)
    seed: int | None = None  # for reproducible fault sequences

    def validate(self) -> None:
        for name in ("error_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.latency < 0:
            raise ValueError(f"latency must not be negative, got {self.latency}")


@dataclass
class Stats:
    requests: int = 0
    injected_errors: int = 0
    dropped_connections: int = 0


class _Drop(Exception):
    """Cut the connection without an answer."""


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _continuation(token: str) -> str:
    """The key a list-v2 continuation token (ours: base64 of the next key) stands for."""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise BucketError(400, "InvalidArgument", "The continuation token provided is incorrect.",
                          extra=[("ArgumentName", "continuation-token"), ("ArgumentValue", token)]) from None


def _refuse(what: str) -> BucketError:
    """What this double does not implement is refused as OSS refuses an unsupported operation, never
    answered with something plausible."""
    return BucketError(501, "NotImplemented", f"{what} is not implemented by the local OSS server.")


def _unsupported_subresource(params: Mapping[str, str], supported: frozenset[str]) -> str | None:
    return next((name for name in sorted(params) if name in SUBRESOURCES and name not in supported), None)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _xml(root: str, children: list[tuple[str, Any]]) -> bytes:
    def render(items: list[tuple[str, Any]]) -> str:
        out = []
        for tag, value in items:
            inner = render(value) if isinstance(value, list) else escape(str(value))
            out.append(f"<{tag}>{inner}</{tag}>")
        return "".join(out)

    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>{render(children)}</{root}>'.encode()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients (and our own fault injection) cut connections all the time; that is no error.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class LocalOssServer:
    """The server: buckets on disk under ``root``, keys ``{access_key_id: secret}``."""

    def __init__(self, root: str | Path, keys: Mapping[str, str] | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, region: str = "cn-hangzhou",
                 security_tokens: Mapping[str, str] | None = None, advertise_self: bool = False) -> None:
        self.root = Path(root)
        # The endpoints ListBuckets and GetBucketInfo name: OSS names its region's public ones
        # (oss-<region>.aliyuncs.com); a client that connects to what they say (the oss2 SDK's own
        # tests do) needs this server's address instead.
        self.advertise_self = advertise_self
        self.root.mkdir(parents=True, exist_ok=True)
        self.keys = dict(keys or {})
        # STS-style keys: an access key id listed here is only valid with this security token.
        self.security_tokens = dict(security_tokens or {})
        self.region = region
        self._address = (host, port)
        self._buckets: dict[str, Bucket] = {}
        self._lock = threading.Lock()
        self._faults = Faults()
        self._rng = random.Random()
        self.stats = Stats()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for path in sorted(self.root.glob("*/bucket.json")):
            bucket = Bucket.load(path.parent)
            self._buckets[bucket.info.name] = bucket

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> str:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = _HTTPServer(self._address, handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="local-oss", daemon=True)
        self._thread.start()
        return self.endpoint

    @property
    def endpoint(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> LocalOssServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- buckets and faults -------------------------------------------------------------------
    def create_bucket(self, name: str, *, storage_class: str = "Standard", region: str | None = None) -> None:
        if not _BUCKET_NAME_RE.match(name):
            raise ValueError(f"bucket name {name!r} is not valid (3-63 lowercase letters, digits and '-')")
        if storage_class not in STORAGE_CLASSES:
            raise ValueError(f"storage class must be one of {', '.join(STORAGE_CLASSES)}")
        with self._lock:
            if name in self._buckets:
                return
            info = BucketInfo(name=name, storage_class=storage_class, region=region or self.region,
                              created=time.time())
            self._buckets[name] = Bucket.create(self.root / name, info)

    def delete_bucket(self, name: str) -> None:
        """Remove a bucket and everything in it (test set-up, not the OSS API)."""
        with self._lock:
            bucket = self._buckets.pop(name, None)
        if bucket is not None:
            for path in sorted(bucket.root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if path.is_dir():
                    path.rmdir()
                else:
                    path.unlink()
            bucket.root.rmdir()

    def bucket(self, name: str) -> Bucket | None:
        with self._lock:
            return self._buckets.get(name)

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, **changes: Any) -> Faults:
        """Change some fault settings (the rest keep their values); returns the new settings."""
        known = {f.name for f in fields(Faults)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        faults = Faults(**{**asdict(self._faults), **changes})
        faults.validate()
        with self._lock:
            self._faults = faults
            if "seed" in changes:
                self._rng.seed(faults.seed)
        return faults

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = Faults()

    def _roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    # --- authentication -----------------------------------------------------------------------
    def authenticate(self, method: str, headers: Mapping[str, str], bucket: str, key: str,
                     params: Mapping[str, str]) -> str:
        """Check the V1 signature; returns the access key id or raises BucketError."""
        return verify_v1(
            method, headers, bucket, key, params, keys=self.keys, security_tokens=self.security_tokens
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AliyunOSS"
    sys_version = ""
    timeout = 120
    server_state: LocalOssServer  # set on the per-server subclass

    # --- plumbing -----------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes; without this, Nagle's algorithm meets the
        # client's delayed ACK and every small answer waits ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a test double should not spam test output

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self.request_id = uuid.uuid4().hex[:24].upper()
        self._body_left = int(self.headers.get("content-length") or 0)
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        # None, "body" (cut mid-body: upload or download) or "after" (do the work, lose the answer)
        self._drop_mode: str | None = None
        state = self.server_state
        try:
            split = urlsplit(self.path)
            if split.path.startswith("/-/"):
                self._admin(split.path, split.query)
                return
            state._count("requests")
            faults = state.faults
            if faults.latency:
                time.sleep(faults.latency)
            bucket_name, key = self._bucket_and_key(split.path)
            params = dict(parse_qsl(split.query, keep_blank_values=True))
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.authenticate(self.command, headers, bucket_name, key, params)
            if faults.access_denied:
                raise BucketError(403, "AccessDenied", "You have no right to access this object because of "
                                                       "bucket acl.")
            if state._roll(faults.error_rate):
                state._count("injected_errors")
                status, code = (500, "InternalError") if state._roll(0.5) else (503, "ServiceUnavailable")
                raise BucketError(status, code, "Please try again (injected fault of the local OSS server).")
            if state._roll(faults.drop_rate):
                is_get = self.command == "GET"
                streams = bool(key) and (self.command == "PUT" or (is_get and "uploadId" not in params))
                lose_answer = state._roll(0.5)
                if not streams and not lose_answer:
                    raise _Drop()
                self._drop_mode = "body" if streams and (not lose_answer or is_get) else "after"
            if not bucket_name:
                if self.command != "GET" or _unsupported_subresource(params, frozenset()) is not None:
                    raise _refuse(f"{self.command} on the service")
                self._list_buckets(params)
                return
            bucket = state.bucket(bucket_name)
            if self.command == "PUT" and not key and not params:
                self._create_bucket(bucket_name, bucket)
                return
            if bucket is None or bucket_name in faults.missing_buckets:
                raise BucketError(404, "NoSuchBucket", "The specified bucket does not exist.")
            if key:
                self._object_op(bucket, key, params, headers)
            else:
                self._bucket_op(bucket, params)
        except BucketError as err:
            self._error(err, err.extra)
        except _Drop:
            state._count("dropped_connections")
            self._cut()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _bucket_and_key(self, path: str) -> tuple[str, str]:
        host = (self.headers.get("host") or "").split(":")[0]
        first = host.split(".")[0] if host.count(".") >= 1 else ""
        if first and self.server_state.bucket(first) is not None and not host.replace(".", "").isdigit():
            return first, unquote(path[1:])  # virtual-host style
        bucket, _, key = path[1:].partition("/")
        return unquote(bucket), unquote(key)

    def _send(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None,
              *, length: int | None = None) -> None:
        if self._drop_mode == "after":
            self.server_state._count("dropped_connections")
            self._cut()
            return
        self.send_response(status)  # adds Server and Date (one Date, as OSS sends)
        self.send_header("x-oss-request-id", self.request_id)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        if self._body_left or self._chunked:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, err: BucketError, extra: list[tuple[str, Any]] | None = None) -> None:
        self._drain()
        body = _xml("Error", [("Code", err.code), ("Message", err.message), ("RequestId", self.request_id),
                              ("HostId", self.headers.get("host", "")), *(extra or [])])
        headers = {"Content-Type": "application/xml"}
        ec = _EC.get(err.code)
        if ec is not None:
            headers["x-oss-ec"] = ec
            body = body.replace(b"</Error>", f"<EC>{ec}</EC></Error>".encode())
        if self.command == "HEAD":
            # HEAD answers carry no body; OSS puts the error document in this header instead.
            headers["x-oss-err"] = base64.b64encode(body).decode()
        self._send(err.status, body, headers)

    def _cut(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --- request bodies -----------------------------------------------------------------------
    def _drain(self) -> None:
        """Read and discard an unread body, so the client sees our answer, not a reset."""
        if self._chunked:
            for _ in self._body_chunks():
                pass
            return
        while self._body_left > 0:
            chunk = self.rfile.read(min(self._body_left, _IO))
            if not chunk:
                break
            self._body_left -= len(chunk)

    def _body_chunks(self) -> Any:
        if self._chunked:
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    self._chunked = False
                    return
                left = size
                while left:
                    data = self.rfile.read(min(left, _IO))
                    if not data:
                        raise ConnectionError("client went away")
                    left -= len(data)
                    yield data
                self.rfile.readline()
        buf = bytearray(_IO)
        view = memoryview(buf)
        while self._body_left > 0:
            n = self.rfile.readinto(view[: min(self._body_left, _IO)])
            if not n:
                raise ConnectionError("client went away")
            self._body_left -= n
            yield view[:n]

    def _receive(self, path: Path) -> tuple[int, str, int]:
        """Store the body in ``path``; returns (size, md5 hex, crc64).  May inject a drop."""
        expected = self._body_left
        md5 = hashlib.md5()
        crc = 0
        size = 0
        with open(path, "wb", buffering=0) as out:
            for chunk in self._body_chunks():
                if self._drop_mode == "body" and size >= expected // 2:
                    raise _Drop()
                out.write(chunk)
                md5.update(chunk)
                crc = crc64(chunk, crc)
                size += len(chunk)
        if self._drop_mode == "body":
            raise _Drop()
        sent_md5 = self.headers.get("content-md5")
        if sent_md5 and base64.b64decode(sent_md5) != md5.digest():
            raise BucketError(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
        return size, md5.hexdigest().upper(), crc

    def _read_small_body(self, limit: int = 16 * 1024 * 1024) -> bytes:
        data = bytearray()
        for chunk in self._body_chunks():
            data += chunk
            if len(data) > limit:
                raise BucketError(400, "EntityTooLarge", "Request body too large.")
        return bytes(data)

    # --- bucket operations --------------------------------------------------------------------
    def _create_bucket(self, name: str, existing: Bucket | None) -> None:
        body = self._read_small_body()
        if not _BUCKET_NAME_RE.match(name):
            raise BucketError(400, "InvalidBucketName", "The specified bucket is not valid.")
        storage_class = "Standard"
        if body:
            node = ElementTree.fromstring(body).find("StorageClass")
            if node is not None and node.text:
                storage_class = node.text
        if storage_class not in STORAGE_CLASSES:
            raise BucketError(400, "InvalidArgument", f"Unsupported storage class {storage_class}.")
        if existing is None:
            self.server_state.create_bucket(name, storage_class=storage_class)
        self._send(200)

    def _bucket_op(self, bucket: Bucket, params: dict[str, str]) -> None:
        unknown = _unsupported_subresource(params, _BUCKET_SUBRESOURCES)
        if unknown is not None:
            raise _refuse(f"{self.command} ?{unknown} (a bucket sub-resource)")
        if self.command == "POST" and "delete" in params:
            self._delete_objects(bucket, params)
        elif self.command == "GET" and "bucketInfo" in params:
            self._bucket_info(bucket)
        elif self.command == "GET" and "location" in params:
            self._send(200, _xml("LocationConstraint", []).replace(
                b"<LocationConstraint></LocationConstraint>",
                f"<LocationConstraint>oss-{bucket.info.region}</LocationConstraint>".encode()))
        elif self.command == "GET" and "uploads" in params:
            self._list_uploads(bucket, params)
        elif self.command == "GET" and "live" in params:
            # ListLiveChannel: true, and empty — creating a live channel (PUT ?live) is refused, so a
            # bucket here never has one (what bucket-cleaning tools list before a bucket delete).
            self._send(200, _xml("ListLiveChannelResult", [
                ("Prefix", params.get("prefix", "")), ("Marker", params.get("marker", "")),
                ("MaxKeys", self._int_param(params, "max-keys", 100, 1, 1000)), ("IsTruncated", "false"),
                ("NextMarker", ""),
            ]), {"Content-Type": "application/xml"})
        elif self.command == "GET":
            self._list_objects(bucket, params)
        elif self.command == "DELETE":
            if bucket.keys or bucket.uploads:
                raise BucketError(409, "BucketNotEmpty", "The bucket you tried to delete is not empty.")
            self.server_state.delete_bucket(bucket.info.name)
            self._send(204)
        else:
            raise _refuse(f"{self.command} on a bucket")

    def _list_buckets(self, params: dict[str, str]) -> None:
        """GetService (ListBuckets): every bucket of this server, by name, with prefix/marker/max-keys."""
        state = self.server_state
        with state._lock:
            infos = sorted((b.info for b in state._buckets.values()), key=lambda i: i.name)
        prefix, marker = params.get("prefix", ""), params.get("marker", "")
        limit = self._int_param(params, "max-keys", 100, 1, 1000)
        chosen = [i for i in infos if i.name.startswith(prefix) and i.name > marker]
        page, truncated = chosen[:limit], len(chosen) > limit
        items: list[tuple[str, Any]] = [("Owner", [("ID", _OWNER), ("DisplayName", _OWNER)])]
        if prefix or marker or "max-keys" in params:
            items += [("Prefix", prefix), ("Marker", marker), ("MaxKeys", limit),
                      ("IsTruncated", str(truncated).lower()),
                      ("NextMarker", page[-1].name if truncated else "")]
        items.append(("Buckets", [("Bucket", [
            ("CreationDate", _iso(i.created)), *self._endpoints(i),
            ("Location", f"oss-{i.region}"),
            ("Name", i.name), ("Region", i.region), ("StorageClass", i.storage_class),
        ]) for i in page]))
        self._send(200, _xml("ListAllMyBucketsResult", items), {"Content-Type": "application/xml"})

    def _endpoints(self, info: BucketInfo) -> list[tuple[str, Any]]:
        state = self.server_state
        if state.advertise_self:
            own = state.endpoint
            return [("ExtranetEndpoint", own), ("IntranetEndpoint", own)]
        return [("ExtranetEndpoint", f"oss-{info.region}.aliyuncs.com"),
                ("IntranetEndpoint", f"oss-{info.region}-internal.aliyuncs.com")]

    def _bucket_info(self, bucket: Bucket) -> None:
        info = bucket.info
        body = _xml("BucketInfo", [("Bucket", [
            ("AccessMonitor", "Disabled"),
            ("CreationDate", _iso(info.created)),
            *self._endpoints(info),
            ("Location", f"oss-{info.region}"),
            ("StorageClass", info.storage_class),
            ("TransferAcceleration", "Disabled"),
            ("CrossRegionReplication", "Disabled"),
            ("Name", info.name),
            ("Owner", [("DisplayName", _OWNER), ("ID", _OWNER)]),
            ("AccessControlList", [("Grant", "private")]),
            ("ServerSideEncryptionRule", [("SSEAlgorithm", "None")]),
        ])])
        self._send(200, body, {"Content-Type": "application/xml"})

    @staticmethod
    def _int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
        raw = params.get(name) or str(default)
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise BucketError(400, "InvalidArgument", f"Argument {name} must be between {low} and {high}.")
        return int(raw)

    def _list_objects(self, bucket: Bucket, params: dict[str, str]) -> None:
        v2 = params.get("list-type") == "2"
        prefix = params.get("prefix", "")
        delimiter = params.get("delimiter", "")
        limit = self._int_param(params, "max-keys", 100, 0, 1000)
        url = params.get("encoding-type") == "url"

        def enc(text: str) -> str:
            return quote(text, safe="/") if url else text

        if v2:
            token = params.get("continuation-token", "")
            marker = _continuation(token) if token else params.get("start-after", "")
        else:
            marker = params.get("marker", "")
        entries, truncated = bucket.list_objects(prefix, marker, delimiter, limit)
        contents: list[tuple[str, Any]] = []
        commons: list[tuple[str, Any]] = []
        for entry in entries:
            if isinstance(entry, str):
                commons.append(("CommonPrefixes", [("Prefix", enc(entry))]))
                continue
            item: list[tuple[str, Any]] = [
                ("Key", enc(entry.key)), ("LastModified", _iso(entry.mtime)),
                ("ETag", f'"{entry.etag}"'), ("Type", entry.object_type), ("Size", entry.size),
                ("StorageClass", entry.headers.get("x-oss-storage-class", bucket.info.storage_class)),
            ]
            if not v2 or params.get("fetch-owner") == "true":
                item.append(("Owner", [("ID", _OWNER), ("DisplayName", _OWNER)]))
            contents.append(("Contents", item))
        last = entries[-1] if entries else ""
        next_marker = last if isinstance(last, str) else last.key
        head: list[tuple[str, Any]] = [("Name", bucket.info.name), ("Prefix", enc(prefix))]
        if v2:
            head += [("MaxKeys", limit), ("Delimiter", enc(delimiter)),
                     ("IsTruncated", str(truncated).lower()), ("KeyCount", len(entries))]
            if truncated:
                token = base64.urlsafe_b64encode(next_marker.encode()).decode()
                head.append(("NextContinuationToken", token))
        else:
            head += [("Marker", enc(marker)), ("MaxKeys", limit), ("Delimiter", enc(delimiter)),
                     ("IsTruncated", str(truncated).lower())]
            if truncated:
                head.append(("NextMarker", enc(next_marker)))
        if url:
            head.append(("EncodingType", "url"))
        body = _xml("ListBucketResult", head + contents + commons)
        self._send(200, body, {"Content-Type": "application/xml"})

    def _list_uploads(self, bucket: Bucket, params: dict[str, str]) -> None:
        if params.get("delimiter"):
            raise _refuse("ListMultipartUploads with a delimiter")
        limit = self._int_param(params, "max-uploads", 1000, 1, 1000)
        url = params.get("encoding-type") == "url"
        key_marker = params.get("key-marker", "")
        id_marker = params.get("upload-id-marker", "")
        uploads, truncated = bucket.list_uploads(params.get("prefix", ""), key_marker, id_marker, limit)

        def enc(text: str) -> str:
            return quote(text, safe="/") if url else text

        items: list[tuple[str, Any]] = [
            ("Bucket", bucket.info.name), ("KeyMarker", enc(key_marker)), ("UploadIdMarker", id_marker),
            ("NextKeyMarker", enc(uploads[-1].key) if truncated else ""),
            ("NextUploadIdMarker", uploads[-1].upload_id if truncated else ""),
            ("Delimiter", ""), ("Prefix", enc(params.get("prefix", ""))), ("MaxUploads", limit),
            ("IsTruncated", str(truncated).lower()),
        ]
        if url:
            items.append(("EncodingType", "url"))
        for upload in uploads:
            items.append(("Upload", [("Key", enc(upload.key)), ("UploadId", upload.upload_id),
                                     ("Initiated", _iso(upload.initiated))]))
        self._send(200, _xml("ListMultipartUploadsResult", items), {"Content-Type": "application/xml"})

    # --- object operations --------------------------------------------------------------------
    def _object_op(self, bucket: Bucket, key: str, params: dict[str, str], headers: dict[str, str]) -> None:
        cmd = self.command
        if len(key.encode()) > 1023:
            raise BucketError(400, "InvalidObjectName", "The object name is too long.")
        if key.startswith("\\"):
            raise BucketError(400, "InvalidObjectName", "The specified object is not valid.")
        unknown = _unsupported_subresource(params, _OBJECT_SUBRESOURCES)
        if unknown is not None:
            raise _refuse(f"{cmd} ?{unknown} (an object sub-resource)")
        if cmd == "PUT" and "uploadId" in params and "x-oss-copy-source" in headers:
            raise _refuse("UploadPartCopy")
        if cmd == "PUT" and "uploadId" in params:
            self._upload_part(bucket, key, params)
        elif cmd == "PUT":
            if "x-oss-copy-source" in headers:
                self._copy_object(bucket, key, headers)
            else:
                self._put_object(bucket, key, headers)
        elif cmd == "POST" and "uploads" in params:
            self._initiate(bucket, key, headers)
        elif cmd == "POST" and "uploadId" in params:
            self._complete(bucket, key, params, headers)
        elif cmd == "DELETE" and "uploadId" in params:
            bucket.abort(params["uploadId"], key)
            self._send(204)
        elif cmd == "DELETE":
            bucket.delete(key)
            self._send(204)
        elif cmd == "GET" and "uploadId" in params:
            self._list_parts(bucket, key, params)
        elif cmd in ("GET", "HEAD"):
            self._get_object(bucket, key, headers, params, meta_only="objectMeta" in params)
        else:
            raise _refuse(f"{cmd} on an object")

    @staticmethod
    def _check_acl(headers: Mapping[str, str]) -> None:
        acl = headers.get("x-oss-object-acl")
        if acl is not None and acl not in _PRIVATE_ACLS:
            raise _refuse(f"x-oss-object-acl: {acl} (objects here are private)")

    def _stored_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """The request headers an object keeps: content type, user metadata, storage class, encryption.
        Object tags and ACLs other than private are refused (not implemented)."""
        for name in ("x-oss-tagging", "x-oss-tagging-directive"):
            if name in headers:
                raise _refuse(f"object tagging ({name})")
        self._check_acl(headers)
        kept = {k: v for k, v in headers.items() if k.startswith("x-oss-meta-")}
        storage_class = headers.get("x-oss-storage-class")
        if storage_class is not None:
            if storage_class not in STORAGE_CLASSES:
                raise BucketError(400, "InvalidArgument", f"Unsupported storage class {storage_class}.")
            kept["x-oss-storage-class"] = storage_class
        kept["content-type"] = headers.get("content-type") or "application/octet-stream"
        sse = headers.get("x-oss-server-side-encryption")
        if sse:
            if sse not in _SSE_ALGORITHMS:
                raise BucketError(400, "InvalidEncryptionAlgorithmError",
                                  "The Encryption request you specified is not valid. Supported value: "
                                  "AES256/KMS/SM4")
            if sse == "KMS" and self.server_state.faults.kms_denied:
                raise BucketError(403, "AccessDenied", "The KMS key is not accessible: the caller lacks "
                                                       "kms:GenerateDataKey permission.")
            kept["x-oss-server-side-encryption"] = sse
            if sse == "KMS":
                key_id = headers.get("x-oss-server-side-encryption-key-id")
                default_id = f"localoss-default-{uuid.uuid4().hex[:12]}"
                kept["x-oss-server-side-encryption-key-id"] = key_id or default_id
        elif headers.get("x-oss-server-side-encryption-key-id"):
            raise BucketError(400, "InvalidArgument", "x-oss-server-side-encryption-key-id requires "
                                                      "x-oss-server-side-encryption: KMS.")
        return kept

    @staticmethod
    def _forbid(headers: Mapping[str, str]) -> bool:
        return headers.get("x-oss-forbid-overwrite", "").lower() == "true"

    def _put_object(self, bucket: Bucket, key: str, headers: dict[str, str]) -> None:
        if "content-length" not in headers and not self._chunked:
            raise BucketError(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
        kept = self._stored_headers(headers)
        if self._forbid(headers):
            bucket.check_absent(key)  # early answer; publish() checks again atomically
        path = bucket.new_data_file()
        try:
            size, md5, crc = self._receive(path)
            meta = ObjectMeta(key=key, size=size, etag=md5, crc64=crc, mtime=time.time(),
                              object_type="Normal", headers=kept, segments=[Segment(path.name, size)])
            bucket.publish(meta, forbid_overwrite=self._forbid(headers))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self._send(200, headers={"ETag": f'"{md5}"', "x-oss-hash-crc64ecma": str(crc),
                                 "Content-MD5": base64.b64encode(bytes.fromhex(md5)).decode(),
                                 **self._sse_headers(kept)})

    def _copy_object(self, bucket: Bucket, key: str, headers: dict[str, str]) -> None:
        """CopyObject within this server: same bytes, ETag and CRC-64; metadata copied unless
        ``x-oss-metadata-directive: REPLACE``.  Conditional copies are refused (not implemented)."""
        if any(h.startswith("x-oss-copy-source-if-") for h in headers):
            raise _refuse("CopyObject with x-oss-copy-source-if-* conditions")
        source = unquote(headers["x-oss-copy-source"])
        src_bucket_name, _, src_key = source.lstrip("/").partition("/")
        src_bucket = self.server_state.bucket(src_bucket_name)
        if src_bucket is None or src_bucket_name in self.server_state.faults.missing_buckets:
            raise BucketError(404, "NoSuchBucket", "The specified bucket does not exist.")
        if not src_key:
            raise BucketError(400, "InvalidArgument", "Copy Source must mention the source bucket and key: "
                                                      "/sourcebucket/sourcekey.")
        meta = src_bucket.get(src_key)
        directive = headers.get("x-oss-metadata-directive", "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise BucketError(400, "InvalidArgument", "x-oss-metadata-directive must be COPY or REPLACE.")
        kept = self._stored_headers(headers) if directive == "REPLACE" else dict(meta.headers)
        if self._forbid(headers):
            bucket.check_absent(key)
        path = bucket.new_data_file()
        try:
            with open(path, "wb") as out:
                for segment, _size in src_bucket.iter_segments(meta):
                    with open(segment, "rb") as part:
                        while chunk := part.read(_IO):
                            out.write(chunk)
            copied = ObjectMeta(key=key, size=meta.size, etag=meta.etag, crc64=meta.crc64, mtime=time.time(),
                                object_type=meta.object_type, headers=kept,
                                segments=[Segment(path.name, meta.size)])
            bucket.publish(copied, forbid_overwrite=self._forbid(headers))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        body = _xml("CopyObjectResult", [("ETag", f'"{meta.etag}"'), ("LastModified", _iso(copied.mtime))])
        self._send(200, body, {"Content-Type": "application/xml", "ETag": f'"{meta.etag}"',
                               "x-oss-hash-crc64ecma": str(meta.crc64), **self._sse_headers(kept)})

    def _delete_objects(self, bucket: Bucket, params: dict[str, str]) -> None:
        """DeleteMultipleObjects: up to 1,000 keys of an XML body (Content-MD5 checked when sent)."""
        body = self._read_small_body()
        sent_md5 = self.headers.get("content-md5")
        if sent_md5 and base64.b64decode(sent_md5) != hashlib.md5(body).digest():
            raise BucketError(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
        # Parsed with each control character as a character reference to a private-use stand-in
        # (expat refuses them raw), then given back: OSS takes such keys (oss2 sends them raw).
        escaped = _XML_CONTROL.sub(lambda m: f"&#{0xF700 + m.group()[0]};".encode(), body)
        try:
            root = ElementTree.fromstring(escaped)
        except ElementTree.ParseError:
            raise BucketError(400, "MalformedXML", "The XML you provided was not well-formed.") from None
        url = params.get("encoding-type") == "url"
        control = {0xF700 + c: c for c in range(0x20)}
        found = ((e.findtext("Key") or "").translate(control) for e in root.iter("Object"))
        keys = [unquote(k) if url else k for k in found]
        if not keys or len(keys) > 1000:
            raise BucketError(400, "MalformedXML", "The XML you provided was not well-formed.")
        quiet = (root.findtext("Quiet") or "false").strip().lower() == "true"
        for key in keys:
            bucket.delete(key)  # deleting what is not there succeeds, as in OSS
        items: list[tuple[str, Any]] = [] if quiet else [
            ("Deleted", [("Key", quote(k, safe="/") if url else k)]) for k in keys]
        if url:
            items.append(("EncodingType", "url"))
        self._send(200, _xml("DeleteResult", items), {"Content-Type": "application/xml"})

    @staticmethod
    def _sse_headers(kept: Mapping[str, str]) -> dict[str, str]:
        return {k: v for k, v in kept.items() if k.startswith("x-oss-server-side-encryption")}

    def _initiate(self, bucket: Bucket, key: str, headers: dict[str, str]) -> None:
        self._drain()
        kept = self._stored_headers(headers)
        if self._forbid(headers):
            bucket.check_absent(key)
        upload = bucket.initiate(key, kept)
        body = _xml("InitiateMultipartUploadResult", [("Bucket", bucket.info.name), ("Key", key),
                                                       ("UploadId", upload.upload_id)])
        self._send(200, body, {"Content-Type": "application/xml", **self._sse_headers(kept)})

    def _upload_part(self, bucket: Bucket, key: str, params: dict[str, str]) -> None:
        upload_id = params["uploadId"]
        number = self._int_param(params, "partNumber", 0, 1, 10000)
        bucket.upload(upload_id, key)
        name = f"part-{number:05d}-{uuid.uuid4().hex[:8]}"
        path = bucket.part_path(upload_id, name)
        try:
            size, md5, crc = self._receive(path)
            bucket.add_part(upload_id, key, Part(number=number, size=size, etag=md5, md5=md5, crc64=crc,
                                                 mtime=time.time(), file=name))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self._send(200, headers={"ETag": f'"{md5}"', "x-oss-hash-crc64ecma": str(crc)})

    def _complete(self, bucket: Bucket, key: str, params: dict[str, str], headers: dict[str, str]) -> None:
        body = self._read_small_body()
        self._check_acl(headers)
        if headers.get("x-oss-complete-all", "").lower() == "yes":
            # Every uploaded part, in part-number order; OSS refuses a part list beside it.
            if body.strip():
                raise BucketError(400, "InvalidArgument", "Should not speficy both complete all header and "
                                                          "http body.")
            upload = bucket.upload(params["uploadId"], key)
            wanted = [(p.number, p.etag) for p in sorted(upload.parts.values(), key=lambda p: p.number)]
            self._finish_complete(bucket, key, params, headers, wanted)
            return
        try:
            root = ElementTree.fromstring(body)
            wanted = [(int(p.findtext("PartNumber") or ""), p.findtext("ETag") or "")
                      for p in root.findall("Part")]
        except (ElementTree.ParseError, ValueError):
            raise BucketError(400, "MalformedXML", "The XML you provided was not well-formed.") from None
        self._finish_complete(bucket, key, params, headers, wanted)

    def _finish_complete(self, bucket: Bucket, key: str, params: dict[str, str], headers: dict[str, str],
                         wanted: list[tuple[int, str]]) -> None:
        meta = bucket.complete(params["uploadId"], key, wanted, forbid_overwrite=self._forbid(headers))
        result = _xml("CompleteMultipartUploadResult", [
            ("Location", f"{bucket.info.name}.oss-{bucket.info.region}.aliyuncs.com/{key}"),
            ("Bucket", bucket.info.name), ("Key", key), ("ETag", f'"{meta.etag}"'),
        ])
        self._send(200, result, {"Content-Type": "application/xml", "ETag": f'"{meta.etag}"',
                                 "x-oss-hash-crc64ecma": str(meta.crc64)})

    def _list_parts(self, bucket: Bucket, key: str, params: dict[str, str]) -> None:
        upload = bucket.upload(params["uploadId"], key)
        limit = self._int_param(params, "max-parts", 1000, 1, 1000)
        marker = self._int_param(params, "part-number-marker", 0, 0, 10000)
        parts = sorted((p for p in upload.parts.values() if p.number > marker), key=lambda p: p.number)
        truncated = len(parts) > limit
        parts = parts[:limit]
        items: list[tuple[str, Any]] = [
            ("Bucket", bucket.info.name), ("Key", key), ("UploadId", upload.upload_id),
            ("PartNumberMarker", marker), ("NextPartNumberMarker", parts[-1].number if parts else marker),
            ("MaxParts", limit), ("IsTruncated", str(truncated).lower()),
        ]
        for p in parts:
            items.append(("Part", [("PartNumber", p.number), ("LastModified", _iso(p.mtime)),
                                   ("ETag", f'"{p.etag}"'), ("HashCrc64ecma", p.crc64), ("Size", p.size)]))
        self._send(200, _xml("ListPartsResult", items), {"Content-Type": "application/xml"})

    def _get_object(self, bucket: Bucket, key: str, headers: dict[str, str], params: dict[str, str], *,
                    meta_only: bool) -> None:
        meta = bucket.get(key)
        storage_class = meta.headers.get("x-oss-storage-class", bucket.info.storage_class)
        if self.command == "GET" and not meta_only and storage_class in ARCHIVE_CLASSES:
            # An archived object's data is readable only after RestoreObject, which is refused here.
            raise BucketError(403, "InvalidObjectState", "The operation is not valid for the object's state.")
        common = {
            "ETag": f'"{meta.etag}"',
            "Last-Modified": email.utils.formatdate(meta.mtime, usegmt=True),
            "x-oss-hash-crc64ecma": str(meta.crc64),
        }
        if self._not_modified(meta, headers):
            self._send(304, headers=common, length=0)
            return
        if meta_only:
            self._send(200, headers=common, length=meta.size)
            return
        common.update({
            "Content-Type": meta.headers.get("content-type", "application/octet-stream"),
            "Accept-Ranges": "bytes",
            "x-oss-object-type": meta.object_type,
            **{k: v for k, v in meta.headers.items() if k != "content-type"},
            "x-oss-storage-class": storage_class,
        })
        for param, header in _RESPONSE_OVERRIDES.items():
            if param in params and self.command == "GET":
                common.pop(header.lower(), None)
                common[header] = params[param]
        first, last = 0, meta.size - 1
        status = 200
        wanted = self._parse_range(headers.get("range", ""), meta.size, headers)
        if wanted is not None:
            first, last = wanted
            status = 206
            common["Content-Range"] = f"bytes {first}-{last}/{meta.size}"
        length = last - first + 1 if meta.size else 0
        files = [(open(path, "rb"), size) for path, size in bucket.iter_segments(meta)]  # noqa: SIM115
        try:
            self._send(status, headers=common, length=length)
            if self.command == "HEAD" or length == 0:
                return
            dropping = self._drop_mode == "body"
            self._send_segments(files, first, length // 2 if dropping else length)
            if dropping:
                raise _Drop()
        finally:
            for f, _ in files:
                f.close()

    @staticmethod
    def _not_modified(meta: ObjectMeta, headers: Mapping[str, str]) -> bool:
        """OSS's conditional GET and HEAD, in the order of RFC 7232: If-Match (else If-Unmodified-Since)
        failing is 412 PreconditionFailed; If-None-Match matching (else If-Modified-Since not passed) is
        304 NotModified (True).  A date that does not parse is ignored, as HTTP says."""
        etag = f'"{meta.etag}"'
        modified = int(meta.mtime)  # Last-Modified has whole seconds

        def matches(value: str) -> bool:
            return any(tag.strip() in ("*", etag, meta.etag) for tag in value.split(","))

        def failed(condition: str) -> BucketError:
            return BucketError(412, "PreconditionFailed",
                               "At least one of the pre-conditions you specified did not hold.",
                               extra=[("Condition", condition)])

        if "if-match" in headers:
            if not matches(headers["if-match"]):
                raise failed("If-Match")
        elif (since := _http_date(headers.get("if-unmodified-since"))) is not None and modified > since:
            raise failed("If-Unmodified-Since")
        if "if-none-match" in headers:
            return matches(headers["if-none-match"])
        since = _http_date(headers.get("if-modified-since"))
        return since is not None and modified <= since

    def _send_segments(self, files: list[tuple[Any, int]], offset: int, count: int) -> None:
        for f, size in files:
            if count <= 0:
                return
            if offset >= size:
                offset -= size
                continue
            n = min(size - offset, count)
            self.connection.sendfile(f, offset, n)
            count -= n
            offset = 0

    def _parse_range(self, text: str, size: int, headers: Mapping[str, str]) -> tuple[int, int] | None:
        """(first, last) of a valid single range; None means "send the whole object"."""
        match = _RANGE_RE.match(text.strip())
        if not match or match.groups() == ("", ""):
            return None
        start, end = match.groups()
        if start:
            first = int(start)
            last = min(int(end), size - 1) if end else size - 1
            if end and int(end) < first:
                return None
        else:
            first = max(size - int(end), 0)
            last = size - 1
        if first >= size:
            if headers.get("x-oss-range-behavior", "").lower() == "standard":
                raise BucketError(416, "InvalidRange", "The requested range cannot be satisfied.")
            return None  # OSS's historical behaviour: an unsatisfiable range means the whole object
        return first, last

    # --- admin --------------------------------------------------------------------------------
    def _admin(self, path: str, query: str) -> None:
        state = self.server_state
        try:
            self._drop_mode = None
            if path == "/-/faults" and self.command == "GET":
                self._json(asdict(state.faults))
            elif path == "/-/faults" and self.command in ("PUT", "POST"):
                changes = json.loads(self._read_small_body() or b"{}")
                changes.update(dict(parse_qsl(query)))
                for name in ("error_rate", "drop_rate", "latency"):
                    if name in changes:
                        changes[name] = float(changes[name])
                self._json(asdict(state.set_faults(**changes)))
            elif path == "/-/faults" and self.command == "DELETE":
                state.clear_faults()
                self._json(asdict(state.faults))
            elif path == "/-/stats" and self.command == "GET":
                self._json(asdict(state.stats))
            elif path == "/-/buckets" and self.command in ("PUT", "POST"):
                spec = json.loads(self._read_small_body() or b"{}")
                state.create_bucket(spec["name"], storage_class=spec.get("storage_class", "Standard"),
                                    region=spec.get("region"))
                self._json({"created": spec["name"]})
            else:
                self._json({"error": f"no admin operation {self.command} {path}"}, status=404)
        except (ValueError, KeyError, TypeError) as err:
            self._json({"error": str(err)}, status=400)

    def _json(self, value: object, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode(), {"Content-Type": "application/json"})


# --- python -m localdev.oss_server ----------------------------------------------------------
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m localdev.oss_server",
        description="Local OSS server (a test double of Alibaba Cloud OSS for tests and the demo).",
    )
    parser.add_argument("--root", help="data directory (default: a new temporary directory)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--region", default="cn-hangzhou")
    parser.add_argument("--key", action="append", default=[], metavar="AK:SECRET",
                        help="accepted access key (repeatable); default: ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET "
                             "from the environment, else the pair local-ak:local-secret")
    parser.add_argument("--bucket", action="append", default=[], metavar="NAME[:STORAGE_CLASS]",
                        help="bucket to create at start (repeatable)")
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--latency", type=float, default=0.0)
    return parser.parse_args(argv)


def _keys_from(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    keys = {}
    for item in args.key:
        ak, sep, secret = item.partition(":")
        if not sep or not ak or not secret:
            raise SystemExit(f"--key must look like AK:SECRET, got {item!r}")
        keys[ak] = secret
    if not keys:
        ak = environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
        secret = environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        keys = {ak: secret} if ak and secret else {"local-ak": "local-secret"}
    return keys


def main(argv: list[str] | None = None, *, ready: Callable[[str], None] | None = None) -> int:
    args = _parse_args(argv)
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="local-oss-"))
    keys = _keys_from(args, os.environ)
    server = LocalOssServer(root, keys, host=args.host, port=args.port, region=args.region)
    for item in args.bucket:
        name, _, storage_class = item.partition(":")
        server.create_bucket(name, storage_class=storage_class or "Standard")
    server.set_faults(error_rate=args.error_rate, drop_rate=args.drop_rate, latency=args.latency)
    endpoint = server.start()
    print(f"endpoint: {endpoint}", flush=True)
    print(f"root: {root}", flush=True)
    print(f"access keys: {', '.join(keys)}", flush=True)
    if ready is not None:
        ready(endpoint)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
