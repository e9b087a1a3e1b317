"""What a launch computes and how its tensors are laid out: the ground every kernel stands on.

* :class:`Problem` (what a launch computes, as far as the choice of config is concerned) and
  :class:`Config` (a kernel's tile sizes and launch parameters), the kinds of kernel launch;
* the problem the kernels run (:func:`run_spec`: stems packed, narrow groups merged, axes a kernel of 1 passes
  over merged), and the kernels' 3-D view of every problem (a 1-D input ``(N, C, L)`` is ``(N, C, 1, 1, L)``, a
  2-D one ``(N, C, 1, H, W)``, through sizes and strides only), the int64 decision;
* layouts (channels innermost or not), output allocation and memory format, the split-size
  rule and the sum of split partials.

Nothing here launches a kernel or chooses a config; the shape algebra itself is
:mod:`tritonconv.shapes`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, fields

import torch
import triton.language as tl

from . import shapes
from ._checks import ConvSpec
from .shapes import cdiv, next_power_of_2

INT32_MAX = 2**31 - 1

KINDS = ("conv", "conv_t", "conv_wgrad", "conv_dw", "conv_dw_t", "conv_dw_wgrad")
"""Kernels with a config: forward, transposed (input gradient), weight gradient; then the same
three for depthwise layers, which run :mod:`tritonconv.kernels.depthwise` instead."""
DEPTHWISE_KIND = {"conv": "conv_dw", "conv_t": "conv_dw_t", "conv_wgrad": "conv_dw_wgrad"}


@dataclass(frozen=True)
class Config:
    """Tile sizes and launch parameters of a kernel, in its GEMM's terms (rows, columns, reduction)."""

    block_m: int  # GEMM rows per program (forward: output positions)
    block_n: int  # GEMM columns per program (forward: output channels)
    block_k: int  # reduction step (forward: input channels)
    group_m: int = 8  # row tiles sharing a column tile (L2 swizzle)
    num_warps: int = 4
    num_stages: int = 3
    split_k: int = 1  # independent partial sums over the reduction (weight gradient; small outputs)
    fold: int = 0  # taps folded (few input channels per group): 1 into the forward's reduction; 1 (W), 2 (H, W) wgrad columns
    tile_h: int = 0  # > 0: the tensor-descriptor kernels (kernels.tma), patches of tile_b x tile_h x tile_w positions
    tile_b: int = 1  # images per descriptor patch (channels-innermost reads only): small planes fill a tile
    relayout: int = 0  # 1: NC(D)HW activations read copied channels innermost first (a tuning candidate, tuning.relaid)
    planes: int = 0  # 1: a channels-innermost weight gradient's one-row descriptor patches run along planes read as rows

    @property
    def accumulator(self) -> int:
        """The fp32 accumulator's elements per thread: ``BLOCK_M * BLOCK_N / (32 * num_warps)``."""
        return self.block_m * self.block_n // (32 * self.num_warps)

    def patch(self, positions: int) -> tuple[int, int, int]:
        """A descriptor config's patch of ``positions`` output positions (``block_m``; the weight gradient's
        ``block_k``): ``(images, rows, columns)``."""
        return self.tile_b, self.tile_h, positions // (self.tile_b * self.tile_h)

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        names = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Problem:
    """What a launch computes, as far as the choice of config is concerned."""

    kind: str  # one of KINDS
    dtype: str  # "float32", "float16", "bfloat16"
    layout: str  # "contiguous" or "channels_last" (of the tensor read)
    input_shape: tuple[int, ...]  # the forward problem's input (N, C_in, *spatial)
    weight_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int
    tf32: bool = False  # float32 products in TF32 (torch's matmul precision "high" or "medium", compiled kernels)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"expected kind to be one of {KINDS}, got {self.kind!r}")
        if self.tf32 and self.dtype != "float32":
            raise ValueError(f"tf32 applies to float32 problems only, got dtype {self.dtype!r}")
        if self.kind.startswith("conv_dw") != shapes.is_depthwise(self.input_shape, self.weight_shape, self.groups):
            raise ValueError(f"kind {self.kind!r} does not fit groups={self.groups}, input {self.input_shape}, "
                             f"weight {self.weight_shape}: depthwise layers take the conv_dw* kinds, others not")

    @classmethod
    def of(cls, kind: str, dtype: str, layout: str, input_shape, weight_shape, stride=1, padding=0, dilation=1,
           groups: int = 1, output_shape=None, as_run: bool = True, tf32: bool = False) -> Problem:
        """Build from convolution arguments (e.g. :func:`tritonconv.shapes.suite_problem`'s dict): the problem
        the kernels run (:func:`run_spec`: stems packed, axes a kernel of 1 passes over merged), as the dispatch runs
        it, unless not ``as_run`` (the layer as written: launches measured before the dispatch packed and merged)."""
        ndim = len(weight_shape) - 2
        stride, dilation = shapes.as_tuple(stride, ndim, "stride"), shapes.as_tuple(dilation, ndim, "dilation")
        pads = shapes.resolve_padding(padding, weight_shape[2:], stride, dilation)
        out = shapes.conv_output_shape(input_shape, weight_shape, stride, pads, dilation, groups)
        written = cls(kind, dtype, layout, tuple(input_shape), tuple(weight_shape), out, stride, pads, dilation, groups,
                      tf32)
        return written.as_run() if as_run else written

    def as_run(self) -> Problem:
        """The problem the kernels run for this one as written (:func:`run_spec`: stems packed, axes a kernel of 1
        passes over merged), as the dispatch runs it."""
        pack = self.kind in ("conv", "conv_t", "conv_wgrad")
        # the packed input, read, is laid out channels innermost whatever the caller's
        layout = "channels_last" if pack and self.kind != "conv_t" and pack_factors(self.spec, itemsize=self.itemsize) \
            else self.layout
        spec = run_spec(self.spec, pack, self.kind == "conv_t", self.itemsize)
        return Problem(self.kind, self.dtype, layout, spec.input_shape, spec.weight_shape, spec.output_shape,
                       spec.stride, spec.padding, spec.dilation, spec.groups, self.tf32)

    @classmethod
    def for_launch(cls, kind: str, tensor: torch.Tensor, spec: ConvSpec, layout: str | None = None,
                   tf32: bool = False) -> Problem:
        """The problem of a kernel launch: ``tensor`` is the one read (dtype; layout unless given), ``spec``
        the checked convolution, ``tf32`` whether its float32 products are TF32 (:func:`allows_tf32`)."""
        return cls(kind, str(tensor.dtype)[6:], layout or layout_of(tensor), spec.input_shape, spec.weight_shape,
                   spec.output_shape, spec.stride, spec.padding, spec.dilation, spec.groups, tf32)

    @property
    def gemm(self) -> tuple[int, int, int]:
        """(rows, columns, reduction channels) of the kernel's GEMM, per group."""
        c_out, c_in_g = self.weight_shape[:2]
        c_out_g = c_out // self.groups
        if self.kind == "conv":
            return self.output_shape[0] * math.prod(self.output_shape[2:]), c_out_g, c_in_g
        if self.kind == "conv_t":
            return self.input_shape[0] * math.prod(self.input_shape[2:]), c_in_g, c_out_g
        # depthwise kernels (no GEMM): tiles of positions x every channel; the taps or positions summed
        if self.kind == "conv_dw":
            return self.output_shape[0] * math.prod(self.output_shape[2:]), c_out, self.taps
        if self.kind == "conv_dw_t":
            return self.input_shape[0] * math.prod(self.input_shape[2:]), self.input_shape[1], self.taps * c_out_g
        if self.kind == "conv_dw_wgrad":
            return self.taps, c_out, self.output_shape[0] * math.prod(self.output_shape[2:])
        return c_out_g, c_in_g, self.output_shape[0] * math.prod(self.output_shape[2:])

    @property
    def reads(self) -> list[tuple[int, ...]]:
        """The shapes of the activations a launch of this kind reads: the input (forward), the output gradient
        (input gradient), both (weight gradient)."""
        return {"conv": [self.input_shape], "conv_t": [self.output_shape],
                "conv_wgrad": [self.input_shape, self.output_shape]}[self.kind.replace("_dw", "")]

    @property
    def itemsize(self) -> int:
        """Bytes per operand element."""
        return shapes.DTYPE_BYTES[self.dtype]

    @property
    def spec(self) -> ConvSpec:
        """The problem as a checked, batched convolution (what a kernel's ``Launch`` takes)."""
        return ConvSpec(len(self.stride), self.stride, self.padding, self.dilation, self.groups, self.input_shape,
                        self.weight_shape, self.output_shape, False)

    @property
    def taps(self) -> int:
        return math.prod(self.weight_shape[2:])

    @property
    def by_phase(self) -> bool:
        """An input gradient strided on some axis: the kernels run it by stride phase (the descriptor kernel unsplit)."""
        return self.kind == "conv_t" and any(s != 1 for s in self.stride)

    def key(self) -> str:
        """Exact cache key."""
        pads = "x".join(f"{b},{a}" for b, a in self.padding)
        return (f"{self.kind}|{self.dtype}|{self.layout}|x={_dims(self.input_shape)}|w={_dims(self.weight_shape)}"
                f"|s={_dims(self.stride)}|p={pads}|d={_dims(self.dilation)}|g={self.groups}{self._tf32_tag}")

    @property
    def _tf32_tag(self) -> str:
        """The keys' last field: ``|tf32`` for TF32 products (none else, so IEEE keys read as before it existed)."""
        return "|tf32" if self.tf32 else ""

    @classmethod
    def from_key(cls, key: str) -> Problem:
        """The problem whose :meth:`key` is ``key`` (a cache entry's)."""
        kind, dtype, layout, *fields = key.split("|")
        tf32 = fields[-1] == "tf32"
        f = dict(field.split("=", 1) for field in fields[:len(fields) - tf32])

        def dims(text: str) -> tuple[int, ...]:
            return tuple(int(v) for v in text.split("x"))

        x, w, stride, dilation, groups = dims(f["x"]), dims(f["w"]), dims(f["s"]), dims(f["d"]), int(f["g"])
        pads = tuple(tuple(int(v) for v in pair.split(",")) for pair in f["p"].split("x"))
        out = shapes.conv_output_shape(x, w, stride, pads, dilation, groups)
        return cls(kind, dtype, layout, x, w, out, stride, pads, dilation, groups, tf32)

    def bucket(self) -> str:
        """Bucket key: the exact key with batch and spatial sizes replaced by the row count's power of two."""
        rows = self.gemm[2] if self.kind.endswith("wgrad") else self.gemm[0]
        return (f"{self.kind}|{self.dtype}|{self.layout}|c={self.input_shape[1]}|w={_dims(self.weight_shape)}"
                f"|s={_dims(self.stride)}|d={_dims(self.dilation)}|g={self.groups}|rows~{next_power_of_2(rows)}"
                f"{self._tf32_tag}")


