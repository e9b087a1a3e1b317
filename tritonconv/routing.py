"""``tritonconv.enable()``: every convolution of a program on tritonconv, without converting it.

PyTorch's convolutions all reach one operator, ``aten::convolution`` (``F.conv1d/2d/3d``,
``F.conv_transpose1d/2d/3d``, ``torch.nn.Conv*``'s ``forward``, ``padding='same'``, functional
layers inside other modules' ``forward``). While routing is on, this module's kernel for that
operator at PyTorch's autograd dispatch keys (``AutogradCPU``, ``AutogradCUDA``) sends each call to
:func:`tritonconv.conv1d` ... :func:`tritonconv.conv_transpose3d`, whose own autograd functions
run the gradients on tritonconv's kernels too (double backward included), and sends what
tritonconv does not run to torch's own kernel below the autograd keys, with torch's gradient
(``aten::convolution_backward``). A call inside a ``torch.func`` transform (``grad``, ``jvp``, ...), where no
autograd function runs from these keys, is torch's own convolution with torch's derivatives (``vmap`` alone folds
its axis before the call arrives, which then routes). Nothing fails that did not fail before.

Why the autograd keys: a kernel there decides once per call, in the forward, and the backward
follows the decision through autograd's graph (so it holds on autograd's worker threads and for
thread-local use); ``torch.compile`` traces through it into tritonconv's custom ops (no graph
break); CUDA graphs capture the kernels it launches; DTensor inputs are left to torch's sharding
rules. The registration exists only while some thread has routing on, so leaving the last
``enabled()`` restores torch's dispatch table exactly.

Routing is per thread: ``enable()`` / ``disable()`` set the calling thread's state, ``enabled()``
sets it for a ``with`` block and restores the previous state after (blocks nest; ``enabled(False)``
turns routing off inside one). A :class:`RoutingReport` counts what went where.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import warnings
from collections import Counter
from collections.abc import Iterator

import torch

from . import _checks, functional
from ._checks import is_dtensor

__all__ = ["RoutingReport", "disable", "enable", "enabled", "is_enabled", "report"]


@dataclasses.dataclass
class RoutingReport:
    """What the routed ``aten::convolution`` calls did, since the report was made or last cleared.

    :param routed: tritonconv's function name (``'conv2d'``, ``'conv_transpose3d'``, ...) -> forward calls it ran
        (``'conv2d (traced into a graph)'``: calls ``torch.compile`` traced, whose graph then runs tritonconv's
        custom ops at every call without passing here).
    :param left: reason -> calls left to torch for it.
    """

    routed: Counter = dataclasses.field(default_factory=Counter)
    left: Counter = dataclasses.field(default_factory=Counter)

    def __str__(self) -> str:
        ran = ", ".join(f"{name} {n}" for name, n in sorted(self.routed.items())) or "none"
        text = f"tritonconv ran {sum(self.routed.values())} convolution calls ({ran})"
        if self.left:
            text += "; left on torch: " + "; ".join(f"{n} ({why})" for why, n in sorted(self.left.items()))
        return text

    def clear(self) -> None:
        self.routed.clear()
        self.left.clear()


_report = RoutingReport()  # every routed or left call of the process
_state = threading.local()  # .on: this thread routes; .reports: the reports of the enabled() blocks it is in
_lock = threading.Lock()
_threads_on = 0  # threads whose routing is on: the registration exists while this is > 0
_library: torch.library.Library | None = None


def report() -> RoutingReport:
    """The process's report: every call routed or left since the first :func:`enable` (or its last ``clear()``)."""
    return _report


def is_enabled() -> bool:
    """Whether the calling thread's convolutions go to tritonconv."""
    return getattr(_state, "on", False)


def _set(on: bool) -> None:
    """Set the calling thread's routing; register or remove the kernel as the count of routing threads changes."""
    global _threads_on, _library
    if on == is_enabled():
        return
    _state.on = on
    with _lock:
        _threads_on += 1 if on else -1
        if _threads_on == 1 and _library is None:
            library = torch.library.Library("aten", "IMPL")
            with warnings.catch_warnings():  # "overriding a previously registered kernel": that is the point
                warnings.simplefilter("ignore")
                for key in ("AutogradCPU", "AutogradCUDA"):
                    library.impl("convolution", _convolution, key)
            _library = library
        elif _threads_on == 0 and _library is not None:
            _library._destroy()  # torch's own kernels again
            _library = None


def enable() -> RoutingReport:
    """Route the calling thread's convolutions to tritonconv (until :func:`disable`); returns :func:`report`."""
    _set(True)
    return _report


def disable() -> None:
    """Give the calling thread's convolutions back to torch."""
    _set(False)


