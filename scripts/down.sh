#!/usr/bin/env bash
# Stop what scripts/up.sh started (by its pid file).
set -euo pipefail
home=${CORTEXLITE_HOME:-$HOME/.cortexlite}
pidfile="$home/up.pid"
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
rm -f "$pidfile"
echo "stopped" >&2
