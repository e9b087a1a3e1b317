# %% [markdown]
# # 03 · 3D (spatiotemporal, volumetric) convolution
#
# Section 3 of the design document: the 3D definition, the depth formula, the complexity
# bound as an exact count, the $k^3$ parameters and the $T \cdot H \cdot W \cdot k^3$ cost,
# checked against `tritonconv.conv3d` and `tritonconv.shapes`.

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

# %% [markdown]
# ## The definition
#
# $$V[x, y, z] = \sum_i \sum_j \sum_k I[x+i,\, y+j,\, z+k]\; K[i, j, k]$$
#
# evaluated literally on small integer-valued data (exact), against the kernel.

# %%
I = torch.randint(-3, 4, (5, 6, 7)).float()
K = torch.randint(-2, 3, (2, 3, 2)).float()
kd, kh, kw = K.shape
out_shape = [I.shape[a] - K.shape[a] + 1 for a in range(3)]
V_literal = torch.zeros(out_shape)
for x, y, z in itertools.product(*map(range, out_shape)):
    V_literal[x, y, z] = sum(I[x + i, y + j, z + k] * K[i, j, k]
                             for i in range(kd) for j in range(kh) for k in range(kw))
V_kernel = tritonconv.conv3d(I[None, None], K[None, None])[0, 0]
assert torch.equal(V_kernel, V_literal)
print("output shape", tuple(V_kernel.shape), "| equal to the literal triple sum:", torch.equal(V_kernel, V_literal))

# %% [markdown]
# ## Output depth (and height, width)
#
# $$D_{out} = \left\lfloor \frac{D_{in} + 2p_d - k_d}{s_d} \right\rfloor + 1$$
#
# with $H_{out}$, $W_{out}$ by the same rule on their own axes.

