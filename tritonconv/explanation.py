"""``tritonconv.explain``: what a convolution runs on a GPU, and what the cost model predicts of it, with no GPU.

    x = torch.empty(32, 64, 56, 56, dtype=torch.bfloat16, device="meta")  # NCHW; meta: no memory
    w = torch.empty(64, 64, 3, 3, dtype=torch.bfloat16, device="meta")
    print(tritonconv.explain(x, w, padding=1))

For each pass of the layer (forward, input gradient, weight gradient): the problem the kernels run (a stem
packed into channels, axes a kernel of 1 passes over merged), the kernel and the config a call on ``gpu`` takes
(that GPU's tuning cache, the user's or the one shipped with the library, else the heuristic's, a weight gradient's
split count the model's pick, :func:`tritonconv.tuning.default`; with tuning on, a
first call times the cost model's best candidates instead), the multiply-adds it issues over the useful ones,
:mod:`tritonconv.costmodel`'s predicted device time and what limits it most (its multiply-adds, filling the tiles
from L2, issuing the loop's instructions, loops that wait for their MMAs, memory, or the launch itself:
:func:`tritonconv.costmodel.bound`), beside
the model's best candidate and, for NC(D)HW activations, the same pass on channels-last ones. These are
predictions, not measurements: the model's constants come from one GPU session's rows (``benchmarks/NOTES.md`` says
how well they predicted).
"""

from __future__ import annotations

import dataclasses
import itertools
import textwrap
from collections import Counter
from collections.abc import Callable

import torch
from torch._subclasses.fake_tensor import DataDependentOutputException, DynamicOutputShapeException, FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from . import cache, costmodel, geometry, shapes, tuning
from ._checks import conv_spec, shape_spec
from ._descriptors import nc_dealt
from .geometry import DEPTHWISE_KIND, Config, Problem
from .kernels import banded

PASSES = {"forward": "conv", "input gradient": "conv_t", "weight gradient": "conv_wgrad"}
TMA_NAMES = ("H100", "H200", "H800", "H20", "GH200", "B100", "B200", "GB200")
"""Parts of the names of GPUs with a tensor memory accelerator (Hopper, Blackwell), for :func:`explain`."""

KERNELS = {"_conv_kernel": "pointer GEMM", "_conv_tma_kernel": "descriptor (TMA) GEMM",
           "_conv_weight_grad_kernel": "pointer GEMM", "_conv_weight_grad_tma_kernel": "descriptor (TMA) GEMM",
           "_depthwise_kernel": "depthwise (FMA)", "_depthwise_weight_grad_kernel": "depthwise (FMA)",
           "_banded_kernel": "depthwise (tensor cores, banded taps)",
           "_banded_weight_grad_kernel": "depthwise (tensor cores, banded taps)"}


@dataclasses.dataclass(frozen=True)
class Pass:
    """One pass of a layer as a GPU call runs it (see the module docstring)."""

    name: str  # "forward", "input gradient" or "weight gradient"
    problem: Problem  # as the kernels run it
    config: Config
    source: str  # where the config comes from: "cache", "bucket" (a tuned shape's of the same kind) or "default"
    # (the heuristic's, a weight gradient's split count the model's: tuning.default)
    kernel: str  # the kernel, in words
    issued: float  # multiply-adds issued (padding, tile edges) over the useful ones
    predicted_ms: float  # the model's device time (a packed layer's packing launches included)
    bound: str  # what limits the kernel's launch most, in the model's words (costmodel.bound)
    best: Config  # the model's best candidate of the tuner's
    best_ms: float
    channels_last_ms: float | None  # NC(D)HW activations: the same pass on channels-last ones; else None


