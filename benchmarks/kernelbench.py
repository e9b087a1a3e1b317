"""``python -m benchmarks.kernelbench``: the 35 convolution problems of KernelBench level 1, tritonconv vs PyTorch.

    python -m benchmarks.kernelbench --dtype fp32 bf16       # GPU: full size, as KernelBench defines them
    python -m benchmarks.kernelbench --smoke                 # CPU: tiny shapes through the interpreter

Problems come from ``shared/bench/kernelbench_level1_conv.json`` (a copy beside this file):
an input shape and the layers applied in order (``conv1d/2d/3d`` and ``conv_transpose1d/2d/3d``,
torch's weight shapes). Per problem and dtype: both implementations' outputs checked against an
fp32 reference (fp64 for fp32 inputs) on the same inputs, to the tolerance of the precision
that side multiplied in (TF32: 2e-3), then timed as ``benchmarks.run`` times (``ms`` from CUDA
graph replays, ``eager_ms`` call by call) and as KernelBench's own harness times (``kernelbench_ms``: CUDA
events around one call, L2 flushed before each of 100 trials, the mean; NCHW inputs as it makes them).
KernelBench runs fp32 (inputs from ``torch.rand``); there
cuDNN uses TF32 unless ``torch.backends.cudnn.allow_tf32`` is off, while tritonconv multiplies
in IEEE fp32 unless ``torch.set_float32_matmul_precision("high")``: each row says which
precision each side used (``--tf32`` lets tritonconv use TF32 too). Rows are JSON lines, each
written as measured; ``speedup`` > 1 means tritonconv is faster (KernelBench's ``fast_p`` counts
the correct problems with speedup > p).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import triton

import tritonconv
from benchmarks.run import DTYPES, TOL, rel_err, timer

ROOT = Path(__file__).resolve().parent
SUITE = ROOT / "kernelbench_level1_conv.json"
TF32_TOL = 2e-3  # rel. L2 vs the fp64 reference for a side that multiplies in TF32 (10-bit mantissa products)


def kernelbench_timing(fn, trials: int = 100, warmup: int = 3) -> dict:
    """KernelBench's way of timing: each trial flushes L2 (writes a buffer twice its size), then CUDA events
    around one call; the mean and standard deviation of the trials, in ms (a call's host time included
    where it exceeds the kernels')."""
    for _ in range(warmup):
        fn()
    l2 = getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "L2_cache_size", 50 * 2**20)
    flush = torch.empty(2 * l2, dtype=torch.uint8, device="cuda")
    times = []
    for _ in range(trials):
        flush.zero_()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    mean = sum(times) / len(times)
    return {"kernelbench_ms": mean, "kernelbench_std_ms": (sum((t - mean) ** 2 for t in times) / len(times)) ** 0.5}


def load(path: Path = SUITE) -> list[dict]:
    return json.loads(path.read_text())["problems"]


