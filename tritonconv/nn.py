"""Modules: drop-in ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``, :func:`convert`, and the factorized blocks.

``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d`` *are* their ``torch.nn`` counterparts (subclasses
that only swap the convolution call), so the constructor, parameters, ``state_dict`` keys, ``padding_mode``
handling and ``repr`` are torch's own, and a torch checkpoint loads unchanged.

``Conv2Plus1d`` (Tran et al. 2018) and ``P3DBlock`` (Qiu et al. 2017) hold a ``spatial``
``1 x kh x kw`` and a ``temporal`` ``kt x 1 x 1`` :class:`Conv3d`.

Every module takes a ``DTensor`` input (a volume sharded on a ``DeviceMesh``) too: its convolution then runs
in :mod:`tritonconv.distributed` and returns a ``DTensor`` with the input's placements.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from typing import NoReturn

import torch
import torch.nn.functional as F

from . import _checks, distributed, functional, geometry, shapes
from ._checks import SUPPORTED_DTYPES
from .conv2plus1d import conv2plus1d


def lay_out_weight(module: torch.nn.Module) -> None:
    """Store ``module``'s weight (a convolution's) with its input channels innermost (NLC-, NHWC-, NDHWC-like memory), the
    layout tritonconv's GEMM kernels read in place: no copy of the weight per call. Values, shape,
    ``state_dict`` and the parameter object stay the same (``.to()``/``.cuda()`` keep the layout). Whether the weight
    was channels-last when first laid out is kept (``module._given_channels_last``): by torch's rule it makes the
    output so too, which tritonconv's modules follow; a layout of tritonconv's own does not."""
    _note_given_layout(module)
    with torch.no_grad():
        module.weight.data = geometry.channels_inner(module.weight.data)


def _note_given_layout(module: torch.nn.Module) -> None:
    """Keep whether ``module``'s weight was channels-last as first given (``module._given_channels_last``)."""
    if "_given_channels_last" not in module.__dict__:
        module._given_channels_last = geometry.memory_format_of(module.weight) != torch.contiguous_format


_SCRIPT_TORCHS = "Script torch's own modules (tritonconv.nn.revert(model) first), or trace it"
_SCRIPT_BLOCKS = "The block has no torch counterpart to revert to; trace it"


class _Convolution:
    """Mixin over torch's convolution modules running tritonconv's: the fused ``activation`` (None or a name of
    :data:`tritonconv.ACTIVATIONS`; converted modules: None), in ``repr``; TorchScript refused by name."""

    _fn = None  # tritonconv.functional's function, set per class
    _sharded = None  # tritonconv.distributed's, for DTensor inputs
    activation: str | None = None

    def __init__(self, *args, activation: str | None = None, **kwargs) -> None:
        _checks.check_activation(activation, type(self).__name__)
        super().__init__(*args, **kwargs)
        self.activation = activation

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.activation is None else f"{text}, activation={self.activation!r}"

    def __prepare_scriptable__(self) -> NoReturn:
        _checks.refuse_scripting(self, _SCRIPT_TORCHS)


class _TritonConv(_Convolution):
    """Mixin over ``torch.nn.ConvNd``: the convolution runs in tritonconv's kernels."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        lay_out_weight(self)

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        """torch's; a weight replaced by the one loaded (``load_state_dict(assign=True)``, as after a meta-device
        construction, or torch's swap of tensors) is laid out as the one it replaced was (no copy per call). The
        output's layout stays the one the first weight given decided (:func:`lay_out_weight`)."""
        weight = self.weight
        strides, laid_out = weight.stride(), geometry.is_channels_inner(weight)
        super()._load_from_state_dict(state_dict, prefix, *args)
        if laid_out and (self.weight is not weight or self.weight.stride() != strides):
            lay_out_weight(self)

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        padding = self.padding
        if _checks.is_dtensor(input):
            if self.padding_mode != "zeros":
                raise ValueError(f"{type(self).__name__}: padding_mode={self.padding_mode!r} on a DTensor input: only "
                                 f"'zeros' is sharded")
            return self._sharded(input, weight, bias, self.stride, padding, self.dilation, self.groups,
                                 activation=self.activation)
        if self.padding_mode != "zeros":  # as torch: pad explicitly, then convolve unpadded
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        # the output laid out as torch's module would write it: channels-last where the input is, or (torch's rule)
        # where the weight was given channels-last; its channels-innermost layout here is tritonconv's own
        fmt = None if getattr(self, "_given_channels_last", False) else torch.preserve_format
        return self._fn(input, weight, bias, self.stride, padding, self.dilation, self.groups, activation=self.activation,
                        memory_format=fmt)


