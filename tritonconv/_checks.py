"""Argument checking shared by every op: one place, messages that name the argument.

``conv_spec`` turns user arguments into a resolved :class:`ConvSpec` or raises a
``ValueError``/``TypeError`` saying which argument is wrong and what was expected.
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch._subclasses.functional_tensor import FunctionalTensor
from torch.autograd import forward_ad

from . import shapes

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
ACTIVATIONS = (None, "relu", "relu6", "gelu", "gelu_tanh", "silu", "mish", "hardswish", "sigmoid", "tanh", "hardsigmoid",
               "elu", "selu", "leaky_relu")
"""The activations a kernel's epilogue computes after the bias (``activation=``), each as ``torch.nn.functional``'s
function of that name computes it with its default arguments: ``"gelu"`` exact (through erf), ``"gelu_tanh"``
``F.gelu(z, approximate="tanh")``, ``"elu"`` of alpha 1; ``"leaky_relu"`` takes torch's negative slope (0.01),
``"leaky_relu(0.2)"`` another (:func:`leaky_relu`). Every function and module taking ``activation=`` refers here."""


SELU_SCALE, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772
"""``F.selu``'s scale and alpha: its epilogue's (:func:`tritonconv._tile.activate`) and its derivative's."""


def leaky_relu(negative_slope: float = 0.01) -> str:
    """The activation name of ``F.leaky_relu(z, negative_slope)``: ``"leaky_relu"`` at torch's default slope, else
    ``"leaky_relu(<slope>)"``, e.g. ``"leaky_relu(0.2)"``."""
    slope = float(negative_slope)
    return "leaky_relu" if slope == 0.01 else f"leaky_relu({slope!r})"


def negative_slope(activation: str | None) -> float | None:
    """A ``leaky_relu`` activation's slope below 0 (:func:`leaky_relu`), or None for any other activation or a name
    that is none."""
    if activation == "leaky_relu":
        return 0.01
    if not (isinstance(activation, str) and activation.startswith("leaky_relu(") and activation.endswith(")")):
        return None
    try:
        slope = float(activation[len("leaky_relu("):-1])
    except ValueError:
        return None
    return slope if math.isfinite(slope) else None


def slope_from_output(activation: str | None) -> bool:
    """Whether ``activation``'s slope is read off its output (which a forward saves), as torch's derivatives read
    ReLU's, ReLU6's, the sigmoid's and tanh's, and a leaky ReLU's of a slope of 0 or more (its output's sign is its
    input's); the others' off the pre-activation ``z`` (the ELU's and SELU's as torch's out-of-place ``elu``: off
    a 16-bit output, ``y + alpha`` would lose the small slopes far below 0)."""
    slope = negative_slope(activation)
    return activation in ("relu", "relu6", "sigmoid", "tanh") or slope is not None and slope >= 0


def keeps_zero(activation: str | None) -> bool:
    """Whether ``activation`` maps 0 to 0 (all but the sigmoid's and hardsigmoid's 0.5): a fused (2+1)D kernel's mid
    rows of temporal padding, zeros, stay zeros through it."""
    return activation not in ("sigmoid", "hardsigmoid")


@dataclass(frozen=True)
class ConvSpec:
    """A checked convolution: everything the launcher needs besides the tensors."""

    ndim: int
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int
    input_shape: tuple[int, ...]  # batched: (N, C_in, *spatial)
    weight_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    unbatched: bool


def _positive(name: str, values: tuple[int, ...], op: str) -> None:
    if any(v <= 0 for v in values):
        raise ValueError(f"{op}: expected `{name}` to be positive, got {values}")


def check_activation(activation: str | None, op: str, name: str = "activation") -> None:
    if activation not in ACTIVATIONS and negative_slope(activation) is None:
        raise ValueError(f"{op}: expected `{name}` to be one of {ACTIVATIONS} or 'leaky_relu(<slope>)' (a finite "
                         f"slope, e.g. 'leaky_relu(0.2)'), got {activation!r}")


