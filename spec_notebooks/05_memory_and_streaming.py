# %% [markdown]
# # 05 · Memory: how big the tensors are, and slab-wise computation
#
# Section 5 of the design document: CT/MRI volumes and 4K video can exceed GPU memory, so
# data is streamed with generators (`yield`), slice by slice. This notebook sizes the
# tensors with `tritonconv.shapes`, plans slabs with `tritonconv.memory.plan_stream`, and
# shows that `tritonconv.streaming.conv3d_stream` over a generator, holding only a halo of
# $(k_d - 1)\, d_d + 1$ input slices plus the current chunk, equals the one-shot convolution
# of the whole volume; then the causal 1D stream of real-time telemetry.

# %%
import itertools
import json
import math
from pathlib import Path

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
# Output depth slice $o$ reads input slices $o\,s_d - p_d + j\,d_d$ for $j < k_d$. A chunk of
# output slices $[o_0, o_1)$ therefore needs input slices
# $[o_0 s_d - p_d,\; (o_1 - 1) s_d - p_d + (k_d - 1) d_d + 1)$: $(o_1 - o_0 - 1) s_d + (k_d - 1) d_d + 1$
# of them, zero slices standing in for the depth padding. `conv3d_stream` keeps exactly that
# ring on the device and drops (or never copies, when the stride skips them) the slices no
# later output reads. The generator below yields the volume in slabs of varying depth, as a
# data loader would.

# %%
from tritonconv import memory, streaming


def slabs(volume, sizes):
    """A generator of (N, C, d, H, W) slabs (a 4-D slice when d = 1), cycling through ``sizes``."""
    start, i = 0, 0
    while start < volume.shape[2]:
        d = sizes[i % len(sizes)]
        yield volume[:, :, start] if d == 1 else volume[:, :, start:start + d]
        start, i = start + d, i + 1


# Integer-valued data: every sum is exact in fp32, so "equal" below is bitwise whatever the order of additions.
volume = torch.randint(-3, 4, (1, 2, 11, 9, 8)).float()
print(f"{'k_d':>3} {'s_d':>3} {'p_d':>3} {'d_d':>3} {'chunk':>5} {'held (max)':>10} {'plan':>4} {'equal':>5}")
for kd, sd, pd, dd, chunk in [(3, 1, 1, 1, 2), (3, 2, 1, 1, 1), (2, 3, 0, 1, 2), (3, 1, 2, 2, 3), (1, 2, 0, 1, 4)]:
    w = torch.randint(-2, 3, (3, 2, kd, 3, 3)).float()
    stride, padding, dilation = (sd, 1, 1), (pd, 1, 1), (dd, 1, 1)
    whole = tritonconv.conv3d(volume, w, stride=stride, padding=padding, dilation=dilation)
    stream = streaming.conv3d_stream(slabs(volume, [2, 1, 3]), w, stride=stride, padding=padding, dilation=dilation,
                                     chunk=chunk)
    out = torch.cat(list(stream), dim=2)
    assert stream.peak_slices <= stream.plan.input_slices == (chunk - 1) * sd + (kd - 1) * dd + 1
    assert torch.equal(out, whole)
    print(f"{kd:3d} {sd:3d} {pd:3d} {dd:3d} {chunk:5d} {stream.peak_slices:10d} {stream.plan.input_slices:4d} "
          f"{str(torch.equal(out, whole)):>5}")

# %% [markdown]
# Drawn: the ring, step by step, for a $3 \times 3 \times 3$ kernel ($k_d = 3$, halo 3) with depth
# stride 1 and chunks of 2 output slices over a 10-slice volume ('same' padding: a zero slice at
# each end). Each row is one launch: the input slices on the device (orange, the slices carried over
# from the previous launch darker), and the output slices it computes (blue).

# %%
kd_r, sd_r, pd_r, chunk_r, depth_r = 3, 1, 1, 2, 10
stream = streaming.conv3d_stream((torch.randn(1, 1, 4, 4) for _ in range(depth_r)), torch.randn(1, 1, kd_r, 3, 3),
                                 padding=(pd_r, 1, 1), chunk=chunk_r)
