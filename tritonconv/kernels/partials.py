"""A weight gradient from its split partial sums, in one launch.

A weight-gradient launch whose reduction is split (``Config.split_k``) into more splits than meet in its own kernel
(:func:`tritonconv.geometry.splits_meet`: the last split of a tile would read too many tiles back alone) writes one
fp32 (fp64 for fp64 operands) partial gradient per split, ``(splits, C_out, C_in_g, taps)`` laid out taps first and
input channels innermost (:func:`tritonconv.geometry.alloc_partials`, so that the tiles store runs). This kernel, its
reads spread over the whole GPU in that order, adds them in split order
``0, 1, ..., S-1`` (a fixed order: bitwise the same on every run), reverses the taps for a flipped kernel, casts
to the weight's dtype and stores in the gradient's layout (contiguous, or input channels innermost as
``tritonconv.nn`` lays its weights out): what took torch a sum, a flip, a cast and a copy.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._runtime import Direct, interpreting, kernel
from ..geometry import alloc_partials, needs_int64
from ..shapes import cdiv, next_power_of_2


@kernel
@triton.jit
def _sum_partials_kernel(
    p_ptr, g_ptr, SPLITS, TOTAL, C_OUT, C_IN, TAPS, sps, sgo, sgi, sgt,
    FLIP: tl.constexpr, INT64: tl.constexpr, BLOCK: tl.constexpr,
):
    """One program: ``BLOCK`` gradient elements, flat ``(tap, co, ci)`` as the partials hold them."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    if INT64:
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < TOTAL
    p = p_ptr + offs
    acc = tl.load(p, mask=ok, other=0.0)
    for _ in range(1, SPLITS):  # split order: the sum does not depend on which split finished first
        p += sps
        acc += tl.load(p, mask=ok, other=0.0)
    ci = offs % C_IN
    co = (offs // C_IN) % C_OUT
    t = offs // (C_IN * C_OUT)
    if FLIP:  # every spatial axis reversed: the flat tap index reversed
        t = TAPS - 1 - t
    tl.store(g_ptr + co * sgo + ci * sgi + t * sgt, acc.to(g_ptr.dtype.element_ty), mask=ok)


class Sum:
    """The launch adding partials of ``partial_shape`` ``(splits, C_out, C_in_g, taps)`` (laid out as
    :func:`tritonconv.geometry.alloc_partials` lays them) into a gradient laid out as ``grad`` (``(C_out, C_in_g,
    *kernel)``; any tensor of its sizes and strides, a meta one included); calling it with the partials and the
    gradient writes the gradient and returns it."""

    def __init__(self, partial_shape: tuple[int, ...], grad: torch.Tensor, flip: bool, device: torch.device) -> None:
        splits, c_out, c_in, taps = partial_shape
        total = c_out * c_in * taps
        block = min(next_power_of_2(max(total, 1)), 16384) if interpreting(device) else 1024
        self.grid = (cdiv(total, block),)
        partial = alloc_partials(partial_shape, torch.device("meta"), torch.float32)
        self.empty = total == 0
        args = (splits, total, c_out, c_in, taps, partial.stride(0), *grad.reshape(c_out, c_in, taps).stride())
        options = dict(FLIP=flip, INT64=needs_int64(partial, grad), BLOCK=block, num_warps=4)
        self.launcher = Direct(_sum_partials_kernel, args, options)  # JITFunction.run once, then its launcher

    def __call__(self, partial: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        if not self.empty:
            self.launcher(partial.device, self.grid, partial, grad)
        return grad
