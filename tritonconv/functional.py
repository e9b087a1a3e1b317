"""``conv1d/conv2d/conv3d``: checked arguments, autograd, and torch.compile support.

Eager calls go through a ``torch.autograd.Function`` (the least host time per call). Under
``torch.compile`` the same kernels are reached through ``torch.library`` custom ops
(``tritonconv::conv``, ``::conv_grad_input``, ``::conv_grad_weight``) with fake
implementations, so graphs trace them without breaks. Both paths share :func:`_backward`.
Each public function first hands a call with ``__torch_function__`` overrides on its tensors (a ``torch.fx``
proxy, a tensor subclass, a function mode) to them, as ``torch.nn.functional``'s do: ``torch.fx.symbolic_trace``
records it as one node.

Backward: ``grad_z = grad_y * act'(z)`` (ReLU from the saved output; GELU/SiLU recompute the
pre-activation ``z`` with one forward launch instead of keeping it), then the transposed
convolution for the input, the per-tap GEMM for the weight and a sum for the bias.
In eager mode every launch of a backward pass is itself an autograd function (the gradients of
a convolution are convolutions), so gradients of gradients flow: double backward for gradient
penalties, Hessian-vector products. Through ``torch.compile`` the backward is first order and
says so when asked for more.

Forward mode (``torch.autograd.forward_ad``, ``torch.func.jvp``): each autograd function's ``jvp``
convolves the tangents (:func:`_tangent`; a convolution is linear in each operand), on the kernels.
``torch.func.vmap``: each autograd function's ``vmap`` runs the batch as one launch (:func:`_vmap_conv`), so
per-sample gradients, ``jacrev``, ``jacfwd`` and ``hessian`` run on the kernels too.
"""

import dataclasses
import functools
from typing import Optional

import torch
import torch.nn.functional as F
from torch.overrides import handle_torch_function, has_torch_function_variadic

from . import _checks, dispatch, shapes
from ._checks import ConvSpec, forward_mode, negative_slope, slope_from_output
from .geometry import CHANNELS_LAST, alloc_weight_grad, grad_channels_inner, memory_format_of, output_memory_format

Tensor = torch.Tensor

try:  # what torch's Function.apply calls outside torch.func transforms (torch 2.11 to 2.13)
    from torch._functorch.utils import unwrap_dead_wrappers as _unwrap_dead_wrappers
except ImportError:  # pragma: no cover - another torch: its own apply
    _unwrap_dead_wrappers = None
_transforms_active = getattr(torch._C, "_are_functorch_transforms_active", None)
_is_legacy_batched = getattr(torch._C._functorch, "is_legacy_batchedtensor", None)


def _older_vmap(*tensors: Tensor) -> bool:
    """Whether an operand is batched by torch's older vmap (``torch.autograd.grad(is_grads_batched=True)``,
    ``torch.autograd.functional.jacobian`` and ``hessian`` with ``vectorize=True``): it has no storage a kernel
    could read, and no batching rule of tritonconv's runs there, but that vmap runs the custom ops (the compiled
    path's) once per slice."""
    return _is_legacy_batched is not None and any(_is_legacy_batched(t) for t in tensors)


class _Function(torch.autograd.Function):
    """An autograd function whose ``apply`` skips torch's per-call binding of the arguments.

    For a function with ``setup_context`` (as ``torch.func`` transforms ask), torch's ``Function.apply`` binds
    every call's arguments to ``forward``'s signature to fill in defaults (``inspect.signature`` and ``bind``:
    more host time than the rest of a cached call). tritonconv passes every argument positionally, so the
    binding changes nothing: outside a transform ``apply`` goes straight to autograd, as torch's does after
    binding; inside one (or on a torch without these hooks) it is torch's own."""

    @classmethod
    def apply(cls, *args):
        if _unwrap_dead_wrappers is None or _transforms_active is None or _transforms_active():
            return super().apply(*args)
        return super(torch.autograd.Function, cls).apply(*_unwrap_dead_wrappers(args))


# --- torch.func.vmap: a batch of convolutions as one -------------------------------------------------

def _batched_spec(spec: ConvSpec, batch: int, grouped: bool) -> ConvSpec:
    """``spec`` for ``batch`` convolutions run as one: their samples side by side (``grouped`` False: the same weight
    for all, the batch ``batch`` times larger), or their channels side by side, ``batch`` times as many groups (each
    convolution its own weight). The same for a transposed convolution's spec and a weight gradient's."""
    if not grouped:
        return dataclasses.replace(spec, input_shape=(spec.input_shape[0] * batch, *spec.input_shape[1:]),
                                   output_shape=(spec.output_shape[0] * batch, *spec.output_shape[1:]))
    times = lambda shape, axis: (*shape[:axis], shape[axis] * batch, *shape[axis + 1:])  # noqa: E731
    return dataclasses.replace(spec, groups=spec.groups * batch, input_shape=times(spec.input_shape, 1),
                               weight_shape=times(spec.weight_shape, 0), output_shape=times(spec.output_shape, 1))


def _side_by_side(t: Optional[Tensor], dim: Optional[int], batch: int, axis: int) -> Optional[Tensor]:
    """``t``'s ``batch`` slices along ``dim`` (or ``t`` itself ``batch`` times, ``dim`` None) laid side by side along
    ``axis``: a grouped convolution's channels (``axis`` 1 of an activation) or weights and biases (``axis`` 0)."""
    if t is None:
        return None
    t = t.movedim(dim, axis) if dim is not None else t.unsqueeze(axis).expand(*t.shape[:axis], batch, *t.shape[axis:])
    return t.flatten(axis, axis + 1)


