#!/usr/bin/env bash
# Stop the Docker engine that dockerd-start.sh started (by its pid file, never by name).
set -euo pipefail

state_dir=${CORTEXLITE_DOCKERD_DIR:-/var/run/cortexlite-dockerd}
pidfile="$state_dir/dockerd.pid"
[ -f "$pidfile" ] || { echo "no dockerd started by cortexlite ($pidfile missing)" >&2; exit 0; }
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
fi
rm -f "$pidfile"
