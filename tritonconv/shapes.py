"""Shape algebra of N-d convolution: the one place every size formula lives.

The kernels' launcher, the argument checks, the benchmarks and the spec notebooks all
call these functions; none of them writes ``floor((L + 2P - K) / S) + 1`` again.

Conventions: ``input_shape`` is ``(N, C_in, *spatial)``, ``weight_shape`` is
``(C_out, C_in / groups, *kernel)``. Per-dimension arguments accept an ``int`` (same for
every spatial dimension) or a sequence with one entry per spatial dimension. Padding is
resolved to ``(before, after)`` pairs so that torch's asymmetric ``'same'`` is exact.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

IntOrSeq = int | Sequence[int]
Padding = str | int | Sequence[int] | Sequence[tuple[int, int]]

__all__ = [
    "as_int",
    "positive_int",
    "as_tuple",
    "conv_output_size",
    "resolve_padding",
    "conv_output_shape",
    "receptive_field",
    "merge_axes",
    "pack_positions",
    "is_depthwise",
    "conv_macs",
    "conv_flops",
    "conv_params",
    "conv_bytes",
    "DTYPE_BYTES",
    "r2plus1d_mid_channels",
    "factorized_params",
    "FACTORIZATIONS",
    "suite_problem",
    "chunk_sizes",
    "Halo",
]

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "float8_e4m3fn": 1, "float8_e5m2": 1}


def cdiv(a: int, b: int) -> int:
    """``ceil(a / b)`` for ints (``b > 0``), as ``triton.cdiv`` computes it, in plain Python: the host code (plans, the
    tuner, the cost model) calls it thousands of times, and ``triton.cdiv`` is a constexpr function whose every call
    from Python costs microseconds."""
    return (a + b - 1) // b


def next_power_of_2(n: int) -> int:
    """The smallest power of 2 at least ``n`` (0 for ``n <= 0``), as ``triton.next_power_of_2``, in plain Python."""
    return 1 << (n - 1).bit_length() if n > 0 else 0


def as_int(value) -> int | None:
    """``value`` as torch takes an integer argument (``stride=numpy.int64(2)``, ``groups=torch.tensor(2)``): an
    ``int`` or anything else with ``__index__`` (a numpy integer, a 0-d integer tensor) as a plain ``int``; None for
    a bool (torch refuses ``stride=True``), a float, or anything else."""
    if isinstance(value, (bool, tuple, list)) or "bool" in str(getattr(value, "dtype", "")):
        return None  # (a sequence refused before operator.index: torch 2.11's Dynamo raises its own error there)
    try:
        return operator.index(value)
    except TypeError:
        return None


def positive_int(value, name: str = "value") -> int:
    """``value`` as a positive plain int (:func:`as_int`), or a ValueError naming ``name``."""
    found = as_int(value)
    if found is None or found < 1:
        raise ValueError(f"expected `{name}` to be a positive int, got {value!r}")
    return found


def as_tuple(value: IntOrSeq, ndim: int, name: str = "value") -> tuple[int, ...]:
    """Broadcast an int ``value`` to ``ndim`` entries, or check a sequence has ``ndim`` ints (one is broadcast).
    Integers are taken as torch takes them (:func:`as_int`: numpy integers, 0-d integer tensors) and returned as
    plain ints.

    :param name: the argument's name in the error message.
    :raises ValueError: not an int nor ``ndim`` ints (bools and floats refused).
    """
    if type(value) is int:  # the common call, first
        return (value,) * ndim
    single = as_int(value)
    if single is not None:
        return (single,) * ndim
    try:
        values = tuple(value)
    except TypeError:  # a float, None: not a sequence either
        raise ValueError(f"expected `{name}` to be an int or {ndim} ints, got {value!r}") from None
    if len(values) == 1:
        values = values * ndim
    ints = tuple(v if type(v) is int else as_int(v) for v in values)
    if len(ints) != ndim or None in ints:
        raise ValueError(f"expected `{name}` to be an int or {ndim} ints, got {value!r}")
    return ints


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: int | tuple[int, int] = 0, dilation: int = 1
) -> int:
    """Output length along one axis: ``floor((L + P_before + P_after - d(K-1) - 1) / S) + 1``.

    With symmetric padding ``P`` and ``d = 1`` this is the document's
    ``L' = floor((L + 2P - K) / S) + 1``. The result may be <= 0 for an impossible
    configuration; callers decide whether that is an error.

    :param size: input length ``L``.
    :param kernel: kernel length ``K``.
    :param stride: ``S``.
    :param padding: ``P`` on both sides, or a ``(before, after)`` pair.
    :param dilation: ``d``.
    :raises ValueError: a kernel, stride or dilation below 1.
    """
    if kernel < 1 or stride < 1 or dilation < 1:
        raise ValueError(f"expected a kernel, stride and dilation of at least 1, got kernel={kernel!r}, "
                         f"stride={stride!r}, dilation={dilation!r}")
    before, after = (padding, padding) if isinstance(padding, int) else padding
    span = dilation * (kernel - 1) + 1  # extent of the dilated kernel
    return (size + before + after - span) // stride + 1


def conv_transpose_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, output_padding: int = 0, dilation: int = 1
) -> int:
    """Output length of a transposed convolution along one axis: ``(L-1)*S - 2P + d(K-1) + output_padding + 1``.

    The sizes whose convolution (same ``K, S, P, d``) has length ``L`` are this one minus
    ``0 .. S-1``: ``output_padding`` picks among them (it must be smaller than the stride or
    the dilation, as torch requires). ``size`` is ``L``, ``kernel`` ``K``, ``stride`` ``S``,
    ``padding`` ``P``, ``dilation`` ``d``.
    """
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def resolve_padding(
    padding: Padding, kernel: Sequence[int], stride: IntOrSeq = 1, dilation: IntOrSeq = 1
) -> tuple[tuple[int, int], ...]:
    """Resolve ``padding`` (``'valid'``, ``'same'``, an int or a sequence) into ``(before, after)`` pairs.

    ``'same'`` follows torch: total padding ``d(K-1)`` split as ``total // 2`` before and the
    remainder after (so even kernels pad one more at the end). It needs stride 1.
    A sequence may hold one int per dimension (symmetric) or one ``(before, after)`` pair.

    :param kernel: the kernel's spatial sizes (one per dimension).
    :param stride: int or one per dimension (checked for ``'same'``).
    :param dilation: int or one per dimension.
    :returns: one ``(before, after)`` pair per dimension.
    :raises ValueError: ``'same'`` with a stride other than 1, an unknown string, the wrong number of
        entries, or a negative padding.
    """
    ndim = len(kernel)
    dilation = as_tuple(dilation, ndim, "dilation")
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * ndim
        if padding == "same":
            if any(s != 1 for s in as_tuple(stride, ndim, "stride")):
                raise ValueError(f"padding='same' needs stride 1 in every dimension, got stride={stride!r}")
            totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return tuple((t // 2, t - t // 2) for t in totals)
        raise ValueError(f"expected `padding` to be 'same', 'valid', an int or {ndim} ints, got {padding!r}")
    if isinstance(padding, (tuple, list)) and padding and all(isinstance(p, (tuple, list)) for p in padding):
        pairs = tuple(tuple(map(as_int, pair)) for pair in padding)
        if len(pairs) != ndim or any(len(pair) != 2 or None in pair for pair in pairs):
            raise ValueError(f"expected `padding` to have {ndim} (before, after) pairs of ints, got {padding!r}")
    else:
        pairs = tuple((p, p) for p in as_tuple(padding, ndim, "padding"))
    if any(p < 0 for pair in pairs for p in pair):
        raise ValueError(f"expected `padding` to be >= 0, got {padding!r}")
    return pairs


def conv_output_shape(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    stride: IntOrSeq = 1,
    padding: Padding = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
) -> tuple[int, ...]:
    """``(N, C_out, *out_spatial)`` of a batched N-d convolution (sizes may be <= 0).

    :param input_shape: ``(N, C_in, *spatial)``.
    :param weight_shape: ``(C_out, C_in / groups, *kernel)``.
    :param stride: int or one per spatial dimension.
    :param padding: as :func:`resolve_padding` takes it.
    :param dilation: int or one per spatial dimension.
    :param groups: not used for the shape (accepted so a call's arguments pass through unchanged).
    :raises ValueError: shapes of different ranks, or of fewer than 3 dimensions; as :func:`as_tuple`,
        :func:`resolve_padding` and :func:`conv_output_size`.
    """
    if len(weight_shape) != len(input_shape) or len(input_shape) < 3:
        raise ValueError(f"expected `input_shape` (N, C, *spatial) and `weight_shape` (C_out, C_in / groups, *kernel) "
                         f"of one rank, at least 3, got {tuple(input_shape)} and {tuple(weight_shape)}")
    ndim = len(input_shape) - 2
    kernel = tuple(weight_shape[2:])
    stride_t = as_tuple(stride, ndim, "stride")
    dilation_t = as_tuple(dilation, ndim, "dilation")
    pads = resolve_padding(padding, kernel, stride_t, dilation_t)
    spatial = tuple(
        conv_output_size(size, k, s, p, d)
        for size, k, s, p, d in zip(input_shape[2:], kernel, stride_t, pads, dilation_t)
    )
    return (input_shape[0], weight_shape[0], *spatial)


def receptive_field(
    kernels: Sequence[int], strides: Sequence[int], dilations: Sequence[int] | None = None
) -> list[int]:
    """Receptive field ``R_l`` after each layer of a stack, along one axis.

    ``R_0 = 1`` and ``R_l = R_{l-1} + d_l (k_l - 1) prod_{i<l} s_i`` (the document's recursion
    with dilation ``d_l``, which is 1 there). Returns ``[R_0, R_1, ..., R_L]``.

    :param kernels: ``k_l`` per layer.
    :param strides: ``s_l`` per layer (as many as ``kernels``).
    :param dilations: ``d_l`` per layer; all 1 when None.
    :raises ValueError: ``kernels`` and ``strides`` of different lengths.
    """
    if len(kernels) != len(strides):
        raise ValueError(f"expected one stride per kernel, got {len(kernels)} kernels and {len(strides)} strides")
    dilations = [1] * len(kernels) if dilations is None else list(dilations)
    fields, jump = [1], 1
    for k, s, d in zip(kernels, strides, dilations):
        fields.append(fields[-1] + d * (k - 1) * jump)
        jump *= s
    return fields


def phase_taps(kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> tuple[int, list[tuple[int, int]]]:
    """The taps of a transposed convolution that reach each output phase, along one axis.

    Output ``o`` gathers input ``i = (o + padding - t*dilation) / stride`` where that is an
    integer, so for ``o = phase (mod stride)`` exactly the taps ``t`` with
    ``t*dilation = phase + padding (mod stride)`` contribute: ``first, first + step, ...`` with
    ``step = stride / gcd(stride, dilation)``. Returns ``(step, [(first, count) per phase])``
    (``count`` 0 where no tap reaches the phase, e.g. stride > kernel). Each tap reaches exactly one
    phase, ``t*dilation - padding (mod stride)``, so the counts sum to ``kernel``: over its ``stride``
    phases a transposed pass runs each tap once per position, as the forward pass does.
    """
    step = stride // math.gcd(stride, dilation)
    phases = []
    for phase in range(stride):
        first = next((t for t in range(min(step, kernel)) if (t * dilation - phase - padding) % stride == 0), None)
        phases.append((0, 0) if first is None else (first, len(range(first, kernel, step))))
    return step, phases


def phase_table(kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                dilation: Sequence[int]) -> tuple[tuple[int, ...], list[list[int]]]:
    """A transposed pass's taps by stride phase on three axes (:func:`phase_taps` per axis): the per-axis tap
    steps, and per phase (depth phase slowest, width fastest) ``[first_d, count_d, first_h, count_h, first_w,
    count_w]``, the table the kernels read."""
    axes = [phase_taps(*args) for args in zip(kernel, stride, padding, dilation)]
    table = [[*axes[0][1][a], *axes[1][1][b], *axes[2][1][c]]
             for a in range(stride[0]) for b in range(stride[1]) for c in range(stride[2])]
    return tuple(step for step, _ in axes), table


def tapless_phase(table: Sequence[Sequence[int]]) -> bool:
    """Whether some stride phase of a :func:`phase_table` table is reached by no tap (a 1x1 kernel's three of four at
    stride 2): its programs run no step of the kernels' main loop."""
    return not all(row[1] * row[3] * row[5] for row in table)


def merge_axes(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    output_shape: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[tuple[int, int]],
    dilation: Sequence[int],
) -> tuple[tuple, ...]:
    """The same convolution with its positions in fewer, longer axes, read from the same memory.

    Along an axis the kernel passes over unchanged (kernel 1, stride 1, no padding) each output
    position reads only the input position of the same index, as along the batch. Merged into the
    axis before it, when that one has unit stride, its size multiplies that axis's sizes, and that
    axis's taps step over whole rows of it: its dilation and padding scale by the merged size
    (output ``a*n + b`` reads ``(a - p + t*d)*n + b``, inside the merged axis exactly when
    ``a - p + t*d`` is inside the original one). The merged axes stand last, axes of size 1 before them,
    so the number of axes does not change, except that a strided first axis keeps the first place (the
    descriptor kernel strides depth only); merging the result again changes nothing. So a ``(k, 1, 1)``
    kernel over ``D x H x W`` is a convolution over ``1 x 1 x D*H*W`` with dilation ``H*W`` (a 1-D one), a
    1x1 one over ``1 x H*W``, a ``(3, 3, 1)`` one over ``1 x D x H*W``, and a ``(2, 1, 1)`` kernel of depth
    stride 2 one over ``D x 1 x H*W``: long rows of positions instead of short ones.
    The operands are views of the caller's tensors where each merged pair of axes is dense
    (``stride[a] == size[b] * stride[b]``: NC(D)HW and channels-last alike).

    :param input_shape: ``(N, C_in, *spatial)``.
    :param weight_shape: ``(C_out, C_in / groups, *kernel)``.
    :param output_shape: ``(N, C_out, *out_spatial)`` (:func:`conv_output_shape`).
    :param stride: one per spatial axis.
    :param padding: ``(before, after)`` per axis, resolved (:func:`resolve_padding`).
    :param dilation: one per spatial axis.
    :returns: ``(input_shape, weight_shape, output_shape, stride, padding, dilation)``, merged (as tuples).
    """
    kept: list[list] = []  # per merged axis: [size, kernel, out, stride, (lo, hi), dilation]
    for size, k, out, s, (lo, hi), d in zip(input_shape[2:], weight_shape[2:], output_shape[2:], stride, padding,
                                             dilation):
        if k == 1 and s == 1 and lo == hi == 0 and kept and kept[-1][3] == 1:
            axis = kept[-1]
            axis[0], axis[2], axis[4] = axis[0] * size, axis[2] * size, (axis[4][0] * size, axis[4][1] * size)
            axis[5] = axis[5] * size if axis[1] > 1 else 1
        else:
            kept.append([size, k, out, s, (lo, hi), d if k > 1 else 1])  # a 1-tap axis's dilation means nothing
    units = [(1, 1, 1, 1, (0, 0), 1)] * (len(stride) - len(kept))
    first = 1 if units and len(kept) > 1 and kept[0][3] > 1 else 0  # a strided first axis keeps the depth slot
    axes = [tuple(a) for a in kept[:first]] + units + [tuple(a) for a in kept[first:]]
    sizes, kernel, outs, strides, pads, dilations = zip(*axes)
    return ((*input_shape[:2], *sizes), (*weight_shape[:2], *kernel), (*output_shape[:2], *outs), strides, pads,
            dilations)


def pack_positions(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    output_shape: Sequence[int],
    stride: Sequence[int],
    factors: Sequence[int],
    channels: int,
) -> tuple[tuple, ...]:
    """A convolution of few input channels (dilation 1, one group) with ``R = factors[a]`` consecutive positions
    of each padded axis packed into the channels (space to depth), as a stride-1 convolution of more channels.

    ``R`` is a multiple ``s*m`` of the axis's stride ``s``. The packed input is
    ``x'[n, c*prod(R) + r, j] = x_pad[n, c, s*j + r]`` (``r`` over the ``R`` offsets of every axis, row-major;
    zeros past ``C*prod(R)`` up to ``channels``), the packed weight ``w'[o, c*prod(R) + r, a] = w[o, c, R*a + r]``
    (zero past the kernel), since output ``o`` reads tap ``t = R*a + r`` at ``x_pad[s*o + R*a + r]
    = x'[.., r, o + m*a]``: ``ceil(k/R)`` taps of dilation ``m`` on ``(O - 1) + m*(ceil(k/R) - 1) + 1`` packed
    positions per axis, no padding (the packing reads it), the output unchanged. So ResNet's 7x7 stride-2 stem
    on 3 channels is a 4x4 stride-1 convolution on 12 (padded to 16): a tap's reduction fills the
    tensor cores' 16-wide chunk instead of using 3 of its 16 lanes.

    :param input_shape: ``(N, C_in, *spatial)``.
    :param weight_shape: ``(C_out, C_in, *kernel)``.
    :param output_shape: ``(N, C_out, *out_spatial)``.
    :param stride: one per spatial axis.
    :param factors: ``R`` per axis, each a multiple of that axis's stride.
    :param channels: the packed channel count, at least ``C_in * prod(factors)``.
    :returns: ``(input_shape, weight_shape, output_shape, stride, padding, dilation)`` of the packed convolution.
    :raises ValueError: a factor not a multiple of its stride, or too few ``channels``.
    """
    if any(r % s for r, s in zip(factors, stride)) or channels < input_shape[1] * math.prod(factors):
        raise ValueError(f"expected factors that are multiples of the strides {tuple(stride)} and at least "
                         f"{input_shape[1] * math.prod(factors)} channels, got {tuple(factors)} and {channels}")
    taps = tuple(-(-k // r) for k, r in zip(weight_shape[2:], factors))
    dilation = tuple(r // s if t > 1 else 1 for r, s, t in zip(factors, stride, taps))
    sizes = tuple(o + d * (t - 1) for o, d, t in zip(output_shape[2:], dilation, taps))
    ndim = len(taps)
    return ((input_shape[0], channels, *sizes), (weight_shape[0], channels, *taps), tuple(output_shape), (1,) * ndim,
            ((0, 0),) * ndim, dilation)


def is_depthwise(input_shape: Sequence[int], weight_shape: Sequence[int], groups: int) -> bool:
    """Whether a layer is depthwise: every input channel its own group (``groups == C_in > 1``, one input
    channel per group in ``weight_shape``), any channel multiplier. ``input_shape`` is ``(N, C_in, ...)``;
    ``groups`` the layer's."""
    return groups > 1 and groups == input_shape[1] and weight_shape[1] == 1


def conv_macs(input_shape: Sequence[int], weight_shape: Sequence[int], output_shape: Sequence[int]) -> int:
    """Multiply-accumulates: ``N * C_out * prod(out_spatial) * (C_in / groups) * prod(kernel)``.

    The document's bound ``O(D_out H_out W_out C_in C_out k_d k_h k_w)`` per sample, exactly
    (with groups dividing the ``C_in`` factor). Padding taps count as work, as on the GPU.
    ``input_shape`` ``(N, C_in, ...)`` (for a uniform signature), ``weight_shape``
    ``(C_out, C_in / groups, *kernel)``, ``output_shape`` ``(N, C_out, *out_spatial)``.
    """
    return output_shape[0] * math.prod(output_shape[1:]) * math.prod(weight_shape[1:])


def conv_flops(input_shape: Sequence[int], weight_shape: Sequence[int], output_shape: Sequence[int]) -> int:
    """Floating-point operations: two per multiply-accumulate (:func:`conv_macs` of ``input_shape``,
    ``weight_shape``, ``output_shape``)."""
    return 2 * conv_macs(input_shape, weight_shape, output_shape)


def conv_params(weight_shape: Sequence[int], bias: bool = False) -> int:
    """Learnable parameters of a ``weight_shape`` ``(C_out, C_in / groups, *kernel)`` layer:
    ``C_out * C_in / groups * prod(kernel)``, plus ``C_out`` with ``bias``."""
    return math.prod(weight_shape) + (weight_shape[0] if bias else 0)


def conv_bytes(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    output_shape: Sequence[int],
    dtype: str = "float32",
    bias: bool = False,
) -> int:
    """Fewest bytes a convolution must move: ``input_shape``, ``weight_shape`` (and the ``bias``, when
    True) read once, ``output_shape`` written once, in ``dtype`` (``'float32'``, ``'float16'``,
    ``'bfloat16'``, ``'float64'``, ``'float8_e4m3fn'``, ``'float8_e5m2'``)."""
    elems = math.prod(input_shape) + math.prod(weight_shape) + math.prod(output_shape)
    return (elems + (weight_shape[0] if bias else 0)) * DTYPE_BYTES[dtype]


def r2plus1d_mid_channels(c_in: int, c_out: int, t: int, d: int | tuple[int, int]) -> int:
    """Mid channels of a (2+1)D block whose parameters match a full ``t x d x d`` 3D conv.

    Tran et al. 2018 (R(2+1)D): ``M = floor(t d^2 C_in C_out / (d^2 C_in + t C_out))`` for
    ``c_in`` input and ``c_out`` output channels, temporal kernel ``t`` and spatial kernel ``d``; ``d``
    may be a ``(kh, kw)`` pair, with ``kh kw`` in place of ``d^2``.
    """
    area = d[0] * d[1] if isinstance(d, tuple) else d * d
    return (t * area * c_in * c_out) // (area * c_in + t * c_out)


FACTORIZATIONS = ("3d", "2+1d", "P3D-A", "P3D-B", "P3D-C")


def factorized_params(c_in: int, c_out: int, t: int, d: int, variant: str, mid_channels: int | None = None) -> int:
    """Weights of a ``t x d x d`` block, full or factorized into spatial ``1 x d x d`` (S)
    and temporal ``t x 1 x 1`` (T) convolutions (biases excluded).

    * ``'3d'``: one full convolution, ``C_in C_out t d^2``.
    * ``'2+1d'``: S ``C_in -> M``, then T ``M -> C_out`` (``M`` by :func:`r2plus1d_mid_channels`
      unless given).
    * ``'P3D-A'`` = T(S(x)), ``'P3D-C'`` = S(x) + T(S(x)): S ``C_in -> C_out``, T ``C_out -> C_out``.
    * ``'P3D-B'`` = S(x) + T(x): S and T both ``C_in -> C_out``.

    With stride 1 and 'same' padding every stage outputs every voxel, so multiply-accumulates
    are these parameters times ``N T H W`` (the P3D sums add no multiplies). ``c_in`` and ``c_out``
    are the block's channels, ``t`` and ``d`` its temporal and spatial kernel sizes; ``mid_channels`` is
    the (2+1)D block's ``M``.

    :raises ValueError: an unknown ``variant``.
    """
    if variant == "3d":
        return c_in * c_out * t * d * d
    if variant == "2+1d":
        m = r2plus1d_mid_channels(c_in, c_out, t, d) if mid_channels is None else mid_channels
        return c_in * m * d * d + m * c_out * t
    if variant in ("P3D-A", "P3D-C"):
        return c_in * c_out * d * d + c_out * c_out * t
    if variant == "P3D-B":
        return c_in * c_out * (d * d + t)
    raise ValueError(f"expected `variant` to be one of {FACTORIZATIONS}, got {variant!r}")


SUITE_AXES = {"conv1d": ("L",), "conv2d": ("H", "W"), "conv3d": ("D", "H", "W")}


def suite_problem(op: str, entry: dict) -> dict:
    """One layer of a benchmark suite file (``benchmarks/shapes.json`` format) as conv arguments.

    :param op: ``'conv1d'``, ``'conv2d'`` or ``'conv3d'`` (the suite's section).
    :param entry: the layer's record: ``N``, ``C``, the spatial sizes, ``OC``, ``k``, ``s``, ``p``, and
        optionally ``d`` and ``groups``.
    :returns: ``input_shape``, ``weight_shape``, ``stride``, ``padding``, ``dilation``, ``groups`` and the
        resolved ``output_shape``.
    """
    ndim, groups = len(SUITE_AXES[op]), entry.get("groups", 1)
    input_shape = (entry["N"], entry["C"], *(entry[a] for a in SUITE_AXES[op]))
    weight_shape = (entry["OC"], entry["C"] // groups, *as_tuple(entry["k"], ndim, "k"))
    args = dict(stride=entry["s"], padding=entry["p"], dilation=entry.get("d", 1), groups=groups)
    output_shape = conv_output_shape(input_shape, weight_shape, **args)
    return dict(input_shape=input_shape, weight_shape=weight_shape, output_shape=output_shape, **args)


def factorized_macs(n: int, frames: int, height: int, width: int, c_in: int, c_out: int, t: int, d: int,
                    variant: str, mid_channels: int | None = None) -> int:
    """Multiply-accumulates of a stride-1, 'same'-padded block on an ``N x T x H x W`` clip (``n``,
    ``frames``, ``height``, ``width``).

    Every stage of every variant outputs every voxel, so this is :func:`factorized_params` (same
    ``c_in``, ``c_out``, ``t``, ``d``, ``variant``, ``mid_channels``) times ``N T H W``: the document's
    ``T H W k^3`` per channel pair for ``'3d'``.
    """
    return factorized_params(c_in, c_out, t, d, variant, mid_channels) * n * frames * height * width


def conv2plus1d_bytes(input_shape: Sequence[int], c_mid: int, c_out: int, kernel: Sequence[int],
                      output_shape: Sequence[int], dtype: str, fused: bool) -> int:
    """Global-memory bytes of a (2+1)D layer, once each: input, both weights, output, and
    for the two-launch path (``fused`` False) the mid tensor written and read back (its size:
    input frames, output height and width).

    :param input_shape: ``(N, C_in, T, H, W)``.
    :param c_mid: the spatial stage's output channels.
    :param c_out: the temporal stage's output channels.
    :param kernel: ``(kt, kh, kw)``.
    :param output_shape: the layer's output ``(N, C_out, T_out, H_out, W_out)``.
    :param dtype: ``'float32'``, ``'float16'``, ``'bfloat16'`` or ``'float64'``.
    """
    n, c_in, frames = input_shape[:3]
    kt, kh, kw = kernel
    size = DTYPE_BYTES[dtype]
    elems = math.prod(input_shape) + c_mid * c_in * kh * kw + c_out * c_mid * kt + math.prod(output_shape)
    if not fused:
        elems += 2 * n * c_mid * frames * output_shape[3] * output_shape[4]
    return elems * size


def chunk_sizes(length: int, parts: int) -> tuple[int, ...]:
    """``torch.chunk``'s split of ``length`` into ``parts`` (``DTensor``'s ``Shard``): ``ceil(length / parts)``
    each, the last ones smaller or empty.

    :raises ValueError: ``parts`` below 1."""
    if parts < 1:
        raise ValueError(f"expected `parts` to be at least 1, got {parts!r}")
    full = -(-length // parts)
    return tuple(max(0, min(length, full * (r + 1)) - full * r) for r in range(parts))


def _bounds(sizes: Sequence[int]) -> tuple[int, ...]:
    out = [0]
    for n in sizes:
        out.append(out[-1] + n)
    return tuple(out)


@dataclass(frozen=True)
class Halo:
    """One convolution sharded along one axis, seen from every rank ``r`` (all fields hold one entry per rank;
    ``starts`` and ``outputs`` one more): it holds input slices ``[starts[r], starts[r + 1])``, owns outputs
    ``[outputs[r], outputs[r + 1])`` and computes them from a window: ``before`` (``[r]``) zeros, the input
    slices from ``lo`` to ``hi`` (its own and other ranks', :meth:`piece`), ``after`` zeros. Built by :meth:`plan`
    (convolution) and :meth:`plan_transposed`; any split of the output works, and a window may reach past
    the next rank (thin shards: the slices come from every rank that holds them).
    """

    starts: tuple[int, ...]
    outputs: tuple[int, ...]
    lo: tuple[int, ...]
    hi: tuple[int, ...]
    before: tuple[int, ...]
    after: tuple[int, ...]

    @classmethod
    def plan(cls, sizes: Sequence[int], kernel: int, stride: int = 1, padding: tuple[int, int] = (0, 0),
             dilation: int = 1, outputs: Sequence[int] | str | None = None) -> Halo:
        """The plan of a convolution from the shard ``sizes`` (group order) and the axis's ``kernel``,
        ``stride``, ``padding`` pair and ``dilation``. ``outputs``: each rank's output length, or ``'chunk'`` for
        ``torch.chunk``'s split of the output (a ``DTensor``'s); by default rank
        ``r`` owns the windows that start in its shard (rank 0 also those starting in the padding),
        ``o_r = clamp(ceil((s_r + p_before) / stride), 0, L_out)``, so a halo comes only from the right.

        :raises ValueError: an output length <= 0, or ``outputs`` that do not add up to it.
        """
        starts = _bounds(sizes)
        length, (before, after) = starts[-1], padding
        total = conv_output_size(length, kernel, stride, (before, after), dilation)
        if total <= 0:
            raise ValueError(f"sharded conv: output size {total} along the sharded axis for length {length}")
        owned = cls._owned(outputs, total, [-(-(s + before) // stride) for s in starts[1:-1]])
        reach = (kernel - 1) * dilation
        windows = [(o * stride - before, (e - 1) * stride - before + reach + 1) if e > o else (s, s)
                   for o, e, s in zip(owned, owned[1:], starts)]
        return cls._of(starts, owned, windows, [0] * len(sizes))

    @classmethod
    def plan_transposed(cls, sizes: Sequence[int], kernel: int, stride: int = 1, padding: int = 0,
                        output_padding: int = 0, dilation: int = 1,
                        outputs: Sequence[int] | str | None = None) -> Halo:
        """The plan of a transposed convolution (arguments as :meth:`plan`, ``padding`` symmetric). By default
        rank ``r`` owns the outputs its slab maps to, ``o_r = clamp(s_r * stride - padding, 0, L_out)``, and
        reads from its left the inputs whose taps reach them; zeros after its window only stretch the local
        output to its last owned position (they add no term). The local output's first position is
        ``lo[r] * stride - padding``.
        """
        starts = _bounds(sizes)
        length = starts[-1]
        total = conv_transpose_output_size(length, kernel, stride, padding, output_padding, dilation)
        owned = cls._owned(outputs, total, [s * stride - padding for s in starts[1:-1]])
        reach = (kernel - 1) * dilation
        windows, zeros = [], []
        for o, e, s in zip(owned, owned[1:], starts):
            if e <= o:
                windows.append((s, s))
                zeros.append(0)
                continue
            first = min(length, max(0, min(-(-(o + padding - reach) // stride), (o + padding) // stride)))
            last = max(first, min(length, (e - 1 + padding) // stride + 1))
            needed = max(1, -(-(e - 1 + padding - reach) // stride) + 1 - first)  # inputs the local output spans
            windows.append((first, last))
            zeros.append(max(0, needed - (last - first)))
        return cls._of(starts, owned, windows, zeros)

    @staticmethod
    def _owned(outputs, total: int, default: Sequence[int]) -> tuple[int, ...]:
        if outputs == "chunk":
            outputs = chunk_sizes(total, len(default) + 1)
        if outputs is None:
            return (0, *(min(total, max(0, o)) for o in default), total)
        owned = _bounds(outputs)
        if owned[-1] != total or any(n < 0 for n in outputs) or len(outputs) != len(default) + 1:
            raise ValueError(f"sharded conv: expected `out_sizes` to be {len(default) + 1} lengths >= 0 adding up "
                             f"to {total}, got {list(outputs)}")
        return owned

    @classmethod
    def _of(cls, starts, owned, windows, zeros) -> Halo:
        length = starts[-1]
        clip = lambda v: min(max(v, 0), length)  # noqa: E731
        lo, hi = [clip(a) for a, _ in windows], [clip(b) for _, b in windows]
        before = [min(max(0, -a), b - a) for a, b in windows]
        after = [min(max(0, b - length), b - a) + z for (a, b), z in zip(windows, zeros)]
        return cls(tuple(starts), tuple(owned), tuple(lo), tuple(hi), tuple(before), tuple(after))

    def piece(self, reader: int, holder: int) -> tuple[int, int]:
        """The input slices ``[a, b)`` rank ``reader`` reads from rank ``holder``'s shard (``a == b``: none)."""
        end = self.starts[holder + 1]
        a = min(max(self.lo[reader], self.starts[holder]), end)
        return a, max(a, min(self.hi[reader], end))

    def received(self, rank: int) -> int:
        """Input slices ``rank`` receives from the others (its halo)."""
        return sum(b - a for q in range(len(self.starts) - 1) if q != rank for a, b in [self.piece(rank, q)])

    def sent(self, rank: int) -> int:
        """Input slices ``rank`` sends to the others."""
        return sum(b - a for q in range(len(self.starts) - 1) if q != rank for a, b in [self.piece(q, rank)])
