"""``python -m tritonconv``: a correctness table of the kernels against torch.nn.functional.

On a GPU each case runs twice: the first call launches through ``JITFunction.run``, the second below it
(:class:`tritonconv._runtime.Direct`), and the two outputs must be equal bit for bit (the ``direct`` column;
``TRITONCONV_DIRECT=0`` turns that path off). Channels-last cases take the descriptor kernels on Hopper."""

from __future__ import annotations

import argparse
import os
import sys

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
    ("conv2d", (2, 16, 13, 11), (32, 16, 3, 3), dict(padding=1, channels_last=True)),
    ("conv3d", (1, 16, 5, 7, 9), (16, 16, 3, 3, 3), dict(padding=1, channels_last=True)),
]


def main(argv: list[str] = ()) -> None:
    argparse.ArgumentParser(prog="python -m tritonconv", description=__doc__.split("\n\n")[0].split(": ", 1)[1]
                            + " Exits 1 if any case fails.").parse_args(list(argv))
    os.environ.setdefault("TRITONCONV_AUTOTUNE", "0")  # a check of the kernels: cached or default configs, no tuning
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    compiled = not interpreting(device)
    mode = f"compiled ({torch.cuda.get_device_name()})" if compiled else "Triton interpreter (CPU)"
    print(f"tritonconv {tritonconv.__version__} on {device}: {mode}")
    print(f"{'op':10} {'input':>15} {'weight':>16} {'dtype':>9} {'rel. L2 error':>14}  ok" + ("  direct" if compiled else ""))
    torch.manual_seed(0)
    failures = 0
    for op, x_shape, w_shape, kw in CASES:
        kw = dict(kw)
        last = kw.pop("channels_last", False)
        layout = {4: torch.channels_last, 5: torch.channels_last_3d}[len(x_shape)] if last else torch.contiguous_format
        for dtype, tol in ((torch.float32, 1e-5), (torch.float16, 2e-3), (torch.bfloat16, 1e-2)):
            x = torch.randn(x_shape, device=device, dtype=dtype).to(memory_format=layout)
            w = torch.randn(w_shape, device=device, dtype=dtype)
            out = getattr(tritonconv, op)(x, w, **kw)
            ref = getattr(F, op)(x.double(), w.double(), **kw)
            err = ((out.double() - ref).norm() / ref.norm()).item()
            ok = err < tol
            name = op + ("/cl" if last else "")
            line = f"{name:10} {str(x_shape):>15} {str(w_shape):>16} {str(dtype)[6:]:>9} {err:14.2e}  {'yes' if ok else 'NO'}"
            if compiled:  # the same call again: its launches go below JITFunction.run
                same = torch.equal(getattr(tritonconv, op)(x, w, **kw), out)
                ok &= same
                line += f"  {'same' if same else 'DIFFERS'}"
            failures += not ok
            print(line)
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