produced = [o.shape[2] for o in stream]
d_out = shapes.conv_output_size(depth_r, kd_r, sd_r, pd_r)
fig, ax = plt.subplots(figsize=(8, 3.2))
held_before, most = set(), 0
for step, o0 in enumerate(range(0, d_out, chunk_r)):
    o1 = min(o0 + chunk_r, d_out)
    held = set(range(o0 * sd_r - pd_r, (o1 - 1) * sd_r - pd_r + kd_r))  # input slices these outputs read
    most = max(most, len(held))
    for i in held:
        pad = i < 0 or i >= depth_r
        ax.add_patch(plt.Rectangle((i, -step), 0.9, 0.42, color="0.85" if pad else
                                   ("tab:brown" if i in held_before else "tab:orange")))
    for o in range(o0, o1):
        ax.add_patch(plt.Rectangle((o, -step - 0.48), 0.9, 0.42, color="tab:blue"))
    held_before = held
ax.set_xlim(-pd_r - 0.5, depth_r + pd_r + 0.5)
ax.set_ylim(-len(produced) + 0.3, 0.7)
ax.set_xlabel("depth slice (input: orange, carried over: brown, zero padding: grey; output: blue)")
ax.set_yticks([-s for s in range(len(produced))], [f"launch {s + 1}" for s in range(len(produced))])
ax.set_title(f"k_d = {kd_r}, chunk = {chunk_r}: at most {most} input slices held", fontsize=10)
fig.tight_layout()
print(f"launches {len(produced)}, output slices per launch {produced}; slices held at most: drawn {most}, "
      f"measured by the stream {stream.peak_slices}, planned {stream.plan.input_slices}")
assert sum(produced) == d_out and stream.peak_slices <= most == stream.plan.input_slices == (chunk_r - 1) * sd_r + kd_r

# %% [markdown]
# ## Peak memory against depth, measured
#
# One shot, the whole volume is on the device with the whole output; streamed, only the ring and the
# output chunks: the one being computed and the one the consumer's loop still holds. `memory.TensorBytes` measures the bytes of
# tensor storage alive inside a block (torch keeps allocator statistics on CUDA only; this counts what
# the same calls would hold on a GPU). Volumes of 16 × 16 slices, 1 → 4 channels, $3^3$ kernel, fp32;
# chunks of 4 output slices; the planner's figures beside the measured ones.

# %%
w_m = torch.randn(4, 1, 3, 3, 3)
w_bytes = w_m.numel() * 4
depths, one_shot_peak, stream_peak = [8, 16, 32, 64], [], []
print(f"{'depth':>5} {'one shot (measured)':>19} {'(planned)':>9} {'streamed (measured)':>19} {'(planned)':>9}")
for depth in depths:
    volume_m = torch.randn(1, 1, depth, 16, 16)  # on the host, as it arrives from disk
    with memory.TensorBytes() as held:
        y_m = tritonconv.conv3d(volume_m.clone(), w_m.clone(), padding=1)  # volume and weight copied to the device
        del y_m
    one_shot_peak.append(held.peak)
    with memory.TensorBytes() as held:
        s_m = streaming.conv3d_stream((volume_m[:, :, i] for i in range(depth)), w_m.clone(), padding=1, chunk=4)
        for o in s_m:  # a plain loop: the previous chunk is still held while the next is computed
            total = float(o.sum())
        del o
    stream_peak.append(held.peak)
    planned_one = memory.conv_device_bytes(volume_m.shape, w_m.shape, (1, 4, depth, 16, 16), "float32")
    print(f"{depth:5d} {one_shot_peak[-1]:19,d} {planned_one:9,d} {stream_peak[-1]:19,d} {s_m.plan.bytes:9,d}")
    assert one_shot_peak[-1] == planned_one  # input + weight + output: nothing else is held (channels-last fp32)
    assert stream_peak[-1] <= s_m.plan.bytes