class Conv1d(_TritonConv, torch.nn.Conv1d):
    """``torch.nn.Conv1d`` computed by :func:`tritonconv.conv1d`: torch's constructor (``in_channels``,
    ``out_channels``, ``kernel_size``, ``stride``, ``padding``, ``dilation``, ``groups``, ``bias``, ``padding_mode``,
    ``device``, ``dtype``; and ``activation``, fused after the bias as the function's ``activation=``),
    parameters and ``state_dict``; the weight is stored channels-innermost
    (:func:`lay_out_weight`). Input ``(N, C_in, L)`` or unbatched; dtypes, devices and errors as
    :func:`tritonconv.conv1d`."""

    _fn = staticmethod(functional.conv1d)
    _sharded = staticmethod(distributed.conv1d)


class Conv2d(_TritonConv, torch.nn.Conv2d):
    """``torch.nn.Conv2d`` computed by :func:`tritonconv.conv2d`: torch's constructor (``in_channels``,
    ``out_channels``, ``kernel_size``, ``stride``, ``padding``, ``dilation``, ``groups``, ``bias``, ``padding_mode``,
    ``device``, ``dtype``; and ``activation``, fused after the bias as the function's ``activation=``),
    parameters and ``state_dict``; the weight is stored channels-innermost
    (:func:`lay_out_weight`). Input ``(N, C_in, H, W)`` or unbatched; dtypes, devices and errors as
    :func:`tritonconv.conv2d`."""

    _fn = staticmethod(functional.conv2d)
    _sharded = staticmethod(distributed.conv2d)


class Conv3d(_TritonConv, torch.nn.Conv3d):
    """``torch.nn.Conv3d`` computed by :func:`tritonconv.conv3d`: torch's constructor (``in_channels``,
    ``out_channels``, ``kernel_size``, ``stride``, ``padding``, ``dilation``, ``groups``, ``bias``, ``padding_mode``,
    ``device``, ``dtype``; and ``activation``, fused after the bias as the function's ``activation=``),
    parameters and ``state_dict``; the weight is stored channels-innermost
    (:func:`lay_out_weight`). Input ``(N, C_in, D, H, W)`` or unbatched; dtypes, devices and errors as
    :func:`tritonconv.conv3d`."""

    _fn = staticmethod(functional.conv3d)
    _sharded = staticmethod(distributed.conv3d)


class _TritonConvTranspose(_Convolution):
    """Mixin over ``torch.nn.ConvTransposeNd``: the transposed convolution runs in tritonconv's kernels."""

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if self.padding_mode != "zeros":  # as torch
            raise ValueError(f"Only `zeros` padding mode is supported for {type(self).__name__}")
        ndim = len(self.kernel_size)
        output_padding = self._output_padding(input, output_size, self.stride, self.padding, self.kernel_size, ndim,
                                              self.dilation)
        fn = self._sharded if _checks.is_dtensor(input) else self._fn
        return fn(input, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups, self.dilation,
                  activation=self.activation)


class ConvTranspose1d(_TritonConvTranspose, torch.nn.ConvTranspose1d):
    """``torch.nn.ConvTranspose1d`` computed by :func:`tritonconv.conv_transpose1d`: torch's constructor
    (``in_channels``, ``out_channels``, ``kernel_size``, ``stride``, ``padding``, ``output_padding``, ``groups``,
    ``bias``, ``dilation``, ``padding_mode`` (``'zeros'`` only, as torch), ``device``, ``dtype``; and
    ``activation``, fused after the bias as the function's ``activation=``), parameters and ``state_dict``;
    ``forward(input, output_size=None)`` as torch's. Errors as
    :func:`tritonconv.conv_transpose1d`."""

    _fn = staticmethod(functional.conv_transpose1d)
    _sharded = staticmethod(distributed.conv_transpose1d)


