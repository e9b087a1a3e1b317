"""``tritonconv.nn.convert`` on what real model zoos hold: conv subclasses that change only ``__init__``,
subclasses that pad or convolve themselves (left on torch, and named), the report, meta tensors, and
MONAI's 3D segmentation networks, whose training step must match torch's."""

import copy
import io

import pytest
import torch
from conftest import assert_close

import tritonconv
from tritonconv import nn as tnn


class InitOnlyConv3d(torch.nn.Conv3d):
    """As torchvision's video models' ``Conv3DSimple``: a subclass that only fixes constructor arguments."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__(c_in, c_out, (3, 3, 3), stride, (1, 1, 1), bias=False)

    @staticmethod
    def downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


class SelfPaddingConv2d(torch.nn.Conv2d):
    """As timm's ``Conv2dSame``: pads in its own ``forward``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.nn.functional.pad(x, (1, 1, 1, 1)))


class OwnConvForward(torch.nn.Conv1d):
    def _conv_forward(self, x, weight, bias):
        return super()._conv_forward(x, weight.flip(-1), bias)


def zoo() -> torch.nn.Sequential:
    torch.manual_seed(3)
    return torch.nn.Sequential(
        InitOnlyConv3d(2, 4), torch.nn.ReLU(), InitOnlyConv3d(4, 4, stride=2),
        torch.nn.ConvTranspose3d(4, 2, 2, stride=2), torch.nn.Conv3d(2, 2, 1),
    )


def test_subclass_that_changes_only_init_converts_and_keeps_its_class():
    net = zoo()
    x = torch.randn(1, 2, 6, 6, 6, requires_grad=True)
    ref = net(x)
    ref.backward(torch.ones_like(ref))
    ref_grads = [p.grad.clone() for p in net.parameters()] + [x.grad.clone()]
    net.zero_grad()
    x.grad = None
    report = tnn.convert(net, report=True)
    assert report.converted == {"InitOnlyConv3d": 2, "ConvTranspose3d": 1, "Conv3d": 1} and not report.left
    sub = net[0]
    assert isinstance(sub, InitOnlyConv3d) and isinstance(sub, tnn.Conv3d) and sub.downsample_stride(2) == (2, 2, 2)
    out = net(x)
    out.backward(torch.ones_like(out))
    assert_close(out, ref)
    for got, want in zip([p.grad for p in net.parameters()] + [x.grad], ref_grads):
        assert_close(got, want)
    again = tnn.convert(net, report=True)  # converting twice changes nothing; the report still counts them
    assert again.converted == report.converted and type(net[0]) is type(sub)


def test_converted_subclass_pickles_and_deep_copies():
    net = tnn.convert(zoo())
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    twin = copy.deepcopy(net)
    x = torch.randn(1, 2, 4, 4, 4)
    for other in (loaded, twin):
        assert type(other[0]) is type(net[0]) and isinstance(other[0], InitOnlyConv3d)
        assert torch.equal(other(x), net(x))


def test_weights_kept_in_torchs_layout_serve_code_that_flattens_parameters():
    """``convert`` lays weights out channels-innermost, so ``.view(-1)`` of them fails (``parameters_to_vector``,
    ``torch.optim.LBFGS``), as on torch's channels-last layers; ``lay_out_weights=False`` keeps torch's layout, and
    LBFGS's steps, the flattened parameters, the output layout and a pruned layer's output are torch's."""
    def make():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.ConvTranspose2d(4, 2, 2, 2)).double()

    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        torch.nn.utils.parameters_to_vector(tnn.convert(make()).parameters())

    def lbfgs(model):
        opt = torch.optim.LBFGS(model.parameters(), max_iter=4)

        def closure():
            opt.zero_grad()
            loss = model(x).square().mean()
            loss.backward()
            return loss
        opt.step(closure)
        return torch.nn.utils.parameters_to_vector(model.parameters())

    ours, theirs = tnn.convert(make(), lay_out_weights=False), make()
    assert isinstance(ours[0], tnn.Conv2d) and ours[0].weight.is_contiguous()
    assert_close(lbfgs(ours), lbfgs(theirs), torch.float64)
    for given in (x, x.to(memory_format=torch.channels_last)):
        assert ours(given).stride() == theirs(given).stride()
    from torch.nn.utils import prune

    for model in (ours, theirs):  # prune's view(-1) too
        prune.l1_unstructured(model[0], "weight", 0.5)
    assert_close(ours(x), theirs(x), torch.float64)


