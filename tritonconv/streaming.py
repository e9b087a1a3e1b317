"""Streaming convolution: volumes and video fed slice by slice, telemetry fed chunk by chunk.

:func:`conv3d_stream` consumes any iterable (a generator that ``yield``\\ s depth slices
``(N, C, H, W)`` or slabs ``(N, C, d, H, W)``, on the CPU or the GPU) and yields output slabs
``(N, C_out, k, H', W')`` in depth order. On the device it keeps a buffer of at most
``(chunk - 1) * stride + halo`` input slices, ``halo = (kd - 1) * dilation + 1``: the
slices the next ``chunk`` output slices read. Depth padding is streamed as zero slices at
both ends; a stride larger than the halo skips input slices without copying them.
Concatenating the outputs along depth gives ``conv3d`` of the stacked volume, bit for bit
when both use the same kernel config (each output element is the same reduction).

:class:`StreamingConv1d` is the causal 1-D convolution of real-time signals: it carries
the last ``(K - 1) * dilation`` input samples between chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from . import _checks, dispatch, functional, memory, shapes
from .geometry import Config
from .netstream import NetworkPlan, NetworkStream, plan, stream  # whole networks (tritonconv.netstream)


class Conv3dStream:
    """Iterable of output slabs, made by :func:`conv3d_stream` (which documents ``slices``, ``weight``,
    ``bias``, ``stride``, ``padding``, ``dilation``, ``groups``, ``device``, ``chunk``, ``activation`` and
    ``budget``); ``config`` forces a kernel config (tests, tuning). After iteration, ``plan`` is the
    :class:`~tritonconv.memory.StreamPlan` it followed and ``peak_slices`` the input slices it held at the
    peak (at most ``plan.input_slices``)."""

    def __init__(self, slices: Iterable[torch.Tensor], weight: torch.Tensor, bias: torch.Tensor | None = None,
                 stride=1, padding=0, dilation=1, groups: int = 1, *, device=None, chunk: int | None = None,
                 activation: str | None = None, config: Config | None = None, budget: int | None = None) -> None:
        if not isinstance(weight, torch.Tensor) or weight.dim() != 5:
            raise ValueError(f"conv3d_stream: expected `weight` of rank 5 (C_out, C_in/groups, kd, kh, kw), got "
                             f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__}")
        _checks.check_stream_slices(slices, "conv3d_stream")
        try:
            chunk = None if chunk is None else shapes.positive_int(chunk, "chunk")
        except ValueError:
            raise ValueError(f"conv3d_stream: expected `chunk` to be a positive int or None, got {chunk!r}") from None
        _checks.check_activation(activation, "conv3d_stream")
        self.device = torch.device(device) if device is not None else weight.device
        self.weight, self.bias = functional.stored(weight.to(self.device), None if bias is None else bias.to(self.device))
        self.stride = shapes.as_tuple(stride, 3, "stride")
        self.dilation = shapes.as_tuple(dilation, 3, "dilation")
        self.padding = shapes.resolve_padding(padding, weight.shape[2:], self.stride, self.dilation)
        self.groups, self.activation, self.config = groups, activation, config
        self.halo = (weight.shape[2] - 1) * self.dilation[0] + 1
        self._slices, self._chunk, self._budget = slices, chunk, budget
        self.plan: memory.StreamPlan | None = None
        self.peak_slices = 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        sd, kd_span = self.stride[0], self.halo - 1
        buf, count, start, skip, next_out = None, 0, 0, 0, 0  # start: padded depth of buf[:, :, 0]
        slice_shape = None

        def emit(final: bool) -> Iterator[torch.Tensor]:
            nonlocal count, start, skip, next_out
            while count:
                ready = (start + count - 1 - kd_span) // sd - next_out + 1  # outputs whose inputs are all here
                if ready < 1 or (ready < self.plan.chunk and not final):
                    return
                k = min(ready, self.plan.chunk)
                lo = next_out * sd - start
                window = buf[:, :, lo:lo + (k - 1) * sd + self.halo]
                yield self._conv(window)
                next_out += k
                drop = next_out * sd - start  # input slices no later output reads
                kept = max(0, count - drop)
                for i in range(kept):  # forward, slice by slice: each source is read before it is overwritten
                    buf[:, :, i].copy_(buf[:, :, drop + i])
                skip += max(0, drop - count)
                start, count = start + drop, kept

        def push(depth_slice: torch.Tensor | None) -> None:
            """The next input slice into the ring; None: a zero slice of depth padding."""
            nonlocal count, skip
            if skip:  # the stride jumps over this slice: never copied to the device
                skip -= 1
                return
            if depth_slice is None:
                buf[:, :, count].zero_()
            else:
                buf[:, :, count].copy_(depth_slice, non_blocking=True)
            count += 1
            self.peak_slices = max(self.peak_slices, count)

        for index, item in enumerate(self._slices):
            item = self._check(index, item, slice_shape)
            if slice_shape is None:
                slice_shape = (item.shape[0], item.shape[1], *item.shape[-2:])
                buf = self._start(slice_shape)
                for _ in range(self.padding[0][0]):
                    push(None)
                    yield from emit(False)
            for depth_slice in item.unbind(2) if item.dim() == 5 else (item,):
                push(depth_slice)
                yield from emit(False)
        if slice_shape is None:
            raise ValueError("conv3d_stream: `slices` yielded nothing; a stream needs at least one depth slice")
        for _ in range(self.padding[0][1]):
            push(None)
            yield from emit(False)
        yield from emit(True)
        if next_out == 0:
            raise ValueError(f"conv3d_stream: the stream's depth is too short for the kernel: no output slice "
                             f"(depth kernel {self.weight.shape[2]}, dilation {self.dilation[0]}, padding "
                             f"{self.padding[0]})")

    def _check(self, index: int, item, slice_shape) -> torch.Tensor:
        why = _checks.not_dense(item) if isinstance(item, torch.Tensor) else None
        if why is not None:
            raise TypeError(f"conv3d_stream: item {index} of `slices` should be a dense (strided) tensor, got {why}")
        if not isinstance(item, torch.Tensor) or item.dim() not in (4, 5):
            got = tuple(item.shape) if isinstance(item, torch.Tensor) else type(item).__name__
            raise ValueError(f"conv3d_stream: item {index} of `slices` should be a slice (N, C, H, W) or a slab "
                             f"(N, C, d, H, W), got {got}")
        if item.dtype != self.weight.dtype:
            raise TypeError(f"conv3d_stream: item {index} of `slices` has dtype {item.dtype}, expected "
                            f"{self.weight.dtype} (the weight's)")
        shape = (item.shape[0], item.shape[1], *item.shape[-2:])
        expected = slice_shape or (shape[0], self.weight.shape[1] * self.groups, *shape[2:])
        if shape != tuple(expected):
            raise ValueError(f"conv3d_stream: item {index} of `slices` has (N, C, H, W) = {shape}, expected "
                             f"{tuple(expected)}" + ("" if slice_shape else " (C from the weight and groups)"))
        return item

    def _start(self, slice_shape) -> torch.Tensor:
        """Plan from the first slice's shape and allocate the input ring."""
        ph, pw = self.padding[1:]
        out_hw = [shapes.conv_output_size(s, k, st, p, d) for s, k, st, p, d in
                  zip(slice_shape[2:], self.weight.shape[3:], self.stride[1:], (ph, pw), self.dilation[1:])]
        if any(s <= 0 for s in out_hw):
            raise ValueError(f"conv3d_stream: output height/width {tuple(out_hw)} not positive for slices of "
                             f"{tuple(slice_shape[2:])} and kernel {tuple(self.weight.shape[3:])}")
        dtype = str(self.weight.dtype)[6:]
        halo = (self.weight.shape[2] - 1) * self.dilation[0] + 1

        def packed(chunk: int) -> int:  # what a window's convolution adds if it packs positions into channels
            window = (slice_shape[0], slice_shape[1], (chunk - 1) * self.stride[0] + halo, *slice_shape[2:])
            spec = _checks.shape_spec("conv3d_stream", 3, torch.empty(window, device="meta"), self.weight, None,
                                      self.stride, ((0, 0), *self.padding[1:]), self.dilation, self.groups)
            return memory.packed_bytes(spec, dtype)

        self.plan = memory.plan_stream(slice_shape, self.weight.shape, self.stride[0], self.dilation[0], dtype,
                                       (slice_shape[0], self.weight.shape[0], *out_hw), self._budget, self.device,
                                       chunk=self._chunk, packed=packed)
        # channels innermost: windows of the ring are read in place (see tritonconv.geometry.channels_inner)
        return torch.empty((slice_shape[0], slice_shape[1], self.plan.input_slices, *slice_shape[2:]),
                           dtype=self.weight.dtype, device=self.device, memory_format=torch.channels_last_3d)

    def _conv(self, window: torch.Tensor) -> torch.Tensor:
        spec = _checks.conv_spec("conv3d_stream", 3, window, self.weight, self.bias, self.stride,
                                 ((0, 0), *self.padding[1:]), self.dilation, self.groups)
        return dispatch.conv_forward(window, self.weight, self.bias, spec, self.activation, False, self.config)


