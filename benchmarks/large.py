"""``python -m benchmarks.large``: convolutions with tensors past 2**31 elements, checked against cuDNN.

    python -m benchmarks.large                 # GPU: ~4.5 GB bf16 tensors per case, about a minute
    python -m benchmarks.large --smoke         # CPU: the same cases scaled down, int64 threshold lowered

The kernels switch their offsets to int64 when a tensor, or the count of output positions,
passes 2**31 - 1 elements (``tritonconv.geometry.needs_int64``). Each case here is just past that
size; the batch items at both ends (the last one lies entirely past the 32-bit boundary) are
compared with cuDNN run on those items alone, against an fp32 reference of the same slice. The
backward case checks the input gradient on the end items the same way and the weight gradient
against cuDNN's, summed over batch chunks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

import torch
import torch.nn.functional as F
import triton

import tritonconv
from tritonconv import geometry

# name, op, input shape, weight shape, conv arguments, layout, backward
CASES = [
    ("conv2d_3x3_channels_last", "conv2d", (35, 64, 1000, 1000), (64, 64, 3, 3), dict(padding=1), "channels_last", False),
    ("conv3d_3x3x3_ncdhw", "conv3d", (2, 16, 256, 512, 512), (16, 16, 3, 3, 3), dict(padding=1), "contiguous", False),
    ("conv1d_depthwise_k31", "conv1d", (8, 1024, 270_000), (1024, 1, 31), dict(padding=15, groups=1024),
     "contiguous", False),
    ("conv1d_k3_backward", "conv1d", (16, 64, 2_100_000), (64, 64, 3), dict(padding=1), "channels_last", True),
]
TOL = {torch.bfloat16: 1e-2, torch.float16: 2e-3, torch.float32: 1e-4}


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30)).item()


def smoke_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A CPU-sized version: batch 3, channels <= 8 (depthwise stays depthwise), spatial sizes <= 12."""
    return (3, min(shape[1], 8), *(min(s, 12) for s in shape[2:]))


def check(case, device: torch.device, dtype: torch.dtype, smoke: bool) -> dict:
    name, op, x_shape, w_shape, kwargs, layout, backward = case
    if smoke:
        x_shape = smoke_shape(x_shape)
        depthwise = kwargs.get("groups", 1) > 1
        w_shape = (x_shape[1], 1 if depthwise else x_shape[1], *w_shape[2:])
        kwargs = dict(kwargs, groups=x_shape[1]) if depthwise else kwargs
    x = geometry.to_layout(torch.randn(x_shape, device=device, dtype=dtype), layout)
    w = torch.randn(w_shape, device=device, dtype=dtype) / (w_shape[1] * w_shape[2]) ** 0.5
    ours, theirs = getattr(tritonconv, op), getattr(F, op)
    ends = [0, x.shape[0] - 1]
    row = {"case": name, "op": op, "input": list(x_shape), "weight": list(w_shape), "layout": layout,
           "dtype": str(dtype)[6:], "input_elements": x.numel()}
    x.requires_grad_(backward)
    w.requires_grad_(backward)
    y = ours(x, w, **kwargs)
    row["output_elements"] = y.numel()
    row["int64_offsets"] = geometry.needs_int64(x, w, y, rows=y.numel() // y.shape[1])
    with torch.no_grad():
        xs = x.detach()[ends]
        ref = theirs(xs.float(), w.float(), **kwargs)
        row["rel_err_vs_fp32"] = rel_err(y.detach()[ends], ref)
        row["cudnn_rel_err_vs_fp32"] = rel_err(theirs(xs, w, **kwargs), ref)
    if backward:
        dy = torch.randn_like(y)
        dx, dw = torch.autograd.grad(y, (x, w), dy)
        del y
        xs32 = xs.float().requires_grad_(True)
        w32 = w.detach().float().requires_grad_(True)
        ref_dx, = torch.autograd.grad(theirs(xs32, w32, **kwargs), xs32, dy[ends].float())
        row["grad_input_rel_err_vs_fp32"] = rel_err(dx[ends], ref_dx)
        ref_dw = torch.zeros_like(w32)
        for chunk in range(0, x.shape[0], 2):  # cuDNN's weight gradient, batch chunk by chunk, summed in fp32
            part = x.detach()[chunk:chunk + 2].float()
            wc = w.detach().float().requires_grad_(True)
            ref_dw += torch.autograd.grad(theirs(part, wc, **kwargs), wc, dy[chunk:chunk + 2].float())[0]
        row["grad_weight_rel_err_vs_fp32"] = rel_err(dw, ref_dw)
    errs = [v for k, v in row.items() if k.endswith("rel_err_vs_fp32") and not k.startswith("cudnn")]
    row["ok"] = bool(row["int64_offsets"]) and all(e <= TOL[dtype] for e in errs)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.large", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="CPU: small shapes with the int64 threshold lowered")
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    p.add_argument("--cases", nargs="+", choices=[c[0] for c in CASES], default=[c[0] for c in CASES])
    p.add_argument("--out", help="append the JSON lines to this file too")
    args = p.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print("this check needs a CUDA GPU with ~25 GB free; use --smoke on the CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.smoke else "cuda")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    if args.smoke:
        geometry.INT32_MAX = 200  # every smoke tensor passes it: the int64 branch runs
    meta = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu interpreter smoke",
            "torch": torch.__version__, "triton": triton.__version__,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    torch.manual_seed(0)
    failed = 0
    for case in CASES:
        if case[0] not in args.cases:
            continue
        try:
            row = {**meta, **check(case, device, dtype, args.smoke)}
        except Exception as exc:  # e.g. out of memory: a result, reported
            row = {**meta, "case": case[0], "ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        failed += not row["ok"]
        line = json.dumps(row)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
