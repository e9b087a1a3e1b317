"""Where a kernel runs: compiled for CUDA tensors, Triton's interpreter for CPU tensors.

The mode follows the tensors, so a CUDA tensor never falls back to the CPU and a machine
without a GPU needs no setting at all:

* CUDA tensor -> the compiled Triton kernel.
* CPU tensor  -> the same kernel source run by Triton's CPU interpreter (numpy).
* ``TRITONCONV_INTERPRET=1`` (or Triton's own ``TRITON_INTERPRET=1``) forces the interpreter
  for CUDA tensors too, for debugging; the data round-trips through host memory.

Compiled kernels launch below ``JITFunction.run`` once they have run through it (:class:`Direct`);
``TRITONCONV_DIRECT=0`` (read at import) keeps every launch on ``JITFunction.run``, to rule that path out.
``TRITONCONV_OVERFLOW_CHECKS=0`` (read at import) runs the interpreter without its 32-bit overflow checks, ``=1``
with them asserted (:func:`overflow_checks`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import os
import sys
import threading

import numpy as np
import torch
import triton
import triton.language as tl
from triton.runtime import interpreter
from triton.runtime.interpreter import InterpretedFunction

try:  # Triton's compile-only launches on an executor (Triton 3.5+; private: without it compile_ahead compiles in turn)
    from triton.runtime._async_compile import AsyncCompileMode
    from triton.runtime._async_compile import active_mode as _async_mode
except ImportError:  # pragma: no cover - older Triton
    AsyncCompileMode = _async_mode = None

try:  # host-side tensor descriptors (Triton 3.4+); without them the descriptor kernel is never offered
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:  # pragma: no cover - older Triton
    TensorDescriptor = None


def force_interpreter() -> bool:
    """True when the environment asks for the interpreter on every device."""
    return os.environ.get("TRITONCONV_INTERPRET", "0") == "1" or os.environ.get("TRITON_INTERPRET", "0") == "1"


DIRECT = os.environ.get("TRITONCONV_DIRECT", "1") != "0"
"""Whether :class:`Direct` launches below ``JITFunction.run`` (``TRITONCONV_DIRECT=0``: never)."""

COMPILE_OPTIONS = {"enable_fp_fusion": True}
"""Options every compiled launch asks for (:class:`Direct`): fused multiply-adds, which Triton chose by default through
3.9 (with a warning, in 3.9, that 3.10 turns them off). Asked for, every kernel compiles the same on every Triton."""


def overflow_checks(on: bool) -> None:
    """Triton's interpreter computes a 64-bit check of every 32-bit integer add, subtract and multiply for overflow,
    and asserts it only in its debug mode (off by default): half of an interpreted kernel's time for no check. Off,
    it skips them (about twice as fast); on, it asserts them (an overflow stops the kernel with an error naming the
    operation: the interpreter's debug mode on, which asserts nothing else of tritonconv's). For this process; a GPU
    compiles the kernels without them."""
    builder = interpreter.interpreter_builder
    if hasattr(builder.options, "sanitize_overflow"):
        builder.options = dataclasses.replace(builder.options, sanitize_overflow=on, debug=on)


if os.environ.get("TRITONCONV_OVERFLOW_CHECKS") in ("0", "1"):
    overflow_checks(os.environ["TRITONCONV_OVERFLOW_CHECKS"] == "1")


def interpreting(device: torch.device) -> bool:
    """Whether kernels for tensors on ``device`` run under Triton's interpreter."""
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return force_interpreter()
    raise ValueError(
        f"tritonconv runs on CUDA tensors, or on CPU tensors through Triton's interpreter; got device {device}"
    )


INTERPRETER_LOCK = threading.RLock()
"""Held by every interpreted launch: Triton's interpreter keeps a launch's state in globals (it patches
``triton.language`` and holds the grid), so launches from two threads at once failed or could mix."""


