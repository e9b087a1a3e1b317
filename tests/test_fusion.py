"""``tritonconv.fuse``: eval-mode batch norms folded into the convolutions before them, activations fused into their
epilogues, every form torch.fx records; what cannot fuse exactly left as it was; and the modules' ``activation``."""

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close

import tritonconv
from tritonconv import nn as tnn


def norm(kind, c: int, affine: bool = True) -> torch.nn.Module:
    """A batch norm with running statistics and affine parameters far from their initial values."""
    bn = kind(c, affine=affine)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2.0)
    if affine:
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    return bn


def fused_as_before(model: torch.nn.Module, *xs: torch.Tensor):
    """``tritonconv.fuse(model, report=True)``, the fused model's outputs on ``xs`` checked against ``model``'s."""
    with torch.no_grad():
        want = model(*xs)
        fused, found = tritonconv.fuse(model, report=True)
        got = fused(*xs)
    for g, w in zip(*((t,) if isinstance(t, torch.Tensor) else t for t in (got, want))):
        assert_close(g, w)
    return fused, found


class EveryForm(torch.nn.Module):
    """One chain per rank and form of activation: modules, functions (in place or not), methods."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.n1, self.a1 = torch.nn.Conv1d(3, 5, 3, padding=1), norm(torch.nn.BatchNorm1d, 5), torch.nn.ReLU()
        self.c2, self.n2 = torch.nn.Conv2d(3, 6, 3, stride=2, bias=False), norm(torch.nn.BatchNorm2d, 6)
        self.c3, self.n3 = torch.nn.Conv3d(2, 4, 3, padding=1, bias=False), norm(torch.nn.BatchNorm3d, 4, affine=False)
        self.c4, self.a4 = torch.nn.Conv2d(6, 6, 1), torch.nn.SiLU(inplace=True)
        self.c5, self.n5 = torch.nn.ConvTranspose2d(6, 3, 3, stride=2), norm(torch.nn.BatchNorm2d, 3)
        self.c6 = tnn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")
        self.c7, self.n7 = torch.nn.Conv2d(4, 4, 3, padding=1), norm(torch.nn.BatchNorm2d, 4)

    def forward(self, x1, x2, x3):
        y1 = self.a1(self.n1(self.c1(x1)))
        y2 = F.relu(self.n2(self.c2(x2)), inplace=True)
        y3 = F.gelu(self.n3(self.c3(x3)))
        y4 = self.a4(self.c4(y2))
        y5 = torch.relu(self.n5(self.c5(y4)))
        y6 = self.c6(y5).relu_()
        y7 = self.n7(self.c7(y6))  # folded, nothing after
        return y1, y3, y7


def inputs():
    return torch.randn(2, 3, 11), torch.randn(2, 3, 9, 7), torch.randn(1, 2, 3, 5, 4)


def test_fuse_folds_eval_batch_norms_and_fuses_every_form_of_activation():
    torch.manual_seed(0)
    model = EveryForm().eval()
    before = copy.deepcopy(model.state_dict())
    fused, found = fused_as_before(model, *inputs())
    assert found.folded == {"Conv1d": 1, "Conv2d": 2, "Conv3d": 1, "ConvTranspose2d": 1}
    assert sum(found.fused.values()) == 6 and not found.kept
    assert {name: m.activation for name, m in fused.named_modules() if isinstance(m, tnn.CONVOLUTIONS)} == {
        "c1": "relu", "c2": "relu", "c3": "gelu", "c4": "silu", "c5": "relu", "c6": "relu", "c7": None}
    assert not any(isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.ReLU, torch.nn.SiLU))
                   for m in fused.modules())
    assert "relu" not in fused.code and "gelu" not in fused.code and "n1" not in fused.code
    assert fused.c2.bias is not None and fused.c2.weight.is_contiguous(memory_format=torch.channels_last)
    assert "activation='relu'" in repr(fused.c1) and not fused.training
    # the model given is left as it was: torch's classes, its batch norms, its parameters
    assert type(model.c1) is torch.nn.Conv1d and model.c2.bias is None and isinstance(model.n2, torch.nn.BatchNorm2d)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class MobileBlock(torch.nn.Module):
    """As MobileNet's blocks: ReLU6 and hardswish after a batch norm, as modules and as functions."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 1, bias=False), norm(torch.nn.BatchNorm2d, 12),
                                          torch.nn.ReLU6(inplace=True))
        self.dw, self.n_dw = torch.nn.Conv2d(12, 12, 3, padding=1, groups=12, bias=False), norm(torch.nn.BatchNorm2d, 12)
        self.project, self.act = torch.nn.Conv2d(12, 4, 1), torch.nn.Hardswish()

    def forward(self, x):
        y = F.hardswish(self.n_dw(self.dw(self.expand(x) * 4)))  # (* 4: values past every step)
        return F.relu6(self.act(self.project(y)) * 3, inplace=True)


