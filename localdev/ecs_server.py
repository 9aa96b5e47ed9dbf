"""LOCAL ECS ENDPOINT: a test double of Alibaba Cloud's ECS API, for tests and the demo.  Not the cloud.

It speaks the ECS RPC protocol (version 2014-05-26) over real HTTP for the actions the product uses:
CreateSnapshot, DescribeSnapshots, CopySnapshot, DeleteSnapshot and ModifySnapshotAttribute.  The real
``aliyun-python-sdk-ecs`` client is pointed at it (``EcsClient(..., endpoint=server.endpoint)``).

What it checks like ECS does:

* request signatures, RPC style v1 as the installed SDK sends them (``SignatureMethod`` HMAC-SHA1, also
  HMAC-SHA256; ``StringToSign = METHOD&%2F&percent(canonical query)``, key ``secret + "&"``), against the
  configured AccessKeys and issued STS tokens; timestamps (15 minutes window) and nonce reuse.  The SDK
  compares our ``SignatureDoesNotMatch`` message with its own string-to-sign, exactly as with ECS.
  (The newer ACS3-HMAC-SHA256 header signature is not sent by the installed SDK and is not accepted.)
* ECS error codes, HTTP statuses and JSON error bodies ``{RequestId, HostId, Code, Message, Recommend}``.
* regions: a fixed set; anything else is ``InvalidRegionId.NotFound``.
* snapshots progress over time (configurable GiB/s for creation and for copies), copies land in the
  destination region with ``SourceSnapshotId``/``SourceRegionId``, retention days expire snapshots,
  client tokens make create/copy idempotent, names are validated like ECS validates them.

Fault injection (:attr:`LocalEcsServer.faults`): throttling for the next N calls or at a rate, server
errors, ``Forbidden.RAM`` for an action, slow copies, snapshot service disabled in a region, failing a
snapshot, a snapshot quota.

How the local disk driver gets consistent snapshot ids: in process it calls
:meth:`LocalEcsServer.register_snapshot` (simplest: returns the ``s-...`` id at once); across processes it
calls the unsigned admin API under ``/__local__/`` (``POST /__local__/snapshots``), or registers a disk
(``register_disk`` / ``POST /__local__/disks``) and sends a signed ``CreateSnapshot`` through the SDK.
``GET``/``DELETE /__local__/snapshots/<id>`` read one snapshot of any region (status, ``SourceSnapshotId`` of
a copy) and release one; :mod:`localdev.kube.agent.ecs` is the agent's side of this.

Three parts: the state (regions, disks, snapshots, faults: :mod:`localdev.ecs_state`), who signed a
request (:mod:`localdev.ecs_auth`), and the HTTP endpoint here.

Run standalone: ``python -m localdev.ecs_server --port 8765 --region cn-hangzhou --region cn-beijing``.
"""

from __future__ import annotations

import argparse
import base64
import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from localdev.ecs_auth import Authenticator, sign, string_to_sign  # noqa: F401  (sign: for tests)
from localdev.ecs_state import (  # noqa: F401  (ManualClock, Faults: part of this server's interface)
    ACTIONS,
    API_VERSION,
    CallRecord,
    EcsApiError,
    EcsState,
    Faults,
    ManualClock,
    StsCredentials,
    snapshot_not_found,
)

# --- HTTP ------------------------------------------------------------------------------------------------


