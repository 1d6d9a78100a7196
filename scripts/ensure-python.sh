#!/usr/bin/env bash
# Create the virtualenv (Python >= 3.11); on Debian without python3-venv, install it when running as root.
set -euo pipefail
venv=${1:-.venv}
[ -x "$venv/bin/python" ] && exit 0
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "dialback needs Python >= 3.11; python3 is $(python3 -V 2>&1 || echo missing)" >&2
  exit 1
fi
if ! python3 -m venv "$venv" 2>/dev/null; then
  rm -rf "$venv"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv python3-dev >/dev/null
    python3 -m venv "$venv"
  else
    echo "python3 cannot create a virtualenv; install it with: apt-get install -y python3-venv" >&2
    exit 1
  fi
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
