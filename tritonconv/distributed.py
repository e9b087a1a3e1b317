"""Domain-parallel convolution: one volume sharded along a spatial dimension across the ranks of a
``torch.distributed`` process group; each rank exchanges only the halo its taps reach.

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
import torch.nn.functional as F

from . import _checks, functional, shapes


@dataclass(frozen=True)
class Halo:
    """The exchange of one sharded convolution, seen from every rank: ``starts`` (each rank's first input
    slice, and the length), ``outputs`` (each rank's first output, and the output length), ``lo``/``hi``
    (the input range each rank reads, padding included) and ``recv`` (the slices each rank receives from
    the next one)."""

    starts: tuple[int, ...]
    outputs: tuple[int, ...]
    lo: tuple[int, ...]
    hi: tuple[int, ...]
    recv: tuple[int, ...]

    @classmethod
    def plan(cls, sizes, kernel: int, stride: int, padding: tuple[int, int], dilation: int) -> Halo:
        """From the shard sizes along the sharded dimension and that dimension's conv arguments."""
        starts = [0]
        for n in sizes:
            starts.append(starts[-1] + n)
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
        return cls(tuple(starts), tuple(outputs), tuple(lo), tuple(hi), tuple(recv))


class _Exchange(torch.autograd.Function):
    """Forward: this rank's slab extended by the halo it reads (received) and zeros beyond the volume's edges.
    Backward: the halo's gradient returned to its owner, which adds it to its own."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, halo: Halo, rank: int, dim: int, group) -> torch.Tensor:
        ctx.halo, ctx.rank, ctx.dim, ctx.group, ctx.size = halo, rank, dim, group, x.shape[dim]
        start, length = halo.starts[rank], halo.starts[-1]
        send = halo.recv[rank - 1] if rank > 0 else 0  # my first slices, which my left neighbour reads
        ops = []
        if send:
            ops.append(dist.P2POp(dist.isend, x.narrow(dim, 0, send).contiguous(), _peer(group, rank - 1), group))
        received = x.new_empty((*x.shape[:dim], halo.recv[rank], *x.shape[dim + 1:]))
        if halo.recv[rank]:
            ops.append(dist.P2POp(dist.irecv, received, _peer(group, rank + 1), group))
        _run(ops)
        own = x.narrow(dim, max(halo.lo[rank], 0) - start, min(halo.hi[rank], length, start + x.shape[dim])
                       - max(halo.lo[rank], 0))
        ext = torch.cat([own, received], dim)
        pad = [0, 0] * (x.dim() - 1 - dim) + [max(0, -halo.lo[rank]), max(0, halo.hi[rank] - length)]
        return F.pad(ext, pad) if any(pad) else ext

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        halo, rank, dim, group = ctx.halo, ctx.rank, ctx.dim, ctx.group
        start, length = halo.starts[rank], halo.starts[-1]
        grad = grad.narrow(dim, max(0, -halo.lo[rank]), grad.shape[dim] - max(0, -halo.lo[rank])
                           - max(0, halo.hi[rank] - length))  # the zeros beyond the edges have no owner
        own_len = grad.shape[dim] - halo.recv[rank]
        out = grad.new_zeros((*grad.shape[:dim], ctx.size, *grad.shape[dim + 1:]))
        out.narrow(dim, max(halo.lo[rank], 0) - start, own_len).copy_(grad.narrow(dim, 0, own_len))
        send = halo.recv[rank - 1] if rank > 0 else 0
        back = grad.new_empty((*grad.shape[:dim], send, *grad.shape[dim + 1:]))
        ops = []
        if halo.recv[rank]:
            ops.append(dist.P2POp(dist.isend, grad.narrow(dim, own_len, halo.recv[rank]).contiguous(),
                                  _peer(group, rank + 1), group))
        if send:
            ops.append(dist.P2POp(dist.irecv, back, _peer(group, rank - 1), group))
        _run(ops)
        if send:
            out.narrow(dim, 0, send).add_(back)
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


def _conv(ndim: int, x, weight, bias, stride, padding, dilation, groups, dim: int, group, sizes, activation=None):
    if not dist.is_initialized():
        raise RuntimeError("tritonconv.distributed: torch.distributed is not initialised (init_process_group)")
    if not 2 <= dim < 2 + ndim:
        raise ValueError(f"conv{ndim}d: expected `dim` to be a spatial dimension (2 to {ndim + 1}), got {dim}")
    kernel = tuple(weight.shape[2:])
    stride_t, dilation_t = shapes.as_tuple(stride, ndim, "stride"), shapes.as_tuple(dilation, ndim, "dilation")
    pads = shapes.resolve_padding(padding, kernel, stride_t, dilation_t)
    axis = dim - 2
    sizes = list(sizes) if sizes is not None else shard_sizes(x, dim, group)
    rank = dist.get_rank(group)
    if sizes[rank] != x.shape[dim]:
        raise ValueError(f"conv{ndim}d: `sizes` says rank {rank} holds {sizes[rank]} slices along dim {dim}, its "
                         f"input holds {x.shape[dim]}")
    halo = Halo.plan(sizes, kernel[axis], stride_t[axis], pads[axis], dilation_t[axis])
    ext = _Exchange.apply(x, halo, rank, dim, group)
    local_pads = tuple((0, 0) if a == axis else p for a, p in enumerate(pads))
    fn = (functional.conv1d, functional.conv2d, functional.conv3d)[ndim - 1]
    weight, bias = _SumGrad.apply(weight, group), None if bias is None else _SumGrad.apply(bias, group)
    if halo.outputs[rank + 1] == halo.outputs[rank]:  # no output here; still in the graph, so that backward's
        out = shapes.conv_output_shape(x.shape, weight.shape, stride_t, pads, dilation_t)  # exchange and sums run
        out = (*out[:dim], 0, *out[dim + 1:])
        anchor = ext.sum() + weight.sum() + (0 if bias is None else bias.sum())
        return x.new_zeros(out) + 0 * anchor
    return fn(ext, weight, bias, stride_t, local_pads, dilation_t, groups, activation=activation)


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


__all__ = ["Halo", "conv1d", "conv2d", "conv2plus1d", "conv3d", "shard_sizes"]