class LocalEcsServer:
    """The local ECS endpoint.  ``start()`` returns its endpoint, e.g. ``http://127.0.0.1:40123``."""

    def __init__(
        self,
        keys: Mapping[str, str] | None = None,
        regions: Iterable[str] = ("cn-hangzhou", "cn-beijing"),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        create_gib_per_second: float = 20.0,
        copy_gib_per_second: float = 5.0,
        min_seconds: float = 1.0,
        snapshot_quota: int | None = None,
        clock: Callable[[], float] | None = None,
        seed: int | None = None,
    ) -> None:
        self.faults = Faults()
        self.state = EcsState(
            regions,
            clock=clock or time.time,
            create_gib_per_second=create_gib_per_second,
            copy_gib_per_second=copy_gib_per_second,
            min_seconds=min_seconds,
            snapshot_quota=snapshot_quota,
            faults=self.faults,
            seed=seed,
        )
        self.auth = Authenticator(keys or {})
        self._host, self._port = host, port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._calls: list[CallRecord] = []

    # --- lifecycle ---

    def start(self) -> str:
        if self._httpd is not None:
            return self.endpoint
        handler = type("_BoundHandler", (_Handler,), {"server_ref": self})
        self._httpd = ThreadingHTTPServer((self._host, self._port), handler)
        self._httpd.daemon_threads = True
        # A short poll interval keeps stop() fast (shutdown waits for the next poll).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="local-ecs", daemon=True
        )
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> LocalEcsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def regions(self) -> list[str]:
        return list(self.state.regions)

    # --- in-process admin API ---

    def add_key(self, access_key_id: str, secret: str) -> None:
        self.auth.keys[access_key_id] = secret

    def disable_key(self, access_key_id: str) -> None:
        self.auth.disabled.add(access_key_id)

    def issue_sts(self, ttl_seconds: float = 3600.0) -> StsCredentials:
        """Issue temporary credentials (``STS.`` key id, secret and token) valid for ``ttl_seconds``."""
        creds = StsCredentials(
            access_key_id="STS." + uuid.uuid4().hex[:20],
            access_key_secret=uuid.uuid4().hex,
            security_token=base64.b64encode(uuid.uuid4().bytes * 4).decode(),
            expires_at=time.time() + ttl_seconds,
        )
        self.auth.sts[creds.access_key_id] = creds
        return creds

    def register_disk(
        self, region: str, size_gib: int, disk_id: str | None = None, *, source_snapshot_id: str = ""
    ) -> str:
        """A disk CreateSnapshot can snapshot (made from ``source_snapshot_id``, if given): its id."""
        return self.state.register_disk(region, size_gib, disk_id, source_snapshot_id=source_snapshot_id)

    def register_snapshot(
        self,
        region: str,
        size_gib: int,
        *,
        disk_id: str = "",
        name: str = "",
        retention_days: int | None = None,
        ready: bool = False,
    ) -> str:
        """A snapshot created outside the API (the local disk driver's); progresses like any other."""
        return self.state.register_snapshot(
            region, size_gib, disk_id=disk_id, name=name, retention_days=retention_days, ready=ready
        )

    def fail_snapshot(self, snapshot_id: str) -> None:
        with self.state.lock:
            self.state.snapshots[snapshot_id].failed = True

    def snapshot(self, snapshot_id: str) -> dict[str, Any] | None:
        """The snapshot as DescribeSnapshots would show it, or None (deleted, expired, unknown)."""
        with self.state.lock:
            self.state._expire()
            snap = self.state.snapshots.get(snapshot_id)
            return snap.to_api(self.state.clock()) if snap else None

    def snapshots(self, region: str | None = None) -> list[dict[str, Any]]:
        with self.state.lock:
            self.state._expire()
            now = self.state.clock()
            return [s.to_api(now) for s in self.state.snapshots.values() if region in (None, s.region)]

    def calls(self, action: str | None = None, code: str | None = None) -> list[CallRecord]:
        with self.state.lock:
            return [c for c in self._calls if action in (None, c.action) and code in (None, c.code)]

    # --- request handling ---

    def handle_api(self, method: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        request_id = str(uuid.uuid4()).upper()
        action = params.get("Action", "")
        region = params.get("RegionId", "")
        key_id = params.get("AccessKeyId", "")
        try:
            key_id = self.auth.authenticate(method, params)
            if params.get("Version") != API_VERSION:
                raise EcsApiError(400, "InvalidVersion", "Specified parameter Version is not valid.")
            if action not in ACTIONS:
                raise EcsApiError(
                    404,
                    "InvalidAction.NotFound",
                    "Specified api is not found, please check your url and method.",
                )
            with self.state.lock:
                self.faults.check(action, key_id)
                region = self.state.check_region(region)
            body = self.state.dispatch(action, region, params)
            status, code = 200, ""
        except EcsApiError as err:
            status, code = err.status, err.code
            body = {
                "Code": err.code,
                "Message": err.message,
                "HostId": "ecs.local",
                "Recommend": f"https://api.aliyun.com/troubleshoot?q={err.code}&product=Ecs&requestId={request_id}",
            }
        body["RequestId"] = request_id
        with self.state.lock:
            self._calls.append(CallRecord(action, region, key_id, status, code))
        return status, body

    def handle_admin(self, method: str, path: str, payload: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Unsigned control API for other local processes (the demo's disk driver, fault scripts)."""
        try:
            if method == "POST" and path == "/__local__/disks":
                disk_id = self.register_disk(
                    str(payload["RegionId"]), int(payload["SizeGiB"]), payload.get("DiskId"),
                    source_snapshot_id=str(payload.get("SourceSnapshotId") or ""),
                )
                return 200, {"DiskId": disk_id}
            if method == "POST" and path == "/__local__/snapshots":
                sid = self.register_snapshot(
                    str(payload["RegionId"]),
                    int(payload["SizeGiB"]),
                    disk_id=str(payload.get("DiskId", "")),
                    name=str(payload.get("Name", "")),
                    retention_days=payload.get("RetentionDays"),
                    ready=bool(payload.get("Ready", False)),
                )
                return 200, {"SnapshotId": sid}
            if method == "GET" and path == "/__local__/snapshots":
                return 200, {"Snapshots": self.snapshots()}
            if path.startswith("/__local__/snapshots/") and method in ("GET", "DELETE"):
                # One snapshot, in any region: the local disk driver checks status, region and the source
                # of copies (GET) and releases the snapshot of a deleted content (DELETE), as a CSI driver
                # calls DescribeSnapshots/DeleteSnapshot.
                sid = path.removeprefix("/__local__/snapshots/")
                if method == "DELETE":
                    with self.state.lock:
                        gone = self.state.snapshots.pop(sid, None) is None
                    if gone:
                        raise snapshot_not_found()
                    return 200, {}
                found = self.snapshot(sid)
                if found is None:
                    raise snapshot_not_found()
                return 200, found
            if method == "POST" and path == "/__local__/faults":
                self._apply_faults(payload)
                return 200, {}
        except EcsApiError as err:
            return err.status, {"Code": err.code, "Message": err.message}
        except (KeyError, TypeError, ValueError) as err:
            return 400, {"Code": "InvalidParameter", "Message": f"bad admin request: {err}"}
        return 404, {"Code": "NotFound", "Message": f"no admin route {method} {path}"}

    def _apply_faults(self, payload: Mapping[str, Any]) -> None:
        with self.state.lock:
            if payload.get("clear"):
                self.faults.clear()
            if "throttle" in payload:
                spec = payload["throttle"]
                self.faults.throttle(
                    int(spec["count"]), spec.get("action"), spec.get("code", "Throttling.User")
                )
            if "unavailable" in payload:
                spec = payload["unavailable"]
                self.faults.unavailable(int(spec["count"]), spec.get("action"))
            if "throttle_rate" in payload:
                spec = payload["throttle_rate"]
                self.faults.throttle_at_rate(float(spec["rate"]), spec.get("action"))
            if "deny" in payload:
                spec = payload["deny"]
                self.faults.deny(str(spec["action"]), spec.get("code", "Forbidden.RAM"))
            if "allow" in payload:
                self.faults.allow(str(payload["allow"]["action"]))
            if "slow_copies" in payload:
                self.faults.slow_copies(float(payload["slow_copies"]))


class _Handler(BaseHTTPRequestHandler):
    server_ref: LocalEcsServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:  # admin API only: the RPC API is GET/POST
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path.startswith("/__local__/"):
            try:
                payload = json.loads(raw or b"{}")
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                self._reply(400, {"Code": "InvalidParameter", "Message": "admin body must be a JSON object"})
                return
            self._reply(*self.server_ref.handle_admin(method, url.path, payload))
            return
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        if raw and "application/x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
            # Body parameters are signed together with the query, as the SDK signs them.
            params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        status, body = self.server_ref.handle_api(method, params)
        self._reply(status, body)

    def _reply(self, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if "RequestId" in body:
            self.send_header("x-acs-request-id", str(body["RequestId"]))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines would carry signatures and tokens; the call log (LocalEcsServer.calls) is enough.
        return


# --- command line ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local ECS endpoint (test double) for the backup center.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--region", action="append", dest="regions", help="repeatable; default two regions")
    parser.add_argument("--key", action="append", default=[], help="ACCESS_KEY_ID=SECRET, repeatable")
    parser.add_argument(
        "--keys-file",
        help="JSON object {access key id: secret}; keeps secrets off the command line (visible in ps)",
    )
    parser.add_argument("--create-speed", type=float, default=20.0, help="GiB per second for CreateSnapshot")
    parser.add_argument("--copy-speed", type=float, default=5.0, help="GiB per second for CopySnapshot")
    args = parser.parse_args(argv)
    keys = dict(k.split("=", 1) for k in args.key)
    if args.keys_file:
        with open(args.keys_file) as handle:
            keys.update({str(k): str(v) for k, v in json.load(handle).items()})
    if not keys:
        # A throwaway key of this local double, printed so scripts can use it.
        keys = {"LTAIlocal" + uuid.uuid4().hex[:12]: uuid.uuid4().hex}
    server = LocalEcsServer(
        keys,
        args.regions or ("cn-hangzhou", "cn-beijing"),
        host=args.host,
        port=args.port,
        create_gib_per_second=args.create_speed,
        copy_gib_per_second=args.copy_speed,
    )
    endpoint = server.start()
    # Keys given in a file stay out of the log; a generated throwaway key is printed so scripts can use it.
    shown = {k: ("<from --keys-file>" if args.keys_file else v) for k, v in keys.items()}
    print(json.dumps({"endpoint": endpoint, "regions": server.regions, "keys": shown}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
