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
from L2, issuing the loop's instructions, memory, or the launch itself: :func:`tritonconv.costmodel.bound`), beside
the model's best candidate and, for NC(D)HW activations, the same pass on channels-last ones. These are
predictions, not measurements: the model's constants come from one GPU session's rows (``benchmarks/NOTES.md`` says
how well they predicted).
"""

from __future__ import annotations

import dataclasses
import textwrap

import torch

from . import cache, costmodel, geometry, shapes, tuning
from ._checks import conv_spec, shape_spec
from ._descriptors import nc_dealt
from .geometry import DEPTHWISE_KIND, Config, Problem

PASSES = {"forward": "conv", "input gradient": "conv_t", "weight gradient": "conv_wgrad"}
TMA_NAMES = ("H100", "H200", "H800", "H20", "GH200", "B100", "B200", "GB200")
"""Parts of the names of GPUs with a tensor memory accelerator (Hopper, Blackwell), for :func:`explain`."""

KERNELS = {"_conv_kernel": "pointer GEMM", "_conv_tma_kernel": "descriptor (TMA) GEMM",
           "_conv_weight_grad_kernel": "pointer GEMM", "_conv_weight_grad_tma_kernel": "descriptor (TMA) GEMM",
           "_depthwise_kernel": "depthwise (FMA)", "_depthwise_weight_grad_kernel": "depthwise (FMA)"}


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
    fitted: bool  # the model's constants were fitted on rows of this GPU (else the H200 datasheet's)
    passes: tuple[Pass, ...]

    def __str__(self) -> str:
        p = self.written
        layout = "channels-last" if p.layout == "channels_last" else "NC(D)HW"
        model = "fitted on its measured rows" if self.fitted else "the H200 datasheet's constants (none fitted for it)"
        lines = textwrap.wrap(f"{self.op}: input {p.input_shape}, weight {p.weight_shape}, stride {p.stride}, padding "
                              f"{p.padding}, dilation {p.dilation}, groups {p.groups}; {p.dtype}"
                              f"{' (TF32 products)' * p.tf32}, {layout} activations", 100, subsequent_indent="  ")
        lines += textwrap.wrap(f"on {self.gpu}; cost model {model}: predicted device times, not measurements", 100,
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
    if problem.weight_shape[1] != written.weight_shape[1]:  # a stem's positions packed into its channels
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
            words.append("NC(D)HW rows" + (f", dY in runs of {dy_vec}" if dy_vec > 1 else "")
                         + (f", x in runs of {x_vec}" if x_vec > 1 else ""))
        elif runs > 1:
            words.append(f"NC(D)HW rows, each tap's in runs of {runs}")
        elif not rows.vec:
            words.append("NC(D)HW rows")
        elif planes:
            words.append("NC(D)HW planes as rows, aligned")
        else:
            words.append("NC(D)HW rows, aligned" + (f", dealt into {rows.deal} phases" if rows.deal > 1 else "")
                         + (", each tap's products moved" if rows.each else ""))
    elif kernel.startswith("_depthwise") and ran.layout == "contiguous":
        runs = costmodel.depthwise_runs(ran, cfg)
        words.append("NC(D)HW rows" + (f", in runs of {runs}" if runs else "")
                     + (", one width tap's taps a program" if runs and ran.kind == "conv_dw_wgrad" else ""))
    elif costmodel.nc_rows(ran, cfg):
        words.append("NC(D)HW rows whole" + (", dealt into 2 phases" if nc_dealt(ran.spec) else "")
                     + (", each tap's products moved" if costmodel.nc_rows(ran, cfg) == 2 else ""))
    elif costmodel.nc_flat(ran, cfg):
        words.append("NC(D)HW planes as rows, x's runs read on in registers, the rows' seams taken out")
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
        (:func:`tritonconv.costmodel.device_for`; the H200 datasheet's where none were fitted).
    :param tma: the GPU has a tensor memory accelerator (compute capability 9.0 and up), which the descriptor
        kernels use; None: as its name says (:data:`TMA_NAMES`).
    """
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
    device = costmodel.device_for(gpu)
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
    return Explanation(op, written("conv"), device.name, costmodel.fitted_path(gpu).exists(), tuple(passes))


__all__ = ["Explanation", "Pass", "config_text", "describe", "explain"]
