"""Drop-in modules: ``tritonconv.nn.Conv1d/Conv2d/Conv3d`` and :func:`convert`.

Each module *is* its ``torch.nn`` counterpart (a subclass that only swaps the convolution
call), so the constructor, parameters, ``state_dict`` keys, ``padding_mode`` handling and
``repr`` are torch's own, and a torch checkpoint loads unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import functional


class _TritonConv:
    """Mixin over ``torch.nn.ConvNd``: the convolution runs in tritonconv's kernels."""

    _fn = None  # tritonconv.functional.convNd, set per class

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        padding = self.padding
        if self.padding_mode != "zeros":  # as torch: pad explicitly, then convolve unpadded
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        return self._fn(input, weight, bias, self.stride, padding, self.dilation, self.groups)


class Conv1d(_TritonConv, torch.nn.Conv1d):
    """``torch.nn.Conv1d`` computed by :func:`tritonconv.conv1d`."""

    _fn = staticmethod(functional.conv1d)


class Conv2d(_TritonConv, torch.nn.Conv2d):
    """``torch.nn.Conv2d`` computed by :func:`tritonconv.conv2d`."""

    _fn = staticmethod(functional.conv2d)


class Conv3d(_TritonConv, torch.nn.Conv3d):
    """``torch.nn.Conv3d`` computed by :func:`tritonconv.conv3d`."""

    _fn = staticmethod(functional.conv3d)


_SWAP = {torch.nn.Conv1d: Conv1d, torch.nn.Conv2d: Conv2d, torch.nn.Conv3d: Conv3d}


def convert(model: torch.nn.Module) -> torch.nn.Module:
    """Make every ``torch.nn.Conv1d/2d/3d`` in ``model`` a tritonconv module, in place; returns ``model``.

    Parameters, buffers and hooks stay as they are (the modules change class, not state).
    Only exact torch conv classes are converted: subclasses with their own ``forward`` and
    transposed convolutions are left alone.
    """
    for module in model.modules():
        ours = _SWAP.get(type(module))
        if ours is not None:
            module.__class__ = ours
    return model
