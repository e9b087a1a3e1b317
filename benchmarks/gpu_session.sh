#!/usr/bin/env bash
# One GPU slot, one command: everything a rare, short GPU lease should measure, in under 560 s on an
# H100/H200, at most 8 files in $OUT, each step with a deadline that keeps what it measured when cut off.
#
#   bash benchmarks/gpu_session.sh
#
# In order: versions and the correctness table; the spec notebooks on the GPU; GPU tests on CUDA tensors
# and a seeded fuzz against cuDNN; the suite (every layer, forward / input gradient / weight gradient,
# bf16, channels-last and NCHW, tritonconv beside cuDNN, device and eager times); KernelBench level 1
# (bf16, then fp32 while time is left; also timed as its own harness times); fp8 forward rows; tuning that resumes where
# the last slot stopped (host-timed entries and the layers furthest behind cuDNN first), then the tuned
# layers timed again; whole networks' training steps under tritonconv.enabled() against cuDNN, then their
# inference under tritonconv.fuse (batch norms folded, activations fused). Files ($OUT
# if set, else benchmarks/results/slot/): slot.log, spec.xml, fuzz.jsonl, suite.jsonl, kernelbench.jsonl,
# tuned.jsonl, e2e.jsonl and the tuning cache file. Read them with
# `python -m benchmarks.readout DIR` (benchmarks/NOTES.md, "Status", names the device call).
# Without a GPU every step runs its CPU smoke version (tiny shapes, the interpreter): a check of this script.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/slot}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # this checkout's tritonconv, installed or not
exec > >(tee -a "$OUT/slot.log") 2>&1

# Deadlines in seconds, one per step (tests/test_benchmarks.py checks that they sum to at most 560).
DEADLINES=(wheels=20 versions=15 table=40 spec=90 tests=65 fuzz=25 warm=45 suite=90 fp8=25 kernelbench=45 tune=45
           retime=20 e2e=35)
