"""The banded depthwise kernels (``tritonconv.kernels.banded``): a segment's taps as the tensor cores' reduction.

On a GPU the heuristic gives them 16-bit depthwise layers of 8 taps or more (one along the depth) whose band issues at
most 8 multiply-adds a useful one; under the interpreter the tests ask for them (the heuristic's banded tiles, small
splits) and check them against torch in float64.
"""

import dataclasses
import itertools

import pytest
import torch
import torch.nn.functional as F
import triton.language as tl

import tritonconv
from tritonconv import _checks, _tile, dispatch, geometry, tuning
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
    # taps along the height too: segments of several rows, windows flattened
    (2, (2, 10, 11, 13), (10, 1, 3, 3), dict(groups=10, padding=1)),  # MobileNet's 3 x 3: 4 x 8 outputs, 6 x 10 inputs
    (2, (1, 8, 17, 19), (8, 1, 7, 7), dict(groups=8, padding=3)),  # ConvNeXt's 7 x 7: 2 x 8 outputs, 8 x 14 inputs
    (2, (2, 8, 9, 23), (8, 1, 3, 7), dict(groups=8)),  # no padding, taps of two lengths
    (2, (1, 8, 13, 15), (16, 1, 3, 3), dict(groups=8, padding=1, stride=2)),  # multiplier 2, strided
    (2, (1, 8, 14, 15), (8, 1, 3, 5), dict(groups=8, padding=(2, 4), dilation=2)),
    (2, (1, 8, 10, 12), (8, 1, 4, 4), dict(groups=8, padding="same")),  # even taps: 1 before, 2 after
    (3, (1, 8, 3, 9, 11), (8, 1, 1, 5, 3), dict(groups=8, padding=(1, 2, 1))),  # 1 x kh x kw: a plane of padding read
    # NCHW rows of whole 16-byte runs: windows of several rows read in runs, the segments' grid starting early
    (2, (2, 8, 9, 24), (8, 1, 7, 7), dict(groups=8, padding=3)),  # 2 x 8 outputs, 8 rows of 16 inputs, 5 columns early
    (2, (1, 8, 10, 16), (8, 1, 3, 7), dict(groups=8)),  # 2 x 8 outputs, 4 rows of 16, none early
    (2, (1, 8, 7, 12), (8, 1, 5, 5), dict(groups=8, padding=2)),  # rows of 8-byte runs: 4 x 4, 8 rows of 8, 2 early
    (1, (2, 8, 44), (8, 1, 9), dict(groups=8, padding=4)),  # NCL rows of 8-byte runs: 24 inputs, on a run
    (2, (1, 8, 9, 14), (8, 1, 7, 7), dict(groups=8, padding=3)),  # rows of 4-byte runs: 8 rows of 14, 1 early
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


