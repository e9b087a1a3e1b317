"""The one place that picks, for a checked problem, the kernel family and its config, and launches it.

    forward          depthwise layers -> kernels.depthwise, or kernels.banded when the config folds the taps
                     (``fold``) and the taps lie along the width; others -> kernels.gemm, or
                     kernels.tma when the config says so (``tile_h > 0``) and the operands allow
    input gradient,  the transposed pass of the same families (kernels.tma as a forward
    transposed conv  convolution of the output gradient, unit strides only)
    weight gradient  depthwise layers -> kernels.depthwise, or kernels.banded as the forward; others ->
                     kernels.weight_grad, or its descriptor kernel when the config says so and the operands allow
    (2+1)D fused     kernels.fused_2plus1d

Every pass runs the problem :func:`tritonconv.geometry.run_spec` gives: a layer of few input channels with
its positions packed into channels (kernels.pack: a packing launch before the forward and the weight
gradient, an unpacking one after the input gradient of a strided layer, or of a large unit-stride one;
:func:`tritonconv.geometry.pack_factors`), a layer of narrow groups with its groups merged (its weight laid out
block-diagonally per call, its weight gradient the merged one's diagonal blocks;
:func:`tritonconv.geometry.group_merge`), and the axes a kernel of 1 passes over merged, on views of the caller's
tensors (:func:`_merge`).

The first call with a given signature (each tensor's shape, strides, dtype and device; the
checked spec and the other arguments) builds a *plan*: the kernel family, its config (from
:func:`tritonconv.tuning.choose`, which may time candidates by launching them), how each
operand is laid out, the output's size and format, and the kernel's grid and arguments
(a ``Launch`` of the kernel's module). Later calls with that signature look the plan up and
only allocate the output, lay out the operands and launch: no checks, no config choice, no
argument arithmetic. Every kernel reads its activations in place, in any layout (the GEMM kernels
tile NC(D)HW ones by rows, :mod:`tritonconv._tile`), unless a tuned config asks for NC(D)HW activations copied
channels innermost first (``Config.relayout``: a GPU measured the copy and the descriptor kernels' tiles to beat
reading in place, :func:`tritonconv.tuning.relaid`); a GEMM pass of a large problem copies a weight
with neither channel axis innermost (:func:`tritonconv.geometry.weight_copy_pays`;
``tritonconv.nn.Conv1d/2d/3d`` keep their weights laid out, so their calls copy nothing).
Nothing on a plan's path synchronises with the GPU.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import torch

from . import _descriptors, costmodel, geometry, tuning
from ._checks import ConvSpec
from ._runtime import interpreting
from .geometry import DEPTHWISE_KIND, Config, channels_inner, is_channels_inner
from .kernels import banded, depthwise, fused_2plus1d, gemm, pack, partials, tma, weight_grad
from .shapes import is_depthwise

MAX_PLANS = 4096
_plans: dict[tuple, Callable] = {}
generation = 0
"""Counts :func:`clear_plans` calls: a caller keeping plans of its own (``functional``) drops those of
an older generation."""


def clear_plans() -> None:
    """Forget every plan (the next call of each signature builds its plan again)."""
    global generation
    _plans.clear()
    generation += 1


def tensor_key(t: torch.Tensor | None) -> tuple | None:
    """What a plan depends on in a tensor: its type (a DTensor is no plain tensor of its shape), shape, strides, dtype,
    device (not its data or address)."""
    return None if t is None else (type(t), t.shape, t.stride(), t.dtype, t.device)


def _plan(key: tuple, build: Callable[[], Callable]) -> Callable:
    plan = _plans.get(key)
    if plan is None:
        if len(_plans) >= MAX_PLANS:
            clear_plans()
        plan = _plans[key] = build()
    return plan


def _config(kind: str, tensor: torch.Tensor, spec: ConvSpec, layout: str | None, run) -> Config:
    """The config of a launch reading ``tensor`` (tuned, cached or heuristic; see :mod:`tritonconv.tuning`)."""
    if is_depthwise(spec.input_shape, spec.weight_shape, spec.groups):
        kind = DEPTHWISE_KIND[kind]
    problem = geometry.Problem.for_launch(kind, tensor, spec, layout, tf32=geometry.allows_tf32(tensor.dtype))
    return tuning.choose(problem, tensor.device, interpreting(tensor.device), run, costmodel.model)


# --- operand layouts --------------------------------------------------------------------------

def _same(t: torch.Tensor) -> torch.Tensor:
    return t


def _meta(t: torch.Tensor) -> torch.Tensor:
    """A meta tensor with ``t``'s sizes, strides and dtype (``t.to("meta")`` makes a slice or an expanded tensor
    dense: a launch prepared on it would read ``t`` at the wrong addresses)."""
    return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")


def _stand_in(lay: Callable[[torch.Tensor], torch.Tensor], t: torch.Tensor) -> torch.Tensor:
    """``t`` as ``lay`` will lay it out per call, for a ``Launch``'s arguments (sizes and strides): ``t`` itself,
    or the layout applied to a meta copy (no data copied)."""
    return t if lay is _same else lay(_meta(t))


# --- plans ------------------------------------------------------------------------------------

def _merge(spec: ConvSpec, tensors: tuple, transposed: bool = False) -> tuple[ConvSpec, tuple | None]:
    """The problem the kernels run (:func:`tritonconv.geometry.merged`: axes a kernel of 1 passes over merged)
    and the shapes ``tensors`` are viewed as for it: (x, weight, y) of a pass (``transposed``: x shaped as the
    convolution's output, y as its input), or (dy, x) of a weight gradient. ``(spec, None)`` when no axis merges
    or a tensor's strides allow no such view (its merged axes not dense)."""
    merged = geometry.merged(spec)
    if merged is spec:
        return spec, None
    x, y = (merged.output_shape, merged.input_shape) if transposed else (merged.input_shape, merged.output_shape)
    views = (x, merged.weight_shape, y) if len(tensors) == 3 else (y, x)
    try:
        for t, shape in zip(tensors, views):
            t.view(shape)
    except RuntimeError:
        return spec, None
    return merged, views


def _viewed(tensors: tuple, views: tuple) -> tuple:
    return tuple(t.view(shape) for t, shape in zip(tensors, views))


def _weight_viewed(lay_w: Callable, shape: tuple | None) -> Callable:
    """``lay_w`` applied to the weight viewed as the merged problem's (``shape``), when it copies: the copy is
    laid out for those axes. A weight read in place needs no view (a launch reads only its address)."""
    if shape is None or lay_w is _same:
        return lay_w
    return lambda w: lay_w(w.view(shape))


@dataclasses.dataclass(frozen=True)
class _Pass:
    """A forward or transposed pass: allocate ``y``, lay out the weight, launch.

    A plan's launch reads only its tensors' addresses, dtype and device; their sizes and strides are the plan's
    (of views with merged axes where its problem merged them, :func:`_merge`), so ``x`` and ``y`` go to it as
    they come, and no view is made per call."""

    out: tuple  # (shape, dtype, memory format) of y
    lay_w: Callable
    launch: Callable  # (x, w, b, y) -> y
    spec: ConvSpec  # the problem launched (axes merged or not)

    def __call__(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        shape, dtype, fmt = self.out
        return self.launch(x, self.lay_w(w), b, geometry.alloc_output(shape, x.device, dtype, fmt))


@dataclasses.dataclass(frozen=True)
class _Descriptors:
    """The descriptor kernel where the bases are 16-byte aligned, else the same tiles through pointers."""

    launch: Callable  # reads the weight as the forward convolution's (transposed: its transpose, same address)
    fallback: Callable

    def __call__(self, x, w, b, y) -> torch.Tensor:
        return (self.launch if _descriptors.aligned(x, w) else self.fallback)(x, w, b, y)


@dataclasses.dataclass(frozen=True)
class _GradDescriptors:
    """The descriptor weight-gradient kernel where the bases are 16-byte aligned, else the same tiles through
    pointers."""

    launch: Callable
    fallback: Callable

    def __call__(self, dy, x) -> torch.Tensor:
        return (self.launch if _descriptors.aligned(dy, x) else self.fallback)(dy, x)


@dataclasses.dataclass(frozen=True)
class _Summed:
    """A weight-gradient launch that writes partial sums (split, or flipped), then the launch adding them in split
    order into the gradient (:class:`tritonconv.kernels.partials.Sum`), allocated in its dtype and layout."""

    launch: Callable  # (dy, x) -> partials
    sum: partials.Sum
    shape: tuple
    dtype: torch.dtype
    inner: bool  # the gradient's input channels innermost

    def __call__(self, dy, x) -> torch.Tensor:
        return self.sum(self.launch(dy, x), geometry.alloc_weight_grad(self.shape, x.device, self.dtype, self.inner))


def _summed(launch, device: torch.device) -> Callable:
    """``launch`` (a weight-gradient kernel's) as a launch returning the gradient: itself where it writes it
    (:attr:`tritonconv.kernels.weight_grad.Partials.direct`), else followed by the sum of its partials."""
    if launch.direct:
        return launch
    shape = tuple(launch.spec.weight_shape)
    grad = geometry.alloc_weight_grad(shape, torch.device("meta"), launch.dtype, launch.inner_grad)
    return _Summed(launch, partials.Sum(launch.partial_shape, grad, launch.flip, device), shape, launch.dtype,
                   launch.inner_grad)


@dataclasses.dataclass(frozen=True)
class _MergedGrad:
    """A weight gradient computed as the problem with merged axes (:func:`_merge`; its launch reads ``dy`` and ``x``
    as views of that problem's shapes, by their addresses), returned in the weight's shape."""

    launch: Callable  # (dy, x) -> the merged problem's weight gradient
    weight_shape: tuple

    def __call__(self, dy, x) -> torch.Tensor:
        return self.launch(dy, x).view(self.weight_shape)


@dataclasses.dataclass(frozen=True)
class _Relaid:
    """A launch whose leading NC(D)HW activations are read copied channels innermost (a config's ``relayout``,
    :func:`tritonconv.tuning.relaid`): each copied per call, in the shape the launch reads it as (merged axes
    viewed first)."""

    launch: Callable
    shapes: tuple[tuple[int, ...], ...]  # of the leading arguments copied

    def __call__(self, *args):
        n = len(self.shapes)
        return self.launch(*(channels_inner(t.view(shape)) for t, shape in zip(args, self.shapes)), *args[n:])


def _relaid(config: Config, *tensors: torch.Tensor) -> tuple | None:
    """The shapes of ``tensors`` when ``config`` asks to read them copied channels innermost and none of them has
    its channels innermost already (a channels-last caller's tensors are read in place), else None."""
    if config.relayout and not any(is_channels_inner(t) for t in tensors):
        return tuple(tuple(t.shape) for t in tensors)
    return None


def _channels_inner_like(t: torch.Tensor) -> torch.Tensor:
    """A stand-in for ``t`` copied channels innermost (sizes, strides, device; built with the plan, then freed)."""
    return geometry.empty_channels_inner(t.shape, t.dtype, t.device)


def _shape_only(x, w, b, y: torch.Tensor) -> torch.Tensor:
    return y


def _channel_axis_inner(weight: torch.Tensor) -> bool:
    """Either channel axis of a weight innermost: the pointer kernels' weight tiles load as vectors."""
    return is_channels_inner(weight) or is_channels_inner(weight.transpose(0, 1))


def _operand_layouts(x, weight, spec: ConvSpec, transposed: bool, config: Config) -> tuple:
    """How a GEMM pass lays out the weight per call (activations are always read in place), and the weight as
    it will be laid out (a stand-in for the launch arguments: no data copied here).

    The descriptor kernel (a config with ``tile_h``) reads a weight with its reduction channels innermost, or a
    16-bit one with its column channels innermost (:func:`tritonconv.kernels.tma.weight_view`: ``tritonconv.nn``'s
    layout serves the forward and the input gradient alike), else lays it out per call. The pointer kernel
    loads its weight tiles as vectors when either channel axis is innermost; torch's layout, neither when the
    kernel has more than one tap, is copied per call in a large problem
    (:func:`tritonconv.geometry.weight_copy_pays`) and read in place in a small one."""
    if config.tile_h:  # copied every call: a copy kept across calls could not see an in-place change made through
        # .data, which moves no version counter (tritonconv.nn.Conv*d keep their weights laid out)
        lay_w = functools.partial(tma.lay_out, transposed=transposed) if tma.laid_out(weight, transposed) else _same
    elif _channel_axis_inner(weight) or not geometry.weight_copy_pays(spec.input_shape, spec.weight_shape,
                                                                     spec.output_shape):
        lay_w = _same
    else:
        lay_w = channels_inner
    return lay_w, _stand_in(lay_w, weight)


def _pass_plan(x, weight, bias, y, fmt, spec: ConvSpec, transposed: bool, activation, flip: bool, config,
               run: Callable[[Config], torch.Tensor]) -> _Pass:
    """Build the plan of a forward (or transposed) pass from its first call's tensors; ``y`` (a meta tensor)
    is laid out as its outputs will be, in ``fmt``; ``run`` launches the same pass with a given config
    (for tuning)."""
    out = (tuple(y.shape), y.dtype, fmt)
    if x.device.type == "meta":  # shapes only (model summaries, deferred initialisation): nothing to run
        return _Pass(out, _same, _shape_only, spec)
    kind = "conv_t" if transposed else "conv"
    spec, views = _merge(spec, (x, weight, y), transposed)
    if views is not None:
        x, weight, y = _viewed((x, weight, y), views)
    if is_depthwise(spec.input_shape, spec.weight_shape, spec.groups):  # any strides in place
        config = config or _config(kind, x, spec, None, run)
        launch = banded.Launch if banded.runs(spec, x.dtype, transposed, config) else depthwise.Launch
        return _Pass(out, _same, launch(x, weight, bias, y, spec, transposed, activation, flip, config), spec)
    layout = geometry.layout_of(x)  # of the caller's tensor: the configs differ by how y is written
    config = config or _config(kind, x, spec, layout, run)
    relaid = _relaid(config, x)
    if relaid:  # the activations read copied channels innermost
        x = _channels_inner_like(x)
    lay_w, wc = _operand_layouts(x, weight, spec, transposed, config)
    launch = gemm.Launch(x, wc, bias, y, spec, transposed, activation, flip, dataclasses.replace(config, tile_h=0))
    if config.tile_h:  # tile loads by tensor descriptor (a transposed pass as its forward equivalent, or by phase)
        if tma.usable(x, wc, spec, config, transposed):
            launch = _Descriptors(tma.Launch(x, wc, bias, y, spec, activation, flip, config, transposed=transposed), launch)
        # else, e.g. strides of no 16-byte multiple: the same tiles through pointers
    return _Pass(out, _weight_viewed(lay_w, views and views[1]), _Relaid(launch, relaid) if relaid else launch, spec)


def _flipped(t: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """``t`` reversed on ``axes`` (a copy, whose strides torch's meta kernel gives alike), or ``t``."""
    return t.flip(axes) if axes else t


@dataclasses.dataclass(frozen=True)
class _Packed:
    """A stem's forward pass run packed (:func:`tritonconv.geometry.pack_factors`): its input and its weight packed
    by a launch each, then the packed convolution's pass (unflipped: the weight is flipped first for ``flip``)."""

    pack_x: pack.Launch
    pack_w: pack.Launch
    flip: tuple[int, ...]  # the weight's axes reversed before packing
    inner: _Pass

    def __call__(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return self.inner(self.pack_x(x), self.pack_w(_flipped(w, self.flip)), b)


def _packed_stand_ins(spec_p: ConvSpec, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A packed layer's input and weight as the packing launches lay them out (channels innermost, ``x``'s dtype and
    device): stand-ins for the packed pass's launch arguments (sizes, strides, device; tuning runs the whole plan)."""
    return tuple(geometry.empty_channels_inner(shape, x.dtype, x.device)
                 for shape in (spec_p.input_shape, spec_p.weight_shape))


def _packed_plan(x, weight, bias, y, fmt, spec: ConvSpec, factors, activation, flip: bool, config, run) -> _Packed:
    """Build a stem's packed forward plan; ``y`` (meta) in the caller's format ``fmt``, which the packed pass
    writes (its input is packed channels innermost)."""
    spec_p = geometry.packed(spec, factors)
    axes = tuple(range(2, weight.dim())) if flip else ()
    pack_w = pack.weight_launch(_flipped(_meta(weight), axes), spec_p, factors)
    # the packed operands as they will be laid out (stand-ins: sizes, strides, device; tuning runs ``run``)
    xp, wp = _packed_stand_ins(spec_p, x)
    inner = _pass_plan(xp, wp, bias, y, fmt, spec_p, False, activation, False, config, run)
    return _Packed(pack.input_launch(x, spec, spec_p, factors), pack_w, axes, inner)


@dataclasses.dataclass(frozen=True)
class _PackedTranspose:
    """A packed layer's transposed pass (:func:`tritonconv.geometry.pack_factors`): its weight packed by a launch,
    the packed layer's own transposed pass into channels-innermost packed positions, then the packing's adjoint
    with bias and activation (:func:`tritonconv.kernels.pack.input_grad_launch`) into the output."""

    pack_w: pack.Launch
    flip: tuple[int, ...]  # the weight's axes reversed before packing
    inner: Callable  # the packed layer's transposed pass: (dy, packed weight, None) -> packed positions
    unpack: pack.UnpackLaunch
    out: tuple  # (shape, dtype, memory format) of y

    def __call__(self, dy: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        grad = self.inner(dy, self.pack_w(_flipped(w, self.flip)), None)
        shape, dtype, fmt = self.out
        return self.unpack(grad, b, geometry.alloc_output(shape, dy.device, dtype, fmt))


@dataclasses.dataclass(frozen=True)
class _GroupsMerged:
    """A forward or transposed pass of a layer of narrow groups run with ``merge`` of its groups as one
    (:func:`tritonconv.geometry.group_merge`): its weight laid out block-diagonally, channels innermost (a zeroed
    tensor and a copy, per call: the weight may have changed in place), then the merged layer's pass."""

    groups: int
    merge: int
    shape: tuple[int, ...]  # the block-diagonal weight's
    inner: Callable  # the merged layer's pass: (x, block-diagonal weight, b) -> y

    def __call__(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        merged = geometry.empty_channels_inner(self.shape, w.dtype, w.device)
        return self.inner(x, geometry.block_diagonal(w, self.groups, self.merge, merged), b)


@dataclasses.dataclass(frozen=True)
class _DiagonalGrad:
    """The weight gradient of a layer of narrow groups run merged (:class:`_GroupsMerged`): the merged layer's,
    then its diagonal blocks copied into the weight's shape and layout."""

    groups: int
    merge: int
    shape: tuple[int, ...]  # the weight's
    channels_inner: bool
    inner: Callable  # the merged layer's weight gradient: (dy, x) -> the block-diagonal weight's gradient

    def __call__(self, dy: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        grad = self.inner(dy, x)
        out = geometry.alloc_weight_grad(self.shape, grad.device, grad.dtype, self.channels_inner)
        return geometry.diagonal_blocks(grad, self.groups, self.merge, out)


def _merged_weight(spec: ConvSpec, weight: torch.Tensor) -> tuple[ConvSpec, int, torch.Tensor] | None:
    """The merged layer of a layer of narrow groups (:func:`tritonconv.geometry.group_merge`), its merge, and a
    stand-in for its block-diagonal weight as laid out per call (channels innermost); None for other layers."""
    merge = geometry.group_merge(spec, weight.element_size())
    if merge is None or weight.device.type == "meta":
        return None
    merged = geometry.groups_merged(spec, merge)
    return merged, merge, geometry.empty_channels_inner(merged.weight_shape, weight.dtype, weight.device)


@dataclasses.dataclass(frozen=True)
class _ScaledPass:
    """An fp8 forward pass: allocate ``y`` in the output dtype, lay out the weight, launch with the call's
    scales."""

    out: tuple  # (shape, dtype, memory format) of y
    lay_w: Callable
    launch: Callable  # (x, w, b, y, (weight scale, input scale)) -> y; tensors by address, as _Pass's

    def __call__(self, x, w, b, weight_scale, input_scale) -> torch.Tensor:
        shape, dtype, fmt = self.out
        y = geometry.alloc_output(shape, x.device, dtype, fmt)
        return self.launch(x, self.lay_w(w), b, y, (weight_scale, input_scale))


@dataclasses.dataclass(frozen=True)
class _ScaledPacked:
    """An fp8 stem's forward pass run packed (:func:`tritonconv.geometry.pack_factors`, 1-byte operands): its input
    and its weight packed by a launch each (the weight's per-channel scales unchanged: packing keeps the output
    channels), then the packed convolution's scaled pass."""

    pack_x: pack.Launch
    pack_w: pack.Launch
    inner: _ScaledPass

    def __call__(self, x, w, b, weight_scale, input_scale) -> torch.Tensor:
        return self.inner(self.pack_x(x), self.pack_w(w), b, weight_scale, input_scale)


@dataclasses.dataclass(frozen=True)
class _ScaledDescriptors:
    """The descriptor kernel for an fp8 forward where the bases are 16-byte aligned, else the pointer kernel."""

    launch: Callable
    fallback: Callable

    def __call__(self, x, w, b, y, scales) -> torch.Tensor:
        return (self.launch if _descriptors.aligned(x, w) else self.fallback)(x, w, b, y, scales)


def scaled_forward_plan(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    weight_scale: torch.Tensor,
    spec: ConvSpec,
    activation: str | None,
    out_dtype: torch.dtype,
    config: Config | None = None,
    out_format: torch.memory_format | None = None,
) -> Callable:
    """The plan of a forward convolution of 8-bit float operands (``tritonconv.fp8``), dequantised in the
    kernel's epilogue: ``plan(input, weight, bias, weight_scale, input_scale)`` -> ``out_dtype``, in ``out_format``
    (None: torch's rule). The pointer GEMM kernel, or the descriptor kernel for a config that asks for it (both
    epilogues scale); depthwise problems are refused before this."""
    key = ("scaled", tensor_key(input), tensor_key(weight), tensor_key(bias), tensor_key(weight_scale), spec,
           activation, out_dtype, config, out_format)

    def build() -> _ScaledPass:
        fmt = out_format or geometry.output_memory_format(input, weight)
        y = torch.empty(spec.output_shape, device="meta", dtype=out_dtype, memory_format=fmt)
        out = (tuple(y.shape), out_dtype, fmt)
        if input.device.type == "meta":
            return _ScaledPass(out, _same, lambda x, w, b, y, scales: y)
        one = torch.ones((), device=input.device)  # tuning times the kernel with a unit input scale
        run = lambda c: scaled_forward_plan(  # noqa: E731
            input, weight, bias, weight_scale, spec, activation, out_dtype, c, out_format)(input, weight, bias,
                                                                                          weight_scale, one)
        factors = geometry.pack_factors(spec, itemsize=1)
        if factors:  # a stem: its positions packed into channels, in chunks of 32 (fp8's MMA reduction)
            spec_p = geometry.packed(spec, factors, itemsize=1)
            xp, wp = _packed_stand_ins(spec_p, input)
            inner = _scaled_pass(xp, wp, bias, weight_scale, y, out, spec_p, activation, config, run)
            return _ScaledPacked(pack.input_launch(input, spec, spec_p, factors),
                                 pack.weight_launch(_meta(weight), spec_p, factors), inner)
        return _scaled_pass(input, weight, bias, weight_scale, y, out, spec, activation, config, run)

    return _plan(key, build)


def _scaled_pass(input, weight, bias, weight_scale, y, out, spec: ConvSpec, activation, config, run) -> _ScaledPass:
    """Build an fp8 forward pass of ``spec`` for operands laid out as ``input`` and ``weight`` into ``y`` (meta: the
    output's layout; ``out`` its shape, dtype and memory format)."""
    m, views = _merge(spec, (input, weight, y))
    x, w, yv = (input, weight, y) if views is None else _viewed((input, weight, y), views)
    cfg = config or _config("conv", x, m, geometry.layout_of(x), run)
    lay_w, wc = _operand_layouts(x, w, m, False, cfg)
    step = weight_scale.stride(0) if weight_scale.dim() else 0
    launch = gemm.Launch(x, wc, bias, yv, m, False, activation, False, dataclasses.replace(cfg, tile_h=0), step)
    if cfg.tile_h and tma.usable(x, wc, m, cfg):  # tile loads by tensor descriptor, where the bases are aligned
        launch = _ScaledDescriptors(tma.Launch(x, wc, bias, yv, m, activation, False, cfg, step), launch)
    return _ScaledPass(out, _weight_viewed(lay_w, views and views[1]), launch)


def conv_forward(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    spec: ConvSpec,
    activation: str | None = None,
    flip: bool = False,
    config: Config | None = None,
    memory_format: torch.memory_format | None = None,
) -> torch.Tensor:
    """Forward convolution of a checked, batched problem; returns the output tensor, in ``memory_format`` (None:
    torch's rule for a convolution's output, :func:`tritonconv.geometry.output_memory_format`)."""
    return forward_plan(input, weight, bias, spec, activation, flip, config, memory_format)(input, weight, bias)


def forward_plan(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    spec: ConvSpec,
    activation: str | None = None,
    flip: bool = False,
    config: Config | None = None,
    memory_format: torch.memory_format | None = None,
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """The plan of :func:`conv_forward` for tensors laid out as these: ``plan(input, weight, bias)``."""
    key = ("forward", tensor_key(input), tensor_key(weight), tensor_key(bias), spec, activation, flip, config,
           memory_format, torch.get_float32_matmul_precision())

    def build() -> Callable:
        fmt = memory_format or geometry.output_memory_format(input, weight)
        y = torch.empty(spec.output_shape, device="meta", dtype=input.dtype, memory_format=fmt)  # its layout only

        def run(cfg: Config) -> torch.Tensor:
            return conv_forward(input, weight, bias, spec, activation, flip, cfg, memory_format)

        factors = geometry.pack_factors(spec)
        if factors and input.device.type != "meta":
            return _packed_plan(input, weight, bias, y, fmt, spec, factors, activation, flip, config, run)
        merged = _merged_weight(spec, weight)
        if merged:
            spec_g, merge, wg = merged
            return _GroupsMerged(spec.groups, merge, spec_g.weight_shape,  # y in the format the caller's weight gives
                                 _pass_plan(input, wg, bias, y, fmt, spec_g, False, activation, flip, config, run))
        return _pass_plan(input, weight, bias, y, fmt, spec, False, activation, flip, config, run)

    return _plan(key, build)


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
    return conv_transpose(grad_output, weight, None, spec, None, flip, memory_format, config)


def conv_transpose(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec,
                   activation: str | None = None, flip: bool = False,
                   memory_format: torch.memory_format = torch.contiguous_format, config: Config | None = None) -> torch.Tensor:
    """The transposed convolution of ``input`` (shaped as ``spec.output_shape``), then bias and activation:
    an output shaped as ``spec.input_shape`` (the convolution ``spec`` describes, run backwards)."""
    return transpose_plan(input, weight, bias, spec, activation, flip, memory_format, config)(input, weight, bias)


def transpose_plan(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    spec: ConvSpec,
    activation: str | None = None,
    flip: bool = False,
    memory_format: torch.memory_format = torch.contiguous_format,
    config: Config | None = None,
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """The plan of :func:`conv_transpose` for tensors laid out as these: ``plan(input, weight, bias)``."""
    key = ("transposed", tensor_key(input), tensor_key(weight), tensor_key(bias), spec, activation, flip, memory_format, config,
           torch.get_float32_matmul_precision())

    def build() -> Callable:
        y = torch.empty(spec.input_shape, device="meta", dtype=input.dtype, memory_format=memory_format)
        factors = geometry.pack_factors(spec, transposed=True)
        if factors and input.device.type != "meta":
            spec_p = geometry.packed(spec, factors)
            packed_fmt = geometry.CHANNELS_LAST.get(len(spec_p.input_shape), torch.contiguous_format)
            packed = torch.empty(spec_p.input_shape, device="meta", dtype=input.dtype, memory_format=packed_fmt)
            axes = tuple(range(2, weight.dim())) if flip else ()
            wp = geometry.empty_channels_inner(spec_p.weight_shape, weight.dtype, weight.device)  # as packed per call
            return _PackedTranspose(pack.weight_launch(_flipped(_meta(weight), axes), spec_p, factors), axes,
                                    transpose_plan(input, wp, None, spec_p, None, False, packed_fmt, config),
                                    pack.input_grad_launch(packed, bias, y, spec, factors, activation),
                                    (tuple(y.shape), y.dtype, memory_format))
        merged = _merged_weight(spec, weight)
        if merged:
            spec_g, merge, wg = merged
            return _GroupsMerged(spec.groups, merge, spec_g.weight_shape,
                                 transpose_plan(input, wg, bias, spec_g, activation, flip, memory_format, config))
        return _pass_plan(input, weight, bias, y, memory_format, spec, True, activation, flip, config,
                          lambda cfg: conv_transpose(input, weight, bias, spec, activation, flip, memory_format, cfg))

    return _plan(key, build)


class _PackedGrad:
    """A stem's weight gradient (:func:`tritonconv.geometry.pack_factors`): its input packed by a launch, the packed
    convolution's weight gradient, then unpacked by a launch (the weight packing's adjoint) into the weight's
    shape and layout (reversed on every spatial axis for ``flip``, a torch copy)."""

    def __init__(self, pack_x: pack.Launch, inner: Callable, spec: ConvSpec, factors: tuple[int, ...], flip: bool,
                 channels_inner: bool) -> None:
        self.pack_x, self.inner, self.factors = pack_x, inner, factors
        self.flip = tuple(range(2, len(spec.weight_shape))) if flip else ()
        self.shape, self.channels_inner = spec.weight_shape, channels_inner
        self.unpack: dict[tuple, pack.UnpackLaunch] = {}  # by the packed gradient's strides (the inner plan's)

    def __call__(self, dy: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        grad = self.inner(dy, self.pack_x(x))
        dw = geometry.alloc_weight_grad(self.shape, grad.device, grad.dtype, self.channels_inner and not self.flip)
        launch = self.unpack.get(grad.stride())
        if launch is None:
            launch = self.unpack[grad.stride()] = pack.weight_grad_launch(grad, dw, self.factors)
        launch(grad, None, dw)
        if self.flip:  # reversed by torch (a copy), then laid out as the weight
            return geometry.to_layout(dw.flip(self.flip), "channels_last" if self.channels_inner else "contiguous")
        return dw


def conv_grad_weight(grad_output: torch.Tensor, input: torch.Tensor, spec: ConvSpec, flip: bool = False,
                     config: Config | None = None, channels_inner: bool = False) -> torch.Tensor:
    """Gradient of the forward pass with respect to its weight (fp32 accumulation, weight dtype out), contiguous or
    with its input channels innermost (``channels_inner``: the layout of the weight it is for,
    :func:`tritonconv.geometry.grad_channels_inner`)."""
    return grad_weight_plan(grad_output, input, spec, flip, config, channels_inner)(grad_output, input)


def grad_weight_plan(
    grad_output: torch.Tensor,
    input: torch.Tensor,
    spec: ConvSpec,
    flip: bool = False,
    config: Config | None = None,
    channels_inner: bool = False,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The plan of :func:`conv_grad_weight` for tensors laid out as these: ``plan(grad_output, input)``."""
    key = ("grad_weight", tensor_key(grad_output), tensor_key(input), spec, flip, config, channels_inner,
           torch.get_float32_matmul_precision())

    def build() -> Callable:
        if input.device.type == "meta":  # shapes only
            return lambda dy, x: torch.empty(spec.weight_shape, device="meta", dtype=dy.dtype)
        factors = geometry.pack_factors(spec)
        if factors:  # a stem: the packed convolution's weight gradient (its own plan), unpacked
            spec_p = geometry.packed(spec, factors)
            xp = geometry.empty_channels_inner(spec_p.input_shape, input.dtype, input.device)  # as packed per call
            # (the packed gradient with its input channels innermost: its tiles, one tap's, store runs)
            return _PackedGrad(pack.input_launch(input, spec, spec_p, factors),
                               grad_weight_plan(grad_output, xp, spec_p, False, config, True), spec, factors, flip,
                               channels_inner)
        merge = geometry.group_merge(spec, input.element_size())
        if merge:  # narrow groups: the merged layer's gradient (its own plan), its diagonal blocks
            inner = grad_weight_plan(grad_output, input, geometry.groups_merged(spec, merge), flip, config,
                                     channels_inner)
            return _DiagonalGrad(spec.groups, merge, spec.weight_shape, channels_inner, inner)
        m, views = _merge(spec, (grad_output, input))
        dy, x = (grad_output, input) if views is None else _viewed((grad_output, input), views)
        # both operands read in place, in any layout; depthwise layers: no tensor cores
        cfg = config or _config("conv_wgrad", x, m, None,
                                lambda c: conv_grad_weight(grad_output, input, spec, flip, c, channels_inner))
        if is_depthwise(m.input_shape, m.weight_shape, m.groups):
            kernel = banded.WeightGradLaunch if banded.runs(m, x.dtype, False, cfg) else depthwise.WeightGradLaunch
            launch = _summed(kernel(dy, x, m, flip, cfg), x.device)
        else:
            relaid = _relaid(cfg, dy, x)
            if relaid:  # both read copied channels innermost
                dy, x = _channels_inner_like(dy), _channels_inner_like(x)
            launch = _summed(weight_grad.Launch(dy, x, m, flip, dataclasses.replace(cfg, tile_h=0), channels_inner),
                             x.device)
            if cfg.tile_h and weight_grad.descriptors_usable(dy, x, m, cfg):  # tile loads by tensor descriptor
                descriptors = weight_grad.DescriptorLaunch(dy, x, m, flip, cfg, channels_inner)
                launch = _GradDescriptors(_summed(descriptors, x.device), launch)
            # else, e.g. strides of no 16-byte multiple: the same tiles through pointers
            launch = _Relaid(launch, relaid) if relaid else launch
        return launch if views is None else _MergedGrad(launch, spec.weight_shape)

    return _plan(key, build)


def conv2plus1d_fused(x, ws, bs, wt, bt, spatial: ConvSpec, temporal: ConvSpec, mid_activation, activation,
                      config: Config | None = None) -> torch.Tensor:
    """One launch of the fused (2+1)D kernel; ``spatial``/``temporal`` are the two stages' checked specs."""
    key = ("conv2plus1d", *map(tensor_key, (x, ws, bs, wt, bt)), spatial, temporal, mid_activation, activation, config,
           torch.get_float32_matmul_precision())

    def build() -> Callable:
        fmt = geometry.output_memory_format(x, ws)
        y = torch.empty(temporal.output_shape, device="meta", dtype=x.dtype, memory_format=fmt)  # its layout only
        if x.device.type == "meta":  # shapes only
            return lambda x, *weights: torch.empty_like(y)
        cfg = config
        if cfg is None:
            m = y.shape[0] * math.prod(y.shape[2:])
            cfg = tuning.fused_2plus1d_config(m, ws.shape[1], ws.shape[0], wt.shape[0], interp=interpreting(x.device),
                                              channels_last=y.stride(1) == 1, dtype=str(x.dtype)[6:])
        out = (tuple(y.shape), y.dtype, fmt)
        copy = any(geometry.weight_copy_pays(s.input_shape, s.weight_shape, s.output_shape) for s in (spatial, temporal))
        lay_s, lay_t = (_same if _channel_axis_inner(w) or not copy else channels_inner for w in (ws, wt))
        wsc, wtc = _stand_in(lay_s, ws), _stand_in(lay_t, wt)
        launch = fused_2plus1d.Launch(x, wsc, bs, wtc, bt, y, spatial, temporal, mid_activation, activation, cfg)

        def run(x, ws, bs, wt, bt):
            y = geometry.alloc_output(out[0], x.device, out[1], out[2])
            return launch(x, lay_s(ws), bs, lay_t(wt), bt, y)

        return run

    return _plan(key, build)(x, ws, bs, wt, bt)


__all__ = ["clear_plans", "conv2plus1d_fused", "conv_forward", "conv_grad_input", "conv_grad_weight", "conv_transpose",
           "forward_plan", "grad_weight_plan", "tensor_key", "transpose_plan"]
