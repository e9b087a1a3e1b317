"""Index math and epilogue shared by the kernels (device functions, inlined by the compiler).

Every kernel sees its problem as 3-D (depth, height, width) and flat output positions
``m = ((b*OD + od)*OH + oh)*OW + ow``. Per axis, a tap ``t`` with stride ``s``, padding
``p`` and dilation ``d`` relates output ``o`` to input ``i`` by ``i = o*s - p + t*d``.

A tile of ``BLOCK`` positions is either a flat run of ``m`` (``BLOCK_W = 0``: the layout of
channels-innermost tensors, where a tile's loads run along channels) or ``BLOCK / BLOCK_W`` rows
of ``BLOCK_W`` consecutive ``ow`` (for tensors whose width axis is innermost, NC(D)HW: the
compiler then sees ``BLOCK_W`` consecutive addresses per row and lays its threads along them).
A row is one ``(b, od, oh)``; ``BLOCK_W`` is a power of two (:func:`tritonconv.geometry.row_block`; whole rows, or
segments of a long one, for :func:`tritonconv.geometry.aligned_rows`, whose sums move along the rows by
:func:`shift_rows`).

Loops step from one tile or tap to the next by carrying their counters (:func:`next_step`, :func:`next_rows`):
a division by a runtime size costs some 20 instructions, a carry a compare and a select.
"""

import triton
import triton.language as tl

from ._checks import SELU_ALPHA as _SELU_ALPHA
from ._checks import SELU_SCALE as _SELU_SCALE
from ._checks import keeps_zero as _keeps_zero
from ._checks import negative_slope
from ._runtime import device

TIES_OUTERMOST = tl.constexpr(tuple(int(v) for v in triton.__version__.split(".")[:2]) < (3, 7))
"""Whether this Triton, laying out a load or store, takes its axes of equal contiguity outermost first (before 3.7:
after the contiguous axis, the lanes and warps go along axis 0) rather than innermost first (3.7 on). A kernel that
wants one such axis to take the lanes builds its tile so under either rule (:func:`load_lanes`,
:func:`load_middle`)."""


