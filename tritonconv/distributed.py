"""Domain-parallel convolution: one volume sharded along spatial dimensions across the ranks of
``torch.distributed`` process groups (or a ``DTensor`` on a ``DeviceMesh``); each rank exchanges only the
halo its taps reach. Convolutions, transposed convolutions and (2+1)D blocks, forward and backward.

Along a sharded dimension rank ``r`` holds the input slab ``[s_r, e_r)`` (ranks in group order, any sizes,
empty ones included) and computes the outputs it owns (:class:`~tritonconv.shapes.Halo`): by default
``torch.chunk``'s split of the output (``out_sizes='chunk'``, the one a ``DTensor`` output has: balanced
work), or any split given, or (``out_sizes=None``) for a convolution the windows that start in its slab::

    o_0 = 0,   o_r = clamp(ceil((s_r + p_before) / stride), 0, L_out),   o_R = L_out

It reads ``[o_r * stride - p_before, (o_(r+1) - 1) * stride - p_before + (k - 1) * dilation + 1)``: its own
slab, slices of the ranks that hold the rest (``torch.distributed`` batched point-to-point sends; from as
many ranks as the window spans, so thin shards work), and zeros only beyond the volume's true edges. For a
transposed convolution (``out_sizes=None``: the outputs its slab maps to) it reads the inputs whose taps
reach its outputs.

Two or more sharded dimensions (``dim`` and ``group`` tuples: a 2-D or 3-D mesh) exchange along each in
turn; the second exchange sends slabs that already carry the first one's halo, so corners arrive too.
Backward sends each halo's gradient back to the rank that holds those slices, where it is added; the
weight and bias gradients are summed over the groups (``all_reduce``), so every rank of the domain holds
the whole volume's gradient, as one process would (data parallelism over another group composes).

``DTensor`` inputs (``Shard(d)`` with ``d >= 2`` on any mesh dimensions, ``Shard(0)`` for batch,
``Replicate()``) return a ``DTensor`` with the same placements, split as ``DTensor`` splits it; replicated
``DTensor`` weights get their gradient as ``Partial()`` over batch-sharded mesh dimensions (DTensor's
convention) and summed over the spatial ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

from . import _checks, functional, shapes
from .shapes import Halo


class _Exchange(torch.autograd.Function):
    """Forward: this rank's window along ``dim``, made of zeros, the slices other ranks send and its own.
    Backward: each received slice's gradient returned to its holder, which adds it to its own."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, halo: Halo, rank: int, dim: int, group) -> torch.Tensor:
        ctx.halo, ctx.rank, ctx.dim, ctx.group, ctx.size = halo, rank, dim, group, x.shape[dim]
        shape = lambda n: (*x.shape[:dim], n, *x.shape[dim + 1:])  # noqa: E731
        start, ops, parts = halo.starts[rank], [], [x.new_zeros(shape(halo.before[rank]))]
        for q in range(len(halo.starts) - 1):
            a, b = halo.piece(rank, q)
            if q == rank:
                parts.append(x.narrow(dim, a - start, b - a))
                continue
            parts.append(x.new_empty(shape(b - a)))
            _p2p(ops, dist.irecv, parts[-1], q, group)
            a, b = halo.piece(q, rank)  # what rank q reads from this one
            _p2p(ops, dist.isend, x.narrow(dim, a - start, b - a), q, group)
        _run(ops)
        return torch.cat(parts + [x.new_zeros(shape(halo.after[rank]))], dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        halo, rank, dim, group = ctx.halo, ctx.rank, ctx.dim, ctx.group
        ranks, start = len(halo.starts) - 1, halo.starts[rank]
        lengths = [b - a for a, b in (halo.piece(rank, q) for q in range(ranks))]
        pieces = grad.narrow(dim, halo.before[rank], sum(lengths)).split(lengths, dim)
        out = grad.new_zeros((*grad.shape[:dim], ctx.size, *grad.shape[dim + 1:]))
        ops, back = [], []
        for q in range(ranks):
            if q == rank:
                a, b = halo.piece(rank, rank)
                out.narrow(dim, a - start, b - a).add_(pieces[q])
                continue
            _p2p(ops, dist.isend, pieces[q], q, group)
            a, b = halo.piece(q, rank)
            back.append((a - start, grad.new_empty((*grad.shape[:dim], b - a, *grad.shape[dim + 1:]))))
            _p2p(ops, dist.irecv, back[-1][1], q, group)
        _run(ops)
        for offset, g in back:
            out.narrow(dim, offset, g.shape[dim]).add_(g)
        return out, None, None, None, None


class _SumGrad(torch.autograd.Function):
    """Identity forward; backward sums the gradient over each group (a replicated parameter's gradient)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, groups) -> torch.Tensor:
        ctx.groups = groups
        return t.view_as(t)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        for group in ctx.groups:
            dist.all_reduce(grad, group=group)
        return grad, None


def _p2p(ops: list, op, t: torch.Tensor, rank: int, group) -> None:
    """Queue a send or receive of ``t`` with group rank ``rank`` (nothing when ``t`` is empty: its peer's
    matching tensor is empty too, every other dimension being the same on both)."""
    if t.numel():
        ops.append(dist.P2POp(op, t if op is dist.irecv else t.contiguous(),
                              rank if group is None else dist.get_global_rank(group, rank), group))


_MET: dict[int, object] = {}  # id -> group: the groups a collective has run on (held, so no id is reused)


def _meet(group, device: torch.device) -> None:
    """One small ``all_reduce`` on ``group`` the first time an op uses it: NCCL asks that a group's first
    point-to-point batch include every rank, and a rank with no halo to send or receive takes no part."""
    group = group if group is not None else dist.group.WORLD
    if id(group) not in _MET:
        dist.all_reduce(torch.zeros(1, device=device), group=group)
        _MET[id(group)] = group


def _run(ops) -> None:
    for request in dist.batch_isend_irecv(ops) if ops else ():
        request.wait()


def shard_sizes(x: torch.Tensor, dim: int, group=None) -> list[int]:
    """Every rank's shard length along ``dim``, from this rank's shard ``x`` (one ``all_gather`` of ints over
    ``group``, the world when None)."""
    mine = torch.tensor([x.shape[dim]], dtype=torch.int64, device=x.device)  # on the GPU for NCCL
    sizes = [torch.zeros_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(sizes, mine, group=group)
    return [int(s) for s in sizes]


def _per_axis(value, count: int, op: str, name: str) -> tuple:
    """``value`` for each of ``count`` sharded dimensions: itself for one; for several a sequence of ``count``
    entries (None and ``'chunk'`` stand for every dimension)."""
    if count == 1:
        return (value,)
    if value is None or isinstance(value, str):
        return (value,) * count
    if not isinstance(value, (tuple, list)) or len(value) != count:
        raise ValueError(f"{op}: expected `{name}` to hold one entry per sharded dimension ({count}), got {value!r}")
    return tuple(value)


def _axes(op: str, ndim: int, x: torch.Tensor, dim, group, sizes, out_sizes) -> list[tuple]:
    """The sharded axes as ``(dim, group, sizes, out_sizes, rank)``, after the checks every op shares."""
    if not dist.is_initialized():
        raise RuntimeError("tritonconv.distributed: torch.distributed is not initialised (init_process_group)")
    dims = tuple(d + ndim + 2 if isinstance(d, int) and d < 0 else d for d in ((dim,) if isinstance(dim, int) else dim))
    if len(set(dims)) != len(dims) or not all(isinstance(d, int) and 2 <= d < 2 + ndim for d in dims):
        raise ValueError(f"{op}: expected `dim` to be distinct spatial dimensions (2 to {ndim + 1}, or negative), "
                         f"got {dim!r}")
    if len(dims) > 1 and group is None:
        raise ValueError(f"{op}: {len(dims)} sharded dimensions need one process group each (`group`), got None")
    axes = []
    for d, g, n, o in zip(dims, _per_axis(group, len(dims), op, "group"), _per_axis(sizes, len(dims), op, "sizes"),
                          _per_axis(out_sizes, len(dims), op, "out_sizes")):
        n = list(n) if n is not None else shard_sizes(x, d, g)
        _meet(g, x.device)
        rank, ranks = dist.get_rank(g), dist.get_world_size(g)
        if len(n) != ranks or n[rank] != x.shape[d]:
            raise ValueError(f"{op}: expected `sizes` along dim {d} to hold {ranks} lengths with {x.shape[d]} (this "
                             f"shard's) at index {rank}, got {n}")
        axes.append((d, g, n, o, rank))
    return axes


def _exchange(x, weight, bias, axes, plans):
    """``x``'s window after every axis's exchange, and the parameters whose gradients sum over the groups."""
    for (d, g, _, _, rank), halo in zip(axes, plans):
        x = _Exchange.apply(x, halo, rank, d, g)
    groups = [g for _, g, *_ in axes]
    if groups:
        weight, bias = _SumGrad.apply(weight, groups), None if bias is None else _SumGrad.apply(bias, groups)
    return x, weight, bias


def _empty(x, ext, weight, bias, shape) -> torch.Tensor:
    """The output of a rank that owns none, still in the autograd graph: its backward's exchanges and sums
    must run, since its peers' wait for them."""
    anchor = ext.sum() + weight.sum() + (0 if bias is None else bias.sum())
    return x.new_zeros(shape) + 0 * anchor


def _conv_plan(ndim: int, weight_shape, stride, padding, dilation, groups, d: int, sizes, out_sizes) -> Halo:
    """The plan of a convolution along dimension ``d`` (arguments as the op's)."""
    a, kernel = d - 2, tuple(weight_shape[2:])
    stride_t, dilation_t = shapes.as_tuple(stride, ndim, "stride"), shapes.as_tuple(dilation, ndim, "dilation")
    pad = shapes.resolve_padding(padding, kernel, stride_t, dilation_t)[a]
    return Halo.plan(sizes, kernel[a], stride_t[a], pad, dilation_t[a], out_sizes)


def _conv_transpose_plan(ndim: int, weight_shape, stride, padding, output_padding, groups, dilation, d: int, sizes,
                         out_sizes) -> Halo:
    """The plan of a transposed convolution along dimension ``d`` (arguments as the op's)."""
    arg = tuple(shapes.as_tuple(v, ndim, name)[d - 2] for v, name in
                ((stride, "stride"), (padding, "padding"), (output_padding, "output_padding"), (dilation, "dilation")))
    return Halo.plan_transposed(sizes, weight_shape[d], *arg, out_sizes)


def _conv(ndim: int, x, weight, bias, stride, padding, dilation, groups, dim, group, sizes, out_sizes="chunk",
          activation=None):
    args = (stride, padding, dilation, groups)
    if _checks.is_dtensor(x):
        return _on_dtensor(_conv, ndim, x, weight, bias, args, activation)
    axes = _axes(f"conv{ndim}d", ndim, x, dim, group, sizes, out_sizes)
    kernel = tuple(weight.shape[2:])
    stride_t, dilation_t = shapes.as_tuple(stride, ndim, "stride"), shapes.as_tuple(dilation, ndim, "dilation")
    pads = shapes.resolve_padding(padding, kernel, stride_t, dilation_t)
    plans = [_conv_plan(ndim, weight.shape, *args, d, n, o) for d, _, n, o, _ in axes]
    ext, weight, bias = _exchange(x, weight, bias, axes, plans)
    if any(h.outputs[ax[4] + 1] == h.outputs[ax[4]] for ax, h in zip(axes, plans)):
        out = list(shapes.conv_output_shape(x.shape, weight.shape, stride_t, pads, dilation_t))
        for (d, *_, rank), h in zip(axes, plans):
            out[d] = h.outputs[rank + 1] - h.outputs[rank]
        return _empty(x, ext, weight, bias, out)
    sharded = {d - 2 for d, *_ in axes}
    local_pads = tuple((0, 0) if a in sharded else p for a, p in enumerate(pads))
    fn = (functional.conv1d, functional.conv2d, functional.conv3d)[ndim - 1]
    return fn(ext, weight, bias, stride_t, local_pads, dilation_t, groups, activation=activation)


def _conv_transpose(ndim: int, x, weight, bias, stride, padding, output_padding, groups, dilation, dim, group,
                    sizes, out_sizes="chunk", activation=None):
    args = (stride, padding, output_padding, groups, dilation)
    if _checks.is_dtensor(x):
        return _on_dtensor(_conv_transpose, ndim, x, weight, bias, args, activation)
    axes = _axes(f"conv_transpose{ndim}d", ndim, x, dim, group, sizes, out_sizes)
    kernel = tuple(weight.shape[2:])
    stride_t, dilation_t = shapes.as_tuple(stride, ndim, "stride"), shapes.as_tuple(dilation, ndim, "dilation")
    pad_t, out_pad_t = shapes.as_tuple(padding, ndim, "padding"), shapes.as_tuple(output_padding, ndim, "output_padding")
    plans = [_conv_transpose_plan(ndim, weight.shape, *args, d, n, o) for d, _, n, o, _ in axes]
    ext, weight, bias = _exchange(x, weight, bias, axes, plans)
    if any(h.outputs[ax[4] + 1] == h.outputs[ax[4]] for ax, h in zip(axes, plans)):
        out = [x.shape[0], weight.shape[1] * groups] + [shapes.conv_transpose_output_size(*a) for a in
                                                         zip(x.shape[2:], kernel, stride_t, pad_t, out_pad_t, dilation_t)]
        for (d, *_, rank), h in zip(axes, plans):
            out[d] = h.outputs[rank + 1] - h.outputs[rank]
        return _empty(x, ext, weight, bias, out)
    sharded = {d - 2 for d, *_ in axes}
    local = lambda t: tuple(0 if a in sharded else v for a, v in enumerate(t))  # noqa: E731
    fn = (functional.conv_transpose1d, functional.conv_transpose2d, functional.conv_transpose3d)[ndim - 1]
    y = fn(ext, weight, bias, stride_t, local(pad_t), local(out_pad_t), groups, dilation_t, activation=activation)
    for (d, *_, rank), h in zip(axes, plans):
        first = h.lo[rank] * stride_t[d - 2] - pad_t[d - 2]  # the global index of y's first slice along d
        y = y.narrow(d, h.outputs[rank] - first, h.outputs[rank + 1] - h.outputs[rank])
    return y


def _on_dtensor(local, ndim: int, x, weight, bias, args, activation):
    """``local`` (:func:`_conv` or :func:`_conv_transpose`) on a ``DTensor`` input: its spatial shards, the
    output as a ``DTensor`` of the same placements (DTensor's split), replicated parameters."""
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard

    op = f"{'conv_transpose' if local is _conv_transpose else 'conv'}{ndim}d"
    mesh, placements = x.device_mesh, tuple(x.placements)
    if x.ndim != ndim + 2:
        raise ValueError(f"{op}: expected a DTensor of {ndim + 2} dimensions, got shape {tuple(x.shape)}")
    dims, groups, sizes, batch = [], [], [], set()
    for i, p in enumerate(placements):
        if isinstance(p, Shard):
            d = p.dim % x.ndim
            if d == 1 or d in dims:
                raise ValueError(f"{op}: input placements {placements}: "
                                 + ("channels cannot be sharded" if d == 1 else f"dim {d} is sharded twice"))
            if d == 0:
                batch.add(i)
                continue
            dims.append(d)
            groups.append(mesh.get_group(i))
            sizes.append(list(shapes.chunk_sizes(x.shape[d], mesh.size(i))))
        elif not isinstance(p, Replicate):
            raise ValueError(f"{op}: expected input placements Shard or Replicate, got {placements}")

    def param(t, name: str):
        if not _checks.is_dtensor(t):
            return t
        if t.device_mesh != mesh or not all(isinstance(p, Replicate) for p in t.placements):
            raise ValueError(f"{op}: expected `{name}` replicated on the input's mesh, got {t.placements}")
        return t.to_local(grad_placements=[Partial() if i in batch else Replicate() for i in range(mesh.ndim)])

    one = lambda v: v[0] if len(v) == 1 else tuple(v)  # noqa: E731  (one sharded dimension: plain arguments)
    y = local(ndim, x.to_local(), param(weight, "weight"), param(bias, "bias"), *args, dim=one(dims),
              group=one(groups) if groups else None, sizes=one(sizes), out_sizes=one(("chunk",) * len(dims)),
              activation=activation)
    plan = _conv_transpose_plan if local is _conv_transpose else _conv_plan
    shape = [x.shape[0], *y.shape[1:]]
    for d, n in zip(dims, sizes):  # the whole output's length along each sharded dimension
        shape[d] = plan(ndim, weight.shape, *args, d, n, None).outputs[-1]
    return DTensor.from_local(y, mesh, placements, run_check=False, shape=torch.Size(shape),
                              stride=torch.empty(shape, device="meta").stride())


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     dim: int | Sequence[int] = 2, group=None, sizes=None, out_sizes="chunk",
                     activation: str | None = None):
    """This rank's part of ``conv_transpose1d`` of a signal sharded along ``dim``; differentiable. Rank ``r``
    owns ``torch.chunk``'s share of the output by default; with ``out_sizes=None`` the outputs its slab maps to,
    ``[s_r * stride - padding, e_r * stride - padding)`` (clipped; the last rank to the end), reading from its
    left the inputs whose taps reach them (:meth:`Halo.plan_transposed`).

    ``x`` is this rank's shard ``(N, C_in, L_r)`` or a ``DTensor``; ``weight`` ``(C_in, C_out / groups, K)``;
    ``bias``, ``stride``, ``padding``, ``output_padding``, ``groups`` and ``dilation`` as
    :func:`tritonconv.conv_transpose1d`; ``dim``, ``group``, ``sizes``, ``out_sizes`` and ``activation`` as
    :func:`conv1d`.
    """
    return _conv_transpose(1, x, weight, bias, stride, padding, output_padding, groups, dilation, dim, group, sizes,
                           out_sizes, activation)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     dim: int | Sequence[int] = 2, group=None, sizes=None, out_sizes="chunk",
                     activation: str | None = None):
    """:func:`conv_transpose1d` for an image ``x`` sharded along ``dim`` (2 or 3); ``weight``, ``bias``,
    ``stride``, ``padding``, ``output_padding``, ``groups`` and ``dilation`` as
    :func:`tritonconv.conv_transpose2d`; ``group``, ``sizes``, ``out_sizes`` and ``activation`` as
    :func:`conv1d`."""
    return _conv_transpose(2, x, weight, bias, stride, padding, output_padding, groups, dilation, dim, group, sizes,
                           out_sizes, activation)


