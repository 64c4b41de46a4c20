#!/usr/bin/env bash
# Install (first time) everything, Debian's chromium (browser tests) and SLURM (runs tests) included, and run all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
  echo "installing Debian's chromium for the browser tests" >&2
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
if ! command -v slurmctld >/dev/null && [ ! -x /usr/sbin/slurmctld ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
  echo "installing Debian's SLURM (slurmctld, slurmd, client, munge) for the runs backend's cluster tests" >&2
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi
exec .venv/bin/python -m pytest -q "$@"
