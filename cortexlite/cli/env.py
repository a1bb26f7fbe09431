"""`env add|list|use|remove`: the environments of config.yaml."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cortexlite.cli.common import Output, echo_json, stderr, stdout
from cortexlite.environments import (
    LOCAL,
    BackendKind,
    ConfigFile,
    EnvironmentRequest,
    Network,
    build_environment,
)
from cortexlite.errors import EnvConfigError
from cortexlite.settings import Settings
from cortexlite.state import EnvState
from cortexlite.workspace import open_target

__all__ = ["app"]

app = typer.Typer(help="Manage environments (where APIs are deployed).", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The environment's name (local redefines the built-in one).")],
    backend: Annotated[
        BackendKind | None, typer.Option(help="process, docker or nomad (inferred from --docker-host/--nomad-addr).")
    ] = None,
    docker_host: Annotated[str | None, typer.Option(help="A Docker engine: unix://, tcp:// or ssh://.")] = None,
    nomad_addr: Annotated[str | None, typer.Option(help="A Nomad API address, e.g. http://nomad:4646.")] = None,
    storage: Annotated[str | None, typer.Option(help="Bundles and models: s3://bucket/prefix or oss://...")] = None,
    gateway_port: Annotated[int | None, typer.Option(help="The gateway's port on 127.0.0.1 (default 8888).")] = None,
    gateway_admin_port: Annotated[
        int | None, typer.Option(help="Traefik's API and metrics port (default gateway port + 1).")
    ] = None,
    network: Annotated[Network | None, typer.Option(help="Docker networking: bridge (default) or host.")] = None,
    gateway_host: Annotated[
        str | None,
        typer.Option(help="Where users reach the gateway (default: a remote Docker host's name, else 127.0.0.1)."),
    ] = None,
    host_socket: Annotated[
        str | None,
        typer.Option(
            help="A remote engine's socket on its host, for the operator there (default /var/run/docker.sock)."
        ),
    ] = None,
    auth: Annotated[
        str | None,
        typer.Option(help="The APIs' default networking.auth: none (default) or api_key (requests need a key)."),
    ] = None,
    gateway_bind: Annotated[
        str | None,
        typer.Option(help="The address the gateway listens on (default 127.0.0.1; 0.0.0.0 for every interface)."),
    ] = None,
    s3_endpoint: Annotated[
        str | None, typer.Option(help="The S3 endpoint, e.g. http://minio:9000 (else CORTEXLITE_S3_ENDPOINT).")
    ] = None,
    s3_region: Annotated[str | None, typer.Option(help="The signing region (OSS: e.g. cn-hangzhou).")] = None,
    s3_access_key: Annotated[
        str | None, typer.Option(help="Stored in config.yaml (mode 0600); else CORTEXLITE_S3_ACCESS_KEY.")
    ] = None,
    s3_secret_key: Annotated[
        str | None, typer.Option(help="Stored in config.yaml (mode 0600); prefer CORTEXLITE_S3_SECRET_KEY.")
    ] = None,
    s3_ca_bundle: Annotated[str | None, typer.Option(help="A CA bundle for a store with a private CA.")] = None,
    s3_replica_endpoint: Annotated[
        str | None, typer.Option(help="The endpoint replicas use, when it differs from this machine's.")
    ] = None,
    s3_insecure: Annotated[bool, typer.Option("--s3-insecure", help="Plain HTTP to a host:port endpoint.")] = False,
    create_bucket: Annotated[
        bool, typer.Option("--create-bucket", help="Create the storage bucket when it does not exist.")
    ] = False,
    nomad_token: Annotated[
        str | None, typer.Option(help="Nomad ACL token, stored in config.yaml (mode 0600); prefer NOMAD_TOKEN.")
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="Nomad namespace (else NOMAD_NAMESPACE).")] = None,
    region: Annotated[str | None, typer.Option(help="Nomad region (else NOMAD_REGION).")] = None,
    datacenters: Annotated[
        str | None, typer.Option(help="Nomad datacenters for the jobs, comma-separated (default: all, '*').")
    ] = None,
    ca_cert: Annotated[
        str | None, typer.Option(help="CA bundle of the Nomad API's TLS certificate (else NOMAD_CACERT).")
    ] = None,
    registry: Annotated[
        str | None, typer.Option(help="Registry Nomad clients pull images from, e.g. registry.local:5000.")
    ] = None,
    cpu_mhz_per_core: Annotated[
        int | None, typer.Option(help="Nomad: MHz reserved per core of compute.cpu (default 2000).")
    ] = None,
    check: Annotated[bool, typer.Option(help="Check that the storage answers and the bucket exists.")] = True,
    use: Annotated[bool, typer.Option("--use", help="Make it the current environment.")] = False,
) -> None:
    """Define an environment."""
    s3 = {
        "endpoint": s3_endpoint, "region": s3_region, "access_key": s3_access_key, "secret_key": s3_secret_key,
        "ca_bundle": s3_ca_bundle, "replica_endpoint": s3_replica_endpoint, "secure": False if s3_insecure else None,
    }  # fmt: skip
    nomad = {
        "token": nomad_token, "namespace": namespace, "region": region, "ca_cert": ca_cert, "registry": registry,
        "datacenters": tuple(dc.strip() for dc in datacenters.split(",") if dc.strip()) if datacenters else None,
        "cpu_mhz_per_core": cpu_mhz_per_core,
    }  # fmt: skip
    request = EnvironmentRequest(
        name=name, backend=backend, docker_host=docker_host, nomad_addr=nomad_addr, storage=storage,
        gateway_port=gateway_port, gateway_admin_port=gateway_admin_port, network=network, s3=s3,
        gateway_host=gateway_host, nomad=nomad, host_socket=host_socket, auth=auth, gateway_listen=gateway_bind,
    )  # fmt: skip
    environment = build_environment(request)
    config = ConfigFile(Settings.from_env().home)
    if name == LOCAL and EnvState(Settings.from_env().home, LOCAL).names():
        raise EnvConfigError("environment local has APIs deployed; `cortexlite down -e local` before redefining it")
    if environment.storage and (check or create_bucket):
        from cortexlite.bundles import check_storage

        for line in check_storage(environment, create=create_bucket):
            stdout.print(line, markup=False)
    config.put(environment, replace=name == LOCAL)
    if use:
        config.use(name)
    stdout.print(f"added environment {name}: {environment.describe()}", markup=False)
    if environment.exposed_without_auth:
        stderr.print(
            f"warning: the gateway of {name} listens on {environment.gateway_bind}, beyond this machine, and its "
            "APIs need no key: anyone who reaches it can call them. Add --auth api_key (then `cortexlite keys "
            "create`), or set networking.auth: api_key per API.",
            markup=False,
        )


@app.command("list")
def list_(output: Annotated[Output, typer.Option("--output", "-o")] = Output.text) -> None:
    """List the environments; the current one is marked."""
    config = ConfigFile(Settings.from_env().home)
    environments = config.environments()
    current = Settings.from_env().env or config.current()
    if output is Output.json:
        rows = [env.public() | {"current": env.name == current} for env in environments.values()]
        if LOCAL not in environments:
            rows.insert(0, {"name": LOCAL, "backend": None, "current": current == LOCAL})
        echo_json(rows)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("", "name", "backend", "where", "gateway", "storage"):
        table.add_column(column)
    if LOCAL not in environments:
        table.add_row("*" if current == LOCAL else "", LOCAL, "(resolved on first use)", "this machine", "", "")
    for env in environments.values():
        where = env.docker_host or env.nomad_addr or "this machine"
        table.add_row(
            "*" if env.name == current else "", env.name, env.backend.value, where,
            f"{env.gateway_address}:{env.gateway_port}", env.storage or "",
        )  # fmt: skip
    stdout.print(table)


@app.command("use")
def use(name: Annotated[str, typer.Argument(help="The environment.")]) -> None:
    """Make an environment the current one (commands without -e use it)."""
    ConfigFile(Settings.from_env().home).use(name)
    stdout.print(f"using environment {name}", markup=False)


def _deployed(settings: Settings, name: str, force: bool) -> list[str]:
    """The environment's APIs; for a remote engine or a cluster, read there (`--force` forgets it unread)."""
    environment = ConfigFile(settings.home).get(name)
    if environment is None or not (environment.remote_docker or environment.backend is BackendKind.NOMAD):
        return EnvState(settings.home, name).names()
    if force:
        return []
    from cortexlite.errors import CortexliteError
    from cortexlite.status import get

    try:
        with open_target(settings, name) as target:
            return [view.name for view in get(target, None, lambda _line: None)]
    except CortexliteError as exc:
        raise EnvConfigError(
            f"environment {name}: cannot check that it has no APIs ({exc}); `--force` removes it anyway "
            "(what runs there keeps running)"
        ) from exc


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The environment.")],
    force: Annotated[bool, typer.Option("--force", help="Remove it even if its engine cannot be asked.")] = False,
) -> None:
    """Forget an environment (it must have no APIs: `cortexlite down -e NAME` first)."""
    settings = Settings.from_env()
    deployed = _deployed(settings, name, force)
    if deployed:
        raise EnvConfigError(
            f"environment {name} still has {len(deployed)} API(s) ({', '.join(deployed)}); "
            f"`cortexlite down -e {name}` first"
        )
    ConfigFile(settings.home).remove(name)
    stdout.print(f"removed environment {name}", markup=False)