def _vmap_conv(info, in_dims, input, weight, bias, spec: ConvSpec, launch) -> tuple:
    """The batching rule of a convolution (or transposed convolution) ``launch(input, weight, bias, spec)`` under
    ``torch.func.vmap`` (``in_dims``: the vmapped axis of each operand, or None): one launch for the whole batch.
    Inputs alone batched (``vmap(model)``, per-sample gradients' forward): the vmapped axis joins the batch axis.
    Weights batched (ensembles, ``jacrev`` of a weight): a grouped convolution of the batch's channels side by side,
    each group of convolutions its own weight slice (an unbatched operand repeated)."""
    x_dim, w_dim, b_dim = in_dims[:3]
    batch = info.batch_size
    if w_dim is None and b_dim is None:
        if x_dim is None:
            return launch(input, weight, bias, spec), None
        y = launch(input.movedim(x_dim, 0).flatten(0, 1), weight, bias, _batched_spec(spec, batch, False))
        return y.unflatten(0, (batch, -1)), 0
    y = launch(_side_by_side(input, x_dim, batch, 1), _side_by_side(weight, w_dim, batch, 0),
               _side_by_side(bias, b_dim, batch, 0), _batched_spec(spec, batch, True))
    return y.unflatten(1, (batch, -1)), 1


def activation_grad(grad_y: Tensor, activation: Optional[str], y: Optional[Tensor], z: Optional[Tensor]) -> Tensor:
    """``grad_y * act'(z)``, as torch's derivatives take it: ReLU, ReLU6, the sigmoid, tanh and a leaky ReLU of a slope
    of 0 or more read their slope off the output ``y`` (:func:`~tritonconv._checks.slope_from_output`), the others off
    the pre-activation ``z``."""
    if activation is None:
        return grad_y
    if activation == "relu":
        return grad_y * (y > 0)
    if activation == "relu6":  # (torch's hardtanh: no slope where the input is at or past either bound)
        return grad_y * ((y > 0) & (y < 6))
    slope = negative_slope(activation)
    if slope is not None:  # (torch's: the negative slope at 0)
        return torch.where((y if slope_from_output(activation) else z) > 0, grad_y, grad_y * slope)
    acc = torch.promote_types(grad_y.dtype, torch.float32)
    if activation in ("sigmoid", "tanh"):  # y (1 - y), 1 - y^2
        yf = y.to(acc)
        return (grad_y.to(acc) * (yf * (1 - yf) if activation == "sigmoid" else 1 - yf * yf)).to(grad_y.dtype)
    zf = z.to(acc)
    if activation == "hardsigmoid":  # (torch's: 1/6 strictly inside (-3, 3))
        return torch.where((zf > -3) & (zf < 3), grad_y.to(acc) / 6, 0.0).to(grad_y.dtype)
    if activation == "silu":
        s = torch.sigmoid(zf)
        slope = s * (1 + zf * (1 - s))
    elif activation == "hardswish":
        slope = torch.where(zf <= -3, 0.0, torch.where(zf < 3, zf / 3 + 0.5, 1.0))  # (torch's bounds, both ends)
    elif activation in ("elu", "selu"):  # scale above 0, scale alpha exp(z) at or below (torch's elu_backward)
        scale, alpha = (1.0, 1.0) if activation == "elu" else (_checks.SELU_SCALE, _checks.SELU_ALPHA)
        slope = torch.where(zf > 0, scale, scale * alpha * torch.exp(zf))
    elif activation == "mish":  # t + z sigmoid(z) (1 - t^2), t = tanh(softplus(z))
        t = torch.tanh(F.softplus(zf))
        slope = t + zf * torch.sigmoid(zf) * (1 - t * t)
    elif activation == "gelu_tanh":  # (torch's: t = tanh(u), u = sqrt(2 / pi) (z + 0.044715 z^3))
        t = torch.tanh(0.7978845608028654 * (zf + 0.044715 * zf * zf * zf))
        slope = 0.5 * (1 + t) + 0.5 * zf * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * zf * zf)
    else:  # gelu: Phi(z) + z * phi(z)
        slope = 0.5 * (1 + torch.erf(zf * 0.7071067811865476)) + zf * torch.exp(-0.5 * zf * zf) * 0.3989422804014327
    return (grad_y.to(acc) * slope).to(grad_y.dtype)


def _needs_z(activation: Optional[str]) -> bool:
    """Whether ``activation``'s slope is read off the pre-activation (recomputed by one launch: it is not saved)."""
    return activation is not None and not slope_from_output(activation)


def _saved_output(output: Tensor, activation: Optional[str]) -> Optional[Tensor]:
    """What a forward saves for its activation's slope: the output, where the slope is read off it; else None."""
    return output if slope_from_output(activation) else None


def _bias_grad(grad_z: Tensor, dtype: torch.dtype) -> Tensor:
    """The bias gradient in ``dtype`` (the bias's): ``grad_z`` summed over every axis but the channels. One reduction:
    torch accumulates 16-bit sums in fp32 and rounds once, as a sum into fp32 and a cast after would (bit for bit on
    the CPU, tested; within one rounding of the exact sum elsewhere), without the second launch; fp32 and float64 in
    their own type."""
    return grad_z.sum(dim=(0, *range(2, grad_z.dim())), dtype=dtype)


def _backward(grad_y, input, weight, bias, y, spec: ConvSpec, activation, flip, needs, ops) -> tuple:
    """Gradients for (input, weight, bias); ``ops`` launches the kernels (eager or custom ops)."""
    (grad_y,) = stored(grad_y)  # (a negative view given to backward)
    z = ops.forward(input, weight, bias, spec, flip) if _needs_z(activation) else None
    grad_z = activation_grad(grad_y, activation, y, z)
    grad_input = ops.grad_input(grad_z, weight, spec, flip, memory_format_of(input)) if needs[0] else None
    grad_weight = ops.grad_weight(grad_z, input, spec, flip, grad_channels_inner(weight)) if needs[1] else None
    grad_bias = None
    if bias is not None and needs[2]:
        grad_bias = _bias_grad(grad_z, bias.dtype)
    return grad_input, grad_weight, grad_bias


