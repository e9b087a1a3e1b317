"""Weight gradient with tile loads by tensor descriptor (Hopper's tensor memory accelerator).

For unit stride along height and width (any depth stride, padding and dilation; one group), the
reduction of ``dW[co, ci, t] = sum_p dY[p, co] * X[p, ci, t]`` (:mod:`tritonconv.kernels.weight_grad`)
runs over ``TILE_H x TILE_W`` patches of output positions, and what a patch needs is two boxes:
``BLOCK_M`` channels of ``dY`` at the patch (``[N, OD, OH, OW, C_out]``), and ``BLOCK_N`` channels of
``x`` at the patch shifted by the tap (``[N, D, H, W, C_in]``: depth ``od*sd - pd + kd*dd``, rows
from ``oh0 - ph + kh*dh``, columns from ``ow0 - pw + kw*dw``). The copy engine fills coordinates
outside a tensor with zeros: positions past the output's edge contribute nothing (their ``dY`` is
zero) and the zero padding of ``x`` comes for free, so the main loop is one flat loop over patches
with scalar coordinates, no addresses and no masks, pipelined into bulk copies feeding ``wgmma``
(``dY``'s box transposed in shared memory for the MMA's first operand). NC(D)HW operands are read
in place as boxes ``[1, channels, 1, TILE_H, TILE_W]`` of ``[N, C, D, H, W]`` where every box starts
a row on 16 bytes (:func:`tritonconv.kernels.tma.nc_boxes_aligned`). The reduction splits as the
pointer kernel's (``Config.split_k``: partial sums added in a fixed order).

A config with ``tile_h > 0`` asks for this kernel: ``block_m`` output channels x ``block_n`` input
channels per program, ``block_k = tile_h * tile_w`` positions per step.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .._checks import ConvSpec
from .._runtime import Direct, TensorDescriptor, interpreting, kernel
from ..geometry import Config, as_3d, dot_precision, geometry_3d, needs_int64
from .tma import as_5d, channels_inner, nc_boxes_aligned
from .weight_grad import Partials


@kernel
@triton.jit
def _conv_weight_grad_tma_kernel(
    x_desc, dy_desc, dw_ptr,
    C_in, C_out, OD, OH, OW, sd, pd, ph, pw, dd, dh, dw,
    sws, swo, swi, STEPS, STEPS_PER_SPLIT,
    KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    X_INNER: tl.constexpr, DY_INNER: tl.constexpr, INT64: tl.constexpr, UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr, TILE_H: tl.constexpr, TILE_W: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """One program: a ``BLOCK_M x BLOCK_N`` tile of (output, input) channels of one tap, one split of the patches.

    Programs run input-channel tile fastest, so those reading the same ``dY`` boxes run together (L2)."""
    BLOCK_K: tl.constexpr = TILE_H * TILE_W
    pid = tl.program_id(0)
    split = tl.program_id(1)
    tiles_n = (C_in + BLOCK_N - 1) // BLOCK_N
    tiles_m = (C_out + BLOCK_M - 1) // BLOCK_M
    n0 = (pid % tiles_n) * BLOCK_N
    m0 = ((pid // tiles_n) % tiles_m) * BLOCK_M
    t = pid // (tiles_n * tiles_m)  # this program's tap
    kw = t % KW
    kh = (t // KW) % KH
    kd = t // (KW * KH)
    tiles_w = (OW + TILE_W - 1) // TILE_W
    tiles_h = (OH + TILE_H - 1) // TILE_H

    first = split * STEPS_PER_SPLIT  # this split's first patch, then the next ones in (nb, od, oh, ow) order
    ow0 = (first % tiles_w) * TILE_W
    rest = first // tiles_w
    oh0 = (rest % tiles_h) * TILE_H
    rest = rest // tiles_h
    od = rest % OD
    nb = rest // OD
    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    for _ in range(first, tl.minimum(first + STEPS_PER_SPLIT, STEPS)):
        if DY_INNER:  # [1, 1, TILE_H, TILE_W, BLOCK_M] of NDHWC: positions x channels, transposed for the MMA
            a = tl.trans(dy_desc.load([nb, od, oh0, ow0, m0]).reshape(BLOCK_K, BLOCK_M))
        else:  # [1, BLOCK_M, 1, TILE_H, TILE_W] of NC(D)HW: channels x positions
            a = dy_desc.load([nb, m0, od, oh0, ow0]).reshape(BLOCK_M, BLOCK_K)
        id_ = od * sd - pd + kd * dd
        ih = oh0 - ph + kh * dh
        iw = ow0 - pw + kw * dw
        if X_INNER:
            b = x_desc.load([nb, id_, ih, iw, n0]).reshape(BLOCK_K, BLOCK_N)
        else:
            b = tl.trans(x_desc.load([nb, n0, id_, ih, iw]).reshape(BLOCK_N, BLOCK_K))
        if UPCAST:  # the interpreter's bf16 dot is wrong: multiply in fp32 there
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)
        ow0 += TILE_W  # the next patch by carries, not divisions (scalar coordinates only)
        row_done = ow0 >= OW
        ow0 = tl.where(row_done, 0, ow0)
        oh0 = tl.where(row_done, oh0 + TILE_H, oh0)
        plane_done = oh0 >= OH
        oh0 = tl.where(plane_done, 0, oh0)
        od = tl.where(plane_done, od + 1, od)
        volume_done = od >= OD
        od = tl.where(volume_done, 0, od)
        nb = tl.where(volume_done, nb + 1, nb)

    offs_m = m0 + tl.arange(0, BLOCK_M)
    offs_n = n0 + tl.arange(0, BLOCK_N)
    if INT64:
        offs_m = offs_m.to(tl.int64)
        offs_n = offs_n.to(tl.int64)
        split = split.to(tl.int64)
    out = dw_ptr + split * sws + offs_m[:, None] * swo + offs_n[None, :] * swi + t
    tl.store(out, acc.to(dw_ptr.dtype.element_ty), mask=(offs_m < C_out)[:, None] & (offs_n < C_in)[None, :])


def usable(grad_output: torch.Tensor, input: torch.Tensor, spec: ConvSpec, config: Config) -> bool:
    """Whether this kernel computes the weight gradient with ``config``'s tiles: one group, unit H/W stride, each
    operand channels- or width-innermost (NC(D)HW: box rows of 16-byte multiples, ``x``'s boxes starting on 16
    bytes), 16-byte strides, no fp64 (its accumulator is fp32). The base addresses must be 16-byte aligned too
    (:func:`tritonconv.kernels.tma.aligned`, checked per call)."""
    if (TensorDescriptor is None or not config.tile_h or spec.groups != 1 or any(s != 1 for s in spec.stride[-2:])
            or input.dtype == torch.float64):
        return False
    tile_w = config.block_k // config.tile_h
    for t in (grad_output, input):
        if as_5d(t)[1][-1] != 1 or any(s * t.element_size() % 16 for s in as_5d(t)[1][:-1]):
            return False
        if not channels_inner(t) and tile_w * t.element_size() % 16:
            return False
    return channels_inner(input) or nc_boxes_aligned(spec, tile_w, input.element_size())


class Launch(Partials):
    """:func:`_conv_weight_grad_tma_kernel` prepared for tensors laid out as ``grad_output`` and ``input``
    (:func:`usable`); calling it builds the two descriptors, launches and returns the gradient in the input's
    dtype (:class:`tritonconv.kernels.weight_grad.Partials`)."""

    def __init__(self, grad_output, input, spec: ConvSpec, flip: bool, config: Config) -> None:
        c_out, c_in, *kernel_size = spec.weight_shape
        tile_h = config.tile_h
        tile_w = config.block_k // tile_h
        _, _, _, od, oh, ow, sd, _, _, pd, ph, pw, dd, dh, dw = geometry_3d(spec.input_shape[2:],
                                                                            spec.output_shape[2:], spec)
        positions = grad_output.shape[0] * od * oh * ow
        steps = grad_output.shape[0] * od * triton.cdiv(oh, tile_h) * triton.cdiv(ow, tile_w)  # patches
        per_split = max(1, triton.cdiv(steps, config.split_k))
        splits = max(1, triton.cdiv(steps, per_split))
        super().__init__(spec, flip, splits, positions, input.dtype)

        def layout(t: torch.Tensor, channels: int) -> tuple:
            box = [1, 1, tile_h, tile_w, channels] if channels_inner(t) else [1, channels, 1, tile_h, tile_w]
            return (*as_5d(t), box)

        self.x_layout, self.dy_layout = layout(input, config.block_n), layout(grad_output, config.block_m)
        interp = interpreting(input.device)
        tiles = math.prod(kernel_size) * triton.cdiv(c_out, config.block_m) * triton.cdiv(c_in, config.block_n)
        self.launcher = Direct(_conv_weight_grad_tma_kernel)  # below JITFunction.run after the first launch
        self.grid = (tiles, splits)
        self.args = (c_in, c_out, od, oh, ow, sd, pd, ph, pw, dd, dh, dw, *self.partial.stride()[:3], steps,
                     per_split, *as_3d(tuple(kernel_size), 1))
        self._work = tiles * steps * config.block_m * config.block_n * config.block_k
        self.kwargs = dict(
            X_INNER=channels_inner(input), DY_INNER=channels_inner(grad_output), INT64=needs_int64(self.partial),
            UPCAST=interp and input.dtype == torch.bfloat16, DOT_PRECISION=dot_precision(input.dtype, interp),
            TILE_H=tile_h, TILE_W=tile_w, BLOCK_M=config.block_m, BLOCK_N=config.block_n,
            num_warps=config.num_warps, num_stages=config.num_stages,
        )

    def launch(self, grad_output, input, out) -> None:
        x_desc = TensorDescriptor(input, *self.x_layout)
        dy_desc = TensorDescriptor(grad_output, *self.dy_layout)
        self.launcher(input.device, self.grid, x_desc, dy_desc, out, *self.args, **self.kwargs)
