# %% [markdown]
# # 04 · Factorized spatiotemporal convolution: (2+1)D and P3D
#
# Section 3 of the design document ends: a $k \times k \times k$ kernel costs $k^3$ parameters
# and $T H W k^3$ work, so practitioners factorize it into a spatial $1 \times k \times k$ and a
# temporal $k \times 1 \times 1$ convolution (Pseudo-3D, (2+1)D). This notebook counts the
# parameters and work of each form with `tritonconv.shapes`, checks the R(2+1)D mid-channel
# rule, and computes every factorized block with `tritonconv.conv3d` calls against torch.
#
# What is here now: the algebra, and each block composed from the library's 3D kernel (two
# launches, the activation fused into the first). The dedicated `conv2plus1d` op, its fused
# single-launch kernel and the `nn` modules are not built yet; this notebook will check
# them against the same compositions when they land.

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import tritonconv
from tritonconv import shapes

_ = torch.manual_seed(0)
print("CPU tensors run the kernels under Triton's interpreter:", tritonconv._runtime.interpreting(torch.device("cpu")))

# %% [markdown]
# ## The R(2+1)D mid-channel rule
#
# Tran et al. (2018) choose the number of mid channels $M$ so that the (2+1)D block has as
# many parameters as the full $t \times d \times d$ convolution:
#
# $$M = \left\lfloor \frac{t\, d^2\, C_{in}\, C_{out}}{d^2 C_{in} + t\, C_{out}} \right\rfloor .$$
#
# R(2+1)D-18 (t = d = 3, $C_{in} = C_{out}$) publishes widths 144, 288, 576, 1152 for 64, 128,
# 256, 512 channels.

# %%
print(f"{'C_in=C_out':>10} {'M':>5} {'published':>9} {'params 3D':>10} {'params (2+1)D':>13}")
for c, published in [(64, 144), (128, 288), (256, 576), (512, 1152)]:
    m = shapes.r2plus1d_mid_channels(c, c, 3, 3)
    full, factored = shapes.factorized_params(c, c, 3, 3, "3d"), shapes.factorized_params(c, c, 3, 3, "2+1d")
    assert m == published
    assert factored <= full and full - factored < c * (9 + 3)  # equal up to the floor
    print(f"{c:10d} {m:5d} {published:9d} {full:10,d} {factored:13,d}")

# %% [markdown]
# ## Parameters and work: full 3D vs (2+1)D vs P3D-A/B/C
#
# With $S$ the spatial $1 \times d \times d$ and $T$ the temporal $t \times 1 \times 1$
# convolution (Qiu et al. 2017): P3D-A $= T(S(x))$, P3D-B $= S(x) + T(x)$,
# P3D-C $= S(x) + T(S(x))$. With stride 1 and 'same' padding every stage produces every
# voxel, so the multiply-accumulates are the parameters times $N\,T\,H\,W$; each stage's
# count from `conv_macs` is summed to confirm it. Clip: R(2+1)D-18 layer 1
# (N=8, C=64, T=8, H=W=56, t=d=3).

# %%
N, C, T, H, W, t, d = 8, 64, 8, 56, 56, 3, 3
M = shapes.r2plus1d_mid_channels(C, C, t, d)
x_shape = (N, C, T, H, W)


def stage_macs(c_in, c_out, kernel):
    w_shape = (c_out, c_in, *kernel)
    x = (N, c_in, T, H, W)
    return shapes.conv_macs(x, w_shape, shapes.conv_output_shape(x, w_shape, 1, "same"))


stages = {
    "3d": [(C, C, (t, d, d))],
    "2+1d": [(C, M, (1, d, d)), (M, C, (t, 1, 1))],
    "P3D-A": [(C, C, (1, d, d)), (C, C, (t, 1, 1))],
    "P3D-B": [(C, C, (1, d, d)), (C, C, (t, 1, 1))],
    "P3D-C": [(C, C, (1, d, d)), (C, C, (t, 1, 1))],
}
full_macs = stage_macs(C, C, (t, d, d))
print(f"{'block':>6} {'params':>8} {'GMACs':>7} {'vs 3D':>6}")
table = {}
for variant in shapes.FACTORIZATIONS:
    params = shapes.factorized_params(C, C, t, d, variant)
    macs = sum(stage_macs(*s) for s in stages[variant])
    assert macs == params * N * T * H * W
    table[variant] = (params, macs)
    print(f"{variant:>6} {params:8,d} {macs / 1e9:7.2f} {macs / full_macs:6.2f}")
assert table["2+1d"][0] == table["3d"][0]

# %%
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(list(table), [m / 1e9 for _, m in table.values()], color=["gray", "C0", "C1", "C1", "C1"])
ax.set_ylabel("GMACs (R(2+1)D-18 layer 1)")
_ = ax.set_title("Full 3D vs factorized blocks")

# %% [markdown]
# ## The blocks, computed with the 3D kernel
#
# Each block is composed from `tritonconv.conv3d` calls (the intermediate ReLU fused into
# the spatial stage's epilogue) and compared with the same composition in torch (float64).

# %%
def rel_err(a, b):
    return ((a.double() - b).norm() / b.norm()).item()


c_in, c_mid, c_out, t, d = 3, 5, 4, 3, 3
x = torch.randn(2, c_in, 5, 7, 6)
ws_mid, wt_mid = torch.randn(c_mid, c_in, 1, d, d), torch.randn(c_out, c_mid, t, 1, 1)
ws, wt = torch.randn(c_out, c_in, 1, d, d), torch.randn(c_out, c_out, t, 1, 1)
wt_b = torch.randn(c_out, c_in, t, 1, 1)
bs, bt = torch.randn(c_mid), torch.randn(c_out)
pad_s, pad_t = (0, 1, 1), (1, 0, 0)

ours = {
    "2+1d": tritonconv.conv3d(tritonconv.conv3d(x, ws_mid, bs, padding=pad_s, activation="relu"), wt_mid, bt, padding=pad_t),
    "P3D-A": tritonconv.conv3d(tritonconv.conv3d(x, ws, padding=pad_s, activation="relu"), wt, padding=pad_t),
    "P3D-B": tritonconv.conv3d(x, ws, padding=pad_s) + tritonconv.conv3d(x, wt_b, padding=pad_t),
}
s_x = tritonconv.conv3d(x, ws, padding=pad_s)
ours["P3D-C"] = s_x + tritonconv.conv3d(F.relu(s_x), wt, padding=pad_t)

xd = x.double()
s_ref = F.conv3d(xd, ws.double(), padding=pad_s)
ref = {
    "2+1d": F.conv3d(F.relu(F.conv3d(xd, ws_mid.double(), bs.double(), padding=pad_s)),
                     wt_mid.double(), bt.double(), padding=pad_t),
    "P3D-A": F.conv3d(F.relu(s_ref), wt.double(), padding=pad_t),
    "P3D-B": s_ref + F.conv3d(xd, wt_b.double(), padding=pad_t),
    "P3D-C": s_ref + F.conv3d(F.relu(s_ref), wt.double(), padding=pad_t),
}
print(f"{'block':>6} {'output':>18} {'rel. L2 error < 1e-5':>21}")
for name in ours:
    err = rel_err(ours[name], ref[name])
    assert ours[name].shape == (2, c_out, 5, 7, 6) and err < 1e-5
    print(f"{name:>6} {str(tuple(ours[name].shape)):>18} {str(err < 1e-5):>21}")