def _sum(*parts: Optional[Tensor]) -> Optional[Tensor]:
    """The sum of the parts that are not None (zero tangents), or None."""
    total = None
    for part in parts:
        if part is not None:
            total = part if total is None else total + part
    return total


def _tangent(d_input, d_weight, d_bias, input, weight, bias, y, activation, conv) -> Tensor:
    """The tangent of ``y = act(conv(input, weight) + bias)`` along the operands' tangents (None: zero), forward mode:
    the convolution is linear in each operand, so ``dz = conv(d_input, weight) + conv(input, d_weight) + d_bias``,
    and ``dy = act'(z) dz`` (:func:`activation_grad`; GELU and SiLU recompute ``z`` with one launch). ``conv(x, w,
    b)`` launches the convolution without activation."""
    d_input, d_weight, d_bias = stored(d_input, d_weight, d_bias)  # (a negative view made dual)
    dz = _sum(conv(d_input, weight, None) if d_input is not None else None,
              conv(input, d_weight, None) if d_weight is not None else None)
    if d_bias is not None:
        d_bias = d_bias.view(1, -1, *(1,) * (y.dim() - 2))
        dz = d_bias.expand_as(y).clone(memory_format=torch.preserve_format) if dz is None else dz + d_bias
    z = conv(input, weight, bias) if _needs_z(activation) else None
    return activation_grad(dz, activation, y, z)


class _Eager:
    """Kernel launches for the eager backward and the tangents. Where they are differentiated in turn (``create_graph``:
    grad mode on; a forward-mode level or ``torch.func`` transform: :func:`forward_mode`, whose outer levels
    differentiate an inner one's tangents), each is an autograd function; in a plain backward (grad mode off) the
    dispatch is called directly, sparing each launch an ``autograd.Function.apply`` (several microseconds of host
    time). Operands batched by torch's older vmap (:func:`_older_vmap`) go to the custom ops. Module lookups at call
    time, so tests can patch them."""

    @staticmethod
    def forward(input, weight, bias, spec, flip, fmt=None):
        if _older_vmap(input, weight):
            return _Ops.forward(input, weight, bias, spec, flip, fmt)
        if not (torch.is_grad_enabled() or forward_mode()):
            return dispatch.conv_forward(input, weight, bias, spec, None, flip, memory_format=fmt)
        plan = None if fmt is None else dispatch.forward_plan(input, weight, bias, spec, None, flip, memory_format=fmt)
        return _ConvFunction.apply(input, weight, bias, spec, None, flip, plan, fmt)

    @staticmethod
    def grad_input(grad_z, weight, spec, flip, fmt):
        if _older_vmap(grad_z, weight):
            return _Ops.grad_input(grad_z, weight, spec, flip, fmt)
        if not (torch.is_grad_enabled() or forward_mode()):
            return dispatch.conv_transpose(grad_z, weight, None, spec, None, flip, fmt)
        return _ConvTransposeFunction.apply(grad_z, weight, None, spec, None, flip, fmt, None)

    @staticmethod
    def grad_weight(grad_z, input, spec, flip, channels_inner):
        if _older_vmap(grad_z, input):
            return _Ops.grad_weight(grad_z, input, spec, flip, channels_inner)
        if not (torch.is_grad_enabled() or forward_mode()):
            return dispatch.conv_grad_weight(grad_z, input, spec, flip, channels_inner=channels_inner)
        return _WeightGradFunction.apply(grad_z, input, spec, flip, channels_inner)

    @staticmethod
    def transpose(input, weight, bias, spec, flip, fmt):
        if _older_vmap(input, weight):  # (the input gradient's op, which takes ``flip``, and the bias after)
            y = _Ops.grad_input(input, weight, spec, flip, fmt)
            return y if bias is None else y + bias.view(-1, *(1,) * (y.dim() - 2))
        if not (torch.is_grad_enabled() or forward_mode()):
            return dispatch.conv_transpose(input, weight, bias, spec, None, flip, fmt)
        return _ConvTransposeFunction.apply(input, weight, bias, spec, None, flip, fmt, None)


