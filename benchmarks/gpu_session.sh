#!/usr/bin/env bash
# Everything a session with a lent GPU should run, in one call; results land in $OUT (or benchmarks/results).
#   bash benchmarks/gpu_session.sh            # correctness on GPU, tuning (shipped cache), dispatch, suite
# Commit what it writes: benchmarks/results/*, autotune_cache/*.json.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/device.txt"
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/device.txt"
python -m tritonconv 2>&1 | tee "$OUT/correctness.txt"
python -m pytest -q -x -p no:cacheprovider -o addopts= tests/test_conv.py tests/test_backward.py tests/test_conv2plus1d.py \
  2>&1 | tail -n 30 | tee "$OUT/gpu_tests.txt"
python -m tritonconv.tune benchmarks/shapes.json --ship --dtype ${DTYPES:-bf16 fp16} --layout channels_last contiguous \
  2>&1 | tail -n 5 | tee "$OUT/tune.txt"
cp autotune_cache/*.json "$OUT/" 2>/dev/null
python -m benchmarks.dispatch 2>&1 | tee "$OUT/dispatch.txt"
python -m benchmarks.streaming 2>&1 | tee "$OUT/streaming.txt"
python -m benchmarks.run --dtype ${DTYPES:-bf16 fp16} --out "$OUT" 2>&1 | tail -n 3
