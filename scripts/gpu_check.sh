#!/usr/bin/env bash
# make test-gpu: the prepared GPU check (scripts/gpu_check.py; its last line is one JSON object).
# faiss-cpu and faiss-gpu-cu12 install the same `faiss` files: make the GPU build the one imported.
set -euo pipefail
cd "$(dirname "$0")/.."
if python -c "import faiss, sys; sys.exit(0 if hasattr(faiss, 'StandardGpuResources') else 1)"; then :
elif pip show faiss-gpu-cu12 > /dev/null 2>&1; then
  gpu_pin="$(pip list --format=freeze | grep -i '^faiss-gpu')"
  pip uninstall -y -q faiss-cpu
  pip install -q --no-deps --force-reinstall "${gpu_pin}"
fi
exec timeout 470 python scripts/gpu_check.py "$@"
