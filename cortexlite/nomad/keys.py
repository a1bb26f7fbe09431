"""API keys on Nomad: the record and the rings are Nomad Variables, not files on this machine.

- The record (every key's hash, scope, label and revocation) is the variable `cortexlite/<env>/api-keys`
  (item `record`), written with check-and-set: two machines' `keys` commands never lose each other's change.
- Each API's ring is the item `api_keys` of its job's variable (`nomad/jobs/cortexlite-<api>`, which the
  job's tasks read without an ACL policy, beside the storage secrets). The job's template renders it to
  `secrets/cortexlite-api-keys.json` with `change_mode = "noop"`: Nomad rewrites the file when the
  variable changes and the runtime follows it, so keys apply without restarting anything.

The operator's token needs `variables: write` on `cortexlite/*` and `nomad/jobs/*` (a management token has it).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from cortexlite.errors import BusyError, NomadConflict
from cortexlite.keys import KeyConflict, KeyStore
from cortexlite.nomad.job import KEYS_ITEM, variable_path

if TYPE_CHECKING:
    from cortexlite.nomad.client import NomadClient
    from cortexlite.nomad.cluster import Cluster

__all__ = ["RECORD_ITEM", "RING_ITEM", "VariableKeys", "record_path", "store_job_variable"]

RECORD_ITEM = "record"
RING_ITEM = KEYS_ITEM
_ATTEMPTS = 5


def record_path(env: str) -> str:
    return f"cortexlite/{env}/api-keys"


class VariableKeys:
    """The key home of a Nomad environment (see `cortexlite.keys.KeyHome`)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.client = cluster.client
        self.env = cluster.environment.name
        self._index = 0  # the record's ModifyIndex when it was read (0: there was none)

    def hold(self) -> AbstractContextManager[object]:
        return nullcontext()  # check-and-set on write instead of a lock

    def read_record(self) -> bytes | None:
        variable = self.client.variable(record_path(self.env))
        self._index = int((variable or {}).get("ModifyIndex") or 0)
        item = ((variable or {}).get("Items") or {}).get(RECORD_ITEM)
        return str(item).encode() if item is not None else None

    def write_record(self, data: bytes) -> None:
        try:
            self.client.put_variable(record_path(self.env), {RECORD_ITEM: data.decode()}, cas=self._index)
        except NomadConflict as exc:
            raise KeyConflict(
                f"the API keys of environment {self.env} changed meanwhile; run the command again"
            ) from exc

    def write_ring(self, api: str, ring: bytes) -> None:
        """Set the ring in the API's job variable, keeping its other items; an API not deployed has none yet."""
        for attempt in range(1, _ATTEMPTS + 1):
            current = self.client.variable(variable_path(api))
            if current is None:
                return  # its deploy writes the variable, ring included
            items = dict(current.get("Items") or {}) | {RING_ITEM: ring.decode()}
            if _put(self.client, api, items, current, last=attempt == _ATTEMPTS):
                return

    def apis(self) -> list[str]:
        return list(self.cluster.api_jobs())


def store_job_variable(cluster: Cluster, api: str, secrets: Mapping[str, str], *, ring: bool) -> None:
    """Write the API's job variable before its job: the storage secrets and, with `ring`, its API key ring.

    Nomad blocks a template on a variable that does not exist, so the variable is written whenever the
    job's templates read it. Check-and-set keeps a ring a concurrent `keys` command publishes.
    """
    for attempt in range(1, _ATTEMPTS + 1):
        current = cluster.client.variable(variable_path(api))
        items = dict(secrets)
        if ring:
            items[RING_ITEM] = KeyStore(VariableKeys(cluster)).ring(api).decode()
        if not items:
            return
        if _put(cluster.client, api, items, current, last=attempt == _ATTEMPTS):
            return


def _put(
    client: NomadClient, api: str, items: dict[str, str], current: Mapping[str, object] | None, *, last: bool
) -> bool:
    index = int(str((current or {}).get("ModifyIndex") or 0))
    try:
        client.put_variable(variable_path(api), items, cas=index)
    except NomadConflict:
        if last:
            raise BusyError(
                f"{api}: its Nomad variable {variable_path(api)} keeps changing under this command; run it again"
            ) from None
        return False
    return True
