"""What every gateway (a Traefik process, a Traefik container) offers the control plane."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["Gateway", "OperatorRunner"]


class Gateway(Protocol):
    def ensure(self, log: Callable[[str], None]) -> tuple[str, bool]:
        """Start the gateway unless it runs with the right ports; (what runs, in words; started now)."""
        ...

    def running(self) -> bool: ...

    def stop(self) -> bool:
        """Stop the gateway and forget its routes; False when none was running."""
        ...


class OperatorRunner(Protocol):
    """Where the environment's operator runs (a process, a container)."""

    def ensure(self, log: Callable[[str], None] | None = None) -> tuple[str, bool]:
        """Start the operator unless it runs; (what runs, in words; started now)."""
        ...

    def running(self) -> bool: ...

    def stop(self) -> bool: ...
