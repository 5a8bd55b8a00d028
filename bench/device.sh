#!/usr/bin/env bash
# Issue 24's device check: one script for a machine with an NVIDIA GPU and many cores (the
# `device` tool's H200 with 16 cores), run from a checkout where `make models` has run:
#
#   bench/device.sh            # about 8 minutes; prints markdown tables, writes $OUT/*.txt
#
# 1. The GPU: the `gpu` extra (onnxruntime-gpu), then both models at 1 and 12 MP in process
#    with ALPHACUT_DEVICE=cuda (bench/engine.py, rembg beside it on the same weights), and the
#    start-up check: ALPHACUT_DEVICE=cuda must start, and must refuse where CUDA is hidden.
# 2. HTTP throughput on the GPU with 4 and 16 clients (bench/load.py, Ximilar path).
# 3. The CPU rows at 8 and 16 cores beside `rembg s` (bench/scaling.py).
# Nothing here is a test: tests never need a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$(mktemp -d)}"
PY=.venv/bin/python
log() { printf '\n== %s\n' "$*" | tee -a "$OUT/summary.txt"; }

log "machine"
{ nproc; lscpu | grep -E 'Model name|Flags' | cut -c1-200; nvidia-smi -L || true; } \
  | tee "$OUT/machine.txt"

log "gpu extra (onnxruntime-gpu, pinned in pyproject.toml)"
.venv/bin/pip --disable-pip-version-check -q install -c constraints.txt -e '.[dev,bench,gpu]'
$PY -c "import onnxruntime as o; print(o.__version__, o.get_available_providers())" \
  | tee -a "$OUT/summary.txt"

log "start-up: cuda works, and a hidden GPU is refused (exit 2, one line)"
ALPHACUT_DEVICE=cuda .venv/bin/alphacut models list --json | grep -o '"runtime": "[^"]*"' \
  | sort | uniq -c | tee -a "$OUT/summary.txt"
if CUDA_VISIBLE_DEVICES= ALPHACUT_DEVICE=cuda ALPHACUT_DATA_DIR="$(mktemp -d)" \
    timeout 60 .venv/bin/alphacut serve --port 1 2> "$OUT/hidden.txt"; then
  echo "FAIL: serve started without a usable GPU" | tee -a "$OUT/summary.txt"
else
  echo "refused (exit $?): $(tail -1 "$OUT/hidden.txt")" | tee -a "$OUT/summary.txt"
fi

log "in process on CUDA, 1 and 12 MP, both models, rembg beside"
ALPHACUT_DEVICE=cuda timeout 600 $PY bench/engine.py --repeat 7 | tee "$OUT/engine-cuda.txt"

log "HTTP on CUDA, 4 and 16 clients"
ALPHACUT_DEVICE=cuda ALPHACUT_LOAD_MODELS='["fast","precise"]' timeout 900 \
  $PY bench/load.py --levels 4 16 --soak 200 | tee "$OUT/load-cuda.txt"

log "CPU: 8 and 16 cores beside rembg s"
timeout 1200 $PY bench/scaling.py --cpus 0 0-7 0-15 --rounds 2 | tee "$OUT/scaling.txt"
echo "results in $OUT"
