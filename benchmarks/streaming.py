"""``python -m benchmarks.streaming``: a volume streamed under a memory budget vs one-shot conv3d.

Reports throughput (slices/s) of both and ``torch.cuda.max_memory_allocated`` of both; the
streamed output is checked against the one-shot output first. ``--smoke`` runs a tiny volume
on the CPU, where the peaks are measured with ``tritonconv.memory.TensorBytes``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import tritonconv
from tritonconv import memory, streaming


def cpu_peak(fn) -> int:
    """Peak bytes of torch tensors made while ``fn`` runs (on the CPU, where torch keeps no allocator statistics)."""
    with memory.TensorBytes() as held:
        fn()
    return held.peak


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.streaming", description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="1,1,256,512,512", help="N,C,D,H,W of the volume (kept on the CPU, pinned)")
    p.add_argument("--out-channels", type=int, default=32)
    p.add_argument("--budget-gib", type=float, default=2.0, help="device bytes the stream may plan for")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    gpu = torch.cuda.is_available() and not args.smoke
    device = torch.device("cuda" if gpu else "cpu")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    shape = (1, 1, 9, 12, 12) if args.smoke else tuple(int(v) for v in args.shape.split(","))
    budget = 30_000 if args.smoke else int(args.budget_gib * 2**30)
    volume = torch.randn(shape, dtype=dtype)
    volume = volume.pin_memory() if gpu else volume
    w = torch.randn(args.out_channels, shape[1], 3, 3, 3, dtype=dtype, device=device) / 5

    def sync():
        if gpu:
            torch.cuda.synchronize()

    def run_stream():
        gen = (volume[:, :, i] for i in range(shape[2]))
        return list(streaming.conv3d_stream(gen, w, padding=1, budget=budget))

    run_stream()  # warm-up (compile, tune)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    sync()
    t0 = time.perf_counter()
    stream = streaming.conv3d_stream((volume[:, :, i] for i in range(shape[2])), w, padding=1, budget=budget)
    outs = [o.cpu() for o in stream]
    sync()
    t_stream = time.perf_counter() - t0
    peak_stream = torch.cuda.max_memory_allocated() if gpu else cpu_peak(
        lambda: [None for _ in streaming.conv3d_stream((volume[:, :, i] for i in range(shape[2])), w, padding=1,
                                                        budget=budget)])

    whole = volume.to(device)
    tritonconv.conv3d(whole, w, padding=1)  # warm-up
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    sync()
    t0 = time.perf_counter()
    ref = tritonconv.conv3d(volume.to(device), w, padding=1).cpu()
    sync()
    t_one = time.perf_counter() - t0
    peak_one = torch.cuda.max_memory_allocated() if gpu else cpu_peak(
        lambda: tritonconv.conv3d(volume.clone(), w, padding=1))
    err = ((torch.cat(outs, 2).double() - ref.double()).norm() / ref.double().norm()).item()
    print(json.dumps({
        "device": torch.cuda.get_device_name() if gpu else "cpu interpreter smoke", "shape": shape,
        "dtype": str(dtype)[6:], "budget_bytes": budget, "chunk": stream.plan.chunk, "rel_err": err,
        "stream_s": t_stream, "one_shot_s": t_one, "throughput_ratio": t_one / t_stream,
        "peak_bytes_stream": peak_stream, "peak_bytes_one_shot": peak_one,
        "peak_measured_by": "torch.cuda.max_memory_allocated" if gpu else "tritonconv.memory.TensorBytes",
    }))
    return 0 if err < 1e-2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
