"""`gpus [-o json]`: this machine's GPUs and the replicas that hold them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from cortexlite.cli.common import Output, echo_json, stderr, stdout
from cortexlite.gpus import Gpu, holders, inventory
from cortexlite.settings import Settings

__all__ = ["gpus_command"]


def gpus_command(
    ctx: typer.Context,
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.text,
) -> None:
    """List the GPUs (from NVML) of this machine, or of a remote Docker host with -e: memory, utilisation,
    and which replica holds each."""
    settings = Settings.from_env()
    remote = _remote_inventory(settings, (ctx.obj or {}).get("env"))
    if remote is not None:
        found, held, note = remote
    else:
        found, note = inventory(settings.fake_gpus), None
        held = holders(settings) | (_container_holders() if found else {})
    if output is Output.json:
        echo_json([{**asdict(gpu), "held_by": held.get(gpu.uuid)} for gpu in found])
        return
    if not found:
        stdout.print(f"no GPUs found ({note})" if note else "no GPUs found", markup=False)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("index", "uuid", "model", "memory", "utilisation", "held by"):
        table.add_column(column, justify="right" if column in ("index", "utilisation") else "left")
    for gpu in found:
        memory = f"{gpu.memory_used_bytes // 2**20}/{gpu.memory_total_bytes // 2**20} MiB"
        cells = (str(gpu.index), gpu.uuid, gpu.name, memory, f"{gpu.utilization * 100:.0f}%", held.get(gpu.uuid, "-"))
        table.add_row(*(Text(cell) for cell in cells))
    stdout.print(table)


def _remote_inventory(settings: Settings, env: str | None) -> tuple[list[Gpu], dict[str, str], str | None] | None:
    """A remote Docker environment's GPUs and holders, read on its host; None for any other environment."""
    from cortexlite.environments import BackendKind, ConfigFile
    from cortexlite.errors import EnvConfigError

    name = env or settings.env or ConfigFile(settings.home).current()
    environment = ConfigFile(settings.home).get(name)
    if environment is not None and environment.backend is BackendKind.NOMAD:
        raise EnvConfigError(
            f"environment {name} is a Nomad cluster: its GPUs are its clients' `nvidia/gpu` devices "
            "(`nomad node status -verbose NODE` lists them); `cortexlite deploy --plan` shows whether a GPU "
            "request can be placed"
        )
    if environment is None or not environment.remote_docker:
        return None
    from cortexlite.backends.container import DockerBackend, gpu_holders
    from cortexlite.workspace import Workspace

    with Workspace.open(settings, name) as ws:
        assert isinstance(ws.backend, DockerBackend)
        found, note = ws.backend.gpu_inventory(lambda line: stderr.print(line, markup=False))
        return found, gpu_holders(ws.backend.engine) if found else {}, note


def _container_holders() -> dict[str, str]:
    """GPUs held by replica containers of this machine's Docker engine (none when no engine answers)."""
    from cortexlite.backends.container import gpu_holders
    from cortexlite.backends.docker import DockerEngine
    from cortexlite.errors import DockerError

    try:
        with DockerEngine.from_env() as engine:
            return gpu_holders(engine)
    except DockerError:
        return {}
