"""tritonconv.nn modules: torch's constructor and state_dict, convert(), training equivalence."""

import copy

import pytest
import torch
from conftest import assert_close

import tritonconv
from tritonconv import nn as tnn

PAIRS = [(torch.nn.Conv1d, tnn.Conv1d, (2, 4, 13)), (torch.nn.Conv2d, tnn.Conv2d, (2, 4, 9, 7)),
         (torch.nn.Conv3d, tnn.Conv3d, (1, 4, 5, 6, 5))]


@pytest.mark.parametrize("theirs,ours,x_shape", PAIRS)
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
def test_module_matches_torch_and_loads_its_state_dict(theirs, ours, x_shape, padding_mode):
    kw = dict(kernel_size=3, stride=2, padding=1, dilation=1, groups=2, bias=True, padding_mode=padding_mode)
    ref = theirs(4, 6, **kw)
    mod = ours(4, 6, **kw)
    assert mod.state_dict().keys() == ref.state_dict().keys()
    mod.load_state_dict(ref.state_dict())
    assert repr(mod) == repr(ref)
    x = torch.randn(x_shape)
    assert_close(mod(x), ref.double()(x.double()))


def test_constructor_arguments_as_torch():
    mod = tnn.Conv2d(3, 8, (3, 5), stride=(2, 1), padding=(1, 2), dilation=1, bias=False,
                     dtype=torch.float32, device="cpu")
    assert mod.bias is None and mod.weight.shape == (8, 3, 3, 5) and isinstance(mod, torch.nn.Conv2d)
    same = tnn.Conv1d(3, 5, 4, padding="same", dilation=2)
    x = torch.randn(2, 3, 17)
    assert same(x).shape == (2, 5, 17)


def small_net():
    """A torchvision-like mix: stem, BN, depthwise, strided, 1x1, and 1D/3D heads."""
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8),
        torch.nn.Conv2d(8, 6, 1),
        torch.nn.Flatten(2),  # (N, 6, H*W)
        torch.nn.Conv1d(6, 4, 3, padding=1, padding_mode="circular"),
        torch.nn.Unflatten(1, (1, 4)),  # (N, 1, 4, H*W)
        torch.nn.Unflatten(3, (5, 5)),  # (N, 1, 4, 5, 5)
        torch.nn.Conv3d(1, 2, 3, padding=1),
    )


