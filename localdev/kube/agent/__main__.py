"""Entry point of a detached (or test-owned) agent process."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from kubernetes import config
from kubernetes.client import ApiClient, Configuration

from localdev.kube.agent.core import LocalAgent
from localdev.kube.agent.model import REGION


def api_client_for(kubeconfig: Path, pool_size: int = 32) -> ApiClient:
    """An ApiClient with room for the agent's long-lived watch connections next to its requests."""
    configuration = Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    return ApiClient(configuration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.kube.agent", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument(
        "--snapshot-store",
        type=Path,
        default=None,
        help="where snapshot data lives (share it between clusters to restore across them)",
    )
    parser.add_argument("--region", default=REGION, help="the cluster's region (node labels, ECS snapshots)")
    parser.add_argument(
        "--ecs-endpoint",
        default=None,
        help="a local ECS endpoint (localdev.ecs_server): disk snapshots become ECS snapshots there",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    agent = LocalAgent(
        api_client_for(args.kubeconfig),
        args.state_dir,
        snapshot_store=args.snapshot_store,
        region=args.region,
        ecs_endpoint=args.ecs_endpoint,
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        agent.stop(wait=False)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.run()
    agent.stop(timeout=3.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