def check_memory_format(memory_format, ndim: int, op: str) -> None:
    """A convolution's output ``memory_format``: None (torch's rule), ``torch.preserve_format`` (the input's),
    ``torch.contiguous_format``, or the channels-last format of its rank (``torch.channels_last`` in 2-D,
    ``torch.channels_last_3d`` in 3-D; torch has none in 1-D)."""
    last = {2: torch.channels_last, 3: torch.channels_last_3d}.get(ndim)
    allowed = (None, torch.preserve_format, torch.contiguous_format, *((last,) if last else ()))
    if not any(memory_format is f for f in allowed):
        names = ", ".join(str(f) for f in allowed)
        raise ValueError(f"{op}: expected `memory_format` to be one of {names}, got {memory_format!r}")


def check_stream_slices(slices, op: str) -> None:
    """A stream's ``slices`` are an iterable of depth slices or slabs, not a tensor: iterated, an ``(N, C, D, H, W)``
    volume's items would be read as slices of other sizes (``(C, D, H, W)``: ``C`` images of ``D`` channels)."""
    if isinstance(slices, torch.Tensor):
        raise TypeError(f"{op}: expected `slices` to be an iterable of depth slices or slabs, got a tensor "
                        f"{tuple(slices.shape)}: a whole (N, C, D, H, W) volume is one slab, [x], or its depth slices, "
                        f"x.unbind(2)")


def is_dtensor(x) -> bool:
    """Whether ``x`` is a ``torch.distributed.tensor.DTensor`` (without importing that package)."""
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(x, module.DTensor)


_TRACING_MODES = tuple(getattr(torch._C._TorchDispatchModeKey, key) for key in ("FAKE", "FUNCTIONAL", "PROXY"))


def tracing() -> bool:
    """Whether ``torch.compile`` or ``torch.jit.trace`` is tracing the call (under the latter, a shape's sizes are
    tensors)."""
    return torch.compiler.is_compiling() or torch._C._is_tracing()


def is_traced(*tensors: torch.Tensor | None) -> bool:
    """Whether a call on ``tensors`` is traced rather than run: under ``torch.compile``, on a fake or functional tensor,
    or with a fake, functional or proxy mode on (``FakeTensorMode``, ``torch.export``, ``make_fx``; a dispatch mode of
    the user's, such as a counter, sees the kernels run). Traced calls take tritonconv's custom ops, whose fake kernels
    give the output's shape and strides without launching anything. (torch 2.11 runs Dynamo's fake-tensor
    propagation with ``torch.compiler.is_compiling()`` false.) So does a call on a tensor subclass with a dispatch of
    its own (``__torch_dispatch__``: a wrapper such as torchao's quantized tensors, with no storage a kernel could
    read), which then sees the custom ops and runs them on what it wraps. Under 1 us on plain tensors, no mode on."""
    if tracing():
        return True
    for t in tensors:
        if type(t) not in _PLAIN and t is not None and (isinstance(t, (FakeTensor, FunctionalTensor))
                                                        or torch._C._dispatch_keys(t).has(torch._C.DispatchKey.Python)):
            return True
    return torch._C._len_torch_dispatch_stack() > 0 and any(
        torch._C._get_dispatch_mode(key) is not None for key in _TRACING_MODES)


def under_functorch() -> bool:
    """Whether a ``torch.func`` transform (``grad``, ``vmap``, ...) is running the call."""
    return torch._C._functorch.maybe_current_level() is not None


def _transforms() -> list:
    """The ``torch.func`` transforms running the call (their ``TransformType``s, outermost first; none outside one)."""
    if not under_functorch():
        return []
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

    return [i.key() for i in retrieve_all_functorch_interpreters()]


def under_vmap() -> bool:
    """Whether ``torch.func.vmap`` is among the transforms running the call (at any level)."""
    return torch._C._functorch.TransformType.Vmap in _transforms()


