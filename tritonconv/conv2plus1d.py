"""Factorized (2+1)D convolution: a spatial ``1 x kh x kw`` conv, then a temporal ``kt x 1 x 1`` one.

    mid = act_mid(conv3d(x, W_s, b_s, stride=(1, sh, sw), padding=(0, ph, pw), dilation=(1, dh, dw)))
    y   = act(conv3d(mid, W_t, b_t, stride=(st, 1, 1), padding=(pt, 0, 0), dilation=(dt, 1, 1)))

Two paths compute it:

* **two launches**: two calls of the N-d kernel; ``mid`` (``N x C_mid x T x H' x W'``) is
  written to and read back from global memory. Differentiable.
* **fused**: one launch (:mod:`tritonconv.kernels.fused_2plus1d`); ``mid`` never touches
  global memory, at the price of recomputing each ``mid`` row ``kt / st`` times (and once per
  output-channel tile), so it pays for few channels, where the layer is memory-bound.

``fused=None`` chooses: the two-launch path under the interpreter, when gradients (or
forward-mode tangents) are needed, or on a GPU without a measurement; on a GPU with ``TRITONCONV_AUTOTUNE=1`` the
first call of a shape times both paths and the faster is cached (see :mod:`tritonconv.cache`).
"""

from __future__ import annotations

import torch
from torch.overrides import handle_torch_function, has_torch_function_variadic

from . import _checks, cache, dispatch, functional, geometry, shapes, tuning
from ._checks import ConvSpec
from ._runtime import interpreting


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


def _checked_stages(input, weight_spatial, weight_temporal, bias_spatial, bias_temporal, stride, padding, dilation):
    """:func:`stage_specs`, once per call signature (kept as the convolutions' are, ``functional._lookup``): a seen
    signature is valid for the same reasons as then."""
    key, hit = functional._lookup(("conv2plus1d",), (input, weight_spatial, weight_temporal, bias_spatial,
                                                     bias_temporal), (stride, padding, dilation))
    if hit is not None:
        return hit[1]
    specs = stage_specs(input, weight_spatial, weight_temporal, bias_spatial, bias_temporal, stride, padding, dilation)
    functional._remember(key, specs, None)
    return specs


def _decision_key(x, ws, wt, spatial: ConvSpec, temporal: ConvSpec) -> str:
    return (f"conv2plus1d|{str(x.dtype)[6:]}|{geometry.layout_of(x)}|x={tuple(spatial.input_shape)}"
            f"|ws={tuple(ws.shape)}|wt={tuple(wt.shape)}|s={spatial.stride}{temporal.stride}"
            f"|p={spatial.padding}{temporal.padding}|d={spatial.dilation}{temporal.dilation}")


_decisions: dict[tuple, bool] = {}


def _choose_fused(x, ws, bs, wt, bt, spatial, temporal, mid_activation, activation) -> bool:
    """GPU only: the measured faster path for this shape (cached), or the two-launch path unmeasured."""
    seen = (x.dtype, geometry.layout_of(x), x.device, spatial, temporal)
    if seen in _decisions:
        return _decisions[seen]
    key = _decision_key(x, ws, wt, spatial, temporal)
    name = torch.cuda.get_device_properties(x.device).name
    hit = cache.lookup_choice(name, key)
    if hit is None and tuning.autotune_enabled():
        args = (x, ws, bs, wt, bt, spatial, temporal, mid_activation, activation)
        fused_ms = tuning.do_bench_median(lambda: dispatch.conv2plus1d_fused(*args))
        two_ms = tuning.do_bench_median(lambda: _two_launch(*args))
        hit = "fused" if fused_ms < two_ms else "two_launch"
        cache.store(name, {key: {"choice": hit, "ms": {"fused": fused_ms, "two_launch": two_ms}}})
    _decisions[seen] = hit == "fused"
    return _decisions[seen]


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
    """(2+1)D convolution: a spatial ``1 x kh x kw`` convolution, then a temporal ``kt x 1 x 1`` one, as
    ``conv3d(act(conv3d(x, weight_spatial, bias_spatial)), weight_temporal, bias_temporal)`` with the stages'
    parts of ``stride``, ``padding`` and ``dilation``; differentiable (on the two-launch path).

    :param input: ``(N, C_in, T, H, W)`` or ``(C_in, T, H, W)``; fp32, fp16, bf16 or fp64, CUDA or CPU.
    :param weight_spatial: ``(C_mid, C_in, 1, kh, kw)``, the input's dtype and device.
    :param weight_temporal: ``(C_out, C_mid, kt, 1, 1)``.
    :param bias_spatial: ``(C_mid,)`` or None.
    :param bias_temporal: ``(C_out,)`` or None.
    :param stride: int or ``(t, h, w)``: the spatial stage takes the h, w parts, the temporal stage the t part.
    :param padding: int, ``(t, h, w)``, ``'same'`` (stride 1) or ``'valid'``, split the same way.
    :param dilation: int or ``(t, h, w)``, split the same way.
    :param mid_activation: None or one of :data:`tritonconv.ACTIVATIONS`
        (``'relu'``, ``'gelu'``, ``'leaky_relu(0.2)'``, ...) after the spatial stage (on the mid tensor).
    :param activation: the same choices, after the temporal stage.
    :param fused: True runs one launch (the mid tensor never reaches memory; no backward, no tangents), False two
        launches; None chooses (the fused path on a GPU where it measured faster for the shape, never when
        gradients or tangents are needed, nor under the interpreter).
    :returns: ``(N, C_out, T_out, H_out, W_out)`` (unbatched in, unbatched out) in the input's dtype.
    :raises TypeError: a non-tensor argument, an unsupported dtype or dtypes that differ.
    :raises ValueError: weights that are not ``1 x kh x kw`` / ``kt x 1 x 1``, channels that do not chain
        (``C_in`` -> ``C_mid`` -> ``C_out``), an unknown activation, ``fused=True`` with gradients or tangents needed, or
        any error :func:`tritonconv.conv3d` raises for a stage.
    """
    tensors = (input, weight_spatial, weight_temporal, bias_spatial, bias_temporal)
    if has_torch_function_variadic(*tensors):  # as tritonconv.conv3d
        return handle_torch_function(conv2plus1d, tensors, *tensors, stride, padding, dilation,
                                     mid_activation=mid_activation, activation=activation, fused=fused)
    input, weight_spatial, weight_temporal, bias_spatial, bias_temporal = functional.stored(*functional.autocast(*tensors))
    spatial, temporal = _checked_stages(input, weight_spatial, weight_temporal, bias_spatial, bias_temporal,
                                        stride, padding, dilation)
    for name, act in (("mid_activation", mid_activation), ("activation", activation)):
        _checks.check_activation(act, "conv2plus1d", name)
    unbatched = spatial.unbatched
    x = input.unsqueeze(0) if unbatched else input
    args = (x, weight_spatial, bias_spatial, weight_temporal, bias_temporal, spatial, temporal, mid_activation,
            activation)
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (input, weight_spatial, weight_temporal, bias_spatial, bias_temporal))
    grad = grad or _checks.forward_mode()
    if fused and grad:
        raise ValueError("conv2plus1d: the fused path has no backward, no tangents and no batching rule; use fused=None "
                         "or False when gradients or forward-mode derivatives are needed, or under a torch.func transform")
    if fused is None:
        fused = not grad and not interpreting(x.device) and not _checks.is_traced(*args[:5]) and _choose_fused(*args)
    y = dispatch.conv2plus1d_fused(*args) if fused else _two_launch(*args)
    return y.squeeze(0) if unbatched else y
