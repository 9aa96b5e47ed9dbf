"""The local environment's commands, plugged into ``backupctl`` (entry point ``backupctl.commands``).

The product does not import this package: the installed product (the image) leaves ``localdev`` out,
and its ``backupctl`` then simply has no ``dev`` and ``demo`` commands.
"""

from __future__ import annotations

import typer

from localdev.demo_cmd import demo
from localdev.dev_cmd import dev_app


def register(app: typer.Typer) -> None:
    app.add_typer(dev_app, name="dev")
    app.command("demo")(demo)
