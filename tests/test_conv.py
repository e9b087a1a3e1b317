"""tritonconv.conv1d/2d/3d against torch.nn.functional on fresh random inputs."""

import dataclasses
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from conftest import assert_close
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

import tritonconv
from benchmarks import static
from tritonconv import _checks, costmodel, dispatch, geometry, shapes, tuning
from tritonconv.kernels import gemm

OURS = {1: tritonconv.conv1d, 2: tritonconv.conv2d, 3: tritonconv.conv3d}
TORCH = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
ACT = {None: lambda t: t, "relu": F.relu, "relu6": F.relu6, "gelu": F.gelu,
       "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"), "silu": F.silu, "mish": F.mish, "hardswish": F.hardswish,
       "sigmoid": torch.sigmoid, "tanh": torch.tanh, "hardsigmoid": F.hardsigmoid, "elu": F.elu, "selu": F.selu,
       "leaky_relu": F.leaky_relu, "leaky_relu(0.2)": lambda t: F.leaky_relu(t, 0.2),
       "leaky_relu(-0.5)": lambda t: F.leaky_relu(t, -0.5)}
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def reference(ndim, x, w, b, activation=None, flip=False, **kw):
    """torch in float64 on the same (possibly low-precision) inputs."""
    if flip:
        w = w.flip(list(range(2, 2 + ndim)))
    b64 = None if b is None else b.double()
    return ACT[activation](TORCH[ndim](x.double(), w.double(), b64, **kw))


def check(ndim, x_shape, w_shape, *, bias=True, dtype=torch.float32, activation=None, flip=False, **kw):
    x = torch.randn(x_shape, dtype=dtype, device=DEVICE)
    w = torch.randn(w_shape, dtype=dtype, device=DEVICE)
    b = torch.randn(w_shape[0], dtype=dtype, device=DEVICE) if bias else None
    out = OURS[ndim](x, w, b, activation=activation, flip=flip, **kw)
    assert out.dtype == dtype and out.device == x.device
    assert_close(out, reference(ndim, x, w, b, activation, flip, **kw), dtype)
    return out


# (ndim, input shape, weight shape, kwargs): every argument, odd sizes, edges of the masks.
GRID = [
    (1, (2, 3, 17), (5, 3, 3), dict(padding=1)),
    (1, (1, 1, 9), (1, 1, 4), dict()),  # batch 1, channel 1, even kernel
    (1, (2, 4, 23), (6, 2, 3), dict(stride=2, dilation=3, groups=2, padding=2)),
    (1, (3, 5, 11), (7, 5, 2), dict(stride=4)),  # stride > kernel
    (1, (2, 6, 15), (6, 1, 5), dict(groups=6, padding="same")),  # depthwise, 'same'
    (1, (2, 3, 12), (4, 3, 4), dict(padding="same", dilation=2)),  # even dilated kernel: asymmetric 'same'
    (1, (2, 20, 7), (33, 20, 1), dict()),  # channels not dividing blocks, 1-tap kernel
    (2, (2, 3, 17, 19), (8, 3, 3, 3), dict(padding=1)),
    (2, (1, 1, 7, 9), (1, 1, 3, 2), dict(padding=(1, 0), stride=(2, 1))),  # anisotropic
    (2, (2, 4, 13, 11), (8, 2, 3, 3), dict(stride=(3, 2), dilation=(2, 1), groups=2)),
    (2, (2, 6, 9, 10), (6, 1, 3, 3), dict(groups=6, padding="same")),
    (2, (2, 5, 8, 8), (4, 5, 2, 2), dict(padding="same")),
    (2, (2, 5, 9, 9), (7, 5, 1, 7), dict(padding=(0, 3))),
    (2, (1, 3, 10, 10), (4, 3, 3, 3), dict(padding="valid", stride=5)),
    (3, (2, 3, 5, 6, 7), (4, 3, 3, 3, 3), dict(padding=1)),
    (3, (1, 4, 6, 7, 5), (6, 2, 2, 3, 1), dict(stride=(2, 1, 3), dilation=(1, 2, 1), groups=2, padding=(1, 2, 0))),
    (3, (2, 4, 5, 5, 5), (4, 1, 3, 3, 3), dict(groups=4, padding="same")),
    (3, (1, 2, 4, 9, 9), (3, 2, 1, 3, 3), dict(stride=(1, 2, 2), padding=(0, 1, 1))),
    (2, (1, 3, 7, 8), (6, 1, 3, 3), dict(groups=3, stride=2, padding=1, dilation=(1, 2))),  # depthwise, multiplier 2
    (1, (2, 20, 13), (20, 1, 4), dict(groups=20, padding=2)),  # depthwise, channels over one 16-wide tile
    (2, (1, 18, 6, 7), (5, 18, 3, 3), dict(padding=1, stride=2)),  # 18 channels: tap by tap, two chunks
    (2, (1, 3, 15, 13), (8, 3, 7, 7), dict(stride=2, padding=3)),  # stem: 147 folded taps, three chunks
]


@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", GRID)
@pytest.mark.parametrize("bias", [True, False])
def test_grid_fp32(ndim, x_shape, w_shape, kw, bias):
    check(ndim, x_shape, w_shape, bias=bias, **kw)


@pytest.mark.parametrize("fold", [0, 1])
@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", GRID)
def test_grid_both_reduction_orders(monkeypatch, ndim, x_shape, w_shape, kw, fold):
    """Taps folded into the reduction or walked one by one: the same result for every problem."""
    heuristic = tuning.heuristic
    monkeypatch.setattr(tuning, "heuristic", lambda *a, **k: dataclasses.replace(heuristic(*a, **k), fold=fold))
    check(ndim, x_shape, w_shape, flip=True, **kw)


@pytest.mark.parametrize("fold", [0, 1])
@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", GRID)
def test_grid_split_reduction(monkeypatch, ndim, x_shape, w_shape, kw, fold):
    """Split partial sums (small outputs on a GPU), added in the kernel, then bias and activation on their sum:
    the same result."""
    heuristic = tuning.heuristic
    monkeypatch.setattr(tuning, "heuristic", lambda *a, **k: dataclasses.replace(
        heuristic(*a, **k), block_k=16, split_k=3, fold=fold))
    allocated = []
    alloc = geometry.alloc_output
    monkeypatch.setattr(geometry, "alloc_output", lambda *a, **k: allocated.append(a[0]) or alloc(*a, **k))
    check(ndim, x_shape, w_shape, activation="silu", **kw)
    args = (kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1), kw.get("groups", 1))
    run = geometry.run_spec(_checks.conv_spec("conv", ndim, torch.empty(x_shape), torch.empty(w_shape), None, *args))
    run = run.weight_shape  # strided stems run packed
    reduction = math.prod(run[1:]) if fold else run[1]  # more than one 16-wide chunk: several splits
    several = reduction > 16 and not shapes.is_depthwise(x_shape, w_shape, kw.get("groups", 1))
    assert len(allocated) == (2 if several else 1)  # the output, then the splits' workspace


