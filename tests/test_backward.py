"""Gradients of tritonconv.conv1d/2d/3d (input, weight, bias) against torch autograd in float64."""

import copy
import dataclasses
import shutil

import pytest
import torch
import torch.nn.functional as F
import triton.language as tl
from conftest import assert_close
from hypothesis import HealthCheck, given, settings
from test_conv import ACT, GRID, OURS, TORCH, conv_problems

import tritonconv
from tritonconv import _tile, dispatch, functional, geometry, shapes, tuning
from tritonconv._checks import conv_spec

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def check_grads(ndim, x_shape, w_shape, *, bias=True, dtype=torch.float32, activation=None, flip=False,
                x_format=torch.contiguous_format, **kw):
    x = torch.randn(x_shape, dtype=dtype, device=DEVICE).contiguous(memory_format=x_format).requires_grad_()
    w = torch.randn(w_shape, dtype=dtype, device=DEVICE, requires_grad=True)
    b = torch.randn(w_shape[0], dtype=dtype, device=DEVICE, requires_grad=True) if bias else None
    y = OURS[ndim](x, w, b, activation=activation, flip=flip, **kw)
    grad_y = torch.randn_like(y)
    y.backward(grad_y)

    leaves = [t.detach().double().requires_grad_() for t in (x, w, b) if t is not None]
    w_ref = leaves[1].flip(list(range(2, 2 + ndim))) if flip else leaves[1]
    y_ref = ACT[activation](TORCH[ndim](leaves[0], w_ref, leaves[2] if bias else None, **kw))
    y_ref.backward(grad_y.double())
    for name, ours, ref in zip(("input", "weight", "bias"), (x, w, b), leaves):
        assert ours.grad is not None, f"no gradient for {name}"
        assert ours.grad.dtype == dtype and ours.grad.shape == ours.shape, name
        try:
            assert_close(ours.grad, ref.grad, dtype)
        except AssertionError as err:
            raise AssertionError(f"grad of {name}: {err}") from None
    return x, w, b


@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", GRID)
def test_grid_gradients(ndim, x_shape, w_shape, kw):
    check_grads(ndim, x_shape, w_shape, **kw)


@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", GRID[::3])
def test_gradients_with_the_weight_copied(monkeypatch, ndim, x_shape, w_shape, kw):
    """The large-problem path: a weight in torch's layout copied channels-innermost before each GEMM pass
    (the test shapes are small, so by default it is read in place; geometry.weight_copy_pays)."""
    monkeypatch.setattr(geometry, "WEIGHT_COPY_MACS", 0)
    check_grads(ndim, x_shape, w_shape, **kw)


@pytest.mark.parametrize("ndim,x_shape,w_shape,kw,activation", [
    (*problem, activation) for activation in ("relu", "gelu", "silu", "sigmoid", "tanh", "leaky_relu(0.2)", "leaky_relu(-0.5)")
    for problem in GRID[1::3]] + [  # and the exponential ones, on every other of those layers
    (*problem, activation) for activation in ("gelu_tanh", "mish", "elu", "selu") for problem in GRID[1::6]])
def test_activation_derivative(ndim, x_shape, w_shape, kw, activation):
    check_grads(ndim, x_shape, w_shape, activation=activation, **kw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_activation_slopes_at_and_beside_their_steps_are_torchs(dtype):
    """At a step (ReLU's and a leaky ReLU's 0, ReLU6's 0 and 6, hardswish's and hardsigmoid's -3 and 3), which a 16-bit
    output lands on exactly and often, each slope is the one torch's derivative takes (hardswish's is 0 at -3 and 1 at
    3, not its middle piece's; hardsigmoid's 0 at both; a leaky ReLU's at 0 its negative slope, read off the output or,
    for a negative slope, the input; SELU's at 0 the one below, scale times alpha); the sigmoid's and tanh's off the
    output, as torch's."""
    z = torch.tensor([-7.0, -6.0, -3.0, -2.99, -1e-3, 0.0, 1e-3, 2.99, 3.0, 5.99, 6.0, 7.0], dtype=dtype)
    for activation in ("relu", "relu6", "gelu", "gelu_tanh", "silu", "mish", "hardswish", "sigmoid", "tanh",
                       "hardsigmoid", "elu", "selu", "leaky_relu", "leaky_relu(0.2)", "leaky_relu(-0.5)"):
        leaf = z.clone().requires_grad_()
        y = ACT[activation](leaf)
        y.backward(torch.ones_like(y))
        ours = functional.activation_grad(torch.ones_like(z), activation, y.detach(), z)
        torch.testing.assert_close(ours, leaf.grad, rtol=1e-2, atol=1e-3, msg=activation)


@pytest.mark.parametrize("activation", ["relu6", "hardswish", "hardsigmoid", "selu", "leaky_relu(-0.5)"])
@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", [
    (1, (2, 5, 17), (4, 5, 3), {"padding": 1}),
    (2, (2, 6, 7, 9), (6, 1, 3, 3), {"groups": 6}),  # depthwise
    (3, (1, 4, 5, 6, 5), (3, 4, 3, 3, 1), {"stride": 2, "padding": 1}),
])
def test_stepped_activations_match_torch_past_their_steps(ndim, x_shape, w_shape, kw, activation):
    """ReLU6, hardswish, hardsigmoid, SELU and a leaky ReLU of a negative slope (the last two's slopes off the
    recomputed input), forward and backward, on convolutions whose outputs cross every step of their slopes (0 and 6;
    -3 and 3; 0), and a transposed one's."""
    torch.manual_seed(ndim)
    x, w, b = check_grads(ndim, x_shape, w_shape, activation=activation, **kw)
    with torch.no_grad():
        z = TORCH[ndim](x.double(), w.double(), b.double(), **kw)
        assert_close(OURS[ndim](x, w, b, activation=activation, **kw), ACT[activation](z))
    assert (z > 6).any() and (z < -3).any() and ((z > 0) & (z < 3)).any()
    xt = torch.randn(2, 6, 5, 4, device=DEVICE, requires_grad=True)
    wt = torch.randn(6, 3, 3, 3, device=DEVICE, requires_grad=True)
    y = tritonconv.conv_transpose2d(xt, wt, stride=2, activation=activation)
    ref_x, ref_w = (t.detach().double().requires_grad_() for t in (xt, wt))
    ref = ACT[activation](F.conv_transpose2d(ref_x, ref_w, stride=2))
    assert_close(y, ref)
    dy = torch.randn_like(y)
    y.backward(dy)
    ref.backward(dy.double())
    assert_close(xt.grad, ref_x.grad)
    assert_close(wt.grad, ref_w.grad)


@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", GRID[::4])
def test_flip_gradients(ndim, x_shape, w_shape, kw):
    check_grads(ndim, x_shape, w_shape, flip=True, activation="relu", **kw)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_gradients(dtype):
    check_grads(2, (2, 4, 9, 8), (6, 2, 3, 3), dtype=dtype, stride=2, padding=1, groups=2, activation="silu")


@pytest.mark.parametrize("ndim", [2, 3])
def test_channels_last_gradients(ndim):
    fmt = {2: torch.channels_last, 3: torch.channels_last_3d}[ndim]
    x, _, _ = check_grads(ndim, (2, 5) + (5,) * ndim, (4, 5) + (3,) * ndim, x_format=fmt, padding=1, stride=2)
    assert x.grad.is_contiguous(memory_format=fmt)


def test_unbatched_and_expanded_grad_output():
    """``sum().backward()`` hands the kernels a stride-0 gradient; unbatched inputs work too."""
    x = torch.randn(3, 11, requires_grad=True)
    w = torch.randn(4, 3, 3, requires_grad=True)
    tritonconv.conv1d(x, w, padding=1).sum().backward()
    x_ref, w_ref = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    F.conv1d(x_ref, w_ref, padding=1).sum().backward()
    assert_close(x.grad, x_ref.grad)
    assert_close(w.grad, w_ref.grad)


def test_only_requested_gradients():
    x = torch.randn(1, 2, 6)
    w = torch.randn(3, 2, 3, requires_grad=True)
    tritonconv.conv1d(x, w).sum().backward()
    assert x.grad is None and w.grad is not None


def test_empty_batch_gradients():
    x = torch.randn(0, 3, 5, 5, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    tritonconv.conv2d(x, w).sum().backward()
    assert x.grad.shape == x.shape and torch.equal(w.grad, torch.zeros_like(w))


SECOND_ORDER = [  # op, input, weight, arguments: strided, grouped, dilated, flipped, each activation
    ("conv1d", (2, 4, 9), (6, 2, 3), dict(stride=2, padding=1, groups=2, activation="gelu")),
    ("conv2d", (1, 3, 6, 5), (4, 3, 3, 2), dict(padding=1, dilation=(1, 2), activation="relu", flip=True)),
    ("conv3d", (1, 2, 4, 5, 4), (3, 2, 2, 3, 3), dict(stride=(1, 2, 1), padding=1, activation="silu")),
    ("conv2d", (2, 4, 5, 5), (8, 1, 3, 3), dict(padding=1, groups=4)),  # depthwise
    ("conv_transpose2d", (1, 4, 4, 3), (4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1, activation="silu")),
]


def _torch_op(op, kw):
    act = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu, None: lambda t: t}[kw.get("activation")]
    args = {k: v for k, v in kw.items() if k not in ("activation", "flip")}
    flip = kw.get("flip", False)
    return lambda x, w, b: act(getattr(F, op)(x, w.flip(list(range(2, w.dim()))) if flip else w, b, **args))


