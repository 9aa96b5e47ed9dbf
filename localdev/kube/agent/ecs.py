"""The local disk driver's link to a local ECS endpoint (:mod:`localdev.ecs_server`): disk snapshots are ECS
snapshots, as with Alibaba Cloud's disk CSI driver.

Configured with ``--ecs-endpoint URL --region R`` (``LocalAgent(ecs_endpoint=..., region=...)``), the agent:

* registers every disk snapshot it cuts with the endpoint (``POST /__local__/snapshots``, the unsigned admin
  API, because the agent is another process than the endpoint), in its cluster's region, and uses the
  returned ``s-...`` id as the VolumeSnapshotContent's ``snapshotHandle``.  The data is copied into the
  snapshot store under that id (``<store>/<id>/data`` and ``meta.json``, which records the region).  The
  content becomes ready when ECS says the snapshot is ``accomplished`` (ECS snapshots progress over time);
* adopts a pre-provisioned content only when ECS knows the handle *in this cluster's region* (like
  ``DescribeSnapshots`` of the real driver); a snapshot of another region is "not found" there, even when
  two clusters share the store.  A copy made by ``CopySnapshot`` has no data of its own in the store:
  the agent follows ``SourceSnapshotId`` (copies of copies too) to the snapshot whose data it has, and
  materialises it under the copy's id once ECS says the copy is accomplished.  So the store holds data
  per id, the endpoint stays a pure API double, and one shared store serves every region;
* deletes the ECS snapshot (``DELETE /__local__/snapshots/<id>``) together with the data when a content
  with ``deletionPolicy: Delete`` goes;
* registers every disk it provisions from a snapshot (``POST /__local__/disks`` with ``SourceSnapshotId``),
  so that ECS refuses DeleteSnapshot of that snapshot without ``Force``, as the real one does.

Without an endpoint, handles are random ``s-...`` names of the store only (one implicit region), as before.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

_TIMEOUT = 5.0


class EcsLinkError(RuntimeError):
    """The endpoint refused a request or could not be reached; the message says which and why."""


class LocalEcsLink:
    """Unsigned admin calls to a local ECS endpoint.  Never proxied: the endpoint is on loopback."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        # An empty ProxyHandler ignores HTTP(S)_PROXY, which would otherwise catch loopback requests.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.endpoint + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with self._opener.open(request, timeout=_TIMEOUT) as resp:
                return int(resp.status), json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            try:
                payload = json.loads(err.read() or b"{}")
            except ValueError:
                payload = {}
            return int(err.code), payload
        except (OSError, ValueError) as err:
            raise EcsLinkError(f"local ECS endpoint {self.endpoint} unreachable: {err}") from None

    def register_snapshot(
        self, region: str, size_gib: int, *, disk_id: str, name: str, retention_days: int | None
    ) -> str:
        body: dict[str, Any] = {"RegionId": region, "SizeGiB": size_gib, "DiskId": disk_id, "Name": name}
        if retention_days is not None:
            body["RetentionDays"] = retention_days
        status, answer = self._call("POST", "/__local__/snapshots", body)
        if status != 200 or not answer.get("SnapshotId"):
            raise EcsLinkError(f"{answer.get('Code', status)}: {answer.get('Message', 'no snapshot id')}")
        return str(answer["SnapshotId"])

    def register_disk(self, region: str, size_gib: int, *, source_snapshot_id: str) -> str:
        body = {"RegionId": region, "SizeGiB": size_gib, "SourceSnapshotId": source_snapshot_id}
        status, answer = self._call("POST", "/__local__/disks", body)
        if status != 200 or not answer.get("DiskId"):
            raise EcsLinkError(f"{answer.get('Code', status)}: {answer.get('Message', 'no disk id')}")
        return str(answer["DiskId"])

    def describe(self, snapshot_id: str) -> dict[str, Any] | None:
        """The snapshot as DescribeSnapshots shows it (``RegionId``, ``Status``, ``SourceSnapshotId`` …)."""
        status, answer = self._call("GET", f"/__local__/snapshots/{snapshot_id}")
        if status == 404:
            return None
        if status != 200:
            raise EcsLinkError(f"{answer.get('Code', status)}: {answer.get('Message', '')}")
        return answer

    def delete(self, snapshot_id: str) -> bool:
        """Release a snapshot; False when ECS no longer had it (the product may have deleted it first)."""
        status, answer = self._call("DELETE", f"/__local__/snapshots/{snapshot_id}")
        if status == 404:
            return False
        if status != 200:
            raise EcsLinkError(f"{answer.get('Code', status)}: {answer.get('Message', '')}")
        return True