assert len(set(stream_peak)) == 1  # flat in depth
assert all(b - w_bytes == 2 * (a - w_bytes) for a, b in zip(one_shot_peak, one_shot_peak[1:]))  # linear in depth
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(depths, [b / 2**10 for b in one_shot_peak], "o-", label="one shot")
ax.plot(depths, [b / 2**10 for b in stream_peak], "o-", label="streamed, chunk = 4")
ax.set_xlabel("volume depth (slices of 16 × 16)")
ax.set_ylabel("peak tensor KiB (measured)")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()

# %% [markdown]
# ## Planning the chunk from a memory budget
#
# With `chunk=None` the stream asks `plan_stream` for the largest chunk whose working set
# (ring of input slices + two output chunks, the one computed and the one the consumer still holds,
# + weight) fits the budget; by default 80% of the free
# GPU memory. For the 4K clip in bf16 with an 8 GiB budget:

# %%
plan = memory.plan_stream((1, 3, 2160, 3840), (64, 3, 3, 3, 3), dtype="bfloat16", budget=8 * GiB)
one_shot = memory.conv_device_bytes((1, 3, 16, 2160, 3840), (64, 3, 3, 3, 3), (1, 64, 16, 2160, 3840), "bfloat16")
print(f"one shot: {one_shot / GiB:.1f} GiB; streaming: {plan.chunk} output frames per launch, "
      f"{plan.input_slices} input frames held, {plan.bytes / GiB:.2f} GiB")
assert plan.bytes <= 8 * GiB < one_shot

# %% [markdown]
# ## A whole network, streamed: a 3-D U-Net over a slice generator
#
# Real models are networks: convolutions with batch norm, pooling, upsampling and skip
# concatenations. `tritonconv.streaming.stream(model, slices)` traces the model (`torch.fx`) and
# evaluates it lazily along depth: to produce the next output slab it asks each layer for the
# depth slices it lacks, down to the generator; each layer keeps its slabs until no consumer
# will read them again (a skip keeps exactly what its concatenation still needs) and computes
# every slice once. The result equals `model(volume)`. `streaming.plan` runs the same engine on
# shapes alone and gives the peak bytes before any data moves. The U-Net below (2 levels, batch
# norm in eval mode, transposed-conv upsampling, skips) runs on 32 × 32 slices with a budget of
# 512 KiB of tensors:

# %%
class UNet3d(torch.nn.Module):
    """conv-BN-ReLU, max-pool, conv-BN-ReLU, transposed conv up, concatenate the skip, conv-BN-ReLU, 1x1x1 head."""

    def __init__(self, c_in=1, c=4, c_out=2):
        super().__init__()
        block = lambda i, o: torch.nn.Sequential(torch.nn.Conv3d(i, o, 3, padding=1), torch.nn.BatchNorm3d(o),  # noqa: E731
                                                 torch.nn.ReLU())
        self.enc, self.pool, self.mid = block(c_in, c), torch.nn.MaxPool3d(2), block(c, 2 * c)
        self.up = torch.nn.ConvTranspose3d(2 * c, c, 2, stride=2)
        self.dec, self.head = block(2 * c, c), torch.nn.Conv3d(c, c_out, 1)

    def forward(self, x):
        skip = self.enc(x)
        return self.head(self.dec(torch.cat([skip, self.up(self.mid(self.pool(skip)))], dim=1)))


unet = UNet3d().eval()
for m in unet.modules():
    if isinstance(m, torch.nn.BatchNorm3d):  # running statistics of a trained model, more or less
        m.running_mean.uniform_(-0.2, 0.2)
        m.running_var.uniform_(0.8, 1.2)