@pytest.mark.parametrize("op,x_shape,w_shape,kw", SECOND_ORDER)
def test_double_backward_matches_torch(op, x_shape, w_shape, kw):
    """A gradient penalty: d/d(x, w, b) of |d loss / dx|^2 (and of |d loss / dw|^2), against torch in float64."""
    c_out = w_shape[1] * kw.get("groups", 1) if op.startswith("conv_transpose") else w_shape[0]
    leaves = [torch.randn(x_shape), torch.randn(w_shape), torch.randn(c_out)]
    ours = [t.clone().requires_grad_() for t in leaves]
    ref = [t.double().requires_grad_() for t in leaves]
    for (x, w, b), fn in ((ours, lambda x, w, b: getattr(tritonconv, op)(x, w, b, **kw)), (ref, _torch_op(op, kw))):
        y = fn(x, w, b)
        v = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)  # the same on both sides
        gx, gw = torch.autograd.grad((y * v).sum(), (x, w), create_graph=True)
        (gx.square().sum() + gw.square().sum()).backward()
    for o, r in zip(ours, ref):  # None: no path to the leaf (relu's mask), as torch's zeros say
        assert_close(torch.zeros_like(o) if o.grad is None else o.grad, torch.zeros_like(r) if r.grad is None else r.grad)


def test_double_backward_through_the_custom_ops_is_refused():
    """The custom ops (what torch.compile traces) are first order: a clear error, never a silent zero."""
    x = torch.randn(1, 2, 7, requires_grad=True)
    w = torch.randn(3, 2, 3, requires_grad=True)
    y = torch.ops.tritonconv.conv(x, w, None, [1], [0, 0], [1], 1, None, False)
    with pytest.raises(NotImplementedError, match="eager mode only"):
        torch.autograd.grad(y.square().sum(), x, create_graph=True)
    fn = torch.compile(lambda x, w: tritonconv.conv1d(x, w), backend="aot_eager", fullgraph=True)
    (gx,) = torch.autograd.grad(fn(x, w).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):  # torch's own word for compiled graphs
        gx.square().sum().backward()


def test_split_reduction_of_weight_gradient():
    """The GPU splits the weight gradient's reduction; the split partial sums add up the same."""
    x, dy = torch.randn(3, 4, 10, 9), torch.randn(3, 6, 5, 5)
    w = torch.randn(6, 2, 3, 3)
    spec = conv_spec("conv2d", 2, x, w, None, 2, 1, 1, 2)
    whole = dispatch.conv_grad_weight(dy, x, spec)
    split = dispatch.conv_grad_weight(dy, x, spec, config=tuning.Config(16, 16, 16, split_k=4))
    assert_close(split, whole)
    ref = torch.nn.grad.conv2d_weight(x.double(), w.shape, dy.double(), stride=2, padding=1, groups=2)
    assert_close(whole, ref)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("inner", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("descriptors", [False, True])
def test_split_weight_gradient_meets_its_partials_in_the_kernel(monkeypatch, plain_allocation, flip, inner, dtype,
                                                                descriptors):
    """A weight gradient of a few splits, on descriptor tiles or the pointer kernel's, is one launch and no torch op but
    allocations (and a view): each split stores its fp32 partial tile in the workspace and the last to arrive adds them
    in split order ((p0 + p1) + p2, bit for bit in fp32, on a second call too: the counters reset themselves; the
    reverse order's sum differs, so the check can fail; the pointer kernel adds them 16 rows at a time,
    ``weight_grad.MEET_ROWS``: 32-row tiles here, two such slices; it meets 16-bit splits only,
    ``weight_grad.pointer_meets``, made to meet fp32 ones here for the exact check), reverses the taps for ``flip``,
    casts to the weight's dtype and lays the gradient out contiguous or with its input channels innermost
    (``tritonconv.nn``'s weights). (Triton's interpreter casts fp32 to bf16 by truncation, a GPU to nearest: bf16 is
    checked against torch's gradient.)"""
    from test_conv import OpLog

    from benchmarks import static
    from tritonconv.kernels import weight_grad

    layout = "channels_last" if descriptors else "contiguous"
    assert weight_grad.pointer_meets(dtype) == (dtype == torch.bfloat16)
    monkeypatch.setattr(weight_grad, "pointer_meets", lambda dtype: True)
    g = torch.Generator().manual_seed(5)
    x = geometry.to_layout(torch.randn(2, 16, 9, 7, generator=g).to(dtype), layout)
    w = torch.empty(24, 16, 3, 2, dtype=dtype)
    spec = conv_spec("conv2d", 2, x, w, None, 1, 1, 1, 1)
    dy = geometry.to_layout(torch.randn(spec.output_shape, generator=g).to(dtype), layout)
    cfg = tuning.Config(32, 16, 16, split_k=3, tile_h=int(descriptors))  # one tile of channels a tap: 6 tiles
    assert weight_grad.descriptors_usable(dy, x, spec, cfg) == descriptors
    assert weight_grad.MEET_ROWS < cfg.block_m
    assert geometry.splits_meet(3, 32, 16) and not geometry.splits_meet(1, 32, 16)
    workspaces = []
    alloc = geometry.alloc_output
    monkeypatch.setattr(weight_grad.geometry, "alloc_output", lambda shape, *a: workspaces.append(alloc(shape, *a)) or
                        workspaces[-1])
    grad = dispatch.conv_grad_weight(dy, x, spec, flip, cfg, channels_inner=inner)
    again = dispatch.conv_grad_weight(dy, x, spec, flip, cfg, channels_inner=inner)
    assert torch.equal(grad, again)
    assert grad.dtype == dtype and grad.shape == w.shape and (grad.stride(1) == 1) == inner
    ref = torch.nn.grad.conv2d_weight(x.double(), w.shape, dy.double(), padding=1)
    assert_close(grad, ref.flip((2, 3)) if flip else ref, dtype)
    workspaces = [t for t in workspaces if t.dim() == 1]
    assert [t.dtype for t in workspaces] == [torch.float32] * 2
    ws = workspaces[0]  # [split, tap, ...] (the pointer kernel's split-minor: [tap, split, ...], _tile.arrive)
    parts = (ws.view(3, 6, 32, 16) if descriptors else ws.view(6, 3, 32, 16).transpose(0, 1))[:, :, :24]
    def gradient(total: torch.Tensor) -> torch.Tensor:  # [tap, co, ci] -> the weight's shape
        out = total.permute(1, 2, 0).reshape(w.shape)
        return out.flip((2, 3)) if flip else out
    if dtype == torch.float32:
        assert torch.equal(grad, gradient((parts[0] + parts[1]) + parts[2]))
        assert not torch.equal(grad, gradient((parts[2] + parts[1]) + parts[0]))
    with static.recording(execute=False) as launches, OpLog() as log:
        dispatch.conv_grad_weight(dy, x, spec, flip, cfg, channels_inner=inner)
    kernel = "_conv_weight_grad_tma_kernel" if descriptors else "_conv_weight_grad_kernel"
    assert [(fn.fn.__name__, grid[1]) for fn, _, _, grid in launches] == [(kernel, 3)]
    assert set(log.ops) <= {"empty", "empty_strided", "permute"}, log.ops  # permute: the inner layout's view


POINTER_MEET_CASES = [  # 16-bit splits meeting on the pointer kernel: folds, groups, strides, dilation, 1-D to 3-D
    ("conv1d", (2, 6, 11), (8, 3, 3), dict(padding=1, groups=2), "contiguous", tuning.Config(16, 16, 16, split_k=3, fold=1)),
    ("conv2d", (1, 3, 9, 8), (8, 3, 3, 2), dict(padding=1, dilation=(2, 1)), "channels_last",
     tuning.Config(16, 32, 16, split_k=2, fold=2)),
    ("conv3d", (2, 16, 5, 6, 7), (24, 16, 3, 1, 2), dict(stride=(2, 1, 2), padding=(1, 0, 1)), "channels_last",
     tuning.Config(16, 16, 32, split_k=5)),
]


@pytest.mark.parametrize("op,x_shape,w_shape,kw,layout,cfg", POINTER_MEET_CASES)
def test_pointer_weight_gradient_splits_meet_on_folds_groups_and_strides(op, x_shape, w_shape, kw, layout, cfg):
    """The pointer kernel's 16-bit splits meeting in the kernel (one launch, the last adding the partials a few rows
    at a time) on folded taps, groups, dilation and strides, 1-D to 3-D, flipped: against torch, and two calls equal
    bit for bit."""
    from benchmarks import static

    nd = len(w_shape) - 2
    g = torch.Generator().manual_seed(11)
    x = geometry.to_layout(torch.randn(x_shape, generator=g).half(), layout)
    w = torch.empty(w_shape, dtype=torch.float16)
    args = [kw.get(a, d) for a, d in (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1))]
    spec = conv_spec(op, nd, x, w, None, *args)
    dy = geometry.to_layout(torch.randn(spec.output_shape, generator=g).half(), layout)
    with static.recording() as launches:
        grad = dispatch.conv_grad_weight(dy, x, spec, True, cfg)
    assert [(fn.fn.__name__, kwargs["SPLIT"], grid[1] > 1, kwargs["SPLITS"]) for fn, _, kwargs, grid in launches] == \
        [("_conv_weight_grad_kernel", True, True, launches[0][3][1])]
    assert torch.equal(grad, dispatch.conv_grad_weight(dy, x, spec, True, cfg))
    ref = getattr(torch.nn.grad, f"{op}_weight")(x.double(), w.shape, dy.double(), *args)
    assert_close(grad, ref.flip(tuple(range(2, 2 + nd))), torch.float16)


