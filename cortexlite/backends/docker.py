"""The Docker engine, through the docker SDK: the only module that imports `docker`.

Every SDK or transport error leaves this module as `DockerError` (or `ImageBuildError` for a
failed build) carrying the engine's own explanation.
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import docker
import docker.errors
import requests.exceptions
from docker.utils import parse_repository_tag

from cortexlite.errors import DockerError, ImageBuildError

__all__ = ["DEFAULT_SOCKET", "DockerEngine", "LogSink"]

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
LogSink = Callable[[str], None]

_API_TIMEOUT_S = 60
# A build streams while it runs, but one silent step (pip downloading a large wheel) may last long.
_BUILD_READ_TIMEOUT_S = 3600
_LOG_TAIL_LINES = 20
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class DockerEngine:
    """One Docker engine: local socket, `tcp://` or `ssh://`."""

    def __init__(self, client: docker.DockerClient, address: str) -> None:
        self._client = client
        self.address = address

    @classmethod
    def from_env(cls, host: str | None = None) -> DockerEngine:
        """Connect to `host`, else to what DOCKER_HOST/DOCKER_TLS_VERIFY/DOCKER_CERT_PATH say."""
        address = host or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
        try:
            if host is None:
                client = docker.from_env(timeout=_API_TIMEOUT_S)
            else:
                # The ssh binary honours ~/.ssh/config; paramiko (the default) does not.
                client = docker.DockerClient(
                    base_url=host, timeout=_API_TIMEOUT_S, use_ssh_client=host.startswith("ssh://")
                )
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise DockerError(_unreachable(address, exc)) from exc
        return cls(client, address)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> DockerEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def ping(self) -> None:
        with self._errors("ping"):
            self._client.ping()

    def image_id(self, ref: str) -> str | None:
        """The id (`sha256:...`) of the local image `ref`, or None when the engine has none."""
        with self._errors(f"inspect image {ref}"):
            try:
                return str(self._client.api.inspect_image(ref)["Id"])
            except docker.errors.NotFound:
                return None

    def pull(self, ref: str, timeout: float) -> None:
        """Pull `ref`; give up after `timeout` seconds in all (the engine may keep pulling)."""
        outcome: list[BaseException | None] = []
        worker = threading.Thread(target=self._pull_into, args=(ref, outcome), daemon=True)
        worker.start()
        # The SDK pulls with no socket timeout, so a registry that never answers is cut off here.
        worker.join(timeout)
        if not outcome:
            raise DockerError(f"pulling {ref} took more than {timeout:g} s; giving up")
        if outcome[0] is not None:
            raise outcome[0]

    def try_pull(self, ref: str, timeout: float) -> bool:
        """Whether `ref` could be pulled within `timeout` seconds (no registry: False at once)."""
        try:
            self.pull(ref, timeout)
        except DockerError:
            return False
        return True

    def build(
        self,
        context_tar: bytes | Path,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str] | None = None,
        on_log: LogSink | None = None,
    ) -> str:
        """Build an uncompressed tar context with the engine's (classic) builder; return the image id."""
        tail: deque[str] = deque(maxlen=_LOG_TAIL_LINES)
        with _open_context(context_tar) as context:
            try:
                image_id = self._stream_build(
                    context, tag=tag, buildargs=buildargs, labels=labels or {}, tail=tail, on_log=on_log
                )
            except DockerError as exc:
                raise ImageBuildError(_build_failure(tag, str(exc), tail)) from exc
        return image_id or self._tagged_id(tag)

    def _stream_build(
        self,
        context: BinaryIO,
        *,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
        tail: deque[str],
        on_log: LogSink | None,
    ) -> str | None:
        image_id: str | None = None
        with self._errors(f"build {tag}"):
            chunks = self._client.api.build(
                fileobj=context, custom_context=True, tag=tag, buildargs=dict(buildargs),
                labels=dict(labels), rm=True, forcerm=True, pull=False, decode=True,
                timeout=_BUILD_READ_TIMEOUT_S,
            )  # fmt: skip
            for chunk in chunks:
                if "error" in chunk:
                    raise ImageBuildError(_build_failure(tag, _chunk_error(chunk), tail))
                image_id = _chunk_image_id(chunk) or image_id
                for line in _chunk_lines(chunk):
                    tail.append(line)
                    if on_log is not None:
                        on_log(line)
        return image_id

    def _tagged_id(self, tag: str) -> str:
        found = self.image_id(tag)
        if found is None:
            raise ImageBuildError(f"building {tag} reported success, but the engine has no image {tag}")
        return found

    def _pull_into(self, ref: str, outcome: list[BaseException | None]) -> None:
        repository, tag = parse_repository_tag(ref)
        try:
            with self._errors(f"pull {ref}"):
                for chunk in self._client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                    if "error" in chunk:
                        raise DockerError(f"pull {ref}: {_chunk_error(chunk)}")
        except DockerError as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except docker.errors.APIError as exc:
            explanation = exc.explanation or str(exc)
            raise DockerError(f"Docker engine at {self.address}: {action}: {explanation}") from exc
        except (requests.exceptions.ConnectionError, ConnectionError) as exc:
            raise DockerError(_unreachable(self.address, exc)) from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise DockerError(f"Docker engine at {self.address}: {action}: {exc}") from exc


@contextmanager
def _open_context(context_tar: bytes | Path) -> Iterator[BinaryIO]:
    if isinstance(context_tar, bytes):
        yield io.BytesIO(context_tar)
        return
    with context_tar.open("rb") as handle:
        yield handle


def _unreachable(address: str, exc: BaseException) -> str:
    return (
        f"cannot reach the Docker engine at {address} ({exc}). Start one with `bash scripts/dockerd-start.sh` "
        "(or `make dockerd`), or set DOCKER_HOST to a running engine (tcp://HOST:2376 or ssh://USER@HOST)."
    )


def _chunk_error(chunk: Mapping[str, Any]) -> str:
    detail = chunk.get("errorDetail")
    message = detail.get("message") if isinstance(detail, dict) else None
    return str(message or chunk.get("error") or "unknown error").strip()


def _chunk_image_id(chunk: Mapping[str, Any]) -> str | None:
    aux = chunk.get("aux")
    if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
        return str(aux["ID"])
    return None


def _chunk_lines(chunk: Mapping[str, Any]) -> list[str]:
    text = chunk.get("stream")
    if not isinstance(text, str):
        return []
    # pip colours its errors; the escapes alone would read as blank lines in a message.
    lines = (_ANSI_ESCAPE.sub("", line).rstrip() for line in text.splitlines())
    return [line for line in lines if line.strip()]


def _build_failure(tag: str, reason: str, tail: deque[str]) -> str:
    lines = "\n".join(f"  {line}" for line in tail) or "  (no output)"
    return f"building {tag} failed: {reason}\nlast lines of the build:\n{lines}"