def _dims(values) -> str:
    return "x".join(str(v) for v in values)


# --- layouts -----------------------------------------------------------------------------------

def layout_of(t: torch.Tensor) -> str:
    """``"channels_last"`` when channels are innermost and dense (NLC, NHWC, NDHWC), else ``"contiguous"``.

    Any other strided view is tuned as ``"contiguous"``. From sizes and strides only (cheap per call).
    """
    size, stride = t.shape, t.stride()
    if t.dim() < 3 or size[1] == 1 or t.is_contiguous():
        return "contiguous"
    expected = 1
    for d in (1, *range(t.dim() - 1, 1, -1), 0):
        if size[d] != 1 and stride[d] != expected:
            return "contiguous"
        expected *= size[d]
    return "channels_last"


CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}  # torch's names for NHWC, NDHWC


def to_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """``t`` stored in ``layout`` (``"channels_last"`` also for 1-D: (N, C, L) viewing NLC memory).
    One torch call where torch has a memory format for the rank (each call costs microseconds)."""
    if layout == "contiguous" or t.dim() < 3:
        return t.contiguous()
    fmt = CHANNELS_LAST.get(t.dim())
    if fmt is not None:
        out = t.contiguous(memory_format=fmt)
        if out.stride(1) == 1 or out.shape[1] == 1:  # torch keeps a layout it finds ambiguous (size-1 dims)
            return out
    return t.movedim(1, -1).contiguous().movedim(-1, 1)