def conv3d_stream(slices: Iterable[torch.Tensor], weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride=1, padding=0, dilation=1, groups: int = 1, *, device=None, chunk: int | None = None,
                  activation: str | None = None, budget: int | None = None) -> Conv3dStream:
    """``conv3d`` over a stream of depth slices or slabs; iterate the result for output slabs
    ``(N, C_out, k, H_out, W_out)`` in depth order. Concatenated along depth, they equal
    :func:`tritonconv.conv3d` of the whole volume. Forward only (no autograd through a stream).

    :param slices: an iterable (a generator, say) of depth slices ``(N, C_in, H, W)`` or slabs
        ``(N, C_in, d, H, W)``, any mix, on any device (pinned CPU slices are copied asynchronously).
    :param weight: ``(C_out, C_in / groups, kd, kh, kw)``; fp32, fp16, bf16 or fp64.
    :param bias: ``(C_out,)`` or None.
    :param stride: int or ``(d, h, w)``; a depth stride larger than the halo skips input slices uncopied.
    :param padding: int, ``(d, h, w)``, ``'same'`` or ``'valid'``; the depth padding is zero slices.
    :param dilation: int or ``(d, h, w)``.
    :param groups: as :func:`tritonconv.conv3d`.
    :param device: where to compute (default: the weight's).
    :param chunk: output depth slices per launch; None takes the largest that fits ``budget`` bytes
        (default: 80% of the free GPU memory, 1 GiB on the CPU) via :func:`tritonconv.memory.plan_stream`.
    :param activation: None or one of :data:`tritonconv.ACTIVATIONS` (``'relu'``, ``'gelu'``, ``'leaky_relu(0.2)'``, ...), fused.
    :param budget: device bytes the plan may use when ``chunk`` is None.
    :raises ValueError: a weight not of rank 5, a bad ``chunk`` or activation, an empty stream, a slice of
        the wrong shape (naming its index), a depth too short for the kernel, or any error of
        :func:`tritonconv.conv3d` (at the first slice).
    :raises TypeError: ``slices`` a tensor (a volume: pass ``[x]`` or ``x.unbind(2)``).
    """
    return Conv3dStream(slices, weight, bias, stride, padding, dilation, groups, device=device, chunk=chunk,
                        activation=activation, budget=budget)


