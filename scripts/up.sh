#!/usr/bin/env bash
# Serve examples/iris with the runtime as a local process on 127.0.0.1:8888 and print a prediction.
# (`cortexlite up` takes this over once the control plane lands; this uses only the runtime.)
set -euo pipefail
cd "$(dirname "$0")/.."
home=${CORTEXLITE_HOME:-$HOME/.cortexlite}
port=${PORT:-8888}
mkdir -p "$home"
bash scripts/down.sh >/dev/null 2>&1 || true

CORTEX_PROJECT_DIR="$PWD/examples/iris" CORTEX_SERVING_HOST=127.0.0.1 CORTEX_SERVING_PORT="$port" \
  CORTEX_CACHE_DIR="$home/cache" CORTEXLITE_LOG_FORMAT=json \
  nohup .venv/bin/cortexlite-serve >"$home/up.log" 2>&1 &
echo $! >"$home/up.pid"
echo "serving examples/iris (pid $(cat "$home/up.pid"), log $home/up.log); waiting until ready" >&2

for _ in $(seq 1 600); do
  status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" || true)
  [ "$status" = 200 ] && break
  if ! kill -0 "$(cat "$home/up.pid")" 2>/dev/null; then
    echo "the runtime exited; last log lines:" >&2; tail -n 20 "$home/up.log" >&2; exit 1
  fi
  if [ "$status" = 503 ] && curl -s "http://127.0.0.1:$port/readyz" | grep -q '"status":"failed"'; then
    echo "not ready:" >&2; curl -s "http://127.0.0.1:$port/readyz" >&2; echo >&2; exit 1
  fi
  sleep 0.5
done
echo "POST http://127.0.0.1:$port/predict < examples/iris/sample.json" >&2
curl -s -X POST "http://127.0.0.1:$port/predict" -H 'content-type: application/json' -d @examples/iris/sample.json
echo
echo "stop it with: make down" >&2
