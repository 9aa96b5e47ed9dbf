"""Vault locks that keep garbage collection and backups apart.

The rule (see gc.py for why it is needed): a backup and a gc never delete/reference packs at
the same time.  Both sides write their lock object first and only then look for the other's:

* a backup holds ``data/locks/backup-<id>`` for its whole run; if it sees a fresh gc lock it
  waits (holding its own lock) until the gc is gone, or gives up with VaultBusy;
* a gc holds ``data/locks/gc-<id>``; if it sees any fresh backup lock it deletes nothing.

With a strongly consistent store (file://, OSS) at least one of two racing parties sees the
other, so they never overlap.  Locks are refreshed every ``refresh_seconds`` by a daemon thread;
a lock not refreshed for ``stale_seconds`` belongs to a dead process and is ignored.  Ages are
measured against the store's own clock (the last_modified of the lock just written), so clock
skew between nodes and the store does not matter.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid

from vault.store import ObjectInfo, ObjectStore

from .errors import VaultBusy
from .repo import LOCKS_PREFIX

STALE_SECONDS = 30 * 60
REFRESH_SECONDS = 60
POLL_SECONDS = 5.0


class VaultLock:
    def __init__(self, store: ObjectStore, kind: str, *, owner: str = "",
                 refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.store = store
        self.kind = kind
        self.key = f"{LOCKS_PREFIX}{kind}-{uuid.uuid4().hex}"
        self._body = json.dumps(
            {"kind": kind, "owner": owner, "host": socket.gethostname(), "pid": os.getpid()}
        ).encode()
        self._refresh = refresh_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.store_time = 0.0

    def acquire(self) -> VaultLock:
        self.store_time = self.store.put(self.key, self._body).last_modified
        self._thread = threading.Thread(target=self._refresher, name=f"lock-{self.kind}", daemon=True)
        self._thread.start()
        return self

    def now(self) -> float:
        """The store's clock: refresh our lock and read back its time."""
        self.store_time = self.store.put(self.key, self._body).last_modified
        return self.store_time

    def _refresher(self) -> None:
        while not self._stop.wait(self._refresh):
            # A failed refresh is retried next period; the lock only goes stale after many misses.
            with contextlib.suppress(Exception):
                self.store.put(self.key, self._body)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(Exception):
            self.store.delete(self.key)

    def __enter__(self) -> VaultLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def active_locks(store: ObjectStore, kind: str, *, now: float, stale_seconds: float = STALE_SECONDS,
                 exclude: str | None = None) -> list[str]:
    """Keys of locks of ``kind`` refreshed within ``stale_seconds`` of ``now``."""
    return [
        o.key
        for o in store.list(f"{LOCKS_PREFIX}{kind}-")
        if isinstance(o, ObjectInfo) and o.key != exclude and now - o.last_modified < stale_seconds
    ]


def acquire_backup_lock(store: ObjectStore, *, owner: str, wait_seconds: float = 3600,
                        poll_seconds: float | None = None, stale_seconds: float | None = None) -> VaultLock:
    """Take a backup lock, then wait while a gc holds the vault."""
    poll_seconds = POLL_SECONDS if poll_seconds is None else poll_seconds
    stale_seconds = STALE_SECONDS if stale_seconds is None else stale_seconds
    lock = VaultLock(store, "backup", owner=owner).acquire()
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            busy = active_locks(store, "gc", now=lock.store_time, stale_seconds=stale_seconds)
            if not busy:
                return lock
            if time.monotonic() >= deadline:
                raise VaultBusy(f"garbage collection holds the vault ({busy[0]}); retry later", key=busy[0])
            time.sleep(poll_seconds)
            lock.now()
    except BaseException:
        lock.release()
        raise
