"""Depthwise convolution (``groups == C_in``, one input channel per group) without tensor cores.

Through the GEMM kernels a depthwise layer is a 1-wide reduction padded to 16 and a
``C_out / groups``-wide column tile padded to 16: most of the MMA work is zeros. Here each
output element is a plain multiply-add chain over the taps (``mult = C_out / C_in``)::

    forward      y[b, co, o]  = sum_t x[b, co // mult, o*s - p + t*d] * w[co, 0, t]
    input grad   dx[b, ci, i] = sum_j sum_{o, t : o*s - p + t*d = i} dy[b, ci*mult + j, o] * w[ci*mult + j, 0, t]
    weight grad  dw[co, 0, t] = sum_{b, o} dy[b, co, o] * x[b, co // mult, o*s - p + t*d]

The first two share :func:`_depthwise_kernel`: a program owns ``BLOCK_M`` positions x
``BLOCK_N`` channels of the tensor written (every group at once) and reads channel
``(n // DIV) * REP + j`` for ``j < REP`` (forward: ``DIV = mult, REP = 1``; input grad:
``DIV = 1, REP = mult``). In channels-last the ``BLOCK_N`` loads of one position are
contiguous. The weight gradient is a reduction over positions per (channel, tap), split
into partial sums that meet in the last split to arrive, added there in split order (one launch, deterministic:
:func:`tritonconv._tile.meet_splits`).

NC(D)HW tiles are rows of consecutive positions (:func:`position_tiling`), and at unit width stride every pass reads
its rows in aligned runs (:func:`row_runs`, :func:`wgrad_runs`): a width tap whose shift is off a run boundary reads
each run and the next and takes its columns in registers (:func:`tritonconv._tile.shift_runs`), as the GEMM kernels do.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .. import geometry
from .._checks import ConvSpec
from .._runtime import Counters, Direct, kernel
from .._tile import (
    activate,
    advance,
    advance_rows,
    inside,
    load_middle,
    meet_splits,
    positions,
    run_kind,
    shift_runs,
    tap,
    tile_positions,
    weight_tap,
)
from ..geometry import Config, as_3d, geometry_3d, needs_int64, split_sizes, strides_3d, tap_strides
from ..shapes import cdiv


@kernel
@triton.jit
def _depthwise_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    M, C, DIV, REP, D, H, W, OD, OH, OW,
    sd, sh, sw, pd, ph, pw, dd, dh, dw,
    sxn, sxc, sxd, sxh, sxw,
    swo, swd, swh, sww,
    syn, syc, syd, syh, syw, sb,
    KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, TRANSPOSED: tl.constexpr,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, FLIP: tl.constexpr, INT64: tl.constexpr, ACC: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_W: tl.constexpr, RUN_VEC: tl.constexpr, RUN_KINDS: tl.constexpr,
):
    """``x`` is read (sizes D, H, W), ``y`` written (``C`` channels, sizes OD, OH, OW, ``M`` positions); a tile's
    positions a flat run (``BLOCK_W = 0``, channels-last) or rows of ``BLOCK_W`` (NC(D)HW: the compiler then sees
    consecutive addresses along them and lays a warp's lanes there, :mod:`tritonconv._tile`)."""
    pid = tl.program_id(0)
    tiles_n = (C + BLOCK_N - 1) // BLOCK_N
    pid_m = pid // tiles_n
    pid_n = pid % tiles_n
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    if INT64:
        offs_n = offs_n.to(tl.int64)
    mask_n = offs_n < C
    nb, od, oh, ow, mask_m = tile_positions(pid_m, M, OD, OH, OW, BLOCK_M, BLOCK_W, INT64)
    x_rows = x_ptr + nb * sxn
    x_first = (offs_n // DIV) * REP  # first channel read for each channel written
    w_first = offs_n * REP  # and its weight row

    if RUN_VEC > 1:  # NC(D)HW rows at unit width stride read in aligned runs of RUN_VEC (geometry.row_runs): a width
        # tap whose shift is a multiple of the run reads the runs at its columns, another each run and the next, read the
        # columns on that its shift is off, in registers (_tile.shift_runs); a loop for each way some tap reads
        # (RUN_KINDS), over that way's taps. The sums [channels, positions]: the runs along the last axis.
        sums = tl.full((BLOCK_N, BLOCK_M), 0.0, ACC)
        rows_ok = nb < M // (OW * OH * OD)  # (the columns past a row read what they read and are not stored)
        for kind in tl.static_range(1, RUN_VEC + 1):
            if (RUN_KINDS >> kind) & 1:
                for kw in range(KW):
                    shift = pw - kw * dw if TRANSPOSED else kw * dw - pw  # the column position 0 reads
                    if run_kind(shift, RUN_VEC) == kind:
                        r: tl.constexpr = kind - 1
                        first = ow + (shift - r)  # each position's column in the run read
                        lo_ok = tl.max_constancy((first >= 0) & (first < W), [RUN_VEC])
                        hi_ok = tl.max_constancy((first + RUN_VEC >= 0) & (first + RUN_VEC < W), [RUN_VEC])
                        for kd in range(KD):
                            id_, ok_d = tap(od, sd, pd, kd, dd, D, TRANSPOSED)
                            for kh in range(KH):
                                ih, ok_h = tap(oh, sh, ph, kh, dh, H, TRANSPOSED)
                                ok = tl.max_constancy(rows_ok & ok_d & ok_h, [RUN_VEC])
                                at = tl.max_constancy(tl.multiple_of(nb * sxn + id_ * sxd + ih * sxh + (shift - r),
                                                                     RUN_VEC), [RUN_VEC]) + ow
                                w_tap = w_ptr + weight_tap(kd, kh, kw, swd, swh, sww, KD, KH, KW, FLIP)
                                for j in range(REP):
                                    wv = tl.load(w_tap + (w_first + j) * swo, mask=mask_n, other=0.0).to(ACC)
                                    chans = tl.multiple_of((x_first + j) * sxc, RUN_VEC)
                                    lo = tl.load(x_ptr + (chans[:, None] + at[None, :]),
                                                 mask=mask_n[:, None] & (ok & lo_ok)[None, :], other=0.0)
                                    if r != 0:  # (the zero padding is whole runs: a moved run's columns are zeros
                                        # where x's are)
                                        hi = tl.load(x_ptr + (chans[:, None] + (at + RUN_VEC)[None, :]),
                                                     mask=mask_n[:, None] & (ok & hi_ok)[None, :], other=0.0)
                                        lo = shift_runs(lo, hi, r, BLOCK_N, BLOCK_M, RUN_VEC)
                                    sums += lo.to(ACC) * wv[:, None]
        acc = tl.trans(sums)
    else:
        acc = tl.full((BLOCK_M, BLOCK_N), 0.0, ACC)
        for kd in range(KD):
            id_, ok_d = tap(od, sd, pd, kd, dd, D, TRANSPOSED)
            ok_d = ok_d & mask_m
            for kh in range(KH):
                ih, ok_h = tap(oh, sh, ph, kh, dh, H, TRANSPOSED)
                ok_dh = ok_d & ok_h
                for kw in range(KW):
                    iw, ok_w = tap(ow, sw, pw, kw, dw, W, TRANSPOSED)
                    ok = ok_dh & ok_w
                    w_tap = w_ptr + weight_tap(kd, kh, kw, swd, swh, sww, KD, KH, KW, FLIP)
                    x_tap = x_rows + id_ * sxd + ih * sxh + iw * sxw
                    for j in range(REP):
                        wv = tl.load(w_tap + (w_first + j) * swo, mask=mask_n, other=0.0).to(ACC)
                        xv = tl.load(x_tap[:, None] + ((x_first + j) * sxc)[None, :],
                                     mask=ok[:, None] & mask_n[None, :], other=0.0).to(ACC)
                        acc += xv * wv[None, :]

    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_n * sb, mask=mask_n, other=0.0).to(ACC)[None, :]
    acc = activate(acc, ACTIVATION)
    y_rows = y_ptr + nb * syn + od * syd + oh * syh + ow * syw
    tl.store(y_rows[:, None] + offs_n[None, :] * syc, acc.to(y_ptr.dtype.element_ty),
             mask=mask_m[:, None] & mask_n[None, :])


@kernel
@triton.jit
def _depthwise_weight_grad_kernel(
    x_ptr, dy_ptr, dw_ptr, ws_ptr, cnt_ptr,
    P, C_out, MULT, D, H, W, OD, OH, OW,
    sd, sh, sw, pd, ph, pw, dd, dh, dw,
    sxn, sxc, sxd, sxh, sxw,
    syn, syc, syd, syh, syw,
    sgo, sgt, P_PER_SPLIT, STEP_N, STEP_D, STEP_H, STEP_W,
    KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, SPLIT: tl.constexpr, FLIP: tl.constexpr, INT64: tl.constexpr,
    ACC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr,
    DY_VEC: tl.constexpr, X_VEC: tl.constexpr, X_KINDS: tl.constexpr,
):
    """One program: ``BLOCK_M`` taps x ``BLOCK_N`` output channels over one split of the positions, ``BLOCK_K``
    positions a step: each step loads its output gradient once for all its taps, and the sums are held per (tap,
    position, channel) and summed over the positions at the end. A step's positions are a flat run (``BLOCK_W = 0``,
    channels-last: the sums ``[BLOCK_M, BLOCK_K, BLOCK_N]``, channels innermost, the loads' contiguous axis) or
    ``BLOCK_K / BLOCK_W`` rows of ``BLOCK_W`` columns (NC(D)HW: ``[BLOCK_M, BLOCK_N, BLOCK_K]``, positions innermost,
    whose consecutive addresses the compiler sees along the rows, :mod:`tritonconv._tile`), width tiles fastest.
    Steps advance by carries, no division: flat runs by ``STEP_*`` (``BLOCK_K`` positions as batches, depth, rows and
    columns), row tiles by a width tile, then by ``STEP_*`` (``BLOCK_K / BLOCK_W`` rows) where the widths wrap.
    ``P_PER_SPLIT``: a split's positions, whole steps (row tiles: ``BLOCK_K`` a tile). The splits' sums meet in the last
    split to arrive (``SPLIT``, :func:`tritonconv._tile.meet_splits`: added in split order, one launch), which writes
    the gradient (``sgo``, ``sgt``: its strides per channel and flat tap; ``FLIP``, the taps reversed) in its dtype.

    NC(D)HW rows at unit width stride (:func:`tritonconv.geometry.wgrad_runs`): ``DY_VEC > 1``, ``dY`` read in runs
    of ``DY_VEC`` from run boundaries; ``X_VEC > 1``, ``x`` too, a program's taps then sharing one width tap (a tile of
    ``BLOCK_M`` (depth, height) taps: their rows whole multiples of a run apart) whose shift picks the way it reads
    (``X_KINDS``, bit ``k`` for way ``k`` of :func:`tritonconv.geometry.run_kind`, a loop each): the runs at its
    columns, or each run and the next, read the columns on that its shift is off, in registers (:func:`shift_runs`)."""
    pid = tl.program_id(0)
    split = tl.program_id(1)
    tiles_n = (C_out + BLOCK_N - 1) // BLOCK_N
    pid_n = pid % tiles_n
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    first_p = split * P_PER_SPLIT
    if INT64:
        offs_n = offs_n.to(tl.int64)
        first_p = first_p.to(tl.int64)
    if X_VEC > 1:  # a tile of (depth, height) taps at one width tap
        tg = pid // tiles_n
        kw_s = tg % KW
        t_dh = (tg // KW) * BLOCK_M + tl.arange(0, BLOCK_M)
        t = t_dh * KW + kw_s  # this program's taps (past the last where t_dh is: not stored)
        t_in = tl.minimum(t_dh, KD * KH - 1) * KW + kw_s
    else:
        t = (pid // tiles_n) * BLOCK_M + tl.arange(0, BLOCK_M)  # this program's taps
        t_in = tl.minimum(t, KD * KH * KW - 1)  # taps past the last read the last one's (not stored: no mask in the loop)
        kw_s = 0
    kw = t_in % KW
    kh = (t_in // KW) % KH
    kd = t_in // (KW * KH)
    dy_c = offs_n * syc
    x_c = (offs_n // MULT) * sxc
    ok_n = offs_n < C_out
    x_t = kd * dd * sxd + kh * dh * sxh  # each tap's shift (the width tap's: with the columns in runs)
    if X_VEC == 1:
        x_t += kw * dw * sxw
    if DY_VEC > 1:  # (dY's strides and width multiples of DY_VEC: a run's mask is its first element's)
        dy_c = tl.multiple_of(dy_c, DY_VEC)
    if X_VEC > 1:  # (x's too, and a program's taps whole rows apart)
        x_c, x_t = tl.multiple_of(x_c, X_VEC), tl.multiple_of(x_t, X_VEC)
    x_t = x_t[:, None, None]
    kd, kh, kw = (kd * dd)[:, None, None], (kh * dh)[:, None, None], (kw * dw)[:, None, None]
    if BLOCK_W == 0:  # flat runs: the first step's positions (later ones by carries)
        offs_p = first_p + tl.arange(0, BLOCK_K)
        nb, od, oh, ow = positions(offs_p, OD, OH, OW)
        dy_c, x_c, ok_n = dy_c[None, None, :], x_c[None, None, :], ok_n[None, None, :]
        acc = tl.full((BLOCK_M, BLOCK_K, BLOCK_N), 0.0, ACC)
    else:  # row tiles: the first tile's
        tiles_w = (OW + BLOCK_W - 1) // BLOCK_W
        batches = P // (OD * OH * OW)
        tw = (first_p // BLOCK_K) % tiles_w
        col = tl.arange(0, BLOCK_K) % BLOCK_W
        nb, od, oh, ow, _ok = tile_positions(first_p // BLOCK_K, P, OD, OH, OW, BLOCK_K, BLOCK_W, INT64)
        dy_c, x_c, ok_n = dy_c[None, :, None], x_c[None, :, None], ok_n[None, :, None]
        acc = tl.full((BLOCK_M, BLOCK_N, BLOCK_K), 0.0, ACC)
    shift = kw_s * dw - pw  # the column this program's width tap reads for position 0 (X_VEC > 1)
    reads = run_kind(shift, X_VEC)
    for kind in tl.static_range(X_VEC + 1):  # a loop for each way some tap of the launch reads x (X_KINDS)
        if (X_KINDS >> kind) & 1:
            if reads == kind:
                for _step in range(0, P_PER_SPLIT, BLOCK_K):
                    id0, ih0, iw0 = od * sd - pd, oh * sh - ph, ow * sw - pw
                    rows_dy = nb * syn + od * syd + oh * syh
                    rows_x = nb * sxn + id0 * sxd + ih0 * sxh
                    # per position: in range, and inside the input along each axis of one tap
                    if BLOCK_W == 0:
                        ok_p = offs_p < P
                    else:
                        ok_p = (nb < batches) & (ow < OW)
                    if KD == 1:
                        ok_p &= inside(id0, D, INT64)
                    if KH == 1:
                        ok_p &= inside(ih0, H, INT64)
                    if KW == 1 and kind == 0:
                        ok_p &= inside(iw0, W, INT64)
                    if DY_VEC > 1:  # a row's base on a run boundary, constant along each run; its columns consecutive
                        dy_p = tl.max_constancy(tl.multiple_of(rows_dy, DY_VEC), [DY_VEC]) + ow
                        ok_p = tl.max_constancy(ok_p, [DY_VEC])
                    else:
                        dy_p = rows_dy + ow * syw
                    if kind > 0:  # x in runs from the boundary `r` columns below the tap's
                        r: tl.constexpr = kind - 1
                        first = ow + (shift - r)  # each position's column in the run read
                        at = tl.max_constancy(tl.multiple_of(rows_x + (shift - r), X_VEC), [X_VEC]) + ow
                        ok_p = tl.max_constancy(ok_p, [X_VEC])
                        ok_w = tl.max_constancy((first >= 0) & (first < W), [X_VEC])
                    else:
                        at = rows_x + iw0 * sxw
                    if BLOCK_W == 0:
                        id0, ih0, iw0 = id0[None, :, None], ih0[None, :, None], iw0[None, :, None]
                        dy_p, at, ok_p = dy_p[None, :, None], at[None, :, None], ok_p[None, :, None]
                    else:
                        id0, ih0, iw0 = id0[None, None, :], ih0[None, None, :], iw0[None, None, :]
                        dy_p, at, ok_p = dy_p[None, None, :], at[None, None, :], ok_p[None, None, :]
                    ok = ok_p  # per (tap, position) along the other axes
                    if KD > 1:
                        ok &= inside(id0 + kd, D, INT64)
                    if KH > 1:
                        ok &= inside(ih0 + kh, H, INT64)
                    # once for every tap (0 where no tap reads x)
                    a = tl.load(dy_ptr + dy_p + dy_c, mask=ok_p & ok_n, other=0.0)
                    if kind == 0:
                        if KW > 1:
                            ok &= inside(iw0 + kw, W, INT64)
                        if BLOCK_W == 0:  # [taps, positions, channels]: a warp's lanes along the positions
                            b = load_middle(x_ptr + at + x_t + x_c, ok & ok_n)
                        else:
                            b = tl.load(x_ptr + at + x_t + x_c, mask=ok & ok_n, other=0.0)
                    else:
                        if X_VEC > 1:  # (a scalar kind otherwise; this branch is compiled only with runs)
                            ok = tl.max_constancy(ok, [1, 1, X_VEC])  # (a tap's bounds per row: constant along it)
                            b = tl.load(x_ptr + at + x_t + x_c, mask=ok & ok_n & ok_w[None, None, :], other=0.0)
                            if r != 0:  # (the zero padding is whole runs: a moved run's columns are zeros where x's are)
                                ok_w = tl.max_constancy((first + X_VEC >= 0) & (first + X_VEC < W), [X_VEC])
                                hi = tl.load(x_ptr + at + X_VEC + x_t + x_c, mask=ok & ok_n & ok_w[None, None, :],
                                             other=0.0)
                                b = tl.reshape(shift_runs(tl.reshape(b, (BLOCK_M * BLOCK_N, BLOCK_K)),
                                                          tl.reshape(hi, (BLOCK_M * BLOCK_N, BLOCK_K)), r,
                                                          BLOCK_M * BLOCK_N, BLOCK_K, X_VEC),
                                               (BLOCK_M, BLOCK_N, BLOCK_K))
                    acc += a.to(ACC) * b.to(ACC)
                    if BLOCK_W == 0:
                        offs_p += BLOCK_K
                        nb, od, oh, ow = advance(nb, od, oh, ow, STEP_N, STEP_D, STEP_H, STEP_W, OD, OH, OW)
                    else:  # the next width tile; the next rows where the widths wrap
                        tw += 1
                        wrap = tw >= tiles_w
                        tw = tl.where(wrap, 0, tw)
                        ow = tw * BLOCK_W + col
                        rows = wrap.to(oh.dtype)
                        nb, od, oh = advance_rows(nb, od, oh, STEP_N * rows, STEP_D * rows, STEP_H * rows, OD, OH)

    # tl.sum is Triton's own @jit helper, which the interpreted twin cannot call; tl.reduce is a builtin.
    total = tl.reduce(acc, 1 if BLOCK_W == 0 else 2, tl.standard._sum_combine)  # [taps, channels]
    finish = True
    if SPLIT:
        total, finish = meet_splits(total, ws_ptr, cnt_ptr, pid, tl.num_programs(0), split, tl.num_programs(1), BLOCK_M,
                                    BLOCK_N)
    if finish:
        out_t = KD * KH * KW - 1 - t if FLIP else t  # (every spatial axis reversed: the flat tap reversed)
        tl.store(dw_ptr + offs_n[None, :] * sgo + out_t[:, None] * sgt, total.to(dw_ptr.dtype.element_ty),
                 mask=(t < KD * KH * KW)[:, None] & (offs_n < C_out)[None, :])


class Launch:
    """:func:`_depthwise_kernel` prepared for tensors laid out as ``x``, ``weight``, ``y``; calling it reads
    ``x`` and writes ``y`` (both batched): the forward pass, or with ``transposed`` the input gradient
    (``x`` the output gradient, ``y`` the input gradient)."""

    def __init__(self, x, weight, bias, y, spec: ConvSpec, transposed: bool, activation: str | None, flip: bool,
                 config: Config) -> None:
        channels = y.shape[1]
        mult = spec.weight_shape[0] // spec.groups
        m = y.shape[0] * math.prod(y.shape[2:])
        block_w, tiles = position_tiling(channels_fast(x), m, y.shape[-1], config.block_m)
        runs = row_runs(x, y.shape, spec, transposed, config)
        self.empty = y.numel() == 0
        self.grid = (tiles * cdiv(channels, config.block_n),)
        self.args = (
            m, channels, 1 if transposed else mult, mult if transposed else 1,
            *geometry_3d(x.shape[2:], y.shape[2:], spec),
            *strides_3d(x), weight.stride(0), *tap_strides(weight), *strides_3d(y), geometry.bias_step(bias),
            *as_3d(spec.weight_shape[2:], 1),
        )
        self.kwargs = dict(
            TRANSPOSED=transposed, HAS_BIAS=bias is not None, ACTIVATION=activation, FLIP=flip,
            INT64=needs_int64(x, weight, y, rows=m), ACC=geometry.tl_accumulator(x.dtype),
            BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_W=block_w, RUN_VEC=runs[0], RUN_KINDS=runs[1],
            num_warps=config.num_warps, num_stages=config.num_stages,
        )
        self.launcher = Direct(_depthwise_kernel, self.args, self.kwargs)  # JITFunction.run once, then its launcher

    def __call__(self, x, weight, bias, y) -> torch.Tensor:
        if not self.empty:
            self.launcher(x.device, self.grid, x, weight, bias if bias is not None else weight, y)
        return y


class WeightGradLaunch:
    """The weight gradient, prepared for tensors laid out as ``grad_output`` and ``input``; calling it returns the
    gradient, contiguous, in the input's dtype, from one launch (``direct``: split sums met in the kernel).
    ``config.block_m`` taps, ``block_n`` channels and ``block_k`` positions a step per program."""

    def __init__(self, grad_output, input, spec: ConvSpec, flip: bool, config: Config) -> None:
        c_out, _, *kernel_size = spec.weight_shape
        taps = math.prod(kernel_size)
        positions = grad_output.shape[0] * math.prod(grad_output.shape[2:])
        width = grad_output.shape[-1]
        block_w, tiles = position_tiling(channels_fast(input), positions, width, config.block_k)
        dy_vec, x_vec, x_kinds = wgrad_runs(grad_output, input, spec, config)
        per_split, splits = split_sizes(tiles * config.block_k, config)  # row tiles: block_k slots each
        self.spec, self.flip, self.empty = spec, flip, positions == 0
        self.direct, self.dtype, self.inner_grad = True, input.dtype, False  # the gradient itself, contiguous
        self.shape = tuple(spec.weight_shape)
        self.grid = (tap_tiles(kernel_size, config.block_m, x_vec > 1) * cdiv(c_out, config.block_n), splits)
        # split partial tiles (accumulator dtype), tile-major; a ticket counter per tile, per stream
        self.workspace = (splits * self.grid[0] * config.block_m * config.block_n) if splits > 1 else 0
        self.counters = Counters(self.grid[0])
        step = config.block_k // block_w * width if block_w else config.block_k  # positions a step (row tiles: rows)
        self.args = (
            positions, c_out, c_out // spec.groups, *geometry_3d(spec.input_shape[2:], spec.output_shape[2:], spec),
            *strides_3d(input), *strides_3d(grad_output), taps, 1, per_split,
            *(geometry.position_step(step, grad_output.shape[2:]) if positions else (0, 0, 0, 0)),
            *as_3d(tuple(kernel_size), 1),
        )
        self.kwargs = dict(SPLIT=splits > 1, FLIP=flip,
                           INT64=needs_int64(input, grad_output, rows=max((tiles + 1) * config.block_k,
                                                                          self.workspace)),
                           ACC=geometry.tl_accumulator(input.dtype), BLOCK_M=config.block_m, BLOCK_N=config.block_n,
                           BLOCK_K=config.block_k, BLOCK_W=block_w, DY_VEC=dy_vec, X_VEC=x_vec, X_KINDS=x_kinds,
                           num_warps=config.num_warps, num_stages=config.num_stages)
        self.launcher = Direct(_depthwise_weight_grad_kernel, self.args, self.kwargs)  # JITFunction.run once, then its launcher

    def __call__(self, grad_output, input) -> torch.Tensor:
        """Launch; returns the gradient."""
        grad = geometry.alloc_output(self.shape, input.device, self.dtype)
        if self.empty:  # an empty batch: the gradient is exactly zero
            return grad.zero_()
        ws = (geometry.alloc_output((self.workspace,), input.device, geometry.accumulator(self.dtype))
              if self.workspace else grad)
        self.launcher(input.device, self.grid, input, grad_output, grad, ws, self.counters(input.device))
        return grad


def channels_fast(input: torch.Tensor) -> bool:
    """Whether a depthwise launch's activations hold their channels contiguous (channels-last, more than one
    channel), so its tiles' loads run along channels; else along positions (NC(D)HW: rows)."""
    return layout_channels_fast("channels_last" if input.stride(1) == 1 else "contiguous", input.shape[1])


def layout_channels_fast(layout: str, channels: int) -> bool:
    """:func:`channels_fast` of activations in ``layout`` (``"channels_last"`` or ``"contiguous"``) with
    ``channels`` channels."""
    return layout == "channels_last" and channels > 1


def row_runs(x: torch.Tensor, written: tuple[int, ...], spec: ConvSpec, transposed: bool,
             config: Config) -> tuple[int, int]:
    """How the forward kernel reads ``x`` for a tensor shaped ``written`` (the input gradient's, ``transposed``):
    ``(RUN_VEC, RUN_KINDS)``, NC(D)HW row tiles at unit width stride in runs (:func:`tritonconv.geometry.row_runs`) of
    at least :data:`tritonconv.geometry.RUNS_NEAR_BYTES` (runs of 2 bf16 elements issued as many instructions as none
    on a 14-wide 3 x 3 layer); ``(0, 0)``, one element at a time."""
    positions, block_w = unit_stride_rows(x, written, spec, config.block_m)
    if not block_w:
        return 0, 0
    per_thread = config.block_m * config.block_n // (32 * config.num_warps)
    runs = geometry.row_runs(x, positions, written[-1], spec.weight_shape[-1], 1, spec.padding[-1][0],
                             spec.dilation[-1], transposed, config.block_m, per_thread)
    return runs if runs[0] * x.element_size() >= geometry.RUNS_NEAR_BYTES else (0, 0)


def wgrad_runs(grad_output: torch.Tensor, input: torch.Tensor, spec: ConvSpec, config: Config) -> tuple[int, int, int]:
    """How the weight gradient reads its NC(D)HW rows: ``(DY_VEC, X_VEC, X_KINDS)``
    (:func:`tritonconv.geometry.wgrad_runs`, at unit width stride, on row tiles, x's runs at least
    :data:`tritonconv.geometry.RUNS_NEAR_BYTES`: 2 bf16 elements spilled 180 B on a 14-wide 3 x 3 layer's tile of 64
    channels); ``(1, 1, 1)``, an element at a time."""
    block_w = unit_stride_rows(input, grad_output.shape, spec, config.block_k)[1]
    if not block_w:
        return 1, 1, 1
    per_thread = config.block_m * config.block_n * config.block_k // (32 * config.num_warps)
    runs = geometry.wgrad_runs(grad_output, input, spec, block_w, 0, per_thread)
    return runs if runs[1] * input.element_size() >= geometry.RUNS_NEAR_BYTES else (1, 1, 1)


def unit_stride_rows(x: torch.Tensor, written: tuple[int, ...], spec: ConvSpec, block: int) -> tuple[int, int]:
    """``(positions, BLOCK_W)`` of a launch reading ``x`` over the positions of a tensor shaped ``written`` in tiles of
    ``block``: its row tiles' width where they are rows (:func:`position_tiling`) at unit width stride, else 0."""
    positions = written[0] * math.prod(written[2:])
    block_w = position_tiling(channels_fast(x), positions, written[-1], block)[0]
    return positions, block_w if spec.stride[-1] == 1 else 0


def tap_tiles(kernel_size: tuple[int, ...], block: int, runs: bool) -> int:
    """The weight gradient's programs along the taps, ``block`` taps each: of all taps, or with x read in runs
    (:func:`wgrad_runs`) of the (depth, height) taps, for each width tap."""
    if runs:
        return kernel_size[-1] * cdiv(math.prod(kernel_size[:-1]), block)
    return cdiv(math.prod(kernel_size), block)


def position_tiling(fast: bool, positions: int, width: int, block: int) -> tuple[int, int]:
    """The forward kernel's ``BLOCK_W`` and its tiles of ``block`` positions over ``positions`` written in rows
    ``width`` wide: flat where its loads run along channels (``fast``, :func:`channels_fast`), else rows
    (:func:`tritonconv.geometry.row_block`)."""
    block_w = 0 if fast else geometry.row_block(positions, width, block)
    return block_w, geometry.position_tiles(positions, width, block, block_w)
