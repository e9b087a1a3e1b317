"""``python -m benchmarks.dispatch``: host time a cached ``tritonconv.conv2d`` call adds over a bare launch.

On a GPU: the per-call host time of ``tritonconv.conv2d`` (argument checks, config lookup in
the memo, allocation, launch) against launching the same compiled kernel directly with
precomputed arguments, both on a tiny layer so the GPU never limits the loop. Target: at
most 20 us added per call. Then 3x3 layers with a weight in torch's layout around
``geometry.WEIGHT_COPY_MACS``, the weight copied channels-innermost and read in place (the
threshold's check). ``--smoke`` (CPU) times only the Python work before the launch (checks +
config choice), as launches there run the interpreter.
"""

from __future__ import annotations

import argparse
import inspect
import time

import torch
import triton

import tritonconv
from benchmarks import static
from benchmarks.host import stubbed_launches
from tritonconv import _checks, dispatch, geometry, tuning


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
        with stubbed_launches():  # the comparison's code path, launches stubbed: host time only
            copy_or_in_place(args.calls, device, sync, graph=False)
        return 0
    bare = per_call_us(lambda: fn[grid](*launch_args, **launch_kw), args.calls, sync)
    full = per_call_us(lambda: tritonconv.conv2d(x, w, padding=1), args.calls, sync)
    print(f"{torch.cuda.get_device_name()}: tritonconv.conv2d {full:.1f} us/call, bare launch {bare:.1f} us/call, "
          f"added {full - bare:.1f} us (target <= 20); checks + config choice alone {host:.1f} us")
    direct = direct_launch(fn, grid, launch_args, launch_kw)
    if direct is not None:  # how far below JITFunction.run a launch can go (timing only; outputs not checked)
        print(f"compiled kernel's launcher called directly: {per_call_us(direct, args.calls, sync):.1f} us/call")
    copy_or_in_place(args.calls // 4, device, sync)
    return 0


def copy_or_in_place(calls: int, device: torch.device, sync, graph: bool = True) -> None:
    """NCHW 3x3 layers around ``geometry.WEIGHT_COPY_MACS``, with a weight in torch's layout: each timed with
    the weight copied channels-innermost first and read in place through its strides, eagerly (calls back to
    back: host and GPU) and from CUDA graph replays (``graph``: the GPU's time alone), to check where the
    copy pays. Activations are read in place either way."""
    default, dtype = geometry.WEIGHT_COPY_MACS, torch.float16 if device.type == "cuda" else torch.float32
    print(f"NCHW {str(dtype)[6:]} 3x3, 64 -> 64 channels, batch 1: weight copied vs read in place "
          f"(WEIGHT_COPY_MACS = 2**{default.bit_length() - 1})")
    for side in (8, 16, 32, 64, 128):
        x = torch.randn(1, 64, side, side, device=device, dtype=dtype)
        w = torch.randn(64, 64, 3, 3, device=device, dtype=dtype)
        row = []
        for threshold in (0, 2**62):  # copy always, never
            geometry.WEIGHT_COPY_MACS = threshold
            dispatch.clear_plans()
            call = lambda x=x, w=w: tritonconv.conv2d(x, w, padding=1)  # noqa: E731
            eager = per_call_us(call, calls, sync)
            row.append(f"{eager:7.1f} us/call eager" + (f", {1e3 * tuning.do_bench_median(call):7.1f} us graph"
                                                        if graph else ""))
        geometry.WEIGHT_COPY_MACS = default
        dispatch.clear_plans()
        macs = side * side * 64 * 64 * 9
        print(f"  {side:4d}x{side:<4d} 2**{macs.bit_length() - 1:<2d} multiply-adds: copied {row[0]}; in place {row[1]}")


if __name__ == "__main__":
    raise SystemExit(main())
