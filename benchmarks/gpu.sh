#!/usr/bin/env bash
# Every GPU figure in one command on a node with an NVIDIA GPU, within 8 minutes, in either place:
#   from a checkout (needs internet for pip once):  benchmarks/gpu.sh 2>&1 | tee gpu-results.txt
#   inside the GPU image (image/build.sh puts this kit at /home/bentoml/bento/src; no network needed):
#     kubectl exec -it <pod> -- bash /home/bentoml/bento/src/benchmarks/gpu.sh
# It prints the providers, the NVIDIA driver and CUDA versions, model start-up time, swap milliseconds per face
# against batch size, requests/s at concurrency 1, 16 and 64, and a clip's swap by stage. Each section has a time budget (SECONDS_*), so a slow
# node gets a cut-short section, said so, rather than a run past 8 minutes. GPU_STAGES=1 adds the per-request stages
# (from a checkout only: they compare with insightface's pipeline, which the image does not carry).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -f pyproject.toml ]; then  # a checkout: a separate virtual environment, so the CPU one is left as it is
  VENV=.venv-gpu RUNTIME=gpu make install >/dev/null || exit 1
  PY=.venv-gpu/bin/python
else  # the image: its own environment, this folder being the Bento's source with the benchmarks beside it
  PY=${PYTHON:-python}
fi
export SWAPAROONY_PROVIDERS=${SWAPAROONY_PROVIDERS:-CUDAExecutionProvider,CPUExecutionProvider}
started=$(date +%s)

section() {  # section TITLE BUDGET_S COMMAND...: run it under its time budget and say if it was cut short
  local title=$1 budget=$2; shift 2
  echo "== $title (budget ${budget} s)"
  timeout --kill-after=10 "$budget" "$@"
  local rc=$?
  [ $rc -eq 124 ] && echo "   (cut short at ${budget} s: a slow node; raise the budget to see the rest)"
  [ $rc -ne 0 ] && [ $rc -ne 124 ] && echo "   (failed with exit status $rc)"
  return 0
}

echo "== versions"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" - <<'EOF'
import sys
from importlib.metadata import distributions
sys.path.insert(0, ".")
import onnxruntime as ort
from swaparoony.models.nvidia_driver import DRIVER_FLOORS, built_for_cuda, parsed, read_driver
driver, cuda = read_driver(), built_for_cuda()
print(f"onnxruntime {ort.__version__}, built for CUDA {cuda}; available providers {ort.get_available_providers()}")
print(f"NVIDIA driver {driver.version or 'none (' + driver.unreadable + ')'}, {driver.gpus} GPU(s); "
      f"CUDA {cuda} needs {DRIVER_FLOORS.get(parsed(cuda)[0], '?') if cuda else '-'} or newer")
wheels = sorted(f"{d.metadata['Name']} {d.version}" for d in distributions() if d.metadata["Name"].startswith("nvidia-"))
print("NVIDIA wheels:", ", ".join(wheels) or "none")
EOF

section "start-up: seconds and memory to load the models, item by item and re-batched" "${SECONDS_STARTUP:-120}" \
  "$PY" benchmarks/startup.py --runs 1
section "swap ms per face against batch size" "${SECONDS_BATCHING:-80}" \
  "$PY" benchmarks/batching.py --sizes 1 4 16 32 --runs 5
section "requests/s at concurrency 1/16/64, batching on (re-batched, item by item) and off" "${SECONDS_CONCURRENCY:-220}" \
  "$PY" benchmarks/concurrency.py --cost-faithful --levels 1 16 64 --seconds 8
section "a 3-second 12 fps 640-pixel clip: its load and a swap into it by stage" "${SECONDS_CLIPS:-45}" \
  "$PY" benchmarks/clips.py --cost-faithful --runs 2
if [ "${GPU_STAGES:-0}" = 1 ] && [ -f pyproject.toml ]; then
  VENV=.venv-gpu RUNTIME=gpu make install-dev >/dev/null
  section "per-request stages, cost-faithful models" "${SECONDS_STAGES:-120}" "$PY" benchmarks/stages.py --cost-faithful
fi
echo "== done in $(( $(date +%s) - started )) s"