def forward_mode() -> bool:
    """Whether operands may carry tangents: a forward-mode level open (``torch.autograd.forward_ad.dual_level``), or a
    ``torch.func`` transform running (``jvp``, ``grad``; its wrapped tensors have no storage to launch on either)."""
    return forward_ad._current_level >= 0 or under_functorch()


def forward_levels() -> int:
    """The forward-mode levels a call runs under: each ``torch.func.jvp`` (``linearize``, ``jacfwd``) transform, or
    else an open ``torch.autograd.forward_ad`` level (which ``torch.func.jvp`` opens too)."""
    jvps = _transforms().count(torch._C._functorch.TransformType.Jvp)
    return max(int(forward_ad._current_level >= 0), jvps)


def check_forward_mode(op: str, traced: bool) -> None:
    """Refuse, by name, the forward-mode derivatives that would come out wrong without a word: a traced call's (its
    custom op has no forward-mode formula: torch would give a zero tangent), and a tangent's tangent (torch
    differentiates an autograd function's ``jvp`` at no outer forward level: zero again)."""
    levels = forward_levels()
    if levels and traced:
        raise NotImplementedError(f"{op}: forward-mode derivatives of a traced call (torch.func.linearize, make_fx, "
                                  "torch.compile or torch.export of a jvp) are not supported: tritonconv's custom ops "
                                  "have none; run torch.func.jvp eagerly")
    if levels > 1:
        raise NotImplementedError(f"{op}: nested forward mode (a jvp of a jvp) is not supported: torch gives an "
                                  "autograd function's tangent no derivative at an outer forward level, so it would be "
                                  "zero; a jvp of a grad and a grad of a jvp are supported")


def refuse_vmap(op: str) -> None:
    """Refuse, by name, a call under ``torch.func.vmap`` of an op with no batching rule (fp8's: its batched tensors
    have no storage a kernel can read; ``conv*d``'s autograd functions have rules, ``tritonconv.functional``)."""
    if under_vmap():
        raise NotImplementedError(f"{op}: called under torch.func.vmap, which it does not support (no batching rule: "
                                  "call it on the whole batch; tritonconv.conv* run under vmap)")


def refuse_scripting(module: torch.nn.Module, instead: str) -> NoReturn:
    """Refuse ``torch.jit.script`` of ``module`` by name (its ``__prepare_scriptable__``; torch calls it on every
    submodule it scripts): TorchScript cannot compile a Python launch of Triton kernels, and its own error points into
    tritonconv's source. ``instead`` says what serves, before the tracers named."""
    cls = type(module)
    raise TypeError(f"torch.jit.script: {cls.__module__}.{cls.__qualname__} runs Triton kernels launched from Python, "
                    f"which TorchScript cannot compile (torch has deprecated torch.jit.script). {instead}: "
                    "torch.export.export, torch.compile and torch.jit.trace record tritonconv's custom ops; a traced "
                    "module saves with torch.jit.save and loads where tritonconv is imported")


_STRIDED = torch.strided
_PLAIN = (torch.Tensor, torch.nn.Parameter)  # no tensor subclass with rules of its own (such as DTensor)


def not_dense(t: torch.Tensor) -> str | None:
    """What keeps ``t`` from being a dense tensor whose elements a kernel reads by address (``'layout
    torch.sparse_coo'``, ``'a nested tensor'``), or None."""
    if t.layout is not _STRIDED:  # sparse, MKL-DNN, torch.nested's jagged layout
        return f"layout {t.layout}"
    if t.is_nested:  # torch.nested's older layout, which calls itself strided
        return "a nested tensor"
    return None


def plain_and_supported(input, weight, bias) -> bool:
    """A quick yes for the common call that :func:`check_tensors` passes (and a convolution of 1 to 3 spatial axes
    with input channels): plain tensors or parameters, one supported dtype, one device. False says nothing: the
    checks then say why. (``torch.func.vmap`` is not looked at: callers check transforms first.)"""
    return (type(input) in _PLAIN and type(weight) in _PLAIN and 3 <= input.dim() <= 5 and input.shape[1] > 0
            and input.dtype in SUPPORTED_DTYPES and weight.dtype == input.dtype and weight.device == input.device
            and input.layout is _STRIDED and weight.layout is _STRIDED
            and (bias is None or (type(bias) in _PLAIN and bias.dtype == input.dtype and bias.device == input.device
                                  and bias.layout is _STRIDED)))


