"""How a tensor descriptor (Hopper's tensor memory accelerator) sees tritonconv's tensors: the 5-D view the
descriptor kernels (:mod:`tritonconv.kernels.tma`, :mod:`tritonconv.kernels.weight_grad`) build their
descriptors on, and the 16-byte rules a descriptor load must keep."""

from __future__ import annotations

import math

import torch

from ._checks import ConvSpec
from .geometry import run_kind, shift_order, tap_shifts


def as_5d(t: torch.Tensor) -> tuple[list[int], list[int]]:
    """Sizes and strides of a batched ``(N, C, *spatial)`` tensor as the descriptor sees it: ``[N, D, H, W, C]``
    when its channels are innermost, else ``[N, C, D, H, W]`` (NC(D)HW, width innermost)."""
    sizes, strides = list(t.shape), list(t.stride())
    while len(sizes) < 5:
        sizes.insert(2, 1)
        strides.insert(2, 0)
    if channels_inner(t):
        sizes, strides = [sizes[0], *sizes[2:], sizes[1]], [strides[0], *strides[2:], strides[1]]
    # an axis of size 1 is only ever read at coordinate 0 (or out of range): any stride serves, and the
    # descriptor needs 16-byte multiples, so it gets the packed one (torch's can be anything there)
    return sizes, [st if n > 1 else math.prod(sizes[i + 1:]) for i, (n, st) in enumerate(zip(sizes, strides))]


def describable(t: torch.Tensor, strides: list[int] | None = None) -> bool:
    """Whether a descriptor can view ``t`` (:func:`as_5d`, or the view of ``strides``): innermost stride 1, every
    other a 16-byte multiple."""
    strides = as_5d(t)[1] if strides is None else strides
    return strides[-1] == 1 and all(s * t.element_size() % 16 == 0 for s in strides[:-1])


