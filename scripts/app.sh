#!/usr/bin/env bash
# Install (first time) and start the lab on http://127.0.0.1:8501 (localhost only; see .streamlit/config.toml).
# Debian's Fashion-MNIST comes too: the Runs page trains on it on any CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
source scripts/debian.sh
debian_package /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz dataset-fashion-mnist -- real images for CPU runs \
  || echo "warning: Fashion-MNIST not installed; the Runs page's CPU run needs it (sudo apt-get install dataset-fashion-mnist)" >&2
exec .venv/bin/python -m streamlit run app.py "$@"
