"""``python -m tritonconv.tune``: tune shapes on this GPU and write the tuning cache.

    python -m tritonconv.tune benchmarks/shapes.json --dtype bf16 fp16 --layout channels_last contiguous
    python -m tritonconv.tune --op conv2d --input 8,64,56,56 --weight 64,64,3,3 --padding 1
    python -m tritonconv.tune benchmarks/shapes.json --ship      # into autotune_cache/, for committing
    python -m tritonconv.tune --show                              # what is cached for this device
    python -m tritonconv.tune benchmarks/shapes.json --dry-run    # list problems and candidates, no GPU needed
    python -m tritonconv.tune benchmarks/shapes.json --budget-s 480 --jobs 16   # stop in time; compile in 16 processes
    python -m tritonconv.tune benchmarks/kernelbench_level1_conv.json --dtype fp32 bf16   # KernelBench's problems

Problems run dtype by dtype, then layout by layout (the first ``--dtype``/``--layout`` given
is tuned first), and one already in the target cache is skipped (``--retune`` tunes it again),
so a run cut short by ``--budget-s`` resumes where it stopped. ``--jobs N`` first compiles
every candidate in ``N`` worker processes (filling Triton's on-disk kernel cache), so the
timing loop, which must run one kernel at a time, does not wait on the compiler.

Every layer is tuned for the forward kernel and, with ``--kinds``, for the two backward
kernels (``conv_t``: input gradient, ``conv_wgrad``: weight gradient). A ``conv2plus1d``
layer is tuned as its two convolutions (spatial 1xkxk, temporal kx1x1, R(2+1)D mid channels).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from tqdm import tqdm

from . import cache, dispatch, geometry, shapes, tuning
from ._checks import ConvSpec

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


__all__ = ["kernelbench_problems", "main", "precompile", "runner", "show", "suite_problems", "tune_all"]

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
    (what the tuner times; it returns the kernel's output)."""
    dtype = getattr(torch, problem.dtype)

    def rand(shape, layout=problem.layout):
        return geometry.to_layout(torch.randn(shape, device=device, dtype=dtype), layout)

    ndim = len(problem.weight_shape) - 2
    spec = ConvSpec(ndim, problem.stride, problem.padding, problem.dilation, problem.groups, problem.input_shape,
                    problem.weight_shape, problem.output_shape, False)
    w = rand(problem.weight_shape, problem.layout if ndim > 1 else "contiguous")  # as the benchmarks hold weights
    if problem.kind in ("conv", "conv_dw"):
        x = rand(problem.input_shape)
        return lambda cfg: dispatch.conv_forward(x, w, None, spec, None, False, cfg)
    dy = rand(problem.output_shape)
    if problem.kind in ("conv_t", "conv_dw_t"):
        fmt = geometry.output_memory_format(dy, w)  # the input gradient's layout follows the forward input's
        return lambda cfg: dispatch.conv_grad_input(dy, w, spec, False, fmt, cfg)
    x = rand(problem.input_shape)
    return lambda cfg: dispatch.conv_grad_weight(dy, x, spec, False, cfg)


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
                      f"fold={cfg.get('fold', 0)} tile_h={cfg.get('tile_h', 0)} "
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
    p.add_argument("--retune", action="store_true", help="tune problems already in the target cache again")
    p.add_argument("--budget-s", type=float, default=None, help="start no new problem after this many seconds")
    p.add_argument("--jobs", type=int, default=min(16, os.cpu_count() or 1),
                   help="processes compiling the candidates before timing (0: compile while timing)")
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
    layers = [(name, prob, *transposed) for name, prob, *transposed in layers]  # suite layers: not transposed
    out = []
    for dtype in args.dtype:
        for layout in args.layout:
            for name, prob, *transposed in layers:
                for kind in args.kinds:
                    kind = TRANSPOSED_KIND[kind] if transposed and transposed[0] else kind
                    if shapes.is_depthwise(prob["input_shape"], prob["weight_shape"], prob["groups"]):
                        kind = tuning.DEPTHWISE_KIND[kind]
                    out.append((name, tuning.Problem.of(kind, DTYPES[dtype], layout, **prob)))
    return out


_context_lost = False  # a worker process whose CUDA context a failed kernel broke (errors are sticky)


