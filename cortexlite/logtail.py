"""Reading replica logs: the last lines across rotated files, readable rendering, following.

Replicas write JSON lines (`{"time", "level", "message", ...}`); anything else a process prints
(a C library, `print` before logging starts) is kept as it is.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

__all__ = ["LogLine", "follow", "merge_lines", "merged_tail", "render", "tail_lines"]

_BLOCK = 1 << 16


@dataclass(frozen=True)
class LogLine:
    source: str
    text: str
    time: float | None


def tail_lines(path: Path, count: int, keep: int = 3) -> list[str]:
    """The last `count` lines of `path`, reaching into `path.1`... when the current file is short."""
    lines: deque[str] = deque(maxlen=max(count, 0))
    if count <= 0:
        return []
    files = [path.with_name(f"{path.name}.{index}") for index in range(keep, 0, -1)] + [path]
    for file in files:
        for line in _last_lines(file, count):
            lines.append(line)
    return list(lines)


def render(raw: str) -> tuple[str, float | None]:
    """A log line for people, and its time when it has one."""
    try:
        record = json.loads(raw)
    except ValueError:
        return raw, None
    if not isinstance(record, dict) or "message" not in record:
        return raw, None
    moment = _timestamp(record.get("time"))
    when = datetime.fromtimestamp(moment).strftime("%H:%M:%S.%f")[:-3] if moment is not None else "--:--:--"
    rid = f" [{record['request_id']}]" if record.get("request_id") else ""
    text = f"{when} {record.get('level', '')!s:<7}{rid} {record['message']}"
    if record.get("exception"):
        text += "\n" + str(record["exception"]).rstrip()
    return text, moment


def merged_tail(sources: Mapping[str, Path], count: int) -> list[LogLine]:
    """The last `count` lines of each source, interleaved by time (untimed lines stay with their neighbours)."""
    return merge_lines({name: tail_lines(path, count) for name, path in sources.items()})


def merge_lines(sources: Mapping[str, list[str]]) -> list[LogLine]:
    """Raw lines of several sources, interleaved by time (untimed lines stay with their neighbours)."""
    merged: list[tuple[float, int, LogLine]] = []
    for order, (name, lines) in enumerate(sorted(sources.items())):
        previous = 0.0
        for raw in lines:
            text, moment = render(raw)
            previous = moment if moment is not None else previous
            merged.append((previous, order, LogLine(name, text, moment)))
    merged.sort(key=lambda item: (item[0], item[1]))
    return [line for _, _, line in merged]


def follow(sources: Callable[[], Mapping[str, Path]], stop: Callable[[], bool], poll: float = 0.2) -> Iterator[LogLine]:
    """New lines of every source from now on; `sources` is re-read so that new replicas join.

    A file that shrinks or changes inode (rotated) is read from its start again.
    """
    positions: dict[str, tuple[int, int]] = {}
    for name, path in sources().items():
        positions[name] = _position_at_end(path)
    pending: dict[str, bytes] = {}
    while not stop():
        for name, path in sorted(sources().items()):
            inode, offset = positions.get(name, (0, 0))
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if stat.st_ino != inode and inode:
                # Rotated: the rest of the old file is now `<name>.1`; read it before the new one.
                yield from _rest_of_rotated(name, path, inode, offset, pending)
                offset = 0
            elif stat.st_size < offset:
                offset = 0
            if stat.st_size > offset:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    data = pending.pop(name, b"") + handle.read(stat.st_size - offset)
                *complete, rest = data.split(b"\n")
                if rest:
                    pending[name] = rest
                for raw in complete:
                    text, moment = render(raw.decode("utf-8", "replace"))
                    yield LogLine(name, text, moment)
            positions[name] = (stat.st_ino, stat.st_size)
        time.sleep(poll)


def _rest_of_rotated(name: str, path: Path, inode: int, offset: int, pending: dict[str, bytes]) -> Iterator[LogLine]:
    rotated = path.with_name(f"{path.name}.1")
    try:
        if rotated.stat().st_ino != inode:
            return
        with rotated.open("rb") as handle:
            handle.seek(offset)
            data = pending.pop(name, b"") + handle.read()
    except OSError:
        return
    for raw in data.split(b"\n"):
        if raw.strip():
            text, moment = render(raw.decode("utf-8", "replace"))
            yield LogLine(name, text, moment)


def _position_at_end(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return 0, 0
    return stat.st_ino, stat.st_size


def _last_lines(path: Path, count: int) -> list[str]:
    """The last `count` non-blank lines, read backwards in blocks; a line cut by a block edge is never returned."""
    try:
        with path.open("rb") as handle:
            end = handle.seek(0, os.SEEK_END)
            data = b""
            while end > 0:
                start = max(0, end - _BLOCK)
                handle.seek(start)
                data = handle.read(end - start) + data
                end = start
                # Lines after the first newline are whole; stop once there are enough of them.
                whole = data.split(b"\n", 1)[1] if end > 0 and b"\n" in data else data
                if end > 0 and sum(1 for line in whole.split(b"\n") if line.strip()) > count:
                    data = whole
                    break
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return [line for line in lines if line.strip()][-count:]


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
