"""``backupctl``: the command line of the backup center.

Exit codes: 0 success, 1 the operation failed, 2 bad input (nothing was started), 130 interrupted.

Processes that used the Temporal client may abort or segfault while the interpreter shuts down
(temporalio/sdk-python#300).  :func:`run` therefore flushes the output streams and leaves with
``os._exit`` carrying the code the command decided, so the shell always sees the right one.
"""

from __future__ import annotations

import os
import sys
import traceback
from importlib.metadata import entry_points

import typer
from pydantic import ValidationError

from backupctl.backup_cmd import backup_app
from backupctl.console import BadInput, err_console
from backupctl.convert_cmd import convert_app
from backupctl.delete_cmd import delete_app
from backupctl.jobs import jobs_app
from backupctl.plan_cmd import plan_app
from backupctl.restore_cmd import restore_app
from backupctl.vault_cmd import vault_app
from backupctl.worker_cmd import worker_app
from schemas.common import describe_validation_error
from schemas.errors import BackupCenterError
from schemas.settings import SettingsError
from vault.store import ObjectStoreError, as_product_error

app = typer.Typer(
    name="backupctl",
    help="Backup center for Kubernetes on Temporal: backup, verify, convert, restore and delete jobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(backup_app, name="backup")
app.add_typer(plan_app, name="plan")
app.add_typer(vault_app, name="vault")
app.add_typer(jobs_app, name="jobs")
app.add_typer(worker_app, name="worker")
app.add_typer(restore_app, name="restore")
app.add_typer(convert_app, name="convert")
app.add_typer(delete_app, name="delete")


def _plugged_in_commands() -> None:
    """Commands other packages add (the local environment adds ``dev`` and ``demo``)."""
    for entry in entry_points(group="backupctl.commands"):
        try:
            register = entry.load()
        except ImportError:
            continue  # declared, but its package is not installed here (the product image)
        register(app)


_plugged_in_commands()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (never exits itself)."""
    try:
        # Standalone mode: typer reports usage errors itself (exit 2) and ends with SystemExit.
        app(args=argv, prog_name="backupctl")
        return 0
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            return done.code or 0
        err_console.print(str(done.code), markup=False)
        return 1
    except ValidationError as err:
        err_console.print(f"error: {describe_validation_error('input', err)}", markup=False)
        return 2
    except (SettingsError, BadInput) as err:
        err_console.print(f"error: {err}", markup=False)
        return 2
    except BackupCenterError as err:
        err_console.print(f"error: {err.short()}", markup=False)
        return 1
    except ObjectStoreError as err:  # the same words an activity would report (vault.store)
        err_console.print(f"error: {as_product_error(err).short()}", markup=False)
        return 1
    except ConnectionError as err:
        err_console.print(f"error: {err}", markup=False)
        return 1
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception:
        traceback.print_exc()
        return 1


def run() -> None:
    """Console-script entry point: exit with the right code even if shutdown would crash."""
    code = 1
    try:
        code = main()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


if __name__ == "__main__":
    run()