def test_pointer_meeting_adds_fewer_rows_at_a_time_where_the_other_splits_would_hold_too_many_registers(monkeypatch):
    """The pointer kernel's last split loads every other split's slice of a few rows at once, then adds them
    (``_tile.met_rows``): ``weight_grad.meet_rows`` halves the slice while those loads would hold more than
    ``weight_grad.MEET_REGISTERS`` registers a thread. With the budget cut to one register, slices of one row: the same
    gradient bit for bit as 16 rows a slice, and torch's."""
    from benchmarks import static
    from tritonconv.kernels import weight_grad

    for splits, bm, bn, warps in [(2, 128, 128, 8), (4, 128, 128, 8), (17, 64, 64, 4), (14, 64, 64, 8), (65, 32, 32, 4),
                                  (9, 128, 64, 4), (3, 16, 16, 4), (200, 16, 16, 4)]:
        rows = weight_grad.meet_rows(splits, bm, bn, warps)
        assert rows & (rows - 1) == 0 and 1 <= rows <= min(weight_grad.MEET_ROWS, bm)
        held = (splits - 1) * rows * bn / (32 * warps)  # registers a thread of the others' slices
        assert held <= weight_grad.MEET_REGISTERS or rows == 1
        assert rows == min(weight_grad.MEET_ROWS, bm) or 2 * held > weight_grad.MEET_REGISTERS
    assert weight_grad.meet_rows(4, 128, 128, 8) == 16 and weight_grad.meet_rows(17, 64, 64, 4) == 4

    g = torch.Generator().manual_seed(12)
    x = torch.randn(2, 16, 7, 9, generator=g).half()  # (16 input channels: not packed as a stem's few)
    w = torch.empty(16, 16, 3, 3, dtype=torch.float16)
    spec = conv_spec("conv2d", 2, x, w, None, 1, 1, 1, 1)
    dy = torch.randn(spec.output_shape, generator=g).half()
    cfg = tuning.Config(16, 16, 16, split_k=3)
    grads = []
    for budget in (weight_grad.MEET_REGISTERS, 1 / 64):
        monkeypatch.setattr(weight_grad, "MEET_REGISTERS", budget)
        dispatch.clear_plans()  # (a plan prepares its launch once)
        with static.recording() as launches:
            grads.append(dispatch.conv_grad_weight(dy, x, spec, False, cfg))
        ((fn, _, kwargs, grid),) = launches
        assert (kwargs["SPLIT"], kwargs["SPLITS"], kwargs["MEET_ROWS"]) == (True, 3, 16 if budget >= 1 else 1) and \
            grid[1] == 3
    assert torch.equal(grads[0], grads[1])
    assert_close(grads[0], torch.nn.grad.conv2d_weight(x.double(), w.shape, dy.double(), padding=1), torch.float16)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("inner", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("descriptors", [False, True])
def test_split_weight_gradient_adds_its_partials_in_a_second_launch_in_split_order(monkeypatch, plain_allocation, flip,
                                                                                 inner, dtype, descriptors):
    """A split weight gradient of more splits than meet in the kernel (``geometry.MEET_BYTES`` set to 0 here), on the
    pointer kernel's tiles or on descriptor tiles, or of fp32 operands on the pointer kernel's at any size
    (``weight_grad.pointer_meets``), is two launches and no torch op but allocations (and views): the GEMM's fp32
    partials (taps first, input channels innermost), then one launch adding them in split order ((p0 + p1) + p2, bit
    for bit in fp32; the reverse order's sum differs, so the check can fail), reversing the taps for ``flip``, casting
    to the weight's dtype and laying the gradient out contiguous or with its input channels innermost
    (``tritonconv.nn``'s weights). (Triton's interpreter casts fp32 to bf16 by truncation, a GPU to nearest: bf16 is
    checked against torch's gradient.)"""
    from test_conv import OpLog

    from benchmarks import static
    from tritonconv.kernels import partials

    layout = "channels_last" if descriptors else "contiguous"
    g = torch.Generator().manual_seed(5)
    x = geometry.to_layout(torch.randn(2, 16, 9, 7, generator=g).to(dtype), layout)
    w = torch.empty(24, 16, 3, 2, dtype=dtype)
    spec = conv_spec("conv2d", 2, x, w, None, 1, 1, 1, 1)
    dy = geometry.to_layout(torch.randn(spec.output_shape, generator=g).to(dtype), layout)
    cfg = tuning.Config(32, 16, 16, split_k=3, tile_h=int(descriptors))
    if descriptors or dtype != torch.float32:
        monkeypatch.setattr(geometry, "MEET_BYTES", 0)
    seen = []
    real = partials.Sum.__call__
    monkeypatch.setattr(partials.Sum, "__call__", lambda self, p, grad: seen.append(p.clone()) or real(self, p, grad))
    grad = dispatch.conv_grad_weight(dy, x, spec, flip, cfg, channels_inner=inner)
    (parts,) = seen
    assert parts.shape[0] == 3 and parts.dtype == torch.float32
    assert parts.stride()[1:] == (parts.shape[2], 1, parts.shape[1] * parts.shape[2])  # taps first, input channels in
    assert grad.dtype == dtype and grad.shape == w.shape and (grad.stride(1) == 1) == inner
    ref = torch.nn.grad.conv2d_weight(x.double(), w.shape, dy.double(), padding=1)
    assert_close(grad, ref.flip((2, 3)) if flip else ref, dtype)
    if dtype == torch.float32:
        expected = ((parts[0] + parts[1]) + parts[2]).reshape(spec.weight_shape)
        reverse = ((parts[2] + parts[1]) + parts[0]).reshape(spec.weight_shape)
        if flip:
            expected, reverse = expected.flip((2, 3)), reverse.flip((2, 3))
        assert torch.equal(grad, expected) and not torch.equal(grad, reverse)
    monkeypatch.setattr(partials.Sum, "__call__", real)
    with static.recording(execute=False) as launches, OpLog() as log:
        dispatch.conv_grad_weight(dy, x, spec, flip, cfg, channels_inner=inner)
    kernel = "_conv_weight_grad_tma_kernel" if descriptors else "_conv_weight_grad_kernel"
    assert [fn.fn.__name__ for fn, *_ in launches] == [kernel, "_sum_partials_kernel"]
    assert set(log.ops) <= {"empty", "empty_strided", "permute"}, log.ops  # permute: the inner layout's view


@pytest.mark.parametrize("descriptors", [False, True])
def test_split_weight_gradient_partials_added_apart_with_int64_offsets(monkeypatch, plain_allocation, descriptors):
    """The partials of a weight gradient split 3 ways and added apart, laid out taps first, with 64-bit offsets in both
    launches (``geometry.INT32_MAX`` set to 16 here): the gradient as torch's, flipped."""
    from benchmarks import static

    monkeypatch.setattr(geometry, "INT32_MAX", 16)
    monkeypatch.setattr(geometry, "MEET_BYTES", 0)
    layout = "channels_last" if descriptors else "contiguous"
    g = torch.Generator().manual_seed(11)
    x = geometry.to_layout(torch.randn(2, 16, 7, 9, generator=g), layout)
    w = torch.empty(24, 16, 2, 3)
    spec = conv_spec("conv2d", 2, x, w, None, 1, (1, 0), 1, 1)
    dy = geometry.to_layout(torch.randn(spec.output_shape, generator=g), layout)
    with static.recording() as launches:
        grad = dispatch.conv_grad_weight(dy, x, spec, True, tuning.Config(32, 16, 16, split_k=3, tile_h=int(descriptors)))
    assert [(fn.fn.__name__.split("_")[-2], kwargs["INT64"]) for fn, _, kwargs, _ in launches] == \
        [("tma" if descriptors else "grad", True), ("partials", True)]
    ref = torch.nn.grad.conv2d_weight(x.double(), w.shape, dy.double(), padding=(1, 0))
    assert_close(grad, ref.flip((2, 3)), torch.float32)


FOLD_CASES = [  # few input channels per group: stems (3 channels, 7x7 stride 2; 3x3x3), narrow groups, 1-D
    ("conv2d", (2, 3, 17, 19), (8, 3, 7, 7), dict(stride=2, padding=3), torch.channels_last),
    ("conv2d", (1, 4, 9, 11), (6, 2, 3, 5), dict(padding=(1, 4), dilation=(1, 2), groups=2), torch.contiguous_format),
    ("conv3d", (1, 3, 5, 9, 10), (16, 3, 3, 3, 3), dict(padding=1, stride=(1, 2, 1)), torch.channels_last_3d),
    ("conv1d", (2, 3, 40), (8, 3, 9), dict(padding=4, stride=3), torch.contiguous_format),
]


@pytest.mark.parametrize("op,x_shape,w_shape,kw,fmt", FOLD_CASES)
def test_weight_gradient_with_taps_folded_into_the_columns(op, x_shape, w_shape, kw, fmt, monkeypatch):
    """Few channels per group: width taps (fold 1), or height and width taps (fold 2), as columns of the weight
    gradient's GEMM, each column's taps masked per position; every fold the problem allows, split or not,
    flipped or not, against torch. The heuristic folds such layers (fewer columns issued: 5.3x -> 1.09x for 7x7
    on 3) where they are not packed: unit-stride stems, groups, dilation (strided stems pack their positions into
    channels by default, tests/test_conv.py; not packed here, to reach the folded kernel with strides)."""
    monkeypatch.setattr(geometry, "pack_factors", lambda spec, transposed=False, itemsize=2: None)
    x = torch.randn(x_shape, device=DEVICE).contiguous(memory_format=fmt)
    w = torch.randn(w_shape, device=DEVICE)
    groups = kw.get("groups", 1)
    spec = conv_spec(op, len(w_shape) - 2, x, w, None, kw.get("stride", 1), kw.get("padding", 0),
                     kw.get("dilation", 1), groups)
    dy = torch.randn(spec.output_shape, device=DEVICE).contiguous(memory_format=fmt)
    w64 = w.double().requires_grad_()
    (ref,) = torch.autograd.grad(getattr(F, op)(x.double(), w64, **kw), w64, dy.double())
    problem = tuning.Problem.for_launch("conv_wgrad", x, spec)
    assert tuning.can_fold(problem) and tuning.heuristic(problem, interpret=False).fold == tuning.wgrad_max_fold(problem)
    for fold in range(tuning.wgrad_max_fold(problem) + 1):
        for split, flip in ((1, fold % 2 == 1), (3, fold % 2 == 0)):
            cfg = tuning.Config(16, 32, 16, num_warps=4, num_stages=1, split_k=split, fold=fold)
            expected = ref.flip(tuple(range(2, ref.dim()))) if flip else ref
            assert_close(dispatch.conv_grad_weight(dy, x, spec, flip, cfg), expected)
    issued = [tuning.wgrad_columns(problem, f, 16) for f in range(tuning.wgrad_max_fold(problem) + 1)]
    assert issued == sorted(issued, reverse=True)  # folding more issues fewer columns here


def test_int64_offsets_path_backward(monkeypatch):
    monkeypatch.setattr(geometry, "INT32_MAX", 16)
    check_grads(2, (2, 3, 9, 8), (4, 3, 3, 3), stride=2, padding=1)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_problems())
