# %% [markdown]
# # 02 · 2D spatial convolution
#
# Section 2 of the design document: the 2D definition, the output-size formulas with
# anisotropic strides and paddings, and the receptive-field recursion, each checked
# against `tritonconv.conv2d` (CPU tensors: Triton's interpreter; CUDA tensors: compiled).

# %%
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
# ## The definition
#
# $$O[i, j] = \sum_m \sum_n I[i+m,\, j+n]\; K[m, n]$$
#
# (a cross-correlation: the kernel is not flipped). Evaluated literally with Python loops
# on small integer-valued data, so the comparison with the kernel is exact.

# %%
I = torch.randint(-4, 5, (7, 9)).float()
K = torch.randint(-3, 4, (3, 2)).float()
kh, kw = K.shape
O_literal = torch.tensor([[sum(I[i + m, j + n] * K[m, n] for m in range(kh) for n in range(kw))
                           for j in range(I.shape[1] - kw + 1)] for i in range(I.shape[0] - kh + 1)])
O_kernel = tritonconv.conv2d(I[None, None], K[None, None])[0, 0]
print("O (kernel):")
print(O_kernel.int())
assert torch.equal(O_kernel, O_literal)
print("equal to the literal double sum:", torch.equal(O_kernel, O_literal))

# %% [markdown]
# ## Output size, anisotropic
#
# $$H_{out} = \left\lfloor \frac{H_{in} + 2p_h - k_h}{s_h} \right\rfloor + 1, \qquad
#   W_{out} = \left\lfloor \frac{W_{in} + 2p_w - k_w}{s_w} \right\rfloor + 1 .$$
#
# Unequal strides or paddings reduce the two axes differently. Each row runs the kernel
# and compares its output shape with the formulas and with `torch.nn.functional.conv2d`.

# %%
cases = [  # H, W, (kh, kw), (sh, sw), (ph, pw)
    (17, 17, (1, 7), (1, 1), (0, 3)),
    (17, 17, (7, 1), (1, 1), (3, 0)),
    (15, 20, (3, 3), (2, 1), (1, 1)),
    (15, 20, (3, 5), (1, 3), (0, 2)),
    (9, 31, (2, 4), (3, 2), (1, 0)),
    (28, 12, (5, 3), (4, 4), (2, 1)),
]
print(f"{'H_in':>4} {'W_in':>4} {'k':>7} {'s':>7} {'p':>7} {'H_out':>5} {'W_out':>5}  kernel = formula = torch")
for H, W, k, s, p in cases:
    x, w = torch.randn(1, 2, H, W), torch.randn(3, 2, *k)
    out = tritonconv.conv2d(x, w, stride=s, padding=p)
    h_doc = (H + 2 * p[0] - k[0]) // s[0] + 1
    w_doc = (W + 2 * p[1] - k[1]) // s[1] + 1
    assert out.shape[2:] == (h_doc, w_doc) == shapes.conv_output_shape(x.shape, w.shape, s, p)[2:]
    assert torch.allclose(out, F.conv2d(x, w, stride=s, padding=p), rtol=1e-4, atol=1e-4)
    print(f"{H:4d} {W:4d} {str(k):>7} {str(s):>7} {str(p):>7} {h_doc:5d} {w_doc:5d}  True")

# %% [markdown]
# ## Receptive field
#
# $$R_l = R_{l-1} + (k_l - 1) \prod_{i=1}^{l-1} s_i, \qquad R_0 = 1 .$$
#
# A ResNet-like stem along one axis: a 7×7 stride-2 convolution, a 3×3 stride-2
# convolution (where ResNet has its max-pool), then 3×3 stride-1 convolutions.
# `tritonconv.shapes.receptive_field` evaluates the recursion:

# %%
stack = [(7, 2), (3, 2), (3, 1), (3, 1), (3, 2), (3, 1)]  # (k_l, s_l)
kernels, strides = [k for k, _ in stack], [s for _, s in stack]
R = shapes.receptive_field(kernels, strides)
jump = 1
print(f"{'l':>2} {'k_l':>3} {'s_l':>3} {'prod s_i (i<l)':>14} {'R_l':>4}")
print(f"{0:2d} {'':>3} {'':>3} {'':>14} {R[0]:4d}")
for l, (k, s) in enumerate(stack, start=1):
    assert R[l] == R[l - 1] + (k - 1) * jump
    print(f"{l:2d} {k:3d} {s:3d} {jump:14d} {R[l]:4d}")
    jump *= s
assert R == [1, 7, 11, 19, 27, 35, 51]

# %%
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(range(len(R)), R, marker="o")
ax.set_xlabel("layer l")
ax.set_ylabel("receptive field R_l (pixels)")
ax.set_title("ResNet-like stem: receptive field per layer")
ax.grid(alpha=0.3)

# %% [markdown]
# ### Measured: which inputs reach one output
#
# The stack is linear, so one output is $o = \sum_p a_p\, I[p]$ and the inputs it depends on
# are the $p$ with $a_p \ne 0$: the support of the gradient $\partial o / \partial I$. The
# gradient of a convolution with respect to its input is the transposed convolution: spread
# the output gradient onto the stride grid (zeros between), pad by $k-1$ and convolve with
# the *flipped* kernel, which is `tritonconv.conv2d(..., flip=True)`. Propagating a one-hot
# gradient at a central output back through $l$ layers with positive weights (so nothing
# cancels) must light up an $R_l \times R_l$ square. The gradient is also checked against
# torch's autograd through the same stack.

# %%
size = 64
weights = [torch.rand(1, 1, k, k) + 0.1 for k in kernels]


def input_gradient(grad_out, w, stride):
    """d(output)/d(input) of one convolution, with tritonconv's flipped-kernel convolution."""
    h, w_ = grad_out.shape[-2:]
    spread = torch.zeros(1, 1, (h - 1) * stride + 1, (w_ - 1) * stride + 1)
    spread[..., ::stride, ::stride] = grad_out
    k = w.shape[-1]
    return tritonconv.conv2d(spread, w, padding=k - 1, flip=True)


print(f"{'l':>2} {'output':>8} {'R_l':>4} {'rows reached':>12} {'cols reached':>12} {'== autograd':>11}")
for depth in range(1, len(stack) + 1):
    sizes = [(size, size)]
    for k, s in stack[:depth]:
        sizes.append(shapes.conv_output_shape((1, 1, *sizes[-1]), (1, 1, k, k), s)[2:])
    grad = torch.zeros(1, 1, *sizes[-1])
    centre = sizes[-1][0] // 2
    grad[..., centre, centre] = 1.0
    for w, s, in_size in zip(weights[:depth][::-1], strides[:depth][::-1], sizes[:-1][::-1]):
        grad = input_gradient(grad, w, s)
        grad = F.pad(grad, (0, in_size[1] - grad.shape[-1], 0, in_size[0] - grad.shape[-2]))  # uncovered tail
    # The same gradient from torch's autograd through torch's convolutions.
    x = torch.randn(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    y = x
    for w, s in zip(weights[:depth], strides[:depth]):
        y = F.conv2d(y, w.double(), stride=s)
    y[0, 0, centre, centre].backward()
    same = torch.allclose(grad.double(), x.grad, rtol=1e-5, atol=1e-7)
    reached = grad[0, 0] > 0
    rows, cols = int(reached.any(1).sum()), int(reached.any(0).sum())
    assert same and rows == cols == R[depth] and int(reached.sum()) == R[depth] ** 2
    print(f"{depth:2d} {str(tuple(sizes[-1])):>8} {R[depth]:4d} {rows:12d} {cols:12d} {str(same):>11}")
