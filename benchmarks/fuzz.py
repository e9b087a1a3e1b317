"""``python -m benchmarks.fuzz``: seeded random convolutions, forward and backward, against PyTorch.

    python -m benchmarks.fuzz --device cuda --seed 0 --budget-s 30    # a GPU: compiled kernels vs cuDNN
    python -m benchmarks.fuzz --device cpu --count 6                  # the interpreter, a few cases

Each case draws a configuration from ``random.Random(seed + i)``: 1-D, 2-D or 3-D; convolution or transposed
convolution; batch, channels, groups (depthwise included; a share of cases one group of the suite's 32-128 channels,
half of those with unit stride and 'same' padding in 16 bits, as its layers; a share narrow groups, :data:`NARROW`),
kernel, stride (also larger than the kernel; a share of cases patch embeddings, :data:`PATCH`, long NC(D)HW rows strided
2, :data:`LONG`, or NC(D)HW planes read as rows, :data:`PLANES`), padding (``'same'`` too), dilation, output padding,
bias, contiguous or channels-last operands, a weight and bias sliced out of larger tensors (every other element, the
others NaN), an output gradient expanded, sliced or with its axes reversed in memory, negative views (:data:`NEGATED`),
fp32, fp16 or bf16 (a share of forwards in fp8, :data:`FP8`), a share under ``torch.func.vmap`` (:data:`VMAP`), a share
asked for an output layout (:data:`FORMATS`), a share in forward mode too (:data:`TANGENTS`), a share with a fused
activation or a flipped kernel (:data:`EPILOGUES`); and the configs: the ones a call would take (cached or heuristic),
or for each launch one drawn from every candidate the tuner may time (``tuning.candidates``: descriptor tiles and
relayout copies where the device has TMA, split and folded reductions...), since a cached config also serves the other
shapes of its bucket untimed.
tritonconv's output and its input, weight and bias gradients (through autograd, as training runs them) are compared with
float64 PyTorch on the same operands, and so are PyTorch's own in the case's dtype (cuDNN on a GPU), by relative L2
error; a case fails when tritonconv's error on a tensor passes the dtype's tolerance and twice PyTorch's own on it (what
the operands' rounding to the dtype costs an ill-conditioned result: a one-channel bias gradient in fp16 summing to near
zero erred 0.024 in PyTorch); a bias gradient, a sum of the output's gradients, also passes within the tolerance times
its condition, the L2 norm of its terms over its size (float64's bias gradient of the output gradient's squares, under
the activation's slope), since two errors that are rounding noise can stand more than twice apart (seed 91153: 0.017
and 0.008, of 3,696 terms whose L2 norm is 61 times their sum); an output's tangent, in forward mode, is compared alike.
One JSON line per case, then a summary; the exit status is 1 if any case failed (an error of the harness's own,
``harness`` in its row, fails its case and the run goes on). A case whose drawn config is out of the GPU's resources (as
tuning skips it) is not run (``ok`` null). A failing case is reproduced by its seed alone."""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from triton.runtime.errors import OutOfResources

import tritonconv
from tritonconv import dispatch, geometry, tuning

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
CHANNELS = (1, 2, 3, 4, 5, 6, 8, 16)  # per group; 8 and 16 make 16-byte rows in 16 bits (descriptor tiles)
WIDE = 0.15
"""The share of cases of one group of :data:`WIDE_CHANNELS`: tiles of 64 and 128 output channels, which the
suite's layers take (and with them the patches only such tiles take: planes read as rows, one-row patches)."""
WIDE_CHANNELS = (32, 64, 128)
TOL = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 3e-2,  # rel. L2 vs float64 (as benchmarks.run)
       torch.float8_e4m3fn: 1e-4}  # fp8: exact products summed in fp32, against the dequantised operands in float64
