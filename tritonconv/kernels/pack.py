"""Positions packed into channels: a layer of few input channels as a stride-1 convolution of more
(:func:`tritonconv.shapes.pack_positions`: space to depth for a strided layer, the innermost taps for a
unit-stride one), so that its convolution runs tap by tap on full tensor-core chunks.

    packed input   x'[n, c*R + r, j] = x[n, c, s*j + r - p]     (zero outside x, and for channels past C*R)
    packed weight  w'[o, c*R + r, a] = w[o, c, R*a + r]          (zero past the kernel)
    weight grad    dw[o, c, R*a + r] = dw'[o, c*R + r, a]
    input grad     dx[n, c, i] = sum dx'[n, c*R + r, j] over s*j + r - p = i   (the packing's adjoint)

per axis (``R`` positions packed, ``r < R``; ``s`` the stride, ``p`` the padding before). The input is packed by
:func:`_pack_kernel`, one gather per packed element (a memory-bound launch), channels innermost, so that the
convolution reads it as it reads any channels-last tensor (tensor descriptors included); the weight by the same
kernel (its packing is the input's with stride ``R`` and no padding), one small launch per call. The transposed
pass (the input gradient, a transposed convolution's forward) runs the packed layer's transposed pass, then
:func:`_unpack_kernel` sums each position's ``R / s`` packed copies per axis (one for space to depth) and adds the
bias and activation; the weight gradient is unpacked by the same kernel (one copy each).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .._checks import ConvSpec
from .._runtime import Direct, kernel
from .._tile import activate, elements
from ..geometry import as_3d, bias_step, empty_channels_inner, needs_int64, strides_3d, tl_accumulator
from ..shapes import cdiv


@kernel
@triton.jit
def _pack_kernel(
    x_ptr, y_ptr, TOTAL, C, C_PACKED, D, H, W, PD, PH, PW, RD, RH, RW, sd, sh, sw, pd, ph, pw,
    sxn, sxc, sxd, sxh, sxw,
    INT64: tl.constexpr, BLOCK: tl.constexpr,
):
    """``BLOCK`` elements of the packed tensor ``y`` (an input or a weight: ``(N, PD, PH, PW, CP)`` memory, channels
    innermost)."""
    offs, inside, nb, jd, jh, jw, cp = elements(TOTAL, C_PACKED, PD, PH, PW, INT64, BLOCK)
    per_channel = RD * RH * RW
    c = cp // per_channel
    r = cp % per_channel
    iw = jw * sw + r % RW - pw
    ih = jh * sh + (r // RW) % RH - ph
    id = jd * sd + r // (RW * RH) - pd
    ok = inside & (c < C) & (id >= 0) & (id < D) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    v = tl.load(x_ptr + nb * sxn + c * sxc + id * sxd + ih * sxh + iw * sxw, mask=ok, other=0.0)
    tl.store(y_ptr + offs, v, mask=inside)


class Launch:
    """:func:`_pack_kernel` prepared for tensors laid out as ``x`` (any strides): calling it allocates the packed
    tensor, ``shape`` channels innermost, and fills it: ``y[n, c*R + r, j] = x[n, c, s*j + r - p]`` per axis (``R``
    the ``factors``, ``s`` the ``stride``, ``p`` the padding ``before``; zero outside ``x`` and past ``C*R``)."""

    BLOCK = 1024

    def __init__(self, x: torch.Tensor, shape: tuple[int, ...], factors: tuple[int, ...], stride: tuple[int, ...],
                 before: tuple[int, ...]) -> None:
        self.shape = shape
        total = math.prod(shape)
        self.empty = total == 0
        self.grid = (cdiv(total, self.BLOCK),)
        self.args = (total, x.shape[1], shape[1], *as_3d(x.shape[2:], 1), *as_3d(shape[2:], 1), *as_3d(factors, 1),
                     *as_3d(stride, 1), *as_3d(before, 0), *strides_3d(x))
        self.kwargs = dict(INT64=needs_int64(x, rows=total), BLOCK=self.BLOCK, num_warps=4)
        self.launcher = Direct(_pack_kernel, self.args, self.kwargs)  # JITFunction.run once, then its launcher

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = empty_channels_inner(self.shape, x.dtype, x.device)
        if not self.empty:
            self.launcher(x.device, self.grid, x, y)
        return y


def input_launch(x: torch.Tensor, spec: ConvSpec, packed: ConvSpec, factors: tuple[int, ...]) -> Launch:
    """The packing of ``spec``'s input ``x'`` (module docstring) into ``packed``'s (the spec
    :func:`tritonconv.shapes.pack_positions` gives), for inputs laid out as ``x``."""
    return Launch(x, packed.input_shape, factors, spec.stride, tuple(b for b, _ in spec.padding))


def weight_launch(weight: torch.Tensor, packed: ConvSpec, factors: tuple[int, ...]) -> Launch:
    """The packing of the weight ``w'[o, c*R + r, a] = w[o, c, R*a + r]`` (the input's packing with stride ``R``
    and no padding) into ``packed``'s weight shape, reduction channels innermost (as the convolution kernels read
    a weight in place), for weights laid out as ``weight``."""
    return Launch(weight, packed.weight_shape, factors, factors, (0,) * len(factors))


@kernel
@triton.jit
def _unpack_kernel(
    g_ptr, b_ptr, y_ptr, TOTAL, C, D, H, W, PD, PH, PW, RD, RH, RW, sd, sh, sw, pd, ph, pw,
    sgn, sgc, sgd, sgh, sgw, syn, syc, syd, syh, syw, sb,
    HAS_BIAS: tl.constexpr, ACTIVATION: tl.constexpr, INT64: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """``BLOCK`` elements of ``y`` (``C`` channels, sizes D, H, W; channels fastest): the adjoint of the packing
    applied to ``g`` (packed channels, sizes PD, PH, PW), ``y[c, i] = sum g[c*R + r, j]`` over ``s*j + r - p = i``
    (``R / s`` terms per axis), then bias and activation."""
    _, inside, nb, id, ih, iw, c = elements(TOTAL, C, D, H, W, INT64, BLOCK)
    acc = tl.full((BLOCK,), 0.0, ACC)
    g_rows = g_ptr + nb * sgn + c * (RD * RH * RW) * sgc
    for td in range(RD // sd):  # the packed offsets reaching this position: r = (i + p) mod s, then + s
        rd = (id + pd) % sd + td * sd
        jd = (id + pd - rd) // sd
        for th in range(RH // sh):
            rh = (ih + ph) % sh + th * sh
            jh = (ih + ph - rh) // sh
            for tw in range(RW // sw):
                rw = (iw + pw) % sw + tw * sw
                jw = (iw + pw - rw) // sw
                ok = inside & (jd >= 0) & (jd < PD) & (jh >= 0) & (jh < PH) & (jw >= 0) & (jw < PW)
                r = (rd * RH + rh) * RW + rw
                v = tl.load(g_rows + r * sgc + jd * sgd + jh * sgh + jw * sgw, mask=ok, other=0.0)
                acc += v.to(ACC)
    if HAS_BIAS:
        acc += tl.load(b_ptr + c * sb, mask=inside, other=0.0).to(ACC)
    acc = activate(acc, ACTIVATION)
    tl.store(y_ptr + nb * syn + c * syc + id * syd + ih * syh + iw * syw, acc.to(y_ptr.dtype.element_ty), mask=inside)


class UnpackLaunch:
    """:func:`_unpack_kernel` prepared for a packed tensor laid out as ``g`` and an output laid out as ``y``: calling it
    fills ``y`` with the packing's adjoint (``factors``, ``stride``, padding ``before`` as :class:`Launch`'s), then
    the bias and activation, and returns it."""

    BLOCK = 1024

    def __init__(self, g: torch.Tensor, bias, y: torch.Tensor, factors: tuple[int, ...], stride: tuple[int, ...],
                 before: tuple[int, ...], activation: str | None = None) -> None:
        total = y.numel()
        self.empty = total == 0
        self.grid = (cdiv(total, self.BLOCK),)
        self.args = (total, y.shape[1], *as_3d(y.shape[2:], 1), *as_3d(g.shape[2:], 1), *as_3d(factors, 1),
                     *as_3d(stride, 1), *as_3d(before, 0), *strides_3d(g), *strides_3d(y), bias_step(bias))
        self.kwargs = dict(HAS_BIAS=bias is not None, ACTIVATION=activation, INT64=needs_int64(g, y, rows=total),
                           ACC=tl_accumulator(y.dtype), BLOCK=self.BLOCK, num_warps=4)
        self.launcher = Direct(_unpack_kernel, self.args, self.kwargs)  # JITFunction.run once, then its launcher

    def __call__(self, g: torch.Tensor, bias: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
        if not self.empty:
            self.launcher(y.device, self.grid, g, bias if bias is not None else g, y)
        return y


def input_grad_launch(g: torch.Tensor, bias, y: torch.Tensor, spec: ConvSpec, factors: tuple[int, ...],
                      activation: str | None) -> UnpackLaunch:
    """The input gradient ``dx`` (module docstring) of ``spec``'s input from the packed one laid out as ``g``,
    into ``y``, with bias and activation (a transposed convolution's)."""
    return UnpackLaunch(g, bias, y, factors, spec.stride, tuple(b for b, _ in spec.padding), activation)


def weight_grad_launch(g: torch.Tensor, y: torch.Tensor, factors: tuple[int, ...]) -> UnpackLaunch:
    """The weight gradient ``dw[o, c, R*a + r] = dw'[o, c*R + r, a]`` from the packed one laid out as ``g``, into
    ``y`` (the weight packing's adjoint: one term each)."""
    return UnpackLaunch(g, None, y, factors, factors, (0,) * len(factors))


__all__ = ["Launch", "UnpackLaunch", "input_grad_launch", "input_launch", "weight_grad_launch", "weight_launch"]
