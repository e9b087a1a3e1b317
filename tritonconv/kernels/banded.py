"""Depthwise convolution on tensor cores: a segment's taps as a banded reduction.

:mod:`tritonconv.kernels.depthwise` runs each tap as a multiply-add on FMA units, and loads, converts and addresses
its operand once per tap: on a long 1-D kernel (Conformer's 31 taps) that is about five warp instructions a
multiply-add, so the layer is bound by issue, not by its bytes. Here a channel's taps become a band. Along the width
alone, ``P`` consecutive outputs from ``o0`` read a window of ``(P - 1)*s + (taps - 1)*d + 1`` inputs, and::

    y[b, c, o0 + q] = sum_j x[b, c // DIV, o0*s - pad + j] * band[c, j, q],   band[c, j, q] = w[c, 0, t] where j = q*s + t*d

(0 elsewhere). With taps along the height too (``kh x kw``, ``1 x kh x kw``), a segment is ``PH`` rows of ``P / PH``
outputs (:func:`segment_rows`: 4 x 8 for 3 x 3 taps, 2 x 8 for 7 x 7) and its window the ``((PH - 1)*sh + (kh - 1)*dh
+ 1) x ((P/PH - 1)*sw + (kw - 1)*dw + 1)`` inputs they read, flattened row by row: element ``j = a*WW + b`` of output
``(u, v)`` is tap ``(th, tw)`` where ``a = u*sh + th*dh`` and ``b = v*sw + tw*dw``. Per channel, ``BLOCK_K`` segments
are one ``[segments, window] x [window, P]`` product, and ``BLOCK_N`` channels one batched ``tl.dot`` on the tensor
cores, the window padded to a power of two (``KJ``): ``KJ / taps`` the useful multiply-adds (2.06 for 31 taps in
segments of 32, 2.6 for 7 x 7, 7.1 for 3 x 3), for 7-76 warp instructions per 1000 useful ones where the FMA kernels
issue 139-205 (sm_90, ``benchmarks.static``). A program loads its band once and runs over its share of the segments
(``PER`` of them, ``BLOCK_K`` a step, moved on by carries); a segment lies within one plane ``(b, od)``, whose depth
tap is single (``KD = 1``). Rows held contiguous in whole 16-, 8- or 4-byte runs (NC(D)HW, :func:`reading`) are read
in those runs: one-row windows from ``R`` columns before each, the band ``R`` rows lower; windows of several rows row
by row from run boundaries, whole runs a row (``WWP`` apart in the band), the segments' grid starting ``E`` columns
early. A step's windows and outputs are laid out with a warp's lanes along the segments
(:func:`tritonconv._tile.load_lanes`), so that a thread addresses one segment or two on either Triton's rule for axes
of equal contiguity.

The input gradient at unit strides is this forward on the output gradient with the taps reversed and padding
``(taps - 1)*d - pad`` on each axis (:func:`as_forward`), one output channel per input channel. The weight gradient
sums ``G[c, q, j] += dy[b, c, segment's output q] * x[b, c // DIV, segment's input j]`` over the segments (a batched
dot whose reduction is the segments), and tap ``(th, tw)``'s gradient is the diagonal ``sum_q G[c, q, j(q, th, tw)]``;
its programs' sums meet in the kernel in a fixed order.

A NaN or infinity in the forward's (input gradient's) ``x`` reaches every output of a segment whose window (read in
runs: rounded out to them) holds it (times the band's zeros), not only the outputs its taps reach, as in cuDNN's
Winograd and FFT algorithms; the weight gradient reads only its true products' diagonals. Finite inputs give the
exact products summed in fp32, as the FMA kernels'.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import triton
import triton.language as tl

from .. import geometry
from .._checks import ConvSpec
from .._runtime import Counters, Direct, device, interpreting, kernel
from .._tile import activate, advance, inside, load_lanes, meet_splits, mma, store_lanes
from ..geometry import Config, dot_precision, geometry_3d, needs_int64, position_step, strides_3d, tap_strides
from ..shapes import cdiv


@device
def program_share(C, PER, SEGS, INT64: tl.constexpr, BLOCK_N: tl.constexpr):
    """This program's channels ``c`` (``program_id(0)``'s tile of ``BLOCK_N``) and which of them exist, and its segments
    ``[first, last)``: ``program_id(1)``'s ``PER`` of the ``SEGS`` (the last program's, the rest)."""
    c = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    first = tl.program_id(1) * PER
    if INT64:
        c = c.to(tl.int64)
        first = first.to(tl.int64)
    return c, c < C, first, tl.minimum(first + PER, SEGS)


@device
def band_coordinates(j, q, WW: tl.constexpr, R, P: tl.constexpr, PH: tl.constexpr, ROWS: tl.constexpr):
    """Window element ``j``'s row and column ``(a, b)`` (its inputs ``WW`` a row; one row: ``R`` columns early) and
    output ``q``'s row and column ``(u, v)`` in its segment of ``PH`` rows of ``P // PH``."""
    if ROWS:
        a, b = j // WW, j % WW
        u, v = q // (P // PH), q % (P // PH)
    else:
        a, b = j * 0, j - R
        u, v = q * 0, q
    return a, b, u, v