class _Serialised:
    """An interpreted kernel whose launches hold :data:`INTERPRETER_LOCK`."""

    def __init__(self, fn: InterpretedFunction) -> None:
        self.fn = fn

    def __getitem__(self, grid):
        launch = self.fn[grid]

        def locked(*args, **kwargs):
            with INTERPRETER_LOCK:
                return launch(*args, **kwargs)

        return locked


class Kernel:
    """A ``@triton.jit`` kernel with its interpreted twin; ``kernel[device]`` picks one."""

    def __init__(self, jit_fn: triton.JITFunction) -> None:
        self.compiled = jit_fn
        # Under TRITON_INTERPRET=1 triton.jit already returned an InterpretedFunction.
        self.interpreted = _Serialised(jit_fn if isinstance(jit_fn, InterpretedFunction) else InterpretedFunction(jit_fn.fn))

    def __getitem__(self, device: torch.device):
        if _ahead.get():
            return _Warmup(None if interpreting(device) else self.compiled)
        if interpreting(device):
            check_interpreter()
            return self.interpreted
        return self.compiled


_ahead: contextvars.ContextVar[bool] = contextvars.ContextVar("tritonconv_compile_ahead", default=False)


class _Warmup:
    """A kernel's launches inside :func:`compile_ahead`: compiled (``JITFunction.warmup``, on Triton's executor),
    never launched; an interpreted kernel's (``fn`` None) do nothing."""

    def __init__(self, fn: triton.JITFunction | None) -> None:
        self.fn = fn

    def __getitem__(self, grid):
        def warmup(*args, **kwargs):
            if self.fn is not None:
                self.fn.warmup(*args, grid=grid, **kwargs)

        return warmup


