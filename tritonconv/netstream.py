"""Streaming a whole network along depth: ``stream(module, slices)`` yields ``module(volume)`` slab by slab.

The module is traced (``torch.fx``) into a graph of nodes, each of which maps output depth slices
to the input depth slices they read, and knows the depth it outputs for a given input depth:

    convolution       outputs [a, b) read [a*s - p, (b-1)*s - p + (k-1)*d + 1), zeros outside the volume
    transposed conv   outputs [a, b) read the inputs i with i*s - p + t*d in [a, b) for some tap t
    pooling           as a convolution without padding
    upsampling        nearest: [a // f, (b-1) // f + 1); trilinear: the two neighbours of each source point
    pointwise         outputs [a, b) read [a, b) of every input: activations, batch norm and dropout in
                      eval mode, residual adds, concatenations along channels, products with parameters or
                      buffers that are the same at every depth (size 1 there: per-channel scales)
    (2+1)D block      its temporal convolution's slices (``tritonconv.nn.Conv2Plus1d``; the depth padding
                      is applied to the block's mid tensor, as the whole-volume call does)

Convolutions stream as modules (torch's or tritonconv's) or as functions (``F.conv3d``, ``tritonconv.conv3d`` and
the transposed ones) whose weight and bias are module state or computed from it alone (a weight standardised in the
forward); such state is computed once, before the first slice. Pooling streams as modules or as functions
(``F.max_pool3d``, ``F.avg_pool3d``).

The engine evaluates the graph lazily from the output: to produce the next output slab it asks each
node for the depth slices it lacks, which asks its inputs in turn, down to the slices generator. Each
node keeps its computed slabs until no consumer will read them again (a skip connection keeps exactly
the slabs its concatenation still needs), and computes every output slice once. Depths are discovered
as the stream ends, so a generator of unknown length works; the result equals ``module(volume)``.

Every decision depends on shapes only, so :func:`plan` runs the same engine on shapes alone (no data,
no kernel) and reports the peak bytes a run will hold; :func:`stream` checks a run against it.
Only what streams exactly is accepted: a node that reads the whole depth (instance or group norm,
attention, global pooling, anything in training mode, state that varies along depth, a layer that changes
in place a tensor another layer reads) raises ``ValueError`` naming the node before a slice is read.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import math
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F

from . import _checks, functional, memory, shapes
from . import nn as tnn
from .conv2plus1d import conv2plus1d

PLAN_DEPTH = 256
"""Depth :func:`stream` plans for when it picks the chunk (the stream's own depth is unknown until it ends): a
peak reached by then holds for any deeper volume, since a node holds a bounded window however deep the input."""

_POINTWISE_MODULES = (
    torch.nn.ReLU, torch.nn.ReLU6, torch.nn.LeakyReLU, torch.nn.PReLU, torch.nn.ELU, torch.nn.SELU, torch.nn.CELU,
    torch.nn.GELU, torch.nn.SiLU, torch.nn.Mish, torch.nn.Sigmoid, torch.nn.Tanh, torch.nn.Hardswish,
    torch.nn.Hardsigmoid, torch.nn.Hardtanh, torch.nn.Softplus, torch.nn.Identity, torch.nn.Dropout, torch.nn.Dropout3d,
    torch.nn.AlphaDropout, torch.nn.BatchNorm3d,
)
_POINTWISE_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub, torch.mul, torch.relu,
    operator.neg, torch.sigmoid, torch.tanh, torch.clamp, torch.clip, torch.neg, F.relu, F.relu6, F.gelu, F.silu,
    F.leaky_relu, F.elu, F.hardtanh, F.hardswish, F.hardsigmoid, F.mish, F.softplus,
}
_POINTWISE_METHODS = {"relu", "sigmoid", "tanh", "add", "sub", "mul", "div", "neg", "clamp", "clip", "contiguous"}
_WHOLE_DEPTH = (torch.nn.InstanceNorm3d, torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.MultiheadAttention,
                torch.nn.AdaptiveAvgPool3d, torch.nn.AdaptiveMaxPool3d)


@dataclass
class _Rule:
    """How one node maps depth: ``depth(D_in) -> D_out``, ``need(a, b) -> (lo, hi)`` (the input slices
    outputs ``[a, b)`` read), whether slices outside the input are zeros (``fill``) or simply absent,
    ``shape(*inputs)`` the output's ``(C, H, W)``, ``run(windows, lo, a, b)`` the outputs ``[a, b)`` from
    input windows starting at slice ``lo`` (None: the node's own call, on the windows), and ``raw(n)`` the
    depth of what ``run`` computes from an ``n``-slice window before it keeps ``[a, b)`` (for the count of
    bytes held; None: exactly ``b - a``)."""

    depth: Callable[[int], int]
    need: Callable[[int, int], tuple[int, int]]
    fill: bool
    shape: Callable[..., tuple[int, int, int]]
    run: Callable[[list[torch.Tensor], int, int, int], torch.Tensor] | None
    raw: Callable[[int], int] | None = None


def _pointwise(fn: Callable[..., torch.Tensor] | None, shape=lambda *s: s[0]) -> _Rule:
    return _Rule(lambda d: d, lambda a, b: (a, b), False, shape, None if fn is None else lambda w, lo, a, b: fn(*w))


def _conv_rule(fn, weight, bias, stride, padding, dilation, groups, **extra) -> _Rule:
    """A convolution ``fn(x, weight, bias, stride, padding, dilation, groups, **extra)`` (torch's or tritonconv's,
    a module's or a functional call's): depth padding becomes zero slices in its windows."""
    stride, dilation = shapes.as_tuple(stride, 3, "stride"), shapes.as_tuple(dilation, 3, "dilation")
    pads = shapes.resolve_padding(padding, weight.shape[2:], stride, dilation)
    (pd, pa), (kd, sd, dd) = pads[0], (weight.shape[2], stride[0], dilation[0])
    symmetric = all(b == e for b, e in pads[1:])

    def run(windows, lo, a, b):
        x = windows[0]
        if symmetric:
            return fn(x, weight, bias, stride, (0, pads[1][0], pads[2][0]), dilation, groups, **extra)
        x = F.pad(x, (*pads[2], *pads[1], 0, 0))
        return fn(x, weight, bias, stride, 0, dilation, groups, **extra)

    def shape(s):
        c, h, w = s
        out = shapes.conv_output_shape((1, c, 1, h, w), weight.shape, (1, *stride[1:]), ((0, 0), *pads[1:]),
                                       (1, *dilation[1:]))
        return out[1], out[3], out[4]

    return _Rule(lambda d: shapes.conv_output_size(d, kd, sd, (pd, pa), dd),
                 lambda a, b: (a * sd - pd, (b - 1) * sd - pd + (kd - 1) * dd + 1), True, shape, run)


def _transpose_rule(fn, weight, bias, stride, padding, output_padding, groups, dilation, name: str, kind: str,
                    **extra) -> _Rule:
    """A transposed convolution ``fn(x, weight, bias, stride, padding, output_padding, groups, dilation, **extra)``:
    each window's outputs cut to the slices asked for."""
    (kd, kh, kw), (sd, sh, sw) = weight.shape[2:], shapes.as_tuple(stride, 3, "stride")
    (pd, ph, pw), (dd, dh, dw) = shapes.as_tuple(padding, 3, "padding"), shapes.as_tuple(dilation, 3, "dilation")
    od, oh, ow = shapes.as_tuple(output_padding, 3, "output_padding")
    if od > pd:
        raise ValueError(f"stream: node {name!r} ({kind}) has output_padding {od} > padding {pd} along "
                         "depth: its last output slices would read no input; not streamed")

    def run(windows, lo, a, b):
        y = fn(windows[0], weight, bias, (sd, sh, sw), (0, ph, pw), (0, oh, ow), groups, (dd, dh, dw), **extra)
        first = lo * sd - pd  # the global index of y's first depth slice
        return y[:, :, a - first:b - first]

    def shape(s):
        c, h, w = s
        return (weight.shape[1] * groups, shapes.conv_transpose_output_size(h, kh, sh, ph, oh, dh),
                shapes.conv_transpose_output_size(w, kw, sw, pw, ow, dw))

    return _Rule(lambda d: shapes.conv_transpose_output_size(d, kd, sd, pd, od, dd),
                 lambda a, b: (-((pd + (kd - 1) * dd - a) // sd), (b - 1 + pd) // sd + 1), False, shape, run,
                 lambda n: (n - 1) * sd + (kd - 1) * dd + 1)


def _pool_rule(pool, kernel_size, stride, padding, dilation, ceil_mode, return_indices, name: str, kind: str) -> _Rule:
    """Max or average pooling, ``pool(x)`` (a module, or a functional call with its arguments bound)."""
    k, s, p = (shapes.as_tuple(v, 3, n) for v, n in ((kernel_size, "kernel_size"), (stride or kernel_size, "stride"),
                                                      (padding, "padding")))
    dil = shapes.as_tuple(dilation, 3, "dilation")
    if p[0] or ceil_mode:
        raise ValueError(f"stream: node {name!r} ({kind}) pads or rounds up along depth "
                         f"(padding {p[0]}, ceil_mode {ceil_mode}); streamed pooling needs neither")
    if return_indices:
        raise ValueError(f"stream: node {name!r} ({kind}) returns indices too; a stream yields one tensor a node")

    def shape(sizes):
        c, h, w = sizes
        return (c, *(shapes.conv_output_size(n, k[i], s[i], p[i], dil[i]) for i, n in ((1, h), (2, w))))

    return _Rule(lambda d: shapes.conv_output_size(d, k[0], s[0], 0, dil[0]),
                 lambda a, b: (a * s[0], (b - 1) * s[0] + (k[0] - 1) * dil[0] + 1), False, shape,
                 lambda w, lo, a, b: pool(w[0]))


_POOL_FUNCTIONS = {  # pooling called as a function: its positional parameters' names
    F.max_pool3d: ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    F.avg_pool3d: ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
}


def _pool_function_rule(node: torch.fx.Node) -> _Rule:
    """``F.max_pool3d(x, ...)`` or ``F.avg_pool3d(x, ...)`` on a streamed ``x``: a pooling layer's rule, the call's
    other arguments bound."""
    call = dict(zip(_POOL_FUNCTIONS[node.target], node.args)) | dict(node.kwargs)
    kind = f"torch.nn.functional.{node.target.__name__}"
    if any(isinstance(v, torch.fx.Node) for k, v in call.items() if k != "input"):
        raise ValueError(f"stream: node {node.name!r} ({kind}) takes a tensor as an argument other than its input; "
                         "not streamed")
    rest = {k: v for k, v in call.items() if k != "input"}
    return _pool_rule(lambda x: node.target(x, **rest), call["kernel_size"], call.get("stride"), call.get("padding", 0),
                      call.get("dilation", 1), call.get("ceil_mode", False), call.get("return_indices", False),
                      node.name, kind)


def _upsample_rule(mode: str, factor, align_corners, name: str) -> _Rule:
    f = tuple(factor) if isinstance(factor, (tuple, list)) else (factor,) * 3  # nn.Upsample keeps floats
    if len(f) != 3 or any(float(v) != int(v) for v in f) or mode not in ("nearest", "trilinear") or align_corners:
        raise ValueError(f"stream: node {name!r} upsamples by {factor} ({mode}, align_corners={align_corners}); "
                         "streamed upsampling needs integer factors, nearest or trilinear without align_corners")
    f = tuple(int(v) for v in f)
    fd = f[0]

    def need(a, b):
        if mode == "nearest":
            return a // fd, (b - 1) // fd + 1
        source = lambda j: math.floor((j + 0.5) / fd - 0.5)  # noqa: E731  the lower neighbour of output j
        return max(0, source(a)), source(b - 1) + 2

    def run(windows, lo, a, b):
        y = F.interpolate(windows[0], scale_factor=f, mode=mode)
        return y[:, :, a - lo * fd:b - lo * fd]

    return _Rule(lambda d: d * fd, need, False, lambda s: (s[0], s[1] * f[1], s[2] * f[2]), run, lambda n: n * fd)


def _conv2plus1d_rule(m: tnn.Conv2Plus1d) -> _Rule:
    """A (2+1)D block: its spatial conv reads one depth slice, its temporal conv is a convolution along depth."""
    (pd, pa), kt, st, dt = m.padding[0], m.kernel_size[0], m.stride[0], m.dilation[0]

    def need(a, b):
        return a * st - pd, (b - 1) * st - pd + (kt - 1) * dt + 1

    def run(windows, lo, a, b):  # the depth padding is the mid tensor's (after the spatial conv), not zeros in
        s_, t_ = m.spatial, m.temporal  # the input: the window is clipped and the block pads what is missing
        first, top = need(a, b)
        pads = ((lo - first, top - lo - windows[0].shape[2]), *m.padding[1:])
        return conv2plus1d(windows[0], s_.weight, t_.weight, s_.bias, t_.bias, (st, *m.stride[1:]), pads,
                           (dt, *m.dilation[1:]), mid_activation=m.mid_activation)

    def shape(sizes):
        c, h, w = sizes
        out = shapes.conv_output_shape((1, c, 1, h, w), m.spatial.weight.shape, (1, *m.stride[1:]),
                                       ((0, 0), *m.padding[1:]), (1, *m.dilation[1:]))
        return m.out_channels, out[3], out[4]

    return _Rule(lambda d: shapes.conv_output_size(d, kt, st, (pd, pa), dt), need, False, shape, run)


def _fused(m: torch.nn.Module) -> dict:
    """A tritonconv convolution module's fused activation, as the keyword its function takes (none: no keyword)."""
    return {"activation": m.activation} if isinstance(m, tnn.CONVOLUTIONS) and m.activation is not None else {}


def _module_rule(m: torch.nn.Module, name: str) -> _Rule:
    kind = type(m).__name__
    if isinstance(m, tnn.Conv2Plus1d):
        return _conv2plus1d_rule(m)
    if isinstance(m, _WHOLE_DEPTH):
        raise ValueError(f"stream: node {name!r} ({kind}) reads the whole volume at once (it normalises, pools or "
                         "attends over every depth slice); a network with it cannot stream slice by slice")
    if m.training and isinstance(m, (torch.nn.Dropout, torch.nn.Dropout3d, torch.nn.AlphaDropout,
                                     torch.nn.BatchNorm3d)):
        raise ValueError(f"stream: node {name!r} ({kind}) is in training mode; call model.eval() first (batch norm "
                         "then uses its running statistics, dropout passes through: both act slice by slice)")
    if isinstance(m, torch.nn.BatchNorm3d) and not m.track_running_stats:
        raise ValueError(f"stream: node {name!r} (BatchNorm3d without running statistics) normalises over the "
                         "whole volume; not streamed")
    if isinstance(m, torch.nn.Conv3d):
        if m.padding_mode != "zeros":
            raise ValueError(f"stream: node {name!r} ({kind}) pads with {m.padding_mode!r}; streamed convolutions "
                             "pad with zeros only")
        return _conv_rule(functional.conv3d if isinstance(m, tnn.Conv3d) else F.conv3d, m.weight, m.bias, m.stride,
                          m.padding, m.dilation, m.groups, **_fused(m))
    if isinstance(m, torch.nn.ConvTranspose3d):  # (zero padding only: torch's constructor refuses the others)
        return _transpose_rule(functional.conv_transpose3d if isinstance(m, tnn.ConvTranspose3d) else
                               F.conv_transpose3d, m.weight, m.bias, m.stride, m.padding, m.output_padding, m.groups,
                               m.dilation, name, kind, **_fused(m))
    if isinstance(m, (torch.nn.MaxPool3d, torch.nn.AvgPool3d)):
        return _pool_rule(m, m.kernel_size, m.stride, m.padding, getattr(m, "dilation", 1), m.ceil_mode,
                          getattr(m, "return_indices", False), name, kind)
    if isinstance(m, torch.nn.Upsample):
        if m.scale_factor is None:
            raise ValueError(f"stream: node {name!r} (Upsample) gives an output size, not a scale factor; the "
                             "streamed depth is unknown until the stream ends")
        return _upsample_rule(m.mode, m.scale_factor, m.align_corners, name)
    if isinstance(m, torch.nn.Softmax) and m.dim in (1, -4):
        return _pointwise(m)
    if isinstance(m, _POINTWISE_MODULES):
        return _pointwise(m)
    raise ValueError(f"stream: node {name!r} ({kind}) is not a layer that streams along depth (supported: 3-D "
                     "convolutions and transposed convolutions, pooling, upsampling, batch norm and dropout in "
                     "eval mode, activations, adds and channel concatenations)")


def _broadcast(shapes_: list) -> tuple[int, int, int]:
    """(C, H, W) of a pointwise result: its operands' (C, D, H, W) broadcast (D: 1 for streamed operands)."""
    c, _, h, w = ((1,) * 4 + tuple(torch.broadcast_shapes(*shapes_)))[-4:]
    return c, h, w


def _inplace_argument(node: torch.fx.Node) -> bool:
    """Whether a function call passes ``inplace=True`` (``F.relu(h, inplace=True)``, or by position)."""
    try:
        return inspect.signature(node.target).bind(*node.args, **node.kwargs).arguments.get("inplace") is True
    except (TypeError, ValueError):  # no signature (a builtin, a method's name)
        return False


_CONV_FUNCTIONS = {  # the streamed convolutions called as functions: their positional parameters' names
    F.conv3d: ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    functional.conv3d: ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    F.conv_transpose3d: ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"),
    functional.conv_transpose3d: ("input", "weight", "bias", "stride", "padding", "output_padding", "groups",
                                  "dilation"),
}


def _conv_function_rule(node: torch.fx.Node, constants: dict[str, torch.Tensor]) -> _Rule:
    """``F.conv3d(x, weight, ...)`` or ``tritonconv.conv3d`` (and the transposed ones) on a streamed ``x``, with
    module state, or a function of it alone (a standardised weight), as weight and bias: a convolution's rule."""
    names = _CONV_FUNCTIONS[node.target]
    call = dict(zip(names, node.args)) | dict(node.kwargs)
    fname = f"{node.target.__module__.split('.')[0]}.{node.target.__name__}"
    operands = {}
    for key in ("weight", "bias"):
        arg = call.get(key)
        if isinstance(arg, torch.fx.Node) and arg.name not in constants:
            raise ValueError(f"stream: node {node.name!r} ({fname}) takes a {key} computed from the streamed "
                             "volume; only module state (or a function of it alone) streams as a weight or bias")
        operands[key] = constants[arg.name] if isinstance(arg, torch.fx.Node) else arg
    if not isinstance(call.get("input"), torch.fx.Node) or call["input"].name in constants:
        raise ValueError(f"stream: node {node.name!r} ({fname}) convolves module state, not the streamed volume")
    if operands["weight"] is None or operands["weight"].dim() != 5:
        got = None if operands["weight"] is None else tuple(operands["weight"].shape)
        raise ValueError(f"stream: node {node.name!r} ({fname}) has weight of shape {got}; expected 5 dimensions")
    extra = {k: v for k, v in call.items() if k not in names and k != "memory_format"}  # activation, flip
    if "output_padding" in names:
        return _transpose_rule(node.target, operands["weight"], operands["bias"], call.get("stride", 1),
                               call.get("padding", 0), call.get("output_padding", 0), call.get("groups", 1),
                               call.get("dilation", 1), node.name, fname, **extra)
    return _conv_rule(node.target, operands["weight"], operands["bias"], call.get("stride", 1), call.get("padding", 0),
                      call.get("dilation", 1), call.get("groups", 1), **extra)


def _check_constant(node: torch.fx.Node, name: str, value: torch.Tensor) -> None:
    """Module state ``name`` that ``node`` combines slice by slice with streamed tensors: refused if it varies along
    depth (its third axis from the end), since a streamed window would see the wrong depths of it."""
    if value.dim() >= 3 and value.shape[-3] != 1:
        raise ValueError(f"stream: node {node.name!r} reads module state {name!r} of shape {tuple(value.shape)}, "
                         "which varies along depth; only state the same at every depth (size 1 along depth, as a "
                         "per-channel scale) streams")


def _function_rule(node: torch.fx.Node, constants: dict[str, torch.Tensor]) -> _Rule:
    target, name = node.target, node.name
    if target in (getattr, operator.getitem) or node.op == "call_method" and target in ("size", "dim"):
        raise ValueError(f"stream: node {name!r} reads a tensor's shape or attributes during the forward pass; the "
                         "depth is unknown until the stream ends, so the network is not streamed")
    if target is torch.cat:
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        if dim not in (1, -4):
            raise ValueError(f"stream: node {name!r} concatenates along dim {dim}; only channels (dim 1) stream")
        if constants:
            raise ValueError(f"stream: node {name!r} concatenates module state with streamed tensors; not streamed")
        parts = node.kwargs.get("tensors", node.args[0] if node.args else ())
        uses = [sum(a is p for a in parts) for p in node.all_input_nodes]  # a tensor may be concatenated twice
        return _pointwise(None, lambda *s: (sum(k * c for k, (c, _, _) in zip(uses, s)), s[0][1], s[0][2]))
    if target in _CONV_FUNCTIONS:
        return _conv_function_rule(node, constants)
    if target in _POOL_FUNCTIONS:
        return _pool_function_rule(node)
    if target is F.interpolate:
        kw = dict(zip(("input", "size", "scale_factor", "mode", "align_corners"), node.args)) | dict(node.kwargs)
        if kw.get("size") is not None or kw.get("scale_factor") is None:
            raise ValueError(f"stream: node {name!r} interpolates to a size; streamed upsampling needs a scale factor")
        return _upsample_rule(kw.get("mode", "nearest"), kw["scale_factor"], kw.get("align_corners"), name)
    if node.op == "call_method" and target in _POINTWISE_METHODS or node.op == "call_function" \
            and target in _POINTWISE_FUNCTIONS:  # run by the engine with the node's own arguments
        for key, value in constants.items():
            _check_constant(node, key, value)
        consts = [c.shape[-4:] for c in constants.values()]
        return _pointwise(None, lambda *s: _broadcast([(c, 1, h, w) for c, h, w in s] + consts))
    raise ValueError(f"stream: node {name!r} calls {getattr(target, '__name__', target)!r}, which does not stream "
                     "along depth (or is not known to)")


# --- the engine ---------------------------------------------------------------------------------

class _Node:
    """One graph node during a run: its rule, inputs, depth (once known) and the slabs it holds."""

    def __init__(self, name: str, rule: _Rule | None, parents: list[_Node], call=None) -> None:
        self.name, self.rule, self.parents, self.call = name, rule, parents, call
        self.inplace = False  # a module or function that writes its input (``inplace=True``)
        self.consumers: list[_Node] = []
        self.depth: int | None = None
        self.shape: tuple[int, int, int] | None = None  # (C, H, W) of every output slice
        self.end = 0  # slices [0, end) computed
        self.slabs: list[tuple[int, torch.Tensor]] = []  # (first slice, slab) still held


@dataclass(frozen=True)
class NetworkPlan:
    """What :func:`stream` will hold: ``peak_bytes`` of tensors at the worst step (held slabs of every
    node, the step's windows and output, and the output slab the consumer still holds), ``depth`` of the
    output, ``chunk`` output slices per step."""

    peak_bytes: int
    depth: int
    chunk: int


class NetworkStream:
    """Iterable of output depth slabs of ``module(volume)``, made by :func:`stream` (which documents ``module``,
    ``slices``, ``chunk`` and ``device``); ``dry`` runs on shapes alone (:func:`plan`). After a run,
    ``peak_bytes`` is the peak the engine held by its own count (what :func:`plan` predicts): every node's
    held slabs, the step's windows and results (counted twice: the op's and its channels-last copy) and the
    output slab the consumer still holds. ``measured_bytes`` is the peak it measured
    (:class:`~tritonconv.memory.TensorBytes` around its own steps; never above ``peak_bytes``)."""

    def __init__(self, module: torch.nn.Module, slices: Iterable[torch.Tensor], chunk: int = 1,
                 device=None, dry: bool = False) -> None:
        try:
            chunk = shapes.positive_int(chunk, "chunk")
        except ValueError as err:
            raise ValueError(f"stream: {err}") from None
        self.graph = _trace(module)
        self.chunk, self.dry = chunk, dry
        first = next(iter(module.parameters()), None)
        self.device = torch.device(device) if device is not None else (first.device if first is not None else None)
        self.nodes, self.input, self.output = self._build()
        self._slices = slices
        self.peak_bytes = self.measured_bytes = 0

    def _build(self):
        nodes: dict[str, _Node] = {}
        self.constants: dict[str, torch.Tensor] = {}  # module state the same at every depth, and what it computes
        inp = out = None
        for node in self.graph.graph.nodes:
            parents = [nodes[a.name] for a in node.all_input_nodes if a.name in nodes]
            constants = {a.name: self.constants[a.name] for a in node.all_input_nodes if a.name in self.constants}
            if node.op == "get_attr" or node.op in ("call_function", "call_method") and constants and not parents:
                self.constants[node.name] = self._constant(node)
            elif constants and node.op not in ("call_function", "call_method"):
                raise ValueError(f"stream: node {node.name!r} ({node.op} {node.target}) takes module state as an "
                                 "input; not streamed")
            elif node.op == "placeholder":
                if inp is not None:
                    raise ValueError("stream: the module takes more than one tensor; stream one volume")
                inp = nodes[node.name] = _Node(node.name, None, [])
            elif node.op == "output":
                (result,) = node.all_input_nodes if len(node.all_input_nodes) == 1 else (None,)
                if result is None or node.args[0] is not result:
                    raise ValueError("stream: the module returns more than one tensor; stream one output")
                out = nodes[result.name]
            elif node.op == "call_module":
                module = self.graph.get_submodule(node.target)
                nodes[node.name] = _Node(node.name, _module_rule(module, node.name), parents)
                nodes[node.name].inplace = getattr(module, "inplace", False) is True
            elif node.op in ("call_function", "call_method"):
                rule = _function_rule(node, constants)
                nodes[node.name] = _Node(node.name, rule, parents, call=node if rule.run is None else None)
                nodes[node.name].inplace = _inplace_argument(node)
            else:
                raise ValueError(f"stream: node {node.name!r} ({node.op} {node.target}) reads module state or shapes "
                                 "during the forward pass; not streamed")
        for n in nodes.values():
            for p in n.parents:
                p.consumers.append(n)
        for n in nodes.values():  # the whole volume's readers of a tensor changed in place see it changed or not by
            if n.inplace and len(n.parents[0].consumers) > 1:  # program order; a stream's, by depth: refused
                other = next(c for c in n.parents[0].consumers if c is not n)
                raise ValueError(f"stream: node {n.name!r} changes {n.parents[0].name!r} in place (inplace=True), "
                                 f"which {other.name!r} reads too; not streamed (set inplace=False)")
        return list(nodes.values()), inp, out

    def _constant(self, node: torch.fx.Node) -> torch.Tensor:
        """A parameter or buffer (``get_attr``), or a function of such alone (computed once, here); a pointwise node
        that reads it checks it is the same at every depth (:func:`_check_constant`), a convolution takes it whole."""
        if node.op == "get_attr":
            value = functools.reduce(getattr, node.target.split("."), self.graph)
        else:
            args = torch.fx.node.map_arg((node.args, node.kwargs), lambda a: self.constants[a.name])
            fn = getattr(torch.Tensor, node.target) if node.op == "call_method" else node.target
            with torch.no_grad():
                value = fn(*args[0], **args[1])
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"stream: node {node.name!r} ({node.op} {node.target}) reads module state that is a "
                             f"{type(value).__name__}, not a tensor; not streamed")
        return value.detach()

    # -- accounting -------------------------------------------------------------------------------

    def _bytes(self, t: torch.Tensor) -> int:
        return t.numel() * t.element_size()

    def _count(self, transient: int) -> None:
        held = sum(self._bytes(s) for n in self.nodes for _, s in n.slabs) + self._yielded + transient
        self.peak_bytes = max(self.peak_bytes, held)

    # -- input ------------------------------------------------------------------------------------

    def _pull(self) -> bool:
        """Append the next slice or slab of the generator to the input node; False when it is exhausted."""
        try:
            item = next(self._iter)
        except StopIteration:
            self._finish()
            return False
        if not isinstance(item, torch.Tensor) or item.dim() not in (4, 5):
            got = tuple(item.shape) if isinstance(item, torch.Tensor) else type(item).__name__
            raise ValueError(f"stream: slice {self._index} is {got}; expected (N, C, H, W) or (N, C, d, H, W)")
        slab = item.unsqueeze(2) if item.dim() == 4 else item
        n = self.input
        if n.shape is None:
            n.shape, self._batch = (slab.shape[1], slab.shape[3], slab.shape[4]), slab.shape[0]
            self._dtype = slab.dtype
            self._shapes()
        elif (slab.shape[1], slab.shape[3], slab.shape[4]) != n.shape or slab.shape[0] != self._batch:
            raise ValueError(f"stream: slice {self._index} has shape {tuple(item.shape)}; the first was "
                             f"(N, C, H, W) = {(self._batch, *n.shape)}")
        self._device = self.device or slab.device
        slab = (torch.empty(slab.shape, dtype=self._dtype, device="meta") if self.dry else
                slab.to(self._device, non_blocking=True).contiguous(memory_format=torch.channels_last_3d))
        n.slabs.append((n.end, slab))
        n.end += slab.shape[2]
        self._index += 1
        return True

    def _shapes(self) -> None:
        """(C, H, W) of every node's slices, from the input's (the rules' shape algebra)."""
        for n in self.nodes:
            if n is not self.input:
                n.shape = n.rule.shape(*(p.shape for p in n.parents))

    def _finish(self) -> None:
        """The input ended: every node's depth is known."""
        if self.input.shape is None:
            raise ValueError("stream: `slices` yielded nothing; a stream needs at least one depth slice")
        self.input.depth = self.input.end
        for n in self.nodes:
            if n is self.input:
                continue
            depths = {p.depth for p in n.parents}
            if len(depths) != 1:
                raise ValueError(f"stream: node {n.name!r} combines inputs of depths {sorted(depths)}; the whole "
                                 "volume would fail there too (choose a depth the network's strides divide)")
            n.depth = n.rule.depth(depths.pop())
            if n.depth <= 0:
                raise ValueError(f"stream: node {n.name!r} would output depth {n.depth} for an input of depth "
                                 f"{self.input.depth}: the volume is too shallow for the network")

    # -- evaluation -------------------------------------------------------------------------------

    def _window(self, p: _Node, lo: int, hi: int, fill: bool) -> tuple[torch.Tensor, int, int]:
        """Slices [lo, hi) of ``p`` (zeros outside [0, depth) when ``fill``, else clipped); returns the window,
        the index of its first slice and the bytes it took to make (0 for a view of one slab)."""
        start, stop = max(lo, 0), min(hi, p.end)
        parts = [s[:, :, max(start - f, 0):stop - f] for f, s in p.slabs if f < stop and f + s.shape[2] > start]
        made = 0
        if len(parts) == 1:
            window = parts[0]
        else:
            window = torch.cat(parts, 2) if parts else torch.empty(
                (self._batch, p.shape[0], 0, p.shape[1], p.shape[2]), dtype=self._dtype, device=self._device)
            made += self._bytes(window)
        if fill and (lo < 0 or hi > stop):
            window = F.pad(window, (0, 0, 0, 0, start - lo, hi - stop))
            made += self._bytes(window)
            start = lo
        return window, start, made

    def _ensure(self, n: _Node, hi: int) -> None:
        """Compute (or pull) ``n``'s slices up to ``hi``, or to its depth if that is smaller."""
        while n.end < hi and (n.depth is None or n.end < n.depth):
            if n is self.input:
                if not self._pull():
                    return
                continue
            a = n.end
            b = hi if n.depth is None else min(hi, n.depth)
            lo, top = n.rule.need(a, b)
            for p in n.parents:
                self._ensure(p, top)
            if n.depth is not None and b > n.depth:  # the input ended meanwhile
                b = n.depth
                if b <= a:
                    return
                lo, top = n.rule.need(a, b)
            windows, first, made = [], lo, 0
            for p in n.parents:
                w, first, m = self._window(p, lo, top, n.rule.fill)
                windows.append(w)
                made += m
            out = self._run(n, windows, first, a, b)
            raw = 0 if n.rule.raw is None else self._bytes(out) // (b - a) * n.rule.raw(windows[0].shape[2])
            self._count(made + raw + 2 * self._bytes(out))  # 2: the op's result and its channels-last copy
            n.slabs.append((a, out))
            n.end = b
            for p in n.parents:
                self._release(p)

    def _run(self, n: _Node, windows: list[torch.Tensor], lo: int, a: int, b: int) -> torch.Tensor:
        if self.dry:
            return torch.empty((self._batch, n.shape[0], b - a, n.shape[1], n.shape[2]), dtype=self._dtype,
                               device="meta")
        if n.call is not None:  # a pointwise function or method: the node's own arguments, windows for tensors
            given = {p.name: w for p, w in zip(n.parents, windows)}
            value = lambda a: given[a.name] if a.name in given else self.constants[a.name].to(windows[0].device)  # noqa: E731
            args, kwargs = torch.fx.node.map_arg((n.call.args, n.call.kwargs), value)
            fn = getattr(torch.Tensor, n.call.target) if n.call.op == "call_method" else n.call.target
            out = fn(*args, **kwargs)
        else:
            out = n.rule.run(windows, lo, a, b)
        if out.shape[2] != b - a:
            raise AssertionError(f"stream: node {n.name!r} gave {out.shape[2]} slices for [{a}, {b})")
        if n.rule.raw is not None:  # a slice of a larger result: a copy of its own, so the rest is freed now
            return out.clone(memory_format=torch.channels_last_3d)
        return out.contiguous(memory_format=torch.channels_last_3d)

    def _release(self, p: _Node) -> None:
        """Drop the slabs of ``p`` that no consumer will read again."""
        keep = min((c.rule.need(c.end, c.end + 1)[0] if c.depth is None or c.end < c.depth else math.inf)
                   for c in p.consumers)
        p.slabs = [(f, s) for f, s in p.slabs if f + s.shape[2] > keep]

    def __iter__(self) -> Iterator[torch.Tensor]:
        self._iter, self._index, self._yielded = iter(self._slices), 0, 0
        held = memory.TensorBytes()  # entered around the stream's own steps, not the consumer's code
        out = self.output
        while True:
            with contextlib.nullcontext() if self.dry else held:
                self._ensure(out, out.end + self.chunk)
                if not out.slabs:
                    if out.depth is not None and out.end >= out.depth:
                        return
                    continue
                slab = out.slabs[0][1] if len(out.slabs) == 1 else torch.cat([s for _, s in out.slabs], 2)
                self._count(self._bytes(slab) if len(out.slabs) > 1 else 0)
                out.slabs = []
            self.measured_bytes = held.peak
            self._yielded = self._bytes(slab)  # held by the consumer until the next slab
            yield slab


class _Tracer(torch.fx.Tracer):
    """torch.fx's tracer, with every convolution module a leaf (tritonconv's own included)."""

    def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
        return isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d, tnn.Conv2Plus1d)) or \
            super().is_leaf_module(m, qualname)


def _trace(module: torch.nn.Module) -> torch.fx.GraphModule:
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"stream: expected `module` to be a torch.nn.Module, got {type(module).__name__}")
    try:
        return torch.fx.GraphModule(module, _Tracer().trace(module), type(module).__name__)
    except Exception as err:  # data-dependent control flow, len() of shapes, ...
        raise ValueError(f"stream: {type(module).__name__} cannot be traced into a graph (torch.fx: "
                         f"{type(err).__name__}: {str(err).splitlines()[0]}); a streamed network must be traceable"
                         ) from None


