#!/usr/bin/env bash
# Install the Debian packages cortexlite's tests and benchmarks need, when missing.
# The tests start docker-registry themselves, on a loopback port, whatever its packaged service does.
set -euo pipefail
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
# A real image registry (distribution 2.8) for the tests that push images for Nomad clients.
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
# Without its recommends: docker-compose recommends docker.io, which must not land beside another engine.
lean=()
command -v docker-compose >/dev/null 2>&1 || lean+=(docker-compose)
[ ${#need[@]} -eq 0 ] && [ ${#lean[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system.sh: need root to install ${need[*]} ${lean[*]} (or install them yourself)" >&2
  exit 1
fi
echo "installing ${need[*]} ${lean[*]}" >&2
apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ${#lean[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${lean[@]}" >/dev/null
fi