def empty_channels_inner(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised ``(N, C, *spatial)`` tensor with channels innermost (NLC, NHWC, NDHWC memory)."""
    n = len(shape)
    fmt = CHANNELS_LAST.get(n)
    if fmt is not None:
        return torch.empty(shape, dtype=dtype, device=device, memory_format=fmt)
    return torch.empty((shape[0], *shape[2:], shape[1]), dtype=dtype, device=device).permute(0, n - 1, *range(1, n - 1))


def channels_inner(t: torch.Tensor) -> torch.Tensor:
    """``t`` with dimension 1 of stride 1 (NLC, NHWC, NDHWC memory): a copy unless it already is.

    The GEMM kernels reduce over channels: a weight with its reduction channels innermost loads its
    tiles as vectors (:data:`WEIGHT_COPY_MACS`); ``tritonconv.nn`` keeps its weights this way.
    """
    return t if is_channels_inner(t) else to_layout(t, "channels_last")


WEIGHT_COPY_MACS = 1 << 27
"""A GEMM pass whose weight has neither channel axis innermost (torch's ``(C_out, C_in, *k)`` layout for
more than one tap: channel stride ``prod(k)``) copies it channels-innermost first when it issues more
multiply-adds than this; below it, the weight is read in place. Activations are never copied. The
weight's tiles, read through strides, cost one 32-byte sector per element, about ``macs / BLOCK_M``
sectors over the launch: at 4 sectors per clock per SM on 132 SMs (an H100/H200), ``macs / 6e13``
seconds, which passes the copy's few microseconds (one small launch) near ``2**27`` multiply-adds. A
prediction, for a GPU to measure (``benchmarks.dispatch``). ``tritonconv.nn.Conv1d/2d/3d`` keep their
weights laid out, so their forward copies nothing."""


def weight_copy_pays(input_shape, weight_shape, output_shape) -> bool:
    """Whether a GEMM pass copies a weight with neither channel axis innermost (:data:`WEIGHT_COPY_MACS`)."""
    return shapes.conv_macs(input_shape, weight_shape, output_shape) > WEIGHT_COPY_MACS


def width_inner(t: torch.Tensor) -> bool:
    """Whether the last (width, length) axis of a batched ``(N, C, *spatial)`` tensor is its innermost and
    the channels are not (NCL, NCHW, NCDHW memory): the GEMM kernels then tile positions by rows
    (:func:`row_block`), so that a tile's loads and stores run along that axis."""
    return t.stride(-1) == 1 and t.shape[-1] > 1 and not is_channels_inner(t)


def stored_across(y: torch.Tensor, width_stride: int) -> bool:
    """Whether a pass by stride phase stores its tiles transposed (``Y_ACROSS``, :func:`tritonconv._tile.store_across`):
    an NC(D)HW output (:func:`width_inner`) strided along its width, whose phases' positions are ``width_stride``
    apart, no run along either axis of a tile."""
    return width_stride > 1 and width_inner(y)


def row_block(positions: int, width: int, block: int) -> int:
    """``BLOCK_W``: how many consecutive positions of a row (``width`` wide, ``positions`` in all) a tile of
    ``block`` positions takes (a power of two from 8 to ``block``; the rest of the tile is further rows),
    or 0 for flat tiles (rows under 4 wide).

    The one whose tiles pad the positions least (masked lanes are multiply-adds issued for nothing), the
    widest among equals (longer runs of consecutive addresses): rows 7, 14, 28, 56, 112 wide take 8, 16,
    32, 8, 16 when there are many rows; a few long 1-D rows take ``block``."""
    if width < 4:
        return 0
    sizes = [1 << i for i in range(3, block.bit_length()) if 1 << i <= block] or [block]
    return min(sizes, key=lambda bw: (position_tiles(positions, width, block, bw), -bw))


def run_vec(t: torch.Tensor) -> int:
    """The longest runs, in elements, that a width-innermost tensor's rows can be read in from run boundaries: the
    largest power of two of at most 16 bytes dividing its width and every other stride (1: none)."""
    vec = 16 // t.element_size()
    while vec > 1 and any(n % vec for n in (t.shape[-1], *strides_3d(t)[:4])):
        vec //= 2
    return vec


def run_kind(shift: int, vec: int) -> int:
    """How a pointer kernel reads NC(D)HW rows for a width tap that shifts their columns by ``shift``, with runs of
    ``vec`` (the weight gradient's ``x``, :func:`wgrad_runs`; a forward's or input gradient's, :func:`row_runs`):
    ``r + 1`` for the runs from the boundary ``r = shift mod vec`` columns below the tap's: 1, the runs themselves;
    above 1, each run and the next, read ``r`` columns on in registers (:func:`tritonconv._tile.shift_runs`); 0 for
    ``vec`` 1, an element at a time."""
    return shift % vec + 1 if vec > 1 else 0


def tap_shifts(kernel_w: int, stride_w: int, pad_w: int, dilation_w: int, transposed: bool) -> list[int]:
    """The columns each width tap shifts a row tile's reads by, where consecutive positions read consecutive columns:
    ``t*d - p`` (a forward at unit stride, or the weight gradient's ``x``); an input gradient's ``(q + p - t*d) / s``
    for each stride phase ``q`` and tap ``t`` reaching it (each tap reaches one phase)."""
    if not transposed:
        return [t * dilation_w - pad_w for t in range(kernel_w)]
    step, phases = shapes.phase_taps(kernel_w, stride_w, pad_w, dilation_w)
    return [(q + pad_w - (first + m * step) * dilation_w) // stride_w
            for q, (first, count) in enumerate(phases) for m in range(count)]


RUNS_NEAR_BYTES = 8
"""Runs at least this long (bytes) in which every tap is at most a column off a run boundary are kept over 16-byte runs
at any offset (:func:`run_length`)."""


def run_length(vec: int, shifts: list[int], itemsize: int, per_thread: int) -> int:
    """The runs, at most ``vec`` elements, in which a tile reads rows that the width taps shift by ``shifts``: the
    longest in which every tap is at most a column off a run boundary (offsets 0, 1 or ``v - 1``), where those
    are :data:`RUNS_NEAR_BYTES` or more or the tile holds fewer than two runs of ``vec`` per thread (``per_thread``
    elements); else runs of ``vec`` whatever the offsets. From the sm_90 SASS (bf16, ``benchmarks.static --rows``, per
    MMA): a funnel costs some 20-35 instructions per step over the same runs at a boundary, runs of 8 save some 8 over
    runs of 4 (``r2plus1d18_l3``'s temporal forward, shifts 4 off runs of 8: 48.5 in runs of 4, 56.5 in runs of 8);
    9 taps on a tile of 4 elements per thread cost more in longer runs (``telemetry_k9``'s weight gradient: 62, 69, 75
    in runs of 2, 4, 8), 16 per thread less (its forward: 80, 75, 69; ``deeplab_3x3_d2``'s weight gradient, shifts of
    2: 86 in runs of 2, 73 in runs of 8)."""
    near = next(v for v in (vec >> i for i in range(vec.bit_length())) if all(t % v in (0, 1, v - 1) for t in shifts))
    if near * itemsize >= RUNS_NEAR_BYTES or per_thread < 2 * vec:
        return near
    return vec


def row_runs(x: torch.Tensor, positions: int, width_out: int, kernel_w: int, stride_w: int, pad_w: int,
             dilation_w: int, transposed: bool, block: int, per_thread: int) -> tuple[int, int]:
    """NC(D)HW row tiles (the exact ones, :func:`row_block`) that read ``x`` at each width tap's columns in runs: ``(vec,
    kinds)``, runs of ``vec`` elements from run boundaries (:func:`run_kind` per tap: the runs at a tap's columns, or
    each run and the next read some columns on in registers; :func:`run_length`, ``per_thread`` the elements of the
    tile of ``x`` each thread holds), a loop for each way some tap reads (bit ``k`` of ``kinds``); ``(0, 0)``: not.
    Consecutive positions must read consecutive columns: a forward at unit width stride, or an input gradient (by
    stride phase: a phase's positions read dy at unit steps, tap ``t`` of phase ``q`` shifted by ``(q + p - t*d) /
    s``). The input's width and strides multiples of the run, so its zero padding is whole runs; positions past a row
    read what they read and are not stored. For the launches :func:`aligned_rows` declines (rows of no whole tile, few
    steps per tap)."""
    if not width_inner(x) or (stride_w != 1 and not transposed) or not row_block(positions, width_out, block):
        return 0, 0
    shifts = tap_shifts(kernel_w, stride_w, pad_w, dilation_w, transposed)
    vec = run_length(run_vec(x), shifts, x.element_size(), per_thread)
    if vec < 2:
        return 0, 0
    return vec, sum(1 << k for k in {run_kind(t, vec) for t in shifts})


def wgrad_runs(grad_output: torch.Tensor, input: torch.Tensor, spec: ConvSpec, block_w: int, fold: int,
               per_thread: int) -> tuple[int, int, int]:
    """How the weight gradient's pointer kernel reads NC(D)HW rows (tiles of ``block_w`` output columns, a power of two of
    at least 8; 0: flat tiles, none): ``(DY_VEC, X_VEC, X_KINDS)``. ``dY`` is read at its own columns, in runs of
    ``DY_VEC`` elements from run boundaries wherever its strides and width allow (:func:`run_vec`; 1: an element at a
    time). ``x`` is read at the columns a tap shifts them to, ``s*ow + kw*dw - pw`` (width stride ``s``): in runs of
    ``X_VEC`` as :func:`run_kind` says for each tap (:func:`run_length`, ``per_thread`` the elements of the tile of ``x``
    each thread holds at unit stride; unfolded taps, the output's width a multiple of the run's ``X_VEC / s`` positions;
    else 1); at a width stride of 2 or 4 each run holds ``X_VEC / s`` positions' ``s`` columns, dealt in registers
    (:func:`tritonconv._tile.deal`), in runs of 8 bytes or more with every tap at most a column off a run boundary, two
    runs per thread (sm_90 SASS, bf16, instructions per MMA: ``resnet50_l2_3x3s2`` 166 -> 112, ``r3d18_l2_s2`` 120 -> 97;
    ``downsample_k7_s4``'s 7 taps 79 -> 85 and ``ct_anisotropic``'s 4 elements per thread 63 -> 70 had they been dealt;
    ``resnet50_ds_1x1s2``'s rows of 14, runs of 4 bytes, compiled to 2-byte loads). ``X_KINDS``, bit ``k`` set where some
    tap reads ``x`` in way ``k`` (one loop each). A run's mask is its first element's: every bound a run could cross (the
    input's and the output's widths, a tile's) falls on a run boundary."""
    if not block_w:
        return 1, 1, 1
    dy_vec = run_vec(grad_output) if width_inner(grad_output) else 1
    deal = spec.stride[-1]
    x_vec = run_vec(input) if width_inner(input) and deal in (1, 2, 4) and not fold else 1
    while x_vec >= deal and spec.output_shape[-1] % (x_vec // deal):  # a run's positions all in the rows or all past
        x_vec //= 2
    shifts = tap_shifts(spec.weight_shape[-1], 1, spec.padding[-1][0], spec.dilation[-1], False)
    if deal == 1:
        x_vec = run_length(min(x_vec, block_w), shifts, input.element_size(), per_thread)
    else:  # dealt: runs of 8 bytes or more with every tap at most a column off, two a thread (the census, below)
        x_vec = run_length(min(x_vec, deal * block_w), shifts, input.element_size(), 0)
        x_vec = x_vec if x_vec >= deal and x_vec * input.element_size() >= 8 and deal * per_thread >= 2 * x_vec else 1
    return min(dy_vec, block_w), x_vec, sum(1 << k for k in {run_kind(t, x_vec) for t in shifts})


ALIGNED_MIN_STEPS = 2
"""The fewest main-loop steps per width tap for which :func:`aligned_rows` pays: a move of the sum costs some 160-330
instructions, where an aligned step saves some 100 over a 2-byte one (sm_90 SASS, ``python -m benchmarks.static
--rows``: the 1-D layer with 9 taps of one step each issued 3x the channels-last loop's instructions per MMA, one with
two steps 1.3x)."""

ALIGNED_ROWS_PAD = 1.15
"""The most positions aligned row tiles (:func:`aligned_rows`) may issue over the exact row tiles' (rows of 56, 28, 14
in 64, 32, 16: 1.14x)."""


@dataclass(frozen=True)
class AlignedRows:
    """How the pointer kernel reads NC(D)HW rows in aligned runs (:func:`aligned_rows`): runs of ``vec`` elements,
    tiles ``block_w`` columns wide, a row in ``segments`` tiles starting ``step`` columns apart (one: whole rows);
    ``each``: each width tap's products moved to their columns (whole rows), not the sum between taps; ``deal``: a
    forward's width stride, its rows read ``deal`` times as wide and dealt into phases (whole rows or segments)."""

    vec: int = 0
    block_w: int = 0
    step: int = 0
    segments: int = 1
    each: bool = False
    deal: int = 1


ALIGNED_EACH_ACCUMULATOR = 32
"""The most accumulator elements per thread (``BLOCK_M * BLOCK_N / (32 * num_warps)``) for which :func:`aligned_rows`
holds each tap's products apart (a second accumulator): ptxas for sm_90 fits 32 in 128-179 registers and spilled at
64 (128 x 64 tiles on 4 warps, 128 x 128 on 8)."""


def aligned_rows(x: torch.Tensor, width_out: int, positions: int, kernel_w: int, stride_w: int, pad_w: int,
                 dilation_w: int, transposed: bool, block: int, steps: int, accumulator: int = 0) -> AlignedRows:
    """NC(D)HW row tiles that read the input at their own columns, in runs that start on ``vec``-element boundaries
    (at most 16 bytes: vector loads, asynchronous copies on a GPU); ``vec = 0``: not.

    A width tap ``t`` reads column ``ow + s_t`` (``s_t = t*d - p``; the transposed pass ``p - t*d``): one element
    off for a 3x3 layer, which starts every run off its boundary. Read at the position's own column ``c`` instead,
    the taps' products belong to output column ``c - s_t``. The kernel adds them tap by tap, moving the sum along the
    tile's rows between taps (a gather per tap and tile, not per step; :func:`moved_first`'s order, ending at the least
    shift ``s >= 0`` or the largest), and stores column ``c`` at ``c - s``, in runs (:func:`stored_runs`). A tile then
    holds a whole row (``block_w``, a power of
    two, at least the input's width and ``width_out + s_max``), or a segment of a long one: tiles of ``block`` columns
    ``step`` apart (a multiple of ``vec``, at most ``block - (k-1)*d``: each output's taps inside one tile, each
    output stored by one). A row whose slack for the moving sum would cost a wider tile (64 columns and 'same'
    padding: 66) is held whole at its own width instead, each tap's products summed apart and moved ``-s_t`` columns
    into the sum (``each``: a second accumulator, a move per tap; what leaves the row is a padding column's).
    Taken where it issues at most :data:`ALIGNED_ROWS_PAD` times the exact row tiles' positions and the main loop
    runs at least :data:`ALIGNED_MIN_STEPS` ``steps`` per width tap, and the input's width and other strides
    multiples of ``vec`` (2 at least); the moving sum needs ``s_max >= 0``, the
    products held apart at most :data:`ALIGNED_EACH_ACCUMULATOR` ``accumulator`` elements per thread.
    Where no tap moves (a kernel 1 wide, no padding) the exact row tiles read aligned as they are. A width stride:
    the input gradient runs by stride phase (each phase's positions read dy at unit steps, its taps' shifts
    ``d / gcd(s, d)`` apart: the sum moves where no phase's shifts are negative; whole rows only); a forward strided
    by :data:`DEALT_STRIDES` reads its rows dealt into phases (``deal``, :func:`_dealt`, runs of at least
    :data:`DEALT_RUN_BYTES`; whole rows or segments)."""
    width = x.shape[-1]
    reach = (kernel_w - 1) * dilation_w  # the columns between a tile's first and last tap
    s_max = pad_w if transposed else reach - pad_w
    phased = transposed and stride_w > 1  # by stride phase: each phase's taps, d / gcd(s, d) apart in shift
    if phased:  # the largest shift of each phase's taps (its first tap's); the sum moves only where none is negative
        _, taps = shapes.phase_taps(kernel_w, stride_w, pad_w, dilation_w)
        shifts = [(q + pad_w - first * dilation_w) // stride_w for q, (first, count) in enumerate(taps) if count]
        s_max = max(shifts) if min(shifts, default=-1) >= 0 else -1
    if not width_inner(x) or block < 8 or (stride_w != 1 and not transposed and stride_w not in DEALT_STRIDES):
        return AlignedRows()
    vec = run_vec(x)
    exact = row_block(positions, width_out, block)
    if vec < 2 or not exact:
        return AlignedRows()
    if stride_w > 1 and not transposed:  # (runs under 8 bytes read twice the bytes for little: 2-byte rows serve)
        if vec * x.element_size() < DEALT_RUN_BYTES:
            return AlignedRows()
        return _dealt(width, width_out, positions, reach, pad_w, stride_w, vec, exact, block, steps, accumulator)
    if kernel_w == 1 and pad_w == 0:  # no tap moves: the exact row tiles, aligned, a row's width tiles its segments
        return AlignedRows(min(vec, exact), exact, exact, -(-width_out // exact))
    if steps < ALIGNED_MIN_STEPS:
        return AlignedRows()
    whole = max(8, next_power_of_2(max(width, width_out + s_max)))
    step = (block - reach) // vec * vec  # segments of block columns; the outputs a segment stores start reach - s_max in
    options = [AlignedRows(min(vec, whole), whole, whole)] if whole <= block and s_max >= 0 else []
    if step >= vec and s_max >= 0 and not phased:
        options.append(AlignedRows(vec, block, step, max(1, -(-(width_out - (reach - s_max)) // step))))
    own = max(8, next_power_of_2(max(width, width_out)))  # whole rows, each tap's products moved
    if own <= block and accumulator <= ALIGNED_EACH_ACCUMULATOR:
        options.append(AlignedRows(min(vec, own), own, own, 1, True))
    return _narrowest(options, positions, width_out, block, exact)


def _narrowest(options: list[AlignedRows], positions: int, width_out: int, block: int, exact: int) -> AlignedRows:
    """Of :func:`aligned_rows`' options, the narrowest among those whose tiles issue at most :data:`ALIGNED_ROWS_PAD`
    times the exact row tiles' (``exact`` columns wide) positions; else none."""
    rows = positions // width_out
    allowed = ALIGNED_ROWS_PAD * position_tiles(positions, width_out, block, exact)
    options = [o for o in options if position_tiles(rows * o.segments * o.block_w, o.segments * o.block_w, block,
                                                    o.block_w) <= allowed]
    return min(options, key=lambda o: o.segments * o.block_w, default=AlignedRows())


DEALT_STRIDES = (2, 4)
"""The width strides whose forward reads its rows aligned, dealt into phases (:func:`aligned_rows`)."""

DEALT_RUN_BYTES = 8
"""The shortest runs a dealt forward reads (:func:`aligned_rows`): rows of 14 in bf16 (runs of 4 bytes) issued 1.35x
the 2-byte rows' instructions per MMA in the sm_90 SASS (``resnet50_ds_1x1s2``: 93 against 69), rows of 56 (16 bytes)
0.58x (``resnet50_l2_3x3s2``: 81 against 140, the moves spread over the steps)."""


DEALT_SEGMENT_STRIDES = (2,)
"""The width strides whose forward deals a long row in segments (:func:`aligned_rows`). sm_90 SASS of the default
config (128 x 64 x 32, 8 warps; ``benchmarks.static``), instructions per MMA with the moves between taps, 2-byte rows
-> segments: stride 2, 3 taps, 384 channels (Whisper's second layer) 120 -> 75, 128 channels 120 -> 86, 64 channels
120 -> 102, a 2-D 3 x 3 layer over rows of 3840, 64 channels, 152 -> 89; stride 4, 7 taps (``downsample_k7_s4``),
64 channels 134 -> 243 and 256 channels 134 -> 147, 179 registers where the 2-byte rows took 112: a row read four
times as wide and seven unrolled tap loops, each with its pipeline's prologue and epilogue."""


def _dealt(width: int, width_out: int, positions: int, reach: int, pad: int, stride: int, vec: int, exact: int,
           block: int, steps: int, accumulator: int) -> AlignedRows:
    """:func:`aligned_rows` for a forward's width stride ``s``: a tile of whole output rows ``block_w`` wide reads
    ``s * block_w`` input columns from the first (at least the row), dealt into phases; tap ``t`` reads column
    ``s*ow + t*d - p = s*(ow + sigma_t) + q_t`` (floors), phase ``q_t``, its products belonging ``sigma_t`` columns
    left, moved as for unit strides (the sum by ``sigma_{t+1} - sigma_t`` between taps, at least 0: ``block_w`` holds
    ``width_out + sigma_max``; or each tap's products). A kernel 1 wide, no padding: phase 0, nothing moves. A row
    longer than a tile: segments of ``block`` dealt columns ``step`` apart (a multiple of the run, at most ``block -
    (sigma_max - sigma_min)``; a segment reads ``s * block`` input columns from ``s * seg * step``), the sum moving;
    segment ``seg`` stores outputs ``[seg*step - sigma_min, (seg+1)*step - sigma_min)`` (the first from 0: what it
    lacks below is padding)."""
    if steps < ALIGNED_MIN_STEPS and (reach or pad):
        return AlignedRows()
    s_min, s_max = -pad // stride, (reach - pad) // stride  # (Python floors)
    least = max(8, next_power_of_2(-(-width // stride)))  # s * block_w >= width
    whole = max(least, next_power_of_2(width_out + max(s_max, 0)))
    own = max(least, next_power_of_2(width_out))
    options = [AlignedRows(min(vec, whole), whole, whole, 1, False, stride)] if whole <= block and s_max >= 0 else []
    step = (block - (s_max - s_min)) // vec * vec
    if step >= vec and s_max >= 0 and stride in DEALT_SEGMENT_STRIDES:
        options.append(AlignedRows(vec, block, step, max(1, -(-(width_out + s_min) // step)), False, stride))
    if own <= block and accumulator <= ALIGNED_EACH_ACCUMULATOR and (reach or pad):
        options.append(AlignedRows(min(vec, own), own, own, 1, True, stride))
    return _narrowest(options, positions, width_out, block, exact)


def row_shifts(kernel_w: int, stride_w: int, pad_w: int, dilation_w: int, transposed: bool, deal: int = 1) -> list[int]:
    """The width taps' shifts along the rows of a pointer row tile that moves its sum (:func:`aligned_rows`), in
    increasing order, where every program runs the same taps: a forward's ``t*d - p`` (dealt, ``floor((t*d - p) /
    deal)``), a unit-stride input gradient's ``p - t*d``; ``[]`` for an input gradient by stride phase (each phase its
    own taps, no shift negative)."""
    if transposed:
        return [] if stride_w > 1 else sorted(pad_w - t * dilation_w for t in range(kernel_w))
    return [(t * dilation_w - pad_w) // deal for t in range(kernel_w)]


def shift_order(shifts: list[int]) -> list[int]:
    """The order in which a kernel moving its sum along the rows runs taps of increasing ``shifts`` (their places in
    that order): those of negative shift in increasing shift, then the others in decreasing shift, so that the sum
    ends at the least shift ``s >= 0`` (0 wherever a tap reads the output's own column: 'same' padding, none). Column
    ``c`` then holds output column ``c - s``, and the epilogue's runs of columns start where the output's rows do. No
    partial sum of an output column leaves the tile on the way: it sits at ``o + s``, inside while ``s >= 0`` (the
    tile holds ``width_out + s_max`` columns, or a segment's outputs' taps), and before that only where its products
    so far read the padding (zero)."""
    neg = sum(s < 0 for s in shifts)
    return list(range(neg)) + list(range(len(shifts) - 1, neg - 1, -1))


def moved_first(shifts: list[int], dealt: bool = False) -> int:
    """How many of a pointer row tile's width taps (``shifts``, increasing: :func:`row_shifts`) its moving sum runs
    first in increasing shift (the kernel's ``NEG``), the others after them in decreasing shift: those of negative
    shift (:func:`shift_order`), where the kernel unrolls its taps (each move then a constant step): a dealt row's, and
    rows of at most :data:`UNROLLED_TAPS` taps of which at most one is negative (3 x 3 'same' padding, none); else
    every one, the sum ending at the largest shift, the taps in one loop: where at most one is not negative that is the
    same order (unrolled, a transposed 'valid' layer's three taps took 4-11 registers more: one program an SM of 8 warps
    instead of two), and 'same' padding of more taps moves the sum right by two different steps and left (unrolled, 9
    taps took 52 instructions more between each two than the runs saved once; in one loop of branches, the compiler
    made the two right moves one of a step it could not see, and held their indices in registers)."""
    neg = sum(s < 0 for s in shifts)
    if dealt or (len(shifts) <= UNROLLED_TAPS and neg <= 1 and neg < len(shifts) - 1):
        return neg
    return len(shifts)


UNROLLED_TAPS = 9
"""The most width taps a pointer row tile moving its sum in :func:`shift_order`'s order unrolls (:func:`moved_first`):
the suite's widest such kernel's (a 1-D layer's 9)."""


def stored_runs(y: torch.Tensor, shift: int | None = None, lead: int = 0, slack: int | None = None,
                most: int = 16) -> int:
    """The pointer kernel's ``Y_ALIGN`` for an NC(D)HW output ``y`` whose row tiles hold runs of a row's columns from
    column ``-shift`` on (:func:`shift_order`'s last shift): the most positions (a power of two, at most 16 bytes and
    ``most``) of which ``shift``, the width and every stride of an axis longer than 1 are multiples, the width's
    stride 1, so that the epilogue stores that many at once (1: one at a time). A row in segments (``slack`` given):
    a segment's outputs start at ``lead`` (the least shift's negation) rounded up to a multiple, at most ``slack``
    columns past it; 1 where ``lead < 0`` (every shift above 0: the kernel rounds ``lead`` up as a nonnegative). 1 too
    where no shift is computed (``shift`` None: the rows at their own columns) and the width and those strides are
    multiples of 16, which Triton's specialisation of integer arguments tells the compiler itself (the hint's
    arithmetic, a few instructions, then buys nothing)."""
    sizes, strides = (*y.shape[:2], *as_3d(tuple(y.shape[2:]), 1)), strides_3d(y)
    if (y.shape[-1] > 1 and strides[-1] != 1) or lead < 0:
        return 1
    if shift is None and not (y.shape[-1] % 16 or any(n > 1 and st % 16 for n, st in zip(sizes[:-1], strides[:-1]))):
        return 1
    shift = shift or 0
    runs = min(most, 16 // y.element_size())
    while runs > 1 and (shift % runs or y.shape[-1] % runs or -lead % runs > (slack if slack is not None else runs)
                        or any(n > 1 and st % runs for n, st in zip(sizes[:-1], strides[:-1]))):
        runs //= 2
    return runs


@dataclass(frozen=True)
class AlignedPlanes:
    """A forward's NC(D)HW planes read as flattened rows (:func:`aligned_planes`): the sizes the kernel sees of the
    input (``(..., (KH-1)*dh + 1, OH*W)``, the height taps ``dh*W`` apart) and of the output (``(..., 1, OH*W -
    (KW-1)*dw)``, at the input's pitch ``W``), and the rows' :class:`AlignedRows`."""

    read: tuple[int, ...]
    written: tuple[int, ...]
    rows: AlignedRows


def aligned_planes(x: torch.Tensor, out_shape: tuple[int, ...], spec: ConvSpec, block: int, steps: int,
                   accumulator: int = 0) -> AlignedPlanes | None:
    """A forward with no padding and unit stride in height and width, over NC(D)HW planes whose rows are contiguous,
    read as one long row per plane (the output at the input's pitch: columns past the output width computed and not
    stored, one output row's taps never reaching the next input row): aligned segments across the rows
    (:func:`aligned_rows`), where rows longer than a tile waste the last segment of each (KernelBench's 2-D rows of
    256 and 512 with 7 and 9 taps: 1.27-1.54x). Taken where the planes' segments issue at most
    :data:`ALIGNED_ROWS_PAD` times the exact row tiles' positions of the rows as they are; else None."""
    if x.dim() < 4 or not width_inner(x) or spec.weight_shape[-1] == 1 or x.stride(-2) != x.shape[-1]:
        return None
    if tuple(spec.stride[-2:]) != (1, 1) or any(p != (0, 0) for p in spec.padding[-2:]):
        return None
    kh, kw = spec.weight_shape[-2:]
    width, (oh, ow) = x.shape[-1], out_shape[-2:]
    planes = out_shape[0] * math.prod(out_shape[2:-2])
    read = (*x.shape[:-2], (kh - 1) * spec.dilation[-2] + 1, oh * width)
    written = (*out_shape[:-2], 1, oh * width - (kw - 1) * spec.dilation[-1])
    view = x.as_strided(read, x.stride())
    rows = aligned_rows(view, written[-1], planes * written[-1], kw, 1, 0, spec.dilation[-1], False, block, steps,
                        accumulator)
    if not rows.vec or rows.each:
        return None
    tiles = position_tiles(planes * rows.segments * rows.block_w, rows.segments * rows.block_w, block, rows.block_w)
    exact = position_tiles(planes * oh * ow, ow, block, row_block(planes * oh * ow, ow, block))
    return AlignedPlanes(read, written, rows) if tiles <= ALIGNED_ROWS_PAD * exact else None


def position_tiles(positions: int, width: int, block: int, block_w: int) -> int:
    """Tiles of ``block`` positions over ``positions`` (rows ``width`` wide): flat (``block_w = 0``) or rows of
    ``block_w`` (the kernels' :func:`tritonconv._tile.position_tiles`)."""
    if block_w == 0 or positions == 0:
        return cdiv(positions, block)
    return cdiv(positions // width, block // block_w) * cdiv(width, block_w)


def is_channels_inner(t: torch.Tensor) -> bool:
    """Dimension 1 (channels) of stride 1, or of size 1."""
    return t.stride(1) == 1 or t.shape[1] == 1


def laid_out(t: torch.Tensor, fmt: torch.memory_format) -> bool:
    """Whether ``t`` is laid out in ``fmt`` (a channels-last format) and not also plain contiguous. False for a
    ``torch.func.vmap`` wrapper, which answers no layout question but the contiguous one (its layout is its
    unwrapped tensor's, which the batching rules read)."""
    try:
        return t.is_contiguous(memory_format=fmt) and not t.is_contiguous()
    except RuntimeError:  # "NYI: querying is_contiguous inside of vmap for memory_format other than ..."
        return False


def memory_format_of(t: torch.Tensor) -> torch.memory_format:
    """channels-last when ``t`` is laid out that way (and not also plain contiguous)."""
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(t.dim())
    if fmt is not None and laid_out(t, fmt):
        return fmt
    return torch.contiguous_format


def output_memory_format(input: torch.Tensor, weight: torch.Tensor) -> torch.memory_format:
    """torch's rule: channels-last output when the input or the weight is channels-last."""
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(input.dim())
    if fmt is None:
        return torch.contiguous_format
    for t in (input, weight):
        if laid_out(t, fmt):
            return fmt
    return torch.contiguous_format


def alloc_output(
    shape: tuple[int, ...], device: torch.device, dtype: torch.dtype, fmt: torch.memory_format = torch.contiguous_format
) -> torch.Tensor:
    """Uninitialised kernel output (the tests replace this to poison outputs with NaN): ``torch.empty``'s, made with
    the strides ``fmt`` gives ``shape`` (kept per shape and format), which costs less a call than its
    ``memory_format``."""
    try:
        return torch.empty_strided(shape, _strides(shape, fmt), device=device, dtype=dtype)
    except TypeError:  # (a shape given as a list: not kept)
        return torch.empty(shape, device=device, dtype=dtype, memory_format=fmt)


@functools.lru_cache(maxsize=4096)
def _strides(shape: tuple[int, ...], fmt: torch.memory_format) -> tuple[int, ...]:
    """The strides ``torch.empty(shape, memory_format=fmt)`` gives (size-1 axes' included)."""
    return torch.empty(shape, device="meta", memory_format=fmt).stride()


PACK_CHANNELS = 16
"""The tensor cores' reduction chunk (16-bit): a layer with fewer input channels per tap leaves lanes idle."""


def pack_chunk(itemsize: int) -> int:
    """The channels a packed layer's are padded to a multiple of: the MMA's reduction chunk, :data:`PACK_CHANNELS`
    (32 for 1-byte operands: fp8's MMA reduces 32 at a time)."""
    return 2 * PACK_CHANNELS if itemsize == 1 else PACK_CHANNELS


PACK_EXPANSION = 6
"""A packed input holds at most this many times the input's elements (about ``C' / (C * prod(stride))``): C3D's
stem packs 3 channels into 16 (5.3x); a 1-channel volume's unit-stride layer would hold 16x its input (a CT
volume of 512**3 voxels: 8 GiB in fp32), so it folds its taps instead. Twice as many for 1-byte operands (their
packed copy has half a 16-bit one's bytes: C3D's stem in fp8 packs 3 channels into 32, 10.7x)."""


PACK_ISSUED = 2.0
"""Past four chunks of packed channels, a strided layer packs only where its packed reduction issues at most this
many times its useful multiply-adds (``C' * prod(ceil(k / s))`` over ``C * prod(k)``; the stems under four chunks
issue up to 1.78x). A patch embedding, whose kernel is its stride (a ViT's 16 x 16 on 3 channels: 768 channels
packed, one tap, 1.0x), becomes one GEMM on the descriptor tiles where it folded its 768 taps per element, the loop
the H200 measured at about 15e12 multiply-adds a second against the tiles' 4e14; so does an audio front end's
framing (400 taps at stride 160 on 1 channel: 160 packed, 3 taps, 1.2x). A stride far past the kernel, whose packed
taps would be mostly zeros (3 x 3 at stride 8: 7.1x), folds."""


PACK_TRANSPOSED_MACS = 2**31
"""A unit-stride layer's transposed pass (its input gradient, or a transposed convolution of few output channels)
packs its innermost taps when that saves at least this many multiply-adds: unpacked, its ``C_in`` outputs fill
``PACK_CHANNELS`` columns of every tile (C3D's stem: 3 of 16, 5.3x the useful work), packed ``C_in * R`` of them
(9 of 16) on ``1/R`` of the reduction (2.04x the useful work with the packed positions' halo and the tiles,
``benchmarks.work``), at the price of two launches and the packed gradient's bytes (the unpack sums each
position's ``R`` overlapping copies). At an H200's 395e12 bf16 multiply-adds per second,
2**31 is 5.4 us: about the two launches (3 us each, ``costmodel.DATASHEET.t0``), so only layers whose saving
exceeds them pack (C3D's stem at batch 8: 3e10 saved, predicted 0.38 -> 0.17 ms; a 64 x 64 image batch of 16:
4e8, left unpacked)."""


def _transposed_saving(spec: ConvSpec, factors: tuple[int, ...]) -> int:
    """Multiply-adds a transposed pass saves when packed by ``factors``, its output's ``C_in`` columns padded to
    :data:`PACK_CHANNELS` either way: positions x channels x (C_out x taps) x (1 - 1/R)."""
    positions = spec.input_shape[0] * math.prod(spec.input_shape[2:])
    reduction = spec.weight_shape[0] * math.prod(spec.weight_shape[2:])
    r = math.prod(factors)
    return positions * PACK_CHANNELS * reduction * (r - 1) // r


def _packed_channels(c_in: int, factors: tuple[int, ...], itemsize: int) -> int:
    """A packed layer's channels: ``c_in * prod(factors)`` rounded up to a multiple of :func:`pack_chunk`."""
    chunk = pack_chunk(itemsize)
    return -(-c_in * math.prod(factors) // chunk) * chunk


def pack_factors(spec: ConvSpec, transposed: bool = False, itemsize: int = 2) -> tuple[int, ...] | None:
    """The positions per axis a layer of few input channels packs into its channels
    (:func:`tritonconv.shapes.pack_positions`), when it has one group, no dilation and fewer than
    :data:`PACK_CHANNELS` input channels: a strided layer its strides (space to depth: ResNet's stem, 3 channels at
    stride 2 x 2, packs 12; AlexNet's, stride 4 x 4, 48), a unit-stride one the taps of its innermost axis with taps
    (C3D's 3x3x3 stem: 3 x 3 = 9 channels, then 3 x 3 x 1 taps); at most four chunks of channels packed (more only by
    a strided layer whose packed reduction issues at most :data:`PACK_ISSUED` times its useful one: a patch embedding,
    ViT's 16 x 16 / 16 on 3 channels as a 1 x 1 on 768), and at most :data:`PACK_EXPANSION` times the input's
    elements. Else None: the layer runs as written (few channels per group fold their taps instead). A ``transposed``
    pass (the input gradient) packs by space to depth, and by its taps only where that saves
    :data:`PACK_TRANSPOSED_MACS` (the unit-stride packing's adjoint sums ``R`` overlapping copies of each position:
    two launches and more bytes). ``itemsize``: the operands' bytes (1-byte ones pack into chunks of 32,
    :func:`pack_chunk`)."""
    c_in, kernel = spec.weight_shape[1], spec.weight_shape[2:]
    if spec.groups != 1 or c_in >= PACK_CHANNELS or any(d != 1 for d in spec.dilation):
        return None
    if max(spec.stride) > 1:
        factors = spec.stride
    elif max(kernel) > 1:
        last = max(a for a, k in enumerate(kernel) if k > 1)  # the innermost axis with taps
        factors = tuple(k if a == last else 1 for a, k in enumerate(kernel))
        if transposed and _transposed_saving(spec, factors) < PACK_TRANSPOSED_MACS:
            return None
    else:
        return None
    packed = _packed_channels(c_in, factors, itemsize)
    expansion = PACK_EXPANSION * (2 if itemsize == 1 else 1)
    if packed > expansion * c_in * math.prod(spec.stride):
        return None
    if packed > 4 * pack_chunk(itemsize):
        taps = math.prod(-(-k // r) for k, r in zip(kernel, factors))
        if max(spec.stride) == 1 or packed * taps > PACK_ISSUED * c_in * math.prod(kernel):
            return None
    return factors


def packed(spec: ConvSpec, factors: tuple[int, ...], itemsize: int = 2) -> ConvSpec:
    """``spec`` with ``factors`` positions per axis packed into its channels, padded to a multiple of
    :func:`pack_chunk` (:func:`tritonconv.shapes.pack_positions`)."""
    x, w, y, stride, pads, dilation = shapes.pack_positions(spec.input_shape, spec.weight_shape, spec.output_shape,
                                                            spec.stride, factors,
                                                            _packed_channels(spec.weight_shape[1], factors, itemsize))
    return ConvSpec(spec.ndim, stride, pads, dilation, 1, x, w, y, spec.unbatched)


GROUP_MERGE_CHANNELS = 8
"""A grouped layer whose groups have at most this many input or output channels (ResNeXt's 32 groups of 4, RegNet's of
8) runs with its groups merged a few at a time (:func:`group_merge`): its weight laid out block-diagonally (zeros
between the groups, :func:`block_diagonal`), so each merged group fills the tensor cores' 16-channel chunk. The merged
layer issues as many times the useful multiply-adds as groups it merges, at the tiles' rate; as written, a forward
folded 4 channels' taps into its reduction, gathered element by element (the loop the H200 measured at about 15e12
multiply-adds a second against the tiles' 4e14), and an input gradient filled 4 of every 16 columns and reduction
channels (16x the useful multiply-adds). ResNeXt-50's first-stage 3 x 3 (32 groups of 4, 128 x 56 x 56, batch 32,
bf16), predicted with the H200's constants, the block-diagonal weight's launches included: forward 0.170 -> 0.022 ms,
input gradient 0.064 -> 0.022, weight gradient 0.175 -> 0.031."""


def group_merge(spec: ConvSpec, itemsize: int = 2) -> int | None:
    """How many of a grouped layer's groups the kernels run as one (:data:`GROUP_MERGE_CHANNELS`): the fewest,
    dividing ``groups``, whose channels fill :data:`PACK_CHANNELS` on both sides, where a group has at most
    :data:`GROUP_MERGE_CHANNELS` input or output channels; None for other layers, depthwise ones (their own kernel),
    1-byte operands (fp8 runs grouped layers as written) and groups that cannot fill a chunk even merged whole."""
    c_out, c_in_g = spec.weight_shape[:2]
    narrow = min(c_in_g, c_out // spec.groups)
    if spec.groups == 1 or itemsize == 1 or narrow > GROUP_MERGE_CHANNELS \
            or shapes.is_depthwise(spec.input_shape, spec.weight_shape, spec.groups):
        return None
    return next((m for m in range(2, spec.groups + 1) if spec.groups % m == 0 and m * narrow >= PACK_CHANNELS), None)


def groups_merged(spec: ConvSpec, merge: int) -> ConvSpec:
    """``spec`` with its groups merged ``merge`` at a time (:func:`group_merge`): ``groups / merge`` groups of a
    block-diagonal weight, ``(C_out, merge * C_in / groups, *kernel)`` (:func:`block_diagonal`)."""
    c_out, c_in_g, *kernel = spec.weight_shape
    return dataclasses.replace(spec, groups=spec.groups // merge, weight_shape=(c_out, merge * c_in_g, *kernel))


def _blocks(t: torch.Tensor, groups: int, merge: int, c_in_g: int) -> torch.Tensor:
    """A merged layer's weight (or gradient) ``(C_out, merge * C_in_g, *kernel)`` viewed as its blocks'
    diagonals: ``(groups / merge, C_out_g, C_in_g, *kernel, merge)``, the last index the group within its merged
    one."""
    c_out = t.shape[0]
    blocks = t.unflatten(1, (merge, c_in_g)).unflatten(0, (groups // merge, merge, c_out // groups))
    return blocks.diagonal(dim1=1, dim2=3)


def block_diagonal(weight: torch.Tensor, groups: int, merge: int, out: torch.Tensor) -> torch.Tensor:
    """``out`` (``(C_out, merge * C_in / groups, *kernel)``, any layout) as the weight of ``groups / merge`` groups
    equal to ``weight``'s ``groups``: group ``g``'s block on the diagonal of merged group ``g // merge``, zeros
    elsewhere."""
    out.zero_()
    _blocks(out, groups, merge, weight.shape[1]).copy_(weight.unflatten(0, (groups // merge, merge, -1)).movedim(1, -1))
    return out


def diagonal_blocks(grad: torch.Tensor, groups: int, merge: int, out: torch.Tensor) -> torch.Tensor:
    """The gradient of ``groups`` groups' weight (``out``, ``(C_out, C_in / groups, *kernel)``) from that of its
    block-diagonal merged weight (``grad``, :func:`block_diagonal`): the diagonal blocks."""
    c_in_g = out.shape[1]
    out.unflatten(0, (groups // merge, merge, -1)).copy_(_blocks(grad, groups, merge, c_in_g).movedim(-1, 1))
    return out


def run_spec(spec: ConvSpec, pack: bool = True, transposed: bool = False, itemsize: int = 2) -> ConvSpec:
    """The convolution the kernels run for ``spec`` (its ``transposed`` pass: the input gradient) on operands of
    ``itemsize`` bytes: packed (:func:`pack_factors`, if ``pack``) or its groups merged (:func:`group_merge`), then
    its axes merged (:func:`merged`)."""
    if not pack:
        return merged(spec)
    if factors := pack_factors(spec, transposed, itemsize):
        return merged(packed(spec, factors, itemsize))
    merge = group_merge(spec, itemsize)
    return merged(groups_merged(spec, merge) if merge else spec)


def merged(spec: ConvSpec) -> ConvSpec:
    """``spec`` over fewer axes: those a kernel of 1 passes over merged into the axis before them
    (:func:`tritonconv.shapes.merge_axes`); ``spec`` itself when none merges."""
    x, w, y, stride, pads, dilation = shapes.merge_axes(spec.input_shape, spec.weight_shape, spec.output_shape,
                                                        spec.stride, spec.padding, spec.dilation)
    if x == spec.input_shape:
        return spec
    return ConvSpec(spec.ndim, stride, pads, dilation, spec.groups, x, w, y, spec.unbatched)


# --- the kernels' 3-D view -----------------------------------------------------------------------

def as_3d(values: tuple[int, ...], fill: int) -> tuple[int, ...]:
    """Left-pad per-axis values of a 1-D/2-D problem to the kernels' three axes."""
    return (fill,) * (3 - len(values)) + tuple(values)


def bias_step(bias: torch.Tensor | None) -> int:
    """The elements between a bias's consecutive channels (any layout read in place: a slice, an expanded scalar)."""
    return 1 if bias is None else bias.stride(0)


def strides_3d(t: torch.Tensor) -> tuple[int, ...]:
    """(batch, channel, depth, height, width) strides of a 1-D/2-D/3-D batched tensor."""
    return (*t.stride()[:2], *as_3d(t.stride()[2:], 0))


def tap_strides(weight: torch.Tensor) -> tuple[int, ...]:
    """(depth, height, width) strides of a weight's taps as the kernels step them: 0 along an axis of one tap, whose
    stride no tap offset uses. A 1 x 1 weight in torch's layout, ``(C_out, C_in, 1, 1)``, has tap strides of 1, which
    hide from the compiler that each tap's channels start on 16 bytes: its loads went 2 bytes at a time (sm_80 SASS,
    ``resnet50_l1_1x1``'s forward: 364 -> 186 instructions a step, ``benchmarks/NOTES.md``, 2026-12-06)."""
    return tuple(0 if n == 1 else s for n, s in zip(as_3d(tuple(weight.shape[2:]), 1), as_3d(weight.stride()[2:], 0)))


def geometry_3d(x_sizes, y_sizes, spec: ConvSpec) -> tuple[int, ...]:
    """The kernels' geometry arguments: sizes read (D, H, W), written (OD, OH, OW), then per axis the
    stride, padding before and dilation, all as 3-D."""
    pads = tuple(before for before, _ in spec.padding)
    return (*as_3d(tuple(x_sizes), 1), *as_3d(tuple(y_sizes), 1), *as_3d(spec.stride, 1), *as_3d(pads, 0),
            *as_3d(spec.dilation, 1))


def extent(t: torch.Tensor) -> int:
    """Elements from a tensor's first to its last (``1 + sum((size - 1) * stride)``): the offsets a
    kernel reaches from its base pointer. From sizes and strides only."""
    return 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride())) if t.numel() else 0


def needs_int64(*tensors: torch.Tensor, rows: int = 0) -> bool:
    """True when an element offset (or the GEMM row count) can pass 2**31 - 1."""
    return max(rows, *(extent(t) for t in tensors)) > INT32_MAX


def accumulator(dtype: torch.dtype) -> torch.dtype:
    """The kernels' accumulation (and split partial sums') dtype: float64 for float64 operands, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def tl_accumulator(dtype: torch.dtype) -> tl.dtype:
    """:func:`accumulator` as the kernels' ``ACC`` constexpr."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def allows_tf32(dtype: torch.dtype) -> bool:
    """Whether a compiled launch multiplies ``dtype`` operands in TF32: float32 where torch's matmul precision is
    ``"high"`` or ``"medium"`` (:attr:`Problem.tf32`; the tiles chosen for it are the same under the interpreter)."""
    return dtype == torch.float32 and torch.get_float32_matmul_precision() != "highest"


def dot_precision(dtype: torch.dtype, interp: bool) -> str | None:
    """fp32 products: exact IEEE unless torch's matmul precision allows TF32 (compiled only)."""
    if dtype != torch.float32:
        return None
    return "tf32" if allows_tf32(dtype) and not interp else "ieee"


# --- split reductions ------------------------------------------------------------------------------

def step_splits(steps: int, split_k: int) -> tuple[int, int]:
    """``(per_split, splits)``: a reduction loop of ``steps`` steps cut into at most ``split_k`` runs of equal
    length, the last shorter; ``splits`` is how many a launch gets (9 steps cut 4 ways: 3 splits of 3). An empty
    loop is one (zero) split."""
    per_split = max(1, cdiv(steps, max(split_k, 1)))
    return per_split, max(1, cdiv(steps, per_split))


def position_step(count: int, output_sizes: tuple[int, ...]) -> tuple[int, int, int, int]:
    """``count`` flat output positions as ``(batches, depth, rows, columns)`` of the ``output_sizes`` (1-3 spatial
    axes, as :func:`as_3d` pads them): what a loop that steps ``count`` positions adds to each coordinate before
    carrying (:func:`tritonconv._tile.advance`)."""
    od, oh, ow = as_3d(tuple(output_sizes), 1)
    rest, w = divmod(count, ow)
    rest, h = divmod(rest, oh)
    n, d = divmod(rest, od)
    return n, d, h, w


MEET_BYTES = 256 * 1024
"""The most bytes of other splits' partial tiles that the last split of a weight-gradient tile reads back to meet them
in the kernel (:func:`splits_meet`). One program reads them, a few loads deep: at some 100 GB/s an SM from L2 (an
estimate, not yet timed), 256 KiB take about 2.5 us, what one more launch costs; the sum launch spreads the same reads
over the whole GPU, so past this it wins (``tcn_k3``'s 44 splits of 128 x 128 tiles: 2.75 MiB a program). The cost
model charges the reading back at one SM's share of the L2 bandwidth (:func:`tritonconv.costmodel.meet_seconds`)."""


def splits_meet(splits: int, block_m: int, block_n: int, itemsize: int = 4) -> bool:
    """Whether a weight-gradient launch's ``splits`` partial ``block_m x block_n`` tiles (of ``itemsize``-byte
    accumulators) meet in the kernel (:func:`tritonconv._tile.meet_splits`), the last split of each tile reading the
    others' back (at most :data:`MEET_BYTES`), rather than in a second launch (:mod:`tritonconv.kernels.partials`)."""
    return splits > 1 and (splits - 1) * block_m * block_n * itemsize <= MEET_BYTES


def split_sizes(length: int, config: Config) -> tuple[int, int]:
    """``(per_split, splits)``: a reduction of ``length`` cut into ``config.split_k`` parts of whole ``block_k`` steps
    (:func:`step_splits`; ``per_split`` in elements)."""
    per_split, splits = step_splits(cdiv(length, config.block_k), config.split_k)
    return per_split * config.block_k, splits


def max_wgrad_fold(weight_shape: tuple[int, ...]) -> int:
    """How many trailing tap axes a weight gradient can fold into its GEMM columns (``Config.fold``): width, then
    height, never depth."""
    return min(2, len(weight_shape) - 2)


def folded_taps(weight_shape: tuple[int, ...], fold: int) -> int:
    """Taps of the ``fold`` trailing axes of a weight (1 for none): the columns' factor over the input channels."""
    return math.prod(weight_shape[len(weight_shape) - fold:]) if fold else 1


def grad_channels_inner(weight: torch.Tensor) -> bool:
    """Whether a weight's gradient is written channels-innermost: the weight is (``tritonconv.nn``'s layout), and
    not contiguous too (a size-1 axis). Autograd then keeps the gradient as written: a gradient laid out unlike
    its parameter is copied to the parameter's layout on every step."""
    return is_channels_inner(weight) and not weight.is_contiguous()


def alloc_partials(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Uninitialised split partial weight gradients ``(splits, C_out, C_in_g, taps)``, laid out taps before channels
    and input channels innermost (``(splits, taps, C_out, C_in_g)`` memory): a weight-gradient tile, (output, input)
    channels of one tap, stores runs of 16 bytes along its input channels (in ``(C_out, C_in_g, taps)`` order the
    input channels were ``taps`` apart and each element was stored alone)."""
    splits, c_out, c_in, taps = shape
    return alloc_output((splits, taps, c_out, c_in), device, dtype).permute(0, 2, 3, 1)


def alloc_weight_grad(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype,
                      channels_inner: bool) -> torch.Tensor:
    """An uninitialised weight gradient, contiguous or with its input channels innermost (``(C_out, *k, C_in)``
    memory viewed as ``(C_out, C_in, *k)``)."""
    if not channels_inner:
        return alloc_output(shape, device, dtype)
    return alloc_output((shape[0], *shape[2:], shape[1]), device, dtype).movedim(-1, 1)
