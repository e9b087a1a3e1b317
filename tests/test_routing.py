"""``tritonconv.enable()``: a program's convolutions, however called, run tritonconv's kernels; the rest stays torch's."""

import subprocess
import sys
import threading

import pytest
import torch
import torch.nn.functional as F

import tritonconv
from tritonconv import routing


class WeightStandardized(torch.nn.Conv2d):
    """A convolution whose own forward calls F.conv2d (the pattern nn.convert leaves on torch)."""

    def forward(self, x):
        w = self.weight
        w = (w - w.mean(dim=(1, 2, 3), keepdim=True)) / (w.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv2dSame(torch.nn.Conv2d):
    """timm's pattern: pad in forward for TensorFlow's 'SAME', then convolve unpadded."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        ph = max((-(-ih // self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - ih, 0)
        pw = max((-(-iw // self.stride[1]) - 1) * self.stride[1] + self.kernel_size[1] - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class Mixed(torch.nn.Module):
    CONVS = {"conv1d": 1, "conv2d": 4, "conv_transpose2d": 1, "conv3d": 1}  # forward calls per family

    def __init__(self):
        super().__init__()
        self.stem = Conv2dSame(3, 8, 3, stride=2)
        self.ws = WeightStandardized(8, 8, 3, padding=1, bias=False)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.up = torch.nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.head = torch.nn.Parameter(torch.randn(6, 4, 1, 1) / 2)
        self.seq = torch.nn.Conv1d(6, 5, 3, dilation=2)
        self.vol = torch.nn.Conv3d(1, 2, (1, 2, 3))

    def forward(self, x):
        y = torch.relu(self.stem(x))
        y = self.dw(torch.relu(self.ws(y))) + y
        y = self.up(y)
        y = F.conv2d(y, self.head, padding="same")  # a functional call in a forward
        seq = self.seq(y.flatten(2))  # (N, 6, H*W)
        return seq.mean() + self.vol(seq[:, None, None]).mean()


def grads(model, x):
    model.zero_grad()
    x = x.detach().requires_grad_()
    out = model(x)
    out.backward()
    return [out, x.grad] + [p.grad for p in model.parameters()]


def test_every_convolution_of_a_model_runs_tritonconv_forward_and_backward():
    torch.manual_seed(0)
    model, x = Mixed(), torch.randn(2, 3, 9, 11)
    want = grads(model, x)
    with tritonconv.enabled() as counts:
        got = grads(model, x)
        assert isinstance(model(x).grad_fn, torch.autograd.graph.Node)
    assert dict(counts.routed) == {name: 2 * n for name, n in Mixed.CONVS.items()} and not counts.left, counts
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert "tritonconv ran 14 convolution calls" in str(counts)


def test_leaving_the_context_restores_torchs_path():
    x, w = torch.randn(1, 2, 6, 6, requires_grad=True), torch.randn(3, 2, 3, 3)
    assert type(F.conv2d(x, w).grad_fn).__name__ == "ConvolutionBackward0"
    with tritonconv.enabled():
        assert type(F.conv2d(x, w).grad_fn).__name__ == "_ConvFunctionBackward"
        assert routing._library is not None
    assert routing._library is None and not tritonconv.routing.is_enabled()
    before = sum(routing.report().routed.values())
    assert type(F.conv2d(x, w).grad_fn).__name__ == "ConvolutionBackward0"
    assert sum(routing.report().routed.values()) == before
    tritonconv.enable()
    try:
        assert routing.is_enabled() and type(F.conv2d(x, w).grad_fn).__name__ == "_ConvFunctionBackward"
    finally:
        tritonconv.disable()
    assert routing._library is None


def test_blocks_nest_and_routing_is_per_thread():
    x, w = torch.randn(1, 2, 6, 6, requires_grad=True), torch.randn(3, 2, 3, 3)

    def kind():  # torch's path: its own node (no routing registered) or the fallback's (routing off in this thread)
        name = type(F.conv2d(x, w).grad_fn).__name__
        return "ConvolutionBackward0" if name in ("ConvolutionBackward0", "_TorchConvolutionBackward") else name

    seen = {}
    process_left = routing.report().left["routing off in this thread"]
    with tritonconv.enabled() as outer:
        assert kind() == "_ConvFunctionBackward"
        with tritonconv.enabled(False) as inner:
            assert kind() == "ConvolutionBackward0"
            with tritonconv.enabled():
                assert kind() == "_ConvFunctionBackward"
            assert kind() == "ConvolutionBackward0"
        assert kind() == "_ConvFunctionBackward"
        other = threading.Thread(target=lambda: seen.update(other=kind()))  # another thread: its own state, off
        other.start()
        other.join()
    assert seen["other"] == "ConvolutionBackward0" and kind() == "ConvolutionBackward0"
    assert inner.routed == {"conv2d": 1} and outer.routed == {"conv2d": 3}  # a block counts its own thread's calls
    assert routing.report().left["routing off in this thread"] == process_left + 1  # the other thread, while on here

    def routed_elsewhere():
        with tritonconv.enabled():
            seen["y"] = F.conv2d(x, w)

    worker = threading.Thread(target=routed_elsewhere)  # a thread's routed forward: its backward follows it
    worker.start()
    worker.join()
    assert type(seen["y"].grad_fn).__name__ == "_ConvFunctionBackward"
    seen["y"].sum().backward()
    torch.testing.assert_close(x.grad, torch.autograd.grad(F.conv2d(x, w).sum(), x)[0], rtol=1e-5, atol=1e-5)


DTENSOR = """
import torch, torch.distributed as dist, torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import distribute_tensor, Replicate, Shard
import tritonconv
dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)  # real collectives: on torch
# 2.11 a DTensor convolution over the "fake" process group returns unwritten memory, tritonconv or not
mesh = init_device_mesh("cpu", (1,))
x, w = torch.randn(2, 2, 6, 6, requires_grad=True), torch.randn(3, 2, 3, 3)
xd = distribute_tensor(x.detach(), mesh, [Shard(0)]).requires_grad_()
with tritonconv.enabled() as counts:
    y = F.conv2d(xd, distribute_tensor(w, mesh, [Replicate()]), padding=1)
    y.sum().backward()
