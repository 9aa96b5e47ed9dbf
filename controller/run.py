"""Running the controller: kopf, logged in with the product's kubeconfig, next to a Temporal client.

Two replicas may run: kopf runs standalone (no peering objects), and every handler is idempotent
(deterministic workflow ids, create-or-find DeleteRequests), so a second replica only repeats what
the first did.  kopf keeps its own bookkeeping in annotations under ``controller.backupcenter.io``:
the objects' status is the jobs'.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

import kopf

from activities import context
from controller.handlers import Controller
from controller.jobs import JobDoor
from controller.locations import Locations
from controller.schedules import Schedules
from controller.tenancy import Tenancy
from workers.client import connect

log = logging.getLogger(__name__)
PREFIX = "controller.backupcenter.io"


def build_registry(controller: Controller, *others: Any) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=PREFIX, key="last-handled-configuration"
        )
        settings.persistence.finalizer = f"{PREFIX}/delete-data"
        # Handler retries ("waiting for DeleteRequest …") are Events; kopf's own chatter is not.
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 60
        settings.batching.idle_timeout = 0.5
        settings.batching.batch_window = 0.05

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    controller.register(registry)
    for other in others:
        other.register(registry)
    return registry


async def serve(*, stop: asyncio.Event | None = None, ready: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``): every namespace's job objects."""
    ctx = context.from_environment()
    if ctx.kubeconfig:
        os.environ["KUBECONFIG"] = ctx.kubeconfig  # kopf's login reads it
    client = await connect(ctx.settings)
    kube = ctx.kube()
    tenancy = Tenancy(kube, ctx.vaults, ctx.settings.product_namespace)
    controller = Controller(JobDoor(client, ctx.settings), kube, tenancy)
    locations = Locations(ctx.vaults, kube, ctx.settings.product_namespace)
    schedules = Schedules(client, ctx.settings, kube)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("controller watching job objects in every namespace")
    mirror = asyncio.ensure_future(locations.mirror_cli_vaults(stop))
    try:
        await kopf.operator(
            registry=build_registry(controller, locations, schedules),
            clusterwide=True,
            standalone=True,
            stop_flag=stop,
            ready_flag=ready,
        )
    finally:
        stop.set()
        await mirror
