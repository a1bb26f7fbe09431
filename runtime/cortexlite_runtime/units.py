"""Parsing of human-written quantities: durations (`10ms`, `0.5s`, `5m`, or a number of seconds), cores, bytes.

Every result is a finite number within a sane range: `inf`, `nan`, `1e400` or a 400-digit integer is a
`ValueError` naming what was expected, never an `OverflowError` later (`int(inf)`, a timer that cannot wait).
"""

from __future__ import annotations

import math
import re

__all__ = ["MAX_SECONDS", "parse_cpu", "parse_duration", "parse_memory"]

# About 31 years: longer than any wait is meant to be, and short enough for every timer API to accept.
MAX_SECONDS = 1e9
_MAX_CORES = 1e6
_MAX_BYTES = 2**63 - 1

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_CPU = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(m)?\s*$")
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(k|M|G|T|Ki|Mi|Gi|Ti)?\s*$")
_MEMORY_SCALE = {
    None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip


def parse_duration(value: object) -> float:
    """Seconds from a number (seconds) or a string such as `10ms`, `1.5s`, `5m`, `1h`."""
    expected = f"expected a duration such as 10ms, 1s or 5m (got {_shown(value)})"
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = _finite(value, expected)
        if seconds < 0:
            raise ValueError(f"must not be negative (got {value:.6g})")
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = _finite(match.group(1), expected) * _SCALE[match.group(2)]
    if seconds is None:
        raise ValueError(expected)
    return _at_most(seconds, MAX_SECONDS, "s")


def parse_cpu(value: object) -> float:
    """Cores from Kubernetes syntax: `0.2`, `2`, `500m`."""
    expected = f"expected cores such as 0.5, 2 or 500m (got {_shown(value)})"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _at_most(_finite(value, expected), _MAX_CORES, " cores")
    if isinstance(value, str) and (match := _CPU.match(value)):
        cores = _finite(match.group(1), expected) / (1000 if match.group(2) else 1)
        return _at_most(cores, _MAX_CORES, " cores")
    raise ValueError(expected)


def parse_memory(value: object) -> int:
    """Bytes from Kubernetes syntax: `100M`, `512Mi`, `1Gi`, or a plain number of bytes."""
    expected = f"expected a size such as 100M, 512Mi or 1Gi (got {_shown(value)})"
    if isinstance(value, int) and not isinstance(value, bool):
        if value > _MAX_BYTES:
            raise ValueError(f"must be at most {_MAX_BYTES} bytes (got a number of {len(str(value))} digits)")
        return value
    if isinstance(value, str) and (match := _MEMORY.match(value)):
        size = _finite(match.group(1), expected) * _MEMORY_SCALE[match.group(2)]
        return int(_at_most(size, _MAX_BYTES, " bytes"))
    raise ValueError(expected)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}... ({len(text)} characters)"


def _finite(number: float | int | str, expected: str) -> float:
    try:
        result = float(number)
    except OverflowError:  # an integer beyond any float
        raise ValueError(expected) from None
    if not math.isfinite(result):
        raise ValueError(expected)
    return result


def _at_most(number: float, limit: float, unit: str) -> float:
    if number > limit:
        raise ValueError(f"must be at most {limit:g}{unit} (got {number:.6g}{unit})")
    return number