def test_weights_assigned_by_load_state_dict_are_laid_out_as_the_ones_they_replace():
    """``load_state_dict(assign=True)`` (after a meta-device construction) and torch's swap of tensors replace the
    weight with the one loaded, contiguous: it is laid out as the one it replaces (channels-innermost, or kept where
    ``lay_out_weights=False``); the output's layout stays the one the first weight given decided."""
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3), torch.nn.Conv1d(2, 2, 1))
    state = theirs.state_dict()
    x = torch.randn(2, 4, 7, 6)

    def meta(**kw):
        with torch.device("meta"):
            return tnn.convert(torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3), torch.nn.Conv1d(2, 2, 1)), **kw)

    ours = meta()
    ours.load_state_dict(state, assign=True)
    assert ours[0].weight.stride() == (36, 1, 12, 4) and ours[0].weight.device.type == "cpu"
    assert torch.equal(ours[0].weight, theirs[0].weight) and ours[0](x).is_contiguous()
    assert_close(ours[0](x), theirs[0](x))
    kept = meta(lay_out_weights=False)
    kept.load_state_dict(state, assign=True)
    assert kept[0].weight.is_contiguous()
    given = {k: v.to(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in state.items()}
    ours.load_state_dict(given, assign=True)
    assert ours[0].weight.stride() == (36, 1, 12, 4) and ours[0](x).is_contiguous()
    swapped = tnn.convert(torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3), torch.nn.Conv1d(2, 2, 1)))
    torch.__future__.set_swap_module_params_on_conversion(True)
    try:
        swapped.load_state_dict(state)
    finally:
        torch.__future__.set_swap_module_params_on_conversion(False)
    assert swapped[0].weight.stride() == (36, 1, 12, 4) and swapped[0](x).is_contiguous()
    assert_close(swapped[0](x), theirs[0](x))


def test_modules_that_override_the_convolution_are_left_and_named(capsys):
    net = torch.nn.Sequential(SelfPaddingConv2d(2, 3, 3), torch.nn.Flatten(2), OwnConvForward(3, 3, 3),
                              torch.nn.Conv1d(3, 3, 1))
    report = tnn.convert(net, verbose=True, report=True)
    assert type(net[0]) is SelfPaddingConv2d and type(net[2]) is OwnConvForward and type(net[3]) is tnn.Conv1d
    assert report.converted == {"Conv1d": 1}
    assert report.left == {"SelfPaddingConv2d": (1, "overrides forward"), "OwnConvForward": (1, "overrides _conv_forward")}
    line = capsys.readouterr().out.strip()
    assert line == str(report) and "\n" not in line
    assert "1 converted (Conv1d 1)" in line and "SelfPaddingConv2d 1: overrides forward" in line


@pytest.mark.parametrize("dtype", [torch.complex64, torch.int8])
def test_weights_it_cannot_run_are_left(dtype):
    conv = torch.nn.Conv2d(2, 2, 1)
    conv.weight = torch.nn.Parameter(torch.ones(2, 2, 1, 1, dtype=dtype), requires_grad=dtype.is_complex)
    report = tnn.convert(torch.nn.Sequential(conv), report=True)
    assert type(conv) is torch.nn.Conv2d
    assert report.left == {"Conv2d": (1, f"weight dtype {str(dtype)[6:]} not supported")}


def test_what_is_not_a_module_gets_a_clear_error():
    with pytest.raises(TypeError, match="convert: expected `model` to be a torch.nn.Module, got Tensor"):
        tnn.convert(torch.randn(2, 3))
    with pytest.raises(TypeError, match="fp8.convert: expected `model` to be a torch.nn.Module, got Tensor"):
        tritonconv.fp8.convert(torch.randn(2, 3))


def test_uninitialised_lazy_module_is_left():
    lazy = torch.nn.LazyConv2d(4, 3)
    report = tnn.convert(torch.nn.Sequential(lazy), report=True)
    assert report.left == {"LazyConv2d": (1, "lazy module not yet initialised: convert after its first call")}


