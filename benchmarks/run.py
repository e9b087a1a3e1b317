"""``python -m benchmarks.run``: tritonconv vs cuDNN vs torch.compile(max-autotune) on the suite.

    python -m benchmarks.run --dtype bf16 fp16 --layout channels_last contiguous
    python -m benchmarks.run --smoke          # CPU: tiny shapes through the interpreter, keeps the harness working

For every layer of ``benchmarks/shapes.json`` (the shared suite) and every dtype and layout,
in one process: each implementation's output is first checked against an fp32 reference on
the same inputs, then timed from replays of a CUDA graph of many calls (median; the kernels'
time, Python's launch cost out, for every implementation alike), and also call by call from Python
(``eager_ms``); inputs rotate through enough copies to exceed L2. The run also measures the machine's ceilings (device copy
bandwidth, bf16 matmul rate) and reports each layer against its roofline bound. Results are
JSON lines under ``benchmarks/results/`` (device, versions, date, op, shape, dtype, layout,
milliseconds, TFLOP/s, GB/s, ratios), each written as soon as it is measured (a run stopped by
``--budget-s`` or a time limit keeps its rows), plus a PNG plot. ``--smoke`` times with a wall clock on
the CPU; its numbers say nothing about GPU speed and are labelled as such.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import triton

import tritonconv
from tritonconv import dispatch, geometry, shapes, tuning

ROOT = Path(__file__).resolve().parent
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
TOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 3e-2}  # rel. L2 vs fp32 reference (TF32 allowed)
OPS = ("conv1d", "conv2d", "conv3d", "conv2plus1d")


def shrink(entry: dict) -> dict:
    """A tiny version of a suite layer for ``--smoke``: same kernel/stride/padding/dilation, depthwise stays depthwise."""
    axes = [a for a in ("D", "H", "W", "L") if a in entry]
    kernel = shapes.as_tuple(entry["k"], len(axes), "k")
    dilation = shapes.as_tuple(entry.get("d", 1), len(axes), "d")
    small = dict(entry, N=1, C=min(entry["C"], 8), OC=min(entry["OC"], 8))
    if entry.get("groups", 1) > 1:  # depthwise in the suite: groups == C
        small.update(groups=small["C"], OC=small["C"] * (entry["OC"] // entry["C"]))
    for axis, k, d in zip(axes, kernel, dilation):
        small[axis] = min(entry[axis], max(9, (k - 1) * d + 2))
    return small


def timer(device: torch.device, smoke: bool):
    """``bench(fn) -> dict``: milliseconds per call of ``fn``. On a GPU, two figures: ``ms`` from replays of
    a CUDA graph of many calls (``triton.testing.do_bench_cudagraph``, median), the kernels' own time with
    Python's launch cost left out, which is what implementations are compared on; and ``eager_ms``, the
    calls issued one by one from Python (``triton.testing.do_bench``, median), what code without CUDA
    graphs pays when the host takes longer than the kernels. ``timing`` says which ``ms`` is: where ``fn``
    cannot be captured, ``ms`` is the eager time."""
    if not smoke:
        def bench(fn) -> dict:
            eager = triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
            try:
                graph = triton.testing.do_bench_cudagraph(fn, rep=50, return_mode="median")
            except RuntimeError as err:  # not capturable: say so, keep the eager figure
                torch.cuda.synchronize()
                return {"ms": eager, "eager_ms": eager, "timing": f"eager ({type(err).__name__}: {err})"[:160]}
            return {"ms": graph, "eager_ms": eager, "timing": "cuda_graph"}
        return bench

    def wall(fn) -> dict:  # CPU smoke: a few wall-clock runs, median
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return {"ms": statistics.median(times), "timing": "cpu_wall_clock"}

    return wall


def rotating(make, nbytes_each: int, device: torch.device) -> list:
    """Enough input copies that cycling through them exceeds twice the L2 cache."""
    if device.type != "cuda":
        return [make()]
    l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 * 2**20)
    return [make() for _ in range(max(1, min(16, math.ceil(2 * l2 / max(nbytes_each, 1)))))]


def ceilings(device: torch.device, bench) -> dict:
    """Measured device copy bandwidth (GB/s) and bf16 matmul rate (TFLOP/s)."""
    if device.type != "cuda":
        return {}
    a = torch.empty(2**28, dtype=torch.uint8, device=device)
    b = torch.empty_like(a)
    copy_ms = bench(lambda: b.copy_(a))["ms"]
    m = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    mm_ms = bench(lambda: m @ m)["ms"]
    return {"copy_GBps": 2 * a.numel() / copy_ms / 1e6, "bf16_matmul_TFLOPs": 2 * 8192**3 / mm_ms / 1e9}


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30)).item()


def layer_cases(op: str, entry: dict, dtype, layout: str, device, grad: bool = False):
    """Yields (implementation name, callable(x) -> y) plus the input maker, reference and cost model."""
    fmt = {3: torch.contiguous_format, 4: torch.channels_last, 5: torch.channels_last_3d}
    if op == "conv2plus1d":
        t, kh, kw = entry["k"]
        st, sh, sw = entry["s"]
        pt, ph, pw = entry["p"]
        c_in, c_out = entry["C"], entry["OC"]
        mid = shapes.r2plus1d_mid_channels(c_in, c_out, t, (kh, kw))
        x_shape = (entry["N"], c_in, entry["D"], entry["H"], entry["W"])
        ws = (torch.randn(mid, c_in, 1, kh, kw, device=device, dtype=dtype) / math.sqrt(c_in * kh * kw)).requires_grad_(grad)
        wt = (torch.randn(c_out, mid, t, 1, 1, device=device, dtype=dtype) / math.sqrt(mid * t)).requires_grad_(grad)
        w3 = (torch.randn(c_out, c_in, t, kh, kw, device=device, dtype=dtype) / math.sqrt(c_in * t * kh * kw)
              ).requires_grad_(grad)
        y_shape = shapes.conv_output_shape(x_shape, (c_out, c_in, t, kh, kw), entry["s"], entry["p"])
        flops = 2 * (shapes.conv_macs(x_shape, (mid, c_in, 1, kh, kw), (y_shape[0], mid, x_shape[2], *y_shape[3:]))
                     + shapes.conv_macs((y_shape[0], mid, x_shape[2], *y_shape[3:]), (c_out, mid, t, 1, 1), y_shape))
        nbytes = shapes.conv2plus1d_bytes(x_shape, mid, c_out, (t, kh, kw), y_shape, str(dtype)[6:], fused=True)

        def ours(x):
            return tritonconv.conv2plus1d(x, ws, wt, stride=entry["s"], padding=entry["p"])

        def cudnn(x):
            return F.conv3d(F.conv3d(x, ws, None, (1, sh, sw), (0, ph, pw)), wt, None, (st, 1, 1), (pt, 0, 0))

        def ref(x):
            m = F.conv3d(x.float(), ws.float(), None, (1, sh, sw), (0, ph, pw)).to(dtype).float()
            return F.conv3d(m, wt.float(), None, (st, 1, 1), (pt, 0, 0))

        impls = {"tritonconv": ours, "cudnn": cudnn, "cudnn_full3d": lambda x: F.conv3d(x, w3, None, entry["s"], entry["p"])}
        return x_shape, impls, ref, flops, nbytes, cudnn
    p = shapes.suite_problem(op, entry)
    w = torch.randn(p["weight_shape"], device=device, dtype=dtype) / math.sqrt(math.prod(p["weight_shape"][1:]))
    if layout == "channels_last" and w.dim() > 3:
        w = w.contiguous(memory_format=fmt[w.dim()])
    w.requires_grad_(grad)
    args = (p["stride"], p["padding"], p["dilation"], p["groups"])
    ours_fn, torch_fn = getattr(tritonconv, op), getattr(F, op)
    flops = shapes.conv_flops(p["input_shape"], p["weight_shape"], p["output_shape"])
    nbytes = shapes.conv_bytes(p["input_shape"], p["weight_shape"], p["output_shape"], str(dtype)[6:])
    impls = {"tritonconv": lambda x: ours_fn(x, w, None, *args), "cudnn": lambda x: torch_fn(x, w, None, *args)}
    return p["input_shape"], impls, lambda x: torch_fn(x.float(), w.float(), None, *args), flops, nbytes, impls["cudnn"]


def run(args, sink=None) -> list[dict]:
    """Measure every selected layer; each row is also written to ``sink`` (a file) as soon as it exists,
    so a run stopped part-way (``--budget-s``, a time limit) keeps what it measured."""
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    bench = timer(device, args.smoke)
    suite = json.loads(Path(args.suite).read_text())
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"cpu ({platform.processor() or 'x86'}) interpreter smoke")
    meta = {"device": name, "torch": torch.__version__, "triton": triton.__version__,
            "cuda": torch.version.cuda, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "smoke": args.smoke}
    start = time.monotonic()
    roof = ceilings(device, bench)
    print(json.dumps({**meta, **roof}))
    rows, skipped = [], []
    compile_ok = not args.no_compile and device.type == "cuda"
    for dname in args.dtype:
        for layout in args.layout:
            for op in args.ops:
                for entry in suite.get(op, []):
                    if args.names and entry["name"] not in args.names:
                        continue
                    if args.budget_s is not None and time.monotonic() - start > args.budget_s:
                        skipped.append(f"{entry['name']} {dname} {layout}")
                        continue
                    entry = shrink(entry) if args.smoke else entry
                    rows.append(measure(op, entry, DTYPES[dname], layout, device, bench, compile_ok, meta, roof,
                                        args.backward))
                    line = json.dumps(rows[-1])
                    print(line, flush=True)
                    if sink is not None:
                        sink.write(line + "\n")
                        sink.flush()
    if skipped:
        print(f"budget of {args.budget_s:.0f} s spent; not measured: {', '.join(skipped)}")
    return rows


def launched_configs(fn) -> list[dict]:
    """Run ``fn`` once, its plans built anew, and list the kernel kind and config of every launch."""
    seen, choose = [], tuning.choose
    dispatch.clear_plans()  # a plan chose its config when it was built: build them again to see the choices

    def spy(problem, *args):
        cfg = choose(problem, *args)
        seen.append({"kind": problem.kind, **vars(cfg)})
        return cfg

    tuning.choose = spy
    try:
        fn()
    finally:
        tuning.choose = choose
    return seen


def measure(op, entry, dtype, layout, device, bench, compile_ok, meta, roof, backward=False) -> dict:
    """One row. ``backward``: time forward + backward (input and weight gradients); outputs are still
    checked on the forward (gradient correctness is the tests' job)."""
    torch.manual_seed(0)
    x_shape, impls, ref_fn, flops, nbytes, compile_target = layer_cases(op, entry, dtype, layout, device, backward)

    def make():  # channels-last 1-D input: (N, C, L) viewing NLC memory
        return geometry.to_layout(torch.randn(x_shape, device=device, dtype=dtype), layout).requires_grad_(backward)

    xs = rotating(make, math.prod(x_shape) * torch.empty(0, dtype=dtype).element_size(), device)
    if compile_ok:
        # max-autotune's kernel choice; the CUDA graphs it would add are the timer's, as for every implementation
        impls["torch_compile"] = torch.compile(compile_target, mode="max-autotune-no-cudagraphs", dynamic=False)
    row = {**meta, "op": op, "name": entry["name"], "shape": entry, "dtype": str(dtype)[6:], "layout": layout,
           "pass": "forward+backward" if backward else "forward", "gflop": flops / 1e9 * (3 if backward else 1),
           "mbytes": nbytes / 1e6}
    flops *= 3 if backward else 1
    with torch.no_grad():
        ref = ref_fn(xs[0])
    grad_out = torch.randn_like(ref).to(dtype)
    for impl, fn in impls.items():
        before = dict(tuning.stats)
        try:
            with torch.no_grad():
                err = rel_err(fn(xs[0]), ref) if impl != "cudnn_full3d" else 0.0
            # where the first call's configs came from: shipped/user cache (exact, bucket), tuned now, heuristic
            source = {k: v - before.get(k, 0) for k, v in tuning.stats.items() if v != before.get(k, 0)}
        except Exception as exc:  # a failing implementation is a result, not a crash of the run
            row[impl] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        def call(fn=fn, state={"i": 0}):  # noqa: B006  (per-implementation rotation counter)
            state["i"] = (state["i"] + 1) % len(xs)
            out = fn(xs[state["i"]])
            if backward:
                out.backward(grad_out)
            return out

        timed = bench(call) if err <= TOL[dtype] else {"ms": None}
        row[impl] = {**timed, "rel_err": err, "ok": err <= TOL[dtype]}
        ms = timed["ms"]
        if impl == "tritonconv":  # which kernels and configs the timed calls used (memoized by then)
            row[impl]["configs"] = launched_configs(call)
            row[impl]["config_source"] = source
        if ms:
            row[impl].update(TFLOPs=flops / ms / 1e9, GBps=nbytes / ms / 1e6)
    ours = row.get("tritonconv", {}).get("ms")
    for other in ("cudnn", "torch_compile", "cudnn_full3d"):
        theirs = row.get(other, {}).get("ms") if isinstance(row.get(other), dict) else None
        if ours and theirs:
            row[f"speedup_vs_{other}"] = theirs / ours
        eager = [row.get(impl, {}).get("eager_ms") if isinstance(row.get(impl), dict) else None
                 for impl in ("tritonconv", other)]
        if all(eager):  # called one by one from Python: what code without CUDA graphs sees
            row[f"eager_speedup_vs_{other}"] = eager[1] / eager[0]
    if roof and ours:
        bound_ms = max(flops / (roof["bf16_matmul_TFLOPs"] * 1e9), nbytes / (roof["copy_GBps"] * 1e6))
        row["roofline_fraction"] = bound_ms / ours
        row["bound"] = "compute" if flops / roof["bf16_matmul_TFLOPs"] / 1e3 > nbytes / roof["copy_GBps"] else "memory"
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['name']}\n{r['dtype']} {r['layout'][:2]}" for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.35 * len(rows)), 5))
    for key, ax in zip(("speedup_vs_cudnn", "speedup_vs_torch_compile"), axes):
        vals = [r.get(key, float("nan")) for r in rows]
        ax.bar(range(len(rows)), vals)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(range(len(rows)), labels, rotation=90, fontsize=6)
        ax.set_title(key.replace("_", " ") + f" ({rows[0]['device']})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default=str(ROOT / "shapes.json"))
    p.add_argument("--dtype", nargs="+", choices=list(DTYPES), default=["bf16", "fp16"])
    p.add_argument("--layout", nargs="+", choices=["channels_last", "contiguous"], default=["channels_last", "contiguous"])
    p.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS))
    p.add_argument("--smoke", action="store_true", help="CPU: tiny shapes under the interpreter (checks, not speed)")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile(max-autotune)")
    p.add_argument("--backward", action="store_true", help="time forward + backward instead of forward")
    p.add_argument("--names", nargs="+", help="only these layers (names from the suite file)")
    p.add_argument("--budget-s", type=float, default=None, help="start no new layer after this many seconds")
    p.add_argument("--tag", default="", help="appended to the result file names (e.g. 'tuned', 'heuristic')")
    p.add_argument("--out", default=str(ROOT / "results"))
    args = p.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print("benchmarks need a CUDA GPU; use --smoke on the CPU", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() and not args.smoke else "cpu_smoke"
    stem = f"{dt.date.today().isoformat()}_{''.join(c if c.isalnum() else '_' for c in device)[:40]}"
    stem += f"_{args.tag}" if args.tag else ""
    with open(out / f"{stem}.jsonl", "a") as sink:
        rows = run(args, sink)
    if rows:
        plot(rows, out / f"{stem}.png")
    bad = [r["name"] for r in rows if not r.get("tritonconv", {}).get("ok")]
    print(f"wrote {out / stem}.jsonl and .png; {len(rows)} rows; tritonconv wrong or failing on: {bad or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
