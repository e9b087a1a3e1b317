"""Gradient of the convolution with respect to its weight, as a GEMM per kernel tap.

For group ``g`` and tap ``t = (kd, kh, kw)``::

    dW[co, ci, t] = sum_p dY[p, co] * X[p, ci, t]
    p = (batch, od, oh, ow)                   the reduction: every output position
    X[p, ci, t] = x[b, g*C_in_g + ci, od*sd - pd + kd*dd, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]

Rows are output channels (``BLOCK_M``), columns input channels (``BLOCK_N``) and the
reduction runs over output positions in tiles of ``BLOCK_K`` (rows of ``BLOCK_W`` for NC(D)HW
operands, read in place: :mod:`tritonconv._tile`; ``dY`` in aligned runs along its rows, ``x`` too, each run
read on in registers where the tap's shift is off a run boundary:
:func:`tritonconv.geometry.wgrad_runs`). The reduction can be split
(``Config.split_k``) into partial sums, so that layers with few channels but many positions still fill the GPU,
added in split order (deterministic): in the kernel by the last split to finish a tile where the others' tiles are
few enough to read back (:func:`tritonconv.geometry.splits_meet`), else by one more launch
(:mod:`tritonconv.kernels.partials`): :class:`Partials`.

Few input channels per group (stems: 3) would fill a 16-wide column tile with zeros per tap (5.3x the
useful multiply-adds), so a config's ``fold`` folds trailing tap axes into the columns: 1, the width
taps (one program per (depth, height) tap, columns ``j = kw * C_in_g + ci``: with channels innermost a
run of x's memory); 2, the height and width taps (columns ``j = (kh * KW + kw) * C_in_g + ci``: 147 for
a 7x7 stem on 3 channels, 160 wide, 1.09x). Each column's taps are masked per position; the column
offsets are computed once per program, outside the loop.

On Hopper, with unit stride along height and width or strides ``x``'s folded view takes (below), and any depth
stride, padding and dilation (one group), a second kernel loads its tiles by tensor descriptor
(:class:`DescriptorLaunch`, a config with ``tile_h > 0``: ``block_k = tile_b * tile_h * tile_w`` positions per
step). The reduction runs over
``TILE_B x TILE_H x TILE_W`` patches of output positions (images x rows x columns of one depth slice; images
past the batch read as zeros), and a patch needs two boxes: ``BLOCK_M`` channels of
``dY`` at the patch (``[N, OD, OH, OW, C_out]``), and ``BLOCK_N`` channels of ``x`` at the patch
shifted by the tap (``[N, D, H, W, C_in]``: depth ``od*sd - pd + kd*dd``, rows from ``oh0 - ph +
kh*dh``, columns from ``ow0 - pw + kw*dw``). The copy engine fills coordinates outside a tensor with
zeros: positions past the output's edge contribute nothing (their ``dY`` is zero) and the zero
padding of ``x`` comes for free, so the main loop is one flat loop over patches with scalar
coordinates, no addresses and no masks, pipelined into bulk copies feeding ``wgmma`` (``dY``'s box
transposed in shared memory for the MMA's first operand). NC(D)HW operands are read in place as
boxes ``[1, channels, 1, TILE_H, TILE_W]`` of ``[N, C, D, H, W]``; where a width tap's first column lies ``r``
elements past a 16-byte boundary (a 3x3 layer's outer taps), ``x`` is read as the two boxes from that boundary and
16 bytes on, each row's 16-byte runs taken ``r`` columns on in registers, at unit width stride
(:func:`tritonconv._descriptors.nc_box_runs`). Planes are read as rows (:func:`planes_as_rows`) where NC(D)HW rows
are of no 16-byte multiple (28 columns) in planes of one, and channels-innermost where a config asks
(``Config.planes``: boxes of one row, which the MMA reads both from shared memory, where one-row patches of the rows
would pad them more): ``[N, C, D, 1, H*W]`` or ``[N, D, 1, H*W, C]``, each plane one row, a tap moving it by
``(kh*dh - ph) * W + kw*dw - pw``: at the rows' seams a tap column that leaves its row reads the next row's (the
previous row's), and those products, read by address (one position a row for a 3x3 tap), are taken out
(:func:`tritonconv._descriptors.flat_geometry`). Strided along height or width,
channels-innermost ``x`` is read through the view that folds the strides into its axes, as the forward descriptor
kernel reads it (:func:`tritonconv._descriptors.phase_view`). Its reduction splits as the pointer kernel's.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .. import geometry
from .._checks import ConvSpec
from .._descriptors import (
    as_5d,
    channels_inner,
    describable,
    flat_geometry,
    flat_strides,
    flat_view,
    input_view,
    nc_box_runs,
    nc_flat,
)
from .._runtime import Counters, Descriptors, Direct, TensorDescriptor, capability, interpreting, kernel
from .._runtime import target_options as _target_options
from .._tile import (
    arrive,
    deal,
    fragment,
    meet_splits,
    met_rows,
    mma,
    next_rows,
    patch,
    repeat,
    reset_ticket,
    run_kind,
    shift_runs,
    tap,
    tile_positions,
)
from ..geometry import Config, as_3d, dot_precision, geometry_3d, needs_int64, strides_3d
from ..shapes import cdiv


@kernel
@triton.jit
def _conv_weight_grad_kernel(
    x_ptr, dy_ptr, dw_ptr, ws_ptr, cnt_ptr,
    P, C_in_g, C_out_g, D, H, W, OD, OH, OW,
    sd, sh, sw, pd, ph, pw, dd, dh, dw,
    sxn, sxc, sxd, sxh, sxw,
    syn, syc, syd, syh, syw,
    sws, swo, swi, swt, STEPS_PER_SPLIT,
    KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, FOLD: tl.constexpr, SPLIT: tl.constexpr,
    FLIP: tl.constexpr, INT64: tl.constexpr, UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr, ACC: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr, CARRY: tl.constexpr,
    DY_VEC: tl.constexpr, X_VEC: tl.constexpr, X_KINDS: tl.constexpr, X_DEAL: tl.constexpr, MEET_ROWS: tl.constexpr,
    SPLITS: tl.constexpr,
    X_AS_M: tl.constexpr, FRAGMENTS: tl.constexpr,
):
    """One program: a ``BLOCK_M x BLOCK_N`` tile of (output, input) channels of one tap, one split; with
    ``FOLD`` 1 (2), of (output channel, (width tap, input channel)) columns of one (depth, height) tap
    (((height, width) tap, input channel) columns of one depth tap).

    NC(D)HW rows (:func:`tritonconv.geometry.wgrad_runs`): ``DY_VEC > 1``, ``dY`` read in runs of ``DY_VEC`` columns
    that start on ``DY_VEC``-element boundaries (vector loads, asynchronous copies on a GPU); ``X_VEC > 1``, ``x`` too,
    in runs from the boundary at or below each tap's columns: where the tap shifts them by a multiple of ``X_VEC``
    those runs themselves, else (a 3x3 layer's outer taps, say) each run and the next, read the ``r`` columns on that
    the tap's shift is off a multiple, in registers (:func:`tritonconv._tile.shift_runs`). At a width stride
    ``X_DEAL`` (2 or 4) a run holds ``X_VEC / X_DEAL`` positions' ``X_DEAL`` consecutive columns each, the positions'
    own dealt out in registers (:func:`tritonconv._tile.deal`). The loop is compiled once for each of these ways that
    some tap takes (``X_KINDS``, bit ``k`` for way ``k`` of :func:`tritonconv.geometry.run_kind`), each program running
    its tap's (one branch per program). ``X_AS_M`` (:func:`x_as_m`): the MMA runs transposed, input x output channels,
    the moved ``x`` its first operand (from registers on Hopper), the sum turned back after the loop.

    ``SPLIT``: the ``SPLITS`` splits (the grid's second axis, told as a constant so that the adding unrolls whole) meet
    in the kernel, the last to arrive adding their partials ``MEET_ROWS`` rows at a time (:func:`meet_rows`).
    ``FRAGMENTS`` (:func:`target_options`): the moved or dealt ``x`` passes through :func:`tritonconv._tile.fragment`."""
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
        w_tap = (t * KH + kh) * KW + kw  # each column's flat tap
    elif FOLD == 1:  # column j = kw * C_in_g + ci: with channels innermost, a run of x's memory
        kw = offs_n // C_in_g
        ci = offs_n % C_in_g
        kh = t % KH
        kd = t // KH
        x_cols = x_ptr + (group * C_in_g + ci) * sxc + kw * dw * sxw  # [BLOCK_N]
        w_tap = t * KW + kw
    else:
        kw = t % KW
        kh = (t // KW) % KH
        kd = t // (KW * KH)
        x_cols = x_ptr + (group * C_in_g + offs_n) * sxc  # [BLOCK_N]
        ci = offs_n
        w_tap = t
    mask_m = offs_m < C_out_g
    mask_n = offs_n < cols
    dy_rows = dy_ptr + (group * C_out_g + offs_m) * syc  # [BLOCK_M]

    if X_AS_M:
        acc = tl.full((BLOCK_N, BLOCK_M), 0.0, ACC)
    else:
        acc = tl.full((BLOCK_M, BLOCK_N), 0.0, ACC)
    if CARRY:  # tiles of rows, at most OH rows each: the first tile's positions divided out, the next ones carried
        ROWS: tl.constexpr = BLOCK_K // BLOCK_W
        tiles_w = (OW + BLOCK_W - 1) // BLOCK_W
        q = tl.arange(0, BLOCK_K)
        tw = (split * STEPS_PER_SPLIT) % tiles_w
        nb, od, oh, _, _ = tile_positions(split * STEPS_PER_SPLIT, P, OD, OH, OW, BLOCK_K, BLOCK_W, INT64)
        row = (nb * OD + od) * OH + oh  # each position's flat row index
    if DY_VEC > 1:  # (every stride of dY a multiple of DY_VEC, its width too: a run's mask is the run's first's)
        dy_rows = dy_ptr + tl.multiple_of((group * C_out_g + offs_m) * syc, DY_VEC)
    reads = run_kind(kw * dw - pw, X_VEC)  # how this program's tap reads x (geometry.run_kind)
    for kind in tl.static_range(X_VEC + 1):  # a loop for each way some tap of the launch reads x (X_KINDS)
        if (X_KINDS >> kind) & 1:
            if reads == kind:
                x_at = x_cols
                if kind > 0:
                    x_at = x_ptr + tl.multiple_of((group * C_in_g + offs_n) * sxc, X_VEC)
                for step in range(split * STEPS_PER_SPLIT, (split + 1) * STEPS_PER_SPLIT):  # position tiles (see _tile)
                    if CARRY:
                        ow = tw * BLOCK_W + q % BLOCK_W
                        mask_p = (row < P // OW) & (ow < OW)
                    else:
                        nb, od, oh, ow, mask_p = tile_positions(step, P, OD, OH, OW, BLOCK_K, BLOCK_W, INT64)
                    id_, ok_d = tap(od, sd, pd, kd, dd, D, False)
                    if DY_VEC > 1:  # a row's base on a run boundary, constant along each run; its columns consecutive
                        dy_p = tl.max_constancy(tl.multiple_of(nb * syn + od * syd + oh * syh, DY_VEC), [DY_VEC]) + ow
                        mask_p = tl.max_constancy(mask_p, [DY_VEC])
                    else:
                        dy_p = nb * syn + od * syd + oh * syh + ow * syw
                    a = tl.load(dy_rows[:, None] + dy_p[None, :], mask=mask_m[:, None] & mask_p[None, :], other=0.0)
                    if FOLD == 2:  # each column its own (height, width) tap: the mask is per (position, column)
                        _, ok_h = tap(oh[:, None], sh, ph, kh[None, :], dh, H, False)
                        _, ok_w = tap(ow[:, None], sw, pw, kw[None, :], dw, W, False)
                        x_p = nb * sxn + id_ * sxd + (oh * sh - ph) * sxh + (ow * sw - pw) * sxw
                        ok = (mask_p & ok_d)[:, None] & ok_h & ok_w & mask_n[None, :]
                        b = tl.load(x_at[None, :] + x_p[:, None], mask=ok, other=0.0)
                    elif FOLD == 1:  # each column its own width tap
                        ih, ok_h = tap(oh, sh, ph, kh, dh, H, False)
                        _, ok_w = tap(ow[:, None], sw, pw, kw[None, :], dw, W, False)
                        x_p = nb * sxn + id_ * sxd + ih * sxh + (ow * sw - pw) * sxw
                        ok = (mask_p & ok_d & ok_h)[:, None] & ok_w & mask_n[None, :]
                        b = tl.load(x_at[None, :] + x_p[:, None], mask=ok, other=0.0)
                    elif kind > 0 and X_DEAL > 1:  # width stride X_DEAL: each position's X_DEAL columns, in runs
                        # of X_VEC from the boundary `r` below the tap's first, read on and dealt in registers; each
                        # position's row repeated over its columns, the columns from the tile's first position's
                        r2: tl.constexpr = kind - 1
                        ih, ok_h = tap(oh, sh, ph, kh, dh, H, False)
                        rows_x = repeat(nb * sxn + id_ * sxd + ih * sxh + (kw * dw - pw - r2), BLOCK_K, X_DEAL)
                        ok_p = repeat(mask_p & ok_d & ok_h, BLOCK_K, X_DEAL)  # (constant along each run: the hints below)
                        ow0 = (tw if CARRY else step % ((OW + BLOCK_W - 1) // BLOCK_W)) * BLOCK_W
                        cols_x = X_DEAL * ow0 + tl.arange(0, X_DEAL * BLOCK_K) % (X_DEAL * BLOCK_W)
                        first = cols_x + (kw * dw - pw - r2)  # each column's in the run read
                        at = tl.max_constancy(tl.multiple_of(rows_x, X_VEC), [X_VEC]) + cols_x
                        at = tl.max_contiguous(tl.multiple_of(at, X_VEC), X_VEC)  # (Triton 3.6 sees no run otherwise)
                        ok_lo = tl.max_constancy(ok_p & (first >= 0) & (first < W), [X_VEC])
                        lo = tl.load(x_at[:, None] + at[None, :], mask=mask_n[:, None] & ok_lo[None, :], other=0.0)
                        if r2 > 0:
                            ok_hi = tl.max_constancy(ok_p & (first + X_VEC >= 0) & (first + X_VEC < W), [X_VEC])
                            hi = tl.load(x_at[:, None] + (at + X_VEC)[None, :], mask=mask_n[:, None] & ok_hi[None, :],
                                         other=0.0)
                            lo = shift_runs(lo, hi, r2, BLOCK_N, X_DEAL * BLOCK_K, X_VEC)
                        b = fragment(deal(lo, 0, BLOCK_N, BLOCK_K, X_DEAL), FRAGMENTS)
                    elif kind == 0:
                        ih, ok_h = tap(oh, sh, ph, kh, dh, H, False)
                        iw, ok_w = tap(ow, sw, pw, kw, dw, W, False)
                        x_p = nb * sxn + id_ * sxd + ih * sxh + iw * sxw
                        ok = (mask_p & ok_d & ok_h & ok_w)[:, None] & mask_n[None, :]
                        b = tl.load(x_at[None, :] + x_p[:, None], mask=ok, other=0.0)
                    else:  # (unit width stride; x's strides and widths multiples of X_VEC) runs from the run boundary
                        # `r` columns below the tap's: its columns themselves (r = 0), or one run and the next, read on
                        ih, ok_h = tap(oh, sh, ph, kh, dh, H, False)
                        r: tl.constexpr = kind - 1
                        first = ow + (kw * dw - pw - r)  # each position's column in the run read
                        at = tl.max_constancy(tl.multiple_of(nb * sxn + id_ * sxd + ih * sxh + (kw * dw - pw - r),
                                                             X_VEC), [X_VEC]) + ow
                        ok_p = tl.max_constancy(mask_p & ok_d & ok_h, [X_VEC])
                        ok_lo = ok_p & tl.max_constancy((first >= 0) & (first < W), [X_VEC])
                        if r == 0:
                            b = tl.load(x_at[None, :] + at[:, None], mask=ok_lo[:, None] & mask_n[None, :], other=0.0)
                        else:  # the zero padding is whole runs: a moved run's columns are zeros where x's are
                            ok_hi = ok_p & tl.max_constancy((first + X_VEC >= 0) & (first + X_VEC < W), [X_VEC])
                            lo = tl.load(x_at[:, None] + at[None, :], mask=mask_n[:, None] & ok_lo[None, :], other=0.0)
                            hi = tl.load(x_at[:, None] + (at + X_VEC)[None, :], mask=mask_n[:, None] & ok_hi[None, :],
                                         other=0.0)
                            b = tl.trans(fragment(shift_runs(lo, hi, r, BLOCK_N, BLOCK_K, X_VEC), FRAGMENTS))
                    if X_AS_M:  # (input channels x positions) x (positions x output channels)
                        acc = mma(acc, tl.trans(b), tl.trans(a), UPCAST, DOT_PRECISION, ACC)
                    else:
                        acc = mma(acc, a, b, UPCAST, DOT_PRECISION, ACC)
                    if CARRY:
                        tw, nb, od, oh, row = next_rows(tw, nb, od, oh, row, tiles_w, OD, OH, ROWS)

    if X_AS_M:
        acc = tl.trans(acc)

    if FLIP:  # (the gradient itself) every spatial axis reversed: the flat tap reversed
        w_tap = KD * KH * KW - 1 - w_tap
    cols_at = (ci * swi + w_tap * swt)[None, :]
    if SPLIT:  # the splits' partial tiles meet in the last split to arrive, added in split order a few rows at a time
        if arrive(acc, ws_ptr, cnt_ptr, pid, split, SPLITS, BLOCK_M, BLOCK_N):
            for r0 in tl.static_range(0, BLOCK_M, MEET_ROWS):
                part = met_rows(ws_ptr, pid, SPLITS, r0, MEET_ROWS, BLOCK_M, BLOCK_N)
                rows = pid_m * BLOCK_M + r0 + tl.arange(0, MEET_ROWS)
                if INT64:
                    rows = rows.to(tl.int64)
                out = dw_ptr + (group * C_out_g + rows)[:, None] * swo + cols_at
                tl.store(out, part.to(dw_ptr.dtype.element_ty), mask=(rows < C_out_g)[:, None] & mask_n[None, :])
            reset_ticket(cnt_ptr, pid)
    else:
        out = dw_ptr + split * sws + (group * C_out_g + offs_m)[:, None] * swo + cols_at
        tl.store(out, acc.to(dw_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


def x_as_m(runs: tuple[int, int, int], deal: int, fold: int, block_n: int, itemsize: int) -> bool:
    """Whether :func:`_conv_weight_grad_kernel` runs its MMA transposed, input channels as its rows (``X_AS_M``): where
    some tap's 16-bit ``x`` is moved in registers (runs read off their boundary, or dealt at a width stride) while
    ``dY`` is read in runs (copied into shared memory as it is), on input-channel tiles the warpgroup MMA takes (64
    rows or more). Untransposed, the moved ``x`` is the MMA's second operand, which it reads from shared memory: each
    step stores it there and, before that, waits for every MMA reading the last one (Hopper's MMA runs on while the
    loop issues; the census's ``loop_drains``). Transposed, it is the first operand, read from registers. Not for
    fp32: its dealt TF32 loops waited transposed too (the TF32 MMA reads no operand transposed), and Triton 3.6 spilled
    4 B of ``tcn_k3``'s IEEE fp32 one."""
    dy_vec, x_vec, kinds = runs
    return (itemsize == 2 and x_vec > 1 and dy_vec > 1 and not fold and block_n >= 64
            and (deal > 1 or kinds & ~0b10 != 0))


def target_options(kwargs: dict, capability: int | None) -> dict:
    """:func:`_conv_weight_grad_kernel`'s launch options for a GPU of compute capability ``capability``
    (:func:`tritonconv._runtime.target_options`: rows read in aligned runs where ``DY_VEC`` or ``X_VEC`` exceeds 1; an
    MMA of ``BLOCK_N`` rows where it runs transposed, ``X_AS_M``, else ``BLOCK_M``)."""
    return _target_options(kwargs, capability, kwargs.get("DY_VEC", 1) > 1 or kwargs.get("X_VEC", 1) > 1,
                           kwargs["BLOCK_N"] if kwargs["X_AS_M"] else kwargs["BLOCK_M"])


def tma_target_options(kwargs: dict, capability: int | None) -> dict:
    """:func:`_conv_weight_grad_tma_kernel`'s launch options for a GPU of compute capability ``capability`` (Hopper or
    later: :func:`tritonconv._runtime.target_options`, an MMA of ``BLOCK_N`` rows where it runs transposed,
    ``IN_AS_M``, else ``BLOCK_M``)."""
    return _target_options(kwargs, capability, False, kwargs["BLOCK_N"] if kwargs["IN_AS_M"] else kwargs["BLOCK_M"])


class Partials:
    """What a weight-gradient launch writes and how the gradient comes out of it: the gradient itself, in the input's
    dtype (``direct``: one launch), where the reduction is one split or its splits meet in the kernel (``meet``,
    :func:`tritonconv.geometry.splits_meet`: each split stores its partial tile in a workspace of ``splits x tiles``
    tiles in the accumulator's dtype and takes a ticket from its tile's counter, one set per stream; the last to arrive
    adds them in split order and writes the gradient, flipped where asked: :func:`tritonconv._tile.meet_splits`); else,
    many splits, fp32 partials (one per split, ``partial_shape``: ``(splits, C_out, C_in_g, taps)``, laid out taps
    first and input channels innermost: :func:`tritonconv.geometry.alloc_partials`), which the caller
    adds in split order by a second launch spread over the GPU (:class:`tritonconv.kernels.partials.Sum`). Either way
    deterministic. The gradient is contiguous, or with its input channels innermost (``inner_grad``,
    :func:`tritonconv.geometry.alloc_weight_grad`: the layout of ``tritonconv.nn``'s weights, which autograd then
    keeps without a copy). Subclasses set ``launcher``, ``grid``, ``args``, ``kwargs`` and may override
    :meth:`launch`."""

    DESCRIPTORS = False
    """Whether the kernel loads its tiles by tensor descriptor (whose splits meet wherever few: :func:`meets`)."""

    def __init__(self, spec: ConvSpec, flip: bool, splits: int, tiles: int, positions: int, dtype: torch.dtype,
                 inner_grad: bool, config: Config) -> None:
        c_out, c_in_g, *kernel_size = spec.weight_shape
        self.spec, self.flip, self.empty, self.inner_grad = spec, flip, positions == 0, inner_grad
        self.acc = geometry.accumulator(dtype)  # of the partials
        self.meet = meets(self.DESCRIPTORS, dtype, splits, config.block_m, config.block_n)
        self.partial_shape = (splits, c_out, c_in_g, math.prod(kernel_size))
        self.direct = splits == 1 or self.meet
        self.out = (tuple(spec.weight_shape), dtype) if self.direct else (self.partial_shape, self.acc)
        self.partial = geometry.alloc_partials(self.partial_shape, torch.device("meta"), self.acc)  # strides; int64
        self.dtype = dtype  # the gradient's
        if self.direct:  # the gradient itself, laid out as asked: (co, ci, tap) strides, taps flattened
            grad = geometry.alloc_weight_grad(tuple(spec.weight_shape), torch.device("meta"), dtype, inner_grad)
            self.store = (0, *grad.reshape(c_out, c_in_g, -1).stride())
        else:  # fp32 partials: added in split order, flipped, cast and laid out by kernels.partials' launch
            self.store = self.partial.stride()
        self.workspace_elems = splits * tiles * config.block_m * config.block_n if self.meet else 0
        self.counters = Counters(tiles)  # the output tiles' tickets, per stream

    def mma_work(self) -> int:
        """Multiply-adds the launch's ``tl.dot`` calls issue, masked lanes included."""
        return 0 if self.empty else self._work

    def launch(self, grad_output, input, out, ws, cnt) -> None:
        """Launch the kernel writing ``out`` (``ws`` and ``cnt``: the meeting's workspace and counters, where
        ``meet``)."""
        self.launcher(input.device, self.grid, input, grad_output, out, ws, cnt)

    def __call__(self, grad_output, input) -> torch.Tensor:
        """Launch; returns the gradient when :attr:`direct`, else the partials (``partial_shape``)."""
        shape, dtype = self.out
        out = (geometry.alloc_weight_grad(shape, input.device, dtype, self.inner_grad) if self.direct
               else geometry.alloc_partials(shape, input.device, dtype))
        if self.empty:  # an empty batch: the gradient is exactly zero
            return out.zero_()
        ws, cnt = ((geometry.alloc_output((self.workspace_elems,), input.device, self.acc), self.counters(input.device))
                   if self.meet else (out, out))
        self.launch(grad_output, input, out, ws, cnt)
        return out


def meets(descriptors: bool, dtype: torch.dtype, splits: int, block_m: int, block_n: int) -> bool:
    """Whether a weight-gradient launch's ``splits`` partial tiles meet in its kernel rather than in a second launch:
    where few enough to read back (:func:`tritonconv.geometry.splits_meet`), on descriptor tiles or on the pointer
    kernel's with 16-bit operands (:func:`pointer_meets`). The dispatch and the cost model both ask this."""
    return ((descriptors or pointer_meets(dtype))
            and geometry.splits_meet(splits, block_m, block_n, geometry.accumulator(dtype).itemsize))


def pointer_meets(dtype: torch.dtype) -> bool:
    """Whether the pointer kernel's splits may meet in it (:func:`meets`): for 16-bit operands. Added whole beside the sum
    (:func:`tritonconv._tile.meet_splits`), ptxas read the other tiles back four loads deep and held 20-50 registers
    more (fp32 128 x 128 tiles on 8 warps, 128 -> 165; sm_80 bf16, 368 bytes spilled on four 128 x 128 tiles on 4
    warps), and no cap on registers can tell what the main loop needs (the same tiles hold 128 registers on some
    layers, 209-254 on others); added :data:`MEET_ROWS` rows at a time, no 16-bit suite launch spills or loses a
    program an SM on sm_90 (Triton 3.9 and 3.6) and one does on sm_80 (``telemetry_k9``'s NCL one, 80 -> 83
    registers, 3 -> 2 programs), but the TF32 ones on sm_80 lose a program on 7 of the suite's NC(D)HW launches
    (12-26 registers more; storing the fp32 tile to the workspace alone held 23 more on ``resnet50_l4_3x3``'s): those
    keep the second launch."""
    return dtype.itemsize <= 2


MEET_ROWS = 16
"""Rows of a tile the pointer kernel's last split adds at a time when its splits meet (:func:`tritonconv._tile.met_rows`),
at most: a 16 x 128 fp32 slice is 16 registers a thread on 4 warps, where a whole reloaded tile held beside the sum was
128. Fewer where the other splits' slices, all loaded at once, would hold more than :data:`MEET_REGISTERS`
(:func:`meet_rows`)."""

MEET_REGISTERS = 32
"""The most registers a thread of the pointer kernel's last split holds of the other splits' partial slices, which it
loads all at once before adding them (:func:`meet_rows`); its own sum is no longer held then (:func:`tritonconv._tile.arrive`)."""


def meet_rows(splits: int, block_m: int, block_n: int, num_warps: int) -> int:
    """Rows of a ``block_m x block_n`` tile the pointer kernel's last split adds at a time when ``splits`` partials meet
    (``MEET_ROWS``): :data:`MEET_ROWS` at most, halved while the other ``splits - 1`` splits' fp32 slices would take
    more than :data:`MEET_REGISTERS` registers a thread (``resnet50_l4_3x3``'s 4 splits of 128 x 128 tiles on 8 warps:
    16 rows, 24 registers; 17 splits of 64 x 64 on 4: 4 rows, 32)."""
    rows = min(MEET_ROWS, block_m)
    while rows > 1 and (splits - 1) * rows * block_n > MEET_REGISTERS * 32 * num_warps:
        rows //= 2
    return rows


class Launch(Partials):
    """:func:`_conv_weight_grad_kernel` prepared for tensors laid out as ``grad_output`` and ``input``;
    calling it returns the gradient in the input's dtype (:class:`Partials`).

    Its splits meet in the kernel where few and its operands 16-bit (:func:`pointer_meets`), the last adding the
    partials a few rows at a time once its own is stored (:func:`meet_rows`; :func:`tritonconv._tile.arrive`,
    :func:`tritonconv._tile.met_rows`: the split count a constant, ``SPLITS``, so each slice's loads go out at once)."""

    def __init__(self, grad_output, input, spec: ConvSpec, flip: bool, config: Config,
                 inner_grad: bool = False) -> None:
        c_out, c_in_g, *kernel_size = spec.weight_shape
        c_out_g = c_out // spec.groups
        taps = math.prod(kernel_size)
        positions = grad_output.shape[0] * math.prod(grad_output.shape[2:])
        interp = interpreting(input.device)
        width = spec.output_shape[-1]  # of a row of positions; NC(D)HW operands are tiled by rows (see _tile)
        block_w = geometry.row_block(positions, width, config.block_k) \
            if geometry.width_inner(grad_output) or geometry.width_inner(input) else 0
        steps = geometry.position_tiles(positions, width, config.block_k, block_w)
        height = as_3d(spec.output_shape[2:], 1)[1]
        # rows carried from tile to tile where a tile holds at most a plane's (1-D rows: sizes of 1 divide for free)
        carry = bool(block_w) and 1 < height and config.block_k // block_w <= height
        per_split, splits = geometry.step_splits(steps, config.split_k)  # position tiles per split
        fold = min(config.fold, geometry.max_wgrad_fold(spec.weight_shape))  # trailing tap axes folded (not D)
        folded = geometry.folded_taps(spec.weight_shape, fold)
        grid_taps, cols = taps // folded, folded * c_in_g
        tiles = spec.groups * grid_taps * cdiv(c_out_g, config.block_m) * cdiv(cols, config.block_n)
        super().__init__(spec, flip, splits, tiles, positions, input.dtype, inner_grad, config)
        per_thread = config.block_n * config.block_k // (32 * config.num_warps)  # elements of x's tile per thread
        self.runs = geometry.wgrad_runs(grad_output, input, spec, block_w, fold, per_thread)  # dY's and x's runs, loops
        x_deal = spec.stride[-1] if self.runs[1] > 1 else 1  # x's runs at a width stride: dealt
        self.grid = (tiles, splits)
        self.args = (
            positions, c_in_g, c_out_g, *geometry_3d(spec.input_shape[2:], spec.output_shape[2:], spec),
            *strides_3d(input), *strides_3d(grad_output), *self.store, per_split,
            *as_3d(tuple(kernel_size), 1),
        )
        self._work = tiles * splits * per_split * config.block_m * config.block_n * config.block_k
        self.kwargs = target_options(dict(
            FOLD=fold, SPLIT=self.meet, FLIP=flip and self.direct,
            INT64=needs_int64(input, grad_output, self.partial, rows=positions),
            UPCAST=interp and input.dtype == torch.bfloat16, DOT_PRECISION=dot_precision(input.dtype, interp),
            ACC=geometry.tl_accumulator(input.dtype),
            BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k, BLOCK_W=block_w,
            CARRY=carry, DY_VEC=self.runs[0], X_VEC=self.runs[1], X_KINDS=self.runs[2], X_DEAL=x_deal,
            MEET_ROWS=meet_rows(splits, config.block_m, config.block_n, config.num_warps),
            SPLITS=splits if self.meet else 1,
            X_AS_M=x_as_m(self.runs, x_deal, fold, config.block_n, input.element_size()),
            num_warps=config.num_warps, num_stages=config.num_stages,
        ), capability(input.device))
        self.launcher = Direct(_conv_weight_grad_kernel, self.args, self.kwargs)  # JITFunction.run once, then its launcher


# --- tile loads by tensor descriptor (Hopper) ---------------------------------------------------

@kernel
@triton.jit
def _conv_weight_grad_tma_kernel(
    x_desc, dy_desc, dw_ptr, x_ptr, dy_ptr, ws_ptr, cnt_ptr,
    C_in, C_out, OD, OH, OW, XH, sd, pd, ph, pw, dd, dh, dw,
    sws, swo, swi, swt, STEPS, STEPS_PER_SPLIT, D, RW, ROWS, XHW, sxn, sxc, sxd, sxp, syn, syc, syd, syp,
    KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, SPLIT: tl.constexpr, FLIP: tl.constexpr,
    X_INNER: tl.constexpr, DY_INNER: tl.constexpr, INT64: tl.constexpr, UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr, TILE_B: tl.constexpr, TILE_H: tl.constexpr, TILE_W: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PHASE_H: tl.constexpr, PHASE_W: tl.constexpr, EVEN: tl.constexpr,
    X_VEC: tl.constexpr, X_KINDS: tl.constexpr, FLAT: tl.constexpr, SEAMS: tl.constexpr, DY_FOURTH: tl.constexpr,
    IN_AS_M: tl.constexpr, FRAGMENTS: tl.constexpr,
):
    """One program: a ``BLOCK_M x BLOCK_N`` tile of (output, input) channels of one tap, one split of the patches.

    NC(D)HW ``x`` (:func:`tritonconv._descriptors.nc_box_runs`): a box must start on 16 bytes (``X_VEC`` elements), so
    a tap whose first column is ``r`` past a boundary reads the box from that boundary and the box ``X_VEC`` on, and
    takes each row's runs ``r`` columns on in registers (:func:`tritonconv._tile.shift_runs`); a loop for each offset
    some tap takes (``X_KINDS``, bit ``r + 1``), each program running its tap's. ``FLAT``: each plane one row
    (:func:`planes_as_rows`: ``OH`` 1, ``OW`` the plane's positions, ``ROWS`` rows of ``RW``; ``x``'s ``XHW``), a tap
    shifting it by ``(kh*dh - ph) * RW + kw*dw - pw``; a position whose tap column ``c`` leaves its row (the ``|c|``
    columns at the rows' seams) reads the row before's or after's in the main loop, so after it the program takes
    those products out, of ``dY`` and ``x`` read by address (``x_ptr``, ``dy_ptr``, strides of images, channels, depth
    slices and a plane's positions; ``SEAMS`` positions a step, this split's seam positions only).

    ``IN_AS_M`` (:func:`input_channels_as_m`): the MMA runs transposed, input x output channels, its sum turned back
    after the main loop. ``FRAGMENTS`` (:func:`tma_target_options`): the moved ``x`` passes through
    :func:`tritonconv._tile.fragment`.

    Programs run input-channel tile fastest, so those reading the same ``dY`` boxes run together (L2). ``EVEN``:
    the channel tiles divide both channel counts, so the epilogue stores without a mask (a 128 x 128 tile's
    per-element mask held 39 registers: 159 per thread on 8 warps, one program per SM; 120 without, two)."""
    BLOCK_K: tl.constexpr = TILE_B * TILE_H * TILE_W
    pid = tl.program_id(0)
    split = tl.program_id(1)
    tiles_n = (C_in + BLOCK_N - 1) // BLOCK_N
    tiles_m = (C_out + BLOCK_M - 1) // BLOCK_M
    n0 = (pid % tiles_n) * BLOCK_N
    m0 = ((pid // tiles_n) % tiles_m) * BLOCK_M
    t = pid // (tiles_n * tiles_m) if KD * KH * KW > 1 else 0  # this program's tap (one: 0, as the compiler then sees,
    # so that a 1 x 1 layer's tile stores its runs along the input channels 16 bytes at a time)
    kw = t % KW
    kh = (t // KW) % KH
    kd = t // (KW * KH)
    tiles_w = (OW + TILE_W - 1) // TILE_W
    tiles_h = (OH + TILE_H - 1) // TILE_H

    # strided (PHASE_H or PHASE_W > 1): x read through its phase view (_descriptors.phase_view), the tap's offsets
    # as (rows or columns, phase), made >= 0 before // and %: fixed per program
    if PHASE_H * PHASE_W > 1:
        qh = kh * dh - ph + PHASE_H * ph
        qw = kw * dw - pw + PHASE_W * pw
        col, chan = qw // PHASE_W - pw, (qw % PHASE_W) * C_in + n0
    first = split * STEPS_PER_SPLIT  # this split's first patch, then the next ones in (nb, od, oh, ow) order
    # (none empty: an empty batch launches nothing, geometry.step_splits cuts no empty split; a loop the compiler sees
    # may run no step has a path around it that zeroes the accumulator's registers between its last MMA and the wait
    # for it, and ptxas then waits out every MMA)
    tl.assume(tl.minimum(first + STEPS_PER_SPLIT, STEPS) > first)
    nb, od, oh0, ow0 = patch(first, OD, tiles_h, tiles_w, TILE_B, TILE_H, TILE_W)
    if IN_AS_M:
        acc = tl.full((BLOCK_N, BLOCK_M), 0.0, tl.float32)
    else:
        acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    c = kw * dw - pw  # the columns this tap moves x's positions by
    shift = c
    if FLAT:  # and the rows (of RW columns), planes read as rows
        shift += (kh * dh - ph) * RW
    if X_KINDS == 2:  # every box as it is
        reads = 1
    else:
        reads = run_kind(shift, X_VEC)  # this program's tap's offset past a 16-byte boundary, plus 1
    for kind in tl.static_range(1, X_VEC + 1):  # a loop for each offset some tap of the launch takes (X_KINDS)
        if (X_KINDS >> kind) & 1:
            if reads == kind:
                R: tl.constexpr = kind - 1
                for _ in range(first, tl.minimum(first + STEPS_PER_SPLIT, STEPS)):
                    if DY_INNER:  # [TILE_B, 1, TILE_H, TILE_W, BLOCK_M] of NDHWC: positions x channels, transposed
                        a = dy_desc.load([nb, od, oh0, ow0, m0]).reshape(BLOCK_K, BLOCK_M)
                        if not IN_AS_M:
                            a = tl.trans(a)
                    elif DY_FOURTH:  # [1, 1, 1, BLOCK_M, TILE_W] of NC(D)HW viewed as [N, D, H, C, W] (channels_fourth)
                        a = dy_desc.load([nb, od, oh0, m0, ow0]).reshape(BLOCK_M, BLOCK_K)
                    else:  # [1, BLOCK_M, 1, TILE_H, TILE_W] of NC(D)HW (TILE_B = 1): channels x positions
                        a = dy_desc.load([nb, m0, od, oh0, ow0]).reshape(BLOCK_M, BLOCK_K)
                    id_ = od * sd - pd + kd * dd
                    ih = oh0 - ph + kh * dh
                    if FLAT:  # the plane's one row
                        ih = 0
                    iw = ow0 + shift
                    if PHASE_H > 1:  # axis 1 steps rows: slice id_, row phase qh % PHASE_H
                        b = x_desc.load([nb, id_ * XH + qh % PHASE_H, oh0 + qh // PHASE_H - ph, ow0 + col, chan])
                        b = b.reshape(BLOCK_K, BLOCK_N)
                    elif PHASE_W > 1:
                        b = x_desc.load([nb, id_, ih, ow0 + col, chan]).reshape(BLOCK_K, BLOCK_N)
                    elif X_INNER:
                        b = x_desc.load([nb, id_, ih, iw, n0]).reshape(BLOCK_K, BLOCK_N)
                    elif R == 0:
                        b = tl.trans(x_desc.load([nb, n0, id_, ih, iw]).reshape(BLOCK_N, BLOCK_K))
                    else:  # the boxes from the boundary R columns below the tap's and X_VEC on, rows' runs read R on
                        lo = x_desc.load([nb, n0, id_, ih, iw - R]).reshape(BLOCK_N, BLOCK_K)
                        hi = x_desc.load([nb, n0, id_, ih, iw - R + X_VEC]).reshape(BLOCK_N, BLOCK_K)
                        b = tl.trans(fragment(shift_runs(lo, hi, R, BLOCK_N, BLOCK_K, X_VEC), FRAGMENTS))
                    if IN_AS_M:  # (input channels x positions) x (positions x output channels)
                        acc = mma(acc, tl.trans(b), a, UPCAST, DOT_PRECISION, tl.float32)
                    else:
                        acc = mma(acc, a, b, UPCAST, DOT_PRECISION, tl.float32)
                    ow0 += TILE_W  # the next patch by carries, not divisions (scalar coordinates only)
                    row_done = ow0 >= OW
                    ow0 = tl.where(row_done, 0, ow0)
                    oh0 = tl.where(row_done, oh0 + TILE_H, oh0)
                    plane_done = oh0 >= OH
                    oh0 = tl.where(plane_done, 0, oh0)
                    od = tl.where(plane_done, od + 1, od)
                    volume_done = od >= OD
                    od = tl.where(volume_done, 0, od)
                    nb = tl.where(volume_done, nb + TILE_B, nb)

    if IN_AS_M:
        acc = tl.trans(acc)
    if FLAT and c != 0:  # the rows' seams: each row's |c| positions whose tap column leaves it read the row before's
        # (after's) in the main loop; their products taken out: added to the negated sum, negated back (exact). After
        # the main loop, not before: ptxas waited out each MMA of a main loop starting from a sum the seams' MMA left
        acc = -acc
        cols = tl.maximum(c, -c)
        last = tl.minimum(first + STEPS_PER_SPLIT, STEPS)
        per_plane = (OW + TILE_W - 1) // TILE_W  # the main loop's steps per plane
        chan_m = m0 + tl.arange(0, BLOCK_M)
        chan_n = n0 + tl.arange(0, BLOCK_N)
        if INT64:
            chan_m = chan_m.to(tl.int64)
            chan_n = chan_n.to(tl.int64)
        for plane in range(first // per_plane, (last - 1) // per_plane + 1):  # this split's (image, depth) planes
            pnb = plane // OD
            pod = plane % OD
            pid_ = pod * sd - pd + kd * dd
            if INT64:  # (a plane's offsets: of images, depth slices)
                pnb = pnb.to(tl.int64)
                pod = pod.to(tl.int64)
                pid_ = pid_.to(tl.int64)
            if (pid_ >= 0) & (pid_ < D):  # (else the main loop read zeros of x there)
                for j in range(cols):  # the rows' seam columns
                    col = tl.where(c < 0, j, RW - cols + j)
                    for r0 in range(0, ROWS, SEAMS):
                        p = (r0 + tl.arange(0, SEAMS)) * RW + col  # the positions, in their plane
                        step = plane * per_plane + p // TILE_W  # the main loop's step that read each
                        ok = (p < ROWS * RW) & (step >= first) & (step < last)
                        q = p + shift  # x's position the main loop read there
                        ok_x = ok & (q >= 0) & (q < XHW)
                        if INT64:
                            p = p.to(tl.int64)
                            q = q.to(tl.int64)
                        if EVEN:  # (the channel tiles divide the channels)
                            ok_m = ok[None, :]
                            ok_n = ok_x[:, None]
                        else:
                            ok_m = (chan_m < C_out)[:, None] & ok[None, :]
                            ok_n = ok_x[:, None] & (chan_n < C_in)[None, :]
                        a = tl.load(dy_ptr + chan_m[:, None] * syc + (pnb * syn + pod * syd + p * syp)[None, :],
                                    mask=ok_m, other=0.0)
                        b = tl.load(x_ptr + chan_n[None, :] * sxc + (pnb * sxn + pid_ * sxd + q * sxp)[:, None],
                                    mask=ok_n, other=0.0)
                        acc = mma(acc, a, b, UPCAST, DOT_PRECISION, tl.float32)
        acc = -acc
    finish = True
    if SPLIT:  # the splits' partial tiles meet in the last split to arrive, added in split order
        acc, finish = meet_splits(acc, ws_ptr, cnt_ptr, pid, tl.num_programs(0), split, tl.num_programs(1), BLOCK_M,
                                  BLOCK_N)
    if finish:
        offs_m = m0 + tl.arange(0, BLOCK_M)
        offs_n = n0 + tl.arange(0, BLOCK_N)
        if INT64:
            offs_m = offs_m.to(tl.int64)
            offs_n = offs_n.to(tl.int64)
            split = split.to(tl.int64)
        out_t = KD * KH * KW - 1 - t if FLIP else t  # (every spatial axis reversed: the flat tap reversed)
        out = dw_ptr + split * sws + offs_m[:, None] * swo + offs_n[None, :] * swi + out_t * swt
        if EVEN:
            tl.store(out, acc.to(dw_ptr.dtype.element_ty))
        else:
            tl.store(out, acc.to(dw_ptr.dtype.element_ty), mask=(offs_m < C_out)[:, None] & (offs_n < C_in)[None, :])


def descriptors_usable(grad_output: torch.Tensor, input: torch.Tensor, spec: ConvSpec, config: Config) -> bool:
    """Whether this kernel computes the weight gradient with ``config``'s tiles: one group, unit H/W stride or strides
    ``x``'s view folds (:func:`tritonconv._descriptors.input_view`, channels innermost), each operand channels- or
    width-innermost (NC(D)HW: box rows of 16-byte multiples, ``x``'s boxes starting on 16 bytes or read in runs at unit
    width stride, :func:`tritonconv._descriptors.nc_box_runs`), or planes read as rows in patches of one row
    (:func:`planes_as_rows`, both operands in one layout), 16-byte strides, no fp64 (its accumulator is fp32). The
    base addresses must be 16-byte aligned too (:func:`tritonconv._descriptors.aligned`, checked per call)."""
    if TensorDescriptor is None or not config.tile_h or spec.groups != 1 or input.dtype == torch.float64:
        return False
    tile_b, tile_h, tile_w = config.patch(config.block_k)
    if planes_as_rows(input, spec, config):  # patches of one row, planes as rows
        views = [flat_view(t) for t in (grad_output, input)]
        return (tile_b == tile_h == 1 and flat_geometry(spec) and channels_inner(grad_output) == channels_inner(input)
                and None not in views and all(describable(t, v[1]) for t, v in zip((grad_output, input), views))
                and (channels_inner(input) or nc_box_runs(spec, tile_w, input.element_size()) > 0))
    view = input_view(input, spec, config.block_n)
    if view is None or not describable(input, view[1]):
        return False
    for t in (grad_output, input):
        if not describable(t) or (not channels_inner(t) and (tile_w * t.element_size() % 16 or tile_b > 1)):
            return False
    return channels_inner(input) or nc_box_runs(spec, tile_w, input.element_size()) > 0


def planes_as_rows(input: torch.Tensor, spec: ConvSpec, config: Config) -> bool:
    """Whether the kernel reads each plane as one row (``FLAT``, :func:`tritonconv._descriptors.flat_geometry`): an
    NC(D)HW input where its rows are no box's (:func:`tritonconv._descriptors.nc_flat`), a channels-innermost one where
    the config asks (``Config.planes``: 28 x 28 planes in patches of 64 positions, 1.06x, where the row-spanning patches
    that cover them exactly take the MMA's first operand through registers)."""
    return bool(config.planes) if channels_inner(input) else nc_flat(spec, input.element_size())


def channels_fourth(layout: tuple) -> tuple:
    """An NC(D)HW descriptor layout ``(sizes, strides, box)`` of ``[N, C, D, H, W]`` with one-row boxes ``[1, C', 1, 1,
    W']`` as ``[N, D, H, C, W]`` (the channels moved next to the width): its boxes ``[1, 1, 1, C', W']`` are the
    MMA's first operand (channels x positions) with their unit axes leading, which Triton keeps in shared memory (a
    box ``[1, C', 1, 1, W']`` it reshapes in registers, ``LDSM`` copies in every step)."""
    order = (0, 2, 3, 1, 4)
    return tuple([part[i] for i in order] for part in layout)


def dy_channels_fourth(dy_inner: bool, tile_h: int, x_kinds: int, flat: bool) -> bool:
    """Whether the kernel reads dy through :func:`channels_fourth` (``DY_FOURTH``): NC(D)HW dy in boxes of one row, where
    x's boxes are read as they are (``X_KINDS`` 2, not planes as rows). Where x's runs move in registers the loop waits
    for them anyway, and the stage of dy this adds in shared memory halved 128 x 128 tiles' programs per SM
    (``tcn_k3``, ``c3d_conv3a``: 2 -> 1)."""
    return not dy_inner and tile_h == 1 and x_kinds == 0b10 and not flat


def input_channels_as_m(dy_inner: bool, x_inner: bool, block_m: int, block_n: int) -> bool:
    """Whether the kernel runs its MMA transposed, input channels as its rows (``IN_AS_M``): channels-innermost
    operands whose output-channel tile is under 64 rows where the input-channel tile has 64 or more. Hopper's warpgroup
    MMA takes 64 rows at least; under them the warp-level MMA ran (R(2+1)D's first spatial pass, 144 output channels on
    32 x 64 tiles: 16 ``HMMA`` a step of 64 positions, 3.7 warp instructions per 1000 useful multiply-adds on sm_90);
    transposed, the warpgroup MMA runs, the 32 output channels its columns (16 ``HGMMA`` a step of 256 positions,
    :data:`tritonconv.tuning.NARROW_WGRAD_STEP`: 1.6-1.9)."""
    return dy_inner and x_inner and block_m < 64 <= block_n


HELD_REGISTERS = 128
"""The registers a thread of a descriptor launch on 8 warps is held to (``maxnreg``): two programs an SM. Where the
splits meet, the last reads each other split's partial tile back beside the sum, on 128 x 128 tiles 64 fp32 registers
a thread each, and ptxas then chose 164-168 registers for NC(D)HW tiles read in runs (``deeplab_3x3_d2``,
``c3d_conv3a``; sm_90, bf16, Triton 3.9 and 3.6): one program an SM where unsplit they had two. Held to 128, 84-148 B
spill outside the main loop, once a program, and the main loop issues no more (``deeplab_3x3_d2``: 104 instructions
a step where unsplit 115). Unmet, Triton 3.6 gave ``c3d_conv3a``'s channels-last TF32 one 159 registers; held, it
spills 4 B outside its main loop; the suite's other 8-warp launches take 128 or fewer unheld."""


def held_registers(num_warps: int) -> int | None:
    """The registers a thread of a descriptor weight-gradient launch on ``num_warps`` warps is held to
    (:data:`HELD_REGISTERS` on 8), or None: ptxas chooses. The launch and the cost model both ask this."""
    return HELD_REGISTERS if num_warps == 8 else None


SEAMS = 16
"""Seam positions per step of the loop that reads them by address (planes read as rows, :func:`planes_as_rows`)."""


def seam_work(spec: ConvSpec, tile_w: int, per_split: int, steps: int) -> int:
    """Positions x taps that the seam loop of a launch reading planes as rows (:func:`planes_as_rows`) runs over, per
    pair of channel tiles: :data:`SEAMS` a step, each split's planes, each tap whose columns move, in the planes whose
    depth slice the tap reads."""
    xd, _, _, od, oh, ow, sd, _, _, pd, _, _, dd, _, _ = geometry_3d(spec.input_shape[2:], spec.output_shape[2:], spec)
    kd, kh, kw = as_3d(tuple(spec.weight_shape[2:]), 1)
    columns = kh * sum(abs(c) for c in geometry.tap_shifts(kw, 1, spec.padding[-1][0], spec.dilation[-1], False))
    per_plane = cdiv(oh * ow, tile_w)
    visits = [0] * od  # each output depth slice's planes' visits, over the splits
    for first in range(0, steps, per_split):
        for plane in range(first // per_plane, (min(first + per_split, steps) - 1) // per_plane + 1):
            visits[plane % od] += 1
    read = sum(v for o, v in enumerate(visits) for t in range(kd) if 0 <= o * sd - pd + t * dd < xd)
    return read * columns * cdiv(oh, SEAMS) * SEAMS


class DescriptorLaunch(Partials):
    """:func:`_conv_weight_grad_tma_kernel` prepared for tensors laid out as ``grad_output`` and ``input``
    (:func:`descriptors_usable`); calling it gets the two descriptors (:class:`tritonconv._runtime.Descriptors`),
    launches and returns the gradient in the input's dtype (:class:`Partials`). Its splits meet in the kernel where few
    (:func:`meets`); on 8 warps it is held to :data:`HELD_REGISTERS`."""

    DESCRIPTORS = True

    def __init__(self, grad_output, input, spec: ConvSpec, flip: bool, config: Config,
                 inner_grad: bool = False) -> None:
        c_out, c_in, *kernel_size = spec.weight_shape
        tile_b, tile_h, tile_w = config.patch(config.block_k)
        xd, xh, xw, od, oh, ow, sd, phase_h, phase_w, pd, ph, pw, dd, dh, dw = geometry_3d(spec.input_shape[2:],
                                                                                            spec.output_shape[2:], spec)
        flat = planes_as_rows(input, spec, config)
        seams = (0,) * 12  # planes as rows: x's depth, the rows' width, the output's rows, x's plane, then by address
        if flat:  # each plane one row (its rows' seams taken out by address)
            seams = (xd, xw, oh, xh * xw, *flat_strides(input), *flat_strides(grad_output))
            oh, ow = 1, oh * ow
        positions = grad_output.shape[0] * od * oh * ow
        steps = cdiv(grad_output.shape[0], tile_b) * od * cdiv(oh, tile_h) * cdiv(ow, tile_w)
        per_split, splits = geometry.step_splits(steps, config.split_k)
        tiles = math.prod(kernel_size) * cdiv(c_out, config.block_m) * cdiv(c_in, config.block_n)
        super().__init__(spec, flip, splits, tiles, positions, input.dtype, inner_grad, config)

        def layout(t: torch.Tensor, channels: int, view: tuple) -> tuple:
            box = [tile_b, 1, tile_h, tile_w, channels] if channels_inner(t) else [1, channels, 1, tile_h, tile_w]
            return (*(flat_view(t) if flat else view), box)

        self.x_layout = layout(input, config.block_n, input_view(input, spec, config.block_n))
        self.x_kinds = 0b10 if channels_inner(input) else nc_box_runs(spec, tile_w, input.element_size())
        self.flat = flat
        self.dy_layout = layout(grad_output, config.block_m, as_5d(grad_output))
        dy_fourth = dy_channels_fourth(channels_inner(grad_output), tile_h, self.x_kinds, flat)
        if dy_fourth:
            self.dy_layout = channels_fourth(self.dy_layout)
        interp = interpreting(input.device)
        self.grid = (tiles, splits)
        self.args = (c_in, c_out, od, oh, ow, xh, sd, pd, ph, pw, dd, dh, dw, *self.store, steps, per_split, *seams,
                     *as_3d(tuple(kernel_size), 1))
        self._work = tiles * steps * config.block_m * config.block_n * config.block_k
        if flat:  # and the seams' products, read again by address (the loop over them after the main loop)
            self._work += seam_work(spec, tile_w, per_split, steps) \
                * cdiv(c_out, config.block_m) * config.block_m * cdiv(c_in, config.block_n) * config.block_n
        self.kwargs = tma_target_options(dict(
            X_INNER=channels_inner(input), DY_INNER=channels_inner(grad_output),
            SPLIT=self.meet, FLIP=flip and self.direct,
            INT64=needs_int64(self.partial, *((input, grad_output) if flat else ())),
            UPCAST=interp and input.dtype == torch.bfloat16, DOT_PRECISION=dot_precision(input.dtype, interp),
            TILE_B=tile_b, TILE_H=tile_h, TILE_W=tile_w, BLOCK_M=config.block_m, BLOCK_N=config.block_n,
            PHASE_H=phase_h, PHASE_W=phase_w, EVEN=c_out % config.block_m == 0 and c_in % config.block_n == 0,
            X_VEC=16 // input.element_size(), X_KINDS=self.x_kinds, FLAT=flat, SEAMS=SEAMS, DY_FOURTH=dy_fourth,
            IN_AS_M=input_channels_as_m(channels_inner(grad_output), channels_inner(input), config.block_m,
                                        config.block_n),
            num_warps=config.num_warps, num_stages=config.num_stages,
        ), capability(input.device))
        if held_registers(config.num_warps):  # two programs an SM
            self.kwargs["maxnreg"] = held_registers(config.num_warps)
        self.launcher = Direct(_conv_weight_grad_tma_kernel, self.args, self.kwargs)  # JITFunction.run once, then its launcher
        self.x_desc, self.dy_desc = Descriptors(self.launcher, *self.x_layout), Descriptors(self.launcher, *self.dy_layout)

    def launch(self, grad_output, input, out, ws, cnt) -> None:
        self.launcher(input.device, self.grid, self.x_desc(input), self.dy_desc(grad_output), out, input, grad_output,
                      ws, cnt)