declare -A deadline
for pair in "${DEADLINES[@]}"; do deadline[${pair%=*}]=${pair#*=}; done

gpu=$(python3 -c "import torch; print(int(torch.cuda.is_available()))")

# step NAME COMMAND...: run with its deadline on a GPU (SIGINT first, so Python stops cleanly and keeps its
# rows); the CPU smoke run has none, so a slow or busy machine cannot fail it. A failed step never ends the run.
step() {
  local name=$1; shift; echo "## $(date -u +%T) [$name] $*"
  if ((gpu)); then timeout -s INT -k 10 "${deadline[$name]}" "$@"; else "$@"; fi
  echo "## exit $?"
}

# the packages the image lacks (nbval, ipykernel, ...): wheels from `python -m benchmarks.wheels`, carried in .whl/
if ((gpu)) && compgen -G ".whl/*.whl" > /dev/null; then
  step wheels python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
heuristic=(env TRITONCONV_AUTOTUNE=0)  # measuring steps never tune: configs come from the cache or the heuristic
cache_file=$(python3 -c "import torch; from tritonconv import cache; print(cache.file_name(torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'))")
if ((gpu)); then
  suite=(python3 -m benchmarks.run --dtype bf16 --layout channels_last contiguous --passes forward input_grad weight_grad --no-compile)
  fp8=(python3 -m benchmarks.run --dtype fp8 --layout channels_last --passes forward --no-compile)
  kernelbench=(python3 -m benchmarks.kernelbench --dtype bf16 fp32)
  fuzz=(python3 -m benchmarks.fuzz --device cuda --seed "$(date +%j)")
  # first what only a GPU can check (graph capture, TMA descriptors and wgmma, the aligned rows' vector hints and
  # gather, the banded depthwise kernels' batched MMAs, runs and diagonals, the fused (2+1)D kernel's MMAs), since the
  # step may end before the rest: these files compile about 1,000 kernel variants (counted under the interpreter,
  # 2026-11-29), where the 2026-11-26 slot ran 361 tests in 87 s on 8 processes
  tests="tests/test_cuda_graphs.py tests/test_conv_tma.py tests/test_aligned_rows.py tests/test_banded.py tests/test_backward.py tests/test_conv2plus1d.py tests/test_conv.py"
  tune=(python3 -m tritonconv.tune benchmarks/shapes.json --ship --dtype bf16 --layout channels_last contiguous
        --kinds conv conv_t conv_wgrad --behind "$OUT/suite.jsonl" --top 6 --full 2)
  spec=(python3 -m tritonconv.spec --device cuda --workers 4 --junitxml "$OUT/spec.xml")
  e2e=(python3 -m benchmarks.e2e)
  shards=16
else  # smoke: the same steps on tiny shapes through the interpreter; tuning only lists its problems
  suite=(python3 -m benchmarks.run --smoke --dtype bf16 --layout channels_last contiguous --passes forward input_grad weight_grad
         --names tcn_k3)
  fp8=(python3 -m benchmarks.run --smoke --dtype fp8 --layout channels_last --passes forward --names tcn_k3)
  kernelbench=(python3 -m benchmarks.kernelbench --smoke --dtype bf16 --names 87)
  fuzz=(python3 -m benchmarks.fuzz --device cpu --count 2)
  tests=tests/test_conv.py::test_int64_offsets_path
  tune=(python3 -m tritonconv.tune benchmarks/shapes.json --dry-run --dtype bf16 --layout channels_last --kinds conv
        --names tcn_k3)
  spec=(python3 -m tritonconv.spec --list)
  e2e=(python3 -m benchmarks.e2e --smoke --models small2d)
  shards=2
fi
read -ra tests <<< "${GPU_SESSION_TESTS:-$tests}"  # GPU_SESSION_TESTS: another selection

((gpu)) && step versions nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
step versions python3 -c "import torch, triton, numpy; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__)"
# the correctness table; on a GPU each case runs twice, the second call below JITFunction.run: if the two differ,
# the rest of the slot measures with every launch through JITFunction.run (TRITONCONV_DIRECT=0), and says so
table_out=$(mktemp)
step table python3 -m tritonconv | tee "$table_out"
if grep -q DIFFERS "$table_out"; then
  export TRITONCONV_DIRECT=0
  echo "## direct launches differ from JITFunction.run's: TRITONCONV_DIRECT=0 from here on"
fi
rm -f "$table_out"
# the spec notebooks on the GPU (compiled kernels, cached configs) must print what the interpreter printed
step spec "${spec[@]}"
# GPU tests on CUDA tensors (TRITONCONV_TEST_DEVICE: tests that make CPU tensors get CUDA ones); no -x
python3 -c "import xdist" 2>/dev/null && par=(-n "$( ((gpu)) && echo 14 || echo 1)") || par=()
step tests env TRITONCONV_TEST_DEVICE="$( ((gpu)) && echo cuda || echo cpu)" \
  python3 -m pytest -q -p no:cacheprovider -o addopts= --maxfail=30 "${par[@]}" "${tests[@]}"
step fuzz "${fuzz[@]}" --out "$OUT/fuzz.jsonl" --budget-s $((${deadline[fuzz]} - 10))
# compile the suite's and the networks' kernels in parallel processes (Triton's on-disk cache), then time them in one
pids=()
for ((i = 0; i < shards; i++)); do "${heuristic[@]}" "${suite[@]}" --warm --shard "$i/$shards" & pids+=($!); done
for ((i = 0; i < shards / 4; i++)); do "${heuristic[@]}" "${fp8[@]}" --warm --shard "$i/$((shards / 4))" & pids+=($!); done
"${heuristic[@]}" "${e2e[@]}" --warm & pids+=($!)
step warm bash -c 'for p in "$@"; do while kill -0 "$p" 2>/dev/null; do sleep 0.5; done; done' _ "${pids[@]}"
kill "${pids[@]}" 2>/dev/null
step suite "${heuristic[@]}" "${suite[@]}" --out "$OUT" --file suite.jsonl --budget-s $((${deadline[suite]} - 15))
# fp8 forward rows (tritonconv.fp8, e4m3) against cuDNN in bf16, into the same file
step fp8 "${heuristic[@]}" "${fp8[@]}" --out "$OUT" --file suite.jsonl --budget-s $((${deadline[fp8]} - 10))
step kernelbench "${heuristic[@]}" "${kernelbench[@]}" --out "$OUT" --file kernelbench.jsonl --budget-s $((${deadline[kernelbench]} - 15))
# tuning resumes from the shipped cache (committed from the last slot): host-timed and unmeasured entries,
# the layers furthest behind cuDNN first, the model's 6 best candidates each but the first two's (every candidate:
# full searches, which judge the shortlist); then those layers timed again
tuned_list=$(mktemp)
step tune "${tune[@]}" --names-out "$tuned_list" --budget-s $((${deadline[tune]} - 15))
cp "autotune_cache/$cache_file" "$OUT/" 2>/dev/null || echo "no tuning cache written"
if [ -s "$tuned_list" ]; then
  read -ra tuned <<< "$(tr '\n' ' ' < "$tuned_list")"
  step retime "${heuristic[@]}" "${suite[@]}" --names "${tuned[@]}" --out "$OUT" --file tuned.jsonl --budget-s $((${deadline[retime]} - 10))
fi
rm -f "$tuned_list"
# whole networks' training steps: torchvision's ResNet-50 and R3D-18 under tritonconv.enabled() vs cuDNN; then
# their inference: torch's, routed, and tritonconv.fuse's
step e2e "${heuristic[@]}" "${e2e[@]}" --out "$OUT/e2e.jsonl"
ls -la "$OUT"
