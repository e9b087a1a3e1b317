"""``python -m benchmarks.run``: tritonconv vs cuDNN (and torch.compile(max-autotune)) on the suite.

    python -m benchmarks.run --dtype bf16 --layout channels_last contiguous --passes forward input_grad weight_grad
    python -m benchmarks.run --smoke          # CPU: tiny shapes through the interpreter, keeps the harness working
    python -m benchmarks.run --dtype fp32 --tf32 --layout channels_last   # fp32 multiplied in TF32 on both sides

For every layer of ``benchmarks/shapes.json`` (the shared suite), dtype, layout and pass
(``forward``; ``input_grad`` and ``weight_grad``, the gradient kernels alone), in one process:
each implementation's output is first checked against an fp32 reference on the same operands,
then timed from replays of a CUDA graph of many calls (``ms``, median: the kernels' time, Python's
launch cost out, for every implementation alike), and call by call from Python (``eager_ms``: what
a user's loop without CUDA graphs sees, host included); operands rotate through enough copies to
exceed L2. Layers are measured one family after another in turn, every pass and layout of a
layer together, so a run cut short keeps some of each family. The run also measures the machine's
ceilings (device copy bandwidth, bf16 matmul rate) and reports each row against its roofline
bound. Rows are JSON lines (device, versions, date, op, shape, dtype, layout, pass, milliseconds,
TFLOP/s, GB/s, ratios), each written as soon as it is measured (a run stopped by ``--budget-s`` or
a time limit keeps its rows); ``python -m benchmarks.readout`` draws and tabulates them.
``--warm --shard I/N`` only compiles (tritonconv's side of every I-th of N cases, run once), so
several processes can fill Triton's kernel cache before the timing process starts. ``--smoke``
times with a wall clock on the CPU; its numbers say nothing about GPU speed and are labelled so.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import itertools
import json
import math
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
import triton

import tritonconv
from tritonconv import _checks, dispatch, fp8, geometry, shapes, tuning

ROOT = Path(__file__).resolve().parent
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp8": torch.float8_e4m3fn}
TOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 3e-2,  # rel. L2 vs fp32 reference (TF32 allowed)
       torch.float8_e4m3fn: 0.1}  # fp8: against the fp32 convolution of the unquantised operands (rounding included)
TF32_TOL = 2e-3  # fp32 with --tf32: products of 10-bit mantissas (benchmarks.kernelbench's)
OPS = ("conv1d", "conv2d", "conv3d", "conv2plus1d")
COMPARED = ("cudnn", "torch_compile", "cudnn_full3d", "tritonconv_fused")
"""The implementations a row compares tritonconv's with: ``speedup_vs_<name>``, their time over tritonconv's."""
PASSES = ("forward", "input_grad", "weight_grad")


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
            eager = triton.testing.do_bench(fn, warmup=10, rep=40, return_mode="median")
            try:
                graph = triton.testing.do_bench_cudagraph(fn, rep=30, return_mode="median")
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


def rotating(make, device: torch.device) -> list:
    """Enough operand sets (``make()``: a dict of tensors or lists of them) that cycling through them
    exceeds twice the L2 cache."""
    first = make()
    if device.type != "cuda":
        return [first]
    tensors = [t for v in first.values() for t in (v if isinstance(v, list) else [v])]
    nbytes = sum(t.numel() * t.element_size() for t in tensors)
    l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 * 2**20)
    return [first] + [make() for _ in range(max(1, min(16, math.ceil(2 * l2 / max(nbytes, 1)))) - 1)]


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


@dataclasses.dataclass(frozen=True)
class Stage:
    """One convolution of a layer (a (2+1)D layer has two: spatial, then temporal)."""

    op: str  # conv1d / conv2d / conv3d
    weight: torch.Tensor
    stride: object
    padding: object
    dilation: object = 1
    groups: int = 1

    @property
    def args(self) -> tuple:
        return self.stride, self.padding, self.dilation, self.groups

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return getattr(F, self.op)(x, self.weight if weight is None else weight, None, *self.args)

    def spec(self, x: torch.Tensor, weight: torch.Tensor | None = None):
        w = self.weight if weight is None else weight
        return _checks.conv_spec(self.op, w.dim() - 2, x, w, None, *self.args)

    def cudnn_grad(self, dy: torch.Tensor, x: torch.Tensor, which: int, weight: torch.Tensor | None = None):
        """cuDNN's (PyTorch's) input gradient (``which=0``) or weight gradient (``which=1``), alone."""
        w = self.weight if weight is None else weight
        spec = self.spec(x, w)
        mask = [which == 0, which == 1, False]
        grads = torch.ops.aten.convolution_backward(dy, x, w, None, list(spec.stride), [p for p, _ in spec.padding],
                                                    list(spec.dilation), False, [0] * spec.ndim, spec.groups, mask)
        return grads[which]


def layer_stages(op: str, entry: dict, dtype, layout: str, device) -> tuple[tuple, list[Stage], int, int]:
    """The layer's input shape, its convolutions (weights drawn here), its useful FLOPs and minimum bytes."""
    def weight(shape, fan_in):
        w = torch.randn(shape, device=device, dtype=dtype) / math.sqrt(fan_in)
        return geometry.to_layout(w, layout) if layout == "channels_last" and w.dim() > 3 else w

    if op == "conv2plus1d":
        t, kh, kw = entry["k"]
        st, sh, sw = entry["s"]
        pt, ph, pw = entry["p"]
        c_in, c_out = entry["C"], entry["OC"]
        mid = shapes.r2plus1d_mid_channels(c_in, c_out, t, (kh, kw))
        x_shape = (entry["N"], c_in, entry["D"], entry["H"], entry["W"])
        spatial = Stage("conv3d", weight((mid, c_in, 1, kh, kw), c_in * kh * kw), (1, sh, sw), (0, ph, pw))
        temporal = Stage("conv3d", weight((c_out, mid, t, 1, 1), mid * t), (st, 1, 1), (pt, 0, 0))
        y_shape = shapes.conv_output_shape(x_shape, (c_out, c_in, t, kh, kw), entry["s"], entry["p"])
        m_shape = (y_shape[0], mid, x_shape[2], *y_shape[3:])
        flops = 2 * (shapes.conv_macs(x_shape, spatial.weight.shape, m_shape)
                     + shapes.conv_macs(m_shape, temporal.weight.shape, y_shape))
        nbytes = shapes.conv2plus1d_bytes(x_shape, mid, c_out, (t, kh, kw), y_shape, str(dtype)[6:], fused=True)
        return x_shape, [spatial, temporal], flops, nbytes
    p = shapes.suite_problem(op, entry)
    stage = Stage(op, weight(p["weight_shape"], math.prod(p["weight_shape"][1:])), p["stride"], p["padding"],
                  p["dilation"], p["groups"])
    flops = shapes.conv_flops(p["input_shape"], p["weight_shape"], p["output_shape"])
    nbytes = shapes.conv_bytes(p["input_shape"], p["weight_shape"], p["output_shape"], str(dtype)[6:])
    return p["input_shape"], [stage], flops, nbytes


