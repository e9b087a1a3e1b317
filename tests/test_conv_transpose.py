"""Transposed convolution against torch: forward, gradients, modules, bad arguments, stride phases."""

import itertools
import json

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close

import tritonconv
from tritonconv import shapes

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
OURS = {1: tritonconv.conv_transpose1d, 2: tritonconv.conv_transpose2d, 3: tritonconv.conv_transpose3d}
TORCH = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
ACT = {None: lambda t: t, "relu": F.relu, "gelu": F.gelu, "silu": F.silu}

GRID = [  # ndim, input, weight (C_in, C_out/groups, *k), arguments: odd sizes, edges, every relation
    (1, (2, 4, 9), (4, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    (1, (1, 3, 7), (3, 5, 2), dict(stride=3)),  # stride > kernel: gaps of zeros in the output
    (1, (2, 4, 6), (4, 2, 3), dict(dilation=2, padding=2, groups=2)),
    (1, (1, 6, 5), (6, 1, 4), dict(stride=2, groups=6)),  # depthwise
    (1, (1, 2, 5), (2, 3, 3), dict(stride=2, dilation=3, output_padding=2)),  # output_padding >= stride, < dilation
    (2, (2, 5, 5, 4), (5, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    (2, (1, 4, 4, 3), (4, 2, 2, 3), dict(stride=(1, 2), padding=(0, 1), groups=2)),
    (2, (1, 3, 3, 5), (3, 4, 1, 1), dict(stride=2)),  # 1x1
    (2, (2, 4, 4, 4), (4, 2, 3, 3), dict(stride=2, padding=1, groups=4)),  # depthwise, multiplier 2
    (3, (1, 3, 3, 4, 3), (3, 2, 3, 3, 3), dict(stride=2, padding=1, output_padding=(1, 0, 1))),
    (3, (2, 2, 2, 3, 3), (2, 3, 2, 1, 3), dict(stride=(2, 1, 2), dilation=(1, 2, 1))),
    (2, (2, 3, 5, 4), (3, 4, 3, 1), dict(padding=(1, 0))),  # (k, 1): run with H and W merged
    (3, (1, 2, 3, 2, 3), (2, 3, 2, 1, 1), dict(dilation=(2, 1, 1))),  # (k, 1, 1): a 1-D transposed convolution
]


def rand(shape, dtype=torch.float32, fmt=torch.contiguous_format):
    return torch.randn(shape, device=DEVICE, dtype=dtype).contiguous(memory_format=fmt)


@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", GRID)
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_torch(ndim, x_shape, w_shape, kw, bias):
    x, w = rand(x_shape), rand(w_shape)
    b = rand(w_shape[1] * kw.get("groups", 1)) if bias else None
    out = OURS[ndim](x, w, b, **kw)
    ref = TORCH[ndim](x.double(), w.double(), None if b is None else b.double(), **kw)
    assert out.dtype == x.dtype and out.device == x.device
    assert_close(out, ref)


@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", GRID[::2])
@pytest.mark.parametrize("activation", ["relu", "gelu", "silu"])
def test_gradients_match_torch(ndim, x_shape, w_shape, kw, activation):
    x, w = rand(x_shape).requires_grad_(), rand(w_shape).requires_grad_()
    b = rand(w_shape[1] * kw.get("groups", 1)).requires_grad_()
    out = OURS[ndim](x, w, b, activation=activation, **kw)
    xd, wd, bd = (t.detach().double().requires_grad_() for t in (x, w, b))
    ref = ACT[activation](TORCH[ndim](xd, wd, bd, **kw))
    assert_close(out, ref)
    dy = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (x, w, b), dy.float())
    refs = torch.autograd.grad(ref, (xd, wd, bd), dy)
    for g, r in zip(grads, refs):
        assert_close(g, r)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype):
    x, w, b = rand((2, 8, 5, 6), dtype), rand((8, 4, 3, 3), dtype), rand(4, dtype)
    out = tritonconv.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)
    assert out.dtype == dtype
    ref = F.conv_transpose2d(x.double(), w.double(), b.double(), stride=2, padding=1, output_padding=1)
    assert_close(out, ref, dtype)


def test_unbatched_and_channels_last():
    x, w = rand((4, 5, 6)), rand((4, 3, 3, 3))
    out = tritonconv.conv_transpose2d(x, w, stride=2)
    assert_close(out, F.conv_transpose2d(x.double(), w.double(), stride=2))
    xl = rand((2, 4, 5, 6), fmt=torch.channels_last)
    out = tritonconv.conv_transpose2d(xl, w, stride=2, padding=1)
    assert out.is_contiguous(memory_format=torch.channels_last)  # torch's rule: the input's format
    assert_close(out, F.conv_transpose2d(xl.double(), w.double(), stride=2, padding=1))


@pytest.mark.parametrize("compiled", [False, True])
def test_input_gradient_is_laid_out_as_the_input(compiled):
    """Torch's rule for an input gradient: the input's layout, whatever the output gradient's (a bare ``.sum()``'s
    is expanded, read as NC(D)HW); eager, and through torch.compile's graphs (the custom ops)."""
    for ndim, fmt in ((2, torch.channels_last), (3, torch.channels_last_3d), (2, torch.contiguous_format)):
        x = rand((2, 8, 3, 4, 5)[: ndim + 2], fmt=fmt).requires_grad_()
        w = rand((8, 4, *(2,) * ndim), fmt=torch.contiguous_format if fmt != torch.contiguous_format else
                 {2: torch.channels_last, 3: torch.channels_last_3d}[ndim])  # the other layout than x's
        op = OURS[ndim]
        if compiled:
            op = torch.compile(op, backend="aot_eager", fullgraph=True)
        out = op(x, w, stride=2)
        (grad,) = torch.autograd.grad(out.sum(), x)
        assert grad.is_contiguous(memory_format=fmt), grad.stride()
        xd = x.detach().double().requires_grad_()
        assert_close(grad, torch.autograd.grad(TORCH[ndim](xd, w.double(), stride=2).sum(), xd)[0])


def test_output_size_formula_matches_torch():
    for size, k, s, p, op, d in [(5, 3, 2, 1, 1, 1), (7, 2, 3, 0, 2, 1), (4, 3, 1, 2, 0, 2), (3, 3, 2, 0, 2, 3)]:
        x, w = torch.zeros(1, 1, size, device="meta"), torch.zeros(1, 1, k, device="meta")
        expected = F.conv_transpose1d(x, w, stride=s, padding=p, output_padding=op, dilation=d).shape[-1]
        assert shapes.conv_transpose_output_size(size, k, s, p, op, d) == expected


@pytest.mark.parametrize("kwargs,message", [
    (dict(output_padding=2, stride=2), "output_padding"),
    (dict(padding=-1), "padding"),
    (dict(groups=3), "groups"),
    (dict(stride=0), "stride"),
    (dict(padding=5), "not positive"),
])
def test_bad_arguments(kwargs, message):
    x, w = torch.randn(1, 4, 5), torch.randn(4, 2, 3)
    with pytest.raises(ValueError, match=message):
        tritonconv.conv_transpose1d(x, w, **kwargs)
    with pytest.raises(ValueError, match="expected `weight` of shape"):
        tritonconv.conv_transpose1d(x, torch.randn(3, 2, 3))
    with pytest.raises(ValueError, match="expected `bias` of shape"):
        tritonconv.conv_transpose1d(x, w, torch.randn(3))


@pytest.mark.parametrize("cls,shape", [(torch.nn.ConvTranspose1d, (2, 4, 7)), (torch.nn.ConvTranspose2d, (1, 4, 5, 6)),
                                       (torch.nn.ConvTranspose3d, (1, 4, 3, 4, 3))])
def test_modules_and_convert(cls, shape):
    torch_module = cls(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2).to(DEVICE)
    ours = tritonconv.nn.convert(torch.nn.Sequential(torch_module)).to(DEVICE)[0]
    assert type(ours).__name__ == cls.__name__ and type(ours).__module__ == "tritonconv.nn"
    x = rand(shape).requires_grad_()
    out = ours(x)
    reference = cls(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2).to(DEVICE).double()
    reference.load_state_dict(ours.state_dict())
    xd = x.detach().double().requires_grad_()
    ref = reference(xd)
    assert_close(out, ref)
    out.sum().backward()
    ref.sum().backward()
    assert_close(x.grad, xd.grad)
    assert_close(ours.weight.grad, reference.weight.grad)
    sized = [s * 2 for s in shape[2:]]  # output_size picks the output padding, as in torch
    assert ours(x, output_size=sized).shape[2:] == reference(xd, output_size=sized).shape[2:] == tuple(sized)


def test_compiled_graph_traces_the_transposed_op():
    x, w, b = rand((1, 4, 5, 5)).requires_grad_(), rand((4, 3, 3, 3)).requires_grad_(), rand(3).requires_grad_()
    fn = torch.compile(lambda x, w, b: tritonconv.conv_transpose2d(x, w, b, stride=2, activation="silu"),
                       backend="aot_eager", fullgraph=True)
    out = fn(x, w, b)
    ref = F.silu(F.conv_transpose2d(x.double(), w.double(), b.double(), stride=2))
    assert_close(out, ref)
    grads = torch.autograd.grad(out.sum(), (x, w, b))
    xd, wd, bd = (t.detach().double().requires_grad_() for t in (x, w, b))
    refs = torch.autograd.grad(F.silu(F.conv_transpose2d(xd, wd, bd, stride=2)).sum(), (xd, wd, bd))
    for g, r in zip(grads, refs):
        assert_close(g, r)


def test_phase_taps_are_the_taps_reaching_each_phase():
    for k, s, p, d in itertools.product(range(1, 6), range(1, 5), range(4), range(1, 4)):
        step, phases = shapes.phase_taps(k, s, p, d)
        for phase, (first, count) in enumerate(phases):
            reaching = [t for t in range(k) if (phase + p - t * d) % s == 0]
            assert list(range(first, first + count * step, step)) == reaching, (k, s, p, d, phase)
        assert sum(count for _, count in phases) == k  # each tap reaches one phase


def test_tapless_phase_says_whether_some_phase_has_no_tap():
    table = lambda k, s: shapes.phase_table((1, k, k), (1, s, s), (0, 0, 0), (1, 1, 1))[1]  # noqa: E731
    assert shapes.tapless_phase(table(1, 2)) and shapes.tapless_phase(table(2, 3))
    assert not shapes.tapless_phase(table(3, 2)) and not shapes.tapless_phase(table(2, 2))


@pytest.mark.parametrize("k,s", [(1, 2), (2, 3)])
def test_phases_no_tap_reaches(k, s):
    """Stride phases no tap reaches (three of four of a 1x1 kernel's at stride 2) write the bias alone: their programs
    run no step of the main loop, which the kernel then does not promise the compiler it runs (``TAPLESS``; the
    interpreter asserts the promise where it is made). Channels enough that the layer is not packed."""
    x, w, b = torch.randn(1, 32, 5, 4), torch.randn(32, 16, k, k), torch.randn(16)
    out = tritonconv.conv_transpose2d(x, w, b, stride=s)
    assert_close(out, F.conv_transpose2d(x.double(), w.double(), b.double(), stride=s))


@pytest.mark.parametrize("ndim,descriptors,fmt", [
    (2, False, torch.contiguous_format), (2, True, torch.channels_last),
    (1, True, torch.contiguous_format),  # dy channels innermost on descriptors, dx NCL: stored across (Y_ACROSS)
])
def test_a_tiles_stride_phases_are_neighbouring_programs(monkeypatch, ndim, descriptors, fmt):
    """A strided input gradient's programs vary the stride phase fastest: the first ``2**ndim`` programs (stride 2)
    write one tile of every phase, so that a tile's phases run together and the elements they write into the same
    sectors of an NC(D)HW output meet in L2 (phase after phase, an output larger than L2 would leave it in part-written
    sectors, each written ``s`` times). Only those programs run here (the others' outputs stay NaN); what they write
    is the gradient."""
    from tritonconv import _runtime, dispatch, geometry
    from tritonconv._checks import conv_spec

    size = (11, 13)[-ndim:]
    inner = (lambda t: t.transpose(1, -1).contiguous().transpose(1, -1)) if descriptors else (lambda t: t)
    x, w = inner(rand((1, 16, *size))), rand((16, 16, *(3,) * ndim))
    spec = conv_spec(f"conv{ndim}d", ndim, x, w, None, 2, 1, 1, 1)
    dy = inner(rand(spec.output_shape))
    cfg = geometry.Config(32, 16, 16, 1, 4, 2, **(dict(tile_h=1, tile_b=1) if descriptors else {}))
    getitem = _runtime.Kernel.__getitem__

    def first_programs(self, device):  # the GEMM kernels' launches run their first programs (one per phase) alone
        launcher = getitem(self, device)
        if self.compiled.fn.__name__ not in ("_conv_kernel", "_conv_tma_kernel"):
            return launcher
        ran.append(self.compiled.fn.__name__)
        return type("First", (), {"__getitem__": lambda _, grid: launcher[(2 ** ndim,) + (1,) * (len(grid) - 1)]})()

    ran = []
    monkeypatch.setattr(_runtime.Kernel, "__getitem__", first_programs)
    dx = dispatch.conv_transpose(dy, w, None, spec, memory_format=fmt, config=cfg)
    assert ran == ["_conv_tma_kernel" if descriptors else "_conv_kernel"]
    written = ~dx[0].isnan().all(0)  # positions some channel of which was written
    at = written.nonzero()
    assert {tuple(p) for p in (at % 2).tolist()} == set(itertools.product((0, 1), repeat=ndim))  # every phase
    tile = {tuple(j) for j in (at // 2).tolist()}
    every_phase = torch.tensor([tuple(o // 2 for o in pos) in tile for pos in itertools.product(*map(range, size))])
    assert torch.equal(written.flatten(), every_phase)  # each phase's positions of one tile of j, no other
    ref = getattr(torch.nn.grad, f"conv{ndim}d_input")(x.shape, w.double(), dy.double(), stride=2, padding=1)
    assert_close(dx[..., written], ref[..., written])


def test_strided_transposed_passes_issue_no_masked_tap_work():
    """By stride phase, the input gradient of a strided layer issues the matrix work of its forward pass
    (every tap for every position would be stride**ndim times that: 4x in 2D, 8x in 3D)."""
    from benchmarks import work

    suite = json.loads((work.ROOT / "shapes.json").read_text())
    picked = {"downsample_k7_s4", "resnet50_l2_3x3s2", "r3d18_l2_s2", "ct_anisotropic"}
    mini = {op: [e for e in suite[op] if e["name"] in picked] for op in ("conv1d", "conv2d", "conv3d")}
    rows = {(r["name"], r["kind"]): r["ratio"] for r in work.report(mini, kinds=("conv", "conv_t"))}
    assert {name for name, _ in rows} == picked
    for name in picked:
        assert rows[name, "conv_t"] <= rows[name, "conv"] + 0.01, (name, rows)