@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", GRID[::3])
@pytest.mark.parametrize("activation", ["relu", "gelu", "silu", "sigmoid", "tanh", "leaky_relu(0.2)"])
def test_fused_activation(ndim, x_shape, w_shape, kw, activation):
    check(ndim, x_shape, w_shape, activation=activation, **kw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exponential_activations_hold_their_precision_from_underflow_to_overflow(dtype):
    """The epilogues built on exp (tanh-approximated GELU, Mish, ELU, SELU, the sigmoid, tanh, SiLU), on outputs from
    -800 to 100 (a 1x1 convolution of weight 1 passes its input through): within a few roundings of the exact value
    in fp32 and in fp64 (exp(z) - 1 near 0 without cancellation, no overflow on the way: the interpreter warns of
    each), times the exponent's size where it is large (an exponent's rounding moves exp by ``|exponent| eps``: a
    GPU's fp32 exp is ``ex2.approx`` of the rounded ``z log2 e``). The reference is torch's in float64; for tanh-GELU
    its stable form ``z sigmoid(2u)``, as torch's ``0.5 z (1 + tanh u)`` keeps fewer digits past z = -3 (9 at -5)."""
    z = torch.tensor([-800.0, -100.0, -30.0, -9.0, -5.0, -1.0, -0.3, -0.25, -0.2499, -0.1, -1e-3, -1e-6, -1e-30, 0.0,
                      1e-6, 1e-3, 0.2, 1.0, 3.0, 9.0, 25.0, 100.0], dtype=torch.float64)
    atol = torch.finfo(dtype).tiny  # (below the smallest normal number: subnormals, which a GPU flushes)
    two_u = 1.5957691216057308 * (z + 0.044715 * z**3)
    for activation in ("gelu_tanh", "mish", "elu", "selu", "sigmoid", "tanh", "silu"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            y = tritonconv.conv1d(z.to(dtype).view(1, 1, -1), torch.ones(1, 1, 1, dtype=dtype), activation=activation)
        want = z * torch.sigmoid(two_u) if activation == "gelu_tanh" else ACT[activation](z)
        exponent = two_u if activation == "gelu_tanh" else 2 * z
        rtol = 8 * torch.finfo(dtype).eps * exponent.abs().clamp_min(1)
        err = (y.view(-1).double() - want.to(dtype).double()).abs()
        assert (err <= rtol * want.abs() + atol).all(), (activation, z[err > rtol * want.abs() + atol])


@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", GRID[::2])
def test_flip_is_true_convolution(ndim, x_shape, w_shape, kw):
    out = check(ndim, x_shape, w_shape, flip=True, **kw)
    assert out.shape == tuple(shapes.conv_output_shape(x_shape, w_shape, groups=kw.get("groups", 1), **{
        k: v for k, v in kw.items() if k in ("stride", "padding", "dilation")}))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", [GRID[2], GRID[9], GRID[15]])
def test_half_precision(dtype, ndim, x_shape, w_shape, kw):
    # The interpreter's own bf16 tl.dot is wrong; the kernel multiplies bf16 in fp32 there.
    check(ndim, x_shape, w_shape, dtype=dtype, activation="gelu", **kw)


def test_document_worked_example():
    """Section 4: x = [3,1,4,1,5,9], w = [-1,0,1]: cross-correlation gives [1,0,1,8]."""
    x = torch.tensor([[[3.0, 1, 4, 1, 5, 9]]])
    w = torch.tensor([[[-1.0, 0, 1]]])
    assert tritonconv.conv1d(x, w).flatten().tolist() == [1.0, 0.0, 1.0, 8.0]
    # The definition y[n] = sum_k x[k] w[n-k] flips the kernel: the negated differences.
    assert tritonconv.conv1d(x, w, flip=True).flatten().tolist() == [-1.0, 0.0, -1.0, -8.0]


def test_unbatched():
    x, w = torch.randn(3, 7, 8), torch.randn(5, 3, 2, 3)
    out = tritonconv.conv2d(x, w, padding=1)
    assert out.shape == (5, 8, 8)
    assert_close(out, F.conv2d(x.double(), w.double(), padding=1))


@pytest.mark.parametrize("ndim", [2, 3])
def test_channels_last_in_place_and_out(ndim):
    fmt = {2: torch.channels_last, 3: torch.channels_last_3d}[ndim]
    x = torch.randn((2, 5) + (6,) * ndim).contiguous(memory_format=fmt)
    w = torch.randn((4, 5) + (3,) * ndim)
    out = OURS[ndim](x, w, padding=1)
    ref = TORCH[ndim](x, w, padding=1)
    assert out.is_contiguous(memory_format=fmt) == ref.is_contiguous(memory_format=fmt) == True  # noqa: E712
    assert_close(out, reference(ndim, x, w, None, padding=1))
    # A channels-last weight makes a channels-last output too (torch's rule).
    out = OURS[ndim](x.contiguous(), w.contiguous(memory_format=fmt), padding=1)
    assert out.is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_memory_format_sets_the_outputs_layout(ndim):
    """``memory_format``: None, torch's rule (the input's or the weight's channels-last); ``torch.preserve_format``,
    the input's alone; a format, that one; the values the same, with gradients, traced by ``torch.compile`` too."""
    last = {1: None, 2: torch.channels_last, 3: torch.channels_last_3d}[ndim]
    x = torch.randn((2, 5) + (5, 4, 3)[:ndim])
    w = torch.randn((4, 5) + (3,) * ndim)
    ref = reference(ndim, x, w, None, padding=1)
    w_last = w if last is None else w.contiguous(memory_format=last)
    x_last = x if last is None else x.contiguous(memory_format=last)
    formats = [(x, w_last, None, last), (x, w_last, torch.preserve_format, None), (x_last, w, torch.preserve_format, last),
               (x_last, w_last, torch.contiguous_format, None), (x, w, last, last)]
    for xi, wi, asked, want in formats:
        if asked is None and want is None and last is None:
            continue
        xg = xi.clone().requires_grad_()
        out = OURS[ndim](xg, wi, padding=1, memory_format=asked)
        layout = torch.contiguous_format if want is None else want
        assert out.is_contiguous(memory_format=layout) and (want is None or not out.is_contiguous()), (asked, want)
        assert_close(out, ref)
        out.backward(torch.ones_like(out))
        assert xg.grad.shape == x.shape
    if last is not None:
        compiled = torch.compile(lambda a, b: OURS[ndim](a, b, padding=1, memory_format=torch.preserve_format),
                                 backend="aot_eager", fullgraph=True)
        assert compiled(x, w_last).is_contiguous() and compiled(x_last, w).is_contiguous(memory_format=last)


class CopyLog(TorchDispatchMode):
    """The sizes (elements) of the tensors every copying torch op makes while active (clone, copy_, _to_copy)."""

    def __init__(self):
        super().__init__()
        self.copies = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.clone, torch.ops.aten.copy_, torch.ops.aten._to_copy):
            self.copies.append(args[0].numel())
        return func(*args, **(kwargs or {}))


def copies_made(fn) -> list:
    """The copies tritonconv's own code makes in ``fn`` (launches recorded, not run: the interpreter's
    own copies of the kernels' arguments are not tritonconv's)."""
    with static.recording(execute=False), CopyLog() as log:
        fn()
    return log.copies


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_activations_are_read_in_place_in_any_layout(monkeypatch, plain_allocation, ndim):
    """No pass copies an activation, NC(D)HW or channels-last, small problem or large (every GEMM pass
    reads NC(D)HW in place, tiled by rows); a weight with a channel axis innermost (``tritonconv.nn``'s
    layout) is read in place by every pass too, and one in torch's layout is copied once per GEMM pass of
    a large problem only (geometry.WEIGHT_COPY_MACS). The output keeps torch's format; the results equal
    torch's."""
    x = torch.randn((2, 16) + (5,) * ndim, requires_grad=True)  # 16 channels: fewer would pack (a copy, planned)
    w_torch = torch.randn((4, 16) + (3,) * ndim, requires_grad=True)
    w_laid = geometry.channels_inner(w_torch.detach()).requires_grad_()
    ref = reference(ndim, x.detach(), w_torch.detach(), None, padding=1)
    for large in (False, True):
        monkeypatch.setattr(geometry, "WEIGHT_COPY_MACS", 0 if large else 1 << 27)
        for xi in (x, geometry.to_layout(x.detach(), "channels_last").requires_grad_()):
            for w in (w_laid, w_torch):
                dispatch.clear_plans()

                def step(xi=xi, w=w):
                    OURS[ndim](xi, w, padding=1).sum().backward()

                step()  # plans built, results checked below
                copies = copies_made(step)
                assert copies == ([w.numel()] * 2 if large and w is w_torch else []), (large, w is w_laid)
                out = OURS[ndim](xi, w, padding=1)
                assert_close(out, ref)
                assert out.is_contiguous(memory_format=geometry.output_memory_format(xi, w))  # torch's rule


def test_strided_views():
    base = torch.randn(2, 9, 4)  # (N, L, C): channels innermost, as telemetry often arrives
    x = base.transpose(1, 2)  # (N, C, L) view, not contiguous
    w = torch.randn(6, 4, 3)[:, :, :]
    assert_close(tritonconv.conv1d(x, w, padding=1), F.conv1d(x.double(), w.double(), padding=1))
    x2 = torch.randn(2, 3, 20, 18)[:, :, ::2, 1::3]  # sliced spatial dims
    w2 = torch.randn(3, 4, 3, 3).transpose(0, 1)  # weight view
    assert_close(tritonconv.conv2d(x2, w2), F.conv2d(x2.double(), w2.double()))


def test_tensors_whose_storage_holds_other_values_give_torchs_results():
    """A negative view (``z.conj().imag`` of a complex signal: its storage holds the opposite values, which torch's
    kernels resolve) as input, weight, bias, output gradient or tangent, and a ZeroTensor (torch's efficient zeros, no
    storage), give torch's results, also after a plain call of the same signature (whose checks a repeat skips);
    transposed, (2+1)D, streamed and fp8 too, gradients included, and routed."""
    def negative(*shape, requires_grad=False):  # a real tensor with the negative bit set (and its complex base)
        z = torch.randn(*shape, dtype=torch.complex64, requires_grad=requires_grad)
        t = z.conj().imag
        assert t.is_neg()
        return t, z

    (x, _), (w, _), (b, _) = negative(2, 4, 11), negative(3, 4, 3), negative(3)
    for seen in (False, True):  # then a signature seen (plain tensors of these shapes and strides first)
        if seen:
            tritonconv.conv1d(x.resolve_neg(), w.resolve_neg(), b.resolve_neg(), padding=1)
        assert_close(tritonconv.conv1d(x, w, b, padding=1), F.conv1d(x.double(), w.double(), b.double(), padding=1))
    grads = []
    for conv in (tritonconv.conv_transpose2d, F.conv_transpose2d):
        torch.manual_seed(0)
        (xt, zx), (wt, zw) = negative(2, 3, 5, 6, requires_grad=True), negative(3, 2, 3, 3, requires_grad=True)
        y = conv(xt, wt, stride=2)
        y.backward(torch.linspace(-1, 1, y.numel()).view(y.shape))
        grads.append((y, zx.grad, zw.grad))
    for ours, theirs in zip(*grads):
        assert_close(torch.view_as_real(ours) if ours.is_complex() else ours,
                     torch.view_as_real(theirs) if theirs.is_complex() else theirs)
    import torch.autograd.forward_ad as fwAD

    x1, w1 = torch.randn(2, 4, 9, requires_grad=True), torch.randn(3, 4, 3, requires_grad=True)
    (g1, _), (h1, _), (tx, _), (tw, _) = negative(2, 3, 7), negative(3, 4, 3), negative(2, 4, 9), negative(3, 4, 3)
    results = []  # an output gradient, a gradient's gradient and tangents that are negative views
    for conv in (tritonconv.conv1d, F.conv1d):
        gx, gw = torch.autograd.grad(conv(x1, w1), (x1, w1), g1, create_graph=True)
        with fwAD.dual_level():
            tangent = fwAD.unpack_dual(conv(fwAD.make_dual(x1.detach(), tx), fwAD.make_dual(w1.detach(), tw))).tangent
        results.append((gx, gw, torch.autograd.grad(gw, x1, h1)[0], tangent))
    for ours, theirs in zip(*results):
        assert_close(ours, theirs)
    (x3, _), (ws, _), (wt3, _) = negative(1, 2, 4, 6, 6), negative(5, 2, 1, 3, 3), negative(4, 5, 3, 1, 1)
    assert_close(tritonconv.conv2plus1d(x3, ws, wt3, padding=1),
                 F.conv3d(F.conv3d(x3.double(), ws.double(), padding=(0, 1, 1)), wt3.double(), padding=(1, 0, 0)))
    (w5, _), (b5, _), x5 = negative(3, 2, 3, 3, 3), negative(3), torch.randn(1, 2, 5, 4, 4)
    slabs = tritonconv.streaming.conv3d_stream((x5[:, :, i] for i in range(5)), w5, b5, padding=1)
    assert_close(torch.cat(list(slabs), 2), F.conv3d(x5.double(), w5.double(), b5.double(), padding=1))
    xq, xs = tritonconv.fp8.quantize(torch.randn(1, 16, 6, 6))
    wq, ws = tritonconv.fp8.quantize(torch.randn(16, 16, 3, 3), 0)
    (b8, _), s8 = negative(16), torch.complex(torch.zeros(16), -ws).conj().imag  # ws's values, its storage -ws
    assert s8.is_neg() and b8.is_neg() and torch.equal(s8, ws)
    assert_close(tritonconv.fp8.conv2d(xq, wq, b8, input_scale=xs, weight_scale=s8, out_dtype=torch.float32),
                 tritonconv.fp8.conv2d(xq, wq, b8.resolve_neg(), input_scale=xs, weight_scale=s8.resolve_neg(),
                                       out_dtype=torch.float32), tol=0)
    zero, w2, b2 = torch._efficientzerotensor((1, 2, 5, 5)), torch.randn(3, 2, 3, 3), torch.randn(3)
    tritonconv.conv2d(torch.randn(1, 2, 5, 5), w2, b2)  # its signature seen
    with tritonconv.enabled() as counts:
        for y in (tritonconv.conv2d(zero, w2, b2), F.conv2d(zero, w2, b2)):
            assert torch.equal(y, b2.view(1, 3, 1, 1).expand(1, 3, 3, 3))
    assert dict(counts.routed) == {"conv2d": 1} and not counts.left, counts


def test_tensor_subclasses_with_their_own_dispatch_see_the_custom_ops():
    """A wrapper subclass with ``__torch_dispatch__`` (torch's ``TwoTensor``, as torchao's quantized tensors) has no
    storage a kernel could read: as input or weight, its call takes the custom ops, which it runs on what it wraps,
    forward and backward, as torch's convolution does; (2+1)D and transposed too. It had crashed the interpreter."""
    from torch.testing._internal.two_tensor import TwoTensor

    x, w = torch.randn(1, 2, 4, 6, 6), torch.randn(3, 2, 3, 3, 3)
    for tx, tw in ((TwoTensor(x, 2 * x), w), (x, TwoTensor(w, -w))):
        leaf = tw.detach().requires_grad_() if isinstance(tw, TwoTensor) else tw.clone().requires_grad_()
        y = tritonconv.conv3d(tx, leaf, padding=1)
        assert isinstance(y, TwoTensor)
        xa, xb = (tx.a, tx.b) if isinstance(tx, TwoTensor) else (x, x)
        wa, wb = (tw.a, tw.b) if isinstance(tw, TwoTensor) else (w, w)
        assert_close(y.a, F.conv3d(xa.double(), wa.double(), padding=1))
        assert_close(y.b, F.conv3d(xb.double(), wb.double(), padding=1))
        y.sum().backward()
        assert isinstance(leaf.grad, TwoTensor)
    y = tritonconv.conv_transpose2d(TwoTensor(x[:, :, 0].clone(), x[:, :, 1].clone()), w[:2, :, 0], stride=2)
    assert_close(y.b, F.conv_transpose2d(x[:, :, 1].double(), w[:2, :, 0].double(), stride=2))
    ws, wt = torch.randn(5, 2, 1, 3, 3), torch.randn(4, 5, 3, 1, 1)
    y = tritonconv.conv2plus1d(TwoTensor(x, -x), ws, wt, padding=1)
    assert_close(y.b, F.conv3d(F.conv3d(-x.double(), ws.double(), padding=(0, 1, 1)), wt.double(), padding=(1, 0, 0)))


@pytest.mark.parametrize("channels", [3, 16])  # 3: a stem, whose weight a launch packs; 16: weights read in place
def test_weights_and_biases_are_read_in_any_strides(channels):
    """A weight or bias sliced out of a larger tensor, or expanded from one element (stride 0), is read where it
    lies by the forward, transposed, depthwise and (2+1)D passes (fused and not), and the gradients reach the
    tensor it was taken from. (A stem's weight-packing launch had taken a sliced weight as dense, and every kernel
    had read the bias as dense: wrong answers, no error.)"""
    x = torch.randn(2, channels, 7, 6)
    w_base = torch.randn(4, channels, 3, 6, requires_grad=True)
    b_base = torch.randn(8, requires_grad=True)
    dy = torch.randn(2, 4, 7, 3)
    views = {"sliced": (lambda: w_base[..., ::2], lambda: b_base[::2]),
             "expanded": (lambda: w_base[:1, :, :, :3].expand(4, -1, -1, -1), lambda: b_base[:1].expand(4))}
    for weight, bias in views.values():
        got = []
        for conv in (tritonconv.conv2d, F.conv2d):
            w_base.grad = b_base.grad = None
            out = conv(x, weight(), bias(), padding=1, stride=(1, 2))
            out.backward(dy)
            got.append((out.detach(), w_base.grad, b_base.grad))
        for ours, theirs in zip(*got):
            assert_close(ours, theirs.double())
    wt, bt = torch.randn(4, channels, 3, 6)[..., ::2], torch.randn(2 * channels)[::2]  # transposed: (C_in, C_out, ...)
    xt = torch.randn(2, 4, 5, 4)
    assert_close(tritonconv.conv_transpose2d(xt, wt, bt, stride=2, padding=1),
                 F.conv_transpose2d(xt.double(), wt.double(), bt.double(), stride=2, padding=1))
    wd, bd = torch.randn(channels, 1, 3, 6)[..., ::2], torch.randn(1).expand(channels)  # depthwise
    assert_close(tritonconv.conv2d(x, wd, bd, padding=1, groups=channels),
                 F.conv2d(x.double(), wd.double(), bd.double(), padding=1, groups=channels))
    x3 = torch.randn(1, channels, 3, 5, 4)  # (2+1)D: sliced weights, a sliced and an expanded bias
    ws, wt3 = torch.randn(5, channels, 1, 3, 6)[..., ::2], torch.randn(4, 10, 2, 1, 1)[:, ::2]
    bs, bt3 = torch.randn(10)[::2], torch.randn(1).expand(4)
    ref = F.conv3d(F.conv3d(x3.double(), ws.double(), bs.double(), padding=(0, 1, 1)), wt3.double(), bt3.double())
    for fused in (False, True):
        assert_close(tritonconv.conv2plus1d(x3, ws, wt3, bs, bt3, padding=(0, 1, 1), fused=fused), ref)


def test_weights_of_one_tap_along_an_axis_are_read_whatever_that_axis_stride():
    """A weight axis of one tap is passed to the kernels with stride 0 (``geometry.tap_strides``: a 1 x 1 weight in
    torch's layout has tap strides of 1, which hid its 16-byte alignment from the compiler). Such weights sliced out of
    larger ones (odd strides and offsets on those axes), expanded, or in either layout give torch's results, forward
    and both gradients, 1-D to 3-D, grouped and depthwise."""
    g = torch.Generator().manual_seed(7)
    rand = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    cases = [  # (input, weight, conv kwargs)
        (rand(2, 4, 5, 6), rand(6, 4, 3, 5)[:, :, 1:2, 2:3], {}),  # 1 x 1, tap strides 5 and 1, offset 7
        (rand(2, 4, 5, 6), rand(6, 4, 3, 5)[:, :, 1:2, 2:3], {"stride": 2}),
        (rand(2, 4, 5, 6), rand(6, 4, 3, 5)[:, :, 2:3, :], {"padding": (0, 2)}),  # 1 x 5: one tap along the height
        (rand(2, 4, 5, 6), rand(6, 4, 5, 4)[:, :, :3, 3:4], {"padding": (1, 0)}),  # 3 x 1
        (rand(2, 4, 7), rand(6, 2, 3)[:, :, 1:2].expand(6, 2, 1), {"groups": 2}),  # 1-D, expanded over channels
        (rand(1, 4, 3, 4, 5), rand(6, 4, 2, 3, 3)[:, :, 1:2, 1:2, :], {"padding": (0, 0, 1)}),  # 1 x 1 x 3
        (rand(2, 4, 5, 6), rand(4, 1, 3, 5)[:, :, 1:2, :], {"groups": 4, "padding": (0, 2)}),  # depthwise 1 x 5
    ]
    for x, w, kwargs in cases:
        ndim = w.dim() - 2
        for fmt in (None, "channels_last") if ndim == 2 else (None,):
            xi = (x.contiguous(memory_format=torch.channels_last) if fmt else x).requires_grad_()
            wi = w.clone().requires_grad_() if w.stride(0) == 0 else w.detach().requires_grad_()
            ours = OURS[ndim](xi, wi, **kwargs)
            dy = torch.randn(ours.shape, generator=g)
            grads = torch.autograd.grad(ours, (xi, wi), dy)
            xr, wr = x.double().requires_grad_(), w.double().requires_grad_()
            ref = getattr(F, f"conv{ndim}d")(xr, wr, **kwargs)
            for got, want in zip((ours, *grads), (ref, *torch.autograd.grad(ref, (xr, wr), dy.double()))):
                assert_close(got, want)


def test_one_tap_axes_pass_stride_zero():
    """``geometry.tap_strides``: a weight's (depth, height, width) tap strides, 0 along an axis of one tap."""
    assert geometry.tap_strides(torch.empty(256, 64, 1, 1)) == (0, 0, 0)  # torch's layout: strides (64, 1, 1, 1)
    assert geometry.tap_strides(torch.empty(8, 4, 1, 7)) == (0, 0, 1)
    assert geometry.tap_strides(torch.empty(8, 4, 3, 3).contiguous(memory_format=torch.channels_last)) == (0, 12, 4)
    assert geometry.tap_strides(torch.empty(8, 4, 5)) == (0, 0, 1)
    assert geometry.tap_strides(torch.empty(8, 4, 2, 1, 3)) == (3, 0, 1)


def test_threads_calling_at_once_get_torchs_results():
    """Calls from several threads at once (the interpreter keeps a launch's state in globals: they failed, or could
    mix, before interpreted launches took a lock) each get torch's result."""
    import threading

    failures = []

    def work(i):
        g = torch.Generator().manual_seed(i)
        for j in range(4):
            c = (3, 8, 16)[(i + j) % 3]  # a stem (packing launches), folded taps, plain tiles
            x, w = torch.randn(2, c, 7 + i, 6 + j, generator=g), torch.randn(5, c, 3, 3, generator=g)
            try:
                assert_close(tritonconv.conv2d(x, w, padding=1, stride=1 + j % 2),
                             F.conv2d(x.double(), w.double(), padding=1, stride=1 + j % 2))
            except Exception as err:  # reported below, with the thread's case
                failures.append((i, j, f"{type(err).__name__}: {err}"[:200]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


class OpLog(TorchDispatchMode):
    """The name of every torch op run while active."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("transposed", [False, True])
def test_split_reduction_meets_in_the_kernel_in_split_order(monkeypatch, plain_allocation, transposed):
    """A split reduction is one launch with no torch epilogue (the only torch ops: the output's and the
    workspace's allocation); its output equals, bit for bit, the splits' partial tiles added in split order
    (0 + 1) + 2 on the host, and again on a second call (the tile counters reset themselves); added in
    the reverse order the partials differ from it (the check can fail)."""
    g = torch.Generator().manual_seed(3)
    x = geometry.to_layout(torch.randn(2, 40, 5, 6, generator=g), "channels_last")  # flat tiles: rows are positions
    w = torch.randn(24, 40, 3, 3, generator=g)
    spec = _checks.conv_spec("conv2d", 2, x, w, None, 1, 1, 1, 1)
    if transposed:  # the input gradient: 24 channels of dy reduced, 40 written
        spec = _checks.conv_spec("conv2d", 2, torch.empty(2, 24, 5, 6), w.transpose(0, 1).contiguous(), None, 1, 1, 1, 1)
        w = w.transpose(0, 1).contiguous()
        x = geometry.to_layout(torch.randn(2, 40, 5, 6, generator=g), "channels_last")  # dy of that convolution
    cfg = tuning.Config(64, 64 if transposed else 32, 16, split_k=3)  # one tile holds the whole output
    workspaces = []
    alloc = gemm.Launch.workspace
    monkeypatch.setattr(gemm.Launch, "workspace", lambda self, device: workspaces.append(alloc(self, device)) or workspaces[-1])

    def run():
        if transposed:
            return dispatch.conv_grad_input(x, w, spec, False, torch.channels_last, cfg)
        return dispatch.conv_forward(x, w, None, spec, None, False, cfg)

    first = run()
    again = run()
    assert torch.equal(first, again) and len(workspaces) == 2
    rows, cols = first.shape[0] * first.shape[2] * first.shape[3], first.shape[1]
    parts = workspaces[0].view(3, 64, -1)[:, :rows, :cols]
    out = first.permute(0, 2, 3, 1).reshape(rows, cols)
    assert torch.equal(out, (parts[0] + parts[1]) + parts[2])
    assert not torch.equal(out, (parts[2] + parts[1]) + parts[0])
    with static.recording(execute=False) as launches, OpLog() as log:
        run()
    assert len(launches) == 1 and launches[0][3][1] == 3  # one launch, three splits
    assert set(log.ops) <= {"empty", "empty_strided"}, log.ops


# (ndim, input, weight, kwargs, merged input shape): axes a kernel of 1 passes over (kernel 1, stride 1, no padding)
# merged into the axis before them, size-1 axes in front (geometry.merged), or None where none can merge (16 input
# channels: fewer would pack positions into channels first, test_stems_pack_positions_into_channels).
MERGES = [
    (2, (2, 16, 7, 6), (4, 16, 3, 1), dict(padding=(1, 0)), (2, 16, 1, 42)),  # (k, 1): rows of H*W, dilation W
    (3, (2, 16, 4, 5, 3), (6, 16, 3, 1, 1), dict(padding=(1, 0, 0), dilation=(2, 1, 1)), (2, 16, 1, 1, 60)),  # temporal
    (3, (1, 16, 5, 3, 2), (5, 16, 2, 3, 1), dict(padding="same"), (1, 16, 1, 5, 6)),  # asymmetric 'same' pads scaled
    (2, (1, 6, 5, 4), (3, 6, 1, 1), dict(), (1, 6, 1, 20)),  # 1x1: pointwise over rows of H*W
    (3, (1, 16, 5, 4, 3), (3, 16, 1, 1, 1), dict(stride=(2, 1, 1)), (1, 16, 5, 1, 12)),  # the strided depth stays
    (3, (2, 16, 5, 6, 4), (5, 16, 3, 1, 1), dict(stride=(2, 1, 1), padding=(1, 0, 0)), (2, 16, 5, 1, 24)),  # (2+1)D's
    (2, (2, 6, 7, 5), (6, 1, 3, 1), dict(groups=6, padding=(1, 0)), (2, 6, 1, 35)),  # depthwise
    (2, (2, 4, 9, 5), (6, 2, 3, 1), dict(groups=2, stride=(2, 1)), None),  # H strided: W stays
    (3, (2, 16, 1, 5, 6), (5, 16, 1, 3, 3), dict(padding=(0, 1, 1)), None),  # nothing before a leading unit axis
]


@pytest.mark.parametrize("ndim,x_shape,w_shape,kw,merged", MERGES)
def test_axes_a_kernel_of_one_passes_over_are_merged(ndim, x_shape, w_shape, kw, merged):
    """Every pass of such a layer runs on views with the axes merged (long rows of positions, no copy), in
    both layouts, and returns what torch does in torch's format; a weight laid out as tritonconv.nn lays it
    gets its gradient in that layout."""
    args = (kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1), kw.get("groups", 1))
    spec = _checks.conv_spec("conv", ndim, torch.empty(x_shape), torch.empty(w_shape), None, *args)
    assert geometry.merged(spec).input_shape == (merged or x_shape)
    for layout in ("contiguous", "channels_last"):
        for w0 in (torch.randn(w_shape), geometry.channels_inner(torch.randn(w_shape))):
            x = geometry.to_layout(torch.randn(x_shape), layout).requires_grad_()
            w = w0.requires_grad_()
            out = OURS[ndim](x, w, **kw)
            ref = TORCH[ndim](x.double(), w.double(), **kw)
            assert_close(out, ref)
            assert out.is_contiguous(memory_format=geometry.output_memory_format(x, w))
            dy = torch.randn_like(out)
            grads = torch.autograd.grad(out, (x, w), dy)
            for g, r, t in zip(grads, torch.autograd.grad(ref, (x, w), dy.double()), (x, w)):
                assert_close(g, r)
                assert geometry.is_channels_inner(g) == geometry.is_channels_inner(t) or t.shape[1] == 1
            plan = dispatch.forward_plan(x.detach(), w.detach(), None, spec)
            assert plan.spec == geometry.merged(spec) and (plan.spec == spec) == (merged is None)


def test_merged_axes_need_dense_views():
    """Where the merged axes of a tensor are not dense (rows cut short), the layer runs unmerged, as right."""
    x = torch.randn(2, 16, 7, 13)[..., :6]  # rows 13 apart, 6 read
    w = torch.randn(4, 16, 3, 1)
    spec = _checks.conv_spec("conv2d", 2, x, w, None, 1, (1, 0), 1, 1)
    assert geometry.merged(spec) is not spec and dispatch.forward_plan(x, w, None, spec).spec == spec
    assert_close(tritonconv.conv2d(x, w, padding=(1, 0)), F.conv2d(x.double(), w.double(), padding=(1, 0)))


# (ndim, input, weight, kwargs, positions packed per axis): layers of few input channels, run with positions
# packed into channels
def _check_relu_pass(ndim, x, w, b, out, flip, kw):
    """``out = relu(conv(x, w, b))`` (``flip``ped or not) against torch in float64: its values and torch's output
    layout, its three gradients, and the weight's gradient in the weight's layout."""
    wf = w.flip(list(range(2, 2 + ndim))) if flip else w
    ref = F.relu(TORCH[ndim](x.double(), wf.double(), b.double(), **kw))
    assert_close(out, ref)
    assert out.is_contiguous(memory_format=geometry.output_memory_format(x, w))
    dy = torch.randn_like(out)
    for g, r in zip(torch.autograd.grad(out, (x, w, b), dy), torch.autograd.grad(ref, (x, w, b), dy.double())):
        assert_close(g, r)
    grad_w = torch.autograd.grad(OURS[ndim](x, w, b, flip=flip, **kw), w, dy)[0]
    assert geometry.is_channels_inner(grad_w) == geometry.is_channels_inner(w)  # in the weight's layout


STEMS = [
    (2, (2, 3, 15, 13), (8, 3, 7, 7), dict(stride=2, padding=3), (2, 2)),  # ResNet's: 12 channels (16), 4x4 taps
    (2, (1, 2, 9, 10), (5, 2, 3, 4), dict(stride=(2, 3), padding=(1, 2)), (2, 3)),  # anisotropic: 12 channels
    (3, (1, 3, 5, 9, 8), (4, 3, 3, 3, 3), dict(stride=(1, 2, 2), padding=1), (1, 2, 2)),  # video: depth not packed
    (1, (2, 3, 30), (6, 3, 11), dict(stride=4, padding=2), (4,)),  # 12 channels, 3 taps
    (2, (1, 3, 19, 21), (4, 3, 11, 11), dict(stride=4, padding=2), (4, 4)),  # AlexNet's: 48 channels, 3x3 taps
    (3, (1, 3, 4, 6, 7), (4, 3, 3, 3, 3), dict(padding=1), (1, 1, 3)),  # C3D's, unit stride: width taps packed
    (2, (2, 5, 6, 9), (3, 5, 2, 3), dict(padding=(1, 0)), (1, 3)),  # unit stride, 15 channels, no padding on W
    (3, (1, 3, 4, 5, 3), (4, 3, 3, 3, 1), dict(padding=(1, 1, 0)), (1, 3, 1)),  # height taps packed, then merged
    (2, (1, 3, 17, 26), (5, 3, 8, 8), dict(stride=8, padding=0), (8, 8)),  # a patch embedding: 192 channels, 1 tap
    (3, (1, 3, 4, 8, 9), (4, 3, 2, 4, 4), dict(stride=(2, 4, 4), padding=0), (2, 4, 4)),  # a video one: 96 channels
    (1, (2, 3, 70), (6, 3, 32), dict(stride=32, padding=0), (32,)),  # 96 channels, the last 6 positions left out
    (1, (1, 1, 1000), (4, 1, 400), dict(stride=160, padding=0), (160,)),  # an audio front end's framing: 3 taps
]


@pytest.mark.parametrize("ndim,x_shape,w_shape,kw,factors", STEMS)
def test_stems_pack_positions_into_channels(ndim, x_shape, w_shape, kw, factors):
    """The forward and the weight gradient run packed: pack launches (input, weight), then a stride-1 convolution
    of the packed channels (strided layers space to depth, unit-stride ones their innermost taps); the input
    gradient of a strided one the packed layer's, then the unpack launch. In both layouts, flipped or not, with
    bias and activation, against torch; outputs in torch's format, a weight laid out as tritonconv.nn lays it gets
    its gradient so; the pack launches' outputs equal the packings built with torch (tests/test_shapes.py)."""
    from test_shapes import packed_reference

    from tritonconv.kernels import pack

    spec = _checks.conv_spec("conv", ndim, torch.empty(x_shape), torch.empty(w_shape), None, kw.get("stride", 1),
                             kw["padding"], 1, 1)
    assert geometry.pack_factors(spec) == factors and geometry.run_spec(spec).stride == (1,) * ndim
    packed = geometry.packed(spec, factors)
    for layout, flip in (("contiguous", False), ("channels_last", True)):
        x = geometry.to_layout(torch.randn(x_shape), layout).requires_grad_()
        w = geometry.to_layout(torch.randn(w_shape), layout).requires_grad_()
        b = torch.randn(w_shape[0], requires_grad=True)
        with static.recording() as launches:
            out = OURS[ndim](x, w, b, activation="relu", flip=flip, **kw)
        assert [fn.__name__ for fn, *_ in launches][:2] == ["_pack_kernel"] * 2 and len(launches) == 3  # x, w, conv
        with static.recording() as launches:
            dx = torch.autograd.grad(out, x, torch.ones_like(out), retain_graph=True)[0]
        unpacks = [fn.__name__ for fn, *_ in launches].count("_unpack_kernel")  # the weight's gradient (computed too)
        assert unpacks == 1 + (max(spec.stride) > 1) and dx.shape == x.shape  # and space to depth's input gradient
        _check_relu_pass(ndim, x, w, b, out, flip, kw)
        xr, wr = packed_reference(x.detach(), w.detach(), spec.stride, spec.padding, factors, packed.weight_shape[2:],
                                  packed.input_shape[2:], packed.input_shape[1])
        assert torch.equal(pack.input_launch(x, spec, packed, factors)(x.detach()), xr)
        assert torch.equal(pack.weight_launch(w, packed, factors)(w.detach()), wr)


@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", [
    (2, (2, 8, 5, 6), (8, 3, 4, 4), dict(stride=2, padding=1)),  # a generator's last layer: 3 channels out
    (3, (1, 6, 3, 4, 4), (6, 2, 3, 3, 3), dict(stride=(1, 2, 2), padding=1, output_padding=(0, 1, 1))),
    (1, (2, 5, 13), (5, 3, 5), dict(stride=3, padding=2, dilation=1)),  # 9 channels
])
def test_transposed_layers_with_few_output_channels_run_packed(ndim, x_shape, w_shape, kw):
    """A transposed convolution with few output channels is the input gradient of a packable layer: it runs the
    packed layer's transposed pass and the unpack launch (bias and activation in it), and its gradients the
    packed forward and weight gradient; all against torch."""
    x = torch.randn(x_shape, requires_grad=True)
    w = torch.randn(w_shape, requires_grad=True)
    b = torch.randn(w_shape[1], requires_grad=True)
    op = {1: tritonconv.conv_transpose1d, 2: tritonconv.conv_transpose2d, 3: tritonconv.conv_transpose3d}[ndim]
    ref_op = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[ndim]
    with static.recording() as launches:
        out = op(x, w, b, activation="silu", **kw)
    assert [fn.__name__ for fn, *_ in launches][-1] == "_unpack_kernel"
    ref = F.silu(ref_op(x.double(), w.double(), b.double(), **kw))
    assert_close(out, ref)
    dy = torch.randn_like(out)
    for g, r in zip(torch.autograd.grad(out, (x, w, b), dy), torch.autograd.grad(ref, (x, w, b), dy.double())):
        assert_close(g, r)


@pytest.mark.parametrize("ndim,x_shape,w_shape,kw,factors", [s for s in STEMS if "stride" not in s[3]])
def test_unit_stride_transposed_passes_pack_their_taps_where_that_saves_work(ndim, x_shape, w_shape, kw, factors,
                                                                            monkeypatch):
    """A unit-stride stem's input gradient, and a transposed convolution of as few output channels, pack their
    taps where that saves geometry.PACK_TRANSPOSED_MACS (lowered here to reach the small shapes): the packed
    layer's transposed pass, then the unpack launch summing the overlapping copies (bias and activation in it);
    against torch in both layouts, flipped or not."""
    spec = _checks.conv_spec("conv", ndim, torch.empty(x_shape), torch.empty(w_shape), None, 1, kw["padding"], 1, 1)
    assert geometry.pack_factors(spec, transposed=True) is None  # too small to pay for two launches
    monkeypatch.setattr(geometry, "PACK_TRANSPOSED_MACS", 0)
    assert geometry.pack_factors(spec, transposed=True) == factors
    for layout, flip in (("contiguous", False), ("channels_last", True)):
        x = geometry.to_layout(torch.randn(x_shape), layout).requires_grad_()
        w = geometry.to_layout(torch.randn(w_shape), layout)
        out = OURS[ndim](x, w, flip=flip, **kw)
        dy = torch.randn_like(out)
        with static.recording() as launches:
            (dx,) = torch.autograd.grad(out, x, dy)
        assert [fn.__name__ for fn, *_ in launches][-1] == "_unpack_kernel"
        wf = w.flip(list(range(2, 2 + ndim))) if flip else w
        xd = x.detach().double().requires_grad_()
        assert_close(dx, torch.autograd.grad(TORCH[ndim](xd, wf.double(), **kw), xd, dy.double())[0])
        # the transposed convolution that is this layer's input gradient: its output channels are the stem's input's
        t = torch.randn(out.shape, requires_grad=True)
        b = torch.randn(x_shape[1], requires_grad=True)
        op = {1: tritonconv.conv_transpose1d, 2: tritonconv.conv_transpose2d, 3: tritonconv.conv_transpose3d}[ndim]
        ref_op = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[ndim]
        with static.recording() as launches:
            got = op(t, w, b, padding=kw["padding"], activation="gelu")
        assert [fn.__name__ for fn, *_ in launches][-1] == "_unpack_kernel"
        ref = F.gelu(ref_op(t.double(), w.double(), b.double(), padding=kw["padding"]))
        assert_close(got, ref)
        g = torch.randn_like(got)
        for mine, theirs in zip(torch.autograd.grad(got, (t, b), g), torch.autograd.grad(ref, (t, b), g.double())):
            assert_close(mine, theirs)


# (ndim, input, weight, kwargs, merge): groups of at most 8 channels on a side run merge at a time, block-diagonal
NARROW_GROUPS = [
    (2, (2, 32, 7, 9), (32, 4, 3, 3), dict(groups=8, padding=1), 4),  # ResNeXt's 4 a group: 2 groups of 16
    (1, (2, 16, 23), (16, 8, 3), dict(groups=2, stride=2, dilation=2, padding=1), 2),  # RegNet's 8: merged whole
    (3, (1, 32, 4, 5, 6), (16, 8, 3, 3, 3), dict(groups=4, padding=(1, 0, 1)), 4),  # 4 output channels a group
    (2, (1, 16, 9, 8), (16, 2, 3, 2), dict(groups=8, stride=(2, 3)), 8),  # 2 a group, strided past the kernel
]


@pytest.mark.parametrize("ndim,x_shape,w_shape,kw,merge", NARROW_GROUPS)
def test_narrow_groups_run_merged_on_a_block_diagonal_weight(ndim, x_shape, w_shape, kw, merge):
    """A grouped layer of at most 8 channels a group on either side runs ``merge`` groups as one: every pass is one
    convolution launch of the merged layer (tiles, not folded taps), its weight laid out block-diagonally per call,
    its weight gradient the merged one's diagonal blocks in the weight's layout; forward (bias, activation, flipped
    or not), both gradients and the transposed convolution against torch, in both layouts, on a weight read at
    strides of its own."""
    spec = _checks.conv_spec("conv", ndim, torch.empty(x_shape), torch.empty(w_shape), None, kw.get("stride", 1),
                             kw.get("padding", 0), kw.get("dilation", 1), kw["groups"])
    assert geometry.group_merge(spec) == merge and geometry.run_spec(spec).groups == kw["groups"] // merge
    assert geometry.group_merge(spec, itemsize=1) is None  # fp8 runs grouped layers as written
    transpose = {1: tritonconv.conv_transpose1d, 2: tritonconv.conv_transpose2d, 3: tritonconv.conv_transpose3d}[ndim]
    torch_transpose = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[ndim]
    for layout, flip in (("contiguous", False), ("channels_last", True)):
        x = geometry.to_layout(torch.randn(x_shape, device=DEVICE), layout).requires_grad_()
        w = geometry.to_layout(torch.randn(w_shape, device=DEVICE), layout).requires_grad_()
        b = torch.randn(w_shape[0], device=DEVICE, requires_grad=True)
        with static.recording() as launches:
            out = OURS[ndim](x, w, b, activation="relu", flip=flip, **kw)
        assert [fn.__name__ for fn, *_ in launches] in (["_conv_kernel"], ["_conv_tma_kernel"])
        assert not any(kwargs.get("FOLD") for _, _, kwargs, _ in launches)  # tiles, not taps gathered
        assert isinstance(dispatch.forward_plan(x, w, b, spec, "relu", flip), dispatch._GroupsMerged)
        _check_relu_pass(ndim, x, w, b, out, flip, kw)
        # the transposed convolution of the same weight, and a weight read at strides of its own (every other
        # output channel of one twice as large)
        wide = torch.randn((2 * w_shape[0], *w_shape[1:]), device=DEVICE)[::2]
        t = torch.randn(out.shape, device=DEVICE)
        args = dict(stride=kw.get("stride", 1), padding=kw.get("padding", 0), dilation=kw.get("dilation", 1),
                    groups=kw["groups"])
        assert_close(transpose(t, wide, **args), torch_transpose(t.double(), wide.double(), **args))
        assert_close(OURS[ndim](x, wide, **kw), TORCH[ndim](x.double(), wide.double(), **kw))


def test_groups_merge_only_where_a_group_is_narrow():
    """The merge is the fewest groups (dividing ``groups``) that fill a 16-channel chunk on both sides, for groups
    of at most 8 channels on a side; none for wider groups, depthwise layers, or groups too few to fill a chunk."""
    def merge(x_shape, w_shape, groups):
        spec = _checks.conv_spec("conv", 2, torch.empty(x_shape), torch.empty(w_shape), None, 1, 1, 1, groups)
        return geometry.group_merge(spec)

    assert merge((1, 128, 8, 8), (128, 4, 3, 3), 32) == 4  # ResNeXt-50 32x4d's first stage
    assert merge((1, 256, 8, 8), (256, 8, 3, 3), 32) == 2  # its second, RegNet's 8 a group
    assert merge((1, 48, 8, 8), (48, 6, 3, 3), 8) == 4  # 6 a group: 4 of them (24) fill a chunk
    assert merge((1, 128, 8, 8), (16, 32, 3, 3), 4) == 4  # 4 output channels a group
    assert merge((1, 512, 8, 8), (512, 16, 3, 3), 32) is None  # 16 a group already fill one
    assert merge((1, 12, 8, 8), (12, 2, 3, 3), 6) is None  # 6 groups of 2: 12 channels merged whole
    assert merge((1, 32, 8, 8), (64, 1, 3, 3), 32) is None  # depthwise, a multiplier of 2: its own kernel


def test_c3d_stems_input_gradient_packs_at_its_size():
    """At C3D's size (batch 8, 16 x 112 x 112) the stem's input gradient packs its width taps (5.3x the useful
    multiply-adds unpacked, 1.8x packed); the cost model predicts it faster packed, launches included."""
    x = torch.empty(8, 3, 16, 112, 112, device="meta")
    spec = _checks.conv_spec("conv3d", 3, x, torch.empty(64, 3, 3, 3, 3, device="meta"), None, 1, 1, 1, 1)
    assert geometry.pack_factors(spec, transposed=True) == (1, 1, 3)
    problem = tuning.Problem.of("conv_t", "bfloat16", "channels_last", x.shape, (64, 3, 3, 3, 3), (1, 1, 1),
                                (1, 1, 1), (1, 1, 1), 1, as_run=False)
    device = costmodel.device_for("NVIDIA H200")
    packed = costmodel.pass_seconds(problem, tuning.heuristic(problem.as_run(), False, device.sms, tma=True), device)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(geometry, "PACK_TRANSPOSED_MACS", math.inf)
        assert geometry.pack_factors(spec, transposed=True) is None
        plain = costmodel.pass_seconds(problem, tuning.heuristic(problem.as_run(), False, device.sms, tma=True), device)
    assert packed < plain / 1.5


def test_packing_is_bounded_in_memory():
    """A packed input holds at most geometry.PACK_EXPANSION times the input's elements (twice that for 1-byte
    operands, packed in chunks of 32 channels); layers past it fold."""
    def factors(c, k, stride, itemsize=2):
        x, w = torch.empty(1, c, 8, 8, 8), torch.empty(4, c, k, k, k)
        return geometry.pack_factors(_checks.conv_spec("conv3d", 3, x, w, None, stride, 1, 1, 1), itemsize=itemsize)

    assert factors(3, 3, 1) == (1, 1, 3)  # C3D's stem: 16 / 3 = 5.3x its input's elements
    assert factors(1, 3, 1) is None  # a CT volume's first layer would hold 16x: it folds instead
    assert factors(1, 3, 2) == (2, 2, 2)  # strided: 16 / 8 = 2x
    assert factors(16, 3, 2) is None and factors(3, 3, 4) is None  # a full chunk already; 192 channels, 27 used
    assert factors(3, 4, 4) == (4, 4, 4) == factors(3, 4, 4, itemsize=1)  # 192 channels, all used: a patch embedding
    frames = _checks.conv_spec("conv1d", 1, torch.empty(1, 1, 2000), torch.empty(8, 1, 400), None, 160, 0, 1, 1)
    assert geometry.pack_factors(frames) == (160,)  # an audio front end's framing: 160 channels, 3 taps, 1.2x
    assert factors(3, 3, 1, itemsize=1) == (1, 1, 3)  # fp8: 32 / 3 = 10.7x, half a 16-bit copy's bytes
    assert factors(1, 3, 1, itemsize=1) is None and factors(2, 3, 1, itemsize=1) is None  # 32x, 16x
    spec = _checks.conv_spec("conv2d", 2, torch.empty(1, 3, 16, 16), torch.empty(8, 3, 7, 7), None, 2, 3, 1, 1)
    assert [geometry.packed(spec, (2, 2), size).weight_shape for size in (2, 1)] == [(8, 16, 4, 4), (8, 32, 4, 4)]


def test_unpack_launch_is_the_packings_adjoint():
    """The unpack kernel sums every packed copy of a position back, overlapping ones too (a unit-stride packing's
    ``R / s`` copies per axis), and unpacks a packed weight's gradient: torch's gradients of the packings built by
    slicing are the references."""
    from test_shapes import packed_reference

    from tritonconv.kernels import pack

    for x_shape, w_shape, stride, padding, factors in [((2, 3, 6, 7), (4, 3, 3, 5), (1, 1), (1, 2), (1, 5)),
                                                         ((1, 2, 5, 9), (4, 2, 3, 3), (1, 2), (1, 0), (3, 4))]:
        spec = _checks.conv_spec("conv2d", 2, torch.empty(x_shape), torch.empty(w_shape), None, stride, padding, 1, 1)
        packed = geometry.packed(spec, factors)
        x = torch.randn(x_shape, dtype=torch.float64, requires_grad=True)
        w = torch.randn(w_shape, dtype=torch.float64, requires_grad=True)
        xr, wr = packed_reference(x, w, spec.stride, spec.padding, factors, packed.weight_shape[2:],
                                  packed.input_shape[2:], packed.input_shape[1])
        g = geometry.to_layout(torch.randn(packed.input_shape, dtype=torch.float64), "channels_last")
        (ref,) = torch.autograd.grad(xr, x, g)
        y = torch.full(x_shape, math.nan, dtype=torch.float64)
        assert torch.allclose(pack.input_grad_launch(g, None, y, spec, factors, None)(g, None, y), ref)
        # the weight's: the weight gradient unpacked (into its own layout, channels innermost here)
        gw = torch.randn(packed.weight_shape, dtype=torch.float64)
        (ref_w,) = torch.autograd.grad(wr, w, gw)
        dw = geometry.to_layout(torch.full(w_shape, math.nan, dtype=torch.float64), "channels_last")
        assert torch.equal(pack.weight_grad_launch(gw, dw, factors)(gw, None, dw), ref_w)


def test_int64_offsets_path(monkeypatch):
    """The >= 2**31 offsets branch computes the same result (threshold lowered to reach it on CPU)."""
    monkeypatch.setattr(geometry, "INT32_MAX", 16)
    check(2, (2, 3, 9, 8), (4, 3, 3, 3), stride=2, padding=1)  # a stem: the pack launch, then the packed pass
    check(1, (2, 4, 23), (6, 2, 3), stride=2, groups=2)


def test_empty_batch():
    out = tritonconv.conv2d(torch.randn(0, 3, 5, 5), torch.randn(4, 3, 3, 3))  # packed (a stem), as every layer
    assert out.shape == (0, 4, 3, 3)
    out = tritonconv.conv2d(torch.randn(0, 20, 5, 5), torch.randn(4, 20, 3, 3))
    assert out.shape == (0, 4, 3, 3)


@st.composite
def conv_problems(draw):
    ndim = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 4)) for _ in range(ndim)]
    stride = [draw(st.integers(1, 3)) for _ in range(ndim)]
    dilation = [draw(st.integers(1, 2)) for _ in range(ndim)]
    size_cap = {1: 24, 2: 10, 3: 6}[ndim]
    sizes = [draw(st.integers(1, size_cap)) for _ in range(ndim)]
    if draw(st.booleans()) and all(s == 1 for s in stride):
        padding = "same"
    else:
        padding = [draw(st.integers(0, 2)) for _ in range(ndim)]
    n = draw(st.integers(1, 2))
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    out = shapes.conv_output_shape((n, c_in, *sizes), (c_out, c_in // groups, *kernel), **kw)
    assume(all(s > 0 for s in out[2:]))
    return ndim, (n, c_in, *sizes), (c_out, c_in // groups, *kernel), kw, draw(st.booleans())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_problems())
def test_random_configurations(problem):
    ndim, x_shape, w_shape, kw, bias = problem
    check(ndim, x_shape, w_shape, bias=bias, **kw)


@pytest.mark.parametrize("channels_last", [False, True])
def test_depthwise_takes_its_own_kernel(monkeypatch, channels_last):
    """groups == C_in with one channel per group runs the no-tensor-core kernel, and matches torch."""
    from tritonconv.kernels import depthwise

    calls = []
    original = depthwise.Launch.__call__
    monkeypatch.setattr(depthwise.Launch, "__call__", lambda *a, **k: calls.append(1) or original(*a, **k))
    x = torch.randn(2, 5, 9, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(10, 1, 3, 2), torch.randn(10)
    out = tritonconv.conv2d(x, w, b, padding=1, groups=5, activation="silu", flip=True)
    assert calls == [1]
    assert_close(out, reference(2, x, w, b, "silu", True, padding=1, groups=5))
    tritonconv.conv2d(torch.randn(2, 4, 5, 5), torch.randn(4, 2, 3, 3), groups=2)  # grouped, not depthwise
    assert calls == [1]


# (input, weight, kwargs): a plain layer, one whose axes merge (1x1), a stem (packed: four more launches)
WARM = [((2, 16, 11, 13), (24, 16, 3, 3), dict(padding=1)), ((2, 16, 7, 9), (24, 16, 1, 1), dict()),
        ((2, 3, 15, 13), (16, 3, 7, 7), dict(stride=2, padding=3))]


@pytest.mark.parametrize("x_shape,w_shape,kw", WARM)
def test_warm_calls_make_nothing_but_their_outputs(x_shape, w_shape, kw, plain_allocation):
    """A warm call without gradients goes to its plan, whose launches read their operands by address: no torch op
    but the outputs' allocation (a merged layer views nothing, a stem packs its weight by a launch)."""
    for layout in ("contiguous", "channels_last"):
        x, w = (geometry.to_layout(torch.randn(shape), layout) for shape in (x_shape, w_shape))
        tritonconv.conv2d(x, w, **kw)
        assert_close(tritonconv.conv2d(x, w, **kw), F.conv2d(x.double(), w.double(), **kw))  # warm
        with static.recording(execute=False) as launches, OpLog() as log:  # not run: the interpreter's own ops
            tritonconv.conv2d(x, w, **kw)
        assert set(log.ops) <= {"empty", "empty_strided"}, log.ops
        assert len(launches) == (3 if w_shape[1] < 16 else 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="direct launches exist on a GPU only")
@pytest.mark.parametrize("x_shape,w_shape,kw", WARM)
@pytest.mark.parametrize("layout", ["channels_last", "contiguous"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # bf16: the descriptor kernels on Hopper
def test_warm_calls_launch_below_jitfunction_run(layout, dtype, x_shape, w_shape, kw, monkeypatch):
    """A plan's first call compiles through JITFunction.run; later calls go straight to the compiled kernel's
    launcher (never through Kernel.__getitem__), with kept descriptors where they take the descriptor kernels,
    and compute what torch does in fp64, forward and both gradients, twice."""
    from tritonconv import _runtime

    g = torch.Generator().manual_seed(3)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(x_shape, generator=g).to("cuda", dtype).contiguous(memory_format=fmt).requires_grad_()
    w = torch.randn(w_shape, generator=g).to("cuda", dtype).requires_grad_()
    tritonconv.conv2d(x, w, **kw).sum().backward()  # every pass's plan built and compiled
    seen = []
    getitem = _runtime.Kernel.__getitem__
    monkeypatch.setattr(_runtime.Kernel, "__getitem__", lambda self, device: seen.append(1) or getitem(self, device))
    tol = 1e-4 if dtype == torch.float32 else 1e-2
    for _ in range(2):
        x.grad = w.grad = None
        y = tritonconv.conv2d(x, w, **kw)
        dy = torch.randn(y.shape, generator=g).to("cuda", dtype)
        y.backward(dy)
        ref_x, ref_w = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
        ref = F.conv2d(ref_x, ref_w, **kw)
        ref.backward(dy.double())
        for ours, theirs in ((y, ref), (x.grad, ref_x.grad), (w.grad, ref_w.grad)):
            assert ((ours.double() - theirs).norm() / theirs.norm()).item() < tol
    assert not seen


@triton.jit
def _scaled(x_ptr, out_ptr, factor):
    tl.store(out_ptr, tl.load(x_ptr) * factor)


def test_overflow_checks_off_wrap_as_a_gpu_does_and_on_stop_the_kernel(monkeypatch):
    """``_runtime.overflow_checks``: an int32 product past 2**31 wraps with the checks off, as on a GPU, and stops the
    interpreted kernel with an error naming the operation with them on (Triton computes them by default and asserts
    them only in debug mode: no error)."""
    from triton.runtime import interpreter

    from tritonconv import _runtime

    monkeypatch.setattr(interpreter.interpreter_builder, "options", interpreter.interpreter_builder.options)
    kernel = _runtime.Kernel(_scaled)[torch.device("cpu")]
    x, out = torch.tensor([2**20 + 1], dtype=torch.int32, device="cpu"), torch.empty(1, dtype=torch.int32, device="cpu")
    _runtime.overflow_checks(False)
    kernel[(1,)](x, out, 4096)
    assert out.item() == 4096  # (2**20 + 1) * 4096 mod 2**32
    _runtime.overflow_checks(True)
    with pytest.raises(BaseException, match="int32 overflow detected for operation mul"):
        kernel[(1,)](x, out, 4096)
