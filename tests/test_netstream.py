"""Whole networks streamed along depth (tritonconv.netstream): equal to the whole-volume call, within the
planned bytes, and refused before reading a slice when a layer cannot stream."""

import pytest
import torch
from conftest import assert_close

import tritonconv
from tritonconv import memory, netstream

pytestmark = pytest.mark.usefixtures("plain_allocation")  # byte counts below (conftest)


def randomize_norms(net: torch.nn.Module) -> torch.nn.Module:
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


class Skips(torch.nn.Module):
    """Strided and dilated convs, pooling, both upsamplings, a transposed conv, adds and concatenations."""

    def __init__(self, c: int = 2) -> None:
        super().__init__()
        self.stem = torch.nn.Conv3d(c, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm3d(4)
        self.act = torch.nn.PReLU(4)
        self.pool = torch.nn.MaxPool3d(2)
        self.mid = torch.nn.Conv3d(4, 6, 3, padding=(2, 1, 1), dilation=(2, 1, 1))
        self.down = torch.nn.Conv3d(6, 6, 3, stride=2, padding=1)
        self.up_t = torch.nn.ConvTranspose3d(6, 6, 3, stride=2, padding=1, output_padding=1)
        self.up_tri = torch.nn.Upsample(scale_factor=2, mode="trilinear")
        self.up_near = torch.nn.Upsample(scale_factor=2, mode="nearest")
        self.drop = torch.nn.Dropout3d(0.3)
        self.head = torch.nn.Conv3d(4 + 6 + 6, 3, (2, 1, 1), padding="same")

    def forward(self, x):
        h = self.act(self.bn(self.stem(x)))
        m = self.mid(self.pool(h))
        m = m + self.up_t(self.down(m))
        u = torch.cat([h, self.up_tri(m), self.drop(self.up_near(m))], dim=1)
        return torch.relu(self.head(u))


class Plain(torch.nn.Sequential):
    def __init__(self) -> None:
        super().__init__(torch.nn.Conv3d(1, 3, (3, 3, 3), stride=(2, 1, 1), padding=(2, 1, 1)), torch.nn.GELU(),
                         torch.nn.AvgPool3d((3, 1, 1), stride=(2, 1, 1)), torch.nn.Conv3d(3, 2, (2, 3, 3), padding=1))


def slices(volume: torch.Tensor, sizes=(1,)):
    """The volume as a generator of depth slices and slabs of the given sizes, in turn."""
    start, i = 0, 0
    while start < volume.shape[2]:
        d = sizes[i % len(sizes)]
        yield volume[:, :, start] if d == 1 else volume[:, :, start:start + d]
        start, i = start + d, i + 1


CASES = [  # network, (N, C, H, W), depth
    (Skips, (1, 2, 8, 8), 12),
    (Skips, (2, 2, 4, 4), 20),
    (Plain, (1, 1, 5, 7), 11),
]


@pytest.mark.parametrize("make,shape,depth", CASES)
@pytest.mark.parametrize("chunk,sizes", [(1, (1,)), (3, (2, 1, 3))])
def test_streamed_network_equals_the_whole_volume_within_its_plan(make, shape, depth, chunk, sizes):
    torch.manual_seed(0)
    net = randomize_norms(make())
    n, c, h, w = shape
    x = torch.randn(n, c, depth, h, w)
    with torch.no_grad():
        ref = net(x)
        with memory.TensorBytes() as held:
            run = netstream.stream(net, slices(x, sizes), chunk=chunk)
            outs = [y.clone() for y in run]
        planned = netstream.plan(net, shape, depth, chunk)
    assert all(o.shape[2] <= chunk for o in outs) and planned.depth == ref.shape[2]
    assert_close(torch.cat(outs, 2), ref.double())
    held_outputs = sum(o.numel() * o.element_size() for o in outs)  # the clones the test keeps
    assert held.peak - held_outputs <= run.peak_bytes and 0 < run.measured_bytes <= run.peak_bytes
    if sizes == (1,):  # the plan reads slices one by one; slabs arrive a slab at a time
        assert run.peak_bytes == planned.peak_bytes


def test_monai_unet_streams_with_batch_norm_in_eval_mode():
    monai = pytest.importorskip("monai.networks.nets")
    torch.manual_seed(0)
    net = randomize_norms(monai.UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8, 16),
                                     strides=(2, 2), num_res_units=1, norm="batch"))
    x = torch.randn(1, 1, 16, 8, 8)
    with torch.no_grad():
        out = torch.cat(list(netstream.stream(net, slices(x), chunk=2)), 2)
        assert_close(out, net(x).double())


