#!/usr/bin/env bash
# Create the project environment (default .venv) with groupwise and its dev tools.
#
# torch is installed first and never replaced:
#   - a torch the base Python already has is kept (the venv sees it through
#     --system-site-packages), whatever its build (CUDA, ROCm, CPU);
#   - GROUPWISE_TORCH="torch==X" or GROUPWISE_TORCH_INDEX=URL choose one explicitly;
#   - with an NVIDIA driver present, PyPI's default (CUDA) build;
#   - otherwise a CPU build: a local wheel pip can see (find-links) if there is one, else
#     the PyTorch CPU index, else PyPI.
# Plain `pip install -e .` with no torch present would pull several GB of CUDA packages
# onto a CPU-only machine; that is what this order avoids.
set -euo pipefail

VENV=${1:-.venv}
PY=${PYTHON:-python3}
TORCH_VERSION=${GROUPWISE_TORCH_VERSION:-2.13.0}
CPU_INDEX=${GROUPWISE_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}

say() { printf 'bootstrap: %s\n' "$*" >&2; }

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "groupwise needs Python >= 3.11; $PY is $("$PY" -V 2>&1). Set PYTHON=/path/to/python3.11"
  exit 2
fi

if [ ! -x "$VENV/bin/python" ]; then
  if "$PY" -c 'import torch' 2>/dev/null; then
    say "keeping the torch $("$PY" -c 'import torch; print(torch.__version__)') that $PY already has"
    "$PY" -m venv --system-site-packages "$VENV"
  else
    "$PY" -m venv "$VENV"
  fi
fi
pip=("$VENV/bin/python" -m pip)

if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  if [ -n "${GROUPWISE_TORCH:-}" ]; then
    say "installing ${GROUPWISE_TORCH} as asked"
    "${pip[@]}" install "${GROUPWISE_TORCH}"
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    say "NVIDIA driver found: installing PyPI's CUDA build of torch"
    "${pip[@]}" install torch
  elif "${pip[@]}" install --dry-run --quiet --no-deps --no-index "torch==${TORCH_VERSION}" >/dev/null 2>&1; then
    say "installing the local CPU wheel of torch ${TORCH_VERSION}"
    "${pip[@]}" install "torch==${TORCH_VERSION}"
  else
    say "no GPU: installing a CPU build of torch from ${CPU_INDEX}"
    "${pip[@]}" install --timeout 30 --retries 1 torch --index-url "$CPU_INDEX" \
      || "${pip[@]}" install torch
  fi
fi

say "installing groupwise (editable) with its dev tools, optional optimizers and integrations"
"${pip[@]}" install --quiet -e ".[dev,optimizers,lightning,hf]"
"$VENV/bin/python" -c 'import groupwise, torch; print(f"groupwise {groupwise.__version__} with torch {torch.__version__}")'
