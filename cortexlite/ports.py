"""Ports for replicas on 127.0.0.1: from the cortexlite range, never a gateway's, checked free by binding."""

from __future__ import annotations

import socket
from pathlib import Path

from cortexlite.files import read_json

__all__ = ["RESERVATION_S", "bindable", "recorded_ports"]

# A process replica's record is written (pid 0) just before its process starts: for this long it
# reserves its port and GPUs; after that, a record still without a pid is a start that crashed.
RESERVATION_S = 60.0


def recorded_ports(home: Path) -> set[int]:
    """The ports process replicas of every environment of this `CORTEXLITE_HOME` hold (or reserved)."""
    ports = set()
    for path in home.glob("envs/*/apis/*/replicas/*.json"):
        data = read_json(path)
        if isinstance(data, dict) and isinstance(data.get("port"), int):
            ports.add(data["port"])
    return ports


def bindable(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port` now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
