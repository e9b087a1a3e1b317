"""The host path of a call: plans per signature, weights laid out once, nothing that would stop a
CUDA graph capture (checked on the CPU, with launches stubbed where only the host code matters)."""

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close

import tritonconv
from benchmarks.host import stubbed_launches
from tritonconv import _checks, cache, dispatch, geometry, tuning

allocate = geometry.alloc_output  # the library's own (each test's fixture poisons outputs through a stand-in)


def counting(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(1) or original(*a, **k))
    return calls


def test_a_seen_signature_skips_checks_and_config_choice(monkeypatch):
    checks, choices = counting(monkeypatch, _checks, "conv_spec"), counting(monkeypatch, tuning, "choose")
    x, w, b = torch.randn(2, 3, 9, 7), torch.randn(4, 3, 3, 3), torch.randn(4)
    for _ in range(3):
        assert_close(tritonconv.conv2d(x, w, b, padding=1), F.conv2d(x.double(), w.double(), b.double(), padding=1))
    assert (len(checks), len(choices)) == (1, 1)
    x2 = torch.randn(2, 3, 9, 7)  # new data, same signature: the same plan
    assert_close(tritonconv.conv2d(x2, w, b, padding=1), F.conv2d(x2.double(), w.double(), b.double(), padding=1))
    assert (len(checks), len(choices)) == (1, 1)
    # another argument, layout or batch size is another signature: checked and planned again
    xl = x.contiguous(memory_format=torch.channels_last)
    for args, kwargs in (((x, w, b), dict(padding=1, stride=2)), ((xl, w, b), dict(padding=1)),
                         ((x[:1], w, b), dict(padding=1)), ((x[0], w, b), dict(padding=1))):
        ref = F.conv2d(*(t.double() for t in args), **kwargs)
        for _ in range(2):
            assert_close(tritonconv.conv2d(*args, **kwargs), ref)
    assert (len(checks), len(choices)) == (5, 5)


def test_outputs_are_allocated_with_the_strides_torch_gives_their_format():
    """``geometry.alloc_output`` allocates by strides kept per shape and format (cheaper than ``torch.empty``'s
    ``memory_format``): the same strides as ``torch.empty``'s, size-1 axes included; a shape given as a list too."""
    cases = [((2, 3, 5, 7), torch.contiguous_format), ((2, 3, 5, 7), torch.channels_last), ((2, 1, 1, 7), torch.channels_last),
             ((1, 4, 1, 1), torch.channels_last), ((2, 3, 4, 5, 6), torch.channels_last_3d), ((0, 3, 4, 5), torch.channels_last),
             ((9,), torch.contiguous_format), ((2, 3, 4, 1, 1), torch.channels_last_3d)]
    for shape, fmt in cases:
        for given in (shape, torch.Size(shape), list(shape)):
            y = allocate(given, torch.device("cpu"), torch.bfloat16, fmt)
            want = torch.empty(shape, dtype=torch.bfloat16, memory_format=fmt)
            assert (y.shape, y.stride(), y.dtype) == (want.shape, want.stride(), want.dtype), (shape, fmt)
    assert allocate((3, 4), torch.device("cpu"), torch.float32).stride() == (4, 1)


def test_autograd_calls_bind_no_signature(monkeypatch):
    """torch's ``Function.apply`` binds each call's arguments with ``inspect.signature`` (more host time than a
    cached call) where a function has ``setup_context``; tritonconv's skip it outside ``torch.func`` transforms,
    whose calls still take torch's path and give the same gradients."""
    import inspect

    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 4, 4, 7, dtype=torch.float64)

    def loss(x, w, b, conv):  # a double backward too: every autograd function of the package runs
        y = conv(x, w, b, stride=(2, 1), padding=1, activation="silu")
        (gx,) = torch.autograd.grad((y * g).sum(), x, create_graph=True)
        return (y * g).sum() + (gx * gx).sum()

    def silu_conv(x, w, b, **kw):
        kw.pop("activation")
        return F.silu(F.conv2d(x, w, b, **kw))

    expected = torch.autograd.grad(loss(x, w, b, silu_conv), (x, w, b))
    tritonconv.conv2d(x, w, b, stride=(2, 1), padding=1, activation="silu").sum().backward()  # seen once
    bound = counting(monkeypatch, inspect, "signature")
    got = torch.autograd.grad(loss(x, w, b, tritonconv.conv2d), (x, w, b))
    assert not bound
    for a, e in zip(got, expected):
        assert_close(a, e)
    # under torch.func.grad, torch's own apply (it binds) with the same result
    through_func = torch.func.grad(lambda w: tritonconv.conv2d(x.detach(), w, b.detach(), padding=1).square().sum())(
        w.detach())
    assert bound
    assert_close(through_func, torch.func.grad(lambda w: F.conv2d(x.detach(), w, b.detach(), padding=1)
                                               .square().sum())(w.detach()))


def test_bad_arguments_fail_on_a_seen_signature_too():
    x, w = torch.randn(1, 3, 6, 6), torch.randn(4, 3, 3, 3)
    tritonconv.conv2d(x, w)
    with pytest.raises(ValueError, match="expected `groups`"):
        tritonconv.conv2d(x, w, groups=2)
    with pytest.raises(TypeError, match="expected `weight` to be a torch.Tensor"):
        tritonconv.conv2d(x, [[1.0]])
    with pytest.raises(TypeError, match="dtype"):
        tritonconv.conv2d(x, w.double())


