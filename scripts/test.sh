#!/usr/bin/env bash
# The README's test command: the README's install (dev) into a virtual environment of its own, without
# system site-packages, then the whole suite with that environment's interpreter and `cgn` command, so a
# dependency missing from pyproject.toml fails here as it would on a clean machine.
#   CGN_VENV=DIR  where the environment lives (default .venv); CI=true (or `rm -rf .venv`) makes it anew.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CGN_VENV:-.venv}"
if [ -n "${CI:-}" ] || [ ! -x "$venv/bin/python" ]; then
  python3 -m venv --clear "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
bash scripts/install.sh dev
python -m pytest -q "$@"
