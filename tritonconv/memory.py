"""Device-memory estimates and the streaming planner.

The kernels are implicit GEMMs: no im2col buffer, so a one-shot convolution holds its input, weight, bias and output
(activations are read in place, in any layout), plus, in large problems, a copy of a weight not laid out for the
kernels (:func:`tritonconv.geometry.weight_copy_pays`), the split partial sums of small outputs and of the weight
gradient, a layer of few input channels' packed input and a layer of narrow groups' block-diagonal weight
(:func:`packed_bytes`), and, where tuning chose a relayout config for NC(D)HW activations (``Config.relayout``), their
channels-innermost copy. Streaming keeps its input ring channels-last. :func:`plan_stream` sizes the slabs of
:func:`tritonconv.streaming.conv3d_stream`; :class:`TensorBytes` measures what a block of torch calls holds, on the
CPU too.
"""

from __future__ import annotations

import itertools
import math
import weakref
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from . import geometry, shapes
from ._checks import ConvSpec

CPU_BUDGET = 2**30  # bytes planned for when the device is the CPU (interpreter) and no budget is given
MARGIN = 0.8  # share of the free GPU memory a default plan may use


def conv_device_bytes(input_shape, weight_shape, output_shape, dtype: str, bias: bool = False,
                      weight_inner: bool = False) -> int:
    """Bytes a one-shot convolution holds on the device: ``input_shape`` + ``weight_shape`` (+ the ``bias``
    when True) + ``output_shape`` in ``dtype`` (``'float32'``, ``'float16'``, ``'bfloat16'``, ``'float64'``),
    and, for a large problem whose weight is in torch's layout (``weight_inner=False``; ``tritonconv.nn``
    modules keep theirs reduction-innermost), the weight's copy the GEMM kernels read
    (:func:`tritonconv.geometry.weight_copy_pays`). Activations are read in place, in any layout. A layer of few
    input channels also holds its packed input while it runs (:func:`packed_bytes`, which needs the strides and
    padding)."""
    copied = not weight_inner and geometry.weight_copy_pays(input_shape, weight_shape, output_shape)
    elems = math.prod(input_shape) + math.prod(weight_shape) * (2 if copied else 1) + math.prod(output_shape)
    return (elems + (weight_shape[0] if bias else 0)) * shapes.DTYPE_BYTES[dtype]