@pytest.mark.parametrize("op,x_shape,w_shape,kw", [
    ("conv1d", (2, 4, 33), (6, 2, 5), dict(stride=2, padding=3, groups=2)),
    ("conv2d", (1, 8, 15, 17), (8, 1, 3, 3), dict(padding="same", groups=8)),
    ("conv3d", (2, 3, 5, 9, 8), (4, 3, 1, 3, 3), dict(stride=(1, 2, 2), dilation=(1, 2, 1))),
    ("conv_transpose2d", (1, 6, 5, 7), (6, 4, 3, 3), dict(stride=2, padding=1, output_padding=1)),
])
def test_meta_tensors_give_torch_shapes(op, x_shape, w_shape, kw):
    x = torch.empty(x_shape, device="meta", requires_grad=True)
    w = torch.empty(w_shape, device="meta", requires_grad=True)
    out = getattr(tritonconv, op)(x, w, **kw)
    ref = getattr(torch.nn.functional, op)(x, w, **kw)
    assert out.device.type == "meta" and out.shape == ref.shape and out.dtype == ref.dtype
    out.sum().backward()
    assert x.grad.shape == x.shape and w.grad.shape == w.shape and x.grad.device.type == "meta"


def test_converted_model_on_meta_device():
    with torch.device("meta"):
        net = tnn.convert(zoo())
    out = net(torch.empty(2, 2, 8, 8, 8, device="meta"))
    assert out.shape == (2, 2, 8, 8, 8) and out.device.type == "meta"
    conv = tnn.Conv2d(3, 5, 3, stride=2, device="meta")
    assert conv(torch.empty(1, 3, 11, 11, device="meta")).shape == (1, 5, 5, 5)


# --- MONAI's 3D segmentation networks (what CT/MRI users run) -------------------------------------

monai = pytest.importorskip("monai")
NETS = {  # small widths, the smallest volume each one's downsampling allows
    "UNet": (lambda: monai.networks.nets.UNet(3, 1, 2, channels=(4, 8, 16), strides=(2, 2), num_res_units=1),
             (8, 8, 8)),
    "BasicUNet": (lambda: monai.networks.nets.BasicUNet(3, 1, 2, features=(2, 2, 4, 4, 4, 2),
                                                        norm=("group", {"num_groups": 2})), (16, 16, 16)),
    "DynUNet": (lambda: monai.networks.nets.DynUNet(3, 1, 2, kernel_size=[3, 3, 3], strides=[1, 2, 2],
                                                    upsample_kernel_size=[2, 2], filters=[4, 8, 16]), (8, 8, 8)),
    "AttentionUnet": (lambda: monai.networks.nets.AttentionUnet(3, 1, 2, channels=(4, 8, 16), strides=(2, 2)),
                      (8, 8, 8)),
    "SegResNet": (lambda: monai.networks.nets.SegResNet(3, init_filters=8, in_channels=1, out_channels=2,
                                                        blocks_down=(1, 1), blocks_up=(1,)), (8, 8, 8)),
}


@pytest.mark.parametrize("name", NETS)
def test_monai_network_training_step_matches_torch(name):
    """Every convolution converts (transposed ones included); output, input gradient and every
    parameter's gradient match torch's (volumes of 8^3 and 16^3:
    the interpreter's time, in CI, grows with them)."""
    torch.manual_seed(0)
    make, volume = NETS[name]
    ref = make().train()
    ours = copy.deepcopy(ref)
    report = tnn.convert(ours, report=True)
    convs = [m for m in ours.modules() if isinstance(m, (torch.nn.modules.conv._ConvNd))]
    assert not report.left and sum(report.converted.values()) == len(convs) > 0, str(report)
    assert all(isinstance(m, (tnn._TritonConv, tnn._TritonConvTranspose)) for m in convs)
    x = torch.randn(1, 1, *volume)
    outs = []
    for model in (ref, ours):
        xi = x.clone().requires_grad_()
        out = model(xi)
        out = out[0] if isinstance(out, (list, tuple)) else out
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs.append((out, xi.grad, {k: p.grad for k, p in model.named_parameters()}))
    (o_ref, gx_ref, g_ref), (o, gx, g) = outs
    assert_close(o, o_ref)
    assert_close(gx, gx_ref)
    assert g.keys() == g_ref.keys()
    flat = [torch.cat([grads[k].flatten() for k in sorted(grads)]) for grads in (g, g_ref)]
    assert_close(*flat)  # every parameter's gradient, as one vector
    for k in g_ref:  # and each, with an allowance on the whole's scale: a conv bias before a norm layer
        # gets a sum that cancels to ~0, whose rounding error follows the size of its terms
        assert (g[k] - g_ref[k]).norm() <= 1e-4 * g_ref[k].norm() + 1e-6 * flat[1].norm(), k
