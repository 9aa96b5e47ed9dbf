"""A thin JSON-over-HTTP view of the Kubernetes API, on top of a kubernetes.client.ApiClient's connection.

Plain dicts on REST paths: the same code handles core objects, custom resources and every served
version of a kind, and skipping the generated models keeps listing 10,000 objects cheap.
Authentication (client certificate or bearer token) and TLS come from the ApiClient's configuration.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes.client import ApiClient

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class KubeError(Exception):
    """An API call answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class Kube:
    def __init__(self, api_client: ApiClient) -> None:
        self._config = api_client.configuration
        self._pool: urllib3.PoolManager = api_client.rest_client.pool_manager
        self._host = str(self._config.host).rstrip("/")
        self._watches: set[urllib3.BaseHTTPResponse] = set()
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """End open watch streams and refuse new ones (a server shutting down waits for its clients'
        connections), and drop pooled connections. Plain requests still work afterwards."""
        with self._lock:
            self._closed = True
            streams = list(self._watches)
        for resp in streams:
            _abort(resp)
        self._pool.clear()

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "backupcenter"}
        if content_type:
            headers["Content-Type"] = content_type
        auth = self._config.auth_settings().get("BearerToken")
        if auth and auth.get("value"):
            headers["Authorization"] = str(auth["value"])
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Obj:
        url = self._host + path + ("?" + urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        resp = self._pool.request(
            method,
            url,
            body=data,
            headers=self._headers(content_type if data else None),
            timeout=urllib3.Timeout(total=timeout),
            preload_content=True,
        )
        payload: Obj = {}
        if resp.data:
            try:
                payload = json.loads(resp.data)
            except ValueError:
                payload = {"message": resp.data.decode(errors="replace")}
        if resp.status >= 300:
            raise KubeError(resp.status, str(payload.get("reason", "")), str(payload.get("message", payload)))
        return payload

    def get(self, path: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, path: str, **query: Any) -> tuple[list[Obj], str]:
        """Items and the list's resourceVersion (to start a watch from)."""
        result = self.request("GET", path, query=query or None)
        return list(result.get("items") or []), str(result.get("metadata", {}).get("resourceVersion", ""))

    def create(self, path: str, body: Obj, *, exist_ok: bool = False) -> Obj | None:
        try:
            return self.request("POST", path, body=body)
        except KubeError as exc:
            if exist_ok and exc.status == 409:
                return None
            raise

    def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> Obj:
        return self.request("PATCH", path, body=body, content_type=content_type)

    def delete(self, path: str, body: Obj | None = None) -> bool:
        """Delete; False when it was already gone."""
        try:
            self.request("DELETE", path, body=body)
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def watch(
        self, path: str, resource_version: str, timeout_seconds: int = 60, **query: Any
    ) -> Iterator[Obj]:
        """Watch events ({"type", "object"}) from resource_version until the server closes the stream."""
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
            **query,
        }
        url = self._host + path + "?" + urlencode(params)
        resp = self._pool.request(
            "GET",
            url,
            headers=self._headers(None),
            preload_content=False,
            timeout=urllib3.Timeout(connect=10.0, read=timeout_seconds + 15.0),
        )
        with self._lock:
            self._watches.add(resp)
            if self._closed:
                _abort(resp)
        try:
            if resp.status >= 300:
                raise KubeError(resp.status, "", resp.read().decode(errors="replace"))
            buffer = b""
            for chunk in resp.stream(4096):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            with self._lock:
                self._watches.discard(resp)
            resp.release_conn()


def _abort(resp: urllib3.BaseHTTPResponse) -> None:
    """Unblock a thread reading the response: shut the socket itself down (closing the response object
    from another thread does not interrupt a blocked TLS read)."""
    sock = getattr(getattr(resp, "connection", None), "sock", None)
    with contextlib.suppress(OSError, AttributeError):
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)


def ns_path(group_version: str, plural: str, namespace: str | None = None, name: str | None = None) -> str:
    """REST path for a resource: group_version "v1" is the core group, else "group/version"."""
    prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    path = prefix + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    return path + (f"/{name}" if name else "")