budget, side = 512 * 2**10, 32
depths, whole_peak, streamed_peak, planned_peak = [16, 32, 64, 128], [], [], []
print(f"{'depth':>5} {'whole volume (measured)':>23} {'streamed (measured)':>19} {'(planned)':>9} {'max |diff|':>10}")
with torch.no_grad():
    for depth in depths:
        volume_u = torch.randn(1, 1, depth, side, side)
        with memory.TensorBytes() as held:
            whole = unet(volume_u.clone())  # the volume copied to the device, then one call
        whole_peak.append(held.peak)
        with memory.TensorBytes() as held:
            run = streaming.stream(unet, (volume_u[:, :, i] for i in range(depth)), chunk=2)
            diff = 0.0
            for o_u, slab in zip(itertools.count(0, 2), run):  # each slab compared, then dropped
                diff = max(diff, (slab - whole[:, :, o_u:o_u + slab.shape[2]]).abs().max().item())
        streamed_peak.append(held.peak)
        planned_peak.append(streaming.plan(unet, (1, 1, side, side), depth, chunk=2).peak_bytes)
        print(f"{depth:5d} {whole_peak[-1]:23,d} {streamed_peak[-1]:19,d} {planned_peak[-1]:9,d} {diff:10.1e}")
        assert diff < 1e-5 and streamed_peak[-1] <= planned_peak[-1] <= budget
        del whole
assert whole_peak[-1] > budget and planned_peak[-2] == planned_peak[-1]  # whole grows, the stream stays put
print(f"budget {budget:,d} B: the whole volume exceeds it from depth {next(d for d, b in zip(depths, whole_peak) if b > budget)}; "
      f"the stream holds {planned_peak[-1] / 2**10:.0f} KiB at any depth")
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(depths, [b / 2**10 for b in whole_peak], "o-", label="whole volume")
ax.plot(depths, [b / 2**10 for b in streamed_peak], "o-", label="streamed (measured)")
ax.plot(depths, [b / 2**10 for b in planned_peak], "k+", label="streamed (planned)")
ax.axhline(budget / 2**10, color="0.5", ls="--", lw=0.8)
ax.set_xlabel(f"volume depth ({side} × {side} slices)")
ax.set_ylabel("peak tensor KiB (measured)")
ax.set_title("3-D U-Net, streamed two slices at a time", fontsize=10)
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()

# %% [markdown]
# What is done instead without streaming is patch-based sliding-window inference (MONAI's
# `sliding_window_inference`): the volume is cut into overlapping patches, each goes through the
# whole network on its own, and the overlaps are averaged. Along depth, with patches of 16 slices
# overlapping by 8: the overlap is computed twice, and near every seam the result differs from the
# whole-volume output, because a patch's network sees zero padding where the volume goes on.

# %%
depth, patch, step = 64, 16, 8
volume_u = torch.randn(1, 1, depth, side, side)
with torch.no_grad():
    whole = unet(volume_u)
    blended, weight, computed = torch.zeros_like(whole), torch.zeros(1, 1, depth, 1, 1), 0
    for start in range(0, depth - patch + 1, step):
        blended[:, :, start:start + patch] += unet(volume_u[:, :, start:start + patch])
        weight[:, :, start:start + patch] += 1
        computed += patch
    blended /= weight
    streamed = torch.cat(list(streaming.stream(unet, (volume_u[:, :, i] for i in range(depth)), chunk=4)), 2)
seam = (blended - whole).abs().amax(dim=(0, 1, 3, 4))
print(f"sliding window: {computed / depth:.2f}x the slices through the network, max |diff| from the whole volume "
      f"{seam.max():.2e} (largest at depth {int(seam.argmax())})")
print(f"streamed      : 1.00x, max |diff| {(streamed - whole).abs().max():.1e}")
assert seam.max() > 1e-3 and (streamed - whole).abs().max() < 1e-5
fig, ax = plt.subplots(figsize=(5, 2.6))
ax.semilogy(range(depth), seam.clamp_min(1e-9), label="sliding window (16, overlap 8)")
ax.semilogy(range(depth), (streamed - whole).abs().amax(dim=(0, 1, 3, 4)).clamp_min(1e-9), label="streamed")
ax.set_xlabel("output depth slice")
ax.set_ylabel("max |difference| from whole")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()

