# %% [markdown]
# # 05 · Memory: how big the tensors are, and slab-wise computation
#
# Section 5 of the design document: CT/MRI volumes and 4K video can exceed GPU memory, so
# data is streamed with generators (`yield`), slice by slice. This notebook sizes the
# tensors with `tritonconv.shapes` and shows that a convolution computed slab by slab over
# a generator, each slab carrying a halo of $(k_d - 1)\, d_d$ extra input slices, equals the
# one-shot convolution of the whole volume.
#
# What is here now: the byte counts, and the slab recurrence written out with the library's
# `conv3d`. The library's own streaming API (`tritonconv.streaming`) and its memory planner
# are not built yet; this notebook will exercise them when they land.

# %%
import torch
import torch.nn.functional as F

import tritonconv
from tritonconv import shapes

_ = torch.manual_seed(0)
print("CPU tensors run the kernels under Triton's interpreter:", tritonconv._runtime.interpreting(torch.device("cpu")))

# %% [markdown]
# ## How big: a CT volume and a 4K clip
#
# `conv_bytes` counts the fewest bytes a convolution moves (input, weight, output once each);
# the input and output alone must be resident for a one-shot call.

# %%
GiB = 2**30
cases = {
    "CT 512^3, 1 -> 32 ch, 3x3x3": ((1, 1, 512, 512, 512), (32, 1, 3, 3, 3)),
    "4K video 16 frames, 3 -> 64 ch, 3x3x3": ((1, 3, 16, 2160, 3840), (64, 3, 3, 3, 3)),
}
print(f"{'case':>40} {'dtype':>8} {'input GiB':>9} {'output GiB':>10} {'total GiB':>9}")
for name, (x_shape, w_shape) in cases.items():
    y_shape = shapes.conv_output_shape(x_shape, w_shape, 1, 1)
    for dtype in ("float32", "bfloat16"):
        size = shapes.DTYPE_BYTES[dtype]
        x_gib = torch.Size(x_shape).numel() * size / GiB
        y_gib = torch.Size(y_shape).numel() * size / GiB
        total = shapes.conv_bytes(x_shape, w_shape, y_shape, dtype) / GiB
        assert abs(total - x_gib - y_gib) < 1e-3  # the weight is negligible
        assert torch.Size(y_shape).numel() > 2**31  # past 32-bit offsets
        print(f"{name:>40} {dtype:>8} {x_gib:9.2f} {y_gib:10.2f} {total:9.2f}")

# %% [markdown]
# The 512³ CT volume with 32 output channels needs 16 GiB of fp32 output alone; the 4K clip's
# output is 31.6 GiB in fp32. Both exceed many GPUs, and both have more than $2^{31}$ output
# elements, which the kernel addresses with 64-bit offsets.
#
# ## Slab by slab over a generator
#
# Output depth slice $o$ reads input slices $o\,s_d - p_d + j\,d_d$ for $j < k_d$. A slab of
# output slices $[o_0, o_1)$ therefore needs input slices
# $[o_0 s_d - p_d,\; (o_1 - 1) s_d - p_d + (k_d - 1) d_d + 1)$, clipped to the volume, with
# zero slices standing in for the depth padding. The generator below yields the volume two
# slices at a time; slabs are convolved with depth padding 0 (supplied as explicit zero
# slices) and the results concatenated.

# %%
def slices(volume, step):
    """A generator that yields (N, C, d, H, W) slabs of a volume, as a data loader would."""
    for start in range(0, volume.shape[2], step):
        yield volume[:, :, start:start + step]


def conv3d_by_slabs(gen, weight, stride, padding, dilation, out_per_slab):
    kd, (sd, pd, dd) = weight.shape[2], (stride[0], padding[0], dilation[0])
    held = torch.cat(list(gen), dim=2)  # the whole volume, for this demonstration only
    depth = held.shape[2]
    d_out = shapes.conv_output_size(depth, kd, sd, pd, dd)
    outs, peak = [], 0
    for o0 in range(0, d_out, out_per_slab):
        o1 = min(d_out, o0 + out_per_slab)
        lo, hi = o0 * sd - pd, (o1 - 1) * sd - pd + (kd - 1) * dd + 1
        slab = held[:, :, max(lo, 0):min(hi, depth)]
        slab = F.pad(slab, (0, 0, 0, 0, max(0, -lo), max(0, hi - depth)))  # depth padding as zero slices
        peak = max(peak, slab.shape[2])
        outs.append(tritonconv.conv3d(slab, weight, stride=stride, padding=(0, *padding[1:]), dilation=dilation))
    return torch.cat(outs, dim=2), peak


volume = torch.randn(1, 2, 11, 9, 8)
print(f"{'k_d':>3} {'s_d':>3} {'p_d':>3} {'d_d':>3} {'out/slab':>8} {'peak input slices':>17} {'bitwise equal':>13}")
for kd, sd, pd, dd, per in [(3, 1, 1, 1, 2), (3, 2, 1, 1, 1), (2, 3, 0, 1, 2), (3, 1, 2, 2, 3), (1, 2, 0, 1, 4)]:
    w = torch.randn(3, 2, kd, 3, 3)
    stride, padding, dilation = (sd, 1, 1), (pd, 1, 1), (dd, 1, 1)
    whole = tritonconv.conv3d(volume, w, stride=stride, padding=padding, dilation=dilation)
    slabbed, peak = conv3d_by_slabs(slices(volume, 2), w, stride, padding, dilation, per)
    halo = (per - 1) * sd + (kd - 1) * dd + 1
    assert peak <= halo
    assert torch.equal(slabbed, whole)  # same kernel, same per-output sums: bit-identical
    print(f"{kd:3d} {sd:3d} {pd:3d} {dd:3d} {per:8d} {peak:17d} {str(torch.equal(slabbed, whole)):>13}")
