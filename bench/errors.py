"""The one exception of the harness: something broke (a server, wrk), so the figures are missing."""

from __future__ import annotations

__all__ = ["BenchError"]


class BenchError(Exception):
    """A server failed to start or answer, or wrk failed; the message says which and why."""
