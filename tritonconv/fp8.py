"""FP8 convolution for inference: 8-bit float operands, scales, fp32 accumulation, a 16- or 32-bit output.

PyTorch has no fp8 convolution (``F.conv2d`` refuses float8 tensors); Hopper's and Ada's tensor cores
multiply e4m3 and e5m2 at twice the bf16 rate. Here::

    y = act(conv(dequant(input), dequant(weight)) + bias),  dequant(q) = q.float() * scale

with ``input`` and ``weight`` in ``torch.float8_e4m3fn`` (or ``float8_e5m2``), ``input_scale`` one value,
``weight_scale`` one value or one per output channel. The products of 8-bit floats are exact in fp32
and accumulate there; the scales, bias and activation are applied in the kernel's epilogue, and the
output is written in ``out_dtype``. Forward only: no autograd. Under ``torch.compile`` (and on fake tensors)
the convolution is the custom op ``tritonconv::conv_fp8``, so a converted model compiles into one graph.
Depthwise layers (no tensor cores in their kernel) are refused, as are GPUs older than compute capability
8.9; CPU tensors run the same kernel under Triton's interpreter, which multiplies fp8 exactly.

:func:`quantize` makes (fp8 tensor, scale) pairs by amax scaling; :class:`Conv` is an inference module
holding a quantized weight; :func:`convert` turns a model's convolutions into such modules, with
activation scales from a calibration pass (static) or from each call's input (dynamic).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from typing import NoReturn

import torch
from torch.autograd.forward_ad import unpack_dual
from torch.overrides import handle_torch_function, has_torch_function_variadic

from . import _checks, dispatch, functional, geometry, nn, shapes

__all__ = ["FP8_DTYPES", "OUT_DTYPES", "Conv", "FP8Report", "conv1d", "conv2d", "conv3d", "convert", "dequantize",
           "quantize"]

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
OUT_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


def quantize(tensor: torch.Tensor, per_channel_dim: int | None = None, dtype: torch.dtype = torch.float8_e4m3fn
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, scale)`` with ``q = round(tensor / scale)`` in ``dtype`` and ``scale = amax / dtype's largest value``
    (amax scaling; an all-zero slice gets scale 1). ``amax`` is over the finite values: an infinity saturates to the
    format's largest value and a NaN stays NaN, so only the outputs they reach differ from the float layer's (an
    infinite scale would round every finite value to 0 and dequantise to NaN).

    :param tensor: any float tensor.
    :param per_channel_dim: None for one scale (a 0-d fp32 tensor), or the dimension that gets one scale per index
        (a 1-D fp32 tensor; a conv weight's output channels: 0).
    :param dtype: ``torch.float8_e4m3fn`` (3 mantissa bits, to 448) or ``torch.float8_e5m2`` (2 bits, to 57344).
    :raises TypeError: ``dtype`` not an fp8 dtype, or ``tensor`` not floating point.
    """
    if dtype not in FP8_DTYPES:
        raise TypeError(f"quantize: expected `dtype` to be one of {FP8_DTYPES}, got {dtype}")
    if not tensor.is_floating_point():
        raise TypeError(f"quantize: expected `tensor` to be floating point, got {tensor.dtype}")
    t = tensor.float()
    scale = _amax_scale(t, per_channel_dim, dtype)
    return _round(t / _along(scale, t.dim(), per_channel_dim), dtype), scale


def _amax_scale(t: torch.Tensor, per_channel_dim: int | None, dtype: torch.dtype) -> torch.Tensor:
    """:func:`quantize`'s scale of the fp32 tensor ``t``."""
    magnitude = t.abs().nan_to_num_(nan=0.0, posinf=0.0)  # the finite values' (no host sync)
    if per_channel_dim is None:
        amax = magnitude.amax()
    else:
        dims = [d for d in range(t.dim()) if d != per_channel_dim % t.dim()]
        amax = magnitude.amax(dim=dims) if dims else magnitude
    return torch.where(amax > 0, amax / torch.finfo(dtype).max, torch.ones_like(amax))