# %%
cases = [  # (D, H, W), (kd, kh, kw), (sd, sh, sw), (pd, ph, pw)
    ((16, 12, 12), (3, 3, 3), (1, 1, 1), (1, 1, 1)),
    ((16, 12, 12), (3, 3, 3), (2, 2, 2), (1, 1, 1)),
    ((9, 14, 14), (1, 3, 3), (1, 2, 2), (0, 1, 1)),
    ((8, 10, 10), (5, 1, 1), (3, 1, 1), (2, 0, 0)),
    ((7, 11, 6), (2, 4, 3), (2, 3, 1), (0, 1, 2)),
]
print(f"{'input':>12} {'k':>9} {'s':>9} {'p':>9} {'D_out':>5} {'output (kernel)':>16}")
for size, k, s, p in cases:
    x, w = torch.randn(1, 2, *size), torch.randn(2, 2, *k)
    out = tritonconv.conv3d(x, w, stride=s, padding=p)
    d_doc = (size[0] + 2 * p[0] - k[0]) // s[0] + 1
    assert out.shape[2] == d_doc
    assert out.shape[2:] == tuple((size[a] + 2 * p[a] - k[a]) // s[a] + 1 for a in range(3))
    assert torch.allclose(out, F.conv3d(x, w, stride=s, padding=p), rtol=1e-4, atol=1e-4)
    print(f"{str(size):>12} {str(k):>9} {str(s):>9} {str(p):>9} {d_doc:5d} {str(tuple(out.shape[2:])):>16}")

# %% [markdown]
# ## The complexity bound, counted exactly
#
# The document bounds the work by $\mathcal{O}(D_{out} H_{out} W_{out} C_{in} C_{out} k_d k_h k_w)$
# per sample. Counting every multiply-accumulate of the literal definition (padding taps
# included, as a GPU kernel computes them) gives exactly that product;
# `tritonconv.shapes.conv_macs` returns it, `conv_flops` twice it. With groups, $C_{in}$
# becomes $C_{in}/g$.

# %%
def count_macs(input_shape, weight_shape, stride, padding):
    """Multiply-accumulates of the literal 6-fold sum (one per term), per sample."""
    c_out, c_in = weight_shape[:2]
    out = shapes.conv_output_shape(input_shape, weight_shape, stride, padding)[2:]
    count = 0
    for _ in itertools.product(range(c_out), *map(range, out)):
        for _ in itertools.product(range(c_in), *map(range, weight_shape[2:])):
            count += 1
    return count, out


print(f"{'input':>16} {'weight':>16} {'counted':>8} {'Do·Ho·Wo·Cin·Cout·k³':>20} {'conv_macs':>9}")
for x_shape, w_shape, s, p in [((1, 2, 6, 5, 4), (3, 2, 3, 3, 3), 1, 1),
                               ((1, 3, 7, 7, 7), (2, 3, 2, 3, 1), (2, 1, 2), 0),
                               ((1, 1, 8, 4, 4), (4, 1, 3, 1, 1), (1, 1, 1), (1, 0, 0))]:
    counted, (do, ho, wo) = count_macs(x_shape, w_shape, s, p)
    bound = do * ho * wo * x_shape[1] * w_shape[0] * w_shape[2] * w_shape[3] * w_shape[4]
    macs = shapes.conv_macs(x_shape, w_shape, shapes.conv_output_shape(x_shape, w_shape, s, p))
    assert counted == bound == macs
    assert shapes.conv_flops(x_shape, w_shape, shapes.conv_output_shape(x_shape, w_shape, s, p)) == 2 * macs
    print(f"{str(x_shape):>16} {str(w_shape):>16} {counted:8d} {bound:20d} {macs:9d}")

# %% [markdown]
# ## $k^3$ parameters and the $T \cdot H \cdot W \cdot k^3$ cost
#
# A $k \times k \times k$ kernel has $k^3$ weights per (input, output) channel pair; on a
# video of $T$ frames of $H \times W$ with 'same' padding and stride 1, the work per channel
# pair is $T \cdot H \cdot W \cdot k^3$ multiply-accumulates. The table uses a C3D clip
# (16 × 112 × 112) and counts with `tritonconv.shapes`.

# %%
T, H, W = 16, 112, 112
print(f"{'k':>2} {'params k^3':>10} {'MACs per channel pair':>22} {'= T·H·W·k^3':>12}")
for k in (1, 3, 5, 7):
    w_shape = (1, 1, k, k, k)
    x_shape = (1, 1, T, H, W)
    y_shape = shapes.conv_output_shape(x_shape, w_shape, 1, "same")
    assert shapes.conv_params(w_shape) == k**3
    assert y_shape[2:] == (T, H, W)
    macs = shapes.conv_macs(x_shape, w_shape, y_shape)
    assert macs == T * H * W * k**3
    print(f"{k:2d} {k**3:10d} {macs:22,d} {str(macs == T * H * W * k**3):>12}")

# %% [markdown]
# Drawn: the two laws on log-log axes, the points counted by `shapes.conv_macs` for each layer
# and the lines the formulas give. Left, the kernel size on the C3D clip (slope 3: $k^3$); right,
# a $3^3$ kernel on volumes from a small clip to a 256³ CT scan (slope 1: linear in $T \cdot H \cdot W$).

# %%
ks = list(range(1, 10))
volumes = [(8, 56, 56), (16, 112, 112), (32, 128, 128), (64, 224, 224), (128, 256, 256), (256, 256, 256)]


def macs_per_pair(size, k):
    x_shape, w_shape = (1, 1, *size), (1, 1, k, k, k)
    return shapes.conv_macs(x_shape, w_shape, shapes.conv_output_shape(x_shape, w_shape, 1, "same"))


by_k = [macs_per_pair((T, H, W), k) for k in ks]
by_volume = [macs_per_pair(v, 3) for v in volumes]
assert by_k == [T * H * W * k**3 for k in ks]
assert by_volume == [t * h * w * 27 for t, h, w in volumes]
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
left.loglog(ks, [T * H * W * k**3 for k in ks], color="0.6", label="T·H·W·k³")
left.loglog(ks, by_k, "o", color="tab:blue", label="shapes.conv_macs")
left.set_xlabel("kernel size k")
left.set_ylabel("MACs per channel pair")
left.set_title(f"{T}×{H}×{W} clip, 'same' padding", fontsize=10)
right.loglog([t * h * w for t, h, w in volumes], [27 * t * h * w for t, h, w in volumes], color="0.6", label="T·H·W·27")
right.loglog([t * h * w for t, h, w in volumes], by_volume, "o", color="tab:orange", label="shapes.conv_macs")
right.set_xlabel("voxels T·H·W")
right.set_title("k = 3, from a small clip to a 256³ volume", fontsize=10)
for ax in (left, right):
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
fig.tight_layout()
slope_k = (np.log(by_k[-1]) - np.log(by_k[0])) / (np.log(ks[-1]) - np.log(ks[0]))
slope_v = (np.log(by_volume[-1]) - np.log(by_volume[0])) / (np.log(256**3) - np.log(8 * 56 * 56))
print(f"log-log slopes: {slope_k:.3f} in k, {slope_v:.3f} in T·H·W")

# %% [markdown]
# The same 'same'-padded cube through the kernel, compared with torch, on a clip small
# enough for the interpreter:

# %%
x = torch.randn(1, 3, 6, 10, 10)
for k in (1, 3, 5):
    w = torch.randn(4, 3, k, k, k)
    ours = tritonconv.conv3d(x, w, padding="same")
    ref = F.conv3d(x.double(), w.double(), padding="same")
    err = ((ours.double() - ref).norm() / ref.norm()).item()
    assert ours.shape == x.shape[:1] + (4,) + x.shape[2:] and err < 1e-5
    print(f"k={k}: output {tuple(ours.shape)}, rel. L2 error < 1e-5: {err < 1e-5}")
