"""How a tensor descriptor (Hopper's tensor memory accelerator) sees tritonconv's tensors: the 5-D view the
descriptor kernels (:mod:`tritonconv.kernels.tma`, :mod:`tritonconv.kernels.weight_grad`) build their
descriptors on, and the 16-byte rules a descriptor load must keep."""

from __future__ import annotations

import math

import torch

from ._checks import ConvSpec


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


def describable(t: torch.Tensor) -> bool:
    """Whether a descriptor can view ``t`` (:func:`as_5d`): innermost stride 1, every other a 16-byte multiple."""
    strides = as_5d(t)[1]
    return strides[-1] == 1 and all(s * t.element_size() % 16 == 0 for s in strides[:-1])


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


def aligned(*tensors: torch.Tensor) -> bool:
    """16-byte aligned base addresses (what a tensor descriptor needs)."""
    return all(t.data_ptr() % 16 == 0 for t in tensors)
