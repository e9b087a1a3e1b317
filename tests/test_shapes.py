"""tritonconv.shapes: the one copy of the shape algebra, checked against torch and by hand."""

import itertools
import math
import operator

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tritonconv import shapes


def test_document_output_length_formula():
    # L' = floor((L + 2P - K) / S) + 1 is the d = 1 case.
    for L, K, P, S in itertools.product(range(1, 12), range(1, 5), range(3), range(1, 4)):
        assert shapes.conv_output_size(L, K, S, P) == (L + 2 * P - K) // S + 1


def test_output_shape_matches_torch_meta():
    for L, K, P, S, D in itertools.product((5, 8, 13), (1, 2, 3), (0, 1, 2), (1, 2, 3), (1, 2)):
        got = shapes.conv_output_shape((2, 3, L), (4, 3, K), S, P, D)
        if got[2] <= 0:
            with pytest.raises(RuntimeError):
                F.conv1d(torch.empty(2, 3, L, device="meta"), torch.empty(4, 3, K, device="meta"), None, S, P, D)
            continue
        ref = F.conv1d(torch.empty(2, 3, L, device="meta"), torch.empty(4, 3, K, device="meta"), None, S, P, D)
        assert got == tuple(ref.shape)


@pytest.mark.parametrize("kernel,dilation", [(3, 1), (4, 1), (4, 2), (2, 3), (5, 2)])
def test_same_padding_like_torch(kernel, dilation):
    (before, after), = shapes.resolve_padding("same", (kernel,), 1, dilation)
    assert before + after == dilation * (kernel - 1) and after - before in (0, 1)
    x, w = torch.randn(1, 1, 11), torch.randn(1, 1, kernel)
    ref = F.conv1d(x, w, padding="same", dilation=dilation) if kernel % 2 else None
    manual = F.conv1d(F.pad(x, (before, after)), w, dilation=dilation)
    assert manual.shape[-1] == 11
    if ref is not None:
        torch.testing.assert_close(manual, ref)


def test_padding_forms():
    assert shapes.resolve_padding("valid", (3, 3)) == ((0, 0), (0, 0))
    assert shapes.resolve_padding(2, (3, 3)) == ((2, 2), (2, 2))
    assert shapes.resolve_padding((1, 0), (3, 3)) == ((1, 1), (0, 0))
    assert shapes.resolve_padding(((1, 2), (0, 3)), (3, 3)) == ((1, 2), (0, 3))
    with pytest.raises(ValueError, match="stride 1"):
        shapes.resolve_padding("same", (3,), stride=2)


def test_integer_arguments_are_taken_as_torch_takes_them():
    """numpy integers and 0-d integer tensors count as ints (torch's ``F.conv2d`` takes them), returned as plain ints;
    bools (torch refuses ``stride=True``), numpy and tensor bools, floats and 1-element float tensors do not."""
    import numpy as np
    for value in (2, np.int64(2), np.int32(2), np.uint8(2), torch.tensor(2)):
        assert shapes.as_int(value) == 2 and type(shapes.as_int(value)) is int
        assert shapes.as_tuple(value, 3, "stride") == (2, 2, 2)
        assert all(type(v) is int for v in shapes.as_tuple((1, value), 2, "stride"))
    for value in (True, np.True_, torch.tensor(True), 2.0, np.float64(2.0), torch.tensor(2.0), "2", None):
        assert shapes.as_int(value) is None
        with pytest.raises(ValueError, match="`stride` to be an int or 2 ints"):
            shapes.as_tuple(value, 2, "stride")
        with pytest.raises(ValueError, match="`stride` to be an int or 2 ints"):
            shapes.as_tuple((1, value), 2, "stride")
    assert shapes.resolve_padding(((np.int64(1), 0), (torch.tensor(0), 2)), (3, 3)) == ((1, 0), (0, 2))
    for pairs in (((1.5, 0), (0, 1)), ((1, 0, 1), (0, 1)), ((True, 0), (0, 1))):
        with pytest.raises(ValueError, match=r"`padding` to have 2 \(before, after\) pairs of ints"):
            shapes.resolve_padding(pairs, (3, 3))


def test_integer_arguments_never_index_a_sequence(monkeypatch):
    """``operator.index`` on a tuple raised, under torch 2.11's Dynamo, an error of Dynamo's own, not the TypeError
    ``as_int`` catches: every ``torch.compile``-d call failed there (the GPU machine's torch). Sequences are told
    apart first: with an ``operator.index`` that refuses them as that Dynamo did, arguments still resolve."""
    import types

    def strict(value):
        if isinstance(value, (tuple, list)):
            raise RuntimeError("operator.index on a sequence")
        return operator.index(value)

    monkeypatch.setattr(shapes, "operator", types.SimpleNamespace(index=strict))
    assert shapes.as_int((1,)) is None and shapes.as_int([2]) is None
    assert shapes.as_tuple((1, 2), 2, "stride") == (1, 2) and shapes.as_tuple([3], 2, "dilation") == (3, 3)
    assert shapes.resolve_padding((1, 2), (3, 3), (1, 1), (2, 1)) == ((1, 1), (2, 2))
    assert shapes.conv_output_shape((1, 2, 9, 9), (4, 2, 3, 3), (2, 1), (1, 0), (1, 2)) == (1, 4, 5, 5)


