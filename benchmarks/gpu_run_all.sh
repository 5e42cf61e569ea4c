#!/usr/bin/env bash
# Run every benchmarks/gpu_*.py once on a CUDA machine (the device tool's H100/H200).
# The machine has Python + torch but not compressai: wheels travel in .whl/ (see README
# of benchmarks). Output of each script goes to $OUT/<name>.txt and to stdout.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD/src
else
    export PYTHONPATH=$PWD/src
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch, compressai; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'compressai', compressai.__version__)"
for script in "${@:-benchmarks/gpu_*.py}"; do
    for s in $script; do
        name=$(basename "$s" .py)
        echo "=== $name"
        timeout "${GPU_SCRIPT_TIMEOUT:-120}" python3 "$s" 2>&1 | tee "$OUT/$name.txt"
        echo "=== $name exit ${PIPESTATUS[0]}"
    done
done
