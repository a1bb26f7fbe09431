"""Entry point of the `cortexlite` command: registers command groups, maps errors to exit codes.

Exit codes: 0 success, 1 a user error (one paragraph on stderr, no traceback), 2 a usage error,
130 interrupted (an unfinished update is rolled back by the next command).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from loguru import logger

from cortexlite import __version__
from cortexlite.cli import deploy, env, image, keys
from cortexlite.cli.dev import dev_command
from cortexlite.cli.get import get_command
from cortexlite.cli.gpus import gpus_command
from cortexlite.cli.init import init_command
from cortexlite.cli.logs import logs_command
from cortexlite.cli.operator import operator_command
from cortexlite.cli.predict import predict_command
from cortexlite.cli.prune import prune_command
from cortexlite.errors import CortexliteError

__all__ = ["app", "main"]

app = typer.Typer(
    name="cortexlite",
    help="Deploy ML models as HTTP APIs on infrastructure you own.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(image.app, name="image")
app.add_typer(env.app, name="env")
app.add_typer(keys.app, name="keys")
deploy.register(app)
app.command("dev")(dev_command)
app.command("init")(init_command)
app.command("get")(get_command)
app.command("gpus")(gpus_command)
app.command("logs")(logs_command)
app.command("operator")(operator_command)
app.command("predict")(predict_command)
app.command("prune")(prune_command)


@app.callback()
def _root(
    ctx: typer.Context,
    env_name: Annotated[
        str | None,
        typer.Option("--env", "-e", envvar="CORTEXLITE_ENV", help="The environment (default: the current one)."),
    ] = None,
) -> None:
    """Deploy ML models as HTTP APIs on infrastructure you own."""
    ctx.obj = {"env": env_name}


@app.command()
def version() -> None:
    """Print the versions of cortexlite and its runtime."""
    from cortexlite_runtime import __version__ as runtime_version

    typer.echo(f"cortexlite {__version__} (runtime {runtime_version})")


def main() -> None:
    # Library modules log through loguru; a command shows only warnings (the runtime's NVML probe logs at debug).
    logger.remove()
    logger.add(sys.stderr, level="WARNING", format="{level}: {message}")
    try:
        app()
    except CortexliteError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(1)
    except SystemExit as exc:
        if exc.code == 130:  # typer turns Ctrl-C into exit code 130
            typer.secho("interrupted; an unfinished update is rolled back by the next cortexlite command", err=True)
        raise