@pytest.mark.parametrize("ties_outermost", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", [CASES[1], CASES[13], CASES[17]])
def test_either_layout_rule_gives_the_same_tiles(banded_tiles, monkeypatch, ties_outermost, ndim, x_shape, w_shape,
                                                 kw, channels_last):
    """The tiles built for either Triton's rule for axes of equal contiguity (``_tile.TIES_OUTERMOST``: before 3.7,
    outermost first; the interpreter runs whichever it is told) load, store and multiply the same elements: all three
    passes against torch on NCL rows in runs, a strided 3 x 3 layer and NCHW windows of several rows in runs."""
    monkeypatch.setattr(_tile, "TIES_OUTERMOST", tl.constexpr(ties_outermost))
    g = torch.Generator().manual_seed(7)
    x = torch.randn(x_shape, generator=g).to(torch.float16)
    if channels_last:
        x = x.movedim(1, -1).contiguous().movedim(-1, 1)
    w = torch.randn(w_shape, generator=g).to(torch.float16).requires_grad_()
    x.requires_grad_()
    y = getattr(tritonconv, f"conv{ndim}d")(x, w, **kw)
    dy = torch.randn(y.shape, generator=g).to(torch.float16)
    y.backward(dy)
    xr, wr = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    yr = getattr(F, f"conv{ndim}d")(xr, wr, **kw)
    yr.backward(dy.double())
    assert rel_err(y, yr) < 2e-3 and rel_err(x.grad, xr.grad) < 2e-3 and rel_err(w.grad, wr.grad) < 2e-3
    assert "forward" in banded_tiles and "weight_grad" in banded_tiles


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
    segment = banded.segment(spec_of((1, 8, 256), (31,)))  # 32 outputs, each window 62 inputs from 15 before
    reached = [s for s in range(256 // segment) if s * segment - 15 <= 100 < s * segment - 15 + 62]
    bad = (~out[0, 3].isfinite()).nonzero().flatten().tolist()
    assert bad and {o // segment for o in bad} <= set(reached)
    assert out[:, [c for c in range(8) if c != 3]].isfinite().all()
    assert banded_tiles


def test_heuristic_takes_the_banded_kernel_for_long_16_bit_rows_on_a_gpu():
    def config(kind="conv_dw", dtype="bfloat16", x=(4, 32, 256), w=(32, 1, 31), stride=1, interpret=False,
               layout="channels_last", **kw):
        problem = tuning.Problem.of(kind, dtype, layout, x, w, stride, 15, **kw, groups=x[1])
        return tuning.heuristic(problem, interpret=interpret, sm_count=132)
    chosen = config()
    assert chosen.fold and (chosen.block_m, chosen.block_n, chosen.block_k) == (32, 8, 32)
    assert config(kind="conv_dw_t").fold and config(kind="conv_dw_wgrad").fold
    assert config(kind="conv_dw_wgrad").block_k == 16  # (fewer, longer programs: each ends summing diagonals)
    assert config(stride=2).fold and not config(kind="conv_dw_t", stride=2).fold  # (the input gradient by phases)
    assert not config(dtype="float32").fold and not config(kind="conv_dw_wgrad", dtype="float32").fold  # exact FMAs
    assert not config(interpret=True).fold
    assert not config(w=(32, 1, 7)).fold  # below BANDED_TAPS: both kernels bound by the bytes
    assert not config(w=(32, 1, 127)).fold  # a band past BANDED_WINDOW
    assert config(x=(4, 32, 8, 256), w=(32, 1, 1, 31)).fold  # 1 x k: rows of any height
    square = config(x=(4, 32, 64, 64), w=(32, 1, 3, 3))  # 3 x 3: 7.1 issued a useful one, 16 segments a step
    assert square.fold and (square.block_m, square.block_k) == (32, 16)
    assert config(x=(4, 32, 64, 64), w=(32, 1, 7, 7)).fold and config(x=(4, 32, 9, 64, 64), w=(32, 1, 1, 5, 5)).fold
    assert not config(x=(4, 32, 64, 64), w=(32, 1, 3, 3), stride=2).fold  # windows of 81 in 128: 14.2 issued
    assert not config(x=(4, 32, 9, 64, 64), w=(32, 1, 3, 3, 3)).fold  # taps along the depth: the FMA kernel
    assert not config(x=(4, 32, 64, 64), w=(32, 1, 3, 3), interpret=True).fold
    assert config(layout="contiguous").fold and config(x=(4, 32, 8, 256), w=(32, 1, 1, 31), layout="contiguous").fold
    for kind in ("conv_dw", "conv_dw_t", "conv_dw_wgrad"):  # NCHW windows of several rows, read in runs or 2 bytes
        # at a time (rows of no whole run)
        for width, taps in itertools.product((64, 57), ((7, 7), (5, 5), (3, 3))):
            assert config(kind, x=(4, 32, 56, width), w=(32, 1, *taps), layout="contiguous").fold
            square = tuning.Problem.of(kind, "bfloat16", "contiguous", (4, 32, 56, width), (32, 1, *taps), 1, 1,
                                       groups=32)
            assert tuning.banded_candidates(square, 132)


def spec_of(x_shape, taps, stride=1, dilation=1):
    """A depthwise layer's checked spec: ``x_shape``'s channels, ``taps`` its kernel."""
    x = torch.empty(x_shape, dtype=torch.float16)
    w = torch.empty(x_shape[1], 1, *taps, dtype=torch.float16)
    return _checks.conv_spec(f"conv{len(taps)}d", len(taps), x, w, None, stride, 0, dilation, x_shape[1])


def test_segment_and_window():
    """A segment's outputs, rows and window (the band's rows) follow the taps."""
    def chosen(x_shape, taps, stride=1, dilation=1):
        spec = spec_of(x_shape, taps, stride, dilation)
        outputs = banded.segment(spec)
        rows = banded.segment_rows(spec, outputs)
        return outputs, rows, banded.window(spec, outputs, rows)
    assert chosen((1, 8, 64), (31,)) == (32, 1, 64)  # 62 inputs in 64
    assert chosen((1, 8, 64), (9,)) == (16, 1, 32)  # 24 in 32 (32 outputs: 40 in 64)
    assert chosen((1, 8, 64), (3,))[2] == 32 and chosen((1, 8, 64), (2,))[2] == 32  # at least the MMA's 16
    assert banded.window(spec_of((1, 8, 64), (5,), 2, 3), 16) == 64  # 15 * 2 + 4 * 3 + 1 = 43
    assert chosen((1, 8, 32, 32), (1, 31)) == (32, 1, 64)  # one row of taps: one row of outputs
    assert chosen((1, 8, 32, 32), (3, 3)) == (32, 4, 64)  # 6 x 10 inputs in 64 (16 outputs: 64 too)
    assert chosen((1, 8, 32, 32), (7, 7)) == (16, 2, 128)  # 8 x 14 in 128, not 4 x 4's 10 x 10 (as few rows)
    assert chosen((1, 8, 32, 32), (3, 7)) == (16, 2, 64)  # 4 x 14 in 64
    assert chosen((1, 8, 32, 32), (5, 5)) == (16, 4, 64)  # 8 x 8: no input padded
    assert chosen((1, 8, 4, 32, 32), (1, 3, 3))[1:] == (4, 64)
    written, cfg = (3, 8, 2, 100), geometry.Config(32, 8, 16, 1, 8, 1, split_k=5, fold=1)
    segs, per, programs = banded.tiling(written, spec_of((3, 8, 2, 108), (1, 9)), cfg)
    assert segs == 3 * 2 * 4 and per % 16 == 0 and (programs - 1) * per < segs <= programs * per
    assert banded.tiling(written, spec_of((3, 8, 4, 102), (3, 3)), cfg)[0] == 3 * 1 * 13  # rows of 4 x 8
    assert banded.segment_grid(written, cfg, banded.Reading(0, 0, 0, 4, 10)) == (1, 13, 1, 0, 0, 3)  # 16 = 13 + 3
    assert banded.segment_grid(written, cfg, banded.Reading(8, 0, 7, 4, 16)) == (1, 14, 1, 0, 0, 2)  # 7 early: 14 a row


@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", [
    (1, (3, 8, 300), (8, 1, 9), dict(padding=4, groups=8)),
    (2, (3, 8, 21, 30), (8, 1, 3, 3), dict(padding=1, groups=8)),
    (3, (2, 8, 3, 9, 19), (8, 1, 1, 3, 5), dict(padding=(0, 1, 2), groups=8)),
])
def test_steps_move_over_rows_planes_and_batches(ndim, x_shape, w_shape, kw):
    """One program over every segment, 16 a step: the steps move the segments' rows, planes and batches on by carries
    (``segment_grid``), forward and weight gradient, against torch."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(x_shape, generator=g).to(torch.float16)
    w = torch.randn(w_shape, generator=g).to(torch.float16)
    spec = _checks.conv_spec(f"conv{ndim}d", ndim, x, w, None, 1, kw["padding"], 1, kw["groups"])
    outputs = banded.segment(spec)
    cfg = geometry.Config(outputs, 8, 16, group_m=1, num_warps=8, num_stages=1, split_k=1, fold=1)
    assert banded.tiling(spec.output_shape, spec, cfg)[0] > 3 * 16  # several steps, past a batch
    y = dispatch.conv_forward(x, w, None, spec, config=cfg)
    assert rel_err(y, getattr(F, f"conv{ndim}d")(x.double(), w.double(), **kw)) < 2e-3
    dy = torch.randn(y.shape, generator=g).to(torch.float16)
    grad = dispatch.conv_grad_weight(dy, x, spec, False, cfg)
    ref = getattr(torch.nn.grad, f"conv{ndim}d_weight")(x.double(), w_shape, dy.double(), **kw)
    assert rel_err(grad, ref) < 2e-3


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
    """NC(D)HW rows whose strides and width are whole 16-byte runs read their windows in runs, where that leaves the band
    as wide; else 2 bytes at a time. One-row windows from a run boundary ``R`` columns before them (``R = -pad mod
    8``); windows of several rows each row from a run boundary, in whole runs, the segments' grid ``E = -pad mod 8``
    columns early (rows of 8 outputs or a multiple)."""
    def read(shape, taps, pad, stride=1, segment=32, dtype=torch.bfloat16, channels_last=False):
        x = torch.empty(shape, dtype=dtype)
        if channels_last:
            x = x.movedim(1, -1).contiguous().movedim(-1, 1)
        w = torch.empty(shape[1], 1, *taps, dtype=dtype)
        spec = _checks.conv_spec(f"conv{len(taps)}d", len(taps), x, w, None, stride, pad, 1, shape[1])
        return banded.reading(x, spec, geometry.Config(segment, 8, 32, fold=1), pad)
    assert read((2, 8, 96), (31,), 15) == (8, 1, 0, 1, 0)  # 62 inputs and 1 before: 64
    assert read((2, 8, 96), (31,), 13).run == 0  # 3 before: 65, a band of 128
    assert read((2, 8, 101), (31,), 15).run == 0  # rows of no whole run
    assert read((2, 8, 96), (31,), 15, channels_last=True).run == 0  # channels innermost: 16-byte loads already
    assert read((2, 8, 96), (9,), 4, segment=16) == (8, 4, 0, 1, 0)  # 24 + 4 in 32
    assert read((2, 8, 16, 96), (3, 3), 1, segment=16) == (8, 0, 7, 2, 16)  # 2 x 8 outputs: 4 rows of 10 in 16
    assert read((2, 8, 16, 96), (3, 3), 1) == (0, 0, 0, 4, 10)  # 4 x 8: 6 rows of 16 would pad to 128, not 64
    assert read((2, 8, 16, 96), (7, 7), 3, segment=16) == (8, 0, 5, 2, 16)  # 8 rows of 14 in 16
    assert read((2, 8, 16, 91), (7, 7), 3, segment=16).run == 0  # rows of no whole run
    assert read((2, 8, 16, 96), (7, 7), 3, segment=16, channels_last=True).run == 0
    assert read((2, 8, 16, 96), (7, 7), 3, stride=2, segment=16).run == 0  # (a strided width: 2 bytes at a time)
    assert read((2, 8, 16, 92), (7, 7), 3, segment=16) == (4, 0, 1, 2, 16)  # rows of 8-byte runs (ConvNeXt's 28)
    assert read((2, 8, 16, 14), (7, 7), 3, segment=16) == (2, 0, 1, 2, 14)  # 4-byte runs (its 14): 8 rows of 14
    assert read((2, 8, 100), (31,), 15) == (4, 1, 0, 1, 0)  # (one row: 62 and 1 before)


def test_explain_names_the_banded_kernels():
    """``tritonconv.explain`` says which passes of a layer run banded on a GPU, and how they read their rows."""
    x = torch.empty(16, 256, 4096, device="meta", dtype=torch.bfloat16)
    w = torch.empty(256, 1, 31, device="meta", dtype=torch.bfloat16)
    text = str(tritonconv.explain(x, w, None, 1, 15, 1, 256))
    assert text.count("depthwise (tensor cores, banded taps)") == 3 and text.count("NC(D)HW rows in runs") == 3
    assert "splits met in the kernel" in text
    fp32 = str(tritonconv.explain(x.float(), w.float(), None, 1, 15, 1, 256))
    assert "banded" not in fp32 and fp32.count("depthwise (FMA)") == 3
    x2 = torch.empty(32, 96, 56, 56, device="meta", dtype=torch.bfloat16)  # ConvNeXt's 7 x 7
    w2 = torch.empty(96, 1, 7, 7, device="meta", dtype=torch.bfloat16)
    text = str(tritonconv.explain(x2.to(memory_format=torch.channels_last), w2, None, 1, 3, 1, 96))
    assert text.count("7 x 7 taps banded, windows of 128 inputs for") == 3 and text.count("segments of 2 x 8") == 3
    nchw = str(tritonconv.explain(x2, w2, None, 1, 3, 1, 96))  # NCHW: rows read in runs
    assert nchw.count("depthwise (tensor cores, banded taps)") == 3 and nchw.count("NC(D)HW rows in runs") == 3
    w3 = torch.empty(96, 1, 3, 3, device="meta", dtype=torch.bfloat16)  # NCHW 3 x 3: banded too, rows in runs
    square = str(tritonconv.explain(x2, w3, None, 1, 1, 1, 96))
    assert square.count("3 x 3 taps banded") == 3 and square.count("NC(D)HW rows in runs") == 3
    odd = str(tritonconv.explain(x2[..., :55], w3, None, 1, 1, 1, 96))  # rows of 55: 2 bytes at a time, banded
    assert odd.count("3 x 3 taps banded") == 3 and "in runs" not in odd