class ConvTranspose2d(_TritonConvTranspose, torch.nn.ConvTranspose2d):
    """``torch.nn.ConvTranspose2d`` computed by :func:`tritonconv.conv_transpose2d`: torch's constructor
    (``in_channels``, ``out_channels``, ``kernel_size``, ``stride``, ``padding``, ``output_padding``, ``groups``,
    ``bias``, ``dilation``, ``padding_mode`` (``'zeros'`` only, as torch), ``device``, ``dtype``; and
    ``activation``, fused after the bias as the function's ``activation=``), parameters and ``state_dict``;
    ``forward(input, output_size=None)`` as torch's. Errors as
    :func:`tritonconv.conv_transpose2d`."""

    _fn = staticmethod(functional.conv_transpose2d)
    _sharded = staticmethod(distributed.conv_transpose2d)


class ConvTranspose3d(_TritonConvTranspose, torch.nn.ConvTranspose3d):
    """``torch.nn.ConvTranspose3d`` computed by :func:`tritonconv.conv_transpose3d`: torch's constructor
    (``in_channels``, ``out_channels``, ``kernel_size``, ``stride``, ``padding``, ``output_padding``, ``groups``,
    ``bias``, ``dilation``, ``padding_mode`` (``'zeros'`` only, as torch), ``device``, ``dtype``; and
    ``activation``, fused after the bias as the function's ``activation=``), parameters and ``state_dict``;
    ``forward(input, output_size=None)`` as torch's. Errors as
    :func:`tritonconv.conv_transpose3d`."""

    _fn = staticmethod(functional.conv_transpose3d)
    _sharded = staticmethod(distributed.conv_transpose3d)


_SWAP = {torch.nn.Conv1d: Conv1d, torch.nn.Conv2d: Conv2d, torch.nn.Conv3d: Conv3d,
         torch.nn.ConvTranspose1d: ConvTranspose1d, torch.nn.ConvTranspose2d: ConvTranspose2d,
         torch.nn.ConvTranspose3d: ConvTranspose3d}
TORCH_CONVOLUTIONS = tuple(_SWAP)  # torch's classes :func:`convert` converts (and their subclasses)
CONVOLUTIONS = _Convolution  # a module running tritonconv's convolution (with an ``activation``) is one


@dataclasses.dataclass
class ConversionReport:
    """What :func:`convert` found (``str()`` is one line).

    :param converted: class name -> how many of its modules now run tritonconv.
    :param left: class name -> (how many were left on torch, why).
    """

    converted: Counter = dataclasses.field(default_factory=Counter)
    left: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)  # class -> (count, reason)

    def __str__(self) -> str:
        done = ", ".join(f"{name} {n}" for name, n in self.converted.most_common())
        text = f"tritonconv.nn.convert: {sum(self.converted.values())} converted ({done or 'none'})"
        if self.left:
            text += "; left on torch: " + "; ".join(f"{name} {n}: {why}" for name, (n, why) in self.left.items())
        return text