def _chain(stages: list[Stage], x: torch.Tensor, upcast: bool = False) -> list[torch.Tensor]:
    """Every stage's input, then the output (``upcast``: in fp32, each mid rounded to the input dtype as it is stored)."""
    acts = [x.float() if upcast else x]
    for i, stage in enumerate(stages):
        y = stage.forward(acts[-1], stage.weight.float() if upcast else None)
        acts.append(y.to(x.dtype).float() if upcast and i < len(stages) - 1 else y)
    return acts


def pass_cases(op: str, entry: dict, dtype, layout: str, device, pas: str):
    """For one layer and pass: ``make()`` (a fresh set of operands), the implementations (each a function of
    such a set), the fp32 reference, the pass's useful FLOPs and minimum bytes.

    ``forward``: tritonconv's public op (a (2+1)D layer: ``tritonconv.conv2plus1d``, fused or two launches as
    it chooses) against ``torch.nn.functional`` (cuDNN); (2+1)D also against cuDNN's full 3-D convolution, and
    tritonconv's fused launch beside (``tritonconv_fused``; ``speedup_vs_tritonconv_fused``: its time over the
    op's).
    ``input_grad`` / ``weight_grad``: the gradient kernels alone, tritonconv's (what its autograd backward
    launches) against ``aten.convolution_backward`` with one output asked for (what PyTorch's backward runs),
    through every stage of the layer, given the output gradient (and each stage's input)."""
    quantised, dtype = dtype == torch.float8_e4m3fn, torch.bfloat16 if dtype == torch.float8_e4m3fn else dtype
    x_shape, stages, flops, nbytes = layer_stages(op, entry, dtype, layout, device)

    def operands() -> dict:
        x = geometry.to_layout(torch.randn(x_shape, device=device, dtype=dtype), layout)
        if pas == "forward":
            return {"x": x}
        with torch.no_grad():
            acts = _chain(stages, x)
            grads = [geometry.to_layout(torch.randn_like(acts[-1], memory_format=torch.contiguous_format), layout)]
            for i in range(len(stages) - 1, 0, -1):  # each stage's output gradient, cuDNN's
                grads.insert(0, stages[i].cudnn_grad(grads[0], acts[i], 0))
        return {"acts": acts[:-1], "grads": grads}

    if quantised:  # fp8 (forward): quantised operands, against cuDNN in bf16 on the originals
        stage = stages[0]
        wq, ws = fp8.quantize(stage.weight, per_channel_dim=0)
        conv = getattr(fp8, op)

        def fp8_operands() -> dict:
            x = operands()["x"]
            return {"x": x, **dict(zip(("xq", "xs"), fp8.quantize(x)))}

        impls = {"tritonconv": lambda o: conv(o["xq"], wq, None, *stage.args, input_scale=o["xs"], weight_scale=ws),
                 "cudnn": lambda o: stage.forward(o["x"])}
        y_shape = shapes.conv_output_shape(x_shape, tuple(stage.weight.shape), *stage.args)
        moved = shapes.conv_bytes(x_shape, tuple(stage.weight.shape), y_shape, "float8_e4m3fn") + math.prod(y_shape)  # bf16 out
        return fp8_operands, impls, lambda o: _chain(stages, o["x"], upcast=True)[-1], flops, moved
    if pas == "forward":
        w = [s.weight for s in stages]
        if op == "conv2plus1d":
            ours = lambda o: tritonconv.conv2plus1d(o["x"], *w, stride=entry["s"], padding=entry["p"])  # noqa: E731
            w3 = (stages[1].weight.shape[0], x_shape[1], *entry["k"])
            full = Stage("conv3d", torch.randn(w3, device=device, dtype=dtype) / math.sqrt(math.prod(w3[1:])),
                         entry["s"], entry["p"])
            extra = {"cudnn_full3d": lambda o: full.forward(o["x"]),  # and the one fused launch, beside the two
                     "tritonconv_fused": lambda o: tritonconv.conv2plus1d(o["x"], *w, stride=entry["s"],
                                                                          padding=entry["p"], fused=True)}
        else:
            ours = lambda o: getattr(tritonconv, op)(o["x"], w[0], None, *stages[0].args)  # noqa: E731
            extra = {}
        impls = {"tritonconv": ours, "cudnn": lambda o: _chain(stages, o["x"])[-1], **extra}
        return operands, impls, lambda o: _chain(stages, o["x"], upcast=True)[-1], flops, nbytes

    def ours_dgrad(o):
        g = o["grads"][-1]
        for stage, x in zip(reversed(stages), reversed(o["acts"])):
            g = dispatch.conv_grad_input(g, stage.weight, stage.spec(x), False, geometry.output_memory_format(x, stage.weight))
        return g

    def cudnn_dgrad(o, upcast=False):
        g = o["grads"][-1].float() if upcast else o["grads"][-1]
        for stage, x in zip(reversed(stages), reversed(o["acts"])):
            g = stage.cudnn_grad(g, x.float() if upcast else x, 0, stage.weight.float() if upcast else None)
        return g

    def ours_wgrad(o):
        return torch.cat([dispatch.conv_grad_weight(g, x, s.spec(x), False,
                                                     channels_inner=geometry.grad_channels_inner(s.weight)).flatten()
                          for s, x, g in zip(stages, o["acts"], o["grads"])])

    def cudnn_wgrad(o, upcast=False):
        up = (lambda t: t.float()) if upcast else (lambda t: t)
        return torch.cat([s.cudnn_grad(up(g), up(x), 1, up(s.weight)).flatten()
                          for s, x, g in zip(stages, o["acts"], o["grads"])])

    if pas == "input_grad":
        return operands, {"tritonconv": ours_dgrad, "cudnn": cudnn_dgrad}, partial(cudnn_dgrad, upcast=True), flops, nbytes
    return operands, {"tritonconv": ours_wgrad, "cudnn": cudnn_wgrad}, partial(cudnn_wgrad, upcast=True), flops, nbytes