def test_receptive_field_resnet_stem():
    # conv 7x7 s2, maxpool 3x3 s2, two 3x3 s1: R = 1, 7, 11, 19, 27
    assert shapes.receptive_field([7, 3, 3, 3], [2, 2, 1, 1]) == [1, 7, 11, 19, 27]
    assert shapes.receptive_field([3, 3], [1, 1], [1, 2]) == [1, 3, 7]
    with pytest.raises(ValueError):
        shapes.receptive_field([3, 3], [1])


def test_flops_params_bytes():
    x, w = (2, 4, 10, 10), (8, 2, 3, 3)  # groups = 2
    y = shapes.conv_output_shape(x, w, padding=1, groups=2)
    assert y == (2, 8, 10, 10)
    assert shapes.conv_macs(x, w, y) == 2 * 8 * 100 * 2 * 9
    assert shapes.conv_flops(x, w, y) == 2 * shapes.conv_macs(x, w, y)
    assert shapes.conv_params(w) == 144 and shapes.conv_params(w, bias=True) == 152
    assert shapes.conv_bytes(x, w, y, "float16") == 2 * (800 + 144 + 1600)


def test_r2plus1d_mid_channels_published_widths():
    # R(2+1)D-18 widths for in = out, t = d = 3.
    assert [shapes.r2plus1d_mid_channels(c, c, 3, 3) for c in (64, 128, 256, 512)] == [144, 288, 576, 1152]
    assert shapes.factorized_params(64, 64, 3, 3, "2+1d") == shapes.factorized_params(64, 64, 3, 3, "3d")
    assert shapes.factorized_params(8, 16, 3, 3, "2+1d", mid_channels=4) == 8 * 4 * 9 + 4 * 16 * 3
    assert shapes.factorized_params(8, 16, 3, 3, "P3D-B") == 8 * 16 * 12
    assert shapes.factorized_params(8, 16, 3, 3, "P3D-A") == 8 * 16 * 9 + 16 * 16 * 3
    with pytest.raises(ValueError, match="variant"):
        shapes.factorized_params(8, 16, 3, 3, "P3D-D")


@st.composite
def merge_cases(draw):
    ndim = draw(st.integers(1, 3))
    kernel = [draw(st.sampled_from([1, 1, 2, 3])) for _ in range(ndim)]
    stride = [draw(st.sampled_from([1, 1, 2])) for _ in range(ndim)]
    dilation = [draw(st.sampled_from([1, 2])) for _ in range(ndim)]
    sizes = [draw(st.integers(1, 6)) for _ in range(ndim)]
    padding = [(draw(st.integers(0, 1)), draw(st.integers(0, 1))) for _ in range(ndim)]
    weight = (3, 2, *kernel)
    out = shapes.conv_output_shape((2, 2, *sizes), weight, stride, padding, dilation)
    assume(all(o > 0 for o in out[2:]))
    return (2, 2, *sizes), weight, out, tuple(stride), tuple(padding), tuple(dilation)


@settings(max_examples=80, deadline=None)
@given(merge_cases())
def test_merged_axes_are_the_same_convolution(case):
    """torch computes both: the convolution on views with merged axes is the original one, viewed."""
    x_shape, w_shape, out_shape, stride, padding, dilation = case
    xm, wm, om, sm, pm, dm = shapes.merge_axes(*case)
    assert shapes.conv_output_shape(xm, wm, sm, pm, dm) == om and math.prod(om) == math.prod(out_shape)
    x, w = torch.randn(x_shape, dtype=torch.float64), torch.randn(w_shape, dtype=torch.float64)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}

    def run(x, w, stride, padding, dilation):
        pads = [p for pair in reversed(padding) for p in pair]  # F.pad: last axis first
        return conv[len(stride)](F.pad(x, pads), w, stride=stride, dilation=dilation)

    ref = run(x, w, stride, padding, dilation)
    assert torch.allclose(run(x.view(xm), w.view(wm), sm, pm, dm).view(out_shape), ref)
    assert len(xm) == len(x_shape) and shapes.merge_axes(xm, wm, om, sm, pm, dm) == (xm, wm, om, sm, pm, dm)
    assert [s for s in sm if s > 1] == [s for s in stride if s > 1]  # strided axes keep their order