def _along(scale: torch.Tensor, ndim: int, per_channel_dim: int | None) -> torch.Tensor:
    """``scale`` shaped to broadcast over an ``ndim``-d tensor: one value, or one per index of ``per_channel_dim``."""
    if per_channel_dim is None or scale.dim() == 0:
        return scale
    return scale.view([-1 if d == per_channel_dim % ndim else 1 for d in range(ndim)])


def _round(t: torch.Tensor, dtype: torch.dtype, channels_inner: bool = False) -> torch.Tensor:
    """``t`` (already divided by its scale) in ``dtype``, saturating at its largest value; ``channels_inner``: laid
    out with dimension 1 innermost (NLC, NHWC, NDHWC memory), in the same pass."""
    top = torch.finfo(dtype).max
    t = t.clamp(-top, top)
    return geometry.empty_channels_inner(t.shape, dtype, t.device).copy_(t) if channels_inner else t.to(dtype)


def dequantize(q: torch.Tensor, scale: torch.Tensor, per_channel_dim: int | None = None) -> torch.Tensor:
    """``q.float() * scale`` (``scale`` broadcast along ``per_channel_dim`` when it has one value per index).

    :param q: an fp8 tensor from :func:`quantize`.
    :param scale: its scale, one value or one per index of ``per_channel_dim``.
    :param per_channel_dim: the dimension a per-index ``scale`` runs along.
    """
    return q.float() * _along(scale, q.dim(), per_channel_dim)


def _check_device(op: str, device: torch.device) -> None:
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) < (8, 9):
            raise RuntimeError(f"{op}: fp8 tensor-core products need compute capability 8.9 or newer (Ada, Hopper); "
                               f"{torch.cuda.get_device_name(device)} is {major}.{minor}")
    elif device.type not in ("cpu", "meta"):
        raise ValueError(f"{op}: tritonconv runs on CUDA tensors, or on CPU tensors through Triton's interpreter; "
                         f"got device {device}")


def _check(op: str, input, weight, bias, input_scale, weight_scale, out_dtype, activation) -> None:
    _checks.refuse_vmap(op)
    for name, t in (("input", input), ("weight", weight), ("input_scale", input_scale), ("weight_scale", weight_scale)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}: expected `{name}` to be a torch.Tensor, got {type(t).__name__}")
    for name, t in (("input", input), ("weight", weight)):
        if t.dtype not in FP8_DTYPES:
            raise TypeError(f"{op}: expected `{name}` dtype to be torch.float8_e4m3fn or torch.float8_e5m2 "
                            f"(tritonconv.fp8.quantize makes one), got {t.dtype}")
    if weight.dtype != input.dtype:
        raise TypeError(f"{op}: expected `weight` dtype to be {input.dtype} (the input's), got {weight.dtype}")
    if out_dtype not in OUT_DTYPES:
        raise TypeError(f"{op}: expected `out_dtype` to be one of {OUT_DTYPES}, got {out_dtype}")
    if input_scale.numel() != 1:
        raise ValueError(f"{op}: expected `input_scale` to hold one value, got shape {tuple(input_scale.shape)}")
    c_out = weight.shape[0]
    if weight_scale.numel() != 1 and tuple(weight_scale.shape) != (c_out,):
        raise ValueError(f"{op}: expected `weight_scale` of one value or shape ({c_out},) (one per output channel), "
                         f"got shape {tuple(weight_scale.shape)}")
    if bias is not None and (not isinstance(bias, torch.Tensor) or bias.dtype not in (out_dtype, torch.float32)):
        raise TypeError(f"{op}: expected `bias` to be a tensor of dtype {out_dtype} or torch.float32, got "
                        f"{getattr(bias, 'dtype', type(bias).__name__)}")
    for name, t in (("weight", weight), ("bias", bias), ("input_scale", input_scale), ("weight_scale", weight_scale)):
        if t is not None and t.device != input.device:
            raise ValueError(f"{op}: expected `{name}` on {input.device} (the input's device), got {t.device}")
    tensors = (input, weight, bias, input_scale, weight_scale)
    if any(t is not None and t.requires_grad for t in tensors) or _checks.under_functorch() or (
            _checks.forward_mode() and any(t is not None and unpack_dual(t).tangent is not None for t in tensors)):
        raise RuntimeError(f"{op}: fp8 convolution is forward only (inference), with no derivative in either mode; "
                           "call it under torch.no_grad() on tensors that do not require grad and carry no tangent, "
                           "outside torch.func transforms")
    _checks.check_activation(activation, op)
    _check_device(op, input.device)


