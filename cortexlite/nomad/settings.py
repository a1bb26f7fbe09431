"""How cortexlite reaches a Nomad cluster: read once from the environment definition and the shell.

A field the environment defines wins; otherwise the variables the `nomad` CLI itself reads apply:
`NOMAD_ADDR`, `NOMAD_TOKEN`, `NOMAD_NAMESPACE`, `NOMAD_REGION`, `NOMAD_CACERT`,
`NOMAD_CLIENT_CERT`/`NOMAD_CLIENT_KEY` and `NOMAD_SKIP_VERIFY`. Timeouts:
`CORTEXLITE_NOMAD_CONNECT_TIMEOUT` (5 s) and `CORTEXLITE_NOMAD_READ_TIMEOUT` (30 s, on top of a
blocking query's wait).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cortexlite.environments import Environment
from cortexlite.errors import EnvConfigError
from cortexlite.settings import seconds_setting

__all__ = ["DEFAULT_CPU_MHZ_PER_CORE", "NomadSettings"]

DEFAULT_CPU_MHZ_PER_CORE = 2000
_TRUE = ("1", "true", "yes")


@dataclass(frozen=True)
class NomadSettings:
    address: str
    token: str | None = field(default=None, repr=False)
    namespace: str | None = None
    region: str | None = None
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    skip_verify: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    @classmethod
    def from_environment(cls, environment: Environment, environ: Mapping[str, str] | None = None) -> NomadSettings:
        env = os.environ if environ is None else environ
        address = environment.nomad_addr or env.get("NOMAD_ADDR", "").rstrip("/")
        if not address:
            raise EnvConfigError(
                f"environment {environment.name}: no Nomad address: set nomad_addr (`cortexlite env add "
                f"{environment.name} --nomad-addr http://nomad:4646`) or NOMAD_ADDR"
            )
        if not address.startswith(("http://", "https://")):
            raise EnvConfigError(f"NOMAD_ADDR: expected an http:// or https:// address (got {address!r})")
        ca_cert = environment.nomad_ca_cert or env.get("NOMAD_CACERT")
        return cls(
            address=address,
            token=environment.nomad_token or env.get("NOMAD_TOKEN") or None,
            namespace=environment.nomad_namespace or env.get("NOMAD_NAMESPACE") or None,
            region=environment.nomad_region or env.get("NOMAD_REGION") or None,
            ca_cert=_file("nomad_ca_cert", ca_cert),
            client_cert=_file("NOMAD_CLIENT_CERT", env.get("NOMAD_CLIENT_CERT")),
            client_key=_file("NOMAD_CLIENT_KEY", env.get("NOMAD_CLIENT_KEY")),
            skip_verify=env.get("NOMAD_SKIP_VERIFY", "").lower() in _TRUE,
            connect_timeout=seconds_setting(
                "CORTEXLITE_NOMAD_CONNECT_TIMEOUT", env.get("CORTEXLITE_NOMAD_CONNECT_TIMEOUT"), 5.0
            ),
            read_timeout=seconds_setting(
                "CORTEXLITE_NOMAD_READ_TIMEOUT", env.get("CORTEXLITE_NOMAD_READ_TIMEOUT"), 30.0
            ),
        )


def _file(name: str, value: str | None) -> Path | None:
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise EnvConfigError(f"{name}: {path} is not a file")
    return path