def check_tensors(op: str, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """Same dtype (a supported float) and same device for input, weight and bias; no ``DTensor``. (Under
    ``torch.func.vmap`` the shapes are a sample's, as torch's checks see them.)"""
    named = {"input": input, "weight": weight, "bias": bias}
    for name, t in named.items():
        if (t is not None or name != "bias") and not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}: expected `{name}` to be a torch.Tensor, got {type(t).__name__}")
        why = None if t is None else not_dense(t)
        if why is not None:
            raise TypeError(f"{op}: expected `{name}` to be a dense (strided) tensor, got {why}"
                            + (": convolve its components one by one (tensor.unbind())" if t.is_nested else ""))
        if is_dtensor(t):
            raise TypeError(f"{op}: expected `{name}` to be a plain tensor, got a DTensor: sharded tensors go through "
                            f"tritonconv.distributed.{op} (tritonconv.nn's modules send them there)")
    if input.dtype not in SUPPORTED_DTYPES:
        names = ", ".join(str(d).removeprefix("torch.") for d in SUPPORTED_DTYPES)
        raise TypeError(f"{op}: expected `input` dtype to be one of {names}, got {input.dtype}")
    for name, t in named.items():
        if t is None:
            continue
        if t.dtype != input.dtype:
            raise TypeError(f"{op}: expected `{name}` dtype to be {input.dtype} (the input's), got {t.dtype}")
        if t.device != input.device:
            raise ValueError(f"{op}: expected `{name}` on {input.device} (the input's device), got {t.device}")


def conv_spec(
    op: str,
    ndim: int,
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: shapes.IntOrSeq,
    padding: shapes.Padding,
    dilation: shapes.IntOrSeq,
    groups: int,
) -> ConvSpec:
    """Check a ``conv{ndim}d`` call and resolve its arguments (shape work memoized per signature)."""
    check_tensors(op, input, weight, bias)
    return shape_spec(op, ndim, input, weight, bias, stride, padding, dilation, groups)


def shape_spec(op: str, ndim: int, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               stride: shapes.IntOrSeq, padding: shapes.Padding, dilation: shapes.IntOrSeq, groups: int) -> ConvSpec:
    """The shape part of :func:`conv_spec` alone (for callers that check dtypes their own way: fp8)."""
    return _memoized(_shape_spec, op, ndim, tuple(input.shape), tuple(weight.shape),
                     None if bias is None else tuple(bias.shape), _freeze(stride), _freeze(padding), _freeze(dilation),
                     groups)


def _memoized(shape_spec, *args) -> ConvSpec:
    """``shape_spec(*args)`` through its ``lru_cache``; without it when traced (no cache inside a graph) or
    for unhashable odd argument types."""
    if tracing():
        return shape_spec.__wrapped__(*args)
    try:
        return shape_spec(*args)
    except TypeError as err:
        if "unhashable" not in str(err):
            raise
        return shape_spec.__wrapped__(*args)


def _groups(op: str, groups) -> int:
    """``groups`` as a plain int (:func:`tritonconv.shapes.positive_int`), or a ValueError naming the op and it."""
    try:
        return shapes.positive_int(groups, "groups")
    except ValueError as err:
        raise ValueError(f"{op}: {err}") from None


def _freeze(value):
    return tuple(_freeze(v) for v in value) if isinstance(value, list | tuple) else value