def _conv(ndim, input, weight, bias, stride, padding, dilation, groups, input_scale, weight_scale, out_dtype,
          activation, out_channels_last: bool | None = None):
    """The checked convolution; its output channels-last (4-D and 5-D) or not as ``out_channels_last`` says, or by
    torch's rule (None: channels-last where the input or the weight is)."""
    op = f"fp8.conv{ndim}d"
    _check(op, input, weight, bias, input_scale, weight_scale, out_dtype, activation)
    input, weight, bias, input_scale, weight_scale = functional.stored(input, weight, bias, input_scale, weight_scale)
    spec = _checks.shape_spec(op, ndim, input, weight, bias, stride, padding, dilation, groups)
    if shapes.is_depthwise(spec.input_shape, spec.weight_shape, spec.groups):
        raise ValueError(f"{op}: depthwise convolution (groups == input channels, {spec.groups}) is not supported in "
                         "fp8: its kernel has no tensor-core products to speed up; run it in bf16")
    x = input.unsqueeze(0) if spec.unbatched else input
    w_scale = weight_scale.float().reshape(-1) if weight_scale.numel() > 1 else weight_scale.float().reshape(())
    x_scale = input_scale.float().reshape(())
    if _checks.is_traced(x):  # torch.compile, torch.export, fake tensors: the custom op
        y = _conv_fp8_op(x, weight, bias, w_scale, x_scale, *functional._flat(spec), activation, out_dtype,
                         out_channels_last)
    else:
        y = _launch(x, weight, bias, w_scale, x_scale, spec, activation, out_dtype, out_channels_last)
    return y.squeeze(0) if spec.unbatched else y


def _out_format(x: torch.Tensor, weight: torch.Tensor, channels_last: bool | None) -> torch.memory_format:
    """The batched output's memory format (:func:`_conv`'s ``out_channels_last``)."""
    if channels_last is None:
        return geometry.output_memory_format(x, weight)
    return geometry.CHANNELS_LAST.get(x.dim(), torch.contiguous_format) if channels_last else torch.contiguous_format


def _launch(x, weight, bias, w_scale, x_scale, spec, activation, out_dtype, out_channels_last) -> torch.Tensor:
    """The checked, batched convolution on the kernels (eager calls and the custom op alike)."""
    plan = dispatch.scaled_forward_plan(x, weight, bias, w_scale, spec, activation, out_dtype,
                                        out_format=_out_format(x, weight, out_channels_last))
    return plan(x, weight, bias, w_scale, x_scale)


@torch.library.custom_op("tritonconv::conv_fp8", mutates_args=())
def _conv_fp8_op(
    input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, weight_scale: torch.Tensor,
    input_scale: torch.Tensor, stride: list[int], padding: list[int], dilation: list[int], groups: int,
    activation: str | None, out_dtype: torch.dtype, out_channels_last: bool | None,
) -> torch.Tensor:
    """What ``torch.compile`` sees of a checked fp8 convolution (batched; scales as the kernel takes them)."""
    spec = functional._spec(input.shape, weight.shape, stride, padding, dilation, groups)
    return _launch(input, weight, bias, weight_scale, input_scale, spec, activation, out_dtype, out_channels_last)


