#!/usr/bin/env bash
# `make up`: deploy examples/iris to the local environment with `cortexlite up`, then predict once.
# With a Docker engine that answers, `local` runs replicas in containers (the images are built here
# first, from a registry-less base when python:3.11-slim cannot be pulled); without one, as processes.
# The choice is made on local's first use and recorded in CORTEXLITE_HOME/config.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
cli=.venv/bin/cortexlite
# local's backend: "process", "docker", or "" when it has not been resolved yet.
recorded=$("$cli" env list -o json | .venv/bin/python -c \
  'import json, sys; print(next((e["backend"] for e in json.load(sys.stdin) if e["name"] == "local"), ""))')
if [ "$recorded" != process ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  ca=/etc/ssl/certs/ca-certificates.crt
  echo "a Docker engine answers: building the runtime and gateway images (reused when up to date)" >&2
  "$cli" image build $([ -f "$ca" ] && echo --ca-cert "$ca") >/dev/null
fi
"$cli" -e local up examples/iris
echo "POST http://127.0.0.1:8888/iris < examples/iris/sample.json" >&2
"$cli" -e local predict iris examples/iris/sample.json
echo "stop it with: make down" >&2
