"""The one place that picks, for a checked problem, the kernel family and its config, and launches it.

    forward          depthwise layers -> kernels.depthwise; others -> kernels.gemm, or
                     kernels.tma when the config says so (``tile_h > 0``) and the operands allow
    input gradient   the transposed pass of the same families (kernels.tma as a forward
                     convolution of the output gradient, unit strides only)
    weight gradient  depthwise layers -> kernels.depthwise; others -> kernels.weight_grad
    (2+1)D fused     kernels.fused_2plus1d

Configs come from :func:`tritonconv.tuning.choose` (which may time candidates by launching
them through the ``run`` functions built here) unless the caller passes one. The GEMM kernels
get their operands with channels innermost (:func:`tritonconv.geometry.channels_inner`); the
config is chosen for the caller's layout, since tiles differ by how the output is written.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from . import geometry, tuning
from ._checks import ConvSpec
from ._runtime import interpreting
from .geometry import DEPTHWISE_KIND, Config, channels_inner
from .kernels import depthwise, fused_2plus1d, gemm, tma, weight_grad
from .shapes import is_depthwise


def _config(kind: str, tensor: torch.Tensor, spec: ConvSpec, layout: str | None, run) -> Config:
    """The config of a launch reading ``tensor`` (tuned, cached or heuristic; see :mod:`tritonconv.tuning`)."""
    if is_depthwise(spec.input_shape, spec.weight_shape, spec.groups):
        kind = DEPTHWISE_KIND[kind]
    problem = geometry.Problem.for_launch(kind, tensor, spec, layout)
    return tuning.choose(problem, tensor.device, interpreting(tensor.device), run)


def _gemm(x, weight, bias, y, spec: ConvSpec, transposed: bool, activation, flip: bool, config) -> torch.Tensor:
    """Forward (or transposed) pass of a non-depthwise layer: the descriptor kernel or the pointer kernel."""
    if y.numel() == 0:
        return y
    layout = geometry.layout_of(x)  # of the caller's tensor: the configs differ by how y is written
    x = channels_inner(x)
    # the weight's reduction dimension innermost: input channels (forward) or output channels (transposed)
    weight = channels_inner(weight.transpose(0, 1)).transpose(0, 1) if transposed else channels_inner(weight)
    if config is None:
        config = _config("conv_t" if transposed else "conv", x, spec, layout, lambda cfg: _gemm(
            x, weight, bias, torch.empty_like(y), spec, transposed, activation, flip, cfg))
    if config.tile_h:  # tile loads by tensor descriptor; the transposed pass as its forward equivalent
        w_fwd, spec_fwd = (weight.transpose(0, 1), tma.transposed_as_forward(spec)) if transposed else (weight, spec)
        if tma.usable(x, w_fwd, spec_fwd, transposed):
            return tma.launch(x, w_fwd, bias, y, spec_fwd, activation, flip != transposed, config)
        config = dataclasses.replace(config, tile_h=0)  # e.g. an unaligned view: the same tiles through pointers
    return gemm.launch(x, weight, bias, y, spec, transposed, activation, flip, config)


def _depthwise(x, weight, bias, y, spec: ConvSpec, transposed: bool, activation, flip: bool, config) -> torch.Tensor:
    """Forward (or transposed) pass of a depthwise layer; reads any strides in place."""
    if y.numel() == 0:
        return y
    if config is None:
        config = _config("conv_t" if transposed else "conv", x, spec, None, lambda cfg: _depthwise(
            x, weight, bias, torch.empty_like(y), spec, transposed, activation, flip, cfg))
    return depthwise.launch(x, weight, bias, y, spec, transposed, activation, flip, config)


def conv_forward(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    spec: ConvSpec,
    activation: str | None = None,
    flip: bool = False,
    config: Config | None = None,
) -> torch.Tensor:
    """Forward convolution of a checked, batched problem; returns the output tensor."""
    y = geometry.alloc_output(spec.output_shape, input.device, input.dtype, geometry.output_memory_format(input, weight))
    family = _depthwise if is_depthwise(spec.input_shape, spec.weight_shape, spec.groups) else _gemm
    return family(input, weight, bias, y, spec, False, activation, flip, config)


def conv_grad_input(
    grad_output: torch.Tensor,
    weight: torch.Tensor,
    spec: ConvSpec,
    flip: bool = False,
    memory_format: torch.memory_format = torch.contiguous_format,
    config: Config | None = None,
) -> torch.Tensor:
    """Gradient of the forward pass with respect to its input: the transposed convolution.

    ``dx[i] = sum_{o, t : o*s - p + t*d = i} dy[o] * w[t]`` per channel pair; the input size
    (``spec.input_shape``) fixes what torch calls ``output_padding``.
    """
    dx = geometry.alloc_output(spec.input_shape, grad_output.device, grad_output.dtype, memory_format)
    family = _depthwise if is_depthwise(spec.input_shape, spec.weight_shape, spec.groups) else _gemm
    return family(grad_output, weight, None, dx, spec, True, None, flip, config)


def conv_grad_weight(
    grad_output: torch.Tensor,
    input: torch.Tensor,
    spec: ConvSpec,
    flip: bool = False,
    config: Config | None = None,
) -> torch.Tensor:
    """Gradient of the forward pass with respect to its weight (fp32 accumulation, weight dtype out)."""
    if is_depthwise(spec.input_shape, spec.weight_shape, spec.groups):  # no tensor cores; any strides in place
        if config is None:
            config = _config("conv_wgrad", input, spec, None,
                             lambda cfg: conv_grad_weight(grad_output, input, spec, flip, cfg))
        return depthwise.grad_weight(grad_output, input, spec, flip, config)
    layout = geometry.layout_of(input)  # of the caller's tensor (the cache key)
    grad_output, input = channels_inner(grad_output), channels_inner(input)  # tiles along channels
    if config is None:
        config = _config("conv_wgrad", input, spec, layout,
                         lambda cfg: conv_grad_weight(grad_output, input, spec, flip, cfg))
    return weight_grad.launch(grad_output, input, spec, flip, config)


def conv2plus1d_fused(x, ws, bs, wt, bt, spatial: ConvSpec, temporal: ConvSpec, mid_activation, activation,
                      config: Config | None = None) -> torch.Tensor:
    """One launch of the fused (2+1)D kernel; ``spatial``/``temporal`` are the two stages' checked specs."""
    y = geometry.alloc_output(temporal.output_shape, x.device, x.dtype, geometry.output_memory_format(x, ws))
    if config is None:
        m = y.shape[0] * math.prod(y.shape[2:])
        config = tuning.fused_2plus1d_config(m, ws.shape[1], ws.shape[0], wt.shape[0], interp=interpreting(x.device),
                                             channels_last=y.stride(1) == 1)
    # operands with their reduction channels innermost
    x, ws, wt = channels_inner(x), channels_inner(ws), channels_inner(wt)
    return fused_2plus1d.launch(x, ws, bs, wt, bt, y, spatial, temporal, mid_activation, activation, config)


__all__ = ["conv2plus1d_fused", "conv_forward", "conv_grad_input", "conv_grad_weight"]