def conv_transpose3d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     dim: int | Sequence[int] = 2, group=None, sizes=None, out_sizes="chunk",
                     activation: str | None = None):
    """:func:`conv_transpose1d` for a volume ``x`` sharded along ``dim`` (2, 3 or 4); ``weight``, ``bias``,
    ``stride``, ``padding``, ``output_padding``, ``groups`` and ``dilation`` as
    :func:`tritonconv.conv_transpose3d`; ``group``, ``sizes``, ``out_sizes`` and ``activation`` as
    :func:`conv1d`."""
    return _conv_transpose(3, x, weight, bias, stride, padding, output_padding, groups, dilation, dim, group, sizes,
                           out_sizes, activation)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, dim: int | Sequence[int] = 2,
           group=None, sizes=None, out_sizes="chunk", activation: str | None = None):
    """This rank's part of ``conv1d`` of a signal sharded along ``dim`` over ``group``; differentiable.

    :param x: this rank's shard ``(N, C_in, L_r)`` (shards in group-rank order, any lengths), or a ``DTensor``
        (then ``dim``, ``group``, ``sizes`` and ``out_sizes`` come from its placements and mesh, and the
        output is a ``DTensor`` with the same placements: module docstring).
    :param weight: ``(C_out, C_in / groups, K)``, the same on every rank (its gradient is summed over the
        group), or a replicated ``DTensor``.
    :param bias: ``(C_out,)`` or None, the same on every rank.
    :param stride: as :func:`tritonconv.conv1d`.
    :param padding: as :func:`tritonconv.conv1d`; applied only at the signal's true edges.
    :param dilation: as :func:`tritonconv.conv1d`.
    :param groups: as :func:`tritonconv.conv1d`.
    :param dim: the sharded dimension (2: the length); in 2-D and 3-D a tuple of them, sharded at once.
    :param group: the ``torch.distributed`` process group (default: the world); a tuple of one group per
        entry of ``dim`` (a mesh's rows and columns: ``DeviceMesh.get_group``).
    :param sizes: every rank's shard length along ``dim`` (default: gathered, one collective); a tuple of
        such lists for several dims.
    :param out_sizes: every rank's output length along ``dim``: ``'chunk'`` (default) for ``torch.chunk``'s
        split (balanced, as a ``DTensor`` has it), None for the windows that start in its shard (halos from
        the right only), or a list; a tuple of these for several dims.
    :param activation: None or one of :data:`tritonconv.ACTIVATIONS`
        (``'relu'``, ``'gelu'``, ``'leaky_relu(0.2)'``, ...), fused after the bias.
    :returns: this rank's outputs (module docstring); a rank that owns none gets an empty tensor.
    :raises ValueError: ``dim``, ``group``, ``sizes`` or ``out_sizes`` that do not match the shards and
        groups, DTensor placements other than spatial/batch ``Shard`` and ``Replicate``, or any error of
        :func:`tritonconv.conv1d`.
    :raises RuntimeError: torch.distributed not initialised.
    """
    return _conv(1, x, weight, bias, stride, padding, dilation, groups, dim, group, sizes, out_sizes, activation)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, dim: int | Sequence[int] = 2,
           group=None, sizes=None, out_sizes="chunk", activation: str | None = None):
    """:func:`conv1d` for an image ``x`` ``(N, C_in, H_r, W)`` or ``(N, C_in, H, W_r)`` sharded along ``dim``
    (2: height, 3: width, or both), or a ``DTensor``; ``weight`` ``(C_out, C_in / groups, kH, kW)``; ``bias``,
    ``stride``, ``padding``, ``dilation`` and ``groups`` as :func:`tritonconv.conv2d`; ``group``, ``sizes``,
    ``out_sizes`` and ``activation`` as :func:`conv1d`."""
    return _conv(2, x, weight, bias, stride, padding, dilation, groups, dim, group, sizes, out_sizes, activation)


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, dim: int | Sequence[int] = 2,
           group=None, sizes=None, out_sizes="chunk", activation: str | None = None):
    """:func:`conv1d` for a volume ``x`` ``(N, C_in, D, H, W)`` sharded along ``dim`` (2: depth, 3: height,
    4: width; a tuple for several), or a ``DTensor``; ``weight`` ``(C_out, C_in / groups, kD, kH, kW)``;
    ``bias``, ``stride``, ``padding``, ``dilation`` and ``groups`` as :func:`tritonconv.conv3d`; ``group``,
    ``sizes``, ``out_sizes`` and ``activation`` as :func:`conv1d`."""
    return _conv(3, x, weight, bias, stride, padding, dilation, groups, dim, group, sizes, out_sizes, activation)


