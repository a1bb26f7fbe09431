"""`deploy --no-wait`'s worker: `python -m cortexlite.worker ENV API [READY_TIMEOUT]`.

The CLI records the update with this process as its owner, then releases the API's lock; the
worker takes the lock, carries the update out and exits. Its output goes to the API's
`logs/rollout.log`. If it dies, the update is interrupted like any other and rolled back by the
next command.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime

from cortexlite.deployment import run_marker
from cortexlite.errors import CortexliteError
from cortexlite.settings import Settings
from cortexlite.workspace import Workspace

__all__ = ["main"]


def _report(message: str) -> None:
    print(f"{datetime.now().isoformat(timespec='milliseconds')} {message}", flush=True)


def main(argv: list[str]) -> int:
    env_name, api = argv[0], argv[1]
    ready_timeout = float(argv[2]) if len(argv) > 2 else None
    try:
        with Workspace.open(Settings.from_env(), env_name) as ws:
            lock = ws.state.lock(api)
            lock.acquire()
            try:
                marker = ws.state.marker(api)
                if marker is None or marker.owner_pid != os.getpid():
                    _report(f"{api}: no update of this worker's to run")
                    return 0
                _report(f"{api}: {marker.action} started")
                run_marker(ws, marker, _report, ready_timeout)
                _report(f"{api}: {marker.action} done")
            finally:
                lock.release()
    except CortexliteError as exc:
        _report(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
