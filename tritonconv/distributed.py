"""Domain-parallel convolution: one volume sharded along a spatial dimension across the ranks of a
``torch.distributed`` process group; each rank exchanges only the halo its taps reach. Convolutions,
transposed convolutions (:meth:`Halo.plan_transposed`: each rank owns the outputs its slab maps to and
reads a halo from its left neighbour) and (2+1)D blocks.

Rank ``r`` holds the input slab ``[s_r, e_r)`` of dimension ``dim`` (ranks in group order, any sizes).
It owns the outputs whose window starts in its slab (rank 0 also those starting in the left padding)::

    o_0 = 0,   o_r = clamp(ceil((s_r + p_before) / stride), 0, L_out),   o_R = L_out

and computes them from ``[o_r * stride - p_before, (o_(r+1) - 1) * stride - p_before + (k - 1) * dilation + 1)``:
its own slab, the first slices of its right neighbour's (received with ``torch.distributed`` point-to-point
sends), and zeros only beyond the volume's true edges. Backward sends the halo's gradient back to the rank
that owns those slices, where it is added; the weight and bias gradients are summed over the group
(``all_reduce``), so every rank holds the whole volume's gradient, as one process would.

A shard that starts no output window (a thin or empty last shard, as ``torch.chunk`` makes them) owns no
output and returns an empty one, still taking part in the exchange. A shard thinner than the halo its left neighbour
needs is refused with a ``ValueError`` (never a wrong answer).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from . import _checks, functional, shapes


@dataclass(frozen=True)
class Halo:
    """The exchange of one sharded convolution, seen from every rank: ``starts`` (each rank's first input
    slice, and the length), ``outputs`` (each rank's first output, and the output length), ``lo``/``hi``
    (the input window each rank reads), ``recv`` and ``left`` (the slices it receives from the next and
    from the previous rank), ``before``/``after`` (the zero slices at the window's ends)."""

    starts: tuple[int, ...]
    outputs: tuple[int, ...]
    lo: tuple[int, ...]
    hi: tuple[int, ...]
    recv: tuple[int, ...]
    left: tuple[int, ...] = ()
    before: tuple[int, ...] = ()
    after: tuple[int, ...] = ()

    @staticmethod
    def _starts(sizes) -> list[int]:
        starts = [0]
        for n in sizes:
            starts.append(starts[-1] + n)
        return starts

    @classmethod
    def plan(cls, sizes, kernel: int, stride: int, padding: tuple[int, int], dilation: int) -> Halo:
        """From the shard sizes along the sharded dimension and that dimension's conv arguments."""
        starts = cls._starts(sizes)
        length, (before, after) = starts[-1], padding
        total = shapes.conv_output_size(length, kernel, stride, (before, after), dilation)
        if total <= 0:
            raise ValueError(f"distributed conv: output size {total} along the sharded dimension for length {length}")
        ranks = len(sizes)
        outputs = [0] + [min(total, max(0, -(-(starts[r] + before) // stride))) for r in range(1, ranks)] + [total]
        lo, hi, recv = [], [], []
        for r in range(ranks):
            if outputs[r + 1] <= outputs[r]:  # no window starts here (a thin last shard, say): nothing to read
                lo.append(starts[r])
                hi.append(starts[r])
                recv.append(0)
                continue
            lo.append(outputs[r] * stride - before)
            hi.append((outputs[r + 1] - 1) * stride - before + (kernel - 1) * dilation + 1)
            need = min(hi[-1], length) - starts[r + 1]
            if need > 0 and (r + 1 == ranks or need > sizes[r + 1]):
                raise ValueError(f"distributed conv: rank {r} needs {need} slices past its shard, more than rank "
                                 f"{r + 1} holds ({sizes[r + 1] if r + 1 < ranks else 0}); thicker shards, or fewer ranks")
            recv.append(max(0, need))
        zeros = tuple(0 for _ in sizes)
        return cls(tuple(starts), tuple(outputs), tuple(lo), tuple(hi), tuple(recv), zeros,
                   tuple(max(0, -v) for v in lo), tuple(max(0, v - length) for v in hi))

    @classmethod
    def plan_transposed(cls, sizes, kernel: int, stride: int, padding: int, output_padding: int,
                        dilation: int) -> Halo:
        """The same for a transposed convolution: rank ``r`` owns the outputs ``[s_r*stride - padding,
        e_r*stride - padding)`` (clipped; the last rank to the end) and reads inputs from its left neighbour,
        the ones whose taps reach back into its outputs; zero slices after its own only extend the window's
        output to its last owned position (they add no term)."""
        starts = cls._starts(sizes)
        length, ranks = starts[-1], len(sizes)
        total = shapes.conv_transpose_output_size(length, kernel, stride, padding, output_padding, dilation)
        outputs = [0] + [min(total, max(0, starts[r] * stride - padding)) for r in range(1, ranks)] + [total]
        lo, hi, left, after = [], [], [], []
        reach = (kernel - 1) * dilation
        for r in range(ranks):
            if outputs[r + 1] <= outputs[r]:
                lo.append(starts[r])
                hi.append(starts[r])
                left.append(0)
                after.append(0)
                continue
            first = max(0, min(-(-(outputs[r] + padding - reach) // stride), (outputs[r] + padding) // stride))
            last = min(length, (outputs[r + 1] - 1 + padding) // stride + 1)
            needed = -(-(outputs[r + 1] - 1 + padding - reach) // stride) + 1 - first  # slices for the window's reach
            zeros = max(0, needed - (last - first))
            take = max(0, starts[r] - first)
            if take and (r == 0 or take > sizes[r - 1]):
                raise ValueError(f"distributed conv_transpose: rank {r} needs {take} slices before its shard, more "
                                 f"than rank {r - 1} holds; thicker shards, or fewer ranks")
            lo.append(first)
            hi.append(last + zeros)
            left.append(take)
            after.append(zeros)
        none = tuple(0 for _ in sizes)
        return cls(tuple(starts), tuple(outputs), tuple(lo), tuple(hi), none, tuple(left), none, tuple(after))


class _Exchange(torch.autograd.Function):
    """Forward: this rank's slab extended by the halos it reads (received from its neighbours) and zeros.
    Backward: each halo's gradient returned to its owner, which adds it to its own."""

    @staticmethod
    def _own(halo: Halo, rank: int) -> tuple[int, int]:
        """The part of this rank's own slab its window reads, as (offset in the slab, length)."""
        start, end = halo.starts[rank], halo.starts[rank + 1]
        a = max(halo.lo[rank], 0, start)
        b = min(halo.hi[rank] - halo.after[rank], end)
        return a - start, max(0, b - a)

    @staticmethod
    def forward(ctx, x: torch.Tensor, halo: Halo, rank: int, dim: int, group) -> torch.Tensor:
        ctx.halo, ctx.rank, ctx.dim, ctx.group, ctx.size = halo, rank, dim, group, x.shape[dim]
        ranks = len(halo.starts) - 1
        to_prev = halo.recv[rank - 1] if rank > 0 else 0  # my first slices, which my left neighbour reads
        to_next = halo.left[rank + 1] if rank + 1 < ranks else 0  # my last slices, which my right neighbour reads
        shape = lambda n: (*x.shape[:dim], n, *x.shape[dim + 1:])  # noqa: E731
        from_prev, from_next = x.new_empty(shape(halo.left[rank])), x.new_empty(shape(halo.recv[rank]))
        ops = []
        if to_prev:
            ops.append(dist.P2POp(dist.isend, x.narrow(dim, 0, to_prev).contiguous(), _peer(group, rank - 1), group))
        if to_next:
            ops.append(dist.P2POp(dist.isend, x.narrow(dim, x.shape[dim] - to_next, to_next).contiguous(),
                                  _peer(group, rank + 1), group))
        if halo.left[rank]:
            ops.append(dist.P2POp(dist.irecv, from_prev, _peer(group, rank - 1), group))
        if halo.recv[rank]:
            ops.append(dist.P2POp(dist.irecv, from_next, _peer(group, rank + 1), group))
        _run(ops)
        offset, n = _Exchange._own(halo, rank)
        parts = [x.new_zeros(shape(halo.before[rank])), from_prev, x.narrow(dim, offset, n), from_next,
                 x.new_zeros(shape(halo.after[rank]))]
        return torch.cat(parts, dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        halo, rank, dim, group = ctx.halo, ctx.rank, ctx.dim, ctx.group
        ranks = len(halo.starts) - 1
        offset, n = _Exchange._own(halo, rank)
        g_prev, g_own, g_next = grad.narrow(dim, halo.before[rank], halo.left[rank] + n + halo.recv[rank]).split(
            [halo.left[rank], n, halo.recv[rank]], dim)
        out = grad.new_zeros((*grad.shape[:dim], ctx.size, *grad.shape[dim + 1:]))
        out.narrow(dim, offset, n).copy_(g_own)
        to_prev = halo.recv[rank - 1] if rank > 0 else 0
        to_next = halo.left[rank + 1] if rank + 1 < ranks else 0
        shape = lambda k: (*grad.shape[:dim], k, *grad.shape[dim + 1:])  # noqa: E731
        back_prev, back_next = grad.new_empty(shape(to_prev)), grad.new_empty(shape(to_next))
        ops = []
        if halo.left[rank]:
            ops.append(dist.P2POp(dist.isend, g_prev.contiguous(), _peer(group, rank - 1), group))
        if halo.recv[rank]:
            ops.append(dist.P2POp(dist.isend, g_next.contiguous(), _peer(group, rank + 1), group))
        if to_prev:
            ops.append(dist.P2POp(dist.irecv, back_prev, _peer(group, rank - 1), group))
        if to_next:
            ops.append(dist.P2POp(dist.irecv, back_next, _peer(group, rank + 1), group))
        _run(ops)
        if to_prev:
            out.narrow(dim, 0, to_prev).add_(back_prev)
        if to_next:
            out.narrow(dim, ctx.size - to_next, to_next).add_(back_next)
        return out, None, None, None, None


class _SumGrad(torch.autograd.Function):
    """Identity forward; backward sums the gradient over the group (a replicated parameter's gradient)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        return t.view_as(t)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


def _peer(group, rank: int) -> int:
    return rank if group is None else dist.get_global_rank(group, rank)


def _run(ops) -> None:
    for request in dist.batch_isend_irecv(ops) if ops else ():
        request.wait()


def shard_sizes(x: torch.Tensor, dim: int, group=None) -> list[int]:
    """Every rank's shard length along ``dim``, from this rank's shard ``x`` (one ``all_gather`` of ints over
    ``group``, the world when None)."""
    mine = torch.tensor([x.shape[dim]], dtype=torch.int64)
    sizes = [torch.zeros_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(sizes, mine, group=group)
    return [int(s) for s in sizes]


def _shards(op: str, ndim: int, x: torch.Tensor, dim: int, group, sizes) -> tuple[list[int], int]:
    """The checks every op shares; returns every rank's shard length along ``dim`` and this rank's index."""
    if not dist.is_initialized():
        raise RuntimeError("tritonconv.distributed: torch.distributed is not initialised (init_process_group)")
    if not 2 <= dim < 2 + ndim:
        raise ValueError(f"{op}: expected `dim` to be a spatial dimension (2 to {ndim + 1}), got {dim}")
    sizes = list(sizes) if sizes is not None else shard_sizes(x, dim, group)
    rank = dist.get_rank(group)
    if sizes[rank] != x.shape[dim]:
        raise ValueError(f"{op}: `sizes` says rank {rank} holds {sizes[rank]} slices along dim {dim}, its input "
                         f"holds {x.shape[dim]}")
    return sizes, rank


def _empty(x, ext, weight, bias, shape) -> torch.Tensor:
    """The output of a rank that owns none, still in the autograd graph: its backward's exchange and sums
    must run, since its neighbours' wait for them."""
    anchor = ext.sum() + weight.sum() + (0 if bias is None else bias.sum())
    return x.new_zeros(shape) + 0 * anchor


def _conv(ndim: int, x, weight, bias, stride, padding, dilation, groups, dim: int, group, sizes, activation=None):
    sizes, rank = _shards(f"conv{ndim}d", ndim, x, dim, group, sizes)
    kernel = tuple(weight.shape[2:])
    stride_t, dilation_t = shapes.as_tuple(stride, ndim, "stride"), shapes.as_tuple(dilation, ndim, "dilation")
    pads = shapes.resolve_padding(padding, kernel, stride_t, dilation_t)
    axis = dim - 2
    halo = Halo.plan(sizes, kernel[axis], stride_t[axis], pads[axis], dilation_t[axis])
    ext = _Exchange.apply(x, halo, rank, dim, group)
    weight, bias = _SumGrad.apply(weight, group), None if bias is None else _SumGrad.apply(bias, group)
    if halo.outputs[rank + 1] == halo.outputs[rank]:
        out = shapes.conv_output_shape(x.shape, weight.shape, stride_t, pads, dilation_t)
        return _empty(x, ext, weight, bias, (*out[:dim], 0, *out[dim + 1:]))
    local_pads = tuple((0, 0) if a == axis else p for a, p in enumerate(pads))
    fn = (functional.conv1d, functional.conv2d, functional.conv3d)[ndim - 1]
    return fn(ext, weight, bias, stride_t, local_pads, dilation_t, groups, activation=activation)


def _conv_transpose(ndim: int, x, weight, bias, stride, padding, output_padding, groups, dilation, dim: int, group,
                    sizes, activation=None):
    sizes, rank = _shards(f"conv_transpose{ndim}d", ndim, x, dim, group, sizes)
    kernel = tuple(weight.shape[2:])
    stride_t, dilation_t = shapes.as_tuple(stride, ndim, "stride"), shapes.as_tuple(dilation, ndim, "dilation")
    pad_t, out_pad_t = shapes.as_tuple(padding, ndim, "padding"), shapes.as_tuple(output_padding, ndim, "output_padding")
    axis = dim - 2
    halo = Halo.plan_transposed(sizes, kernel[axis], stride_t[axis], pad_t[axis], out_pad_t[axis], dilation_t[axis])
    ext = _Exchange.apply(x, halo, rank, dim, group)
    weight, bias = _SumGrad.apply(weight, group), None if bias is None else _SumGrad.apply(bias, group)
    o0, o1 = halo.outputs[rank], halo.outputs[rank + 1]
    if o1 == o0:
        out = [shapes.conv_transpose_output_size(*args) for args in
               zip(x.shape[2:], kernel, stride_t, pad_t, out_pad_t, dilation_t)]
        out[axis] = 0
        return _empty(x, ext, weight, bias, (x.shape[0], weight.shape[1] * groups, *out))
    local = lambda t: tuple(0 if a == axis else v for a, v in enumerate(t))  # noqa: E731
    fn = (functional.conv_transpose1d, functional.conv_transpose2d, functional.conv_transpose3d)[ndim - 1]
    y = fn(ext, weight, bias, stride_t, local(pad_t), local(out_pad_t), groups, dilation_t, activation=activation)
    first = halo.lo[rank] * stride_t[axis] - pad_t[axis]  # the global index of y's first slice
    return y.narrow(dim, o0 - first, o1 - o0)


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     dim: int = 2, group=None, sizes=None, activation: str | None = None):
    """This rank's part of ``conv_transpose1d`` of a signal sharded along ``dim``; differentiable. Rank ``r``
    owns the outputs ``[s_r * stride - padding, e_r * stride - padding)`` (clipped; the last rank to the end)
    and receives from its left neighbour the inputs whose taps reach them (:meth:`Halo.plan_transposed`).

    ``x`` is this rank's shard ``(N, C_in, L_r)``; ``weight`` ``(C_in, C_out / groups, K)``; ``bias``,
    ``stride``, ``padding``, ``output_padding``, ``groups`` and ``dilation`` as
    :func:`tritonconv.conv_transpose1d`; ``dim``, ``group``, ``sizes`` and ``activation`` as :func:`conv1d`.
    """
    return _conv_transpose(1, x, weight, bias, stride, padding, output_padding, groups, dilation, dim, group, sizes,
                           activation)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     dim: int = 2, group=None, sizes=None, activation: str | None = None):
    """:func:`conv_transpose1d` for an image ``x`` sharded along ``dim`` (2 or 3); ``weight``, ``bias``,
    ``stride``, ``padding``, ``output_padding``, ``groups`` and ``dilation`` as
    :func:`tritonconv.conv_transpose2d`; ``group``, ``sizes`` and ``activation`` as :func:`conv1d`."""
    return _conv_transpose(2, x, weight, bias, stride, padding, output_padding, groups, dilation, dim, group, sizes,
                           activation)


def conv_transpose3d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     dim: int = 2, group=None, sizes=None, activation: str | None = None):
    """:func:`conv_transpose1d` for a volume ``x`` sharded along ``dim`` (2, 3 or 4); ``weight``, ``bias``,
    ``stride``, ``padding``, ``output_padding``, ``groups`` and ``dilation`` as
    :func:`tritonconv.conv_transpose3d`; ``group``, ``sizes`` and ``activation`` as :func:`conv1d`."""
    return _conv_transpose(3, x, weight, bias, stride, padding, output_padding, groups, dilation, dim, group, sizes,
                           activation)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, dim: int = 2, group=None,
           sizes=None, activation: str | None = None):
    """This rank's part of ``conv1d`` of a signal sharded along ``dim`` over ``group``; differentiable.

    :param x: this rank's shard ``(N, C_in, L_r)`` (shards in group-rank order, any lengths).
    :param weight: ``(C_out, C_in / groups, K)``, the same on every rank (its gradient is summed over the group).
    :param bias: ``(C_out,)`` or None, the same on every rank.
    :param stride: as :func:`tritonconv.conv1d`.
    :param padding: as :func:`tritonconv.conv1d`; applied only at the signal's true edges.
    :param dilation: as :func:`tritonconv.conv1d`.
    :param groups: as :func:`tritonconv.conv1d`.
    :param dim: the sharded dimension (2: the length).
    :param group: the ``torch.distributed`` process group (default: the world).
    :param sizes: every rank's shard length along ``dim`` (default: gathered, one collective).
    :param activation: None, ``'relu'``, ``'gelu'`` or ``'silu'``, fused after the bias.
    :returns: the outputs whose window starts in this rank's shard (module docstring), as a tensor.
    :raises ValueError: a thin shard or one that starts no output window, ``sizes`` that do not match, or any
        error of :func:`tritonconv.conv1d`.
    :raises RuntimeError: torch.distributed not initialised.
    """
    return _conv(1, x, weight, bias, stride, padding, dilation, groups, dim, group, sizes, activation)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, dim: int = 2, group=None,
           sizes=None, activation: str | None = None):
    """:func:`conv1d` for an image ``x`` ``(N, C_in, H_r, W)`` or ``(N, C_in, H, W_r)`` sharded along ``dim``
    (2: height, 3: width); ``weight`` ``(C_out, C_in / groups, kH, kW)``; ``bias``, ``stride``, ``padding``,
    ``dilation`` and ``groups`` as :func:`tritonconv.conv2d`; ``group``, ``sizes`` and ``activation`` as :func:`conv1d`."""
    return _conv(2, x, weight, bias, stride, padding, dilation, groups, dim, group, sizes, activation)


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, dim: int = 2, group=None,
           sizes=None, activation: str | None = None):
    """:func:`conv1d` for a volume ``x`` ``(N, C_in, D, H, W)`` sharded along ``dim`` (2: depth, 3: height,
    4: width); ``weight`` ``(C_out, C_in / groups, kD, kH, kW)``; ``bias``, ``stride``, ``padding``,
    ``dilation`` and ``groups`` as :func:`tritonconv.conv3d`; ``group``, ``sizes`` and ``activation`` as :func:`conv1d`."""
    return _conv(3, x, weight, bias, stride, padding, dilation, groups, dim, group, sizes, activation)


def conv2plus1d(x, weight_spatial, weight_temporal, bias_spatial=None, bias_temporal=None, stride=1, padding=0,
                dilation=1, *, mid_activation: str | None = None, activation: str | None = None, dim: int = 2,
                group=None):
    """:func:`tritonconv.conv2plus1d` of a volume sharded along ``dim``: the spatial stage, then the temporal
    one, each a sharded :func:`conv3d` (the mid tensor stays sharded; each stage exchanges its own halo).

    ``x`` is this rank's shard ``(N, C_in, D, H, W)``; ``weight_spatial``, ``weight_temporal``,
    ``bias_spatial``, ``bias_temporal``, ``stride``, ``padding``, ``dilation``, ``mid_activation`` and
    ``activation`` as :func:`tritonconv.conv2plus1d`; ``dim`` and ``group`` as :func:`conv1d`. Returns this
    rank's part of the output (the temporal stage's ownership, from the mid tensor's shards).
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