def test_mobilenets_relu6_and_hardswish_fuse():
    torch.manual_seed(9)
    fused, found = fused_as_before(MobileBlock().eval(), torch.randn(2, 3, 7, 6))
    assert found.folded == {"Conv2d": 2} and found.fused == {"Conv2d": 3}
    assert [fused.get_submodule(n).activation for n in ("expand.0", "dw", "project")] == ["relu6", "hardswish",
                                                                                           "hardswish"]
    assert "relu6" in fused.code  # the last one, after a product, stays


class DarknetBlock(torch.nn.Module):
    """As Darknet's (YOLO's) and GAN discriminators' blocks: leaky ReLUs of several slopes, as modules and functions, in
    place or not; one whose slope is a tensor stays."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), norm(torch.nn.BatchNorm2d, 8),
                                     torch.nn.LeakyReLU(0.1, inplace=True))
        self.b, self.c, self.d = torch.nn.Conv2d(8, 8, 1), torch.nn.Conv2d(8, 8, 1), torch.nn.Conv2d(8, 4, 1)
        self.e = torch.nn.Conv2d(4, 4, 1)
        self.register_buffer("slope", torch.tensor(0.3))

    def forward(self, x):
        y = F.leaky_relu(self.b(self.a(x)), negative_slope=0.2)
        y = F.leaky_relu_(self.c(y))
        y = F.leaky_relu(self.d(y), -0.5)
        return F.leaky_relu(self.e(y), self.slope)  # (a traced value: stays)


def test_darknets_leaky_relus_fuse_with_their_slopes():
    torch.manual_seed(8)
    fused, found = fused_as_before(DarknetBlock().eval(), torch.randn(2, 3, 7, 6))
    assert found.folded == {"Conv2d": 1} and found.fused == {"Conv2d": 4}
    assert [fused.get_submodule(n).activation for n in ("a.0", "b", "c", "d", "e")] == [
        "leaky_relu(0.1)", "leaky_relu(0.2)", "leaky_relu", "leaky_relu(-0.5)", None]
    assert found.kept == {"an activation the epilogue lacks (leaky_relu(negative_slope=slope, inplace=False))": 1}
    for slope in (float("nan"), float("inf")):  # no slope the epilogue takes: the module stays
        fused, found = tritonconv.fuse(torch.nn.Sequential(torch.nn.Conv1d(2, 2, 1), torch.nn.LeakyReLU(slope)),
                                       report=True)
        assert not found.fused and fused.get_submodule("0").activation is None
        assert found.kept == {f"an activation the epilogue lacks (LeakyReLU(negative_slope={slope!r}))": 1}


class Smooth(torch.nn.Module):
    """Blocks with the exponential activations: YOLOv4's Mish, a tanh-approximated GELU, ELU (alpha 1) and SELU, each
    as a module and as functions (in place, alpha given); a PReLU of one slope (a leaky ReLU of its learned slope, in
    eval mode); an ELU of another alpha, softplus and a PReLU of a slope per channel stay."""

    def __init__(self) -> None:
        super().__init__()
        self.c = torch.nn.ModuleList(torch.nn.Conv2d(4, 4, 3, padding=1) for _ in range(14))
        self.mish, self.gelu, self.elu = torch.nn.Mish(), torch.nn.GELU(approximate="tanh"), torch.nn.ELU(inplace=True)
        self.selu, self.elu_half, self.prelu = torch.nn.SELU(), torch.nn.ELU(alpha=0.5), torch.nn.PReLU(4)
        self.prelu_one = torch.nn.PReLU(init=0.3)

    def forward(self, x):
        c = self.c
        y = F.mish(c[1](self.mish(c[0](x))))
        y = F.gelu(c[3](self.gelu(c[2](y))), approximate="tanh")
        y = F.elu_(c[5](self.elu(c[4](y))))
        y = self.selu(c[7](F.elu(c[6](y), alpha=1.0)))
        y = torch.selu(c[9](F.selu(c[8](y))))
        y = self.prelu_one(c[13](self.prelu(c[12](F.softplus(c[11](self.elu_half(c[10](y))))))))
        return y


def test_exponential_activations_fuse_as_modules_and_functions():
    torch.manual_seed(11)
    fused, found = fused_as_before(Smooth().eval(), torch.randn(2, 4, 6, 5))
    assert [fused.get_submodule(f"c.{i}").activation for i in range(14)] == [
        "mish", "mish", "gelu_tanh", "gelu_tanh", "elu", "elu", "elu", "selu", "selu", "selu", None, None, None,
        f"leaky_relu({torch.tensor(0.3).item()!r})"]  # (the fp32 slope, as torch's PReLU multiplies by it)
    assert found.fused == {"Conv2d": 11}
    assert found.kept == {"an activation the epilogue lacks (ELU(alpha=0.5))": 1,
                          "an activation the epilogue lacks (softplus)": 1,
                          "an activation the epilogue lacks (PReLU(num_parameters=4))": 1}
    _, found = tritonconv.fuse(Smooth(), report=True)  # training: the PReLU's slope is learned
    assert found.fused == {"Conv2d": 10}


class Heads(torch.nn.Module):
    """Output layers that end in a squashing: a DCGAN generator's transposed convolution and tanh, a segmentation
    head's 1 x 1 convolution and sigmoid (a function and a method), a squeeze-excite block's hardsigmoid (MobileNetV3's
    gate, as a module)."""

    def __init__(self) -> None:
        super().__init__()
        self.up = torch.nn.Sequential(torch.nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1, bias=False), torch.nn.Tanh())
        self.seg, self.mask = torch.nn.Conv2d(4, 2, 1), torch.nn.Conv2d(4, 1, 1)
        self.squeeze, self.excite = torch.nn.Conv2d(4, 2, 1), torch.nn.Conv2d(2, 4, 1)
        self.gate = torch.nn.Hardsigmoid()

    def forward(self, x):
        s = self.gate(self.excite(F.relu(self.squeeze(x.mean((2, 3), keepdim=True)))))
        return self.up(x * s), torch.sigmoid(self.seg(x) * 3), self.mask(x).sigmoid(), self.seg(x)


def test_output_layers_tanh_and_sigmoids_fuse():
    torch.manual_seed(10)
    fused, found = fused_as_before(Heads().eval(), torch.randn(2, 4, 5, 6) * 3)
    assert found.fused == {"ConvTranspose2d": 1, "Conv2d": 3}
    assert [fused.get_submodule(n).activation for n in ("up.0", "mask", "squeeze", "excite")] == [
        "tanh", "sigmoid", "relu", "hardsigmoid"]
    assert found.kept == {"called or read in more than one place": 1}  # (seg, called twice)


def test_leaky_relu_names_and_slopes():
    """A leaky ReLU's activation name carries its slope (torch's default, 0.01, none); the forward saves its output for
    the slope where that gives it (a slope of 0 or more), else recomputes the input."""
    from tritonconv import _checks

    assert [_checks.leaky_relu(s) for s in (0.01, 0.2, 0, -1)] == ["leaky_relu", "leaky_relu(0.2)", "leaky_relu(0.0)",
                                                                   "leaky_relu(-1.0)"]
    assert [_checks.negative_slope(a) for a in ("leaky_relu", "leaky_relu(0.2)", "leaky_relu(1e-3)", "relu",
                                                "leaky_relu(nan)", "leaky_relu()", None)] == [0.01, 0.2, 1e-3] + [None] * 4
    assert [_checks.slope_from_output(a) for a in ("relu", "relu6", "leaky_relu", "leaky_relu(0.0)", "leaky_relu(-0.5)",
                                                   "gelu", None)] == [True, True, True, True, False, False, False]


def test_batch_norms_fold_in_fp32_and_round_once():
    torch.manual_seed(1)
    conv, bn = torch.nn.Conv2d(4, 8, 3).half(), norm(torch.nn.BatchNorm2d, 8).half()
    bn.running_var.uniform_(1e-3, 1e-2)  # large scales: rounding the products in fp16 first would show
    fused = tritonconv.fuse(torch.nn.Sequential(conv, bn).eval()).get_submodule("0")
    scale = bn.weight.float() * torch.rsqrt(bn.running_var.float() + bn.eps)
    assert torch.equal(fused.weight, (conv.weight.float() * scale[:, None, None, None]).half())
    assert torch.equal(fused.bias, ((conv.bias.float() - bn.running_mean.float()) * scale + bn.bias.float()).half())
    assert fused.weight.dtype == torch.float16


class BasicBlock(torch.nn.Module):
    """As torchvision's ResNet block: one ReLU module called twice, ``+=`` before the last, a downsampling branch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = torch.nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False), norm(torch.nn.BatchNorm2d, 8)
        self.conv2, self.bn2 = torch.nn.Conv2d(8, 8, 3, padding=1, bias=False), norm(torch.nn.BatchNorm2d, 8)
        self.relu = torch.nn.ReLU(inplace=True)
        self.downsample = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 1, stride=2, bias=False),
                                              norm(torch.nn.BatchNorm2d, 8))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.downsample(x)
        return self.relu(out)