@dataclasses.dataclass(frozen=True)
class Explanation:
    """:func:`explain`'s answer; ``str()`` renders it, a block of lines per pass."""

    op: str
    written: Problem  # the forward problem as the caller wrote it
    gpu: str
    fitted: bool  # the model's constants were fitted on rows of this GPU (else a sibling's carried, or a datasheet's)
    constants: str  # where they come from, in words (tritonconv.costmodel.constants)
    passes: tuple[Pass, ...]

    def __str__(self) -> str:
        p = self.written
        layout = "channels-last" if p.layout == "channels_last" else "NC(D)HW"
        lines = textwrap.wrap(f"{self.op}: input {p.input_shape}, weight {p.weight_shape}, stride {p.stride}, padding "
                              f"{p.padding}, dilation {p.dilation}, groups {p.groups}; {p.dtype}"
                              f"{' (TF32 products)' * p.tf32}, {layout} activations", 100, subsequent_indent="  ")
        lines += textwrap.wrap(f"on {self.gpu}; cost model {self.constants}: predicted device times, not measurements", 100,
                               subsequent_indent="  ")
        for s in self.passes:
            head = f"{s.predicted_ms:.4f} ms, bound by {s.bound}"
            if s.channels_last_ms is not None:
                ratio = s.predicted_ms / s.channels_last_ms
                head += f" (channels-last activations: {s.channels_last_ms:.4f} ms" + (
                    f", {ratio:.2f}x less)" if ratio > 1.1 else ")")
            best = "the same" if s.best == s.config else f"{config_text(s.best)}: {s.best_ms:.4f} ms"
            if s.best_ms < s.predicted_ms / 1.1:
                best += f", {s.predicted_ms / s.best_ms:.2f}x less time; a tuning on that GPU times it"
            lines += ["", f"{s.name:<16} {head}",
                      *_field("kernel", s.kernel),
                      *_field("config", f"{config_text(s.config)} ({s.source}), issuing {s.issued:.2f}x the useful "
                                        "multiply-adds"),
                      *_field("model's best", best)]
        return "\n".join(lines)


def _field(name: str, text: str, width: int = 100) -> list[str]:
    """``name`` and ``text`` as indented lines of at most ``width`` characters, continued under the text."""
    return textwrap.wrap(text, width, initial_indent=f"  {name:<15}", subsequent_indent=" " * 17,
                         break_on_hyphens=False)


def config_text(cfg: Config) -> str:
    """A config in a few words: tiles (rows x columns x reduction step), warps, and what else it asks."""
    text = f"{cfg.block_m}x{cfg.block_n}x{cfg.block_k} w{cfg.num_warps} s{cfg.num_stages}"
    if cfg.tile_h:
        text += f" patch {cfg.tile_b}x{cfg.tile_h}" + (" planes" if cfg.planes else "")
    if cfg.split_k > 1:
        text += f" split {cfg.split_k}"
    if cfg.fold:
        text += f" fold {cfg.fold}"
    return text + (" relayout" if cfg.relayout else "")


