"""The Docker engine, through the docker SDK: the only module that imports `docker`.

Every SDK or transport error leaves this module as `DockerError` (or `ImageBuildError` for a
failed build) carrying the engine's own explanation. Objects are the Engine API's own JSON
(`create_container` takes the body of `POST /containers/create`), so what cortexlite asks for is
plain data that pure functions render and `--dry-run` prints. Every call blocks; nothing in
cortexlite calls these from an event loop.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import socket
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import docker
import docker.errors
import requests.exceptions
from docker.utils import parse_repository_tag

from cortexlite.errors import DockerError, ImageBuildError

__all__ = ["DEFAULT_SOCKET", "DockerEngine", "HeldLock", "LogSink", "label_filters"]

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
            elif host.startswith("tcp://"):
                # DOCKER_TLS_VERIFY / DOCKER_CERT_PATH apply to the environment's tcp:// engine too.
                client = docker.from_env(timeout=_API_TIMEOUT_S, environment={**os.environ, "DOCKER_HOST": host})
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

    def info(self) -> dict[str, Any]:
        with self._errors("info"):
            return dict(self._client.api.info())

    def identity(self) -> str:
        """Which engine this is: its ID and data root (two engines on one host share the ID, never the root)."""
        found = self.info()
        return f"{found.get('ID', '')}@{found.get('DockerRootDir', '')}"

    # --- containers -----------------------------------------------------------------------------

    def containers(self, labels: Mapping[str, str | None]) -> list[dict[str, Any]]:
        """Summaries (`GET /containers/json`, stopped ones included) of the containers with `labels`."""
        with self._errors("list containers"):
            return list(self._client.api.containers(all=True, filters={"label": label_filters(labels)}))

    def inspect_container(self, ref: str) -> dict[str, Any] | None:
        with self._errors(f"inspect container {ref}"):
            try:
                return dict(self._client.api.inspect_container(ref))
            except docker.errors.NotFound:
                return None

    def create_container(self, name: str, config: Mapping[str, Any]) -> str:
        """`POST /containers/create` with `config` as the body; the new container's id."""
        with self._errors(f"create container {name}"):
            created = self._client.api.create_container_from_config(dict(config), name=name)
        return str(created["Id"])

    def start_container(self, ref: str) -> None:
        with self._errors(f"start container {ref}"):
            self._client.api.start(ref)

    def stop_container(self, ref: str, timeout: float) -> None:
        """SIGTERM (the container's stop signal), SIGKILL after `timeout` s; a gone container is stopped."""
        with self._errors(f"stop container {ref}"):
            try:
                self._client.api.stop(ref, timeout=max(1, round(timeout)))
            except docker.errors.NotFound:
                return

    def remove_container(self, ref: str) -> None:
        with self._errors(f"remove container {ref}"):
            try:
                self._client.api.remove_container(ref, force=True)
            except docker.errors.NotFound:
                return

    def put_files(self, ref: str, directory: str, files: Mapping[str, bytes]) -> None:
        """Write `files` (relative name -> content) under `directory` in the container (a volume works)."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, content in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(content), int(time.time()), 0o644
                tar.addfile(info, io.BytesIO(content))
        with self._errors(f"copy files into {ref}:{directory}"):
            self._client.api.put_archive(ref, directory, buffer.getvalue())

    def read_file(self, ref: str, path: str) -> bytes | None:
        """The content of one file in the container, or None when there is no such file."""
        with self._errors(f"read {ref}:{path}"):
            try:
                stream, _ = self._client.api.get_archive(ref, path)
            except docker.errors.NotFound:
                return None
            data = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            handle = tar.extractfile(member) if member is not None else None
            return handle.read() if handle is not None else None

    def flock(self, ref: str, path: str, *, blocking: bool) -> HeldLock | None:
        """An exclusive `flock` on `path` in the running container, held by an exec'd process for as long as
        this side keeps its connection open: closing it, or the death of this process, releases it.

        None when `blocking` is False and another holder has it. The container needs `flock` (util-linux).
        """
        # The shell takes the lock on fd 9 and `cat` inherits it: the lock lasts as long as our stdin stays open.
        try_lock = "flock -x 9" if blocking else "flock -x -n 9 || { echo busy; exit 0; }"
        script = f'exec 9>>"$1" || exit 1; {try_lock}; echo locked; exec cat >/dev/null'
        attached, reader = self._attach(ref, ["sh", "-c", script, "sh", path], stdin=True, action=f"lock {ref}:{path}")
        held = HeldLock(getattr(attached, "_sock", attached), attached)
        received = b""
        try:
            held.connection.settimeout(None if blocking else _API_TIMEOUT_S)
            for _stream, payload in _frames(reader):
                received += payload
                if b"locked" in received:
                    return held
                if b"busy" in received:
                    break
        except OSError as exc:
            held.release()
            raise DockerError(f"Docker engine at {self.address}: lock {ref}:{path}: {exc}") from exc
        held.release()
        if b"busy" in received:
            return None
        raise DockerError(f"Docker engine at {self.address}: lock {ref}:{path}: {received.decode(errors='replace')}")

    def exec(self, ref: str, command: Sequence[str]) -> tuple[int, str]:
        """Run `command` in the running container; its exit code and output (stdout and stderr)."""
        action = f"exec {' '.join(command)} in {ref}"
        attached, reader = self._attach(ref, list(command), stdin=False, action=action)
        try:
            output = b"".join(payload for _stream, payload in _frames(reader))
        except OSError as exc:
            raise DockerError(f"Docker engine at {self.address}: {action}: {exc}") from exc
        finally:
            HeldLock(getattr(attached, "_sock", attached), attached).release()
        with self._errors(action):
            code = self._client.api.exec_inspect(attached.exec_id).get("ExitCode")
        return int(code if code is not None else -1), output.decode("utf-8", "replace")

    def _attach(self, ref: str, command: list[str], *, stdin: bool, action: str) -> tuple[Any, BinaryIO]:
        """Start `command` attached; the connection and a reader of its multiplexed output.

        The reader is the HTTP response's own buffer, not the bare socket the SDK hands back: output that
        arrived with the response's headers sits in that buffer (over TCP it often does), and reading the
        socket alone would lose it.
        """
        with self._errors(action):
            created = self._client.api.exec_create(ref, command, stdin=stdin, stdout=True, stderr=True)
            attached = self._client.api.exec_start(created["Id"], socket=True)
        attached.exec_id = created["Id"]
        response = getattr(attached, "_response", None)
        buffered = getattr(getattr(getattr(response, "raw", None), "_fp", None), "fp", None)
        return attached, buffered if buffered is not None else attached

    def run_once(self, name: str, config: Mapping[str, Any], timeout: float) -> tuple[int, str]:
        """Create, start and wait for a short-lived container; its exit code and output (it is removed)."""
        self.create_container(name, config)
        try:
            self.start_container(name)
            deadline = time.monotonic() + timeout
            while True:
                state = (self.inspect_container(name) or {}).get("State", {})
                if not state.get("Running"):
                    break
                if time.monotonic() > deadline:
                    raise DockerError(f"the container {name} did not finish within {timeout:g}s")
                time.sleep(0.1)
            with self._errors(f"read the output of {name}"):
                output = self._client.api.logs(name, stdout=True, stderr=True)
            text = output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)
            return int(state.get("ExitCode", -1)), text
        finally:
            self.remove_container(name)

    def get_inside(self, ref: str, url: str, timeout: float) -> tuple[int, bytes]:
        """GET `url` from inside the running container (its python3, through exec): (status, body).

        For engines on other machines, whose containers' ports are not reachable from here. Status 0:
        no answer, and the body says why.
        """
        try:
            _, output = self.exec(ref, ["python3", "-c", _GET_INSIDE, url, str(timeout)])
        except DockerError as exc:
            return 0, str(exc).encode()
        code, _, body = output.strip().rpartition("\n")[2].partition(" ")
        if not code.isdigit():
            return 0, output.strip()[-300:].encode()
        try:
            return int(code), base64.b64decode(body)
        except ValueError:
            return 0, output.strip()[-300:].encode()

    def log_tail(self, ref: str, lines: int) -> list[str]:
        with self._errors(f"logs of {ref}"):
            try:
                data = self._client.api.logs(ref, stdout=True, stderr=True, tail=lines)
            except docker.errors.NotFound:
                return []
        return data.decode("utf-8", "replace").splitlines() if isinstance(data, bytes) else []

    def follow_log(self, ref: str, since: float) -> Iterator[str]:
        """Lines the container writes from `since` (a Unix time) until it is removed or the caller stops."""
        with self._errors(f"logs of {ref}"):
            try:
                chunks = self._client.api.logs(
                    ref, stdout=True, stderr=True, stream=True, follow=True, since=int(since)
                )
            except docker.errors.NotFound:
                return
        pending = b""
        try:
            for chunk in chunks:
                *complete, pending = (pending + chunk).split(b"\n")
                for raw in complete:
                    yield raw.decode("utf-8", "replace")
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return

    def images(self, labels: Mapping[str, str | None]) -> list[dict[str, Any]]:
        """Summaries (`GET /images/json`) of the images with `labels`."""
        with self._errors("list images"):
            return list(self._client.api.images(filters={"label": label_filters(labels)}))

    def export_image(self, ref: str) -> Iterator[bytes]:
        """`docker save` of `ref`, as a stream of tar chunks."""
        with self._errors(f"export image {ref}"):
            stream = self._client.api.get_image(ref, chunk_size=2 * 2**20)
        return _guarded(self, f"export image {ref}", stream)

    def load_image(self, chunks: Iterator[bytes]) -> None:
        """`docker load` of a `docker save` stream (sent as it is read, never held whole)."""
        with self._errors("load an image"):
            for answer in self._client.api.load_image(chunks):
                if isinstance(answer, dict) and answer.get("error"):
                    raise DockerError(f"loading the image failed: {answer['error']}")

    def remove_image(self, ref: str) -> None:
        with self._errors(f"remove image {ref}"):
            try:
                self._client.api.remove_image(ref)
            except docker.errors.NotFound:
                return

    # --- networks and volumes -------------------------------------------------------------------

    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None:
        with self._errors(f"create network {name}"):
            # The engine's name filter matches substrings.
            if not any(found.get("Name") == name for found in self._client.api.networks(names=[name])):
                self._client.api.create_network(name, driver="bridge", labels=dict(labels))

    def remove_network(self, name: str) -> None:
        with self._errors(f"remove network {name}"):
            for network in self._client.api.networks(names=[name]):
                if network.get("Name") == name:
                    self._client.api.remove_network(network["Id"])

    def ensure_volume(self, name: str, labels: Mapping[str, str]) -> None:
        with self._errors(f"create volume {name}"):
            self._client.api.create_volume(name, labels=dict(labels))

    def remove_volume(self, name: str) -> None:
        with self._errors(f"remove volume {name}"):
            try:
                self._client.api.remove_volume(name, force=True)
            except docker.errors.NotFound:
                return

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

    def tag(self, source: str, target: str) -> None:
        """Give the local image `source` the reference `target` too (repository:tag)."""
        repository, tag = parse_repository_tag(target)
        with self._errors(f"tag {source} as {target}"):
            self._client.api.tag(source, repository, tag or "latest")

    def registry_has(self, ref: str) -> bool:
        """Whether `ref`'s registry holds it (the engine asks the registry, with its own credentials)."""
        try:
            with self._errors(f"look up {ref} in its registry"):
                self._client.api.inspect_distribution(ref)
        except DockerError:
            return False
        return True

    def push(self, ref: str, on_log: LogSink | None = None) -> str | None:
        """Push `ref` to its registry (credentials from the engine's client config); the pushed digest."""
        repository, tag = parse_repository_tag(ref)
        digest: str | None = None
        with self._errors(f"push {ref}"):
            for chunk in self._client.api.push(repository, tag=tag or "latest", stream=True, decode=True):
                if "error" in chunk or "errorDetail" in chunk:
                    raise DockerError(f"Docker engine at {self.address}: push {ref}: {_chunk_error(chunk)}")
                aux = chunk.get("aux") or {}
                digest = str(aux.get("Digest")) if aux.get("Digest") else digest
                if on_log is not None and chunk.get("status") and not chunk.get("progressDetail"):
                    on_log(f"{chunk.get('id', '')} {chunk['status']}".strip())
        return digest

    def build(
        self,
        context_tar: bytes | Path,
        tag: str,
        buildargs: Mapping[str, str],
        *,
        labels: Mapping[str, str] | None = None,
        on_log: LogSink | None = None,
        network: str | None = None,
    ) -> str:
        """Build an uncompressed tar context with the engine's (classic) builder; return the image id."""
        tail: deque[str] = deque(maxlen=_LOG_TAIL_LINES)
        with _open_context(context_tar) as context:
            try:
                image_id = self._stream_build(
                    context, tag=tag, buildargs=buildargs, labels=labels or {}, tail=tail, on_log=on_log,
                    network=network,
                )  # fmt: skip
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
        network: str | None = None,
    ) -> str | None:
        image_id: str | None = None
        with self._errors(f"build {tag}"):
            chunks = self._client.api.build(
                fileobj=context, custom_context=True, tag=tag, buildargs=dict(buildargs),
                labels=dict(labels), rm=True, forcerm=True, pull=False, decode=True,
                timeout=_BUILD_READ_TIMEOUT_S, network_mode=network,
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


class HeldLock:
    """A lock `DockerEngine.flock` holds: the attached connection of the process that holds it."""

    def __init__(self, connection: Any, attached: Any) -> None:
        self.connection = connection
        self._attached = attached

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        for item in (self.connection, self._attached):
            with contextlib.suppress(OSError, AttributeError):
                item.close()


def _frames(reader: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """The Engine API's multiplexed stream: 8-byte headers (stream, size), then the payload, until EOF."""
    while True:
        header = reader.read(8)
        if len(header) < 8:
            return
        size = int.from_bytes(header[4:8], "big")
        payload = reader.read(size) if size else b""
        yield header[0], payload
        if len(payload) < size:
            return


@contextmanager
def _open_context(context_tar: bytes | Path) -> Iterator[BinaryIO]:
    if isinstance(context_tar, bytes):
        yield io.BytesIO(context_tar)
        return
    with context_tar.open("rb") as handle:
        yield handle


_GET_INSIDE = (
    "import base64, sys, urllib.request, urllib.error\n"
    "try:\n"
    "    r = urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])); code, body = r.status, r.read()\n"
    "except urllib.error.HTTPError as e:\n"
    "    code, body = e.code, e.read()\n"
    "except Exception as e:\n"
    "    code, body = 0, str(e).encode()\n"
    "print(code, base64.b64encode(body).decode())\n"
)


def _guarded(engine: DockerEngine, action: str, stream: Iterator[bytes]) -> Iterator[bytes]:
    with engine._errors(action):
        yield from stream


def label_filters(labels: Mapping[str, str | None]) -> list[str]:
    """`key=value` filters, or `key` alone (the label is present) for None."""
    return [key if value is None else f"{key}={value}" for key, value in sorted(labels.items())]


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
