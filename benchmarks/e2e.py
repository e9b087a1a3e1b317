"""``python -m benchmarks.e2e``: whole training steps of real networks, torch (cuDNN) vs ``tritonconv.enabled()``;
then their inference, torch vs ``tritonconv.fuse``.

    python -m benchmarks.e2e --out e2e.jsonl                 # GPU: torchvision's ResNet-50 and R3D-18, bf16
    python -m benchmarks.e2e --smoke                         # CPU: two small CNNs through the interpreter

Per network: the same weights and batch, one training step (forward, cross-entropy, backward, SGD
step) under torch's own convolutions and under ``tritonconv.enabled()`` (every convolution of
the program routed, nothing converted). The first step's losses and the weight gradients of the
first convolution are compared (they must agree to the dtype's tolerance), the routing report
says how many convolutions ran where, then each side's step is timed as a training loop sees it
(calls from Python, CUDA events around each step, the median of ``--steps``). ResNet-50: batch
32, 224 x 224, channels-last; R3D-18: batch 8, 16 x 112 x 112 clips, channels-last-3d; bf16
weights and inputs. Then each network's inference (eval mode, no gradients; :func:`measure_inference`):
torch's model, the same routed, and ``tritonconv.fuse(model)``; the outputs compared, each timed as the steps are.
``--warm`` runs one routed step and one fused forward only (compiling the kernels). Rows are JSON
lines, each written when measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import triton

import tritonconv


def networks(smoke: bool) -> dict:
    """name -> (model maker, input shape, memory format)."""
    if smoke:
        def small2d():
            return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.BatchNorm2d(8),
                                       torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1, groups=8),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10))

        def small3d():
            return torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 4, (3, 1, 1)),
                                       torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10))

        return {"small2d": (small2d, (2, 3, 12, 12), torch.channels_last),
                "small3d": (small3d, (1, 3, 5, 8, 8), torch.channels_last_3d)}
    import torchvision

    return {"resnet50": (lambda: torchvision.models.resnet50(weights=None), (32, 3, 224, 224), torch.channels_last),
            "r3d_18": (lambda: torchvision.models.video.r3d_18(weights=None), (8, 3, 16, 112, 112),
                       torch.channels_last_3d)}


def step_fn(model, x, labels, lr: float = 1e-3):
    """One SGD training step; returns (loss, first conv's weight gradient)."""
    first = next(m for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd))

    def step():
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x).float(), labels)
        loss.backward()
        grad = first.weight.grad.detach().clone()
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p.add_(p.grad, alpha=-lr)
        return loss.detach(), grad

    return step


def timed(step, steps: int, device: torch.device) -> float:
    """Median milliseconds of ``steps`` steps (CUDA events; wall clock on the CPU)."""
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def measure(name: str, make, shape, fmt, device, dtype, steps: int, meta: dict, warm: bool) -> dict | None:
    torch.manual_seed(0)
    model = make().to(device=device, dtype=dtype, memory_format=fmt)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(shape, device=device, dtype=dtype).contiguous(memory_format=fmt)
    labels = torch.randint(0, 10, (shape[0],), device=device)
    step = step_fn(model, x, labels)
    if warm:
        with tritonconv.enabled():
            step()
        return None
    loss_torch, grad_torch = step()
    model.load_state_dict(state)
    with tritonconv.enabled() as counts:
        loss_ours, grad_ours = step()
    model.load_state_dict(state)
    row = {**meta, "model": name, "input": list(shape), "dtype": str(dtype)[6:],
           "loss_rel_diff": _rel(loss_ours, loss_torch), "first_conv_grad_rel_err": _rel(grad_ours, grad_torch),
           "routed": dict(counts.routed), "left": dict(counts.left)}
    row["torch_ms"] = timed(step, steps, device)
    with tritonconv.enabled():
        row["tritonconv_ms"] = timed(step, steps, device)
    row["speedup"] = row["torch_ms"] / row["tritonconv_ms"]
    return row


def measure_inference(name: str, make, shape, fmt, device, dtype, steps: int, meta: dict, warm: bool) -> dict | None:
    """Inference (eval mode, no gradients) three ways: torch's model (cuDNN; batch norms and activations their own
    launches), the same under ``tritonconv.enabled()`` (tritonconv's convolutions, the rest as torch's), and
    ``tritonconv.fuse(model)`` (each ``Conv -> BatchNorm -> activation`` one launch). The batch norms' running
    statistics are drawn away from their initial (0, 1), so that the fold has something to carry."""
    torch.manual_seed(0)
    model = make().to(device=device, dtype=dtype, memory_format=fmt).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(shape, device=device, dtype=dtype).contiguous(memory_format=fmt)
    fused, found = tritonconv.fuse(model, report=True)
    with torch.no_grad():
        if warm:
            fused(x)
            return None
        want, got = model(x), fused(x)
        row = {**meta, "suite": "e2e-inference", "model": name, "input": list(shape), "dtype": str(dtype)[6:],
               "out_rel_err": _rel(got, want), "folded": sum(found.folded.values()),
               "fused": sum(found.fused.values()), "kept": dict(found.kept)}
        row["torch_ms"] = timed(lambda: model(x), steps, device)
        with tritonconv.enabled():
            row["routed_ms"] = timed(lambda: model(x), steps, device)
        row["tritonconv_ms"] = timed(lambda: fused(x), steps, device)
    row["speedup"] = row["torch_ms"] / row["tritonconv_ms"]
    row["fusion_gain"] = row["routed_ms"] / row["tritonconv_ms"]
    return row


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30)).item()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.e2e", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="CPU: two small CNNs through the interpreter")
    p.add_argument("--models", nargs="+", help="only these networks")
    p.add_argument("--steps", type=int, default=10, help="timed steps per side (median)")
    p.add_argument("--warm", action="store_true", help="one routed step per network (compiles its kernels); no row")
    p.add_argument("--out", type=Path, help="append the rows here (default: print them)")
    args = p.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print("python -m benchmarks.e2e needs a CUDA GPU; use --smoke on the CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.smoke else "cuda")
    dtype = torch.float32 if args.smoke else torch.bfloat16
    meta = {"suite": "e2e-training-step", "device": torch.cuda.get_device_name() if device.type == "cuda" else
            "cpu interpreter smoke", "torch": torch.__version__, "triton": triton.__version__, "cuda": torch.version.cuda,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "smoke": args.smoke}
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    bad = []
    chosen = {name: net for name, net in networks(args.smoke).items() if not args.models or name in args.models}
    # every training step first, then inference (a deadline that ends the run keeps the training rows)
    for how, name in [(measure, name) for name in chosen] + [(measure_inference, name) for name in chosen]:
        row = how(name, *chosen[name], device, dtype, 2 if args.smoke else args.steps, meta, args.warm)
        if row is None:
            continue
        if how is measure_inference:
            if not row["out_rel_err"] <= tol or not row["folded"] + row["fused"]:
                bad.append(f"{name} (inference)")
        elif not (row["loss_rel_diff"] <= tol and row["first_conv_grad_rel_err"] <= tol * 10) or row["left"]:
            bad.append(name)
        line = json.dumps(row)
        print(line, flush=True)
        if args.out:
            with args.out.open("a") as f:
                f.write(line + "\n")
    if bad:
        print(f"e2e: tritonconv disagrees with torch, or left convolutions on torch, on {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
