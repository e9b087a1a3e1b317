"""N-d convolution forward as an implicit GEMM, one kernel for 1D, 2D and 3D.

Every problem is seen as 3-D: a 1-D input ``(N, C, L)`` is ``(N, C, 1, 1, L)`` and a 2-D one
``(N, C, 1, H, W)``, through sizes and strides only (no copy). Per group ``g`` the GEMM is

    Y[m, n] = sum_k X[m, k] * W[k, n]
    m = (batch, od, oh, ow)            M = N * OD * OH * OW   (output positions)
    n = output channel in group g      N = C_out / groups     (output channels)
    k = (kd, kh, kw, input channel)    K = C_in / groups * KD * KH * KW

with ``X[m, k] = x[b, g*C_in_g + c, od*sd - pd + kd*dd, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]``
(zero outside the input). The reduction is one loop over (tap, ``BLOCK_K`` chunk of input
channels): the tap indices come from the loop counter by scalar div/mod, and the tap's input
coordinates and bounds mask are a few vector operations on the tile's precomputed output
coordinates (no per-element div/mod). One flat loop rather than a loop per tap axis lets the
compiler's software pipeline overlap the loads of the next tap with the current products.

Layout: the kernel reads and writes every tensor in place, through its strides. With channels
innermost (NLC, NHWC, NDHWC) a tile's loads run along channels; with the width axis innermost
(NCL, NCHW, NCDHW) a tile of ``BLOCK_M`` positions is ``BLOCK_M / BLOCK_W`` rows of ``BLOCK_W``
consecutive columns (:mod:`tritonconv._tile`), so its loads of the input and stores of the output
run along the rows (``BLOCK_W = 0``: flat tiles). A width tap one column off starts those loads off their
vector boundaries (2-byte loads); where the rows allow (``ROW_VEC``, :func:`tritonconv.geometry.aligned_rows`:
whole rows in a tile or a long row in segments; a forward with no padding, each plane as one row at the input's
pitch, ``FLAT``: :func:`tritonconv.geometry.aligned_planes`; a forward's width stride, each row read ``DEAL`` times as
wide and dealt into phases, :func:`tritonconv._tile.deal`; an input gradient's, by stride phase) a tile reads the input
at its own columns in aligned runs and the width taps move the sum (or their products) along the rows instead. Where
those decline (rows no tile holds whole with their padding, one step per tap), ``RUN_VEC``: each width tap reads its
own columns in runs, a tap off a run boundary each run and the next, read the columns on it is off, in registers
(:func:`tritonconv.geometry.row_runs`, :func:`tritonconv._tile.shift_runs`). No
operand is copied into another layout; only a weight with neither channel axis innermost may be, by the dispatcher
(:data:`tritonconv.geometry.WEIGHT_COPY_MACS`).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .. import geometry, shapes
from .._checks import ConvSpec
from .._runtime import Counters, Direct, capability, interpreting, kernel
from .._runtime import target_options as _target_options
from .._tile import (
    activate,
    add_apart,
    axis_tap,
    deal,
    dealt_tap,
    fragment,
    meet_splits,
    mma,
    next_step,
    position_tiles,
    run_kind,
    shift_rows,
    shift_runs,
    store_across,
    tap,
    tile_positions,
    weight_tap,
)
from ..geometry import Config, as_3d, dot_precision, geometry_3d, needs_int64, split_sizes, strides_3d, tap_strides
from ..shapes import cdiv


@kernel
@triton.jit
def _conv_kernel(
    x_ptr, w_ptr, b_ptr, s_ptr, si_ptr, y_ptr, ws_ptr, cnt_ptr, taps_ptr,
    M, C_in_g, C_out_g, D, H, W, OD, OH, OW,
    sd, sh, sw, pd, ph, pw, dd, dh, dw,
    sxn, sxc, sxd, sxh, sxw,
    swg, swn, swk, swd, swh, sww,
    syn, syc, syd, syh, syw, R_PER_SPLIT, JD, JH, JW, ed, eh, ew, s_step, VW, STEP_RUNS, PITCH, OWR, sb,
    KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, TRANSPOSED: tl.constexpr, TAPLESS: tl.constexpr,
    FOLD: tl.constexpr, HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, FLIP: tl.constexpr, SCALED: tl.constexpr,
    SPLIT: tl.constexpr, INT64: tl.constexpr, UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr, ACC: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    BLOCK_W: tl.constexpr, ROW_VEC: tl.constexpr, SHIFT: tl.constexpr, FLAT: tl.constexpr, DEAL: tl.constexpr,
    RUN_VEC: tl.constexpr, RUN_KINDS: tl.constexpr, NEG: tl.constexpr, Y_ALIGN: tl.constexpr, Y_ACROSS: tl.constexpr,
    FRAGMENTS: tl.constexpr,
):
    """One program: a ``BLOCK_M x BLOCK_N`` tile of output positions x output channels of one group.

    ``x`` is the tensor read (``C_in_g`` channels per group, sizes D, H, W) and ``y`` the one
    written (``C_out_g`` channels per group, sizes OD, OH, OW). The weight element of group
    ``g``, column ``n``, reduction channel ``k`` is at ``g*swg + n*swn + k*swk``: the forward
    pass reads ``w[n, k]``, the transposed pass ``w[k, n]``. ``TRANSPOSED`` turns the tap
    relation ``i = o*s - p + t*d`` around: output ``o`` gathers input ``i = (o + p - t*d) / s``
    when that is an integer (the gradient of the forward pass with respect to its input, and the
    transposed convolution). Only some taps reach a given output: those with
    ``t*d = o + p (mod s)`` per axis. So the transposed pass runs by *stride phase*
    (``program_id(0) % (sd*sh*sw)``: a tile's phases are neighbouring programs, which run together, so that the
    elements they write into the same sectors of an NC(D)HW output meet in L2): a program's positions share
    ``o mod s`` on every axis (``o = phase + s*j``,
    ``j`` in ``JD x JH x JW``), and it loops over only the taps reaching that phase, ``count``
    of them from ``first`` in steps of ``e`` (``ed, eh, ew``), read from the host-made table
    ``taps_ptr[phase] = (first_d, count_d, first_h, count_h, first_w, count_w)``
    (:func:`tritonconv.shapes.phase_taps`). No matrix product is issued for a tap that adds nothing.

    The tap-by-tap and folded loops tell the compiler they run (``tl.assume``; Triton's interpreter asserts
    it): a loop it thinks may run no step has a path around it that zeroes the accumulator, and on Hopper
    ptxas then waits out every MMA where that path falls between the last MMA and the wait for it.
    ``TAPLESS``: some stride phase no tap reaches (a 1x1 layer's at stride 2), whose programs run no step,
    so no such promise. (The NC(D)HW rows' loops make none: they read the accumulator between taps anyway,
    and the promise cost an fp32 launch a spill.)

    ``FOLD`` (forward only, for few input channels per group): the reduction runs over the
    flattened ``k = ((kd*KH + kh)*KW + kw)*C_in_g + c`` in ``BLOCK_K`` chunks instead of tap by
    tap, so a stem's 3 channels fill a chunk with taps rather than 13 zeros; the tap
    coordinates become per-element (an implicit im2col tile).

    NC(D)HW rows moving their sum between width taps (``SHIFT`` 1): the ``NEG`` taps first in increasing shift, then
    the others in decreasing shift (:func:`tritonconv.geometry.moved_first`; ``NEG = KW``: every tap increasing), so
    that the sum ends where the output's rows start; ``Y_ALIGN``: the output's strides, width and that shift multiples
    of a run of that many positions (:func:`tritonconv.geometry.stored_runs`), which the epilogue tells the compiler
    so that it stores runs at once. ``Y_ACROSS`` (by stride phase into an NC(D)HW output: positions ``s`` apart, no
    run): the tile is stored transposed and flat, a warp's lanes along the phase's positions
    (:func:`tritonconv._tile.store_across`). ``FRAGMENTS`` (:func:`target_options`): the rows' moved or dealt runs pass
    through :func:`tritonconv._tile.fragment`.

    Split reduction (``SPLIT``, ``program_id(1)``, for outputs too small to fill the GPU): split ``s``
    sums reduction channels ``[s*R_PER_SPLIT, (s+1)*R_PER_SPLIT)`` of every tap (flattened
    ``k`` with ``FOLD``) and stores its partial tile in the workspace ``ws_ptr`` (tile-major,
    ``[split, tile, BLOCK_M, BLOCK_N]``), then takes a ticket from the tile's counter
    (``cnt_ptr``, an atomic add after a barrier, acquire-release). The split that draws the last
    ticket adds the partials in split order ``0, 1, ..., S-1`` (so the result does not depend on
    which split finished last: bitwise deterministic), resets the counter to 0 for the next
    launch, and runs the epilogue (:func:`tritonconv._tile.meet_splits`). One launch, no torch epilogue.

    ``SCALED`` (fp8 operands): the products are dequantised in the epilogue, before the bias:
    ``acc * si * s[n]`` with ``si`` the input's scale (``si_ptr``) and ``s[n]`` output channel ``n``'s
    weight scale (``s_ptr``, step ``s_step``: 0 for one scale for every channel); linear, so each
    split's partial is scaled alike.

    Programs are ordered group-major; inside a group, ``GROUP_M`` row tiles share a column
    tile before moving on (the L2-friendly swizzle of the Triton matmul tutorial).
    """
    pid = tl.program_id(0)
    split = tl.program_id(1)
    if TRANSPOSED:  # the stride phase varies fastest (1 at unit stride)
        phase = pid % (sd * sh * sw)
        pid = pid // (sd * sh * sw)
    # Builtins and our _tile device functions only (not tl.cdiv, tl.zeros, tl.sum: Triton's own
    # @jit helpers, which the interpreted twin of this kernel cannot call; see _runtime).
    # position tiles: flat runs, or rows of BLOCK_W (NC(D)HW operands; see _tile); aligned rows (ROW_VEC) are tiled as
    # rows VW = segments * BLOCK_W wide, the segments STEP_RUNS runs of ROW_VEC columns apart (geometry.aligned_rows)
    m_tiled, width = M, JW if TRANSPOSED else OW
    if ROW_VEC:
        m_tiled, width = M // width * VW, VW
    tiles_m = position_tiles(m_tiled, width, BLOCK_M, BLOCK_W)
    tiles_n = (C_out_g + BLOCK_N - 1) // BLOCK_N
    group = pid // (tiles_m * tiles_n)
    pid = pid % (tiles_m * tiles_n)
    band = GROUP_M * tiles_n
    first_m = (pid // band) * GROUP_M
    band_m = min(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % band) % band_m
    pid_n = (pid % band) // band_m

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    if INT64:  # some tensor has >= 2**31 elements: every offset product in int64
        offs_n = offs_n.to(tl.int64)
        offs_k = offs_k.to(tl.int64)
        group = group.to(tl.int64)
    mask_n = offs_n < C_out_g

    if TRANSPOSED:  # this program's stride phase: positions o = phase + s*j, and the taps that reach them
        nb, jd, jh, jw, mask_m = tile_positions(pid_m, m_tiled, JD, JH, width, BLOCK_M, BLOCK_W, INT64)
        phd = phase // (sh * sw)
        phh = (phase // sw) % sh
        phw = phase % sw
        od = phd + sd * jd
        oh = phh + sh * jh
        ow = phw + sw * jw
        mask_m = mask_m & (od < OD) & (oh < OH) & (ow < OW)
        row = taps_ptr + phase * 6
        t0d, cd, t0h, ch, t0w, cw = tl.load(row), tl.load(row + 1), tl.load(row + 2), tl.load(row + 3), \
            tl.load(row + 4), tl.load(row + 5)
        if SHIFT == 1 and NEG < KW:  # (rows moving their sum in geometry.moved_first's order: a unit width stride,
            # every width tap reaching every position; as constants, the order's moves cost no registers)
            t0w, cw = 0, KW
    else:  # every tap, from 0 in steps of 1
        nb, od, oh, ow, mask_m = tile_positions(pid_m, m_tiled, OD, OH, width, BLOCK_M, BLOCK_W, INT64)  # once
        t0d, cd, t0h, ch, t0w, cw = 0, KD, 0, KH, 0, KW
        jd, jh, jw, phd, phh, phw = od, oh, ow, 0, 0, 0  # (axis_tap's arguments: no phases)

    x_rows = x_ptr + nb * sxn + group * C_in_g * sxc  # [BLOCK_M] pointers, channel 0 of the group
    w_cols = w_ptr + group * swg + offs_n * swn  # [BLOCK_N] pointers
    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, ACC)  # fp32, or fp64 for fp64 operands
    if FOLD:
        # every split runs R_PER_SPLIT / BLOCK_K steps (the last one's past the reduction are masked: ok_k)
        tl.assume(R_PER_SPLIT >= BLOCK_K)
        for k0 in range(split * R_PER_SPLIT, (split + 1) * R_PER_SPLIT, BLOCK_K):
            k = k0 + offs_k
            c = k % C_in_g
            t = k // C_in_g
            kw_ = t % KW
            kh_ = (t // KW) % KH
            kd_ = t // (KW * KH)
            ok_k = kd_ < KD
            id_, ok_d = tap(od[:, None], sd, pd, kd_[None, :], dd, D, False)  # [BLOCK_M, BLOCK_K] each
            ih, ok_h = tap(oh[:, None], sh, ph, kh_[None, :], dh, H, False)
            iw, ok_w = tap(ow[:, None], sw, pw, kw_[None, :], dw, W, False)
            ok = mask_m[:, None] & ok_k[None, :] & ok_d & ok_h & ok_w
            a = tl.load(x_rows[:, None] + id_ * sxd + ih * sxh + iw * sxw + (c * sxc)[None, :], mask=ok, other=0.0)
            w_k = c * swk + weight_tap(kd_, kh_, kw_, swd, swh, sww, KD, KH, KW, FLIP)
            b = tl.load(w_cols[None, :] + w_k[:, None], mask=ok_k[:, None] & mask_n[None, :], other=0.0)
            acc = mma(acc, a, b, UPCAST, DOT_PRECISION, ACC)
    elif ROW_VEC:  # NC(D)HW rows read at their own columns in aligned runs of ROW_VEC (geometry.aligned_rows): width
        # taps each a flat loop over (depth tap, height tap, chunk) into acc, which moves from one tap's shift to the
        # next's along the rows between taps (SHIFT 1), the taps in geometry.shift_order's order (the NEG of negative
        # shift in increasing shift, then the others in decreasing shift: the sum ends at the least shift >= 0, 0 for
        # 'same' padding); the epilogue stores column c at ow = c - (that shift). SHIFT 2 (whole rows at their own
        # width): each tap's products summed apart, then moved to their columns
        c_lo = split * R_PER_SPLIT
        k_steps = R_PER_SPLIT // BLOCK_K
        seg = pid_m % (VW // BLOCK_W)  # the tile's segment of its rows (a scalar: _tile.tile_positions' width tile)
        col_in = jw - seg * BLOCK_W  # a position's column in its segment
        step = STEP_RUNS * ROW_VEC  # (a multiple of ROW_VEC the compiler sees: the runs stay aligned)
        col = seg * step + col_in  # the input column read: the position's own
        col_ok = tl.max_constancy((col // ROW_VEC) < (W // ROW_VEC), [ROW_VEC])  # W % ROW_VEC == 0: col < W
        row_ok = (nb < M // (JW * JH * JD) if TRANSPOSED else nb < M // (OW * OH * OD)) & (od < OD) & (oh < OH)
        if DEAL > 1:  # a forward's width stride: the tile's rows read DEAL * BLOCK_W input columns from the first, dealt
            # into phases (_tile.deal); the same rows as the tile's, tiled DEAL times wider, a segment's from DEAL * its
            # first dealt column (seg * step)
            wnb, wod, woh, wcol, w_ok = tile_positions(pid_m, m_tiled * DEAL, OD, OH, width * DEAL, BLOCK_M * DEAL,
                                                       BLOCK_W * DEAL, INT64)
            wcol -= seg * DEAL * (BLOCK_W - step)
            w_ok = w_ok & tl.max_constancy((wcol // ROW_VEC) < (W // ROW_VEC), [ROW_VEC])
            w_at = wnb * sxn + wcol  # (few vectors held across the taps: the row's first tap, offsets, mask)
            wd0 = wod * sd - pd
            wh0 = woh * sh - ph
        # (dealt, or moving in geometry.moved_first's order: the width taps unrolled, so where the padding and
        # dilation are constants (Triton makes a 1 one) each tap's phase, shift and move are too: no selects, no branch)
        for mw in tl.range(cw, loop_unroll_factor=KW if DEAL > 1 or (SHIFT == 1 and NEG < KW) else 1):
            i = mw  # the tap's place in increasing order of shift
            if SHIFT == 1 and NEG < KW:
                i = tl.where(mw < NEG, mw, cw - 1 - mw + NEG)
            kw = t0w + (cw - 1 - i) * ew if TRANSPOSED else i  # shifts pw - kw*dw, or kw*dw - pw: increasing in i
            if DEAL > 1:  # the tap's phase q of the row, its shift s in output columns
                q, s = dealt_tap(kw, pw, dw, DEAL)
            else:
                q, s = 0, 0
                if SHIFT == 2:
                    s, _ = axis_tap(0, phw, sw, pw, kw, dw, W, TRANSPOSED)
            part = acc
            if SHIFT == 2:  # this tap's products apart, a sum of their own (into acc itself where they need no move)
                if s != 0:
                    part = tl.full((BLOCK_M, BLOCK_N), 0.0, ACC)
            md, mh, chunk = 0, 0, 0
            for _ in range(cd * ch * k_steps):
                kh = t0h + mh * eh
                kd = t0d + md * ed
                cin = c_lo + chunk * BLOCK_K + offs_k
                ok_k = cin < C_in_g
                chans = tl.multiple_of((group * C_in_g + cin) * sxc, ROW_VEC)
                if DEAL > 1:  # (the forward's tap relation, axis_tap's, from the row's first tap)
                    id_ = wd0 + kd * dd
                    ih = wh0 + kh * dh
                    ok = w_ok & (id_ >= 0) & (id_ < D) & (ih >= 0) & (ih < H)
                    at = tl.multiple_of(w_at + id_ * sxd + ih * sxh, ROW_VEC)
                    wide = tl.load(x_ptr + (chans[:, None] + at[None, :]), mask=ok_k[:, None] & ok[None, :], other=0.0)
                    a = fragment(deal(wide, q, BLOCK_K, BLOCK_M, DEAL), FRAGMENTS)
                else:
                    id_, ok_d = axis_tap(jd, phd, sd, pd, kd, dd, D, TRANSPOSED)
                    ih, ok_h = axis_tap(jh, phh, sh, ph, kh, dh, H, TRANSPOSED)
                    ok = row_ok & ok_d & ok_h & col_ok
                    rows = tl.multiple_of(nb * sxn + id_ * sxd + ih * sxh, ROW_VEC)  # every stride a multiple of ROW_VEC
                    a = tl.load(x_ptr + ((rows + col)[:, None] + chans[None, :]), mask=ok[:, None] & ok_k[None, :],
                                other=0.0)
                w_tap = w_cols + weight_tap(kd, kh, kw, swd, swh, sww, KD, KH, KW, FLIP)
                b = tl.load(w_tap[None, :] + cin[:, None] * swk, mask=ok_k[:, None] & mask_n[None, :], other=0.0)
                part = mma(part, a, b, UPCAST, DOT_PRECISION, ACC)
                chunk, _, mh, md = next_step(chunk, 0, mh, md, 1, k_steps, 1, ch)
            if SHIFT == 2:  # products of column c belong to output column c - s: moved there (whole rows)
                acc = add_apart(acc, part, s, col_in, BLOCK_M, BLOCK_W)
            else:
                acc = part
                if SHIFT == 1:
                    if mw < cw - 1:  # the sum so far moves on to the next tap's shift
                        if DEAL > 1:  # (dealt, unrolled: each tap's shift in output columns, either way, or none)
                            _, s_next = dealt_tap(tl.where(mw + 1 < NEG, mw + 1, cw - 2 - mw + NEG), pw, dw, DEAL)
                            step_w = s_next - s
                            if step_w > 0:
                                acc = shift_rows(acc, step_w, col_in, BLOCK_M, 0)
                            elif step_w < 0:
                                acc = shift_rows(acc, step_w, col_in, BLOCK_M, BLOCK_W)
                        else:  # consecutive shifts `apart` apart (a stride phase's taps: ew apart, their shifts
                            # ew * dw / sw): one right between the negative ones (NEG = KW: every tap, one loop), on to
                            # the largest after the last of them, one left after that (unrolled: constants where dw, and
                            # the phase's steps, are 1)
                            apart = ew * dw // sw if TRANSPOSED else dw
                            if NEG >= KW:  # (a stride phase's taps fewer than KW: the compiler cannot see the others)
                                acc = shift_rows(acc, apart, col_in, BLOCK_M, 0)
                            elif mw < NEG - 1:
                                acc = shift_rows(acc, apart, col_in, BLOCK_M, 0)
                            elif mw == NEG - 1:
                                acc = shift_rows(acc, (KW - NEG) * apart, col_in, BLOCK_M, 0)
                            else:
                                acc = shift_rows(acc, -apart, col_in, BLOCK_M, BLOCK_W)
        if SHIFT == 2:  # every output at its own column
            jw = col
            mask_m = row_ok
        else:
            # the shift the sum ends at (the tap run last: place NEG in increasing order, or the last where NEG takes
            # every tap), and the least: a segment after the first stores from -(the least) on
            LAST: tl.constexpr = NEG if NEG < KW else KW - 1
            if SHIFT == 0:  # (no tap moves: a kernel 1 wide, no padding, its tap's shift 0; not computed, so that the
                # compiler sees the output's runs where Triton's multiples of 16 say them)
                s_last, s_least = 0, 0
            elif DEAL > 1:
                s_last, s_least = dealt_tap(LAST, pw, dw, DEAL)[1], dealt_tap(0, pw, dw, DEAL)[1]
            elif TRANSPOSED and NEG >= KW:  # (a stride phase's taps in increasing shift: its first tap's the largest;
                # at most the taps' reach less the least)
                s_last, _ = axis_tap(0, phw, sw, pw, t0w, dw, W, TRANSPOSED)
                s_least = s_last - (KW - 1) * dw
            else:
                s_last, _ = axis_tap(0, phw, sw, pw, (KW - 1 - LAST) if TRANSPOSED else LAST, dw, W, TRANSPOSED)
                s_least, _ = axis_tap(0, phw, sw, pw, KW - 1 if TRANSPOSED else 0, dw, W, TRANSPOSED)
            first = -s_least
            if Y_ALIGN > 1:  # (multiples of Y_ALIGN, the host's word: a segment's outputs stored from the next one up,
                # within its slack)
                s_last = s_last // Y_ALIGN * Y_ALIGN
                first = (first + Y_ALIGN - 1) // Y_ALIGN * Y_ALIGN
            jw = col - s_last
            lo = tl.where(seg > 0, seg * step + first, 0)
            mask_m = row_ok & (jw >= lo) & (jw < (seg + 1) * step + first)
        ow = phw + sw * jw if TRANSPOSED else jw  # transposed: the column of the stride phase's position j
        ow_end = OW
        if Y_ALIGN > 1:
            ow_end = OW // Y_ALIGN * Y_ALIGN
        mask_m = mask_m & (ow < ow_end)
        if FLAT:  # a plane's rows at the input's pitch: back to the output's (row, column), past its width not stored
            oh = ow // PITCH
            ow = ow % PITCH
            mask_m = mask_m & (ow < OWR)
    elif RUN_VEC > 1:  # NC(D)HW rows read at each width tap's columns in runs of RUN_VEC (geometry.row_runs): a tap whose
        # shift is a multiple of the run reads the runs at its columns, another each run and the next, read the columns
        # on that its shift is off, in registers (_tile.shift_runs); a loop for each way some tap reads (RUN_KINDS), over
        # that way's taps
        c_lo = split * R_PER_SPLIT
        k_steps = R_PER_SPLIT // BLOCK_K
        rows_ok = (nb < M // (width * JH * JD) if TRANSPOSED else nb < M // (width * OH * OD)) & (od < OD) & (oh < OH)
        for kind in tl.static_range(1, RUN_VEC + 1):
            if (RUN_KINDS >> kind) & 1:
                for mw in range(cw):
                    kw = t0w + mw * ew
                    shift = axis_tap(0, phw, sw, pw, kw, dw, W, TRANSPOSED)[0]  # the column position 0 reads
                    if run_kind(shift, RUN_VEC) == kind:
                        r: tl.constexpr = kind - 1
                        first = jw + (shift - r)  # each position's column in the run read
                        lo_ok = tl.max_constancy((first >= 0) & (first < W), [RUN_VEC])
                        hi_ok = tl.max_constancy((first + RUN_VEC >= 0) & (first + RUN_VEC < W), [RUN_VEC])
                        md, mh, chunk = 0, 0, 0
                        for _ in range(cd * ch * k_steps):
                            kh = t0h + mh * eh
                            kd = t0d + md * ed
                            id_, ok_d = axis_tap(jd, phd, sd, pd, kd, dd, D, TRANSPOSED)
                            ih, ok_h = axis_tap(jh, phh, sh, ph, kh, dh, H, TRANSPOSED)
                            ok = tl.max_constancy(rows_ok & ok_d & ok_h, [RUN_VEC])
                            at = tl.max_constancy(tl.multiple_of(nb * sxn + id_ * sxd + ih * sxh + (shift - r), RUN_VEC),
                                                  [RUN_VEC]) + jw
                            cin = c_lo + chunk * BLOCK_K + offs_k
                            ok_k = cin < C_in_g
                            chans = tl.multiple_of((group * C_in_g + cin) * sxc, RUN_VEC)
                            if r == 0:
                                a = tl.load(x_ptr + (at[:, None] + chans[None, :]),
                                            mask=(ok & lo_ok)[:, None] & ok_k[None, :], other=0.0)
                            else:  # (the zero padding is whole runs: a moved run's columns are zeros where x's are)
                                lo = tl.load(x_ptr + (chans[:, None] + at[None, :]),
                                             mask=ok_k[:, None] & (ok & lo_ok)[None, :], other=0.0)
                                hi = tl.load(x_ptr + (chans[:, None] + (at + RUN_VEC)[None, :]),
                                             mask=ok_k[:, None] & (ok & hi_ok)[None, :], other=0.0)
                                a = tl.trans(fragment(shift_runs(lo, hi, r, BLOCK_K, BLOCK_M, RUN_VEC), FRAGMENTS))
                            w_tap = w_cols + weight_tap(kd, kh, kw, swd, swh, sww, KD, KH, KW, FLIP)
                            b = tl.load(w_tap[None, :] + cin[:, None] * swk, mask=ok_k[:, None] & mask_n[None, :],
                                        other=0.0)
                            acc = mma(acc, a, b, UPCAST, DOT_PRECISION, ACC)
                            chunk, _, mh, md = next_step(chunk, 0, mh, md, 1, k_steps, 1, ch)
    else:  # tap by tap, channels in BLOCK_K chunks: one flat loop over (tap, chunk), so the compiler's
        # software pipeline (num_stages) runs across taps instead of draining at every tap
        c_lo = split * R_PER_SPLIT
        k_steps = R_PER_SPLIT // BLOCK_K  # a multiple of BLOCK_K; channels past C_in_g are masked (ok_k)
        # the loop carries its (depth, height, width) tap and chunk counters (next_step): chunks fastest, then taps
        md, mh, mw, chunk = 0, 0, 0, 0
        steps = cd * ch * cw * k_steps
        if not TAPLESS:
            tl.assume(steps > 0)
        for _ in range(steps):
            kw = t0w + mw * ew
            kh = t0h + mh * eh
            kd = t0d + md * ed
            id_, ok_d = axis_tap(jd, phd, sd, pd, kd, dd, D, TRANSPOSED)  # [BLOCK_M] each, from scalar tap indices
            ih, ok_h = axis_tap(jh, phh, sh, ph, kh, dh, H, TRANSPOSED)
            iw, ok_w = axis_tap(jw, phw, sw, pw, kw, dw, W, TRANSPOSED)
            ok = mask_m & ok_d & ok_h & ok_w
            cin = c_lo + chunk * BLOCK_K + offs_k
            ok_k = cin < C_in_g
            x_tap = x_rows + id_ * sxd + ih * sxh + iw * sxw
            w_tap = w_cols + weight_tap(kd, kh, kw, swd, swh, sww, KD, KH, KW, FLIP)
            a = tl.load(x_tap[:, None] + cin[None, :] * sxc, mask=ok[:, None] & ok_k[None, :], other=0.0)
            b = tl.load(w_tap[None, :] + cin[:, None] * swk, mask=ok_k[:, None] & mask_n[None, :], other=0.0)
            acc = mma(acc, a, b, UPCAST, DOT_PRECISION, ACC)
            chunk, mw, mh, md = next_step(chunk, mw, mh, md, 1, k_steps, cw, ch)

    finish = True
    if SPLIT:  # the splits' partial tiles meet in the last split to arrive, added in split order
        acc, finish = meet_splits(acc, ws_ptr, cnt_ptr, tl.program_id(0), tl.num_programs(0), split, tl.num_programs(1),
                                  BLOCK_M, BLOCK_N)
    if finish:
        if SCALED:
            scale = tl.load(s_ptr + (group * C_out_g + offs_n) * s_step, mask=mask_n, other=0.0).to(ACC)
            acc = acc * (scale * tl.load(si_ptr).to(ACC))[None, :]
        if HAS_BIAS:
            acc += tl.load(b_ptr + (group * C_out_g + offs_n) * sb, mask=mask_n, other=0.0).to(ACC)[None, :]
        acc = activate(acc, ACTIVATION)
        if Y_ALIGN > 1:  # the output's strides but the width's and its width multiples of Y_ALIGN (the host's word), so
            # that the compiler stores runs of Y_ALIGN positions at once
            syn, syc, syd, syh = syn // Y_ALIGN * Y_ALIGN, syc // Y_ALIGN * Y_ALIGN, syd // Y_ALIGN * Y_ALIGN, \
                syh // Y_ALIGN * Y_ALIGN
        y_rows = nb * syn + od * syd + oh * syh + ow * syw  # offsets, not pointers: half the registers per element
        y_cols = (group * C_out_g + offs_n) * syc
        if Y_ACROSS:
            store_across(y_ptr, y_rows, y_cols, acc, mask_m, mask_n, BLOCK_M, BLOCK_N)
        else:
            tl.store(y_ptr + (y_rows[:, None] + y_cols[None, :]), acc.to(y_ptr.dtype.element_ty),
                     mask=mask_m[:, None] & mask_n[None, :])


def target_options(kwargs: dict, capability: int | None) -> dict:
    """:func:`_conv_kernel`'s launch options for a GPU of compute capability ``capability``
    (:func:`tritonconv._runtime.target_options`: rows read in aligned runs where ``ROW_VEC`` or ``RUN_VEC``; an MMA of
    ``BLOCK_M`` rows). A TF32 forward dealing its rows (``DEAL``) keeps its operand off the move: Triton never halved
    its fragments (``kWidth`` 1), and through the move its loops issued 1.15x (sm_80, Triton 3.6 and 3.9:
    ``resnet50_l2_3x3s2`` 185 -> 212 instructions a step)."""
    return _target_options(kwargs, capability, bool(kwargs.get("ROW_VEC")) or kwargs.get("RUN_VEC", 0) > 1,
                           kwargs["BLOCK_M"], tf32_fragments=kwargs.get("DEAL", 1) == 1)


class Launch:
    """A launch of :func:`_conv_kernel`, prepared once for tensors laid out as ``x``, ``weight``, ``y``:
    the grid and every argument but the tensors. Calling it runs the kernel reading ``x`` and
    writing ``y`` (both batched) and returns ``y``.

    Forward: ``x`` is the input, ``weight`` is ``(C_out, C_in/groups, *k)``. Transposed (the input
    gradient): ``x`` is the output gradient and ``y`` the input gradient, same weight.
    """

    def __init__(self, x, weight, bias, y, spec: ConvSpec, transposed: bool, activation: str | None, flip: bool,
                 config: Config, scale_step: int | None = None) -> None:
        c_out, c_in_g = spec.weight_shape[:2]
        c_out_g = c_out // spec.groups
        s_out, s_in = weight.stride()[:2]
        # (channels read per group, channels written per group, weight column / reduction strides)
        c_read, c_write, swn, swk = (c_out_g, c_in_g, s_in, s_out) if transposed else (c_in_g, c_out_g, s_out, s_in)
        m = y.shape[0] * math.prod(y.shape[2:])  # output positions (GEMM rows)
        interp = interpreting(x.device)
        rows, phases, steps, self.taps, table = m, 1, (1, 1, 1), None, []  # forward: one phase, every tap
        j = (1, 1, 1)
        if transposed:  # by stride phase: rows per phase, and the taps reaching each phase
            stride, kernel = as_3d(spec.stride, 1), as_3d(spec.weight_shape[2:], 1)
            pads, dilation = as_3d(tuple(b for b, _ in spec.padding), 0), as_3d(spec.dilation, 1)
            j = tuple(cdiv(o, st) for o, st in zip(as_3d(y.shape[2:], 1), stride))
            rows, phases = y.shape[0] * math.prod(j), math.prod(stride)
            steps, table = shapes.phase_table(kernel, stride, pads, dilation)
            self.taps = torch.tensor(table, dtype=torch.int32, device=x.device)
        fold = bool(config.fold) and not transposed  # same result either way; forward only
        reduction = math.prod(spec.weight_shape[2:]) * c_read if fold else c_read  # per split loop
        per_split, self.splits = split_sizes(reduction, config)
        self.empty = y.numel() == 0
        self.acc = geometry.accumulator(x.dtype)  # of the split workspace
        width = j[-1] if transposed else y.shape[-1]  # of a row of positions
        dh_taps = min(row[1] * row[3] for row in table) if transposed else math.prod(as_3d(spec.weight_shape[2:], 1)[:2])
        tap_steps = dh_taps * (per_split // config.block_k)  # main-loop steps per width tap
        accumulator = config.accumulator  # elements per thread
        aligned = geometry.AlignedRows() if fold else geometry.aligned_rows(
            x, width, rows, spec.weight_shape[-1], spec.stride[-1], spec.padding[-1][0], spec.dilation[-1], transposed,
            config.block_m, tap_steps, accumulator)
        read, written, pitch = x.shape[2:], y.shape[2:], 0  # the sizes the kernel sees
        planes = None if aligned.vec or fold or transposed else geometry.aligned_planes(
            x, tuple(y.shape), spec, config.block_m, tap_steps, accumulator)
        if planes:  # each plane one long row at the input's pitch; the epilogue stores (row, column) of the output
            read, written, pitch, aligned = planes.read[2:], planes.written[2:], x.shape[-1], planes.rows
            m = rows = y.shape[0] * math.prod(written)
            width = written[-1]
        runs = (0, 0) if aligned.vec or planes or fold else geometry.row_runs(
            x, rows, width, spec.weight_shape[-1], spec.stride[-1], spec.padding[-1][0], spec.dilation[-1], transposed,
            config.block_m, config.block_k * config.block_m // (32 * config.num_warps))
        row_vec, block_w, tiled = aligned.vec, aligned.block_w, (rows, width)
        # the moving sum's width taps (SHIFT 1: geometry.moved_first's order; by stride phase, each phase's in
        # increasing shift) and the runs the epilogue stores (not by stride phase, not planes as rows)
        phased, taps_w = transposed and spec.stride[-1] > 1, spec.weight_shape[-1]
        moving = bool(row_vec) and not aligned.each and (taps_w > 1 or spec.padding[-1][0] != 0)  # (one padded tap
        # moves too: its shift is the padding's)
        shifts = geometry.row_shifts(taps_w, spec.stride[-1], spec.padding[-1][0], spec.dilation[-1], transposed,
                                     aligned.deal) if moving else []
        neg = taps_w if phased else geometry.moved_first(shifts, aligned.deal > 1)
        y_align = 1
        if row_vec and not pitch and not phased:
            slack = block_w - aligned.step - (shifts[-1] - shifts[0] if shifts else 0)
            y_align = geometry.stored_runs(y, shifts[min(neg, len(shifts) - 1)] if shifts else None,
                                           -shifts[0] if shifts else 0, slack if aligned.segments > 1 else None, row_vec)
        if row_vec:  # tiled as rows of its segments
            tiled = (rows // width * aligned.segments * block_w, aligned.segments * block_w)
        elif geometry.width_inner(x) or geometry.width_inner(y):
            block_w = geometry.row_block(rows, width, config.block_m)
        tiles_m = geometry.position_tiles(*tiled, config.block_m, block_w)
        self.grid = (phases * spec.groups * tiles_m * cdiv(c_write, config.block_n), self.splits)  # (phases fastest)
        # split partial tiles (accumulator dtype), tile-major; a ticket counter per output tile, per stream
        self.workspace_elems = self.splits * self.grid[0] * config.block_m * config.block_n
        self.counters = Counters(self.grid[0])  # the output tiles' tickets, per stream
        taps = as_3d(spec.weight_shape[2:], 1)
        self.args = (  # scale_step: fp8 dequantises with per-call scales (the weight scale's step per channel)
            rows, c_read, c_write, *geometry_3d(read, written, spec),
            *strides_3d(x), c_out_g * s_out, swn, swk, *tap_strides(weight), *strides_3d(y), per_split, *j, *steps,
            scale_step or 0, aligned.segments * block_w, aligned.step // max(row_vec, 1), pitch, y.shape[-1],
            geometry.bias_step(bias), *taps,
        )
        # matrix work per program, for mma_work(): tile volume x reduction steps, per phase
        phase_taps = [math.prod(row[1::2]) for row in table] if transposed else [1 if fold else math.prod(taps)]
        self._work = (spec.groups * tiles_m * cdiv(c_write, config.block_n)
                      * self.splits * (per_split // config.block_k) * sum(phase_taps)
                      * config.block_m * config.block_n * config.block_k)
        self.kwargs = target_options(dict(
            TRANSPOSED=transposed, TAPLESS=transposed and shapes.tapless_phase(table),
            FOLD=fold, HAS_BIAS=bias is not None, ACTIVATION=activation, FLIP=flip,
            SCALED=scale_step is not None, SPLIT=self.splits > 1, INT64=needs_int64(x, weight, y, rows=m),
            UPCAST=interp and x.dtype == torch.bfloat16,
            DOT_PRECISION=dot_precision(x.dtype, interp), ACC=geometry.tl_accumulator(x.dtype),
            BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k, GROUP_M=config.group_m,
            BLOCK_W=block_w, ROW_VEC=row_vec, FLAT=bool(pitch), DEAL=aligned.deal, RUN_VEC=runs[0], RUN_KINDS=runs[1],
            SHIFT=2 if aligned.each else int(moving), NEG=neg, Y_ALIGN=y_align,
            Y_ACROSS=transposed and geometry.stored_across(y, spec.stride[-1]),
            num_warps=config.num_warps, num_stages=config.num_stages,
        ), capability(x.device))
        self.rows = aligned  # how NC(D)HW rows are read in aligned runs (geometry.aligned_rows; vec 0: not)
        self.planes = bool(pitch)  # ... a forward's planes as one row each (geometry.aligned_planes)
        self.runs = runs  # ... or each width tap's columns read in runs (geometry.row_runs; (0, 0): not)
        self.launcher = Direct(_conv_kernel, self.args, self.kwargs)  # JITFunction.run once, then its launcher

    def mma_work(self) -> int:
        """Multiply-adds the launch's ``tl.dot`` calls issue, masked lanes included (tile edges, channel
        padding, splits' tails): compare with :func:`tritonconv.shapes.conv_macs`."""
        return 0 if self.empty else self._work

    def workspace(self, device: torch.device) -> torch.Tensor:
        """The split partial tiles of one launch (uninitialised: every split writes its tiles first)."""
        return geometry.alloc_output((self.workspace_elems,), device, self.acc)

    def __call__(self, x, weight, bias, y, scales: tuple | None = None) -> torch.Tensor:
        """Run the kernel reading ``x`` and writing ``y``; ``scales``: (weight scale, input scale) with fp8."""
        if self.empty:
            return y
        ws, cnt = (self.workspace(x.device), self.counters(x.device)) if self.splits > 1 else (y, y)
        w_scale, x_scale = scales if scales is not None else (weight, weight)
        self.launcher(x.device, self.grid, x, weight, bias if bias is not None else weight, w_scale, x_scale, y,
                      ws, cnt, x if self.taps is None else self.taps)
        return y
