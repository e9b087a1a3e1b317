"""NC(D)HW row tiles read at their own columns in aligned runs, the width taps moving the sum instead, or each
tap's products where rows are held at their own width, or a forward's unpadded planes read as rows, or a strided
forward's rows dealt into phases, or a strided input gradient's phases' rows (``geometry.aligned_rows``,
``geometry.aligned_planes``; the pointer kernel's ``ROW_VEC``, ``SHIFT``, ``FLAT``, ``DEAL``): the choice, and the
forward and the input gradient against torch in float64, each case checked to take its path."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tritonconv import dispatch, geometry, shapes, tuning
from tritonconv._checks import conv_spec

TORCH = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def nchw(*shape, dtype=torch.bfloat16):
    return torch.empty(shape, dtype=dtype, device="meta")


@pytest.mark.parametrize("width,expected", [(56, (8, 64, False)), (28, (4, 32, False)), (14, (2, 16, False)),
                                            (7, (0, 0, False)), (64, (8, 64, True)), (32, (8, 32, True))])
def test_aligned_rows_of_a_3x3_layer(width, expected):
    """Rows of 56, 28, 14 in whole-row tiles of 64, 32, 16 (1.14x the positions), read in runs of what their width
    divides (16 bytes at most), the sum moving between taps; 7 divides no run of 2; 64 would need 65 columns for the
    moving sum (the largest shift is 1: 128, 2x), so its rows are held at their own width, each tap's products
    moved."""
    x = nchw(32, 64, width, width)
    rows = geometry.aligned_rows(x, width, 32 * width * width, 3, 1, 1, 1, False, 128, 4)
    assert (rows.vec, rows.block_w, rows.each) == expected and rows.segments == 1


def test_aligned_rows_declines_what_it_cannot_serve():
    x = nchw(2, 16, 28, 28)
    none = geometry.AlignedRows()
    assert geometry.aligned_rows(x, 10, 2 * 10 * 10, 3, 3, 1, 1, False, 128, 4) == none  # width stride 3
    ds = nchw(32, 1024, 14, 14)  # a forward's width stride 2 on runs of 4 bytes: 2-byte rows serve better
    assert geometry.aligned_rows(ds, 7, 32 * 7 * 7, 1, 2, 0, 1, False, 128, 4) == none
    # padding 3 > 2 (no tap at shift 0: the sum cannot move): rows of 30 at their own width, 32, each tap's products
    assert geometry.aligned_rows(x, 30, 2 * 28 * 30, 3, 1, 3, 1, False, 128, 4) == geometry.AlignedRows(4, 32, 32, 1, True)
    wide = nchw(2, 16, 28, 256)  # rows of 256 in 128-wide tiles, padded: segments need s_max >= 0
    assert geometry.aligned_rows(wide, 260, 2 * 28 * 260, 3, 1, 3, 1, False, 128, 4) == none
    assert geometry.aligned_rows(x, 28, 2 * 28 * 28, 3, 1, 1, 1, False, 128, 1) == none  # one step a tap: moves cost more
    cl = nchw(2, 16, 28, 28).contiguous(memory_format=torch.channels_last)
    assert geometry.aligned_rows(cl, 28, 2 * 28 * 28, 3, 1, 1, 1, False, 128, 4) == none  # channels innermost
    odd = torch.empty(2, 16, 28, 30, device="meta", dtype=torch.bfloat16)[..., :28]  # rows 30 apart: runs of 2
    assert geometry.aligned_rows(odd, 28, 2 * 28 * 28, 3, 1, 1, 1, False, 128, 4) == geometry.AlignedRows(2, 32, 32)


def test_long_rows_in_segments():
    """Rows longer than a tile: tiles of the block's width, ``step`` apart (a multiple of the run, the taps' reach
    short of the block), as many as the row's outputs need; only where they issue no more than the exact row tiles
    allow (rows of 28 in 16-wide tiles: 3 segments of 16 for 28 would be 1.7x)."""
    assert geometry.aligned_rows(nchw(16, 64, 4096), 4096, 16 * 4096, 3, 1, 1, 1, False, 128, 4) == \
        geometry.AlignedRows(8, 128, 120, 35)  # 35 * 120 + 1 >= 4096
    assert geometry.aligned_rows(nchw(16, 64, 4096), 4096, 16 * 4096, 3, 1, 2, 2, True, 128, 4) == \
        geometry.AlignedRows(8, 128, 120, 35)  # dilation 2: 4 columns of reach
    # dilation 8: 16 columns of reach, segments 112 apart, 37 of 128 for 4096 columns: 1.16x
    assert geometry.aligned_rows(nchw(16, 64, 4096), 4096, 16 * 4096, 3, 1, 8, 8, True, 128, 4) == geometry.AlignedRows()
    assert geometry.aligned_rows(nchw(2, 16, 28, 28), 28, 2 * 28 * 28, 3, 1, 1, 1, False, 16, 4) == geometry.AlignedRows()


def test_a_strided_input_gradient_reads_each_phase_rows_aligned():
    """By stride phase, position ``j`` of a phase reads dy's column ``j + (phase + p - t*d) / s``: unit steps along dy's
    rows, a phase's taps' shifts ``d / gcd(s, d)`` apart, so the sum moves between them where no phase's largest shift
    is negative (ResNet-50's 3x3 stride-2 layer: dy's rows of 28 in tiles of 32, shifts 0 and 1; rows of 12 in 16);
    else each tap's products moved (3 taps, stride 2, dilation 3, no padding: the odd phase's one tap shifts -1), as where
    the moving sum's slack would pad the rows (16 in 32)."""
    dy = nchw(32, 128, 28, 28)
    for accumulator in (32, 64):
        rows = geometry.aligned_rows(dy, 28, 32 * 28 * 28, 3, 2, 1, 1, True, 128, 4, accumulator)
        assert rows == geometry.AlignedRows(4, 32, 32)
    assert geometry.aligned_rows(nchw(2, 16, 12), 12, 2 * 12, 3, 2, 0, 1, True, 32, 4, 4) == geometry.AlignedRows(4, 16, 16)
    negative = geometry.aligned_rows(nchw(2, 16, 12), 12, 2 * 12, 3, 2, 0, 3, True, 32, 4, 4)
    assert negative == geometry.AlignedRows(4, 16, 16, 1, True)
    slack = geometry.aligned_rows(nchw(2, 16, 16), 16, 2 * 16, 4, 3, 2, 2, True, 32, 4, 4)
    assert slack == geometry.AlignedRows(8, 16, 16, 1, True)
    long = nchw(8, 64, 1000)  # rows longer than a tile: no segments by phase
    assert geometry.aligned_rows(long, 1000, 8 * 1000, 7, 4, 3, 1, True, 128, 4) == geometry.AlignedRows()


def test_a_strided_forward_deals_its_rows_into_phases():
    """A forward strided 2 (4) along the width reads each row twice (four times) the tile's width from its first column,
    aligned, and deals the columns into phases: tap ``t`` reads phase ``(t*d - p) mod s``, its products ``floor((t*d -
    p) / s)`` columns off, so the sum moves by the floors' steps (3x3, stride 2, padding 1: -1, 0, 0; ResNet-50's rows
    of 56 into tiles of 32 output columns, 64 input ones); padding past the reach: each tap's products moved."""
    x = nchw(32, 128, 56, 56)
    assert geometry.aligned_rows(x, 28, 32 * 28 * 28, 3, 2, 1, 1, False, 128, 4, 64) == \
        geometry.AlignedRows(8, 32, 32, 1, False, 2)
    assert geometry.aligned_rows(nchw(16, 64, 64), 16, 16 * 16, 7, 4, 3, 1, False, 128, 4) == \
        geometry.AlignedRows(8, 16, 16, 1, False, 4)
    assert geometry.aligned_rows(x, 30, 32 * 28 * 30, 3, 2, 3, 1, False, 128, 4, 32) == \
        geometry.AlignedRows(8, 32, 32, 1, True, 2)  # padding 3: shifts -2, -1, -1 (no tap at 0 or past)
    assert geometry.aligned_rows(x, 28, 32 * 28 * 28, 3, 2, 1, 1, False, 128, 1, 64) == geometry.AlignedRows()  # 1 step


def test_a_strided_forwards_long_rows_are_dealt_in_segments(monkeypatch):
    """A row too long for a tile: segments of the block's dealt columns, ``step`` apart (a multiple of the run, the
    shifts' spread short of the block), a segment storing ``step`` outputs from ``-sigma_min`` on (the first from 0):
    Whisper's second layer (stride 2, padding 1, shifts -1 and 0: 3000 columns, 1500 outputs in 13 segments of 120).
    Not where the segments would issue past :data:`~tritonconv.geometry.ALIGNED_ROWS_PAD` the exact tiles' positions,
    nor at stride 4 (:data:`~tritonconv.geometry.DEALT_SEGMENT_STRIDES`: the suite's ``downsample_k7_s4``): 2-byte
    rows; under the tests' ``DEALT_SEGMENT_STRIDES`` stride 4 too (its 69 segments for 8192 outputs)."""
    assert geometry.aligned_rows(nchw(8, 384, 3000), 1500, 8 * 1500, 3, 2, 1, 1, False, 128, 12) == \
        geometry.AlignedRows(8, 128, 120, 13, False, 2)
    assert geometry.aligned_rows(nchw(2, 16, 256), 63, 2 * 63, 5, 4, 0, 1, False, 32, 4) == geometry.AlignedRows()
    downsample = nchw(16, 64, 32768), 8192, 16 * 8192, 7, 4, 3, 1, False, 128, 4
    assert geometry.aligned_rows(*downsample) == geometry.AlignedRows()
    monkeypatch.setattr(geometry, "DEALT_SEGMENT_STRIDES", (2, 4))
    assert geometry.aligned_rows(*downsample) == geometry.AlignedRows(8, 128, 120, 69, False, 4)


