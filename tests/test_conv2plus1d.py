"""(2+1)D and P3D: conv2plus1d (fused and two-launch) and the modules against composed torch conv3d."""

import pytest
import torch
import torch.nn.functional as F
from conftest import REL_TOL, assert_close, rel_err
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_conv import ACT

import tritonconv
from tritonconv import geometry, shapes
from tritonconv._checks import ACTIVATIONS
from tritonconv.nn import Conv2Plus1d, P3DBlock


def composed(x, ws, wt, bs, bt, stride, padding, dilation, mid_activation=None, activation=None,
             compute=torch.float64):
    """The two torch conv3d calls (in ``compute``), mid rounded to the input dtype as our two-launch path stores it."""
    (st, sh, sw), (dt, dh, dw) = stride, dilation
    pt, ph, pw = padding
    d64 = [None if t is None else t.to(compute) for t in (x, ws, wt, bs, bt)]
    mid = ACT[mid_activation](F.conv3d(d64[0], d64[1], d64[3], (1, sh, sw), (0, ph, pw), (1, dh, dw)))
    mid = mid.to(x.dtype).to(compute)
    return ACT[activation](F.conv3d(mid, d64[2], d64[4], (st, 1, 1), (pt, 0, 0), (dt, 1, 1)))


CASES = [  # input, C_mid, C_out, (kt, kh, kw), stride, padding, dilation, mid_activation, activation
    ((2, 3, 5, 7, 6), 4, 5, (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), "relu", None),
    ((1, 4, 7, 9, 8), 6, 3, (3, 3, 2), (2, 2, 1), (1, 0, 1), (1, 2, 1), "gelu", "silu"),
    ((2, 2, 4, 5, 5), 17, 20, (2, 1, 3), (3, 1, 2), (2, 0, 1), (2, 1, 1), None, None),  # stride > kernel
    ((1, 1, 3, 4, 4), 1, 1, (1, 3, 3), (1, 1, 1), (0, 1, 1), (1, 1, 1), "silu", "relu"),  # channels 1
]


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("x_shape,c_mid,c_out,k,stride,padding,dilation,mid_act,act", CASES)
def test_matches_composed_torch(fused, x_shape, c_mid, c_out, k, stride, padding, dilation, mid_act, act):
    x = torch.randn(x_shape)
    ws, wt = torch.randn(c_mid, x_shape[1], 1, *k[1:]), torch.randn(c_out, c_mid, k[0], 1, 1)
    bs, bt = torch.randn(c_mid), torch.randn(c_out)
    out = tritonconv.conv2plus1d(x, ws, wt, bs, bt, stride, padding, dilation, mid_activation=mid_act,
                                 activation=act, fused=fused)
    assert_close(out, composed(x, ws, wt, bs, bt, stride, padding, dilation, mid_act, act))


@pytest.mark.parametrize("mid_act", ACTIVATIONS)
def test_fused_temporal_padding_takes_no_mid_bias(mid_act):
    """Frames of pure temporal padding (2 before, 2 after a 1-tap temporal conv): the fused kernel's mid rows there
    are zero, though its spatial bias is not (the rows read x as zeros, take no bias, and every mid activation maps 0
    to 0: each the API accepts is tried, so one that does not fails here), so those outputs are the temporal bias
    alone."""
    x = torch.randn(1, 3, 3, 5, 4)
    ws, wt, bs, bt = torch.randn(6, 3, 1, 3, 3), torch.randn(5, 6, 1, 1, 1), torch.randn(6) + 2, torch.randn(5)
    out = tritonconv.conv2plus1d(x, ws, wt, bs, bt, padding=(2, 1, 1), mid_activation=mid_act, fused=True)
    assert out.shape == (1, 5, 7, 5, 4)
    assert torch.equal(out[:, :, [0, 1, 5, 6]], bt.view(1, 5, 1, 1, 1).expand(1, 5, 4, 5, 4))
    assert_close(out, composed(x, ws, wt, bs, bt, (1, 1, 1), (2, 1, 1), (1, 1, 1), mid_act))


