"""Streaming conv3d over generators and causal StreamingConv1d, against one-shot convolutions."""

import math
import random
import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close

import tritonconv
from tritonconv import _checks, dispatch, geometry, memory, shapes, streaming, tuning

CONFIG = tuning.Config(64, 16, 16, group_m=1, num_warps=1, num_stages=1)  # forced on both sides


def one_shot(x, w, b, stride, padding, dilation, groups=1):
    spec = _checks.conv_spec("conv3d", 3, x, w, b, stride, padding, dilation, groups)
    return dispatch.conv_forward(x, w, b, spec, None, False, CONFIG)


def feed(x, sizes):
    """Yield the volume as slabs of the given depths (1 -> a 4-D slice), cycling through ``sizes``."""
    i, j = 0, 0
    while i < x.shape[2]:
        d = sizes[j % len(sizes)]
        yield x[:, :, i] if d == 1 else x[:, :, i:i + d]
        i, j = i + d, j + 1


CASES = [  # depth, kd, stride_d, padding, dilation_d
    (9, 3, 1, 1, 1),
    (10, 3, 2, (2, 1, 1), 2),
    (7, 2, 4, 0, 1),  # stride > kernel: slices skipped
    (6, 3, 1, "same", 1),
    (5, 1, 3, (3, 0, 0), 1),  # depth padding wider than the kernel
    (8, 4, 1, ((2, 1), (0, 0), (1, 1)), 1),  # asymmetric depth padding
]


@pytest.mark.parametrize("depth,kd,sd,padding,dd", CASES)
@pytest.mark.parametrize("chunk,sizes", [(1, [1]), (3, [2, 1, 3]), (50, [1]), (2, [100])])
def test_stream_equals_one_shot(depth, kd, sd, padding, dd, chunk, sizes):
    n, c = random.Random(depth + kd).choice([(1, 3), (2, 2)])
    # Integer-valued data: every sum is exact in fp32, so equality is bitwise whatever the BLAS rounding order.
    x = torch.randint(-3, 4, (n, c, depth, 6, 5)).float()
    w = torch.randint(-2, 3, (4, c, kd, 3, 2)).float()
    b = torch.randint(-2, 3, (4,)).float()
    stride = (sd, 1, 2) if padding != "same" else 1
    dilation = (dd, 1, 1)
    stream = streaming.Conv3dStream(feed(x, sizes), w, b, stride, padding, dilation, chunk=chunk, config=CONFIG)
    slabs = list(stream)
    out = torch.cat(slabs, dim=2)
    assert torch.equal(out, one_shot(x, w, b, stride, padding, dilation))
    assert all(s.shape[2] <= chunk for s in slabs)
    assert stream.peak_slices <= stream.plan.input_slices == (chunk - 1) * sd + (kd - 1) * dd + 1


def test_random_data_and_groups():
    x = torch.randn(2, 4, 11, 7, 6)
    w, b = torch.randn(6, 2, 3, 3, 3), torch.randn(6)
    stream = streaming.conv3d_stream(feed(x, [1, 4]), w, b, (2, 1, 1), 1, 1, groups=2, chunk=2, activation="relu")
    ref = F.relu(F.conv3d(x.double(), w.double(), b.double(), (2, 1, 1), 1, 1, 2))
    assert_close(torch.cat(list(stream), 2), ref)


def test_planner_bounds_what_is_held():
    x = torch.randn(1, 3, 40, 8, 8)
    w = torch.randn(4, 3, 3, 3, 3)
    unpacked = memory.plan_stream((1, 3, 8, 8), w.shape, budget=60_000)
    stream = streaming.conv3d_stream(feed(x, [1]), w, padding=1, budget=60_000)
    out = torch.cat(list(stream), 2)
    plan = stream.plan  # 3 channels: each window's convolution packs positions into 16, which the plan counts
    assert 1 < plan.chunk < unpacked.chunk < 40
    assert stream.peak_slices <= plan.input_slices and plan.bytes <= 60_000
    assert_close(out, F.conv3d(x.double(), w.double(), padding=1))


