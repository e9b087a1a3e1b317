"""Kernel configurations: the config spaces, the heuristic default, and how a launch picks one.

The dispatcher describes a launch as a :class:`Problem` and calls :func:`choose` (once per call signature):

1. Under Triton's interpreter: the heuristic config, always (CPU runs are reproducible and
   never read a tuning cache).
2. On a GPU: this process's memo, then the persistent caches (:mod:`tritonconv.cache`: the
   user's, then the one shipped in the package), exact shape first, then the shape's bucket.
3. Nothing cached: with ``TRITONCONV_AUTOTUNE=1`` (the default) candidates of the kernel's config
   space are compiled at once on threads (:func:`tritonconv._runtime.compile_ahead`), then timed
   (:func:`do_bench_median`: replays of a CUDA graph), each verified against the
   heuristic config's output, and the winner is written to the user cache: the
   ``TRITONCONV_AUTOTUNE_TOP`` (6) that the dispatcher's model (:mod:`tritonconv.costmodel`)
   predicts fastest, and the default config (:func:`shortlist`); ``TRITONCONV_AUTOTUNE_TOP=0``
   times every candidate. With ``TRITONCONV_AUTOTUNE=0`` the default config is used: the heuristic's,
   a weight gradient's split count the model's pick (:func:`default`).

Bucketing: an unseen shape reuses the config of a tuned shape that has the same kernel,
dtype, layout, channels, kernel size, stride, dilation and groups and whose GEMM row count
(output positions, or the reduction length for the weight gradient) rounds up to the same
power of two. Batch and spatial sizes vary within a bucket; channel counts never do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import logging
import math
import os
import warnings
from collections import Counter
from collections.abc import Callable, Collection
from fractions import Fraction

import torch
import triton

from . import _runtime, cache, geometry
from ._checks import ConvSpec
from ._descriptors import (
    flat_geometry,
    folds_stride,
    nc_box_runs,
    nc_dealt,
    nc_flat,
    nc_row_shift,
    nc_row_width,
    nc_volume,
    seam_share,
)
from ._runtime import TensorDescriptor
from .geometry import DEPTHWISE_KIND, KINDS, Config, Problem
from .kernels import banded, depthwise, tma, weight_grad
from .shapes import cdiv, next_power_of_2

log = logging.getLogger("tritonconv")

#: What happened at each config choice of this process: ``memo``, ``cache``, ``bucket``,
#: ``tuned``, ``heuristic``, ``interpreter``. Tests and the CLI read it.
stats: Counter = Counter()

# --- config spaces: candidates before pruning, one list per kernel --------------------------------
# (block_m, block_n, block_k, num_warps, num_stages); the tutorial matmul's shapes plus small-N
# tiles for few output channels. Pruning clamps each block to the problem and drops duplicates.
SPACES: dict[str, list[tuple[int, int, int, int, int]]] = {
    "conv": [
        (128, 256, 64, 8, 3), (256, 128, 64, 8, 3), (128, 128, 64, 8, 3), (128, 128, 32, 4, 4),
        (128, 64, 64, 4, 4), (64, 128, 64, 4, 4), (128, 64, 32, 4, 4), (64, 64, 64, 4, 3),
        (64, 32, 32, 4, 4), (128, 32, 32, 4, 4), (256, 64, 32, 8, 3), (256, 32, 32, 4, 3),
        (64, 16, 16, 2, 4), (128, 16, 16, 4, 3),
    ],
    "conv_wgrad": [  # rows: output channels, columns: input channels, reduction: positions
        (128, 128, 64, 8, 3), (128, 64, 64, 4, 3), (64, 128, 64, 4, 3), (64, 64, 64, 4, 4),
        (64, 64, 128, 4, 3), (32, 32, 128, 4, 4), (16, 16, 256, 4, 3), (64, 32, 64, 4, 4),
    ],
    "conv_dw": [  # (positions, channels, -, warps, stages): no reduction tile; also conv_dw_t
        (64, 64, 16, 4, 1), (128, 32, 16, 4, 1), (32, 128, 16, 4, 1), (128, 64, 16, 8, 1),
        (256, 16, 16, 4, 1), (64, 128, 16, 8, 1), (256, 32, 16, 8, 1), (16, 256, 16, 4, 1),
    ],
    "conv_dw_wgrad": [  # (taps at most, channels, positions a step, warps, stages), dw_wgrad_tile fits them;
        # channels-last tiles span 32 channels or more (16-byte loads), NC(D)HW ones 32 positions or more; one tap a
        # program: NC(D)HW rows read in runs (the heuristic's), and on Triton 3.6 channels-last 3 x 3 layers (326 warp
        # instructions per 1000 useful multiply-adds where 4 taps issued 389; 3.9: 326 and 240)
        (8, 64, 16, 4, 1), (4, 64, 32, 4, 1), (16, 64, 8, 4, 1), (32, 64, 4, 4, 1), (2, 64, 64, 4, 1), (8, 32, 32, 4, 1),
        (8, 128, 16, 8, 1), (4, 16, 128, 4, 1), (8, 8, 128, 4, 1), (4, 8, 256, 4, 1), (16, 16, 32, 4, 1),
        (2, 16, 256, 4, 1), (8, 16, 128, 8, 1), (1, 64, 128, 4, 1), (1, 128, 64, 4, 1),
    ],
}
SPACES["conv_t"] = SPACES["conv"]
SPACES["conv_dw_t"] = SPACES["conv_dw"]
SPLITS = (1, 2, 4, 8, 16, 32)  # weight-gradient split counts tried
WIDE_DTYPES = ("float32", "float64")  # 4- and 8-byte operands: the pointer kernel's tiles step few channels (wide_step)
FORWARD_SPLITS = (1, 2, 4)  # for outputs of at most SMALL_OUTPUT elements (conv, conv_t)
SMALL_OUTPUT = 2**21
DEFAULT_SMEM = 232448  # bytes of shared memory per block on H100/H200 (opt-in), for pruning without a GPU


def clamp_pow2(value: int, low: int, high: int) -> int:
    return max(low, min(high, next_power_of_2(max(value, 1))))


def fit_pow2(value: int, low: int, high: int, slack: float = 1.15) -> int:
    """The widest power of two in ``[low, high]`` whose multiples cover ``value`` with at most ``slack`` of it
    (a tile padding a dimension less: 144 -> 32, 288 -> 64, 576 -> 128 where :func:`clamp_pow2` gives 128,
    issuing 1.3-1.8x the multiply-adds); when none does, the one padding least."""
    sizes = [1 << i for i in range(low.bit_length() - 1, high.bit_length()) if low <= 1 << i <= high]
    padded = {p: cdiv(max(value, 1), p) * p for p in sizes}
    fits = [p for p in sizes if padded[p] <= slack * max(value, 1)]
    return max(fits) if fits else min(sizes, key=lambda p: (padded[p], -p))


def within_slack(sizes: tuple[int, ...], tiles: tuple[int, ...], padding: float, slack: float = 1.15,
                 low: int = 16) -> tuple[int, ...]:
    """Channel tiles (powers of two, each at most the one given and at least ``low``) narrowed where the positions'
    ``padding`` times theirs would pass ``slack``: a descriptor patch padding a 14 x 14 plane 1.14x leaves 576 channels
    the 64-wide tile that covers them exactly, not the 128-wide one padding them 1.11x (1.27x together)."""
    out = []
    for size, tile in zip(sizes, tiles):
        tile = fit_pow2(size, min(low, tile), tile, slack / padding)
        padding *= cdiv(max(size, 1), tile) * tile / max(size, 1)
        out.append(tile)
    return tuple(out)


def smem_bytes(config: Config, itemsize: int) -> int:
    """Shared memory the software pipeline holds: ``num_stages`` A and B tiles."""
    return config.num_stages * (config.block_m * config.block_k + config.block_k * config.block_n) * itemsize


def shared_margin(problem: Problem, config: Config) -> float:
    """How many times its pipeline's operand tiles (:func:`smem_bytes`) a launch may hold in shared memory, beside 1 KiB
    of barriers: the most ptxas's counts reach over them on the committed compile reports (sm_80, sm_90; Triton 3.9
    and 3.6), with sm_86's and sm_120's compiles of the suite's defaults: 2 on NC(D)HW pointer launches (a weight
    gradient's rows moved through shared memory, a tile converted for its store: ``resnet50_l2_3x3s2``'s NCHW weight
    gradient 98,304 bytes for 49,152 of tiles on sm_90), 1.5 on NC(D)HW descriptor ones (1.32 at most) and on 4- and
    8-byte channels-last pointer ones (1.31), 1 on the others (16- and 8-bit channels-last: their tiles)."""
    if problem.layout == "contiguous":
        return 1.5 if config.tile_h else 2.0
    return 1.5 if problem.itemsize >= 4 and not config.tile_h else 1.0


def fits_shared(problem: Problem, config: Config, smem_limit: int) -> bool:
    """Whether a GEMM launch of ``problem`` with ``config`` surely fits ``smem_limit`` bytes of shared memory a block
    (:func:`shared_margin` times its tiles, and 1 KiB of barriers)."""
    return shared_margin(problem, config) * smem_bytes(config, problem.itemsize) + 1024 <= smem_limit


def fit_shared(problem: Problem, config: Config, smem_limit: int) -> Config:
    """``config``, or where a GPU's ``smem_limit`` bytes of shared memory a block may not hold it (:func:`fits_shared`;
    GPUs with less than an H100's: an A100's 163 KiB, the 99 KiB of Ampere and Ada cards and of Blackwell's GeForce
    ones, a Turing card's 64 KiB), one that fits: fewer stages (to 2), then the pointer kernel's tiles for a descriptor
    config, then shorter steps and smaller tiles (to 16). Without it such a GPU's first call of a layer whose default
    holds more stopped with Triton's ``OutOfResources`` (compiled for sm_86: ``unet3d_64cube``'s NCDHW weight gradient
    needs 114,688 bytes). Conservative where Triton stages no copies: compiled for sm_75 (Turing), the four suite
    launches furthest past their estimate held 64 KiB or less unfitted. The FMA depthwise kernels hold no tiles there:
    unchanged; the banded kernel's (:func:`banded_config`) take fewer segments a step (to 16), then fewer channels (to
    4), else the FMA kernel's tiles."""
    if smem_limit >= DEFAULT_SMEM or (problem.kind.startswith("conv_dw") and not config.fold):
        return config
    if problem.kind.startswith("conv_dw"):
        wgrad = problem.kind == "conv_dw_wgrad"
        while banded.shared_bytes(problem.spec, config, problem.itemsize, wgrad) + 1024 > smem_limit:
            if config.block_k > 16:
                config = dataclasses.replace(config, block_k=config.block_k // 2)
            elif config.block_n > 4:
                config = dataclasses.replace(config, block_n=config.block_n // 2)
            else:
                return fma_depthwise_wgrad(problem) if problem.kind == "conv_dw_wgrad" else fma_depthwise(problem)
        return config
    while not fits_shared(problem, config, smem_limit):
        if config.num_stages > 2:
            config = dataclasses.replace(config, num_stages=config.num_stages - 1)
        elif config.tile_h:
            config = dataclasses.replace(config, tile_h=0, tile_b=1, planes=0)
        elif config.block_k > 16:
            config = dataclasses.replace(config, block_k=config.block_k // 2)
        elif max(config.block_m, config.block_n) > 16:  # the longer side halved
            side = "block_m" if config.block_m >= config.block_n else "block_n"
            config = dataclasses.replace(config, **{side: getattr(config, side) // 2})
        else:
            break
    return config


def dw_wgrad_tile(problem: Problem, taps: int, channels: int, elements: int) -> tuple[int, int, int]:
    """A depthwise weight gradient's tile (:func:`tritonconv.kernels.depthwise._depthwise_weight_grad_kernel`):
    ``(taps, channels, positions a step)``, the first two the problem's own (powers of two) up to ``taps`` and
    ``channels``, the positions filling ``elements`` sums (at least one, at most the problem's)."""
    rows, cols, red = problem.gemm
    block_m, block_n = clamp_pow2(rows, 1, taps), clamp_pow2(cols, 1, channels)
    return block_m, block_n, clamp_pow2(red, 1, max(1, elements // (block_m * block_n)))


def dw_wgrad_runs(problem: Problem, config: Config) -> int:
    """The runs (elements) in which a depthwise weight gradient with ``config`` reads x's NC(D)HW rows, a program's taps
    then one width tap's, or 0 (:func:`tritonconv.kernels.depthwise.wgrad_runs`, on stand-ins laid out as the
    problem's)."""
    if problem.kind != "conv_dw_wgrad" or problem.layout == "channels_last":
        return 0
    dtype = getattr(torch, problem.dtype)
    dy, x = (standin(shape, dtype, False, "meta") for shape in (problem.output_shape, problem.input_shape))
    vec = depthwise.wgrad_runs(dy, x, problem.spec, config)[1]
    return vec if vec > 1 else 0


def candidates(problem: Problem, smem_limit: int = DEFAULT_SMEM, tma: bool = False, sm_count: int = 132,
               predict: Predict | None = None) -> list[Config]:
    """The kernel's config space pruned for ``problem``: no block far above its dimension, none over smem; and the
    default config (for a GPU of ``sm_count`` SMs, its split count by ``predict``: :func:`default`) and the heuristic's
    (:func:`baselines`).

    ``tma``: the device has a tensor memory accelerator (compute capability 9+); eligible
    problems then also try the descriptor kernels (:func:`tma_candidates`), and NC(D)HW ones those kernels on
    channels-innermost copies of their activations (:func:`relaid`).
    """
    rows, cols, red = problem.gemm
    itemsize = torch.empty(0, dtype=getattr(torch, problem.dtype)).element_size()
    wgrad = problem.kind.endswith("wgrad")
    splits = SPLITS if wgrad else FORWARD_SPLITS if problem.kind in ("conv", "conv_t") and small_output(problem) else (1,)
    # the forward tries both (its folded gather is slow per multiply-add); a weight gradient folds what it can (the
    # columns' offsets are hoisted out of its loop: fewer multiply-adds and integer instructions per useful one)
    folds = ((wgrad_max_fold(problem),) if wgrad else (0, 1)) if can_fold(problem) else (0,)
    low_k = min_k(problem)
    # fp32 and fp64 GEMM tiles step at most 32 channels: their 64-wide steps spill kilobytes (see heuristic), which the
    # tuning would compile only to drop, and the model, blind to spills, would rank among its best
    wide = problem.dtype in WIDE_DTYPES and not problem.kind.startswith("conv_dw")
    out: list[Config] = []
    if problem.kind == "conv_dw_wgrad":  # tiles of taps x channels x positions (no shared memory)
        for (bm, bn, bk, warps, stages), split in itertools.product(SPACES[problem.kind], splits):
            if (bn if problem.layout == "channels_last" else bk) < 32:
                continue
            tile = dw_wgrad_tile(problem, bm, bn, bm * bn * bk)
            cfg = Config(*tile, group_m=1, num_warps=warps, num_stages=stages, split_k=split)
            if (split == 1 or cdiv(red, split) >= 8 * tile[2]) and cfg not in out:  # 8 steps a split at least
                out.append(cfg)
        out += [cfg for cfg in banded_candidates(problem, sm_count, smem_limit) if cfg not in out]
        return out + [cfg for cfg in baselines(problem, sm_count, tma, predict, smem_limit) if cfg not in out]
    for (bm, bn, bk, warps, stages), split, fold in itertools.product(SPACES[problem.kind], splits, folds):
        bk = min(bk, 32) if wide else bk
        reduction = problem.taps * red if fold and not wgrad else cdiv(red, split)
        cfg = Config(  # unused blocks of the depthwise kernels stay at their declared 16
            block_m=clamp_pow2(rows, 16, bm),
            block_n=clamp_pow2(cols * (folded_taps(problem, fold) if wgrad else 1), 16, bn),
            block_k=bk if problem.kind in ("conv_dw", "conv_dw_t") else clamp_pow2(reduction, low_k, max(bk, low_k)),
            group_m=8 if problem.kind in ("conv", "conv_t") else 1,
            num_warps=warps if wgrad or bm * bn >= 64 * 64 else min(warps, 4),
            num_stages=stages, split_k=split, fold=fold,
        )
        if split > 1 and ((fold and not wgrad) or cdiv(red, split) < (4 if wgrad else 1) * cfg.block_k):
            continue  # each partial sum keeps at least four reduction steps (forward: one per tap)
        if smem_bytes(cfg, itemsize) <= smem_limit and cfg not in out:
            out.append(cfg)
    if tma and tma_eligible(problem):
        out += [cfg for cfg in tma_candidates(problem) if smem_bytes(cfg, itemsize) <= smem_limit]
    if tma:
        out += [cfg for cfg in relaid(problem) if smem_bytes(cfg, itemsize) <= smem_limit]
    out += [cfg for cfg in banded_candidates(problem, sm_count, smem_limit) if cfg not in out]
    # always candidates (their tiles may fit the channels better than the space's powers of two)
    return out + [cfg for cfg in baselines(problem, sm_count, tma, predict, smem_limit) if cfg not in out]


def baselines(problem: Problem, sm_count: int, tma: bool, predict: Predict | None,
              smem_limit: int = DEFAULT_SMEM) -> list[Config]:
    """The default config (:func:`default`) and, where the model moved its split count, the heuristic's own (both
    fitted to ``smem_limit``)."""
    chosen, own = default(problem, sm_count, tma, predict, smem_limit), default(problem, sm_count, tma, None, smem_limit)
    return [chosen] if own == chosen else [chosen, own]


TMA_SPACE = ((128, 64, 4, 4), (128, 64, 8, 3), (256, 64, 8, 3), (64, 64, 4, 4))  # block_n, block_k, warps, stages


def fp8(problem: Problem) -> bool:
    """Whether the problem's operands are 8-bit floats (``tritonconv.fp8``)."""
    return problem.dtype.startswith("float8")


def mma_tiles(problem: Problem) -> bool:
    """Whether the heuristic may give ``problem`` descriptor tiles: its products are tensor-core MMAs. 16- and 8-bit
    operands, and fp32 multiplied in TF32 (``Problem.tf32``; an NC(D)HW box, which the TF32 MMA cannot read from shared
    memory as it is, goes through registers, and the 51 suite kernels that take them still issue 2.0-7.0x fewer warp
    instructions per multiply-add on sm_90 than on the pointer kernel's 16-wide TF32 tiles); not IEEE fp32, whose
    products are FMA loops (``benchmarks/NOTES.md``, 2026-12-02)."""
    return problem.dtype in ("float16", "bfloat16") or fp8(problem) or problem.tf32


TF32_STEP = 32
"""The reduction step of TF32 descriptor tiles (channels; positions in a weight gradient): 4-byte operands fill
shared memory twice as fast as 16-bit ones, and on the suite's 3x3 forwards 32-wide steps issued 1.9-2.2 warp
instructions per 1000 multiply-adds on sm_90 where 16-wide ones issued 3.4-4.0 (both with the patch through
registers; transposed, 32-wide: 1.5-1.8; the pointer kernel's 16-wide TF32 tiles: 4.4-9.2)."""


def wide_step(problem: Problem) -> int:
    """The widest reduction step of a 4- or 8-byte pointer tile (:data:`WIDE_DTYPES`): 16 for IEEE fp32 and fp64, whose
    products hold their operands in registers (see :func:`heuristic`), :data:`TF32_STEP` for TF32 MMAs."""
    return TF32_STEP if problem.tf32 else 16


def min_k(problem: Problem) -> int:
    """The smallest reduction block ``tl.dot`` takes: 32 for 8-bit operands (the fp8 MMA's K), else 16."""
    return 32 if fp8(problem) else 16


NARROWEST_MMA_TILE = 32
"""The narrowest output-channel tile the forward and input-gradient heuristic gives a tensor-core problem of at least
that many channels (pointer and descriptor tiles), and the narrowest reduction step of its pointer tiles: a 16-wide
tile that covers the channels exactly spends each step's fixed instructions on a quarter of the multiply-adds of a
64-wide one. KernelBench's 48-channel volumes on 128 x 16 x 16 pointer tiles (NCDHW): predicted 3.4-3.7 ms, bound by
issue; on 128 x 64 x 32, padding the channels 1.33x, 1.15-1.2 ms (channels-last descriptor tiles: 1.06 and 3.30 ms
-> 0.55 and 1.11). A descriptor step keeps the fit (its loop computes no addresses: 64-wide steps over 48 channels
predicted slower there), and so does the weight gradient (the same floor on its channel tiles predicted slower on 4
of the 5 KernelBench problems it moved)."""


def narrowest(problem: Problem, size: int, low: int) -> int:
    """The smallest tile :func:`fit_pow2` may give ``size`` channels of ``problem`` in the forward heuristic: ``low``,
    or :data:`NARROWEST_MMA_TILE` for a tensor-core problem (:func:`mma_tiles`) of at least that many."""
    return max(low, NARROWEST_MMA_TILE) if mma_tiles(problem) and size >= NARROWEST_MMA_TILE else low


def tma_eligible(problem: Problem) -> bool:
    """Whether the descriptor kernels can run ``problem``: one group, no fp64, unit stride along H and W for the
    forward pass and the weight gradient (channels-last, also strides their input view folds,
    :func:`tritonconv._descriptors.folds_stride`, on input channels of whole 16-wide chunks), any stride for a
    channels-last input gradient (a forward convolution at unit stride, else by stride phase), unit stride for an
    NC(D)HW one,
    16-byte rows of channels where channels are innermost (the activations read and, but for the weight
    gradient, the weight's rows: its input channels, innermost in ``tritonconv.nn``'s layout, so a 16-bit input
    gradient's written channels too), and for an NC(D)HW read rows of 16-byte multiples with every box of
    the convolution's input starting on one (:func:`tritonconv._descriptors.nc_boxes_aligned`) or, a forward or input
    gradient, rows a tile holds whole (:func:`nc_row_tile`; a forward strided 2 along height and width too, dealt);
    the weight gradient's at any shift (:func:`tritonconv._descriptors.nc_box_runs`); any pass's planes read as rows
    where they are 16-byte multiples and its rows are not (:func:`planes_as_rows`)."""
    itemsize = torch.empty(0, dtype=getattr(torch, problem.dtype)).element_size()
    wgrad = problem.kind == "conv_wgrad"
    rows, cols, red = problem.gemm
    unit = problem.stride[-2:] if problem.kind != "conv_t" else () if problem.layout == "channels_last" else problem.stride
    folded = ((problem.kind in ("conv", "conv_wgrad") and problem.layout == "channels_last"
               and problem.weight_shape[1] % 16 == 0  # x's channels in whole 16-wide chunks
               and folds_stride(problem.input_shape, problem.stride))
              or (problem.kind == "conv" and nc_row_tile(problem) > 0))  # NC(D)HW strided 2: dealt (nc_row_tile)
    if (TensorDescriptor is None or problem.kind not in ("conv", "conv_t", "conv_wgrad") or problem.groups != 1
            or problem.dtype == "float64" or (any(s != 1 for s in unit) and not folded)):
        return False
    # the weight's rows: the forward's reduction channels; an input gradient's written ones in 16 bits (the weight
    # read in place, nn layout), else its reduction channels again (the weight laid out K-major first)
    weight_rows = () if wgrad else (cols,) if problem.kind == "conv_t" and itemsize == 2 else (red,)
    if problem.layout == "channels_last":  # and the activations' channels: dy's and x's, or the reduction's
        channels = (rows, cols) if wgrad else (red, *weight_rows)
        return all(c * itemsize % 16 == 0 for c in channels)
    if planes_as_rows(problem):
        return True
    reads = problem.reads
    (pad, _), dilation, taps = problem.padding[-1], problem.dilation[-1], problem.weight_shape[-1]
    pad = (taps - 1) * dilation - pad if problem.kind == "conv_t" else pad  # run as a forward convolution
    return (all(r[-1] * itemsize % 16 == 0 for r in reads) and all(c * itemsize % 16 == 0 for c in weight_rows)
            and ((pad * itemsize % 16 == 0 and (taps == 1 or dilation * itemsize % 16 == 0)) or nc_row_tile(problem) > 0
                 or wgrad))


def nc_row_tile(problem: Problem) -> int:
    """The tile width whose descriptor boxes read an NC(D)HW forward's or input gradient's rows whole from column 0
    (:func:`tritonconv._descriptors.nc_row_width`), where a tap's shift would start its box off 16 bytes (3x3 layers);
    0 elsewhere (channels innermost, the weight gradient, boxes that start on 16 bytes as they are, rows too wide)."""
    if problem.layout != "contiguous" or problem.kind not in ("conv", "conv_t"):
        return 0
    return nc_row_width(as_forward(problem), problem.itemsize)


def planes_as_rows(problem: Problem) -> bool:
    """Whether the descriptor kernels read an NC(D)HW problem's planes as rows (:func:`tritonconv._descriptors.nc_flat`:
    rows of no 16-byte multiple in planes of one): a weight gradient's, a forward's, a unit-stride input gradient's
    (run as a forward, :func:`as_forward`)."""
    if problem.layout != "contiguous" or problem.groups != 1 or problem.kind not in ("conv", "conv_t", "conv_wgrad"):
        return False
    if problem.kind == "conv_t" and problem.by_phase:
        return False
    return nc_flat(problem.spec if problem.kind == "conv_wgrad" else as_forward(problem), problem.itemsize)


def volumes_as_rows(problem: Problem, config: Config) -> bool:
    """Whether a forward or input gradient reading planes as rows (:func:`planes_as_rows`) reads each image's volume as
    one row with ``config``'s tiles (:func:`tritonconv._descriptors.nc_volume`, :func:`tritonconv.kernels.tma.volume_fits`;
    its depth slices dense, as a problem's tensors are)."""
    return (problem.kind != "conv_wgrad" and planes_as_rows(problem) and nc_volume(as_forward(problem))
            and tma.volume_fits(config))


def nc_rows(problem: Problem, config: Config) -> int:
    """How a descriptor config reads an NC(D)HW problem's rows whole (:func:`tritonconv._descriptors.nc_row_shift`:
    1, the sum moves between width taps; 2, each tap's products apart); 0 where it does not (:func:`nc_row_tile`)."""
    if not config.tile_h or not nc_row_tile(problem):
        return 0
    return nc_row_shift(as_forward(problem), config.patch(config.block_m)[2], problem.itemsize,
                        config.accumulator)



def nc_runs(problem: Problem, config: Config) -> int:
    """How a descriptor config reads an NC(D)HW weight gradient's input where some width tap's boxes would start off 16
    bytes: ``X_KINDS`` of :func:`tritonconv._descriptors.nc_box_runs` (bit ``r + 1`` per offset ``r``, each run read
    ``r`` columns on in registers); 0 where it does not (channels innermost, boxes that start on 16 bytes as they are,
    the pointer kernel)."""
    run = problem.as_run()  # (stems packed channels innermost, axes merged)
    if run.kind != "conv_wgrad" or run.layout != "contiguous" or not config.tile_h:
        return 0
    kinds = nc_box_runs(run.spec, config.patch(config.block_k)[2], getattr(torch, run.dtype).itemsize)
    return kinds if kinds > 0b10 else 0

def as_forward(problem: Problem) -> ConvSpec:
    """The forward convolution the descriptor kernel runs for a forward or unit-stride input gradient problem
    (:func:`tritonconv.kernels.tma.transposed_as_forward`)."""
    return tma.transposed_as_forward(problem.spec) if problem.kind == "conv_t" else problem.spec


def tma_min_width(problem: Problem) -> int:
    """The narrowest tile the descriptor kernel takes: an NC(D)HW box's rows are 16-byte multiples."""
    return 1 if problem.layout == "channels_last" else 16 // torch.empty(0, dtype=getattr(torch, problem.dtype)).element_size()


def tma_tile(out_h: int, out_w: int, block_m: int, min_w: int = 1, batch: int = 1) -> tuple[int, int]:
    """``(images, rows)`` of the patch of ``block_m`` positions (powers of two; columns ``block_m // (images *
    rows)``, at least ``min_w``) padding the ``batch`` output planes least; among equals the fewest images,
    then the squarest (the smallest input box: a tap's halo adds to both sides). ``batch`` 1: one image per
    patch (NC(D)HW boxes)."""
    def cost(images: int, rows: int) -> tuple[int, int, int, int]:
        cols = block_m // (images * rows)
        return covered((batch, out_h, out_w), (images, rows, cols)), images, rows + cols, rows

    bits = block_m.bit_length()
    shapes_ = [(1 << i, 1 << j) for i in range(bits) for j in range(bits - i)
               if block_m >> (i + j) >= min_w and (i == 0 or 1 << (i - 1) < batch)]
    return min(shapes_, key=lambda s: cost(*s))


def covered(sizes: tuple[int, ...], patch: tuple[int, ...]) -> int:
    """Positions the patches of shape ``patch`` cover on axes of ``sizes`` (each axis rounded up to whole patches)."""
    return math.prod(cdiv(size, side) * side for size, side in zip(sizes, patch))


ROW_SLACK = 1.15
"""The most a channels-innermost weight gradient's one-row patches may pad its rows, or its planes read as rows
(their seams' products counted), for the heuristic to take them (:func:`one_row_patches`, :func:`plane_patches`)."""


def one_row_patches(problem: Problem, positions: int) -> bool:
    """Whether a channels-innermost weight gradient takes descriptor patches of one row of ``positions`` columns,
    where they pad its rows at most :data:`ROW_SLACK` (rows of 64 exactly; 112 in 128: 1.14x) and no more than its
    planes read as rows would (:func:`plane_cost`: rows of 56 in 64 pad 1.14x, their planes 1.0x and their seams
    1.01x), and its output channels take tiles of 64 or more beside them. Its
    patches are the reduction of both operands, and Triton (3.6, 3.9) keeps a box spanning rows or images in shared
    memory as the MMA's second operand only: the first goes through registers (``LDSM`` copies: 120 instructions a
    step of 128 x 128 x 64 on 8 warps against 98-101, the SASS census, ``benchmarks.static``), where one-row boxes
    feed both from shared memory."""
    if problem.kind != "conv_wgrad" or problem.layout != "channels_last":
        return False
    height, width = tma_plane(problem)
    padding = covered((width,), (positions,)) / width
    # (and leaving the output channels a tile of 64 or more within slack: a warp group's MMA rows; R(2+1)D's 144 mid
    # channels would take 16-row tiles beside 56-wide rows in 64)
    return (height > 1 and padding <= min(ROW_SLACK, plane_cost(problem, positions))
            and within_slack((problem.gemm[0],), (128,), padding)[0] >= 64)


def one_row_forward(problem: Problem, config: Config) -> bool:
    """Whether a channels-innermost forward or input gradient takes patches of one row of ``config``'s positions in
    place of its patches spanning rows or images, where the MMA cannot run transposed (channel tiles under 64,
    :func:`tritonconv.kernels.tma.positions_as_n`), so that its first operand, a box of one row, stays in shared
    memory: where those pad the written rows at most :data:`ROW_SLACK` and no more than ``config``'s patches pad the
    planes (``ct_anisotropic``'s rows of 128 in 128, exact: no register copies in the SASS census, where its 8-row
    patches took 2, 4 in the input gradient; not R(2+1)D's rows of 56). (The 3-D U-Net's rows of 64 would take tiles
    of 64 positions, 2 MMAs a step where its 128 x 32 tiles on 8 rows issue 4 with their register copies, and the
    model predicts them 18% slower; the tuner's candidates hold both.)"""
    itemsize = problem.itemsize
    if (problem.layout != "channels_last" or problem.kind not in ("conv", "conv_t") or not config.tile_h
            or config.tile_b * config.tile_h == 1 or tma.positions_as_n(True, 0, config, itemsize, problem.tf32)):
        return False
    width = tma_plane(problem)[1]
    return covered((width,), (config.block_m,)) / width <= min(ROW_SLACK, tma_padding(problem, config.block_m))


def nc_wide_step(problem: Problem, block_m: int, block_n: int, block_k: int) -> bool:
    """Whether a 16-bit NC(D)HW forward or unit-stride input gradient on the pointer kernel's 64 x 64 tiles steps 64
    channels on 4 warps, where NC(D)HW tiles step 32 on 8 (``block_k`` the step its channels allow). Their loop's
    fixed part (the tap's row addresses and masks, the pipeline's waits) is paid per step, so 64-wide steps halve it
    per multiply-add. sm_90 SASS (Triton 3.9 / 3.6), warp instructions per 1000
    multiply-adds, 64 x 64 x 32 on 8 warps -> 64 x 64 x 64 on 4: ``resnet50_l3_3x3``'s forward 6.84 / 6.84 -> 3.71 /
    3.52 and input gradient 7.08 / 6.84 -> 3.45 / 3.33 (rows in aligned runs), R(2+1)D's third block 5.9-7.5 ->
    2.4-3.8, ``resnet50_l4_3x3``'s (rows of 7, 2 bytes at a time) 10.4-11.4 -> 5.3-6.3; 95-240 registers, no spill,
    as many programs an SM but on the rows of 7 (5 -> 3-5) and Triton 3.6's temporal pass (4 -> 3); sm_80 (Triton
    3.9) 6.1-9.6 -> 3.3-6.1, no spill (Triton 3.6: 5.0-10.5 -> 2.8-6.3, 8-12 bytes spilled outside the main loop on
    the rows of 14, none in it). One-tap layers too, since their weight arrives in 16-byte copies
    (:func:`tritonconv.geometry.tap_strides`; before, its 2-byte loads were the step: 8.36 -> 8.09 at 243 registers):
    ``resnet50_ds_1x1s2``'s forward 8.06 / 8.36 -> 6.01 / 4.33 (168 and 130 registers, 3 programs an SM where 3 / 4),
    a 1 x 1 layer on 7 x 7 planes (512 -> 2048 channels, batch 32) 7.8 / 8.3 -> 3.8 / 4.3 and its input gradient 10.6
    / 11.2 -> 6.1 / 6.2; sm_80 4.3-6.2 where 7.6-10.4, no spill (``benchmarks/NOTES.md``, 2026-12-06). Strided input
    gradients (by phase) are not sampled (``benchmarks/NOTES.md``, forty-fifth session)."""
    return (problem.layout == "contiguous" and problem.kind in ("conv", "conv_t") and not problem.by_phase
            and problem.dtype in ("float16", "bfloat16") and (block_m, block_n, block_k) == (64, 64, 64))


LONG_ROWS = 256
"""The rows of a 16-bit NC(D)HW forward's or input gradient's narrow pointer tile (:func:`nc_long_rows`)."""
LONG_ROWS_MIN = 16384
"""The fewest GEMM rows (output positions) a launch has before its narrow tiles take :data:`LONG_ROWS` rows: 64 row
tiles of 256 (a guard; no suite or KernelBench problem has between 8,192, where 128-row tiles start, and that many)."""


def nc_long_rows(problem: Problem, config: Config, tma: bool) -> bool:
    """Whether a 16-bit NC(D)HW forward or input gradient on the pointer kernel's 128-row tiles of at most 32 output
    channels (16 before Hopper, ``tma`` False), unsplit, of at least :data:`LONG_ROWS_MIN` rows, takes
    :data:`LONG_ROWS` rows on 4 warps. A step's fixed instructions (the tap's row addresses and masks, the pipeline's
    waits) are then spread over twice the multiply-adds (the accumulator: 64 fp32 registers a thread at 32 channels).
    sm_90 SASS, warp instructions per 1000 issued multiply-adds in the main loop (Triton 3.9 / 3.6), 128 rows on 8
    warps -> 256 on 4: ``telemetry_k9``'s input gradient 6.35 / 6.16 -> 2.32 / 2.26, ``resnet50_conv1``'s 13.4 /
    12.6 -> 4.67 / 4.58, ``ct_anisotropic``'s 19.5 / 16.7 -> 6.35 / 5.80, KernelBench's transposed ``58``, ``70``,
    ``71``, ``72``, ``78`` 2.6-3.6x fewer (1.8-3.7x with the moves of the sum between width taps); 142-255 registers,
    no spill, as many programs an SM but ``resnet50_conv1``'s (3 -> 2). sm_80 (Triton 3.9): 16-wide tiles 12.1-34.7
    -> 5.1-11.0, no spill (one program an SM fewer on ``ct_anisotropic`` and ``58``); its 32-wide tiles on 4 warps
    spilled 4-40 B (``70``, ``71``), so they keep 128 rows there (``benchmarks/NOTES.md``, forty-seventh session)."""
    return (problem.layout == "contiguous" and problem.kind in ("conv", "conv_t")
            and problem.dtype in ("float16", "bfloat16") and not config.fold and config.split_k == 1
            and config.block_m == 128 and config.block_n <= (32 if tma else 16) and problem.gemm[0] >= LONG_ROWS_MIN)


WIDE_PATCH = 256
"""Positions of a descriptor forward's (or input gradient's) patch beside channel tiles of at most 32 (:func:`wide_patch`)."""


def wide_patch(problem: Problem, config: Config, sm_count: int = 132) -> bool:
    """Whether a descriptor forward or input gradient of 128-position patches over at most 32 output channels (the
    3-D U-Net's 32, R(2+1)D's 144 mid channels in 32-wide tiles) takes :data:`WIDE_PATCH` positions instead, on the
    same 4 warps: a main-loop step of those narrow tiles issued about 125-145 warp instructions a warp for 2-4 MMAs
    (its first operand through registers: the patch spans rows), 3.75 and 2.21 per 1000 multiply-adds on sm_90 (bf16,
    ``unet3d_64cube``, ``r2plus1d18_l1:spatial``), past the 16-bit MMA's pace (about 2.1); 256 positions take twice the
    MMAs for 10-20% more instructions: 2.12 and 1.32, 128 and 179 registers, no spill. Taken where the wider patches
    pad the positions no more and still fill two waves of four programs on each of ``sm_count`` SMs (not 512
    positions: the 256 registers a thread would need allow two programs)."""
    if (not config.tile_h or config.block_m != 128 or config.block_n > 32 or config.num_warps != 4
            or config.tile_b * config.tile_h == 1 or tma.positions_as_n(
                problem.layout == "channels_last", 0, config, problem.itemsize, problem.tf32)):
        return False
    rows, cols, _ = problem.gemm
    tiles = problem.groups * cdiv(rows, WIDE_PATCH) * cdiv(cols, config.block_n)
    return tiles >= 2 * 4 * sm_count and tma_padding(problem, WIDE_PATCH) <= tma_padding(problem, config.block_m)


TF32_DEALT_STEP = 16
"""Channels a step of a TF32 NC(D)HW forward strided 2 along height and width (its rows dealt into phases in
registers, :func:`tritonconv._descriptors.nc_dealt`) on the descriptor kernel: at 32 (:data:`TF32_STEP`) Triton 3.6,
the GPU machine's, loads the dealt operand's registers for the step's four 8-deep MMAs at the top of the loop while
the last step's are in flight, and ptxas serializes every MMA ("non wgmma instructions defining input registers of
a wgmma", ``resnet50_l2_3x3s2``, ``r3d18_l2_s2``); at 16, two MMAs a step, none serialized on 3.6 or 3.9: 3.5-3.7
warp instructions per 1000 multiply-adds on sm_90 (2.1 at 32), under the TF32 MMA's pace (about 4.2)."""


NARROW_WGRAD_STEP = 256
"""Positions a step of a 16-bit weight gradient over channel tiles of at most 32 x 32 (both kernels): a step's fixed
costs (barriers, copies issued, counters; the pointer kernel's addresses) outweighed its 2-4 MMAs at 64 positions
(32 on the NC(D)HW pointer tiles). sm_90, Triton 3.9, warp instructions per 1000 multiply-adds: the descriptor kernel
6.29 -> 2.52 (32 x 32, a 3-D U-Net's 32 channels), 11.47 -> 4.46 (32 x 16); the NC(D)HW pointer kernel at strides
(1, 2, 2) and (2, 2), its runs of x read 16 bytes at a time once a tile holds two per thread: 61.5 -> 18.5
(``ct_anisotropic``, 32 x 16; Triton 3.6: 58.6 -> 24.4), 30.5 -> 9.6 (32 x 32), 122 -> 36 (16 x 16); no spill (128
positions spilled 12-24 B on two of them). Such tiles also fill their shared memory at 0.27-0.4x the MMA rate
(:func:`tritonconv.costmodel.fill_bytes`), which bounds them whatever their step: 256 positions bring the descriptor
loops to that bound where they issued past it, and the pointer loops most of the way. Not 64 x 16 or 64 x 32 tiles
(the stems', ``telemetry_k9``'s): their fill bound is the tighter one already, and 256 positions in 3 stages would
leave one program per SM. Channels-innermost tiles of fewer than 64 output channels beside 64 input channels or more
step it too: their kernel runs the MMA transposed (:func:`tritonconv.kernels.weight_grad.input_channels_as_m`), 64 x 32
(R(2+1)D's first spatial pass, 144 output channels in 160: 3.7 -> 1.6-1.9 warp instructions per 1000 useful
multiply-adds on sm_90, where 64-row tiles, 192 channels, issued 2.5). TF32 tiles step half as many positions
(:func:`narrow_step`)."""


def narrow_step(problem: Problem) -> int:
    """Positions a step of a narrow weight-gradient tile takes (:data:`NARROW_WGRAD_STEP`): 256 in 16 bits, 128 in
    TF32, the same bytes a row. TF32 at its 32 (:data:`TF32_STEP`) issued 14.7 warp instructions per 1000 multiply-adds
    on the 3-D U-Net's 32 x 32 channel tiles (12.8 NCDHW), 27.3 on the CT volume's 32 x 16, 7.1-7.5 on R(2+1)D's first
    spatial pass run transposed (sm_90, Triton 3.9 and 3.6); at 128, 7.3 (5.0), 12.6-12.7 and 3.6, no spill (86-156
    registers): the U-Net's and the CT volume's then bound by filling their tiles from L2
    (:func:`tritonconv.costmodel.fill_bytes`), R(2+1)D's under the TF32 MMA's pace."""
    return NARROW_WGRAD_STEP * 2 // problem.itemsize


def plane_patches(problem: Problem, positions: int) -> bool:
    """Whether a channels-innermost weight gradient reads its planes as rows in one-row patches of ``positions``
    (``Config.planes``, :func:`tritonconv.kernels.weight_grad.planes_as_rows`) where that costs at most
    :data:`ROW_SLACK` (:func:`plane_cost`) and less than one-row patches (:func:`one_row_patches`): ``c3d_conv3a``'s 28
    x 28 planes in 64 (1.06x, its 3x3 taps' seams 1.02x more), where the patches spanning rows that cover them exactly
    took the MMA's first operand through registers; ``resnet50_l1_3x3``'s 56 x 56 (exact,
    seams 1.01x, where one-row patches pad 1.14x). Its output channels take tiles of 64 or more beside them, as
    :func:`one_row_patches` asks."""
    return (plane_cost(problem, positions) <= ROW_SLACK and not one_row_patches(problem, positions)
            and within_slack((problem.gemm[0],), (128,), plane_padding(problem, positions))[0] >= 64)


def plane_cost(problem: Problem, positions: int) -> float:
    """Multiply-adds a weight gradient's patches of ``positions`` issue over its useful ones where they read its planes
    as rows (:func:`plane_padding`, the seams' products read again counted:
    :func:`tritonconv._descriptors.seam_share`); infinite where they cannot (:func:`can_read_planes`)."""
    if not can_read_planes(problem):
        return math.inf
    return plane_padding(problem, positions) * (1 + seam_share(problem.spec))


def plane_padding(problem: Problem, positions: int) -> float:
    """How much patches of ``positions`` pad the output's planes read as rows."""
    plane = math.prod(tma_plane(problem))
    return covered((plane,), (positions,)) / max(plane, 1)


def tma_patch(problem: Problem, positions: int) -> dict[str, int]:
    """The patch fields (``tile_b``, ``tile_h``, ``planes``) of ``problem``'s descriptor configs of ``positions``
    positions (:func:`tma_tile`): several images per patch where a channels-innermost plane is small (14 x 14 in 2 x 2
    patches of 16 images: exact, where one image's 8 x 8 padded 1.31x); NC(D)HW rows read whole (:func:`nc_row_tile`)
    as many rows of that width as fill the patch (56-wide rows: 2 x 64 for 128 positions, 1.14x); a weight gradient's
    rows one at a time where they fill the patch within slack (:func:`one_row_patches`), else its planes as rows where
    those do (:func:`plane_patches`)."""
    if planes_as_rows(problem) or one_row_patches(problem, positions):  # patches of one row
        return dict(tile_b=1, tile_h=1)
    if plane_patches(problem, positions):
        return dict(tile_b=1, tile_h=1, planes=1)
    return spanning_patch(problem, positions)


def spanning_patch(problem: Problem, positions: int) -> dict[str, int]:
    """:func:`tma_patch`'s fields where it may span rows and images (the patches padding the positions least)."""
    width = nc_row_tile(problem)
    if width and positions >= width:  # NC(D)HW rows read whole: tiles of whole rows
        return dict(tile_b=1, tile_h=positions // width)
    images, rows = tma_tile(*tma_plane(problem), positions, tma_min_width(problem), tma_batch(problem))
    return dict(tile_b=images, tile_h=rows)


def can_read_planes(problem: Problem) -> bool:
    """Whether a weight gradient's descriptor configs may read its planes as rows (``Config.planes``): channels
    innermost, planes of several rows that a tap moves as a whole (:func:`tritonconv._descriptors.flat_geometry`)."""
    return (problem.kind == "conv_wgrad" and problem.layout == "channels_last" and flat_geometry(problem.spec)
            and tma_plane(problem)[0] > 1)


def tma_batch(problem: Problem) -> int:
    """The images a descriptor patch may span: the batch, channels-innermost (an NC(D)HW box is one image's)."""
    return problem.input_shape[0] if problem.layout == "channels_last" else 1


TMA_PADDING = 1.35
"""The most the descriptor kernels' patches may pad the output positions (:func:`tma_padding`) for the heuristic
to give a problem to them. Their boxes are power-of-two sides, so one image's 14 x 14 and 7 x 7 planes pad to
1.31x and 17 x 17 ones to 2.0-2.2x; patches spanning images (``Config.tile_b``, channels-innermost) pad them
1.0x, 1.14x and 1.06x (a batch of 32), as the pointer kernel's flat runs pad about 1.0-1.14x. The H200 fit
(``autotune_cache/costmodel``, 2026-11-26 rows) rates the descriptor kernel at 1.46x the pointer kernel's
multiply-adds per second, so it still wins at 1.31x and loses at 2x; the threshold sits between (it now bites on
NC(D)HW planes only, whose boxes are one image's)."""


def tma_padding(problem: Problem, positions: int) -> float:
    """Positions the descriptor kernels' patches of ``positions`` cover (:func:`tma_patch`) over the output's."""
    sizes = (tma_batch(problem), *tma_plane(problem))
    patch = tma_patch(problem, positions)
    if patch.get("planes"):
        return plane_padding(problem, positions)
    images, rows = patch["tile_b"], patch["tile_h"]
    return covered(sizes, (images, rows, positions // (images * rows))) / max(math.prod(sizes), 1)


def tma_plane(problem: Problem) -> tuple[int, int]:
    """(height, width) of the plane of positions the descriptor kernels tile: the output's last two axes (the
    input's for the input gradient, which writes it, one stride phase's where it is strided; 1-D: 1 x L; an NC(D)HW
    weight gradient's planes read as rows, :func:`tritonconv._descriptors.nc_flat`: 1 x H*W)."""
    written = tma_written(problem)
    if planes_as_rows(problem):
        return 1, written[-2] * written[-1]
    return (1, *written[2:]) if len(written) == 3 else tuple(written[-2:])


def tma_written(problem: Problem) -> tuple[int, ...]:
    """The shape of the positions a descriptor program tiles: the output's; for the input gradient the input's,
    one stride phase's (``ceil(size / stride)`` per axis) where it is strided."""
    if problem.kind != "conv_t":
        return problem.output_shape
    n, c, *sizes = problem.input_shape
    return (n, c, *(-(-size // s) for size, s in zip(sizes, problem.stride)))


def weight_layout(problem: Problem) -> str:
    """How a problem's weight is held where tuning times it (:func:`tritonconv.tune.runner`) and the cost model
    rates it: ``tritonconv.nn``'s layout (channels innermost) beside 2-D and 3-D channels-last activations, torch's
    otherwise (as the benchmarks hold weights)."""
    return "channels_last" if problem.layout == "channels_last" and len(problem.stride) > 1 else "contiguous"


def standin(shape, dtype: torch.dtype, channels_inner: bool, device: str = "cpu") -> torch.Tensor:
    """An uninitialised tensor laid out channels-innermost or in torch's contiguous layout: what a ``Launch``
    reads of its tensors (sizes, strides, device), never read or written (the pages are never touched); on the
    ``meta`` device, no memory at all (for checks that read sizes and strides only)."""
    if channels_inner:
        return geometry.empty_channels_inner(shape, dtype, torch.device(device))
    return torch.empty(shape, dtype=dtype, device=device)


@functools.lru_cache(maxsize=4096)
def descriptors_launch(problem: Problem, config: Config) -> bool:
    """Whether a descriptor config (``tile_h > 0``) launches a descriptor kernel on ``problem``'s tensors, not the
    pointer kernel in its place: the kernels' own checks (:func:`tritonconv.kernels.tma.usable`,
    :func:`tritonconv.kernels.weight_grad.descriptors_usable`: the boxes' 16-byte rules, a strided input's view)
    on stand-ins laid out as the problem says, the weight as :func:`weight_layout` holds it and, where the
    descriptor kernel cannot read that in place, with its reduction channels innermost, as the dispatch lays it
    out per call."""
    dtype, inner = getattr(torch, problem.dtype), problem.layout == "channels_last"
    meta = functools.partial(standin, device="meta")  # sizes and strides only: any problem size
    if problem.kind == "conv_wgrad":
        return weight_grad.descriptors_usable(meta(problem.output_shape, dtype, inner),
                                              meta(problem.input_shape, dtype, inner), problem.spec, config)
    if problem.kind not in ("conv", "conv_t"):
        return False
    transposed = problem.kind == "conv_t"
    weight = meta(problem.weight_shape, dtype, weight_layout(problem) == "channels_last")
    if tma.laid_out(weight, transposed):  # as the dispatch lays it out per call
        weight = tma.lay_out(weight, transposed)
    read = problem.output_shape if transposed else problem.input_shape
    return tma.usable(meta(read, dtype, inner), weight, problem.spec, config, transposed)


def tma_candidates(problem: Problem) -> list[Config]:
    """The descriptor kernels' configs for an eligible problem: forward and input gradient tiles of ``block_m``
    positions (:data:`TMA_SPACE`; :data:`WIDE_PATCH` beside channel tiles of at most 32 on 4 warps), weight-gradient
    tiles of :data:`SPACES`' channels with ``block_k`` positions of at least 64 per step (patches spanning rows and
    images, of one row, planes read as rows; TF32 tiles of either step :data:`TF32_STEP`: 64-wide TF32 steps hold twice
    a 16-bit stage's shared memory, one 128 x 64 program per SM on sm_90, where 32-wide ones issue 1.5-1.8 warp
    instructions per 1000 multiply-adds, far under the MMA's pace; narrow TF32 tiles at most :func:`narrow_step`'s 128, as
    the heuristic's), every split count that keeps four steps per partial sum (forwards' channel tiles under 64 on
    patches of one row too, :func:`one_row_forward`); each one that :func:`launches a descriptor kernel
    <descriptors_launch>`."""
    rows, cols, red = problem.gemm
    out: list[Config] = []
    def step(bk: int, narrow: bool = False) -> int:  # TF32's steps: at most TF32_STEP, a narrow tile's narrow_step
        return min(bk, narrow_step(problem) if narrow else TF32_STEP) if problem.tf32 else bk

    if problem.kind == "conv_wgrad":
        one_row = [dict(tile_b=1, tile_h=1)] if problem.layout == "channels_last" else []
        planes = [dict(tile_b=1, tile_h=1, planes=1)] if can_read_planes(problem) else []
        for (bm, bn, bk, warps, stages), split in itertools.product(SPACES["conv_wgrad"], SPLITS):
            if bk < 64:
                continue
            bm, bn = clamp_pow2(rows, 16, bm), clamp_pow2(cols, 16, bn)
            bk = step(bk, max(bm, bn) <= 32 or (problem.layout == "channels_last" and bm < 64 <= bn))
            if split > 1 and cdiv(red, split) < 4 * bk:
                continue
            for patch in (tma_patch(problem, bk), spanning_patch(problem, bk), *one_row, *planes):
                cfg = Config(bm, bn, bk, group_m=1, num_warps=warps, num_stages=stages, split_k=split, **patch)
                if cfg.planes and cfg.block_m < 64:  # planes are read for Hopper's MMA, which takes 64 rows at least
                    continue  # (narrower tiles run Ampere's, from registers; 16 x 16 x 256 spilled 8 B, Triton 3.9)
                if cfg not in out and descriptors_launch(problem, cfg):
                    out.append(cfg)
        return out
    low_k = min_k(problem)
    splits = FORWARD_SPLITS if small_output(problem) and not problem.by_phase else (1,)  # split in the kernel
    for block_m, (bn, bk, warps, stages), split in itertools.product((64, 128, WIDE_PATCH), TMA_SPACE, splits):
        base = Config(block_m, clamp_pow2(cols, 16, bn), clamp_pow2(red, low_k, max(step(bk), low_k)), group_m=1,
                      num_warps=warps, num_stages=stages, split_k=split, **tma_patch(problem, block_m))
        if block_m == WIDE_PATCH and (base.block_n > 32 or warps != 4):  # wide patches beside narrow tiles only
            continue
        one_row = one_row_forward(problem, base)  # and patches of one row where channel tiles under 64 run untransposed
        for cfg in (base, dataclasses.replace(base, tile_b=1, tile_h=1)) if one_row else (base,):
            if (split == 1 or problem.taps * cdiv(red, cfg.block_k) >= 2 * split) and cfg not in out \
                    and descriptors_launch(problem, cfg):
                out.append(cfg)  # each split keeps two (tap, chunk) steps at least
    return out


def relaid(problem: Problem) -> list[Config]:
    """The relayout candidates of an NC(D)HW problem (``Config.relayout``): its activations copied channels
    innermost per call, then the descriptor kernels' tiles of the channels-last problem
    (:func:`as_relaid`). Tuning times them beside the in-place kernels, so a copy runs only where a GPU
    measured it to pay; the heuristic never picks one. None for fp8 (its plan reads in place), nor where the
    channels-last problem is not :func:`tma_eligible`."""
    if problem.layout != "contiguous" or fp8(problem) or not tma_eligible(as_relaid(problem)):
        return []
    return [dataclasses.replace(cfg, relayout=1) for cfg in tma_candidates(as_relaid(problem))]


def as_relaid(problem: Problem) -> Problem:
    """The problem a relayout config's kernel runs: ``problem`` reading channels-innermost copies."""
    return dataclasses.replace(problem, layout="channels_last")


def wave_split(tiles: int, target: int, most: int, sm_count: int) -> int:
    """A split count for ``tiles`` output tiles towards ``target`` programs (at most ``most`` splits): of the counts
    from half the target's to the target's, the one whose programs fill their rounds over the ``sm_count`` SMs best
    (``ceil(tiles * s / sm_count) / s`` least: a round on every SM for each ``1/s`` of a tile's work), the fewest on
    ties. Rounding the target's count up instead gave 9 taps' tiles 30 splits (270 programs: two rounds on 126 SMs,
    three on 6, so the layer's time is three rounds' where 29 splits, 261 programs, take two)."""
    high = max(1, min(cdiv(target, tiles), most))
    return min(range(max(1, cdiv(high, 2)), high + 1),
               key=lambda s: (Fraction(cdiv(tiles * s, sm_count), s), s))


Predict = Callable[[Problem, Config], float]
"""A launch's predicted device seconds (:func:`tritonconv.costmodel.predict` with a device's constants)."""


def ranked(problem: Problem, configs: list[Config], predict: Predict) -> list[Config]:
    """``configs`` fastest first by ``predict`` (ties keep the given order)."""
    return sorted(configs, key=lambda cfg: predict(problem, cfg))


SPLIT_SLACK = 1.03
"""How much slower than the fastest split count a default's fewer splits may be predicted (:func:`default`): a
model's few percent are within its error, and fewer splits hold fewer partials and programs."""
SPLIT_BYTES = 64 * 2**20
"""The most bytes of fp32 partial sums a weight gradient's default config holds (:func:`split_choices`): the suite's
largest default (``deeplab_3x3_d2``'s 6 splits of 144 tiles of 128 x 128) holds 54 MiB, where the heuristic's own
counts held up to 18 MiB. Tuning's candidates (:data:`SPLITS`) are not bounded by it."""


def split_tiles(problem: Problem, config: Config) -> int:
    """The programs each split of a weight gradient's launch with ``config`` runs: its output tiles (at least one)."""
    rows, cols, _ = problem.gemm
    if problem.kind == "conv_dw_wgrad" and config.fold:  # the banded kernel's tiles of every tap x block_n channels
        return cdiv(cols, config.block_n)
    if problem.kind == "conv_dw_wgrad":
        taps = depthwise.tap_tiles(problem.weight_shape[2:], config.block_m, dw_wgrad_runs(problem, config))
        return max(1, taps * cdiv(cols, config.block_n))
    width = folded_taps(problem, config.fold)
    return max(1, problem.groups * problem.taps // width * cdiv(rows, config.block_m)
               * cdiv(width * cols, config.block_n))


def split_choices(problem: Problem, config: Config) -> list[Config]:
    """A weight gradient's ``config`` with each split count its default may take, fewest first: every count that
    leaves each split 8 reduction steps at least (as :func:`heuristic`'s) and its partials :data:`SPLIT_BYTES` at
    most; ``[config]`` for other kinds and for the banded depthwise kernel, whose split is its programs along the
    segments, a memory-bound launch's (the model's memory term takes the device's whole bandwidth however few programs
    run, so it would take the fewest: 2 on ``depthwise_k31``, 64 programs for 132 SMs)."""
    if problem.kind not in ("conv_wgrad", "conv_dw_wgrad") or config.fold and problem.kind == "conv_dw_wgrad":
        return [config]
    most = max(1, cdiv(problem.gemm[2], 8 * config.block_k))
    tile_bytes = 4 * split_tiles(problem, config) * config.block_m * config.block_n
    return [dataclasses.replace(config, split_k=s) for s in range(1, most + 1) if s == 1 or s * tile_bytes <= SPLIT_BYTES]


def default(problem: Problem, sm_count: int = 132, tma: bool = False, predict: Predict | None = None,
            smem_limit: int = DEFAULT_SMEM) -> Config:
    """The config a GPU launch of ``problem`` takes with nothing cached or tuned: :func:`heuristic`'s, a weight
    gradient's split count, where a model is given, the fewest of :func:`split_choices` that ``predict`` puts within
    :data:`SPLIT_SLACK` of the fastest. The heuristic's own count fills rounds of one program an SM and weighs no
    partial sums' bytes; the model (:mod:`tritonconv.costmodel`) counts the programs an SM holds, the partials'
    traffic and a second launch. On the suite's bf16 channels-last weight gradients (H200 constants, ``python -m
    benchmarks.costfit --heuristic-check``; predictions, not measurements) it predicts 2.0x on ``resnet50_ds_1x1s2``
    (one split, not two: 16 MiB of partials less), 1.3-1.5x on ``resnet50_l2_3x3s2`` (9 splits, not 29),
    ``resnet50_l3_3x3`` (3, not 7) and ``anisotropic_1x7`` (10, not 18), 1.28x on ``deeplab_3x3_d2`` (6, not 2: its
    last, partial round of two programs an SM a seventh of the time, not a third). On a GPU of ``smem_limit`` bytes of
    shared memory a block, less than an H100's, the heuristic's config fitted to it (:func:`fit_shared`)."""
    cfg = fit_shared(problem, heuristic(problem, False, sm_count, tma), smem_limit)
    if predict is None:
        return cfg
    times = {choice: predict(problem, choice) for choice in split_choices(problem, cfg)}
    return next(choice for choice, t in times.items() if t <= SPLIT_SLACK * min(times.values()))


def heuristic(problem: Problem, interpret: bool, sm_count: int = 132, tma: bool = False) -> Config:
    """A deterministic config from the problem's sizes (``tl.dot`` needs every block >= 16).

    Under the interpreter each program is a sequence of numpy steps whose fixed cost
    dominates, so fewer, larger tiles run faster: up to 16K elements per operand tile.
    ``tma``: the device has a tensor memory accelerator; a 16-bit forward problem the descriptor
    kernel takes then gets it, with the same tiles (measured on an H200, 2026-11-26: with the
    heuristic's tiles it ran 1.9x and 1.45x faster than the pointer kernel on ``deeplab_3x3_d2`` and
    ``c3d_conv3a``, and the tuner chose it, with other tiles, on the other two unit-stride layers whose
    kernel outlasted the host path; ``benchmarks/NOTES.md``). So does a unit-stride input gradient,
    which that kernel runs as a forward convolution (a prediction: its main loop issues 1-8 integer
    instructions per MMA against the pointer kernel's 33-90, ``benchmarks.static``), and a unit-stride
    16-bit weight gradient (its own descriptor kernel, :class:`tritonconv.kernels.weight_grad.DescriptorLaunch`; a
    prediction too); each where its patches pad the plane at most :data:`TMA_PADDING`. An NC(D)HW forward or
    input gradient takes it too where its boxes start on 16 bytes or its rows fit a tile whole
    (:func:`nc_row_tile`: a prediction, ``benchmarks/NOTES.md``), with the channels-last problem's reduction step and
    no narrower a channel tile than the pointer kernel's; so does one whose planes are read as rows
    (:func:`planes_as_rows`: 28 x 28, on the pointer kernel's 128 positions; a prediction too). fp32 problems
    multiplied in TF32
    (:attr:`Problem.tf32 <tritonconv.geometry.Problem.tf32>`, :func:`mma_tiles`) take the descriptor kernels on the
    same rules, stepping :data:`TF32_STEP` (a prediction from the compile report: over the suite's kernels that move,
    1.9-9.8x fewer warp instructions per multiply-add than the pointer kernel's 16-wide TF32 tiles channels-last, 2.0-7.0x
    NC(D)HW; ``benchmarks/NOTES.md``, 2026-12-02).
    """
    return HEURISTICS.get(problem.kind, forward_heuristic)(problem, interpret, sm_count, tma)


BANDED_TAPS = 8
"""Taps from which the heuristic runs a 16-bit depthwise pass on the tensor cores (:func:`banded_config`): at the FMA
kernel's census (``costmodel.DEPTHWISE_ISSUE``, 163 warp instructions per 1000 multiply-adds channels-last) an output's
taps take as long to issue as its 4 bytes to move (an H200's fitted 2.7 TB/s) at about 9.5 taps; below, both kernels
are bound by the bytes."""

BANDED_ISSUED = 8
"""The most multiply-adds the heuristic's band issues a useful one (its window over the taps, :func:`banded_issued`):
3 x 3 taps in segments of 4 x 8 outputs issue 7.1 (windows of 60 in 64) for 48-52 warp instructions per 1000 useful
multiply-adds channels-last (NCHW rows in runs, 2 x 8 outputs in 4 x 16: 67-73) where the FMA kernel issues 152-163;
at a stride of 2 their windows pad to 128 (14.2), and the FMA kernel keeps them."""

BANDED_WINDOW = 128
"""The widest band the heuristic's banded tiles hold (:func:`tritonconv.kernels.banded.window`: 8 channels x 16
segments x 128 inputs of ``x`` a step; 7 x 7 taps' 8 x 14 in 128)."""


def banded_config(problem: Problem, sm_count: int) -> Config | None:
    """The banded kernels' tiles (:mod:`tritonconv.kernels.banded`) for a depthwise pass they compute, or None:
    segments of :func:`~tritonconv.kernels.banded.segment` outputs (NC(D)HW rows of whole runs with taps along the
    height: those whose windows' rows are read in runs, :func:`~tritonconv.kernels.banded.aligned_run`), 8 channels
    (16-byte loads channels-last), 32
    segments a step (16 for windows past 64, for segments of several rows, and the weight gradient's), 8 warps, one
    stage, split along the segments into about four programs an SM (the weight gradient's two). SASS (sm_90, bf16),
    warp instructions per 1000 useful multiply-adds, forward, input and weight gradient: ``depthwise_k31``
    channels-last 9.8, 9.8 and 14.1 (Triton 3.6: 9.9, 9.9, 13.2), NCL rows in runs 6.5, 6.5 and 8.3 (3.6: 7.3, 7.1,
    9.4); ``mobilenet_dw_3x3`` channels-last 52, 51 and 48 (3.6: 49, 49, 46), NCHW in runs 73, 73 and 67 (3.6: 75, 75,
    75); a ConvNeXt 7 x 7 layer NCHW in runs 18, 18 and 16 (3.6: 17, 17, 16); 76-146 registers, no spill; the FMA
    kernels' 139-205 (``benchmarks/NOTES.md``, fifty-seventh, fifty-eighth and sixtieth sessions)."""
    transposed = problem.kind == "conv_dw_t"
    spec = problem.spec
    if not problem.kind.startswith("conv_dw") or not banded.applies(spec, getattr(torch, problem.dtype), transposed):
        return None
    run = banded.aligned_run(standin(problem.reads[0], getattr(torch, problem.dtype), False, "meta")) if (
        banded_nc_rows(problem)) else 0
    seg = banded.segment(spec, max(run, 1))  # (NC(D)HW rows in runs: segments whose windows' rows are whole runs)
    rows = banded.window(spec, seg, banded.segment_rows(spec, seg))
    seg_rows = banded.segment_rows(spec, seg, max(run, 1))
    if rows > BANDED_WINDOW:
        return None
    written = problem.input_shape if transposed else problem.output_shape
    wgrad = problem.kind == "conv_dw_wgrad"  # (its programs end summing diagonals and meeting: fewer, longer ones)
    # (segments of several rows: 16 a step; 32 gave 3 x 3 taps 168 registers, one program an SM, for 6% fewer
    # instructions)
    block_k = 16 if wgrad or seg_rows > 1 else min(32, 2048 // rows)
    steps = cdiv(banded.segments(written, seg, seg_rows), block_k)
    split = max(1, min(steps, cdiv((2 if wgrad else 4) * sm_count, cdiv(written[1], 8))))
    return Config(seg, 8, block_k, group_m=1, num_warps=8, num_stages=1, split_k=split, fold=1)


def banded_candidates(problem: Problem, sm_count: int, smem_limit: int = DEFAULT_SMEM) -> list[Config]:
    """The banded kernels' tiles the tuner tries for a depthwise pass they compute, from 3 taps: the heuristic's
    (:func:`banded_config`), with 16 channels, with half the segments a step, on 4 warps, and split half and twice as
    many ways; those that fit ``smem_limit`` (:func:`tritonconv.kernels.banded.shared_bytes`)."""
    # (one or two taps: a window of 16, 8-16x the useful multiply-adds)
    cfg = banded_config(problem, sm_count) if problem.taps >= 3 else None
    if cfg is None:
        return []
    variants = [cfg, dataclasses.replace(cfg, block_n=16), dataclasses.replace(cfg, block_k=max(16, cfg.block_k // 2)),
                dataclasses.replace(cfg, num_warps=4), dataclasses.replace(cfg, split_k=max(1, cfg.split_k // 2)),
                dataclasses.replace(cfg, split_k=2 * cfg.split_k)]
    out = []
    wgrad = problem.kind == "conv_dw_wgrad"
    for c in variants:
        if banded.shared_bytes(problem.spec, c, problem.itemsize, wgrad) + 1024 <= smem_limit and c not in out:
            out.append(c)
    return out


def banded_issued(problem: Problem, config: Config) -> float:
    """The multiply-adds a banded launch with ``config`` issues a useful one: its window over the taps."""
    return banded.rows(problem.spec, config) / problem.taps


def banded_reading(problem: Problem, config: Config) -> banded.Reading:
    """How a banded launch with ``config`` tiles its output and reads ``x`` (the input gradient's output gradient):
    :func:`tritonconv.kernels.banded.reading` on a stand-in laid out as the problem's."""
    pad = banded.as_forward(problem.spec, problem.kind == "conv_dw_t", False)[0][-1]
    x = standin(problem.reads[0], getattr(torch, problem.dtype), problem.layout == "channels_last", "meta")
    return banded.reading(x, problem.spec, config, pad)


def banded_nc_rows(problem: Problem) -> bool:
    """An NC(D)HW depthwise problem with taps along the height: banded segments of several rows."""
    return problem.layout == "contiguous" and banded.axes(problem.spec)[0][0] > 1


def heuristic_banded(problem: Problem, interpret: bool, sm_count: int) -> Config | None:
    """The banded kernel's tiles where the heuristic takes them: on a GPU, from :data:`BANDED_TAPS` taps, issuing at
    most :data:`BANDED_ISSUED` multiply-adds a useful one, in either layout. NC(D)HW windows of several rows issue, per
    1000 useful multiply-adds (sm_90 SASS, Triton 3.9 / 3.6), 16-18 / 16-17 at 7 x 7 taps and 67-73 / 75 at 3 x 3 read
    in runs, 52-56 / 63-64 and 97-98 / 111-113 2 bytes at a time (rows of 57), where the FMA kernel issues 152-165 on
    rows in runs and 226-296 on others; else None."""
    if interpret or problem.taps < BANDED_TAPS:
        return None
    cfg = banded_config(problem, sm_count)
    if cfg is None or banded_issued(problem, cfg) > BANDED_ISSUED:
        return None
    return cfg


def depthwise_heuristic(problem: Problem, interpret: bool, sm_count: int, tma: bool) -> Config:
    """:func:`heuristic`'s depthwise forward and input gradient: FMA tiles of positions x channels (:func:`fma_depthwise`),
    or on a GPU the banded kernel's (:func:`heuristic_banded`)."""
    return heuristic_banded(problem, interpret, sm_count) or fma_depthwise(problem, interpret)


def fma_depthwise(problem: Problem, interpret: bool = False) -> Config:
    """The FMA depthwise kernel's tiles (:mod:`tritonconv.kernels.depthwise`) for a forward or input gradient."""
    rows, cols, _ = problem.gemm
    block_n = clamp_pow2(cols, 16, 64)
    if interpret:
        return Config(clamp_pow2(rows, 16, 16384 // block_n), block_n, 16, 1, 1, 1)
    block_m = 128 if block_n <= 32 else 64
    if problem.layout == "contiguous":  # NC(D)HW row tiles (consecutive addresses along them: a warp's lanes run
        # there on Triton 3.6 and 3.9; unit width strides read in runs), 256 positions x 16 channels on 4 warps:
        # sm_90 SASS 152-165 warp instructions per 1000 multiply-adds on the suite's two layers (Triton 3.9 and
        # 3.6; 128 positions: 152-188), 226-296 at a width stride of 2 or an odd width, no runs (128: 240-373);
        # 32 x 64 on 8 warps spilled 8 B on 3.6 (benchmarks/NOTES.md, thirtieth and thirty-first sessions)
        return Config(256, clamp_pow2(cols, 1, 16), 16, group_m=1, num_warps=4, num_stages=1)
    return Config(block_m, block_n, 16, group_m=1, num_warps=4, num_stages=1)


def depthwise_wgrad_heuristic(problem: Problem, interpret: bool, sm_count: int, tma: bool) -> Config:
    """:func:`heuristic`'s depthwise weight gradient: tiles of taps x channels x positions, split to fill the SMs; on a
    GPU the banded kernel's (:func:`heuristic_banded`)."""
    return heuristic_banded(problem, interpret, sm_count) or fma_depthwise_wgrad(problem, interpret, sm_count)


def fma_depthwise_wgrad(problem: Problem, interpret: bool = False, sm_count: int = 132) -> Config:
    """The FMA depthwise weight-gradient kernel's tiles (:mod:`tritonconv.kernels.depthwise`), split to fill the SMs."""
    rows, _, red = problem.gemm
    if interpret:  # the fewest numpy steps: every tap (a width tap's, x read in runs), up to 64K elements a step
        block_m, block_n, block_k = dw_wgrad_tile(problem, 64, 64, 64 * 1024)
        if dw_wgrad_runs(problem, Config(block_m, block_n, block_k, 1, 1, 1)):
            block_m = clamp_pow2(math.prod(problem.weight_shape[2:-1]), 1, 64)
        return Config(block_m, block_n, block_k, 1, 1, 1)
    # 8K sums a program on 4 warps. Channels-last: 8 taps, or 4 where they pad the taps less (9: 12, not 16), 64
    # channels (16-byte loads). NC(D)HW: row tiles of 128 positions (kernels.depthwise; a warp's lanes along the rows
    # on both Tritons); x's rows read in runs (unit width stride), one tap a program x 64 channels (a program's taps
    # are one width tap's, and 1 beat 2 or 4 (d, h) taps on the 3 x 3 layer), else 4 taps (fewer instructions than
    # 8). SASS (sm_90, bf16, Triton 3.9 / 3.6), per 1000 useful multiply-adds: channels-last 240 / 389 on the
    # suite's 3x3 layer, 144 / 177 on its 31 taps; NC(D)HW in runs 204 / 242 and 205 / 217 (4 taps a program, no
    # runs: 374 / 373 and 298 / 304) (benchmarks/NOTES.md, thirty-first session)
    # (4-byte operands half the sums: fp32's 4 x 64 x 32 spilled 16 B on Triton 3.6)
    sums = 16384 // problem.itemsize
    if problem.layout == "channels_last":
        taps = 8 if cdiv(rows, 8) * 8 <= cdiv(rows, 4) * 4 else 4
        block_m, block_n, block_k = dw_wgrad_tile(problem, taps, 64, sums)
    else:
        block_m, block_n, block_k = dw_wgrad_tile(problem, 1, sums // 128, sums)
        if not dw_wgrad_runs(problem, Config(block_m, block_n, block_k, group_m=1, num_warps=4, num_stages=1)):
            block_m = clamp_pow2(rows, 1, 4)
            block_m, block_n, block_k = dw_wgrad_tile(problem, 4, max(1, sums // (block_m * 128)), sums)
    cfg = Config(block_m, block_n, block_k, group_m=1, num_warps=4, num_stages=1)
    split = max(1, min(cdiv(4 * sm_count, split_tiles(problem, cfg)), cdiv(red, 8 * block_k)))
    return dataclasses.replace(cfg, split_k=split)


def wgrad_heuristic(problem: Problem, interpret: bool, sm_count: int, tma: bool) -> Config:
    """:func:`heuristic`'s GEMM weight gradient: output x input channels (taps folded in where that issues fewer
    columns) over positions, on the pointer kernel or its descriptor kernel, split to fill the SMs."""
    rows, cols, red = problem.gemm
    # tap axes folded into the columns where that issues fewer columns (3-channel stems: all but depth)
    fold = min(range(wgrad_max_fold(problem) + 1 if can_fold(problem) else 1),
               key=lambda f: wgrad_columns(problem, f, fit_pow2(folded_taps(problem, f) * cols, 16, 128)))
    width = folded_taps(problem, fold)
    block_m = clamp_pow2(rows, 16, 64) if interpret else fit_pow2(rows, 16, 128)
    block_n = clamp_pow2(width * cols, 16, 64) if interpret else fit_pow2(width * cols, 16, 128)
    if interpret:
        return Config(block_m, block_n, clamp_pow2(red, 16, 16384 // max(block_m, block_n)), 1, 1, 1, fold=fold)
    # fp32 and fp64: 16-wide steps (see the forward's below; fp32's 32-wide ones spilled 4-220 B on sm_80), TF32 32
    block_k = wide_step(problem) if problem.dtype in WIDE_DTYPES else 64 if block_m * block_n <= 64 * 64 else 32
    tiles = split_tiles(problem, Config(block_m, block_n, block_k, fold=fold))
    split = wave_split(tiles, 2 * sm_count, cdiv(red, 8 * block_k), sm_count)
    # NC(D)HW operands read in place (tiled by rows): per-element addresses need the registers of
    # 8 warps and smaller steps (ptxas spills otherwise; tests/test_compile.py)
    strided = problem.layout == "contiguous"
    # tiles of at most 32 x 32, or channels-innermost ones under 64 output channels beside 64 input channels or
    # more (their MMA run transposed, weight_grad.input_channels_as_m), step narrow_step positions: 16-bit and TF32
    narrow = (problem.dtype in ("float16", "bfloat16") or problem.tf32) and (
        max(block_m, block_n) <= 32 or (problem.layout == "channels_last" and block_m < 64 <= block_n))
    if strided:
        block_m, block_n, block_k = (min(block_m, 64), min(block_n, 64), 16) if problem.dtype in WIDE_DTYPES \
            else (block_m, block_n, narrow_step(problem) if narrow else 32)
    warps = 8 if strided or (problem.dtype in WIDE_DTYPES and block_m * block_n >= 128 * 128) else 4  # fp32: spills
    # NC(D)HW fp32 64 x 64 x 16 tiles spilled 4-16 B with 2-3 stages on 4 or 8 warps (Triton 3.6 or 3.9,
    # sm_80 or sm_90, depending on the layer); one stage on 8 warps spilled on none (tests/test_compile.py)
    stages = 1 if strided and problem.dtype in WIDE_DTYPES else 3
    if fold:  # per-element tap masks: 8 warps (fp32 64 x 32 x 64 tiles on 4 spilled 76-108 B on sm_80)
        return Config(block_m, block_n, block_k, group_m=1, num_warps=8, num_stages=stages, split_k=split,
                      fold=fold)
    positions = TF32_STEP if problem.tf32 else 64
    if narrow and tma_padding(problem, narrow_step(problem)) <= tma_padding(problem, positions):
        positions = narrow_step(problem)
    if tma and mma_tiles(problem) and not fp8(problem) and tma_eligible(problem) \
            and tma_padding(problem, positions) <= TMA_PADDING:
        # the descriptor kernel: patches of 64 positions per step (four k-steps of the MMA; TF32's 32; narrow
        # tiles' narrow_step), no per-element addresses (a prediction, benchmarks/NOTES.md P16: the
        # pointer kernel's loop issues 27-331 integer instructions per MMA); channel tiles padding little beside
        # the patches' padding
        tma_m, tma_n = within_slack((rows, width * cols), (block_m, block_n), tma_padding(problem, positions))

        def on_descriptors(tma_m: int) -> Config:
            tiles = split_tiles(problem, Config(tma_m, tma_n, positions))
            return Config(tma_m, tma_n, positions, group_m=1, num_warps=8 if tma_m * tma_n >= 128 * 128 else 4,
                          num_stages=3, split_k=wave_split(tiles, 2 * sm_count, cdiv(red, 8 * positions),
                                                           sm_count),  # at least 8 steps a split, as below
                          **tma_patch(problem, positions))

        chosen = on_descriptors(tma_m)
        # NC(D)HW x read in runs (nc_runs): their moves in registers paid for by 64 output channels or more (32-row
        # tiles issued 0.43-0.78x the channels-last loop's rate, and 32 x 64 spilled 36 B on 4 warps; 64 and more,
        # 0.70-1.0x: python -m benchmarks.static --rows); where narrower tiles would cover the output channels
        # exactly, 64 rows pad them instead (R(2+1)D's mid channels, 144 as 192 and 288 as 320: 2.15 and 1.80 warp
        # instructions per 1000 issued multiply-adds, where the pointer kernel's 32 x 64 and 64 x 128 row tiles
        # issued 17.9 and 5.38); under 64 output channels, tiles of at most 32 x 32 elements on 4 warps (no spill; the
        # 3-D U-Net's 32 channels: 7.73, where the pointer kernel's 32 x 32 x 32 on 8 warps issued 28.6). Channels
        # innermost, a tile under 64 rows keeps its fit: the kernel runs its MMA transposed where the input-channel
        # tile has 64 or more (weight_grad.input_channels_as_m)
        if tma_m < 64 <= rows and nc_runs(problem, chosen):
            chosen = on_descriptors(64)
        if descriptors_launch(problem, chosen) and (chosen.block_m >= 64 or chosen.block_m * chosen.block_n <= 32 * 32
                                                    or not nc_runs(problem, chosen)):
            return chosen
    return Config(block_m, block_n, block_k, group_m=1, num_warps=warps, num_stages=stages, split_k=split)


def forward_heuristic(problem: Problem, interpret: bool, sm_count: int, tma: bool) -> Config:
    """:func:`heuristic`'s forward and input gradient (a forward convolution of the transposed problem): positions x
    output channels over input channels and taps, on the pointer kernel or the descriptor kernel."""
    rows, cols, red = problem.gemm
    fold = int(folds_taps(problem, interpret))
    block_n = clamp_pow2(cols, 16, 64 if problem.layout == "contiguous" else 128)  # see num_warps below
    block_k = clamp_pow2(problem.taps * red if fold else red, min_k(problem), 64)
    if not interpret:  # tiles that pad the channels least (the interpreter: the largest, fewest numpy steps)
        block_n = fit_pow2(cols, narrowest(problem, cols, 16), block_n)
        block_k = fit_pow2(problem.taps * red if fold else red, min_k(problem), block_k)
    if interpret:
        return Config(clamp_pow2(rows, 16, 16384 // max(block_k, block_n)), block_n, block_k, 1, 1, 1, fold=fold)
    block_m = 128 if rows >= 128 * 64 else 64
    # 8 warps for big tiles, and where the output is written through NCHW strides: its per-element
    # addresses need registers that 4 warps do not have (ptxas spills; python -m benchmarks.static)
    # and strided transposed passes of 128 x 64 tiles (their phase's tap table: r3d18_l2_s2 spilled 24 B on 4)
    phases = problem.kind == "conv_t" and any(s > 1 for s in problem.stride)
    warps = 8 if block_m * block_n >= (128 * 64 if phases else 128 * 128) or problem.layout == "contiguous" \
        or hoisted_rows(problem, block_m, block_n, tma) else 4
    if fold:  # the gather's per-element index math doubles register use (ptxas: 128x64x64, 4 warps spills)
        block_k, warps = max(min(block_k, 32), min_k(problem)), 8
    if problem.dtype in WIDE_DTYPES:  # IEEE fp32 products are FMA loops whose operands the compiler holds in
        # registers: 64-wide steps spilled in the main loops of 35 of the channels-last suite's 84 fp32 kernels on
        # sm_90 (32 of them 2-10 KB a thread, about 1,000-6,500 local accesses a step), 32-wide ones up to 76 B on
        # sm_80 and 128 x 64 on 4 warps 24 B on sm_90; 16-wide steps issue 1.03x the instructions per FMA (tf32 MMAs:
        # 24 B at 64-wide steps, none at 32 or 16); fp64's MMAs 620 B at 64-wide steps on 4 warps (resnet50_l1_3x3,
        # sm_90), none at 16 on 8. TF32 MMAs step 32 (TF32_STEP; on sm_80 1.16x fewer instructions per multiply-add
        # than 16-wide steps, median over a sample of the suite's layers, none spilling)
        block_k = max(min(block_k, wide_step(problem)), min_k(problem))
        warps = 8 if block_m * block_n >= 128 * 64 else warps
    descriptor_k = block_k  # (a descriptor loop computes no addresses: the NC(D)HW clamp below is the pointer kernel's)
    floor = narrowest(problem, red, min_k(problem))  # (and its steps no narrower than NARROWEST_MMA_TILE)
    if not fold and block_k < floor:
        block_k = fit_pow2(red, floor, wide_step(problem) if problem.dtype in WIDE_DTYPES else 64)
    if problem.tf32 and problem.kind == "conv" and problem.layout == "contiguous" and nc_dealt(problem.spec):
        descriptor_k = min(descriptor_k, TF32_DEALT_STEP)
    if nc_wide_step(problem, block_m, block_n, block_k):
        warps = 4  # 64-wide steps on 64 x 64 tiles of more than one tap
    elif problem.layout == "contiguous":  # NC(D)HW read in place: see conv_wgrad (32-channel steps; fp32's 16, above)
        block_k = max(min(block_k, 32), min_k(problem))
    stages = 2 if problem.taps * red <= block_k else 3
    split = 1
    tiles = max(1, problem.groups * cdiv(rows, block_m) * cdiv(cols, block_n))  # 0 rows: empty batch
    if not fold and tiles < sm_count and small_output(problem):  # under one wave: split the reduction
        split = max(1, min(cdiv(sm_count, tiles), red // (2 * block_k), FORWARD_SPLITS[-1]))
    cfg = Config(block_m, block_n, block_k, num_warps=warps, num_stages=stages, split_k=split, fold=fold)
    if tma and problem.kind in ("conv", "conv_t") and mma_tiles(problem) and tma_eligible(problem) and not fold \
            and (split == 1 or not problem.by_phase):
        cfg = forward_descriptors(problem, cfg, descriptor_k, sm_count) or cfg
    if not cfg.tile_h and nc_long_rows(problem, cfg, tma):  # narrow NC(D)HW pointer tiles: 256 rows on 4 warps
        cfg = dataclasses.replace(cfg, block_m=LONG_ROWS, num_warps=4)
    return cfg


def forward_descriptors(problem: Problem, cfg: Config, step: int, sm_count: int) -> Config | None:
    """:func:`forward_heuristic`'s descriptor-kernel config beside its pointer config ``cfg`` (``step``: the
    descriptor loop's reduction step), or None where its patches pad the positions more than :data:`TMA_PADDING` or
    it does not launch (:func:`descriptors_launch`)."""
    cols = problem.gemm[1]
    # patches of 64 positions where they pad less than 128 (one image's 56 x 56: 8 x 8 exactly, 8 x 16 1.14x;
    # spanning two images, 128 as 2 x 8 x 8: exact too, so 128); NC(D)HW planes read as rows take the pointer
    # kernel's (128 positions of a 28 x 28 plane pad it 1.14x, as 32-wide rows did, and a volume read as one row
    # not at all; 64 would read the weight twice as often: c3d_conv3a predicted 0.155 ms on planes, bound by the
    # L2's fill, against 0.135, benchmarks/NOTES.md, 2026-12-04)
    tma_m = cfg.block_m if planes_as_rows(problem) else min((cfg.block_m, 64), key=lambda m: (tma_padding(problem, m), -m))
    if tma_padding(problem, tma_m) > TMA_PADDING:
        return None
    # channels beside the patches (NC(D)HW too: the pointer tile's 64-channel cap is for its row addresses)
    (block_n,) = within_slack((cols,), (clamp_pow2(cols, 16, 128),), tma_padding(problem, tma_m),
                              low=narrowest(problem, cols, 16))
    if problem.layout == "contiguous":  # no narrower than the pointer kernel's (rows whole pad 1.14x already:
        block_n = max(block_n, cfg.block_n)  # a 16-wide tile for 144 channels would starve its MMA)
    # 8 warps for 128 x 128 tiles only, NC(D)HW too (its epilogue's addresses spill on none of the suite's on 4,
    # and 8 warps issued 1.5-2x the warp instructions per multiply-add: benchmarks/NOTES.md, thirteenth session)
    warps = 8 if tma_m * block_n >= 128 * 128 else 4
    chosen = dataclasses.replace(cfg, block_m=tma_m, block_n=block_n, block_k=step, group_m=1,
                                 num_warps=warps, **tma_patch(problem, tma_m))
    if one_row_forward(problem, chosen):  # the MMA's first operand a box of one row (channel tiles under 64 do
        chosen = dataclasses.replace(chosen, tile_b=1, tile_h=1)  # not run transposed)
    elif wide_patch(problem, chosen, sm_count):
        chosen = dataclasses.replace(chosen, block_m=WIDE_PATCH, **tma_patch(problem, WIDE_PATCH))
    return chosen if descriptors_launch(problem, chosen) else None


HEURISTICS: dict[str, Callable[[Problem, bool, int, bool], Config]] = {
    "conv_dw": depthwise_heuristic, "conv_dw_t": depthwise_heuristic, "conv_dw_wgrad": depthwise_wgrad_heuristic,
    "conv_wgrad": wgrad_heuristic}
"""Per kernel kind, :func:`heuristic`'s family (the forward's, :func:`forward_heuristic`, for the rest)."""


def fused_2plus1d_config(m: int, c_in: int, c_mid: int, c_out: int, interp: bool, channels_last: bool = True,
                         dtype: str = "bfloat16") -> Config:
    """Tiles of the fused (2+1)D kernel (``block_k`` is the input-channel step; the mid step is the kernel's,
    :class:`tritonconv.kernels.fused_2plus1d.Launch`). An output written through NCDHW strides needs 8 warps (on 4,
    ptxas spills its per-element addresses); fp32 and fp64 step 16 channels on 8 warps (FMA loops: 64-wide steps on 4
    spilled 2,320 B on sm_90, 33 local accesses a step; 16-wide ones on 4, 1,700 B)."""
    block_n = clamp_pow2(c_out, 16, 64) if interp else fit_pow2(c_out, 16, 64)
    block_k = clamp_pow2(c_in, 16, 64) if interp else fit_pow2(c_in, 16, 16 if dtype in WIDE_DTYPES else 64)
    if interp:
        return Config(clamp_pow2(m, 16, 8192 // max(block_k, block_n)), block_n, block_k, 1, 1, 1)
    return Config(64, block_n, block_k, group_m=1, num_warps=4 if channels_last and dtype not in WIDE_DTYPES else 8,
                  num_stages=2)


def hoisted_rows(problem: Problem, block_m: int, block_n: int, tma: bool) -> bool:
    """Whether a pointer-kernel forward tile of ``block_m x block_n`` needs 8 warps before Hopper (no tensor memory
    accelerator, ``tma`` False): one tap over input channels of no multiple of 16. With one tap, its rows' addresses
    and masks do not change along the loop, and the compiler holds them across it beside the accumulator and both MMA
    operands (``mma.sync`` reads them from registers). ptxas for sm_80 spilled 8-488 B of 64 x 128 x 64 and 128 x 64
    x 64 one-tap tiles on 4 warps, 2-47 local accesses a step of the main loop (``resnet50_ds_1x1s2``, sampled 1x1
    and 1-wide layers); on 8 warps, 176-239 registers, none, and as many instructions per MMA. Layers with more taps
    compute those addresses per tap, and no sampled one spilled in its loop on 4 warps (``benchmarks/NOTES.md``,
    2026-12-02). Those spills came with operands loaded 2 bytes at a time (the weight's,
    :func:`tritonconv.geometry.tap_strides`): with the weight in 16-byte copies, every sampled one-tap layer whose
    input channels are a multiple of 16 (what the compiler sees of an integer: its loads 16 bytes wide) spilled nothing
    on 4 warps and issued 14-25% fewer instructions per MMA (Triton 3.9 and 3.6: 13 random layers, 1-D to 3-D, and 16
    to 112 channels), where one of 24 channels, whose loads stay 2 bytes wide, spilled 1,020 B in its loop
    (2026-12-06). So the rule holds for those alone."""
    return not tma and problem.kind == "conv" and problem.taps == 1 and block_m * block_n >= 64 * 128 \
        and problem.gemm[2] % 16 != 0


def small_output(problem: Problem) -> bool:
    """Few enough output elements that one wave of tiles may leave SMs idle: split candidates are tried."""
    rows, cols, _ = problem.gemm
    return rows * cols * problem.groups <= SMALL_OUTPUT


def folds_taps(problem: Problem, interpret: bool) -> bool:
    """Whether the forward heuristic folds the taps into the reduction (:func:`can_fold`): where a tap's chunk of input
    channels would be half zeros or worse (at most 8 channels), but not for NC(D)HW tensor-core tiles on a GPU. There
    the per-tap loop, its channels padded to 16, issues fewer warp instructions per useful multiply-add than the
    folded gather (sm_90 SASS, Triton 3.9: KernelBench's 3-channel 3x5x7 volumes ``60`` and ``66``, whose packing would
    hold 7x the input: 36.8 and 34.8 per 1000 useful against 45.6), and the folded loop measured 12-15e12
    multiply-adds a second on the H200 (the fitted ``fold_macs``): predicted 5.34 and 2.51 ms folded, 2.88 and 1.35
    per tap. Channels-last per-tap tiles read 3 channels a tap 2 bytes at a time (109 per 1000 useful against 30
    folded): they fold, as IEEE fp32 does and the interpreter (fewer numpy steps)."""
    return can_fold(problem) and problem.gemm[2] <= 8 and (
        interpret or not mma_tiles(problem) or problem.layout == "channels_last")


def can_fold(problem: Problem) -> bool:
    """Folding taps, worth trying when a tap's channels fill no 16-wide chunk: into the forward's reduction
    (few input channels per group), or the width taps into the weight gradient's columns (the same)."""
    if problem.kind == "conv_wgrad":
        return problem.weight_shape[-1] > 1 and problem.gemm[1] < 16
    return problem.kind == "conv" and problem.taps > 1 and problem.gemm[2] < 16


def wgrad_max_fold(problem: Problem) -> int:
    """:func:`tritonconv.geometry.max_wgrad_fold` of the problem's weight."""
    return geometry.max_wgrad_fold(problem.weight_shape)


def folded_taps(problem: Problem, fold: int) -> int:
    """:func:`tritonconv.geometry.folded_taps` of the problem's weight."""
    return geometry.folded_taps(problem.weight_shape, fold)


def wgrad_columns(problem: Problem, fold: int, block_n: int) -> int:
    """Columns a weight gradient's tiles of ``block_n`` issue over every tap: per tap of the axes not folded, tiles
    of ``folded taps x C_in_g`` columns."""
    width = folded_taps(problem, fold)
    return problem.taps // width * cdiv(width * problem.gemm[1], block_n) * block_n


# --- choosing a config -------------------------------------------------------------------------

def autotune_enabled() -> bool:
    """``TRITONCONV_AUTOTUNE``: 1 (default) tunes unseen shapes on a GPU, 0 never tunes."""
    value = os.environ.get("TRITONCONV_AUTOTUNE", "1")
    if value not in ("0", "1"):
        raise ValueError(f"expected TRITONCONV_AUTOTUNE to be 0 or 1, got {value!r}")
    return value == "1"


def do_bench_median(fn: Callable[[], object]) -> float:
    """Median milliseconds per call of ``fn``'s kernels, from replays of a CUDA graph of many calls
    (``triton.testing.do_bench_cudagraph``): Python's cost per launch, tens of microseconds and more
    than a small kernel takes, stays out, so configs are told apart by their kernels. Where ``fn`` cannot
    be captured, its calls are timed one by one (``triton.testing.do_bench``)."""
    try:
        ms = triton.testing.do_bench_cudagraph(fn, rep=20, return_mode="median")
        stats["timed_cuda_graph"] += 1
        return ms
    except RuntimeError as err:  # e.g. a synchronising call inside fn
        log.debug("tritonconv: timing without a CUDA graph: %s", err)
        stats["timed_host"] += 1
        return triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median")


def timing_since(before: Counter) -> str:
    """``"host"`` if any timing since the ``stats`` snapshot ``before`` fell back to host timing, else
    ``"cuda_graph"`` (what a cache entry records)."""
    return "host" if stats["timed_host"] > before["timed_host"] else "cuda_graph"


_TUNE_TOL = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2, "float64": 1e-10,  # relative L2 vs the heuristic's output
             "float8_e4m3fn": 1e-2, "float8_e5m2": 1e-2}  # fp8: exact products, fp32 sums, a 16-bit output


def autotune_top() -> int:
    """``TRITONCONV_AUTOTUNE_TOP``: how many candidates a tuning in the library times beside the default config,
    those its model predicts fastest (:func:`shortlist`); 0: every candidate. Default 6."""
    value = os.environ.get("TRITONCONV_AUTOTUNE_TOP", "6")
    if not value.isdigit():
        raise ValueError(f"expected TRITONCONV_AUTOTUNE_TOP to be a count (0: every candidate), got {value!r}")
    return int(value)


def shortlist(problem: Problem, configs: list[Config], predict: Predict, top: int, sm_count: int,
              tma: bool, smem_limit: int = DEFAULT_SMEM) -> list[Config]:
    """The candidates a pruned search times: the ``top`` of ``configs`` that ``predict`` puts fastest, and the
    default config (:func:`default`), so that a tuned entry (a relayout config's copies, say) replaces the default
    only where it measured faster; and the heuristic's own, where the model moved its split count, so that the
    tuning's timings judge that move (``python -m benchmarks.readout``)."""
    best = ranked(problem, configs, predict)[:top]
    return best + [cfg for cfg in baselines(problem, sm_count, tma, predict, smem_limit) if cfg not in best]


def tune(problem: Problem, run: Callable[[Config], torch.Tensor], bench: Callable, smem_limit: int,
         sm_count: int, tma: bool = False, skip: Collection[Config] = (), predict: Predict | None = None,
         top: int = 0, timed: list[tuple[Config, float]] | None = None) -> tuple[Config, float]:
    """Benchmark every candidate (but ``skip``; with ``predict`` and ``top``, only :func:`shortlist`'s), each
    (config, ms) appended to ``timed`` when given; a config must reproduce the heuristic config's output to
    win. Their kernels are compiled first, all at once, on threads (:func:`tritonconv._runtime.compile_ahead`)."""
    every = candidates(problem, smem_limit, tma, sm_count, predict)
    listed = set(shortlist(problem, every, predict, top, sm_count, tma, smem_limit)) if predict is not None and top \
        else set(every)
    todo = [cfg for cfg in every if cfg in listed and cfg not in skip]
    first = default(problem, sm_count, False, None, smem_limit)  # the heuristic's pointer tiles, fitted
    with _runtime.compile_ahead():  # every kernel the candidates launch compiled at once, in threads; then run in turn
        for cfg in [first, *todo]:
            with contextlib.suppress(Exception):  # (a config that fails here fails again below, and is reported)
                run(cfg)
    reference = run(first).float()
    best, best_ms = None, math.inf
    for cfg in todo:
        try:
            out = run(cfg).float()
        except Exception as err:  # e.g. out of resources for this config on this device
            log.debug("tritonconv: %s skipped on %s: %s", cfg, problem.key(), err)
            continue
        err = ((out - reference).norm() / reference.norm().clamp_min(1e-30)).item()
        if not err <= _TUNE_TOL[problem.dtype]:
            log.warning("tritonconv: %s disagrees with the default config on %s (rel. error %.1e); skipped",
                        cfg, problem.key(), err)
            continue
        ms = bench(lambda cfg=cfg: run(cfg))
        if timed is not None:
            timed.append((cfg, ms))
        if ms < best_ms:
            best, best_ms = cfg, ms
    if best is None:
        best, best_ms = default(problem, sm_count, tma, predict, smem_limit), math.nan
    return best, best_ms


def resolve(problem: Problem, device_name: str, run: Callable[[Config], torch.Tensor] | None, *,
            autotune: bool, bench: Callable = do_bench_median, smem_limit: int = DEFAULT_SMEM,
            sm_count: int = 132, tma: bool = False, predict: Predict | None = None) -> Config:
    """Config for ``problem`` on a GPU called ``device_name``: caches, then tuning (of :func:`autotune_top`'s
    shortlist by ``predict``, or every candidate without one) or the default config (:func:`default`)."""
    hit = cache.lookup(device_name, problem)
    if hit is not None:
        cfg, how = hit
        stats[how] += 1
        log.debug("tritonconv: %s config for %s: %s", how, problem.key(), cfg)
        return cfg
    if autotune and run is not None and problem.input_shape[0] > 0:  # an empty batch: nothing to time
        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            raise RuntimeError(
                f"tritonconv: no tuned config for {problem.key()} on {device_name}, and tuning cannot run inside a "
                "CUDA graph capture (it times kernels and synchronises); call the model once before capturing, "
                "or set TRITONCONV_AUTOTUNE=0 to use the default config")
        _announce(problem, device_name)
        before = Counter(stats)
        timed: list[tuple[Config, float]] = []
        top = autotune_top() if predict is not None else 0
        cfg, ms = tune(problem, run, bench, smem_limit, sm_count, tma, predict=predict, top=top, timed=timed)
        stats["tuned"] += 1
        log.info("tritonconv: tuned %s on %s: %s (%.4f ms)", problem.key(), device_name, cfg, ms)
        cache.store(device_name, {problem.key(): cache.entry(problem, cfg, ms, timing_since(before), timed,
                                                             f"top {top}" if top else "full")})
        return cfg
    stats["heuristic"] += 1
    return default(problem, sm_count, tma, predict, smem_limit)


_announced: set[str] = set()


def _announce(problem: Problem, device_name: str) -> None:
    """Say once per process and GPU that first calls tune (a warning: the first steps of a model are slower), and how
    to tune ahead or not at all."""
    if device_name not in _announced:
        _announced.add(device_name)
        warnings.warn(f"tritonconv: tuning {problem.key()} on {device_name}: the first call of each new shape compiles and "
                      f"times a few configs and caches the fastest in {cache.user_dir()}; "
                      "`python -m tritonconv.tune` or `tritonconv.tune.ahead(model, *inputs)` tunes ahead, "
                      "TRITONCONV_AUTOTUNE=0 takes the default configs",
                      TuningWarning, stacklevel=2)


class TuningWarning(UserWarning):
    """A first call on a GPU is tuning (:func:`resolve`); ``warnings.simplefilter("ignore", TuningWarning)`` hides it."""


_memo: dict[tuple, Config] = {}


def forget() -> None:
    """Drop the configs this process has chosen (:func:`choose`'s memo): the next launch of each problem looks its
    config up again."""
    _memo.clear()


def choose(problem: Problem, device: torch.device, interp: bool, run: Callable[[Config], torch.Tensor],
           model: Callable[[str, int], Predict] | None = None) -> Config:
    """The config a launch uses (see the module docstring for the order); ``model``: the predicted launch times on a
    GPU of a given name and SM count, for a tuning's shortlist and the default's split count (:func:`resolve`)."""
    if interp:
        stats["interpreter"] += 1
        return heuristic(problem, interpret=True)
    memo_key = (problem, device.index)
    cfg = _memo.get(memo_key)
    if cfg is not None:
        stats["memo"] += 1
        return cfg
    props = torch.cuda.get_device_properties(device)
    cfg = resolve(problem, props.name, run, autotune=autotune_enabled(),
                  smem_limit=getattr(props, "shared_memory_per_block_optin", DEFAULT_SMEM),
                  sm_count=props.multi_processor_count, tma=props.major >= 9,
                  predict=model(props.name, props.multi_processor_count) if model is not None else None)
    _memo[memo_key] = cfg
    return cfg


__all__ = ["DEPTHWISE_KIND", "KINDS", "Config", "Problem", "TuningWarning", "candidates", "choose", "default",
           "forget", "heuristic", "resolve", "ranked", "shortlist", "split_choices", "stats", "tune"]
