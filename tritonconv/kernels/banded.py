"""Depthwise convolution on tensor cores: a row of taps as a banded reduction.

:mod:`tritonconv.kernels.depthwise` runs each tap as a multiply-add on FMA units, and loads, converts and addresses
its operand once per tap: on a long 1-D kernel (Conformer's 31 taps) that is about five warp instructions a
multiply-add, so the layer is bound by issue, not by its bytes. Here a channel's taps along the width become a band:
``P`` consecutive outputs from ``o0`` read a window of ``(P - 1)*s + (taps - 1)*d + 1`` inputs, and::

    y[b, c, o0 + q] = sum_j x[b, c // DIV, o0*s - pad + j] * band[c, j, q],   band[c, j, q] = w[c, 0, t] where j = q*s + t*d

(0 elsewhere). Per channel, ``BLOCK_K`` segments of ``P`` outputs are one ``[segments, window] x [window, P]``
product, and ``BLOCK_N`` channels one batched ``tl.dot`` on the tensor cores, the window padded to a power of two
(``KJ``): ``KJ / taps`` the useful multiply-adds (2.06x for 31 taps in segments of 32), for 6-17 warp instructions
per 1000 useful ones where the FMA kernels issue 139-205 (sm_90, ``benchmarks.static``). A program loads its band once
and runs over its share of the segments (``PER`` of them, ``BLOCK_K`` a step); a segment lies within one row
``(b, od, oh)``, whose depth and height taps are single (``KD = KH = 1``). Rows held contiguous in whole 16-byte runs
(NC(D)HW, :func:`window_runs`) are read in those runs, from ``R`` columns before each window, the band ``R`` rows lower.

The input gradient at unit strides is this forward on the output gradient with the taps reversed and padding
``(taps - 1)*d - pad`` (:func:`as_forward`), one output channel per input channel. The weight gradient sums
``G[c, q, j] += dy[b, c, o0 + q] * x[b, c // DIV, o0*s - pad + j]`` over the segments (a batched dot whose reduction is
the segments), and tap ``t``'s gradient is the diagonal ``sum_q G[c, q, q*s + t*d]``; its programs' sums meet in the
kernel in a fixed order.

A NaN or infinity in the forward's (input gradient's) ``x`` reaches every output of a segment whose window (read in
runs: rounded out to them) holds it (times the band's zeros), not only the outputs its taps reach, as in cuDNN's
Winograd and FFT algorithms; the weight gradient reads only its true products' diagonals. Finite inputs give the
exact products summed in fp32, as the FMA kernels'.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .. import geometry
from .._checks import ConvSpec
from .._runtime import Counters, Direct, device, interpreting, kernel
from .._tile import activate, inside, meet_splits, mma
from ..geometry import Config, dot_precision, geometry_3d, needs_int64, strides_3d
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
def step_windows(x_ptr, x_c, ok_c, g, last, per_row, j, window, P: tl.constexpr, OD, OH, D, H, W, sd, sh, pd, ph,
                 sxn, sxd, sxh, sxw, sw, pw, R, RUN: tl.constexpr, INT64: tl.constexpr):
    """A step's segments ``g`` (``per_row`` a row of ``P`` outputs; those from ``last`` on not the program's): their rows
    ``(nb, od, oh)``, first outputs ``o0``, which are the program's, and ``x``'s windows ``[channels, segments, KJ]``:
    each segment's inputs ``o0*s - pad - R + j`` of the row its one depth and height tap reads, for ``j`` below ``window
    + R`` (0 past it, outside the input, and for segments not the program's); ``x_c``, the channels' offsets. ``RUN``
    (> 1): the rows are contiguous and read in aligned runs of ``RUN`` from run boundaries (``R`` columns before the
    windows', :func:`window_runs`), their masks whole runs'."""
    ok_g = g < last
    row = g // per_row
    o0 = (g % per_row) * P
    oh = row % OH
    od = (row // OH) % OD
    nb = row // (OH * OD)
    id_ = od * sd - pd
    ih = oh * sh - ph
    ok = ok_g & inside(id_, D, INT64) & inside(ih, H, INT64)
    start = o0 * sw - pw - R
    rows = nb * sxn + id_ * sxd + ih * sxh
    if RUN > 1:
        start, rows = tl.multiple_of(start, RUN), tl.multiple_of(rows, RUN)
    i = start[:, None] + j[None, :]
    if RUN > 1:
        ok_i = ok[:, None] & inside(i, W, INT64) & (j < (window + R + RUN - 1) // RUN * RUN)[None, :]
        ok_i = tl.max_constancy(ok_i, [1, RUN])
        at = rows[:, None] + i
    else:
        ok_i = ok[:, None] & inside(i, W, INT64) & (j < window)[None, :]
        at = rows[:, None] + i * sxw
    xv = tl.load(x_ptr + x_c[:, None, None] + at[None, :, :], mask=ok_c[:, None, None] & ok_i[None, :, :], other=0.0)
    return nb, od, oh, o0, ok_g, xv


@kernel
@triton.jit
def _banded_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    C, DIV, D, H, W, OD, OH, OW, TAPS, SEGS, PER, R,
    sd, sh, sw, pd, ph, pw, dd, dh, dw,
    sxn, sxc, sxd, sxh, sxw,
    swo, sww,
    syn, syc, syd, syh, syw, sb,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, FLIP: tl.constexpr, INT64: tl.constexpr,
    UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, P: tl.constexpr, KJ: tl.constexpr, RUN: tl.constexpr,
):
    """``BLOCK_N`` channels of ``y`` (``C``) over segments ``[PER * program_id(1), + PER)`` of the ``SEGS`` (all rows'
    ``ceil(OW / P)`` each), ``BLOCK_K`` a step; ``x`` read (sizes D, H, W), channel ``c // DIV`` for channel ``c``, its
    windows from ``R`` columns early (:func:`step_windows`), the band as many rows lower."""
    c, ok_c, first, last = program_share(C, PER, SEGS, INT64, BLOCK_N)
    j = tl.arange(0, KJ)
    q = tl.arange(0, P)
    # the band, once: window element j of output q is tap t where j = q*s + t*d
    rel = j[:, None] - R - q[None, :] * sw
    t = rel // dw
    ok_t = (rel >= 0) & (rel % dw == 0) & (t < TAPS)
    if FLIP:
        t = TAPS - 1 - t
    band = tl.load(w_ptr + c[:, None, None] * swo + (t * sww)[None, :, :], mask=ok_c[:, None, None] & ok_t[None, :, :],
                   other=0.0)
    window = (P - 1) * sw + (TAPS - 1) * dw + 1
    x_c = (c // DIV) * sxc
    per_row = (OW + P - 1) // P
    g0 = first + tl.arange(0, BLOCK_K)
    for step in range(0, last - first, BLOCK_K):  # (the last program's share: the segments left)
        nb, od, oh, o0, ok_g, xv = step_windows(x_ptr, x_c, ok_c, g0 + step, last, per_row, j, window, P, OD, OH, D, H,
                                                W, sd, sh, pd, ph, sxn, sxd, sxh, sxw, sw, pw, R, RUN, INT64)
        acc = tl.full((BLOCK_N, BLOCK_K, P), 0.0, tl.float32)
        acc = mma(acc, xv, band, UPCAST, DOT_PRECISION, tl.float32)  # [channels, segments, outputs]
        if HAS_BIAS:
            acc += tl.load(b_ptr + c * sb, mask=ok_c, other=0.0).to(tl.float32)[:, None, None]
        acc = activate(acc, ACTIVATION)
        o = o0[:, None] + q[None, :]
        ok_o = ok_g[:, None] & (o < OW)
        to = (nb * syn + od * syd + oh * syh)[:, None] + o * syw
        tl.store(y_ptr + (c * syc)[:, None, None] + to[None, :, :], acc.to(y_ptr.dtype.element_ty),
                 mask=ok_c[:, None, None] & ok_o[None, :, :])


@kernel
@triton.jit
def _banded_weight_grad_kernel(
    x_ptr, dy_ptr, dw_ptr, ws_ptr, cnt_ptr,
    C, DIV, D, H, W, OD, OH, OW, TAPS, SEGS, PER, R,
    sd, sh, sw, pd, ph, pw, dd, dh, dw,
    sxn, sxc, sxd, sxh, sxw,
    syn, syc, syd, syh, syw,
    sgo, sgt,
    SPLIT: tl.constexpr, FLIP: tl.constexpr, INT64: tl.constexpr, UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, P: tl.constexpr, KJ: tl.constexpr,
    RUN: tl.constexpr,
):
    """The weight gradient of ``BLOCK_N`` channels (``C``, ``BLOCK_M`` taps a tile) over segments ``[PER *
    program_id(1), + PER)`` of the output gradient's ``SEGS``, ``BLOCK_K`` a step: each step adds the segments' output
    gradients times their windows of ``x``, ``G[c, q, j] += sum_g dy[c, g, o0 + q] * x[c // DIV, g, j]`` (a batched
    dot over the segments), and at the end tap ``t``'s gradient is ``G``'s diagonal ``sum_q G[c, q, q*s + t*d]``.
    The splits' sums meet in the last split to arrive (``SPLIT``, :func:`tritonconv._tile.meet_splits`: in split
    order, one launch), which writes the gradient (``sgo``, ``sgt``: its strides per channel and tap; ``FLIP``, the
    taps reversed) in its dtype."""
    c, ok_c, first, last = program_share(C, PER, SEGS, INT64, BLOCK_N)
    j = tl.arange(0, KJ)
    q = tl.arange(0, P)
    window = (P - 1) * sw + (TAPS - 1) * dw + 1
    x_c = (c // DIV) * sxc
    per_row = (OW + P - 1) // P
    g0 = first + tl.arange(0, BLOCK_K)
    acc = tl.full((BLOCK_N, P, KJ), 0.0, tl.float32)
    for step in range(0, last - first, BLOCK_K):  # (the last program's share: the segments left)
        nb, od, oh, o0, ok_g, xv = step_windows(x_ptr, x_c, ok_c, g0 + step, last, per_row, j, window, P, OD, OH, D, H,
                                                W, sd, sh, pd, ph, sxn, sxd, sxh, sxw, sw, pw, R, RUN, INT64)
        o = o0[None, :] + q[:, None]  # [outputs, segments]
        ok_o = ok_g[None, :] & (o < OW)
        at = (nb * syn + od * syd + oh * syh)[None, :] + o * syw
        dyv = tl.load(dy_ptr + (c * syc)[:, None, None] + at[None, :, :], mask=ok_c[:, None, None] & ok_o[None, :, :],
                      other=0.0)
        acc = mma(acc, dyv, xv, UPCAST, DOT_PRECISION, tl.float32)  # [channels, outputs, window]
    # tap t: the diagonal j = q*s + t*d (taps past the last read a clamped one and are not stored)
    t = tl.arange(0, BLOCK_M)
    at_t = tl.minimum(R + q[:, None] * sw + t[None, :] * dw, KJ - 1)
    diagonals = tl.gather(acc, tl.broadcast_to(at_t[None, :, :], (BLOCK_N, P, BLOCK_M)), 2)
    # tl.sum is Triton's own @jit helper, which the interpreted twin cannot call; tl.reduce is a builtin.
    total = tl.trans(tl.reduce(diagonals, 1, tl.standard._sum_combine))  # [taps, channels]
    finish = True
    if SPLIT:
        total, finish = meet_splits(total, ws_ptr, cnt_ptr, tl.program_id(0), tl.num_programs(0), tl.program_id(1),
                                    tl.num_programs(1), BLOCK_M, BLOCK_N)
    if finish:
        out_t = TAPS - 1 - t if FLIP else t
        tl.store(dw_ptr + c[None, :] * sgo + out_t[:, None] * sgt, total.to(dw_ptr.dtype.element_ty),
                 mask=(t < TAPS)[:, None] & ok_c[None, :])


def applies(spec: ConvSpec, dtype: torch.dtype, transposed: bool) -> bool:
    """Whether the banded kernels compute this depthwise pass (the weight gradient's: as the forward's): its taps along
    the width alone (``1 x ... x k``), 16-bit operands (tensor cores; fp32 stays exact on FMA units), and the input
    gradient at unit strides with one output channel per input channel."""
    *outer, _ = spec.weight_shape[2:]
    if math.prod(outer) != 1 or dtype not in (torch.float16, torch.bfloat16):
        return False
    return not transposed or (set(spec.stride) == {1} and spec.weight_shape[0] == spec.groups)


def runs(spec: ConvSpec, dtype: torch.dtype, transposed: bool, config: Config) -> bool:
    """Whether a depthwise pass with ``config`` runs this kernel: a config that folds the taps into the reduction
    (``Config.fold``) on a pass it computes (:func:`applies`); else the FMA kernel (:mod:`tritonconv.kernels.depthwise`)."""
    return bool(config.fold) and applies(spec, dtype, transposed)


def as_forward(spec: ConvSpec, transposed: bool, flip: bool) -> tuple[int, bool]:
    """``(padding before, flip)`` along the width of the forward this pass runs as: itself, or the input gradient's
    (unit stride: the taps reversed, padding ``(taps - 1)*d - pad``)."""
    pad = spec.padding[-1][0]
    if not transposed:
        return pad, flip
    return (spec.weight_shape[-1] - 1) * spec.dilation[-1] - pad, not flip


def window(taps: int, stride: int, dilation: int, segment: int, shift: int = 0) -> int:
    """The band's rows: a segment of ``segment`` outputs' window, ``(segment - 1)*stride + (taps - 1)*dilation + 1``
    inputs (and ``shift`` before it), padded to a power of two (at least 16, the tensor cores' reduction)."""
    return max(16, triton.next_power_of_2((segment - 1) * stride + (taps - 1) * dilation + 1 + shift))


def segment(taps: int, stride: int, dilation: int) -> int:
    """The outputs a segment spans: the longest (16 to 64) whose window pads to no more rows than 16 outputs' does
    (:func:`window`): 31 taps take 32 (a window of 62 in 64), 9 taps 16 (24 in 32)."""
    shortest = window(taps, stride, dilation, 16)
    return max(p for p in (16, 32, 64) if window(taps, stride, dilation, p) == shortest)


def segments(written: tuple[int, ...], segment: int) -> int:
    """The segments of ``segment`` outputs in a tensor shaped ``written``: ``ceil(width / segment)`` a row."""
    return written[0] * math.prod(written[2:-1]) * cdiv(written[-1], segment)


def window_runs(x: torch.Tensor, spec: ConvSpec, config: Config, pad: int) -> tuple[int, int]:
    """``(RUN, R)``: where ``x`` (the tensor read, its padding before ``pad``) holds its rows contiguous and every other
    stride and its width in whole 16-byte runs, its windows are read in those runs, from ``R = -pad mod RUN`` columns
    before their own starts (a segment's start, ``block_m * stride`` a segment, is on a run: so is every window's
    less ``R``), the band ``R`` rows lower; where that leaves it as wide (:func:`rows`: 31 taps at padding 15, 62 + 1 in
    64). Else ``(0, 0)``: 2 bytes at a time."""
    run = 16 // x.element_size()
    sizes = (x.stride(0), x.stride(1), *x.stride()[2:-1], x.shape[-1], config.block_m * spec.stride[-1])
    shift = -pad % run
    taps, stride, dilation = spec.weight_shape[-1], spec.stride[-1], spec.dilation[-1]
    if x.stride(-1) != 1 or any(v % run for v in sizes) or window(taps, stride, dilation, config.block_m, shift) > rows(
            spec, config):
        return 0, 0
    return run, shift


def tiling(written: tuple[int, ...], config: Config) -> tuple[int, int, int]:
    """``(segments, PER, programs)`` of a launch writing a tensor shaped ``written``: its segments, each program's share
    of them (whole steps of ``block_k``) and the programs along them (about ``split_k``)."""
    segs = segments(written, config.block_m)
    per = max(1, cdiv(cdiv(segs, config.split_k), config.block_k)) * config.block_k
    return segs, per, cdiv(segs, per)


def rows(spec: ConvSpec, config: Config) -> int:
    """The band's rows (``KJ``, :func:`window`) of a pass with ``config`` (the input gradient's: its forward's, at unit
    stride)."""
    return window(spec.weight_shape[-1], spec.stride[-1], spec.dilation[-1], config.block_m)


def shared_bytes(spec: ConvSpec, config: Config, itemsize: int, wgrad: bool = False) -> int:
    """Shared memory a program holds (ptxas's count on sm_90, Triton 3.9 and 3.6, and sm_80): its band, ``block_n x KJ
    x block_m``, and a step's ``x``, ``block_n x block_k x KJ``, laid out there for the MMA; the weight gradient's, a
    step's ``x`` and output gradient (``block_n x block_m x block_k``), at least 32 KiB (its diagonals' gather)."""
    if wgrad:
        return max(config.block_n * config.block_k * (rows(spec, config) + config.block_m) * itemsize, 32768)
    return config.block_n * rows(spec, config) * (config.block_m + config.block_k) * itemsize


def tap_tile(spec: ConvSpec) -> int:
    """The weight gradient's taps a tile (``BLOCK_M``): a power of two."""
    return triton.next_power_of_2(spec.weight_shape[-1])


class Launch:
    """:func:`_banded_kernel` prepared for tensors laid out as ``x``, ``weight``, ``y``; calling it reads ``x`` and
    writes ``y``: the forward pass, or with ``transposed`` the input gradient (``x`` the output gradient). ``config``:
    ``block_m`` outputs a segment, ``block_n`` channels, ``block_k`` segments a step, ``split_k`` programs along the
    segments (each ``PER`` of them, whole steps)."""

    def __init__(self, x, weight, bias, y, spec: ConvSpec, transposed: bool, activation: str | None, flip: bool,
                 config: Config) -> None:
        channels = y.shape[1]
        taps = spec.weight_shape[-1]
        pad, flip = as_forward(spec, transposed, flip)
        segs, per, programs = tiling(tuple(y.shape), config)
        run, shift = window_runs(x, spec, config, pad)
        interp = interpreting(x.device)
        self.empty = y.numel() == 0
        self.grid = (cdiv(channels, config.block_n), programs)
        geo = list(geometry_3d(x.shape[2:], y.shape[2:], spec))  # sizes; per axis strides, paddings, dilations
        geo[11] = pad
        if transposed:  # (unit strides: dx's row (id, ih) reads dy's (id + pd, ih + ph))
            geo[9], geo[10] = -geo[9], -geo[10]
        self.args = (
            channels, 1 if transposed else channels // x.shape[1], *geo[:6], taps, segs, per, shift, *geo[6:],
            *strides_3d(x), weight.stride(0), weight.stride(-1), *strides_3d(y), geometry.bias_step(bias),
        )
        self.kwargs = dict(
            HAS_BIAS=bias is not None, ACTIVATION=activation, FLIP=flip,
            INT64=needs_int64(x, weight, y, rows=segs * config.block_m),
            UPCAST=interp and x.dtype == torch.bfloat16, DOT_PRECISION=dot_precision(x.dtype, interp),
            BLOCK_N=config.block_n, BLOCK_K=config.block_k, P=config.block_m, KJ=rows(spec, config), RUN=run,
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
        c_out, taps = spec.weight_shape[0], spec.weight_shape[-1]
        segs, per, programs = tiling(tuple(grad_output.shape), config)
        run, shift = window_runs(input, spec, config, spec.padding[-1][0])
        interp = interpreting(input.device)
        self.spec, self.flip, self.empty = spec, flip, segs == 0
        self.direct, self.dtype, self.inner_grad = True, input.dtype, False  # the gradient itself, contiguous
        self.shape = tuple(spec.weight_shape)
        self.grid = (cdiv(c_out, config.block_n), programs)
        tile_t = tap_tile(spec)
        # split partial tiles (fp32), tile-major; a ticket counter per tile, per stream
        self.workspace = programs * self.grid[0] * tile_t * config.block_n if programs > 1 else 0
        self.counters = Counters(self.grid[0])
        geo = list(geometry_3d(input.shape[2:], grad_output.shape[2:], spec))
        self.args = (
            c_out, c_out // input.shape[1], *geo[:6], taps, segs, per, shift, *geo[6:],
            *strides_3d(input), *strides_3d(grad_output), taps, 1,
        )
        self.kwargs = dict(
            SPLIT=programs > 1, FLIP=flip,
            INT64=needs_int64(input, grad_output, rows=max(segs * config.block_m, self.workspace)),
            UPCAST=interp and input.dtype == torch.bfloat16, DOT_PRECISION=dot_precision(input.dtype, interp),
            BLOCK_M=tile_t, BLOCK_N=config.block_n, BLOCK_K=config.block_k, P=config.block_m, KJ=rows(spec, config),
            RUN=run,
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
