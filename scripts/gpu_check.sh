#!/usr/bin/env bash
# The lab's GPU figures in one command, under 8 minutes on a machine with an NVIDIA GPU:
#   1. the ImageNet-size bench (`python -m lab.bench imagenet`'s measurements): SimSiam / ResNet-18 training
#      at 224 px in bf16 + channels_last, generated 500x375 JPEGs through the loader, and their pre-decoded cache;
#   2. a short SimSiam run through the engine in bf16 + channels_last against the same run in float32, loss
#      by loss (`tools.bench.gpu_check amp`; the tolerance and why: `AMP_TOLERANCE` there);
#   3. a Fashion-MNIST preset run (b5-simsiam-predictor at its stated budget, seed by seed, as many runs as
#      the step's time allows), skipped with one line when Fashion-MNIST is not on the machine;
#   4. one line per figure, `gpu_check <device>: <figure> <value> <unit>`, on stdout and in $OUT/gpu_check.txt
#      ($OUT set) or runs/gpu_check.txt; each step's log and JSON beside it, in gpu_check/.
# Python: $PYTHON, .venv/bin/python, python3 or python, the first whose torch sees CUDA (with numpy, Pillow
# and kornia, else their pins from requirements.txt are installed into .venv). With none, and nvidia-smi
# present, scripts/install.sh installs the lab (PyPI's CUDA build of the torch pin). Installing is not in the
# 8 minutes; each step runs under `timeout` with the budget below. Exit status: 0 when every step that ran
# passed, 1 otherwise (or when there is no CUDA device, with one line saying so).
# FMNIST_DIR: a folder with Fashion-MNIST's four idx files (default /usr/share/datasets/fashion-mnist, which
# scripts/debian.sh's debian_package tries to install when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

# Budgets in seconds (the hard limit of each step; `timeout -k` adds KILL_S when a step ignores SIGTERM).
# Worst case: 140 + 100 + 30 + 150 + 3 x 10 = 450 s, plus finding Python and the device (~15 s).
BENCH_S=140        # training 2 x 22 steps of batch 256, 1,024 generated JPEGs, loading, cache build
AMP_S=100          # two engine processes of 5 steps of batch 64 at 224 px (start-up, epoch 0, kNN each)
FMNIST_INSTALL_S=30
FMNIST_S=150       # runs start while 130 s allow one more; SIGTERM at 150 s ends the current one
KILL_S=10

