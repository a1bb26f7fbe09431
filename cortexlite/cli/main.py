"""Entry point of the `cortexlite` command: registers command groups, maps errors to exit codes."""

from __future__ import annotations

import sys

import typer

from cortexlite import __version__
from cortexlite.cli import image
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


@app.callback()
def _root() -> None:
    """Deploy ML models as HTTP APIs on infrastructure you own."""


@app.command()
def version() -> None:
    """Print the versions of cortexlite and its runtime."""
    from cortexlite_runtime import __version__ as runtime_version

    typer.echo(f"cortexlite {__version__} (runtime {runtime_version})")


def main() -> None:
    try:
        app()
    except CortexliteError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(1)
