"""tritonconv: Triton convolution kernels for 1D, 2D and 3D, with torch.nn.functional's API.

CUDA tensors run compiled kernels; CPU tensors run the same kernels under Triton's
interpreter (see :mod:`tritonconv._runtime`).
"""

from . import fp8, memory, nn, shapes, streaming
from ._checks import ACTIVATIONS
from .conv2plus1d import conv2plus1d
from .explanation import explain, explain_model
from .functional import conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d
from .fusion import fuse
from .routing import disable, enable, enabled

__all__ = ["ACTIVATIONS", "conv1d", "conv2d", "conv2plus1d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "disable", "enable", "enabled", "explain", "explain_model", "fp8", "fuse", "memory", "nn", "shapes", "streaming"]
__version__ = "0.1.0"
