"""Gradient of the convolution with respect to its weight, as a GEMM per kernel tap.

For group ``g`` and tap ``t = (kd, kh, kw)``::

    dW[co, ci, t] = sum_p dY[p, co] * X[p, ci, t]
    p = (batch, od, oh, ow)                   the reduction: every output position
    X[p, ci, t] = x[b, g*C_in_g + ci, od*sd - pd + kd*dd, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]

Rows are output channels (``BLOCK_M``), columns input channels (``BLOCK_N``) and the
reduction runs over output positions in tiles of ``BLOCK_K`` (rows of ``BLOCK_W`` for NC(D)HW
operands, read in place: :mod:`tritonconv._tile`). The reduction can be split
(``Config.split_k``) into independent partial sums, added afterwards in a fixed order, so
that layers with few channels but many positions still fill the GPU; results stay
deterministic (no atomics).

Few input channels per group (stems: 3) would fill a 16-wide column tile with zeros per tap (5.3x the
useful multiply-adds), so a config's ``fold`` folds trailing tap axes into the columns: 1, the width
taps (one program per (depth, height) tap, columns ``j = kw * C_in_g + ci``: with channels innermost a
run of x's memory); 2, the height and width taps (columns ``j = (kh * KW + kw) * C_in_g + ci``: 147 for
a 7x7 stem on 3 channels, 160 wide, 1.09x). Each column's taps are masked per position; the column
offsets are computed once per program, outside the loop.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .. import geometry
from .._checks import ConvSpec
from .._runtime import Direct, interpreting, kernel
from .._tile import tap, tile_positions
from ..geometry import Config, as_3d, dot_precision, geometry_3d, needs_int64, strides_3d


@kernel
@triton.jit
def _conv_weight_grad_kernel(
    x_ptr, dy_ptr, dw_ptr,
    P, C_in_g, C_out_g, D, H, W, OD, OH, OW,
    sd, sh, sw, pd, ph, pw, dd, dh, dw,
    sxn, sxc, sxd, sxh, sxw,
    syn, syc, syd, syh, syw,
    sws, swo, swi, STEPS_PER_SPLIT,
    KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, FOLD: tl.constexpr,
    INT64: tl.constexpr, UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr, ACC: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr,
):
    """One program: a ``BLOCK_M x BLOCK_N`` tile of (output, input) channels of one tap, one split; with
    ``FOLD`` 1 (2), of (output channel, (width tap, input channel)) columns of one (depth, height) tap
    (((height, width) tap, input channel) columns of one depth tap)."""
    pid = tl.program_id(0)
    split = tl.program_id(1)
    TAPS: tl.constexpr = KD if FOLD == 2 else KD * KH if FOLD == 1 else KD * KH * KW  # taps of the grid
    cols = (KH * KW if FOLD == 2 else KW if FOLD == 1 else 1) * C_in_g
    tiles_n = (cols + BLOCK_N - 1) // BLOCK_N
    tiles_m = (C_out_g + BLOCK_M - 1) // BLOCK_M
    pid_n = pid % tiles_n
    pid_m = (pid // tiles_n) % tiles_m
    t = (pid // (tiles_n * tiles_m)) % TAPS  # this program's tap (of the axes not folded)
    group = pid // (tiles_n * tiles_m * TAPS)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # output channels
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # input channels (FOLD: folded taps x input channels)
    if INT64:
        offs_m = offs_m.to(tl.int64)
        offs_n = offs_n.to(tl.int64)
        group = group.to(tl.int64)
    if FOLD == 2:  # column j = (kh * KW + kw) * C_in_g + ci
        ci = offs_n % C_in_g
        kw = (offs_n // C_in_g) % KW
        kh = offs_n // (C_in_g * KW)
        kd = t
        x_cols = x_ptr + (group * C_in_g + ci) * sxc + kh * dh * sxh + kw * dw * sxw  # [BLOCK_N]
        w_cols = ci * swi + (t * KH + kh) * KW + kw
    elif FOLD == 1:  # column j = kw * C_in_g + ci: with channels innermost, a run of x's memory
        kw = offs_n // C_in_g
        ci = offs_n % C_in_g
        kh = t % KH
        kd = t // KH
        x_cols = x_ptr + (group * C_in_g + ci) * sxc + kw * dw * sxw  # [BLOCK_N]
        w_cols = ci * swi + t * KW + kw
    else:
        kw = t % KW
        kh = (t // KW) % KH
        kd = t // (KW * KH)
        x_cols = x_ptr + (group * C_in_g + offs_n) * sxc  # [BLOCK_N]
        w_cols = offs_n * swi + t
    mask_m = offs_m < C_out_g
    mask_n = offs_n < cols
    dy_rows = dy_ptr + (group * C_out_g + offs_m) * syc  # [BLOCK_M]

    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, ACC)
    for step in range(split * STEPS_PER_SPLIT, (split + 1) * STEPS_PER_SPLIT):  # position tiles (see _tile)
        nb, od, oh, ow, mask_p = tile_positions(step, P, OD, OH, OW, BLOCK_K, BLOCK_W, INT64)
        id_, ok_d = tap(od, sd, pd, kd, dd, D, False)
        dy_p = nb * syn + od * syd + oh * syh + ow * syw
        a = tl.load(dy_rows[:, None] + dy_p[None, :], mask=mask_m[:, None] & mask_p[None, :], other=0.0)
        if FOLD == 2:  # each column its own (height, width) tap: the mask is per (position, column)
            _, ok_h = tap(oh[:, None], sh, ph, kh[None, :], dh, H, False)
            _, ok_w = tap(ow[:, None], sw, pw, kw[None, :], dw, W, False)
            x_p = nb * sxn + id_ * sxd + (oh * sh - ph) * sxh + (ow * sw - pw) * sxw
            ok = (mask_p & ok_d)[:, None] & ok_h & ok_w & mask_n[None, :]
        elif FOLD == 1:  # each column its own width tap
            ih, ok_h = tap(oh, sh, ph, kh, dh, H, False)
            _, ok_w = tap(ow[:, None], sw, pw, kw[None, :], dw, W, False)
            x_p = nb * sxn + id_ * sxd + ih * sxh + (ow * sw - pw) * sxw
            ok = (mask_p & ok_d & ok_h)[:, None] & ok_w & mask_n[None, :]
        else:
            ih, ok_h = tap(oh, sh, ph, kh, dh, H, False)
            iw, ok_w = tap(ow, sw, pw, kw, dw, W, False)
            x_p = nb * sxn + id_ * sxd + ih * sxh + iw * sxw
            ok = (mask_p & ok_d & ok_h & ok_w)[:, None] & mask_n[None, :]
        b = tl.load(x_cols[None, :] + x_p[:, None], mask=ok, other=0.0)
        if UPCAST:  # the interpreter's bf16 dot is wrong: multiply in fp32 there
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION, out_dtype=ACC)

    out = dw_ptr + split * sws + (group * C_out_g + offs_m)[:, None] * swo + w_cols[None, :]
    tl.store(out, acc.to(dw_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


class Partials:
    """What a weight-gradient launch writes and how the gradient comes out of it: the gradient itself, in the
    input's dtype, when there is one split and no flip (no partials to add, no cast: one launch); else fp32
    partials (one per split, ``(splits, C_out, C_in_g, taps)``) added in a fixed order. Subclasses set
    ``launcher``, ``grid``, ``args``, ``kwargs`` and may override :meth:`launch`."""

    def __init__(self, spec: ConvSpec, flip: bool, splits: int, positions: int, dtype: torch.dtype) -> None:
        c_out, c_in_g, *kernel_size = spec.weight_shape
        self.spec, self.flip, self.empty = spec, flip, positions == 0
        self.partial_shape = (splits, c_out, c_in_g, math.prod(kernel_size))
        self.direct = splits == 1 and not flip
        self.out = (tuple(spec.weight_shape), dtype) if self.direct else (self.partial_shape, geometry.accumulator(dtype))
        self.partial = torch.empty(self.partial_shape, device="meta")  # its strides are the kernel's

    def mma_work(self) -> int:
        """Multiply-adds the launch's ``tl.dot`` calls issue, masked lanes included."""
        return 0 if self.empty else self._work

    def launch(self, grad_output, input, out) -> None:
        self.launcher(input.device, self.grid, input, grad_output, out, *self.args, **self.kwargs)

    def __call__(self, grad_output, input) -> torch.Tensor:
        shape, dtype = self.out
        out = geometry.alloc_output(shape, input.device, dtype)
        if self.empty:  # an empty batch: the gradient is exactly zero
            out.zero_()
        else:
            self.launch(grad_output, input, out)
        return out if self.direct else geometry.sum_partials(out, self.spec, self.flip, input.dtype)


