"""`cortexlite image ...`: build the runtime and gateway images."""

from __future__ import annotations

import dataclasses
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from cortexlite.settings import Settings

__all__ = ["app"]

app = typer.Typer(help="Build the images replicas run.", no_args_is_help=True)


class Output(StrEnum):
    text = "text"
    json = "json"


@app.command("build")
def build(
    ctx: typer.Context,
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
    push: Annotated[
        bool,
        typer.Option(
            "--push", help="Also build the operator image, and push all three to the environment's registry (Nomad)."
        ),
    ] = False,
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
    registry = _registry(settings, (ctx.find_root().obj or {}).get("env")) if push else None
    with DockerEngine.from_env() as engine:
        engine.ping()
        ref = build_runtime_image(options, _log_to_stderr, engine)
        gateway = ensure_gateway_image(engine, options, settings.cache_dir, settings.traefik, _log_to_stderr)
        pushed: dict[str, str] = {}
        if registry is not None:
            from cortexlite.nomad.images import ClusterImages
            from cortexlite.operator_container import ensure_operator_image

            operator = ensure_operator_image(engine, options, _log_to_stderr)
            images = ClusterImages(settings, registry)
            try:
                pushed = {tag: images.publish(tag, _log_to_stderr) for tag in (ref.tag, gateway, operator)}
            finally:
                images.close()
    save_options(settings.home / IMAGE_OPTIONS_FILE, options)
    if output is Output.json:
        typer.echo(json.dumps(dataclasses.asdict(ref) | {"gateway": gateway, "pushed": pushed}))
    else:
        typer.echo(ref.tag)
        typer.echo(gateway)
        for reference in pushed.values():
            typer.echo(f"pushed {reference}")


def _registry(settings: Settings, env: str | None) -> str:
    """The registry of the targeted environment (`-e`, else the current one); it must have one."""
    from cortexlite.environments import ConfigFile
    from cortexlite.errors import EnvConfigError

    config = ConfigFile(settings.home)
    name = env or settings.env or config.current()
    environment = config.get(name)
    if environment is None or environment.registry is None:
        raise EnvConfigError(
            f"--push needs an environment with a registry; environment {name} has none "
            f"(`cortexlite env add NAME --nomad-addr ... --registry HOST:PORT`, then `cortexlite -e NAME image build "
            "--push`)"
        )
    return environment.registry


def _log_to_stderr(line: str) -> None:
    typer.echo(line, err=True)