def packed_reference(x, w, stride, padding, factors, taps, sizes, channels):
    """``x'`` and ``w'`` of shapes.pack_positions built with torch slicing, independently of tritonconv's code."""
    n, c = x.shape[:2]
    xp = F.pad(x, [p for pair in reversed(padding) for p in pair])
    need = [s * (j - 1) + r for s, j, r in zip(stride, sizes, factors)]  # padded positions read, per axis
    xp = F.pad(xp, [e for size, k in reversed(list(zip(xp.shape[2:], need))) for e in (0, max(0, k - size))])
    wp = F.pad(w, [e for k, r, t in reversed(list(zip(w.shape[2:], factors, taps))) for e in (0, r * t - k)])
    xs, ws = [], []
    for r in itertools.product(*(range(f) for f in factors)):
        xs.append(xp[(slice(None), slice(None), *[slice(o, o + s * (j - 1) + 1, s) for o, s, j in zip(r, stride, sizes)])])
        ws.append(wp[(slice(None), slice(None), *[slice(o, None, f) for o, f in zip(r, factors)])])
    xr = torch.stack(xs, 2).reshape(n, c * len(xs), *sizes)
    wr = torch.stack(ws, 2).reshape(w.shape[0], c * len(ws), *taps)
    fill = [0, 0] * len(sizes) + [0, channels - c * len(xs)]
    return F.pad(xr, fill), F.pad(wr, fill)


@st.composite
def pack_cases(draw):
    ndim = draw(st.integers(1, 3))
    stride = [draw(st.integers(1, 3)) for _ in range(ndim)]
    factors = [s * draw(st.integers(1, 2)) for s in stride]
    kernel = [draw(st.integers(1, 5)) for _ in range(ndim)]
    sizes = [draw(st.integers(1, 9)) for _ in range(ndim)]
    padding = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(ndim)]
    c = draw(st.integers(1, 3))
    x_shape, w_shape = (2, c, *sizes), (3, c, *kernel)
    out = shapes.conv_output_shape(x_shape, w_shape, stride, padding)
    assume(all(o > 0 for o in out[2:]))
    return x_shape, w_shape, out, tuple(stride), tuple(padding), tuple(factors), c * math.prod(factors) + draw(
        st.integers(0, 3))


@settings(max_examples=80, deadline=None)
@given(pack_cases())
def test_packed_positions_are_the_same_convolution(case):
    """torch computes both: the stride-1 convolution of the packed input and weight is the original one."""
    x_shape, w_shape, out_shape, stride, padding, factors, channels = case
    xs, ws, os_, ss, ps, ds = shapes.pack_positions(x_shape, w_shape, out_shape, stride, factors, channels)
    assert os_ == out_shape and shapes.conv_output_shape(xs, ws, ss, ps, ds) == out_shape
    x, w = torch.randn(x_shape, dtype=torch.float64), torch.randn(w_shape, dtype=torch.float64)
    xr, wr = packed_reference(x, w, stride, padding, factors, ws[2:], xs[2:], channels)
    assert xr.shape == xs and wr.shape == ws
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(stride)]
    ref = conv(F.pad(x, [p for pair in reversed(padding) for p in pair]), w, stride=stride)
    assert torch.allclose(conv(xr, wr, dilation=ds), ref)


def test_pack_positions_refuses_factors_off_the_stride():
    with pytest.raises(ValueError, match="multiples of the strides"):
        shapes.pack_positions((1, 3, 9, 9), (4, 3, 3, 3), (1, 4, 4, 4), (2, 2), (3, 2), 16)
    with pytest.raises(ValueError, match="at least 12 channels"):
        shapes.pack_positions((1, 3, 9, 9), (4, 3, 3, 3), (1, 4, 4, 4), (2, 2), (2, 2), 8)


def test_shape_helpers_refuse_what_has_no_shape():
    """The public shape helpers say what is wrong where their arithmetic would divide by zero, compare shapes of
    different ranks by their overlap, or plan a 3-D stream with a 2-D weight."""
    from tritonconv import memory

    with pytest.raises(ValueError, match=r"kernel, stride and dilation of at least 1, got kernel=3, stride=0"):
        shapes.conv_output_size(8, 3, stride=0)
    with pytest.raises(ValueError, match=r"of one rank, at least 3, got \(1, 3, 8, 8\) and \(4, 3, 3, 3, 3\)"):
        shapes.conv_output_shape((1, 3, 8, 8), (4, 3, 3, 3, 3))
    with pytest.raises(ValueError, match=r"of one rank, at least 3"):
        shapes.conv_output_shape((1, 3), (4, 3))
    with pytest.raises(ValueError, match=r"`parts` to be at least 1, got 0"):
        shapes.chunk_sizes(5, 0)
    with pytest.raises(ValueError, match=r"plan_stream: expected a depth slice \(N, C, H, W\) and a 3-D weight"):
        memory.plan_stream((1, 4, 16, 16), (8, 4, 3, 3), budget=10**6)
    with pytest.raises(ValueError, match=r"`stride` to be a positive int, got 0"):
        memory.plan_stream((1, 4, 16, 16), (8, 4, 3, 3, 3), stride=0, budget=10**6)
    assert shapes.conv_output_size(2, 5) == -2  # an impossible layer's size: the callers' checks refuse it
