"""`keys create|list|revoke [API]`: API keys, shown once and stored as hashes."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cortexlite.cli.common import Output, echo_json, open_workspace, stderr, stdout
from cortexlite.environments import ConfigFile, Environment
from cortexlite.keys import KeyStore, effective_auth
from cortexlite.settings import Settings
from cortexlite.workspace import Workspace

if TYPE_CHECKING:
    from cortexlite.nomad.cluster import Cluster

__all__ = ["app"]

app = typer.Typer(help="Manage API keys (networking.auth: api_key).", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    api: Annotated[
        str | None, typer.Argument(help="The API the key opens (default: every API of the environment).")
    ] = None,
    label: Annotated[str | None, typer.Option(help="A note for `keys list`, e.g. who holds the key.")] = None,
    save: Annotated[
        bool, typer.Option("--save", help="Keep the key in config.yaml (mode 0600) for `cortexlite predict`.")
    ] = False,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.text,
) -> None:
    """Create a key and print it once; only its SHA-256 hash is stored.

    A new key is valid at once, beside the older ones: rotate by creating a key, moving clients to
    it, then revoking the old one.
    """
    with open_workspace(ctx) as ws:
        if api is not None:
            ws.require_api(api)
        made = _store(ws).create(api, label)
        if save:
            _save(ws.environment, api or "*", made.key)
        unprotected = _unprotected(ws, api)
    if output is Output.json:
        echo_json(made.record.public() | {"key": made.key})
    else:
        stdout.print(made.key, markup=False)
        stderr.print(f"key {made.record.id} for {api or 'every API'}: shown once, keep it now", markup=False)
    if unprotected:
        stderr.print(
            f"note: {', '.join(unprotected)} need no key (networking.auth is not api_key); the key applies once "
            "they are deployed with networking.auth: api_key",
            markup=False,
        )


@app.command("list")
def list_(
    ctx: typer.Context,
    api: Annotated[str | None, typer.Argument(help="Only the keys that open this API.")] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.text,
) -> None:
    """List the keys (ids, scope, label, status); never the keys or their hashes."""
    with open_workspace(ctx) as ws:
        keys = _store(ws).entries(api)
    if output is Output.json:
        echo_json([key.public() for key in keys])
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "api", "label", "created", "status"):
        table.add_column(column)
    for key in keys:
        created = datetime.datetime.fromtimestamp(key.created_at).strftime("%Y-%m-%d %H:%M")
        table.add_row(key.id, key.api or "*", key.label or "", created, "active" if key.active else "revoked")
    stdout.print(table)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (`keys list`).")],
    api: Annotated[str | None, typer.Option(help="Only when the key opens this API.")] = None,
) -> None:
    """Revoke a key: within a second, requests with it are answered 403."""
    with open_workspace(ctx) as ws:
        key = _store(ws).revoke(key_id, api)
    stdout.print(f"revoked key {key.id} ({key.api or 'every API'})", markup=False)


def _store(ws: Workspace | Cluster) -> KeyStore:
    if isinstance(ws, Workspace):
        return KeyStore.of(ws.state)
    from cortexlite.nomad.keys import VariableKeys

    return KeyStore(VariableKeys(ws))


def _save(environment: Environment, api: str, key: str) -> None:
    config = ConfigFile(Settings.from_env().home)
    saved = dict(environment.api_keys or {}) | {api: key}
    config.put(environment.model_copy(update={"api_keys": saved}), replace=True)


def _unprotected(ws: Workspace | Cluster, api: str | None) -> list[str]:
    """The deployed APIs (of `api`, or all) that take requests without a key."""
    if isinstance(ws, Workspace):
        names = [api] if api is not None else ws.state.names()
        records = {name: ws.state.api(name) for name in names}
        modes = {
            name: effective_auth(record.release().api, ws.environment.auth)
            for name, record in records.items() if record is not None
        }  # fmt: skip
    else:
        jobs = ws.api_jobs()
        modes = {
            name: str((stub.get("Meta") or {}).get("cortexlite.auth", "none"))
            for name, stub in jobs.items() if api is None or name == api
        }  # fmt: skip
    return [name for name, mode in modes.items() if mode != "api_key"]