# %% [markdown]
# ## Sharding one volume across GPUs: halos, and when to shard
#
# Training on a whole CT volume needs every activation at once: there the volume is split across
# GPUs along spatial axes (`tritonconv.distributed`, on `torch.distributed` groups or a `DTensor`).
# Along a sharded axis rank $r$ holds input slices $[s_r, e_r)$ and owns an output range
# $[o_r, o_{r+1})$: by default `torch.chunk`'s split of the output (balanced work; a `DTensor` has it),
# or, as in the table below, the windows that start in its slab, $o_r = \lceil (s_r + p) / s \rceil$
# (halos from the right only). It reads the window
# $[o_r s - p,\; (o_{r+1} - 1) s - p + (k-1) d + 1)$: its own slices, slices of every rank
# that holds the rest, and zeros only past the volume's true edges. `shapes.Halo.plan` computes that
# from the shard sizes; below, each rank's part is computed on its own window (one process playing
# four ranks, torch.chunk's uneven shards) and the parts put together equal the one-shot convolution.
# The multi-process version (gloo, 2 and 4 processes, forward and every gradient, two sharded axes,
# DTensors) is in `tests/test_distributed.py`.

# %%
from tritonconv import distributed


def window(x, halo, r, dim):
    """Rank r's window along dim: zeros, the input slices lo..hi (from whichever ranks hold them), zeros."""
    zeros = lambda n: x.new_zeros(*x.shape[:dim], n, *x.shape[dim + 1:])  # noqa: E731
    return torch.cat([zeros(halo.before[r]), x.narrow(dim, halo.lo[r], halo.hi[r] - halo.lo[r]),
                      zeros(halo.after[r])], dim)


x_d = torch.randn(1, 2, 19, 6, 5)
w_d = torch.randn(3, 2, 3, 3, 3)
sizes_d = list(shapes.chunk_sizes(19, 4))
halo = shapes.Halo.plan(sizes_d, kernel=3, stride=2, padding=(1, 1), dilation=1)
whole_d = tritonconv.conv3d(x_d, w_d, stride=(2, 1, 1), padding=1)
parts = []
print(f"{'rank':>4} {'slices':>8} {'outputs':>8} {'window':>12} {'halo in':>7} {'out':>4}")
for r in range(4):
    parts.append(tritonconv.conv3d(window(x_d, halo, r, 2), w_d, stride=(2, 1, 1), padding=(0, 1, 1)))
    print(f"{r:4d} {str(sizes_d[r]):>8} {str((halo.outputs[r], halo.outputs[r + 1])):>8} "
          f"{f'{halo.before[r]}+[{halo.lo[r]},{halo.hi[r]})+{halo.after[r]}':>12} {halo.received(r):7d} "
          f"{halo.sent(r):4d}")
    assert parts[-1].shape[2] == halo.outputs[r + 1] - halo.outputs[r]
assert torch.allclose(torch.cat(parts, 2), whole_d, rtol=1e-5, atol=1e-5)
print("the ranks' parts, concatenated, equal the one-shot convolution:", torch.allclose(torch.cat(parts, 2), whole_d,
                                                                                          rtol=1e-5, atol=1e-5))

# %% [markdown]
# Two axes at once (a $2 \times 2$ mesh over height and width): the exchange runs along one axis, then
# along the other on slabs that already carry the first halo, so the corner a window needs arrives in
# the second step. Below, the four ranks' windows built that way (first along H, then along W, each
# from the other rank's extended slab) give the whole convolution, corners included:

# %%
x_m = torch.randn(1, 2, 3, 9, 7)
w_m = torch.randn(3, 2, 3, 3, 3)
plan_h = shapes.Halo.plan(shapes.chunk_sizes(9, 2), kernel=3, padding=(1, 1))
plan_w = shapes.Halo.plan(shapes.chunk_sizes(7, 2), kernel=3, padding=(1, 1))
rows = []
for a in range(2):
    along_h = window(x_m, plan_h, a, 3)  # step 1: H halos (from the rank below)
    rows.append(torch.cat([tritonconv.conv3d(window(along_h, plan_w, b, 4), w_m, padding=(1, 0, 0))  # step 2: W
                           for b in range(2)], 4))