def test_a_resnet_block_keeps_its_shared_activation_where_it_does_not_fuse():
    torch.manual_seed(5)
    fused, found = fused_as_before(BasicBlock().eval(), torch.randn(2, 4, 7, 9))
    assert found.folded == {"Conv2d": 3} and found.fused == {"Conv2d": 1}
    assert fused.conv1.activation == "relu" and isinstance(fused.relu, torch.nn.ReLU)  # still called after the sum
    assert [n.target for n in fused.graph.nodes if n.op == "call_module"] == ["conv1", "conv2", "downsample.0", "relu"]


class BatchNormAct2d(torch.nn.BatchNorm2d):
    """timm's ``BatchNormAct2d`` as its forward computes (timm.layers.norm_act, 1.0): a batch norm, then its ``drop``,
    then its ``act``, with torch.fx tracing through it into ``F.batch_norm`` (and an assert on the rank)."""

    __module__ = "timm.layers.norm_act"

    def __init__(self, c: int, act: torch.nn.Module, drop: torch.nn.Module | None = None) -> None:
        super().__init__(c)
        self.drop, self.act = drop or torch.nn.Identity(), act
        self.running_mean.uniform_(-1, 1)
        self.running_var.uniform_(0.5, 2.0)
        self.weight.data.uniform_(0.5, 1.5)
        self.bias.data.uniform_(-0.5, 0.5)

    def forward(self, x):
        torch._assert(x.ndim == 4, "expected 4D input")
        use_stats = self.training or self.running_mean is None
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, use_stats, self.momentum,
                         self.eps)
        return self.act(self.drop(x))


