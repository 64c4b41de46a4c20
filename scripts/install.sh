#!/usr/bin/env bash
# Create .venv, install requirements.txt into it and the lab itself as an editable package (pyproject.toml);
# again only when either file changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=".venv"
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

command -v "$PYTHON" >/dev/null || { echo "error: $PYTHON not found; install Python 3.11" >&2; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { echo "error: Python >= 3.10 needed, found $("$PYTHON" --version)" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    # Debian ships venv separately (python3.X-venv).
    rm -rf "$VENV"
    echo "installing Debian's python3-venv" >&2
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv >/dev/null
    "$PYTHON" -m venv "$VENV"
  fi
fi

stamp="$VENV/.requirements.sha256"
want="$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then exit 0; fi

pip=("$VENV/bin/python" -m pip install --disable-pip-version-check --quiet)
torch_pin="$(grep -E '^torch==' requirements.txt)"
if ! command -v nvidia-smi >/dev/null; then
  # No NVIDIA driver: if the plain pin would bring a CUDA build (several GB of nvidia-* packages),
  # take the CPU build of the same version instead. Where a local CPU wheel exists, nothing changes.
  report="$("$VENV/bin/python" -m pip install --disable-pip-version-check --quiet --dry-run --report - "$torch_pin" 2>/dev/null || true)"
  if grep -q '"name": "nvidia-' <<<"$report"; then
    echo "no NVIDIA GPU: installing the CPU build of $torch_pin" >&2
    "${pip[@]}" "$torch_pin" --index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
  fi
fi
echo "installing requirements into $VENV (first time: a few minutes)" >&2
"${pip[@]}" -r requirements.txt
# --no-deps: the pins above are the dependencies; pip must not resolve torch again (a CUDA build).
"${pip[@]}" --no-deps -e .
echo "$want" > "$stamp"