def convert(model: torch.nn.Module, verbose: bool = False, report: bool = False, lay_out_weights: bool = True):
    """Make every convolution of ``model`` run tritonconv, in place; returns ``model`` (or, with
    ``report=True``, a :class:`ConversionReport`; ``verbose=True`` prints it, one line).
    Meta-device models convert too (shapes only: summaries, deferred initialisation).

    Converted: every ``torch.nn.Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``, subclasses included, whose class
    keeps torch's ``forward`` (and ``_conv_forward``): a subclass that only changes ``__init__`` (torchvision's
    ``Conv3DSimple``) becomes a subclass of both, so ``isinstance`` checks and its own methods still hold.
    Left on torch, and named in the report: classes that override those methods (timm's ``Conv2dSame``
    pads in its ``forward``), weights of a dtype or device tritonconv does not run, and lazy modules not
    yet initialised. Parameters, buffers and hooks stay as they are (the modules change class, not
    state), but for a conv's weight, stored channels-innermost (:func:`lay_out_weight`), which the kernels read in
    place and whose gradient they write 16 bytes at a time. ``lay_out_weights=False`` keeps each weight as it lies
    (contiguous for torch's layers; read as README's "Weights and biases" says: copied per call in large problems),
    for code that takes contiguous parameters only: FSDP2's ``fully_shard`` (or shard first, then convert),
    ``torch.nn.utils.prune``, and what flattens parameters with ``.view(-1)`` (``parameters_to_vector``,
    ``torch.optim.LBFGS``).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"convert: expected `model` to be a torch.nn.Module, got {type(model).__name__}")
    found = ConversionReport()
    for module in model.modules():
        base = next((c for c in type(module).__mro__ if c in _SWAP), None)
        if base is None:
            continue
        name = type(module).__name__
        why = None if isinstance(module, _Convolution) else _why_not(module, base)
        if why is not None:
            count = found.left.get(name, (0, why))[0]
            found.left[name] = (count + 1, why)
            continue
        found.converted[name] += 1
        if not isinstance(module, _Convolution):
            module.__class__ = _converted_class(type(module))
            if isinstance(module, _TritonConv):
                (lay_out_weight if lay_out_weights else _note_given_layout)(module)
    if verbose:
        print(found)
    return found if report else model


def revert(model: torch.nn.Module) -> torch.nn.Module:
    """Undo :func:`convert`, in place; returns ``model``: every convolution module running tritonconv (converted, or
    made as ``tritonconv.nn.Conv2d`` ...) becomes the torch class it stands for (a converted subclass its own class
    again), its weight laid out as it was given (:func:`lay_out_weight`), its parameters, buffers and hooks
    otherwise as they are. For what needs torch's own modules: ``torch.jit.script``, ONNX export, a deployment
    without tritonconv. Left as they are: subclasses of tritonconv's modules (their class is their own), the (2+1)D
    and P3D blocks and ``tritonconv.fp8`` layers (quantized weights), which have no torch counterpart. A module
    with a fused ``activation`` (:func:`tritonconv.fuse`) is refused by name, before any module changes.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"revert: expected `model` to be a torch.nn.Module, got {type(model).__name__}")
    torch_class = {ours: theirs for theirs, ours in _SWAP.items()}
    blocks = {id(m) for block in model.modules() if isinstance(block, (Conv2Plus1d, P3DBlock)) for m in block.modules()}
    reverted = [(name, module, theirs) for name, module in model.named_modules()
                if (theirs := type(module).__dict__.get("_torch_class") or torch_class.get(type(module))) is not None
                and id(module) not in blocks]
    for name, module, theirs in reverted:  # all checked before any changes
        if module.activation is not None:
            raise ValueError(f"revert: {name or 'the model'} ({type(module).__name__}) fuses activation="
                             f"{module.activation!r} after its convolution, which torch's {theirs.__name__} cannot: set "
                             f"its `activation` to None and apply the activation after it (torch.nn.functional."
                             f"{module.activation}) before reverting")
    for _, module, theirs in reverted:
        module.__class__ = theirs
        if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)) and not getattr(
                module, "_given_channels_last", False):
            with torch.no_grad():
                module.weight.data = module.weight.data.contiguous()
    return model


def _why_not(module: torch.nn.Module, base: type) -> str | None:
    """Why a torch convolution (an instance of ``base`` or a subclass) cannot be converted, or None."""
    cls = type(module)
    if isinstance(module, torch.nn.modules.lazy.LazyModuleMixin) and module.has_uninitialized_params():
        return "lazy module not yet initialised: convert after its first call"
    if cls.forward is not base.forward:
        return "overrides forward"
    if hasattr(base, "_conv_forward") and cls._conv_forward is not base._conv_forward:
        return "overrides _conv_forward"
    weight = module.weight
    if weight.dtype not in SUPPORTED_DTYPES:
        return f"weight dtype {str(weight.dtype)[6:]} not supported"
    if weight.device.type not in ("cpu", "cuda", "meta"):
        return f"weight device {weight.device.type} not supported"
    return None


_CONVERTED: dict[type, type] = {}


def _converted_class(cls: type) -> type:
    """tritonconv's module for torch's class ``cls``; for a subclass, a class deriving from both (made once)."""
    if cls in _SWAP:
        return _SWAP[cls]
    if cls not in _CONVERTED:
        ours = _SWAP[next(c for c in cls.__mro__ if c in _SWAP)]
        _CONVERTED[cls] = type(cls.__name__, (ours, cls), {
            "__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__,
            "_torch_class": cls, "__reduce_ex__": _reduce_converted})
    return _CONVERTED[cls]