def describe(written: Problem, problem: Problem, config: Config) -> str:
    """The kernel a pass runs, in words: its family, and how it reads the layer (:func:`config_text` gives the
    tiles)."""
    ran, cfg = costmodel.launched(problem, config)
    kernel = costmodel.kernel_of(problem, config)
    words = [KERNELS[kernel]]
    if problem.groups != written.groups:  # narrow groups merged, the weight block-diagonal
        words.append(f"groups merged {written.groups // problem.groups} at a time, block-diagonal")
    elif problem.weight_shape[1] != written.weight_shape[1]:  # a stem's positions packed into its channels
        words.append(f"packed {written.weight_shape[1]}->{problem.weight_shape[1]} ch")
    elif problem.input_shape != written.input_shape:
        words.append("axes merged")
    if config.relayout:
        words.append("on channels-last copies")
    elif kernel.startswith("_conv") and costmodel.by_rows(ran, cfg):
        rows, planes = costmodel.row_reads(ran, cfg)
        dy_vec, x_vec, _ = costmodel.wgrad_runs(ran, cfg)
        runs, _ = costmodel.tap_runs(ran, cfg)
        if ran.kind == "conv_wgrad":
            as_m = costmodel.x_as_m(ran, cfg)
            words.append("NC(D)HW rows" + (f", dY in runs of {dy_vec}" if dy_vec > 1 else "")
                         + (f", x in runs of {x_vec}" if x_vec > 1 else "")
                         + (", x moved as the MMA's first operand" if as_m else ""))
        elif runs > 1:
            words.append(f"NC(D)HW rows, each tap's in runs of {runs}")
        elif not rows.vec:
            words.append("NC(D)HW rows")
        elif planes:
            words.append("NC(D)HW planes as rows, aligned")
        else:
            words.append("NC(D)HW rows, aligned" + (f", dealt into {rows.deal} phases" if rows.deal > 1 else "")
                         + (f", in segments {rows.step} apart" if rows.segments > 1 else "")
                         + (", each tap's products moved" if rows.each else ""))
    elif kernel.startswith("_banded"):
        taps = " x ".join(map(str, ran.weight_shape[2:]))
        seg_rows = tuning.banded_reading(ran, cfg).rows
        segment = f"{seg_rows} x {cfg.block_m // seg_rows}" if seg_rows > 1 else f"{cfg.block_m}"
        words.append(f"{taps} taps banded, windows of {banded.rows(ran.spec, cfg)} inputs for segments of {segment}"
                     + (", NC(D)HW rows in runs" if costmodel.banded_reads(ran, cfg).startswith("runs") else ""))
        if ran.kind == "conv_dw_wgrad" and cfg.split_k > 1:
            programs = banded.tiling(ran.output_shape, ran.spec, cfg, tuning.banded_reading(ran, cfg))[2]
            words.append(f"{programs} splits met in the kernel")
    elif kernel.startswith("_depthwise") and ran.layout == "contiguous":
        runs = costmodel.depthwise_runs(ran, cfg)
        words.append("NC(D)HW rows" + (f", in runs of {runs}" if runs else "")
                     + (", one width tap's taps a program" if runs and ran.kind == "conv_dw_wgrad" else ""))
    elif costmodel.nc_rows(ran, cfg):
        words.append("NC(D)HW rows whole" + (", dealt into 2 phases" if nc_dealt(ran.spec) else "")
                     + (", each tap's products moved" if costmodel.nc_rows(ran, cfg) == 2 else ""))
    elif costmodel.nc_flat(ran, cfg):
        if tuning.volumes_as_rows(ran, cfg):
            words.append("NC(D)HW volumes as rows, x's runs read on in registers, the rows' and planes' seams masked")
        else:
            words.append("NC(D)HW planes as rows, x's runs read on in registers, the rows' seams "
                         + ("taken out" if ran.kind == "conv_wgrad" else "masked"))
    elif costmodel.nc_runs(ran, cfg):
        words.append("NC(D)HW boxes, x's runs read on in registers")
    elif cfg.tile_h and cfg.planes and ran.kind == "conv_wgrad":
        words.append("planes as rows, the rows' seams taken out")
    if costmodel.folds(ran, cfg):
        words.append("taps folded")
    if kernel.startswith("_conv_weight_grad"):  # a split reduction's partials: met in the kernel, or a second launch
        launch = costmodel.gemm_launch(ran, cfg)
        if launch.grid[1] > 1:
            words.append(f"{launch.grid[1]} splits " + ("met in the kernel" if launch.meet else "added by a second launch"))
    return ", ".join(words)


def _plan(written: Problem, device: costmodel.Device, tma: bool) -> tuple[Problem, Config, str]:
    """The problem run, and the config a call on ``device`` takes with no tuning, and where it comes from."""
    problem = written.as_run()
    hit = cache.lookup(device.name, problem)
    cfg, source = hit if hit else (costmodel.default(problem, device, tma), "default")
    return problem, cfg, source