class _ConvFunction(_Function):
    """``act(conv(input, weight) + bias)``. Forward and context apart (``setup_context``), as ``torch.func.grad``
    asks of an autograd function."""

    @staticmethod
    def forward(input, weight, bias, spec, activation, flip, plan, fmt):
        """``plan``: the dispatch plan of a seen call signature (:func:`_conv`), or None: looked up, the output in
        ``fmt`` (None: torch's rule)."""
        if plan is None:
            return dispatch.conv_forward(input, weight, bias, spec, activation, flip, memory_format=fmt)
        return plan(input, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, bias, spec, activation, flip, _, _ = inputs
        ctx.save_for_backward(input, weight, bias, _saved_output(output, activation))
        ctx.spec, ctx.activation, ctx.flip = spec, activation, flip
        if forward_mode():
            ctx.save_for_forward(input, weight, bias, output)

    @staticmethod
    def backward(ctx, grad_y):
        grads = _backward(grad_y, *ctx.saved_tensors, ctx.spec, ctx.activation, ctx.flip, ctx.needs_input_grad, _Eager)
        return (*grads, None, None, None, None, None)

    @staticmethod
    def jvp(ctx, d_input, d_weight, d_bias, *_):
        spec, flip = ctx.spec, ctx.flip
        return _tangent(d_input, d_weight, d_bias, *ctx.saved_tensors, ctx.activation,
                        lambda x, w, b: _Eager.forward(x, w, b, spec, flip))

    @staticmethod
    def vmap(info, in_dims, input, weight, bias, spec, activation, flip, plan, fmt):
        return _vmap_conv(info, in_dims, input, weight, bias, spec,
                          lambda x, w, b, sp: _ConvFunction.apply(x, w, b, sp, activation, flip, None, fmt))


class _WeightGradFunction(_Function):
    """The weight gradient ``dW = wgrad(dy, x)`` as a function of ``dy`` and ``x``, for double backward:
    ``<wgrad(dy, x), G> = <dy, conv(x, G)> = <conv_transpose(dy, G), x>``."""

    @staticmethod
    def forward(grad_output, input, spec, flip, channels_inner):
        return dispatch.conv_grad_weight(grad_output, input, spec, flip, channels_inner=channels_inner)

    @staticmethod
    def setup_context(ctx, inputs, output):
        grad_output, input, spec, flip, channels_inner = inputs
        ctx.save_for_backward(grad_output, input)
        ctx.spec, ctx.flip, ctx.channels_inner = spec, flip, channels_inner
        if forward_mode():
            ctx.save_for_forward(grad_output, input)

    @staticmethod
    def jvp(ctx, d_grad_output, d_input, *_):
        grad_output, input = ctx.saved_tensors
        d_grad_output, d_input = stored(d_grad_output, d_input)
        wgrad = functools.partial(_Eager.grad_weight, spec=ctx.spec, flip=ctx.flip, channels_inner=ctx.channels_inner)
        return _sum(wgrad(d_grad_output, input) if d_grad_output is not None else None,
                    wgrad(grad_output, d_input) if d_input is not None else None)

    @staticmethod
    def vmap(info, in_dims, grad_output, input, spec, flip, channels_inner):
        """Always grouped (:func:`_vmap_conv`): each convolution of the batch has a weight gradient of its own."""
        if in_dims[0] is None and in_dims[1] is None:
            return _WeightGradFunction.apply(grad_output, input, spec, flip, channels_inner), None
        batch = info.batch_size
        grad = _WeightGradFunction.apply(_side_by_side(grad_output, in_dims[0], batch, 1),
                                         _side_by_side(input, in_dims[1], batch, 1), _batched_spec(spec, batch, True),
                                         flip, channels_inner)
        return grad.unflatten(0, (batch, -1)), 0

    @staticmethod
    def backward(ctx, grad):
        grad_output, input = ctx.saved_tensors
        (grad,) = stored(grad)
        needs = ctx.needs_input_grad
        d_grad_output = _Eager.forward(input, grad, None, ctx.spec, ctx.flip) if needs[0] else None
        d_input = _Eager.grad_input(grad_output, grad, ctx.spec, ctx.flip, memory_format_of(input)) if needs[1] else None
        return d_grad_output, d_input, None, None, None


# --- torch.library custom ops: what torch.compile sees ---------------------------------------

def _spec(input_shape, weight_shape, stride, padding, dilation, groups) -> ConvSpec:
    """Rebuild a (checked earlier) spec from a custom op's flat arguments."""
    pads = tuple(zip(padding[::2], padding[1::2]))
    out = shapes.conv_output_shape(tuple(input_shape), tuple(weight_shape), tuple(stride), pads, tuple(dilation), groups)
    ndim = len(weight_shape) - 2
    return ConvSpec(ndim, tuple(stride), pads, tuple(dilation), groups, tuple(input_shape), tuple(weight_shape), out, False)


def _flat(spec: ConvSpec) -> tuple:
    return list(spec.stride), [p for pair in spec.padding for p in pair], list(spec.dilation), spec.groups


@torch.library.custom_op("tritonconv::conv", mutates_args=())
def _conv_op(
    input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: list[int], padding: list[int],
    dilation: list[int], groups: int, activation: Optional[str], flip: bool, channels_last: Optional[bool] = None,
) -> Tensor:
    # channels_last (the output's layout; None: torch's rule for a convolution's) has a default so that graphs
    # compiled (and cached on disk by torch.compile) before it existed still call this op
    spec = _spec(input.shape, weight.shape, stride, padding, dilation, groups)
    return dispatch.conv_forward(input, weight, bias, spec, activation, flip,
                                 memory_format=_output_format(input, channels_last))


def _output_format(input: Tensor, channels_last: Optional[bool]) -> Optional[torch.memory_format]:
    """The memory format a forward op's ``channels_last`` asks for (None: torch's rule, the dispatch's default)."""
    if channels_last is None:
        return None
    return CHANNELS_LAST.get(input.dim(), torch.contiguous_format) if channels_last else torch.contiguous_format


@_conv_op.register_fake
def _(input, weight, bias, stride, padding, dilation, groups, activation, flip, channels_last=None):
    spec = _spec(input.shape, weight.shape, stride, padding, dilation, groups)
    fmt = _output_format(input, channels_last) or output_memory_format(input, weight)
    return input.new_empty(spec.output_shape).contiguous(memory_format=fmt)


@torch.library.custom_op("tritonconv::conv_grad_input", mutates_args=())
def _grad_input_op(
    grad: Tensor, weight: Tensor, input_shape: list[int], stride: list[int], padding: list[int],
    dilation: list[int], groups: int, flip: bool, channels_last: bool,
) -> Tensor:
    spec = _spec(input_shape, weight.shape, stride, padding, dilation, groups)
    fmt = CHANNELS_LAST[len(input_shape)] if channels_last else torch.contiguous_format
    return dispatch.conv_grad_input(grad, weight, spec, flip, fmt)


@_grad_input_op.register_fake
def _(grad, weight, input_shape, stride, padding, dilation, groups, flip, channels_last):
    out = grad.new_empty(input_shape)
    return out.contiguous(memory_format=torch.channels_last if len(input_shape) == 4 else torch.channels_last_3d) \
        if channels_last else out


@torch.library.custom_op("tritonconv::conv_grad_weight", mutates_args=())
def _grad_weight_op(
    grad: Tensor, input: Tensor, weight_shape: list[int], stride: list[int], padding: list[int],
    dilation: list[int], groups: int, flip: bool, channels_inner: bool = False,
) -> Tensor:
    # channels_inner has a default so that graphs compiled (and cached on disk by torch.compile) before it existed
    # still call this op: they get a contiguous gradient, the same values
    spec = _spec(input.shape, weight_shape, stride, padding, dilation, groups)
    return dispatch.conv_grad_weight(grad, input, spec, flip, channels_inner=channels_inner)


@_grad_weight_op.register_fake
def _(grad, input, weight_shape, stride, padding, dilation, groups, flip, channels_inner=False):
    return alloc_weight_grad(tuple(weight_shape), input.device, input.dtype, channels_inner)


class _Ops:
    """Kernel launches for the compiled path: every launch is a custom op."""

    @staticmethod
    def forward(input, weight, bias, spec, flip, fmt=None):
        return _conv_op(input, weight, bias, *_flat(spec), None, flip,
                        None if fmt is None else fmt != torch.contiguous_format)

    @staticmethod
    def grad_input(grad_z, weight, spec, flip, fmt):
        return _grad_input_op(grad_z, weight, list(spec.input_shape), *_flat(spec), flip, fmt != torch.contiguous_format)

    @staticmethod
    def grad_weight(grad_z, input, spec, flip, channels_inner):
        return _grad_weight_op(grad_z, input, list(spec.weight_shape), *_flat(spec), flip, channels_inner)

    @staticmethod
    def transpose(input, weight, bias, spec, flip, fmt):
        return _conv_transpose_op(input, weight, bias, list(spec.input_shape), *_flat(spec), None)


def _first_order_only() -> None:
    if torch.is_grad_enabled():  # backward(create_graph=True): the custom ops below have no gradients of their own
        raise NotImplementedError("tritonconv: gradients of gradients are supported in eager mode only, not through "
                                  "torch.compile's graphs; run the double backward outside torch.compile")


def _setup_context(ctx, inputs, output):
    input, weight, bias, stride, padding, dilation, groups, activation, flip = inputs[:9]  # (and channels_last)
    ctx.save_for_backward(input, weight, bias, _saved_output(output, activation))
    ctx.spec = _spec(input.shape, weight.shape, stride, padding, dilation, groups)
    ctx.activation, ctx.flip = activation, flip


def _op_backward(ctx, grad_y):
    _first_order_only()
    grads = _backward(grad_y, *ctx.saved_tensors, ctx.spec, ctx.activation, ctx.flip, ctx.needs_input_grad[:3], _Ops)
    return (*grads, None, None, None, None, None, None, None)  # (channels_last too)


_conv_op.register_autograd(_op_backward, setup_context=_setup_context)


# --- transposed convolution ----------------------------------------------------------------------
# ``spec`` is the convolution being transposed: its input is the transposed op's output.

def _transpose_backward(grad_y, input, weight, bias, y, spec: ConvSpec, activation, flip, fmt, needs, ops) -> tuple:
    """Gradients of ``y = act(conv_transpose(input, weight) + bias)``: the input's is the convolution of
    ``grad_z``, the weight's the convolution's weight gradient with the roles of its tensors swapped."""
    (grad_y,) = stored(grad_y)  # (a negative view given to backward)
    z = ops.transpose(input, weight, bias, spec, flip, fmt) if _needs_z(activation) else None
    grad_z = activation_grad(grad_y, activation, y, z)
    # the input's gradient in the input's layout (torch's rule for an input gradient), whatever grad_z's
    grad_input = ops.forward(grad_z, weight, None, spec, flip, memory_format_of(input)) if needs[0] else None
    grad_weight = ops.grad_weight(input, grad_z, spec, flip, grad_channels_inner(weight)) if needs[1] else None
    grad_bias = None
    if bias is not None and needs[2]:
        grad_bias = _bias_grad(grad_z, bias.dtype)
    return grad_input, grad_weight, grad_bias


class _ConvTransposeFunction(_Function):
    """``act(conv_transpose(input, weight) + bias)``, written in ``fmt``: the transposed op, and the input
    gradient of a convolution (no bias, no activation)."""

    @staticmethod
    def forward(input, weight, bias, spec, activation, flip, fmt, plan):
        """``plan``: the dispatch plan of a seen call signature (:func:`_conv_transpose`), or None: looked up."""
        if plan is None:
            return dispatch.conv_transpose(input, weight, bias, spec, activation, flip, fmt)
        return plan(input, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, bias, spec, activation, flip, fmt, _ = inputs
        ctx.save_for_backward(input, weight, bias, _saved_output(output, activation))
        ctx.spec, ctx.activation, ctx.flip, ctx.fmt = spec, activation, flip, fmt
        if forward_mode():
            ctx.save_for_forward(input, weight, bias, output)

    @staticmethod
    def jvp(ctx, d_input, d_weight, d_bias, *_):
        spec, flip, fmt = ctx.spec, ctx.flip, ctx.fmt
        return _tangent(d_input, d_weight, d_bias, *ctx.saved_tensors, ctx.activation,
                        lambda x, w, b: _Eager.transpose(x, w, b, spec, flip, fmt))

    @staticmethod
    def vmap(info, in_dims, input, weight, bias, spec, activation, flip, fmt, plan):
        return _vmap_conv(info, in_dims, input, weight, bias, spec,
                          lambda x, w, b, sp: _ConvTransposeFunction.apply(x, w, b, sp, activation, flip, fmt, None))

    @staticmethod
    def backward(ctx, grad_y):
        grads = _transpose_backward(grad_y, *ctx.saved_tensors, ctx.spec, ctx.activation, ctx.flip, ctx.fmt,
                                    ctx.needs_input_grad, _Eager)
        return (*grads, None, None, None, None, None)


def _transpose_spec(input_shape, output_shape, weight_shape, stride, padding, dilation, groups) -> ConvSpec:
    """Rebuild a (checked earlier) transposed spec: ``output_shape`` is the transposed op's output."""
    pads = tuple(zip(padding[::2], padding[1::2]))
    return ConvSpec(len(weight_shape) - 2, tuple(stride), pads, tuple(dilation), groups, tuple(output_shape),
                    tuple(weight_shape), tuple(input_shape), False)


@torch.library.custom_op("tritonconv::conv_transpose", mutates_args=())
def _conv_transpose_op(
    input: Tensor, weight: Tensor, bias: Optional[Tensor], output_shape: list[int], stride: list[int],
    padding: list[int], dilation: list[int], groups: int, activation: Optional[str],
) -> Tensor:
    spec = _transpose_spec(input.shape, output_shape, weight.shape, stride, padding, dilation, groups)
    return dispatch.conv_transpose(input, weight, bias, spec, activation, False, output_memory_format(input, weight))


@_conv_transpose_op.register_fake
def _(input, weight, bias, output_shape, stride, padding, dilation, groups, activation):
    return input.new_empty(output_shape).contiguous(memory_format=output_memory_format(input, weight))


def _transpose_setup_context(ctx, inputs, output):
    input, weight, bias, output_shape, stride, padding, dilation, groups, activation = inputs
    ctx.save_for_backward(input, weight, bias, _saved_output(output, activation))
    ctx.spec = _transpose_spec(input.shape, output_shape, weight.shape, stride, padding, dilation, groups)
    ctx.activation = activation


def _transpose_op_backward(ctx, grad_y):
    _first_order_only()
    grads = _transpose_backward(grad_y, *ctx.saved_tensors, ctx.spec, ctx.activation, False, None,
                                ctx.needs_input_grad[:3], _Ops)
    return (*grads, None, None, None, None, None, None)


_conv_transpose_op.register_autograd(_transpose_op_backward, setup_context=_transpose_setup_context)


def _conv_transpose(ndim, input, weight, bias, stride, padding, output_padding, groups, dilation, activation):
    """Checked, then launched; a seen signature skips the checks (as :func:`_conv`)."""
    input, weight, bias = stored(*autocast(input, weight, bias))
    key, hit = _lookup(("conv_transpose", ndim), (input, weight, bias),
                       (stride, padding, output_padding, groups, dilation, activation))
    if hit is not None:
        _, spec, plan = hit
    else:
        op = f"conv_transpose{ndim}d"
        spec = _checks.conv_transpose_spec(op, ndim, input, weight, bias, stride, padding, output_padding, groups,
                                           dilation)
        _checks.check_activation(activation, op)
        plan = _remember(key, spec, None)
    if spec.unbatched:
        input = input.unsqueeze(0)
    traced, tangents = _checks.is_traced(input, weight, bias), forward_mode()
    if tangents:
        _checks.check_forward_mode(f"conv_transpose{ndim}d", traced)
    if traced:
        # (under torch.jit.trace a shape's sizes are tensors: the traced graph keeps this output size; symbolic sizes
        # of torch.compile and torch.export stay symbolic)
        size = [int(n) if isinstance(n, torch.Tensor) else n for n in spec.input_shape]
        y = _conv_transpose_op(input, weight, bias, size, *_flat(spec), activation)
    else:
        fmt, grad = output_memory_format(input, weight), _needs_grad(input, weight, bias, tangents)
        if plan is None and (key is not None or not grad):  # (no plan for a torch.func transform's wrappers)
            plan = _remember(key, spec, dispatch.transpose_plan(input, weight, bias, spec, activation, False, fmt))
        if grad:
            y = _ConvTransposeFunction.apply(input, weight, bias, spec, activation, False, fmt, plan)
        else:
            y = plan(input, weight, bias)
    return y.squeeze(0) if spec.unbatched else y


def _transposed(public, ndim, input, weight, bias, stride, padding, output_padding, groups, dilation, activation):
    """``conv_transpose{ndim}d`` (``public``): a call with ``__torch_function__`` overrides goes to them (as
    :func:`_convolution`'s); else to :func:`_conv_transpose`."""
    if has_torch_function_variadic(input, weight, bias):
        return handle_torch_function(public, (input, weight, bias), input, weight, bias, stride, padding,
                                     output_padding, groups, dilation, activation=activation)
    return _conv_transpose(ndim, input, weight, bias, stride, padding, output_padding, groups, dilation, activation)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     activation=None):
    return _transposed(conv_transpose1d, 1, input, weight, bias, stride, padding, output_padding, groups, dilation,
                       activation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     activation=None):
    return _transposed(conv_transpose2d, 2, input, weight, bias, stride, padding, output_padding, groups, dilation,
                       activation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     activation=None):
    return _transposed(conv_transpose3d, 3, input, weight, bias, stride, padding, output_padding, groups, dilation,
                       activation)


# --- public functions -------------------------------------------------------------------------

def _needs_grad(input: Tensor, weight: Tensor, bias: Optional[Tensor], tangents: bool) -> bool:
    """Whether a call goes through its autograd function: a gradient is wanted (grad mode on, an operand requiring
    one), or ``tangents`` may flow (:func:`forward_mode`, as the caller read it: the function's ``jvp``)."""
    return (torch.is_grad_enabled() and (input.requires_grad or weight.requires_grad
                                         or (bias is not None and bias.requires_grad))) or tangents


_calls: dict[tuple, tuple] = {}  # call signature -> (dispatch generation, checked spec(s), dispatch plan or None)
_any_autocast = getattr(torch._C, "_is_any_autocast_enabled", lambda: True)


def autocast(*tensors):
    """``tensors`` as torch's autocast casts a convolution's operands: inside an autocast region for the first one's
    device, the floating-point ones but float64 in the region's dtype (where torch runs ``F.conv*``: ``tritonconv.nn``'s
    layers behave as ``torch.nn``'s under mixed precision, gradients reaching the fp32 parameters); else as they are."""
    if not _any_autocast() or not isinstance(tensors[0], Tensor):
        return tensors
    kind = tensors[0].device.type
    if not torch.amp.is_autocast_available(kind) or not torch.is_autocast_enabled(kind):
        return tensors
    dtype = torch.get_autocast_dtype(kind)
    return tuple(t.to(dtype) if isinstance(t, Tensor) and t.is_floating_point() and t.dtype not in (dtype, torch.float64)
                 else t for t in tensors)


def stored(*tensors):
    """``tensors`` with the values their storage holds, as a kernel reads them: a negative view (a real tensor such as
    ``z.conj().imag``, whose storage holds the opposite values; torch's kernels resolve it) resolved into a copy, a
    ZeroTensor (torch's efficient zeros, which its forward-mode formulas make, with no storage) materialised; else
    the tensors themselves (two bits read of each; nothing while ``torch.compile`` traces, which cannot ask)."""
    if torch.compiler.is_compiling():
        return tensors
    try:
        for t in tensors:
            if t is not None and (t.is_neg() or t._is_zerotensor()):
                break
        else:
            return tensors
    except AttributeError:  # not a tensor: the checks say so
        return tensors
    return tuple(t.resolve_neg() if isinstance(t, Tensor) and t.is_neg() else
                 t.clone() if isinstance(t, Tensor) and t._is_zerotensor() else t for t in tensors)


def _lookup(op: tuple, tensors: tuple, args: tuple) -> tuple[tuple | None, tuple | None]:
    """A call's signature (its tensors' types, shapes, strides, dtypes and devices, every other argument) and what a call
    with that signature left (:data:`_calls`, this dispatch generation's), or None. No signature when traced, or
    for arguments the checks will refuse (unhashable, not tensors), or under a ``torch.func`` transform (its
    wrappers' shapes are a sample's: checked every call)."""
    if _checks.tracing() or _checks.under_functorch():  # traced calls take the custom ops
        return None, None
    if list in map(type, args):  # stride=[2, 2] as (2, 2), as the checks take it (routed calls pass lists)
        args = tuple(tuple(a) if isinstance(a, list) else a for a in args)
    try:
        key = (*op, *map(dispatch.tensor_key, tensors), *args, torch._C._get_float32_matmul_precision())
        hit = _calls.get(key)
    except (TypeError, AttributeError, RuntimeError):  # (not tensors, or tensors with no strides: the checks say so)
        return None, None
    return key, (hit if hit is not None and hit[0] == dispatch.generation else None)


def _remember(key: tuple | None, spec, plan):
    """Keep a checked call's spec (a (2+1)D call's pair of them; and its plan, once built) under its signature;
    returns ``plan``."""
    if key is not None:
        if len(_calls) >= dispatch.MAX_PLANS:
            _calls.clear()
        _calls[key] = (dispatch.generation, spec, plan)
    return plan


def _conv(ndim, input, weight, bias, stride, padding, dilation, groups, activation, flip, memory_format=None):
    """Checked, then launched. A call whose signature was seen before (tensor types, shapes, strides, dtypes, devices
    and every argument) is valid for the same reasons as then: it skips the checks and goes straight to the dispatch
    plan that call built (with gradients, through the autograd function)."""
    input, weight, bias = stored(*autocast(input, weight, bias))
    key, hit = _lookup(("conv", ndim), (input, weight, bias),
                       (stride, padding, dilation, groups, activation, flip, memory_format))
    if hit is not None:
        _, spec, plan = hit
    else:
        op = f"conv{ndim}d"
        spec = _checks.conv_spec(op, ndim, input, weight, bias, stride, padding, dilation, groups)
        _checks.check_activation(activation, op)
        _checks.check_memory_format(memory_format, ndim, op)
        plan = _remember(key, spec, None)
    if spec.unbatched:
        input = input.unsqueeze(0)
    traced, tangents = _checks.is_traced(input, weight, bias), forward_mode()
    if tangents:
        _checks.check_forward_mode(f"conv{ndim}d", traced)
    fmt = memory_format  # the output's layout, where no plan holds it yet (the input's: a microsecond to read)
    if fmt is torch.preserve_format and (plan is None or traced):
        fmt = memory_format_of(input)
    if traced:
        y = _conv_op(input, weight, bias, *_flat(spec), activation, flip,
                     None if fmt is None else fmt != torch.contiguous_format)
    else:
        grad = _needs_grad(input, weight, bias, tangents)
        if plan is None and (key is not None or not grad):  # (no plan for a torch.func transform's wrappers)
            plan = _remember(key, spec, dispatch.forward_plan(input, weight, bias, spec, activation, flip,
                                                              memory_format=fmt))
        if grad:
            y = _ConvFunction.apply(input, weight, bias, spec, activation, flip, plan, fmt)
        else:
            y = plan(input, weight, bias)
    return y.squeeze(0) if spec.unbatched else y


def _convolution(public, ndim, input, weight, bias, stride, padding, dilation, groups, activation, flip, memory_format):
    """``conv{ndim}d`` (``public``): a call with ``__torch_function__`` overrides on its tensors (an fx proxy, a tensor
    subclass, a function mode) goes to them, as ``torch.nn.functional``'s do; else to :func:`_conv`. (Each rank's
    function is its own, ``ndim`` a literal in it: ``torch.compile`` sees a constant, where a closure shared by the
    three would be made symbolic once it had seen two.)"""
    if has_torch_function_variadic(input, weight, bias):
        return handle_torch_function(public, (input, weight, bias), input, weight, bias, stride, padding, dilation,
                                     groups, activation=activation, flip=flip, memory_format=memory_format)
    return _conv(ndim, input, weight, bias, stride, padding, dilation, groups, activation, flip, memory_format)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, activation=None, flip=False,
           memory_format=None):
    return _convolution(conv1d, 1, input, weight, bias, stride, padding, dilation, groups, activation, flip,
                        memory_format)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, activation=None, flip=False,
           memory_format=None):
    return _convolution(conv2d, 2, input, weight, bias, stride, padding, dilation, groups, activation, flip,
                        memory_format)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, activation=None, flip=False,
           memory_format=None):
    return _convolution(conv3d, 3, input, weight, bias, stride, padding, dilation, groups, activation, flip,
                        memory_format)


