"""`logs -e <nomad env>`: every allocation's stdout and stderr through Nomad's log API, by replica.

Recent lines come from the end of each log (`origin=end`); `-f` follows each allocation's two
streams (`follow=true`, Nomad's framed stream) in a thread each, merged into one queue, and
allocations that start later (an update, a scale-up) join within two seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from queue import Empty, Queue

from cortexlite.errors import NomadError
from cortexlite.logtail import LogLine, merge_lines, render
from cortexlite.nomad.client import NomadClient
from cortexlite.nomad.cluster import Cluster
from cortexlite.nomad.job import TASK, job_id

__all__ = ["follow_logs", "recent_logs"]

_BYTES_PER_LINE = 400
_MAX_TAIL_BYTES = 2**20
_SCAN_S = 2.0
STREAMS = ("stdout", "stderr")


def recent_logs(cluster: Cluster, name: str, tail: int) -> list[LogLine]:
    cluster.require_api(name)
    sources = {}
    for alloc_id in _live_allocations(cluster.client, name):
        lines: list[str] = []
        for kind in STREAMS:
            lines += _tail(cluster.client, alloc_id, kind, tail)
        sources[alloc_id[:8]] = _by_time(lines)[-tail:] if tail else []
    return merge_lines(sources)


def follow_logs(cluster: Cluster, name: str, stop: Callable[[], bool]) -> Iterator[LogLine]:
    cluster.require_api(name)
    lines: Queue[LogLine] = Queue()
    readers: dict[tuple[str, str], threading.Thread] = {}
    next_scan, first_scan = 0.0, True
    while not stop():
        if time.monotonic() >= next_scan:
            for alloc_id in _live_allocations(cluster.client, name):
                for kind in STREAMS:
                    key = (alloc_id, kind)
                    if key in readers and readers[key].is_alive():
                        continue
                    # Running when `-f` began, or a stream that ended and is read again: from its end on.
                    # An allocation that appeared since: its whole log is new.
                    from_end = first_scan or key in readers
                    reader = threading.Thread(
                        target=_read_into, args=(cluster.client, alloc_id, kind, from_end, lines), daemon=True
                    )
                    reader.start()
                    readers[key] = reader
            next_scan, first_scan = time.monotonic() + _SCAN_S, False
        try:
            yield lines.get(timeout=0.2)
        except Empty:
            continue


def _live_allocations(client: NomadClient, name: str) -> list[str]:
    allocations, _ = client.allocations(job_id(name))
    return [
        str(alloc["ID"])
        for alloc in allocations
        if alloc.get("DesiredStatus") == "run" and alloc.get("ClientStatus") in ("running", "pending", "failed")
    ]


def _tail(client: NomadClient, alloc_id: str, kind: str, count: int) -> list[str]:
    if count <= 0:
        return []
    size = min(_MAX_TAIL_BYTES, count * _BYTES_PER_LINE)
    try:
        data = b"".join(chunk.data for chunk in client.logs(alloc_id, TASK, kind, tail_bytes=size))
    except NomadError:
        return []
    return [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()][-count:]


def _by_time(lines: list[str]) -> list[str]:
    """Lines of both streams in time order (lines without a time keep their place after their stream's last)."""
    keyed = []
    last = 0.0
    for position, line in enumerate(lines):
        moment = render(line)[1]
        last = moment if moment is not None else last
        keyed.append((last, position, line))
    return [line for _, _, line in sorted(keyed)]


def _read_into(client: NomadClient, alloc_id: str, kind: str, from_end: bool, lines: Queue[LogLine]) -> None:
    pending = b""
    try:
        for chunk in client.logs(alloc_id, TASK, kind, follow=True, tail_bytes=0 if from_end else None):
            *complete, pending = (pending + chunk.data).split(b"\n")
            for raw in complete:
                if raw.strip():
                    text, moment = render(raw.decode("utf-8", "replace"))
                    lines.put(LogLine(alloc_id[:8], text, moment))
    except NomadError:
        return