def explain(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1, padding=0,
            dilation=1, groups: int = 1, *, gpu: str = "NVIDIA H200", tma: bool | None = None) -> Explanation:
    """What ``conv{1,2,3}d(input, weight, bias, stride, padding, dilation, groups)`` runs on a GPU called ``gpu``,
    pass by pass, and the cost model's predictions of it; nothing runs and no memory is needed (``device="meta"``
    tensors serve). The arguments are checked as the convolution checks them. fp8 operands (``tritonconv.fp8``'s
    ``float8_e4m3fn`` or ``float8_e5m2``): its forward only.

    :param input: the layer's input: its shape, dtype and layout (NC(D)HW or channels-last) are what count.
    :param weight: the layer's weight, ``(C_out, C_in / groups, *kernel)``.
    :param bias: the layer's bias, or None (checked only).
    :param stride: as ``torch.nn.functional.conv2d``'s.
    :param padding: as ``torch.nn.functional.conv2d``'s (``'same'``, ``'valid'`` too).
    :param dilation: as ``torch.nn.functional.conv2d``'s.
    :param groups: as ``torch.nn.functional.conv2d``'s.
    :param gpu: the GPU's name as ``torch.cuda.get_device_name()`` gives it: its tuning cache and fitted constants
        (:func:`tritonconv.costmodel.device_for`: where none were fitted, a fitted sibling's carried by their
        datasheets, or the H200 datasheet's).
    :param tma: the GPU has a tensor memory accelerator (compute capability 9.0 and up), which the descriptor
        kernels use; None: as its name says (:data:`TMA_NAMES`).
    """
    for name, t in (("input", input), ("weight", weight)):
        if not isinstance(t, torch.Tensor):
            hint = ": a model's layers, tritonconv.explain_model(model, x)" if isinstance(t, torch.nn.Module) else ""
            raise TypeError(f"explain: expected `{name}` to be a torch.Tensor, got {type(t).__name__}{hint}")
    ndim = weight.dim() - 2
    dtype = str(input.dtype).removeprefix("torch.")
    quantised = dtype.startswith("float8")  # tritonconv.fp8's forward
    op = f"fp8.conv{ndim}d" if quantised else f"conv{ndim}d"
    if ndim not in (1, 2, 3):
        raise ValueError(f"explain: expected `weight` of 3 to 5 dimensions (conv1d to conv3d), got {weight.dim()}")
    if quantised and weight.dtype != input.dtype:
        raise TypeError(f"explain: expected `weight` dtype {input.dtype} as the fp8 input's, got {weight.dtype}")
    spec = (shape_spec if quantised else conv_spec)(op, ndim, input, weight, bias, stride, padding, dilation, groups)
    layout = geometry.layout_of(input if input.dim() == ndim + 2 else input.unsqueeze(0))
    device, constants = costmodel.constants(gpu)
    tma = any(name in gpu for name in TMA_NAMES) if tma is None else tma
    depthwise = shapes.is_depthwise(spec.input_shape, spec.weight_shape, spec.groups)
    if quantised and depthwise:
        raise ValueError(f"explain: {op} refuses depthwise layers (groups == input channels, {spec.groups})")
    tf32 = geometry.allows_tf32(input.dtype)  # as a GPU would multiply now

    def written(kind: str) -> Problem:  # the layer as the caller wrote it, for the pass of ``kind``
        kind = DEPTHWISE_KIND[kind] if depthwise else kind
        return Problem(kind, dtype, layout, spec.input_shape, spec.weight_shape, spec.output_shape, spec.stride,
                       spec.padding, spec.dilation, spec.groups, tf32)

    useful = shapes.conv_macs(spec.input_shape, spec.weight_shape, spec.output_shape)
    passes = []
    for name, kind in list(PASSES.items())[:1] if quantised else PASSES.items():  # fp8: inference, forward only
        layer = written(kind)
        problem, cfg, source = _plan(layer, device, tma)
        model = costmodel.predicting(device)
        best = tuning.ranked(problem, tuning.candidates(problem, tma=tma, sm_count=device.sms, predict=model) or [cfg],
                             model)[0]
        channels_last = None
        if layout == "contiguous":
            inner = dataclasses.replace(layer, layout="channels_last")
            channels_last = 1e3 * costmodel.pass_seconds(inner, _plan(inner, device, tma)[1], device)
        passes.append(Pass(name, problem, cfg, source, describe(layer, problem, cfg),
                           costmodel.issued(problem, cfg)[0] / max(useful, 1),
                           1e3 * costmodel.pass_seconds(layer, cfg, device), costmodel.bound(problem, cfg, device), best,
                           1e3 * costmodel.pass_seconds(layer, best, device), channels_last))
    return Explanation(op, written("conv"), device.name, costmodel.fitted(gpu) is not None, constants, tuple(passes))


# --- a whole model -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Call:
    """One convolution a model runs, as far as its cost goes: the operands' sizes, strides and dtypes, the arguments,
    and which gradients a training step takes of it. A transposed convolution (``op`` ``"conv_transpose"``) is
    recorded as the convolution it transposes (``input`` shaped as that one's input: the transposed op's output)."""

    op: str  # "conv", "conv_transpose" or "conv_fp8"
    input: tuple  # (shape, strides, dtype)
    weight: tuple
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int
    grads: tuple[bool, bool]  # (the input's, the weight's) gradient taken in training

    def explain(self, gpu: str, tma: bool | None) -> Explanation:
        x, w = (torch.empty_strided(shape, strides, dtype=dtype, device="meta") for shape, strides, dtype in
                (self.input, self.weight))
        return explain(x, w, None, self.stride, self.padding, self.dilation, self.groups, gpu=gpu, tma=tma)


