"""Copy standard input to a log file, rotating it by size: the log driver of process replicas.

Run as `python -I -S logwriter.py FILE MAX_BYTES KEEP [--detach]` with a replica's stdout and
stderr on its stdin (`--detach`: leave the starter at once, see `detach`). It needs only the
standard library and starts in milliseconds. It ignores the usual stop signals and ends at end
of input, that is when the replica (and every child holding the pipe) has exited, so a replica
never writes into a closed pipe. When the disk refuses a write it keeps reading and drops output
rather than block the replica.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import BinaryIO

__all__ = ["detach", "rotate", "run"]

_CHUNK = 1 << 16


def rotate(path: str, keep: int) -> None:
    """`path` -> `path.1` -> ... -> `path.KEEP` (the oldest is dropped)."""
    for index in range(keep - 1, 0, -1):
        older = f"{path}.{index}"
        if os.path.exists(older):
            os.replace(older, f"{path}.{index + 1}")
    if keep > 0 and os.path.exists(path):
        os.replace(path, f"{path}.1")
    elif os.path.exists(path):
        os.unlink(path)


def run(path: str, max_bytes: int, keep: int) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    out = _open(path)
    written = out.tell() if out is not None else 0
    while True:
        chunk = os.read(0, _CHUNK)
        if not chunk:
            break
        if out is None:
            out = _open(path)
            written = 0
            if out is None:
                continue
        try:
            out.write(chunk)
            out.flush()
        except OSError:
            continue
        written += len(chunk)
        if written >= max_bytes:
            out.close()
            try:
                rotate(path, keep)
            except OSError:
                pass
            out = None


def _open(path: str) -> BinaryIO | None:
    try:
        return open(path, "ab")
    except OSError:
        return None


def detach() -> None:
    """Leave the process that started us at once (it waits for this exit), carrying on in a grandchild.

    So the writer is nobody's child: it is never a zombie, and its starter never has to reap it.
    """
    if os.fork() > 0:
        os._exit(0)
    os.setsid()


if __name__ == "__main__":
    if "--detach" in sys.argv[4:]:
        detach()
    run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
