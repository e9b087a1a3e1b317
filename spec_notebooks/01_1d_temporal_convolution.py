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
# For this antisymmetric "gradient-detecting" kernel, the two readings differ only in sign:
# the definition of section 1 yields $[-1, 0, -1, -8]$, the worked example's arithmetic
# $[1, 0, 1, 8]$. Both come from the same kernel, selected by `flip`.
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
