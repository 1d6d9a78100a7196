#!/usr/bin/env bash
# `make bench` needs wrk (Debian package). As root with apt-get: install it. Otherwise: print
# the command and fail. (Not part of scripts/ensure-system-deps.sh: `make test` does not need it;
# the smoke test uses the built-in load generator.)
set -euo pipefail
command -v wrk >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing wrk" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  }
else
  echo "wrk is not installed; install it (as root) with: apt-get install -y wrk" >&2
  exit 1
fi