class GELUTanh(torch.nn.Module):
    """timm's ``GELUTanh`` (timm.layers.activations): one function of its input."""

    __module__ = "timm.layers.activations"

    def forward(self, x):
        return F.gelu(x, approximate="tanh")


class Swish(torch.nn.Module):
    """timm's ``Swish`` (timm.layers.activations): SiLU written out, ``x * sigmoid(x)``."""

    __module__ = "timm.layers.activations"

    def forward(self, x):
        return x.mul(x.sigmoid())


class TimmBlocks(torch.nn.Module):
    """timm's ways of writing ``Conv -> BatchNorm -> activation``: a ``BatchNormAct2d`` holding torch's activation, timm's
    own (one function, or SiLU written out), none, or one the epilogue lacks; a ResNet's ``drop_block`` (an
    ``nn.Identity``) between its batch norm and activation; a dropout inside a ``BatchNormAct2d``."""

    def __init__(self) -> None:
        super().__init__()
        self.c = torch.nn.ModuleList(torch.nn.Conv2d(4, 4, 3, padding=1, bias=False) for _ in range(7))
        self.n = torch.nn.ModuleList([BatchNormAct2d(4, torch.nn.LeakyReLU(0.1, inplace=True)), BatchNormAct2d(4, GELUTanh()),
                                      BatchNormAct2d(4, torch.nn.Identity()), BatchNormAct2d(4, torch.nn.PReLU(4)),
                                      norm(torch.nn.BatchNorm2d, 4),
                                      BatchNormAct2d(4, torch.nn.ReLU(), drop=torch.nn.Dropout(0.1)),
                                      BatchNormAct2d(4, Swish())])
        self.drop_block, self.act = torch.nn.Identity(), torch.nn.SiLU()

    def forward(self, x):
        for i in range(4):
            x = self.n[i](self.c[i](x))
        x = self.act(self.drop_block(self.n[4](self.c[4](x))))
        return self.n[6](self.c[6](self.n[5](self.c[5](x))))


