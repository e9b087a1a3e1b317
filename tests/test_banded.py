"""The banded depthwise kernels (``tritonconv.kernels.banded``): a row of taps as the tensor cores' reduction.

On a GPU the heuristic gives them 16-bit depthwise layers of 8 taps or more along the width; under the interpreter the
tests ask for them (the heuristic's banded tiles, small splits) and check them against torch in float64.
"""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import tritonconv
from tritonconv import _checks, dispatch, geometry, tuning
from tritonconv.kernels import banded

CASES = [  # (ndim, input, weight, kwargs)
    (1, (2, 20, 77), (20, 1, 31), dict(padding=15, groups=20)),  # Conformer's 31 taps; channels over 8-wide tiles
    (1, (2, 8, 96), (8, 1, 31), dict(padding=15, groups=8)),  # NCL rows of whole 16-byte runs: windows read in runs
    (1, (2, 8, 40), (16, 1, 5), dict(padding=2, groups=8, stride=2)),  # multiplier 2, strided (forward only)
    (1, (3, 9, 41), (9, 1, 5), dict(padding=4, groups=9, dilation=2)),
    (1, (1, 8, 33), (8, 1, 3), dict(groups=8, stride=3, dilation=2)),  # stride past the kernel
    (1, (2, 8, 30), (8, 1, 8), dict(groups=8, padding="same")),  # even taps: 3 before, 4 after
    (1, (1, 8, 12), (8, 1, 9), dict(groups=8, padding=20)),  # padding past the taps' reach
    (2, (2, 6, 5, 19), (6, 1, 1, 7), dict(groups=6, padding=(1, 3))),  # rows padded: some read nothing
    (2, (1, 8, 6, 17), (8, 1, 1, 9), dict(groups=8, stride=(2, 1), padding=(1, 4))),  # a strided height
    (3, (1, 5, 3, 2, 21), (5, 1, 1, 1, 9), dict(groups=5, padding=(0, 1, 4))),
]


@pytest.fixture
def banded_tiles(monkeypatch):
    """Every depthwise pass the banded kernels compute takes their heuristic tiles (a GPU's, split for 4 SMs: several
    programs along the segments, whose weight-gradient sums meet); the passes they are prepared for."""
    heuristic, launches = tuning.heuristic, []
    def chosen(problem, *args, **kwargs):
        return tuning.banded_config(problem, 4) or heuristic(problem, *args, **kwargs)
    monkeypatch.setattr(tuning, "heuristic", chosen)
    init, init_wgrad = banded.Launch.__init__, banded.WeightGradLaunch.__init__
    def prepared(self, x, weight, bias, y, spec, transposed, *args):  # the passes it is prepared for
        launches.append("input_grad" if transposed else "forward")
        init(self, x, weight, bias, y, spec, transposed, *args)
    def prepared_wgrad(self, *args):
        launches.append("weight_grad")
        init_wgrad(self, *args)
    monkeypatch.setattr(banded.Launch, "__init__", prepared)
    monkeypatch.setattr(banded.WeightGradLaunch, "__init__", prepared_wgrad)
    return launches


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", CASES)
def test_matches_torch(banded_tiles, ndim, x_shape, w_shape, kw, channels_last, dtype):
    """Forward (bias, fused activation), input gradient and weight gradient against torch in float64, in both
    layouts. A strided input gradient or one of a multiplier past 1 runs the FMA kernel."""
    g = torch.Generator().manual_seed(len(banded_tiles))
    x = torch.randn(x_shape, generator=g).to(dtype)
    if channels_last:
        x = x.movedim(1, -1).contiguous().movedim(-1, 1)
    w = torch.randn(w_shape, generator=g).to(dtype).requires_grad_()
    b = torch.randn(w_shape[0], generator=g).to(dtype)
    x.requires_grad_()
    y = getattr(tritonconv, f"conv{ndim}d")(x, w, b, activation="gelu", **kw)
    dy = torch.randn(y.shape, generator=g).to(dtype)
    y.backward(dy)
    xr, wr = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    yr = F.gelu(getattr(F, f"conv{ndim}d")(xr, wr, b.double(), **kw))
    yr.backward(dy.double())
    tol = 2e-2 if dtype == torch.bfloat16 else 2e-3  # the output's rounding
    assert rel_err(y, yr) < tol and rel_err(x.grad, xr.grad) < tol and rel_err(w.grad, wr.grad) < tol
    strided = kw.get("stride", 1) != 1
    assert set(banded_tiles) == {"forward", "weight_grad"} | (
        set() if strided or w_shape[0] != x_shape[1] else {"input_grad"})


