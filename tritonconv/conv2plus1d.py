"""Factorized (2+1)D convolution: a spatial ``1 x kh x kw`` conv, then a temporal ``kt x 1 x 1`` one.

    mid = act_mid(conv3d(x, W_s, b_s, stride=(1, sh, sw), padding=(0, ph, pw), dilation=(1, dh, dw)))
    y   = act(conv3d(mid, W_t, b_t, stride=(st, 1, 1), padding=(pt, 0, 0), dilation=(dt, 1, 1)))

Two paths compute it:

* **two launches**: two calls of the N-d kernel; ``mid`` (``N x C_mid x T x H' x W'``) is
  written to and read back from global memory. Differentiable.
* **fused**: one launch. A program owns a tile of output positions x output channels and,
  for each temporal tap, computes the ``mid`` rows it needs on the fly (spatial GEMM over
  ``C_in x kh x kw``), applies ``b_s`` and ``act_mid`` in registers, zeroes the rows that
  fall in the temporal padding, rounds to the input dtype as the two-launch path stores
  ``mid``, and feeds them to the temporal GEMM. ``mid`` never touches global memory; the
  price is recomputing each ``mid`` row ``kt / st`` times (and once per output-channel
  tile), so it pays for few channels, where the layer is memory-bound.

``fused=None`` chooses: the two-launch path under the interpreter, when gradients are
needed, or on a GPU without a measurement; on a GPU with ``TRITONCONV_AUTOTUNE=1`` the
first call of a shape times both paths and the faster is cached (see :mod:`tritonconv.cache`).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from . import _checks, cache, conv, functional, shapes, tuning
from ._checks import ConvSpec
from ._runtime import interpreting, kernel
from ._tile import activate, positions, tap


@kernel
@triton.jit
def _conv2plus1d_kernel(
    x_ptr, ws_ptr, bs_ptr, wt_ptr, bt_ptr, y_ptr,
    M, C_in, C_mid, C_out, T, H, W, OT, OH, OW,
    st, sh, sw, pt, ph, pw, dt, dh, dw,
    sxn, sxc, sxt, sxh, sxw,
    wso, wsi, wsh, wsw,
    wto, wti, wtt,
    syn, syc, syt, syh, syw,
    KT: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    HAS_BS: tl.constexpr, HAS_BT: tl.constexpr, MID_ACT: tl.constexpr, ACTIVATION: tl.constexpr,
    INT64: tl.constexpr, UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """One program: ``BLOCK_M`` output positions x ``BLOCK_N`` output channels; ``mid`` in ``BLOCK_C`` chunks."""
    pid = tl.program_id(0)
    tiles_n = (C_out + BLOCK_N - 1) // BLOCK_N
    pid_m = pid // tiles_n
    pid_n = pid % tiles_n
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_c = tl.arange(0, BLOCK_C)
    offs_k = tl.arange(0, BLOCK_K)
    if INT64:
        offs_m = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = offs_n.to(tl.int64)
        offs_c = offs_c.to(tl.int64)
        offs_k = offs_k.to(tl.int64)
    mask_m = offs_m < M
    mask_n = offs_n < C_out
    nb, ot, oh, ow = positions(offs_m, OT, OH, OW)

    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    for j in range(KT):
        tm, ok_t = tap(ot, st, pt, j, dt, T, False)  # the mid frame this temporal tap reads
        ok_t = ok_t & mask_m
        x_rows = x_ptr + nb * sxn + tm * sxt
        for c0 in range(0, C_mid, BLOCK_C):
            cm = c0 + offs_c
            ok_c = cm < C_mid
            mid = tl.full((BLOCK_M, BLOCK_C), 0.0, tl.float32)
            k_steps = (C_in + BLOCK_K - 1) // BLOCK_K
            for i in range(KH * KW * k_steps):  # (spatial tap, chunk) flat: the pipeline runs across taps
                kh = i // k_steps // KW
                kw = i // k_steps % KW
                ih, ok_h = tap(oh, sh, ph, kh, dh, H, False)
                iw, ok_w = tap(ow, sw, pw, kw, dw, W, False)
                ok = ok_t & ok_h & ok_w
                ci = (i % k_steps) * BLOCK_K + offs_k
                ok_k = ci < C_in
                a = tl.load((x_rows + ih * sxh + iw * sxw)[:, None] + ci[None, :] * sxc,
                            mask=ok[:, None] & ok_k[None, :], other=0.0)
                b = tl.load((ws_ptr + cm * wso + kh * wsh + kw * wsw)[None, :] + ci[:, None] * wsi,
                            mask=ok_k[:, None] & ok_c[None, :], other=0.0)
                if UPCAST:
                    a = a.to(tl.float32)
                    b = b.to(tl.float32)
                mid = tl.dot(a, b, mid, input_precision=DOT_PRECISION)
            if HAS_BS:
                mid += tl.load(bs_ptr + cm, mask=ok_c, other=0.0).to(tl.float32)[None, :]
            mid = activate(mid, MID_ACT)
            mid = tl.where(ok_t[:, None], mid, 0.0)  # temporal zero padding of mid, after its bias
            mid = mid.to(x_ptr.dtype.element_ty)  # as the two-launch path stores it
            wt = tl.load(wt_ptr + offs_n[None, :] * wto + cm[:, None] * wti + j * wtt,
                         mask=ok_c[:, None] & mask_n[None, :], other=0.0)
            if UPCAST:
                mid = mid.to(tl.float32)
                wt = wt.to(tl.float32)
            acc = tl.dot(mid, wt, acc, input_precision=DOT_PRECISION)

    if HAS_BT:
        acc += tl.load(bt_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    acc = activate(acc, ACTIVATION)
    y_rows = y_ptr + nb * syn + ot * syt + oh * syh + ow * syw
    tl.store(y_rows[:, None] + offs_n[None, :] * syc, acc.to(y_ptr.dtype.element_ty),
             mask=mask_m[:, None] & mask_n[None, :])


def fused_config(m: int, c_in: int, c_mid: int, c_out: int, interp: bool, channels_last: bool = True) -> tuning.Config:
    """Tiles of the fused kernel (``block_k`` is the input-channel step; the mid step equals it, capped at 64).

    An output written through NCDHW strides needs 8 warps (on 4, ptxas spills its per-element addresses)."""
    block_n = tuning.clamp_pow2(c_out, 16, 64)
    block_k = tuning.clamp_pow2(c_in, 16, 64)
    if interp:
        return tuning.Config(tuning.clamp_pow2(m, 16, 8192 // max(block_k, block_n)), block_n, block_k, 1, 1, 1)
    return tuning.Config(64, block_n, block_k, group_m=1, num_warps=4 if channels_last else 8, num_stages=2)


def _fused(x, ws, bs, wt, bt, spatial: ConvSpec, temporal: ConvSpec, mid_activation, activation, config=None):
    """One launch of :func:`_conv2plus1d_kernel`; ``spatial``/``temporal`` are the two stages' specs."""
    y = conv._alloc_output(temporal.output_shape, x.device, x.dtype, conv.output_memory_format(x, ws))
    if y.numel() == 0:
        return y
    c_mid, c_in = ws.shape[:2]
    m = y.shape[0] * math.prod(y.shape[2:])
    interp = interpreting(x.device)
    config = config or fused_config(m, c_in, c_mid, wt.shape[0], interp=interp, channels_last=y.stride(1) == 1)
    # operands with their reduction channels innermost (see tritonconv.conv.channels_inner)
    x, ws, wt = conv.channels_inner(x), conv.channels_inner(ws), conv.channels_inner(wt)
    block_c = tuning.clamp_pow2(c_mid, 16, 64)
    st, (sh, sw) = temporal.stride[0], spatial.stride[1:]
    grid = (triton.cdiv(m, config.block_m) * triton.cdiv(wt.shape[0], config.block_n),)
    _conv2plus1d_kernel[x.device][grid](
        x, ws, bs if bs is not None else ws, wt, bt if bt is not None else wt, y,
        m, c_in, c_mid, wt.shape[0], *x.shape[2:], *y.shape[2:],
        st, sh, sw, temporal.padding[0][0], spatial.padding[1][0], spatial.padding[2][0],
        temporal.dilation[0], spatial.dilation[1], spatial.dilation[2],
        *x.stride(), ws.stride(0), ws.stride(1), ws.stride(3), ws.stride(4), *wt.stride()[:3], *y.stride(),
        KT=wt.shape[2], KH=ws.shape[3], KW=ws.shape[4],
        HAS_BS=bs is not None, HAS_BT=bt is not None, MID_ACT=mid_activation, ACTIVATION=activation,
        INT64=conv.needs_int64(x, ws, wt, y, rows=m), UPCAST=interp and x.dtype == torch.bfloat16,
        DOT_PRECISION=conv.dot_precision(x.dtype, interp),
        BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_C=block_c, BLOCK_K=config.block_k,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return y


def _two_launch(x, ws, bs, wt, bt, spatial: ConvSpec, temporal: ConvSpec, mid_activation, activation):
    mid = functional.conv3d(x, ws, bs, spatial.stride, spatial.padding, spatial.dilation, activation=mid_activation)
    return functional.conv3d(mid, wt, bt, temporal.stride, temporal.padding, temporal.dilation, activation=activation)


def stage_specs(input, weight_spatial, weight_temporal, bias_spatial, bias_temporal, stride, padding, dilation):
    """Check a ``conv2plus1d`` call; returns the (spatial, temporal) stage specs (batched)."""
    op = "conv2plus1d"
    for name, w in (("weight_spatial", weight_spatial), ("weight_temporal", weight_temporal)):
        if not isinstance(w, torch.Tensor) or w.dim() != 5:
            got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise ValueError(f"{op}: expected `{name}` of rank 5, got {got}")
    if weight_spatial.shape[2] != 1:
        raise ValueError(f"{op}: expected `weight_spatial` of shape (C_mid, C_in, 1, kh, kw), got "
                         f"{tuple(weight_spatial.shape)} (temporal extent {weight_spatial.shape[2]}, not 1)")
    if weight_temporal.shape[3:] != (1, 1):
        raise ValueError(f"{op}: expected `weight_temporal` of shape (C_out, C_mid, kt, 1, 1), got "
                         f"{tuple(weight_temporal.shape)}")
    if weight_temporal.shape[1] != weight_spatial.shape[0]:
        raise ValueError(f"{op}: expected `weight_temporal` of shape (C_out, {weight_spatial.shape[0]}, kt, 1, 1) "
                         f"to read the spatial stage's {weight_spatial.shape[0]} mid channels, got "
                         f"{tuple(weight_temporal.shape)}")
    kt, kh, kw = weight_temporal.shape[2], *weight_spatial.shape[3:]
    try:
        stride, dilation = shapes.as_tuple(stride, 3, "stride"), shapes.as_tuple(dilation, 3, "dilation")
        pads = shapes.resolve_padding(padding, (kt, kh, kw), stride, dilation)
    except ValueError as err:
        raise ValueError(f"{op}: {err}") from None
    spatial = _checks.conv_spec(f"{op} (spatial stage)", 3, input, weight_spatial, bias_spatial,
                                (1, *stride[1:]), ((0, 0), *pads[1:]), (1, *dilation[1:]), 1)
    _checks.check_tensors(op, input, weight_temporal, bias_temporal)
    mid = torch.empty(spatial.output_shape, device="meta", dtype=input.dtype)
    temporal = _checks.conv_spec(f"{op} (temporal stage)", 3, mid, weight_temporal.to("meta"),
                                 None if bias_temporal is None else bias_temporal.to("meta"),
                                 (stride[0], 1, 1), (pads[0], (0, 0), (0, 0)), (dilation[0], 1, 1), 1)
    return spatial, temporal


def _decision_key(x, ws, wt, spatial: ConvSpec, temporal: ConvSpec) -> str:
    return (f"conv2plus1d|{str(x.dtype)[6:]}|{tuning.layout_of(x)}|x={tuple(spatial.input_shape)}"
            f"|ws={tuple(ws.shape)}|wt={tuple(wt.shape)}|s={spatial.stride}{temporal.stride}"
            f"|p={spatial.padding}{temporal.padding}|d={spatial.dilation}{temporal.dilation}")


_decisions: dict[str, bool] = {}


def _choose_fused(x, ws, bs, wt, bt, spatial, temporal, mid_activation, activation) -> bool:
    """GPU only: the measured faster path for this shape (cached), or the two-launch path unmeasured."""
    key = _decision_key(x, ws, wt, spatial, temporal)
    if key in _decisions:
        return _decisions[key]
    name = torch.cuda.get_device_properties(x.device).name
    hit = cache.lookup_choice(name, key)
    if hit is None and tuning.autotune_enabled():
        args = (x, ws, bs, wt, bt, spatial, temporal, mid_activation, activation)
        fused_ms = tuning.do_bench_median(lambda: _fused(*args))
        two_ms = tuning.do_bench_median(lambda: _two_launch(*args))
        hit = "fused" if fused_ms < two_ms else "two_launch"
        cache.store(name, {key: {"choice": hit, "ms": {"fused": fused_ms, "two_launch": two_ms}}})
    _decisions[key] = hit == "fused"
    return _decisions[key]


def conv2plus1d(
    input: torch.Tensor,
    weight_spatial: torch.Tensor,
    weight_temporal: torch.Tensor,
    bias_spatial: torch.Tensor | None = None,
    bias_temporal: torch.Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    *,
    mid_activation: str | None = None,
    activation: str | None = None,
    fused: bool | None = None,
) -> torch.Tensor:
    """(2+1)D convolution of ``input`` (N, C_in, T, H, W) or (C_in, T, H, W).

    ``weight_spatial`` (C_mid, C_in, 1, kh, kw), ``weight_temporal`` (C_out, C_mid, kt, 1, 1).
    ``stride``, ``padding``, ``dilation`` are per (t, h, w) axis (or one int, ``'same'``,
    ``'valid'``): the spatial stage takes the h, w parts, the temporal stage the t part.
    ``mid_activation`` follows the spatial stage, ``activation`` the temporal one.
    ``fused``: True/False forces a path; None chooses (see the module docstring).
    """
    spatial, temporal = stage_specs(input, weight_spatial, weight_temporal, bias_spatial, bias_temporal,
                                    stride, padding, dilation)
    for name, act in (("mid_activation", mid_activation), ("activation", activation)):
        _checks.check_activation(act, "conv2plus1d", name)
    unbatched = spatial.unbatched
    x = input.unsqueeze(0) if unbatched else input
    args = (x, weight_spatial, bias_spatial, weight_temporal, bias_temporal, spatial, temporal, mid_activation,
            activation)
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (input, weight_spatial, weight_temporal, bias_spatial, bias_temporal))
    if fused and grad:
        raise ValueError("conv2plus1d: the fused path has no backward; use fused=None or False when gradients are needed")
    if fused is None:
        fused = not grad and not interpreting(x.device) and not torch.compiler.is_compiling() and _choose_fused(*args)
    y = _fused(*args) if fused else _two_launch(*args)
    return y.squeeze(0) if unbatched else y