@functools.lru_cache(maxsize=4096)
def _shape_spec(op, ndim, input_shape, weight_shape, bias_shape, stride, padding, dilation, groups) -> ConvSpec:
    """The shape part of :func:`conv_spec`: a pure function of shapes and arguments."""
    if len(input_shape) not in (ndim + 1, ndim + 2):
        raise ValueError(
            f"{op}: expected `input` of rank {ndim + 2} (N, C, {_axes(ndim)}) or {ndim + 1} (unbatched), "
            f"got shape {input_shape}"
        )
    if len(weight_shape) != ndim + 2:
        raise ValueError(
            f"{op}: expected `weight` of rank {ndim + 2} (C_out, C_in/groups, {_axes(ndim, 'k')}), "
            f"got shape {weight_shape}"
        )
    unbatched = len(input_shape) == ndim + 1
    input_shape = (1, *input_shape) if unbatched else input_shape
    c_in, c_out = input_shape[1], weight_shape[0]
    groups = _groups(op, groups)
    if c_in == 0:  # (torch returns an empty tensor of 0 channels here, not the bias; the kernels reduce nothing)
        raise ValueError(f"{op}: expected `input` with at least one channel, got shape {input_shape}")
    if c_in % groups:
        raise ValueError(f"{op}: expected `groups` to divide the input channels {c_in}, got groups={groups}"
                         f"{_unbatched_note(ndim, input_shape, unbatched)}")
    if c_out == 0 or c_out % groups:
        raise ValueError(f"{op}: expected `weight` output channels ({c_out}) to be a positive multiple of groups={groups}")
    if weight_shape[1] != c_in // groups:
        raise ValueError(
            f"{op}: expected `weight` of shape (C_out, {c_in // groups}, ...) for {c_in} input channels and "
            f"groups={groups}, got {weight_shape}{_unbatched_note(ndim, input_shape, unbatched)}"
        )
    _positive("weight kernel size", weight_shape[2:], op)
    if bias_shape is not None and bias_shape != (c_out,):
        raise ValueError(f"{op}: expected `bias` of shape ({c_out},), got {bias_shape}")

    try:
        stride_t = shapes.as_tuple(stride, ndim, "stride")
        dilation_t = shapes.as_tuple(dilation, ndim, "dilation")
    except ValueError as err:  # shapes' messages name the argument; the op's name goes in front, once
        raise ValueError(f"{op}: {err}") from None
    _positive("stride", stride_t, op)
    _positive("dilation", dilation_t, op)
    try:
        pads = shapes.resolve_padding(padding, weight_shape[2:], stride_t, dilation_t)
    except ValueError as err:
        raise ValueError(f"{op}: {err}") from None
    output_shape = shapes.conv_output_shape(input_shape, weight_shape, stride_t, pads, dilation_t, groups)
    if any(s <= 0 for s in output_shape[2:]):
        raise ValueError(
            f"{op}: computed output size {output_shape[2:]} is not positive for input size {input_shape[2:]}, "
            f"kernel {weight_shape[2:]}, stride {stride_t}, padding {pads}, dilation {dilation_t}: "
            "the dilated kernel is larger than the padded input"
        )
    return ConvSpec(ndim, stride_t, pads, dilation_t, groups, input_shape, weight_shape, output_shape, unbatched)


def conv_transpose_spec(op: str, ndim: int, input, weight, bias, stride, padding, output_padding, groups,
                        dilation) -> ConvSpec:
    """Check a ``conv_transpose{ndim}d`` call; returns the spec of the convolution it transposes: that
    convolution's input is this call's output (``input_shape``), its output this call's input."""
    check_tensors(op, input, weight, bias)
    return _memoized(_transpose_shape_spec, op, ndim, tuple(input.shape), tuple(weight.shape),
                     None if bias is None else tuple(bias.shape), _freeze(stride), _freeze(padding),
                     _freeze(output_padding), groups, _freeze(dilation))