def interleaved(suite: dict, ops, names) -> list[tuple[str, dict]]:
    """The suite's layers, one family after another in turn (a run cut short by its budget loses the tail
    of every family, not a whole family)."""
    families = [[(op, e) for e in suite.get(op, []) if not names or e["name"] in names] for op in ops]
    return [pair for group in itertools.zip_longest(*families) for pair in group if pair]


def cases(args, suite: dict) -> list[tuple]:
    """(dtype name, op, entry, pass, layout) in measuring order: layer by layer, every pass and layout of
    a layer together."""
    return [(dname, op, entry, pas, layout) for dname in args.dtype for op, entry in interleaved(suite, args.ops, args.names)
            for pas in args.passes for layout in args.layout
            if dname != "fp8" or (pas == "forward" and op != "conv2plus1d" and entry.get("groups", 1) == 1)]  # fp8's


def run(args, sink=None) -> list[dict]:
    """Measure every selected case; each row is also written to ``sink`` (a file) as soon as it exists,
    so a run stopped part-way (``--budget-s``, a time limit) keeps what it measured. With ``--warm``, only
    run tritonconv's implementation of this process's share of the cases once (compiling its kernels into
    Triton's on-disk cache for the timing process); no row."""
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    suite = json.loads(Path(args.suite).read_text())
    todo = cases(args, suite)
    if args.warm:
        index, count = args.shard
        for dname, op, entry, pas, layout in todo[index::count]:
            entry = shrink(entry) if args.smoke else entry
            make, impls, *_ = pass_cases(op, entry, DTYPES[dname], layout, device, pas)
            with torch.no_grad():
                for impl in ("tritonconv", "tritonconv_fused"):
                    if impl in impls:
                        impls[impl](make())
        if device.type == "cuda":
            torch.cuda.synchronize()
        return []
    bench = timer(device, args.smoke)
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"cpu ({platform.processor() or 'x86'}) interpreter smoke")
    meta = {"device": name, "torch": torch.__version__, "triton": triton.__version__,
            "cuda": torch.version.cuda, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "smoke": args.smoke, "meet_bytes": geometry.MEET_BYTES}
    start = time.monotonic()
    roof = ceilings(device, bench)
    print(json.dumps({**meta, **roof}))
    rows, skipped = [], []
    compile_ok = not args.no_compile and device.type == "cuda"
    for dname, op, entry, pas, layout in todo:
        if args.budget_s is not None and time.monotonic() - start > args.budget_s:
            skipped.append(f"{entry['name']} {dname} {layout} {pas}")
            continue
        entry = shrink(entry) if args.smoke else entry
        rows.append(measure(op, entry, DTYPES[dname], layout, device, bench, compile_ok and pas == "forward", meta,
                            roof, pas))
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
        seen.append({"kind": problem.kind, "ndim": len(problem.stride), **vars(cfg)})  # ndim: axes as run (merged)
        return cfg

    tuning.choose = spy
    try:
        fn()
    finally:
        tuning.choose = choose
    return seen


