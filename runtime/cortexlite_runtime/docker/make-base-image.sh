#!/usr/bin/env bash
# Build a Python base image without any image registry:
#   debootstrap --variant=minbase from a Debian mirror, then `docker import`.
# This is what air-gapped users run when python:3.11-slim cannot be pulled.
#
# usage: make-base-image.sh [--tag TAG] [--mirror URL] [--suite SUITE] [--docker-host URL]
#   --mirror defaults to the first Debian mirror configured on this host
#   (deb822 /etc/apt/sources.list.d/*.sources or one-line sources.list).
set -euo pipefail

tag="cortexlite/base:bookworm"
suite="bookworm"
mirror=""
packages="python3,python3-venv,ca-certificates"

while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --suite) suite="$2"; shift 2 ;;
    --docker-host) export DOCKER_HOST="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "make-base-image.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

find_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: the URIs line of a stanza whose Suites name the plain suite.
    uri=$(awk -v s="$suite" '
      /^[[:space:]]*$/ { if (u != "" && ok) { print u; exit } u=""; ok=0; next }
      tolower($1) == "uris:" { u=$2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == s) ok=1 }
      END { if (u != "" && ok) print u }' "$f" | head -n 1)
    [ -n "$uri" ] && { echo "$uri"; return 0; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk -v s="$suite" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i+1) == s) { print $i; exit } } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return 0; }
  done
  echo "http://deb.debian.org/debian"
}

command -v debootstrap >/dev/null 2>&1 || {
  echo "debootstrap not found: installing it with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
command -v docker >/dev/null 2>&1 || { echo "make-base-image.sh: the docker client is required" >&2; exit 1; }
[ -n "$mirror" ] || mirror=$(find_mirror)

root=$(mktemp -d /tmp/cortexlite-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debootstrap $suite from $mirror into $root (packages: $packages)" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

# Point the image's apt at the same mirror so `apt-get` works inside containers.
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
SOURCES
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*

tar -C "$root" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  --message "cortexlite base: debootstrap $suite from $mirror" - "$tag" >/dev/null
echo "$tag"