@st.composite
def factorized_problems(draw):
    """A random (2+1)D layer, small for the interpreter; now and then over 64 input or mid channels (more than one
    chunk of the spatial reduction, or of mid, per program)."""
    c_in = draw(st.sampled_from([1, 2, 3, 5, 70]))
    c_mid = draw(st.sampled_from([1, 4, 17, 66]))
    k = [draw(st.integers(1, 3)) for _ in range(3)]
    stride = [draw(st.integers(1, 3)) for _ in range(3)]
    dilation = [draw(st.integers(1, 2)) for _ in range(3)]
    padding = [draw(st.integers(0, 2)) for _ in range(3)]
    sizes = [draw(st.integers(1, 6)) for _ in range(3)]
    span = [(ki - 1) * di + 1 for ki, di in zip(k, dilation)]
    assume(all(s + 2 * p >= sp for s, p, sp in zip(sizes, padding, span)))
    return dict(x_shape=(draw(st.integers(1, 2)), c_in, *sizes), c_mid=c_mid, c_out=draw(st.integers(1, 5)), k=k,
                stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation),
                mid_act=draw(st.sampled_from(list(ACT))), act=draw(st.sampled_from(list(ACT))),
                bias=draw(st.booleans()), channels_last=draw(st.booleans()))


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")  # SiLU's exp(-x) is inf below -88: x / inf = -0
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(factorized_problems())
def test_fused_random_configurations(p):
    """The fused kernel against composed torch on random layers: strides, dilations, padding up to the kernel's
    span, channels-last or not, biases or not, every activation on mid and output; weights scaled by their fan-in, as
    a layer's are. Within fp32's tolerance, or twice torch's own fp32 error where the layer is ill-conditioned: with
    unscaled weights, sums of hundreds of products landed in a GELU's tail, where torch's fp32 erred as much as the
    kernel (up to 1.0 on 66 mid channels, 3 x 2 x 2 taps)."""
    x = torch.randn(p["x_shape"])
    if p["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    ws = torch.randn(p["c_mid"], p["x_shape"][1], 1, *p["k"][1:]) / (p["x_shape"][1] * p["k"][1] * p["k"][2]) ** 0.5
    wt = torch.randn(p["c_out"], p["c_mid"], p["k"][0], 1, 1) / (p["c_mid"] * p["k"][0]) ** 0.5
    bs, bt = (torch.randn(p["c_mid"]), torch.randn(p["c_out"])) if p["bias"] else (None, None)
    out = tritonconv.conv2plus1d(x, ws, wt, bs, bt, p["stride"], p["padding"], p["dilation"],
                                 mid_activation=p["mid_act"], activation=p["act"], fused=True)
    args = (x, ws, wt, bs, bt, p["stride"], p["padding"], p["dilation"], p["mid_act"], p["act"])
    ref = composed(*args)
    assert_close(out, ref, tol=max(REL_TOL[torch.float32], 2 * rel_err(composed(*args, compute=torch.float32), ref)))


@pytest.mark.parametrize("fused", [False, True])
def test_weights_copied_channels_inner(monkeypatch, fused):
    """The large-problem path (weights in torch's layout copied channels-innermost; by default these small
    shapes read them in place; the input is read in place either way)."""
    monkeypatch.setattr(geometry, "WEIGHT_COPY_MACS", 0)
    test_matches_composed_torch(fused, *CASES[1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fused_half_precision(dtype):
    x = torch.randn(1, 4, 5, 6, 7, dtype=dtype)
    ws, wt = torch.randn(8, 4, 1, 3, 3, dtype=dtype), torch.randn(6, 8, 3, 1, 1, dtype=dtype)
    for fused in (True, False):
        out = tritonconv.conv2plus1d(x, ws, wt, padding=1, mid_activation="relu", fused=fused)
        assert_close(out, composed(x, ws, wt, None, None, (1, 1, 1), (1, 1, 1), (1, 1, 1), "relu"), dtype)


def test_fused_and_two_launch_agree_with_channels_last_and_same_padding():
    x = torch.randn(2, 5, 4, 6, 6).contiguous(memory_format=torch.channels_last_3d)
    ws, wt = torch.randn(7, 5, 1, 3, 3), torch.randn(4, 7, 2, 1, 1)
    a = tritonconv.conv2plus1d(x, ws, wt, padding="same", fused=True)
    b = tritonconv.conv2plus1d(x, ws, wt, padding="same", fused=False)
    assert a.shape == b.shape == (2, 4, 4, 6, 6) and a.is_contiguous(memory_format=torch.channels_last_3d)
    assert_close(a, b.double())
    # 'same' with the even temporal kernel pads one more frame at the end, as torch does
    ref = F.conv3d(F.conv3d(x.double(), ws.double(), padding="same"), wt.double(), padding="same")
    assert_close(a, ref)


def test_unbatched():
    x = torch.randn(3, 4, 5, 5)
    ws, wt = torch.randn(4, 3, 1, 3, 3), torch.randn(2, 4, 3, 1, 1)
    out = tritonconv.conv2plus1d(x, ws, wt, padding=1)
    assert out.shape == (2, 4, 5, 5)
    assert_close(out, composed(x[None], ws, wt, None, None, (1, 1, 1), (1, 1, 1), (1, 1, 1))[0])


@pytest.mark.parametrize("ws_shape,wt_shape,match", [
    ((4, 3, 2, 3, 3), (5, 4, 3, 1, 1), "weight_spatial.*temporal extent 2"),
    ((4, 3, 1, 3, 3), (5, 4, 3, 3, 1), "weight_temporal.*kt, 1, 1"),
    ((4, 3, 1, 3, 3), (5, 6, 3, 1, 1), "weight_temporal.*4 mid channels"),
    ((4, 2, 1, 3, 3), (5, 4, 3, 1, 1), "spatial stage.*weight"),
    ((4, 3, 3, 3), (5, 4, 3, 1, 1), "weight_spatial.*rank 5"),
])
def test_bad_weights(ws_shape, wt_shape, match):
    with pytest.raises(ValueError, match=match):
        tritonconv.conv2plus1d(torch.randn(1, 3, 4, 5, 5), torch.randn(ws_shape), torch.randn(wt_shape))


def test_bad_arguments():
    x, ws, wt = torch.randn(1, 3, 4, 5, 5), torch.randn(4, 3, 1, 3, 3), torch.randn(5, 4, 3, 1, 1)
    with pytest.raises(ValueError, match="temporal stage.*not positive"):
        tritonconv.conv2plus1d(x, ws, torch.randn(5, 4, 7, 1, 1))
    with pytest.raises(ValueError, match="mid_activation"):
        tritonconv.conv2plus1d(x, ws, wt, mid_activation="softplus")
    with pytest.raises(TypeError, match="weight_temporal|weight.*dtype"):
        tritonconv.conv2plus1d(x, ws, wt.half())
    with pytest.raises(ValueError, match="fused path has no backward"):
        tritonconv.conv2plus1d(x, ws.requires_grad_(), wt, fused=True)


def test_mid_channel_rule_reproduces_r2plus1d18():
    assert shapes.r2plus1d_mid_channels(64, 64, 3, 3) == 144
    assert shapes.r2plus1d_mid_channels(128, 128, 3, 3) == 288
    assert shapes.r2plus1d_mid_channels(256, 256, 3, 3) == 576
    assert Conv2Plus1d(64, 64, 3).spatial.out_channels == 144
    assert Conv2Plus1d(128, 128, 3).temporal.in_channels == 288
    weights = sum(p.numel() for n, p in Conv2Plus1d(64, 64, 3, bias=False).named_parameters())
    assert weights == shapes.factorized_params(64, 64, 3, 3, "2+1d") == 64 * 64 * 27


def test_module_forward_and_gradients():
    torch.manual_seed(3)
    mod = Conv2Plus1d(3, 5, (3, 3, 3), stride=(2, 1, 1), padding=1, mid_activation="relu")
    x = torch.randn(2, 3, 5, 6, 6, requires_grad=True)
    y = mod(x)
    s, t = mod.spatial, mod.temporal
    x_ref = x.detach().double().requires_grad_()
    params = [p.detach().double().requires_grad_() for p in (s.weight, t.weight, s.bias, t.bias)]
    ref = composed(x_ref, params[0], params[1], params[2], params[3], (2, 1, 1), (1, 1, 1), (1, 1, 1), "relu")
    assert_close(y, ref)
    g = torch.randn_like(y)
    y.backward(g)
    ref.backward(g.double())
    assert_close(x.grad, x_ref.grad)
    for ours, theirs in zip((s.weight, t.weight, s.bias, t.bias), params):
        assert_close(ours.grad, theirs.grad)
    with torch.no_grad():
        assert_close(mod(x, fused=True), ref.detach())


@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_p3d_variants(variant):
    torch.manual_seed(4)
    block = P3DBlock(4, 6 if variant != "C" else 4, 3, variant=variant, activation="relu")
    x = torch.randn(2, 4, 5, 6, 6)
    s, t = block.spatial, block.temporal

    def S(v):
        return F.relu(F.conv3d(v, s.weight.double(), s.bias.double(), padding=(0, 1, 1)))

    def T(v, act=lambda u: u):
        return act(F.conv3d(v, t.weight.double(), t.bias.double(), padding=(1, 0, 0)))

    xd = x.double()
    ref = {"A": lambda: T(S(xd)), "B": lambda: S(xd) + T(xd, F.relu), "C": lambda: S(xd) + T(S(xd))}[variant]()
    assert_close(block(x), ref)
    c_out = block.temporal.out_channels
    weights = sum(p.numel() for n, p in block.named_parameters() if n.endswith("weight"))
    assert weights == shapes.factorized_params(4, c_out, 3, 3, f"P3D-{variant}")


def test_p3d_shape_mismatch_is_a_clear_error():
    block = P3DBlock(3, 3, 3, stride=(2, 1, 1), padding=0, variant="C")
    with pytest.raises(ValueError, match="variant C.*spatial branch"):
        block(torch.randn(1, 3, 6, 6, 6))
    with pytest.raises(ValueError, match="variant"):
        P3DBlock(3, 3, variant="D")


def test_complexity_and_traffic_algebra():
    # The document: a k x k x k kernel costs T H W k^3 per channel pair; (2+1)D at R(2+1)D width the same.
    assert shapes.factorized_macs(1, 8, 56, 56, 1, 1, 3, 3, "3d") == 8 * 56 * 56 * 27
    assert shapes.factorized_macs(2, 8, 56, 56, 64, 64, 3, 3, "2+1d") == shapes.factorized_macs(
        2, 8, 56, 56, 64, 64, 3, 3, "3d")
    x, out = (8, 64, 8, 56, 56), (8, 64, 8, 56, 56)
    two = shapes.conv2plus1d_bytes(x, 144, 64, (3, 3, 3), out, "bfloat16", fused=False)
    one = shapes.conv2plus1d_bytes(x, 144, 64, (3, 3, 3), out, "bfloat16", fused=True)
    assert two - one == 2 * 8 * 144 * 8 * 56 * 56 * 2  # the mid tensor written and read back


def test_blocks_keep_their_constructor_arguments():
    block = Conv2Plus1d(4, 6, (3, 3, 3), stride=(2, 1, 1), padding=1)
    assert (block.in_channels, block.out_channels, block.mid_channels) == (4, 6, shapes.r2plus1d_mid_channels(4, 6, 3, 3))
    assert block.kernel_size == (3, 3, 3) and block.stride == (2, 1, 1) and block.dilation == (1, 1, 1)
    assert "mid_channels=" in repr(block)
    p3d = P3DBlock(4, 6, 3, variant="B")
    assert (p3d.in_channels, p3d.out_channels, p3d.kernel_size, p3d.stride, p3d.padding) == (
        4, 6, (3, 3, 3), (1, 1, 1), ((1, 1), (1, 1), (1, 1)))
