"""Forward convolution with tile loads by tensor descriptor (Hopper's tensor memory accelerator).

For unit stride along height and width (any depth stride, padding and dilation; one group),
the input a tap needs for a ``TILE_B x TILE_H x TILE_W`` patch of output positions (images x rows x
columns of one depth slice) is a box of the 5-D channels-innermost input ``[N, D, H, W, C]``: images from
``nb0``, depth ``od*sd - pd + kd*dd``, rows from ``oh0 - ph + kh*dh`` and columns from ``ow0 - pw + kw*dw``,
``BLOCK_K`` channels from ``c0``. Patches spanning images fill a tile where one image's plane is small
(``Config.tile_b``: 14 x 14 planes as 16 images x 2 x 2, exact); images past the batch read as zeros and are not
stored.
Strided along height or width (channels innermost), the input is read through a view that folds each stride into
its axis (:func:`tritonconv._descriptors.phase_view`): column ``sw*j + r`` is column ``j``, channels from ``r*C``,
and with a height stride row ``sh*i + q`` of slice ``d`` is row ``i`` at coordinate ``d*H + q`` of the second axis
(an axis stepping one row). A tap's offset ``t`` along a strided axis is then ``t // s`` rows or columns and phase
``t % s``: the boxes of a strided convolution are unit-stride boxes of the view (ResNet's 3x3 and 1x1 stride-2
layers, R3D's 3x3x3 stride-2 ones; the axes must be multiples of their strides).
An NC(D)HW input is read in place the same way, one image per box, as a box of ``[N, C, D, H, W]`` (``BLOCK_K``
channels x ``TILE_H x TILE_W`` positions) transposed for the MMA, where every box starts a row on a
16-byte boundary (:func:`tritonconv._descriptors.nc_boxes_aligned`: 1x1 and (k,1,1) layers, say). Where a width tap's
shift would start it off one (a 3x3 layer's one column), rows of 16-byte multiples that a tile holds whole are read
from column 0 and the width taps move the sum along the rows instead (``NC_SHIFT``,
:func:`tritonconv._descriptors.nc_row_shift`: ResNet's 56-wide rows in tiles 64 wide), ending where each output column
is its own, so that the epilogue stores runs of 16 bytes (:func:`tritonconv.geometry.stored_runs`); a forward
strided 2 along height and width reads them through a view pairing each two rows, boxes twice the tile's width from
the even row's first column or the odd row's, dealt into phases in registers (``NC_DEAL``,
:func:`tritonconv._descriptors.nc_dealt`); other NC(D)HW layers run the pointer kernel.
Coordinates outside the tensor, the zero padding, are filled with zeros by the copy engine, so
the main loop computes no addresses and no masks: one flat loop over (tap, channel chunk) with
scalar coordinates, which the compiler pipelines into asynchronous bulk copies feeding ``wgmma``.
The weight tile is a box of the weight viewed ``[KD, KH, KW, C_out, C_in]`` (reduction channels innermost, the tap
axes first: :func:`taps_first`), or, for a 16-bit weight with its output channels innermost (the input gradient's view
of ``tritonconv.nn``'s layout), ``[KD, KH, KW, C_in, C_out]`` (:func:`weight_view`): no per-call copy of the weight in
either. Where a patch spans rows or images the MMA computes the tile transposed (:func:`positions_as_n`). 1-D and
2-D problems are the 3-D one with unit sizes (as everywhere in tritonconv). The epilogue stores through pointers (any output
layout). The input gradient of a unit-stride convolution is itself such a forward convolution
(:func:`transposed_as_forward`), so the transposed pass takes this kernel too; a strided one (channels innermost)
runs it by stride phase (``PHASED``: each program writes positions ``phase + s*j`` of one phase from the taps
reaching it, whose boxes of the output gradient are unit-stride runs along ``j``). The tuner offers
these configs (``Config.tile_h > 0``) on GPUs of compute capability 9 or more, and there the
heuristic gives them to 16-bit forward problems (measured faster, ``benchmarks/NOTES.md``); the interpreter
runs the same kernel (descriptors are emulated), so CPU tests check it. Host-side descriptors
need Triton 3.4+ (:data:`tritonconv._runtime.TensorDescriptor`).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import triton
import triton.language as tl

from .. import geometry, shapes
from .._checks import ConvSpec
from .._descriptors import (
    as_5d,
    channels_inner,
    describable,
    flat_view,
    input_view,
    nc_boxes_aligned,
    nc_dealt,
    nc_flat,
    nc_last_shift,
    nc_negative_shifts,
    nc_pair_view,
    nc_row_shift,
    nc_volume,
    plane_row_seams,
    plane_taps,
)
from .._runtime import Counters, Descriptors, Direct, device, interpreting, kernel
from .._tile import (
    activate,
    add_apart,
    deal,
    dealt_tap,
    keep_columns,
    meet_splits,
    mma,
    next_step,
    patch,
    shift_rows,
    shift_runs,
    store_across,
)
from ..geometry import Config, as_3d, dot_precision, geometry_3d, needs_int64, strides_3d
from ..shapes import cdiv


@device
def _weight_box(w_desc, c0, n0, kd, kh, kw, KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, FLIP: tl.constexpr,
                W_COLS_INNER: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ROWS_N: tl.constexpr):
    """The weight's ``[BLOCK_K, BLOCK_N]`` operand of tap ``(kd, kh, kw)`` (reversed on every axis with ``FLIP``: a
    true convolution), reduction channels from ``c0``, output channels from ``n0``; ``ROWS_N``: its transpose
    ``[BLOCK_N, BLOCK_K]``, each box transposed once at most."""
    if FLIP:
        kd, kh, kw = KD - 1 - kd, KH - 1 - kh, KW - 1 - kw
    if W_COLS_INNER:  # a box [1, 1, 1, BLOCK_K, BLOCK_N] of [KD, KH, KW, C_in, C_out]: the MMA's operand as is
        box = w_desc.load([kd, kh, kw, c0, n0]).reshape(BLOCK_K, BLOCK_N)
        return tl.trans(box) if ROWS_N else box
    # [1, 1, 1, BLOCK_N, BLOCK_K] of [KD, KH, KW, C_out, C_in], transposed (K-major: what fp8 needs)
    box = w_desc.load([kd, kh, kw, n0, c0]).reshape(BLOCK_N, BLOCK_K)
    return box if ROWS_N else tl.trans(box)


@device
def _row_tap(part, x_desc, w_desc, nb0, n0, d0, oh0, X_STEP, ph, dh, dd, kw, q, k_steps, KD: tl.constexpr,
             KH: tl.constexpr, KW: tl.constexpr, FLIP: tl.constexpr, W_COLS_INNER: tl.constexpr, BLOCK_M: tl.constexpr,
             BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, NC_DEAL: tl.constexpr, UPCAST: tl.constexpr,
             DOT_PRECISION: tl.constexpr):
    """Width tap ``kw``'s products summed into ``part``, NC(D)HW rows read whole (the kernel's ``NC_SHIFT``): a loop
    over its (depth tap, height tap, chunk) steps, channels fastest, by carries; each step a box of ``BLOCK_K``
    channels x whole rows from column 0 of slice ``d0 + kd*dd`` (dealt, ``NC_DEAL`` 2: twice as wide from the even
    row's first column or the odd row's, its columns of phase ``q``), transposed for the MMA."""
    c0, kh, kd = 0, 0, 0
    for _ in range(KD * KH * k_steps):
        if NC_DEAL > 1:  # input row 2*oh + kh*dh - ph: pair (row // 2), the even row from column 0, the odd from column
            qh = kh * dh + ph  # X_STEP (offset by 2*ph: the operands of // and % stay >= 0)
            wide = x_desc.load([nb0, c0, d0 + kd * dd, oh0 + qh // 2 - ph, (qh % 2) * X_STEP])
            a = deal(wide.reshape(BLOCK_K, NC_DEAL * BLOCK_M), q, BLOCK_K, BLOCK_M, NC_DEAL)
        else:
            a = x_desc.load([nb0, c0, d0 + kd * dd, oh0 - ph + kh * dh, 0])
            a = tl.trans(a.reshape(BLOCK_K, BLOCK_M))
        part = mma(part, a, _weight_box(w_desc, c0, n0, kd, kh, kw, KD, KH, KW, FLIP, W_COLS_INNER, BLOCK_N, BLOCK_K,
                                        False), UPCAST, DOT_PRECISION, tl.float32)
        c0, _, kh, kd = next_step(c0, 0, kh, kd, BLOCK_K, k_steps * BLOCK_K, 1, KH)
    return part


@kernel
@triton.jit
def _conv_tma_kernel(
    x_desc, w_desc, b_ptr, s_ptr, si_ptr, y_ptr, taps_ptr, ws_ptr, cnt_ptr,
    C_in, C_out, NB, OD, OH, OW, JD, JH, JW, X_STEP, sd, pd, ph, pw, dd, dh, dw, step_d, step_h, step_w,
    syn, syc, syd, syh, syw, s_step, STEPS_PER_SPLIT, sb,
    KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, FLIP: tl.constexpr, INT64: tl.constexpr, SCALED: tl.constexpr,
    UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr, CHANNELS_INNER: tl.constexpr, W_COLS_INNER: tl.constexpr,
    TILE_B: tl.constexpr, TILE_H: tl.constexpr, TILE_W: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    PHASE_H: tl.constexpr, PHASE_W: tl.constexpr, PHASED: tl.constexpr, TAPLESS: tl.constexpr, SPLIT: tl.constexpr,
    NC_SHIFT: tl.constexpr, NC_NEG: tl.constexpr,
    NC_DEAL: tl.constexpr, POSITIONS_N: tl.constexpr, NC_FLAT: tl.constexpr, NC_VEC: tl.constexpr,
    NC_VOLUME: tl.constexpr, NC_ROW_SEAMS: tl.constexpr, Y_RUN: tl.constexpr, Y_ALIGN: tl.constexpr, Y_ACROSS: tl.constexpr,
    INLINE_PTX: tl.constexpr,
):
    """One program: ``TILE_B x TILE_H x TILE_W`` output positions (images x rows x columns) of one depth slice x
    ``BLOCK_N`` channels.

    Programs run channel tile fastest, so the programs sharing an input patch run together (L2).
    ``SCALED`` (fp8 operands): the epilogue dequantises as the pointer kernel's does (``acc * si * s[n]``);
    the weight tile is loaded K-major, the layout Hopper's fp8 MMA takes for its second operand.

    ``PHASED`` (a strided input gradient, ``x`` the output gradient, channels innermost): program ``pid`` (the phase
    varying fastest: a tile's phases run together, their writes meeting in L2) writes positions ``o = phase + s*j``
    of one stride phase (strides ``sd``, ``PHASE_H``, ``PHASE_W``; ``j`` in
    ``JD x JH x JW``), from the taps reaching that phase, ``count`` of them from ``first`` in steps ``step_*``
    (the host's table ``taps_ptr[phase]``, :func:`tritonconv.shapes.phase_table`); tap ``t`` reads the output
    gradient at ``j + (phase + p - t*d) / s`` (an exact division), so consecutive positions of a phase read a box.
    ``TAPLESS``: some phase no tap reaches (a 1x1 layer's at stride 2), whose programs run no step; otherwise the
    compiler is told every program's loop runs, as where not phased (see ``k_steps`` below). ``Y_ACROSS`` (by phase
    into an NC(D)HW output, a 1-D layer's NCL gradient): the tile stored transposed and flat, a warp's lanes along
    the phase's positions (:func:`tritonconv._tile.store_across`).

    ``SPLIT`` (not with ``PHASED``; outputs under one wave of tiles): program ``(pid, split)`` runs ``STEPS_PER_SPLIT``
    of the flat loop's (tap, channel chunk) steps from ``split * STEPS_PER_SPLIT``, and the partial tiles meet in
    the kernel, added in split order (:func:`tritonconv._tile.meet_splits`: deterministic, one launch).

    ``NC_SHIFT`` (NC(D)HW, unit width stride, ``TILE_W`` columns holding whole rows:
    :func:`tritonconv._descriptors.nc_row_shift`): every box starts its rows at column 0, a 16-byte boundary, and
    the width taps run outermost, each over its (depth tap, height tap, chunk) steps; the products of column ``c``
    of tap ``kw`` belong to output column ``c - s``, ``s = kw*dw - pw`` its shift. 1: the ``NC_NEG`` taps of
    negative shift first in increasing shift, then the others in decreasing shift
    (:func:`tritonconv._descriptors.nc_shift_order`), the sum moved along the rows between taps by constant steps
    (where the padding and dilation are constants), and column ``c`` stored at ``c - s_last``, the last tap's shift
    (0 for 'same' padding: the stored runs start where the output's rows do; in increasing shift the sum ended at
    ``s_max``, one column off); 2: each tap's products summed apart and moved ``-s`` columns into the sum
    (:func:`tritonconv._tile.add_apart`). ``Y_ALIGN`` (not by phase, not planes as rows): the
    output's strides but the width's, its width (and ``s_last``) are multiples of it, which the host checked
    (:func:`tritonconv.geometry.stored_runs`, as the pointer kernel's): the compiler then stores runs of ``Y_ALIGN``
    positions at once, 16 bytes where they are 8 16-bit ones (each one alone before, 400-480 instructions after the
    loops where some 200 do now).
    ``NC_DEAL`` 2 (a forward strided 2 along height and width, :func:`tritonconv._descriptors.nc_dealt`): ``x`` is
    the view pairing each two rows, a box reads ``2 * TILE_W`` columns from the even row's first (column 0) or the
    odd row's (column ``X_STEP``, the input's width), and its columns are dealt into the tap's phase
    (:func:`tritonconv._tile.deal`).

    ``NC_FLAT`` (NC(D)HW planes as rows, :func:`tritonconv._descriptors.plane_taps`): ``x`` the view ``[N, C, D, 1,
    H*W]``, a patch ``TILE_W`` consecutive positions of a plane, a loop per width tap and offset past 16 bytes (the
    bits), the runs moved in registers, the positions whose tap column leaves their row masked
    (:func:`tritonconv._tile.keep_columns`: ``INLINE_PTX``, an AND per register pair where compiled). ``NC_VOLUME``
    (:func:`tritonconv._descriptors.nc_volume`): the view ``[N, C, 1, 1, D*H*W]``, a patch consecutive positions of an
    image's volume, a depth tap a shift too; the loops of ``NC_ROW_SEAMS`` (height taps off the centre row) mask the
    positions whose tap row leaves their plane as well. ``Y_RUN``: the output's positions of a plane (a volume's) are one
    run at stride ``syw`` (any dense layout: :func:`positions_run`), stored at ``p * syw``, where dividing each
    position into its row and column left the epilogue some 3,000 instructions (Triton 3.7 and 3.9; 3.7 spilled there).

    ``POSITIONS_N`` (the flat loop: :func:`positions_as_n`): the MMA computes the tile transposed,
    output channels x positions, the weight's box its first operand and the input's its second, transposed back after
    the loop. A box of several rows or images stays in shared memory only as the second operand.
    """
    BLOCK_M: tl.constexpr = TILE_B * TILE_H * TILE_W
    pid = tl.program_id(0)
    if PHASED:  # the stride phase varies fastest
        phase = pid % (sd * PHASE_H * PHASE_W)
        pid = pid // (sd * PHASE_H * PHASE_W)
    tiles_n = (C_out + BLOCK_N - 1) // BLOCK_N
    n0 = (pid % tiles_n) * BLOCK_N
    if PHASED:  # patches of j; the taps that reach this program's phase
        nb0, jd, jh0, jw0 = patch(pid // tiles_n, JD, (JH + TILE_H - 1) // TILE_H, (JW + TILE_W - 1) // TILE_W,
                                  TILE_B, TILE_H, TILE_W)
        phd = phase // (PHASE_H * PHASE_W)
        phh = (phase // PHASE_W) % PHASE_H
        phw = phase % PHASE_W
        row = taps_ptr + phase * 6
        t0d, cd, t0h, ch, t0w, cw = tl.load(row), tl.load(row + 1), tl.load(row + 2), tl.load(row + 3), \
            tl.load(row + 4), tl.load(row + 5)
        ed, eh, ew = step_d, step_h, step_w
        # tap first + m*e reads dy at j + base - m*in (the divisions are exact: t*d = phase + p (mod s))
        base_d, in_d = (phd + pd - t0d * dd) // sd, ed * dd // sd
        base_h, in_h = (phh + ph - t0h * dh) // PHASE_H, eh * dh // PHASE_H
        base_w, in_w = (phw + pw - t0w * dw) // PHASE_W, ew * dw // PHASE_W
    elif NC_FLAT:  # planes as rows: patches of TILE_W consecutive positions of one (image, depth slice)'s plane, or
        # (NC_VOLUME) of one image's volume
        slices, positions = (1, OD * OH * OW) if NC_VOLUME else (OD, OH * OW)
        nb0, od, oh0, ow0 = patch(pid // tiles_n, slices, 1, (positions + TILE_W - 1) // TILE_W, 1, 1, TILE_W)
        t0d, cd, t0h, ch, t0w, cw, ed, eh, ew = 0, KD, 0, KH, 0, KW, 1, 1, 1
    else:  # every tap, from 0 in steps of 1
        nb0, od, oh0, ow0 = patch(pid // tiles_n, OD, (OH + TILE_H - 1) // TILE_H, (OW + TILE_W - 1) // TILE_W,
                                  TILE_B, TILE_H, TILE_W)
        t0d, cd, t0h, ch, t0w, cw, ed, eh, ew = 0, KD, 0, KH, 0, KW, 1, 1, 1
    md, mh, mw, c0 = 0, 0, 0, 0  # the flat loop's counters: depth, height and width taps, channel chunk

    # (at least 1, as it is for any C_in, so that the compiler sees the loop run: a loop it thinks may run no step
    # has a path around it that zeroes the accumulator between its last MMA and the wait for it, and ptxas then
    # waits out every MMA)
    k_steps = tl.maximum((C_in + BLOCK_K - 1) // BLOCK_K, 1)
    first, last = 0, cd * ch * cw * k_steps
    if PHASED and not TAPLESS:  # (every stride phase has taps; a phase no tap reaches runs no step)
        tl.assume(last > first)
    if SPLIT:  # this split's run of the flat loop's steps (none empty: geometry.step_splits)
        first = tl.program_id(1) * STEPS_PER_SPLIT
        last = tl.minimum(first + STEPS_PER_SPLIT, last)
        tl.assume(last > first)
        c0 = (first % k_steps) * BLOCK_K  # its first step's chunk and taps, divided once; then by carries
        t = first // k_steps
        mw, mh, md = t % cw, (t // cw) % ch, t // (cw * ch)
    if POSITIONS_N:
        acc = tl.full((BLOCK_N, BLOCK_M), 0.0, tl.float32)
    else:
        acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    if NC_SHIFT == 1:  # NC(D)HW rows read whole from column 0, the width taps moving the sum along the rows, in
        # _descriptors.nc_shift_order: the NC_NEG taps of negative shift first, in increasing shift, then the others in
        # decreasing shift, so that the sum ends at the least shift >= 0
        col_in = tl.arange(0, BLOCK_M) % TILE_W  # a position's column in its row
        if NC_DEAL > 1:  # dealt: the taps unrolled, so that each tap's phase (where the padding and dilation are
            # constants, its shift and move too) is a constant: no selects
            for i in tl.static_range(KW):
                kw = i if i < NC_NEG else KW - 1 - i + NC_NEG
                q, s = dealt_tap(kw, pw, dw, NC_DEAL)
                acc = _row_tap(acc, x_desc, w_desc, nb0, n0, od * sd - pd, oh0, X_STEP, ph, dh, dd, kw, q, k_steps, KD,
                               KH, KW, FLIP, W_COLS_INNER, BLOCK_M, BLOCK_N, BLOCK_K, NC_DEAL, UPCAST, DOT_PRECISION)
                if i < KW - 1:  # the sum so far moves to the next tap's shift (either way, or not at all)
                    move = dealt_tap(i + 1 if i + 1 < NC_NEG else KW - 2 - i + NC_NEG, pw, dw, NC_DEAL)[1] - s
                    if move != 0:
                        acc = shift_rows(acc, move, col_in, BLOCK_M, TILE_W)
        else:  # unit stride: one loop over the taps (unrolled, on Triton 3.6 every copy of the steps' loop, whose MMA
            # reads its box from shared memory, waited out every MMA), the move after each a branch of constant steps
            # (one step the compiler cannot see moves the sum some 400 instructions dearer): dw right between the
            # negative shifts, on to the largest after the last of them, dw left after that
            for i in tl.range(KW):
                kw = tl.where(i < NC_NEG, i, KW - 1 - i + NC_NEG)
                acc = _row_tap(acc, x_desc, w_desc, nb0, n0, od * sd - pd, oh0, X_STEP, ph, dh, dd, kw, 0, k_steps, KD,
                               KH, KW, FLIP, W_COLS_INNER, BLOCK_M, BLOCK_N, BLOCK_K, 1, UPCAST, DOT_PRECISION)
                if i < NC_NEG - 1:
                    acc = shift_rows(acc, dw, col_in, BLOCK_M, 0)
                elif i == NC_NEG - 1:
                    acc = shift_rows(acc, (KW - NC_NEG) * dw, col_in, BLOCK_M, 0)
                elif i < KW - 1:
                    acc = shift_rows(acc, -dw, col_in, BLOCK_M, TILE_W)
    elif NC_SHIFT == 2:  # ... each width tap's products summed apart and moved -s columns into the sum (a 0 shift's
        # summed into it)
        col_in = tl.arange(0, BLOCK_M) % TILE_W
        for kw in tl.range(KW, loop_unroll_factor=KW if NC_DEAL > 1 else 1):  # (dealt: unrolled, as above)
            q, s = dealt_tap(kw, pw, dw, NC_DEAL) if NC_DEAL > 1 else (0, kw * dw - pw)
            part = acc
            if s != 0:
                part = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
            part = _row_tap(part, x_desc, w_desc, nb0, n0, od * sd - pd, oh0, X_STEP, ph, dh, dd, kw, q, k_steps, KD, KH,
                            KW, FLIP, W_COLS_INNER, BLOCK_M, BLOCK_N, BLOCK_K, NC_DEAL, UPCAST, DOT_PRECISION)
            acc = add_apart(acc, part, s, col_in, BLOCK_M, TILE_W)
    elif NC_FLAT:  # each plane one row (the view [N, C, D, 1, H*W]), tap (kd, kh, kw) shifting it (kh*dh - ph) * OW +
        # kw*dw - pw: a loop per width tap and offset `off` past 16 bytes (_descriptors.plane_taps: every depth tap and
        # every `period`-th height tap from the loop's first, in the host's table), its boxes from the boundary below and
        # NC_VEC on, each run read `off` columns on in registers; the positions whose column kw*dw - pw on leaves their
        # row (read the row before's or after's) masked
        col_in = (ow0 + tl.arange(0, BLOCK_M)) % OW  # a position's column in its row (the output as wide as x)
        row_in = ((ow0 + tl.arange(0, BLOCK_M)) // OW) % OH  # (volumes: its row in its plane, as tall as x's)
        rows_kept = tl.full([BLOCK_M], 0, tl.int32)  # (volumes: bit kh where height tap kh keeps a position's row inside)
        if NC_VOLUME:
            for t in tl.static_range(KH):
                rows_kept |= ((row_in + (t * dh - ph) >= 0) & (row_in + (t * dh - ph) < OH)).to(tl.int32) << t
        period = tl.load(taps_ptr + KW * NC_VEC)
        for kw in tl.static_range(KW):
            c = kw * dw - pw
            keep = (col_in + c >= 0) & (col_in + c < OW)
            kept = tl.where(keep, rows_kept, 0)
            for off in tl.static_range(NC_VEC):
                if (NC_FLAT >> (kw * NC_VEC + off)) & 1:
                    kh_first = tl.load(taps_ptr + kw * NC_VEC + off)
                    kh, kd, c0 = kh_first, 0, 0
                    for _ in range(KD * ((KH - kh_first + period - 1) // period) * k_steps):
                        if NC_VOLUME:  # (a volume: the depth tap a shift too, slices as deep as x's)
                            start = ow0 + ((kd * dd - pd) * OH + kh * dh - ph) * OW + c - off  # (a multiple of NC_VEC)
                            id_ = 0
                        else:
                            start = ow0 + (kh * dh - ph) * OW + c - off
                            id_ = od * sd - pd + kd * dd
                        if off == 0:
                            a = x_desc.load([nb0, c0, id_, 0, start]).reshape(BLOCK_K, BLOCK_M)
                        else:
                            lo = x_desc.load([nb0, c0, id_, 0, start]).reshape(BLOCK_K, BLOCK_M)
                            hi = x_desc.load([nb0, c0, id_, 0, start + NC_VEC]).reshape(BLOCK_K, BLOCK_M)
                            a = shift_runs(lo, hi, off, BLOCK_K, BLOCK_M, NC_VEC)
                        if (NC_ROW_SEAMS >> (kw * NC_VEC + off)) & 1:  # the rows' and the planes' seams (volumes)
                            a = keep_columns(a, ((kept >> kh) & 1) != 0, INLINE_PTX)
                        elif c != 0:
                            a = keep_columns(a, keep, INLINE_PTX)
                        acc = mma(acc, tl.trans(a), _weight_box(w_desc, c0, n0, kd, kh, kw, KD, KH, KW, FLIP,
                                                                W_COLS_INNER, BLOCK_N, BLOCK_K, False), UPCAST,
                                  DOT_PRECISION, tl.float32)
                        c0 += BLOCK_K  # the next (chunk, height tap, depth tap), by carries
                        tap_done = c0 >= k_steps * BLOCK_K
                        c0 = tl.where(tap_done, 0, c0)
                        kh = tl.where(tap_done, kh + period, kh)
                        rows_done = kh >= KH
                        kh = tl.where(rows_done, kh_first, kh)
                        kd = tl.where(rows_done, kd + 1, kd)
    else:
        # one flat loop over (tap, channel chunk), scalar index math only: the counters (md, mh, mw, c0) carried
        # forward, not divided out of a step index (a runtime divisor costs some 20 instructions a step)
        for _ in range(first, last):
            kd, kh, kw = t0d + md * ed, t0h + mh * eh, t0w + mw * ew
            if PHASED:  # a box [TILE_B, 1, TILE_H, TILE_W, BLOCK_K] of the output gradient, NDHWC
                a = x_desc.load([nb0, jd + base_d - md * in_d, jh0 + base_h - mh * in_h, jw0 + base_w - mw * in_w, c0])
                a = a.reshape(BLOCK_M, BLOCK_K)
            else:
                if CHANNELS_INNER:  # a box [TILE_B, 1, TILE_H, TILE_W, BLOCK_K] of NDHWC: positions x channels
                    if PHASE_H * PHASE_W == 1:
                        a = x_desc.load([nb0, od * sd - pd + kd * dd, oh0 - ph + kh * dh, ow0 - pw + kw * dw, c0])
                    else:  # strided: the phase view (_descriptors.phase_view); offsets made >= 0 before // and %
                        qh = kh * dh - ph + PHASE_H * ph  # (the tap's row offset) + PHASE_H * ph
                        qw = kw * dw - pw + PHASE_W * pw
                        col, chan = ow0 + qw // PHASE_W - pw, (qw % PHASE_W) * C_in + c0
                        if PHASE_H == 1:
                            a = x_desc.load([nb0, od * sd - pd + kd * dd, oh0 - ph + kh * dh, col, chan])
                        else:  # axis 1 steps rows: slice (od*sd - pd + kd*dd), row phase qh % PHASE_H
                            a = x_desc.load([nb0, (od * sd - pd + kd * dd) * X_STEP + qh % PHASE_H, oh0 + qh // PHASE_H - ph,
                                             col, chan])
                    a = a.reshape(BLOCK_M, BLOCK_K)
                else:  # NC(D)HW (TILE_B = 1): a box [1, BLOCK_K, 1, TILE_H, TILE_W], channels x positions, transposed for the MMA
                    a = x_desc.load([nb0, c0, od * sd - pd + kd * dd, oh0 - ph + kh * dh, ow0 - pw + kw * dw])
                    a = tl.trans(a.reshape(BLOCK_K, BLOCK_M))
            if POSITIONS_N:  # acc^T += w^T a^T: the input's box the MMA's second operand, in shared memory
                wt = _weight_box(w_desc, c0, n0, kd, kh, kw, KD, KH, KW, FLIP, W_COLS_INNER, BLOCK_N, BLOCK_K, True)
                acc = mma(acc, wt, tl.trans(a), UPCAST, DOT_PRECISION, tl.float32)
            else:
                b = _weight_box(w_desc, c0, n0, kd, kh, kw, KD, KH, KW, FLIP, W_COLS_INNER, BLOCK_N, BLOCK_K, False)
                acc = mma(acc, a, b, UPCAST, DOT_PRECISION, tl.float32)
            # the next (tap, chunk): channels fastest, then width, height and depth taps, by carries
            c0, mw, mh, md = next_step(c0, mw, mh, md, BLOCK_K, k_steps * BLOCK_K, cw, ch)
        if POSITIONS_N:
            acc = tl.trans(acc)

    finish = True
    if SPLIT:  # the splits' partial tiles meet in the last split to arrive, added in split order
        acc, finish = meet_splits(acc, ws_ptr, cnt_ptr, pid, tl.num_programs(0), tl.program_id(1), tl.num_programs(1),
                                  BLOCK_M, BLOCK_N)
    if finish:
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask_n = offs_n < C_out
        if SCALED:
            acc = acc * (tl.load(s_ptr + offs_n * s_step, mask=mask_n, other=0.0) * tl.load(si_ptr))[None, :]
        if HAS_BIAS:
            acc += tl.load(b_ptr + offs_n * sb, mask=mask_n, other=0.0).to(tl.float32)[None, :]
        acc = activate(acc, ACTIVATION)
        r = tl.arange(0, BLOCK_M)
        nb = nb0 + r // (TILE_H * TILE_W)
        if PHASED:  # o = phase + s*j
            od = phd + sd * jd + 0 * r  # a vector: the interpreter's & of a scalar and a vector mask is not boolean
            oh = phh + PHASE_H * (jh0 + (r // TILE_W) % TILE_H)
            ow = phw + PHASE_W * (jw0 + r % TILE_W)
            inside = (nb < NB) & (od < OD) & (oh < OH) & (ow < OW)
        elif NC_FLAT:  # a plane's position p (a volume's: NC_VOLUME, od 0), of JW
            p = ow0 + r
            inside = (nb < NB) & (p < JW)
            if Y_RUN:  # the output's positions one run at stride syw (any dense layout): p itself, no division
                oh, ow = 0, p
            else:  # p at its (row, column); a volume's its slice too, added below
                oh = p // OW
                ow = p % OW
                if NC_VOLUME:
                    oh = oh % OH
        else:
            oh = oh0 + (r // TILE_W) % TILE_H
            ow = ow0 + r % TILE_W
            if NC_SHIFT == 1:  # column c holds output column c - s, s the last tap's shift (the least >= 0)
                s_last = dealt_tap(NC_NEG, pw, dw, NC_DEAL)[1] if NC_DEAL > 1 else NC_NEG * dw - pw
                if Y_ALIGN > 1:  # (a multiple of Y_ALIGN: the host's word)
                    s_last = s_last // Y_ALIGN * Y_ALIGN
                ow -= s_last
            ow_end = OW
            if Y_ALIGN > 1:  # the output's strides but the width's and its width multiples of Y_ALIGN (the host's
                # word), so that the compiler stores runs of Y_ALIGN positions at once
                syn, syc, syd, syh = syn // Y_ALIGN * Y_ALIGN, syc // Y_ALIGN * Y_ALIGN, syd // Y_ALIGN * Y_ALIGN, \
                    syh // Y_ALIGN * Y_ALIGN
                ow_end = OW // Y_ALIGN * Y_ALIGN
            inside = (nb < NB) & (oh < OH) & (ow >= 0) & (ow < ow_end)
        if INT64:
            nb = nb.to(tl.int64)
            offs_n = offs_n.to(tl.int64)
            ow = ow.to(tl.int64)  # (a run's position: an image's worth of strides)
        y_rows = nb * syn + od * syd + oh * syh + ow * syw
        if NC_VOLUME and not Y_RUN:
            y_rows += (p // (OH * OW)).to(nb.dtype) * syd
        if Y_ACROSS:
            store_across(y_ptr, y_rows, offs_n * syc, acc, inside, mask_n, BLOCK_M, BLOCK_N)
        else:
            tl.store(y_ptr + (y_rows[:, None] + (offs_n * syc)[None, :]), acc.to(y_ptr.dtype.element_ty),
                     mask=inside[:, None] & mask_n[None, :])


def transposed_as_forward(spec: ConvSpec) -> ConvSpec:
    """The input gradient of a unit-stride convolution as a forward one (then run by this kernel).

    ``dx[i] = sum_t dy[i + p - t*d] w[t]`` is the forward convolution of ``dy`` with the kernel
    reversed (``t' = K-1-t``), its channel axes swapped, and padding ``(K-1)*d - p`` before each
    axis (negative when ``p`` is larger: the boxes then start inside ``dy``).
    """
    kernel = spec.weight_shape[2:]
    pads = tuple(((k - 1) * d - before, 0) for k, d, (before, _) in zip(kernel, spec.dilation, spec.padding))
    c_out, c_in = spec.weight_shape[:2]
    return dataclasses.replace(spec, padding=pads, input_shape=spec.output_shape, output_shape=spec.input_shape,
                               weight_shape=(c_in, c_out, *kernel))


def taps_first(weight: torch.Tensor) -> tuple[list[int], list[int]]:
    """Sizes and strides of a weight view ``[O, I, ...]`` (``I`` innermost) as ``[KD, KH, KW, O, I]``: its
    descriptor's box ``[1, 1, 1, rows, columns]`` is a matrix with unit axes leading, which Triton keeps in shared memory
    as either operand of the MMA (a box ``[rows, 1, 1, 1, columns]`` it reshapes in registers as the first)."""
    sizes, strides = as_5d(weight)  # [O, KD, KH, KW, I]
    return [*sizes[1:4], sizes[0], sizes[4]], [*strides[1:4], strides[0], strides[4]]


def weight_view(weight: torch.Tensor) -> torch.Tensor | None:
    """The weight as its descriptor reads it, channels innermost: ``weight`` itself when its reduction (input)
    channels are innermost, ``weight.transpose(0, 1)`` when a 16-bit weight has its output channels innermost
    (the MMA takes that operand N-major; fp8 and tf32 need it K-major); else None (to be laid out first)."""
    if weight.stride(1) == 1:
        return weight
    if weight.stride(0) == 1 and weight.element_size() == 2:
        return weight.transpose(0, 1)
    return None


def laid_out(weight: torch.Tensor, transposed: bool = False) -> bool:
    """Whether a pass of this kernel (``transposed``: the input gradient) lays ``weight`` out per call
    (:func:`lay_out`): when it has no :func:`weight_view` and its reduction channels are not innermost already."""
    forward = weight.transpose(0, 1) if transposed else weight  # the transposed pass runs as a forward one
    return weight_view(forward) is None and not geometry.is_channels_inner(forward)


def lay_out(weight: torch.Tensor, transposed: bool = False) -> torch.Tensor:
    """``weight`` copied with its reduction channels innermost: the input channels (forward), the output channels
    (``transposed``); in the caller's shape."""
    if transposed:
        return geometry.channels_inner(weight.transpose(0, 1)).transpose(0, 1)
    return geometry.channels_inner(weight)


def phased(spec: ConvSpec, transposed: bool) -> bool:
    """Whether the pass runs by stride phase (``PHASED``): an input gradient strided on some axis."""
    return transposed and any(s != 1 for s in spec.stride)


def usable(x: torch.Tensor, weight: torch.Tensor, spec: ConvSpec, config: Config, transposed: bool = False) -> bool:
    """Whether this kernel computes the problem with ``config``'s tiles: one group, a channel axis of the weight
    innermost (:func:`weight_view`), ``x`` channels-innermost or width-innermost (NC(D)HW: then box rows of
    16-byte multiples, or planes of them), 16-byte strides; unit stride along height and width, or (forward, channels
    innermost) strides its :func:`input view <tritonconv._descriptors.phase_view>` folds, with tiles of whole channel
    chunks (a box never reaches the next column's channels). NC(D)HW: one image per box, and boxes starting on 16
    bytes or rows read whole (:func:`tritonconv._descriptors.nc_row_shift`, unsplit), or planes read as rows in patches
    of one row (:func:`tritonconv._descriptors.nc_flat`, unsplit).
    ``transposed``: the input gradient of the convolution ``spec`` (``x`` its output gradient, ``weight`` its
    weight): a forward convolution at unit stride, else by stride phase (``x`` channels innermost). The base
    addresses must be 16-byte aligned too (:func:`tritonconv._descriptors.aligned`, checked per call: a view may
    start anywhere)."""
    if transposed:
        weight = weight.transpose(0, 1)
        if phased(spec, transposed):
            view = weight_view(weight)
            return (spec.groups == 1 and view is not None and x.dtype != torch.float64 and channels_inner(x)
                    and describable(x) and describable(view))
        spec = transposed_as_forward(spec)
    view = weight_view(weight)
    if spec.groups != 1 or view is None or x.dtype == torch.float64:  # fp32 accumulator
        return False
    if not channels_inner(x):  # one image per box; boxes on 16 bytes as they are, or rows whole (unsplit), or dealt,
        # or planes as rows (patches of one row, unsplit)
        shift = _nc_shift(x, spec, config)
        as_they_are = not nc_dealt(spec) and nc_boxes_aligned(spec, config.patch(config.block_m)[2], x.element_size())
        if nc_flat(spec, x.element_size()):
            if config.tile_b > 1 or config.tile_h != 1 or config.split_k > 1:
                return False
        elif config.tile_b > 1 or (shift and config.split_k > 1) or not (shift or as_they_are):
            return False
    return describable(x, _x_view(x, spec, config)[1]) and describable(view)


def positions_as_n(inner: bool, nc_shift: int, config: Config, element_size: int, tf32: bool = False,
                   flat: bool = False) -> bool:
    """Whether the kernel's MMA computes its tile transposed (``POSITIONS_N``): output channels as the MMA's rows, the
    positions as its columns. Triton (3.6, 3.9) keeps a box in shared memory as the MMA's first operand only where its
    unit axes lead: a channels-innermost box spanning rows or images (``tile_b * tile_h > 1``) or an NC(D)HW one
    (channels x positions) it reshapes in registers there (``LDSM`` loads into registers before each ``wgmma``: more
    instructions a step and more registers), but not as the second, where Hopper's MMA reads both operands from shared
    memory (``tests/test_compile.py``). The first operand's rows are then the output channels: at
    least 64 (one warp group's MMA rows); 16- or 8-bit channels innermost, or fp32 ones multiplied in TF32 (``tf32``:
    the patch then stays in shared memory, 1.5-1.8 warp instructions per 1000 multiply-adds of the suite's 3x3 layers
    on sm_90 where it went through registers at 1.9-2.2; IEEE products are FMA loops, and transposed they spilled
    0.8-1.9 KB), 16-bit NC(D)HW (8-bit and TF32 MMAs read their second operand K-major); not the NC(D)HW rows read
    whole (``NC_SHIFT``: their sum moves along the tile's rows), nor planes read as rows (``flat``, ``NC_FLAT``: the
    operand moved and masked in registers; as the second operand, stored back to shared memory each step, the MMA must
    finish before the next step's store: ptxas waits for it, where loaded into registers as the first (``LDSM``) it
    does not, though ``c3d_conv3a``'s loops then issue 127-214 instructions a step, not 109-186)."""
    if config.block_n < 64 or flat:
        return False
    if inner:
        return config.tile_b * config.tile_h > 1 and (element_size <= 2 or tf32)
    return not nc_shift and element_size == 2


def _nc_shift(x: torch.Tensor, spec: ConvSpec, config: Config) -> int:
    """The kernel's ``NC_SHIFT`` for ``x`` (:func:`tritonconv._descriptors.nc_row_shift`; 0 channels innermost)."""
    if channels_inner(x):
        return 0
    return nc_row_shift(spec, config.patch(config.block_m)[2], x.element_size(), config.accumulator)


def volume_fits(config: Config) -> bool:
    """Whether ``config``'s tiles read NC(D)HW volumes as rows (:func:`tritonconv._descriptors.nc_volume`): at most 64
    accumulator elements a thread. At 128 (128 x 128 tiles on 4 warps) ptxas holds 255 registers and Triton 3.6's spills
    4-8 bytes on ``c3d_conv3a``'s and R(2+1)D's input gradients, where reading each plane as a row holds 242 and spills
    none. At 64 none spills on Triton 3.6, 3.7 or 3.9 (every descriptor candidate of both layers; 150-157 registers on
    64 x 128 tiles on 4 warps). Before the epilogue stored runs (``Y_RUN``), Triton 3.9 spilled 360-3,340 bytes on
    tiles of more than 16 output channels a warp, which this rule then refused."""
    return config.accumulator <= 64


def _volume(x: torch.Tensor, spec: ConvSpec, config: Config) -> bool:
    """Whether a forward reading ``x``'s planes as rows reads its volumes as rows (:func:`tritonconv._descriptors.nc_volume`,
    its depth slices dense, :func:`volume_fits`)."""
    return nc_volume(spec) and volume_fits(config) and flat_view(x, True) is not None


def _x_view(x: torch.Tensor, spec: ConvSpec, config: Config) -> list[list[int]]:
    """Sizes then strides of the forward input view the descriptor reads (:func:`tritonconv._descriptors.input_view`;
    an NC(D)HW one strided 2, :func:`tritonconv._descriptors.nc_pair_view`; planes as rows,
    :func:`tritonconv._descriptors.flat_view`); ``[[], [0]]`` (no view a descriptor takes) where there is none."""
    if not channels_inner(x) and nc_dealt(spec):
        view = nc_pair_view(x)
    elif not channels_inner(x) and nc_flat(spec, x.element_size()):
        view = flat_view(x, True) if _volume(x, spec, config) else flat_view(x)
    else:
        view = input_view(x, spec, config.block_k)
    return [[], [0]] if view is None else list(view)


def positions_run(y: torch.Tensor, volume: bool = False) -> bool:
    """Whether the positions of each of ``y``'s planes (``volume``: of each image's volume) are one run at the width's
    stride: each row's pitch a row's positions' and (``volume``) each depth slice's a plane's, as in any dense
    layout (a slice of a wider tensor's is not)."""
    _, _, sd, sh, sw = strides_3d(y)
    d, h, w = as_3d(y.shape[2:], 1)
    return (h == 1 or sh == w * sw) and (not volume or d == 1 or sd == h * w * sw)


class Launch:
    """:func:`_conv_tma_kernel` prepared for tensors laid out as ``x``, ``weight``, ``y``: a forward
    convolution (``x`` channels- or width-innermost, a channel axis of ``weight`` innermost, :func:`usable`
    and :func:`tritonconv._descriptors.aligned`; ``config.tile_h > 0``), or with ``transposed`` the input
    gradient of ``spec`` (``x`` the output gradient, ``weight`` the convolution's, ``y`` the input gradient): at
    unit stride as a forward convolution (:func:`transposed_as_forward`), else by stride phase. Calling it gets
    the two descriptors (:class:`tritonconv._runtime.Descriptors`) and launches; returns ``y``. A call reads only
    its tensors' addresses, dtype and device (the weight's address is its transpose's too): their sizes and
    strides are the ones this was prepared for."""

    def __init__(self, x, weight, bias, y, spec: ConvSpec, activation: str | None, flip: bool,
                 config: Config, scale_step: int | None = None, transposed: bool = False) -> None:
        interp = interpreting(x.device)
        by_phase = phased(spec, transposed)
        if transposed:  # channel axes swapped; at unit stride the kernel reversed (a forward convolution)
            weight = weight.transpose(0, 1)
            if not by_phase:
                spec, flip = transposed_as_forward(spec), not flip
        tile_b, tile_h, tile_w = config.patch(config.block_m)
        inner = channels_inner(x)
        # NC(D)HW rows read whole where a tap's box would start off 16 bytes (_descriptors.nc_row_shift; unsplit), a
        # forward strided 2 dealt from boxes twice as wide (_descriptors.nc_dealt)
        nc_shift = 0 if by_phase else _nc_shift(x, spec, config)
        dealt = 2 if nc_shift and nc_dealt(spec) else 1
        # NC(D)HW planes as rows (_descriptors.plane_taps: the width taps and offsets some tap takes, and their table)
        flat, plane_table = plane_taps(spec, x.element_size()) if not inner and nc_flat(spec, x.element_size()) \
            else (0, None)
        volume = bool(flat) and _volume(x, spec, config)  # ... each image's volume as one row (_descriptors.nc_volume)
        box = [tile_b, 1, tile_h, tile_w, config.block_k] if inner else [1, config.block_k, 1, tile_h, dealt * tile_w]
        if not inner and (tile_w * x.element_size() % 16 or tile_b > 1 or by_phase):
            raise ValueError(f"an NC(D)HW box needs rows of 16-byte multiples, one image and no stride phases, got "
                             f"tile width {tile_w}, {tile_b} images and strides {spec.stride}")
        self.x_layout = (*(as_5d(x) if by_phase else _x_view(x, spec, config)), box)
        cols_inner = weight_view(weight) is not weight  # output channels innermost: boxes of reduction x columns
        self.w_layout = (*taps_first(weight_view(weight)), [1, 1, 1, config.block_k, config.block_n] if cols_inner
                         else [1, 1, 1, config.block_n, config.block_k])
        _, xh, _, od, oh, ow, sd, sh, sw, pd, ph, pw, dd, dh, dw = geometry_3d(x.shape[2:], y.shape[2:], spec)
        c_out, c_in = spec.weight_shape[:2] if not by_phase else reversed(spec.weight_shape[:2])
        m = y.shape[0] * od * oh * ow
        self.empty = m == 0
        if by_phase:  # positions o = phase + s*j per axis, j in jd x jh x jw; the taps reaching each phase
            jd, jh, jw = cdiv(od, sd), cdiv(oh, sh), cdiv(ow, sw)
            steps, table = shapes.phase_table(as_3d(spec.weight_shape[2:], 1), (sd, sh, sw), (pd, ph, pw), (dd, dh, dw))
            self.taps = torch.tensor(table, dtype=torch.int32, device=x.device)
        else:
            (jd, jh, jw), steps, self.taps = (od, oh, ow), (1, 1, 1), None
            if flat:  # patches along each plane's (volume's) positions
                (jh, jw), self.taps = (1, oh * ow), torch.tensor(plane_table, dtype=torch.int32, device=x.device)
                if volume:
                    jd, jw = 1, od * oh * ow
        tiles = (cdiv(c_out, config.block_n) * cdiv(y.shape[0], tile_b) * jd * cdiv(jh, tile_h)
                 * cdiv(jw, tile_w))
        steps_total = math.prod(spec.weight_shape[2:]) * cdiv(c_in, config.block_k)  # (tap, chunk) steps
        per_split, self.splits = geometry.step_splits(steps_total, 1 if by_phase or nc_shift or flat else config.split_k)
        self.grid = (tiles * sd * sh * sw, 1) if by_phase else (tiles, self.splits)  # (by phase: phases fastest)
        self.workspace_elems = self.splits * tiles * config.block_m * config.block_n  # fp32 partial tiles
        self.counters = Counters(tiles)  # the output tiles' tickets, per stream (split launches)
        x_step = x.shape[-1] if dealt > 1 else xh  # the view's step: a pair's odd row's column, or a slice's rows
        self.args = (c_in, c_out, y.shape[0], od, oh, ow, jd, jh, jw, x_step, sd, pd, ph, pw, dd, dh, dw, *steps,
                     *strides_3d(y), scale_step or 0, per_split, geometry.bias_step(bias), *as_3d(spec.weight_shape[2:], 1))
        self.kwargs = dict(
            HAS_BIAS=bias is not None, ACTIVATION=activation, FLIP=flip, INT64=needs_int64(y, rows=m),
            SCALED=scale_step is not None,
            UPCAST=interp and x.dtype == torch.bfloat16, DOT_PRECISION=dot_precision(x.dtype, interp),
            CHANNELS_INNER=inner, W_COLS_INNER=cols_inner,
            TILE_B=tile_b, TILE_H=tile_h, TILE_W=tile_w, BLOCK_N=config.block_n, BLOCK_K=config.block_k,
            PHASE_H=sh if inner else 1, PHASE_W=sw if inner else 1, PHASED=by_phase,
            TAPLESS=by_phase and shapes.tapless_phase(table), SPLIT=self.splits > 1,
            NC_SHIFT=nc_shift, NC_NEG=nc_negative_shifts(spec) if nc_shift == 1 else 0, NC_DEAL=dealt, NC_FLAT=flat,
            NC_VEC=16 // x.element_size(),
            NC_VOLUME=volume, NC_ROW_SEAMS=plane_row_seams(spec, x.element_size()) if volume else 0,
            Y_RUN=bool(flat) and positions_run(y, volume),
            Y_ALIGN=1 if by_phase or flat else geometry.stored_runs(y, nc_last_shift(spec) if nc_shift == 1 else None),
            Y_ACROSS=by_phase and geometry.stored_across(y, spec.stride[-1]),
            POSITIONS_N=positions_as_n(inner, nc_shift, config, x.element_size(), geometry.allows_tf32(x.dtype),
                                       bool(flat)),
            INLINE_PTX=not interp,
            num_warps=config.num_warps, num_stages=config.num_stages,
        )
        self.nc_shift = nc_shift  # how NC(D)HW rows are read whole (_descriptors.nc_row_shift; 0: not)
        self.nc_flat = bool(flat)  # ... or NC(D)HW planes read as rows (_descriptors.plane_taps)
        self.nc_volume = volume
        self.launcher = Direct(_conv_tma_kernel, self.args, self.kwargs)  # JITFunction.run once, then its launcher
        self.x_desc, self.w_desc = Descriptors(self.launcher, *self.x_layout), Descriptors(self.launcher, *self.w_layout)

    def __call__(self, x, weight, bias, y, scales: tuple | None = None) -> torch.Tensor:
        """Get the descriptors and launch; ``scales``: (weight scale, input scale) with fp8."""
        if not self.empty:
            w_scale, x_scale = scales if scales is not None else (y, y)
            ws, cnt = ((geometry.alloc_output((self.workspace_elems,), x.device, torch.float32), self.counters(x.device))
                       if self.splits > 1 else (y, y))
            self.launcher(x.device, self.grid, self.x_desc(x), self.w_desc(weight), bias if bias is not None else weight,
                          w_scale, x_scale, y, y if self.taps is None else self.taps, ws, cnt)
        return y