def test_convert_swaps_every_conv_and_keeps_outputs():
    net = small_net().eval()
    x = torch.randn(2, 3, 10, 10)
    ref = net(x)
    state = copy.deepcopy(net.state_dict())
    assert tritonconv.nn.convert(net) is net
    kinds = [type(m) for m in net.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    assert kinds == [tnn.Conv2d, tnn.Conv2d, tnn.Conv2d, tnn.Conv1d, tnn.Conv3d]
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    assert_close(net(x), ref)


def test_converted_modules_write_the_layout_torchs_modules_write():
    """A converted model's convolutions keep their weights channels-innermost (read in place), but write their outputs
    as torch's modules would: an NC(D)HW input gives an NC(D)HW output (a ``.view`` after a convolution, as many models
    flatten their features, works as before), a channels-last input a channels-last one, and a model made
    channels-last before conversion gives channels-last outputs (torch's rule, its weights given so)."""
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv, self.conv3 = torch.nn.Conv2d(3, 4, 3), torch.nn.Conv3d(2, 2, 3, padding=1)
            self.fc = torch.nn.Linear(4 * 5 * 4, 2)

        def forward(self, x):
            h = torch.relu(self.conv(x))
            return self.fc(h.view(h.size(0), -1)), self.conv3(h.view(h.size(0), 2, 2, 5, 4))

    x = torch.randn(2, 3, 7, 6)
    net = Net()
    ref = net(x)
    tnn.convert(net)
    assert net.conv.weight.is_contiguous(memory_format=torch.channels_last)  # read in place
    out = net(x)
    assert out[1].is_contiguous()
    for got, want in zip(out, ref):
        assert_close(got, want)
    assert net.conv(x.contiguous(memory_format=torch.channels_last)).is_contiguous(memory_format=torch.channels_last)
    assert torch.fx.symbolic_trace(net.conv)(x).is_contiguous()

    made_last = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    theirs = made_last(x)
    tnn.convert(made_last)
    ours = made_last(x)
    assert theirs.is_contiguous(memory_format=torch.channels_last) and not theirs.is_contiguous()
    assert ours.is_contiguous(memory_format=torch.channels_last) and not ours.is_contiguous()
    assert copy.deepcopy(made_last)(x).is_contiguous(memory_format=torch.channels_last)
    tnn.lay_out_weight(net.conv)  # laid out again: still the layout it was given that counts
    assert net.conv(x).is_contiguous()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # (torch 2.13's notice)
def test_revert_gives_torchs_modules_back():
    """``revert`` undoes ``convert``: torch's classes (a converted subclass its own), the weights as they were given,
    the same outputs, and what needs torch's modules works (``torch.jit.script``)."""
    class Same(torch.nn.Conv2d):  # a subclass that only changes __init__ converts (and reverts) as itself
        pass

    net = small_net().eval()
    net[3] = Same(8, 8, 3, padding=1, groups=8)
    net.append(tnn.Conv3d(2, 2, 1))
    made_last = torch.nn.Conv2d(6, 6, 1).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 10, 10)
    ref = net(x)
    classes = [type(m) for m in net.modules()]
    tnn.convert(net)
    assert tnn.revert(net) is net
    assert [type(m) for m in net.modules()] == [torch.nn.Conv3d if c is tnn.Conv3d else c for c in classes]
    assert all(m.weight.is_contiguous() for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert_close(net(x), ref)
    assert_close(torch.jit.script(net)(x), ref)
    tnn.revert(tnn.convert(made_last))
    assert type(made_last) is torch.nn.Conv2d and made_last.weight.is_contiguous(memory_format=torch.channels_last)
    block = tnn.Conv2Plus1d(2, 3, 3)
    assert type(tnn.revert(block)) is tnn.Conv2Plus1d and type(block.spatial) is tnn.Conv3d  # no torch counterpart

    import torch.nn.utils.prune as prune  # (its view(-1) fails on channels-last weights, torch's own too)
    seq = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU()).eval()
    with pytest.raises(RuntimeError, match="view size"):
        prune.l1_unstructured(tnn.convert(copy.deepcopy(seq))[0], "weight", 0.3)
    pruned = copy.deepcopy(seq)
    prune.l1_unstructured(pruned[0], "weight", 0.3)  # before convert, or after revert: as the README says
    x2 = torch.randn(2, 3, 6, 6)
    want = pruned(x2)
    assert_close(tnn.convert(pruned)(x2), want)
    fused = torch.ao.quantization.fuse_modules(tnn.revert(tnn.convert(copy.deepcopy(seq))), [["0", "1", "2"]])
    assert_close(fused(x2), seq(x2))
    with pytest.raises(TypeError, match="revert: expected `model` to be a torch.nn.Module"):
        tnn.revert([net])


def test_converted_model_trains_like_torch():
    """Same init, same data, SGD: the loss curves agree step by step."""
    torch.manual_seed(0)
    data = [(torch.randn(4, 2, 12, 12), torch.randn(4, 3, 6, 6)) for _ in range(5)]

    def net():
        torch.manual_seed(2)
        return torch.nn.Sequential(torch.nn.Conv2d(2, 6, 3, padding=1), torch.nn.GELU(),
                                   torch.nn.Conv2d(6, 3, 3, stride=2, padding=1, padding_mode="reflect"))

    curves = []
    for model in (net(), tritonconv.nn.convert(net())):
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        losses = []
        for x, target in data:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), target)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        curves.append(losses)
    assert curves[0][-1] < curves[0][0]  # it does learn
    assert_close(torch.tensor(curves[1]), torch.tensor(curves[0]))


