#!/usr/bin/env bash
# Install (first time) everything, Debian's chromium (browser tests), SLURM (runs tests) and Fashion-MNIST
# (real-image engine tests) included, and run all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
source scripts/debian.sh
debian_package /usr/bin/chromium chromium -- for the browser tests
if ! command -v slurmctld >/dev/null; then
  debian_package /usr/sbin/slurmctld slurmctld slurmd slurm-client munge -- for the runs backend\'s cluster tests
fi
debian_package /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz dataset-fashion-mnist -- real images for the engine tests
exec .venv/bin/python -m pytest -q "$@"
