"""``python -m benchmarks.host``: tritonconv's own Python per call, with every kernel launch stubbed.

Each launch site goes the way a warm call on a GPU goes, below ``JITFunction.run`` (``_runtime.Direct``), to a
compiled kernel whose launcher does nothing: what is timed is the host work of a cached call (the plan's
lookup, output allocation, operand layout, the launch's argument list) without the driver's launch. CPU tensors,
no gradient unless the row says backward; the median of ``--repeat`` runs of ``--calls`` calls. Target: at most
10 us per call. A figure of the machine it ran on (a shared CPU), not a GPU timing; the GPU figure (added time
over a bare launch) is ``benchmarks.dispatch``'s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

import tritonconv
from tritonconv import _checks, _runtime, dispatch, geometry, tuning


class _NoLaunch:
    """A compiled kernel as ``JITFunction.run`` returns it, whose launcher launches nothing."""

    function, packed_metadata = None, None

    def launch_metadata(self, grid, stream, *args):
        return None

    def run(self, *args):
        return None


@contextlib.contextmanager
def stubbed_launches():
    """Every launch does nothing (outputs keep their uninitialised values): the first at a launch site returns a
    :class:`_NoLaunch`, later ones call its launcher from ``_runtime.Direct``'s direct path."""
    getitem, interpreting, stream = _runtime.Kernel.__getitem__, _runtime.interpreting, _runtime.current_stream
    compiled = _NoLaunch()
    noop = type("Stub", (), {"__getitem__": lambda self, grid: lambda *args, **kwargs: compiled})()
    _runtime.Kernel.__getitem__ = lambda self, device: noop
    _runtime.interpreting = lambda device: False  # Direct's view only: the kernels' modules keep their own
    _runtime.current_stream = lambda device: 0
    try:
        yield
    finally:
        _runtime.Kernel.__getitem__, _runtime.interpreting, _runtime.current_stream = getitem, interpreting, stream


def per_call_us(fn, calls: int, repeat: int) -> float:
    for _ in range(50):
        fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(runs)


def training_step(module: torch.nn.Module, x: torch.Tensor) -> None:
    """One forward and backward of ``module`` (three launches: forward, input and weight gradient; autograd's
    own work included, which cuDNN's calls pay too)."""
    with torch.enable_grad():
        module(x).sum().backward()


ROUTED = ("routed F.conv2d (tritonconv.enabled())", "routed torch.nn.Conv2d forward + backward")  # timed routing on


def cases() -> dict[str, callable]:
    """name -> a call to time (small problems: the host work, not the data, is what costs)."""
    torch.manual_seed(0)
    x1, w1 = torch.randn(1, 16, 64), torch.randn(16, 16, 3)
    x2, w2, b2 = torch.randn(1, 16, 8, 8), torch.randn(16, 16, 3, 3), torch.randn(16)
    x2cl, w2cl = x2.contiguous(memory_format=torch.channels_last), w2.contiguous(memory_format=torch.channels_last)
    x3, w3 = torch.randn(1, 16, 4, 8, 8), torch.randn(16, 16, 3, 3, 3)
    x1cl, w1cl = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in (x1, w1))  # channels innermost
    x3cl, w3cl = (t.contiguous(memory_format=torch.channels_last_3d) for t in (x3, w3))
    xdw, wdw = torch.randn(1, 16, 8, 8), torch.randn(16, 1, 3, 3)
    w11 = torch.randn(16, 16, 1, 1)
    wt = torch.randn(16, 16, 3, 1, 1).contiguous(memory_format=torch.channels_last_3d)
    module = tritonconv.nn.Conv2d(16, 16, 3, padding=1)
    torch_module = torch.nn.Conv2d(16, 16, 3, padding=1)
    xs, ws = torch.randn(1, 3, 16, 16), torch.randn(16, 3, 7, 7)  # a stem: positions packed into channels
    xg = x2.clone().requires_grad_()
    xb, wb = x2cl.to(torch.bfloat16), w2cl.to(torch.bfloat16)  # the descriptor kernel, as Hopper runs it
    spec_b = _checks.conv_spec("conv2d", 2, xb, wb, None, 1, 1, 1, 1)
    tma = tuning.heuristic(geometry.Problem.for_launch("conv", xb, spec_b), interpret=False, tma=True)
    spec = _checks.conv_spec("conv2d", 2, x2, w2, None, 1, 1, 1, 1)
    dy = torch.randn(spec.output_shape)
    fmt = geometry.memory_format_of(x2)
    dycl = dy.contiguous(memory_format=torch.channels_last)
    w2t = w2.transpose(0, 1).contiguous(memory_format=torch.channels_last).transpose(0, 1)  # output channels inner
    return {
        "conv1d": lambda: tritonconv.conv1d(x1, w1, padding=1),
        "conv2d": lambda: tritonconv.conv2d(x2, w2, b2, padding=1),
        "conv2d channels-last": lambda: tritonconv.conv2d(x2cl, w2cl, b2, padding=1),
        "conv2d depthwise": lambda: tritonconv.conv2d(xdw, wdw, padding=1, groups=16),
        "conv1d channels-last (NLC memory)": lambda: tritonconv.conv1d(x1cl, w1cl, padding=1),
        "conv3d": lambda: tritonconv.conv3d(x3, w3, padding=1),
        "conv3d channels-last": lambda: tritonconv.conv3d(x3cl, w3cl, padding=1),
        "conv2d 1x1 (axes merged)": lambda: tritonconv.conv2d(x2, w11),
        "conv3d (3,1,1) cl (axes merged)": lambda: tritonconv.conv3d(x3cl, wt, padding=(1, 0, 0)),
        "nn.Conv2d": lambda: module(x2),
        "conv2d stem 7x7/2, 3 channels (packed)": lambda: tritonconv.conv2d(xs, ws, stride=2, padding=3),
        "conv2d bf16 channels-last, descriptor kernel": lambda: dispatch.conv_forward(xb, wb, None, spec_b, None,
                                                                                        False, tma),
        "conv_transpose2d, stride 2": lambda: tritonconv.conv_transpose2d(x2, w2, stride=2, padding=1, output_padding=1),
        "nn.Conv2d forward + backward": lambda: training_step(module, xg),
        ROUTED[0]: lambda: F.conv2d(x2, w2, b2, padding=1),
        ROUTED[1]: lambda: training_step(torch_module, xg),
        "input gradient (conv2d)": lambda: dispatch.conv_grad_input(dy, w2, spec, False, fmt),
        "weight gradient (conv2d)": lambda: dispatch.conv_grad_weight(dy, x2, spec, False),
        "input gradient, channels-last": lambda: dispatch.conv_grad_input(dycl, w2t, spec, False, torch.channels_last),
        "weight gradient, channels-last": lambda: dispatch.conv_grad_weight(dycl, x2cl, spec, False),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.host", description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", action="store_true", help="one JSON line per case instead of the table")
    args = p.parse_args(argv)
    with stubbed_launches(), torch.no_grad():
        for name, fn in cases().items():
            with tritonconv.enabled(name in ROUTED):
                us = per_call_us(fn, args.calls, args.repeat)
            if args.json:
                print(json.dumps({"case": name, "us_per_call": round(us, 2), "torch": torch.__version__}))
            else:
                print(f"{name:34} {us:7.1f} us per call (launch stubbed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
