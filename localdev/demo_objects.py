"""The demo's kubectl door: apply a job object, follow the job the controller started for it, show
``kubectl describe``, delete an object (its data goes through a DeleteRequest)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client

from backupctl import jobctl
from backupctl.console import console
from localdev.kube.build import kubectl
from schemas.resources import API_VERSION, KINDS
from schemas.specs import JobKind
from schemas.status import JobStatus

START_TIMEOUT = 60.0


def run_kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([kubectl(), "--kubeconfig", str(kubeconfig), *args], input=stdin,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def apply_job(kubeconfig: Path, kind: JobKind, name: str, namespace: str, spec: dict[str, Any]) -> str:
    """``kubectl apply`` of a job object; returns the manifest (the demo prints it)."""
    manifest = yaml.safe_dump(
        {"apiVersion": API_VERSION, "kind": KINDS[kind].kind,
         "metadata": {"name": name, "namespace": namespace}, "spec": spec},
        sort_keys=False,
    )
    console.print(f"kubectl apply -f - <<EOF\n{manifest}EOF", markup=False, highlight=False)
    console.print(run_kubectl(kubeconfig, "apply", "-f", "-", stdin=manifest).strip())
    return manifest


async def follow(client: Client, kubeconfig: Path, kind: JobKind, name: str, namespace: str) -> JobStatus:
    """Wait for the controller to start the object's job, then follow it like ``--wait`` does."""
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    while not await jobctl.job_exists(client, kind.value, name):
        status = await asyncio.to_thread(
            run_kubectl, kubeconfig, "-n", namespace, "get", KINDS[kind].singular, name,
            "--ignore-not-found", "-o", "jsonpath={.status.phase} {.status.message}",
        )
        if status.startswith("Failed"):
            raise RuntimeError(f"{KINDS[kind].kind} {name} refused: {status}")
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"no job started for {KINDS[kind].kind} {name} within {START_TIMEOUT:.0f} s "
                               "(is the controller running? `backupctl dev status`)")
        await asyncio.sleep(0.3)
    return await jobctl.wait_job(client, kind.value, name)


def describe(kubeconfig: Path, kind: JobKind, name: str, namespace: str) -> None:
    console.print(f"$ kubectl -n {namespace} describe {KINDS[kind].singular} {name}", markup=False)
    console.print(run_kubectl(kubeconfig, "-n", namespace, "describe", KINDS[kind].singular, name),
                  markup=False, highlight=False)