def _about(t: torch.Tensor) -> tuple:
    return tuple(t.shape), tuple(t.stride()), t.dtype


def _pairs(padding) -> tuple[tuple[int, int], ...]:
    """A custom op's flat ``[before, after, ...]`` padding as pairs."""
    return tuple(zip(padding[::2], padding[1::2]))


def _call(func, args: tuple) -> _Call | None:
    """The :class:`_Call` of a dispatched op: torch's ``aten.convolution`` (what ``F.conv*`` and ``torch.nn.Conv*``
    run) or tritonconv's custom ops (its calls on fake tensors); None for any other op."""
    name = func.name()
    if name == "aten::convolution":
        x, w, _, stride, padding, dilation, transposed, output_padding, groups = args
        if transposed:  # the convolution transposed: its input is this op's output
            sizes = [shapes.conv_transpose_output_size(n, k, s, p, o, d) for n, k, s, p, o, d in
                     zip(x.shape[2:], w.shape[2:], stride, padding, output_padding, dilation)]
            return _transposed(x, w, (x.shape[0], w.shape[1] * groups, *sizes), stride,
                               tuple((p, p) for p in padding), dilation, groups)
        return _Call("conv", _about(x), _about(w), tuple(stride), tuple((p, p) for p in padding), tuple(dilation),
                     groups, (x.requires_grad, w.requires_grad))
    if name == "tritonconv::conv":
        x, w, _, stride, padding, dilation, groups = args[:7]
        return _Call("conv", _about(x), _about(w), tuple(stride), _pairs(padding), tuple(dilation), groups,
                     (x.requires_grad, w.requires_grad))
    if name == "tritonconv::conv_transpose":
        x, w, _, output_shape, stride, padding, dilation, groups = args[:8]
        return _transposed(x, w, tuple(output_shape), stride, _pairs(padding), dilation, groups)
    if name == "tritonconv::conv_fp8":  # inference only
        x, w, _, _, _, stride, padding, dilation, groups = args[:9]
        return _Call("conv_fp8", _about(x), _about(w), tuple(stride), _pairs(padding), tuple(dilation), groups,
                     (False, False))
    return None


def _transposed(x: torch.Tensor, w: torch.Tensor, output_shape: tuple, stride, padding, dilation, groups) -> _Call:
    """A transposed convolution of ``x`` as the convolution it transposes, whose input is laid out as tritonconv
    writes the transposed op's output (:func:`tritonconv.geometry.output_memory_format`)."""
    fmt = geometry.output_memory_format(x, w)
    out = torch.empty(output_shape, dtype=x.dtype, device="meta").contiguous(memory_format=fmt)
    return _Call("conv_transpose", _about(out), _about(w), tuple(stride), tuple(padding), tuple(dilation), groups,
                 (x.requires_grad, w.requires_grad))


class _Recorder(TorchDispatchMode):
    """Every convolution dispatched inside the block (:func:`_call`), in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[_Call] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        call = _call(func, args)
        if call is not None:
            self.calls.append(call)
        return func(*args, **(kwargs or {}))


TRANSPOSED_PASSES = {"forward": "input gradient", "input gradient": "forward", "weight gradient": "weight gradient"}
"""A transposed convolution's passes, as the passes of the convolution it transposes (:func:`explain`'s)."""


@dataclasses.dataclass(frozen=True)
class Layer:
    """A convolution of a model (calls with the same operands' shapes, layouts and arguments), with the passes a
    step runs: ``runs`` maps each pass's name, in the layer's own terms, to :func:`explain`'s pass that computes it
    (a transposed convolution's forward is its transpose's input gradient, :data:`TRANSPOSED_PASSES`)."""

    calls: int
    op: str  # "conv", "conv_transpose" or "conv_fp8"
    explanation: Explanation
    runs: dict[str, Pass]

    @property
    def ms(self) -> float:
        """Predicted device time of every call's passes."""
        return self.calls * sum(p.predicted_ms for p in self.runs.values())

    @property
    def channels_last_ms(self) -> float:
        """The same with channels-last activations (this layer's own time where they are already)."""
        return self.calls * sum(p.channels_last_ms or p.predicted_ms for p in self.runs.values())

    def text(self) -> str:
        """The layer in a few words: op, channels, kernel, stride, dilation, groups, input sizes, dtype, layout."""
        p = self.explanation.written
        ndim = len(p.weight_shape) - 2
        c_out, c_in = p.weight_shape[0], p.weight_shape[1] * p.groups
        if self.op == "conv_transpose":  # its own input and output channels, and its input's sizes
            c_in, c_out, sizes = c_out, c_in, p.output_shape
        else:
            sizes = p.input_shape
        kernel = "x".join(map(str, p.weight_shape[2:]))
        words = [f"{'convT' if self.op == 'conv_transpose' else 'conv'}{ndim}d",
                 f"{c_in}->{c_out}", f"k{kernel}" + (f"/{_dims(p.stride)}" if max(p.stride) > 1 else "")]
        words += [f"d{_dims(p.dilation)}"] * (max(p.dilation) > 1) + [f"g{p.groups}"] * (p.groups > 1)
        words += ["x".join(map(str, (sizes[0], *sizes[2:]))),
                  DTYPE_WORDS.get(p.dtype, p.dtype),
                  "CL" if p.layout == "channels_last" else "NC"]
        return " ".join(words)


DTYPE_WORDS = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "float64": "fp64", "float8_e4m3fn": "fp8e4m3",
               "float8_e5m2": "fp8e5m2"}