def test_plan_is_the_largest_chunk_that_fits():
    slice_shape, w_shape = (2, 16, 32, 32), (16, 16, 3, 3, 3)
    for budget in (10**6, 3 * 10**6, 10**7):
        plan = memory.plan_stream(slice_shape, w_shape, stride=2, dtype="bfloat16", budget=budget)
        bigger = memory.plan_stream(slice_shape, w_shape, stride=2, dtype="bfloat16", budget=10**12, max_chunk=plan.chunk + 1)
        assert plan.bytes <= budget < bigger.bytes
        assert plan.input_slices == (plan.chunk - 1) * 2 + plan.halo
    with pytest.raises(ValueError, match="over the budget"):
        memory.plan_stream(slice_shape, w_shape, budget=1000)


def test_one_shot_device_bytes():
    x, w = (4, 64, 16, 64, 64), (64, 64, 3, 3, 3)
    y = shapes.conv_output_shape(x, w, padding=1)
    plain = 2 * (2 * 4 * 64 * 16 * 64 * 64 + 64 * 64 * 27 + 64)  # activations in place in any layout
    assert memory.conv_device_bytes(x, w, y, "float16", bias=True, weight_inner=True) == plain
    # a large problem copies a weight in torch's layout (neither channel axis innermost) once
    assert geometry.weight_copy_pays(x, w, y)
    assert memory.conv_device_bytes(x, w, y, "float16", bias=True) == plain + 2 * 64 * 64 * 27
    small = (1, 8, 4, 16, 16)  # a small one reads it in place: no copy
    ws = (8, 8, 3, 3, 3)
    ys = shapes.conv_output_shape(small, ws, padding=1)
    assert memory.conv_device_bytes(small, ws, ys, "float16") == \
        memory.conv_device_bytes(small, ws, ys, "float16", weight_inner=True) == 2 * (2 * 8 * 4 * 16 * 16 + 8 * 8 * 27)


