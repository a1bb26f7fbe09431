#!/usr/bin/env bash
# `make up`: deploy examples/iris to the local environment with `cortexlite up`, then predict once.
# No Docker engine is involved: the local environment runs replicas as processes behind Traefik.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/cortexlite up examples/iris
echo "POST http://127.0.0.1:8888/iris < examples/iris/sample.json" >&2
.venv/bin/cortexlite predict iris examples/iris/sample.json
echo "stop it with: make down" >&2