def folds_stride(input_shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    """Whether a convolution's height and width strides fold into the view :func:`phase_view` makes of its
    channels-innermost input: each strided axis a multiple of its stride long."""
    (h, w), (sh, sw) = ((1, 1) + tuple(input_shape[2:]))[-2:], ((1, 1) + tuple(stride))[-2:]
    return w % sw == 0 and h % sh == 0


def phase_view(t: torch.Tensor, sh: int, sw: int) -> tuple[list[int], list[int]] | None:
    """Sizes and strides of a channels-innermost input (:func:`as_5d`: ``[N, D, H, W, C]``) as a convolution of
    height and width strides ``sh``, ``sw`` reads it through one box per tap, at unit stride: input column
    ``sw*j + r`` is column ``j`` of the view, channels from ``r*C`` (``[N, D, H, W/sw, sw*C]``); with ``sh > 1``
    row ``sh*i + q`` of depth slice ``d`` is row ``i`` at coordinate ``d*H + q`` of axis 1 (``[N, D*H, H/sh,
    W/sw, sw*C]``: that axis steps one row, so ``d*H + q`` rows is slice ``d``'s row ``q``, and a slice outside the
    input is a coordinate outside ``[0, D*H)``). The taps' offsets ``o*s + t`` become (``t // s``, phase
    ``t % s``), so a strided convolution's boxes are unit-stride ones. None where the view does not exist
    (:func:`folds_stride`; a column's channels or a slice's rows not dense)."""
    sizes, strides = as_5d(t)
    n, d, h, w, c = sizes
    s_n, s_d, s_h, s_w, _ = strides
    if not folds_stride(t.shape, (sh, sw)) or (sw > 1 and s_w != c) or (sh > 1 and s_d != h * s_h):
        return None
    if sh == 1:
        return [n, d, h, w // sw, sw * c], [s_n, s_d, s_h, sw * s_w, 1]
    return [n, d * h, h // sh, w // sw, sw * c], [s_n, s_h, sh * s_h, sw * s_w, 1]


def channels_inner(x: torch.Tensor) -> bool:
    """Whether the descriptor kernel reads ``x`` as NDHWC (else as NC(D)HW): channels of stride 1 (and more than
    one of them, or a width of one)."""
    return x.stride(1) == 1 and (x.shape[1] > 1 or x.shape[-1] == 1)


def nc_boxes_aligned(spec: ConvSpec, tile_w: int, itemsize: int) -> bool:
    """Whether every box of an NC(D)HW read starts a row on a 16-byte boundary, as a descriptor load needs of
    its innermost offset: tiles ``tile_w`` wide of 16-byte multiples, and the columns a tap adds
    (``kw*dw - pw``) multiples of 16 bytes too: one column of taps (1x1, (k,1,1)) or such padding and
    dilation. Other NC(D)HW layers run the pointer kernel."""
    (pad, _), dilation, taps = spec.padding[-1], spec.dilation[-1], spec.weight_shape[-1]
    return (tile_w * itemsize % 16 == 0 and pad * itemsize % 16 == 0
            and (taps == 1 or dilation * itemsize % 16 == 0))


def flat_geometry(spec: ConvSpec) -> bool:
    """Whether a tap moves a plane's positions as a whole, the plane read as one row: unit height and width stride and
    the output as wide as the input (a tap then shifts every position of the plane by :func:`flat_shifts`; rows past
    the plane's edges lie outside it: zeros). A position whose tap column leaves its row (at the rows' seams) reads the
    row before's or after's column there; the weight gradient's descriptor kernel takes those products out again, read
    by address, exactly but for rounding: an inf or nan in x's first or last column makes the gradient of the taps that
    wrapped onto it nan (as it makes the taps that read it non-finite)."""
    return (len(spec.stride) >= 2 and tuple(spec.stride[-2:]) == (1, 1)
            and spec.output_shape[-1] == spec.input_shape[-1])


def nc_flat(spec: ConvSpec, itemsize: int) -> bool:
    """Whether the descriptor kernels read an NC(D)HW layer's planes as rows (:func:`flat_view`,
    :func:`flat_geometry`): its rows are no box's (not 16-byte multiples: 28 bf16 columns) but its planes are (28 x
    28); rows of 28 and a 3x3 tap put one position a row at the seams, 1/28 of the reduction. Rows of 16-byte
    multiples are read as rows; 8-bit elements never as planes. The weight gradient's kernel (channels innermost, a
    config chooses it: ``Config.planes``), the forward's (:func:`plane_taps`; ``spec`` the forward convolution it
    runs, an input gradient's too)."""
    if not flat_geometry(spec) or itemsize == 1:  # (fp8's runs of 16 have no register moves: _tile.shift_runs)
        return False
    (h, w), (oh, ow) = spec.input_shape[-2:], spec.output_shape[-2:]
    vec = 16 // itemsize
    return w % vec != 0 and h * w % vec == 0 and oh * ow % vec == 0


def nc_volume(spec: ConvSpec) -> bool:
    """Whether planes read as rows (:func:`nc_flat`) run on across an NC(D)HW input's depth slices, the volume one row
    (:func:`flat_view` ``volume``): a 3-D layer at unit depth stride whose output is as deep and as tall as its input,
    so a tap moves every position of the volume by ``((kd*dd - pd) * H + kh*dh - ph) * W + kw*dw - pw`` and the
    programs tile the volume's positions, not each plane's (``c3d_conv3a``'s 8 slices of 784 positions: 49 tiles of
    128 where 8 x 7 padded them 1.14x). Positions whose tap row leaves their plane read the slice before's or after's
    row and are masked as the rows' seams are (a bit a height tap per position: at most 31 height taps); slices before
    and after the volume lie outside it (zeros)."""
    return (len(spec.stride) == 3 and spec.stride[0] == 1 and spec.output_shape[-3] == spec.input_shape[-3]
            and spec.output_shape[-2] == spec.input_shape[-2] and spec.weight_shape[-2] <= 31)


def seam_share(spec: ConvSpec) -> float:
    """The share of a weight gradient's (tap, position) products that fall on the rows' seams where its planes are read
    as rows (:func:`flat_geometry`), and are read again by address: ``|kw*dw - pw| / W`` per tap, over the taps."""
    (kw,), ((pw, _),), (dw,) = spec.weight_shape[-1:], spec.padding[-1:], spec.dilation[-1:]
    width = spec.input_shape[-1]
    return sum(min(abs(c), width) for c in tap_shifts(kw, 1, pw, dw, False)) / (kw * width)


def flat_shifts(spec: ConvSpec) -> list[int]:
    """The positions each (height, width) tap shifts a plane's by, the plane read as one row (:func:`nc_flat`):
    ``(kh*dh - ph) * W + kw*dw - pw``, height taps outer."""
    (kh, kw), ((ph, _), (pw, _)), (dh, dw) = spec.weight_shape[-2:], spec.padding[-2:], spec.dilation[-2:]
    return [(i * dh - ph) * spec.input_shape[-1] + c for i in range(kh) for c in tap_shifts(kw, 1, pw, dw, False)]


def plane_taps(spec: ConvSpec, itemsize: int) -> tuple[int, list[int]]:
    """How the descriptor forward reads an NC(D)HW input's planes as rows (:func:`nc_flat`): tap ``(kd, kh, kw)``
    shifts a plane's positions by ``s = (kh*dh - ph) * W + kw*dw - pw`` (:func:`flat_shifts`), and a box must start on
    16 bytes (``vec`` elements), so it reads from the boundary ``r = s mod vec`` columns below and the box ``vec`` on,
    each run taken ``r`` columns on in registers. The kernel loops over the taps by width tap and offset (``NC_FLAT``:
    bit ``kw * vec + r`` where some tap takes them), so each loop's seams (positions whose column ``c + kw*dw - pw``
    leaves the row) are one mask and each loop's register moves one pattern. A width tap's height taps ``period =
    vec / gcd(dh*W, vec)`` apart share an offset, so a loop's taps are every depth tap and every ``period``-th height tap
    from its first. Returns the bitmask and the kernel's table: each loop's first height tap (``KW * vec`` of them, in
    bit order), then ``period``."""
    vec = 16 // itemsize
    kw_n, kh_n = spec.weight_shape[-1], spec.weight_shape[-2]
    (dh, dw), (ph, pw), width = spec.dilation[-2:], (spec.padding[-2][0], spec.padding[-1][0]), spec.input_shape[-1]
    period = vec // math.gcd(dh * width, vec)
    first = [0] * (kw_n * vec)
    bits = 0
    for kw in range(kw_n):
        for kh in range(min(period, kh_n)):
            group = kw * vec + ((kh * dh - ph) * width + kw * dw - pw) % vec
            first[group], bits = kh, bits | 1 << group
    return bits, first + [period]


def plane_row_seams(spec: ConvSpec, itemsize: int) -> int:
    """The loops of :func:`plane_taps` (its bitmask's bits) holding a height tap off the centre row (``kh*dh != ph``):
    where volumes are read as rows (:func:`nc_volume`) those mask the positions whose tap row leaves their plane."""
    bits, table = plane_taps(spec, itemsize)
    kh_n, dh, ph, period = spec.weight_shape[-2], spec.dilation[-2], spec.padding[-2][0], table[-1]
    return sum(1 << g for g, first in enumerate(table[:-1])
               if bits >> g & 1 and any(kh * dh != ph for kh in range(first, kh_n, period)))


def flat_view(t: torch.Tensor, volume: bool = False) -> tuple[list[int], list[int]] | None:
    """Sizes and strides of a tensor (:func:`as_5d`) with each plane as one row: ``[N, C, D, 1, H*W]`` (NC(D)HW),
    ``[N, D, 1, H*W, C]`` (channels innermost); with ``volume`` (NC(D)HW, :func:`nc_volume`) the volume as one row,
    ``[N, C, 1, 1, D*H*W]``. None where its planes (volumes) are not dense (a row pitch other than a row's positions',
    a slice pitch other than a plane's)."""
    sizes, strides = as_5d(t)
    if channels_inner(t):
        n, d, h, w, c = sizes
        if h > 1 and strides[2] != w * strides[3]:
            return None
        return [n, d, 1, h * w, c], [strides[0], strides[1], h * w * strides[3], strides[3], 1]
    n, c, d, h, w = sizes
    if strides[-1] != 1 or (h > 1 and strides[-2] != w):
        return None
    if volume:
        if d > 1 and strides[2] != h * w:
            return None
        return [n, c, 1, 1, d * h * w], [*strides[:2], d * h * w, d * h * w, 1]
    return [n, c, d, 1, h * w], [*strides[:3], h * w, 1]


def flat_strides(t: torch.Tensor) -> tuple[int, int, int, int]:
    """The strides of images, channels, depth slices and a plane's positions of a tensor :func:`flat_view` views."""
    _, strides = flat_view(t)
    if channels_inner(t):
        return strides[0], 1, strides[1], strides[3]
    return strides[0], strides[1], strides[2], 1


def nc_box_runs(spec: ConvSpec, tile_w: int, itemsize: int) -> int:
    """How the weight gradient's descriptor kernel reads an NC(D)HW input's boxes (``tile_w`` columns, 16-byte
    multiples): ``X_KINDS``, bit ``r + 1`` for each offset ``r`` (in elements) that some width tap's first column
    ``ow0 + kw*dw - pw`` lies past a 16-byte boundary. Bit 1 alone: every box starts on one as it is
    (:func:`nc_boxes_aligned`). Else, at unit width stride, a tap ``r`` columns off reads the box from the boundary below
    and the box 16 bytes on, each row's runs of 16 bytes read ``r`` columns on in registers
    (:func:`tritonconv._tile.shift_runs`); planes read as rows (:func:`nc_flat`) likewise, by each tap's
    :func:`flat_shifts`. 0: neither (a width stride, or tiles of no 16-byte multiple)."""
    if tile_w * itemsize % 16:
        return 0
    if nc_flat(spec, itemsize):
        return sum(1 << k for k in {run_kind(s, 16 // itemsize) for s in flat_shifts(spec)})
    if nc_boxes_aligned(spec, tile_w, itemsize):
        return 0b10
    if spec.stride[-1] != 1:
        return 0
    shifts = tap_shifts(spec.weight_shape[-1], 1, spec.padding[-1][0], spec.dilation[-1], False)
    return sum(1 << k for k in {run_kind(t, 16 // itemsize) for t in shifts})


BOX_SIDE = 256
"""The most elements a descriptor box spans along one axis."""


NC_EACH_ACCUMULATOR = 64
"""The most accumulator elements per thread (``BLOCK_M * BLOCK_N / (32 * num_warps)``) for which the descriptor kernel
holds each width tap's products apart (:func:`nc_row_shift` 2, a second accumulator): ptxas for sm_90 fits 64 in 254
registers (``deeplab_3x3_d2``'s 128 x 128 tiles on 8 warps) and spilled 884 B at 128 (128 x 256)."""


def nc_row_shift(spec: ConvSpec, tile_w: int, itemsize: int, accumulator: int = 0) -> int:
    """How an NC(D)HW box of ``tile_w`` columns reads whole rows from column 0 (always a 16-byte boundary) where a
    tap's shift ``s_t = t*d - p`` would move its box off one: the products of input column ``c`` belong to output
    column ``c - s_t``, and the kernel moves them there along the tile's rows (a gather per width tap and tile, not
    per step). 1: the sum moves between taps (in :func:`nc_shift_order`) and the epilogue stores column ``c`` at
    ``c - s_last``, which needs ``s_max >= 0`` and ``width_out + s_max`` columns; 2: each tap's
    products summed apart and moved ``-s_t`` columns into the sum (a second accumulator, of ``accumulator`` elements
    per thread: at most :data:`NC_EACH_ACCUMULATOR`), rows at their own width. A forward strided 2 along height and
    width reads its rows dealt (:func:`nc_dealt`; the shifts ``floor(s_t / 2)``). 0: no such tile (a row wider than
    ``tile_w`` or :data:`BOX_SIDE`, rows not 16-byte multiples, another width stride; at unit stride, boxes that start
    on 16 bytes as they are, :func:`nc_boxes_aligned`: a kernel that moves nothing, say)."""
    width, width_out = spec.input_shape[-1], spec.output_shape[-1]
    (pad, _), dilation, taps, stride = spec.padding[-1], spec.dilation[-1], spec.weight_shape[-1], spec.stride[-1]
    if nc_dealt(spec):
        if (spec.input_shape[-2] % 2 or width * itemsize % 16 or tile_w * itemsize % 16 or 2 * tile_w > BOX_SIDE
                or max(-(-width // 2), width_out) > tile_w or 2 * (width_out - 1) + (taps - 1) * dilation - pad >= width):
            return 0
        s_max = ((taps - 1) * dilation - pad) // 2
    elif (stride != 1 or tile_w * itemsize % 16 or width * itemsize % 16 or max(width, width_out) > tile_w
            or tile_w > BOX_SIDE or nc_boxes_aligned(spec, tile_w, itemsize)):
        return 0
    else:
        s_max = (taps - 1) * dilation - pad
    if s_max >= 0 and width_out + s_max <= tile_w:
        return 1
    return 2 if accumulator <= NC_EACH_ACCUMULATOR else 0


def nc_shifts(spec: ConvSpec) -> list[int]:
    """The width taps' shifts along the rows :func:`nc_row_shift` reads whole: ``t*d - p`` output columns, or dealt
    (:func:`nc_dealt`) ``floor((t*d - p) / 2)``; nondecreasing in ``t``."""
    (pad, _), dilation, taps = spec.padding[-1], spec.dilation[-1], spec.weight_shape[-1]
    return [(t * dilation - pad) // (2 if nc_dealt(spec) else 1) for t in range(taps)]


def nc_shift_order(spec: ConvSpec) -> list[int]:
    """The order in which ``NC_SHIFT`` 1 (:func:`nc_row_shift`) runs its width taps, :func:`nc_shifts`'
    :func:`tritonconv.geometry.shift_order` (those of negative shift in increasing shift, then the others in decreasing
    shift: the sum ends at the least shift ``s_last >= 0``, where the output's rows start, no partial sum leaving the
    tile on the way). The kernel computes the same."""
    return shift_order(nc_shifts(spec))


def nc_negative_shifts(spec: ConvSpec) -> int:
    """How many width taps :func:`nc_shifts` moves by a negative shift (the first ones); the kernel's ``NC_NEG``."""
    return sum(s < 0 for s in nc_shifts(spec))


def nc_last_shift(spec: ConvSpec) -> int:
    """``s_last``, the shift of the width tap :func:`nc_shift_order` runs last."""
    return nc_shifts(spec)[nc_shift_order(spec)[-1]]


def nc_dealt(spec: ConvSpec) -> bool:
    """Whether :func:`nc_row_shift` reads a forward strided 2 along height and width (any depth stride) dealt: boxes of
    the view pairing each two input rows (:func:`nc_pair_view`) read ``2 * tile_w`` columns from the start of the even
    row (column 0) or of the odd one (column ``W``, a 16-byte boundary too: rows of 16-byte multiples), the columns
    dealt into their two phases in registers; width tap ``t`` takes phase ``(t*d - p) mod 2``, its products
    ``floor((t*d - p) / 2)`` output columns off, moved as a unit-stride tap's. The even row's box runs on into the odd
    row, so no output may read past its row (the padding after it)."""
    return len(spec.stride) >= 2 and tuple(spec.stride[-2:]) == (2, 2)


def nc_pair_view(t: torch.Tensor) -> tuple[list[int], list[int]] | None:
    """Sizes and strides of an NC(D)HW tensor (:func:`as_5d`) with each two rows as one (``[N, C, D, H/2, 2W]``), or
    None where its rows are not dense (a row pitch other than its width) or its height is odd."""
    sizes, strides = as_5d(t)
    n, c, d, h, w = sizes
    if h % 2 or strides[-1] != 1 or (h > 1 and strides[-2] != w):
        return None
    return [n, c, d, h // 2, 2 * w], [*strides[:3], 2 * w, 1]


def nc_row_width(spec: ConvSpec, itemsize: int) -> int:
    """The narrowest tile width (a power of two, 16 bytes at least) whose boxes read ``spec``'s NC(D)HW rows whole
    (:func:`nc_row_shift`; the moving sum's where it fits as narrow), or 0 where none does."""
    for tile_w in (2 ** i for i in range(BOX_SIDE.bit_length())):
        if nc_row_shift(spec, tile_w, itemsize):
            return tile_w
    return 0


def aligned(*tensors: torch.Tensor) -> bool:
    """16-byte aligned base addresses (what a tensor descriptor needs)."""
    return all(t.data_ptr() % 16 == 0 for t in tensors)


def input_view(x: torch.Tensor, spec: ConvSpec, chunk: int) -> tuple[list[int], list[int]] | None:
    """Sizes and strides of the view of a convolution's input ``x`` that its descriptor boxes read: :func:`as_5d` at
    unit height and width stride, else :func:`phase_view` (channels innermost), where boxes of ``chunk`` channels
    never reach the next column's. None where no view serves (the pointer kernels run such problems)."""
    sh, sw = ((1, 1) + tuple(spec.stride))[-2:]
    if sh * sw == 1:
        return as_5d(x)
    view = phase_view(x, sh, sw) if channels_inner(x) else None
    return None if view is None or (sw > 1 and spec.weight_shape[1] % chunk) else view
