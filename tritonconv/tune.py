"""``python -m tritonconv.tune``: tune shapes on this GPU and write the tuning cache.

    python -m tritonconv.tune benchmarks/shapes.json --dtype bf16 fp16 --layout channels_last contiguous
    python -m tritonconv.tune --op conv2d --input 8,64,56,56 --weight 64,64,3,3 --padding 1
    python -m tritonconv.tune benchmarks/shapes.json --ship      # into autotune_cache/, for committing
    python -m tritonconv.tune --show                              # what is cached for this device
    python -m tritonconv.tune benchmarks/shapes.json --dry-run    # list problems and candidates, no GPU needed
    python -m tritonconv.tune benchmarks/shapes.json --budget-s 480 --jobs 16   # stop in time; compile in 16 processes
    python -m tritonconv.tune benchmarks/kernelbench_level1_conv.json --dtype fp32 bf16   # KernelBench's problems

Problems run dtype by dtype, then layout by layout (the first ``--dtype``/``--layout`` given
is tuned first), or, with ``--behind ROWS.jsonl``, host-timed entries first and then the layers
furthest behind cuDNN in those measured rows. One already in the target cache with a time from
CUDA graph replays is skipped (``--retune`` tunes it again; host-timed entries are always tuned
again), so a run cut short by ``--budget-s`` resumes where it stopped. ``--jobs N`` first compiles
the candidates of every few problems in ``N`` worker processes (filling Triton's on-disk kernel
cache), so the timing loop, which must run one kernel at a time, does not wait on the compiler;
candidates whose kernels spill registers (ptxas's report of that compile) are not timed, but for the default
config (:func:`tritonconv.tuning.default`). With ``--jobs 0`` each problem's candidates compile on threads before
it is timed, as a first call's tuning in the library does (:func:`tritonconv._runtime.compile_ahead`).
``--top N`` times the cost model's N best candidates and the default config; ``--full K`` has the first K problems of
at most 40 candidates time every candidate, first (full searches: the readout says how often the shortlist held a
config within 5% of a full search's best).

Every layer is tuned for the forward kernel and, with ``--kinds``, for the two backward
kernels (``conv_t``: input gradient, ``conv_wgrad``: weight gradient). A ``conv2plus1d``
layer is tuned as its two convolutions (spatial 1xkxk, temporal kx1x1, R(2+1)D mid channels).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from tqdm import tqdm

from . import _runtime, cache, costmodel, dispatch, explanation, geometry, shapes, tuning

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def suite_problems(suite: dict) -> Iterator[tuple[str, dict]]:
    """(name, conv arguments) for every layer of ``suite`` (a ``benchmarks/shapes.json``-format dict, as
    :func:`tritonconv.shapes.suite_problem` reads it); (2+1)D layers as their two convs."""
    for op in shapes.SUITE_AXES:
        for entry in suite.get(op, []):
            yield entry["name"], shapes.suite_problem(op, entry)
    for entry in suite.get("conv2plus1d", []):
        t, kh, kw = entry["k"]
        st, sh, sw = entry["s"]
        pt, ph, pw = entry["p"]
        mid = shapes.r2plus1d_mid_channels(entry["C"], entry["OC"], t, kh)
        spatial = {**entry, "OC": mid, "k": [1, kh, kw], "s": [1, sh, sw], "p": [0, ph, pw]}
        out = shapes.suite_problem("conv3d", spatial)["output_shape"]
        temporal = {**entry, "C": mid, "D": out[2], "H": out[3], "W": out[4], "k": [t, 1, 1], "s": [st, 1, 1],
                    "p": [pt, 0, 0]}
        yield entry["name"] + ":spatial", shapes.suite_problem("conv3d", spatial)
        yield entry["name"] + ":temporal", shapes.suite_problem("conv3d", temporal)


__all__ = ["FULL_CANDIDATES", "ahead", "kernelbench_problems", "main", "model_problems", "precompile", "runner", "show",
           "suite_problems", "tune_all"]

TRANSPOSED_KIND = {"conv": "conv_t", "conv_t": "conv", "conv_wgrad": "conv_wgrad"}
"""A transposed convolution's passes are those of the convolution it transposes: its forward is that
convolution's transposed pass (``conv_t``), its input gradient that convolution's forward (``conv``)."""


def kernelbench_problems(data: dict) -> Iterator[tuple[str, dict, bool]]:
    """(name, conv arguments, transposed) for every layer of ``data``, a KernelBench-format dict (``problems``:
    an input shape and layers applied in order); a transposed layer is described by the convolution it
    transposes (its input is that layer's output)."""
    for problem in data["problems"]:
        shape = tuple(problem["input"])
        for i, layer in enumerate(problem["layers"]):
            name = problem["name"] if len(problem["layers"]) == 1 else f"{problem['name']}:{i}"
            w, g = tuple(layer["weight"]), layer["groups"]
            args = dict(weight_shape=w, stride=layer["stride"], padding=layer["padding"], dilation=layer["dilation"],
                        groups=g)
            if layer["op"].startswith("conv_transpose"):
                out = (shape[0], w[1] * g, *(shapes.conv_transpose_output_size(n, k, s, p, o, d) for n, k, s, p, o, d in
                                             zip(shape[2:], w[2:], layer["stride"], layer["padding"],
                                                 layer["output_padding"], layer["dilation"])))
                yield name, dict(input_shape=out, **args), True
            else:
                out = shapes.conv_output_shape(shape, w, layer["stride"], layer["padding"], layer["dilation"], g)
                yield name, dict(input_shape=shape, **args), False
            shape = out


def runner(problem: tuning.Problem, device: torch.device) -> Callable[[tuning.Config], torch.Tensor]:
    """Random operands for ``problem`` on ``device`` and a function launching its kernel with a given config
    (what the tuner times; it returns the kernel's output); an fp8 problem's (``tritonconv.fp8``, forward only)
    through its scaled plan."""
    dtype = getattr(torch, problem.dtype)

    def rand(shape, layout=problem.layout):  # drawn in fp32 and rounded (torch draws no fp8)
        return geometry.to_layout(torch.randn(shape, device=device), layout).to(dtype)

    spec = problem.spec
    if tuning.fp8(problem):  # tritonconv.fp8's forward: unit scales, a bf16 output
        xq, wq = rand(problem.input_shape), rand(problem.weight_shape, tuning.weight_layout(problem))
        ws, one = torch.ones(problem.weight_shape[0], device=device), torch.ones((), device=device)
        return lambda cfg: dispatch.scaled_forward_plan(xq, wq, None, ws, spec, None, torch.bfloat16, cfg)(
            xq, wq, None, ws, one)
    w = rand(problem.weight_shape, tuning.weight_layout(problem))  # as the benchmarks hold weights
    if problem.kind in ("conv", "conv_dw"):
        x = rand(problem.input_shape)
        return lambda cfg: dispatch.conv_forward(x, w, None, spec, None, False, cfg)
    dy = rand(problem.output_shape)
    if problem.kind in ("conv_t", "conv_dw_t"):
        fmt = geometry.output_memory_format(dy, w)  # the input gradient's layout follows the forward input's
        return lambda cfg: dispatch.conv_grad_input(dy, w, spec, False, fmt, cfg)
    x = rand(problem.input_shape)
    inner = geometry.grad_channels_inner(w)  # the gradient laid out as its weight, as autograd writes it
    return lambda cfg: dispatch.conv_grad_weight(dy, x, spec, False, cfg, inner)


def show(device_name: str | None) -> None:
    """Print the cache files (user, shipped) and their entries for ``device_name`` (all devices if None)."""
    for label, directory in (("user", cache.user_dir()), ("shipped", cache.shipped_dir())):
        files = sorted(directory.glob("*.json")) if directory.exists() else []
        if device_name is not None:
            files = [f for f in files if f.name == cache.file_name(device_name)]
        print(f"{label} cache {directory}: {len(files) or 'no'} file(s)" + (f" for {device_name}" if device_name else ""))
        for path in files:
            data = json.loads(path.read_text()) if path.stat().st_size else {}
            entries = cache.read(path, data.get("device", "")) if isinstance(data, dict) else {}
            print(f"  {path.name}: {data.get('device')} / triton {data.get('triton')}: {len(entries)} entries")
            for key, value in sorted(entries.items()):
                if "choice" in value:
                    print(f"    {key}  ->  {value['choice']} ({value.get('ms')})")
                    continue
                cfg = value["config"]
                print(f"    {key}  ->  BM={cfg['block_m']} BN={cfg['block_n']} BK={cfg['block_k']} "
                      f"warps={cfg['num_warps']} stages={cfg['num_stages']} split={cfg.get('split_k', 1)} "
                      f"fold={cfg.get('fold', 0)} tile_h={cfg.get('tile_h', 0)} tile_b={cfg.get('tile_b', 1)}"
                      f"{' planes' if cfg.get('planes') else ''}{' relayout' if cfg.get('relayout') else ''} "
                      f"({value.get('ms', float('nan')):.4f} ms)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tritonconv.tune", description=__doc__.split("\n\n")[0])
    p.add_argument("suite", nargs="?", type=Path,
                   help="a JSON file in the format of benchmarks/shapes.json, or of benchmarks/kernelbench_level1_conv.json")
    p.add_argument("--op", choices=list(shapes.SUITE_AXES), help="tune one shape given by the flags below")
    p.add_argument("--input", help="input shape, e.g. 8,64,56,56")
    p.add_argument("--weight", help="weight shape, e.g. 64,64,3,3")
    p.add_argument("--stride", default="1")
    p.add_argument("--padding", default="0", help="ints, or 'same' / 'valid'")
    p.add_argument("--dilation", default="1")
    p.add_argument("--groups", type=int, default=1)
    p.add_argument("--dtype", nargs="+", choices=list(DTYPES), default=["bf16", "fp16"])
    p.add_argument("--layout", nargs="+", choices=["channels_last", "contiguous"], default=["channels_last", "contiguous"])
    p.add_argument("--kinds", nargs="+", choices=list(tuning.DEPTHWISE_KIND), default=["conv"],
                   help="forward, input gradient, weight gradient (depthwise layers tune their own kernels)")
    p.add_argument("--ship", action="store_true", help="write into the shipped autotune_cache/ instead of the user cache")
    p.add_argument("--show", action="store_true", help="print what is cached for this device and exit")
    p.add_argument("--dry-run", action="store_true", help="list problems and candidate counts; tune nothing")
    p.add_argument("--retune", action="store_true",
                   help="tune problems again whose entry was timed from CUDA graph replays (host-timed ones always are)")
    p.add_argument("--names", nargs="+", help="only these layers of the suite file")
    p.add_argument("--names-out", type=Path,
                   help="append the names of the layers tuned (with --dry-run: that would be) to this file, one a line")
    p.add_argument("--top", type=int, default=None,
                   help="time only the N candidates the cost model (tritonconv.costmodel) predicts fastest")
    p.add_argument("--full", type=int, default=0,
                   help="with --top: the first N problems of at most FULL_CANDIDATES (40) candidates time every "
                        "candidate, first (full searches, to judge the shortlist by)")
    p.add_argument("--behind", nargs="+", type=Path, default=[],
                   help="suite rows (benchmarks.run JSON lines): tune the layers furthest behind cuDNN first")
    p.add_argument("--budget-s", type=float, default=None, help="start no new problem after this many seconds")
    p.add_argument("--jobs", type=int, default=min(16, os.cpu_count() or 1),
                   help="processes compiling the candidates of several problems before timing "
                        "(0: each problem's on threads, as a first call's tuning does)")
    args = p.parse_args(argv)
    if not args.show and (args.suite is None) == (args.op is None):
        p.error("give a suite file or --op with --input and --weight (not both)")
    if args.op and not (args.input and args.weight):
        p.error("--op needs --input and --weight")
    return args


def _ints(text: str) -> int | tuple[int, ...]:
    """'3' -> 3, '1,2' -> (1, 2); 'same'/'valid' pass through."""
    if text in ("same", "valid"):
        return text
    values = tuple(int(v) for v in text.split(","))
    return values[0] if len(values) == 1 else values


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def problems(args: argparse.Namespace) -> list[tuple[str, tuning.Problem]]:
    if args.op:
        layers = [(args.op, dict(input_shape=_shape(args.input), weight_shape=_shape(args.weight),
                                 stride=_ints(args.stride), padding=_ints(args.padding),
                                 dilation=_ints(args.dilation), groups=args.groups))]
    else:
        data = json.loads(args.suite.read_text())
        layers = kernelbench_problems(data) if "problems" in data else suite_problems(data)
    layers = [(name, prob, *transposed) for name, prob, *transposed in layers  # suite layers: not transposed
              if not getattr(args, "names", None) or name.split(":")[0] in args.names]
    out = []
    for dtype in args.dtype:
        for layout in args.layout:
            for name, prob, *transposed in layers:
                for kind in args.kinds:
                    kind = TRANSPOSED_KIND[kind] if transposed and transposed[0] else kind
                    if shapes.is_depthwise(prob["input_shape"], prob["weight_shape"], prob["groups"]):
                        kind = tuning.DEPTHWISE_KIND[kind]
                    out.append((name, tuning.Problem.of(kind, DTYPES[dtype], layout, **prob,
                                                        tf32=geometry.allows_tf32(getattr(torch, DTYPES[dtype])))))
    return out


_context_lost = False  # a worker process whose CUDA context a failed kernel broke (errors are sticky)


@contextlib.contextmanager
def _spill_counter():
    """Count the spilled registers (ptxas's report, bytes) of every compiled kernel launched inside."""
    spilled = [0]
    getitem = _runtime.Kernel.__getitem__

    def counting(self, device):
        fn = getitem(self, device)
        if fn is not self.compiled:  # the interpreter: no compiled kernel to ask
            return fn

        class At:
            def __getitem__(_, grid):
                def launch(*args, **kwargs):
                    compiled = fn[grid](*args, **kwargs)
                    spilled[0] += getattr(compiled, "n_spills", 0) or 0
                    return compiled
                return launch
        return At()

    _runtime.Kernel.__getitem__ = counting
    try:
        yield spilled
    finally:
        _runtime.Kernel.__getitem__ = getitem


def _compile_candidates(problem: tuning.Problem, configs: list[tuning.Config], device: str) -> list[bool | str | None]:
    """Worker process: launch ``problem`` once per config, so Triton compiles (and caches) each kernel.

    Per config: True (ran), ``"spills"`` (ran, but a kernel spilled registers: pruned before timing),
    False (failed: compiler limits, launch error, a fault) or None (not known: an earlier fault left
    this process's CUDA context unusable).
    """
    global _context_lost
    if _context_lost:
        return [None] * len(configs)
    run, status = runner(problem, torch.device(device)), []
    for cfg in configs:
        try:
            with _spill_counter() as spilled:
                run(cfg)
            if device == "cuda":
                torch.cuda.synchronize()  # a fault shows here, attributed to this config
            status.append("spills" if spilled[0] else True)
        except Exception:
            status.append(False)
            if device == "cuda":
                try:
                    torch.cuda.synchronize()
                except Exception:  # sticky: nothing more can run in this process
                    _context_lost = True
                    return status + [None] * (len(configs) - len(status))
    return status


def precompile(todo: list[tuple[str, tuning.Problem]], smem: int, jobs: int, device: str = "cuda",
               tma: bool = False, only: dict | None = None, sm_count: int = 132, model: tuning.Predict | None = None
               ) -> dict[tuning.Problem, set[tuning.Config]]:
    """Compile every candidate of ``todo`` ((name, problem) pairs) in ``jobs`` processes on ``device`` (a few
    configs per task, for balance): the candidates that fit ``smem`` bytes of shared memory, the
    descriptor kernel's too when ``tma``.

    ``only``: per problem, the candidates to compile (default: all of them).
    Returns the configs not to time, per problem: those that failed there (so a config that faults the
    GPU does so in a worker process, not in the one that keeps the results) and those whose kernels
    spill registers (ptxas's report of the real compile; a spilling tile is slower than one that fits),
    unless every candidate of a problem spills; the default config (for ``sm_count`` SMs, split by ``model``) is timed
    whenever it ran, the baseline a winner must beat (it may spill: on sm_80 a few of the suite's do, outside their
    main loops, ``benchmarks/results/static``).
    """
    candidates = {problem: (only or {}).get(problem) or tuning.candidates(problem, smem, tma, sm_count, model)
                  for _, problem in todo}
    tasks = [(problem, cfgs[i:i + 4]) for problem, cfgs in candidates.items() for i in range(0, len(cfgs), 4)]
    results: dict[tuning.Problem, dict[tuning.Config, bool | str | None]] = {}
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in forked children
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {pool.submit(_compile_candidates, problem, cfgs, device): (problem, cfgs) for problem, cfgs in tasks}
        bar = tqdm(concurrent.futures.as_completed(futures), total=len(futures), desc=f"compiling ({jobs} processes)",
                   unit="task")
        for future in bar:
            problem, cfgs = futures[future]
            results.setdefault(problem, {}).update(zip(cfgs, future.result()))
    counts = Counter(status for per in results.values() for status in per.values())
    print(f"compiled {counts[True] + counts['spills']} candidate kernels; {counts['spills']} spill registers (not timed, "
          f"but for the default's); "
          f"{counts[False]} failed (not timed); {counts[None]} not tried (a worker's GPU context was lost)")
    return not_to_time(results, candidates, {p: tuning.default(p, sm_count, tma, model, smem) for p in candidates})


def not_to_time(results: dict, candidates: dict, keep: dict | None = None) -> dict[tuning.Problem, set[tuning.Config]]:
    """From the compile workers' ``results`` (problem -> config -> status): the configs that failed, and those
    that spilled unless every candidate of the problem (``candidates``) did or the config is the problem's in
    ``keep`` (the default's)."""
    skip = {}
    for problem, per in results.items():
        failed = {cfg for cfg, status in per.items() if status is False}
        spilled = {cfg for cfg, status in per.items() if status == "spills"} - {(keep or {}).get(problem)}
        if len(failed | spilled) < len(candidates[problem]):
            failed |= spilled
        if failed:
            skip[problem] = failed
    return skip


PASS_OF_KIND = {"conv": "forward", "conv_dw": "forward", "conv_t": "input_grad", "conv_dw_t": "input_grad",
                "conv_wgrad": "weight_grad", "conv_dw_wgrad": "weight_grad"}
"""The suite row's ``pass`` that times each kernel kind (``benchmarks.run``)."""


def behind_first(todo: list[tuple[str, tuning.Problem]], rows: list[dict], have: dict[str, dict]
                 ) -> list[tuple[str, tuning.Problem]]:
    """``todo`` reordered: problems with a host-timed cache entry first, then by how far the layer's
    measured row (``rows``: the suite's JSON rows, ``benchmarks.run``) is behind cuDNN (``speedup_vs_cudnn``
    ascending; unmeasured layers last), the given order otherwise."""
    ratio = {(r["name"], r.get("pass", "forward"), r["layout"], r["dtype"]): r["speedup_vs_cudnn"]
             for r in rows if r.get("speedup_vs_cudnn")}

    def key(item):
        name, problem = item
        measured = ratio.get((name.split(":")[0], PASS_OF_KIND[problem.kind], problem.layout, problem.dtype), math.inf)
        return (problem.key() not in have, measured)

    return sorted(todo, key=key)


FULL_CANDIDATES = 40
"""The most candidates a full search (``tune_all``'s ``full``) takes on: a slot's tuning has 45 seconds, and an NC(D)HW
weight gradient holds up to 229 candidates on Hopper (the suite's median problem 27)."""


def tune_all(todo: list[tuple[str, tuning.Problem]], device: str, device_name: str, target: Path, bench: Callable,
             smem: int, sm_count: int, *, budget_s: float | None = None, jobs: int = 0, retune: bool = False,
             tma: bool = False, rows: list[dict] | None = None, chunk: int = 8, top: int | None = None,
             full: int = 0) -> list[str]:
    """Tune ``todo`` ((name, problem) pairs) into the cache file of ``device_name`` in the directory
    ``target``, launching on ``device`` and timing with ``bench`` (a function of a callable returning
    milliseconds, e.g. :func:`tritonconv.tuning.do_bench_median`).

    ``smem`` (shared memory per block) and ``sm_count`` prune and seed the candidates; ``tma`` adds the
    descriptor kernel's. Problems whose entry there was timed from CUDA graph replays are done and
    skipped (unless ``retune``): a run resumes where the last one stopped, host-timed entries tuned
    again. With ``rows`` (measured suite rows) the problems go in :func:`behind_first` order. Starts no
    problem after ``budget_s`` seconds; with ``jobs`` > 0 compiles the candidates of each ``chunk``
    problems in that many processes first (:func:`precompile`; spilling and failing candidates are not
    timed). With ``top``, only the ``top`` candidates :mod:`tritonconv.costmodel` predicts fastest (with the
    device's fitted constants) and the default config are compiled and timed (:func:`tritonconv.tuning.shortlist`),
    but for the first ``full`` problems of at most :data:`FULL_CANDIDATES` candidates, which go first and time every
    candidate: full searches, beside which the readout judges the shortlist (``benchmarks.costfit.pruned_report``).
    Each entry says which search it ran (``search``).
    Returns the names of the problems tuned, in order.
    """
    have = cache.read(target / cache.file_name(device_name), device_name)
    if not retune:
        todo = [(name, problem) for name, problem in todo
                if cache.timing_of(have.get(problem.key(), {})) != "cuda_graph"]
    if rows:
        todo = behind_first(todo, rows, have)
    start, done = time.monotonic(), []

    def out_of_time() -> bool:
        return budget_s is not None and time.monotonic() - start > budget_s

    model = costmodel.model(device_name, sm_count)  # the default config's split count, and the shortlist with top
    if top:  # the full searches first, the problems of few enough candidates (the order given otherwise)
        few = (item for item in todo if len(tuning.candidates(item[1], smem, tma, sm_count, model)) <= FULL_CANDIDATES)
        fully = list(itertools.islice(few, full))
        todo = fully + [item for item in todo if item not in fully]
    else:
        fully = todo
    searched_fully = {problem for _, problem in fully}
    lead = len(fully) if top and jobs > 0 else 0  # the full searches compile and run as a group of their own
    groups = [todo[first:first + chunk] for first in range(lead, len(todo), chunk)] if jobs > 0 else [todo]
    if lead:
        groups.insert(0, todo[:lead])
    for group in groups:
        if out_of_time():
            break
        every = {problem: tuning.candidates(problem, smem, tma, sm_count, model) for _, problem in group}
        only = {p: tuning.shortlist(p, cfgs, model, top, sm_count, tma, smem) for p, cfgs in every.items()
                if p not in searched_fully} if top else None
        skip = precompile(group, smem, jobs, device, tma, only, sm_count, model) if jobs > 0 else {}
        if only:  # the candidates the model ranks lower are not timed either
            skip = {p: set(skip.get(p, ())) | (set(cfgs) - set(only.get(p, cfgs))) for p, cfgs in every.items()}
        bar = tqdm(group, desc=f"tuning on {device_name}", unit="problem")
        for name, problem in bar:
            if out_of_time():
                break
            bar.set_postfix_str(f"{name} {problem.kind} {problem.dtype} {problem.layout}")
            before = Counter(tuning.stats)
            timed: list[tuple[tuning.Config, float]] = []
            cfg, ms = tuning.tune(problem, runner(problem, torch.device(device)), bench, smem, sm_count, tma,
                                  skip=skip.get(problem, set()), predict=model, timed=timed)
            entry = cache.entry(problem, cfg, ms, tuning.timing_since(before), timed,
                                "full" if problem in searched_fully else f"top {top}")
            cache.store(device_name, {problem.key(): entry}, target)
            done.append(name)
    print(f"tuned {len(done)} of {len(todo)} problems into {target / cache.file_name(device_name)}"
          + (f"; {len(todo) - len(done)} left for a next run (budget {budget_s:.0f} s)" if len(done) < len(todo) else ""))
    return done


def main(argv: list[str] | None = None) -> int:
    """The command line (``argv``: its arguments; ``sys.argv`` when None): see the module docstring and
    ``python -m tritonconv.tune --help``. Returns the exit status."""
    args = parse_args(argv)
    gpu = torch.cuda.is_available()
    device_name = torch.cuda.get_device_name() if gpu else None
    if args.show:
        show(device_name)
        return 0
    todo = problems(args)
    if args.dry_run:
        for name, problem in tqdm(todo, desc="problems", unit="problem"):
            tqdm.write(f"{name:24} {problem.key()}  {len(tuning.candidates(problem, tma=True))} candidates (Hopper)")
        record_names(args.names_out, [name for name, _ in todo])
        return 0
    if not gpu:
        print("python -m tritonconv.tune needs a CUDA GPU (the interpreter does not benchmark); "
              "use --dry-run or --show here", file=sys.stderr)
        return 2
    props = torch.cuda.get_device_properties(0)
    smem = getattr(props, "shared_memory_per_block_optin", tuning.DEFAULT_SMEM)
    target = cache.shipped_dir() if args.ship else cache.user_dir()
    rows = [json.loads(line) for path in args.behind if path.is_file() for line in path.read_text().splitlines()
            if line.startswith("{") and line.endswith("}")]
    tuned = tune_all(todo, "cuda", device_name, target, tuning.do_bench_median, smem, props.multi_processor_count,
                     budget_s=args.budget_s, jobs=args.jobs, retune=args.retune, tma=props.major >= 9, rows=rows,
                     top=args.top, full=args.full)
    record_names(args.names_out, tuned)
    return 0


def model_problems(model: Callable, *inputs, gpu: str = "NVIDIA H200", tma: bool | None = None,
                   training: bool = True, **kwargs) -> list[tuple[str, tuning.Problem]]:
    """(name, problem) for every pass a call of ``model(*inputs, **kwargs)`` runs on a GPU called ``gpu``, each
    problem once, in the order the layers first ran: :func:`tritonconv.explain_model`'s layers (the model run on fake
    tensors; with ``training``, the gradients a step takes), each named ``<layer's number>:<the layer in words>``.

    :param model: a module or any callable, as it will run (converted, or routed by ``tritonconv.enable()``).
    :param inputs: its inputs, real or ``device="meta"`` tensors.
    :param gpu: the GPU's name: its cache says which problems are tuned (:func:`tritonconv.explain`).
    :param tma: the GPU has a tensor memory accelerator; None: as its name says.
    :param training: the backward's problems too.
    """
    report = explanation.explain_model(model, *inputs, gpu=gpu, tma=tma, training=training, **kwargs)
    found: dict[str, tuple[str, tuning.Problem]] = {}
    for number, layer in enumerate(report.layers, 1):
        for run in layer.runs.values():
            found.setdefault(run.problem.key(), (f"{number}:{layer.text()}", run.problem))
    return list(found.values())


def ahead(model: Callable, *inputs, training: bool = True, jobs: int | None = None, top: int | None = None,
          ship: bool = False, budget_s: float | None = None, retune: bool = False, **kwargs) -> list[str]:
    """Tune, on this process's CUDA GPU, every problem ``model(*inputs, **kwargs)`` runs (:func:`model_problems`:
    found on fake tensors, nothing run), before its first call would tune them one by one: the candidates of every
    few problems compiled in ``jobs`` processes at once (default: the CPUs, up to 16; 0: each problem's on threads),
    then timed (:func:`tune_all`: ``top`` of them, default ``TRITONCONV_AUTOTUNE_TOP``'s, beside the default config),
    into the user's cache (``ship``: the shipped ``autotune_cache/``); problems already tuned from CUDA graph
    replays are skipped unless ``retune``; no new problem starts after ``budget_s`` seconds. Later calls in this
    process take the tuned configs. Returns the names of the problems tuned.

    :param model: a module or any callable, as it will run (converted, or routed by ``tritonconv.enable()``).
    :param inputs: its inputs (their shapes, dtypes and layouts count), real or ``device="meta"`` tensors.
    :param training: tune the backward's problems too.
    :raises RuntimeError: no CUDA GPU (:func:`tritonconv.explain_model` and :func:`model_problems` run anywhere).
    """
    if not torch.cuda.is_available():
        raise RuntimeError("tune.ahead: needs a CUDA GPU to time kernels on (tritonconv.explain_model and "
                           "tune.model_problems list what it would tune, on any machine)")
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    tma = props.major >= 9
    todo = model_problems(model, *inputs, gpu=props.name, tma=tma, training=training, **kwargs)
    smem = getattr(props, "shared_memory_per_block_optin", tuning.DEFAULT_SMEM)
    done = tune_all(todo, "cuda", props.name, cache.shipped_dir() if ship else cache.user_dir(),
                    tuning.do_bench_median, smem, props.multi_processor_count, budget_s=budget_s,
                    jobs=min(16, os.cpu_count() or 1) if jobs is None else jobs, retune=retune, tma=tma,
                    top=tuning.autotune_top() if top is None else top)
    tuning.forget()  # the configs chosen before, and the plans holding them: later calls look theirs up again
    cache.clear_memory()
    dispatch.clear_plans()
    return done


def record_names(path: Path | None, names: list[str]) -> None:
    """Append the layers' names (a (2+1)D layer's two problems under its own name) to ``path``, one a line."""
    if path is not None:
        with path.open("a") as f:
            f.writelines(f"{n}\n" for n in dict.fromkeys(name.split(":")[0] for name in names))


if __name__ == "__main__":
    raise SystemExit(main())