def shrink(problem: dict) -> dict:
    """A tiny version for ``--smoke``: batch 1, at most 8 channels (depthwise stays depthwise, groups keep
    dividing), spatial extents just above the largest dilated kernel."""
    c = min(problem["input"][1], 8)
    layers = []
    for layer in problem["layers"]:
        w, g = list(layer["weight"]), layer["groups"]
        if layer["op"].startswith("conv_transpose"):  # weight (C_in, C_out/groups, *k)
            g = c if g == w[0] else g if c % g == 0 else 1
            w[0], w[1] = c, max(1, min(w[1], 8 // g))
            c = w[1] * g
        else:  # weight (C_out, C_in/groups, *k)
            depthwise = w[1] == 1 and g > 1
            g = c if depthwise else g if c % g == 0 else 1
            w[0], w[1] = (c * (w[0] // layer["groups"]) if depthwise else max(g, min(w[0], 8) // g * g)), c // g
            c = w[0]
        layers.append({**layer, "weight": w, "groups": g})
    spans = [max((layer["weight"][2 + i] - 1) * layer["dilation"][i] + 2 for layer in layers)
             for i in range(len(problem["input"]) - 2)]
    spatial = [min(n, max(9, span)) for n, span in zip(problem["input"][2:], spans)]
    return {**problem, "input": [1, min(problem["input"][1], 8), *spatial], "layers": layers}


def apply(layers: list[dict], weights: list, x: torch.Tensor, module) -> torch.Tensor:
    """The problem's layers in order, with ``module``'s functions (``torch.nn.functional`` or ``tritonconv``)."""
    for layer, (w, b) in zip(layers, weights):
        if layer["op"].startswith("conv_transpose"):
            x = getattr(module, layer["op"])(x, w, b, layer["stride"], layer["padding"], layer["output_padding"],
                                             layer["groups"], layer["dilation"])
        else:
            x = getattr(module, layer["op"])(x, w, b, layer["stride"], layer["padding"], layer["dilation"],
                                             layer["groups"])
    return x


def measure(problem: dict, dtype: torch.dtype, device: torch.device, bench, meta: dict) -> dict:
    torch.manual_seed(0)
    weights = []
    for layer in problem["layers"]:
        fan_in = math.prod(layer["weight"][1:])
        w = torch.randn(layer["weight"], device=device, dtype=dtype) / math.sqrt(fan_in)
        c_out = layer["weight"][1] * layer["groups"] if layer["op"].startswith("conv_transpose") else layer["weight"][0]
        weights.append((w, torch.randn(c_out, device=device, dtype=dtype) if layer["bias"] else None))
    x = torch.rand(problem["input"], device=device, dtype=dtype)  # as KernelBench makes its inputs
    ref_dtype = torch.float64 if dtype == torch.float32 else torch.float32
    with torch.no_grad():
        ref = apply(problem["layers"], [(w.to(ref_dtype), None if b is None else b.to(ref_dtype)) for w, b in weights],
                    x.to(ref_dtype), F)
    row = {**meta, "name": problem["name"], "input": problem["input"], "dtype": str(dtype)[6:],
           "ops": [layer["op"] for layer in problem["layers"]],
           "precision": {"torch": "tf32" if dtype == torch.float32 and torch.backends.cudnn.allow_tf32 else str(dtype)[6:],
                         "tritonconv": "tf32" if dtype == torch.float32 and
                         torch.get_float32_matmul_precision() != "highest" else str(dtype)[6:]}}
    for impl, module in (("tritonconv", tritonconv), ("torch", F)):
        fn = lambda module=module: apply(problem["layers"], weights, x, module)  # noqa: E731
        tol = TF32_TOL if row["precision"][impl] == "tf32" else TOL[dtype]
        try:
            with torch.no_grad():
                err = rel_err(fn(), ref)
                timed = bench(fn) if err <= tol else {"ms": None}
                if timed["ms"] and device.type == "cuda":
                    timed.update(kernelbench_timing(fn))
        except Exception as exc:  # a failure is a result, not a crash of the run
            row[impl] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        row[impl] = {**timed, "rel_err": err, "ok": err <= tol}
    ours, theirs = row.get("tritonconv", {}), row.get("torch", {})
    if ours.get("ms") and theirs.get("ms"):
        row["speedup"] = theirs["ms"] / ours["ms"]
    if ours.get("kernelbench_ms") and theirs.get("kernelbench_ms"):  # as KernelBench would score it
        row["kernelbench_speedup"] = theirs["kernelbench_ms"] / ours["kernelbench_ms"]
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.kernelbench", description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", nargs="+", choices=list(DTYPES), default=["fp32", "bf16"])
    p.add_argument("--names", nargs="+", help="only these problems (by name prefix, e.g. 57 64)")
    p.add_argument("--tf32", action="store_true", help="let tritonconv's fp32 products use TF32, as cuDNN does")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--budget-s", type=float, default=None, help="start no new problem after this many seconds")
    p.add_argument("--out", type=Path, default=ROOT / "results")
    p.add_argument("--file", help="the rows' file name in --out (default: kernelbench-<device>-<time>.jsonl)")
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if args.tf32:
        torch.set_float32_matmul_precision("high")
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"cpu ({platform.processor() or 'x86'}) interpreter smoke")
    meta = {"suite": "kernelbench-level1-conv", "device": name, "torch": torch.__version__,
            "triton": triton.__version__, "cuda": torch.version.cuda,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "smoke": args.smoke}
    problems = [q for q in load() if not args.names or any(q["name"].startswith(n) for n in args.names)]
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = meta["date"][:19].replace(":", "")
    path = args.out / (args.file or f"kernelbench-{'smoke' if args.smoke else name.replace(' ', '_')}-{stamp}.jsonl")
    bench, start, skipped = timer(device, args.smoke), time.monotonic(), []
    with path.open("w") as sink:
        for dname in args.dtype:
            for problem in problems:
                if args.budget_s is not None and time.monotonic() - start > args.budget_s:
                    skipped.append(f"{problem['name']} {dname}")
                    continue
                row = measure(shrink(problem) if args.smoke else problem, DTYPES[dname], device, bench, meta)
                line = json.dumps(row)
                print(line, flush=True)
                sink.write(line + "\n")
                sink.flush()
    if skipped:
        print(f"budget of {args.budget_s:.0f} s spent; not measured: {', '.join(skipped)}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
