# %% [markdown]
# # 07 · Transposed convolution
#
# The upsampling half of a convolutional network (decoders, U-Nets, generators): the
# transpose of the convolution as a linear map. Checked here against
# `tritonconv.conv_transpose1d/2d` (CPU tensors: Triton's interpreter; CUDA tensors:
# compiled): the output-size formula, the adjoint identity that defines it, and the stride
# phases the kernel runs by.

# %%
import itertools

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import tritonconv
from tritonconv import shapes
from tritonconv.spec import use_device

_ = torch.manual_seed(0)
use_device()  # CPU tensors; `python -m tritonconv.spec --device cuda`: CUDA ones (same data, same outputs)
print("CPU tensors run the kernels under Triton's interpreter:", tritonconv._runtime.interpreting(torch.device("cpu")))

# %% [markdown]
# ## Output size
#
# A convolution with kernel $k$, stride $s$, padding $p$, dilation $d$ maps $L'$ samples
# to $L = \lfloor (L' + 2p - d(k-1) - 1)/s \rfloor + 1$; its transpose maps $L$ back to
#
# $$L' = (L-1)\,s - 2p + d\,(k-1) + \text{output\_padding} + 1,$$
#
# where `output_padding` $< \max(s, d)$ picks among the $s$ sizes that convolve to the same
# $L$. Swept against the kernel's output and torch's:

# %%
rows, agree = [], 0
for L, k, s, p, d in itertools.product((1, 4, 7), (1, 2, 3), (1, 2, 3), (0, 1), (1, 2)):
    for op in range(max(s, d)):
        formula = shapes.conv_transpose_output_size(L, k, s, p, op, d)
        if formula <= 0:
            continue
        x, w = torch.randn(1, 2, L), torch.randn(2, 3, k)
        ours = tritonconv.conv_transpose1d(x, w, stride=s, padding=p, output_padding=op, dilation=d)
        theirs = F.conv_transpose1d(x, w, stride=s, padding=p, output_padding=op, dilation=d)
        assert ours.shape[-1] == formula == theirs.shape[-1]
        assert shapes.conv_output_size(formula, k, s, p, d) == L + op // s  # it convolves back to L
        agree += 1
        if L == 7 and op and len(rows) < 8:
            rows.append((L, k, s, p, op, d, formula))
print(f"{agree} configurations: kernel output length == formula == torch in every one")
print(f"{'L':>2} {'k':>2} {'s':>2} {'p':>2} {'out_pad':>7} {'d':>2} {'L_prime':>7}")
for row in rows:
    print("{:2d} {:2d} {:2d} {:2d} {:7d} {:2d} {:7d}".format(*row))

# %% [markdown]
# ## The adjoint identity
#
# The transposed convolution is the adjoint of the convolution with the same weight: for
# every $x$ (the convolution's input) and $y$ (its output),
#
# $$\langle \operatorname{conv}(x, w),\, y \rangle = \langle x,\, \operatorname{conv\_transpose}(y, w) \rangle .$$
#
# With integer-valued data both sides are exact integers, so the check is equality, not a
# tolerance: strided, padded, dilated and grouped cases in 1D and 2D.

# %%
cases = [  # op, x, weight (C_out, C_in/groups, *k), arguments
    ("1d", (2, 4, 13), (6, 2, 3), dict(stride=2, padding=1, groups=2)),
    ("1d", (1, 3, 10), (5, 3, 4), dict(stride=3, dilation=2)),
    ("2d", (1, 3, 9, 8), (4, 3, 3, 3), dict(stride=2, padding=1)),
    ("2d", (2, 4, 7, 11), (4, 1, 2, 3), dict(stride=(1, 2), padding=(1, 0), groups=4)),
]
print(f"{'op':>3} {'x':>16} {'arguments':>42} {'<conv(x,w), y>':>15} {'<x, convT(y,w)>':>16}")
for op, x_shape, w_shape, kw in cases:
    x = torch.randint(-3, 4, x_shape).float()
    w = torch.randint(-3, 4, w_shape).float()
    y_conv = getattr(tritonconv, f"conv{op}")(x, w, **kw)
    y = torch.randint(-3, 4, y_conv.shape).float()
    ndim = x.dim() - 2
    s, p, d = (shapes.as_tuple(kw.get(name, default), ndim) for name, default in (("stride", 1), ("padding", 0),
                                                                                   ("dilation", 1)))
    # the output padding that gives back x's size: the sizes a strided convolution maps to the same y
    out_pad = tuple(n - shapes.conv_transpose_output_size(m, k, si, pi, 0, di)
                    for n, m, k, si, pi, di in zip(x.shape[2:], y.shape[2:], w.shape[2:], s, p, d))
    xt = getattr(tritonconv, f"conv_transpose{op}")(y, w, output_padding=out_pad, **kw)
    lhs, rhs = int((y_conv * y).sum()), int((x * xt).sum())
    assert lhs == rhs
    print(f"{op:>3} {str(x_shape):>16} {str(kw):>42} {lhs:15d} {rhs:16d}")

# %% [markdown]
# ## Stride phases
#
# Output $o$ of a transposed convolution gathers input $i = (o + p - t\,d)/s$ where that is
# an integer, so only the taps with $t\,d \equiv o + p \pmod s$ reach $o$. Grouped by
# their phase $o \bmod s$, outputs share their taps (`tritonconv.shapes.phase_taps`); the
# kernel runs phase by phase and loops over those taps only, so each tap runs once per
# output position in total, as in the forward convolution, instead of $s$ times with all
# but one masked. Below: which taps reach which phase, per stride and dilation (kernel 5,
# padding 1).

# %%
configs = [(1, 1), (2, 1), (3, 1), (2, 2), (4, 3)]  # (stride, dilation)
fig, axes = plt.subplots(1, len(configs), figsize=(13, 2.6))
for ax, (s, d) in zip(axes, configs):
    step, phases = shapes.phase_taps(5, s, 1, d)
    grid = torch.zeros(s, 5)
    for phase, (first, count) in enumerate(phases):
        grid[phase, first:first + count * step:step] = 1
    assert grid.sum() == 5 and torch.equal(grid.sum(0), torch.ones(5))  # every tap reaches exactly one phase
    ax.imshow(grid, cmap="Blues", vmin=0, vmax=1.4)
    ax.set_title(f"stride {s}, dilation {d}")
    ax.set_xlabel("tap t")
    ax.set_ylabel("phase o mod s")
    ax.set_xticks(range(5))
    ax.set_yticks(range(s))
fig.tight_layout();
for s, d in configs:
    step, phases = shapes.phase_taps(5, s, 1, d)
    print(f"stride {s}, dilation {d}: taps per phase {[count for _, count in phases]}")

# %% [markdown]
# And the kernel computes the same whatever the phase structure: a 2D transposed
# convolution per configuration above (both axes), against torch.

# %%
for s, d in configs:
    x, w = torch.randn(1, 3, 5, 4), torch.randn(3, 2, 5, 5)
    ours = tritonconv.conv_transpose2d(x, w, stride=s, padding=1, dilation=d)
    ref = F.conv_transpose2d(x.double(), w.double(), stride=s, padding=1, dilation=d)
    err = ((ours.double() - ref).norm() / ref.norm()).item()
    assert err < 1e-5
    print(f"stride {s}, dilation {d}: output {tuple(ours.shape[2:])}, relative error < 1e-5: {err < 1e-5}")
