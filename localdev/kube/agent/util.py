"""Small helpers shared by the agent's controllers: timestamps, object fields, events."""

from __future__ import annotations

import logging
import secrets
import string
from datetime import UTC, datetime
from typing import Any

from kube.rest import Kube, KubeError, Obj

log = logging.getLogger("localdev.agent")

COMPONENT = "backupcenter-local-agent"


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(when: datetime | None = None) -> str:
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(when: datetime | None = None) -> str:
    """The MicroTime format of Lease.spec.renewTime."""
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def random_id(length: int = 20) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def quantity(size: int) -> str:
    """Bytes as a Kubernetes quantity, in the largest binary unit that divides it (20Gi, not 21474836480)."""
    for suffix, unit in (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def meta(obj: Obj) -> dict[str, Any]:
    return obj.get("metadata") or {}


def name_of(obj: Obj) -> str:
    return str(meta(obj).get("name", ""))


def ns_of(obj: Obj) -> str:
    return str(meta(obj).get("namespace", ""))


def uid_of(obj: Obj) -> str:
    return str(meta(obj).get("uid", ""))


def annotations_of(obj: Obj) -> dict[str, str]:
    return meta(obj).get("annotations") or {}


def labels_of(obj: Obj) -> dict[str, str]:
    return meta(obj).get("labels") or {}


def deleting(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def key(obj: Obj) -> tuple[str, str]:
    return ns_of(obj), name_of(obj)


class Events:
    """Records core/v1 Events, once per (object, reason, message) for this agent's lifetime."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._sent: set[tuple[str, str, str]] = set()

    def emit(
        self, obj: Obj, kind: str, api_version: str, reason: str, message: str, *, warning: bool
    ) -> None:
        token = (uid_of(obj), reason, message)
        if token in self._sent:
            return
        namespace = ns_of(obj) or "default"
        stamp = rfc3339()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name_of(obj)}.{random_id(16)}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": api_version,
                "kind": kind,
                "name": name_of(obj),
                "uid": uid_of(obj),
                "namespace": ns_of(obj) or None,
                "resourceVersion": meta(obj).get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self._kube.create(f"/api/v1/namespaces/{namespace}/events", event)
        except KubeError as exc:
            log.warning("cannot record event %s on %s: %s", reason, name_of(obj), exc)
            return
        self._sent.add(token)