_AXES = {1: ("L", "K"), 2: ("H, W", "kH, kW"), 3: ("D, H, W", "kD, kH, kW")}

_CONV_DOC = """{n}-D convolution, as ``torch.nn.functional.conv{n}d`` (same arguments, same result); differentiable
(input, weight, bias; twice: double backward; forward mode), batched by ``torch.func.vmap`` (one launch), traced by
``torch.compile(fullgraph=True)``.

:param input: ``(N, C_in, {x})``, or ``(C_in, {x})`` unbatched; fp32, fp16, bf16 or fp64; CUDA (compiled
    kernels) or CPU (the same kernels under Triton's interpreter); any strides (channels-last is read in
    place; see the guide's "Host path").
:param weight: ``(C_out, C_in / groups, {k})``, same dtype and device as ``input``.
:param bias: ``(C_out,)`` or None.
:param stride: int or tuple of {n}, >= 1.
:param padding: int or tuple of {n} (zeros, both sides), ``'valid'`` (0) or ``'same'`` (stride 1; an
    even kernel pads one more at the end, as torch does).
:param dilation: int or tuple of {n}, >= 1.
:param groups: divides ``C_in`` and ``C_out``; ``groups == C_in`` (depthwise, any channel multiplier) runs
    the depthwise kernels.
:param activation: None or one of :data:`tritonconv.ACTIVATIONS`
    (``'relu'``, ``'gelu'``, ``'leaky_relu(0.2)'``, ...), fused after the bias.
:param flip: reverse the kernel on every spatial axis: the true convolution
    ``y[n] = sum_k x[k] w[n - k]`` instead of the cross-correlation CNNs use.
:param memory_format: the output's layout: None, torch's rule (channels-last when ``input`` or ``weight`` is);
    ``torch.preserve_format``, the input's; or ``torch.contiguous_format``, or ``torch.channels_last``
    (``channels_last_3d``) for a 2-D (3-D) convolution.
:returns: ``(N, C_out, {y})`` in the input's dtype (fp32 accumulation; fp64 for fp64), laid out as
    ``memory_format`` says; unbatched in, unbatched out. Each output size is
    ``floor((size + pad_before + pad_after - dilation * (k - 1) - 1) / stride) + 1``
    (:func:`tritonconv.shapes.conv_output_size`).
:raises TypeError: ``input``, ``weight`` or ``bias`` not a tensor; an unsupported dtype, or dtypes that differ.
:raises ValueError: a wrong rank, channels or groups that do not match the weight, a non-positive stride or
    dilation, an unknown padding string or activation, an output size <= 0, tensors on different devices,
    or a device with no Triton backend. Each message names the argument and what was expected.
"""