def test_aligned_rows_without_a_moving_tap_keep_the_exact_rows():
    x = nchw(4, 16, 7, 56)
    exact = geometry.row_block(4 * 7 * 56, 56, 128)
    assert geometry.aligned_rows(x, 56, 4 * 7 * 56, 1, 1, 0, 1, False, 128, 4) == geometry.AlignedRows(
        min(8, exact), exact, exact, -(-56 // exact))  # a row in as many tiles as it takes
    # the transposed pass's largest shift is its padding: the first tap's
    assert geometry.aligned_rows(x, 56, 4 * 7 * 56, 3, 1, 1, 1, True, 128, 4) == geometry.AlignedRows(8, 64, 64)


CASES = [  # (input shape, weight shape, stride, padding, dilation, groups, config, segments per row, SHIFT): every pass at
    # least two steps per width tap (geometry.ALIGNED_MIN_STEPS), the input gradient's phases included
    ((2, 16, 5, 14), (8, 16, 3, 3), 1, 1, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, 1),
    ((2, 16, 6, 12), (16, 16, 3, 5), (2, 1), (1, 2), 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, 1),
    ((1, 16, 5, 12), (6, 8, 3, 3), 1, 2, 2, 2, tuning.Config(16, 16, 8, num_warps=4, num_stages=1), 1, 1),
    ((1, 16, 4, 5, 6), (8, 16, 3, 3, 3), 1, 1, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, 1),
    ((2, 16, 30), (16, 16, 5), 1, 2, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, 1),
    ((2, 16, 5, 10), (8, 16, 4, 4), 1, "same", 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, 1),
    ((1, 32, 3, 14), (8, 32, 3, 3), 1, 1, 1, 1, tuning.Config(16, 16, 8, num_warps=4, num_stages=1, split_k=3), 1, 1),
    ((2, 16, 100), (16, 16, 3), 1, 1, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 4, 1),  # long rows
    ((1, 16, 96), (16, 16, 3), 1, 4, 4, 1, tuning.Config(64, 16, 8, num_warps=4, num_stages=1), 2, 1),
    ((1, 16, 2, 130), (8, 16, 3, 3), 1, 1, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 5, 1),
    # rows held at their own width, each tap's products moved (SHIFT 2): 'same' padding of power-of-two rows, dilated,
    # padding past the taps' reach (1-D: no tap at shift 0; its input gradient's sum moves), 3-D, 1-D with a split
    ((2, 16, 5, 16), (8, 16, 3, 3), 1, 1, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, 2),
    ((1, 16, 6, 16), (16, 16, 3, 3), 1, 2, 2, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, 2),
    ((2, 16, 26), (16, 16, 3), 1, 3, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, (2, 1)),
    ((1, 16, 3, 4, 8), (8, 16, 3, 3, 3), 1, 1, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, 2),
    ((2, 32, 32), (32, 32, 5), 1, 2, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1, split_k=2), 1, 2),
    # strided widths: the forward's rows read twice (four times) as wide, dealt into phases (DEAL), the sum moving by
    # the taps' uneven shifts or their products moved; stride 3 keeps 2-byte rows (None). The input gradient by stride
    # phase reads each phase's rows of dy aligned, the sum moving by d / gcd(s, d) between a phase's taps, or its taps'
    # products moved (a negative shift; slack that would pad the rows), or none moved (1x1: phases no tap reaches); not
    # where a phase has no tap to step through (dilation 2, stride 2: half the phases)
    ((2, 16, 6, 16), (16, 16, 3, 3), 2, 1, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, (1, 2)),
    ((2, 16, 40), (16, 16, 7), 4, 3, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, (1, 1)),
    ((1, 16, 48), (16, 16, 4), 3, 2, 2, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, (None, 2)),
    ((1, 16, 3, 4, 12), (8, 16, 3, 3, 3), (1, 2, 2), 1, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1,
     (1, 1)),
    ((2, 16, 5, 16), (16, 16, 1, 1), 2, 0, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, (0, 0)),
    ((2, 16, 5, 18), (16, 16, 3, 5), (1, 2), (1, 3), 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, (1, 1)),
    ((2, 16, 5, 18), (16, 16, 3, 3), 2, 1, 2, 1, tuning.Config(64, 16, 8, num_warps=4, num_stages=1), 1, (1, None)),
    ((2, 16, 42), (16, 16, 5), 4, 5, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, (2, 1)),
    ((2, 16, 40), (16, 16, 3), 2, 2, 2, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, (1, 1)),
    ((2, 16, 30), (16, 16, 3), 2, 0, 3, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 1, (1, 2)),
    # a strided forward's long rows dealt in segments (the input gradient's phases: no segments, 2-byte rows): 1-D
    # strided 2 and 4 (shifts -1 and 0; stride 4's as the test allows it), dilated (shifts -1 to 1), without padding
    # (0 and 1), 2-D
    ((2, 16, 200), (16, 16, 3), 2, 1, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 4, (1, None)),
    ((2, 16, 400), (16, 16, 7), 4, 3, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 4, (1, None)),
    ((1, 16, 300), (16, 16, 3), 2, 2, 2, 1, tuning.Config(64, 16, 8, num_warps=4, num_stages=1), 3, (1, None)),
    ((1, 16, 452), (16, 16, 5), 4, 0, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 4, (1, None)),
    ((1, 16, 2, 260), (8, 16, 3, 3), 2, 1, 1, 1, tuning.Config(32, 16, 8, num_warps=4, num_stages=1), 5, (1, None)),
]


def kernel_args(run):
    """The pointer kernel's arguments by name, constexprs included, of the launches ``run`` makes (nothing runs)."""
    from benchmarks import static

    with static.recording(execute=False) as launches:
        run()
    return [{**dict(zip(fn.arg_names, args)), **kw} for fn, args, kw, _ in launches if fn.fn.__name__ == "_conv_kernel"]


@pytest.mark.parametrize("int64", [False, True])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_forward_and_input_gradient_on_aligned_rows(case, int64, monkeypatch):
    """Whole-row tiles across images and planes, a width tap moving by the dilation, a strided height (the input
    gradient by stride phase), 1-D and 3-D rows, 'same' padding of an even kernel, a split reduction, long rows in
    segments (1-D, dilated, 2-D); also with int64 offsets. Bias, activation and a true (flipped) convolution ride on
    the forward."""
    if int64:
        monkeypatch.setattr(geometry, "INT32_MAX", 16)
    monkeypatch.setattr(geometry, "DEALT_SEGMENT_STRIDES", (2, 4))  # the kernel's stride-4 segments too
    x_shape, w_shape, stride, padding, dilation, groups, cfg, segments, shift = CASES[case]
    ndim = len(w_shape) - 2
    x = torch.randn(x_shape)
    w = torch.randn(w_shape)
    b = torch.randn(w_shape[0])
    spec = conv_spec(f"conv{ndim}d", ndim, x, w, b, stride, padding, dilation, groups)
    dy = torch.randn(spec.output_shape)

    def forward():
        return dispatch.conv_forward(x, w, b, spec, "relu", True, cfg)

    def input_gradient():
        return dispatch.conv_grad_input(dy, w, spec, False, torch.contiguous_format, cfg)

    for run, moves in zip((forward, input_gradient), shift if isinstance(shift, tuple) else (shift, shift)):
        (kwargs,) = kernel_args(run)
        if moves is None:
            assert not kwargs["ROW_VEC"], run.__name__
            continue
        assert kwargs["ROW_VEC"] >= 2 and kwargs["SHIFT"] == moves and kwargs["INT64"] == int64, run.__name__
        dealt = run is forward and spec.stride[-1] > 1
        assert kwargs["DEAL"] == (spec.stride[-1] if dealt else 1), run.__name__
        assert kwargs["VW"] == segments * kwargs["BLOCK_W"], run.__name__
    pads = spec.padding
    xd, wd = x.double().requires_grad_(), w.double()
    padded = F.pad(xd, [p for pair in reversed(pads) for p in pair])
    ref = TORCH[ndim](padded, wd.flip(list(range(2, 2 + ndim))), b.double(), stride, 0, dilation, groups)
    assert_close(forward(), ref.relu())
    (ref_dx,) = torch.autograd.grad(TORCH[ndim](padded, wd, None, stride, 0, dilation, groups), xd, dy.double())
    assert_close(input_gradient(), ref_dx)


def test_bf16_forward_on_aligned_rows():
    """16-bit operands: runs of 8 (16 bytes), the interpreter multiplying in fp32; the sum ends at shift 0 (the tap
    of shift -1 first, then 1, then 0: ``NEG`` 1), so that the output is stored 8 positions (16 bytes) at a time
    (``Y_ALIGN``), the input gradient's too."""
    x = torch.randn(1, 16, 2, 56).bfloat16()
    w = torch.randn(16, 16, 3, 3).bfloat16()
    spec = conv_spec("conv2d", 2, x, w, None, 1, 1, 1, 1)
    dy = torch.randn(spec.output_shape).bfloat16()
    cfg = tuning.Config(64, 16, 16, num_warps=4, num_stages=1)
    for run in (lambda: dispatch.conv_forward(x, w, None, spec, None, False, cfg),
                lambda: dispatch.conv_grad_input(dy, w, spec, False, torch.contiguous_format, cfg)):
        (kwargs,) = kernel_args(run)
        assert kwargs["ROW_VEC"] == 8 and kwargs["BLOCK_W"] == 64
        assert kwargs["SHIFT"] == 1 and kwargs["NEG"] == 1 and kwargs["Y_ALIGN"] == 8
    assert_close(dispatch.conv_forward(x, w, None, spec, None, False, cfg), F.conv2d(x.double(), w.double(), padding=1),
                 torch.bfloat16)
    xd = x.double().requires_grad_()
    (ref,) = torch.autograd.grad(F.conv2d(xd, w.double(), padding=1), xd, dy.double())
    assert_close(dispatch.conv_grad_input(dy, w, spec, False, torch.contiguous_format, cfg), ref, torch.bfloat16)


def test_the_moving_sum_ends_at_the_least_shift():
    """``geometry.row_shifts``, ``shift_order``, ``moved_first``: a row tile moving its sum runs the taps of negative
    shift first, increasing, then the others decreasing, ending at the least shift >= 0, where the kernel unrolls the
    taps (at most ``UNROLLED_TAPS``, at most one of them negative; a dealt row's, any); else every tap in increasing
    shift (the sum ends at the largest: where at most one is not negative, the same order)."""
    assert geometry.row_shifts(3, 1, 1, 1, False) == [-1, 0, 1]
    assert geometry.row_shifts(3, 1, 1, 1, True) == [-1, 0, 1]  # (p - t*d, increasing)
    assert geometry.row_shifts(3, 1, 0, 2, True) == [-4, -2, 0]
    assert geometry.row_shifts(3, 2, 1, 1, True) == []  # by stride phase
    assert geometry.row_shifts(3, 2, 1, 1, False, 2) == [-1, 0, 0]  # dealt
    assert geometry.shift_order([-1, 0, 1]) == [0, 2, 1]
    assert geometry.shift_order([-2, -1, 0, 1, 2]) == [0, 1, 4, 3, 2]
    assert geometry.shift_order([0, 1, 2]) == [2, 1, 0]
    assert geometry.moved_first([-1, 0, 1]) == 1 and geometry.moved_first([0, 1, 2]) == 0
    assert geometry.moved_first([-2, -1, 0]) == 3 and geometry.moved_first([-1, 0]) == 2  # (the same order)
    assert geometry.moved_first([-2, -1, 0, 1, 2]) == 5 and geometry.moved_first([-2, -1, 0, 1, 2], True) == 2
    assert geometry.moved_first([-3, -2, -1]) == 3 and geometry.moved_first([-1, 0, 0], True) == 1
    assert geometry.moved_first(list(range(geometry.UNROLLED_TAPS))) == 0
    assert geometry.moved_first(list(range(geometry.UNROLLED_TAPS + 1))) == geometry.UNROLLED_TAPS + 1


def test_stored_runs():
    """``geometry.stored_runs``: the output's width, every stride of an axis longer than 1 and the shift the sum ends
    at multiples of the run, 16 bytes at most (and ``most``); a row in segments' outputs from the least shift's
    negation rounded up within the slack; 1 where the width's stride is not 1, or every shift is above 0, or no shift
    is computed and Triton knows the multiples of 16."""
    assert geometry.stored_runs(nchw(2, 64, 56, 56)) == 8
    assert geometry.stored_runs(nchw(2, 64, 28, 28)) == 4 and geometry.stored_runs(nchw(2, 64, 14, 14)) == 2
    assert geometry.stored_runs(nchw(2, 64, 56, 56, dtype=torch.float32)) == 4
    assert geometry.stored_runs(nchw(2, 64, 56, 56), shift=1) == 1 and geometry.stored_runs(nchw(2, 64, 56, 56), 4) == 4
    assert geometry.stored_runs(nchw(2, 64, 56, 56), most=2) == 2
    assert geometry.stored_runs(nchw(2, 64, 64, 64)) == 1  # (no shift computed, every stride a multiple of 16:
    assert geometry.stored_runs(nchw(2, 64, 64, 64), shift=0) == 8  # Triton's own word)
    assert geometry.stored_runs(nchw(1, 64, 1000), lead=1, slack=6) == 4  # (rounded up 3 columns; 8 would take 7)
    assert geometry.stored_runs(nchw(1, 64, 1000), lead=1, slack=7) == 8
    assert geometry.stored_runs(nchw(1, 64, 1000), lead=-2) == 1
    assert geometry.stored_runs(nchw(2, 3, 24, dtype=torch.float16)) == 8  # (1-D: no row pitch)
    assert geometry.stored_runs(nchw(2, 64, 56, 56).to(memory_format=torch.channels_last)) == 1
    sliced = torch.empty(2, 66, 56, 56, dtype=torch.bfloat16, device="meta")[:, 1:65]  # (channels 56 * 56 apart)
    assert geometry.stored_runs(sliced) == 8
    odd = torch.empty(2, 64, 56, 60, dtype=torch.bfloat16, device="meta")[..., :56]  # rows 60 apart
    assert geometry.stored_runs(odd) == 4
    assert geometry.stored_runs(torch.empty(1, 64, 56, 56, dtype=torch.bfloat16, device="meta")[:, :, :, :].as_strided(
        (1, 64, 56, 56), (64 * 3137, 3137, 56, 1))) == 1  # (a channel stride of no run: 3137)


@pytest.mark.parametrize("x_shape,w_shape,padding,dilation,neg,y_align,segments", [
    ((1, 64, 300), (16, 64, 3), 1, 1, 1, 2, 5),  # a long row in segments 60 apart (runs of 4, slack 2): from column 2
    ((1, 16, 2, 40), (16, 16, 5, 5), 2, 1, 5, 2, 1),  # 'same' 5 x 5: every tap in increasing shift, ending at 2
    ((1, 16, 2, 40), (16, 16, 3, 5), (1, 8), (1, 2), 5, 8, 1),  # shifts -8, -6, -4, -2, 0: increasing, ending at 0
])
def test_bf16_rows_moving_their_sum_store_in_runs(x_shape, w_shape, padding, dilation, neg, y_align, segments):
    """16-bit rows: the order the sum moves in (``NEG``) and the runs the epilogue stores (``Y_ALIGN``), forward and
    input gradient against torch: a long 1-D row in segments, whose outputs a segment stores start at a multiple of
    the run (a column on, within its slack), 'same' 5 x 5, taps of negative shift and 0 only."""
    nd = len(w_shape) - 2
    x, w = torch.randn(x_shape).bfloat16(), torch.randn(w_shape).bfloat16()
    spec = conv_spec(f"conv{nd}d", nd, x, w, None, 1, padding, dilation, 1)
    dy = torch.randn(spec.output_shape).bfloat16()
    cfg = tuning.Config(64, 16, 16, num_warps=4, num_stages=1)
    (kwargs,) = kernel_args(lambda: dispatch.conv_forward(x, w, None, spec, None, False, cfg))
    assert kwargs["SHIFT"] == 1 and kwargs["NEG"] == neg and kwargs["Y_ALIGN"] == y_align
    assert kwargs["VW"] == segments * kwargs["BLOCK_W"]
    xd = x.double().requires_grad_()
    ref = TORCH[nd](xd, w.double(), None, 1, padding, dilation)
    assert_close(dispatch.conv_forward(x, w, None, spec, None, False, cfg), ref, torch.bfloat16)
    (ref_dx,) = torch.autograd.grad(ref, xd, dy.double())
    assert_close(dispatch.conv_grad_input(dy, w, spec, False, torch.contiguous_format, cfg), ref_dx, torch.bfloat16)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,segments", [((1, 16, 2, 112), (16, 16, 3, 3), 2, 1, 1),
                                                                     ((1, 16, 256), (16, 16, 7), 4, 3, 1),
                                                                     ((1, 16, 896), (16, 16, 7), 4, 3, 4)])