def test_flip_reads_the_taps_reversed(banded_tiles):
    x, w = torch.randn(2, 8, 29, dtype=torch.float16), torch.randn(8, 1, 11, dtype=torch.float16)
    out = tritonconv.conv1d(x, w, padding=3, groups=8, flip=True)
    assert rel_err(out, F.conv1d(x.double(), w.flip(-1).double(), padding=3, groups=8)) < 2e-3
    assert banded_tiles


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # (the interpreter's numpy: inf * 0)
def test_non_finite_input_reaches_its_segments_only(banded_tiles):
    """The documented limit: an infinity in ``x`` reaches (as NaN, times the band's zeros) every output of a segment
    whose window holds it, and no other; finite elsewhere."""
    x = torch.randn(1, 8, 256, dtype=torch.float16)
    x[0, 3, 100] = float("inf")
    out = tritonconv.conv1d(x, torch.randn(8, 1, 31, dtype=torch.float16), padding=15, groups=8)
    segment = banded.segment(31, 1, 1)  # 32 outputs, each window 62 inputs from 15 before
    reached = [s for s in range(256 // segment) if s * segment - 15 <= 100 < s * segment - 15 + 62]
    bad = (~out[0, 3].isfinite()).nonzero().flatten().tolist()
    assert bad and {o // segment for o in bad} <= set(reached)
    assert out[:, [c for c in range(8) if c != 3]].isfinite().all()
    assert banded_tiles


def test_heuristic_takes_the_banded_kernel_for_long_16_bit_rows_on_a_gpu():
    def config(kind="conv_dw", dtype="bfloat16", x=(4, 32, 256), w=(32, 1, 31), stride=1, interpret=False, **kw):
        problem = tuning.Problem.of(kind, dtype, "channels_last", x, w, stride, 15, **kw, groups=x[1])
        return tuning.heuristic(problem, interpret=interpret, sm_count=132)
    chosen = config()
    assert chosen.fold and (chosen.block_m, chosen.block_n, chosen.block_k) == (32, 8, 32)
    assert config(kind="conv_dw_t").fold and config(kind="conv_dw_wgrad").fold
    assert config(kind="conv_dw_wgrad").block_k == 16  # (fewer, longer programs: each ends summing diagonals)
    assert config(stride=2).fold and not config(kind="conv_dw_t", stride=2).fold  # (the input gradient by phases)
    assert not config(dtype="float32").fold and not config(kind="conv_dw_wgrad", dtype="float32").fold  # exact FMAs
    assert not config(interpret=True).fold
    assert not config(w=(32, 1, 7)).fold  # below BANDED_TAPS: both kernels bound by the bytes
    assert not config(x=(4, 32, 64, 64), w=(32, 1, 3, 3)).fold  # taps along two axes
    assert not config(w=(32, 1, 127)).fold  # a band past BANDED_WINDOW
    assert config(x=(4, 32, 8, 256), w=(32, 1, 1, 31)).fold  # 1 x k: rows of any height


def test_segment_and_window():
    assert (banded.segment(31, 1, 1), banded.window(31, 1, 1, 32)) == (32, 64)  # 62 inputs in 64
    assert (banded.segment(9, 1, 1), banded.window(9, 1, 1, 16)) == (16, 32)  # 24 in 32 (32 outputs: 40 in 64)
    assert banded.window(3, 1, 1, 16) == 32 and banded.window(2, 1, 1, 8) == 16  # at least the MMA's 16
    assert banded.window(5, 2, 3, 16) == 64  # 15 * 2 + 4 * 3 + 1 = 43
    written, cfg = (3, 8, 2, 100), geometry.Config(32, 8, 16, 1, 8, 1, split_k=5, fold=1)
    segs, per, programs = banded.tiling(written, cfg)
    assert segs == 3 * 2 * 4 and per % 16 == 0 and (programs - 1) * per < segs <= programs * per


def test_fitted_to_a_smaller_gpu(monkeypatch):
    """On a GPU with less shared memory a block, the banded tiles take fewer segments a step, then fewer channels."""
    problem = tuning.Problem.of("conv_dw", "bfloat16", "channels_last", (16, 256, 4096), (256, 1, 31), 1, 15,
                                groups=256)
    chosen = tuning.heuristic(problem, interpret=False, sm_count=132)
    assert banded.shared_bytes(problem.spec, chosen, 2) == 65536
    for limit in (101376, 65536, 26624):
        fitted = tuning.fit_shared(problem, chosen, limit)
        assert fitted.fold and banded.shared_bytes(problem.spec, fitted, 2) + 1024 <= limit
    assert tuning.fit_shared(problem, chosen, 65536) == dataclasses.replace(chosen, block_k=16)
    assert not tuning.fit_shared(problem, chosen, 8192).fold  # the FMA kernel's tiles


def test_weight_gradient_splits_meet_in_a_fixed_order(banded_tiles):
    """The weight gradient's programs along the segments meet in the kernel in split order: two calls equal bit for
    bit, and equal to one unsplit launch's within rounding."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 8, 200, generator=g).to(torch.float16)
    dy = torch.randn(3, 8, 200, generator=g).to(torch.float16)
    spec = _checks.conv_spec("conv1d", 1, x, torch.empty(8, 1, 31, dtype=x.dtype), None, 1, 15, 1, 8)
    cfg = tuning.banded_config(geometry.Problem.for_launch("conv_dw_wgrad", x, spec), 4)
    first, second = (dispatch.conv_grad_weight(dy, x, spec, False, cfg) for _ in range(2))
    single = dispatch.conv_grad_weight(dy, x, spec, False, dataclasses.replace(cfg, split_k=1))
    assert cfg.split_k > 1 and torch.equal(first, second) and banded_tiles == ["weight_grad"] * 2
    assert rel_err(first, single.double()) < 2e-3
    assert rel_err(first, torch.nn.grad.conv1d_weight(x.double(), (8, 1, 31), dy.double(), padding=15, groups=8)) < 2e-3


def test_windows_read_in_runs_where_rows_allow():
    """NCL rows whose strides and width are whole 16-byte runs read their windows in runs, from a run boundary ``R``
    columns before them (``R = -pad mod 8``), where that leaves the band as wide; else 2 bytes at a time."""
    def runs(shape, taps, pad, stride=1, segment=32, dtype=torch.bfloat16, channels_last=False):
        x = torch.empty(shape, dtype=dtype)
        if channels_last:
            x = x.movedim(1, -1).contiguous().movedim(-1, 1)
        spec = _checks.conv_spec("conv1d", 1, x, torch.empty(shape[1], 1, taps, dtype=dtype), None, stride, pad, 1,
                                 shape[1])
        return banded.window_runs(x, spec, geometry.Config(segment, 8, 32, fold=1), pad)
    assert runs((2, 8, 96), 31, 15) == (8, 1)  # 62 inputs and 1 before: 64
    assert runs((2, 8, 96), 31, 13) == (0, 0)  # 3 before: 65, a band of 128
    assert runs((2, 8, 100), 31, 15) == (0, 0)  # rows of no whole run
    assert runs((2, 8, 96), 31, 15, channels_last=True) == (0, 0)  # channels innermost: 16-byte loads already
    assert runs((2, 8, 96), 9, 4, segment=16) == (8, 4)  # 24 + 4 in 32


def test_explain_names_the_banded_kernels():
    """``tritonconv.explain`` says which passes of a layer run banded on a GPU, and how they read their rows."""
    x = torch.empty(16, 256, 4096, device="meta", dtype=torch.bfloat16)
    w = torch.empty(256, 1, 31, device="meta", dtype=torch.bfloat16)
    text = str(tritonconv.explain(x, w, None, 1, 15, 1, 256))
    assert text.count("depthwise (tensor cores, banded taps)") == 3 and text.count("NC(D)HW rows in runs") == 3
    assert "splits met in the kernel" in text
    fp32 = str(tritonconv.explain(x.float(), w.float(), None, 1, 15, 1, 256))
    assert "banded" not in fp32 and fp32.count("depthwise (FMA)") == 3
