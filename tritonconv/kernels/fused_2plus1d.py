"""Fused (2+1)D convolution: the spatial ``1 x kh x kw`` conv and the temporal ``kt x 1 x 1`` conv
in one launch, the mid tensor kept in registers.

A program owns a tile of output positions x output channels and, for each temporal tap,
computes the ``mid`` rows it needs on the fly (spatial GEMM over ``C_in x kh x kw``), applies
``b_s`` and ``act_mid`` in registers, rounds to the input dtype as the two-launch path stores
``mid``, and feeds them to the temporal GEMM. ``mid`` never touches global memory; the price is
recomputing each ``mid`` row ``kt / st`` times (and once per output-channel tile).

The rows that fall in the temporal padding read ``x`` as zeros and take no bias, so they are zero
(every activation but the sigmoid and hardsigmoid maps 0 to 0; after those two, the rounded rows are
zeroed) with no select on the spatial GEMM's accumulator: on Hopper such a select made ptxas
serialize every MMA of the function ("non wgmma instructions reading accumulator registers"). Where a
spatial weight is infinite or NaN those rows are NaN, as zero padding makes any convolution's.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .. import geometry
from .._checks import ConvSpec
from .._runtime import Direct, interpreting, kernel
from .._tile import activate, keeps_zero, mma, next_step, tap, tile_positions
from ..geometry import Config, dot_precision, needs_int64
from ..shapes import cdiv, next_power_of_2


@kernel
@triton.jit
def _conv2plus1d_kernel(
    x_ptr, ws_ptr, bs_ptr, wt_ptr, bt_ptr, y_ptr,
    M, C_in, C_mid, C_out, T, H, W, OT, OH, OW,
    st, sh, sw, pt, ph, pw, dt, dh, dw,
    sxn, sxc, sxt, sxh, sxw,
    wso, wsi, wsh, wsw,
    wto, wti, wtt,
    syn, syc, syt, syh, syw, sbs, sbt,
    KT: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    HAS_BS: tl.constexpr, HAS_BT: tl.constexpr, MID_ACT: tl.constexpr, ACTIVATION: tl.constexpr,
    INT64: tl.constexpr, UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr, ACC: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    """One program: ``BLOCK_M`` output positions x ``BLOCK_N`` output channels; ``mid`` in ``BLOCK_C`` chunks."""
    pid = tl.program_id(0)
    tiles_n = (C_out + BLOCK_N - 1) // BLOCK_N
    pid_m = pid // tiles_n
    pid_n = pid % tiles_n
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_c = tl.arange(0, BLOCK_C)
    offs_k = tl.arange(0, BLOCK_K)
    if INT64:
        offs_n = offs_n.to(tl.int64)
        offs_c = offs_c.to(tl.int64)
        offs_k = offs_k.to(tl.int64)
    mask_n = offs_n < C_out
    nb, ot, oh, ow, mask_m = tile_positions(pid_m, M, OT, OH, OW, BLOCK_M, BLOCK_W, INT64)  # rows for NCDHW

    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, ACC)
    for j in range(KT):
        tm, ok_t = tap(ot, st, pt, j, dt, T, False)  # the mid frame this temporal tap reads
        ok_t = ok_t & mask_m
        x_rows = x_ptr + nb * sxn + tm * sxt
        for c0 in range(0, C_mid, BLOCK_C):
            cm = c0 + offs_c
            ok_c = cm < C_mid
            mid = tl.full((BLOCK_M, BLOCK_C), 0.0, ACC)
            k_steps = (C_in + BLOCK_K - 1) // BLOCK_K
            c_in0, kw, kh = 0, 0, 0  # the chunk's first channel and the tap, carried (no division by k_steps)
            for _ in range(KH * KW * k_steps):  # (spatial tap, chunk) flat: the pipeline runs across taps
                ih, ok_h = tap(oh, sh, ph, kh, dh, H, False)
                iw, ok_w = tap(ow, sw, pw, kw, dw, W, False)
                ok = ok_t & ok_h & ok_w
                ci = c_in0 + offs_k
                ok_k = ci < C_in
                a = tl.load((x_rows + ih * sxh + iw * sxw)[:, None] + ci[None, :] * sxc,
                            mask=ok[:, None] & ok_k[None, :], other=0.0)
                b = tl.load((ws_ptr + cm * wso + kh * wsh + kw * wsw)[None, :] + ci[:, None] * wsi,
                            mask=ok_k[:, None] & ok_c[None, :], other=0.0)
                mid = mma(mid, a, b, UPCAST, DOT_PRECISION, ACC)
                c_in0, kw, kh, _ = next_step(c_in0, kw, kh, 0, BLOCK_K, k_steps * BLOCK_K, KW, KH)
            if HAS_BS:  # not on the temporal padding's rows: x is read as zeros there, so they stay zero
                bias = tl.load(bs_ptr + cm * sbs, mask=ok_c, other=0.0).to(ACC)
                mid += tl.where(ok_t[:, None], bias[None, :], 0.0)
            mid = activate(mid, MID_ACT).to(x_ptr.dtype.element_ty)  # rounded as `mid` is stored
            if not keeps_zero(MID_ACT):  # the sigmoids' 0.5: the padding's rows zeroed after it (a select on the
                mid = tl.where(ok_t[:, None], mid, 0.0)  # rounded copy, not on the accumulator)
            wt = tl.load(wt_ptr + offs_n[None, :] * wto + cm[:, None] * wti + j * wtt,
                         mask=ok_c[:, None] & mask_n[None, :], other=0.0)
            acc = mma(acc, mid, wt, UPCAST, DOT_PRECISION, ACC)

    if HAS_BT:
        acc += tl.load(bt_ptr + offs_n * sbt, mask=mask_n, other=0.0).to(ACC)[None, :]
    acc = activate(acc, ACTIVATION)
    y_rows = y_ptr + nb * syn + ot * syt + oh * syh + ow * syw
    tl.store(y_rows[:, None] + offs_n[None, :] * syc, acc.to(y_ptr.dtype.element_ty),
             mask=mask_m[:, None] & mask_n[None, :])


class Launch:
    """:func:`_conv2plus1d_kernel` prepared for tensors laid out as ``x``, ``ws``, ``wt``, ``y``;
    ``spatial``/``temporal`` are the two stages' specs (every tensor read in place, any layout: NCDHW
    tiled by rows), ``config.block_k`` the input-channel step. Calling it writes ``y``."""

    def __init__(self, x, ws, bs, wt, bt, y, spatial: ConvSpec, temporal: ConvSpec, mid_activation: str | None,
                 activation: str | None, config: Config) -> None:
        c_mid, c_in = ws.shape[:2]
        m = y.shape[0] * math.prod(y.shape[2:])
        interp = interpreting(x.device)
        # the mid step: 16 channels for 4- and 8-byte operands, whose FMA loops hold both dots' operands in registers
        block_c = min(64 if x.element_size() <= 2 else 16, next_power_of_2(max(c_mid, 16)))
        st, (sh, sw) = temporal.stride[0], spatial.stride[1:]
        self.empty = y.numel() == 0
        block_w = geometry.row_block(m, y.shape[-1], config.block_m) \
            if geometry.width_inner(x) or geometry.width_inner(y) else 0  # rows of positions (see _tile)
        self.grid = (geometry.position_tiles(m, y.shape[-1], config.block_m, block_w)
                     * cdiv(wt.shape[0], config.block_n),)
        self.args = (
            m, c_in, c_mid, wt.shape[0], *x.shape[2:], *y.shape[2:],
            st, sh, sw, temporal.padding[0][0], spatial.padding[1][0], spatial.padding[2][0],
            temporal.dilation[0], spatial.dilation[1], spatial.dilation[2],
            *x.stride(), ws.stride(0), ws.stride(1), ws.stride(3), ws.stride(4), *wt.stride()[:3], *y.stride(),
            geometry.bias_step(bs), geometry.bias_step(bt),
        )
        self.kwargs = dict(
            KT=wt.shape[2], KH=ws.shape[3], KW=ws.shape[4],
            HAS_BS=bs is not None, HAS_BT=bt is not None, MID_ACT=mid_activation, ACTIVATION=activation,
            INT64=needs_int64(x, ws, wt, y, rows=m), UPCAST=interp and x.dtype == torch.bfloat16,
            DOT_PRECISION=dot_precision(x.dtype, interp), ACC=geometry.tl_accumulator(x.dtype),
            BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_C=block_c, BLOCK_K=config.block_k,
            BLOCK_W=block_w, num_warps=config.num_warps, num_stages=config.num_stages,
        )
        self.launcher = Direct(_conv2plus1d_kernel, self.args, self.kwargs)  # JITFunction.run once, then its launcher

    def __call__(self, x, ws, bs, wt, bt, y) -> torch.Tensor:
        if not self.empty:
            self.launcher(x.device, self.grid, x, ws, bs if bs is not None else ws, wt, bt if bt is not None else wt, y)
        return y