def test_bf16_forward_dealt_into_phases(x_shape, w_shape, stride, padding, segments, monkeypatch):
    """16-bit rows read 16 bytes at a time, twice (four times) the tile's width, dealt into phases; a long row in
    segments 56 dealt columns apart (224 outputs; stride 4's segments as the tests allow them)."""
    nd = len(w_shape) - 2
    x, w = torch.randn(x_shape).bfloat16(), torch.randn(w_shape).bfloat16()
    spec = conv_spec(f"conv{nd}d", nd, x, w, None, stride, padding, 1, 1)
    cfg = tuning.Config(64, 16, 8, num_warps=4, num_stages=1)  # two steps a tap
    monkeypatch.setattr(geometry, "DEALT_SEGMENT_STRIDES", (2, 4))
    (kwargs,) = kernel_args(lambda: dispatch.conv_forward(x, w, None, spec, None, False, cfg))
    assert kwargs["ROW_VEC"] == 8 and kwargs["BLOCK_W"] == 64 and kwargs["DEAL"] == stride
    assert kwargs["VW"] == segments * 64 and kwargs["STEP_RUNS"] * 8 == (56 if segments > 1 else 64)
    assert_close(dispatch.conv_forward(x, w, None, spec, None, False, cfg),
                 TORCH[nd](x.double(), w.double(), None, stride, padding), torch.bfloat16)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_a_kernel_one_wide_reads_long_rows_aligned_in_their_exact_tiles(memory_format):
    """No tap moves (1x1): the exact row tiles, several to a row (here rows of 120 merged from 3 x 40 in tiles of
    32), read aligned from NCHW activations; the output written NCHW or channels-last (the weight's layout)."""
    x = torch.randn(2, 16, 3, 40)
    w = torch.randn(16, 16, 1, 1).contiguous(memory_format=memory_format)
    spec = conv_spec("conv2d", 2, x, w, None, 1, 0, 1, 1)
    dy = torch.randn(spec.output_shape)
    cfg = tuning.Config(32, 16, 8, num_warps=4, num_stages=1)

    def forward():
        return dispatch.conv_forward(x, w, None, spec, None, False, cfg)

    def input_gradient():
        return dispatch.conv_grad_input(dy, w, spec, False, memory_format, cfg)

    for run in (forward, input_gradient):
        for kwargs in kernel_args(run):
            assert kwargs["ROW_VEC"] >= 2 and not kwargs["SHIFT"] and kwargs["VW"] > kwargs["BLOCK_W"], run.__name__
    assert_close(forward(), F.conv2d(x.double(), w.double()))
    assert_close(input_gradient(), torch.nn.grad.conv2d_input(x.shape, w.double(), dy.double()))