whole_m = tritonconv.conv3d(x_m, w_m, padding=1)
assert torch.allclose(torch.cat(rows, 3), whole_m, rtol=1e-5, atol=1e-5)
print("2 x 2 mesh, windows built along H then W, equal the one-shot convolution:",
      torch.allclose(torch.cat(rows, 3), whole_m, rtol=1e-5, atol=1e-5))

# %% [markdown]
# What each rank moves and computes, from `memory.shard_shares` (the same plans the distributed ops
# use): for a $64^3$ volume with 8 channels in bf16, 16 ranks as 16 depth slabs or as a $4 \times 4$ mesh
# over height and width. A slab receives two whole $64 \times 64$ faces; a pencil two faces of
# $64 \times 16$ and two of $64 \times 18$ (the second exchange carries the first one's halo):
# about half the bytes, for the same work.

# %%
for label, shards in (("16 depth slabs", {2: [4] * 16}), ("4 x 4 mesh (H, W)", {3: [16] * 4, 4: [16] * 4})):
    shares = memory.shard_shares((1, 8, 64, 64, 64), (8, 8, 3, 3, 3), shards, padding=1)
    worst = max(shares, key=lambda s: s.received)
    print(f"{label:>18}: most received {worst.received / 2**10:6.1f} KiB (rank {worst.coords}), "
          f"work per rank {min(s.macs for s in shares) / 1e6:.1f}-{max(s.macs for s in shares) / 1e6:.1f} M MACs, "
          f"held {max(s.device_bytes for s in shares) / 2**20:.2f} MiB")
slabs, pencils = (max(s.received for s in memory.shard_shares((1, 8, 64, 64, 64), (8, 8, 3, 3, 3), sh, padding=1))
                  for sh in ({2: [4] * 16}, {3: [16] * 4, 4: [16] * 4}))
assert pencils < 0.6 * slabs

# %% [markdown]
# On paper (no machine here has several GPUs): the predicted strong-scaling efficiency of the
# suite's 3-D layers sharded along depth over $P$ GPUs, $E(P) = T_1 / (P\,T_P)$ with
# $T_P$ = the busiest rank's share of the work (`shard_shares`' MACs) at the layer's measured rate
# (NVIDIA H200, bf16, tuned, timed call by call: `benchmarks/results/`) plus its halo
# (`shard_shares`' received bytes) at NVLink 4's 450 GB/s per direction (datasheet, H100/H200) plus
# 10 us per exchange, without overlap (pessimistic). Since the halo is a fixed number of slices and the
# work shrinks as $1/P$, efficiency falls when a rank's slab gets thin or the layer is fast; the CT
# volume of this notebook (512³, 1 → 32 channels, bf16, at the `ct_anisotropic` layer's measured rate)
# is the case sharding is for.

# %%
NVLINK, LATENCY = 450e9, 10e-6  # bytes/s one way (datasheet), seconds per exchange (assumed)
ROOT = Path.cwd().parent  # the repository (or the installed share/tritonconv): suite and measured rows
suite_s = json.loads((ROOT / "benchmarks" / "shapes.json").read_text())
tuned = {r["name"]: r for r in map(json.loads, (ROOT / "benchmarks" / "results" /
                                               "2026-11-26_NVIDIA_H200_tuned.jsonl").read_text().splitlines())
         if "speedup_vs_cudnn" in r}
layers = {e["name"]: shapes.suite_problem("conv3d", e) for e in suite_s["conv3d"]}
layers["CT 512^3 (1 -> 32, 3x3x3)"] = dict(input_shape=(1, 1, 512, 512, 512), weight_shape=(32, 1, 3, 3, 3),
                                          stride=1, padding=1, dilation=1, groups=1)