assert type(y).__name__ == "DTensor" and dict(counts.left) == {"DTensor: torch's sharding rules": 1}, counts
F.conv2d(x, w, padding=1).sum().backward()
torch.testing.assert_close(y.full_tensor(), F.conv2d(x, w, padding=1))
torch.testing.assert_close(xd.grad.full_tensor(), x.grad)
print("ok")
"""


def test_what_tritonconv_does_not_run_falls_back_and_is_counted():
    """A DTensor (on a one-process mesh) is left to torch's sharding rules: torch's kernels, gradients included,
    counted with the reason; torch's own errors for torch's own misuse are unchanged, and so is its result where
    tritonconv refuses what torch runs (no input channels)."""
    done = subprocess.run([sys.executable, "-c", DTENSOR], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
    with tritonconv.enabled(), pytest.raises(RuntimeError):
        F.conv2d(torch.randn(1, 2, 7, 7), torch.randn(3, 2, 3, 3, dtype=torch.float64))
    with tritonconv.enabled() as counts:  # no input channels: tritonconv refuses, torch returns an empty tensor
        assert F.conv2d(torch.randn(1, 0, 7, 7), torch.randn(3, 0, 3, 3)).shape == (1, 0, 5, 5)
    assert dict(counts.left) == {"no input channels": 1}, counts


def test_torch_func_transforms_run_with_routing_on():
    """Under a ``torch.func`` transform's level (``grad``, ``jvp``, ``jacrev``, ``jacfwd``, ``hessian``, and ``vmap``
    of ``grad``: per-sample gradients) a routed call, where no autograd function can run, is torch's own convolution
    with torch's derivatives, counted as left; the results equal torch's. ``vmap`` alone folds its axis before the
    routing sees the call, which runs tritonconv; so do the tangents torch's forward-mode formulas convolve (ZeroTensors
    among them: ``functional.stored``)."""
    from torch.func import functional_call, grad, hessian, jacfwd, jacrev, jvp, vmap

    torch.manual_seed(0)
    conv, up = torch.nn.Conv2d(2, 3, 3, padding=1).double(), torch.nn.ConvTranspose2d(3, 2, 3, stride=2).double()
    net = torch.nn.Sequential(conv, torch.nn.Tanh(), up)
    x, params = torch.randn(3, 2, 4, 5, dtype=torch.float64), dict(net.named_parameters())

    def loss(p, xi):
        return functional_call(net, p, (xi.unsqueeze(0),)).square().sum()

    def transforms():
        small = x[:1, :, :3, :3]
        return {"per-sample grads": vmap(grad(loss), in_dims=(None, 0))(params, x),
                "grad": grad(loss)(params, x[0]),
                "jvp": jvp(net, (x,), (torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(1)),)),
                "jacrev": jacrev(lambda v: net(v).sum((0, 2, 3)))(small),
                "jacfwd": jacfwd(lambda v: conv(v).sum(0))(small),
                "hessian": hessian(lambda v: net(v).tanh().sum())(small),
                "jacfwd of jacfwd": jacfwd(jacfwd(lambda v: net(v).tanh().sum()))(small),
                "vmap": vmap(net)(x[:, None])}

    want = transforms()
    with tritonconv.enabled() as counts:
        got = transforms()
    for name, ref in want.items():
        flat_ref, flat_got = torch.utils._pytree.tree_leaves(ref), torch.utils._pytree.tree_leaves(got[name])
        assert all(torch.allclose(a, b, rtol=1e-10, atol=1e-12) for a, b in zip(flat_got, flat_ref)), name
    assert counts.left["inside a torch.func transform (grad, jvp, ...)"] > 0, counts
    assert counts.routed["conv2d"] > 0 and counts.routed["conv_transpose2d"] > 0, counts  # vmap alone; tangents
    assert set(counts.left) == {"inside a torch.func transform (grad, jvp, ...)"}, counts


def test_torch_compile_traces_the_routed_convolutions_without_a_graph_break():
    from functorch.compile import make_boxed_func
    from torch._dynamo.testing import CompileCounterWithBackend
    from torch._functorch.aot_autograd import aot_module_simplified

    targets = []

    def inner(gm, _):
        targets.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return make_boxed_func(gm.forward)

    counter = CompileCounterWithBackend(lambda gm, inputs: aot_module_simplified(gm, inputs, fw_compiler=inner,
                                                                                  bw_compiler=inner))
    torch._dynamo.reset()
    model, x = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.ReLU()), torch.randn(1, 2, 6, 6, requires_grad=True)
    with tritonconv.enabled():
        y = torch.compile(model, backend=counter, fullgraph=True)(x)
        y.sum().backward()
    assert counter.frame_count == 1
    assert {"tritonconv.conv.default", "tritonconv.conv_grad_input.default", "tritonconv.conv_grad_weight.default"} <= set(
        targets), targets
    torch.testing.assert_close(y, model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("transposed", [False, True])
def test_routed_calls_are_checked_once_per_signature(transposed, monkeypatch):
    """The operator passes its int[] arguments as lists; a call's signature keeps them as tuples, so a routed call
    whose signature was seen skips the argument checks (and, without gradients, goes straight to its plan), as a
    direct call does."""
    from tritonconv import _checks

    checks = []
    for name in ("conv_spec", "conv_transpose_spec"):
        original = getattr(_checks, name)
        monkeypatch.setattr(_checks, name, lambda *a, _f=original, **k: checks.append(1) or _f(*a, **k))
    x, w = torch.randn(1, 4, 6, 7), torch.randn(4, 3, 3, 3)
    wf = w.transpose(0, 1).contiguous()  # (3, 4, 3, 3): a convolution of 4 channels into 3

    def op():
        return F.conv_transpose2d(x, w, stride=2, padding=1) if transposed else F.conv2d(x, wf, padding=1)

    with torch.no_grad(), tritonconv.enabled() as report:
        first, again = op(), op()
    assert len(checks) == 1 and sum(report.routed.values()) == 2
    assert torch.equal(first, again)
    # plain tensors and parameters that tritonconv runs are told apart from the rest without its argument checks
    module = torch.nn.Conv2d(4, 3, 3, padding=1)
    with torch.no_grad(), tritonconv.enabled():
        module(x)  # its signature seen
    tensor_checks = []
    monkeypatch.setattr(_checks, "check_tensors", lambda *a: tensor_checks.append(1))
    with torch.no_grad(), tritonconv.enabled() as report:
        module(x), op()
    assert not tensor_checks and sum(report.routed.values()) == 2