def test_module_under_torch_compile():
    torch._dynamo.reset()
    mod = tnn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(1, 3, 6, 6, requires_grad=True)
    y = torch.compile(mod, backend="aot_eager", fullgraph=True)(x)
    y.sum().backward()
    ref = torch.nn.functional.conv2d(x.detach().double(), mod.weight.double(), mod.bias.double(), padding=1)
    assert_close(y, ref)
    assert x.grad is not None and mod.weight.grad is not None


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")  # (torch 2.13's notices)
def test_torch_jit_trace_records_the_custom_ops(tmp_path):
    """Under ``torch.jit.trace`` a shape's sizes are tensors: the kernels had been launched with them (an error
    under the interpreter). Traced calls take the custom ops, which the trace records; the saved trace runs them
    and differentiates through them; routed calls too."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(tnn.Conv2d(2, 3, 3, padding=1), torch.nn.ReLU(), tnn.ConvTranspose2d(3, 2, 3, stride=2))
    x, x2 = torch.randn(1, 2, 5, 5), torch.randn(1, 2, 5, 5, requires_grad=True)
    with pytest.warns(torch.jit.TracerWarning):  # (the transposed layer's output size is kept as traced)
        traced = torch.jit.trace(net, x)
    assert {"tritonconv::conv", "tritonconv::conv_transpose"} <= {n.kind() for n in traced.inlined_graph.nodes()}
    torch.jit.save(traced, tmp_path / "net.pt")
    loaded = torch.jit.load(tmp_path / "net.pt")
    y = loaded(x2)
    (g,) = torch.autograd.grad(y.sum(), x2)
    reference = copy.deepcopy(net).double()  # torch's own kernels in float64
    x64 = x2.detach().double().requires_grad_()
    ref = torch.nn.functional.conv_transpose2d(
        torch.relu(torch.nn.functional.conv2d(x64, reference[0].weight, reference[0].bias, padding=1)),
        reference[2].weight, reference[2].bias, stride=2)
    assert_close(y, ref)
    assert_close(g, torch.autograd.grad(ref.sum(), x64)[0])
    conv = torch.nn.Conv2d(2, 3, 3)
    with tritonconv.enabled():
        routed = torch.jit.trace(conv, x)
    assert "tritonconv::conv" in {n.kind() for n in routed.graph.nodes()}
    assert_close(routed(x), torch.nn.functional.conv2d(x.double(), conv.weight.double(), conv.bias.double()))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # (torch 2.13's notice)
def test_torch_jit_script_is_refused_by_name():
    """TorchScript cannot compile the kernels' Python launch; its own error quoted tritonconv's source (an f-string).
    Every module of tritonconv's, converted ones and those nested in a model too, says what serves instead."""
    converted = tnn.convert(torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3), torch.nn.ReLU()))
    fp8_layer = tritonconv.fp8.convert(torch.nn.Sequential(torch.nn.Conv2d(16, 16, 3)))[0]
    cases = [(converted, "tritonconv.nn.Conv1d", "revert"), (tnn.ConvTranspose2d(2, 3, 3), "ConvTranspose2d", "revert"),
             (tnn.Conv2Plus1d(2, 3, 3), "Conv2Plus1d", "no torch counterpart"),
             (tnn.P3DBlock(2, 3, 3), "P3DBlock", "no torch counterpart"),
             (fp8_layer, "tritonconv.fp8.Conv", "no torch counterpart")]
    for module, name, instead in cases:
        with pytest.raises(TypeError, match=rf"torch.jit.script: \S*{name} runs Triton kernels(.|\n)*{instead}"
                                            r"(.|\n)*torch.jit.trace"):
            torch.jit.script(module)
    x = torch.randn(1, 2, 5)
    ours = converted(x)
    assert_close(torch.jit.script(tnn.revert(converted))(x), ours)  # as the message says