def compile_threads() -> int:
    """Threads :func:`compile_ahead` compiles on: ``TRITONCONV_COMPILE_THREADS``, else this process's CPUs shared
    among the processes ``torchrun`` started on the machine (``LOCAL_WORLD_SIZE``), at most 16."""
    value = os.environ.get("TRITONCONV_COMPILE_THREADS")
    if value is not None:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"expected TRITONCONV_COMPILE_THREADS to be a positive int, got {value!r}")
        return int(value)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    return max(1, min(16, cpus // (int(local) if local.isdigit() and int(local) > 0 else 1)))


_PARSE_LOCK = threading.RLock()


def parse_one_at_a_time() -> None:
    """Have Triton's ``JITFunction.parse`` (every compile parses its kernel's and helpers' source) run in one thread at
    a time, where CPython's ``ast.parse`` is not safe across threads: before 3.12, its AST constructor's recursion depth
    is shared by the interpreter's threads, so a thread switch inside one parse (a finalizer run by the collector) can
    make another raise ``SystemError: AST constructor recursion depth mismatch`` (python/cpython#106905; 6 threads
    parsing ``_conv_kernel`` 150 times each raised it 35-46 times on 3.11.7; plain ``ast.parse`` in threads raised it
    on 3.11.7, never on 3.12.1 or 3.13.0). Done once; a no-op on 3.12 and later. Only the parse is serialized: the code
    generation, LLVM and ptxas after it still run on the threads at once."""
    cls = triton.runtime.jit.JITFunction
    if sys.version_info >= (3, 12) or getattr(cls.parse, "_one_at_a_time", False):
        return
    parse = cls.parse

    @functools.wraps(parse)
    def locked(self):
        with _PARSE_LOCK:
            return parse(self)

    locked._one_at_a_time = True
    cls.parse = locked


@contextlib.contextmanager
def compile_ahead(workers: int | None = None):
    """Inside it, a compiled kernel's launch compiles the kernel for the launch's arguments in one of ``workers``
    threads (default: :func:`compile_threads`) and launches nothing; leaving it waits for every compile, whose
    kernels later launches find compiled. A tuning runs its candidates in it first, so that their kernels compile
    at once (Triton's compiler releases the GIL: 12 kernels for sm_90 compiled 1.7x faster on 2 threads than on one
    on a 2-core machine), then times them one by one. An interpreted launch has nothing to compile and does nothing; a
    launch site already compiled (:class:`Direct`) launches. A compile that fails is left to fail again, and be
    reported, where the launch runs. Inside a caller's own compile-only mode (one may be active at a time) its executor
    compiles them; without that mode (older Triton) each launch compiles in turn. Before Python 3.12 the threads parse
    kernels' source one at a time (:func:`parse_one_at_a_time`)."""
    token = _ahead.set(True)
    try:
        if AsyncCompileMode is None or _async_mode.get() is not None:  # compiled here, one by one, or by a caller's
            yield  # own mode's executor (one mode at a time)
        else:
            workers = workers or compile_threads()
            parse_one_at_a_time()
            with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="tritonconv-compile") as pool, \
                    AsyncCompileMode(pool, ignore_errors=True):
                yield
    finally:
        _ahead.reset(token)


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
        with INTERPRETER_LOCK:
            InterpretedFunction(_loop_to)[(1,)](2)
    except Exception as err:
        raise RuntimeError(
            f"Triton {triton.__version__}'s interpreter, which runs tritonconv on CPU tensors, fails with "
            f"numpy {np.__version__} ({err}). Triton 3.6 needs numpy<2.4 (pip install 'numpy<2.4'); "
            "Triton 3.7+ runs with any numpy. CUDA tensors are unaffected."
        ) from None


try:  # what Triton's own launch path asks for the stream: an int, no Stream object made
    from torch._C import _cuda_getCurrentRawStream as _raw_stream
except ImportError:  # CPU-only torch builds
    _raw_stream = None


def capability(device: torch.device) -> int | None:
    """A CUDA device's compute capability as ``major * 10 + minor`` (90: Hopper); None elsewhere, or interpreted."""
    if device.type != "cuda" or interpreting(device):
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return 10 * major + minor


def warp_mma(capability: int | None, rows: int) -> bool:
    """Whether a 16-bit or TF32 ``tl.dot`` of ``rows`` rows compiled for compute capability ``capability`` runs the
    warp-level MMA (``mma.sync``, ``HMMA``): before sm_90 always, on Hopper under 64 rows (its warpgroup MMA takes 64 a
    warpgroup). False where nothing is compiled (None: the CPU)."""
    return capability is not None and (capability < 90 or rows < 64)


def target_options(kwargs: dict, capability: int | None, runs: bool, rows: int, tf32_fragments: bool = True) -> dict:
    """A GEMM launch's options for a GPU of compute capability ``capability`` (``major * 10 + minor``; None: the CPU, none
    but ``FRAGMENTS`` off). Below sm_90 a launch reading NC(D)HW rows in aligned runs (``runs``) lets ptxas use
    every register (``maxnreg``): left to choose, ptxas for sm_80 held such tiles to 128 or 80 registers, for
    occupancy, and spilled 4-12 B (the strided forwards and input gradients, the weight gradient's moved runs in
    fp32; Triton 3.6 and 3.9); on sm_90 it chose 119-180 without a spill, which a cap of 255 raised (the dealt
    forward's 122 to 137: one program per SM instead of two), so Hopper keeps ptxas's choice. Where its MMA of
    ``rows`` rows is the warp-level one (:func:`warp_mma`), the operands it moves in registers pass through
    :func:`tritonconv._tile.fragment` (``FRAGMENTS``); the warpgroup MMA reads them from shared memory or registers
    as they are (through the move, its NC(D)HW weight gradients' loops issued up to 7% more). Not IEEE fp32 products
    (``DOT_PRECISION`` ``"ieee"``: no MMA), nor TF32 ones where the launch says the move costs more than it saves
    (``tf32_fragments`` False: :func:`tritonconv.kernels.gemm.target_options`)."""
    precision = kwargs.get("DOT_PRECISION")
    fragments = precision != "ieee" and (precision != "tf32" or tf32_fragments)
    kwargs = {**kwargs, "FRAGMENTS": fragments and warp_mma(capability, rows)}
    if capability is not None and capability < 90 and runs:
        kwargs["maxnreg"] = 255
    return kwargs


def current_stream(device: torch.device) -> int:
    """The handle of ``device``'s current CUDA stream (as ``JITFunction.run`` gets it)."""
    if _raw_stream is None:
        return torch.cuda.current_stream(device).cuda_stream
    return _raw_stream(device.index if device.index is not None else torch.cuda.current_device())


class Counters:
    """The ticket counters of a split launch's ``count`` output tiles (:func:`tritonconv._tile.meet_splits`), zero
    between launches (the last split resets its tile's): one set per stream, so launches of a plan on two streams
    never share them. Calling it with a device gets that device's current stream's set."""

    def __init__(self, count: int) -> None:
        self.count, self.sets = count, {}

    def __call__(self, device: torch.device) -> torch.Tensor:
        key = current_stream(device) if device.type == "cuda" else 0
        found = self.sets.get(key)
        if found is None:
            found = self.sets[key] = torch.zeros(self.count, device=device, dtype=torch.int32)
        return found


def _no_hooks(chain) -> bool:
    """Whether a launch hook (Triton's ``HookChain``; None) would call nothing."""
    return chain is None or getattr(chain, "calls", None) == []


class Direct:
    """One call site of a kernel, launched below ``JITFunction.run`` once it has run there.

    A kernel launch site prepared once per call signature (the kernels' ``Launch`` objects) passes the
    same scalars, constexprs and options every time; only its leading arguments, the tensors (and tensor
    descriptors) it reads and writes, change. So the site gives those once, here: ``fixed`` (the arguments
    after the tensors, in signature order) and ``options`` (constexprs by name, launch options, after
    :data:`COMPILE_OPTIONS`), and each call passes only the tensors. The first call goes through
    ``JITFunction.run`` (binding, specialisation, the compile cache) and keeps the compiled kernel with every
    argument after the tensors in the kernel's signature order (defaults applied); later calls put the new
    tensors in front and call the compiled kernel's launcher as ``JITFunction.run`` does (grid, stream,
    function, packed metadata, launch metadata and hooks, every argument constexprs included). A tensor whose
    address lost the 16-byte alignment the kernel was specialised for, or a different device, goes through
    ``JITFunction.run`` again. The interpreter always runs as before.
    """

    def __init__(self, kernel: Kernel, fixed: tuple = (), options: dict | None = None) -> None:
        self.kernel = kernel
        self.fixed, self.options = tuple(fixed), {**COMPILE_OPTIONS, **(options or {})}
        self.compiled = None  # (device, compiled kernel, the arguments after the tensors, the aligned tensors)

    def ready(self, device: torch.device) -> bool:
        """Whether a launch on ``device`` goes the direct path (the kernel was compiled there)."""
        return self.compiled is not None and self.compiled[0] == device

    def __call__(self, device: torch.device, grid: tuple, *tensors):
        if self.ready(device):
            _, compiled, rest, aligned = self.compiled
            for i in aligned:
                if tensors[i].data_ptr() & 15:
                    break  # specialised for an aligned address: JITFunction.run specialises anew
            else:
                stream = current_stream(device)
                grid = (*grid, 1, 1)
                full = (*tensors, *rest)
                runtime = triton.knobs.runtime
                enter, leave = runtime.launch_enter_hook, runtime.launch_exit_hook  # chains of hooks (a profiler's)
                metadata = None if enter is None or _no_hooks(enter) and _no_hooks(leave) else \
                    compiled.launch_metadata(grid[:3], stream, *full)  # (what the hooks read)
                compiled.run(grid[0], grid[1], grid[2], stream, compiled.function, compiled.packed_metadata,
                             metadata, enter, leave, *full)
                return compiled
        compiled = self.kernel[device][grid](*tensors, *self.fixed, **self.options)
        if DIRECT and not interpreting(device) and hasattr(compiled, "packed_metadata") and hasattr(compiled, "run"):
            self.compiled = (device, compiled, *self.layout(tensors))
        return compiled

    def layout(self, tensors: tuple) -> tuple[tuple, tuple[int, ...]]:
        """Every argument after ``tensors`` in the kernel's signature order (defaults applied, launch options
        left out), and the positions of the tensors that were 16-byte aligned (specialised so)."""
        signature = inspect.signature(self.kernel.compiled.fn)
        bound = signature.bind(*tensors, *self.fixed,
                               **{k: v for k, v in self.options.items() if k in signature.parameters})
        bound.apply_defaults()
        aligned = tuple(i for i, t in enumerate(tensors) if isinstance(t, torch.Tensor) and t.data_ptr() % 16 == 0)
        return tuple(bound.arguments.values())[len(tensors):], aligned


class Address:
    """What a tensor descriptor asks of its base at launch, a tensor's address and dtype, without the tensor: a
    descriptor built on it can be kept across calls without keeping the tensor alive."""

    __slots__ = ("_ptr", "dtype")

    def __init__(self, ptr: int, dtype: torch.dtype) -> None:
        self._ptr, self.dtype = ptr, dtype

    def data_ptr(self) -> int:
        return self._ptr


class Descriptors:
    """The tensor descriptors of one operand of a launch site, whose sizes, strides and box are fixed: built on the
    tensor itself for a launch through ``JITFunction.run`` (which specialises on it) or the interpreter; for a
    direct launch (:class:`Direct`) built on its :class:`Address` and kept per address (the same address makes the
    same descriptor), at most :data:`KEEP` of them, so a steady loop whose allocator hands out the same addresses
    builds none."""

    KEEP = 8

    def __init__(self, launcher: Direct, sizes: list[int], strides: list[int], box: list[int]) -> None:
        self.launcher, self.layout = launcher, (sizes, strides, box)
        self.kept: dict[int, object] = {}

    def __call__(self, t: torch.Tensor):
        if not self.launcher.ready(t.device):
            return TensorDescriptor(t, *self.layout)
        ptr = t.data_ptr()
        found = self.kept.get(ptr)
        if found is None:
            if len(self.kept) >= self.KEEP:
                self.kept.clear()
            found = self.kept[ptr] = TensorDescriptor(Address(ptr, t.dtype), *self.layout)
        return found


def kernel(jit_fn: triton.JITFunction) -> Kernel:
    """Decorator placed above ``@triton.jit``."""
    return Kernel(jit_fn)


class DeviceFunction(triton.JITFunction):
    """A ``@triton.jit`` helper that kernels call, compiled and interpreted alike.

    The compiler inlines a called ``JITFunction`` itself and never invokes it; an interpreted
    kernel calls it as Python, which a plain ``JITFunction`` refuses ("Cannot call @triton.jit'd
    outside of the scope of a kernel"). This one runs its interpreted twin instead, inside an interpreted launch
    without patching ``triton.language`` again (the launch has patched it for its kernel).
    """

    def __init__(self, fn) -> None:
        super().__init__(fn)
        self._interpreted = InterpretedFunction(fn)
        self._langs: list | None = None  # the language modules its source reads, as Triton's interpreter finds them

    def __call__(self, *args, **kwargs):
        if self._langs is None:
            self._langs = [v for v in self.fn.__globals__.values() if inspect.ismodule(v) and v in (tl, tl.core)]
        if not self._langs or any(tl.core.is_builtin(lang.program_id) for lang in self._langs):
            return self._interpreted(*args, **kwargs)  # outside a launch: Triton patches the language for the call
        # Inside an interpreted launch: Triton's interpreter would patch the language again on every helper call
        # (inspecting every member of its modules, 2-3 ms each) and drop that patch unrestored; about two thirds of
        # an interpreted kernel's time, for nothing.
        try:
            return self._interpreted.rewrite()(*args, **kwargs)
        except Exception as e:
            raise interpreter.InterpreterError(repr(e)) from e


def device(fn) -> DeviceFunction:
    """Decorator for helpers called from kernels (in place of ``@triton.jit``)."""
    return DeviceFunction(fn)
