"""Logging: loguru, configured once per process; JSON lines when stderr is not a terminal.

Every record carries the API name, the replica id and, inside a request, its request id.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from loguru import Message, Record

__all__ = ["configure_logging", "request_id_var"]

request_id_var: ContextVar[str | None] = ContextVar("cortexlite_request_id", default=None)


def configure_logging(fmt: str = "auto", level: str = "INFO", **context: str) -> None:
    """Send every record to stderr, pretty in a terminal, JSON lines otherwise."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    logger.remove()
    logger.configure(extra=dict(context), patcher=_add_request_id)
    if use_json:
        logger.add(_json_sink, level=level, format="{message}")
    else:
        logger.add(sys.stderr, level=level, format=_pretty, colorize=True, backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[_Intercept()], level=logging.WARNING, force=True)
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)


def _add_request_id(record: Record) -> None:
    request_id = request_id_var.get()
    if request_id is not None:
        record["extra"]["request_id"] = request_id


def _pretty(record: Record) -> str:
    rid = " <cyan>[{extra[request_id]}]</cyan>" if "request_id" in record["extra"] else ""
    return "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level>" + rid + " {message}\n{exception}"


def _json_sink(message: Message) -> None:
    record = message.record
    line: dict[str, Any] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "message": record["message"],
        **{k: v for k, v in record["extra"].items() if isinstance(v, str | int | float | bool)},
    }
    if record["exception"] is not None:
        import traceback

        exc = record["exception"]
        line["exception"] = "".join(traceback.format_exception(exc.type, exc.value, exc.traceback))
    sys.stderr.write(json.dumps(line, ensure_ascii=False) + "\n")
    sys.stderr.flush()


class _Intercept(logging.Handler):
    """Route the standard library's logging (uvicorn, user libraries) into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())