rate_of = {name: shapes.conv_flops(p["input_shape"], p["weight_shape"], p["output_shape"]) /
           (tuned[name]["tritonconv"]["ms"] * 1e-3) for name, p in layers.items() if name in tuned}
rate_of["CT 512^3 (1 -> 32, 3x3x3)"] = rate_of["ct_anisotropic"]
ranks = [1, 2, 4, 8]
fig, ax = plt.subplots(figsize=(5.5, 3.2))
print(f"{'layer':>26} {'T1 ms':>8} " + " ".join(f"{'E(' + str(p) + ')':>6}" for p in ranks))
for name, p in layers.items():
    if name not in rate_of:
        continue
    x_shape, w_shape = p["input_shape"], p["weight_shape"]
    t1 = 2 * sum(s.macs for s in memory.shard_shares(x_shape, w_shape, {2: [x_shape[2]]}, p["stride"], p["padding"],
                                                      p["dilation"])) / rate_of[name]
    eff = []
    for n_ranks in ranks:
        shares = memory.shard_shares(x_shape, w_shape, {2: list(shapes.chunk_sizes(x_shape[2], n_ranks))},
                                     p["stride"], p["padding"], p["dilation"])
        t_p = max(2 * s.macs / rate_of[name] + (s.received / NVLINK + LATENCY if n_ranks > 1 else 0.0)
                  for s in shares)
        eff.append(t1 / (n_ranks * t_p))
    ax.plot(ranks, eff, "o-", label=name)
    print(f"{name:>26} {t1 * 1e3:8.3f} " + " ".join(f"{e:6.2f}" for e in eff))
    assert all(0 < e <= 1.0 + 1e-9 for e in eff)
ax.set_xlabel("GPUs (depth shards)")
ax.set_ylabel("predicted efficiency")
ax.set_xticks(ranks)
ax.set_ylim(0, 1.05)
ax.legend(fontsize=6)
ax.grid(alpha=0.3)
fig.tight_layout()

# %% [markdown]
# Read: the suite's layers take 0.08-0.9 ms on one H200, so the 10 us of an exchange is already a
# large part of a 4-way share (efficiency 0.5-0.95 at 4 GPUs, 0.2-0.9 at 8; the strided ResNet layer,
# 4 output slices for 8 ranks, loses most), and sharding a single such layer pays only for its memory. The
# CT volume's layer (3.7 ms at that rate) keeps 97% of its efficiency at 8 GPUs. So: **stream** for
# inference when a volume does not fit one GPU (no communication, memory flat in depth; the section
# above); **shard** for training, where the backward pass needs the activations of the whole volume at
# once and no single GPU holds them, and for throughput on volumes large enough that each rank's slab is
# many halos thick; past a few ranks per axis, shard two axes (a mesh), whose halo surface per rank
# shrinks. (Predictions from datasheet bandwidth and call-by-call timings; no multi-GPU machine has
# measured them.)

# %% [markdown]
# ## Real-time 1D: a causal stream
#
# Telemetry arrives in chunks of any length. `StreamingConv1d` carries the last
# $(K - 1)\,d$ samples, so the concatenated outputs equal the offline causal convolution
# $y = \mathrm{conv1d}(\mathrm{pad}_{left}(x, (K-1)d), w)$ for any chunking:

# %%
x = torch.randn(1, 4, 50)
w, b = torch.randn(6, 4, 3), torch.randn(6)
layer = streaming.StreamingConv1d(w, b, dilation=4)
chunks = [layer.step(x[..., a:z]) for a, z in [(0, 1), (1, 8), (8, 9), (9, 31), (31, 50)]]
offline = F.conv1d(F.pad(x.double(), (8, 0)), w.double(), b.double(), dilation=4)
err = ((torch.cat(chunks, -1).double() - offline).norm() / offline.norm()).item()
assert err < 1e-5
print("chunk lengths 1, 7, 1, 22, 19 -> output", tuple(torch.cat(chunks, -1).shape), "rel. L2 error < 1e-5:", err < 1e-5)
