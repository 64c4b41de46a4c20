#!/usr/bin/env bash
# Install (first time) and start the lab on http://127.0.0.1:8501 (localhost only; see .streamlit/config.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m streamlit run app.py "$@"
