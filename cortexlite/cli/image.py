"""`cortexlite image ...`: build the runtime image."""

from __future__ import annotations

import dataclasses
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer(help="Build the images replicas run.", no_args_is_help=True)


class Output(StrEnum):
    text = "text"
    json = "json"


@app.command("build")
def build(
    base_image: Annotated[
        str | None, typer.Option(help="Base image (default: python:3.11-slim, else cortexlite/base:bookworm).")
    ] = None,
    pip_index_url: Annotated[str | None, typer.Option(help="Package index for the runtime's dependencies.")] = None,
    ca_cert: Annotated[
        Path | None, typer.Option(help="CA bundle for pip, kept in the image as PIP_CERT.", dir_okay=False)
    ] = None,
    wheelhouse: Annotated[
        Path | None, typer.Option(help="Install dependencies only from this directory of wheels.", file_okay=False)
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.text,
) -> None:
    """Build the runtime image (reused when its content hash already exists); print its tag."""
    # Imported here: the docker SDK loads only for commands that talk to Docker.
    from cortexlite.image import ImageOptions, build_runtime_image

    options = ImageOptions(base_image=base_image, pip_index_url=pip_index_url, ca_cert=ca_cert, wheelhouse=wheelhouse)
    ref = build_runtime_image(options, on_log=_log_to_stderr)
    if output is Output.json:
        typer.echo(json.dumps(dataclasses.asdict(ref)))
    else:
        typer.echo(ref.tag)


def _log_to_stderr(line: str) -> None:
    typer.echo(line, err=True)
