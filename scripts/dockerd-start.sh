#!/usr/bin/env bash
# Start a Docker engine in the background unless one already answers.
# Installs Debian's docker.io when dockerd is missing. Safe to run repeatedly.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "dockerd not found: installing Debian's docker.io" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

state_dir=${CORTEXLITE_DOCKERD_DIR:-/var/run/cortexlite-dockerd}
mkdir -p "$state_dir"
nohup dockerd --pidfile "$state_dir/dockerd.pid" >"$state_dir/dockerd.log" 2>&1 &

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "dockerd is running (pid $(cat "$state_dir/dockerd.pid"))" >&2
    exit 0
  fi
  sleep 1
done
echo "dockerd did not answer within 60 s; see $state_dir/dockerd.log" >&2
tail -n 20 "$state_dir/dockerd.log" >&2 || true
exit 1
