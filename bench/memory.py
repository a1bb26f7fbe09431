"""Memory of a server: proportional set size (PSS) summed over its process and all its descendants.

PSS shares each shared page among the processes that map it, so the sum over a process tree does
not count twice what a forked or spawned child shares with its parent.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["descendants", "pss_kib", "tree_pss_mb"]

_PROC = Path("/proc")
_MAX_PROCESSES = 4096


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc/PID/task/*/children (breadth first, bounded)."""
    found: list[int] = []
    frontier = [pid]
    while frontier and len(found) < _MAX_PROCESSES:
        parent = frontier.pop(0)
        children = [child for child in _children(parent) if child not in found and child != pid]
        found.extend(children)
        frontier.extend(children)
    return found


def pss_kib(pid: int) -> int | None:
    """The `Pss:` line of /proc/PID/smaps_rollup in KiB; None when the process is gone."""
    try:
        text = (_PROC / str(pid) / "smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


def tree_pss_mb(pid: int) -> float:
    """PSS of `pid` and its descendants, in MB (10^6 bytes)."""
    total_kib = sum(pss_kib(p) or 0 for p in [pid, *descendants(pid)])
    return total_kib * 1024 / 1e6


def _children(pid: int) -> list[int]:
    pids: list[int] = []
    try:
        tasks = list((_PROC / str(pid) / "task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return pids
    for task in tasks:
        try:
            pids.extend(int(p) for p in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return pids