def test_random_configurations_gradients(problem):
    ndim, x_shape, w_shape, kw, bias = problem
    check_grads(ndim, x_shape, w_shape, bias=bias, **kw)


def test_activation_grad_formulas():
    z = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    g = torch.randn(1000, dtype=torch.float64)
    for name in ("relu", "gelu", "gelu_tanh", "silu", "mish", "sigmoid", "tanh", "hardsigmoid", "elu", "selu",
                 "leaky_relu", "leaky_relu(-0.5)"):
        (ref,) = torch.autograd.grad(ACT[name](z), z, g)
        ours = functional.activation_grad(g, name, ACT[name](z.detach()), z.detach())
        assert torch.allclose(ours, ref, rtol=1e-6, atol=1e-12), name


def compile_or_skip(fn, backend):
    if backend == "inductor":
        if shutil.which("g++") is None and shutil.which("clang++") is None:
            pytest.skip("torch.compile's inductor backend needs a C++ compiler on CPU; none installed")
    return torch.compile(fn, backend=backend, fullgraph=True)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_traces_forward_and_backward(backend):
    """fullgraph=True: a graph break on the custom ops would raise."""
    torch._dynamo.reset()

    def block(x, w1, b1, w2):
        h = tritonconv.conv2d(x, w1, b1, padding=1, activation="gelu")
        return tritonconv.conv2d(h, w2, stride=2).square().mean()

    args = [torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3), torch.randn(4), torch.randn(5, 4, 3, 3)]
    args = [a.requires_grad_() for a in args]
    compiled = compile_or_skip(block, backend)
    loss = compiled(*args)
    grads = torch.autograd.grad(loss, args)
    loss_ref = block(*args)
    grads_ref = torch.autograd.grad(loss_ref, args)
    assert_close(loss, loss_ref)
    for g, r in zip(grads, grads_ref):
        assert_close(g, r)


def test_calls_on_fake_tensors_trace_without_launching():
    """Calls on fake tensors (``FakeTensorMode``: shape inference, ``torch.export``) take the custom ops' fake kernels,
    with gradients or without, as routed ``torch.nn`` layers and through ``torch.export``: nothing launches (a launch
    on a fake tensor fails), and the shapes and strides are those of the kernels' outputs."""
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    x = torch.randn(2, 3, 5, 9, 7).contiguous(memory_format=torch.channels_last_3d)
    w, wt, ws, wtemp = torch.randn(4, 3, 3, 1, 2), torch.randn(3, 4, 2, 3, 3), torch.randn(6, 3, 1, 3, 3), \
        torch.randn(4, 6, 3, 1, 1)
    calls = {"conv3d": lambda x, w, wt, ws, wtemp: tritonconv.conv3d(x, w, stride=(1, 2, 1), padding=1),
             "conv_transpose3d": lambda x, w, wt, ws, wtemp: tritonconv.conv_transpose3d(x, wt, stride=2),
             "conv2plus1d": lambda x, w, wt, ws, wtemp: tritonconv.conv2plus1d(x, ws, wtemp, padding=1)}
    for name, call in calls.items():
        for grad in (False, True):
            real = call(x.requires_grad_(grad), w, wt, ws, wtemp)
            with FakeTensorMode() as mode:
                fake = call(*(mode.from_tensor(t).requires_grad_(grad) for t in (x, w, wt, ws, wtemp)))
                if grad:
                    fake.sum().backward()
            assert isinstance(fake, FakeTensor) and (fake.shape, fake.stride()) == (real.shape, real.stride()), name
    with FakeTensorMode(), tritonconv.enabled() as counts:
        layer = torch.nn.Conv2d(3, 5, 3, padding=1)
        assert layer(torch.randn(1, 3, 8, 8)).shape == (1, 5, 8, 8)
    assert dict(counts.routed) == {"conv2d (traced into a graph)": 1}
    model = tritonconv.nn.Conv2d(3, 5, 3, stride=2)
    exported = torch.export.export(model, (torch.randn(1, 3, 9, 9),))
    targets = {str(n.target) for n in exported.graph.nodes if n.op == "call_function"}
    assert "tritonconv.conv.default" in targets, targets
    got = exported.module()(inp := torch.randn(1, 3, 9, 9))  # fresh values, the traced shape
    assert_close(got, F.conv2d(inp, model.weight, model.bias, stride=2))


def test_fake_output_shapes_match_kernels():
    x, w = torch.randn(2, 3, 9, 7).contiguous(memory_format=torch.channels_last), torch.randn(4, 3, 2, 3)
    spec = conv_spec("conv2d", 2, x, w, None, (2, 1), 1, 1, 1)
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        fx, fw = mode.from_tensor(x), mode.from_tensor(w)
        fake = torch.ops.tritonconv.conv(fx, fw, None, *functional._flat(spec), None, False)
    real = tritonconv.conv2d(x, w, stride=(2, 1), padding=1)
    assert fake.shape == real.shape == shapes.conv_output_shape(x.shape, w.shape, (2, 1), 1)
    assert fake.stride() == real.stride()



@pytest.mark.parametrize("ndim,fmt", [(1, None), (2, torch.channels_last), (3, torch.channels_last_3d)])
def test_depthwise_gradients_take_their_own_kernels(monkeypatch, ndim, fmt):
    """Depthwise layers (multiplier 1 and 2) differentiate through the no-tensor-core kernels."""
    from tritonconv.kernels import depthwise

    calls = []
    launch, grad_weight = depthwise.Launch.__call__, depthwise.WeightGradLaunch.__call__
    monkeypatch.setattr(depthwise.Launch, "__call__", lambda self, *a: calls.append(
        "depthwise_grad_input" if self.kwargs["TRANSPOSED"] else "depthwise_forward") or launch(self, *a))
    monkeypatch.setattr(depthwise.WeightGradLaunch, "__call__",
                        lambda *a: calls.append("depthwise_grad_weight") or grad_weight(*a))
    sizes = {1: (19,), 2: (7, 6), 3: (4, 5, 3)}[ndim]
    kernel = {1: (5,), 2: (3, 2), 3: (2, 3, 3)}[ndim]
    for mult, kw in ((1, dict(stride=2, padding=1, dilation=2)), (2, dict(padding="same"))):
        x_format = fmt if fmt is not None else torch.contiguous_format
        check_grads(ndim, (2, 3, *sizes), (3 * mult, 1, *kernel), groups=3, x_format=x_format, flip=mult == 2,
                    activation="silu", **kw)
    # silu keeps no activation: the backward recomputes the pre-activation (a second forward)
    assert sorted(calls) == ["depthwise_forward"] * 4 + ["depthwise_grad_input"] * 2 + ["depthwise_grad_weight"] * 2


