"""Parsing of human-written durations (`10ms`, `0.5s`, `5m`, or a number of seconds)."""

from __future__ import annotations

import re

__all__ = ["parse_cpu", "parse_duration", "parse_memory"]

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


_CPU = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(m)?\s*$")
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(k|M|G|T|Ki|Mi|Gi|Ti)?\s*$")
_MEMORY_SCALE = {
    None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip


def parse_cpu(value: object) -> float:
    """Cores from Kubernetes syntax: `0.2`, `2`, `500m`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and (match := _CPU.match(value)):
        return float(match.group(1)) / (1000 if match.group(2) else 1)
    raise ValueError(f"expected cores such as 0.5, 2 or 500m (got {value!r})")


def parse_memory(value: object) -> int:
    """Bytes from Kubernetes syntax: `100M`, `512Mi`, `1Gi`, or a plain number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (match := _MEMORY.match(value)):
        return int(float(match.group(1)) * _MEMORY_SCALE[match.group(2)])
    raise ValueError(f"expected a size such as 100M, 512Mi or 1Gi (got {value!r})")