def measure(op, entry, dtype, layout, device, bench, compile_ok, meta, roof, pas="forward") -> dict:
    """One row: one layer, dtype, layout and pass (``forward``, ``input_grad``, ``weight_grad``); each
    implementation checked against the fp32 reference on the same operands, then timed."""
    torch.manual_seed(0)
    make, impls, ref_fn, flops, nbytes = pass_cases(op, entry, dtype, layout, device, pas)
    sets = rotating(make, device)
    if compile_ok:
        # max-autotune's kernel choice; the CUDA graphs it would add are the timer's, as for every implementation
        impls["torch_compile"] = torch.compile(impls["cudnn"], mode="max-autotune-no-cudagraphs", dynamic=False)
    row = {**meta, "op": op, "name": entry["name"], "shape": entry, "dtype": str(dtype)[6:], "layout": layout,
           "pass": pas, "gflop": flops / 1e9, "mbytes": nbytes / 1e6}
    tol = TOL[dtype]
    if geometry.allows_tf32(dtype):  # --tf32: tritonconv's products TF32 too, as cuDNN's (torch's default for them)
        row["precision"], tol = "tf32", TF32_TOL
    with torch.no_grad():
        ref = ref_fn(sets[0])
    for impl, fn in impls.items():
        before = dict(tuning.stats)
        try:
            with torch.no_grad():
                err = rel_err(fn(sets[0]), ref) if impl != "cudnn_full3d" else 0.0
            # where the first call's configs came from: shipped/user cache (exact, bucket), tuned now, heuristic
            source = {k: v - before.get(k, 0) for k, v in tuning.stats.items() if v != before.get(k, 0)}
        except Exception as exc:  # a failing implementation is a result, not a crash of the run
            row[impl] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue

        def call(fn=fn, state={"i": 0}):  # noqa: B006  (per-implementation rotation counter)
            state["i"] = (state["i"] + 1) % len(sets)
            with torch.no_grad():
                return fn(sets[state["i"]])

        timed = bench(call) if err <= tol else {"ms": None}
        row[impl] = {**timed, "rel_err": err, "ok": err <= tol}
        ms = timed["ms"]
        if impl == "tritonconv":  # which kernels and configs the timed calls used (memoized by then)
            row[impl]["configs"] = launched_configs(call)
            row[impl]["config_source"] = source
        if ms:
            row[impl].update(TFLOPs=flops / ms / 1e9, GBps=nbytes / ms / 1e6)
    ours = row.get("tritonconv", {}).get("ms")
    for other in COMPARED:
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


