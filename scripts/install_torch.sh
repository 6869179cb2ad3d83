#!/usr/bin/env bash
# Install PyTorch into the course's .venv, choosing the build that fits this machine.
#
#   scripts/install_torch.sh [PYTHON]       install (PYTHON defaults to .venv/bin/python)
#   scripts/install_torch.sh --dry-run      only print the choice and the pip command
#
# The choice, first match wins:
#   1. TORCH_PIN is set        -> `pip install $TORCH_PIN` as given (e.g. TORCH_PIN="torch==2.13.0",
#                                 or TORCH_PIN="torch --index-url https://download.pytorch.org/whl/cu126")
#   2. Linux, no `nvidia-smi`  -> the CPU build from PyTorch's CPU wheel index (~0.2 GB download),
#                                 if that index answers within a few seconds
#   3. otherwise               -> pip's default build: CUDA on Linux x86-64 (~3 GB download,
#                                 a ~6 GB .venv), the usual CPU/Apple-GPU build on macOS and Windows
#
# Environment: TORCH_PIN (above), TORCH_SPEC (default "torch>=2.4", as in pyproject.toml),
# TORCH_CPU_INDEX (default https://download.pytorch.org/whl/cpu), TORCH_PROBE_TIMEOUT (seconds, 5),
# RECATTN_OS (default: `uname -s`; lets tests pretend to be another system).
set -euo pipefail

DRY_RUN=0
if [ "${1:-}" = "--dry-run" ]; then DRY_RUN=1; shift; fi
PY="${1:-.venv/bin/python}"
SPEC="${TORCH_SPEC:-torch>=2.4}"
CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
TIMEOUT="${TORCH_PROBE_TIMEOUT:-5}"
OS="${RECATTN_OS:-$(uname -s)}"

reachable() {  # does the URL answer (any HTTP status) within $TIMEOUT seconds?
  "$PY" - "$1" "$TIMEOUT" <<'EOF' >/dev/null 2>&1
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=float(sys.argv[2]))
except urllib.error.HTTPError:
    pass  # the server answered
EOF
}

if [ -n "${TORCH_PIN:-}" ]; then
  choice="pin"
  why="TORCH_PIN is set: installing exactly what it names"
  # shellcheck disable=SC2206  # TORCH_PIN may hold several pip arguments
  args=($TORCH_PIN)
elif [ "$OS" = "Linux" ] && ! command -v nvidia-smi >/dev/null 2>&1; then
  if reachable "$CPU_INDEX"; then
    choice="cpu"
    why="Linux without an NVIDIA GPU (no nvidia-smi): the CPU build from $CPU_INDEX (about 0.2 GB)"
    args=("$SPEC" --index-url "$CPU_INDEX")
  else
    choice="default"
    why="Linux without an NVIDIA GPU, but $CPU_INDEX did not answer within ${TIMEOUT}s: pip's default build (on x86-64 the CUDA build, about 3 GB; set TORCH_PIN to choose)"
    args=("$SPEC")
  fi
else
  choice="default"
  if [ "$OS" = "Linux" ]; then
    why="NVIDIA GPU found (nvidia-smi): pip's default build, which is the CUDA build (about 3 GB download, a ~6 GB .venv)"
  else
    why="$OS: pip's default torch build"
  fi
  args=("$SPEC")
fi

echo "torch: $why"
echo "torch: running $PY -m pip install ${args[*]}"
if [ "$DRY_RUN" = 1 ]; then
  echo "torch-choice: $choice"
  exit 0
fi
# No --quiet: torch is the big download, pip's progress shows it is moving.
"$PY" -m pip install "${args[@]}"