def _dims(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


COLUMNS = {"forward": "fwd ms", "input gradient": "dx ms", "weight gradient": "dw ms"}


@dataclasses.dataclass(frozen=True)
class ModelExplanation:
    """:func:`explain_model`'s answer: the model's convolutions in the order they first ran; ``str()`` renders a
    table of them and the totals. Predicted device times on ``gpu``, not measurements."""

    gpu: str
    fitted: bool
    constants: str  # where the constants come from, in words (tritonconv.costmodel.constants)
    training: bool
    layers: tuple[Layer, ...]
    left: tuple[str, ...]  # convolutions tritonconv leaves to torch, with the reason

    @property
    def ms(self) -> float:
        """Predicted device time of the convolutions of one call (with ``training``: forward and backward)."""
        return sum(layer.ms for layer in self.layers)

    @property
    def channels_last_ms(self) -> float:
        """The same, with every activation channels-last."""
        return sum(layer.channels_last_ms for layer in self.layers)

    def __str__(self) -> str:
        calls = sum(layer.calls for layer in self.layers)
        lines = textwrap.wrap(f"{calls} convolution call{'s' * (calls != 1)}, {len(self.layers)} distinct, "
                              f"{'forward and backward' if self.training else 'forward only'}, on {self.gpu}; "
                              f"cost model {self.constants}: predicted device times of all a layer's calls, not "
                              "measurements; - : a pass the step does not run; NC: NC(D)HW activations, CL: channels-last", 100)
        if not self.layers:  # every convolution left to torch
            return "\n".join([*lines, "", "left to torch (tritonconv does not run them):",
                              *(f"  {text}" for text in self.left)])
        lines += ["", f"{'#':>3} {'calls':>5}  {'layer':<44}" + "".join(f"{c:>10}" for c in COLUMNS.values())
                  + f"{'share':>7}"]
        total = self.ms or 1.0
        for i, layer in enumerate(self.layers, 1):
            cells = "".join(f"{layer.runs[name].predicted_ms * layer.calls:>10.4f}" if name in layer.runs
                            else f"{'-':>10}" for name in COLUMNS)
            first, *rest = textwrap.wrap(layer.text(), 44)  # a long one goes on under itself
            lines.append(f"{i:>3} {layer.calls:>5}  {first:<44}{cells}{100 * layer.ms / total:>6.1f}%")
            lines += [f"{'':>11}{more}" for more in rest]
        by_pass = {name: sum(layer.calls * layer.runs[name].predicted_ms for layer in self.layers if name in layer.runs)
                   for name in COLUMNS}
        lines += ["", f"total {self.ms:.4f} ms: " + ", ".join(f"{name}s {ms:.4f}" for name, ms in by_pass.items() if ms)]
        if self.channels_last_ms < self.ms / 1.05:
            lines += textwrap.wrap(f"with channels-last activations: {self.channels_last_ms:.4f} ms, "
                                   f"{self.ms / self.channels_last_ms:.2f}x less (model.to(memory_format="
                                   "torch.channels_last), and the inputs)", 100)
        if self.left:
            lines += ["", "left to torch (tritonconv does not run them):", *(f"  {text}" for text in self.left)]
        return "\n".join(lines)


def explain_model(model: Callable, *inputs, gpu: str = "NVIDIA H200", tma: bool | None = None,
                  training: bool = True, **kwargs) -> ModelExplanation:
    """What tritonconv runs for every convolution of ``model(*inputs, **kwargs)`` on a GPU called ``gpu``, and the
    cost model's predicted device times (:func:`explain`, layer by layer), without running it: the model runs on
    fake tensors (``FakeTensorMode``: shapes, strides and dtypes only, no memory, no kernel), its parameters and
    buffers untouched. It records torch's convolutions (``F.conv*``, ``torch.nn.Conv*``, transposed ones too)
    and tritonconv's (``tritonconv.nn`` layers, ``tritonconv.enabled()``, ``tritonconv.fp8``): what
    ``tritonconv.enable()`` or ``tritonconv.nn.convert`` would run on tritonconv, as the model is given: a converted
    model's layers keep their weights channels innermost and write the layouts torch's would (NC(D)HW in, NC(D)HW
    out), as the same model routed does. With ``training``, each layer's
    backward too: the input gradient where its input requires one (not a model input's), the weight gradient
    where its weight does (not a frozen layer's). Predictions, not measurements.

    :param model: a ``torch.nn.Module`` (run through ``torch.func.functional_call`` on fake copies of its
        parameters and buffers; a model built on ``device="meta"`` serves) or any callable.
    :param inputs: the model's inputs, real or ``device="meta"`` tensors: their shapes, dtypes and layouts count.
    :param gpu: as :func:`explain`'s.
    :param tma: as :func:`explain`'s.
    :param training: count the backward passes (else the forwards only).
    :raises ValueError: the model runs no convolution, or reads its tensors' values (``.item()``, a branch on a
        tensor), which fake tensors do not have.
    """
    if not callable(model):
        raise TypeError(f"explain_model: expected `model` to be a module or a function, got {type(model).__name__}")
    recorder = _Recorder()
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    device = next((t.device for t in params if t.device.type != "meta"), torch.device("cpu"))  # where meta tensors go
    with FakeTensorMode(allow_non_fake_inputs=True) as fake:
        def faked(t):
            if not isinstance(t, torch.Tensor):
                return t
            if t.device.type == "meta":  # no data to convert: a fake tensor of its layout on the model's device
                return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=device).requires_grad_(
                    t.requires_grad)
            return fake.from_tensor(t)

        fake_inputs, fake_kwargs = tree_map(faked, (inputs, kwargs))
        with torch.enable_grad() if training else torch.no_grad(), recorder:
            try:
                if isinstance(model, torch.nn.Module):
                    state = {name: faked(t) for name, t in
                             itertools.chain(model.named_parameters(), model.named_buffers())}
                    torch.func.functional_call(model, state, fake_inputs, fake_kwargs)
                else:
                    model(*fake_inputs, **fake_kwargs)
            except (DataDependentOutputException, DynamicOutputShapeException) as err:
                raise ValueError(f"explain_model: the model reads its tensors' values ({err}: `.item()`, a branch on "
                                 "a tensor, a data-dependent shape), which fake tensors do not have; explain its "
                                 "layers with tritonconv.explain") from err
    if not recorder.calls:
        raise ValueError("explain_model: the model ran no convolution (torch's or tritonconv's)")
    layers, left = [], []
    for call, calls in Counter(recorder.calls).items():
        try:
            explanation = call.explain(gpu, tma)
        except (TypeError, ValueError) as err:
            left.append(f"{calls} x {call.op} {call.input[0]} {call.weight[0]}: {err}")
            continue
        passes = {p.name: p for p in explanation.passes}
        taken = {"forward": True, "input gradient": call.grads[0] and training,
                 "weight gradient": call.grads[1] and training}
        names = TRANSPOSED_PASSES if call.op == "conv_transpose" else {name: name for name in COLUMNS}
        runs = {name: passes[names[name]] for name in COLUMNS if taken[name] and names[name] in passes}
        layers.append(Layer(calls, call.op, explanation, runs))
    device, constants = costmodel.constants(gpu)
    return ModelExplanation(device.name, costmodel.fitted(gpu) is not None, constants, training, tuple(layers), tuple(left))


__all__ = ["Explanation", "Layer", "ModelExplanation", "Pass", "config_text", "describe", "explain", "explain_model"]