def _compile_candidates(problem: tuning.Problem, configs: list[tuning.Config], device: str) -> list[bool | None]:
    """Worker process: launch ``problem`` once per config, so Triton compiles (and caches) each kernel.

    Per config: True (ran), False (failed: compiler limits, launch error, a fault) or None (not
    known: an earlier fault left this process's CUDA context unusable).
    """
    global _context_lost
    if _context_lost:
        return [None] * len(configs)
    run, status = runner(problem, torch.device(device)), []
    for cfg in configs:
        try:
            run(cfg)
            if device == "cuda":
                torch.cuda.synchronize()  # a fault shows here, attributed to this config
            status.append(True)
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
               tma: bool = False) -> dict[tuning.Problem, set[tuning.Config]]:
    """Compile every candidate of ``todo`` ((name, problem) pairs) in ``jobs`` processes on ``device`` (a few
    configs per task, for balance): the candidates that fit ``smem`` bytes of shared memory, the
    descriptor kernel's too when ``tma``.

    Returns the configs that failed there, per problem: the timing loop skips them, so a config
    that faults the GPU does so in a worker process, not in the one that keeps the results.
    """
    tasks = [(problem, cfgs[i:i + 4]) for _, problem in todo
             for cfgs in [tuning.candidates(problem, smem, tma)] for i in range(0, len(cfgs), 4)]
    failed: dict[tuning.Problem, set[tuning.Config]] = {}
    counts = {True: 0, False: 0, None: 0}
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in forked children
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {pool.submit(_compile_candidates, problem, cfgs, device): (problem, cfgs) for problem, cfgs in tasks}
        bar = tqdm(concurrent.futures.as_completed(futures), total=len(futures), desc=f"compiling ({jobs} processes)",
                   unit="task")
        for future in bar:
            problem, cfgs = futures[future]
            for cfg, ok in zip(cfgs, future.result()):
                counts[ok] += 1
                if ok is False:
                    failed.setdefault(problem, set()).add(cfg)
    print(f"compiled {counts[True]} candidate kernels; {counts[False]} failed (skipped when timing); "
          f"{counts[None]} not tried (a worker's GPU context was lost)")
    return failed


def tune_all(todo: list[tuple[str, tuning.Problem]], device: str, device_name: str, target: Path, bench: Callable,
             smem: int, sm_count: int, *, budget_s: float | None = None, jobs: int = 0, retune: bool = False,
             tma: bool = False) -> int:
    """Tune ``todo`` ((name, problem) pairs) into the cache file of ``device_name`` in the directory
    ``target``, group by (dtype, layout) group, launching on ``device`` and timing with ``bench`` (a
    function of a callable returning milliseconds, e.g. :func:`tritonconv.tuning.do_bench_median`).

    ``smem`` (shared memory per block) and ``sm_count`` prune and seed the candidates; ``tma`` adds the
    descriptor kernel's. Skips problems already there unless ``retune``; starts no problem after
    ``budget_s`` seconds; with ``jobs`` > 0 compiles each group's candidates in that many processes
    first (:func:`precompile`). Returns how many problems were tuned.
    """
    if not retune:
        have = cache.read(target / cache.file_name(device_name), device_name)
        todo = [(name, problem) for name, problem in todo if problem.key() not in have]
    start, done = time.monotonic(), 0

    def out_of_time() -> bool:
        return budget_s is not None and time.monotonic() - start > budget_s

    for (dtype, layout), group in itertools.groupby(todo, key=lambda item: (item[1].dtype, item[1].layout)):
        group = list(group)
        if out_of_time():
            break
        failed = precompile(group, smem, jobs, device, tma) if jobs > 0 else {}
        bar = tqdm(group, desc=f"tuning {dtype} {layout} on {device_name}", unit="problem")
        for name, problem in bar:
            if out_of_time():
                break
            bar.set_postfix_str(f"{name} {problem.kind}")
            cfg, ms = tuning.tune(problem, runner(problem, torch.device(device)), bench, smem, sm_count, tma,
                                  skip=failed.get(problem, set()))
            cache.store(device_name, {problem.key(): cache.entry(problem, cfg, ms)}, target)
            done += 1
    print(f"tuned {done} of {len(todo)} problems into {target / cache.file_name(device_name)}"
          + (f"; {len(todo) - done} left for a next run (budget {budget_s:.0f} s)" if done < len(todo) else ""))
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
        return 0
    if not gpu:
        print("python -m tritonconv.tune needs a CUDA GPU (the interpreter does not benchmark); "
              "use --dry-run or --show here", file=sys.stderr)
        return 2
    props = torch.cuda.get_device_properties(0)
    smem = getattr(props, "shared_memory_per_block_optin", tuning.DEFAULT_SMEM)
    target = cache.shipped_dir() if args.ship else cache.user_dir()
    tune_all(todo, "cuda", device_name, target, tuning.do_bench_median, smem, props.multi_processor_count,
             budget_s=args.budget_s, jobs=args.jobs, retune=args.retune, tma=props.major >= 9)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
