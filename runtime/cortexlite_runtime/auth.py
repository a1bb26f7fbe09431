"""API keys, checked in the replica: no extra network hop per request.

The control plane gives each replica a file of key *hashes* (`CORTEXLITE_API_KEYS`, written by
`cortexlite keys`); the keys themselves exist only with their users. A request presents its key as
`Authorization: Bearer <key>` or `X-Api-Key: <key>`: no key or an unknown key is 401, a revoked key
403. Keys are 256-bit random tokens, so one SHA-256 is the right hash (no salt or stretching
protects anything for them), and a dict lookup by hash leaks nothing useful about the key.

The file is replaced by rename whenever keys change. It is re-read when its identity changed, which
is checked at most once a second, and at once (at most every 50 ms) when an unknown key arrives, so
a key is valid as soon as `cortexlite keys create` returns and a revocation applies within a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

__all__ = ["AUTH_MODES", "Denial", "KeyRing", "hash_key"]

AUTH_MODES = ("none", "api_key")
_RECHECK_S = 1.0
_UNKNOWN_RECHECK_S = 0.05
_MAX_KEY_LENGTH = 256


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Denial:
    status: int
    message: str


_MISSING = Denial(
    401, "an API key is required: send it as `Authorization: Bearer <key>` or `X-Api-Key: <key>`"
)  # fmt: skip
_UNKNOWN = Denial(401, "the API key is not valid for this API")
_REVOKED = Denial(403, "the API key was revoked")


class KeyRing:
    """The valid and revoked key hashes of one API, following its keys file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._identity: tuple[int, int, int] | None = None
        self._valid: frozenset[str] = frozenset()
        self._revoked: frozenset[str] = frozenset()
        self._checked = 0.0
        self.error: str | None = None
        self._refresh(force=True)

    @property
    def size(self) -> int:
        return len(self._valid)

    def check(self, headers: Iterable[tuple[bytes, bytes]]) -> Denial | None:
        """None when the request may pass; else why not."""
        key = presented_key(headers)
        if key is None:
            return _MISSING
        digest = hash_key(key)
        now = time.monotonic()
        if now - self._checked >= _RECHECK_S:
            self._refresh(now=now)
        if digest in self._valid:
            return None
        if digest not in self._revoked and now - self._checked >= _UNKNOWN_RECHECK_S:
            self._refresh(now=now)  # perhaps created a moment ago
            if digest in self._valid:
                return None
        return _REVOKED if digest in self._revoked else _UNKNOWN

    def _refresh(self, force: bool = False, now: float | None = None) -> None:
        self._checked = time.monotonic() if now is None else now
        if self.path is None:
            return
        try:
            info = os.stat(self.path)
        except OSError:
            identity = None
        else:
            identity = (info.st_ino, info.st_mtime_ns, info.st_size)
        if identity == self._identity and not force:
            return
        self._identity = identity
        if identity is None:
            self._valid, self._revoked = frozenset(), frozenset()
            self.error = f"{self.path} does not exist: no key is valid"
            return
        try:
            valid, revoked = parse_keys_file(self.path.read_bytes())
        except (OSError, ValueError) as exc:
            # Keep the previous hashes: a torn or unreadable file must not lock everyone out.
            self.error = f"{self.path}: {exc}"
            return
        self._valid, self._revoked, self.error = valid, revoked, None


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return _text(token.strip())
        elif name == b"x-api-key" and value.strip():
            return _text(value.strip())
    return None


def _text(value: bytes) -> str | None:
    if len(value) > _MAX_KEY_LENGTH:
        return "\x00"  # never a valid key; hashing it is still cheap
    return value.decode("latin-1")


def parse_keys_file(data: bytes) -> tuple[frozenset[str], frozenset[str]]:
    """`{"keys": [{"id": ..., "sha256": ..., "revoked": bool}]}` -> (valid hashes, revoked hashes)."""
    if not data.strip():
        return frozenset(), frozenset()
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError('expected {"keys": [...]}')
    valid: set[str] = set()
    revoked: set[str] = set()
    for entry in entries:
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(digest, str) or len(digest) != 64:
            raise ValueError(f"a key entry without a sha256 hash: {entry!r:.80}")
        (revoked if entry.get("revoked") else valid).add(digest.lower())
    return frozenset(valid), frozenset(revoked)


def auth_mode(value: str | None) -> str:
    mode = (value or "none").strip().lower()
    if mode not in AUTH_MODES:
        raise ConfigError(f"CORTEXLITE_AUTH: expected one of {', '.join(AUTH_MODES)} (got {value!r})")
    return mode
