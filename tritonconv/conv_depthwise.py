"""Depthwise convolution (``groups == C_in``, one input channel per group) without tensor cores.

Through the GEMM kernel a depthwise layer is a 1-wide reduction padded to 16 and a
``C_out / groups``-wide column tile padded to 16: most of the MMA work is zeros. Here each
output element is a plain multiply-add chain over the taps::

    y[b, co, o] = sum_t x[b, co // mult, o*s - p + t*d] * w[co, 0, t]      mult = C_out / C_in

A program owns ``BLOCK_M`` output positions x ``BLOCK_N`` output channels (all groups at
once); in channels-last the ``BLOCK_N`` loads of one position are contiguous.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from . import tuning
from ._checks import ConvSpec
from ._runtime import interpreting, kernel


@kernel
@triton.jit
def _conv_depthwise_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    M, C_out, MULT, D, H, W, OD, OH, OW,
    sd, sh, sw, pd, ph, pw, dd, dh, dw,
    sxn, sxc, sxd, sxh, sxw,
    swo, swd, swh, sww,
    syn, syc, syd, syh, syw,
    KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, FLIP: tl.constexpr, INT64: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid = tl.program_id(0)
    tiles_n = (C_out + BLOCK_N - 1) // BLOCK_N
    pid_m = pid // tiles_n
    pid_n = pid % tiles_n
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    if INT64:
        offs_m = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = offs_n.to(tl.int64)
    mask_m = offs_m < M
    mask_n = offs_n < C_out
    ow = offs_m % OW
    oh = (offs_m // OW) % OH
    od = (offs_m // (OW * OH)) % OD
    nb = offs_m // (OW * OH * OD)
    x_cols = (offs_n // MULT) * sxc  # the input channel each output channel reads
    x_rows = x_ptr + nb * sxn
    w_cols = w_ptr + offs_n * swo

    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    for kd in range(KD):
        id_ = od * sd - pd + kd * dd
        ok_d = mask_m & (id_ >= 0) & (id_ < D)
        for kh in range(KH):
            ih = oh * sh - ph + kh * dh
            ok_dh = ok_d & (ih >= 0) & (ih < H)
            for kw in range(KW):
                iw = ow * sw - pw + kw * dw
                ok = ok_dh & (iw >= 0) & (iw < W)
                if FLIP:
                    w_tap = w_cols + (KD - 1 - kd) * swd + (KH - 1 - kh) * swh + (KW - 1 - kw) * sww
                else:
                    w_tap = w_cols + kd * swd + kh * swh + kw * sww
                wv = tl.load(w_tap, mask=mask_n, other=0.0).to(tl.float32)
                xv = tl.load((x_rows + id_ * sxd + ih * sxh + iw * sxw)[:, None] + x_cols[None, :],
                             mask=ok[:, None] & mask_n[None, :], other=0.0).to(tl.float32)
                acc += xv * wv[None, :]

    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    if ACTIVATION == "relu":
        acc = tl.maximum(acc, 0.0)
    elif ACTIVATION == "gelu":
        acc = 0.5 * acc * (1.0 + tl.erf(acc * 0.7071067811865476))
    elif ACTIVATION == "silu":
        acc = acc / (1.0 + tl.exp(-acc))
    y_rows = y_ptr + nb * syn + od * syd + oh * syh + ow * syw
    tl.store(y_rows[:, None] + offs_n[None, :] * syc, acc.to(y_ptr.dtype.element_ty),
             mask=mask_m[:, None] & mask_n[None, :])


def is_depthwise(input_shape, weight_shape, groups: int) -> bool:
    """One input channel per group, every input channel its own group."""
    return groups > 1 and weight_shape[1] == 1 and groups == input_shape[1]


def depthwise_forward(x, weight, bias, y, spec: ConvSpec, activation, flip: bool, config=None) -> torch.Tensor:
    """Launch the depthwise kernel into ``y`` (called by :func:`tritonconv.conv.conv_forward`)."""
    from .conv import as_3d, needs_int64, strides_3d

    if y.numel() == 0:
        return y
    c_out = spec.weight_shape[0]
    m = y.shape[0] * math.prod(y.shape[2:])
    interp = interpreting(x.device)
    if config is None:
        problem = tuning.Problem("conv_dw", str(x.dtype)[6:], tuning.layout_of(x), spec.input_shape,
                                 spec.weight_shape, spec.output_shape, spec.stride, spec.padding, spec.dilation,
                                 spec.groups)
        config = tuning.choose(problem, x.device, interp, lambda cfg: depthwise_forward(
            x, weight, bias, torch.empty_like(y), spec, activation, flip, cfg))
    grid = (triton.cdiv(m, config.block_m) * triton.cdiv(c_out, config.block_n),)
    _conv_depthwise_kernel[x.device][grid](
        x, weight, bias if bias is not None else weight, y,
        m, c_out, c_out // spec.groups, *as_3d(tuple(x.shape[2:]), 1), *as_3d(tuple(y.shape[2:]), 1),
        *as_3d(spec.stride, 1), *as_3d(tuple(b for b, _ in spec.padding), 0), *as_3d(spec.dilation, 1),
        *strides_3d(x), weight.stride(0), *strides_3d(weight)[2:], *strides_3d(y),
        *as_3d(spec.weight_shape[2:], 1),
        HAS_BIAS=bias is not None, ACTIVATION=activation, FLIP=flip, INT64=needs_int64(x, weight, y, rows=m),
        BLOCK_M=config.block_m, BLOCK_N=config.block_n, num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return y