@pytest.mark.parametrize("ties_outermost", [False, True])
@pytest.mark.parametrize("ndim,fmt", [(2, torch.channels_last), (3, torch.channels_last_3d)])
def test_depthwise_weight_gradient_on_either_layout_rule(monkeypatch, ties_outermost, ndim, fmt):
    """The FMA depthwise weight gradient's channels-last ``x`` tile, built for either Triton's rule for axes of equal
    contiguity (``_tile.load_middle``: loaded with its first two axes swapped where ties go outermost first, before
    Triton 3.7; the interpreter runs whichever it is told), gives torch's gradients."""
    monkeypatch.setattr(_tile, "TIES_OUTERMOST", tl.constexpr(ties_outermost))
    sizes, kernel = {2: ((7, 6), (3, 2)), 3: ((4, 5, 3), (2, 3, 3))}[ndim]
    check_grads(ndim, (2, 3, *sizes), (6, 1, *kernel), groups=3, x_format=fmt, padding=1, dilation=2)


DW_TILES = [  # (taps, channels, positions a step, splits): tap and channel tiles with ragged last ones, one position a
    (8, 2, 1, 3), (4, 4, 4, 2), (16, 8, 64, 1), (1, 16, 8, 5), (32, 1, 2, 4)]  # step (a carry each), steps past a plane


@pytest.mark.parametrize("tile", DW_TILES, ids=str)
@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", [
    (1, (2, 5, 19), (5, 1, 5), dict(stride=2, padding=3, dilation=2, groups=5)),
    (2, (3, 4, 10, 9), (8, 1, 3, 3), dict(stride=2, padding=1, groups=4)),  # multiplier 2
    (3, (2, 3, 4, 5, 6), (3, 1, 2, 3, 3), dict(padding=(0, 2, 1), dilation=(1, 2, 1), groups=3)),
])
@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
def test_depthwise_weight_gradient_tiles(tile, ndim, x_shape, w_shape, kw, fmt):
    """The depthwise weight gradient on tiles of taps x channels x positions (every tap of a tile from one load of the
    output gradient a step, positions advanced by carries) matches torch in float64, whichever tile and split."""
    x, w = torch.randn(x_shape, dtype=torch.float64), torch.randn(w_shape, dtype=torch.float64)
    x = x if fmt == "contiguous" else geometry.to_layout(x, "channels_last")
    ref_y = getattr(torch.nn.functional, f"conv{ndim}d")(x, w, **kw)
    dy = torch.randn_like(ref_y)
    spec = conv_spec(f"conv{ndim}d", ndim, x, w, None, kw.get("stride", 1), kw["padding"], kw.get("dilation", 1),
                     kw["groups"])
    block_m, block_n, block_k, split = tile
    got = dispatch.conv_grad_weight(dy, x, spec, config=tuning.Config(block_m, block_n, block_k, split_k=split))
    ref = getattr(torch.nn.grad, f"conv{ndim}d_weight")(x, w.shape, dy, **kw)
    assert_close(got, ref)


DW_RUNS = [  # NC(D)HW depthwise layers at unit width stride, rows read in runs: width taps on and off a run boundary on
    # both sides, dilated ones two columns apart, a channel multiplier of 2, a height stride, 'same' padding
    (1, (2, 3, 24), (3, 1, 5), dict(padding=2, groups=3)),
    (1, (1, 2, 40), (4, 1, 7), dict(padding=6, dilation=2, groups=2)),
    (2, (2, 3, 6, 16), (3, 1, 3, 3), dict(padding=1, groups=3)),
    (2, (1, 2, 7, 12), (4, 1, 2, 3), dict(stride=(2, 1), padding=(1, 0), groups=2)),
    (3, (1, 2, 3, 4, 8), (2, 1, 2, 3, 3), dict(padding="same", groups=2)),
]


@pytest.mark.parametrize("block", [None, 16, 64])  # the heuristic's tile; rows cut in width tiles; several rows a tile
@pytest.mark.parametrize("ndim,x_shape,w_shape,kw", DW_RUNS)
def test_depthwise_rows_read_in_runs(monkeypatch, block, ndim, x_shape, w_shape, kw):
    """NC(D)HW depthwise layers at unit width stride read x's rows in aligned runs, each width tap's columns taken from a
    run and the next where its shift is off a run boundary (the forward's and input gradient's ``RUN_VEC``, the weight
    gradient's ``X_VEC``, its programs' taps then one width tap's), and match torch, every pass."""
    from tritonconv.kernels import depthwise

    runs = []
    init, init_w = depthwise.Launch.__init__, depthwise.WeightGradLaunch.__init__
    monkeypatch.setattr(depthwise.Launch, "__init__", lambda self, *a: init(self, *a) or runs.append(
        self.kwargs["RUN_VEC"]))
    monkeypatch.setattr(depthwise.WeightGradLaunch, "__init__", lambda self, *a: init_w(self, *a) or runs.append(
        self.kwargs["X_VEC"]))
    x, w = torch.randn(x_shape, dtype=torch.float32), torch.randn(w_shape, dtype=torch.float32)
    b = torch.randn(w_shape[0])
    spec = conv_spec(f"conv{ndim}d", ndim, x, w, b, kw.get("stride", 1), kw["padding"], kw.get("dilation", 1),
                     kw["groups"])
    config = None if block is None else tuning.Config(block, 2, 16)
    got = dispatch.conv_forward(x, w, b, spec, activation="silu", config=config)
    ref = F.silu(getattr(F, f"conv{ndim}d")(x.double(), w.double(), b.double(), **kw))
    assert_close(got, ref, torch.float32)
    dy = torch.randn(ref.shape)
    got = dispatch.conv_grad_input(dy, w, spec, config=config)
    x64, w64 = x.double().requires_grad_(), w.double().requires_grad_()
    ref, ref_w = torch.autograd.grad(getattr(F, f"conv{ndim}d")(x64, w64, **kw), (x64, w64), dy.double())
    assert_close(got, ref, torch.float32)
    # the weight gradient: the heuristic's tile, or 2 (depth, height) taps x 2 channels x block positions, 3 splits
    got = dispatch.conv_grad_weight(dy, x, spec, config=config and tuning.Config(2, 2, block, split_k=3))
    assert_close(got, ref_w, torch.float32)
    assert len(runs) == 3 and min(runs) > 1, runs


def test_depthwise_weight_gradient_splits_meet_in_the_kernel(monkeypatch):
    """The depthwise weight gradient is one launch: its splits' sums meet in the last split to arrive, added in split
    order (0 + 1) + 2, bit for bit, again on a second call (the counters reset themselves); the reverse order differs
    (the check can fail); the taps written reversed for a flipped kernel."""
    from benchmarks import static
    from tritonconv.kernels import depthwise

    g = torch.Generator().manual_seed(5)
    x = geometry.to_layout(torch.randn(2, 6, 9, 8, generator=g), "channels_last")
    w = torch.randn(6, 1, 3, 3, generator=g)
    spec = conv_spec("conv2d", 2, x, w, None, 1, 1, 1, 6)
    dy = torch.randn(spec.output_shape, generator=g)
    workspaces = []
    alloc = geometry.alloc_output
    monkeypatch.setattr(depthwise.geometry, "alloc_output", lambda shape, *a: workspaces.append(alloc(shape, *a)) or
                        workspaces[-1])
    cfg = tuning.Config(16, 8, 8, split_k=3)  # one tile: every tap and channel
    first = dispatch.conv_grad_weight(dy, x, spec, config=cfg)
    again = dispatch.conv_grad_weight(dy, x, spec, config=cfg)
    assert torch.equal(first, again)
    ws = [t for t in workspaces if t.dim() == 1]
    assert len(ws) == 2
    parts = ws[0].view(3, 16, 8)[:, :9, :6]  # [split, tap, channel]
    assert torch.equal(first.view(6, 9).T, (parts[0] + parts[1]) + parts[2])
    assert not torch.equal(first.view(6, 9).T, (parts[2] + parts[1]) + parts[0])
    assert_close(first, torch.nn.grad.conv2d_weight(x.double(), w.shape, dy.double(), padding=1, groups=6))
    with static.recording(execute=False) as launches:
        dispatch.conv_grad_weight(dy, x, spec, config=cfg)
    assert len(launches) == 1 and launches[0][3][1] == 3  # one launch, three splits
    flipped = dispatch.conv_grad_weight(dy, x, spec, True, config=cfg)
    assert torch.equal(flipped, first.flip(2, 3))


