"""Backends: one module per engine (Docker, processes, Nomad), imported only when used."""

from __future__ import annotations

__all__: list[str] = []