@_conv_fp8_op.register_fake
def _(input, weight, bias, weight_scale, input_scale, stride, padding, dilation, groups, activation, out_dtype,
      out_channels_last):
    spec = functional._spec(input.shape, weight.shape, stride, padding, dilation, groups)
    return input.new_empty(spec.output_shape, dtype=out_dtype).contiguous(
        memory_format=_out_format(input, weight, out_channels_last))


_DOC = """{n}-D convolution of fp8 operands, dequantised: ``act(conv{n}d(input * input_scale, weight * weight_scale)
+ bias)``, accumulated in fp32, written in ``out_dtype``; forward only.

:param input: ``(N, C_in, {x})`` or unbatched, ``torch.float8_e4m3fn`` or ``torch.float8_e5m2``; CUDA with compute
    capability 8.9+ (compiled) or CPU (Triton's interpreter).
:param weight: ``(C_out, C_in / groups, {k})``, the input's fp8 dtype.
:param bias: ``(C_out,)`` in ``out_dtype`` or fp32, or None.
:param stride: int or ``{n}`` ints.
:param padding: int, ``{n}`` ints, ``'same'`` or ``'valid'``.
:param dilation: int or ``{n}`` ints.
:param groups: as torch's; depthwise layers (``groups == C_in``) are refused.
:param input_scale: the input's scale, one value (``tritonconv.fp8.quantize``).
:param weight_scale: one value, or ``(C_out,)``: one per output channel.
:param out_dtype: ``torch.bfloat16`` (default), ``torch.float16`` or ``torch.float32``.
:param activation: None or one of :data:`tritonconv.ACTIVATIONS` (``'relu'``, ``'gelu'``, ``'leaky_relu(0.2)'``, ...), fused.
:returns: ``(N, C_out, {x_out})`` in ``out_dtype``, channels-last when the input or the weight is.
:raises TypeError: a dtype that is not fp8 (input, weight), a mixed one, ``out_dtype`` or ``bias`` dtype.
:raises ValueError: shapes, scale shapes, depthwise, devices.
:raises RuntimeError: a GPU older than compute capability 8.9; a tensor that requires grad.
"""
_AXES = {1: ("L", "K", "L_out"), 2: ("H, W", "kH, kW", "H_out, W_out"), 3: ("D, H, W", "kD, kH, kW", "D_out, H_out, W_out")}


def _convolution(public, ndim, input, weight, bias, stride, padding, dilation, groups, input_scale, weight_scale,
                 out_dtype, activation):
    """``conv{ndim}d`` (``public``): a call with ``__torch_function__`` overrides goes to them (as
    :func:`tritonconv.conv2d`'s); else to :func:`_conv`."""
    tensors = (input, weight, bias, input_scale, weight_scale)
    if has_torch_function_variadic(*tensors):
        return handle_torch_function(public, tensors, input, weight, bias, stride, padding, dilation, groups,
                                     input_scale=input_scale, weight_scale=weight_scale, out_dtype=out_dtype,
                                     activation=activation)
    return _conv(ndim, input, weight, bias, stride, padding, dilation, groups, input_scale, weight_scale, out_dtype,
                 activation)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, input_scale, weight_scale,
           out_dtype=torch.bfloat16, activation=None):
    return _convolution(conv1d, 1, input, weight, bias, stride, padding, dilation, groups, input_scale, weight_scale,
                        out_dtype, activation)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, input_scale, weight_scale,
           out_dtype=torch.bfloat16, activation=None):
    return _convolution(conv2d, 2, input, weight, bias, stride, padding, dilation, groups, input_scale, weight_scale,
                        out_dtype, activation)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, input_scale, weight_scale,
           out_dtype=torch.bfloat16, activation=None):
    return _convolution(conv3d, 3, input, weight, bias, stride, padding, dilation, groups, input_scale, weight_scale,
                        out_dtype, activation)


