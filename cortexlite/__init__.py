"""cortexlite: deploy ML models as HTTP APIs on infrastructure you own."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