def _reduce_converted(self, protocol: int):
    """Pickle (``torch.save``, ``copy.deepcopy``) a converted subclass as its torch class and state: the class
    made by :func:`_converted_class` exists only in the process that made it."""
    return _restore_converted, (self._torch_class, self.__dict__)


def _restore_converted(cls: type, state: dict) -> torch.nn.Module:
    module = torch.nn.Module.__new__(_converted_class(cls))
    module.__dict__.update(state)
    return module


class Conv2Plus1d(torch.nn.Module):
    """(2+1)D convolution: ``temporal(mid_activation(spatial(x)))`` via :func:`tritonconv.conv2plus1d`.

    ``mid_channels=None`` follows R(2+1)D, ``M = floor(t kh kw C_in C_out / (kh kw C_in + t C_out))``,
    so the block has the parameters of a full ``t x kh x kw`` conv (64 -> 64 at 3x3x3: 144).
    ``stride``/``padding``/``dilation`` are per (t, h, w): h, w go to the spatial conv, t to the temporal.

    :param in_channels: ``C_in``; input ``(N, C_in, T, H, W)`` or unbatched.
    :param out_channels: ``C_out``.
    :param kernel_size: ``(kt, kh, kw)`` or one int.
    :param mid_channels: ``M``, the spatial conv's output channels (R(2+1)D's rule when None).
    :param bias: both convs have a bias.
    :param mid_activation: None or one of :data:`tritonconv.ACTIVATIONS`
        (``'relu'``, ``'gelu'``, ``'leaky_relu(0.2)'``, ...) between the two convs.
    :param device: of the parameters, as torch's modules take it.
    :param dtype: of the parameters.
    :raises ValueError: as :func:`tritonconv.shapes.as_tuple` and :func:`~tritonconv.shapes.resolve_padding`;
        calls raise as :func:`tritonconv.conv2plus1d`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 mid_channels: int | None = None, bias: bool = True, mid_activation: str | None = None,
                 device=None, dtype=None) -> None:
        super().__init__()
        kt, kh, kw = shapes.as_tuple(kernel_size, 3, "kernel_size")
        st, sh, sw = shapes.as_tuple(stride, 3, "stride")
        dt, dh, dw = shapes.as_tuple(dilation, 3, "dilation")
        pads = shapes.resolve_padding(padding, (kt, kh, kw), (st, sh, sw), (dt, dh, dw))
        if mid_channels is None:
            mid_channels = shapes.r2plus1d_mid_channels(in_channels, out_channels, kt, (kh, kw))
        kw_ = dict(bias=bias, device=device, dtype=dtype)
        self.spatial = Conv3d(in_channels, mid_channels, (1, kh, kw), (1, sh, sw), 0, (1, dh, dw), **kw_)
        self.temporal = Conv3d(mid_channels, out_channels, (kt, 1, 1), (st, 1, 1), 0, (dt, 1, 1), **kw_)
        self.padding = pads  # (before, after) per (t, h, w)
        self.mid_activation = mid_activation
        # the constructor's arguments, resolved, as torch's modules keep them
        self.in_channels, self.out_channels, self.mid_channels = in_channels, out_channels, mid_channels
        self.kernel_size, self.stride, self.dilation = (kt, kh, kw), (st, sh, sw), (dt, dh, dw)

    def __prepare_scriptable__(self) -> NoReturn:
        _checks.refuse_scripting(self, _SCRIPT_BLOCKS)

    def forward(self, input: torch.Tensor, fused: bool | None = None) -> torch.Tensor:
        s, t = self.spatial, self.temporal
        # a DTensor: both stages sharded, one after the other (never fused)
        fn = distributed.conv2plus1d if _checks.is_dtensor(input) else functools.partial(conv2plus1d, fused=fused)
        return fn(input, s.weight, t.weight, s.bias, t.bias, (t.stride[0], *s.stride[1:]), self.padding,
                  (t.dilation[0], *s.dilation[1:]), mid_activation=self.mid_activation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, mid_channels={self.mid_channels}, "
                f"mid_activation={self.mid_activation}")


class P3DBlock(torch.nn.Module):
    """Pseudo-3D block (Qiu et al. 2017) of a spatial conv S (``1 x k x k``) and a temporal conv T (``k x 1 x 1``).

    * ``"A"``: ``T(S(x))``, S ``C_in -> C_out``, T ``C_out -> C_out`` (the (2+1)D cascade);
    * ``"B"``: ``S(x) + T(x)``, both ``C_in -> C_out``, in parallel;
    * ``"C"``: ``S(x) + T(S(x))``, S ``C_in -> C_out``, T ``C_out -> C_out``.

    ``activation`` (None, ``'relu'``, ...) is applied to S's output where T reads it (A, C) and
    to each branch (B). Default padding ``'same'`` keeps every branch the same shape; stride
    and padding must keep the summed branches of B and C equal in shape, else a clear error.

    :param in_channels: ``C_in``; input ``(N, C_in, T, H, W)``.
    :param out_channels: ``C_out``.
    :param kernel_size: ``k``, the side of S's ``1 x k x k`` and the length of T's ``k x 1 x 1``.
    :param stride: int or ``(t, h, w)``: S takes h, w, T takes t.
    :param padding: ``'same'``, ``'valid'``, an int or ``(t, h, w)``, split the same way.
    :param variant: ``"A"``, ``"B"`` or ``"C"``.
    :param bias: S and T have biases.
    :param device: of the parameters.
    :param dtype: of the parameters.
    :raises ValueError: an unknown variant; at call time, branches of different shapes.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding="same",
                 variant: str = "A", bias: bool = True, activation: str | None = None, device=None, dtype=None) -> None:
        super().__init__()
        if variant not in ("A", "B", "C"):
            raise ValueError(f"P3DBlock: expected `variant` to be 'A', 'B' or 'C', got {variant!r}")
        kt, kh, kw = shapes.as_tuple(kernel_size, 3, "kernel_size")
        st, sh, sw = shapes.as_tuple(stride, 3, "stride")
        pt, ph, pw = shapes.resolve_padding(padding, (kt, kh, kw), (st, sh, sw))
        kw_ = dict(bias=bias, device=device, dtype=dtype)
        s_stride = (st, sh, sw) if variant == "B" else (1, sh, sw)
        t_stride = (st, sh, sw) if variant == "B" else (st, 1, 1)
        self.spatial = Conv3d(in_channels, out_channels, (1, kh, kw), s_stride, 0, **kw_)
        t_in = in_channels if variant == "B" else out_channels
        self.temporal = Conv3d(t_in, out_channels, (kt, 1, 1), t_stride, 0, **kw_)
        self.variant, self.activation = variant, activation
        self.spatial_padding, self.temporal_padding = ((0, 0), ph, pw), (pt, (0, 0), (0, 0))
        # the constructor's arguments, resolved, as torch's modules keep them
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kt, kh, kw), (st, sh, sw), (pt, ph, pw)

    def _s(self, x):
        s = self.spatial
        return functional.conv3d(x, s.weight, s.bias, s.stride, self.spatial_padding, activation=self.activation)

    def _t(self, x, activation=None):
        t = self.temporal
        return functional.conv3d(x, t.weight, t.bias, t.stride, self.temporal_padding, activation=activation)

    def __prepare_scriptable__(self) -> NoReturn:
        _checks.refuse_scripting(self, _SCRIPT_BLOCKS)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.variant == "A":
            return self._t(self._s(input))
        s = self._s(input)
        t = self._t(input, self.activation) if self.variant == "B" else self._t(s)
        hint = "use padding='same' (stride 1) or a stride/padding that keeps both equal"
        if isinstance(s, torch.fx.Proxy):  # torch.fx's symbolic trace: the graph checks the shapes when it runs
            torch._assert(s.shape == t.shape, f"P3DBlock variant {self.variant}: the branches' shapes differ; {hint}")
        elif s.shape != t.shape:
            raise ValueError(f"P3DBlock variant {self.variant}: the spatial branch gives {tuple(s.shape)} but the "
                             f"temporal branch {tuple(t.shape)}; {hint}")
        return s + t

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, variant={self.variant!r}, activation={self.activation}")


__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "Conv2Plus1d",
           "P3DBlock", "ConversionReport", "convert", "lay_out_weight", "revert", "SUPPORTED_DTYPES"]