@device
def positions(m, OD, OH, OW):
    """Flat output positions -> ``(batch, od, oh, ow)``."""
    ow = m % OW
    oh = (m // OW) % OH
    od = (m // (OW * OH)) % OD
    return m // (OW * OH * OD), od, oh, ow


@device
def inside(i, size, INT64: tl.constexpr):
    """``0 <= i < size``: one unsigned compare where ``i`` is 32-bit, two where it is 64-bit (``INT64``)."""
    if INT64:
        ok = (i >= 0) & (i < size)
    else:
        ok = i.to(tl.uint32, bitcast=True) < size
    return ok


@device
def advance(nb, od, oh, ow, STEP_N, STEP_D, STEP_H, STEP_W, OD, OH, OW):
    """Output positions ``(batch, od, oh, ow)`` moved on by a constant count of flat positions, given as its own
    ``(batches, depth, rows, columns)`` (:func:`tritonconv.geometry.position_step`), by carries instead of divisions:
    each coordinate is below its size, so a carry is 0 or 1."""
    ow += STEP_W
    wrap = ow >= OW
    ow = tl.where(wrap, ow - OW, ow)
    nb, od, oh = advance_rows(nb, od, oh, STEP_N, STEP_D, STEP_H + wrap.to(oh.dtype), OD, OH)
    return nb, od, oh, ow


@device
def advance_rows(nb, od, oh, STEP_N, STEP_D, STEP_H, OD, OH):
    """Rows ``(batch, od, oh)`` moved on by a count of rows given as ``(batches, depth, rows)``, by carries (each
    step below its size, ``STEP_H`` at most ``OH``): :func:`advance` without the columns."""
    oh += STEP_H
    wrap = oh >= OH
    oh = tl.where(wrap, oh - OH, oh)
    od += STEP_D + wrap.to(od.dtype)
    wrap = od >= OD
    od = tl.where(wrap, od - OD, od)
    return nb + STEP_N + wrap.to(nb.dtype), od, oh


@device
def elements(TOTAL, C, D, H, W, INT64: tl.constexpr, BLOCK: tl.constexpr):
    """This program's ``BLOCK`` flat elements of a ``(N, D, H, W, C)`` tensor, channels fastest (the element-wise
    kernels' index): ``(flat offsets, in range, batch, d, h, w, channel)``."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    if INT64:
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    nb, d, h, w = positions(offs // C, D, H, W)
    return offs, offs < TOTAL, nb, d, h, w, offs % C


@device
def position_tiles(M, OW, BLOCK: tl.constexpr, BLOCK_W: tl.constexpr):
    """How many tiles of ``BLOCK`` positions cover ``M`` positions of rows ``OW`` wide (the same as
    :func:`tritonconv.geometry.position_tiles`)."""
    if BLOCK_W == 0:
        tiles = (M + BLOCK - 1) // BLOCK
    else:
        ROWS: tl.constexpr = BLOCK // BLOCK_W
        tiles = (M // OW + ROWS - 1) // ROWS * ((OW + BLOCK_W - 1) // BLOCK_W)
    return tiles


@device
def tile_positions(tile, M, OD, OH, OW, BLOCK: tl.constexpr, BLOCK_W: tl.constexpr, INT64: tl.constexpr):
    """Tile ``tile``'s ``BLOCK`` positions -> ``(batch, od, oh, ow, in range)``; width tiles run fastest."""
    offs = tl.arange(0, BLOCK)
    if BLOCK_W == 0:
        if INT64:
            m = tile.to(tl.int64) * BLOCK + offs
        else:
            m = tile * BLOCK + offs
        nb, od, oh, ow = positions(m, OD, OH, OW)
        ok = m < M
    else:
        ROWS: tl.constexpr = BLOCK // BLOCK_W
        tiles_w = (OW + BLOCK_W - 1) // BLOCK_W
        if INT64:
            row = (tile // tiles_w).to(tl.int64) * ROWS + offs // BLOCK_W
        else:
            row = (tile // tiles_w) * ROWS + offs // BLOCK_W
        ow = (tile % tiles_w) * BLOCK_W + offs % BLOCK_W
        oh = row % OH
        od = (row // OH) % OD
        nb = row // (OH * OD)
        ok = (row < M // OW) & (ow < OW)
    return nb, od, oh, ow, ok


@device
def next_rows(tw, nb, od, oh, row, tiles_w, OD, OH, ROWS: tl.constexpr):
    """The next tile of rows' positions after this one (:func:`tile_positions`' order: width tiles fastest), by
    carries instead of divisions: ``tw``, the width tile; per element the (batch, depth, height) of its row and the
    flat row index. A new block of ``ROWS`` rows wraps the height at most once (``ROWS <= OH``), so the depth too."""
    tw += 1
    bump = tw >= tiles_w
    tw = tl.where(bump, 0, tw)
    rows = tl.where(bump, ROWS, 0)
    oh += rows
    row += rows
    wrap = oh >= OH
    oh = tl.where(wrap, oh - OH, oh)
    od = tl.where(wrap, od + 1, od)
    wrap = od >= OD
    od = tl.where(wrap, od - OD, od)
    nb = tl.where(wrap, nb + 1, nb)
    return tw, nb, od, oh, row


@device
def patch(index, OD, tiles_h, tiles_w, TILE_B: tl.constexpr, TILE_H: tl.constexpr, TILE_W: tl.constexpr):
    """Patch ``index`` of ``TILE_B x TILE_H x TILE_W`` output positions (the descriptor kernels' tiles: images x
    rows x columns of one depth slice; width patches run fastest, then height, depth, images) -> its origin
    ``(batch, od, oh0, ow0)``, scalars."""
    ow0 = (index % tiles_w) * TILE_W
    rest = index // tiles_w
    oh0 = (rest % tiles_h) * TILE_H
    rest = rest // tiles_h
    return (rest // OD) * TILE_B, rest % OD, oh0, ow0


@device
def tap(o, s, p, t, d, size, TRANSPOSED: tl.constexpr):
    """The input coordinate tap ``t`` of output ``o`` reads, and whether it lies in ``[0, size)``.

    Forward: ``i = o*s - p + t*d``. Transposed (the gradient with respect to the input, where
    ``o`` runs over the forward pass's inputs): the ``i`` with ``i*s - p + t*d = o``, valid
    only where ``o + p - t*d`` is a multiple of ``s``.
    """
    if TRANSPOSED:
        q = o + p - t * d
        i = q // s
        ok = (q >= 0) & (q % s == 0) & (i < size)
    else:
        i = o * s - p + t * d
        ok = (i >= 0) & (i < size)
    return i, ok


@device
def next_step(c, mw, mh, md, step, c_end, cw, ch):
    """A flat (tap, channel chunk) loop's next step, by carries instead of divisions of its index by runtime counts
    (some 20 instructions each): the chunk ``c`` advances by ``step`` up to ``c_end``, then the width tap counter
    ``mw`` up to ``cw``, the height's ``mh`` up to ``ch``, then the depth's ``md`` (counters from 0)."""
    c += step
    tap_done = c >= c_end
    c = tl.where(tap_done, 0, c)
    mw = tl.where(tap_done, mw + 1, mw)
    row_done = mw >= cw
    mw = tl.where(row_done, 0, mw)
    mh = tl.where(row_done, mh + 1, mh)
    plane_done = mh >= ch
    mh = tl.where(plane_done, 0, mh)
    md = tl.where(plane_done, md + 1, md)
    return c, mw, mh, md


@device
def shift_rows(acc, step, col, BLOCK: tl.constexpr, BLOCK_W: tl.constexpr):
    """``acc`` (a tile of whole rows or segments, ``col`` each position's column in its row or segment) moved ``step``
    columns right along its rows (left where negative), zero where no column moves in: a gather inside the tile.
    ``BLOCK_W = 0``: ``step >= 0``; else the rows' width, for either sign."""
    ok = col >= step
    if BLOCK_W > 0:
        ok = ok & (col - step < BLOCK_W)
    m = tl.arange(0, BLOCK)
    moved = tl.gather(acc, tl.broadcast_to(tl.where(ok, m - step, m)[:, None], acc.shape), 0)
    return tl.where(ok[:, None], moved, 0.0)


@device
def add_apart(acc, part, s, col, BLOCK: tl.constexpr, BLOCK_W: tl.constexpr):
    """A width tap's products summed apart (``part``, rows read at their own columns) added into the sum ``acc``: those
    of column ``c`` belong to output column ``c - s``, moved there along whole rows of ``BLOCK_W`` (:func:`shift_rows`);
    where ``s`` is 0 they need no move and ``part`` was summed into ``acc`` itself."""
    if s != 0:
        acc += shift_rows(part, -s, col, BLOCK, BLOCK_W)
    else:
        acc = part
    return acc


@device
def dealt_tap(t, p, d, DEAL: tl.constexpr):
    """Where a forward's width tap ``t`` (padding ``p``, dilation ``d``) reads a row dealt into ``DEAL`` phases: input
    column ``DEAL*ow + t*d - p = DEAL*(ow + shift) + phase`` (floors; the offset keeps the division's operand >= 0),
    ``(phase, shift)``."""
    i = t * d - p + DEAL * p
    return i % DEAL, i // DEAL - p


@device
def deal(t, q, BLOCK_K: tl.constexpr, BLOCK_M: tl.constexpr, DEAL: tl.constexpr):
    """A ``[BLOCK_K, DEAL * BLOCK_M]`` tile of consecutive columns (a strided width's input rows, read aligned) dealt
    into ``DEAL`` phases (2 or 4): its columns ``DEAL * c + q`` (``q`` a scalar), as ``[BLOCK_M, BLOCK_K]``. The
    compiler keeps a column's phases in one thread's registers: byte permutes, no shared memory."""
    if DEAL == 2:
        even, odd = tl.split(tl.reshape(t, (BLOCK_K, BLOCK_M, 2)))
        a = tl.where(q == 0, even, odd)
    else:  # column 4c + 2*j1 + j0: j0 split off first, then j1
        lo, hi = tl.split(tl.reshape(t, (BLOCK_K, BLOCK_M, 2, 2)))
        lo, hi = tl.split(tl.where(q % 2 == 0, lo, hi))
        a = tl.where(q // 2 == 0, lo, hi)
    return tl.trans(a)


@device
def repeat(v, N: tl.constexpr, TIMES: tl.constexpr):
    """A ``[N]`` vector with each element repeated ``TIMES`` (1, 2 or 4) times in place, ``[TIMES * N]``: per position,
    a value for each of its columns (a strided weight gradient's dealt runs)."""
    if TIMES >= 2:
        v = tl.reshape(tl.join(v, v), (2 * N,))
    if TIMES == 4:
        v = tl.reshape(tl.join(v, v), (4 * N,))
    return v


@device
def phase_tap(j, phase, s, p, t, d, size):
    """The transposed relation for a position ``o = phase + s*j`` of one stride phase and a tap ``t`` that
    reaches it (``t*d = phase + p (mod s)``): ``i = j + (phase + p - t*d) / s``, an exact division of
    scalars, so ``i`` runs along ``j`` (consecutive positions of a phase read consecutive inputs)."""
    i = j + (phase + p - t * d) // s
    return i, (i >= 0) & (i < size)


@device
def axis_tap(j, phase, s, p, t, d, size, TRANSPOSED: tl.constexpr):
    """One axis of the GEMM kernel's tap relation: forward, the input coordinate tap ``t`` of output ``j`` reads
    (:func:`tap`; ``phase`` unused); transposed, that of position ``phase + s*j`` of a stride phase (:func:`phase_tap`)."""
    if TRANSPOSED:
        i, ok = phase_tap(j, phase, s, p, t, d, size)
    else:
        i, ok = tap(j, s, p, t, d, size, False)
    return i, ok


@device
def mma(acc, a, b, UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr, ACC: tl.constexpr):
    """``acc + a @ b`` in ``ACC``; ``UPCAST`` multiplies in fp32 (the interpreter's bf16 dot is wrong)."""
    if UPCAST:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, acc, input_precision=DOT_PRECISION, out_dtype=ACC)


@device
def over_one_plus_exp(num, t):
    """``num / (1 + exp(t))`` without overflow, through ``e = exp(-|t|)`` (at most 1): ``num e / (1 + e)`` for t > 0."""
    e = tl.exp(-tl.abs(t))
    return tl.where(t > 0, num * e, num) / (1.0 + e)


@device
def expm1(z):
    """``exp(z) - 1`` for ``z <= 0`` without its cancellation near 0 (Triton has no portable expm1): in fp32 Taylor's
    polynomial to z^6 where |z| < 1/4 (within 1e-7 relative); in fp64 Kahan's ``(exp(z) - 1) z / log(exp(z))``."""
    u = tl.exp(z)
    if z.dtype == tl.float64:
        kahan = (u != 1.0) & (u != 0.0)
        v = tl.where(kahan, u, 0.5)  # (no log of 0 or division by log(1) = 0 in the lanes not taken)
        return tl.where(kahan, (v - 1.0) * z / tl.log(v), tl.where(u == 0.0, -1.0, z))
    p = z * (1.0 + z * (0.5 + z * (0.16666666666666666 + z * (0.041666666666666664 + z * (0.008333333333333333 +
                                                                                         z * 0.001388888888888889)))))
    return tl.where(tl.abs(z) < 0.25, p, u - 1.0)


@device
def activate(acc, ACTIVATION: tl.constexpr):
    """The fused activation epilogue (:data:`tritonconv._checks.ACTIVATIONS`), each as ``torch.nn.functional``'s
    computes it (GELU exact, through erf, as torch's), the exponential ones to a few roundings of the exact value from
    underflow to overflow, none overflowing: the sigmoid, SiLU and tanh-approximated GELU (``z sigmoid(2u)``, which is
    ``0.5 z (1 + tanh u)`` without its cancellation) through :func:`over_one_plus_exp`; tanh, ELU and SELU through
    :func:`expm1`; Mish as ``z n / (n + 2)``, ``n = e (e + 2)``, ``e = exp(z)`` (``tanh(softplus z)``; ``z`` past 20,
    where that is 1 in fp32 and fp64). A leaky ReLU's slope comes from its name (:func:`leaky_slope`). All but the
    sigmoid and hardsigmoid map 0 to 0 (:func:`keeps_zero`)."""
    if ACTIVATION == "relu":
        acc = tl.maximum(acc, 0.0)
    elif ACTIVATION == "relu6":
        acc = tl.minimum(tl.maximum(acc, 0.0), 6.0)
    elif ACTIVATION == "gelu":
        acc = 0.5 * acc * (1.0 + tl.erf(acc * 0.7071067811865476))
    elif ACTIVATION == "gelu_tanh":  # (z sigmoid(2u), u = sqrt(2 / pi) (z + 0.044715 z^3))
        acc = over_one_plus_exp(acc, -1.5957691216057308 * (acc + 0.044715 * acc * acc * acc))
    elif ACTIVATION == "silu":
        acc = over_one_plus_exp(acc, -acc)
    elif ACTIVATION == "mish":
        e = tl.exp(tl.minimum(acc, 20.0))
        n = e * (e + 2.0)
        acc = tl.where(acc > 20.0, acc, acc * n / (n + 2.0))
    elif ACTIVATION == "hardswish":
        acc = acc * tl.minimum(tl.maximum(acc + 3.0, 0.0), 6.0) / 6.0
    elif ACTIVATION == "sigmoid":
        acc = over_one_plus_exp(1.0, -acc)
    elif ACTIVATION == "tanh":  # (tanh |z| = -m / (2 + m), m = exp(-2|z|) - 1)
        m = expm1(-2.0 * tl.abs(acc))
        acc = tl.where(acc < 0, m, -m) / (2.0 + m)
    elif ACTIVATION == "hardsigmoid":
        acc = tl.minimum(tl.maximum(acc / 6.0 + 0.5, 0.0), 1.0)
    elif ACTIVATION == "elu":
        acc = tl.where(acc > 0, acc, expm1(tl.minimum(acc, 0.0)))
    elif ACTIVATION == "selu":
        acc = tl.where(acc > 0, acc, expm1(tl.minimum(acc, 0.0)) * SELU_ALPHA) * SELU_SCALE
    elif leaky_slope(ACTIVATION) is not None:
        acc = tl.where(acc > 0, acc, acc * leaky_slope(ACTIVATION))
    return acc


SELU_SCALE, SELU_ALPHA = tl.constexpr(_SELU_SCALE), tl.constexpr(_SELU_ALPHA)
"""``F.selu``'s constants (:data:`tritonconv._checks.SELU_SCALE`), as a kernel reads a global."""
leaky_slope = triton.constexpr_function(negative_slope)
"""A ``leaky_relu`` activation's negative slope, or None (:func:`tritonconv._checks.negative_slope`), as a kernel
compiles."""
keeps_zero = triton.constexpr_function(_keeps_zero)
"""Whether an activation maps 0 to 0 (:func:`tritonconv._checks.keeps_zero`), as a kernel compiles."""


@device
def weight_tap(kd, kh, kw, swd, swh, sww, KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, FLIP: tl.constexpr):
    """Offset of tap ``(kd, kh, kw)`` in a weight; ``FLIP`` reads the kernel reversed on every axis."""
    if FLIP:  # true convolution
        offset = (KD - 1 - kd) * swd + (KH - 1 - kh) * swh + (KW - 1 - kw) * sww
    else:
        offset = kd * swd + kh * swh + kw * sww
    return offset


@device
def meet_splits(acc, ws_ptr, cnt_ptr, tile, tiles, split, splits, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """A split reduction's partial tiles meet in the kernel: split ``split`` of ``splits`` stores its partial of output
    tile ``tile`` (of ``tiles`` per split) in the workspace ``ws_ptr`` (tile-major, ``[split, tile, BLOCK_M,
    BLOCK_N]``), then takes a ticket from the tile's counter (``cnt_ptr``, an atomic add after a barrier,
    acquire-release). The split drawing the last ticket adds the partials in split order ``0, 1, ..., S-1`` (the
    result does not depend on which split finished last: bitwise deterministic) and resets the counter for the next
    launch. Returns ``(acc, finish)``: the whole sum and True in that split, the partial and False in the others."""
    tile_elems = BLOCK_M * BLOCK_N
    cell = tl.arange(0, BLOCK_M)[:, None] * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
    base = ws_ptr + tile.to(tl.int64) * tile_elems  # this tile's partial of split 0
    step = tiles.to(tl.int64) * tile_elems  # one split's tiles
    tl.store(base + split * step + cell, acc)
    tl.debug_barrier()  # every thread's partial stored before the ticket is taken
    ticket = tl.atomic_add(cnt_ptr + tile, 1, sem="acq_rel")
    finish = ticket == splits - 1
    if finish:
        acc = tl.load(base + cell, cache_modifier=".cg")
        for other in range(1, splits):
            acc += tl.load(base + other * step + cell, cache_modifier=".cg")
        tl.store(cnt_ptr + tile, 0)  # ready for the next launch
    return acc, finish


@device
def arrive(acc, ws_ptr, cnt_ptr, tile, split, splits, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """The first half of :func:`meet_splits` for kernels that add the partials a few rows at a time (:func:`met_rows`):
    split ``split`` stores its partial of tile ``tile`` in the workspace ``ws_ptr`` (split-minor, ``[tile, split,
    BLOCK_M, BLOCK_N]``: a tile's partials one constant stride apart) and takes a ticket from the tile's counter
    (``cnt_ptr``, an atomic add after a barrier, acquire-release). True in the split that drew the last, which then adds
    the partials and resets the counter (:func:`met_rows`, :func:`reset_ticket`); ``acc`` is not needed after it, so
    the adding holds a few rows' registers, not a second tile's."""
    TILE: tl.constexpr = BLOCK_M * BLOCK_N
    cell = tl.arange(0, BLOCK_M)[:, None] * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
    tl.store(ws_ptr + (tile.to(tl.int64) * splits + split) * TILE + cell, acc)
    tl.debug_barrier()  # every thread's partial stored before the ticket is taken
    return tl.atomic_add(cnt_ptr + tile, 1, sem="acq_rel") == splits - 1


@device
def met_rows(ws_ptr, tile, SPLITS: tl.constexpr, r0, ROWS: tl.constexpr, BLOCK_M: tl.constexpr,
             BLOCK_N: tl.constexpr):
    """Rows ``r0 .. r0 + ROWS`` of tile ``tile``'s partials (stored by :func:`arrive`) added in split order ``0, 1,
    ..., S-1``, as :func:`meet_splits` adds them (the same sum, bit for bit); the partials a constant stride apart and
    their count a constant, so the loop unrolls whole and every load is issued before the first add waits (one trip
    to L2 a slice, not one per unrolled group and remainder)."""
    TILE: tl.constexpr = BLOCK_M * BLOCK_N
    rows = ws_ptr + tile.to(tl.int64) * SPLITS * TILE + (r0 + tl.arange(0, ROWS))[:, None] * BLOCK_N \
        + tl.arange(0, BLOCK_N)[None, :]
    part = tl.load(rows, cache_modifier=".cg")
    for other in tl.static_range(1, SPLITS):
        part += tl.load(rows + other * TILE, cache_modifier=".cg")
    return part


@device
def store_across(y_ptr, rows, cols, acc, mask_m, mask_n, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Store a ``BLOCK_M x BLOCK_N`` tile (positions x channels) at offsets ``rows[:, None] + cols[None, :]`` from
    ``y_ptr`` transposed and flat, positions fastest (``Y_ACROSS``, :func:`tritonconv.geometry.stored_across`: a
    stride phase's positions of an NC(D)HW output, no run along either axis), so that a warp's lanes take
    consecutive positions (a few sectors of a row a store), not 32 channels (32 rows), whichever way a Triton version
    breaks the tie between two axes of one element a run."""
    FLAT: tl.constexpr = BLOCK_M * BLOCK_N
    tl.store(y_ptr + tl.reshape(cols[:, None] + rows[None, :], (FLAT,)),
             tl.reshape(tl.trans(acc.to(y_ptr.dtype.element_ty)), (FLAT,)),
             mask=tl.reshape(mask_n[:, None] & mask_m[None, :], (FLAT,)))


@device
def load_lanes(ptr, outer, inner, ok_outer, ok_inner):
    """``ptr + outer[:, None, None] + inner[None, :, :]``, ``[A, B, X]`` (0 where ``ok_outer`` or ``ok_inner`` is
    False), laid out with a warp's lanes along ``B`` next after the contiguous axis (``A`` or ``X``): the tile is built
    with ``B`` first where this Triton breaks ties between axes of one element a run outermost first
    (:data:`TIES_OUTERMOST`), last where innermost first, then turned. The banded kernels' channels are ``A``; their
    segments are ``B``, so that each thread addresses one segment or two, not eight, and their band's window positions
    (the MMA's reduction), so that Triton 3.6 reads the band from shared memory by ``ldmatrix`` whichever way its taps
    run (reversed, for the input gradient, it took 64 ``LDS`` and 32 byte permutes a step)."""
    if TIES_OUTERMOST:
        v = tl.load(ptr + inner[:, None, :] + outer[None, :, None], mask=ok_inner[:, None, :] & ok_outer[None, :, None],
                    other=0.0)
        v = tl.permute(v, (1, 0, 2))
    else:
        v = tl.load(ptr + outer[:, None, None] + tl.trans(inner)[None, :, :],
                    mask=ok_outer[:, None, None] & tl.trans(ok_inner)[None, :, :], other=0.0)
        v = tl.permute(v, (0, 2, 1))
    return v


@device
def load_middle(ptrs, mask):
    """``tl.load(ptrs, mask, other=0)`` of a 3-D tile whose last axis is the contiguous one, laid out with a warp's lanes
    along its middle axis next: Triton's own choice from 3.7; before (:data:`TIES_OUTERMOST`) the tile is loaded with
    its first two axes swapped and turned back. The FMA depthwise weight gradient's channels-last ``[taps, positions,
    channels]``, whose lanes Triton 3.6 ran along the taps (each thread every position's addresses: 2-2.7x the
    instructions)."""
    if TIES_OUTERMOST:
        v = tl.permute(tl.load(tl.permute(ptrs, (1, 0, 2)), mask=tl.permute(mask, (1, 0, 2)), other=0.0), (1, 0, 2))
    else:
        v = tl.load(ptrs, mask=mask, other=0.0)
    return v


@device
def store_lanes(ptr, outer, inner, value, ok_outer, ok_inner):
    """Store ``value`` (``[A, B, X]``) at ``ptr + outer[:, None, None] + inner[None, :, :]`` where ``ok_outer`` and
    ``ok_inner``, laid out as :func:`load_lanes` lays out its loads."""
    value = value.to(ptr.dtype.element_ty)
    if TIES_OUTERMOST:
        tl.store(ptr + inner[:, None, :] + outer[None, :, None], tl.permute(value, (1, 0, 2)),
                 mask=ok_inner[:, None, :] & ok_outer[None, :, None])
    else:
        tl.store(ptr + outer[:, None, None] + tl.trans(inner)[None, :, :], tl.permute(value, (0, 2, 1)),
                 mask=ok_outer[:, None, None] & tl.trans(ok_inner)[None, :, :])


@device
def reset_ticket(cnt_ptr, tile):
    """Tile ``tile``'s counter back to 0 for the next launch (by the split that drew the last ticket)."""
    tl.store(cnt_ptr + tile, 0)


@device
def run_kind(shift, VEC: tl.constexpr):
    """:func:`tritonconv.geometry.run_kind` on the device: how a pointer kernel reads NC(D)HW rows for a width tap
    shifting their columns by ``shift`` in runs of ``VEC`` (0 an element at a time; ``r + 1``, the runs from the
    boundary ``r`` columns below the tap's, ``r = shift mod VEC``)."""
    kind = 0
    if VEC > 1:
        kind = (shift % VEC + VEC) % VEC + 1
    return kind


@device
def _halves(t, LEAD: tl.constexpr, RUNS: tl.constexpr, N: tl.constexpr):
    """A ``[LEAD, RUNS, N]`` tile's elements at even and odd places of its last axis, each ``[LEAD, RUNS, N // 2]``."""
    return tl.split(tl.reshape(t, (LEAD, RUNS, N // 2, 2)))


@device
def _interleave(a, b, LEAD: tl.constexpr, RUNS: tl.constexpr, N: tl.constexpr):
    """``[LEAD, RUNS, N]`` tiles ``a`` and ``b`` interleaved along their last axis: ``a[0], b[0], a[1], b[1], ...``."""
    return tl.reshape(tl.join(a, b), (LEAD, RUNS, 2 * N))


@device
def _funnel(lo, hi, R: tl.constexpr, LEAD: tl.constexpr, RUNS: tl.constexpr, N: tl.constexpr):
    """Each run of ``N`` (``[LEAD, RUNS, N]``) followed by the next (``hi``), read ``R`` columns on (``0 <= R <= N``). By
    halves: the even places of the result are the odd ones of the two read ``R // 2`` on (``R`` odd) or the even ones
    (``R`` even), its odd places the even ones read ``R // 2 + 1`` on (odd) or the odd ones (even)."""
    if R == 0:
        out = lo
    elif R == N:
        out = hi
    else:
        even, odd = _halves(lo, LEAD, RUNS, N)
        next_even, next_odd = _halves(hi, LEAD, RUNS, N)
        H: tl.constexpr = N // 2
        if R % 2:
            out = _interleave(_funnel(odd, next_odd, R // 2, LEAD, RUNS, H),
                              _funnel(even, next_even, R // 2 + 1, LEAD, RUNS, H), LEAD, RUNS, H)
        else:
            out = _interleave(_funnel(even, next_even, R // 2, LEAD, RUNS, H),
                              _funnel(odd, next_odd, R // 2, LEAD, RUNS, H), LEAD, RUNS, H)
    return out


@device
def shift_runs(lo, hi, R: tl.constexpr, LEAD: tl.constexpr, WIDTH: tl.constexpr, VEC: tl.constexpr):
    """Runs of ``VEC`` (2, 4 or 8) columns ``R`` columns off theirs (``0 < R < VEC``): ``lo`` and ``hi``
    (``[LEAD, WIDTH]``) hold each run and the next, the result ``[LEAD, WIDTH]`` each run's columns ``R .. R + VEC - 1``
    of the two. Registers move (even and odd places split and interleaved, :func:`_funnel`); no thread reads
    another's."""
    RUNS: tl.constexpr = WIDTH // VEC
    out = _funnel(tl.reshape(lo, (LEAD, RUNS, VEC)), tl.reshape(hi, (LEAD, RUNS, VEC)), R, LEAD, RUNS, VEC)
    return tl.reshape(out, (LEAD, WIDTH))


@device
def fragment(t, CUT: tl.constexpr):
    """``t``, an MMA operand built in registers (runs moved, phases dealt), as the MMA takes it. With ``CUT`` (a
    compiled launch whose MMA is the warp-level one: :func:`tritonconv._runtime.target_options`), passed through a move
    that Triton sees as an effect (inline PTX, not pure), so that its layout pass looks no further back: where it finds a
    join on either operand's way back to its loads (a move's interleaving, or the addresses of a dealt row's), Triton
    3.6-3.9 halve the register fragments of both operands of a warp-level MMA (``kWidth`` 4 for 16 bits; Triton 3.6 also
    TF32's, 2), and the other operand is then read from shared memory by narrower reads at addresses computed per read
    (16 bits: 8 bytes at a time instead of by ``ldmatrix``; sm_80, Triton 3.6: the NC(D)HW weight gradients' moved loops
    up to 1.8x 3.9's issue, in TF32 up to 1.9x). ptxas drops the move."""
    BITS: tl.constexpr = t.dtype.primitive_bitwidth
    if CUT and (BITS == 16 or BITS == 32):  # a 32-bit register holds 32 // BITS elements
        bits = tl.int16 if BITS == 16 else tl.int32
        t = tl.inline_asm_elementwise("mov.b32 $0, $1;", "=r,r", [t.to(bits, bitcast=True)], dtype=bits, is_pure=False,
                                      pack=32 // BITS).to(t.dtype, bitcast=True)
    return t


@device
def keep_columns(a, keep, INLINE_PTX: tl.constexpr):
    """``a`` (``[rows, columns]``) with its columns where ``keep`` is false zeroed. Compiled (``INLINE_PTX``), a
    16-bit tile is masked a pair of elements at a time, an AND of each 32-bit register with its columns' mask (inline
    PTX): ``tl.where`` unpacks, selects and repacks each element, about 4x the instructions (sm_90, Triton 3.9)."""
    if INLINE_PTX and a.dtype.primitive_bitwidth == 16:
        bits = tl.broadcast_to(tl.where(keep, -1, 0).to(tl.int16)[None, :], a.shape)
        out = tl.inline_asm_elementwise("and.b32 $0, $1, $2;", "=r,r,r", [a.to(tl.int16, bitcast=True), bits],
                                        dtype=tl.int16, is_pure=True, pack=2).to(a.dtype, bitcast=True)
    else:
        out = tl.where(keep[None, :], a, 0.0)
    return out