@functools.lru_cache(maxsize=4096)
def _transpose_shape_spec(op, ndim, input_shape, weight_shape, bias_shape, stride, padding, output_padding, groups,
                          dilation) -> ConvSpec:
    if len(input_shape) not in (ndim + 1, ndim + 2):
        raise ValueError(f"{op}: expected `input` of rank {ndim + 2} (N, C_in, {_axes(ndim)}) or {ndim + 1} "
                         f"(unbatched), got shape {input_shape}")
    if len(weight_shape) != ndim + 2:
        raise ValueError(f"{op}: expected `weight` of rank {ndim + 2} (C_in, C_out/groups, {_axes(ndim, 'k')}), "
                         f"got shape {weight_shape}")
    unbatched = len(input_shape) == ndim + 1
    input_shape = (1, *input_shape) if unbatched else input_shape
    c_in = input_shape[1]
    groups = _groups(op, groups)
    if c_in == 0:
        raise ValueError(f"{op}: expected `input` with at least one channel, got shape {input_shape}")
    if c_in % groups:
        raise ValueError(f"{op}: expected `groups` to divide the input channels {c_in}, got groups={groups}"
                         f"{_unbatched_note(ndim, input_shape, unbatched)}")
    if weight_shape[0] != c_in:
        raise ValueError(f"{op}: expected `weight` of shape ({c_in}, C_out/groups, ...) for {c_in} input channels, "
                         f"got {weight_shape}{_unbatched_note(ndim, input_shape, unbatched)}")
    if weight_shape[1] == 0:
        raise ValueError(f"{op}: expected `weight` with at least one output channel per group, got {weight_shape}")
    _positive("weight kernel size", weight_shape[2:], op)
    c_out = weight_shape[1] * groups
    if bias_shape is not None and bias_shape != (c_out,):
        raise ValueError(f"{op}: expected `bias` of shape ({c_out},), got {bias_shape}")
    try:
        stride_t, dilation_t = shapes.as_tuple(stride, ndim, "stride"), shapes.as_tuple(dilation, ndim, "dilation")
        pad_t = shapes.as_tuple(padding, ndim, "padding")
        out_pad_t = shapes.as_tuple(output_padding, ndim, "output_padding")
    except (ValueError, TypeError) as err:
        raise ValueError(f"{op}: {err}") from None
    _positive("stride", stride_t, op)
    _positive("dilation", dilation_t, op)
    if any(p < 0 for p in pad_t) or any(p < 0 for p in out_pad_t):
        raise ValueError(f"{op}: expected `padding` and `output_padding` to be >= 0, got {pad_t} and {out_pad_t}")
    for o, s, d in zip(out_pad_t, stride_t, dilation_t):
        if o >= s and o >= d:
            raise ValueError(f"{op}: expected `output_padding` smaller than the stride or the dilation on each axis, "
                             f"got output_padding={out_pad_t}, stride={stride_t}, dilation={dilation_t}")
    out = tuple(shapes.conv_transpose_output_size(n, k, s, p, o, d) for n, k, s, p, o, d in
                zip(input_shape[2:], weight_shape[2:], stride_t, pad_t, out_pad_t, dilation_t))
    if any(n <= 0 for n in out):
        raise ValueError(f"{op}: computed output size {out} is not positive for input size {input_shape[2:]}, kernel "
                         f"{weight_shape[2:]}, stride {stride_t}, padding {pad_t}, output_padding {out_pad_t}, "
                         f"dilation {dilation_t}")
    return ConvSpec(ndim, stride_t, tuple((p, p) for p in pad_t), dilation_t, groups, (input_shape[0], c_out, *out),
                    weight_shape, input_shape, unbatched)


def _unbatched_note(ndim: int, input_shape: tuple[int, ...], unbatched: bool) -> str:
    """Where an input of one rank less than a batch was read as unbatched (torch's rule), the channel count a
    message quotes is its first size: say so, since a batch missing an axis reads the same way."""
    if not unbatched:
        return ""
    return (f" (`input` of shape {input_shape[1:]} is read as unbatched, (C_in, {_axes(ndim)}); a batch needs rank "
            f"{ndim + 2})")


def _axes(ndim: int, prefix: str = "") -> str:
    names = {1: "L", 2: "HW", 3: "DHW"}[ndim]
    return ", ".join(prefix + a for a in names)