def test_modules_keep_their_weight_laid_out(monkeypatch):
    """Module weights are stored channels-innermost: a call copies no weight, whatever happens to the
    weight in between (an optimizer step, a change through ``.data``, a checkpoint loaded)."""
    copies = counting(monkeypatch, geometry, "to_layout")
    layer = tritonconv.nn.Conv2d(6, 8, 3, padding=1)
    converted = tritonconv.nn.convert(torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3)))[0]
    assert layer.weight.stride(1) == 1 and converted.weight.stride(1) == 1
    copies.clear()
    x = torch.randn(2, 6, 7, 5).contiguous(memory_format=torch.channels_last)

    def check():
        assert_close(layer(x), F.conv2d(x.double(), layer.weight.double(), layer.bias.double(), padding=1))

    with torch.no_grad():
        check()
        layer.weight.mul_(-2.0)  # an optimizer step, say: the version counter moves
        check()
        layer.weight.data.add_(1.0)  # through .data: no version counter moves
        check()
    layer.load_state_dict(torch.nn.Conv2d(6, 8, 3, padding=1).state_dict())
    with torch.no_grad():
        check()
    assert copies == [] and layer.weight.stride(1) == 1


def test_functional_calls_see_changes_made_through_data():
    """The functional API reads an NCHW weight through a copy made per call, never a stale one."""
    x, w = torch.randn(1, 3, 6, 6), torch.randn(4, 3, 3, 3)
    for _ in range(2):
        assert_close(tritonconv.conv2d(x, w), F.conv2d(x.double(), w.double()))
        w.data.mul_(-1.0)


def test_launch_path_never_synchronises(monkeypatch):
    """No .item(), .tolist() or synchronize on a warm call of any op (what a CUDA graph capture forbids)."""
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    w = torch.randn(8, 4, 3, 3, requires_grad=True)
    xs, ws, wt = torch.randn(1, 3, 4, 5, 5), torch.randn(4, 3, 1, 3, 3), torch.randn(5, 4, 3, 1, 1)
    live = tritonconv.streaming.StreamingConv1d(torch.randn(3, 2, 3))

    def calls():
        tritonconv.conv2d(x, w, padding=1, groups=1, activation="relu").sum().backward()
        tritonconv.conv2d(x, torch.randn(8, 1, 3, 3), padding=1, groups=4).sum().backward()  # depthwise
        with torch.no_grad():
            tritonconv.conv1d(x[0, :, 0], w[:, :, 0], padding=1)  # unbatched
            tritonconv.conv2plus1d(xs, ws, wt, padding=1, fused=True)
        live.step(torch.randn(1, 2, 5))

    def forbidden(*args, **kwargs):
        raise AssertionError("host synchronisation on the launch path")

    with stubbed_launches():
        calls()  # plans built
        for name in ("item", "tolist"):
            monkeypatch.setattr(torch.Tensor, name, forbidden)
        monkeypatch.setattr(torch.cuda, "synchronize", forbidden)
        calls()


def test_no_tuning_inside_a_graph_capture(monkeypatch, tmp_path):
    monkeypatch.setenv("TRITONCONV_CACHE_DIR", str(tmp_path))
    cache.clear_memory()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    problem = tuning.Problem.of("conv", "float32", "contiguous", (1, 4, 8, 8), (4, 4, 3, 3), 1, 1)
    with pytest.raises(RuntimeError, match="inside a CUDA graph capture"):
        tuning.resolve(problem, "Test GPU", lambda cfg: torch.zeros(1), autotune=True)
    cache.store("Test GPU", {problem.key(): cache.entry(problem, tuning.Config(16, 16, 16), 0.1)})
    assert tuning.resolve(problem, "Test GPU", lambda cfg: torch.zeros(1), autotune=True) == tuning.Config(16, 16, 16)
    cache.clear_memory()


def test_plans_are_bounded(monkeypatch):
    monkeypatch.setattr(dispatch, "MAX_PLANS", 3)
    w = torch.randn(2, 1, 3)
    for n in range(1, 6):
        x = torch.randn(1, 1, 4 + n)
        assert_close(tritonconv.conv1d(x, w), F.conv1d(x.double(), w.double()))
        assert len(dispatch._plans) <= 3


def test_converted_block_under_reduce_overhead():
    """``torch.compile(mode="reduce-overhead")`` on a converted model: one graph (the custom ops do not
    break it), forward and backward as eager. On a GPU this mode replays CUDA graphs (the GPU session
    runs this file on CUDA tensors); on the CPU it compiles the same graph and skips the capture."""
    import shutil

    if shutil.which("g++") is None and shutil.which("clang++") is None:
        pytest.skip("torch.compile's inductor backend needs a C++ compiler on CPU; none installed")
    torch._dynamo.reset()
    block = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 5, 1))
    ours = tritonconv.nn.convert(block)
    compiled = torch.compile(ours, mode="reduce-overhead", fullgraph=True)
    for _ in range(3):  # warm-up calls, then replays on new data
        x = torch.randn(2, 3, 7, 6, requires_grad=True)
        y = compiled(x)
        y.square().sum().backward()
        x64 = x.detach().double().requires_grad_()
        ref = F.conv2d(torch.relu(F.conv2d(x64, block[0].weight.double(), block[0].bias.double(), padding=1)),
                       block[2].weight.double(), block[2].bias.double())
        ref.square().sum().backward()
        assert_close(y.detach().clone(), ref.detach())
        assert_close(x.grad, x64.grad)