def shard(text: str) -> tuple[int, int]:
    index, count = map(int, text.split("/"))
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text}")
    return index, count


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default=str(ROOT / "shapes.json"))
    p.add_argument("--dtype", nargs="+", choices=list(DTYPES), default=["bf16", "fp16"])
    p.add_argument("--layout", nargs="+", choices=["channels_last", "contiguous"], default=["channels_last", "contiguous"])
    p.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS))
    p.add_argument("--passes", nargs="+", choices=PASSES, default=["forward"],
                   help="forward, input gradient, weight gradient (each timed alone)")
    p.add_argument("--smoke", action="store_true", help="CPU: tiny shapes under the interpreter (checks, not speed)")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile(max-autotune)")
    p.add_argument("--tf32", action="store_true", help="fp32 products in TF32 (torch's matmul precision \"high\"), as "
                   "cuDNN's fp32 convolutions multiply unless torch.backends.cudnn.allow_tf32 is off")
    p.add_argument("--names", nargs="+", help="only these layers (names from the suite file)")
    p.add_argument("--budget-s", type=float, default=None, help="start no new case after this many seconds")
    p.add_argument("--warm", action="store_true", help="only compile: run tritonconv's side of each case once, no row")
    p.add_argument("--shard", type=shard, default=(0, 1), help="with --warm: I/N, this process's share of the cases")
    p.add_argument("--meet-bytes", type=int, default=None,
                   help="geometry.MEET_BYTES for this run (each row records it): 0 adds every weight gradient's split "
                        "partials by a second launch, to time the in-kernel meeting against it")
    p.add_argument("--tag", default="", help="appended to the result file names (e.g. 'tuned', 'heuristic')")
    p.add_argument("--out", default=str(ROOT / "results"))
    p.add_argument("--file", help="the rows' file name in --out (default: <date>_<device>[_<tag>].jsonl)")
    args = p.parse_args(argv)
    if args.tf32:
        torch.set_float32_matmul_precision("high")
    meet_bytes = geometry.MEET_BYTES
    geometry.MEET_BYTES = meet_bytes if args.meet_bytes is None else args.meet_bytes
    try:
        return _main(args)
    finally:
        geometry.MEET_BYTES = meet_bytes


def _main(args: argparse.Namespace) -> int:
    if not args.smoke and not torch.cuda.is_available():
        print("benchmarks need a CUDA GPU; use --smoke on the CPU", file=sys.stderr)
        return 2
    if args.warm:
        run(args)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() and not args.smoke else "cpu_smoke"
    stem = f"{dt.date.today().isoformat()}_{''.join(c if c.isalnum() else '_' for c in device)[:40]}"
    stem += f"_{args.tag}" if args.tag else ""
    path = out / (args.file or f"{stem}.jsonl")
    with open(path, "a") as sink:
        rows = run(args, sink)
    bad = [f"{r['name']} {r['pass']} {r['layout']}" for r in rows if not r.get("tritonconv", {}).get("ok")]
    print(f"wrote {path}; {len(rows)} rows; tritonconv wrong or failing on: {bad or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