class StreamingConv1d:
    """Causal 1-D convolution over chunks: ``y = conv1d(pad_left(x, (K - 1) * dilation), weight)``.

    ``step(chunk)`` takes ``(N, C_in, L)`` or ``(C_in, L)`` with any ``L >= 1`` and returns the
    ``L`` matching outputs; concatenated, the outputs of any chunking equal the offline causal
    convolution of the concatenated input. ``reset()`` starts a new signal.

    :param weight: ``(C_out, C_in / groups, K)``; its dtype and device are the stream's.
    :param bias: ``(C_out,)`` or None.
    :param dilation: the taps' spacing; the layer carries the last ``(K - 1) * dilation`` samples.
    :param groups: as :func:`tritonconv.conv1d`.
    :param activation: None or one of :data:`tritonconv.ACTIVATIONS` (``'relu'``, ``'gelu'``, ``'leaky_relu(0.2)'``, ...), fused.
    :raises ValueError: a weight not of rank 3, a non-positive ``dilation`` or an unknown ``activation``;
        ``step`` raises for a chunk of the wrong rank or length, or whose ``(N, C)`` differ from the stream's
        so far, and as :func:`tritonconv.conv1d` for its channels, groups, dtype and device.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, dilation: int = 1, groups: int = 1,
                 *, activation: str | None = None) -> None:
        if not isinstance(weight, torch.Tensor) or weight.dim() != 3:
            raise ValueError("StreamingConv1d: expected `weight` of rank 3 (C_out, C_in/groups, K), got "
                             f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__}")
        try:
            dilation = shapes.positive_int(dilation, "dilation")
        except ValueError as err:
            raise ValueError(f"StreamingConv1d: {err}") from None
        _checks.check_activation(activation, "StreamingConv1d")
        self.weight, self.bias, self.dilation, self.groups, self.activation = weight, bias, dilation, groups, activation
        self.context = (weight.shape[2] - 1) * dilation
        self.reset()

    def reset(self) -> None:
        self._state: torch.Tensor | None = None

    def step(self, chunk: torch.Tensor) -> torch.Tensor:
        unbatched = isinstance(chunk, torch.Tensor) and chunk.dim() == 2
        x = chunk.unsqueeze(0) if unbatched else chunk
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] < 1:
            got = tuple(chunk.shape) if isinstance(chunk, torch.Tensor) else type(chunk).__name__
            raise ValueError(f"StreamingConv1d.step: expected a chunk (N, C_in, L) or (C_in, L) with L >= 1, got {got}")
        state = self._state
        if state is None:
            state = x.new_zeros((*x.shape[:2], self.context))
        elif state.shape[:2] != x.shape[:2]:
            raise ValueError(f"StreamingConv1d.step: chunk has (N, C) = {tuple(x.shape[:2])} but the stream so far "
                             f"{tuple(state.shape[:2])}; call reset() to start a new signal")
        full = torch.cat((state, x), dim=-1)
        y = functional.conv1d(full, self.weight, self.bias, 1, 0, self.dilation, self.groups, activation=self.activation)
        self._state = full[..., full.shape[-1] - self.context:].clone()
        return y.squeeze(0) if unbatched else y

    __call__ = step


__all__ = ["Conv3dStream", "conv3d_stream", "StreamingConv1d", "NetworkPlan", "NetworkStream", "plan", "stream"]