@device
def first_segments(first, OD, OHS, OWS, BLOCK_K: tl.constexpr):
    """Segments ``g = first + [0, BLOCK_K)`` and their coordinates ``(nb, od, ohb, owb)`` on the grid of segments
    (``OHS`` rows of ``OWS`` a plane); a step moves them on by carries (:func:`tritonconv._tile.advance`)."""
    g = first + tl.arange(0, BLOCK_K)
    owb = g % OWS
    rest = g // OWS
    ohb = rest % OHS
    rest = rest // OHS
    return g, rest // OD, rest % OD, ohb, owb


@device
def step_windows(x_ptr, x_c, ok_c, ok_g, nb, od, oh0, o0, j, a, b, inputs, D, H, W, sd, sh, pd, ph,
                 sxn, sxd, sxh, sxw, sw, pw, R, ROWS: tl.constexpr, RUN: tl.constexpr, INT64: tl.constexpr):
    """``x``'s windows ``[channels, segments, KJ]`` of a step's segments (batch, depth, first output row and column
    ``(nb, od, oh0, o0)``; ``ok_g``, the program's): element ``j`` (row ``a``, column ``b``; 0 from ``inputs`` on,
    outside the input, and for segments not the program's) is input ``(oh0*sh - ph + a, o0*sw - pw + b)`` of the plane
    the segment's one depth tap reads (``ROWS``: segments of several rows or taps along the height; else one row, ``b =
    j - R``); ``x_c``, the channels' offsets. ``RUN`` (> 1): the rows are contiguous and read in aligned runs of ``RUN``
    from run boundaries (one row: ``R`` columns before the windows'; several rows: each window row, whole runs; see
    :func:`reading`), their masks whole runs'."""
    id_ = od * sd - pd
    ih = oh0 * sh - ph
    start = o0 * sw - pw
    ok = ok_g & inside(id_, D, INT64)
    if ROWS:
        ih_j = ih[:, None] + a[None, :]
        i = start[:, None] + b[None, :]
        ok_i = ok[:, None] & inside(ih_j, H, INT64) & inside(i, W, INT64) & (j < inputs)[None, :]
        rows = nb * sxn + id_ * sxd + ih * sxh + start * sxw
        off = a * sxh + b * sxw
        if RUN > 1:  # (every window row starts on a run, WWP and the strides whole runs)
            rows = tl.multiple_of(rows, RUN)
            off = tl.max_contiguous(tl.multiple_of(off, RUN), RUN)
            ok_i = tl.max_constancy(ok_i, [1, RUN])
        at = rows[:, None] + off[None, :]
    else:
        ok = ok & inside(ih, H, INT64)
        start -= R
        rows = nb * sxn + id_ * sxd + ih * sxh
        if RUN > 1:
            start, rows = tl.multiple_of(start, RUN), tl.multiple_of(rows, RUN)
        i = start[:, None] + j[None, :]
        if RUN > 1:
            ok_i = ok[:, None] & inside(i, W, INT64) & (j < (inputs + R + RUN - 1) // RUN * RUN)[None, :]
            ok_i = tl.max_constancy(ok_i, [1, RUN])
            at = rows[:, None] + i
        else:
            ok_i = ok[:, None] & inside(i, W, INT64) & (j < inputs)[None, :]
            at = rows[:, None] + i * sxw
    return load_lanes(x_ptr, x_c, at, ok_c, ok_i)


@device
def segment_outputs(nb, od, oh0, o0, ok_g, u, v, OH, OW, sn, sd, sh, sw, ROWS: tl.constexpr, INT64: tl.constexpr):
    """The offsets and mask of a step's outputs, ``[segments, P]``: output ``(u, v)`` of each segment (strides ``sn``,
    ``sd``, ``sh``, ``sw``), those past the output's rows and columns and of segments not the program's masked (several
    rows: the columns before the first too, where the grid starts early)."""
    o = o0[:, None] + v[None, :]
    if ROWS:
        ok = ok_g[:, None] & inside(o, OW, INT64)
        oh = oh0[:, None] + u[None, :]
        return (nb * sn + od * sd)[:, None] + oh * sh + o * sw, ok & (oh < OH)
    return (nb * sn + od * sd + oh0 * sh)[:, None] + o * sw, ok_g[:, None] & (o < OW)


@kernel
@triton.jit
def _banded_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    C, DIV, D, H, W, OD, OH, OW, TAPS, SEGS, PER, R, E, OHS, OWS, STEP_N, STEP_D, STEP_H, STEP_W,
    sd, sh, sw, pd, ph, pw, dd, dh, dw,
    sxn, sxc, sxd, sxh, sxw,
    swo, swh, sww,
    syn, syc, syd, syh, syw, sb,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, FLIP: tl.constexpr, INT64: tl.constexpr,
    UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, P: tl.constexpr, PH: tl.constexpr, KH: tl.constexpr,
    KJ: tl.constexpr, WWP: tl.constexpr, RUN: tl.constexpr,
):
    """``BLOCK_N`` channels of ``y`` (``C``) over segments ``[PER * program_id(1), + PER)`` of the ``SEGS`` (``PH``
    rows x ``P // PH`` columns of outputs each), ``BLOCK_K`` a step; ``x`` read (sizes D, H, W), channel ``c // DIV``
    for channel ``c``, its windows flattened (:func:`step_windows`; ``KH`` taps along the height, ``TAPS`` along the
    width; one row's from ``R`` columns early, the band as many rows lower)."""
    ROWS: tl.constexpr = PH > 1 or KH > 1
    c, ok_c, first, last = program_share(C, PER, SEGS, INT64, BLOCK_N)
    j = tl.arange(0, KJ)
    q = tl.arange(0, P)
    ww = (P // PH - 1) * sw + (TAPS - 1) * dw + 1  # a window's inputs a row (several rows: WWP apart), and in all
    inputs = ((PH - 1) * sh + (KH - 1) * dh + 1) * WWP if ROWS else ww
    a, b, u, v = band_coordinates(j, q, WWP, R, P, PH, ROWS)
    # the band, once: window element (a, b) of output (u, v) is tap (th, tw) where a = u*sh + th*dh, b = v*sw + tw*dw
    rel_h = a[:, None] - u[None, :] * sh
    rel_w = b[:, None] - v[None, :] * sw
    th, tw = rel_h // dh, rel_w // dw
    ok_t = (rel_h >= 0) & (rel_h % dh == 0) & (th < KH) & (rel_w >= 0) & (rel_w % dw == 0) & (tw < TAPS)
    if FLIP:
        th, tw = KH - 1 - th, TAPS - 1 - tw
    band = load_lanes(w_ptr, c * swo, th * swh + tw * sww, ok_c, ok_t)
    x_c = (c // DIV) * sxc
    if RUN > 1:  # (every stride whole runs)
        x_c = tl.multiple_of(x_c, RUN)
    g, nb, od, ohb, owb = first_segments(first, OD, OHS, OWS, BLOCK_K)
    for _ in range(0, last - first, BLOCK_K):  # (the last program's share: the segments left)
        ok_g, oh0, o0 = g < last, ohb * PH, owb * (P // PH) - E
        xv = step_windows(x_ptr, x_c, ok_c, ok_g, nb, od, oh0, o0, j, a, b, inputs, D, H, W, sd, sh, pd, ph, sxn, sxd,
                          sxh, sxw, sw, pw, R, ROWS, RUN, INT64)
        acc = tl.full((BLOCK_N, BLOCK_K, P), 0.0, tl.float32)
        acc = mma(acc, xv, band, UPCAST, DOT_PRECISION, tl.float32)  # [channels, segments, outputs]
        if HAS_BIAS:
            acc += tl.load(b_ptr + c * sb, mask=ok_c, other=0.0).to(tl.float32)[:, None, None]
        acc = activate(acc, ACTIVATION)
        to, ok_o = segment_outputs(nb, od, oh0, o0, ok_g, u, v, OH, OW, syn, syd, syh, syw, ROWS, INT64)
        store_lanes(y_ptr, c * syc, to, acc, ok_c, ok_o)
        g += BLOCK_K
        nb, od, ohb, owb = advance(nb, od, ohb, owb, STEP_N, STEP_D, STEP_H, STEP_W, OD, OHS, OWS)


@kernel
@triton.jit
def _banded_weight_grad_kernel(
    x_ptr, dy_ptr, dw_ptr, ws_ptr, cnt_ptr,
    C, DIV, D, H, W, OD, OH, OW, TAPS, SEGS, PER, R, E, OHS, OWS, STEP_N, STEP_D, STEP_H, STEP_W,
    sd, sh, sw, pd, ph, pw, dd, dh, dw,
    sxn, sxc, sxd, sxh, sxw,
    syn, syc, syd, syh, syw,
    sgo, sgt,
    SPLIT: tl.constexpr, FLIP: tl.constexpr, INT64: tl.constexpr, UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, P: tl.constexpr, PH: tl.constexpr,
    KH: tl.constexpr, KJ: tl.constexpr, WWP: tl.constexpr, RUN: tl.constexpr,
):
    """The weight gradient of ``BLOCK_N`` channels (``C``, ``BLOCK_M`` taps a tile: ``KH x TAPS`` flattened) over
    segments ``[PER * program_id(1), + PER)`` of the output gradient's ``SEGS``, ``BLOCK_K`` a step: each step adds the
    segments' output gradients times their windows of ``x``, ``G[c, q, j] += sum_g dy[c, g, q] * x[c // DIV, g, j]``
    (a batched dot over the segments), and at the end tap ``(th, tw)``'s gradient is ``G``'s diagonal ``sum_q G[c, q,
    j]`` where window element ``j`` is output ``q``'s tap ``(th, tw)``. The splits' sums meet in the last split to
    arrive (``SPLIT``, :func:`tritonconv._tile.meet_splits`: in split order, one launch), which writes the gradient
    (``sgo``, ``sgt``: its strides per channel and flattened tap; ``FLIP``, the taps reversed) in its dtype."""
    ROWS: tl.constexpr = PH > 1 or KH > 1
    c, ok_c, first, last = program_share(C, PER, SEGS, INT64, BLOCK_N)
    j = tl.arange(0, KJ)
    q = tl.arange(0, P)
    ww = (P // PH - 1) * sw + (TAPS - 1) * dw + 1
    inputs = ((PH - 1) * sh + (KH - 1) * dh + 1) * WWP if ROWS else ww
    a, b, u, v = band_coordinates(j, q, WWP, R, P, PH, ROWS)
    x_c = (c // DIV) * sxc
    if RUN > 1:  # (every stride whole runs)
        x_c = tl.multiple_of(x_c, RUN)
    g, nb, od, ohb, owb = first_segments(first, OD, OHS, OWS, BLOCK_K)
    acc = tl.full((BLOCK_N, P, KJ), 0.0, tl.float32)
    for _ in range(0, last - first, BLOCK_K):  # (the last program's share: the segments left)
        ok_g, oh0, o0 = g < last, ohb * PH, owb * (P // PH) - E
        xv = step_windows(x_ptr, x_c, ok_c, ok_g, nb, od, oh0, o0, j, a, b, inputs, D, H, W, sd, sh, pd, ph, sxn, sxd,
                          sxh, sxw, sw, pw, R, ROWS, RUN, INT64)
        at, ok_o = segment_outputs(nb, od, oh0, o0, ok_g, u, v, OH, OW, syn, syd, syh, syw, ROWS, INT64)
        dyv = tl.permute(load_lanes(dy_ptr, c * syc, at, ok_c, ok_o), (0, 2, 1))  # [channels, outputs, segments]
        acc = mma(acc, dyv, xv, UPCAST, DOT_PRECISION, tl.float32)  # [channels, outputs, window]
        g += BLOCK_K
        nb, od, ohb, owb = advance(nb, od, ohb, owb, STEP_N, STEP_D, STEP_H, STEP_W, OD, OHS, OWS)
    # tap (th, tw) of output (u, v): window element (u*sh + th*dh, v*sw + tw*dw) (one row: R columns on); taps past
    # the last read a clamped one and are not stored
    t = tl.arange(0, BLOCK_M)
    th, tw = t // TAPS, t % TAPS
    col = v[:, None] * sw + tw[None, :] * dw
    if ROWS:
        at_t = (u[:, None] * sh + th[None, :] * dh) * WWP + col
    else:
        at_t = R + col
    at_t = tl.minimum(at_t, KJ - 1)
    diagonals = tl.gather(acc, tl.broadcast_to(at_t[None, :, :], (BLOCK_N, P, BLOCK_M)), 2)
    # tl.sum is Triton's own @jit helper, which the interpreted twin cannot call; tl.reduce is a builtin.
    total = tl.trans(tl.reduce(diagonals, 1, tl.standard._sum_combine))  # [taps, channels]
    finish = True
    if SPLIT:
        total, finish = meet_splits(total, ws_ptr, cnt_ptr, tl.program_id(0), tl.num_programs(0), tl.program_id(1),
                                    tl.num_programs(1), BLOCK_M, BLOCK_N)
    if finish:
        out_t = KH * TAPS - 1 - t if FLIP else t
        tl.store(dw_ptr + c[None, :] * sgo + out_t[:, None] * sgt, total.to(dw_ptr.dtype.element_ty),
                 mask=(t < KH * TAPS)[:, None] & ok_c[None, :])


def applies(spec: ConvSpec, dtype: torch.dtype, transposed: bool) -> bool:
    """Whether the banded kernels compute this depthwise pass (the weight gradient's: as the forward's): one tap along
    the depth (``k``, ``kh x kw``, ``1 x kh x kw``), 16-bit operands (tensor cores; fp32 stays exact on FMA units), and
    the input gradient at unit strides with one output channel per input channel."""
    if math.prod(spec.weight_shape[2:-2]) != 1 or dtype not in (torch.float16, torch.bfloat16):
        return False
    return not transposed or (set(spec.stride) == {1} and spec.weight_shape[0] == spec.groups)


def runs(spec: ConvSpec, dtype: torch.dtype, transposed: bool, config: Config) -> bool:
    """Whether a depthwise pass with ``config`` runs this kernel: a config that folds the taps into the reduction
    (``Config.fold``) on a pass it computes (:func:`applies`); else the FMA kernel (:mod:`tritonconv.kernels.depthwise`)."""
    return bool(config.fold) and applies(spec, dtype, transposed)


def as_forward(spec: ConvSpec, transposed: bool, flip: bool) -> tuple[tuple[int, ...], bool]:
    """``(padding before per axis, flip)`` of the forward this pass runs as: itself, or the input gradient's (unit
    strides: the taps reversed, padding ``(taps - 1)*d - pad``)."""
    pads = tuple(before for before, _ in spec.padding)
    if not transposed:
        return pads, flip
    return tuple((k - 1) * d - p for k, d, p in zip(spec.weight_shape[2:], spec.dilation, pads)), not flip


def axes(spec: ConvSpec) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """``(taps, stride, dilation)`` along the height (a 1-D layer's: ``(1, 1, 1)``), then along the width."""
    n = len(spec.stride)
    def axis(i: int) -> tuple[int, int, int]:
        return spec.weight_shape[2 + i], spec.stride[i], spec.dilation[i]
    return axis(n - 2) if n > 1 else (1, 1, 1), axis(n - 1)


def window_shape(spec: ConvSpec, outputs: int, rows: int = 1) -> tuple[int, int]:
    """The inputs a segment of ``outputs`` outputs in ``rows`` rows reads: ``((rows - 1)*sh + (kh - 1)*dh + 1)`` rows
    of ``((outputs/rows - 1)*sw + (kw - 1)*dw + 1)``."""
    (kh, sh, dh), (kw, sw, dw) = axes(spec)
    return (rows - 1) * sh + (kh - 1) * dh + 1, (outputs // rows - 1) * sw + (kw - 1) * dw + 1


def window(spec: ConvSpec, outputs: int, rows: int = 1, shift: int = 0, run: int = 1) -> int:
    """The band's rows (``KJ``): the inputs a segment of ``outputs`` outputs in ``rows`` rows reads (:func:`window_shape`;
    one row: and ``shift`` before them), each row rounded up to whole runs of ``run``, padded to a power of two (at
    least 16, the tensor cores' reduction)."""
    height, width = window_shape(spec, outputs, rows)
    return max(16, triton.next_power_of_2(height * cdiv(width + shift, run) * run))


def segment_rows(spec: ConvSpec, outputs: int, run: int = 1) -> int:
    """The rows of a segment of ``outputs`` outputs (``PH``): one where the taps lie along the width alone; else the
    power of two whose window pads to the fewest inputs (:func:`window`; read in runs of ``run``: rows of a multiple of
    ``run`` outputs, each window row whole runs), the fewest rows of those (3 x 3 taps in 32 outputs: 4 rows of 8, 6 x
    10 inputs in 64; 7 x 7 in 16: 2 rows of 8, 8 x 14 in 128; 3 x 3 in 16 read in runs of 8: 2 rows of 8, 4 x 16)."""
    if axes(spec)[0][0] == 1:
        return 1
    choices = [2 ** i for i in range(outputs.bit_length()) if (outputs >> i) % run == 0]
    return min(choices, key=lambda r: (window(spec, outputs, r, run=run), r))


def segment(spec: ConvSpec, run: int = 1) -> int:
    """The outputs a segment spans: the most (16 to 64) whose window pads to no more inputs than 16 outputs' does
    (:func:`window`, :func:`segment_rows`; ``run``: read in runs): 31 taps take 32 (a window of 62 in 64), 9 taps 16 (24
    in 32), 3 x 3 32 (in runs of 8: 16)."""
    def padded(p: int) -> int:
        return window(spec, p, segment_rows(spec, p, run), run=run)
    return max(p for p in (16, 32, 64) if padded(p) == padded(16))


def segments(written: tuple[int, ...], outputs: int, rows: int = 1, early: int = 0) -> int:
    """The segments of ``outputs`` outputs in ``rows`` rows in a tensor shaped ``written``: ``ceil(height / rows) x
    ceil((width + early) / (outputs / rows))`` a plane (``early``: columns the grid starts before the first)."""
    *outer, height, width = (1, *written[2:])
    return written[0] * math.prod(outer) * cdiv(height, rows) * cdiv(width + early, outputs // rows)


def aligned_run(x: torch.Tensor) -> int:
    """The elements of a 16-byte run where ``x`` holds its rows contiguous and every other stride and its width in
    whole runs (its rows can be read in aligned runs), else of an 8- or 4-byte run where they are whole such runs (rows
    of 28 and 14: ConvNeXt's second and third stages); else 0."""
    for run in (16 // x.element_size(), 8 // x.element_size(), 4 // x.element_size()):
        if x.stride(-1) == 1 and not any(v % run for v in (*x.stride()[:-1], x.shape[-1])):
            return run
    return 0


class Reading(NamedTuple):
    """How a banded launch tiles its output and reads its windows (:func:`reading`)."""

    run: int  # > 1: windows read in aligned runs of this many elements (16 bytes); 0: an element at a time
    shift: int  # one-row windows read in runs: the columns read before each (``R``)
    early: int  # windows of several rows read in runs: the columns the segment grid starts before the first (``E``)
    rows: int  # a segment's rows (``PH``, :func:`segment_rows`)
    pitch: int  # windows of several rows: the inputs a window row takes in the band (``WWP``; whole runs)


def reading(x: torch.Tensor, spec: ConvSpec, config: Config, pad: int) -> Reading:
    """How a launch with ``config`` reads ``x`` (the tensor read, its padding before ``pad`` along the width): where
    ``x`` holds its rows contiguous and every other stride and its width in whole 16-, 8- or 4-byte runs
    (:func:`aligned_run`), its windows are read in those runs, where that leaves the band as wide (:func:`rows`).
    One-row windows from ``R = -pad mod RUN`` columns before their own starts (a segment's start, ``block_m * stride``
    a segment, is on a run), the band ``R`` rows lower (31 taps at padding 15: 62 + 1 in 64). Windows of several rows
    (unit width stride) each row from a run boundary, whole runs a row (``pitch``), the segments' grid starting ``E =
    -pad mod RUN`` columns early so that every segment's window does (its outputs there masked): segments of rows of a
    multiple of ``RUN`` outputs (3 x 3 taps in 16: 2 x 8 outputs, 4 x 16 inputs in 64; 7 x 7 in 16: 8 x 16 in 128).
    Else 2 bytes at a time."""
    outputs, sw = config.block_m, spec.stride[-1]
    run = aligned_run(x)
    band = rows(spec, config)
    if axes(spec)[0][0] == 1:
        if run and outputs * sw % run == 0 and window(spec, outputs, 1, -pad % run) <= band:
            return Reading(run, -pad % run, 0, 1, 0)
        return Reading(0, 0, 0, 1, 0)
    if run and sw == 1:
        seg_rows = segment_rows(spec, outputs, run)
        if window(spec, outputs, seg_rows, run=run) <= band:
            return Reading(run, 0, -pad % run, seg_rows, cdiv(window_shape(spec, outputs, seg_rows)[1], run) * run)
    seg_rows = segment_rows(spec, outputs)
    return Reading(0, 0, 0, seg_rows, window_shape(spec, outputs, seg_rows)[1])


def tiling(written: tuple[int, ...], spec: ConvSpec, config: Config, read: Reading | None = None) -> tuple[int, int, int]:
    """``(segments, PER, programs)`` of a launch writing a tensor shaped ``written`` (reading as ``read``; None: an
    element at a time): its segments, each program's share of them (whole steps of ``block_k``) and the programs along
    them (about ``split_k``)."""
    read = read or Reading(0, 0, 0, segment_rows(spec, config.block_m), 0)
    segs = segments(written, config.block_m, read.rows, read.early)
    per = max(1, cdiv(cdiv(segs, config.split_k), config.block_k)) * config.block_k
    return segs, per, cdiv(segs, per)


def rows(spec: ConvSpec, config: Config) -> int:
    """The band's rows (``KJ``, :func:`window`) of a pass with ``config`` (the input gradient's: its forward's, at unit
    stride)."""
    return window(spec, config.block_m, segment_rows(spec, config.block_m))


def shared_bytes(spec: ConvSpec, config: Config, itemsize: int, wgrad: bool = False) -> int:
    """Shared memory a program holds (ptxas's count on sm_90, Triton 3.9 and 3.6, and sm_80): its band, ``block_n x KJ
    x block_m``, and a step's ``x``, ``block_n x block_k x KJ``, laid out there for the MMA; the weight gradient's, a
    step's ``x`` and output gradient (``block_n x block_m x block_k``), at least 32 KiB (its diagonals' gather)."""
    if wgrad:
        return max(config.block_n * config.block_k * (rows(spec, config) + config.block_m) * itemsize, 32768)
    return config.block_n * rows(spec, config) * (config.block_m + config.block_k) * itemsize


def tap_tile(spec: ConvSpec) -> int:
    """The weight gradient's taps a tile (``BLOCK_M``): every tap, a power of two."""
    return triton.next_power_of_2(math.prod(spec.weight_shape[2:]))


def segment_grid(written: tuple[int, ...], config: Config, read: Reading) -> tuple[int, ...]:
    """``(OHS, OWS, STEP_N, STEP_D, STEP_H, STEP_W)``: a plane's rows of segments and segments a row in a tensor shaped
    ``written`` (reading as ``read``), and a step's ``block_k`` segments as batches, depth, rows and columns of them
    (:func:`tritonconv.geometry.position_step`)."""
    *outer, height, width = (1, *written[2:])
    grid = (cdiv(height, read.rows), cdiv(width + read.early, config.block_m // read.rows))
    return (*grid, *position_step(config.block_k, (math.prod(outer), *grid)))


def kernel_geometry(x_sizes, y_sizes, spec: ConvSpec, pads: tuple[int, ...]) -> tuple[int, ...]:
    """:func:`tritonconv.geometry.geometry_3d` with the paddings before of the forward the pass runs as
    (:func:`as_forward`)."""
    geo = geometry_3d(x_sizes, y_sizes, spec)
    return (*geo[:9], *geometry.as_3d(pads, 0), *geo[12:])


class Launch:
    """:func:`_banded_kernel` prepared for tensors laid out as ``x``, ``weight``, ``y``; calling it reads ``x`` and
    writes ``y``: the forward pass, or with ``transposed`` the input gradient (``x`` the output gradient). ``config``:
    ``block_m`` outputs a segment (:func:`segment_rows` rows of them), ``block_n`` channels, ``block_k`` segments a
    step, ``split_k`` programs along the segments (each ``PER`` of them, whole steps)."""

    def __init__(self, x, weight, bias, y, spec: ConvSpec, transposed: bool, activation: str | None, flip: bool,
                 config: Config) -> None:
        channels = y.shape[1]
        (kh, _, _), (taps, _, _) = axes(spec)
        pads, flip = as_forward(spec, transposed, flip)
        read = reading(x, spec, config, pads[-1])
        segs, per, programs = tiling(tuple(y.shape), spec, config, read)
        interp = interpreting(x.device)
        self.empty = y.numel() == 0
        self.grid = (cdiv(channels, config.block_n), programs)
        geo = kernel_geometry(x.shape[2:], y.shape[2:], spec, pads)  # (transposed: unit strides, taps reversed)
        self.args = (
            channels, 1 if transposed else channels // x.shape[1], *geo[:6], taps, segs, per, read.shift, read.early,
            *segment_grid(tuple(y.shape), config, read), *geo[6:],
            *strides_3d(x), weight.stride(0), *tap_strides(weight)[1:], *strides_3d(y),
            geometry.bias_step(bias),
        )
        self.kwargs = dict(
            HAS_BIAS=bias is not None, ACTIVATION=activation, FLIP=flip,
            INT64=needs_int64(x, weight, y, rows=segs * config.block_m),
            UPCAST=interp and x.dtype == torch.bfloat16, DOT_PRECISION=dot_precision(x.dtype, interp),
            BLOCK_N=config.block_n, BLOCK_K=config.block_k, P=config.block_m, PH=read.rows, KH=kh,
            KJ=rows(spec, config), WWP=read.pitch, RUN=read.run,
            num_warps=config.num_warps, num_stages=config.num_stages,
        )
        self.launcher = Direct(_banded_kernel, self.args, self.kwargs)  # JITFunction.run once, then its launcher

    def __call__(self, x, weight, bias, y) -> torch.Tensor:
        if not self.empty:
            self.launcher(x.device, self.grid, x, weight, bias if bias is not None else weight, y)
        return y


class WeightGradLaunch:
    """:func:`_banded_weight_grad_kernel` prepared for tensors laid out as ``grad_output`` and ``input``; calling it
    returns the gradient, contiguous, in the input's dtype, from one launch (``direct``: split sums met in the kernel).
    ``config`` as :class:`Launch`'s, ``split_k`` the programs along the segments, whose sums meet."""

    def __init__(self, grad_output, input, spec: ConvSpec, flip: bool, config: Config) -> None:
        c_out = spec.weight_shape[0]
        (kh, _, _), (taps, _, _) = axes(spec)
        read = reading(input, spec, config, spec.padding[-1][0])
        segs, per, programs = tiling(tuple(grad_output.shape), spec, config, read)
        interp = interpreting(input.device)
        self.spec, self.flip, self.empty = spec, flip, segs == 0
        self.direct, self.dtype, self.inner_grad = True, input.dtype, False  # the gradient itself, contiguous
        self.shape = tuple(spec.weight_shape)
        self.grid = (cdiv(c_out, config.block_n), programs)
        tile_t = tap_tile(spec)
        # split partial tiles (fp32), tile-major; a ticket counter per tile, per stream
        self.workspace = programs * self.grid[0] * tile_t * config.block_n if programs > 1 else 0
        self.counters = Counters(self.grid[0])
        geo = geometry_3d(input.shape[2:], grad_output.shape[2:], spec)
        self.args = (
            c_out, c_out // input.shape[1], *geo[:6], taps, segs, per, read.shift, read.early,
            *segment_grid(tuple(grad_output.shape), config, read), *geo[6:],
            *strides_3d(input), *strides_3d(grad_output), kh * taps, 1,
        )
        self.kwargs = dict(
            SPLIT=programs > 1, FLIP=flip,
            INT64=needs_int64(input, grad_output, rows=max(segs * config.block_m, self.workspace)),
            UPCAST=interp and input.dtype == torch.bfloat16, DOT_PRECISION=dot_precision(input.dtype, interp),
            BLOCK_M=tile_t, BLOCK_N=config.block_n, BLOCK_K=config.block_k, P=config.block_m,
            PH=read.rows, KH=kh, KJ=rows(spec, config), WWP=read.pitch, RUN=read.run,
            num_warps=config.num_warps, num_stages=config.num_stages,
        )
        self.launcher = Direct(_banded_weight_grad_kernel, self.args, self.kwargs)  # JITFunction.run once, then its launcher

    def __call__(self, grad_output, input) -> torch.Tensor:
        """Launch; returns the gradient."""
        grad = geometry.alloc_output(self.shape, input.device, self.dtype)
        if self.empty:  # an empty batch: the gradient is exactly zero
            return grad.zero_()
        ws = geometry.alloc_output((self.workspace,), input.device, torch.float32) if self.workspace else grad
        self.launcher(input.device, self.grid, input, grad_output, grad, ws, self.counters(input.device))
        return grad
