import math
import os

import hypothesis
import pytest
import torch

from tritonconv import _runtime, costmodel, dispatch, geometry, tuning


def pytest_addoption(parser):
    parser.addoption("--overflow-checks", action="store_true",
                     help="assert the Triton interpreter's 32-bit overflow checks (here off; by default computed, not asserted)")
    parser.addoption("--first-case-only", action="store_true",
                     help="run each test function on its first parametrization only (.ci/run's Triton 3.6 sample)")


def pytest_configure(config):
    """The interpreter's 32-bit overflow checks (``tritonconv._runtime.overflow_checks``) took half of an interpreted
    kernel's time without asserting anything (Triton asserts them only in debug mode): the tests run without them,
    in this process and in those it starts (the notebooks' kernels, the spawned ranks, the command-line runs).
    ``--overflow-checks`` asserts them, as ``.ci/run`` does in its correctness table and where it runs each kernel
    test once on Triton 3.6; a GPU compiles the kernels without them, and sizes past 2**31 are tested on the 64-bit
    offsets path (``geometry.INT32_MAX`` lowered)."""
    on = config.getoption("--overflow-checks")
    os.environ["TRITONCONV_OVERFLOW_CHECKS"] = "1" if on else "0"
    _runtime.overflow_checks(on)


LONGEST_FIRST = ("test_compile.py", "test_backward.py", "test_conv_tma.py", "test_benchmarks.py", "test_aligned_rows.py",
                 "test_docs_site.py", "test_spec_cli.py", "test_costmodel.py", "test_conv.py", "test_distributed.py",
                 "test_notebooks_catch_faults.py", "test_tuning.py", "test_convert.py")
"""The test files whose tests take longest in all (CPU, 2026-12-07), longest first: a worker takes a whole file at a
time (``--dist loadfile``), so these start first and no worker waits at the end for the other's long file (xdist's
default order, by test count, left the docs site's and the wheel's single tests, two minutes each, to the end)."""


def pytest_collection_modifyitems(config, items):
    """The files in :data:`LONGEST_FIRST` first, the rest as collected; ``--first-case-only``: each test function's
    first case (every function still runs once)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # (stable: a file's tests keep their order)
    if not config.getoption("--first-case-only"):
        return
    seen, kept, dropped = set(), [], []
    for item in items:
        key = (item.path, getattr(item, "originalname", item.name))
        (dropped if key in seen else kept).append(item)
        seen.add(key)
    config.hook.pytest_deselected(items=dropped)
    items[:] = kept


class DrawnOnTheGenerator(torch.overrides.TorchFunctionMode):
    """``torch.randn(..., generator=g)`` without a device draws on ``g``'s device and moves the draw to the default
    device: a seeded test's CPU generator then serves CUDA tensors too (CUDA refuses a CPU generator), with the same
    numbers on either."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        g = kwargs.get("generator")
        if func is torch.randn and g is not None and kwargs.get("device") is None:
            return func(*args, **kwargs, device=g.device).to(torch.get_default_device())
        return func(*args, **kwargs)


# TRITONCONV_TEST_DEVICE=cuda (the GPU session's check stage): tensors made without a device are CUDA
# tensors, so every kernel test runs the compiled kernels rather than the interpreter; seeded draws as on the CPU.
if os.environ.get("TRITONCONV_TEST_DEVICE", "cpu") == "cuda":
    torch.set_default_device("cuda")
    DrawnOnTheGenerator().__enter__()


@pytest.fixture(autouse=True)
def poison_outputs(monkeypatch):
    """Every kernel output starts as NaN, so an element the kernel does not write fails the test."""

    def poisoned(shape, device, dtype, fmt=torch.contiguous_format):
        return torch.full(shape, math.nan, device=device, dtype=dtype).contiguous(memory_format=fmt)

    monkeypatch.setattr(geometry, "alloc_output", poisoned)