class Launch(Partials):
    """:func:`_conv_weight_grad_kernel` prepared for tensors laid out as ``grad_output`` and ``input``;
    calling it returns the gradient in the input's dtype (:class:`Partials`)."""

    def __init__(self, grad_output, input, spec: ConvSpec, flip: bool, config: Config) -> None:
        c_out, c_in_g, *kernel_size = spec.weight_shape
        c_out_g = c_out // spec.groups
        taps = math.prod(kernel_size)
        positions = grad_output.shape[0] * math.prod(grad_output.shape[2:])
        interp = interpreting(input.device)
        width = spec.output_shape[-1]  # of a row of positions; NC(D)HW operands are tiled by rows (see _tile)
        block_w = geometry.row_block(positions, width, config.block_k) \
            if geometry.width_inner(grad_output) or geometry.width_inner(input) else 0
        steps = geometry.position_tiles(positions, width, config.block_k, block_w)
        per_split = max(1, triton.cdiv(steps, config.split_k))  # position tiles per split
        splits = max(1, triton.cdiv(steps, per_split))
        super().__init__(spec, flip, splits, positions, input.dtype)
        fold = min(config.fold, len(kernel_size) - (len(kernel_size) == 3))  # trailing tap axes folded (not D)
        folded = math.prod(as_3d(tuple(kernel_size), 1)[3 - fold:]) if fold else 1
        grid_taps, cols = taps // folded, folded * c_in_g
        tiles = spec.groups * grid_taps * triton.cdiv(c_out_g, config.block_m) * triton.cdiv(cols, config.block_n)
        self.launcher = Direct(_conv_weight_grad_kernel)  # below JITFunction.run after the first launch
        self.grid = (tiles, splits)
        self.args = (
            positions, c_in_g, c_out_g, *geometry_3d(spec.input_shape[2:], spec.output_shape[2:], spec),
            *strides_3d(input), *strides_3d(grad_output), *self.partial.stride()[:3], per_split,
            *as_3d(tuple(kernel_size), 1),
        )
        self._work = tiles * splits * per_split * config.block_m * config.block_n * config.block_k
        self.kwargs = dict(
            FOLD=fold,
            INT64=needs_int64(input, grad_output, self.partial, rows=positions),
            UPCAST=interp and input.dtype == torch.bfloat16, DOT_PRECISION=dot_precision(input.dtype, interp),
            ACC=geometry.tl_accumulator(input.dtype),
            BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k, BLOCK_W=block_w,
            num_warps=config.num_warps, num_stages=config.num_stages,
        )
