"""The `cortexlite-serve` entry point: configuration from the environment, uvicorn, shutdown.

Shutdown on SIGTERM (or the first Ctrl-C): `/readyz` turns 503 at once and responses carry
`Connection: close`; requests are still served for `CORTEX_SHUTDOWN_DELAY` so that the gateway
can take the replica out of routing; then the listener closes and in-flight requests drain for up
to `CORTEX_GRACE_PERIOD`; the process exits 0. A second Ctrl-C forces the exit.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

import uvicorn
from loguru import logger

from . import __version__
from .app import App
from .config import RuntimeConfig
from .errors import ConfigError
from .logs import configure_logging
from .replica import Replica

__all__ = ["main", "serve"]


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
        http="httptools",
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