@contextlib.contextmanager
def enabled(on: bool = True) -> Iterator[RoutingReport]:
    """``with tritonconv.enabled() as counts:``: routing on (``on=False``: off) for the block in this thread, the
    previous state restored after; ``counts`` is a :class:`RoutingReport` of the block's calls alone."""
    before = is_enabled()
    block = RoutingReport()
    reports = getattr(_state, "reports", [])
    _state.reports = [*reports, block]
    _set(on)
    try:
        yield block
    finally:
        _set(before)
        _state.reports = reports


def _count(routed: str | None, why: str | None = None) -> None:
    for rep in (_report, *getattr(_state, "reports", ())):
        if routed is not None:
            rep.routed[routed] += 1
        else:
            rep.left[why] += 1


def _why_not(input, weight, bias) -> str | None:
    """Why tritonconv does not take this call, or None: a DTensor (torch's sharding rules), a rank it has no
    kernel for, or what tritonconv's own argument checks refuse (dtypes, devices; their message)."""
    if _checks.plain_and_supported(input, weight, bias):  # the common call, in a few attribute reads
        return None
    if any(is_dtensor(t) for t in (input, weight, bias) if t is not None):
        return "DTensor: torch's sharding rules"
    if not 3 <= input.dim() <= 5:
        return f"{input.dim() - 2}-D convolution"
    if input.shape[1] == 0:  # tritonconv refuses it; torch returns an empty tensor
        return "no input channels"
    try:
        _checks.check_tensors("convolution", input, weight, bias)
    except (TypeError, ValueError) as err:
        return str(err).removeprefix("convolution: ")
    return None


def _convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    """``aten::convolution`` at the autograd keys while routing is on."""
    if _checks.under_functorch():  # (vmap alone is not seen here: its batching rule, above, folds its dimension)
        _count(None, "inside a torch.func transform (grad, jvp, ...)")
        return _torch_own(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
    why = "routing off in this thread" if not is_enabled() else _why_not(input, weight, bias)
    if why is None:
        ndim = input.dim() - 2
        name = f"conv_transpose{ndim}d" if transposed else f"conv{ndim}d"
        stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)  # (the operator's lists, as keys)
        output_padding = tuple(output_padding)
        if transposed:
            y = functional._conv_transpose(ndim, input, weight, bias, stride, padding, output_padding, groups, dilation,
                                           None)
        else:
            y = functional._conv(ndim, input, weight, bias, stride, padding, dilation, groups, None, False)
        traced = _checks.is_traced(input)
        _count(f"{name} (traced into a graph)" if traced else name)
        return y
    _count(None, why)
    return _TorchConvolution.apply(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)


def _torch_own(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups) -> torch.Tensor:
    """torch's own convolution with torch's own derivatives, both modes, for a call at a ``torch.func`` transform's
    level, where no autograd function (tritonconv's, or :class:`_TorchConvolution`) can run from these keys: the
    operator ``aten::convolution`` calls, ``aten::_convolution``, whose autograd kernel is torch's, with the flags
    ``aten::convolution`` would pass it."""
    cudnn = torch.backends.cudnn
    return torch.ops.aten._convolution.default(input, weight, bias, stride, padding, dilation, transposed,
                                               output_padding, groups, cudnn.benchmark,
                                               cudnn.deterministic or torch.are_deterministic_algorithms_enabled(),
                                               cudnn.enabled, cudnn.allow_tf32)


def _below_autograd(*tensors: torch.Tensor) -> torch._C.DispatchKeySet:
    """The tensors' dispatch keys past autograd: where torch's own kernel (or a subclass's handler) runs."""
    keys = torch._C._dispatch_keys(tensors[0])
    for t in tensors[1:]:
        keys = keys | torch._C._dispatch_keys(t)
    return (keys & torch._C._after_autograd_keyset).remove(torch._C.DispatchKey.ADInplaceOrView)


class _TorchConvolution(torch.autograd.Function):
    """torch's own convolution, for a call routing leaves to torch: its kernel below the autograd keys (cuDNN, or
    a tensor subclass's handler such as DTensor's), and ``aten::convolution_backward`` for the gradients (whose
    own derivative gives double backward), as torch's autograd formula does."""

    @staticmethod
    def forward(ctx, input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
        ctx.save_for_backward(input, weight)
        ctx.args = (stride, padding, dilation, transposed, output_padding, groups)
        ctx.bias_sizes = None if bias is None else list(bias.shape)
        keys = _below_autograd(*(t for t in (input, weight, bias) if t is not None))
        return torch.ops.aten.convolution.default.redispatch(keys, input, weight, bias, stride, padding, dilation,
                                                             transposed, output_padding, groups)

    @staticmethod
    def backward(ctx, grad):
        input, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        mask = [needs[0], needs[1], ctx.bias_sizes is not None and needs[2]]
        grads = torch.ops.aten.convolution_backward(grad, input, weight, ctx.bias_sizes, *ctx.args, mask)
        return (*grads, None, None, None, None, None, None)
