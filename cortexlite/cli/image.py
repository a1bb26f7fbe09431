"""`cortexlite image ...`: build the runtime and gateway images."""

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
    build_network: Annotated[
        str | None, typer.Option(help="The network build steps use: host (the Docker host's), or a network's name.")
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.text,
) -> None:
    """Build the runtime and gateway images (reused when their content hash exists); print their tags.

    The options are recorded in CORTEXLITE_HOME/image.json: deploys build missing images (a
    project's dependency image, a runtime image after an upgrade) with the same index, CA and wheels.
    """
    # Imported here: the docker SDK loads only for commands that talk to Docker.
    from cortexlite.backends.docker import DockerEngine
    from cortexlite.gateway.container import ensure_gateway_image
    from cortexlite.image import ImageOptions, build_runtime_image, save_options
    from cortexlite.settings import Settings
    from cortexlite.workspace import IMAGE_OPTIONS_FILE

    settings = Settings.from_env()
    options = ImageOptions(
        base_image=base_image, pip_index_url=pip_index_url, ca_cert=ca_cert, wheelhouse=wheelhouse,
        build_network=build_network,
    )  # fmt: skip
    with DockerEngine.from_env() as engine:
        engine.ping()
        ref = build_runtime_image(options, _log_to_stderr, engine)
        gateway = ensure_gateway_image(engine, options, settings.cache_dir, settings.traefik, _log_to_stderr)
    save_options(settings.home / IMAGE_OPTIONS_FILE, options)
    if output is Output.json:
        typer.echo(json.dumps(dataclasses.asdict(ref) | {"gateway": gateway}))
    else:
        typer.echo(ref.tag)
        typer.echo(gateway)


def _log_to_stderr(line: str) -> None:
    typer.echo(line, err=True)
