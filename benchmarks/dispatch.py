"""``python -m benchmarks.dispatch``: host time a cached ``tritonconv.conv2d`` call adds over a bare launch.

On a GPU: the per-call host time of ``tritonconv.conv2d`` (argument checks, config lookup in
the memo, allocation, launch) against launching the same compiled kernel directly with
precomputed arguments, both on a tiny layer so the GPU never limits the loop. Target: at
most 20 us added per call. ``--smoke`` (CPU) times only the Python work before the launch
(checks + config choice), as launches there run the interpreter.
"""

from __future__ import annotations

import argparse
import inspect
import time

import torch
import triton

import tritonconv
from benchmarks import static
from tritonconv import _checks, tuning


def per_call_us(fn, calls: int, sync) -> float:
    for _ in range(20):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - t0) / calls * 1e6


def direct_launch(fn, grid, args, kwargs):
    """A call of the compiled kernel's own launcher with the same arguments (what ``JITFunction.run`` calls
    after binding the arguments and finding the kernel in its cache), or None where this Triton differs."""
    try:
        compiled = fn[grid](*args, **kwargs)
        names = [p.name for p in fn.params]
        bound = inspect.signature(fn.fn).bind(*args, **{k: v for k, v in kwargs.items() if k in names})
        bound.apply_defaults()
        runner, values = compiled[grid], list(bound.arguments.values())
        runner(*values)
        return lambda: runner(*values)
    except Exception as err:  # a measurement aid: say why, measure the rest
        print(f"direct launch not available with triton {triton.__version__}: {type(err).__name__}: {err}")
        return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.dispatch", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--calls", type=int, default=2000)
    args = p.parse_args(argv)
    gpu = torch.cuda.is_available() and not args.smoke
    device = torch.device("cuda" if gpu else "cpu")
    x = torch.randn(1, 16, 8, 8, device=device, dtype=torch.float16 if gpu else torch.float32)
    w = torch.randn(16, 16, 3, 3, device=device, dtype=x.dtype)
    spec = _checks.conv_spec("conv2d", 2, x, w, None, 1, 1, 1, 1)
    problem = tuning.Problem("conv", str(x.dtype)[6:], "contiguous", spec.input_shape, spec.weight_shape,
                             spec.output_shape, spec.stride, spec.padding, spec.dilation, 1)

    def host_work():
        s = _checks.conv_spec("conv2d", 2, x, w, None, 1, 1, 1, 1)
        tuning.choose(problem, device, not gpu, run=None)
        return s

    sync = torch.cuda.synchronize if gpu else (lambda: None)
    host = per_call_us(host_work, args.calls, sync)
    tritonconv.conv2d(x, w, padding=1)  # tune/cache once
    with static.recording(execute=False) as launches:  # the exact launch a call makes, to replay bare
        tritonconv.conv2d(x, w, padding=1)
    ((fn, launch_args, launch_kw, grid),) = launches
    if not gpu:
        print(f"cpu smoke: checks + config choice {host:.1f} us per call (no launch timed)")
        return 0
    bare = per_call_us(lambda: fn[grid](*launch_args, **launch_kw), args.calls, sync)
    full = per_call_us(lambda: tritonconv.conv2d(x, w, padding=1), args.calls, sync)
    print(f"{torch.cuda.get_device_name()}: tritonconv.conv2d {full:.1f} us/call, bare launch {bare:.1f} us/call, "
          f"added {full - bare:.1f} us (target <= 20); checks + config choice alone {host:.1f} us")
    direct = direct_launch(fn, grid, launch_args, launch_kw)
    if direct is not None:  # how far below JITFunction.run a launch can go (timing only; outputs not checked)
        print(f"compiled kernel's launcher called directly: {per_call_us(direct, args.calls, sync):.1f} us/call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