results="${OUT:-runs}"
logs="$results/gpu_check"
txt="$results/gpu_check.txt"
mkdir -p "$logs"
rm -f "$logs"/*.json "$logs"/*.log "$txt"
work="$(mktemp -d "${TMPDIR:-/tmp}/lab-gpu-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export PYTHONUNBUFFERED=1

# ----------------------------------------------------------------------------------------- Python with CUDA
setup_began=$SECONDS
cuda_ok() { "$1" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; }
missing_pins() {  # the requirements.txt pins of what $1 cannot import (numpy, Pillow, kornia)
  local mod pkg
  for mod in numpy:numpy PIL:pillow kornia:kornia; do
    pkg="${mod#*:}"; mod="${mod%%:*}"
    "$1" -c "import $mod" >/dev/null 2>&1 || grep -iE "^$pkg==" requirements.txt
  done
}
py=""
for cand in "${PYTHON:-}" .venv/bin/python python3 python; do
  [ -n "$cand" ] && command -v "$cand" >/dev/null || continue
  if cuda_ok "$cand"; then py="$(command -v "$cand")"; break; fi
done
if [ -z "$py" ] && command -v nvidia-smi >/dev/null; then
  echo "gpu_check: no Python here has torch with CUDA; installing the lab (scripts/install.sh)" >&2
  bash scripts/install.sh >&2 || { echo "gpu_check: scripts/install.sh failed (above)" >&2; exit 1; }
  cuda_ok .venv/bin/python && py=".venv/bin/python"
fi
if [ -z "$py" ]; then
  why="nvidia-smi is missing"
  command -v nvidia-smi >/dev/null && why="torch in $(command -v .venv/bin/python || echo python3) sees no GPU"
  echo "gpu_check: no CUDA device: $why" >&2
  exit 1
fi
mapfile -t pins < <(missing_pins "$py")
if [ "${#pins[@]}" -gt 0 ]; then
  if [ "$py" != ".venv/bin/python" ]; then
    if [ -e .venv ]; then
      echo "gpu_check: $py has torch with CUDA but not ${pins[*]}, and .venv (no CUDA) is in the way;" \
        "remove it or set PYTHON" >&2
      exit 1
    fi
    echo "gpu_check: $py has torch with CUDA but not ${pins[*]}; a .venv on top of it" \
      "(--system-site-packages) gets them" >&2
    "$py" -m venv --system-site-packages .venv
    py=".venv/bin/python"
  fi
  echo "gpu_check: installing ${pins[*]} into .venv" >&2
  "$py" -m pip install --disable-pip-version-check --quiet "${pins[@]}" >&2 \
    || { echo "gpu_check: could not install ${pins[*]} (above)" >&2; exit 1; }
fi
setup_s=$((SECONDS - setup_began))

name="$("$py" -m tools.bench.gpu_check device)"   # one line and exit 1 without a CUDA device
echo "device: $name"
echo "python: $py, torch $("$py" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')"
began=$SECONDS

# ----------------------------------------------------------------------------------------- the steps
status=()   # summary lines, one per step
failed=0
step() {  # step NAME BUDGET CMD...: CMD under timeout, output to the terminal and to $logs/NAME.log
  local what="$1" limit="$2" t0=$SECONDS rc
  shift 2
  echo
  echo "== $what (budget $limit s)"
  set +e
  timeout -k "$KILL_S" "$limit" "$@" 2>&1 | tee "$logs/$what.log"
  rc=${PIPESTATUS[0]}
  set -e
  local took=$((SECONDS - t0)) verdict="ok"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then verdict="TIMED OUT"
  elif [ "$rc" != 0 ]; then verdict="FAILED (exit $rc)"; fi
  [ "$rc" = 0 ] || failed=1
  status+=("step $what wall time ($verdict, budget $limit s) $took s")
}

step bench "$BENCH_S" "$py" -m tools.bench.gpu_check bench --device cuda --json "$logs/bench.json"
step amp "$AMP_S" "$py" -m tools.bench.gpu_check amp --device cuda --budget $((AMP_S - 5)) \
  --work "$work/amp" --json "$logs/amp.json"

fmnist="${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}"
is_fmnist() {
  "$py" -c 'import sys; from lab.data.fmnist import is_fashion_mnist as ok; sys.exit(0 if ok(sys.argv[1]) else 1)' "$1"
}
if ! is_fmnist "$fmnist" && [ -z "${FMNIST_DIR:-}" ]; then
  timeout -k "$KILL_S" "$FMNIST_INSTALL_S" bash -c 'source scripts/debian.sh
    debian_package /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz dataset-fashion-mnist \
      -- Fashion-MNIST for the preset run' </dev/null >&2 || true
fi
if is_fmnist "$fmnist"; then
  step fmnist "$FMNIST_S" "$py" -m tools.bench.gpu_check fmnist --device cuda --data "$fmnist" \
    --budget $((FMNIST_S - 20)) --work "$work/fmnist" --json "$logs/fmnist.json"
else
  echo
  why="no Fashion-MNIST files in $fmnist"
  [ -n "${FMNIST_DIR:-}" ] || why="$why, and Debian's dataset-fashion-mnist could not be installed here"
  echo "== fmnist skipped: $why"
  status+=("step fmnist skipped: $why")
fi

total=$((SECONDS - began))
status+=("total wall time of the steps (budget 480 s) $total s"
         "setup wall time (finding Python, installing) $setup_s s")
echo
echo "== figures (also in $txt)"
lines=()
for s in "${status[@]}"; do lines+=(--line "$s"); done
"$py" -m tools.bench.gpu_check summary --name "$name" --bench "$logs/bench.json" --amp "$logs/amp.json" \
  --fmnist "$logs/fmnist.json" "${lines[@]}" --write "$txt"
exit "$failed"
