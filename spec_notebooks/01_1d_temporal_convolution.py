# %% [markdown]
# # 01 · 1D temporal convolution
#
# Section 1 and section 4 of the design document, restated and checked against
# `tritonconv.conv1d`. Every claim below is an `assert` and a printed table; nbval compares
# the printed values with the ones stored here, so a kernel or formula that drifts fails CI.
#
# The kernels run compiled on a CUDA tensor and under Triton's CPU interpreter on a CPU
# tensor; this notebook uses CPU tensors so it runs anywhere.

# %%
import itertools

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

import tritonconv
from tritonconv import shapes
from tritonconv.spec import use_device

_ = torch.manual_seed(0)
use_device()  # CPU tensors; `python -m tritonconv.spec --device cuda`: CUDA ones (same data, same outputs)
print("CPU tensors run the kernels under Triton's interpreter:", tritonconv._runtime.interpreting(torch.device("cpu")))
np.set_printoptions(precision=4, suppress=True)


def conv1d(x, w, **kw):
    """tritonconv.conv1d on plain lists: one sample, one channel."""
    x = torch.as_tensor(x, dtype=torch.float32).view(1, 1, -1)
    w = torch.as_tensor(w, dtype=torch.float32).view(1, 1, -1)
    return tritonconv.conv1d(x, w, **kw).flatten().tolist()


# %% [markdown]
# ## The definition: true convolution
#
# The document defines
#
# $$y[n] = (x * w)[n] = \sum_{k=-\infty}^{\infty} x[k]\, w[n-k].$$
#
# This is the *true* convolution: the kernel is reversed before it slides. CNN libraries
# (cuDNN, `torch.nn.functional.conv1d`, and `tritonconv.conv1d` by default) compute the
# *cross-correlation* $y[n] = \sum_k x[n+k]\, w[k]$ instead. `tritonconv.conv1d(..., flip=True)`
# computes the document's definition. Below, the definition is evaluated literally (a sum
# over every $k$ where both factors exist) and compared with the kernel on random data;
# "full" padding ($P = K-1$) gives every $n$ where the sum is non-empty.

# %%
def definition(x, w):
    """y[n] = sum_k x[k] w[n-k], for every n where some term exists (the 'full' output)."""
    L, K = len(x), len(w)
    return [sum(x[k] * w[n - k] for k in range(L) if 0 <= n - k < K) for n in range(L + K - 1)]


x = torch.randn(13).tolist()
w = torch.randn(4).tolist()
ours_flip = conv1d(x, w, padding=len(w) - 1, flip=True)
ours_xcorr = conv1d(x, w, padding=len(w) - 1)
literal = definition(x, w)
print(f"{'n':>3} {'definition':>11} {'flip=True':>10} {'flip=False':>11}")
for n in range(0, len(literal), 4):
    print(f"{n:3d} {literal[n]:11.4f} {ours_flip[n]:10.4f} {ours_xcorr[n]:11.4f}")
assert np.allclose(ours_flip, literal, rtol=1e-5, atol=1e-5)
assert np.allclose(ours_flip, np.convolve(x, w), rtol=1e-5, atol=1e-5)
assert np.allclose(ours_xcorr, np.correlate(np.pad(x, 3), w, "valid"), rtol=1e-5, atol=1e-5)
assert not np.allclose(ours_flip, ours_xcorr)  # the two readings differ for a non-symmetric kernel
print("flip=True is the document's definition; flip=False is cross-correlation (numpy.correlate)")

# %% [markdown]
# ## Output length
#
# With input length $L$, kernel $K$, padding $P$ and stride $S$ the document gives
#
# $$L' = \left\lfloor \frac{L + 2P - K}{S} \right\rfloor + 1 .$$
#
# `tritonconv.shapes.conv_output_size` implements the general form with dilation $d$,
# $\lfloor (L + 2P - d(K-1) - 1)/S \rfloor + 1$, which is the document's formula at $d = 1$.
# The sweep runs the kernel on every configuration and compares the length it produced.

# %%
rows, agree = [], 0
configs = list(itertools.product([1, 6, 11], [1, 2, 3, 5], [0, 1, 2], [1, 2, 3], [1, 2]))
for L, K, P, S, d in configs:
    document = (L + 2 * P - K) // S + 1 if d == 1 else None
    formula = shapes.conv_output_size(L, K, S, P, d)
    if formula <= 0:  # the dilated kernel does not fit: tritonconv refuses with a clear error
        try:
            conv1d(torch.randn(L), torch.randn(K), stride=S, padding=P, dilation=d)
            raise AssertionError("expected an error")
        except ValueError:
            rows.append((L, K, P, S, d, document, formula, "error"))
        continue
    kernel_len = len(conv1d(torch.randn(L), torch.randn(K), stride=S, padding=P, dilation=d))
    assert kernel_len == formula
    assert document is None or document == formula
    agree += 1
    rows.append((L, K, P, S, d, document, formula, kernel_len))
