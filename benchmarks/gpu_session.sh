#!/usr/bin/env bash
# The GPU work of a benchmarking session, in stages of under 10 minutes each that write at most
# 8 files and keep what they measured if stopped early (for GPU time that comes in short slots).
#
#   bash benchmarks/gpu_session.sh check     # versions, compile check, correctness, GPU tests, spec notebooks on the GPU, suite vs cuDNN (heuristic), >2**31 elements
#   bash benchmarks/gpu_session.sh tune      # tune bf16 (then fp16) channels-last forward into autotune_cache/, suite again
#   bash benchmarks/gpu_session.sh compile   # suite vs cuDNN and torch.compile(max-autotune), bf16 channels-last
#   bash benchmarks/gpu_session.sh more      # NCHW tuning, fp16 and NCHW suite rows, dispatch, streaming
#   bash benchmarks/gpu_session.sh kernelbench  # KernelBench level 1's 35 convolutions vs PyTorch, fp32 then bf16
#
# Files land in $OUT if set, else benchmarks/results/session/: a log per stage,
# the suite rows (JSON lines) and plot, the tuning cache. Commit them (benchmarks/NOTES.md says
# where). Without a GPU every stage runs its CPU smoke version (a check of this script).
set -uo pipefail
cd "$(dirname "$0")/.."
stage=${1:?usage: bash benchmarks/gpu_session.sh check|tune|compile|more|kernelbench}
OUT=${OUT:-benchmarks/results/session}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # this checkout's tritonconv, installed or not
gpu=$(python -c "import torch; print(int(torch.cuda.is_available()))")
log="$OUT/$stage.log"
exec > >(tee -a "$log") 2>&1

# step SECONDS COMMAND...: run with a deadline on a GPU (SIGINT first, so Python stops cleanly and keeps its
# rows); the CPU smoke run has none, so a slow or busy machine cannot fail it. A failed step never ends the stage.
step() {
  local s=$1; shift; echo "## $(date -u +%T) $*"
  if ((gpu)); then timeout -s INT -k 15 "$s" "$@"; else "$@"; fi
  echo "## exit $?"
}
if ((gpu)); then
  suite=(python -m benchmarks.run --out "$OUT")
  tune=(python -m tritonconv.tune benchmarks/shapes.json --ship)
  kernelbench=(python -m benchmarks.kernelbench --out "$OUT")
else  # smoke: the same steps on tiny shapes through the interpreter; tuning only lists its problems
  suite=(python -m benchmarks.run --smoke --out "$OUT" --names tcn_k3 depthwise_k31)
  tune=(python -m tritonconv.tune benchmarks/shapes.json --dry-run)
  kernelbench=(python -m benchmarks.kernelbench --smoke --out "$OUT" --names 57 64 87)
fi
heuristic=(env TRITONCONV_AUTOTUNE=0)  # suite runs never tune: configs come from the cache or the heuristic
ship_cache() { cp autotune_cache/*.json "$OUT/" 2>/dev/null || echo "no tuning cache written"; }

case $stage in
  check)
    ((gpu)) && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    python -c "import torch, triton, numpy; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__)"
    # first minute: every kernel variant compiles with this Triton (sm_90 and sm_80; no launch, no interpreter)
    compile=(tests/test_compile.py)
    ((gpu)) || compile=("tests/test_compile.py::test_every_kernel_variant_compiles[90]")
    step 80 python -m pytest -q -p no:cacheprovider -o addopts= "${compile[@]}"
    step 60 python -m tritonconv
    # the GPU tests on CUDA tensors (TRITONCONV_TEST_DEVICE: tests that make CPU tensors get CUDA ones);
    # no -x: a failing test is reported and the stage goes on
    tests="tests/test_conv.py tests/test_conv_tma.py tests/test_backward.py tests/test_conv2plus1d.py tests/test_streaming.py tests/test_cuda_graphs.py"
    ((gpu)) || tests=tests/test_conv.py::test_int64_offsets_path
    read -ra tests <<< "${GPU_SESSION_TESTS:-$tests}"  # GPU_SESSION_TESTS: another selection
    python -c "import xdist" 2>/dev/null && par=(-n 8) || par=()
    step 120 env TRITONCONV_TEST_DEVICE="$( ((gpu)) && echo cuda || echo cpu)" \
      python -m pytest -q -p no:cacheprovider -o addopts= --maxfail=30 "${par[@]}" "${tests[@]}"
    # the spec notebooks on the GPU (compiled kernels, cached configs) must print what the interpreter printed
    if ((gpu)); then step 150 python -m tritonconv.spec --device cuda --junitxml "$OUT/spec.xml"; else
      step 30 python -m tritonconv.spec --list; fi
    step 80 "${heuristic[@]}" "${suite[@]}" --dtype bf16 --layout channels_last --no-compile --tag heuristic --budget-s 50
    if ((gpu)); then step 90 "${heuristic[@]}" python -m benchmarks.large --out "$OUT/large.jsonl"; else
      step 60 "${heuristic[@]}" python -m benchmarks.large --smoke --out "$OUT/large.jsonl"; fi
    ;;
  tune)
    # --retune: the shipped H200 configs of 2026-11-26 were timed call by call (host-bound); time them again
    step 380 "${tune[@]}" --retune --dtype bf16 fp16 --layout channels_last --budget-s 330
    ship_cache
    step 180 "${heuristic[@]}" "${suite[@]}" --dtype bf16 --layout channels_last --no-compile --tag tuned --budget-s 150
    ;;
  compile)
    step 560 "${heuristic[@]}" "${suite[@]}" --dtype bf16 --layout channels_last --tag compile --budget-s 480
    ;;
  more)
    step 240 "${tune[@]}" --dtype bf16 fp16 --layout channels_last contiguous --budget-s 200
    ship_cache
    step 150 "${heuristic[@]}" "${suite[@]}" --dtype fp16 --layout channels_last --no-compile --tag tuned_fp16 --budget-s 120
    step 100 "${heuristic[@]}" "${suite[@]}" --dtype bf16 --layout contiguous --no-compile --tag nchw --budget-s 80
    ((gpu)) && step 30 python -m benchmarks.dispatch
    ((gpu)) && step 30 python -m benchmarks.streaming
    ;;
  kernelbench)  # fp32 as KernelBench runs it (cuDNN with its TF32 default; each row names both precisions), then bf16
    step 560 "${heuristic[@]}" "${kernelbench[@]}" --dtype fp32 bf16 --budget-s 500
    ;;
  *) echo "unknown stage $stage (check | tune | compile | more | kernelbench)"; exit 2 ;;
esac
((gpu)) && python -m benchmarks.report "$OUT"/*.jsonl  # the targets, as markdown
ls -la "$OUT"