PLANES = [  # (input shape, weight shape, dilation, config): forwards with no padding whose rows segments would pad
    ((2, 16, 9, 40), (8, 16, 3, 5), 1, tuning.Config(64, 16, 8, num_warps=4, num_stages=1)),
    ((1, 16, 3, 5, 72), (8, 16, 2, 3, 5), 1, tuning.Config(64, 16, 8, num_warps=4, num_stages=1)),
    ((2, 16, 9, 40), (8, 16, 3, 3), 2, tuning.Config(32, 16, 8, num_warps=4, num_stages=1)),
    ((2, 16, 7, 72), (8, 16, 2, 3), (3, 2), tuning.Config(64, 16, 8, num_warps=4, num_stages=1, split_k=2)),
]


@pytest.mark.parametrize("int64", [False, True])
@pytest.mark.parametrize("case", range(len(PLANES)))
def test_forward_reads_planes_as_rows(case, int64, monkeypatch):
    """No padding, unit strides, rows longer than their segments serve well: each plane read as one row at the input's
    pitch (``geometry.aligned_planes``), the columns past the output width computed and not stored (poisoned output:
    none written there); 2-D and 3-D, dilated, a split reduction, int64 offsets."""
    if int64:
        monkeypatch.setattr(geometry, "INT32_MAX", 16)
    x_shape, w_shape, dilation, cfg = PLANES[case]
    ndim = len(w_shape) - 2
    x, w, b = torch.randn(x_shape), torch.randn(w_shape), torch.randn(w_shape[0])
    spec = conv_spec(f"conv{ndim}d", ndim, x, w, b, 1, 0, dilation, 1)

    def forward():
        return dispatch.conv_forward(x, w, b, spec, "relu", False, cfg)

    (kwargs,) = kernel_args(forward)
    assert kwargs["FLAT"] and kwargs["PITCH"] == x_shape[-1] and kwargs["ROW_VEC"] == 4 and kwargs["INT64"] == int64
    assert_close(forward(), TORCH[ndim](x.double(), w.double(), b.double(), 1, 0, dilation).relu())


def test_planes_only_where_rows_join_without_padding():
    x = torch.randn(2, 16, 9, 40)

    def planes(x, w, stride=1, padding=0):
        spec = conv_spec("conv2d", 2, x, w, None, stride, padding, 1, 1)
        return geometry.aligned_planes(x, spec.output_shape, spec, 64, 4) is not None

    w = torch.randn(8, 16, 3, 5)
    assert planes(x, w)
    assert not planes(x, w, padding=(0, 1)) and not planes(x, w, padding=(1, 0))  # padding: a row's taps leave it
    assert not planes(x, w, stride=(2, 1)) and not planes(x, w, stride=(1, 2))
    assert not planes(torch.randn(2, 16, 9, 48)[..., :40], w)  # rows 48 apart: not one row at the pitch 40
    assert not planes(x.contiguous(memory_format=torch.channels_last), w)
    assert not planes(x, torch.randn(8, 16, 3, 1))  # no width tap to move


def test_planes_store_no_column_past_the_output_width():
    """The columns a plane's row computes past the output width alias the next row's first ones in a dense output (where
    a GPU's programs race): written into rows with room after them, those stay poisoned."""
    from tritonconv.kernels import gemm

    x_shape, w_shape, dilation, cfg = PLANES[0]
    x, w = torch.randn(x_shape), torch.randn(w_shape)
    spec = conv_spec("conv2d", 2, x, w, None, 1, 0, dilation, 1)
    n, c, oh, ow = spec.output_shape
    room = torch.full((n, c, oh, ow + 8), float("nan"))
    y = room[..., :ow]
    launch = gemm.Launch(x, w, None, y, spec, False, None, False, cfg)
    assert launch.planes
    launch(x, w, None, y)
    assert room[..., ow:].isnan().all()
    assert_close(y, F.conv2d(x.double(), w.double()))