def test_memory_is_flat_in_depth_when_streamed():
    torch.manual_seed(0)
    net = randomize_norms(Skips())
    peaks = [netstream.plan(net, (1, 2, 8, 8), depth, 2).peak_bytes for depth in (16, 32, 64, 128)]
    assert peaks[0] <= peaks[1] == peaks[2] == peaks[3]  # a shallow volume ends before the steady state


def test_chunk_from_a_budget():
    net = randomize_norms(Skips())
    x = torch.randn(1, 2, 12, 4, 4)
    small = netstream.plan(net, (1, 2, 4, 4), 12, 1).peak_bytes
    big = netstream.plan(net, (1, 2, 4, 4), 12, 4).peak_bytes
    run = netstream.stream(net, slices(x), budget=(small + big) // 2)
    one = netstream.plan(net, (1, 2, 4, 4), netstream.PLAN_DEPTH, 1).peak_bytes  # what the planner reads
    with pytest.raises(ValueError, match=f"holds {one} bytes .* over the budget of {one - 1} bytes"):
        netstream.stream(net, slices(x), budget=one - 1)
    with torch.no_grad():
        out = torch.cat(list(run), 2)
        assert_close(out, net(x).double())
    assert 1 <= run.chunk < 4 and run.peak_bytes <= (small + big) // 2


def test_conv2plus1d_blocks_stream():
    torch.manual_seed(0)
    net = torch.nn.Sequential(tritonconv.nn.Conv2Plus1d(2, 4, 3, stride=(2, 1, 1), padding=1, mid_activation="relu"),
                              torch.nn.ReLU(), tritonconv.nn.Conv2Plus1d(4, 3, (2, 3, 3), padding=(1, 1, 1)))
    x = torch.randn(1, 2, 9, 5, 4)
    with torch.no_grad():
        out = torch.cat(list(netstream.stream(net, slices(x), chunk=2)), 2)
        assert_close(out, net(x).double())


def test_converted_network_streams_through_tritonconv_kernels():
    net = tritonconv.nn.convert(randomize_norms(Plain()))
    assert isinstance(net[0], tritonconv.nn.Conv3d)
    x = torch.randn(1, 1, 9, 4, 5)
    with torch.no_grad():
        out = torch.cat(list(netstream.stream(net, slices(x), chunk=2)), 2)
        assert_close(out, net(x).double())


class Scaled(torch.nn.Module):
    """Per-channel state (a parameter and a function of a buffer), a tensor used twice in one call, clamps, an
    upsampling by a tuple of floats (as nn.Upsample keeps it), and an in-place activation no other layer reads."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(2, 3, 3, padding=1)
        self.gamma = torch.nn.Parameter(torch.randn(1, 3, 1, 1, 1))
        self.register_buffer("shift", torch.randn(3, 1, 1, 1))
        self.act = torch.nn.ReLU(inplace=True)
        self.up = torch.nn.Upsample(scale_factor=(2, 1, 2), mode="nearest")

    def forward(self, x):
        h = self.act(self.conv(x))
        g = torch.sigmoid(self.shift) * 2  # module state alone: computed once
        y = torch.cat([h * self.gamma + g, h, h], 1)  # h read three times
        return self.up(torch.add(y, y, alpha=0.5).clamp(-1.0, 1.0))


def test_per_channel_state_and_repeated_operands_stream():
    torch.manual_seed(0)
    net, x = Scaled().eval(), torch.randn(1, 2, 7, 5, 6)
    with torch.no_grad():
        ref = net(x.clone())
        out = torch.cat(list(netstream.stream(net, slices(x), chunk=2)), 2)
        assert netstream.plan(net, (1, 2, 5, 6), 7, 2).depth == ref.shape[2] == 14
    assert_close(out, ref.double())


class Functional(torch.nn.Module):
    """Convolutions called as functions on module state: a weight standardised in the forward (as StdConv's), torch's
    and tritonconv's functions (an activation fused, 'same' padding of an even kernel, asymmetric padding and
    dilation), transposed ones strided 2; pooling called as functions."""

    def __init__(self) -> None:
        super().__init__()
        self.w1, self.b1 = torch.nn.Parameter(torch.randn(4, 2, 3, 3, 3)), torch.nn.Parameter(torch.randn(4))
        self.w2 = torch.nn.Parameter(torch.randn(3, 4, 2, 3, 1) / 5)
        self.up1 = torch.nn.Parameter(torch.randn(3, 2, 3, 3, 3) / 5)
        self.up2 = torch.nn.Parameter(torch.randn(3, 2, 3, 2, 3) / 5)
        self.w3 = torch.nn.Parameter(torch.randn(2, 4, 3, 1, 3) / 5)

    def forward(self, x):
        w = self.w1 - self.w1.mean((1, 2, 3, 4), keepdim=True)
        w = w / (w.var((1, 2, 3, 4), keepdim=True) + 1e-5).sqrt()
        h = torch.nn.functional.conv3d(x, w, self.b1, padding=(1, 0, 2), dilation=(1, 2, 1))
        h = torch.nn.functional.max_pool3d(h, (2, 1, 1), stride=1)
        h = tritonconv.conv3d(h, self.w2, None, 1, "same", activation="relu")
        u = torch.nn.functional.conv_transpose3d(h, self.up1, None, 2, 1, 1)
        v = tritonconv.conv_transpose3d(h, self.up2, None, 2, (1, 0, 1), (1, 0, 1))
        y = tritonconv.conv3d(torch.cat([u, v], 1), self.w3, stride=(2, 1, 1), padding=(1, 0, 1))
        return torch.nn.functional.avg_pool3d(y, (3, 3, 3), (2, 1, 1), (0, 1, 1), count_include_pad=False)


@pytest.mark.parametrize("chunk", [1, 3])
def test_convolutions_called_as_functions_stream(chunk):
    """``F.conv3d`` and ``tritonconv.conv3d`` (and the transposed ones) on module state, or a function of it alone,
    and ``F.max_pool3d`` and ``F.avg_pool3d``, stream as their modules do; the plan's depth is the whole volume's."""
    torch.manual_seed(0)
    net, x = Functional().eval(), torch.randn(1, 2, 9, 6, 5)
    with torch.no_grad():
        ref = net(x.clone())
        out = torch.cat(list(netstream.stream(net, slices(x, (2, 1)), chunk=chunk)), 2)
        assert netstream.plan(net, (1, 2, 6, 5), 9, chunk).depth == ref.shape[2]
    assert_close(out, ref.double())


def never_read():
    raise AssertionError("a slice was read")
    yield


class Norm(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.conv, self.layer = torch.nn.Conv3d(2, 2, 3, padding=1), layer

    def forward(self, x):
        return self.layer(self.conv(x))


class ShapeDependent(torch.nn.Module):
    def forward(self, x):
        return x * x.shape[2]


class DepthState(Norm):  # a parameter that differs along depth: a window would read the wrong depths of it
    def __init__(self):
        super().__init__(torch.nn.Identity())
        self.pos = torch.nn.Parameter(torch.randn(1, 2, 6, 1, 1))

    def forward(self, x):
        return self.conv(x) + self.pos


class InPlaceShared(Norm):  # in place on a tensor the concatenation reads too: the whole volume's result
    def __init__(self):  # depends on program order
        super().__init__(torch.nn.ReLU(inplace=True))

    def forward(self, x):
        h = self.conv(x)
        return torch.cat([self.conv(self.layer(h)), h], 1)


class InPlaceFunctional(Norm):
    def __init__(self):
        super().__init__(torch.nn.Identity())

    def forward(self, x):
        h = self.conv(x)
        return torch.nn.functional.leaky_relu(h, 0.1, True) + h


class DynamicWeight(torch.nn.Module):  # a weight computed from the volume: no window holds it whole
    def forward(self, x):
        return torch.nn.functional.conv3d(x, torch.relu(x))


@pytest.mark.parametrize("net,match", [
    (Norm(torch.nn.InstanceNorm3d(2)), "reads the whole volume"),
    (Norm(torch.nn.GroupNorm(1, 2)), "reads the whole volume"),
    (Norm(torch.nn.AdaptiveAvgPool3d(1)), "reads the whole volume"),
    (Norm(torch.nn.BatchNorm3d(2)).train(), "training mode"),
    (Norm(torch.nn.Upsample(size=(4, 4, 4))), "output size"),
    (Norm(torch.nn.MaxPool3d(2, padding=1)), "pads or rounds up"),
    (Norm(torch.nn.Conv3d(2, 2, 3, padding=1, padding_mode="reflect")), "pad with zeros only"),
    (Norm(torch.nn.Upsample(scale_factor=1.5)), "integer factors"),
    (ShapeDependent(), "shape or attributes"),
    (DepthState(), r"'add' reads module state 'pos' of shape \(1, 2, 6, 1, 1\), which varies along depth"),
    (DynamicWeight(), r"'conv3d' \(torch.conv3d\) takes a weight computed from the streamed volume"),
    (Norm(torch.nn.MaxPool3d(2, return_indices=True)), r"'layer' \(MaxPool3d\) returns indices too"),
    (InPlaceShared(), "changes 'conv' in place .* which 'cat' reads too"),
    (InPlaceFunctional(), "changes 'conv' in place .* which 'add' reads too"),
])
def test_a_layer_that_cannot_stream_is_named_before_any_slice_is_read(net, match):
    with pytest.raises(ValueError, match=match):
        netstream.stream(net.eval() if "training" not in match else net, never_read(), chunk=1)


def test_depths_the_network_cannot_take_fail_as_the_whole_volume_does():
    """A depth the strides do not divide: the skip's two inputs differ in depth, for the whole volume and
    the stream alike; a volume too shallow for the network is refused too."""
    net = randomize_norms(Skips())
    x = torch.randn(1, 2, 13, 4, 4)
    with torch.no_grad(), pytest.raises(RuntimeError):
        net(x)
    with torch.no_grad(), pytest.raises(ValueError, match="combines inputs of depths"):
        list(netstream.stream(net, slices(x), chunk=2))
    with pytest.raises(ValueError, match="too shallow"):
        list(netstream.stream(randomize_norms(Plain()), slices(torch.randn(1, 1, 2, 4, 4)), chunk=1))
    with pytest.raises(ValueError, match="yielded nothing"):
        list(netstream.stream(net, iter([]), chunk=1))
    for chunk in (1, None):  # a volume where its slices go: iterated, its items would pass as slices of 2 images
        with pytest.raises(TypeError, match=r"got a tensor \(1, 2, 13, 4, 4\).*\[x\].*x.unbind\(2\)"):
            netstream.stream(net, x, chunk=chunk)
    with pytest.raises(ValueError, match="cannot be traced"):
        netstream.stream(Data(), never_read(), chunk=1)


class Data(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: no graph
            return x
        return -x
