# %% [markdown]
# # 04 · Factorized spatiotemporal convolution: (2+1)D and P3D
#
# Section 3 of the design document ends: a $k \times k \times k$ kernel costs $k^3$ parameters
# and $T H W k^3$ work, so practitioners factorize it into a spatial $1 \times k \times k$ and a
# temporal $k \times 1 \times 1$ convolution (Pseudo-3D, (2+1)D). This notebook counts the
# parameters and work of each form with `tritonconv.shapes`, checks the R(2+1)D mid-channel
# rule, and computes every factorized block with the library against torch compositions:
# `tritonconv.conv2plus1d` on both of its paths (one fused launch; two launches), and the
# modules `tritonconv.nn.Conv2Plus1d` and `tritonconv.nn.P3DBlock`.

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
# ## Memory traffic: what the fused kernel saves
#
# The two-launch (2+1)D writes the $N \times M \times T \times H \times W$ intermediate and
# reads it back; the fused kernel keeps it in registers and pays instead by recomputing each
# intermediate row once per temporal tap. `shapes.conv2plus1d_bytes` counts the global
# traffic of both (each tensor once, bf16):

# %%
y_shape = (N, C, T, H, W)
two = shapes.conv2plus1d_bytes(x_shape, M, C, (t, d, d), y_shape, "bfloat16", fused=False)
one = shapes.conv2plus1d_bytes(x_shape, M, C, (t, d, d), y_shape, "bfloat16", fused=True)
assert two - one == 2 * N * M * T * H * W * 2
print(f"two launches {two / 1e6:.0f} MB, fused {one / 1e6:.0f} MB: the intermediate is {(two - one) / two:.0%} of the traffic")

# %% [markdown]
# ## The op: `tritonconv.conv2plus1d`, fused and two-launch
#
# $y = \mathrm{act}(T(\mathrm{act}_{mid}(S(x))))$ with the spatial stride/padding/dilation in
# $S$ and the temporal ones in $T$. Both paths against the two torch `conv3d` calls (float64),
# with odd sizes, a temporal stride and an anisotropic kernel:

# %%
def rel_err(a, b):
    return ((a.double() - b).norm() / b.norm()).item()


x = torch.randn(2, 3, 7, 9, 8)
ws_mid, wt_mid = torch.randn(5, 3, 1, 3, 2), torch.randn(4, 5, 3, 1, 1)
bs, bt = torch.randn(5), torch.randn(4)
ref = F.conv3d(F.relu(F.conv3d(x.double(), ws_mid.double(), bs.double(), (1, 2, 1), (0, 1, 1))),
               wt_mid.double(), bt.double(), (2, 1, 1), (1, 0, 0))
for fused in (True, False):
    out = tritonconv.conv2plus1d(x, ws_mid, wt_mid, bs, bt, stride=(2, 2, 1), padding=1, mid_activation="relu",
                                 fused=fused)
    assert out.shape == ref.shape and rel_err(out, ref) < 1e-5
    print(f"fused={fused!s:5} output {tuple(out.shape)}  rel. L2 error < 1e-5: {rel_err(out, ref) < 1e-5}")

# %% [markdown]
# ## The modules: `nn.Conv2Plus1d` and `nn.P3DBlock`
#
# `Conv2Plus1d(64, 64, 3)` picks the R(2+1)D width (144) and has exactly the parameters of a
# full 3D conv; `P3DBlock` computes A $= T(S(x))$, B $= S(x) + T(x)$, C $= S(x) + T(S(x))$
# (ReLU after $S$ where $T$ reads it). Each against the torch composition of its own weights:

# %%
block = tritonconv.nn.Conv2Plus1d(64, 64, 3, bias=False)
print(block.spatial.out_channels, sum(p.numel() for p in block.parameters()), shapes.factorized_params(64, 64, 3, 3, "3d"))

def reference(block, v):
    """The block's formula in torch (float64) with its own weights."""
    s, t = block.spatial, block.temporal

    def S(u):
        return F.relu(F.conv3d(u, s.weight.double(), s.bias.double(), padding=(0, 1, 1)))

    def T(u, act=lambda a: a):
        return act(F.conv3d(u, t.weight.double(), t.bias.double(), padding=(1, 0, 0)))

    v = v.double()
    return {"A": lambda: T(S(v)), "B": lambda: S(v) + T(v, F.relu), "C": lambda: S(v) + T(S(v))}[block.variant]()


c_in, c_out = 3, 4
x = torch.randn(2, c_in, 5, 7, 6)
print(f"{'block':>6} {'params':>6} {'= shapes':>8} {'output':>18} {'rel. L2 error < 1e-5':>21}")
for variant in "ABC":
    block_in = c_in if variant == "B" else c_out  # A and C here map C_out -> C_out after a 1x1x1 projection
    p3d = tritonconv.nn.P3DBlock(block_in, c_out, 3, variant=variant, activation="relu")
    inp = x if variant == "B" else tritonconv.conv3d(x, torch.randn(c_out, c_in, 1, 1, 1))
    got = p3d(inp)
    err = rel_err(got, reference(p3d, inp))
    n_params = sum(p.numel() for name, p in p3d.named_parameters() if name.endswith("weight"))
    matches = n_params == shapes.factorized_params(block_in, c_out, 3, 3, f"P3D-{variant}")
    assert matches and err < 1e-5
    print(f"{'P3D-' + variant:>6} {n_params:6d} {matches!s:>8} {str(tuple(got.shape)):>18} {str(err < 1e-5):>21}")

# %% [markdown]
# Which path runs when `fused=None`: under the interpreter, or when gradients are needed, the
# two-launch path (the fused kernel has no backward); on a GPU with `TRITONCONV_AUTOTUNE=1`
# the first call of a shape times both and caches the faster. No GPU measurement of that
# choice is recorded in this repository yet.