_TRANSPOSE_DOC = """{n}-D transposed convolution, as ``torch.nn.functional.conv_transpose{n}d`` (same argument order, same
result); differentiable, batched by ``torch.func.vmap``, traced by ``torch.compile(fullgraph=True)``. The gradient
of :func:`conv{n}d` with respect to its input, run as a convolution: by stride phase, only the taps that reach each
output.

:param input: ``(N, C_in, {x})``, or ``(C_in, {x})`` unbatched; dtypes and devices as :func:`conv{n}d`.
:param weight: ``(C_in, C_out / groups, {k})`` (torch's layout for transposed convolutions).
:param bias: ``(C_out,)`` or None.
:param stride: int or tuple of {n}, >= 1.
:param padding: int or tuple of {n}, >= 0: ``dilation * (k - 1) - padding`` zeros are implied on each side.
:param output_padding: int or tuple of {n}, added at the end of each axis; smaller than the stride or the
    dilation on that axis.
:param groups: divides ``C_in`` and ``C_out``.
:param dilation: int or tuple of {n}, >= 1.
:param activation: None or one of :data:`tritonconv.ACTIVATIONS`
    (``'relu'``, ``'gelu'``, ``'leaky_relu(0.2)'``, ...), fused after the bias.
:returns: ``(N, C_out, {y})`` in the input's dtype, each size
    ``(size - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``
    (:func:`tritonconv.shapes.conv_transpose_output_size`); channels-last when ``input`` or ``weight`` is.
:raises TypeError: as :func:`conv{n}d`.
:raises ValueError: as :func:`conv{n}d`, and a negative padding, an ``output_padding`` too large for its
    stride and dilation, or a weight whose first axis is not ``C_in``.
"""

for _n, _fn in ((1, conv1d), (2, conv2d), (3, conv3d)):
    _x, _k = _AXES[_n]
    _fn.__doc__ = _CONV_DOC.format(n=_n, x=_x, k=_k, y=_x.replace("L", "L_out").replace("D", "D_out")
                                   .replace("H", "H_out").replace("W", "W_out"))
for _n, _fn in ((1, conv_transpose1d), (2, conv_transpose2d), (3, conv_transpose3d)):
    _x, _k = _AXES[_n]
    _fn.__doc__ = _TRANSPOSE_DOC.format(n=_n, x=_x, k=_k, y=_x.replace("L", "L_out").replace("D", "D_out")
                                        .replace("H", "H_out").replace("W", "W_out"))


__all__ = ["activation_grad", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]