class SharedNormAct(torch.nn.Module):
    """One timm batch norm after two convolutions (it cannot be replaced by its activation)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.n = torch.nn.Conv2d(4, 4, 1), torch.nn.Conv2d(4, 4, 1), BatchNormAct2d(4, torch.nn.ReLU())

    def forward(self, x):
        return self.n(self.b(self.n(self.a(x))))


def test_timms_batch_norms_with_their_activation_inside_fold_and_fuse():
    torch.manual_seed(12)
    fused, found = fused_as_before(TimmBlocks().eval(), torch.randn(2, 4, 6, 5))
    assert [fused.get_submodule(f"c.{i}").activation for i in range(7)] == [
        "leaky_relu(0.1)", "gelu_tanh", None, None, "silu", None, "silu"]
    assert found.folded == {"Conv2d": 6} and found.fused == {"Conv2d": 4}
    assert found.kept == {"an activation the epilogue lacks (PReLU(num_parameters=4))": 1,
                          "batch norm with a dropout inside": 1}
    assert isinstance(fused.get_submodule("n.3"), torch.nn.PReLU)  # (the batch norm gone, its activation in its place)
    assert "batch_norm" not in fused.code and "drop_block" not in fused.code
    fused, found = fused_as_before(SharedNormAct().eval(), torch.randn(2, 4, 6, 5))
    assert found.kept == {"batch norm with its activation inside called in more than one place": 2}
    fused, found = tritonconv.fuse(TimmBlocks(), report=True)  # training: nothing folds
    assert not found.folded and found.kept == {"batch norm in training mode or without running statistics": 7}


def test_timms_models_fold_and_fuse():
    """timm's models as timm builds them (where timm is installed; the GPU machine's image has it): counts on meta
    tensors."""
    timm = pytest.importorskip("timm")
    counts = {}
    for name in ("resnet50", "cspdarknet53", "efficientnet_b0", "mobilenetv3_large_100"):
        with torch.device("meta"):
            _, found = tritonconv.fuse(timm.create_model(name).eval(), report=True)
        counts[name] = (sum(found.folded.values()), sum(found.fused.values()))
    assert counts == {"resnet50": (53, 33), "cspdarknet53": (67, 67), "efficientnet_b0": (49, 65),
                      "mobilenetv3_large_100": (46, 48)}


class FrozenBatchNorm2d(torch.nn.Module):
    """torchvision's ``FrozenBatchNorm2d`` as its forward computes (torchvision.ops.misc, 0.26): statistics and affine
    parameters as buffers, which torch.fx traces through into products and sums."""

    __module__ = "torchvision.ops.misc"

    def __init__(self, c: int) -> None:
        super().__init__()
        self.eps = 1e-5
        for name, value in (("weight", torch.rand(c) + 0.5), ("bias", torch.rand(c) - 0.5),
                            ("running_mean", torch.rand(c) - 0.5), ("running_var", torch.rand(c) + 0.5)):
            self.register_buffer(name, value)

    def forward(self, x):
        scale = self.weight.reshape(1, -1, 1, 1) * (self.running_var.reshape(1, -1, 1, 1) + self.eps).rsqrt()
        return x * scale + (self.bias.reshape(1, -1, 1, 1) - self.running_mean.reshape(1, -1, 1, 1) * scale)


def test_frozen_batch_norms_fold():
    """A detection backbone's frozen batch norms (torchvision's) fold as batch norms do: in eval mode."""
    torch.manual_seed(13)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), FrozenBatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.Conv2d(4, 4, 3, bias=False), FrozenBatchNorm2d(4))
    fused, found = fused_as_before(model.eval(), torch.randn(2, 3, 6, 5))
    assert found.folded == {"Conv2d": 2} and found.fused == {"Conv2d": 1} and "rsqrt" not in fused.code
    _, found = tritonconv.fuse(model.train(), report=True)
    assert not found.folded and found.kept == {"batch norm in training mode or without running statistics": 2}


def test_timms_frozen_batch_norms_with_their_activation_fold():
    timm = pytest.importorskip("timm")
    model = timm.layers.freeze_batch_norm_2d(torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), timm.layers.BatchNormAct2d(4, act_layer=torch.nn.SiLU))).eval()
    assert type(model[1]).__name__ == "FrozenBatchNormAct2d"
    fused, found = fused_as_before(model, torch.randn(2, 3, 6, 5))
    assert found.folded == {"Conv2d": 1} and fused.get_submodule("0").activation == "silu"


class WrittenOut(torch.nn.Module):
    """Activations written out as hand-written blocks have them: SiLU as ``x * sigmoid(x)`` (either order, the product
    in place), ReLU and ReLU6 as clamps and ``hardtanh`` bounds (functions, methods, a module); other bounds, and a
    product that is no SiLU (``x * sigmoid(x)`` read a third time), stay."""

    def __init__(self) -> None:
        super().__init__()
        self.c = torch.nn.ModuleList(torch.nn.Conv2d(4, 4, 3, padding=1) for _ in range(10))
        self.hardtanh = torch.nn.Hardtanh(0.0, 6.0)

    def forward(self, x):
        c = self.c
        y = c[0](x)
        y = c[1](y * torch.sigmoid(y))
        y = c[2](y.sigmoid() * y)
        y = y.mul_(y.sigmoid())  # (timm's in-place Swish; without the assignment the graph reads y a third time)
        y = torch.clamp(c[3](y), min=0)
        y = c[4](y).clamp(0.0, 6.0)
        y = F.hardtanh(c[5](y), 0.0, 6.0)
        y = self.hardtanh(torch.clamp_min(c[6](y), 0))
        y = c[7](y).clamp(-1, 1)
        z = c[8](y)
        return c[9](z * torch.sigmoid(z) + z)


def test_activations_written_out_fuse():
    torch.manual_seed(14)
    fused, found = fused_as_before(WrittenOut().eval(), torch.randn(2, 4, 6, 5) * 4)
    assert [fused.get_submodule(f"c.{i}").activation for i in range(10)] == [
        "silu", "silu", "silu", "relu", "relu6", "relu6", "relu", None, None, None]
    assert not found.kept  # (clamps are no activation torch names; z is read three times)
    assert "sigmoid" in fused.code and "hardtanh" in fused.code  # (z's; the module after the clamp, not a convolution's)


class Shared(torch.nn.Module):
    """Chains that cannot fuse exactly, each beside one that can."""

    def __init__(self) -> None:
        super().__init__()
        self.twice, self.read_twice = torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Conv2d(3, 3, 1)
        self.grouped, self.n_grouped = torch.nn.ConvTranspose2d(4, 4, 2, stride=2, groups=2), norm(torch.nn.BatchNorm2d, 4)
        self.batch_stats = torch.nn.Conv2d(3, 4, 1)
        self.n_batch = torch.nn.BatchNorm2d(4, track_running_stats=False)
        self.clamped, self.elu_half = torch.nn.Conv2d(3, 4, 1), torch.nn.Conv2d(3, 4, 1)

    def forward(self, x):
        a = torch.relu(self.twice(self.twice(x)))  # one module, two calls
        b = self.read_twice(a)
        b = torch.relu(b) + b  # its output read twice
        c = torch.relu(self.n_grouped(self.grouped(torch.cat([b, b[:, :1]], 1))))
        d = torch.relu(self.n_batch(self.batch_stats(b)))
        e = F.hardtanh(self.clamped(b)) + F.elu(self.elu_half(b), 0.5)
        return c, d, e


def test_fuse_leaves_what_it_cannot_compute_exactly():
    torch.manual_seed(2)
    fused, found = fused_as_before(Shared().eval(), torch.randn(2, 3, 6, 5))
    assert not found.folded and not found.fused
    assert found.kept == {"called or read in more than one place": 1,
                          "batch norm after a grouped transposed convolution": 1,
                          "batch norm in training mode or without running statistics": 1,
                          "an activation the epilogue lacks (hardtanh(min_val=-1.0, max_val=1.0, inplace=False))": 1,
                          "an activation the epilogue lacks (elu(alpha=0.5, inplace=False))": 1}
    assert all(m.activation is None for m in fused.modules() if isinstance(m, tnn.CONVOLUTIONS))
    assert isinstance(fused.twice, tnn.Conv2d)  # converted all the same


def test_a_model_in_training_mode_gets_its_activations_fused_and_trains_as_before():
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.GELU(), torch.nn.Conv2d(4, 4, 3, bias=False),
                                torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1), torch.nn.SiLU())
    fused, found = tritonconv.fuse(model, report=True)
    assert fused.training and found.fused == {"Conv2d": 2} and not found.folded
    assert found.kept == {"batch norm in training mode or without running statistics": 1}
    x = torch.randn(2, 3, 8, 7)
    model(x).square().sum().backward()
    fused(x).square().sum().backward()
    for name, p in model.named_parameters():
        q = fused.get_parameter(name)
        assert_close(q.grad, p.grad)


class ValueFlow(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(2, 2, 3)

    def forward(self, x):
        return self.conv(x) if x.sum() > 0 else x


def test_fuse_refuses_what_it_cannot_trace_and_what_is_not_a_module():
    with pytest.raises(ValueError, match=r"fuse: ValueFlow cannot be traced .*tritonconv.nn.convert"):
        tritonconv.fuse(ValueFlow())
    with pytest.raises(TypeError, match="fuse: expected `model` to be a torch.nn.Module, got function"):
        tritonconv.fuse(F.relu)


def test_fuse_prints_its_report(capsys):
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3), norm(torch.nn.BatchNorm1d, 3), torch.nn.ReLU()).eval()
    tritonconv.fuse(model, verbose=True)
    assert capsys.readouterr().out.strip() == ("tritonconv.fuse: 1 batch norms folded (Conv1d 1), 1 activations fused "
                                               "(Conv1d 1)")


@pytest.mark.parametrize("activation", ["relu", "gelu", "silu"])
def test_modules_take_an_activation_fused_after_the_bias(activation):
    torch.manual_seed(4)
    act = getattr(F, activation)
    conv = tnn.Conv2d(3, 4, 3, padding=1, activation=activation)
    convt = tnn.ConvTranspose1d(3, 2, 3, stride=2, activation=activation)
    x2, x1 = torch.randn(2, 3, 5, 6), torch.randn(2, 3, 7)
    assert_close(conv(x2), act(F.conv2d(x2, conv.weight, conv.bias, padding=1)))
    assert_close(convt(x1), act(F.conv_transpose1d(x1, convt.weight, convt.bias, stride=2)))
    assert repr(conv).endswith(f"padding=(1, 1), activation={activation!r})")
    buffer = io.BytesIO()
    torch.save(conv, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=False).activation == activation
    assert copy.deepcopy(convt).activation == activation


def test_a_bad_activation_and_reverting_a_fused_one_are_refused_by_name():
    with pytest.raises(ValueError, match=r"Conv3d: expected `activation` to be one of .*got 'softplus'"):
        tnn.Conv3d(2, 2, 1, activation="softplus")
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 1), tnn.Conv2d(2, 2, 1, activation="silu"))
    tnn.convert(model)
    assert model[0].activation is None  # a converted module fuses nothing
    with pytest.raises(ValueError, match=r"revert: 1 \(Conv2d\) fuses activation='silu' .* torch's Conv2d cannot"):
        tnn.revert(model)
    assert type(model[0]) is tnn.Conv2d  # nothing reverted
    model[1].activation = None
    assert type(tnn.revert(model)[1]) is torch.nn.Conv2d


def test_fused_volumes_stream_and_fused_layers_quantise_with_their_activations():
    """The fused activation is the layer's: streamed along depth (``netstream``) and in fp8 (``fp8.convert``)."""
    from tritonconv import fp8, netstream

    torch.manual_seed(6)
    model = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3, padding=1), norm(torch.nn.BatchNorm3d, 4), torch.nn.ReLU(),
                                torch.nn.Conv3d(4, 3, (3, 1, 1), padding=(1, 0, 0)), torch.nn.SiLU()).eval()
    fused = tritonconv.fuse(model)
    x = torch.randn(1, 2, 6, 5, 4)
    with torch.no_grad():
        want = model(x)
        streamed = torch.cat(list(netstream.stream(fused, (x[:, :, i:i + 1] for i in range(6)), chunk=2)), 2)
    assert_close(streamed, want)
    plane = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), norm(torch.nn.BatchNorm2d, 16),
                                torch.nn.ReLU()).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        want = plane(x)
        quantised = tritonconv.fuse(plane)
        found = fp8.convert(quantised, report=True)
        got = quantised(x)
    assert found.converted == {"Conv2d": 1} and quantised.get_submodule("0").activation == "relu"
    assert got.min() >= 0 and ((got.float() - want).norm() / want.norm()).item() < 0.1  # fp8's precision


