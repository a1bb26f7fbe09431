"""The `cortexlite-serve` entry point: configuration from the environment, uvicorn, shutdown.

Shutdown on SIGTERM (or the first Ctrl-C): `/readyz` turns 503 at once and responses carry
`Connection: close`; requests are still served for `CORTEX_SHUTDOWN_DELAY` so that the gateway
can take the replica out of routing; then the listener closes and in-flight requests drain for up
to `CORTEX_GRACE_PERIOD`; the process exits 0. A second Ctrl-C forces the exit.

What uvicorn's HTTP parser refuses is answered here, in JSON like every other error: a malformed
request 400 and a request whose headers exceed `CORTEXLITE_MAX_HEADER_BYTES` 431, both closing
the connection. An `Upgrade` (h2c, what `curl --http2` sends) is ignored, as RFC 9110 allows: the
request is served as HTTP/1.1, body included. Replicas serve no websockets.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

import httptools
import uvicorn
from loguru import logger
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from . import __version__
from .app import App
from .config import RuntimeConfig
from .errors import ConfigError
from .logs import configure_logging
from .payload import error_outcome
from .replica import Replica

__all__ = ["MAX_TARGET_BYTES", "RuntimeProtocol", "main", "protocol_class", "serve"]


# httptools.parse_url keeps offsets in 16 bits: a longer target could not be parsed anyway.
MAX_TARGET_BYTES = 65_535


class _Refusal(Exception):
    """Raised in a parser callback; the parser wraps it in an HttpParserCallbackError (send_400_response)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RuntimeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with JSON refusals, a cap on header bytes, and upgrades ignored."""

    max_header_bytes = 65_536

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._chunk = b""  # what data_received is parsing (an upgrade is replayed from it)
        self._in_head = False  # between the first byte of a request and the end of its headers
        self._head_bytes = 0  # the current head's header lines, as parsed
        self._raw_head_bytes = 0  # bytes received while one head stayed incomplete
        self._heads = 0  # heads completed on this connection
        self._upgrading = False

    def data_received(self, data: bytes) -> None:
        was_in_head, heads = self._in_head, self._heads
        self._chunk = data
        super().data_received(data)
        if was_in_head and self._in_head and heads == self._heads and not self.transport.is_closing():
            # The parser holds a header line until its end: count what it holds, so that one endless line is
            # refused too (allowing for the target, which has a limit of its own).
            self._raw_head_bytes += len(data)
            if self._raw_head_bytes > self.max_header_bytes + MAX_TARGET_BYTES:
                self._refuse(431, self._too_large)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._raw_head_bytes = True, 0, 0

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > MAX_TARGET_BYTES:
            raise _Refusal(414, f"the request target exceeds the limit of {MAX_TARGET_BYTES} bytes")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4  # "name: value\r\n"
        if self._head_bytes > self.max_header_bytes:
            raise _Refusal(431, self._too_large)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads += 1
        if self.parser.should_upgrade() and not self._should_upgrade():
            self._upgrading = True  # the parser stops after these headers; _replay serves the request
            return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if not self._upgrading:
            super().on_message_complete()

    def _unsupported_upgrade_warning(self) -> None:
        # Called by data_received while it handles the parser's HttpParserUpgrade, which says where the body starts.
        upgrade = sys.exception()
        assert isinstance(upgrade, httptools.HttpParserUpgrade)
        self._replay(self._chunk[upgrade.args[0] :])

    def _replay(self, rest: bytes) -> None:
        """Parse the request again without its upgrade headers, then what followed them (its body)."""
        self._upgrading = False
        method = self.parser.get_method()
        if method == b"CONNECT":
            self._refuse(400, "invalid HTTP request: CONNECT is not supported")
            return
        version = self.parser.get_http_version().encode()
        head = [method, b" ", self.url, b" HTTP/", version, b"\r\n"]
        for name, value in self.headers:
            kept = _without_upgrade(value) if name == b"connection" else value
            if name != b"upgrade" and kept:
                head += [name, b": ", kept, b"\r\n"]
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)  # as uvicorn sets it
        self.data_received(b"".join([*head, b"\r\n", rest]))

    def send_400_response(self, msg: str) -> None:
        # Called by data_received while it handles the parser's error, which says what was wrong.
        error = sys.exception()
        cause = error.__context__ if error is not None else None
        if isinstance(cause, _Refusal):
            self._refuse(cause.status, str(cause))
        else:
            self._refuse(400, f"invalid HTTP request: {_reason(error, cause)}")

    @property
    def _too_large(self) -> str:
        return f"the request's headers exceed the limit of {self.max_header_bytes} bytes"

    def _refuse(self, status: int, message: str) -> None:
        self.logger.warning(message)
        outcome = error_outcome(status, message)
        content = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *outcome.headers]:
            content += [name, b": ", value, b"\r\n"]
        content += [b"content-length: %d\r\nconnection: close\r\n\r\n" % len(outcome.body), outcome.body]
        self.transport.write(b"".join(content))
        self.transport.close()


def _without_upgrade(connection: bytes) -> bytes:
    return b", ".join(t.strip() for t in connection.split(b",") if t.strip().lower() not in (b"upgrade", b""))


def _reason(error: BaseException | None, cause: BaseException | None) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return "a non-ASCII byte in the request target"
    if isinstance(cause, httptools.HttpParserError):
        error = cause  # a target that httptools.parse_url refused after the parser accepted it
    text = str(error) if error is not None else ""
    return (text or "malformed request")[:100]


def protocol_class(max_header_bytes: int) -> type[RuntimeProtocol]:
    """The protocol uvicorn builds for each connection, with this cap on a request's header bytes."""

    class Bounded(RuntimeProtocol):
        pass

    Bounded.max_header_bytes = max_header_bytes
    return Bounded


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, replica: Replica, shutdown_delay: float) -> None:
        super().__init__(config)
        self._replica = replica
        self._delay = shutdown_delay
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining:
            if sig == signal.SIGINT:
                self.force_exit = True
            return
        self._draining = True
        self._replica.begin_shutdown()
        logger.info(
            "received {}: not ready; serving for {}s more, then draining for up to {}s",
            signal.Signals(sig).name, self._delay, self.config.timeout_graceful_shutdown,
        )  # fmt: skip
        timer = threading.Timer(self._delay, self._stop)
        timer.daemon = True
        timer.start()

    def _stop(self) -> None:
        self.should_exit = True


def serve(config: RuntimeConfig) -> None:
    """Serve until a signal ends the process; returns after the drain."""
    replica = Replica(config)
    uv_config = uvicorn.Config(
        App(replica),
        host=config.host,
        port=config.port,
        backlog=config.so_max_conn,
        http=protocol_class(config.max_header_bytes),
        ws="none",  # the app serves HTTP only; an upgrade request is served as HTTP/1.1 (RuntimeProtocol)
        loop="auto",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,  # replicas sit behind the gateway; nothing here reads client addresses
        timeout_graceful_shutdown=int(config.grace_period) or 1,
    )
    server = _Server(uv_config, replica, config.shutdown_delay)
    try:
        server.run()
    finally:
        replica.close()
    logger.info("stopped")


def main() -> None:
    try:
        config = RuntimeConfig.from_env()
    except ConfigError as exc:
        print(f"cortexlite-serve: {exc}", file=sys.stderr)
        sys.exit(2)
    context = {"replica": config.replica_id} if config.replica_id else {}
    configure_logging(config.log_format, config.log_level, **context)
    logger.info("cortexlite-runtime {} serving {} on {}:{}", __version__, config.project_dir, config.host, config.port)
    serve(config)
    sys.exit(0)
