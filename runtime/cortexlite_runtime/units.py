"""Parsing of human-written durations (`10ms`, `0.5s`, `5m`, or a number of seconds)."""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from a number (seconds) or a string such as `10ms`, `1.5s`, `5m`, `1h`."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 10ms, 1s or 5m (got {value!r})")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"must not be negative (got {value})")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _SCALE[match.group(2)]
    raise ValueError(f"expected a duration such as 10ms, 1s or 5m (got {value!r})")