def default_budget(device: torch.device) -> int:
    """Bytes a stream may plan for on ``device``: ``MARGIN`` of the free memory of a CUDA device,
    ``CPU_BUDGET`` on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * MARGIN)
    return CPU_BUDGET


@dataclass(frozen=True)
class StreamPlan:
    """How :func:`~tritonconv.streaming.conv3d_stream` walks the depth axis: ``chunk`` output slices per
    launch, at most ``input_slices`` input slices held, ``halo`` of them read by one output slice, and
    ``bytes`` on the device at the peak (see :func:`plan_stream`)."""

    chunk: int  # output depth slices computed per launch
    input_slices: int  # most input depth slices held on the device: (chunk - 1) * stride + halo
    halo: int  # input slices one output slice reads: (kd - 1) * dilation + 1
    bytes: int  # device bytes at the peak: input slices + two output slabs + weight + bias (see plan_stream)


def plan_stream(slice_shape, weight_shape, stride: int = 1, dilation: int = 1, dtype: str = "float32",
                output_slice_shape=None, budget: int | None = None, device: torch.device | str = "cpu",
                max_chunk: int = 1024, chunk: int | None = None, packed=None) -> StreamPlan:
    """The largest chunk of output depth slices whose working set fits ``budget`` bytes.

    ``slice_shape`` is one input depth slice ``(N, C, H, W)``, ``weight_shape`` the 3-D
    weight, ``stride``/``dilation`` those of the depth axis, ``dtype`` the tensors' (as
    :func:`conv_device_bytes` takes it), ``max_chunk`` a cap on the chunk; ``output_slice_shape`` (one output
    depth slice) defaults to ``slice_shape`` with the weight's output channels. The working set is the
    ring of input slices, the weight and bias, and two output slabs: the one being computed and the one
    the consumer still holds (``for y in stream:`` keeps ``y`` until the next one arrives; measured with
    :class:`TensorBytes` in notebook 05). ``budget`` defaults
    to :func:`default_budget` of ``device``. A given ``chunk`` is taken as it is (no budget): the
    plan then says what it holds. ``packed``: a function, ``packed(chunk)`` the bytes a chunk's convolution
    adds when it packs positions into channels or merges groups (:func:`packed_bytes`; affine in the chunk), if it does.

    :raises ValueError: a ``slice_shape`` not of 4 sizes or a ``weight_shape`` not of 5, a stride or dilation
        below 1, an unknown ``dtype``; one output slice alone needing more than the budget.
    """
    if len(slice_shape) != 4 or len(weight_shape) != 5:
        raise ValueError(f"plan_stream: expected a depth slice (N, C, H, W) and a 3-D weight (C_out, C_in / groups, "
                         f"kD, kH, kW), got {tuple(slice_shape)} and {tuple(weight_shape)}")
    stride, dilation = shapes.positive_int(stride, "stride"), shapes.positive_int(dilation, "dilation")
    if dtype not in shapes.DTYPE_BYTES:
        raise ValueError(f"plan_stream: expected `dtype` to be one of {sorted(shapes.DTYPE_BYTES)}, got {dtype!r}")
    size = shapes.DTYPE_BYTES[dtype]
    if output_slice_shape is None:
        output_slice_shape = (slice_shape[0], weight_shape[0], *slice_shape[2:])
    in_slice, out_slice = math.prod(slice_shape) * size, math.prod(output_slice_shape) * size
    fixed = (math.prod(weight_shape) + weight_shape[0]) * size
    halo = (weight_shape[2] - 1) * dilation + 1

    extra = packed or (lambda chunk: 0)

    def need(chunk: int) -> int:
        return ((chunk - 1) * stride + halo) * in_slice + 2 * chunk * out_slice + fixed + extra(chunk)

    if chunk is not None:
        return StreamPlan(chunk, (chunk - 1) * stride + halo, halo, need(chunk))
    if budget is None:
        budget = default_budget(torch.device(device))
    if need(1) > budget:
        raise ValueError(f"plan_stream: one output slice needs {need(1)} bytes ({halo} input slices of {in_slice} B, "
                         f"an output slice, the weight), over the budget of {budget} bytes")
    chunk = max(1, min(max_chunk, (budget - need(1)) // max(1, need(2) - need(1)) + 1))
    while chunk > 1 and need(chunk) > budget:  # packed bytes round up per chunk: at most a step or two back
        chunk -= 1
    return StreamPlan(chunk, (chunk - 1) * stride + halo, halo, need(chunk))


def packed_bytes(spec: ConvSpec, dtype: str) -> int:
    """Bytes a convolution's call holds beyond its operands when it packs positions into channels
    (:func:`tritonconv.geometry.pack_factors`): the packed input and the packed weight; when it merges narrow groups
    (:func:`tritonconv.geometry.group_merge`): the block-diagonal weight; else 0.

    :param spec: the checked convolution.
    :param dtype: its tensors' dtype, as :func:`conv_device_bytes` takes it."""
    size = shapes.DTYPE_BYTES[dtype]
    merge = geometry.group_merge(spec, size)
    if merge:
        return merge * math.prod(spec.weight_shape) * size
    factors = geometry.pack_factors(spec, itemsize=size)
    if factors is None:
        return 0
    packed = geometry.packed(spec, factors, size)
    return (math.prod(packed.input_shape) + math.prod(packed.weight_shape)) * size


@dataclass(frozen=True)
class ShardShare:
    """One rank's part of a sharded convolution (:func:`shard_shares`): its ``coords`` (its index in each
    sharded dimension's group), its ``input_shape`` (its shard), the ``window_shape`` it convolves (shard,
    halos and zeros), its ``output_shape``, the bytes it receives (``received``) and sends (``sent``) in the
    halo exchanges, its multiply-accumulates (``macs``) and the ``device_bytes`` its call holds (shard, received
    halos, window, weight, output)."""

    coords: tuple[int, ...]
    input_shape: tuple[int, ...]
    window_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    received: int
    sent: int
    macs: int
    device_bytes: int


