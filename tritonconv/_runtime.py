"""Where a kernel runs: compiled for CUDA tensors, Triton's interpreter for CPU tensors.

The mode follows the tensors, so a CUDA tensor never falls back to the CPU and a machine
without a GPU needs no setting at all:

* CUDA tensor -> the compiled Triton kernel.
* CPU tensor  -> the same kernel source run by Triton's CPU interpreter (numpy).
* ``TRITONCONV_INTERPRET=1`` (or Triton's own ``TRITON_INTERPRET=1``) forces the interpreter
  for CUDA tensors too, for debugging; the data round-trips through host memory.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch
import triton
from triton.runtime.interpreter import InterpretedFunction

try:  # host-side tensor descriptors (Triton 3.4+); without them the descriptor kernel is never offered
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:  # pragma: no cover - older Triton
    TensorDescriptor = None


def force_interpreter() -> bool:
    """True when the environment asks for the interpreter on every device."""
    return os.environ.get("TRITONCONV_INTERPRET", "0") == "1" or os.environ.get("TRITON_INTERPRET", "0") == "1"


def interpreting(device: torch.device) -> bool:
    """Whether kernels for tensors on ``device`` run under Triton's interpreter."""
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return force_interpreter()
    raise ValueError(
        f"tritonconv runs on CUDA tensors, or on CPU tensors through Triton's interpreter; got device {device}"
    )


class Kernel:
    """A ``@triton.jit`` kernel with its interpreted twin; ``kernel[device]`` picks one."""

    def __init__(self, jit_fn: triton.JITFunction) -> None:
        self.compiled = jit_fn
        # Under TRITON_INTERPRET=1 triton.jit already returned an InterpretedFunction.
        self.interpreted = jit_fn if isinstance(jit_fn, InterpretedFunction) else InterpretedFunction(jit_fn.fn)

    def __getitem__(self, device: torch.device):
        if interpreting(device):
            check_interpreter()
            return self.interpreted
        return self.compiled


def _loop_to(n):  # a kernel looping to a runtime bound, as every tritonconv kernel does
    for _ in range(n):
        pass


@functools.cache
def check_interpreter() -> None:
    """Raise a clear error, once, where this Triton's interpreter cannot run tritonconv's kernels.

    Triton 3.6's interpreter turns a runtime loop bound (a 1-element array) into an int with
    ``int(array)``, which numpy 2.4 refuses ("only 0-dimensional arrays can be converted");
    Triton 3.7+ squeezes the array first.
    """
    try:
        InterpretedFunction(_loop_to)[(1,)](2)
    except Exception as err:
        raise RuntimeError(
            f"Triton {triton.__version__}'s interpreter, which runs tritonconv on CPU tensors, fails with "
            f"numpy {np.__version__} ({err}). Triton 3.6 needs numpy<2.4 (pip install 'numpy<2.4'); "
            "Triton 3.7+ runs with any numpy. CUDA tensors are unaffected."
        ) from None


def kernel(jit_fn: triton.JITFunction) -> Kernel:
    """Decorator placed above ``@triton.jit``."""
    return Kernel(jit_fn)


class DeviceFunction(triton.JITFunction):
    """A ``@triton.jit`` helper that kernels call, compiled and interpreted alike.

    The compiler inlines a called ``JITFunction`` itself and never invokes it; an interpreted
    kernel calls it as Python, which a plain ``JITFunction`` refuses ("Cannot call @triton.jit'd
    outside of the scope of a kernel"). This one runs its interpreted twin instead.
    """

    def __init__(self, fn) -> None:
        super().__init__(fn)
        self._interpreted = InterpretedFunction(fn)

    def __call__(self, *args, **kwargs):
        return self._interpreted(*args, **kwargs)


def device(fn) -> DeviceFunction:
    """Decorator for helpers called from kernels (in place of ``@triton.jit``)."""
    return DeviceFunction(fn)
