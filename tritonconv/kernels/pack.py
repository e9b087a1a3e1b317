"""Space to depth: a layer of few input channels with positions packed into its channels
(:func:`tritonconv.shapes.pack_positions`), so that its convolution runs tap by tap on full tensor-core chunks.

    packed input   x'[n, c*R + r, j] = x[n, c, s*j + r - p]     (zero outside x, and for channels past C*R)
    packed weight  w'[o, c*R + r, a] = w[o, c, R*a + r]          (zero past the kernel)
    weight grad    dw[o, c, R*a + r] = dw'[o, c*R + r, a]

per axis (``R`` positions packed, ``r < R``; ``s`` the stride, ``p`` the padding before). The input is packed by
:func:`_pack_kernel`, one gather per packed element (a memory-bound launch), channels innermost, so that the
convolution reads it as it reads any channels-last tensor (tensor descriptors included); the weight, small, by
torch reshapes per call.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .._checks import ConvSpec
from .._runtime import Direct, kernel
from ..geometry import as_3d, empty_channels_inner, needs_int64, strides_3d, to_layout


@kernel
@triton.jit
def _pack_kernel(
    x_ptr, y_ptr, TOTAL, C, C_PACKED, D, H, W, PD, PH, PW, RD, RH, RW, sd, sh, sw, pd, ph, pw,
    sxn, sxc, sxd, sxh, sxw,
    INT64: tl.constexpr, BLOCK: tl.constexpr,
):
    """``BLOCK`` elements of the packed input ``y`` (``(N, PD, PH, PW, CP)`` memory, channels innermost)."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    if INT64:
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < TOTAL
    cp = offs % C_PACKED
    pos = offs // C_PACKED
    jw = pos % PW
    jh = (pos // PW) % PH
    jd = (pos // (PW * PH)) % PD
    nb = pos // (PW * PH * PD)
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
    """:func:`_pack_kernel` prepared for inputs laid out as ``x`` (any strides): calling it allocates the packed
    input of ``packed`` (the spec :func:`tritonconv.shapes.pack_positions` gives for ``spec``) and fills it."""

    BLOCK = 1024

    def __init__(self, x: torch.Tensor, spec: ConvSpec, packed: ConvSpec, factors: tuple[int, ...]) -> None:
        self.shape = packed.input_shape
        total = math.prod(self.shape)
        self.empty = total == 0
        self.grid = (triton.cdiv(total, self.BLOCK),)
        self.launcher = Direct(_pack_kernel)
        self.args = (total, spec.input_shape[1], self.shape[1], *as_3d(x.shape[2:], 1), *as_3d(self.shape[2:], 1),
                     *as_3d(factors, 1), *as_3d(spec.stride, 1), *as_3d(tuple(b for b, _ in spec.padding), 0),
                     *strides_3d(x))
        self.kwargs = dict(INT64=needs_int64(x, rows=total), BLOCK=self.BLOCK, num_warps=4)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = empty_channels_inner(self.shape, x.dtype, x.device)
        if not self.empty:
            self.launcher(x.device, self.grid, x, y, *self.args, **self.kwargs)
        return y


def _phases(t: torch.Tensor, factors: tuple[int, ...]) -> torch.Tensor:
    """``(O, C, *kernel)`` padded to whole multiples of ``factors`` and split: ``(O, C, *R, *taps)``."""
    ndim = len(factors)
    taps = [-(-k // r) for k, r in zip(t.shape[2:], factors)]
    pads = [p for k, r, n in reversed(list(zip(t.shape[2:], factors, taps))) for p in (0, n * r - k)]
    t = torch.nn.functional.pad(t, pads).reshape(*t.shape[:2], *[v for n, r in zip(taps, factors) for v in (n, r)])
    return t.permute(0, 1, *range(3, 2 + 2 * ndim, 2), *range(2, 2 + 2 * ndim, 2))


def pack_weight(weight: torch.Tensor, factors: tuple[int, ...], channels: int) -> torch.Tensor:
    """``w'`` (module docstring), ``channels`` input channels (zeros past ``C * prod(factors)``), reduction
    channels innermost (as the convolution kernels read a weight in place)."""
    split = _phases(weight, factors)  # (O, C, *R, *taps)
    ndim = len(factors)
    packed = split.reshape(weight.shape[0], -1, *split.shape[2 + ndim:])
    out = empty_channels_inner((weight.shape[0], channels, *packed.shape[2:]), weight.dtype, weight.device)
    out[:, packed.shape[1]:].zero_()
    out[:, :packed.shape[1]] = packed
    return out


def unpack_weight_grad(grad: torch.Tensor, weight_shape: tuple[int, ...], factors: tuple[int, ...], flip: bool,
                       channels_inner: bool) -> torch.Tensor:
    """``dw`` from the packed convolution's weight gradient ``dw'`` (module docstring), shaped ``weight_shape``,
    reversed on every spatial axis if ``flip`` (the gradient of a true convolution's weight), contiguous or with
    its input channels innermost."""
    ndim = len(factors)
    c_out, c_in, kernel = weight_shape[0], weight_shape[1], weight_shape[2:]
    taps = grad.shape[2:]
    split = grad[:, :c_in * math.prod(factors)].reshape(c_out, c_in, *factors, *taps)
    order = [v for a in range(ndim) for v in (2 + ndim + a, 2 + a)]  # (O, C, taps_0, R_0, taps_1, R_1, ...)
    full = split.permute(0, 1, *order).reshape(c_out, c_in, *[n * r for n, r in zip(taps, factors)])
    full = full[(slice(None), slice(None), *[slice(0, k) for k in kernel])]
    if flip:
        full = full.flip(tuple(range(2, 2 + ndim)))
    return to_layout(full, "channels_last" if channels_inner else "contiguous")


__all__ = ["Launch", "pack_weight", "unpack_weight_grad"]
