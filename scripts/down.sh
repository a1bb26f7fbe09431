#!/usr/bin/env bash
# `make down`: delete the local environment's APIs and stop its gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/cortexlite ]; then
  .venv/bin/cortexlite -e local down
fi