print(f"{len(configs)} configurations; kernel length == formula in {agree}, "
      f"{len(configs) - agree} rejected with output size <= 0")
print(f"{'L':>3} {'K':>2} {'P':>2} {'S':>2} {'d':>2} {'document':>9} {'formula':>8} {'kernel':>7}")
for row in [r for r in rows if r[0] == 6 and r[1] == 3]:  # one (L, K), every P, S, d
    print("{:3d} {:2d} {:2d} {:2d} {:2d} {!s:>9} {:8d} {!s:>7}".format(*row))

# %% [markdown]
# ## The worked example (section 4)
#
# $x = [3, 1, 4, 1, 5, 9]$, $w = [-1, 0, 1]$. The document computes, step by step,
#
# | coordinate | terms | value |
# |---|---|---|
# | $n=1$ | $x[0]w[0] + x[1]w[1] + x[2]w[2]$ | 1 |
# | $n=2$ | $x[1]w[0] + x[2]w[1] + x[3]w[2]$ | 0 |
# | $n=3$ | $x[2]w[0] + x[3]w[1] + x[4]w[2]$ | 1 |
#
# and reports the result $[1, 0, 1]$.
#
# **Two inconsistencies, said plainly.**
# 1. The steps use $x[n-1+k]\,w[k]$: the kernel is *not* flipped, so the example computes the
#    cross-correlation, not the flipped-kernel definition of section 1.
# 2. A length-6 signal and a length-3 kernel have $L' = (6 - 3)/1 + 1 = 4$ valid outputs; the
#    document lists only three. The fourth, $x[3]w[0] + x[4]w[1] + x[5]w[2] = -1 + 0 + 9 = 8$,
#    is missing. (Its coordinates $n = 1, 2, 3$ are the window *centres*: with 'same' padding
#    the outputs at those indices are exactly the listed values.)
#
# Both readings, computed by the kernel:

# %%
x_doc = [3, 1, 4, 1, 5, 9]
w_doc = [-1, 0, 1]

steps = [sum(x_doc[n - 1 + k] * w_doc[k] for k in range(3)) for n in (1, 2, 3)]
valid = conv1d(x_doc, w_doc)
same = conv1d(x_doc, w_doc, padding="same")
true_conv = conv1d(x_doc, w_doc, flip=True)

print("document's steps n=1,2,3          :", steps)
print("cross-correlation, valid (4 outs) :", valid)
print("cross-correlation, 'same', n=1..3 :", same[1:4], " (whole:", same, ")")
print("true convolution (flip=True)      :", true_conv)
print("np.convolve(x, w, 'valid')        :", np.convolve(x_doc, w_doc, "valid").tolist())

assert steps == [1, 0, 1]
assert valid == [1.0, 0.0, 1.0, 8.0]  # the document's three values, plus the missing fourth
assert valid[:3] == steps and same[1:4] == steps
assert shapes.conv_output_size(len(x_doc), len(w_doc)) == len(valid) == 4
assert true_conv == [-1.0, 0.0, -1.0, -8.0] == np.convolve(x_doc, w_doc, "valid").tolist()
assert true_conv == [-v for v in valid]  # an antisymmetric kernel: flipping negates it

# %% [markdown]
# Drawn: each row is one output, the kernel's weights written under the inputs they multiply and
# the kernel's output at the right. The worked example's arithmetic (top) slides $w$ as written;
# the definition of section 1 (bottom) slides it reversed. The values at the right are the ones
# the kernel computed above (`valid`, `true_conv`).

# %%
def draw_slides(ax, x, taps, outputs, title):
    """One row per output position n: the inputs, the weights under the inputs they multiply, y[n]."""
    for n, y in enumerate(outputs):
        row = -1.6 * n
        for i, v in enumerate(x):
            inside = n <= i < n + len(taps)
            ax.add_patch(plt.Rectangle((i, row), 0.9, 0.9, color="tab:orange" if inside else "0.9"))
            ax.text(i + 0.45, row + 0.45, f"{v:g}", ha="center", va="center")
            if inside:
                ax.text(i + 0.45, row - 0.3, f"×({taps[i - n]:g})", ha="center", va="center", fontsize=8, color="tab:blue")
        ax.text(len(x) + 0.3, row + 0.45, f"y[{n}] = {y:g}", va="center")
    ax.set_xlim(-0.2, len(x) + 2.6)
    ax.set_ylim(-1.6 * len(outputs) + 0.4, 1.2)
    ax.set_title(title, fontsize=10)
    ax.axis("off")


fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6.5))
draw_slides(top, x_doc, w_doc, valid, "worked example: cross-correlation, w = [-1, 0, 1] slides as written (flip=False)")
draw_slides(bottom, x_doc, w_doc[::-1], true_conv, "section 1: true convolution, w reversed (flip=True)")
fig.tight_layout()
print("drawn outputs, flip=False:", valid, " flip=True:", true_conv)

# %% [markdown]
# For this antisymmetric "gradient-detecting" kernel, the two readings differ only in sign:
# the definition of section 1 yields $[-1, 0, -1, -8]$, the worked example's arithmetic
# $[1, 0, 1, 8]$. Both come from the same kernel, selected by `flip`.
#
# ## A dilated stack's receptive field, as the tree of taps
#
# Telemetry and audio models stack dilated kernels (WaveNet, TCNs): with kernel $K$ and
# dilations $d_l$ doubling per layer, the receptive field grows as
# $R = 1 + \sum_l d_l (K - 1)$, exponentially in depth for a linear cost
# (`shapes.receptive_field`). Measured here: four `tritonconv.conv1d` layers ($K = 2$,
# $d = 1, 2, 4, 8$, no padding) on a 16-sample input give one output; the gradient of that output
# with respect to the input, through the kernels' own backward pass, is non-zero exactly at the
# inputs that reach it. The tree draws which taps of each layer feed the one above.

# %%
K, dilations = 2, [1, 2, 4, 8]
R = shapes.receptive_field([K] * len(dilations), [1] * len(dilations), dilations)
signal = torch.randn(1, 1, R[-1], requires_grad=True)
h = signal
for d in dilations:
    h = tritonconv.conv1d(h, torch.ones(1, 1, K), dilation=d)
assert h.shape == (1, 1, 1)
h.sum().backward()
reached = (signal.grad.flatten() != 0).nonzero().flatten().tolist()
print(f"receptive field per layer (formula): {R}")
print(f"inputs that reach the output (measured through the kernels' gradient): {len(reached)} of {signal.shape[-1]}")
assert reached == list(range(R[-1])) and R == [1, 2, 4, 8, 16]

fig, ax = plt.subplots(figsize=(7, 3.2))
nodes = {len(dilations): [R[-1] - 1]}  # position of each node, by layer; the output sits at the right edge
for layer in range(len(dilations), 0, -1):  # a node at p in layer l reads p - d_l and p in layer l - 1
    d = dilations[layer - 1]
    nodes[layer - 1] = sorted({q for p in nodes[layer] for q in (p - d, p)})
    for p in nodes[layer]:
        for q in (p - d, p):
            ax.plot([q, p], [layer - 1, layer], color="tab:blue", lw=1)
for layer, positions in nodes.items():
    ax.scatter(positions, [layer] * len(positions), s=30, color="tab:orange" if layer == 0 else "tab:blue", zorder=3)
ax.set_yticks(range(len(dilations) + 1), ["input"] + [f"d = {d}" for d in dilations])
ax.set_xlabel("time step")
ax.set_title(f"K = {K}, dilations {dilations}: {len(nodes[0])} inputs reach one output (measured {len(reached)})", fontsize=10)
assert nodes[0] == reached
fig.tight_layout()
#
# ## Cross-check with torch on batched, multi-channel signals
#
# The application paragraph speaks of telemetry and high-frequency signals: many channels,
# dilated kernels. The kernel agrees with `torch.nn.functional.conv1d` there too.

# %%
print(f"{'C_in':>4} {'C_out':>5} {'L':>4} {'K':>2} {'d':>2} {'groups':>6} {'rel. L2 error < 1e-5':>21}")
for c_in, c_out, L, K, d, g in [(4, 8, 64, 3, 1, 1), (8, 8, 50, 5, 4, 1), (6, 6, 33, 9, 1, 6), (4, 6, 41, 2, 8, 2)]:
    xs, ws, b = torch.randn(2, c_in, L), torch.randn(c_out, c_in // g, K), torch.randn(c_out)
    ours = tritonconv.conv1d(xs, ws, b, padding="same", dilation=d, groups=g)
    ref = F.conv1d(xs.double(), ws.double(), b.double(), padding="same", dilation=d, groups=g)
    err = ((ours.double() - ref).norm() / ref.norm()).item()
    assert err < 1e-5
    print(f"{c_in:4d} {c_out:5d} {L:4d} {K:2d} {d:2d} {g:6d} {str(err < 1e-5):>21}")
