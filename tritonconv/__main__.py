"""``python -m tritonconv``: a correctness table of the kernels against torch.nn.functional."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

import tritonconv
from tritonconv._runtime import interpreting

CASES = [
    ("conv1d", (2, 8, 37), (16, 8, 5), dict(padding=2, dilation=1)),
    ("conv1d", (2, 6, 40), (6, 1, 7), dict(padding="same", groups=6)),
    ("conv2d", (2, 3, 19, 17), (8, 3, 3, 3), dict(stride=2, padding=1)),
    ("conv2d", (1, 8, 15, 15), (8, 4, 3, 3), dict(dilation=2, groups=2)),
    ("conv3d", (1, 4, 6, 9, 9), (8, 4, 3, 3, 3), dict(padding=1)),
    ("conv3d", (1, 4, 8, 9, 9), (8, 4, 1, 3, 3), dict(stride=(1, 2, 2), padding=(0, 1, 1))),
]


def main() -> None:
    os.environ.setdefault("TRITONCONV_AUTOTUNE", "0")  # a check of the kernels: cached or default configs, no tuning
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mode = "Triton interpreter (CPU)" if interpreting(device) else f"compiled ({torch.cuda.get_device_name()})"
    print(f"tritonconv {tritonconv.__version__} on {device}: {mode}")
    print(f"{'op':7} {'input':>18} {'weight':>16} {'dtype':>9} {'rel. L2 error':>14}  ok")
    torch.manual_seed(0)
    failures = 0
    for op, x_shape, w_shape, kw in CASES:
        for dtype, tol in ((torch.float32, 1e-5), (torch.float16, 2e-3), (torch.bfloat16, 1e-2)):
            x = torch.randn(x_shape, device=device, dtype=dtype)
            w = torch.randn(w_shape, device=device, dtype=dtype)
            out = getattr(tritonconv, op)(x, w, **kw).double()
            ref = getattr(F, op)(x.double(), w.double(), **kw)
            err = ((out - ref).norm() / ref.norm()).item()
            ok = err < tol
            failures += not ok
            print(f"{op:7} {str(x_shape):>18} {str(w_shape):>16} {str(dtype)[6:]:>9} {err:14.2e}  {'yes' if ok else 'NO'}")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