def test_int64_offsets_path_depthwise(monkeypatch):
    monkeypatch.setattr(geometry, "INT32_MAX", 16)
    check_grads(2, (2, 3, 9, 8), (6, 1, 3, 3), stride=2, padding=1, groups=3)
    check_grads(2, (2, 3, 5, 8), (6, 1, 3, 3), padding=1, groups=3)  # unit stride: rows read in runs


def test_split_reduction_of_input_gradient(monkeypatch):
    """The transposed pass splits its reduction (over output channels) like the forward pass."""
    heuristic = tuning.heuristic
    monkeypatch.setattr(tuning, "heuristic", lambda *a, **k: dataclasses.replace(heuristic(*a, **k), block_k=16,
                                                                                 split_k=2))
    check_grads(2, (2, 5, 8, 7), (40, 5, 3, 3), stride=2, padding=1, activation="relu")


@pytest.mark.parametrize("op,x_shape,w_shape,kw", [
    ("conv2d", (1, 2, 5, 4), (4, 1, 2, 3), dict(stride=2, padding=1, groups=2, activation="gelu")),
    ("conv1d", (1, 2, 6), (2, 1, 3), dict(padding=1, groups=2, activation="silu")),  # depthwise
    ("conv_transpose1d", (1, 2, 4), (2, 2, 3), dict(stride=2, padding=1, output_padding=1)),
])
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # (torch.func.jvp's decompositions, torch 2.13)
def test_float64_passes_gradcheck_and_gradgradcheck(op, x_shape, w_shape, kw):
    """float64 runs the same kernels with fp64 accumulation: torch's numerical checks of first and second
    derivatives pass (they perturb tensors in place through ``.data``, so nothing stale may be read), with every
    check a custom op's author runs: batched gradients (under ``vmap``), forward mode and its batched tangents, and
    forward mode over the backward."""
    x = torch.randn(x_shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(w_shape, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w: getattr(tritonconv, op)(x, w, **kw)  # noqa: E731
    ref = _torch_op(op, kw)(x, w, None)
    assert fn(x, w).dtype == torch.float64
    assert_close(fn(x, w), ref, torch.float64)
    assert torch.autograd.gradcheck(fn, (x, w), fast_mode=True, check_batched_grad=True, check_forward_ad=True,
                                    check_batched_forward_grad=True)
    assert torch.autograd.gradgradcheck(fn, (x, w), fast_mode=True, check_batched_grad=True, check_fwd_over_rev=True)


def test_float64_bias_gradient_sums_in_float64():
    """The bias gradient of a float64 convolution (and of a transposed one) is summed in float64 (it was summed in
    fp32: 1e-7 off torch's over a few thousand positions)."""
    x, w, dy = torch.randn(2, 3, 30, 30, dtype=torch.float64), torch.randn(4, 3, 1, 1, dtype=torch.float64), \
        torch.randn(2, 4, 30, 30, dtype=torch.float64)
    for ours, theirs, args in ((tritonconv.conv2d, F.conv2d, (x, w)),
                               (tritonconv.conv_transpose2d, F.conv_transpose2d, (dy, w))):
        grads = []
        for fn in (ours, theirs):
            b = torch.zeros(4 if fn in (tritonconv.conv2d, F.conv2d) else 3, dtype=torch.float64, requires_grad=True)
            out = fn(*args, b)
            out.backward(torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
            grads.append(b.grad)
        assert_close(*grads, torch.float64)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16_bit_bias_gradient_is_the_fp32_sum_rounded_once(dtype):
    """A 16-bit bias gradient is one reduction in the bias's dtype, which torch accumulates in fp32: on the CPU bit for
    bit the sum into fp32 rounded once after (as it was computed before, with a cast's launch more), in both layouts;
    on a GPU, whose reduction order may differ between the two, within one rounding of the exact sum."""

    def check(grad, g):
        fp32 = g.sum((0, 2, 3), dtype=torch.float32).to(dtype)
        if grad.device.type == "cpu":
            assert torch.equal(grad, fp32)
        exact = g.double().sum((0, 2, 3))
        ulp = torch.finfo(dtype).eps * exact.abs().clamp_min(torch.finfo(dtype).tiny)  # one rounding to dtype
        assert ((grad.double() - exact).abs() <= ulp + 1e-6 * g.double().abs().sum((0, 2, 3))).all()

    for fmt in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(3, 4, 9, 11).to(dtype=dtype, memory_format=fmt)
        w, dy = torch.randn(6, 4, 3, 3, dtype=dtype), torch.randn(3, 6, 9, 11, dtype=dtype)
        b = torch.randn(6, dtype=dtype, requires_grad=True)
        tritonconv.conv2d(x, w, b, padding=1).backward(dy)
        check(b.grad, dy)
        bt = torch.randn(4, dtype=dtype, requires_grad=True)  # a transposed convolution's: its output's channels
        tritonconv.conv_transpose2d(dy, w, bt, padding=1).backward(x)
        check(bt.grad, x)


def test_weight_gradient_op_keeps_its_earlier_signature():
    """torch.compile caches compiled backward graphs on disk; one compiled before the weight gradient's layout
    argument existed calls the op without it: it still runs (a contiguous gradient, the same values)."""
    x, dy, w = torch.randn(2, 4, 7, 6), torch.randn(2, 5, 7, 6), torch.randn(5, 4, 3, 3)
    old = torch.ops.tritonconv.conv_grad_weight(dy, x, list(w.shape), [1, 1], [1, 1, 1, 1], [1, 1], 1, False)
    new = torch.ops.tritonconv.conv_grad_weight(dy, x, list(w.shape), [1, 1], [1, 1, 1, 1], [1, 1], 1, False, True)
    assert old.is_contiguous() and new.stride(1) == 1
    assert_close(old, torch.nn.grad.conv2d_weight(x.double(), w.shape, dy.double(), padding=1))
    assert_close(new, old)


@pytest.mark.parametrize("block_k,split", [(16, 1), (16, 3), (32, 5)])
def test_weight_gradient_rows_carried_across_planes_depths_and_images(block_k, split, monkeypatch):
    """NC(D)HW positions in tiles of rows: tiles of at most a plane's rows carry their rows' (image, depth, height)
    from tile to tile (``CARRY``, ``_tile.next_rows``), wrapping the height and the depth, splits starting mid-plane;
    tiles of more rows than a plane has divide them out. Both against torch, also with int64 offsets."""
    from benchmarks import static

    g = torch.Generator().manual_seed(11)
    cases = [((2, 16, 3, 5, 6), (8, 16, 3, 3, 3), True),  # rows 6 wide in tiles of 8: 2 or 4 rows of a 5-row plane
             ((3, 16, 2, 6), (8, 16, 3, 3), block_k == 16),  # 2-row planes: 4 rows a tile are more than a plane's
             ((2, 16, 40), (8, 16, 3), False)]  # 1-D rows: no plane to carry across
    for int32_max in (None, 16):
        if int32_max:
            monkeypatch.setattr(geometry, "INT32_MAX", int32_max)
        for x_shape, w_shape, carry in cases:
            x = torch.randn(x_shape, generator=g)
            w = torch.empty(w_shape)
            spec = conv_spec(f"conv{len(w_shape) - 2}d", len(w_shape) - 2, x, w, None, 1, 1, 1, 1)
            dy = torch.randn(spec.output_shape, generator=g)
            cfg = tuning.Config(16, 16, block_k, num_warps=4, num_stages=1, split_k=split)
            with static.recording(execute=False) as launches:
                dispatch.conv_grad_weight(dy, x, spec, False, cfg)
            (kwargs,) = [kw for fn, _, kw, _ in launches if fn.fn.__name__ == "_conv_weight_grad_kernel"]
            assert kwargs["CARRY"] == carry and kwargs["BLOCK_W"] > 0
            ref = getattr(torch.nn.grad, f"conv{len(w_shape) - 2}d_weight")(x.double(), w_shape, dy.double(), padding=1)
            assert_close(dispatch.conv_grad_weight(dy, x, spec, False, cfg), ref)


def test_torch_func_grad_runs_the_kernels():
    """``torch.func.grad`` (and ``functional_call``, and a grad of a grad) differentiates tritonconv's convolutions as
    torch's, on tritonconv's kernels."""
    from torch.func import functional_call, grad, vmap

    x, w, b = torch.randn(2, 4, 6, 5, dtype=torch.float64), torch.randn(3, 4, 3, 3, dtype=torch.float64), \
        torch.randn(3, dtype=torch.float64)
    wt = torch.randn(4, 3, 3, 3, dtype=torch.float64)  # a transposed convolution's (C_in, C_out, ...)

    def grads(conv, *args):  # of a loss, with respect to every argument
        return grad(lambda *a: conv(*a).pow(2).sum(), argnums=tuple(range(len(args))))(*args)

    for ours, theirs, args in (
            (lambda x, w, b: tritonconv.conv2d(x, w, b, padding=1, activation="gelu"),
             lambda x, w, b: F.gelu(F.conv2d(x, w, b, padding=1)), (x, w, b)),
            (lambda x, w, b: tritonconv.conv_transpose2d(x, w, b, stride=2),
             lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2), (x, wt, b))):
        for got, want in zip(grads(ours, *args), grads(theirs, *args)):
            assert_close(got, want, torch.float64)
    second = grad(lambda ww: grad(lambda xx: tritonconv.conv2d(xx, ww, padding=1).pow(2).sum())(x).sum())(w)
    assert_close(second, grad(lambda ww: grad(lambda xx: F.conv2d(xx, ww, padding=1).pow(2).sum())(x).sum())(w),
                 torch.float64)
    m = tritonconv.nn.Conv2d(4, 3, 3, padding=1).double()
    params = dict(m.named_parameters())
    got = grad(lambda p: functional_call(m, p, (x,)).pow(2).sum())(params)
    want = grad(lambda p: F.conv2d(x, p["weight"], p["bias"], padding=1).pow(2).sum())(params)
    for name in params:
        assert_close(got[name], want[name], torch.float64)
    want = grad(lambda ww: F.conv2d(x, ww, padding=1).sum())(w)
    with tritonconv.enabled():  # routed: vmap's batching rule folds its dimension before the routing sees the call
        y = vmap(lambda xi: F.conv2d(xi[None], w, padding=1))(x)
        assert_close(y[:, 0], F.conv2d(x, w, padding=1), torch.float64)
        got = grad(lambda ww: F.conv2d(x, ww, padding=1).sum())(w)  # at a grad's level: torch's own (test_routing)
    assert_close(got, want, torch.float64)


def _count_launches(monkeypatch) -> list:
    """The dispatch's forward, transposed and weight-gradient launches from now on, by name, appended to a list."""
    launched = []

    def counting(name: str, launch):
        def counted(*args, **kwargs):
            launched.append(name)
            return launch(*args, **kwargs)
        return counted

    for name in ("conv_forward", "conv_transpose", "conv_grad_weight"):
        monkeypatch.setattr(dispatch, name, counting(name, getattr(dispatch, name)))
    return launched


def test_vmap_runs_a_batch_of_convolutions_as_one_launch(monkeypatch):
    """``torch.func.vmap`` over tritonconv's convolutions gives torch's results, and each call under it is one launch
    for the whole batch: inputs alone batched join the batch axis (any ``in_dims``, nested, chunked, a sample
    unbatched or channels-last); batched weights and biases (ensembles: ``stack_module_state`` on converted modules)
    run as one grouped convolution, as do the weight gradients of per-sample gradients. Transposed convolutions
    and (2+1)D too."""
    from torch.func import functional_call, stack_module_state, vmap

    f64 = dict(dtype=torch.float64)
    x, w, b = torch.randn(3, 2, 4, 6, 5, **f64), torch.randn(3, 4, 3, 3, **f64), torch.randn(3, **f64)
    launched = _count_launches(monkeypatch)
    y = vmap(lambda xi: tritonconv.conv2d(xi, w, b, padding=1, activation="gelu"))(x)
    assert launched == ["conv_forward"]
    assert_close(y, F.gelu(F.conv2d(x.flatten(0, 1), w, b, padding=1)).unflatten(0, (3, 2)), torch.float64)
    ws, bs = torch.randn(5, 4, 2, 3, 3, **f64), torch.randn(5, 4, **f64)  # five weights of 2 groups
    launched.clear()
    y = vmap(lambda wi, bi: tritonconv.conv2d(x[0], wi, bi, stride=2, groups=2))(ws, bs)
    assert launched == ["conv_forward"]
    assert_close(y, torch.stack([F.conv2d(x[0], wi, bi, stride=2, groups=2) for wi, bi in zip(ws, bs)]), torch.float64)
    wd = torch.randn(8, 1, 3, **f64)
    cases = [  # (ours, torch's, operands, vmap's keywords)
        (lambda xi, wi: tritonconv.conv2d(xi, wi), F.conv2d, (x, ws[:3, :, :1].repeat(1, 1, 4, 1, 1)), {}),
        (lambda xi: tritonconv.conv3d(xi, w[..., None], padding="same"), lambda xi: F.conv3d(xi, w[..., None], padding="same"),
         (x.movedim(0, 2).unsqueeze(-1),), dict(in_dims=2)),
        (lambda xi: tritonconv.conv1d(xi, wd, groups=4, dilation=2),  # depthwise, a sample unbatched
         lambda xi: F.conv1d(xi, wd, groups=4, dilation=2), (x[:, 0, :, :, 0],), dict(chunk_size=2)),
        (lambda xi: tritonconv.conv2d(xi, w, memory_format=torch.preserve_format), lambda xi: F.conv2d(xi, w),
         (x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3),), {}),  # channels innermost
        (lambda xi, wi: tritonconv.conv_transpose2d(xi, wi, stride=2, output_padding=1, groups=2),
         lambda xi, wi: F.conv_transpose2d(xi, wi, stride=2, output_padding=1, groups=2),
         (x, torch.randn(3, 4, 1, 3, 3, **f64)), {}),
    ]
    for ours, theirs, args, kw in cases:
        assert_close(vmap(ours, **kw)(*args), vmap(theirs, **kw)(*args), torch.float64)
    nested = vmap(vmap(lambda xi: tritonconv.conv2d(xi, w, padding=1)))(x.view(3, 2, 1, 4, 6, 5))
    assert_close(nested, F.conv2d(x.flatten(0, 1), w, padding=1).view(3, 2, 1, 3, 6, 5), torch.float64)
    block = tritonconv.nn.Conv2Plus1d(2, 3, 4, 3, padding=1).double()
    clips = torch.randn(2, 1, 2, 3, 5, 5, **f64)
    assert_close(vmap(block)(clips), torch.stack([block(c) for c in clips]), torch.float64)

    models = [torch.nn.Sequential(torch.nn.Conv2d(4, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(3, 2, 1)).double()
              for _ in range(3)]
    ours = [copy.deepcopy(m) for m in models]
    for m in ours:
        tritonconv.nn.convert(m)

    def ensemble(members):
        params, buffers = stack_module_state(members)
        base = copy.deepcopy(members[0]).to("meta")
        return vmap(lambda p, bf: functional_call(base, (p, bf), (x[0],)))(params, buffers)

    launched.clear()
    assert_close(ensemble(ours), ensemble(models), torch.float64)
    assert launched == ["conv_forward", "conv_forward"]


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # (torch.func.jvp's decompositions, torch 2.13)
def test_per_sample_gradients_jacobians_and_hessians_match_torchs(monkeypatch):
    """What runs gradients or tangents under a vmap gives torch's results: per-sample gradients (``vmap`` of ``grad``
    over a converted model, in as many launches whatever the batch), ``jacrev``, ``jacfwd`` and ``hessian`` (the
    activations' second derivatives, ``flip``, transposed convolutions); and torch's older vmap, which
    ``torch.autograd.grad(is_grads_batched=True)`` and ``torch.autograd.functional``'s ``vectorize=True`` run,
    through the custom ops slice by slice."""
    from torch.autograd.functional import hessian as vectorized_hessian
    from torch.autograd.functional import jacobian
    from torch.func import functional_call, grad, hessian, jacfwd, jacrev, vmap

    f64 = dict(dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.SiLU(), torch.nn.Conv2d(4, 3, 3, stride=2))
    model = model.double()
    ours = copy.deepcopy(model)
    tritonconv.nn.convert(ours)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def per_sample(m, xs):
        loss = lambda p, xi: functional_call(m, p, (xi[None],)).pow(2).sum()  # noqa: E731
        return vmap(grad(loss), in_dims=(None, 0))(params, xs)

    launched, counts = _count_launches(monkeypatch), []
    for batch in (3, 5):
        xs = torch.randn(batch, 2, 7, 7, **f64)
        got, want = per_sample(ours, xs), per_sample(model, xs)
        for name in params:
            assert_close(got[name], want[name], torch.float64)
        counts.append(sorted(launched))
        launched.clear()
    assert counts[0] == counts[1] and len(counts[0]) <= 6, counts

    x, w, b = torch.randn(1, 2, 3, 4, **f64), torch.randn(2, 2, 3, 3, **f64), torch.randn(2, **f64)
    wt = torch.randn(2, 2, 2, 2, **f64)  # a transposed convolution's (C_in, C_out, ...)
    pairs = [  # (ours, torch's, operands)
        (lambda x, w, b: tritonconv.conv2d(x, w, b, padding=1, activation="gelu"),
         lambda x, w, b: F.gelu(F.conv2d(x, w, b, padding=1)), (x, w, b)),
        (lambda x, w, b: tritonconv.conv2d(x, w, b, flip=True, activation="silu"),
         lambda x, w, b: F.silu(F.conv2d(x, w.flip(2, 3), b)), (x, w, b)),
        (lambda x, w, b: tritonconv.conv_transpose2d(x, w, b, stride=2, activation="gelu"),
         lambda x, w, b: F.gelu(F.conv_transpose2d(x, w, b, stride=2)), (x, wt, b)),
    ]
    for i, (ours_f, theirs_f, args) in enumerate(pairs):
        for jac in (jacrev, jacfwd):
            for got, want in zip(jac(ours_f, argnums=(0, 1, 2))(*args), jac(theirs_f, argnums=(0, 1, 2))(*args)):
                assert_close(got, want, torch.float64)
        scalar = lambda f, rest=args[1:]: lambda x: f(x, *rest).pow(2).sum()  # noqa: E731
        assert_close(hessian(scalar(ours_f))(x), hessian(scalar(theirs_f))(x), torch.float64)
        if i == 2:  # (the older vmap runs a launch per slice: the convolutions alone)
            continue
        strategy = ("reverse-mode", "forward-mode")[i]  # (is_grads_batched's backward, and tangents)
        for got, want in zip(jacobian(ours_f, args, vectorize=True, strategy=strategy), jacobian(theirs_f, args)):
            assert_close(got, want, torch.float64)
        assert_close(vectorized_hessian(scalar(ours_f), x, vectorize=True, outer_jacobian_strategy="forward-mode"),
                     vectorized_hessian(scalar(theirs_f), x), torch.float64)
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    y = tritonconv.conv2d(xg, wg, stride=2, padding=1)
    dy = torch.randn(4, *y.shape, **f64)
    got = torch.autograd.grad(y, (xg, wg), dy, is_grads_batched=True)
    want = torch.autograd.grad(F.conv2d(xg, wg, stride=2, padding=1), (xg, wg), dy, is_grads_batched=True)
    for g, r in zip(got, want):
        assert_close(g, r, torch.float64)


def _tangent_of(conv, primals, tangents):
    """The output's tangent of ``conv(*primals)`` in a forward-mode level (``torch.autograd.forward_ad``), operands
    whose tangent is None left plain."""
    import torch.autograd.forward_ad as fwAD

    with fwAD.dual_level():
        duals = [p if t is None else fwAD.make_dual(p, t) for p, t in zip(primals, tangents)]
        return fwAD.unpack_dual(conv(*duals)).tangent


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # (torch.func.jvp's decompositions, torch 2.13)
@pytest.mark.parametrize("ndim,activation,flip,kw", [
    (1, "relu", False, dict(stride=2, padding=1)),
    (2, "gelu", False, dict(padding=1, dilation=2)),
    (2, "silu", True, dict(stride=(2, 1), groups=2)),
    (3, None, False, dict(padding=1)),
])
def test_forward_mode_derivatives_match_torchs(ndim, activation, flip, kw):
    """Forward-mode AD (``torch.autograd.forward_ad``, ``torch.func.jvp``): the output's tangent is the convolution's
    derivative along the operands' tangents, as torch's: each operand's alone and all together, through the fused
    activation. (Dual tensors need no gradient: such a call had skipped the autograd function, and its tangent was
    lost.)"""
    torch.manual_seed(ndim)
    x = torch.randn(2, 4, *(7, 6, 5)[:ndim], dtype=torch.float64)
    w = torch.randn(6, 4 // kw.get("groups", 1), *(3,) * ndim, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    ours = lambda x, w, b: OURS[ndim](x, w, b, activation=activation, flip=flip, **kw)  # noqa: E731
    theirs = lambda x, w, b: ACT[activation](  # noqa: E731
        TORCH[ndim](x, w.flip(list(range(2, 2 + ndim))) if flip else w, b, **kw))
    tangents = [torch.randn_like(t) for t in (x, w, b)]
    for which in ([0], [1], [2], [0, 1, 2]):
        picked = [t if i in which else None for i, t in enumerate(tangents)]
        got = _tangent_of(ours, (x, w, b), picked)
        assert got is not None, f"no tangent along {which}"
        assert_close(got, _tangent_of(theirs, (x, w, b), picked), torch.float64)
    got = torch.func.jvp(ours, (x, w, b), tuple(tangents))
    want = torch.func.jvp(theirs, (x, w, b), tuple(tangents))
    assert_close(got[0], want[0], torch.float64)
    assert_close(got[1], want[1], torch.float64)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # (torch.func.jvp's decompositions, torch 2.13)
def test_forward_mode_through_transposed_routed_and_composed_calls():
    """Tangents through a transposed convolution, a routed ``torch.nn.Conv2d`` (``tritonconv.enabled()``) and
    (2+1)D; forward over reverse (a Hessian-vector product, ``jvp`` of ``grad``: the weight gradient's tangent) and
    reverse over forward (a loss of a tangent, as consistency models train) as torch's; fp8 refuses tangents by
    name."""
    from torch.func import grad, jvp

    torch.manual_seed(0)
    x, dx = torch.randn(2, 3, 5, 6, dtype=torch.float64), torch.randn(2, 3, 5, 6, dtype=torch.float64)
    wt = torch.randn(3, 4, 3, 3, dtype=torch.float64)
    got = _tangent_of(lambda a, c: tritonconv.conv_transpose2d(a, c, stride=2, output_padding=1, activation="relu"),
                      (x, wt), (dx, torch.ones_like(wt)))
    want = _tangent_of(lambda a, c: F.relu(F.conv_transpose2d(a, c, stride=2, output_padding=1)),
                       (x, wt), (dx, torch.ones_like(wt)))
    assert_close(got, want, torch.float64)

    conv = torch.nn.Conv2d(3, 4, 3, padding=1).double()
    with tritonconv.enabled() as counts:
        got = _tangent_of(conv, (x,), (dx,))
    assert counts.routed["conv2d"] == 1
    assert_close(got, _tangent_of(conv, (x,), (dx,)), torch.float64)

    x3, dx3 = torch.randn(1, 3, 4, 5, 5, dtype=torch.float64), torch.randn(1, 3, 4, 5, 5, dtype=torch.float64)
    ws, wd = torch.randn(4, 3, 1, 3, 3, dtype=torch.float64), torch.randn(2, 4, 3, 1, 1, dtype=torch.float64)
    got = _tangent_of(lambda a: tritonconv.conv2plus1d(a, ws, wd, padding=1, mid_activation="relu"), (x3,), (dx3,))
    want = _tangent_of(lambda a: F.conv3d(F.relu(F.conv3d(a, ws, padding=(0, 1, 1))), wd, padding=(1, 0, 0)),
                       (x3,), (dx3,))
    assert_close(got, want, torch.float64)
    with pytest.raises(ValueError, match="no tangents"):
        _tangent_of(lambda a: tritonconv.conv2plus1d(a, ws, wd, padding=1, fused=True), (x3,), (dx3,))

    w, dw = conv.weight.detach(), torch.randn_like(conv.weight)
    hvp = jvp(grad(lambda c: tritonconv.conv2d(x, c, padding=1).pow(2).sum()), (w,), (dw,))[1]
    assert_close(hvp, jvp(grad(lambda c: F.conv2d(x, c, padding=1).pow(2).sum()), (w,), (dw,))[1], torch.float64)
    wq = w.clone().requires_grad_()

    def loss_of_tangent(fn):
        return torch.autograd.grad(jvp(lambda a: fn(a, wq), (x,), (dx,))[1].pow(2).sum(), wq)[0]
    assert_close(loss_of_tangent(lambda a, c: tritonconv.conv2d(a, c, padding=1, activation="silu")),
                 loss_of_tangent(lambda a, c: F.silu(F.conv2d(a, c, padding=1))), torch.float64)

    xq, xs = tritonconv.fp8.quantize(x.float())
    wq8, ws8 = tritonconv.fp8.quantize(w.float(), per_channel_dim=0)
    with pytest.raises(RuntimeError, match="no derivative in either mode"):
        _tangent_of(lambda s: tritonconv.fp8.conv2d(xq, wq8, input_scale=s, weight_scale=ws8), (xs,), (torch.ones(()),))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # (torch.func.jvp's decompositions, torch 2.13)
def test_what_forward_mode_cannot_give_right_is_refused_by_name():
    """Torch would give these a zero tangent without a word: a traced call's (``torch.func.linearize`` traces the jvp
    with ``make_fx``: the custom op has no forward-mode formula) and a tangent's tangent (a jvp of a jvp: torch
    differentiates an autograd function's ``jvp`` at no outer forward level; so a ``jacfwd`` of a ``jacfwd``). Each is
    refused by name; a jvp of a grad and a grad of a jvp run (above), and so do ``jacfwd`` and ``hessian``
    (``test_per_sample_gradients_jacobians_and_hessians_match_torchs``)."""
    from torch.func import jacfwd, jvp, linearize

    x, w = torch.randn(1, 2, 5, 5, dtype=torch.float64), torch.randn(3, 2, 3, 3, dtype=torch.float64)
    f = lambda a: tritonconv.conv2d(a, w, padding=1, activation="gelu")  # noqa: E731
    with pytest.raises(NotImplementedError, match="conv2d: forward-mode derivatives of a traced call"):
        linearize(f, x)
    with pytest.raises(NotImplementedError, match="conv2d: nested forward mode"):
        jvp(lambda a: jvp(f, (a,), (torch.ones_like(a),))[1], (x,), (torch.ones_like(x),))
    with pytest.raises(NotImplementedError, match="conv_transpose2d: nested forward mode"):
        jvp(lambda a: jvp(lambda b: tritonconv.conv_transpose2d(b, w.transpose(0, 1)), (a,), (a,))[1], (x,), (x,))
    with pytest.raises(NotImplementedError, match="conv2d: nested forward mode"):
        jacfwd(jacfwd(lambda a: f(a).sum()))(x[..., :3, :3])