PATCH = 0.05
"""The share of patch embeddings: kernel = stride (or half as long again), no padding or dilation, one group of few
channels (a ViT's 16 x 16 / 16 on RGB), whose positions pack into more than four chunks of channels
(``geometry.PACK_ISSUED``); a transposed one is a decoder's un-patchify."""
NARROW = 0.1
"""The share of layers of narrow groups (ResNeXt's 4 channels a group, RegNet's 8): 4 to 16 groups of 2 to 8 input and
output channels, which run with groups merged on a block-diagonal weight (``geometry.group_merge``)."""
LONG = 0.05
"""The share of forwards strided 2 along NC(D)HW rows longer than a tile (Whisper's second layer: 3000 columns): rows of
320 to 960 columns in one group of 32 to 128 input channels, which read their rows aligned and dealt into phases in
segments (``geometry.DEALT_SEGMENT_STRIDES``) where a width tap takes two or more steps of the main loop."""
PLANES = 0.05
"""The share of NC(D)HW 2-D and 3-D forwards whose rows are no 16-byte multiple in 16 bits but whose planes are: 4 or 8
rows of 6 to 28 columns, 'same' padding, unit strides, one group of 8 to 64 input channels, which read each plane as one
row on descriptor tiles where the device has TMA (``tuning.planes_as_rows``), their input gradients too."""
VMAP = 0.05
"""The share of (non-fp8) cases run under ``torch.func.vmap`` (and differentiated through it): over two weights and
biases (an ensemble of two: one grouped convolution, twice the groups), or over two inputs (the vmapped axis joins the
batch); against PyTorch's convolution under the same ``vmap``."""
FORMATS = 0.1
"""The share of (non-fp8, non-vmap) convolutions asked for an output layout (``memory_format=``): the input's
(``torch.preserve_format``), contiguous, or the rank's channels-last (2-D and 3-D): an output laid out unlike the
input is another store of the kernels'. The output's layout is checked too (a wrong one fails the case)."""
EPILOGUES = 0.1
"""The share of (non-fp8) cases with a fused epilogue: ``activation=`` one of :data:`ACTIVATIONS` (the
kernels' epilogue, its slope in the backward and in the tangent) and, for convolutions, ``flip=True`` (a true convolution, the
kernel reversed along every spatial axis) on its own or beside one; against torch's activation of its convolution
with the weight flipped."""
ACTIVATIONS = {None: lambda y: y, "relu": F.relu, "relu6": F.relu6, "gelu": F.gelu,
               "gelu_tanh": lambda y: F.gelu(y, approximate="tanh"), "silu": F.silu, "mish": F.mish,
               "hardswish": F.hardswish, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "hardsigmoid": F.hardsigmoid,
               "elu": F.elu, "selu": F.selu, "leaky_relu(0.2)": lambda y: F.leaky_relu(y, 0.2),
               "leaky_relu(-0.5)": lambda y: F.leaky_relu(y, -0.5)}
"""The fused activations the fuzz draws, each with torch's function: a leaky ReLU's slope read off the output (0.2) and
off the recomputed input (-0.5)."""
STEPPED = ("relu", "relu6", "hardswish", "hardsigmoid", "selu", "leaky_relu(0.2)", "leaky_relu(-0.5)")
"""The activations whose slope steps (ReLU's, SELU's and a leaky ReLU's at 0, ReLU6's at 0 and 6, hardswish's and
hardsigmoid's at -3 and 3)."""
TANGENTS = 0.05
"""The share of (non-fp8, non-vmap) cases whose operands are dual tensors (``torch.autograd.forward_ad``): tangents on
the input, on the weight and bias, or on all three; the output's tangent (each autograd function's ``jvp``) is
compared as the output is, and the backward runs through the same call."""
NEGATED = 0.05
"""The share of (non-fp8) cases whose input, weight and bias, or (half of them) whose output gradient, are negative
views: tensors whose storage holds the opposite of their values (torch's negative bit, as ``z.conj().imag`` of a complex
signal carries it). A kernel that reads the storage gives the opposite of torch's result."""
FP8 = 0.1
"""The share of forward, non-depthwise cases run in fp8 (``tritonconv.fp8``, e4m3): ``fp8.convNd`` on operands
quantised in the case's layout, or a converted ``fp8.Conv`` module (its input quantised channels innermost, its output
in the input's layout) with a static input scale; against the dequantised operands' convolution."""


