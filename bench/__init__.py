"""The cortexlite benchmark harness: `make bench` (`python -m bench`).

Three experiments against servers started as subprocesses on 127.0.0.1:

- throughput and latency of the runtime (1 process x 1 thread) against a ceiling (the same
  predictor behind a raw ASGI app on uvicorn), with wrk at 1, 8 and 64 connections;
- server-side batching on vs off for a predictor whose cost is fixed per call;
- idle memory (PSS) of both servers.

More drive the real CLI (`bench/control.py`, `bench/docker_suite.py`, `bench/reload_suite.py`): the
control plane on the process backend (cold start, no-change redeploy, the gateway's hop), the cold
start in a Docker environment, and hot reload under `cortexlite dev` (a file write -> the first
answer from the new code, on both backends), each against a baseline measured in the same run.

Results go to `bench/results/` as markdown and JSON.
"""

from __future__ import annotations

__all__: list[str] = []