class _Functional(torch.nn.Module):
    """Every public function of tritonconv called in a forward, as a user's own layer would."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.w2 = torch.nn.Parameter(torch.randn(3, 2, 3, 3))
        self.w1 = torch.nn.Parameter(torch.randn(2, 3, 2))
        self.wt = torch.nn.Parameter(torch.randn(2, 2, 2))
        self.ws = torch.nn.Parameter(torch.randn(3, 2, 1, 2, 2))
        self.wd = torch.nn.Parameter(torch.randn(2, 3, 2, 1, 1))

    def forward(self, x):
        h = tritonconv.conv2d(x, self.w2, padding=1, activation="gelu")  # (1, 3, 10, 6)
        h = tritonconv.conv_transpose1d(tritonconv.conv1d(h.flatten(2), self.w1, stride=2), self.wt, stride=2)
        return tritonconv.conv2plus1d(h.view(1, 2, 15, 2, 2), self.ws, self.wd, padding=(1, 0, 0))


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # (Opacus's hooks on an input needing no gradient)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_opacus_per_sample_gradients_on_converted_models(ndim):
    """Differentially private training's per-sample gradients (Opacus's ``GradSampleModule``, its hooks and its
    ``torch.func`` modes) on a converted model equal those of torch's model: Opacus computes them with ``vmap`` of
    ``grad`` for a layer class it has no rule of its own for, which runs tritonconv's batching rules."""
    opacus = pytest.importorskip("opacus")
    conv = getattr(torch.nn, f"Conv{ndim}d")
    size = (9, 7, 5)[ndim - 1]
    model = torch.nn.Sequential(conv(2, 4, 3, padding=1), torch.nn.ReLU(), conv(4, 3, 3, stride=2), torch.nn.Flatten(),
                                torch.nn.Linear(3 * ((size - 3) // 2 + 1) ** ndim, 2)).double()
    ours = copy.deepcopy(model)
    assert tnn.convert(ours, report=True).converted
    x = torch.randn(3, 2, *(size,) * ndim, dtype=torch.float64)

    def per_sample(m, functorch):
        grads = opacus.GradSampleModule(copy.deepcopy(m), force_functorch=functorch)
        grads(x).pow(2).sum().backward()
        return {name: p.grad_sample for name, p in grads.named_parameters()}

    want = per_sample(model, False)
    for functorch in (False, True):
        got = per_sample(ours, functorch)
        assert got.keys() == want.keys()
        for name in want:
            assert_close(got[name], want[name], torch.float64)


def test_models_trace_with_torch_fx():
    """``torch.fx.symbolic_trace`` (torchvision's feature extraction, FX quantization and tools) records tritonconv's
    functions as calls, as it does torch.nn.functional's: its modules trace into them (their padding modes into
    ``F.pad``), a user's layer calling them likewise, and the graph module runs the kernels, gradients included.
    P3DBlock's check of its branches' shapes stays in the graph."""
    net = torch.nn.Sequential(tnn.Conv2d(3, 2, 3, padding=1, padding_mode="reflect"), torch.nn.ReLU(),
                              tnn.ConvTranspose2d(2, 2, 2, stride=2), _Functional())
    x = torch.randn(1, 3, 5, 3)
    graph = torch.fx.symbolic_trace(net)
    called = [n.target for n in graph.graph.nodes if n.op == "call_function"]
    assert [f for f in called if f.__module__.startswith("tritonconv")] == [
        tritonconv.conv2d, tritonconv.conv_transpose2d, tritonconv.conv2d, tritonconv.conv1d,
        tritonconv.conv_transpose1d, tritonconv.conv2plus1d]
    assert torch.nn.functional.pad in called
    y = graph(x)
    (g,) = torch.autograd.grad(y.square().sum(), graph.get_parameter("3.w1"))
    ref = copy.deepcopy(net)
    (g_ref,) = torch.autograd.grad(ref(x).square().sum(), ref[3].w1)
    assert_close(y, net(x))
    assert_close(g, g_ref)

    block = tnn.P3DBlock(2, 3, variant="B", stride=(1, 2, 2), padding=0)  # the branches' sizes differ
    x3 = torch.randn(1, 2, 3, 4, 4)
    with pytest.raises(ValueError, match="temporal branch"):
        block(x3)
    with pytest.raises(AssertionError, match="branches' shapes differ"):
        torch.fx.symbolic_trace(block)(x3)
    block = tnn.P3DBlock(2, 3, variant="C")
    assert_close(torch.fx.symbolic_trace(block)(x3), block(x3))


def test_tensor_subclasses_and_function_modes_see_the_public_functions():
    """tritonconv's functions honour ``__torch_function__`` as torch's do: a subclass overriding it sees the call (and
    by torch's default gets its own type back), fp8 and (2+1)D functions too."""
    class Logged(torch.Tensor):
        calls = []

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            cls.calls.append(func)
            return super().__torch_function__(func, types, args, kwargs or {})

    x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
    y = tritonconv.conv2d(x.as_subclass(Logged), w, padding=1)
    assert type(y) is Logged and Logged.calls[0] is tritonconv.conv2d
    assert_close(y.as_subclass(torch.Tensor), torch.nn.functional.conv2d(x.double(), w.double(), padding=1))
    ws, wt = torch.randn(3, 2, 1, 3, 3), torch.randn(2, 3, 3, 1, 1)
    tritonconv.conv2plus1d(torch.randn(1, 2, 3, 5, 5), ws.as_subclass(Logged), wt, padding=1)
    xq, xs = tritonconv.fp8.quantize(x)
    wq, wsc = tritonconv.fp8.quantize(w, per_channel_dim=0)
    tritonconv.fp8.conv2d(xq, wq, input_scale=xs.as_subclass(Logged), weight_scale=wsc)
    assert [f for f in Logged.calls if f.__module__.startswith("tritonconv")] == [
        tritonconv.conv2d, tritonconv.conv2plus1d, tritonconv.fp8.conv2d]

    class Seen(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.calls = [*getattr(self, "calls", []), func]
            return func(*args, **(kwargs or {}))

    with Seen() as mode:
        tritonconv.conv_transpose2d(x, w.transpose(0, 1))
    assert tritonconv.conv_transpose2d in mode.calls


@pytest.mark.parametrize("module,x_shape", [
    (lambda: tnn.Conv1d(2, 3, 3), (2, 2, 9)),
    (lambda: tnn.ConvTranspose2d(2, 3, 3, stride=2, padding=1), (2, 2, 5, 6)),
    (lambda: tnn.Conv2Plus1d(2, 3, 3, padding=1), (2, 2, 4, 5, 6)),
])
def test_export_keeps_batch_and_width_dynamic(module, x_shape):
    """``torch.export`` with a dynamic batch and width: the custom ops' fake kernels keep the sizes symbolic (no
    size is specialised to the example's), and the exported program runs other sizes."""
    from torch.export import Dim

    torch.manual_seed(0)
    m = module()
    x = torch.randn(x_shape)
    program = torch.export.export(m, (x,), dynamic_shapes=({0: Dim("batch"), len(x_shape) - 1: Dim("width", min=4)},))
    other = torch.randn(3, *x_shape[1:-1], 11)
    assert_close(program.module()(other), m(other))


class _Copies(torch.utils._python_dispatch.TorchDispatchMode):
    """The shapes of the tensors every copying torch op is given while active."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.clone, torch.ops.aten.copy_, torch.ops.aten._to_copy):
            self.shapes.append(tuple(args[0].shape))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("module,x_shape", [(tnn.Conv1d, (2, 16, 11)), (tnn.Conv2d, (2, 16, 7, 9)),
                                            (tnn.Conv3d, (1, 16, 4, 5, 6))])
def test_weight_gradient_written_in_the_parameters_layout(module, x_shape):
    """tritonconv.nn keeps its weights channels-innermost and their gradients are written that way, so autograd
    takes each as it comes (a gradient laid out unlike its parameter is copied to the parameter's layout on every
    step); split and flipped weight gradients too. Values against torch. (16 channels: a layer of fewer packs its
    positions into channels and unpacks its weight gradient into the weight's layout, tests/test_conv.py.)"""
    from tritonconv import dispatch, geometry, tuning
    from tritonconv._checks import conv_spec

    ndim = len(x_shape) - 2
    theirs = getattr(torch.nn.functional, f"conv{ndim}d")
    m = module(16, 4, 3, padding=1)
    assert geometry.grad_channels_inner(m.weight)
    x = torch.randn(x_shape)
    with _Copies() as log:
        m(x).square().sum().backward()
    assert m.weight.grad.stride() == m.weight.stride()
    assert tuple(m.weight.shape) not in log.shapes  # autograd kept the gradient as written
    w64 = m.weight.detach().double().requires_grad_()
    theirs(x.double(), w64, m.bias.detach().double(), padding=1).square().sum().backward()
    assert_close(m.weight.grad, w64.grad)

    w = m.weight.detach()  # a split and flipped weight gradient, summed by torch into the same layout
    spec = conv_spec(f"conv{ndim}d", ndim, x, w, None, 1, 1, 1, 1)
    dy = torch.randn(spec.output_shape)
    grad = dispatch.conv_grad_weight(dy, x, spec, True, tuning.Config(16, 16, 16, num_stages=1, split_k=3), True)
    assert grad.stride() == w.stride()
    w_ref = w.double().requires_grad_()
    (expected,) = torch.autograd.grad(theirs(x.double(), w_ref.flip(list(range(2, w.dim()))), padding=1), w_ref,
                                      dy.double())
    assert_close(grad, expected)


def test_a_first_calls_tuning_times_the_weight_gradient_laid_out_as_its_parameter(monkeypatch):
    """Where a first call tunes (on a GPU), the candidates it times write the weight gradient as the call will:
    laid out as its parameter (``tritonconv.nn``'s, input channels innermost), not contiguous."""
    from tritonconv import dispatch, tuning

    timed = []

    def choose(problem, device, interp, run, model=None):
        cfg = tuning.Config(16, 16, 16, num_stages=1)
        timed.append(run(cfg).stride())
        return cfg

    monkeypatch.setattr(tuning, "choose", choose)
    dispatch.clear_plans()
    m = tnn.Conv2d(16, 4, 3, padding=1)
    m(torch.randn(2, 16, 7, 9)).sum().backward()
    dispatch.clear_plans()
    assert m.weight.stride() in timed and m.weight.stride() != m.weight.contiguous().stride(), timed


def test_autocast_runs_the_layers_as_torchs():
    """Under ``torch.autocast`` a layer (and a direct call) runs in the region's dtype, as torch's convolutions do:
    the output's dtype is torch's, its values torch's within that dtype's tolerance, the gradients reach the fp32
    parameters in fp32; float64 operands are not cast (torch's rule); outside the region nothing is cast."""
    ref = torch.nn.Conv2d(4, 6, 3, padding=1)
    mod = tnn.Conv2d(4, 6, 3, padding=1)
    mod.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, 7, 6)
    dy = torch.randn(2, 6, 7, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, theirs = mod(x), ref(x)
        assert ours.dtype == theirs.dtype == torch.bfloat16
        assert tritonconv.conv_transpose2d(x, ref.weight.transpose(0, 1)).dtype == torch.bfloat16
        x5 = torch.randn(1, 4, 3, 5, 5)
        ws, wt = torch.randn(5, 4, 1, 3, 3), torch.randn(6, 5, 2, 1, 1)
        assert tritonconv.conv2plus1d(x5, ws, wt).dtype == torch.bfloat16
        assert tritonconv.conv2d(x.double(), ref.weight.double()).dtype == torch.float64
    assert_close(ours, theirs.double(), torch.bfloat16)
    ours.backward(dy)
    theirs.backward(dy)
    for a, b in ((mod.weight, ref.weight), (mod.bias, ref.bias)):
        assert a.grad.dtype == b.grad.dtype == torch.float32
        assert_close(a.grad, b.grad.double(), torch.bfloat16)
    assert mod(x).dtype == torch.float32