def conv2plus1d(x, weight_spatial, weight_temporal, bias_spatial=None, bias_temporal=None, stride=1, padding=0,
                dilation=1, *, mid_activation: str | None = None, activation: str | None = None,
                dim: int | Sequence[int] = 2, group=None):
    """:func:`tritonconv.conv2plus1d` of a volume sharded along ``dim``: the spatial stage, then the temporal
    one, each a sharded :func:`conv3d` (the mid tensor stays sharded; each stage exchanges its own halo).

    ``x`` is this rank's shard ``(N, C_in, D, H, W)`` or a ``DTensor`` (the output is one too);
    ``weight_spatial``, ``weight_temporal``, ``bias_spatial``, ``bias_temporal``, ``stride``, ``padding``,
    ``dilation``, ``mid_activation`` and ``activation`` as :func:`tritonconv.conv2plus1d`; ``dim`` and
    ``group`` as :func:`conv1d`. Returns this rank's part of the output (the temporal stage's ownership, from
    the mid tensor's shards).
    """
    _checks.check_activation(mid_activation, "conv2plus1d", "mid_activation")
    kernel = (weight_temporal.shape[2], *weight_spatial.shape[3:])
    st, sh, sw = shapes.as_tuple(stride, 3, "stride")
    dt, dh, dw = shapes.as_tuple(dilation, 3, "dilation")
    (pt, ph, pw) = shapes.resolve_padding(padding, kernel, (st, sh, sw), (dt, dh, dw))
    mid = conv3d(x, weight_spatial, bias_spatial, (1, sh, sw), ((0, 0), ph, pw), (1, dh, dw), dim=dim, group=group,
                 activation=mid_activation)
    return conv3d(mid, weight_temporal, bias_temporal, (st, 1, 1), (pt, (0, 0), (0, 0)), (dt, 1, 1), dim=dim,
                  group=group, activation=activation)


__all__ = ["Halo", "conv1d", "conv2d", "conv2plus1d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "shard_sizes"]
