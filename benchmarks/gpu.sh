#!/usr/bin/env bash
# Every GPU figure issue 12 asks for, in one command on a node with an NVIDIA GPU and internet for pip:
#   benchmarks/gpu.sh 2>&1 | tee gpu-results.txt
# A separate virtual environment (.venv-gpu) with onnxruntime-gpu, so the CPU one is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-gpu RUNTIME=gpu make install-dev >/dev/null
PY=.venv-gpu/bin/python
export SWAPAROONY_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
echo "== start-up: seconds and memory, item by item and re-batched"; $PY benchmarks/startup.py --runs 3
echo "== swap ms per face against batch size";                     $PY benchmarks/batching.py --sizes 1 4 16 32 --runs 5
echo "== per-request stages, cost-faithful models";                $PY benchmarks/stages.py --cost-faithful
echo "== requests/s at concurrency 1/16/64, batching on/off";      $PY benchmarks/concurrency.py --cost-faithful --levels 1 16 64