@st.composite
def nchw_layers(draw):
    """NC(D)HW layers in the aligned paths' reach: 16 channels (two or more steps a width tap in chunks of 8), even
    widths, unit width stride, a strided height at times, padding from none to past the reach; half of them long rows
    with no padding (planes as rows). Drawn 24 times (derandomized): 7 forwards on planes, 8 on rows or segments, 8
    input gradients on rows or segments, the rest on 2-byte rows."""
    planes = draw(st.booleans())  # long rows, no padding, unit strides: mostly planes as rows
    ndim = draw(st.integers(2, 3) if planes else st.integers(1, 3))
    width = 2 * draw(st.integers(20, 32) if planes else st.integers(4, 40 if ndim == 1 else 24))
    height = draw(st.integers(6, 8) if planes else st.integers(2, 6))
    sizes = [draw(st.integers(2, 3)) for _ in range(ndim - 2)] + [height] * (ndim > 1) + [width]
    kernel = [draw(st.integers(1, 3)) for _ in range(ndim - 1)] + [draw(st.integers(2, 5))]
    dilation = [1] * (ndim - 1) + [draw(st.integers(1, 2))]
    stride = [1 if planes else draw(st.sampled_from([1, 1, 2])) for _ in range(ndim - 1)] + [1]
    padding = "valid" if planes else draw(st.sampled_from(["valid", "low", "same", "past"]))
    pads = {"valid": 0, "same": [(k - 1) * d // 2 for k, d in zip(kernel, dilation)],
            "low": [draw(st.integers(0, 1)) for _ in range(ndim)], "past": [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]}
    kw = dict(stride=stride, padding=pads[padding], dilation=dilation)
    x_shape, w_shape = (1, 16, *sizes), (16, 16, *kernel)
    assume(all(o > 0 for o in shapes.conv_output_shape(x_shape, w_shape, **kw)[2:]))
    return ndim, x_shape, w_shape, kw, draw(st.sampled_from([32, 64] if planes else [16, 32, 64]))


@settings(max_examples=24, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(nchw_layers())
def test_random_nchw_layers_on_the_aligned_paths(layer):
    """Forward, input gradient and weight gradient against torch in float64 on random layers around the aligned paths
    (whole rows, segments, products moved, planes as rows, rows in runs, or 2-byte rows where none serves)."""
    ndim, x_shape, w_shape, kw, block = layer
    x, w, b = torch.randn(x_shape), torch.randn(w_shape), torch.randn(w_shape[0])
    spec = conv_spec(f"conv{ndim}d", ndim, x, w, b, kw["stride"], kw["padding"], kw["dilation"], 1)
    dy = torch.randn(spec.output_shape)
    cfg = tuning.Config(block, 16, 8, num_warps=4, num_stages=1)
    assert_close(dispatch.conv_forward(x, w, b, spec, None, False, cfg),
                 TORCH[ndim](x.double(), w.double(), b.double(), **kw))
    xd = x.double().requires_grad_()
    (ref,) = torch.autograd.grad(TORCH[ndim](xd, w.double(), None, **kw), xd, dy.double())
    assert_close(dispatch.conv_grad_input(dy, w, spec, False, torch.contiguous_format, cfg), ref)
    ref_w = getattr(torch.nn.grad, f"conv{ndim}d_weight")(x.double(), w_shape, dy.double(), **kw)
    assert_close(dispatch.conv_grad_weight(dy, x, spec, False, tuning.Config(16, 16, 64, num_warps=4, num_stages=1)),
                 ref_w)


def wgrad_runs(x_shape, w_shape, stride=1, padding=1, dilation=1, block_w=8, fold=0, dtype=torch.bfloat16, fmt=None,
               per_thread=16):
    x = torch.empty(x_shape, dtype=dtype, device="meta")
    if fmt is not None:
        x = x.contiguous(memory_format=fmt)
    ndim = len(w_shape) - 2
    spec = conv_spec(f"conv{ndim}d", ndim, x, torch.empty(w_shape, dtype=dtype, device="meta"), None, stride, padding,
                     dilation, 1)
    dy = torch.empty(spec.output_shape, dtype=dtype, device="meta")
    if fmt is not None:
        dy = dy.contiguous(memory_format=fmt)
    return geometry.wgrad_runs(dy, x, spec, block_w, fold, per_thread), spec


@pytest.mark.parametrize("width,runs", [(56, (8, 8, 0b100000110)), (28, (4, 4, 0b10110)), (14, (2, 2, 0b110)),
                                        (7, (1, 1, 1))])
def test_weight_gradient_reads_rows_in_runs(width, runs):
    """The weight gradient reads dY at its own columns, in runs of what the rows' width divides (16 bytes at most), and
    x in runs too: a 3x3 layer's middle tap the runs at its columns, the outer taps each run and the next read 1 and
    ``vec - 1`` columns on (loops 1, 2 and ``vec``; runs of 2: 1 column on both); rows of 7 an element at a time (loop
    0)."""
    got, spec = wgrad_runs((32, 64, width, width), (64, 64, 3, 3))
    assert got == runs
    kinds = [geometry.run_kind(t, runs[1]) for t in geometry.tap_shifts(3, 1, 1, 1, False)]
    assert kinds == ([runs[1], 1, 2] if runs[1] > 1 else [0] * 3)


def test_weight_gradient_runs_where_each_bound_falls_on_a_run():
    """x in runs only at unit width stride, unfolded taps, the output's width a multiple of the run (a run's positions
    all in the rows or all past them); runs of 16 bytes at any offset where the runs with every tap at most a column
    off a boundary are under 8 bytes and the tile holds two runs per thread (:func:`tritonconv.geometry.run_length`);
    dY wherever its own rows allow."""
    assert wgrad_runs((2, 16, 8, 56), (16, 16, 3, 3), stride=2)[0] == (4, 8, 0b100000110)  # strided: dealt
    assert wgrad_runs((2, 16, 8, 56), (16, 16, 3, 3), stride=2, per_thread=4)[0] == (4, 1, 1)  # under 2 runs a thread
    assert wgrad_runs((2, 16, 8, 64), (16, 16, 1, 7), stride=4, padding=(0, 3))[0] == (8, 1, 1)  # 3 columns off: not
    assert wgrad_runs((2, 16, 8, 56), (16, 16, 3, 3), fold=1)[0] == (8, 1, 1)  # folded taps: each column its own shift
    assert wgrad_runs((2, 16, 8, 16), (16, 16, 3, 3), padding=0)[0] == (2, 2, 0b110)  # output 14 wide: runs of 2
    assert wgrad_runs((2, 16, 8, 64), (16, 16, 3, 3), padding=2, dilation=2)[0] == (8, 8, 0b10001010)  # -2, 0, 2
    assert wgrad_runs((2, 16, 8, 64), (16, 16, 3, 3), padding=7, dilation=3)[0] == (8, 4, 0b10110)  # -7, -4, -1: 8 B
    assert wgrad_runs((2, 16, 8, 62), (16, 16, 3, 3), padding=9, dilation=4)[0] == (8, 2, 0b100)  # rows of 62: by 2
    got, _ = wgrad_runs((2, 16, 8, 64), (16, 16, 1, 5), padding=(0, 2))  # -2 .. 2: 6, 7, 0, 1, 2 columns on
    assert got == (8, 8, 0b110001110) and [geometry.run_kind(t, 8) for t in range(-2, 3)] == [7, 8, 1, 2, 3]
    assert wgrad_runs((2, 16, 8, 64), (16, 16, 1, 5), padding=(0, 2), per_thread=8)[0] == (8, 2, 0b110)  # small tile
    assert wgrad_runs((2, 16, 8, 56), (16, 16, 3, 3), fmt=torch.channels_last)[0] == (1, 1, 1)
    assert wgrad_runs((2, 16, 8, 56), (16, 16, 3, 3), block_w=0)[0] == (1, 1, 1)  # flat tiles
    assert wgrad_runs((2, 16, 8, 56), (16, 16, 3, 3), dtype=torch.float32)[0] == (4, 4, 0b10110)  # 16 bytes of fp32


WGRAD_CASES = [  # x shape, weight shape, stride, padding, dilation, config, (DY_VEC, X_VEC, X_KINDS)
    ((2, 16, 5, 16), (8, 16, 3, 3), 1, 1, 1, tuning.Config(16, 16, 16, num_warps=4, num_stages=1), (4, 4, 0b10110)),
    ((1, 16, 4, 16), (8, 16, 3, 3), 1, 0, 1, tuning.Config(16, 16, 32, num_warps=4, num_stages=1), (2, 2, 0b110)),
    ((2, 16, 3, 24), (8, 16, 3, 3), 1, 2, 2, tuning.Config(16, 16, 16, num_warps=4, num_stages=1, split_k=3), (4, 2, 0b10)),
    ((1, 16, 3, 4, 8), (8, 16, 3, 3, 3), 1, 1, 1, tuning.Config(16, 16, 16, num_warps=4, num_stages=1), (4, 4, 0b10110)),
    ((2, 16, 40), (8, 16, 3), 1, 1, 1, tuning.Config(16, 16, 16, num_warps=4, num_stages=1), (4, 4, 0b10110)),
    ((2, 16, 40), (8, 16, 5), 1, 2, 1, tuning.Config(16, 16, 16, num_warps=4, num_stages=1), (4, 2, 0b110)),
    ((2, 16, 6, 16), (8, 16, 3, 3), 2, 1, 1, tuning.Config(16, 16, 16, num_warps=4, num_stages=1), (4, 1, 1)),
    ((2, 16, 6, 32), (8, 16, 3, 3), 2, 1, 1, tuning.Config(16, 16, 32, num_warps=1, num_stages=1), (4, 4, 0b10110)),
    ((2, 16, 5, 16), (8, 16, 1, 1), 2, 0, 1, tuning.Config(16, 16, 32, num_warps=1, num_stages=1), (4, 4, 0b10)),
    ((1, 16, 3, 6, 16), (8, 16, 3, 3, 3), (1, 2, 2), 1, 1, tuning.Config(16, 16, 32, num_warps=1, num_stages=1),
     (4, 4, 0b10110)),
    ((2, 16, 3, 16), (8, 16, 1, 1), 1, 0, 1, tuning.Config(16, 16, 16, num_warps=4, num_stages=1), (4, 4, 0b10)),
    ((2, 16, 4, 4, 8), (8, 16, 3, 1, 1), 1, (1, 0, 0), 1, tuning.Config(16, 16, 16, num_warps=4, num_stages=1),
     (4, 4, 0b10)),
    ((1, 16, 4, 15), (8, 16, 3, 3), 1, 1, 1, tuning.Config(16, 16, 16, num_warps=4, num_stages=1), (1, 1, 1)),
    ((1, 16, 2, 8), (8, 16, 3, 3), 1, 9, 1, tuning.Config(16, 16, 16, num_warps=4, num_stages=1), (4, 4, 0b10110)),
]


@pytest.mark.parametrize("int64", [False, True])
@pytest.mark.parametrize("case", range(len(WGRAD_CASES)))
def test_weight_gradient_on_rows_read_in_runs(case, int64, monkeypatch):
    """The weight gradient against torch in float64 where it reads NC(D)HW rows in runs: 2-D, output rows narrower than
    the input's (a run's mask its first position's), dilated with a split, 3-D, 1-D (runs read 1 and 3 columns on; 5 taps:
    runs of 2), strided (dY only on a tile of 2 elements of x per thread; else x's runs dealt: 3x3, 1x1, 3-D), 1x1 and a
    temporal kernel (every tap at its own runs), odd rows (none), padding past the taps' reach (runs of zeros moved in);
    with int64 offsets too."""
    from benchmarks import static

    if int64:
        monkeypatch.setattr(geometry, "INT32_MAX", 16)
    x_shape, w_shape, stride, padding, dilation, cfg, runs = WGRAD_CASES[case]
    ndim = len(w_shape) - 2
    g = torch.Generator().manual_seed(case)
    x, w = torch.randn(x_shape, generator=g), torch.empty(w_shape)
    spec = conv_spec(f"conv{ndim}d", ndim, x, w, None, stride, padding, dilation, 1)
    dy = torch.randn(spec.output_shape, generator=g)
    with static.recording(execute=False) as launches:
        dispatch.conv_grad_weight(dy, x, spec, False, cfg)
    (kwargs,) = [kw for fn, _, kw, _ in launches if fn.fn.__name__ == "_conv_weight_grad_kernel"]
    assert (kwargs["DY_VEC"], kwargs["X_VEC"], kwargs["X_KINDS"], kwargs["INT64"]) == (*runs, int64)
    ref = getattr(torch.nn.grad, f"conv{ndim}d_weight")(x.double(), w_shape, dy.double(), stride, padding, dilation)
    assert_close(dispatch.conv_grad_weight(dy, x, spec, False, cfg), ref)


def test_runs_read_every_offset_in_bf16():
    """In bf16 (runs of 8, 16 bytes) nine width taps padded 4 shift the rows by -4 .. 4, every offset 0 .. 7 from a run
    boundary: the forward, the input gradient and the weight gradient each compile a loop per offset (kinds 1 to 8)
    and match torch in float64."""
    from benchmarks import static

    g = torch.Generator().manual_seed(7)
    x, w = torch.randn(2, 16, 3, 40, generator=g).bfloat16(), torch.randn(16, 16, 3, 9, generator=g).bfloat16()
    spec = conv_spec("conv2d", 2, x, w, None, 1, (1, 4), 1, 1)
    dy = torch.randn(spec.output_shape, generator=g).bfloat16()
    cfg = tuning.Config(32, 16, 16, num_warps=1, num_stages=1)  # 16 elements of x per thread: runs of 8 at any offset
    wcfg = tuning.Config(16, 16, 32, num_warps=1, num_stages=1)

    def forward():
        return dispatch.conv_forward(x, w, None, spec, None, False, cfg)

    def input_gradient():
        return dispatch.conv_grad_input(dy, w, spec, False, torch.contiguous_format, cfg)

    for run in (forward, input_gradient):
        (kwargs,) = kernel_args(run)
        assert (kwargs["RUN_VEC"], kwargs["RUN_KINDS"]) == (8, 0b111111110), run.__name__
    assert wgrad_runs((2, 16, 3, 40), (16, 16, 3, 9), padding=(1, 4), block_w=16)[0] == (8, 8, 0b111111110)
    with static.recording(execute=False) as launches:
        dispatch.conv_grad_weight(dy, x, spec, False, wcfg)
    (kwargs,) = [kw for fn, _, kw, _ in launches if fn.fn.__name__ == "_conv_weight_grad_kernel"]
    assert (kwargs["X_VEC"], kwargs["X_KINDS"]) == (8, 0b111111110)
    xd = x.double().requires_grad_()
    ref = F.conv2d(xd, w.double(), padding=(1, 4))
    assert_close(forward(), ref, torch.bfloat16)
    (ref_dx,) = torch.autograd.grad(ref, xd, dy.double())
    assert_close(input_gradient(), ref_dx, torch.bfloat16)
    ref_w = torch.nn.grad.conv2d_weight(x.double(), w.shape, dy.double(), padding=(1, 4))
    assert_close(dispatch.conv_grad_weight(dy, x, spec, False, wcfg), ref_w, torch.bfloat16)



@pytest.mark.parametrize("stride", [2, 4])
def test_strided_weight_gradient_deals_its_runs_in_bf16(stride):
    """In bf16 a weight gradient strided 2 (4) along the width reads x in 16-byte runs of 4 (2) positions' 2 (4)
    columns each, read a column on where its tap is (a 3x3 layer padded 1) and dealt in registers, against torch; rows
    of 128 (64) outputs in tiles of 32, so a tile's first column is past the row's."""
    from benchmarks import static

    g = torch.Generator().manual_seed(stride)
    x, w = torch.randn(2, 16, 3, 256, generator=g).bfloat16(), torch.randn(8, 16, 3, 3, generator=g).bfloat16()
    spec = conv_spec("conv2d", 2, x, w, None, (1, stride), 1, 1, 1)
    dy = torch.randn(spec.output_shape, generator=g).bfloat16()
    cfg = tuning.Config(16, 16, 32, num_warps=1, num_stages=1)
    with static.recording(execute=False) as launches:
        dispatch.conv_grad_weight(dy, x, spec, False, cfg)
    (kwargs,) = [kw for fn, _, kw, _ in launches if fn.fn.__name__ == "_conv_weight_grad_kernel"]
    assert (kwargs["X_VEC"], kwargs["X_KINDS"], kwargs["X_DEAL"]) == (8, 0b100000110, stride)
    ref = torch.nn.grad.conv2d_weight(x.double(), w.shape, dy.double(), (1, stride), 1)
    assert_close(dispatch.conv_grad_weight(dy, x, spec, False, cfg), ref, torch.bfloat16)

X_AS_M_CASES = [  # x shape, weight shape, stride, padding, config: x moved, the MMA transposed (X_AS_M)
    ((2, 72, 3, 24), (24, 72, 3, 3), 1, 1, tuning.Config(16, 64, 32, num_warps=4, num_stages=1)),  # runs 1 on, 1 back
    ((1, 72, 4, 64), (24, 72, 3, 3), (1, 2), 1, tuning.Config(16, 64, 32, num_warps=4, num_stages=1, split_k=2)),  # dealt
    ((2, 64, 40), (8, 64, 5), 1, 2, tuning.Config(16, 64, 32, num_warps=4, num_stages=1)),  # 1-D, 5 taps
    ((2, 64, 3, 24), (16, 64, 3, 3), 1, 1, tuning.Config(16, 64, 16, num_warps=4, num_stages=1)),  # fp16
]


@pytest.mark.parametrize("case", range(len(X_AS_M_CASES)))
def test_weight_gradient_moves_x_as_the_mmas_first_operand(case):
    """Where the weight gradient moves x's runs in registers (read off their boundary, or dealt at a width stride) and
    reads dY's in runs, on input-channel tiles of 64 or more, its MMA runs transposed, x the first operand
    (``weight_grad.x_as_m``: Hopper's MMA reads it from registers, where as the second operand each step stored it to
    shared memory and waited for the MMAs reading the last), the sum turned back after the loop: against torch in
    float64, bf16 and fp16, masked channel tiles (72 input channels in tiles of 64), a split meeting in the kernel."""
    from benchmarks import static
    from tritonconv.kernels import weight_grad

    x_shape, w_shape, stride, padding, cfg = X_AS_M_CASES[case]
    ndim = len(w_shape) - 2
    g = torch.Generator().manual_seed(40 + case)
    dtype = torch.float16 if case == 3 else torch.bfloat16
    x, w = torch.randn(x_shape, generator=g).to(dtype), torch.empty(w_shape, dtype=dtype)
    spec = conv_spec(f"conv{ndim}d", ndim, x, w, None, stride, padding, 1, 1)
    dy = torch.randn(spec.output_shape, generator=g).to(dtype)
    with static.recording(execute=False) as launches:
        dispatch.conv_grad_weight(dy, x, spec, False, cfg)
    (kwargs,) = [kw for fn, _, kw, _ in launches if fn.fn.__name__ == "_conv_weight_grad_kernel"]
    assert kwargs["X_AS_M"] and kwargs["X_VEC"] > 1 and kwargs["DY_VEC"] > 1, kwargs
    assert not weight_grad.x_as_m((kwargs["DY_VEC"], kwargs["X_VEC"], kwargs["X_KINDS"]), kwargs["X_DEAL"], 0, 32, 2)
    assert not weight_grad.x_as_m((1, kwargs["X_VEC"], kwargs["X_KINDS"]), kwargs["X_DEAL"], 0, 64, 2)  # dY 2 bytes
    assert not weight_grad.x_as_m((8, 8, 0b10), 1, 0, 64, 2)  # every tap's runs as they are: nothing moved
    assert not weight_grad.x_as_m((4, 4, 0b110), 1, 0, 64, 4)  # fp32: not transposed
    ref = getattr(torch.nn.grad, f"conv{ndim}d_weight")(x.double(), w_shape, dy.double(), stride, padding)
    assert_close(dispatch.conv_grad_weight(dy, x, spec, False, cfg), ref, dtype)


def test_narrow_strided_weight_gradient_steps_256_positions():
    """A 16-bit NC(D)HW weight gradient over channel tiles of at most 32 x 32 (``tuning.NARROW_WGRAD_STEP``:
    ``ct_anisotropic``'s 32 x 16, strided (1, 2, 2)) steps 256 positions on the pointer kernel, its x read in 16-byte
    runs dealt in registers (at 32 positions a tile held too few for runs), against torch."""
    from benchmarks import static

    g = torch.Generator().manual_seed(17)
    x, w = torch.randn(1, 16, 2, 12, 64, generator=g).bfloat16(), torch.randn(32, 16, 1, 3, 3, generator=g).bfloat16()
    spec = conv_spec("conv3d", 3, x, w, None, (1, 2, 2), (0, 1, 1), 1, 1)
    dy = torch.randn(spec.output_shape, generator=g).bfloat16()
    problem = tuning.Problem.for_launch("conv_wgrad", x, spec)
    cfg = tuning.heuristic(problem, interpret=False, tma=True)
    assert (cfg.block_m, cfg.block_n, cfg.block_k, cfg.tile_h) == (32, 16, 256, 0), cfg
    with static.recording(execute=False) as launches:
        dispatch.conv_grad_weight(dy, x, spec, False, cfg)
    (kwargs,) = [kw for fn, _, kw, _ in launches if fn.fn.__name__ == "_conv_weight_grad_kernel"]
    assert (kwargs["X_VEC"], kwargs["X_DEAL"]) == (8, 2)
    ref = torch.nn.grad.conv3d_weight(x.double(), w.shape, dy.double(), (1, 2, 2), (0, 1, 1))
    assert_close(dispatch.conv_grad_weight(dy, x, spec, False, cfg), ref, torch.bfloat16)
    wide = tuning.Problem.of("conv_wgrad", "bfloat16", "contiguous", (1, 64, 2, 12, 64), (64, 64, 1, 3, 3),
                             stride=(1, 2, 2), padding=(0, 1, 1))
    assert tuning.heuristic(wide, interpret=False, tma=True).block_k == 32  # 64-wide tiles keep their steps
    fp32 = dataclasses.replace(problem, dtype="float32")
    assert tuning.heuristic(fp32, interpret=False, tma=True).block_k == 16


def row_runs(x_shape, w_shape, stride=1, padding=1, dilation=1, transposed=False, block=32, dtype=torch.bfloat16,
             fmt=None, per_thread=16):
    x = torch.empty(x_shape, dtype=dtype, device="meta")
    ndim = len(w_shape) - 2
    spec = conv_spec(f"conv{ndim}d", ndim, x, torch.empty(w_shape, dtype=dtype, device="meta"), None, stride, padding,
                     dilation, 1)
    read = torch.empty(spec.output_shape if transposed else x_shape, dtype=dtype, device="meta")
    if fmt is not None:
        read = read.contiguous(memory_format=fmt)
    written = x_shape if transposed else spec.output_shape
    kernel_w, stride_w, pad_w, dilation_w = w_shape[-1], spec.stride[-1], spec.padding[-1][0], spec.dilation[-1]
    width = -(-written[-1] // stride_w) if transposed else written[-1]
    positions = written[0] * math.prod(written[2:-1]) * width
    return geometry.row_runs(read, positions, width, kernel_w, stride_w, pad_w, dilation_w, transposed, block,
                             per_thread)


def test_rows_read_in_runs_at_each_taps_columns():
    """Where the aligned rows decline, a forward at unit width stride or an input gradient reads each width tap's
    columns in runs: the runs at a tap's columns, or each run and the next read the columns on that the tap's shift is
    off a run boundary; the longest with every tap at most a column off (3x3: 16 bytes), or, where those are under 8
    bytes, 16 bytes at any offset on a tile of two runs per thread (9 taps: offsets 0 to 7, loops 1 to 8; a tile of 4
    elements per thread: runs of 2); not at a forward's width stride, on odd widths or channels innermost."""
    assert row_runs((2, 16, 40), (16, 16, 9), padding=4) == (8, 0b111111110)
    assert row_runs((2, 16, 40), (16, 16, 9), padding=4, per_thread=4) == (2, 0b110)
    assert row_runs((1, 16, 2, 96), (8, 16, 3, 3)) == (8, 0b100000110)
    assert row_runs((1, 16, 2, 96), (8, 16, 3, 3), transposed=True) == (8, 0b100000110)
    assert row_runs((1, 16, 2, 48), (8, 16, 3, 3), padding=2, dilation=2) == (8, 0b10001010)
    assert row_runs((2, 16, 40), (16, 16, 7), stride=2, padding=3) == (0, 0)
    assert row_runs((2, 16, 40), (16, 16, 7), stride=2, padding=3, transposed=True) == (4, 0b11110)  # by phase, rows of 20
    assert row_runs((2, 16, 41), (16, 16, 3)) == (0, 0)
    assert row_runs((2, 16, 8, 40), (16, 16, 3, 3), fmt=torch.channels_last) == (0, 0)
    assert row_runs((2, 16, 40), (16, 16, 3), dtype=torch.float32) == (4, 0b10110)


RUNS_CASES = [  # x shape, weight shape, stride, padding, dilation, config, (forward's, input gradient's RUN_KINDS)
    ((2, 16, 40), (16, 16, 9), 1, 4, 1, tuning.Config(32, 16, 16, num_warps=4, num_stages=1), (0b110, 0b110)),
    ((1, 16, 3, 40), (8, 16, 3, 5), 1, (1, 2), 1, tuning.Config(32, 16, 16, num_warps=4, num_stages=1), (0b110, 0b110)),
    ((1, 16, 2, 96), (8, 16, 3, 3), 1, 1, 1, tuning.Config(32, 16, 16, num_warps=4, num_stages=1), (0b10110, 0b10110)),
    ((1, 16, 2, 48), (8, 16, 3, 3), 1, 2, 2, tuning.Config(32, 16, 16, num_warps=4, num_stages=1), (0b10, 0b10)),
    ((2, 16, 40), (16, 16, 7), 2, 3, 1, tuning.Config(32, 16, 16, num_warps=4, num_stages=1), (0, 0b110)),
    ((1, 16, 2, 3, 40), (8, 16, 3, 3, 3), 1, 1, 1, tuning.Config(32, 16, 16, num_warps=4, num_stages=1, split_k=2),
     (0b10110, 0b10110)),
    ((2, 16, 36), (16, 16, 5), 1, 6, 1, tuning.Config(32, 16, 16, num_warps=4, num_stages=1), (0b110, 0b110)),
]


@pytest.mark.parametrize("int64", [False, True])
@pytest.mark.parametrize("case", range(len(RUNS_CASES)))
def test_forward_and_input_gradient_reading_each_taps_runs(case, int64, monkeypatch):
    """Forward (bias, activation, flipped) and input gradient against torch in float64 where they read each width
    tap's columns in runs (``RUN_VEC``, ``RUN_KINDS``): one step per tap (1-D, 9 taps), rows longer than a tile with
    padding, dilated, a strided input gradient by phase, 3-D with a split, padding past the taps' reach; with int64
    offsets too."""
    if int64:
        monkeypatch.setattr(geometry, "INT32_MAX", 16)
    x_shape, w_shape, stride, padding, dilation, cfg, kinds = RUNS_CASES[case]
    ndim = len(w_shape) - 2
    g = torch.Generator().manual_seed(100 + case)
    x, w, b = torch.randn(x_shape, generator=g), torch.randn(w_shape, generator=g), torch.randn(w_shape[0], generator=g)
    spec = conv_spec(f"conv{ndim}d", ndim, x, w, b, stride, padding, dilation, 1)
    dy = torch.randn(spec.output_shape, generator=g)

    def forward():
        return dispatch.conv_forward(x, w, b, spec, "relu", True, cfg)

    def input_gradient():
        return dispatch.conv_grad_input(dy, w, spec, False, torch.contiguous_format, cfg)

    for run, want in zip((forward, input_gradient), kinds):
        (kwargs,) = kernel_args(run)
        assert (kwargs["RUN_KINDS"], kwargs["ROW_VEC"], kwargs["INT64"]) == (want, 0, int64), run.__name__
    pads = spec.padding
    xd, wd = x.double().requires_grad_(), w.double()
    padded = F.pad(xd, [p for pair in reversed(pads) for p in pair])
    ref = TORCH[ndim](padded, wd.flip(list(range(2, 2 + ndim))), b.double(), stride, 0, dilation)
    assert_close(forward(), ref.relu())
    (ref_dx,) = torch.autograd.grad(TORCH[ndim](padded, wd, None, stride, 0, dilation), xd, dy.double())
    assert_close(input_gradient(), ref_dx)


def assert_pass_matches_torch(kind, x, w, dy, spec, cfg, *args, fmt=torch.contiguous_format):
    """``spec``'s forward (``kind`` "conv") or input gradient ("conv_t", written in ``fmt``) on ``cfg``'s tiles against
    torch in float64, ``args`` torch's (stride, padding, dilation, groups)."""
    xd = x.double().requires_grad_()
    ref = TORCH[x.dim() - 2](xd, w.double(), None, *args)
    if kind == "conv":
        assert_close(dispatch.conv_forward(x, w, None, spec, None, False, cfg), ref, torch.bfloat16)
    else:
        (ref_dx,) = torch.autograd.grad(ref, xd, dy.double())
        assert_close(dispatch.conv_grad_input(dy, w, spec, False, fmt, cfg), ref_dx, torch.bfloat16)


@pytest.mark.parametrize("x_shape,w_shape,stride", [
    ((1, 64, 14, 14), (64, 64, 3, 3), 1),   # rows of 14 in aligned runs, a column off (ResNet-50's third stage)
    ((2, 64, 7, 7), (64, 64, 3, 3), 1),     # rows of 7: 2 bytes at a time (its fourth stage)
    ((1, 64, 3, 6, 6), (64, 64, 3, 1, 1), 1),  # a temporal (2+1)D pass
    ((1, 64, 14, 14), (64, 64, 1, 1), 2),   # one tap, strided: the forward (its input gradient by phase: 32)
    ((2, 64, 7, 7), (64, 64, 1, 1), 1),     # one tap: its weight in 16-byte copies (geometry.tap_strides)
])
def test_nc_64_by_64_tiles_step_64_channels_on_4_warps(x_shape, w_shape, stride):
    """16-bit NC(D)HW forwards and unit-stride input gradients on the pointer kernel's 64 x 64 tiles step 64 channels
    on 4 warps (``tuning.nc_wide_step``; one-tap layers too since their weight is read in 16-byte copies), strided input
    gradients (by phase) 32 on 8; the GPU's tiles run under the interpreter against torch."""
    ndim = len(w_shape) - 2
    g = torch.Generator().manual_seed(45)
    x, w = torch.randn(x_shape, generator=g).bfloat16(), torch.randn(w_shape, generator=g).bfloat16()
    padding = tuple(k // 2 for k in w_shape[2:])
    spec = conv_spec(f"conv{ndim}d", ndim, x, w, None, stride, padding, 1, 1)
    dy = torch.randn(spec.output_shape, generator=g).bfloat16()
    for kind in ("conv", "conv_t"):
        problem = tuning.Problem.for_launch(kind, dy if kind == "conv_t" else x, spec)
        cfg = tuning.heuristic(problem, interpret=False, tma=True)
        assert not cfg.tile_h and (cfg.block_m, cfg.block_n) == (64, 64), (kind, cfg)
        assert (cfg.block_k, cfg.num_warps) == ((32, 8) if problem.by_phase else (64, 4)), (kind, cfg)
        assert_pass_matches_torch(kind, x, w, dy, spec, cfg, stride, padding)


@pytest.mark.parametrize("x_shape,w_shape,channels_last", [
    ((1, 48, 5, 6, 7), (48, 48, 3, 3, 3), False),  # KernelBench's 48-channel volumes (16 x 16 tiles covered them)
    ((2, 48, 37), (80, 48, 3), False),             # 80 output channels: 32-wide tiles, 1.2x
    ((2, 48, 16, 16), (48, 48, 3, 3), True),        # channels-last: the pointer kernel, and descriptors (a TMA unit)
])
def test_channel_tiles_of_tensor_core_problems_no_narrower_than_32(x_shape, w_shape, channels_last):
    """A 16-bit forward or input gradient of 32 channels or more gets output-channel tiles and pointer steps of 32 or
    more (``tuning.NARROWEST_MMA_TILE``) where 16 covered the channels exactly, and channels-last descriptor tiles
    the same channel tiles (their steps keep the fit); the GPU's tiles run under the interpreter against torch, the
    padded channels masked."""
    ndim = len(w_shape) - 2
    g = torch.Generator().manual_seed(46)
    x, w = torch.randn(x_shape, generator=g).bfloat16(), torch.randn(w_shape, generator=g).bfloat16()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    padding = tuple(k // 2 for k in w_shape[2:])
    spec = conv_spec(f"conv{ndim}d", ndim, x, w, None, 1, padding, 1, 1)
    dy = torch.randn(spec.output_shape, generator=g).bfloat16()
    if channels_last:
        dy = dy.contiguous(memory_format=torch.channels_last)
    launches = [(kind, tma) for kind in ("conv", "conv_t") for tma in ((False, True) if channels_last else (False,))]
    for kind, tma in launches:
        problem = tuning.Problem.for_launch(kind, dy if kind == "conv_t" else x, spec)
        cfg = tuning.heuristic(problem, interpret=False, tma=tma)
        assert bool(cfg.tile_h) == tma, (kind, cfg)
        old = dataclasses.replace(cfg, block_n=tuning.fit_pow2(problem.gemm[1], 16, 64),
                                  block_k=tuning.fit_pow2(problem.gemm[2], 16, 64))
        assert (old.block_n, old.block_k) != (cfg.block_n, cfg.block_k) and min(old.block_n, old.block_k) == 16
        assert cfg.block_n >= 32 and cfg.block_k == (old.block_k if tma else max(32, cfg.block_k)), (kind, cfg)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        assert_pass_matches_torch(kind, x, w, dy, spec, cfg, 1, padding, fmt=fmt)


def test_nc_tensor_core_forwards_of_few_channels_walk_their_taps_on_a_gpu():
    """A forward of at most 8 input channels a tap folds its taps into the reduction (``tuning.folds_taps``) under the
    interpreter, channels-last and in IEEE fp32, but not on NC(D)HW tensor-core tiles on a GPU: there the per-tap loop,
    3 channels padded to 16, runs (KernelBench's 3-channel 3x5x7 volumes), here under the interpreter against torch."""
    g = torch.Generator().manual_seed(47)
    x, w = torch.randn(1, 3, 4, 5, 11, generator=g).bfloat16(), torch.randn(8, 3, 2, 3, 7, generator=g).bfloat16()
    spec = conv_spec("conv3d", 3, x, w, None, 1, 0, 1, 1)
    assert not geometry.pack_factors(spec)  # packing its 7 width taps would hold 7x the input
    problem = tuning.Problem.for_launch("conv", x, spec)
    cfg = tuning.heuristic(problem, interpret=False, tma=True)
    assert not cfg.fold and tuning.heuristic(problem, interpret=True).fold
    last = tuning.Problem.for_launch("conv", x.contiguous(memory_format=torch.channels_last_3d), spec)
    fp32 = tuning.Problem.for_launch("conv", x.float(), spec)
    assert all(tuning.heuristic(p, interpret=False, tma=True).fold for p in (last, fp32))
    ref = F.conv3d(x.double(), w.double())
    assert_close(dispatch.conv_forward(x, w, None, spec, None, False, cfg), ref, torch.bfloat16)


@pytest.mark.parametrize("x_shape,w_shape,stride,groups,kind,tma", [
    ((1, 16, 129, 131), (32, 16, 3, 3), 1, 1, "conv", True),   # 32 output channels: 256 rows on Hopper, not before
    ((1, 16, 129, 131), (32, 16, 3, 3), 1, 1, "conv", False),
    ((2, 16, 8201), (32, 16, 9), 1, 1, "conv_t", False),      # an input gradient over 16 channels: 256 rows everywhere
    ((1, 16, 9, 40, 49), (16, 8, 3, 3, 3), 2, 2, "conv_t", True),  # strided, grouped: by stride phase
])
def test_nc_narrow_pointer_tiles_take_256_rows_on_4_warps(x_shape, w_shape, stride, groups, kind, tma):
    """16-bit NC(D)HW forwards and input gradients on the pointer kernel's 128-row tiles of at most 32 channels (16
    before Hopper), of at least ``tuning.LONG_ROWS_MIN`` rows, take 256 rows on 4 warps (``tuning.nc_long_rows``); the
    GPU's tiles run under the interpreter against torch (a strided, grouped input gradient by stride phase among
    them), the last tile's rows masked."""
    ndim = len(w_shape) - 2
    g = torch.Generator().manual_seed(47)
    x, w = torch.randn(x_shape, generator=g).bfloat16(), torch.randn(w_shape, generator=g).bfloat16()
    padding = tuple(k // 2 for k in w_shape[2:])
    spec = conv_spec(f"conv{ndim}d", ndim, x, w, None, stride, padding, 1, groups)
    dy = torch.randn(spec.output_shape, generator=g).bfloat16()
    problem = tuning.Problem.for_launch(kind, dy if kind == "conv_t" else x, spec)
    cfg = tuning.heuristic(problem, interpret=False, tma=tma)
    rows, cols, _ = problem.gemm
    assert rows >= tuning.LONG_ROWS_MIN and rows % 256 and not cfg.tile_h and problem.by_phase == (stride > 1), cfg
    long = cols <= (32 if tma else 16)
    assert (cfg.block_m, cfg.num_warps) == ((256, 4) if long else (128, 8)), (kind, tma, cfg)
    narrow = dataclasses.replace(cfg, block_m=128, num_warps=8)
    assert not tuning.nc_long_rows(dataclasses.replace(problem, layout="channels_last"), narrow, tma)
    assert not tuning.nc_long_rows(dataclasses.replace(problem, dtype="float32"), narrow, tma)
    if not long:
        return
    assert_pass_matches_torch(kind, x, w, dy, spec, cfg, stride, padding, 1, groups)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation", [
    ((2, 128, 40), (128, 128, 1), 1, 1, 1),            # one width tap, padded: its shift is the padding's
    ((2, 128, 40), (128, 128, 1), 2, 2, 1),            # by stride phase
    ((2, 128, 5, 40), (128, 128, 3, 1), 1, (1, 2), 1),
    ((2, 128, 9, 40), (128, 128, 3, 1), (2, 1), (1, 1), 1),
    ((2, 16, 6, 1, 8), (16, 16, 3, 3, 1), (2, 1, 1), (1, 3, 1), (1, 2, 1)),  # the fuzz's case (seed 5920360)
])
def test_one_padded_width_tap_moves_the_rows_it_reads_aligned(x_shape, w_shape, stride, padding, dilation):
    """An input gradient whose kernel is one tap wide along padded rows, read in aligned runs at their own columns, holds
    its products a column off per column of padding: they move (``SHIFT`` 1) to the output's column like any tap's. With
    one width tap they stood still (its shift taken for a padless kernel's 0), every output column read from the one
    beside it (relative error 1.4, no error raised); the GPU's tiles and the interpreter's, against torch."""
    ndim = len(w_shape) - 2
    g = torch.Generator().manual_seed(59)
    x, w = torch.randn(x_shape, generator=g), torch.randn(w_shape, generator=g)
    spec = conv_spec(f"conv{ndim}d", ndim, x, w, None, stride, padding, dilation, 1)
    dy = torch.randn(spec.output_shape, generator=g)
    problem = tuning.Problem.for_launch("conv_t", dy, spec)
    moved = []
    for interpret in (True, False):
        cfg = tuning.heuristic(problem, interpret=interpret)
        (kwargs,) = kernel_args(lambda cfg=cfg: dispatch.conv_grad_input(dy, w, spec, False, torch.contiguous_format,
                                                                         cfg))
        moved.append(bool(kwargs["ROW_VEC"]) and kwargs["SHIFT"] == 1)
        assert_pass_matches_torch("conv_t", x, w, dy, spec, cfg, stride, padding, dilation)
    assert any(moved)  # (the other config may read its rows 2 bytes at a time)