def test_stream_errors():
    w = torch.randn(4, 3, 3, 3, 3)
    with pytest.raises(ValueError, match="yielded nothing"):
        list(streaming.conv3d_stream(iter([]), w))

    def bad_middle():
        yield torch.randn(1, 3, 8, 8)
        yield torch.randn(1, 3, 2, 8, 8)
        yield torch.randn(1, 3, 8, 9)

    with pytest.raises(ValueError, match=r"item 2 of `slices` has \(N, C, H, W\) = \(1, 3, 8, 9\), expected \(1, 3, 8, 8\)"):
        list(streaming.conv3d_stream(bad_middle(), w, padding=1, chunk=1))
    with pytest.raises(ValueError, match="item 0.*C from the weight"):
        list(streaming.conv3d_stream([torch.randn(1, 2, 8, 8)], w))
    with pytest.raises(TypeError, match="item 1.*dtype"):
        list(streaming.conv3d_stream([torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8).half()], w, padding=1))
    with pytest.raises(ValueError, match="too short"):
        list(streaming.conv3d_stream([torch.randn(1, 3, 8, 8)], w))
    with pytest.raises(TypeError, match=r"item 0 of `slices` should be a dense \(strided\) tensor, got layout torch.sparse"):
        list(streaming.conv3d_stream([torch.randn(1, 3, 8, 8).to_sparse()], w))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (torch's notice: nested tensors are a prototype)
        nested = torch.nested.nested_tensor([torch.randn(3, 3, 8, 8)])
    with pytest.raises(TypeError, match=r"item 0 of `slices` should be a dense \(strided\) tensor, got a nested tensor"):
        list(streaming.conv3d_stream([nested], w))
    with pytest.raises(ValueError, match="chunk"):
        streaming.conv3d_stream([], w, chunk=0)
    volume = torch.randn(1, 3, 3, 8, 8)  # iterated, item 0 (3, 3, 8, 8) would pass as a slice of 3 images
    with pytest.raises(TypeError, match=r"`slices` to be an iterable .* got a tensor \(1, 3, 3, 8, 8\).*x.unbind\(2\)"):
        streaming.conv3d_stream(volume, w, padding=1)
    whole = torch.cat(list(streaming.conv3d_stream([volume], w, padding=1)), 2)  # the volume as one slab
    assert_close(whole, torch.nn.functional.conv3d(volume, w, padding=1))


def causal(x, w, b, dilation, groups):
    return F.conv1d(F.pad(x.double(), ((w.shape[2] - 1) * dilation, 0)), w.double(), b.double(), 1, 0, dilation, groups)


@pytest.mark.parametrize("k,dilation,groups", [(3, 1, 1), (2, 4, 2), (1, 1, 1), (5, 2, 4)])
def test_streaming_conv1d_any_chunking(k, dilation, groups):
    rng = random.Random(k * 10 + dilation)
    x = torch.randn(2, 4, 60)
    w, b = torch.randn(6 if groups != 4 else 8, 4 // groups, k), torch.randn(6 if groups != 4 else 8)
    layer = streaming.StreamingConv1d(w, b, dilation, groups)
    ref = causal(x, w, b, dilation, groups)
    for _ in range(3):
        cuts = sorted(rng.sample(range(1, 60), rng.randint(1, 12)))
        pieces = [layer.step(x[..., a:z]) for a, z in zip([0, *cuts], [*cuts, 60])]
        assert_close(torch.cat(pieces, -1), ref)
        layer.reset()
    ones = [layer.step(x[..., i:i + 1]) for i in range(15)]  # one sample at a time
    assert_close(torch.cat(ones, -1), ref[..., :15])


def test_streaming_conv1d_unbatched_and_errors():
    w = torch.randn(3, 2, 3)
    layer = streaming.StreamingConv1d(w)
    x = torch.randn(2, 10)
    out = torch.cat([layer.step(x[:, :4]), layer(x[:, 4:])], -1)
    assert out.shape == (3, 10)
    assert_close(out, causal(x[None], w, torch.zeros(3), 1, 1)[0])
    with pytest.raises(ValueError, match=r"\(N, C\) = \(2, 2\).*reset"):
        layer.step(torch.randn(2, 2, 5))
    with pytest.raises(ValueError, match="L >= 1"):
        layer.step(torch.randn(1, 2, 0))
    with pytest.raises(ValueError, match="rank 3"):
        streaming.StreamingConv1d(torch.randn(3, 2))


def test_tensor_bytes_counts_storage_from_allocation_to_its_last_tensor():
    before = torch.randn(1000)
    with memory.TensorBytes() as held:
        a = torch.empty(100, 10)  # 4000 B
        view = a[:5]
        del a
        assert held.live == 4000  # the view keeps the storage alive
        before.add_(1)  # storage made before the block: never counted
        b = before[:10]
        del view
        assert held.live == 0
        c = torch.empty(50)
        assert (held.live, held.peak) == (200, 4000)
    assert b.shape == (10,) and c.numel() == 50


@pytest.mark.parametrize("padding,stride", [(1, 1), (0, 2)])
def test_stream_holds_what_its_plan_says(plain_allocation, padding, stride):
    """Measured (memory.TensorBytes): a plain loop over the stream, which keeps each output chunk while
    the next is computed, never holds more than the plan's bytes; the one-shot call holds it all."""
    volume, w = torch.randn(1, 2, 13, 6, 5), torch.randn(3, 2, 3, 3, 3)
    with memory.TensorBytes() as held:
        stream = streaming.conv3d_stream((volume[:, :, i] for i in range(13)), w.clone(), padding=padding,
                                         stride=stride, chunk=2)
        outs = []
        for y in stream:
            outs.append(float(y.sum()))
    ref = F.conv3d(volume.double(), w.double(), padding=padding, stride=stride)
    assert len(outs) == math.ceil(ref.shape[2] / 2)
    assert 0 < held.peak <= stream.plan.bytes
    with memory.TensorBytes() as one_shot:  # 2 channels at stride 2: positions packed into 16 channels, a buffer
        tritonconv.conv3d(volume.clone(), w.clone(), padding=padding, stride=stride)
    operands = memory.conv_device_bytes(volume.shape, w.shape, ref.shape, "float32")
    packed = memory.packed_bytes(_checks.conv_spec("conv3d", 3, volume, w, None, stride, padding, 1, 1), "float32")
    assert (packed > 0) == (stride == 2)  # at stride 1 the packed input would hold 8x the input's elements: not packed
    assert operands + (packed > 0) <= one_shot.peak <= operands + packed
    wide, w16 = torch.randn(1, 16, 5, 6, 5), torch.randn(3, 16, 3, 3, 3)  # 16 channels: no packing, operands only
    with memory.TensorBytes() as one_shot:
        out = tritonconv.conv3d(wide.clone(), w16.clone(), padding=padding, stride=stride)
    assert one_shot.peak == memory.conv_device_bytes(wide.shape, w16.shape, out.shape, "float32")