def shard_shares(input_shape, weight_shape, shards: dict[int, list[int]], stride=1, padding=0, dilation=1,
                 dtype: str = "bfloat16", out_sizes: str | dict[int, list[int]] | None = "chunk") -> list[ShardShare]:
    """Every rank's share of a convolution of ``input_shape`` by ``weight_shape`` whose input is sharded as
    ``shards`` (sharded dimension -> the shard lengths along it, one per rank of its group; several
    dimensions: a mesh, ranks in row-major order of their coordinates), as :mod:`tritonconv.distributed` runs
    it: exchanges in ``shards``' order (a later one sends slabs that carry the earlier halos), ``stride``,
    ``padding``, ``dilation`` as :func:`tritonconv.conv3d` takes them, ``dtype`` as :func:`conv_device_bytes`,
    ``out_sizes`` ``'chunk'`` (default), None or a dict (dimension -> output lengths) as the distributed ops take it.
    """
    ndim = len(input_shape) - 2
    st, dl = shapes.as_tuple(stride, ndim, "stride"), shapes.as_tuple(dilation, ndim, "dilation")
    pads = shapes.resolve_padding(padding, tuple(weight_shape[2:]), st, dl)
    full_out = shapes.conv_output_shape(input_shape, weight_shape, st, pads, dl)
    plans = {d: shapes.Halo.plan(n, weight_shape[d], st[d - 2], pads[d - 2], dl[d - 2],
                                 out_sizes.get(d) if isinstance(out_sizes, dict) else out_sizes)
             for d, n in shards.items()}
    size, shares = shapes.DTYPE_BYTES[dtype], []
    for coords in itertools.product(*(range(len(n)) for n in shards.values())):
        shape, out = list(input_shape), list(full_out)
        for (d, n), r in zip(shards.items(), coords):
            shape[d], out[d] = n[r], plans[d].outputs[r + 1] - plans[d].outputs[r]
        mine, received, sent = tuple(shape), 0, 0
        for d, r in zip(shards, coords):
            h, other = plans[d], math.prod(shape[:d] + shape[d + 1:])  # elements per slice, earlier halos included
            received += h.received(r) * other
            sent += h.sent(r) * other
            shape[d] = h.before[r] + h.hi[r] - h.lo[r] + h.after[r]
        macs = shapes.conv_macs(shape, weight_shape, out) if math.prod(out) else 0
        held = math.prod(mine) + received + math.prod(shape) + math.prod(weight_shape) + math.prod(out)
        shares.append(ShardShare(coords, mine, tuple(shape), tuple(out), received * size, sent * size, macs,
                                 held * size))
    return shares


class TensorBytes(TorchDispatchMode):
    """Measures the bytes of tensor storage alive inside a ``with`` block, on any device: ``peak`` and
    ``live`` (now). Storage counts from the op that allocates it until its last tensor is gone.

    Torch keeps allocator statistics for CUDA only; on the CPU this counts what the same torch calls
    would hold on a GPU (the interpreter's own numpy buffers are not torch tensors and are not counted).
    Storage made before the block is not counted, even when an op inside it writes to it or views it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._held: dict[int, list[int]] = {}  # storage address -> [tensors alive on it, bytes]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs))
                  if isinstance(t, torch.Tensor) and t.device.type != "meta"}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self._hold(t, inputs)
        return out

    def _hold(self, t: torch.Tensor, inputs: set[int]) -> None:
        storage = t.untyped_storage()
        key, nbytes = storage.data_ptr(), storage.nbytes()
        entry = self._held.get(key)
        if entry is None:
            if key in inputs or nbytes == 0:  # a view of, or a write to, storage made before the block
                return
            entry = self._held[key] = [0, nbytes]
            self.live += nbytes
            self.peak = max(self.peak, self.live)
        entry[0] += 1
        weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        entry = self._held[key]
        entry[0] -= 1
        if entry[0] == 0:
            del self._held[key]
            self.live -= entry[1]


__all__ = ["TensorBytes", "conv_device_bytes", "packed_bytes", "default_budget", "StreamPlan", "plan_stream",
           "ShardShare", "shard_shares"]