@pytest.fixture
def plain_allocation(monkeypatch):
    """Outputs allocated as the library does, for tests that count bytes held (the poisoning fixture's
    fill-then-convert holds a second copy for a moment)."""
    monkeypatch.setattr(geometry, "alloc_output", lambda shape, device, dtype, fmt=torch.contiguous_format:
                        torch.empty(shape, device=device, dtype=dtype, memory_format=fmt))


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


class TorchRandom:
    """torch's global generator as Hypothesis manages a ``random.Random``: each example of a ``@given`` test starts
    from the same state, so a falsified example replays with its own data (an unseeded ``torch.randn`` drew new
    data on the replay, and Hypothesis reported the failure as flaky)."""

    def seed(self, value: int) -> None:
        torch.manual_seed(value)

    def getstate(self) -> torch.Tensor:
        return torch.get_rng_state()

    def setstate(self, state: torch.Tensor) -> None:
        torch.set_rng_state(state)


TORCH_RANDOM = TorchRandom()  # (Hypothesis holds a weak reference)
hypothesis.register_random(TORCH_RANDOM)


@pytest.fixture(autouse=True)
def fresh_config_choice(monkeypatch):
    """On a GPU: no benchmarking of every test shape, and no config memoized by an earlier test
    (tests that force a config through ``tuning.heuristic`` must get it)."""
    monkeypatch.setenv("TRITONCONV_AUTOTUNE", "0")
    tuning._memo.clear()
    dispatch.clear_plans()  # plans hold configs: a test that forces one must build its own
    costmodel.forget()  # (launches kept by the model: a test may change what they read)


# Relative L2 error allowed per dtype, against an fp32 (fp64 for fp32) reference on the same inputs; "tf32": fp32
# multiplied in TF32 on a GPU (10-bit mantissas; benchmarks.kernelbench allows 2e-3)
REL_TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float64: 1e-10, "tf32": 3e-3}


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Relative L2 error of ``out`` against ``ref``, in float64."""
    return ((out.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30)).item()


def assert_close(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype | str = torch.float32,
                 tol: float | None = None) -> None:
    """Relative L2 error under the dtype's tolerance (or ``tol``); on failure say how many elements are off."""
    tol = REL_TOL[dtype] if tol is None else tol
    assert out.shape == ref.shape, f"shape {tuple(out.shape)} != reference {tuple(ref.shape)}"
    out64, ref64 = out.double(), ref.double()
    bad = ~torch.isfinite(out64)
    first = bad.nonzero()[:3].tolist()
    assert not bad.any(), f"{int(bad.sum())} of {out.numel()} outputs are NaN/inf (unwritten?), first at {first}"
    err = (out64 - ref64).norm() / ref64.norm().clamp_min(1e-30)
    if err > tol:
        diff = (out64 - ref64).abs()
        worst = diff.flatten().topk(min(3, diff.numel())).indices
        raise AssertionError(
            f"relative L2 error {err:.3e} > {tol:.0e}; "
            f"{int((diff > 1e-3 * ref64.abs().max()).sum())} of {out.numel()} elements off; "
            f"worst at flat {worst.tolist()}: got {out64.flatten()[worst].tolist()}, want {ref64.flatten()[worst].tolist()}"
        )


@pytest.fixture
def compile_threads_seen(monkeypatch) -> list[str]:
    """The names of the threads each kernel compile submitted to Triton's compile-only mode ran on
    (``tritonconv._runtime.compile_ahead``), in the order they started."""
    import threading

    from triton.runtime import _async_compile

    threads: list[str] = []
    submit = _async_compile.AsyncCompileMode.submit

    def recording(self, key, compile_fn, *rest):
        def traced():
            threads.append(threading.current_thread().name)
            return compile_fn()

        return submit(self, key, traced, *rest)

    monkeypatch.setattr(_async_compile.AsyncCompileMode, "submit", recording)
    return threads