def test_convolutions_fuse_never_runs_are_named_and_a_bare_convolution_is_refused():
    class OwnForward(torch.nn.Conv2d):  # left on torch by convert
        def forward(self, x):
            return super().forward(x) * 2

    torch.manual_seed(7)
    model = torch.nn.Sequential(OwnForward(3, 4, 1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 1),
                                torch.nn.ReLU()).eval()
    fused, found = fused_as_before(model, torch.randn(1, 3, 4, 5))
    assert found.kept == {"left on torch (tritonconv.nn.convert's report says why)": 1} and found.fused == {"Conv2d": 1}
    with pytest.raises(ValueError, match=r"fuse: `model` is itself a Conv2d: nothing follows it"):
        tritonconv.fuse(torch.nn.Conv2d(2, 2, 1))
    again, found = tritonconv.fuse(fused, report=True)  # fused already: nothing more
    assert not found.fused and not found.folded and again.get_submodule("2").activation == "relu"


def test_torchvisions_resnets_fuse_every_chain_the_readme_counts():
    """README's counts: ResNet-50's 53 batch norms folded, 33 ReLUs fused, and MobileNets', EfficientNet's and VGG's
    (on meta tensors: shapes only); ResNet-18 fused computes what it computed (where torchvision is installed)."""
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        _, found = tritonconv.fuse(torchvision.models.resnet50().eval(), report=True)
    assert str(found) == "tritonconv.fuse: 53 batch norms folded (Conv2d 53), 33 activations fused (Conv2d 33)"
    for name, folded, fused in (("mobilenet_v2", 52, 35), ("mobilenet_v3_large", 46, 47), ("efficientnet_b0", 49, 65),
                                ("vgg16_bn", 13, 13)):  # (MobileNetV3's and EfficientNet's squeeze-excite gates too)
        with torch.device("meta"):
            _, found = tritonconv.fuse(getattr(torchvision.models, name)().eval(), report=True)
        assert (found.folded, found.fused, found.kept) == ({"Conv2d": folded}, {"Conv2d": fused}, {}), name
    torch.manual_seed(8)
    model = torchvision.models.resnet18(num_classes=10).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert_close(tritonconv.fuse(model)(x), model(x))
