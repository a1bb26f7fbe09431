"""API keys: made here, shown once, stored as SHA-256 hashes only.

`keys.json` (mode 0600, under the environment's state) is the record: every key's id, scope (one
API, or every API of the environment when `api` is None), label, hash and revocation time. From it,
each API gets `apikeys/<api>.json`: the hashes its replicas accept or refuse (runtime auth.py
follows that file, so a new key is valid at once and a revocation applies within a second, without
restarting anything). A revoked key stays listed, so it is answered 403 rather than 401.

Where the record and the rings live is a `KeyHome`: for processes and Docker, the environment's
state (`StateKeys`: processes read the ring where it is, Docker replicas mount its directory
read-only, a remote engine's copy lives in the state volume on its host); for Nomad, Nomad
Variables (`cortexlite.nomad.keys`), where a template renders the ring into each allocation.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from cortexlite.errors import CortexliteError, NotFoundError
from cortexlite.state import EnvState
from cortexlite_runtime.auth import hash_key
from cortexlite_runtime.spec import ApiSpec

__all__ = [
    "KEY_PREFIX",
    "ApiKey",
    "KeyConflict",
    "KeyHome",
    "KeyStore",
    "NewKey",
    "StateKeys",
    "effective_auth",
    "ring_relative",
    "rings_dir",
]

KEY_PREFIX = "clk_"
_LABEL = re.compile(r"^[\w.@:/ -]{1,64}$")
_ATTEMPTS = 5


class KeyConflict(CortexliteError):
    """The record changed between reading and writing it (another machine's `keys` command): read it again."""


class ApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    api: str | None  # None: every API of the environment
    label: str | None = None
    sha256: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def covers(self, api: str) -> bool:
        return self.api is None or self.api == api

    def public(self) -> dict[str, object]:
        """What `keys list -o json` shows: never the hash (it would allow offline guessing of weak keys)."""
        return {
            "id": self.id, "api": self.api or "*", "label": self.label, "created_at": self.created_at,
            "revoked_at": self.revoked_at, "status": "active" if self.active else "revoked",
        }  # fmt: skip


@dataclass(frozen=True)
class NewKey:
    record: ApiKey
    key: str  # the only time it exists outside its user's hands


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    keys: list[ApiKey] = []


def ring_relative(env: str, api: str) -> str:
    """Where an API's ring is, relative to CORTEXLITE_HOME (the same on a remote host's state volume)."""
    return f"envs/{env}/apikeys/{api}.json"


def rings_dir(home: Path, env: str) -> Path:
    return home / "envs" / env / "apikeys"


def effective_auth(api: ApiSpec, default: str | None) -> str:
    """The API's networking.auth, else its environment's default, else none."""
    return api.networking.auth or default or "none"


class KeyHome(Protocol):
    """Where an environment's key record and its APIs' rings are kept."""

    env: str

    def hold(self) -> AbstractContextManager[object]:
        """Exclusive use of the record while it is read, changed and written."""
        ...

    def read_record(self) -> bytes | None: ...

    def write_record(self, data: bytes) -> None:
        """Replace the record (secret: only its owner may read it); `KeyConflict` when it changed since read."""
        ...

    def write_ring(self, api: str, ring: bytes) -> None: ...

    def apis(self) -> list[str]:
        """The environment's deployed APIs (each gets its ring on every change)."""
        ...


class StateKeys:
    """The key home of process and Docker environments: files of the environment's state."""

    def __init__(self, state: EnvState) -> None:
        self.state = state
        self.env = state.env
        self._relative = f"envs/{state.env}/keys.json"

    def hold(self) -> AbstractContextManager[object]:
        return self.state.lock("_keys").hold()

    def read_record(self) -> bytes | None:
        return self.state.read_shared(self._relative)

    def write_record(self, data: bytes) -> None:
        self.state.write_shared(self._relative, data, mode=0o600)

    def write_ring(self, api: str, ring: bytes) -> None:
        self.state.write_shared(ring_relative(self.env, api), ring)

    def apis(self) -> list[str]:
        return self.state.names()


class KeyStore:
    def __init__(self, home: KeyHome) -> None:
        self.home = home

    @classmethod
    def of(cls, state: EnvState) -> KeyStore:
        return cls(StateKeys(state))

    def entries(self, api: str | None = None) -> list[ApiKey]:
        found = self._read().keys
        return [key for key in found if api is None or key.covers(api)]

    def create(self, api: str | None, label: str | None = None) -> NewKey:
        if label is not None and not _LABEL.match(label):
            raise CortexliteError(f"key label {label!r}: expected 1-64 letters, digits, spaces or . @ : / - _")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        for attempt in range(1, _ATTEMPTS + 1):
            with self.home.hold():
                document = self._read()
                existing = {entry.id for entry in document.keys}
                key_id = secrets.token_hex(4)
                while key_id in existing:
                    key_id = secrets.token_hex(4)
                record = ApiKey(id=key_id, api=api, label=label, sha256=hash_key(key), created_at=time.time())
                document.keys.append(record)
                if self._write(document, last=attempt == _ATTEMPTS):
                    return NewKey(record, key)
        raise AssertionError("unreachable")  # pragma: no cover

    def revoke(self, key_id: str, api: str | None = None) -> ApiKey:
        for attempt in range(1, _ATTEMPTS + 1):
            with self.home.hold():
                document = self._read()
                found = [
                    (index, entry) for index, entry in enumerate(document.keys)
                    if entry.id == key_id and (api is None or entry.covers(api))
                ]  # fmt: skip
                if not found:
                    break
                index, entry = found[0]
                if entry.revoked_at is not None:
                    return entry
                revoked = entry.model_copy(update={"revoked_at": time.time()})
                document.keys[index] = revoked
                if self._write(document, last=attempt == _ATTEMPTS):
                    return revoked
        where = f" for API {api}" if api else ""
        raise NotFoundError(
            f"no API key {key_id}{where} in environment {self.home.env}; `cortexlite keys list` shows them"
        )

    def publish(self, api: str) -> None:
        """(Re)write the API's ring from the record: before its replicas start, and after every change."""
        self._publish(self._read(), [api])

    def ring(self, api: str) -> bytes:
        return _ring(self._read(), api)

    # --- plumbing ----------------------------------------------------------------------------------

    def _read(self) -> _Document:
        raw = self.home.read_record()
        if raw is None:
            return _Document()
        try:
            return _Document.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise CortexliteError(
                f"the API key record of environment {self.home.env} is unreadable ({exc}); "
                "restore it from a backup, or remove it and create new keys"
            ) from None

    def _write(self, document: _Document, *, last: bool) -> bool:
        """Write the record and every ring; False when the record changed meanwhile (try again, unless `last`)."""
        data = (json.dumps(document.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()
        try:
            self.home.write_record(data)
        except KeyConflict:
            if last:
                raise
            return False
        apis = {entry.api for entry in document.keys if entry.api is not None}
        apis |= set(self.home.apis())
        self._publish(document, sorted(apis))
        return True

    def _publish(self, document: _Document, apis: list[str]) -> None:
        for api in apis:
            self.home.write_ring(api, _ring(document, api))


def _ring(document: _Document, api: str) -> bytes:
    entries = [
        {"id": entry.id, "sha256": entry.sha256, "revoked": not entry.active}
        for entry in document.keys
        if entry.covers(api)
    ]
    return (json.dumps({"keys": entries}, sort_keys=True) + "\n").encode()