def stream(module: torch.nn.Module, slices: Iterable[torch.Tensor], *, chunk: int | None = None, device=None,
           budget: int | None = None) -> NetworkStream:
    """``module(volume)`` as depth slabs, in order, where ``volume`` is the concatenation of ``slices`` along
    depth; equal to the whole-volume call (each output slice is computed once, by the same layers).

    :param module: a 3-D network in eval mode that ``torch.fx`` can trace; its layers must stream along
        depth (see the module docstring); checked before any slice is read.
    :param slices: an iterable (a generator) of depth slices ``(N, C, H, W)`` or slabs ``(N, C, d, H, W)``.
    :param chunk: output depth slices per step; None takes the largest of 1, 2, 4, ..., 64 whose :func:`plan`
        for a :data:`PLAN_DEPTH`-slice volume of the first slice's shape fits ``budget``.
    :param device: where to compute (default: the module's parameters').
    :param budget: bytes for the planner when ``chunk`` is None (default: 80% of the free GPU memory, 1 GiB
        on the CPU).
    :returns: a :class:`NetworkStream`; iterate it for the output slabs ``(N, C_out, k, H_out, W_out)``.
    :raises ValueError: a node that cannot stream (named), a module that cannot be traced, an empty stream,
        slices of different shapes, depths the network cannot take, or (``chunk`` None) a ``budget`` too small
        for one output slice at a time.
    :raises TypeError: ``slices`` a tensor (a volume: pass ``[x]`` or ``x.unbind(2)``).
    """
    _checks.check_stream_slices(slices, "stream")
    if chunk is None:
        it = iter(slices)
        first = next(it, None)
        if first is None:
            raise ValueError("stream: `slices` yielded nothing; a stream needs at least one depth slice")
        slices = itertools.chain([first], it)  # the first slice's shape sizes the plan; none is held back
        dev = torch.device(device) if device is not None else next(module.parameters()).device
        budget = memory.default_budget(dev) if budget is None else budget
        shape = (first.shape[0], first.shape[1], first.shape[-2], first.shape[-1])
        need = plan(module, shape, PLAN_DEPTH, 1, first.dtype).peak_bytes
        if need > budget:
            raise ValueError(f"stream: one output slice at a time holds {need} bytes (stream.plan), over the budget of "
                             f"{budget} bytes; give a larger `budget`, or `chunk=1` to run without planning")
        chunk = 1
        for c in (2, 4, 8, 16, 32, 64):
            if plan(module, shape, PLAN_DEPTH, c, first.dtype).peak_bytes > budget:
                break
            chunk = c
    return NetworkStream(module, slices, chunk, device)


def plan(module: torch.nn.Module, slice_shape, depth: int, chunk: int = 1, dtype=torch.float32) -> NetworkPlan:
    """The bytes :func:`stream` will hold for ``module`` over ``depth`` slices of ``slice_shape`` ``(N, C, H, W)``
    in ``dtype``, fed one slice at a time, ``chunk`` output slices per step: the same engine run on shapes
    alone (no data, no kernel). A generator of slabs holds up to a slab's worth more at its input.

    :raises ValueError: as :func:`stream`.
    """
    n, c, h, w = slice_shape
    dry = NetworkStream(module, (torch.empty((n, c, h, w), dtype=dtype, device="meta") for _ in range(depth)),
                        chunk, device="meta", dry=True)
    out_depth = sum(s.shape[2] for s in dry)
    return NetworkPlan(dry.peak_bytes, out_depth, chunk)


__all__ = ["NetworkPlan", "NetworkStream", "plan", "stream"]