for _n, _fn in ((1, conv1d), (2, conv2d), (3, conv3d)):
    _x, _k, _o = _AXES[_n]
    _fn.__doc__ = _DOC.format(n=_n, x=_x, k=_k, x_out=_o)


class Conv(torch.nn.Module):
    """An inference convolution on fp8 operands: the weight quantized once per output channel, the input
    quantized per call with a fixed scale (``input_scale``, from calibration) or its own amax (dynamic). Both are
    held channels innermost (the input laid out so by the pass that rounds it: the kernels' fastest tiles, whatever
    the caller's layout); the output is written in the input's layout.

    :param weight: the float weight ``(C_out, C_in / groups, *k)``, quantized here.
    :param bias: the float bias or None (kept in fp32).
    :param stride: as the convolution's.
    :param padding: as the convolution's (ints, ``'same'`` or ``'valid'``).
    :param dilation: as the convolution's.
    :param groups: as the convolution's; not depthwise.
    :param input_scale: a float: the static input scale; None: each call's input amax.
    :param out_dtype: the output dtype (default bf16).
    :param dtype: the fp8 dtype of both operands.
    :param activation: None or one of :data:`tritonconv.ACTIVATIONS`
        (``'relu'``, ``'gelu'``, ``'leaky_relu(0.2)'``, ...), fused after the bias.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride, padding, dilation, groups: int,
                 input_scale: float | None = None, out_dtype: torch.dtype = torch.bfloat16,
                 dtype: torch.dtype = torch.float8_e4m3fn, activation: str | None = None) -> None:
        _checks.check_activation(activation, "fp8.Conv")
        super().__init__()
        self.activation = activation
        q, scale = quantize(weight.detach(), per_channel_dim=0, dtype=dtype)
        self.register_buffer("weight", geometry.channels_inner(q))  # as the kernels read it in place
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", None if bias is None else bias.detach().float())
        self.register_buffer("input_scale", None if input_scale is None else torch.tensor(float(input_scale),
                                                                                           device=weight.device))
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.out_dtype, self.dtype = out_dtype, dtype
        self.ndim = weight.dim() - 2

    def __prepare_scriptable__(self) -> NoReturn:
        _checks.refuse_scripting(self, "An fp8 layer has no torch counterpart to revert to; trace it")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        # quantized channels innermost, in the pass that rounds it (the layout every kernel reads fastest: on Hopper
        # the descriptor kernel where NC(D)HW fp8 rows of no 16-byte multiple leave the pointer kernel), the output
        # written in the input's layout
        t = input.float()
        scale = _amax_scale(t, None, self.dtype) if self.input_scale is None else self.input_scale
        batched = input.dim() == self.ndim + 2
        x = _round(t / scale, self.dtype, channels_inner=batched)
        out_cl = batched and geometry.memory_format_of(input) != torch.contiguous_format
        y = _conv(self.ndim, x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups, scale,
                  self.weight_scale, self.out_dtype, self.activation, out_cl)
        return y if input.dtype not in OUT_DTYPES else y.to(input.dtype)

    def extra_repr(self) -> str:
        scale = "dynamic" if self.input_scale is None else f"{self.input_scale.item():.4g}"
        text = (f"{tuple(self.weight.shape)}, stride={self.stride}, padding={self.padding}, groups={self.groups}, "
                f"{str(self.dtype)[6:]}, input_scale={scale}")
        return text if self.activation is None else f"{text}, activation={self.activation!r}"


@dataclasses.dataclass
class FP8Report:
    """What :func:`convert` did.

    :param converted: torch class name -> modules now on fp8.
    :param left: reason -> modules left as they were.
    """

    converted: Counter = dataclasses.field(default_factory=Counter)
    left: Counter = dataclasses.field(default_factory=Counter)

    def __str__(self) -> str:
        done = ", ".join(f"{k} {n}" for k, n in sorted(self.converted.items())) or "none"
        text = f"fp8: {sum(self.converted.values())} convolutions converted ({done})"
        return text + ("; left: " + "; ".join(f"{n} ({why})" for why, n in sorted(self.left.items())) if self.left else "")


def _why_not(module: torch.nn.Module) -> str | None:
    if isinstance(module, torch.nn.modules.conv._ConvTransposeNd):
        return "transposed convolution: not in fp8"
    if module.padding_mode != "zeros":
        return f"padding_mode={module.padding_mode!r}"
    if module.groups > 1 and module.groups == module.in_channels and module.weight.shape[1] == 1:
        return "depthwise: no tensor-core products"
    if not module.weight.is_floating_point() or module.weight.dtype == torch.float64:
        return f"weight dtype {str(module.weight.dtype)[6:]}"
    if type(module).forward not in (torch.nn.Conv1d.forward, torch.nn.Conv2d.forward, torch.nn.Conv3d.forward) and \
            not hasattr(module, "_fn"):
        return "overrides forward"
    return None


def convert(model: torch.nn.Module, calibration: Iterable | None = None, out_dtype: torch.dtype = torch.bfloat16,
            dtype: torch.dtype = torch.float8_e4m3fn, report: bool = False):
    """Replace ``model``'s ``Conv1d/2d/3d`` modules (torch's or tritonconv's) by :class:`Conv`, in place; returns the
    model (or, with ``report=True``, an :class:`FP8Report`).

    :param model: any module; its convolutions' weights are quantized per output channel.
    :param calibration: None for dynamic input scales (each call's amax), or an iterable of inputs (batches) the model
        is run on first, in ``torch.no_grad()``: each convolution's input scale is its largest amax over them.
    :param out_dtype: what the fp8 convolutions write (bf16 default); their outputs return in the input's dtype.
    :param dtype: the fp8 dtype.
    :param report: return the :class:`FP8Report` instead of the model.
    :raises ValueError: ``model`` is itself a convolution to convert (nothing holds it to replace it in place).
    Left as they were, with the reason in the report: transposed and depthwise convolutions, other padding modes,
    fp64 weights, classes overriding ``forward``. A fused ``activation`` (:func:`tritonconv.fuse`) stays fused.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"fp8.convert: expected `model` to be a torch.nn.Module, got {type(model).__name__}")
    found, targets = FP8Report(), []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.conv._ConvNd):
            why = _why_not(module)
            if why:
                found.left[why] += 1
            else:
                targets.append((name, module))
    if targets and targets[0][0] == "":  # no parent to hold its replacement
        raise ValueError(f"fp8.convert: `model` is itself a {type(model).__name__}, which cannot be replaced in place; "
                         "convert a module holding it, e.g. fp8.convert(torch.nn.Sequential(conv))[0]")
    amax = {}
    if calibration is not None:
        hooks = [m.register_forward_pre_hook(
            lambda mod, args, n=n: amax.__setitem__(n, max(amax.get(n, 0.0), args[0].detach().abs().amax().item())))
            for n, m in targets]
        try:
            with torch.no_grad():
                for batch in calibration:
                    model(batch)
        finally:
            for h in hooks:
                h.remove()
    top = torch.finfo(dtype).max
    for name, module in targets:
        scale = None if calibration is None else (amax.get(name, 0.0) / top or 1.0)
        fp8 = Conv(module.weight, module.bias, module.stride, module.padding, module.dilation, module.groups, scale,
                   out_dtype, dtype, module.activation if isinstance(module, nn.CONVOLUTIONS) else None)
        parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
        setattr(parent, name.rpartition(".")[2], fp8)
        found.converted[type(module).__name__] += 1
    return found if report else model
