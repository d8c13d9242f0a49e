#!/usr/bin/env bash
# The README's test command: install (dev) and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
python3 -m pytest -q "$@"