def draw(seed: int) -> dict:
    """One random configuration, small enough for the interpreter; every output size is positive."""
    r = random.Random(seed)
    ndim = r.choice((1, 2, 3))
    transposed = r.random() < 0.3
    groups = r.choice((1, 1, 2, 3))
    depthwise = r.random() < 0.15
    cin_g, cout_g = r.choice(CHANNELS), r.choice(CHANNELS)
    if depthwise:
        groups, cin_g = r.randint(2, 8), 1
    wide = random.Random(f"wide:{seed}")  # (a stream of its own: the other draws stay as they were)
    is_wide = wide.random() < WIDE
    if is_wide:  # one group of the suite's channel counts: the tiles and patches its layers take
        groups, cin_g, cout_g = 1, wide.choice(WIDE_CHANNELS), wide.choice(WIDE_CHANNELS[1:])
    kmax = (7, 5, 3)[ndim - 1]
    k = [r.randint(1, kmax) for _ in range(ndim)]
    s = [r.choice((1, 1, 2, 3, 5)) for _ in range(ndim)]
    d = [r.choice((1, 1, 2)) for _ in range(ndim)]
    span = [(ki - 1) * di + 1 for ki, di in zip(k, d)]
    if transposed:
        p = [r.randint(0, sp - 1) for sp in span]
        op = [r.randint(0, max(si, di) - 1) for si, di in zip(s, d)]
    elif all(si == 1 for si in s) and r.random() < 0.2:
        p, op = "same", None
    else:
        p, op = [r.randint(0, sp // 2 + 1) for sp in span], None
    size_max = (40, 13, 7)[ndim - 1]
    sizes = [r.randint(max(1, sp - 2 * (0 if transposed or p == "same" else p[i])), max(sp, size_max))
             for i, sp in enumerate(span)]
    if random.Random(~seed).random() < 0.25:  # (a stream of its own: the other draws stay as they were)
        sizes[-1] = -(-sizes[-1] // 8) * 8  # 16-byte rows in 16 bits: NC(D)HW descriptor boxes, rows read whole
    v = random.Random(f"views:{seed}")  # (likewise)
    views = v.random() < 0.25 and v.choice(("sliced", "expanded"))
    gv = random.Random(f"grad:{seed}")  # the output gradient's strides (likewise)
    grad_view = gv.random() < 0.3 and gv.choice(("expanded", "sliced", "reversed"))
    case = {"seed": seed, "ndim": ndim, "transposed": transposed, "N": r.randint(1, 3), "C": cin_g * groups,
            "OC": cout_g * groups, "groups": groups, "k": k, "stride": s, "padding": p, "dilation": d,
            "output_padding": op, "sizes": sizes, "bias": r.random() < 0.5,
            "dtype": str(r.choice(DTYPES)).removeprefix("torch."),
            "channels_last": ndim > 1 and r.random() < 0.5, "configs": r.choice(("chosen", "drawn")), "views": views,
            "grad_view": grad_view}
    if is_wide and wide.random() < 0.5:  # half of them shaped as the suite's layers: unit stride, 'same', 16 bits
        k = [wide.choice((1, 3, 3, 5)) for _ in range(ndim)]
        case.update(transposed=False, k=k, stride=[1] * ndim, padding="same", dilation=[1] * ndim,
                    output_padding=None, dtype=wide.choice(("float16", "bfloat16")),
                    sizes=[wide.randint(max(ki - 1, 2), size_max) for ki in k])
    ng = random.Random(f"narrow:{seed}")  # (likewise)
    if ng.random() < NARROW and not is_wide:
        groups, cin_g, cout_g = ng.choice((4, 8, 16)), ng.choice((2, 4, 8)), ng.choice((2, 4, 8))
        case.update(groups=groups, C=cin_g * groups, OC=cout_g * groups)
    pe = random.Random(f"patch:{seed}")  # (likewise)
    patch = pe.random() < PATCH
    if patch:  # the kernel its stride, or half as long again (a framing: 2 packed taps)
        s = [pe.choice(((8, 16, 32), (4, 5, 8), (2, 4))[ndim - 1]) for _ in range(ndim)]
        k = [si + pe.choice((0, 0, si // 2)) for si in s]
        unpatch = case["transposed"]
        sizes = ([pe.randint(1, 3) for _ in k] if unpatch  # an un-patchify's input: 1-3 patches per axis
                 else [ki * pe.randint(1, 3) + pe.randint(0, ki - 1) for ki in k])  # the last ki - 1 positions unread
        case.update(groups=1, C=pe.choice(CHANNELS), OC=pe.choice(CHANNELS), k=k, stride=s, padding=[0] * ndim,
                    dilation=[1] * ndim, output_padding=[0] * ndim if unpatch else None, sizes=sizes)
    lr = random.Random(f"long:{seed}")  # (likewise)
    if lr.random() < LONG and not transposed and not patch:  # a row of 320-960 columns strided 2, NC(D)HW
        k, d = case["k"], case["dilation"]
        span = (k[-1] - 1) * d[-1] + 1
        pads = [0] * ndim if case["padding"] == "same" else case["padding"]
        lead = [max(n, (ki - 1) * di + 1 - 2 * pi)  # an axis 'same' padded before keeps a positive size unpadded
                for n, ki, di, pi in zip(case["sizes"][:-1], k, d, pads)]
        case.update(groups=1, C=lr.choice((32, 64, 128)), OC=lr.choice((16, 32, 64)), channels_last=False,
                    stride=case["stride"][:-1] + [2], padding=pads, sizes=lead + [8 * lr.randint(40, 120)])
        case["padding"][-1] = lr.randint(0, span // 2 + 1)
    pl = random.Random(f"planes:{seed}")  # (likewise)
    if pl.random() < PLANES and ndim > 1 and not patch:  # planes of 16-byte multiples, rows not (in 16 bits)
        case.update(transposed=False, channels_last=False, groups=1, C=pl.choice((8, 16, 32, 64)),
                    OC=pl.choice((16, 32, 64)), stride=[1] * ndim, padding="same", output_padding=None,
                    sizes=case["sizes"][:-2] + [pl.choice((4, 8)), pl.choice((6, 10, 12, 14, 20, 28))])
    q = random.Random(f"fp8:{seed}")  # (likewise)
    one_each = case["groups"] > 1 and case["C"] == case["groups"]  # one channel a group: depthwise, which fp8 refuses
    if q.random() < FP8 and not one_each and not transposed:  # tritonconv.fp8's forward, functional or a module
        case.update(dtype="float8_e4m3fn", views=False, fp8=q.choice(("functional", "module")))
    vm = random.Random(f"vmap:{seed}")  # (likewise)
    if vm.random() < VMAP and not case.get("fp8"):
        case["vmap"] = vm.choice(("weights", "inputs"))
    mf = random.Random(f"formats:{seed}")  # (likewise)
    if mf.random() < FORMATS and not (case.get("fp8") or case.get("vmap") or case["transposed"]):
        case["memory_format"] = mf.choice(("preserve", "contiguous") + (("channels_last",) if ndim > 1 else ()))
    ep = random.Random(f"epilogue:{seed}")  # (likewise)
    if ep.random() < EPILOGUES and not case.get("fp8"):
        activation = ep.choice(tuple(ACTIVATIONS))
        flip = not case["transposed"] and (activation is None or ep.random() < 0.5)
        case.update(activation=activation or ("relu" if not flip else None), flip=flip)
    tg = random.Random(f"tangents:{seed}")  # (likewise)
    if tg.random() < TANGENTS and not (case.get("fp8") or case.get("vmap")):
        case["tangents"] = tg.choice(("inputs", "weights", "all"))
    nv = random.Random(f"negated:{seed}")  # (likewise)
    if nv.random() < NEGATED and not case.get("fp8"):
        case["views" if nv.random() < 0.5 and not case["views"] else "grad_view"] = "negated"
    return case


def with_memory_format(fn, name: str):
    """``fn`` (a ``tritonconv.convNd``) asked for the output layout ``name`` (:data:`FORMATS`); raises if the output
    is laid out otherwise."""
    fmt = {"preserve": torch.preserve_format, "contiguous": torch.contiguous_format}.get(name)

    def call(x, *args):
        asked = fmt or geometry.CHANNELS_LAST[x.dim()]
        want = geometry.memory_format_of(x) if asked is torch.preserve_format else asked
        y = fn(x, *args, memory_format=asked)
        if not y.is_contiguous(memory_format=want):
            raise AssertionError(f"memory_format={name}: the output's strides {y.stride()} are not {want}")
        return y
    return call


def under_vmap(fn, over: str):
    """``fn(x, w, b, *args)`` run under ``torch.func.vmap`` (:data:`VMAP`): over ``(w, w / 2)`` and ``(b, 2 b)``
    (``over`` "weights"), or over ``(x, x / 2)`` ("inputs"; halves, not negations: an output gradient equal along the
    new axis would cancel the gradients); the output gains a leading axis of 2."""
    from torch.func import vmap

    def batched(x, w, b, *args):
        if over == "inputs":
            return vmap(lambda xi: fn(xi, w, b, *args))(torch.stack((x, x / 2)))
        if b is None:
            return vmap(lambda wi: fn(x, wi, None, *args))(torch.stack((w, w / 2)))
        return vmap(lambda wi, bi: fn(x, wi, bi, *args))(torch.stack((w, w / 2)), torch.stack((b, 2 * b)))
    return batched


def with_epilogue(ours, theirs, activation: str | None, flip: bool):
    """``ours`` (a ``tritonconv.convNd``) asked for the fused ``activation`` and ``flip`` (:data:`EPILOGUES`), and
    ``theirs`` (torch's) followed by the activation, on the weight reversed along its spatial axes where ``flip``."""
    act = ACTIVATIONS[activation]
    extra = {"activation": activation, **({"flip": True} if flip else {})}

    def fused(x, w, b, *args, **kwargs):
        return ours(x, w, b, *args, **extra, **kwargs)

    def composed(x, w, b, *args):
        return act(theirs(x, w.flip(tuple(range(2, w.dim()))) if flip else w, b, *args))
    return fused, composed


def with_tangents(fn, on: str, seed: int):
    """``fn(x, w, b, *args)`` on dual tensors (:data:`TANGENTS`): tangents drawn from ``seed`` on the input (``on``
    "inputs"), on the weight and bias ("weights") or on all; returns the output (still differentiable in reverse mode)
    and its tangent."""
    import torch.autograd.forward_ad as fwAD

    def call(x, w, b, *args):
        gen = torch.Generator().manual_seed(seed)  # every call draws the same tangents, whatever ``on`` is
        tangents = [None if t is None else  # an expanded operand's expanded alike: a tangent takes its primal's layout
                    torch.randn([1 if st == 0 else n for n, st in zip(t.shape, t.stride())], generator=gen)
                    .to(t.device, t.dtype).expand(t.shape) for t in (x, w, b)]
        carried = {"inputs": (True, False, False), "weights": (False, True, True), "all": (True, True, True)}[on]
        with fwAD.dual_level():
            duals = [fwAD.make_dual(t, dt) if t is not None and c else t for t, dt, c in zip((x, w, b), tangents, carried)]
            primal, tangent = fwAD.unpack_dual(fn(*duals, *args))
        return primal, tangent
    return call


@contextlib.contextmanager
def drawn_configs(seed: int, tma: bool, picked: list):
    """While active, every launch's config is drawn (``random.Random(seed)``) from the tuner's candidates for its
    problem, and appended to ``picked``; plans built meanwhile are dropped after."""
    r, choose = random.Random(seed), tuning.choose

    def draw_one(problem, *_):
        cfg = r.choice(tuning.candidates(problem, tma=tma))
        picked.append({"kind": problem.kind, "layout": problem.layout, **vars(cfg)})
        return cfg

    dispatch.clear_plans()
    tuning.choose = draw_one
    try:
        yield
    finally:
        tuning.choose = choose
        dispatch.clear_plans()


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def check(case: dict, device: torch.device) -> dict:
    """tritonconv's and PyTorch's errors (output, input, weight and bias gradients) against float64."""
    dtype = getattr(torch, case["dtype"])
    g = torch.Generator().manual_seed(case["seed"])
    c_in, c_out, groups = case["C"], case["OC"], case["groups"]
    w_shape = (c_in, c_out // groups, *case["k"]) if case["transposed"] else (c_out, c_in // groups, *case["k"])
    x = torch.randn(case["N"], c_in, *case["sizes"], generator=g)
    w = torch.randn(w_shape, generator=g) / (w_shape[1] * max(1, len(case["k"]))) ** 0.5
    b = torch.randn(c_out, generator=g) if case["bias"] else None
    if case.get("activation") in STEPPED:  # the reference on the operands as the case rounds them, or rounding moves
        x, w, b = (None if t is None else t.to(dtype).float() for t in (x, w, b))  # a value across a step at random
    name = f"conv{'_transpose' if case['transposed'] else ''}{case['ndim']}d"
    if case["transposed"]:
        args = (case["stride"], case["padding"], case["output_padding"], groups, case["dilation"])
    else:
        args = (case["stride"], case["padding"], case["dilation"], groups)
    layout = "channels_last" if case["channels_last"] else "contiguous"

    views = case.get("views")
    views = "sliced" if views is True else views  # (rows written before expanded views were drawn)
    if views == "expanded":  # the weight's values equal along its input channels, the bias's all equal
        w, b = w[:, :1].expand(w_shape), None if b is None else b[:1].expand(c_out)

    def base(t: torch.Tensor) -> torch.Tensor:  # the tensor an operand is a view of (made a leaf by the caller)
        if views == "negated":  # the opposite values, read through a negative view
            return -t
        if views == "sliced":  # t at the even positions of its last axis, NaN between
            return torch.stack((t, torch.full_like(t, float("nan"))), -1).flatten(-2)
        return (t[:, :1] if t.dim() > 1 else t[:1]).clone() if views == "expanded" else t

    def view(t: torch.Tensor, shape: tuple) -> torch.Tensor:  # the operand of that shape, a view of its base
        if views == "negated":
            return torch._neg_view(t)
        return t[..., ::2] if views == "sliced" else t.expand(shape) if views == "expanded" else t

    def grad(t: torch.Tensor) -> torch.Tensor:  # a base's gradient, where it is compared
        return t.grad[..., ::2] if views == "sliced" else -t.grad if views == "negated" else t.grad

    def grad_output(shape: tuple, dt: torch.dtype) -> torch.Tensor:
        """The output's gradient: dense, or (``grad_view``) equal along the batch and the last axis (stride 0, as
        ``y.sum()``'s), every other element of a wider tensor, dense with its axes in reverse order, or a negative
        view."""
        gen, kind = torch.Generator().manual_seed(case["seed"] + 1), case.get("grad_view")
        if kind == "expanded":
            return torch.randn(1, *shape[1:-1], 1, generator=gen).to(device, dt).expand(shape)
        if kind == "sliced":
            return torch.randn(*shape[:-1], 2 * shape[-1], generator=gen).to(device, dt)[..., ::2]
        if kind == "negated":
            return torch._neg_view(-torch.randn(shape, generator=gen).to(device, dt))
        if kind == "reversed":
            axes = tuple(reversed(range(len(shape))))
            return torch.randn(shape[::-1], generator=gen).to(device, dt).permute(axes)
        return torch.randn(shape, generator=gen).to(device, dt)

    def run(fn, dt, squares=False):
        # fresh leaves each run (copy=True: a same-device, same-dtype .to() would return the tensor itself, and the
        # next implementation's gradients would add to this one's); ``squares``: the output gradient's squares flow
        # back (a bias gradient then sums its terms' squares, exactly where the activation's slope is 0 or 1)
        negated = views == "negated"  # (the input a view too; sliced and expanded views are the weight's and bias's)
        xs = geometry.to_layout((base(x) if negated else x).to(device, dt, copy=True), layout).requires_grad_()
        wl = base(w).to(device, dt, copy=True)
        wl = (geometry.to_layout(wl, layout) if case["ndim"] > 1 else wl).requires_grad_()
        bl = None if b is None else base(b).to(device, dt, copy=True).requires_grad_()
        y = fn(view(xs, x.shape) if negated else xs, view(wl, w.shape), None if bl is None else view(bl, b.shape), *args)
        y, *tangent = y if isinstance(y, tuple) else (y,)  # (with_tangents: the output and its tangent)
        gy = grad_output(y.shape, dt)
        y.backward(gy * gy if squares else gy)
        return [y, *tangent, grad(xs) if negated else xs.grad, grad(wl)] + ([grad(bl)] if bl is not None else [])

    def torch_run(fn, dt):
        """``run`` of torch's own convolution in the case's dtype; where no output reads the input (all padding), on
        the CPU without oneDNN, whose bf16 3-D convolution crashed the process there (torch 2.11 and 2.13)."""
        padding_only = device.type == "cpu" and not getattr(F, name)(
            torch.ones(x.shape, dtype=torch.float64), torch.ones(w.shape, dtype=torch.float64), None, *args).any()
        with torch.backends.mkldnn.flags(enabled=False) if padding_only else contextlib.nullcontext():
            return run(fn, dt)

    if case.get("fp8"):
        return check_fp8(case, device, x, w, b, name, args, layout)
    ours, theirs = getattr(tritonconv, name), getattr(F, name)
    if case.get("activation") or case.get("flip"):
        ours, theirs = with_epilogue(ours, theirs, case.get("activation"), case.get("flip", False))
    if case.get("vmap"):
        ours, theirs = under_vmap(ours, case["vmap"]), under_vmap(theirs, case["vmap"])
    if case.get("memory_format"):
        ours = with_memory_format(ours, case["memory_format"])
    names = ("out", "grad_input", "grad_weight", "grad_bias")
    if case.get("tangents"):
        ours, theirs = (with_tangents(fn, case["tangents"], case["seed"] + 3) for fn in (ours, theirs))
        names = ("out", "tangent", *names[1:])
    ref = run(theirs, torch.float64)
    floors = {}
    if b is not None:  # the bias gradient's condition: the L2 norm of its terms over its own
        squares = run(theirs, torch.float64, squares=True)[-1].abs()
        floors["grad_bias"] = TOL[dtype] * (squares.sum().sqrt() / ref[-1].norm().clamp_min(1e-300)).item()
    return compare(case, device, (("tritonconv", lambda: run(ours, dtype)), ("torch", lambda: torch_run(theirs, dtype))),
                   ref, TOL[dtype], names, floors)


def compare(case: dict, device: torch.device, impls: tuple, ref: list, tol: float,
            names: tuple = ("out", "grad_input", "grad_weight", "grad_bias"), floors: dict | None = None) -> dict:
    """The case's row: each implementation's (``(name, fn)``, ``fn`` returning its tensors in ``ref``'s order, which
    ``names`` names: output, then input, weight and bias gradients) relative errors against ``ref``; tritonconv's
    under configs drawn from the tuner's candidates where the case asks (a drawn config the GPU cannot launch, as
    tuning skips it, leaves the case not run, ``ok`` null); ``ok`` where tritonconv raised nothing and each error is
    within ``tol``, twice PyTorch's, or its floor in ``floors`` (a relative error its conditioning allows; recorded in
    the row where above ``tol``, and the tensors it alone passed in ``by_floor``)."""
    row = {**case}
    floors = {k: f for k, f in (floors or {}).items() if f > tol}
    if floors:
        row["floors"] = floors
    tma = device.type == "cpu" or torch.cuda.get_device_capability(device)[0] >= 9  # the interpreter emulates TMA
    for impl, fn in impls:
        picked: list[dict] = []
        drawing = impl == "tritonconv" and case.get("configs") == "drawn"
        try:
            with drawn_configs(case["seed"] + 2, tma, picked) if drawing else contextlib.nullcontext():
                outs = fn()
        except Exception as exc:  # a crash is a result of the case
            if drawing and isinstance(exc, OutOfResources):
                row[impl], row["picked"], row["ok"] = {"skipped": f"{exc}"[:300]}, picked, None
                return row
            row[impl] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        errs = [rel_err(o, r) for o, r in zip(outs, ref)]
        row[impl] = dict(zip(names, errs))
        if picked:
            row["picked"] = picked
    errs, theirs = row["tritonconv"], row.get("torch", {})
    row["ok"] = "error" not in errs and all(e <= max(tol, 2 * theirs.get(k, 0.0), floors.get(k, 0.0))
                                            for k, e in errs.items())
    by_floor = [k for k, e in errs.items() if "error" not in errs and max(tol, 2 * theirs.get(k, 0.0)) < e]
    if row["ok"] and by_floor:  # what its floor alone passed
        row["by_floor"] = by_floor
    return row


def check_fp8(case: dict, device: torch.device, x, w, b, name: str, args: tuple, layout: str) -> dict:
    """An fp8 case (:data:`FP8`): tritonconv's output (fp32) and PyTorch's fp32 convolution of the dequantised operands
    against float64's, as :func:`check` compares."""
    from tritonconv import fp8

    xq, xs = fp8.quantize(geometry.to_layout(x.to(device), layout))
    wq, ws = fp8.quantize(geometry.to_layout(w.to(device), layout) if case["ndim"] > 1 else w.to(device), 0)
    bias = None if b is None else b.to(device)
    xd, wd = fp8.dequantize(xq, xs), fp8.dequantize(wq, ws, 0)
    ref = getattr(F, name)(xd.double(), wd.double(), None if bias is None else bias.double(), *args)

    def ours() -> torch.Tensor:
        if case["fp8"] == "functional":
            return getattr(fp8, name)(xq, wq, bias, *args, input_scale=xs, weight_scale=ws, out_dtype=torch.float32)
        conv = getattr(torch.nn, f"Conv{case['ndim']}d")(case["C"], case["OC"], case["k"], *args[:1], padding=args[1],
                                                         dilation=args[2], groups=args[3], bias=bias is not None)
        with torch.no_grad():
            conv.weight.copy_(wd)  # quantised again by the module: the same values, per-channel scales alike
            if bias is not None:
                conv.bias.copy_(bias)
        module = fp8.Conv(conv.weight.to(device), None if bias is None else conv.bias.to(device), conv.stride,
                          conv.padding, conv.dilation, conv.groups, input_scale=xs.item(), out_dtype=torch.float32)
        return module(xd)  # rounds to xq again (xs is its amax scale)

    def output(fn) -> list[torch.Tensor]:  # inference: the output alone, no graph
        with torch.no_grad():
            return [fn()]

    return compare(case, device, (("tritonconv", lambda: output(ours)),
                                  ("torch", lambda: output(lambda: getattr(F, name)(xd, wd, bias, *args)))),
                   [ref], TOL[torch.float8_e4m3fn])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0, help="case i draws from seed + i")
    p.add_argument("--count", type=int, default=1000, help="at most this many cases")
    p.add_argument("--budget-s", type=float, default=None, help="start no new case after this many seconds")
    p.add_argument("--out", type=Path, help="write the cases' JSON lines here (default: print them)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":  # float64 and float32 references without TF32
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    start, done, failed, skipped = time.monotonic(), 0, [], 0
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(args.out.open("w")) if args.out else sys.stdout
        for i in range(args.count):
            if args.budget_s is not None and time.monotonic() - start > args.budget_s:
                break
            case = draw(args.seed + i)
            try:
                row = check(case, device)
            except Exception as exc:  # the harness's own fault (a reference that raised): a failed case, not the end
                row = {**case, "harness": f"{type(exc).__name__}: {exc}"[:300], "ok": False}
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            done += 1
            if row["ok"] is False:
                failed.append(row["seed"])
            skipped += row["ok"] is None
    print(f"fuzz on {device}: {done} cases, {len(failed)} wrong" + (f" (seeds {failed})" if failed else "")
          + (f", {skipped} not run (a drawn config out of this GPU's resources)" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
