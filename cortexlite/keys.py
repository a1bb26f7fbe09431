"""API keys: made here, shown once, stored as SHA-256 hashes only.

`keys.json` (mode 0600, under the environment's state) is the record: every key's id, scope (one
API, or every API of the environment when `api` is None), label, hash and revocation time. From it,
each API gets `apikeys/<api>.json`: the hashes its replicas accept or refuse (runtime auth.py
follows that file, so a new key is valid at once and a revocation applies within a second, without
restarting anything). A revoked key stays listed, so it is answered 403 rather than 401.

Processes read the file where it is; Docker replicas mount its directory read-only; a remote
engine's copy lives in the environment's state volume on the host.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from cortexlite.errors import CortexliteError, NotFoundError
from cortexlite.state import EnvState
from cortexlite_runtime.auth import hash_key
from cortexlite_runtime.spec import ApiSpec

__all__ = ["KEY_PREFIX", "ApiKey", "KeyStore", "NewKey", "effective_auth", "ring_relative", "rings_dir"]

KEY_PREFIX = "clk_"
_LABEL = re.compile(r"^[\w.@:/ -]{1,64}$")


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


class KeyStore:
    def __init__(self, state: EnvState) -> None:
        self.state = state
        self._relative = f"envs/{state.env}/keys.json"

    def entries(self, api: str | None = None) -> list[ApiKey]:
        found = self._read().keys
        return [key for key in found if api is None or key.covers(api)]

    def create(self, api: str | None, label: str | None = None) -> NewKey:
        if label is not None and not _LABEL.match(label):
            raise CortexliteError(f"key label {label!r}: expected 1-64 letters, digits, spaces or . @ : / - _")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.state.lock("_keys").hold():
            document = self._read()
            existing = {entry.id for entry in document.keys}
            key_id = secrets.token_hex(4)
            while key_id in existing:
                key_id = secrets.token_hex(4)
            record = ApiKey(id=key_id, api=api, label=label, sha256=hash_key(key), created_at=time.time())
            document.keys.append(record)
            self._write(document)
        return NewKey(record, key)

    def revoke(self, key_id: str, api: str | None = None) -> ApiKey:
        with self.state.lock("_keys").hold():
            document = self._read()
            for index, entry in enumerate(document.keys):
                if entry.id == key_id and (api is None or entry.covers(api)):
                    if entry.revoked_at is not None:
                        return entry
                    revoked = entry.model_copy(update={"revoked_at": time.time()})
                    document.keys[index] = revoked
                    self._write(document)
                    return revoked
        where = f" for API {api}" if api else ""
        raise NotFoundError(
            f"no API key {key_id}{where} in environment {self.state.env}; `cortexlite keys list` shows them"
        )

    def publish(self, api: str) -> None:
        """(Re)write the API's ring from the record: before its replicas start, and after every change."""
        self._publish(self._read(), [api])

    def ring(self, api: str) -> bytes:
        return _ring(self._read(), api)

    # --- plumbing ----------------------------------------------------------------------------------

    def _read(self) -> _Document:
        raw = self.state.read_shared(self._relative)
        if raw is None:
            return _Document()
        try:
            return _Document.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise CortexliteError(
                f"the API key record {self._relative} of environment {self.state.env} is unreadable ({exc}); "
                "restore it from a backup, or remove it and create new keys"
            ) from None

    def _write(self, document: _Document) -> None:
        data = (json.dumps(document.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()
        self.state.write_shared(self._relative, data, mode=0o600)
        apis = {entry.api for entry in document.keys if entry.api is not None}
        apis |= set(self.state.names())
        self._publish(document, sorted(apis))

    def _publish(self, document: _Document, apis: list[str]) -> None:
        for api in apis:
            self.state.write_shared(ring_relative(self.state.env, api), _ring(document, api))


def _ring(document: _Document, api: str) -> bytes:
    entries = [
        {"id": entry.id, "sha256": entry.sha256, "revoked": not entry.active}
        for entry in document.keys
        if entry.covers(api)
    ]
    return (json.dumps({"keys": entries}, sort_keys=True) + "\n").encode()
