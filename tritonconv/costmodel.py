"""A performance model of tritonconv's launches: device time predicted from what the CPU can know.

For one launch (a :class:`~tritonconv.geometry.Problem` and the :class:`~tritonconv.geometry.Config`
it runs with) on a GPU described by :class:`Device`::

    t = t0 + max(W / (R * e), B / BW) + S

* ``W``: the multiply-adds the launch issues, masked lanes included (the GEMM kernels' own count,
  ``Launch.mma_work``: channel padding to the tile, tile edges, split tails, the taps a transposed
  pass masks; the descriptor kernels' TILE_B x TILE_H x TILE_W output patches; the useful multiply-adds of
  a depthwise kernel, which runs on FMA units, its weight gradient's last tile of taps padded);
* ``R``: the kernel's rate on the device, multiply-adds per second: ``mma_macs`` for the pointer GEMM
  kernels' 16-bit ``tl.dot`` (a quarter of it for TF32), ``row_macs`` for them on NC(D)HW tiles
  (:func:`by_rows`; unfitted, ``mma_macs`` scaled by the census's :data:`ROW_ISSUE`), ``aligned_macs`` on NC(D)HW
  tiles read in aligned runs (:func:`aligned`; :data:`ALIGNED_ISSUE` likewise), all fitted on forward
  launches and scaled per pass by the census's :data:`PASS_ISSUE`; ``tma_macs`` for the descriptor kernels,
  ``fold_macs`` for a launch that folds taps into its tiles (the forward's reduction, the weight
  gradient's columns: a tap's address and mask per element, integer-bound), and
  ``fma_macs`` for the depthwise kernels and fp64 dots, ``ieee_macs`` for IEEE fp32 dots (TF32 ones: a quarter
  of ``mma_macs``); twice the tensor-core rates for fp8;
* ``L``: the shared-memory fill: each CTA loads its operand tiles from L2 at every reduction step,
  ``itemsize * (1/BLOCK_M + 1/BLOCK_N)`` bytes per multiply-add issued, at ``l2_bandwidth`` for all SMs together;
  where that is slower than the MMA rate, it sets the rate (small tiles: on an H200, 32 x 32 tiles at most 0.4x the
  MMA rate, 16 x 16 ones 0.2x), so ``W / (R e)`` reads ``W * softmax(1/R, L / l2_bandwidth) / e``
  (:func:`soft_max`);
* ``I``: the GEMM kernels' instruction issue: each step of a ``BLOCK_M x BLOCK_N x BLOCK_K`` tile issues
  :func:`step_instructions` warp instructions on each of its warps (the SASS census's, estimated from the tile:
  :data:`STEP_ISSUE` for the descriptor kernels, :data:`POINTER_STEP` for the pointer ones; over the census's
  share, :func:`nc_share`, for NC(D)HW launches that move sums or read rows), at ``issue_rate``
  for all SMs together; where that is slower than the MMA it sets the rate (narrow tiles: on an H200 a 128 x 32 x 16
  descriptor step on 4 warps issues 2.3x the MMA's time, a 128 x 128 x 64 one on 8 warps 0.3x; a pointer 64 x 64 x 32
  step on 8 warps 1.9x the pointer rate's, a 128 x 128 x 64 one 0.4x), so ``W / (R e)`` reads
  ``W * softmax(1/R, L / l2_bandwidth, I) / e``; the depthwise kernels' FMAs likewise, at the census's instructions
  per multiply-add (:data:`DEPTHWISE_ISSUE`) (the pointer kernels' rates per pass and NC(D)HW class keep their
  census shares, :data:`PASS_ISSUE`, :data:`ROW_ISSUE` and the rest);
* ``e``: the wave efficiency (:func:`efficiency`): the grid runs in waves of at most CTAs-per-SM programs on every
  SM (:func:`occupancy`, the hardware's allocation rule, from the tile's shared memory, its warps and its kernel's
  registers, :data:`REGISTERS`); a wave lasts as long as its fullest SM takes to run its programs at the SM's rate,
  which the SM reaches once ``saturating_warps`` warps are resident, and a share of it below that;
* ``B``: the bytes the launch must move: its operands and output once, plus the fp32 partial sums
  of a split reduction (NC(D)HW operands are read in place: no copy); ``BW``: the device's bandwidth;
* ``D``: on Hopper, loops that wait for every MMA in flight each step (:func:`drained`: an operand moved through
  registers into shared memory) run their MMAs and their other instructions one after the other, overlapped only
  across the ``k`` programs resident on an SM: their steps take (MMA time + issue time) / ``k`` where that is longer
  than the overlapped time (:func:`chain_seconds`: one program an SM pays the sum, two or more mostly hide it);
* ``t0``: a launch's fixed cost on the device (not the host's);
* ``S``: where a split reduction's partial tiles meet in the kernel, the last split of each tile reads the others'
  back from L2 alone after the main loops, an SM's share of those tiles one after another (:func:`meet_seconds`).

A layer that launches several kernels costs the sum (a packed layer's packing launches and a layer of merged groups'
block-diagonal weight, :func:`pack_seconds`, a relayout config's copies, :func:`relayout_seconds`, and the second
launch of a weight gradient whose splits do not meet in the kernel, :func:`sums_apart`, included). The constants are
fitted on measured rows (``python -m benchmarks.costfit``, rows whose time was the host's excluded) and stored per
device in ``autotune_cache/costmodel/<device>.json``; a Hopper GPU without its own takes a fitted sibling's, carried
by their datasheets' ratios (:data:`SHEETS`, :func:`device_for`); :data:`DATASHEET` holds unfitted defaults. The tuner uses
:func:`rank` to time only the candidates the model puts first. What the CPU counts of a launch (``W``, ``L``, ``I``,
``B``, the grid and what sets its CTAs per SM, ``D``'s share, ``S``'s bytes) is gathered once a launch
(:class:`Inputs`) and combined with a :class:`Device`'s constants after, so a fit counts each launch once, however
many constants it tries.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path

import torch

from . import cache, geometry, shapes, tuning
from ._descriptors import flat_shifts, nc_dealt
from .geometry import Config, Problem
from .kernels import banded, depthwise, gemm, tma, weight_grad
from .shapes import cdiv

__all__ = ["ALIGNED_EACH_REGISTERS", "ALIGNED_ISSUE", "ALIGNED_REGISTERS", "BANDED_ISSUE", "BANDED_MMA",
           "BANDED_REGISTERS", "DATASHEET", "DEPTHWISE_ISSUE", "Device", "HOPPER", "Inputs", "NC_FLAT_ISSUE",
           "NC_ROWS_ISSUE", "NC_ROWS_REGISTERS", "NC_RUNS_ISSUE", "PASS_ISSUE", "POINTER_STEP", "REGISTERS",
           "ROW_ISSUE", "SHARED_MMA_REGISTERS", "SHEETS", "STEP_ISSUE", "Sheet", "UNFITTED_SHARES",
           "WGRAD_RUNS_REGISTERS", "aligned", "apart", "banded_reads", "bound", "bounds", "by_rows", "carried",
           "chain_seconds", "constants", "counts_operands", "ctas_per_sm", "default", "device_for", "drained",
           "efficiency", "fill_bytes", "first_from_registers", "fitted", "folds", "forget", "gemm_launch",
           "input_channels_as_m", "inputs", "issue_seconds", "issue_terms", "issue_time", "issued", "kernel_of",
           "launched", "meet_seconds", "meeting", "met_seconds", "mma_instructions", "model", "nc_flat", "nc_rows",
           "nc_runs", "nc_share", "occupancy", "one_row_mma", "pack_seconds", "pass_seconds", "pointer_step_terms",
           "predict", "predicting", "provenance", "rank", "rate_of", "read_back", "registers", "relayout_seconds",
           "residency", "resident", "row_reads", "runs_banded", "shared_bytes", "sibling", "spills", "standin",
           "step_instructions", "sums_apart", "tap_axes", "tap_runs", "tensor_factor", "tma_splits", "tma_tiles",
           "transposed_mma", "wanted_registers", "wgrad_runs", "x_as_m"]


@dataclasses.dataclass(frozen=True)
class Device:
    """A GPU's constants for :func:`predict`.

    :param name: the device name torch reports.
    :param sms: streaming multiprocessors.
    :param mma_macs: the pointer GEMM kernels' 16-bit multiply-adds per second (half the FLOP rate).
    :param tma_macs: the descriptor (TMA) kernel's 16-bit multiply-adds per second.
    :param fold_macs: a folded-tap launch's multiply-adds per second (forward or weight gradient).
    :param fma_macs: fp32 FMA multiply-adds per second (the depthwise kernels).
    :param bandwidth: device memory bytes per second (read and write together).
    :param t0: seconds per launch on the device.
    :param smem: shared memory per SM, bytes (1 KiB of it reserved per resident program, :func:`occupancy`).
    :param ieee_macs: the GEMM kernels' multiply-adds per second with IEEE fp32 products (``tl.dot`` lowered to
        FMAs): by default the rate the H200's KernelBench fp32 rows of 2026-11-26 ran at (useful multiply-adds
        over time, 6.3-6.6e12 on the dense problems, operand copies included), far below ``fma_macs``.
    :param row_macs: the pointer GEMM kernels' 16-bit rate on NC(D)HW tiles (:func:`by_rows`), or
        None: ``mma_macs`` at the rows' issue share, :data:`ROW_ISSUE` (until NC(D)HW rows are measured and fitted).
    :param aligned_macs: the same on NC(D)HW tiles read in aligned runs (:func:`aligned`), or None: ``mma_macs`` at
        their issue share, :data:`ALIGNED_ISSUE`.
    :param saturating_warps: resident warps at which an SM reaches its rate (:func:`efficiency`); unfitted: 8, two
        per warp scheduler (the 2026-11-26 rows, whose grids ran many waves, fit 4, 8 and 16 alike).
    :param l2_bandwidth: bytes per second the SMs together load from L2 into shared memory (the GEMM kernels'
        operand tiles, :func:`fill_bytes`): unfitted, 64 bytes per SM per clock at an H200's 1.98 GHz, about 16.7e12
        (its 2026-11-26 rows ran 128 x 128 descriptor tiles at up to 250e12 multiply-adds/s: 7.8e12 bytes/s).
    :param issue_rate: warp instructions per second the SMs together issue (:func:`step_instructions`): unfitted, four
        schedulers per SM issuing one a clock, at an H200's 132 SMs and 1.98 GHz.
    :param async_mma: whether the tensor cores run a loop's MMAs while the loop issues on (Hopper's warpgroup MMA), so
        that a loop that waits for them every step (:func:`drained`) runs its MMAs and its instructions one after the
        other (:func:`chain_seconds`); False before Hopper.
    """

    name: str
    sms: int
    mma_macs: float
    tma_macs: float
    fold_macs: float
    fma_macs: float
    bandwidth: float
    t0: float
    smem: int = 228 * 1024
    ieee_macs: float = 6.5e12
    row_macs: float | None = None
    aligned_macs: float | None = None
    l2_bandwidth: float = 16.7e12
    saturating_warps: int = 8
    issue_rate: float = 132 * 4 * 1.98e9
    async_mma: bool = True


DATASHEET = Device("NVIDIA H200", 132, 395e12, 395e12, 395e12, 33.5e12, 4.3e12, 3e-6)
"""Unfitted H200 figures: the bf16 matmul rate and device copy measured on such a machine (the device tool's
notes: about 790 TFLOP/s and 4.3 TB/s) for every tensor-core kernel, the datasheet's fp32 FMA rate, the IEEE
fp32 GEMM rate measured (``Device.ieee_macs``), and a launch cost of a few microseconds."""


@dataclasses.dataclass(frozen=True)
class Sheet:
    """The datasheet figures by which one GPU's constants carry to another of its architecture (:func:`carried`).

    :param sms: streaming multiprocessors.
    :param clock: the SMs' boost clock, Hz.
    :param bandwidth: the device memory's peak bytes per second.
    """

    sms: int
    clock: float
    bandwidth: float


SHEETS = {"NVIDIA H200": Sheet(132, 1.98e9, 4.8e12),
          "NVIDIA H100 80GB HBM3": Sheet(132, 1.98e9, 3.35e12),
          "NVIDIA H100 PCIe": Sheet(114, 1.755e9, 2.0e12)}
"""NVIDIA's datasheet figures of the Hopper GPUs the model carries constants between, by the names torch reports: the
H200, the H100 SXM (a slot's usual GPU machine: 132 SMs and 50 MB of L2 as torch reported them, a device copy
at about 3.0 TB/s where the H200's ran at 4.3, the same bf16 matmul rate) and the H100 PCIe. One chip, one SM: what an
SM does a clock is the same on each; the clocks, the SM counts and the memory differ."""


def carried(device: Device, to: str) -> Device:
    """``device``'s constants carried to the GPU ``to`` (both in :data:`SHEETS`): every rate of the SMs (multiply-adds,
    L2 fill, instruction issue) scaled by SMs x clock, the memory bandwidth by the datasheets' bandwidths; the launch
    cost, shared memory and warps per SM kept. An estimate until rows of ``to`` are fitted."""
    mine, theirs = SHEETS[device.name], SHEETS[to]
    sm = theirs.sms * theirs.clock / (mine.sms * mine.clock)
    rates = {field: getattr(device, field) * sm for field in ("mma_macs", "tma_macs", "fold_macs", "fma_macs",
                                                              "ieee_macs", "l2_bandwidth", "issue_rate")}
    rates.update({field: None if getattr(device, field) is None else getattr(device, field) * sm
                  for field in ("row_macs", "aligned_macs")})
    return dataclasses.replace(device, name=to, sms=theirs.sms,
                               bandwidth=device.bandwidth * (theirs.bandwidth / mine.bandwidth), **rates)


def fitted_path(name: str) -> Path:
    """Where a device's fitted constants ship: ``autotune_cache/costmodel/<name>.json``."""
    return cache.shipped_dir() / "costmodel" / f"{name.replace(' ', '_')}.json"


def fitted(name: str) -> Device | None:
    """The constants fitted on rows of the device called ``name`` (:func:`fitted_path`), or None."""
    try:
        return Device(**json.loads(fitted_path(name).read_text()))
    except (OSError, json.JSONDecodeError, TypeError):
        return None


def sibling(name: str) -> str | None:
    """The GPU of :data:`SHEETS` whose fitted constants a GPU called ``name`` without its own takes (:func:`carried`):
    the first fitted one, or None where ``name`` is not in :data:`SHEETS`, is fitted itself or has no fitted sibling."""
    if name not in SHEETS or fitted(name) is not None:
        return None
    return next((other for other, _ in _fitted_siblings(name)), None)


def _fitted_siblings(name: str):
    """``(name, fitted constants)`` of the other GPUs of :data:`SHEETS` that have a fit, in its order."""
    return ((other, own) for other in SHEETS if other != name for own in [fitted(other)] if own is not None)


def constants(name: str, sms: int | None = None) -> tuple[Device, str]:
    """The constants of the device called ``name`` and where they come from, in words: fitted on its rows
    (:func:`fitted_path`); else a fitted sibling's carried to it (:func:`sibling`, :func:`carried`); else
    :data:`DATASHEET`, carried to it where it is in :data:`SHEETS`, else renamed (and given ``sms`` SMs, where given;
    ``async_mma`` where the name is a Hopper GPU's: :data:`HOPPER`). Each fit is read once."""
    own = fitted(name)
    if own is not None:
        return own, "fitted on its measured rows"
    if name in SHEETS:
        for other, theirs in _fitted_siblings(name):
            return carried(theirs, name), (f"the {other}'s fit, carried to it by their datasheets (SMs, clocks, memory "
                                           "bandwidth)")
        return carried(DATASHEET, name), "the H200 datasheet's constants carried to it by their datasheets (none fitted)"
    renamed = dataclasses.replace(DATASHEET, name=name, sms=sms or DATASHEET.sms,
                                  async_mma=any(tag in name for tag in HOPPER))
    return renamed, "the H200 datasheet's constants (none fitted for it)"


def device_for(name: str, sms: int | None = None) -> Device:
    """The constants of the device called ``name`` (:func:`constants`)."""
    return constants(name, sms)[0]


def provenance(name: str) -> str:
    """Where :func:`device_for`'s constants for ``name`` come from, in words (:func:`tritonconv.explain`'s header)."""
    return constants(name)[1]


HOPPER = ("H100", "H200", "H800", "H20", "GH200")
"""Words in the names of Hopper GPUs (warpgroup MMAs, ``Device.async_mma``), as torch reports them."""


ROW_ISSUE = {"conv": 0.49, "conv_t": 0.68, "conv_wgrad": 1.0}
"""Per pass, the share of the pass's channels-last pointer rate that NC(D)HW row tiles (:func:`by_rows`) are rated at
while ``Device.row_macs`` is unfitted: the median, over the suite's layers, of the channels-last main loop's
instructions per MMA over the rows' with the same tiles (sm_90 SASS, ``python -m benchmarks.static --rows``: the
rows' loop adds the 2-byte loads' addresses and masks). An issue-bound estimate, not a measurement; the rows'
synchronous loads, whose latency the pipeline does not hide, are not in it. Restated from the committed census
whenever the kernels change it (``tests/test_costmodel.py``); each restatement is in ``benchmarks/NOTES.md``'s log."""


ALIGNED_ISSUE = {"conv": 0.98, "conv_t": 1.25, "conv_wgrad": 1.34}
"""Per pass, the share of the pass's channels-last pointer rate that NC(D)HW row tiles read in aligned runs
(:func:`aligned`) are rated at while ``Device.aligned_macs`` is unfitted: the median, over the suite's layers, of the
channels-last main loop's instructions per MMA over the aligned rows', theirs counting the moves of the sum between
width taps spread over the steps (sm_90 SASS, ``python -m benchmarks.static --rows``). An issue-bound estimate, not a
measurement. One share for all aligned launches of a pass: the strided forwards, dealt into phases, the input
gradients by phase, the launches reading each width tap's columns in runs (:func:`tap_runs`; each of their loops
weighed by the taps that run it) and the weight gradients reading x in runs, dealt in registers where strided along
the width (:func:`tritonconv.geometry.wgrad_runs`). Restated as :data:`ROW_ISSUE` is."""

NC_ROWS_ISSUE = {"conv": 0.52, "conv_t": 0.60}
"""Per pass, the share of their main loop's issue that the model's estimate for a descriptor step of their tiles
(:func:`step_instructions`) counts, for descriptor launches reading NC(D)HW rows whole from column 0 (:func:`nc_rows`):
the median, over the suite's such launches, of the estimate over the census's warp instructions a step and warp, the
moves of the sum (or of each width tap's products) between width taps spread over the steps, at most 1 (sm_90 SASS,
``python -m benchmarks.static --rows``, ``ratio``). :func:`issue_seconds` divides the estimate by it. An issue-bound
estimate, not a measurement: the moves go through shared memory while the tensor cores wait, which the census counts
only as instructions. Restated as :data:`ROW_ISSUE` is."""

NC_RUNS_ISSUE = {"conv_wgrad": 0.78}
"""As :data:`NC_ROWS_ISSUE`, for the NC(D)HW weight-gradient descriptor launches reading x's boxes in runs
(:func:`nc_runs`: a width tap off a 16-byte boundary reads the box below and the box 16 bytes on, each row's runs
taken on in registers), each offset's loop weighed by the taps that run it. The second box doubles x's shared-memory
traffic, which the census does not see."""

NC_FLAT_ISSUE = {"conv": 0.47, "conv_t": 0.50, "conv_wgrad": 0.54}
"""As :data:`NC_RUNS_ISSUE`, for the NC(D)HW descriptor launches reading each plane (a 3-D layer's volume, where as
deep and tall as its input: :func:`tritonconv._descriptors.nc_volume`) as one row (:func:`nc_flat`: rows of no
16-byte multiple, 28 bf16 columns; ``c3d_conv3a`` and ``r2plus1d18_l2``'s spatial pass): the weight gradient's with
its seam loop (read by address) spread over its plane's steps; the forward's and input gradient's each loop over a
width tap and offset (:func:`tritonconv._descriptors.plane_taps`) weighed by the taps that run it, those off the
centre column (or row) masking their seams in every step. Restated as :data:`ROW_ISSUE` is."""

UNFITTED_SHARES = {"row_macs": ROW_ISSUE, "aligned_macs": ALIGNED_ISSUE}
"""The rates rated, until fitted, as the pointer rate (``mma_macs``) at a census share per pass."""


PASS_ISSUE = {"conv": 1.0, "conv_t": 0.92, "conv_wgrad": 0.65}
"""Per pass, the pointer GEMM kernels' rate as a share of their forward's (``mma_macs`` and ``row_macs`` are fitted on
forward launches): the median, over the suite's layers, of the channels-last forward main loop's instructions per
MMA over the pass's, each with its heuristic tiles (sm_90 SASS, the channels-last sides of ``python -m
benchmarks.static --rows``; ``benchmarks.static.pass_shares``). An issue-bound estimate, not a measurement. Restated as
:data:`ROW_ISSUE` is."""


@functools.lru_cache(maxsize=4096)
def launched(problem: Problem, config: Config) -> tuple[Problem, Config]:
    """The problem and config the kernel runs: a relayout config's (``Config.relayout``) are the channels-last
    problem's, on copies (:func:`relayout_seconds` prices them); a descriptor config whose boxes the problem's
    tensors cannot take (:func:`tritonconv.tuning.descriptors_launch`) runs the pointer kernel with its tiles, as the
    dispatch does."""
    if config.relayout:
        return tuning.as_relaid(problem), dataclasses.replace(config, relayout=0)
    if config.tile_h and not tuning.descriptors_launch(problem, config):
        return problem, dataclasses.replace(config, tile_h=0, tile_b=1)
    return problem, config


def issued(problem: Problem, config: Config) -> tuple[int, int]:
    """(multiply-adds issued, CTAs) of ``problem``'s launch with ``config`` (nothing runs)."""
    problem, config = launched(problem, config)
    if runs_banded(problem, config):  # every step's segments x their window x its channels, masked ones included
        written = problem.input_shape if problem.kind == "conv_dw_t" else problem.output_shape
        # (each program's share whole steps, the last's the rest)
        segs, _, programs = banded.tiling(written, problem.spec, config, tuning.banded_reading(problem, config))
        tiles = cdiv(written[1], config.block_n)
        rows = banded.rows(problem.spec, config)
        return tiles * config.block_n * cdiv(segs, config.block_k) * config.block_k * config.block_m * rows, tiles * programs
    if problem.kind.startswith("conv_dw"):  # FMA kernels over (positions x channels) tiles: no channel padding counted
        rows, cols, _ = problem.gemm  # the weight gradient's rows are taps, block_m a program (the last tile's padded)
        macs = shapes.conv_macs(problem.input_shape, problem.weight_shape, problem.output_shape)
        row_tiles = cdiv(rows, config.block_m)
        if problem.kind == "conv_dw_wgrad":  # (x read in runs: tiles of one width tap's taps)
            row_tiles = depthwise.tap_tiles(problem.weight_shape[2:], config.block_m, tuning.dw_wgrad_runs(problem, config))
            macs = macs * row_tiles * config.block_m // max(rows, 1)
        else:  # NC(D)HW tiles of rows, channels-last ones flat (kernels.depthwise.Launch)
            read, written = (problem.input_shape, problem.output_shape) if problem.kind == "conv_dw" else (
                problem.output_shape, problem.input_shape)
            fast = depthwise.layout_channels_fast(problem.layout, read[1])
            row_tiles = depthwise.position_tiling(fast, rows, written[-1], config.block_m)[1]
        return macs, row_tiles * cdiv(cols, config.block_n) * max(config.split_k, 1)
    if config.tile_h and problem.kind != "conv_wgrad":
        ctas, steps = tma_tiles(problem, config)
        parts = math.prod(problem.stride) if problem.by_phase else tma_splits(problem, config, steps)
        return ctas * config.block_m * config.block_n * steps * config.block_k, ctas * parts  # per tile: phases or splits
    launch = gemm_launch(problem, config)
    return launch.mma_work(), math.prod(launch.grid)


def tma_tiles(problem: Problem, config: Config) -> tuple[int, int]:
    """``(tiles, steps)`` of a descriptor forward or input gradient (as launched, :func:`launched`): its images x rows x
    columns patches of the written planes times its output-channel tiles (one stride phase's, for a strided input
    gradient: each tap reaches one phase), and each tile's (tap, channel chunk) reduction steps."""
    written = tuning.tma_written(problem)
    n, od, (oh, ow) = written[0], geometry.as_3d(written[2:], 1)[0], tuning.tma_plane(problem)
    if tuning.volumes_as_rows(problem, config):  # a volume's positions one row
        od, ow = 1, od * ow
    _, cols, red = problem.gemm  # the input gradient runs as a forward convolution: channel axes swapped
    tile_b, tile_h, tile_w = config.patch(config.block_m)
    patches = cdiv(n, tile_b) * od * cdiv(oh, tile_h) * cdiv(ow, tile_w)
    return patches * cdiv(cols, config.block_n), problem.taps * cdiv(red, config.block_k)


def tma_splits(problem: Problem, config: Config, steps: int) -> int:
    """The splits of a descriptor forward's or input gradient's ``steps`` (tap, channel chunk) steps, as
    :class:`tritonconv.kernels.tma.Launch` cuts them: none by stride phase, nor where NC(D)HW rows are read whole
    (:func:`nc_rows`) or planes as rows (:func:`nc_flat`)."""
    if problem.by_phase or nc_rows(problem, config) or nc_flat(problem, config):
        return 1
    return geometry.step_splits(steps, config.split_k)[1]


def meeting(problem: Problem, config: Config) -> tuple[int, int]:
    """``(tiles, splits)`` of a launch whose split partial tiles meet in the kernel (:func:`tritonconv._tile.meet_splits`:
    a GEMM forward's or input gradient's always, a GEMM weight gradient's where few,
    :func:`tritonconv.kernels.weight_grad.meets`, a depthwise weight gradient's always): its output tiles and the splits
    of each; ``(0, 1)`` where the reduction is not split or its partials are added apart (:func:`sums_apart`)."""
    problem, config = launched(problem, config)
    if problem.kind in ("conv_dw", "conv_dw_t") or config.split_k <= 1:
        return 0, 1
    if runs_banded(problem, config):  # every channel tile's programs along the segments
        programs = banded.tiling(problem.output_shape, problem.spec, config, tuning.banded_reading(problem, config))[2]
        return (cdiv(problem.output_shape[1], config.block_n), programs) if programs > 1 else (0, 1)
    if problem.kind == "conv_dw_wgrad":
        launch = depthwise.WeightGradLaunch(standin(problem, problem.output_shape), standin(problem, problem.input_shape),
                                            problem.spec, False, config)
        return launch.grid if launch.grid[1] > 1 else (0, 1)
    if problem.kind == "conv_wgrad":
        launch = gemm_launch(problem, config)
        return launch.grid if launch.meet else (0, 1)
    if config.tile_h:
        tiles, steps = tma_tiles(problem, config)
        return tiles, tma_splits(problem, config, steps)
    launch = gemm_launch(problem, config)
    return launch.grid[0], launch.splits


def meet_seconds(problem: Problem, config: Config, device: Device) -> float:
    """The seconds a split launch's partial tiles take to meet in the kernel after its main loops (:func:`meeting`):
    the last split of each tile to arrive reads the others' partial tiles (accumulator dtype) back from L2 alone, at
    one SM's share of ``l2_bandwidth``; the last splits run in the grid's last waves (the split is its slowest index),
    an SM's share of them, ``ceil(tiles / sms)``, reading one after another. ``resnet50_l4_3x3``'s NCHW weight
    gradient, 144 tiles of 128 x 128 in 4 splits: 2 x 192 KiB, 3.1 us on an H200 (unfitted)."""
    return met_seconds(read_back(problem, config), device)


def read_back(problem: Problem, config: Config) -> tuple[int, int]:
    """``(tiles, bytes)``: a split launch's tiles whose partials meet in the kernel (:func:`meeting`) and the bytes the
    last split of each reads back (the other splits' partial tiles, accumulator dtype); ``(0, 0)`` where none meet."""
    tiles, splits = meeting(problem, config)
    if splits <= 1:
        return 0, 0
    problem, config = launched(problem, config)
    rows = banded.tap_tile(problem.spec) if runs_banded(problem, config) else config.block_m  # (a banded tile: every tap)
    return tiles, (splits - 1) * rows * config.block_n * geometry.accumulator(getattr(torch, problem.dtype)).itemsize


def met_seconds(back: tuple[int, int], device: Device) -> float:
    """:func:`meet_seconds` from a launch's :func:`read_back`, on ``device``."""
    tiles, each = back
    if not each:
        return 0.0
    return math.ceil(tiles / device.sms) * each * device.sms / device.l2_bandwidth


@functools.lru_cache(maxsize=8)
def gemm_launch(problem: Problem, config: Config) -> gemm.Launch | weight_grad.Launch | weight_grad.DescriptorLaunch:
    """The GEMM kernels' launch of ``problem`` with ``config``, prepared on stand-in tensors laid out as the problem's
    (nothing runs: the stand-ins are the problem's sizes, never touched; ``problem`` and ``config`` as launched,
    :func:`launched`). The last 8 are kept (read, never changed; their stand-ins' pages untouched): a prediction asks
    for one launch several times, then the next config's."""
    dtype = getattr(torch, problem.dtype)
    spec = problem.spec
    if problem.kind == "conv_wgrad":  # the gradient laid out as the weight is held (tuning.weight_layout)
        family = weight_grad.DescriptorLaunch if config.tile_h else weight_grad.Launch
        return family(standin(problem, problem.output_shape), standin(problem, problem.input_shape), spec, False, config,
                      tuning.weight_layout(problem) == "channels_last")
    transposed = problem.kind == "conv_t"
    read, written = ((problem.output_shape, problem.input_shape) if transposed
                     else (problem.input_shape, problem.output_shape))
    swapped = (problem.weight_shape[1], problem.weight_shape[0], *problem.weight_shape[2:])
    weight = (tuning.standin(swapped, dtype, True).transpose(0, 1) if transposed
              else tuning.standin(problem.weight_shape, dtype, True))
    return gemm.Launch(standin(problem, read), weight, None, standin(problem, written), spec, transposed, None, False,
                       config)


def standin(problem: Problem, shape: tuple[int, ...]) -> torch.Tensor:
    """An activation of ``shape`` in ``problem``'s dtype, laid out as its layout says (NC(D)HW tensors are tiled by
    rows): what :func:`gemm_launch` and :func:`meeting` prepare launches on (:func:`tritonconv.tuning.standin`)."""
    return kept_standin(tuple(shape), problem.dtype, problem.layout == "channels_last")


@functools.lru_cache(maxsize=8)
def kept_standin(shape: tuple[int, ...], dtype: str, channels_inner: bool) -> torch.Tensor:
    """:func:`standin`'s tensors, the last 8 kept (read for their sizes and strides, never written; their pages
    untouched): a weight gradient's default prepares a launch on the same two for each split count."""
    return tuning.standin(shape, getattr(torch, dtype), channels_inner)


REGISTERS = {"_conv_kernel": (36, 1.75), "_conv_weight_grad_kernel": (46, 2.5), "_conv_tma_kernel": (24, 1.25),
             "_conv_weight_grad_tma_kernel": (30, 1.5)}
"""Per GEMM kernel, ``(base, per_accumulator)``: its registers per thread estimated as ``base + per_accumulator *
BLOCK_M * BLOCK_N / threads`` (the fp32 accumulator's share of a thread, plus addresses, masks and the pipeline's
state), at most 255. Fitted on ptxas's counts for sm_90 (Triton 3.9; ``benchmarks/results/static/``, the suite's
heuristic tiles in both layouts) to give the CTAs per SM ptxas's counts give: on 146 of its 156 GEMM kernels with the
estimated shared memory (:func:`shared_bytes`; the aligned rows' variants by :data:`ALIGNED_REGISTERS`,
:data:`ALIGNED_EACH_REGISTERS` and :data:`WGRAD_RUNS_REGISTERS`, MMAs fed from shared memory by :data:`SHARED_MMA_REGISTERS`),
where one estimate for all (the accumulator plus 64) gives 90. The pointer weight gradient's count grows fastest:
173-254 registers at 128 x 128 on 8 warps, one program per SM. The descriptor forwards whose MMA takes its first
operand through registers hold 10-34 more than their estimate since they keep two MMAs in flight (``unet3d_64cube``
74 where 64, R(2+1)D's first spatial layer 98: 6 and 4 programs per SM where the estimate gives 8 and 5)."""


ALIGNED_REGISTERS = (76, 1.0, 0.5, 6.0)
"""``(base, per_accumulator, per_operand, per_run)`` of the pointer kernel reading NC(D)HW rows in aligned runs
(:func:`aligned`), in place of its :data:`REGISTERS` entry: ``base + per_accumulator * BLOCK_M * BLOCK_N / threads +
per_operand * r + per_run * n``, ``r`` the registers a thread's share of a step's two operand tiles fills and ``n`` the
runs of the activations' tile it handles a step (``BLOCK_M * BLOCK_K * deal / (threads * vec)``: each run is moved and
masked in registers on its way to shared memory, a dealt one taken apart into phases; the sum along the rows is moved
too). Chosen (a grid over the four) to give ptxas's programs per SM on the most of the committed sm_90 reports' such
kernels (Triton 3.9; the heuristic's and the tiles report's, ``python -m benchmarks.static --tiles``) with every launch
it puts past 255 spilling: 60 of 71 (Triton 3.6's compiles: 62), where ``(48, 1.25, 2.5)`` without the runs gave 48
(51) and ``(96, 0.5)`` with the accumulator alone fewer still. Runs of 2 elements (rows of 14 a column off,
``resnet50_l3_3x3``) hold 227-240 registers on 64 x 64 x 64 tiles on 4 warps where runs of 8 hold 164-174 and the
temporal pass's each-tap runs 128. Past 255 the launch spills (:func:`spills`); :func:`registers` stops there."""


WGRAD_RUNS_REGISTERS = (30, 1.75)
"""The same for the weight gradient's pointer kernel reading NC(D)HW rows in runs (:func:`wgrad_runs`): ptxas on sm_90
gave 40-75 registers at 2-16 accumulator elements per thread, 78-102 at 32, 128-160 at 64 (the committed report's 16
such launches, 8 warps; 9 of them get ptxas's programs per SM from this estimate, 2 from :data:`REGISTERS`'s)."""


NC_ROWS_REGISTERS = (42, 2.0)
"""The same for the descriptor kernel reading NC(D)HW rows whole with the sum moving between width taps
(:func:`nc_rows` 1; with each tap's products apart, 2, :data:`ALIGNED_EACH_REGISTERS`, the pointer kernel's: 254 on
``deeplab_3x3_d2``'s 128 x 128 tiles): ptxas on sm_90 (Triton 3.9) gives the suite's such launches 76 registers at 32
accumulator elements a thread and 126-212 at 64 (the dealt forwards on 8 warps 126 and 144, the unit-stride ones on 4
warps 153-212); 170 at 64 gives ptxas's programs per SM on all of them but ``r3d18_l2_s2``'s forward and R(2+1)D's
first spatial input gradient (Triton 3.6, the GPU machine's, gives 144-172, its 4-warp launches keeping their
programs per SM)."""


ALIGNED_EACH_REGISTERS = (70, 3.2)
"""The same where each width tap's products are held apart in a second accumulator and moved
(:class:`tritonconv.geometry.AlignedRows` ``each``): ptxas on sm_90 gave 94-107 registers at 8 accumulator elements
per thread, 96-119 at 16, 128-179 at 32 (``deeplab_3x3_d2``'s and ``unet3d_64cube``'s forwards and input gradients,
tiles from 128 x 16 to 64 x 64 and 128 x 64)."""


def kernel_of(problem: Problem, config: Config) -> str:
    """The kernel a launch runs (:func:`launched`): ``_conv_kernel`` and ``_conv_tma_kernel`` for the forward and
    the input gradient, ``_conv_weight_grad_kernel`` and ``_conv_weight_grad_tma_kernel`` for the weight gradient;
    ``_depthwise_kernel`` and ``_depthwise_weight_grad_kernel`` for depthwise layers (``_banded_kernel`` and
    ``_banded_weight_grad_kernel`` where they run banded, :func:`runs_banded`)."""
    problem, config = launched(problem, config)
    if runs_banded(problem, config):
        return "_banded_weight_grad_kernel" if problem.kind == "conv_dw_wgrad" else "_banded_kernel"
    if problem.kind.startswith("conv_dw"):
        return "_depthwise_weight_grad_kernel" if problem.kind == "conv_dw_wgrad" else "_depthwise_kernel"
    grad = "_weight_grad" if problem.kind == "conv_wgrad" else ""
    return f"_conv{grad}_tma_kernel" if config.tile_h else f"_conv{grad}_kernel"


NC_FLAT_REGISTERS = (88, 1.0)
"""The same for the descriptor forwards reading NC(D)HW planes as rows (:func:`nc_flat`, the forward and input gradient:
two boxes of each run, the runs moved and masked in registers beside the accumulator; volumes as rows,
:func:`tritonconv._descriptors.nc_volume`, the planes' seams masked too): ptxas on sm_90 (Triton 3.9) gave 117-120
registers at 32 accumulator elements a thread, 147-189 at 64 and 209-243 at 128 (planes; volumes stop at 64: every
descriptor candidate of ``c3d_conv3a``'s and R(2+1)D's second spatial pass, forward and input gradient, 29 launches, all
given ptxas's programs per SM by this estimate). ``(160, 1.0)`` fitted the 215-255 they held when the epilogue divided
each output position into its row and column (before ``Y_RUN``: 25 of the 29)."""

SHARED_MMA_REGISTERS = (26, 1.0)
""":data:`REGISTERS` for the descriptor kernels' launches whose MMA reads both operands from shared memory where it
took the first from registers before (:func:`transposed_mma`, :func:`one_row_mma`; no first operand's fragments in
registers): ptxas (sm_90, Triton 3.9) gives the suite's such launches 90-102 registers at 64 accumulator registers a
thread, 58 at 32 and 42 at 16, where they took 94-128, 62-72 and 48-60."""


def registers(problem: Problem, config: Config) -> int:
    """Estimated registers per thread of a GEMM launch (:data:`REGISTERS`; a descriptor weight gradient held as launched,
    :func:`tritonconv.kernels.weight_grad.held_registers`), at most 255."""
    kernel = kernel_of(problem, config)
    held = weight_grad.held_registers(config.num_warps) if kernel == "_conv_weight_grad_tma_kernel" else None
    return min(held or 255, round(wanted_registers(problem, config)))


def spills(problem: Problem, config: Config) -> bool:
    """Whether the model expects ptxas to spill a launch's registers: where its estimate counts the step's operand
    tiles (the aligned NC(D)HW pointer launches, :data:`ALIGNED_REGISTERS`), an estimate past 255. On the committed
    sm_90 tiles reports (Triton 3.9 and 3.6) all 14 such launches it names spill, and 5-6 spills it does not name;
    elsewhere False (unknown)."""
    return counts_operands(problem, config) and wanted_registers(problem, config) > 255


def counts_operands(problem: Problem, config: Config) -> bool:
    """Whether a launch's register estimate counts the step's operand tiles (:data:`ALIGNED_REGISTERS`): the pointer
    kernel reading NC(D)HW rows in aligned runs, its products not held apart."""
    return kernel_of(problem, config) == "_conv_kernel" and aligned(problem, config) and not apart(problem, config)


def wanted_registers(problem: Problem, config: Config) -> float:
    """:func:`registers`'s estimate before its cap."""
    if counts_operands(problem, config):  # the step's operand tiles pass through registers too, in runs
        base, per_accumulator, per_operand, per_run = ALIGNED_REGISTERS
        rows, threads = row_reads(problem, config)[0], 32 * config.num_warps
        vec = rows.vec or tap_runs(problem, config)[0]
        return (base + per_accumulator * config.accumulator
                + per_operand * config.block_k * (config.block_m + config.block_n) * problem.itemsize / (4 * threads)
                + per_run * config.block_m * config.block_k * rows.deal / (threads * vec))
    kernel = kernel_of(problem, config)
    base, per_accumulator = REGISTERS[kernel]
    if kernel == "_conv_kernel" and aligned(problem, config):
        base, per_accumulator = ALIGNED_EACH_REGISTERS
    elif kernel == "_conv_tma_kernel" and nc_flat(problem, config):
        base, per_accumulator = NC_FLAT_REGISTERS
    elif transposed_mma(problem, config) or one_row_mma(problem, config):
        base, per_accumulator = SHARED_MMA_REGISTERS
    elif kernel == "_conv_tma_kernel" and nc_rows(problem, config):
        base, per_accumulator = ALIGNED_EACH_REGISTERS if nc_rows(problem, config) == 2 else NC_ROWS_REGISTERS
    elif kernel == "_conv_weight_grad_kernel" and wgrad_runs(problem, config)[:2] != (1, 1):
        base, per_accumulator = WGRAD_RUNS_REGISTERS
    return base + per_accumulator * config.accumulator


def occupancy(registers: int, shared: int, warps: int, smem: int) -> int:
    """Programs resident per SM (0: the program does not fit): 64K registers allocated per warp in units of 256,
    ``smem`` bytes of shared memory with 1 KiB reserved per program, 2048 threads, 32 programs."""
    per_warp = -(-max(registers, 1) * 32 // 256) * 256
    return max(0, min(65536 // (per_warp * warps), smem // (shared + 1024), 2048 // (32 * warps), 32))


def ctas_per_sm(problem: Problem, config: Config, device: Device) -> int:
    """Resident CTAs per SM (:func:`occupancy`, at least 1) from the tile's shared memory, its warps and its estimated
    registers (:func:`residency`)."""
    return resident(residency(problem, config), config.num_warps, device)


def residency(problem: Problem, config: Config) -> tuple[int, int] | int:
    """What sets a launch's CTAs per SM, device aside: ``(registers, shared bytes)`` (:func:`registers`; the banded
    kernel's, :data:`BANDED_REGISTERS`; :func:`shared_bytes`), or for the FMA depthwise kernels (no operand tiles in
    shared memory) the CTAs themselves: as their warps allow, at most 8."""
    if runs_banded(problem, config):
        return BANDED_REGISTERS[banded_reads(problem, config)][problem.kind == "conv_dw_wgrad"], shared_bytes(problem, config)
    if problem.kind.startswith("conv_dw"):
        return min(64 // config.num_warps, 8)
    return registers(problem, config), shared_bytes(problem, config)


def resident(held: tuple[int, int] | int, warps: int, device: Device) -> int:
    """:func:`ctas_per_sm` from a launch's :func:`residency` and its warps, on ``device``."""
    if isinstance(held, int):
        return max(1, held)
    return max(1, occupancy(*held, warps, device.smem))


def shared_bytes(problem: Problem, config: Config) -> int:
    """Estimated shared memory of a GEMM launch, from its tiles ``A`` (``BLOCK_M x BLOCK_K``) and ``B``
    (``BLOCK_K x BLOCK_N``) and its ``S`` stages, as Triton's pipeliner allocates them (ptxas's counts for sm_90 on
    Triton 3.9 and 3.6, the committed report). The descriptor kernels keep ``S`` stages of ``B`` and ``S - 1`` of
    ``A``, ``A`` twice as wide where a forward deals its NC(D)HW columns into stride phases
    (:func:`tritonconv._descriptors.nc_dealt`); ``S`` of both where channels-innermost activations are read in
    one-row patches or where the MMA runs transposed (:func:`transposed_mma`: ``A`` its second operand), and an NC(D)HW
    weight gradient's one-row boxes (:func:`one_row_mma`); ``S - 1`` of both below 64 rows (no warpgroup MMA); where an
    NC(D)HW weight gradient reads ``x``'s boxes in runs (:func:`nc_runs`), ``S - 1`` of ``A`` and of two ``B`` boxes,
    and one ``B`` of the shifted runs; where a forward reads NC(D)HW planes as rows (:func:`nc_flat`), ``S - 1`` of two
    ``A`` boxes, ``S`` of ``B`` and 512 elements a warp (moving the runs); plus a barrier pair per stage. The pointer kernels:
    :func:`tritonconv.tuning.smem_bytes` (``S`` of both; ptxas gives their NC(D)HW variants a third to twice that, by
    variant and Triton version, and registers set their programs per SM more often). The banded depthwise kernel:
    :func:`tritonconv.kernels.banded.shared_bytes`."""
    problem, config = launched(problem, config)
    itemsize = problem.itemsize
    if runs_banded(problem, config):
        return banded.shared_bytes(problem.spec, config, itemsize, problem.kind == "conv_dw_wgrad")
    stages = config.num_stages
    a, b = config.block_m * config.block_k * itemsize, config.block_k * config.block_n * itemsize
    if not config.tile_h:
        return tuning.smem_bytes(config, itemsize)
    barriers = 16 * stages
    if nc_runs(problem, config):
        return (stages - 1) * (a + 2 * b) + b + barriers
    if nc_flat(problem, config) and problem.kind != "conv_wgrad":  # two A boxes a stage (each run and the next), and a
        return (stages - 1) * 2 * a + stages * b + config.num_warps * 512 * itemsize + barriers  # warp's move scratch
    if transposed_mma(problem, config) or (problem.layout == "contiguous" and one_row_mma(problem, config)):
        return stages * (a + b) + barriers
    if input_channels_as_m(problem, config):  # dy's box the MMA's second operand, every stage kept
        return stages * a + (stages - 1) * b + barriers
    if config.block_m < 64:
        return (stages - 1) * (a + b) + barriers
    if problem.layout == "channels_last" and config.tile_h == config.tile_b == 1:
        return stages * (a + b) + barriers
    if problem.kind == "conv" and problem.layout == "contiguous" and nc_dealt(problem.spec):
        a *= 2
    return (stages - 1) * a + stages * b + barriers


def moved(problem: Problem, config: Config) -> int:
    """Bytes a launch moves at least: operands and output once (in any layout: nothing is copied), split
    partials (the banded forward's and input gradient's programs split the positions, not a sum: none)."""
    base = shapes.conv_bytes(problem.input_shape, problem.weight_shape, problem.output_shape, problem.dtype)
    written = math.prod(problem.weight_shape) if problem.kind.endswith("wgrad") else (
        math.prod(problem.input_shape) if problem.kind.endswith("_t") else math.prod(problem.output_shape))
    split = config.split_k > 1 and (problem.kind.endswith("wgrad") or not runs_banded(problem, config))
    partials = 2 * 4 * written * config.split_k if split else 0
    if problem.dtype.startswith("float8"):  # fp8 operands, a 16-bit output (tritonconv.fp8's default)
        base += math.prod(problem.output_shape)
    return base + partials


def fill_bytes(problem: Problem, config: Config) -> float:
    """Bytes a GEMM launch loads into shared memory per multiply-add issued: each reduction step of a
    ``BLOCK_M x BLOCK_N`` tile loads ``BLOCK_K`` columns of its two operands (a relayout config's: the
    channels-last problem's tiles); the banded depthwise kernels' ``x`` a step, ``itemsize / block_m`` (the weight
    gradient's output gradient too, ``itemsize / KJ``); 0 for the FMA depthwise kernels (no operand tiles)."""
    problem, config = launched(problem, config)
    if runs_banded(problem, config):  # a step's x, a window for each segment's block_m outputs (the weight gradient's
        # output gradient too); the band once
        wgrad = problem.kind == "conv_dw_wgrad"
        return problem.itemsize * (1 / config.block_m + (1 / banded.rows(problem.spec, config) if wgrad else 0))
    if problem.kind.startswith("conv_dw"):
        return 0.0
    return problem.itemsize * (1 / config.block_m + 1 / config.block_n)


def by_rows(problem: Problem, config: Config) -> bool:
    """Whether a pointer GEMM launch tiles NC(D)HW activations by rows, 1-D to 3-D (rated ``row_macs``, or
    ``aligned_macs`` where :func:`aligned`): else loads of 2 bytes, no asynchronous copies (``benchmarks.static``'s
    SASS census: a tap's shift hides the rows' alignment from the compiler, along a 1-D row as along a plane's)."""
    return problem.layout == "contiguous" and not config.tile_h and not folds(problem, config)


@functools.lru_cache(maxsize=4096)
def row_reads(problem: Problem, config: Config) -> tuple[geometry.AlignedRows, bool]:
    """How a pointer launch over NC(D)HW row tiles (:func:`by_rows`) reads its rows: its
    :class:`tritonconv.geometry.AlignedRows` (``vec`` 0: 2 bytes at a time), and whether a forward reads its planes as
    rows (:func:`tritonconv.geometry.aligned_planes`)."""
    problem, config = launched(problem, config)
    if not by_rows(problem, config) or problem.kind == "conv_wgrad":
        return geometry.AlignedRows(), False
    launch = gemm_launch(problem, config)
    return launch.rows, launch.planes


@functools.lru_cache(maxsize=4096)
def wgrad_runs(problem: Problem, config: Config) -> tuple[int, int, int]:
    """How a pointer weight-gradient launch over NC(D)HW row tiles (:func:`by_rows`) reads its rows:
    ``(DY_VEC, X_VEC, X_KINDS)`` (:func:`tritonconv.geometry.wgrad_runs`); ``(1, 1, 1)`` for other launches. Rated
    ``aligned_macs`` where ``X_VEC`` exceeds 1 (:func:`aligned`), else ``row_macs``."""
    problem, config = launched(problem, config)
    if problem.kind != "conv_wgrad" or not by_rows(problem, config):
        return 1, 1, 1
    return gemm_launch(problem, config).runs


def x_as_m(problem: Problem, config: Config) -> bool:
    """Whether a pointer weight-gradient launch over NC(D)HW row tiles runs its MMA transposed, the ``x`` it moves in
    registers the first operand (:func:`tritonconv.kernels.weight_grad.x_as_m`)."""
    problem, config = launched(problem, config)
    runs = wgrad_runs(problem, config)
    return weight_grad.x_as_m(runs, problem.spec.stride[-1], 0, config.block_n, problem.itemsize)


@functools.lru_cache(maxsize=4096)
def tap_runs(problem: Problem, config: Config) -> tuple[int, int]:
    """How a pointer launch over NC(D)HW row tiles (:func:`by_rows`) reads each width tap's columns in runs, ``(vec,
    kinds)`` (:func:`tritonconv.geometry.row_runs`; a weight gradient's x, :func:`wgrad_runs`); ``vec`` below 2:
    not."""
    problem, config = launched(problem, config)
    if not by_rows(problem, config):
        return 0, 0
    if problem.kind == "conv_wgrad":
        return wgrad_runs(problem, config)[1:]
    return gemm_launch(problem, config).runs


def aligned(problem: Problem, config: Config) -> bool:
    """Whether a pointer launch over NC(D)HW row tiles (:func:`by_rows`) reads its rows in aligned runs, the width taps
    moving the sum (or their products, :func:`apart`) instead (:func:`tritonconv.geometry.aligned_rows`), or each
    width tap's columns in runs (:func:`tap_runs`; rated ``aligned_macs``): asynchronous copies of up to 16 bytes
    where the others load 2 bytes at a time."""
    return bool(row_reads(problem, config)[0].vec) or tap_runs(problem, config)[0] > 1


def apart(problem: Problem, config: Config) -> bool:
    """Whether an :func:`aligned` launch holds each width tap's products apart, moving them into the sum (whole rows at
    their own width, :class:`tritonconv.geometry.AlignedRows` ``each``), not the sum between taps."""
    return row_reads(problem, config)[0].each


@functools.lru_cache(maxsize=4096)
def transposed_mma(problem: Problem, config: Config) -> bool:
    """Whether a descriptor forward or input-gradient launch runs its MMA transposed, output channels x positions
    (:func:`tritonconv.kernels.tma.positions_as_n`)."""
    problem, config = launched(problem, config)
    if not config.tile_h or problem.kind not in ("conv", "conv_t"):
        return False
    return tma.positions_as_n(problem.layout == "channels_last", tuning.nc_rows(problem, config), config,
                              problem.itemsize, problem.tf32, nc_flat(problem, config))


def input_channels_as_m(problem: Problem, config: Config) -> bool:
    """Whether a descriptor weight-gradient launch runs its MMA transposed, input channels as its rows
    (:func:`tritonconv.kernels.weight_grad.input_channels_as_m`)."""
    problem, config = launched(problem, config)
    inner = problem.layout == "channels_last"
    return (problem.kind == "conv_wgrad" and bool(config.tile_h)
            and weight_grad.input_channels_as_m(inner, inner, config.block_m, config.block_n))


@functools.lru_cache(maxsize=4096)
def one_row_mma(problem: Problem, config: Config) -> bool:
    """Whether a descriptor weight-gradient launch reads boxes of one row that its MMA takes from shared memory where
    boxes of several rows went through registers: a channels-innermost one's one-row patches on planes of several rows
    (:func:`tritonconv.tuning.one_row_patches`; planes read as rows too, :func:`tritonconv.tuning.plane_patches`), an
    NC(D)HW one's dy boxes of one row where x's are read as they are
    (``weight_grad.dy_channels_fourth``)."""
    problem, config = launched(problem, config)
    if problem.kind != "conv_wgrad" or not config.tile_h or config.tile_h * config.tile_b > 1:
        return False
    if problem.layout == "channels_last":
        return tuning.tma_plane(problem)[0] > 1
    return weight_grad.dy_channels_fourth(False, config.tile_h, nc_runs(problem, config) or 0b10, nc_flat(problem, config))


@functools.lru_cache(maxsize=4096)
def nc_rows(problem: Problem, config: Config) -> int:
    """How a descriptor launch reads NC(D)HW rows whole from column 0, where a tap's box would start off 16 bytes
    (:func:`tritonconv._descriptors.nc_row_shift`: 1, the sum moves between width taps; 2, each tap's products apart);
    0 where it does not."""
    return tuning.nc_rows(*launched(problem, config))


def nc_runs(problem: Problem, config: Config) -> int:
    """How a descriptor weight-gradient launch reads an NC(D)HW input's boxes in runs where a width tap's would start
    off 16 bytes (``X_KINDS``, :func:`tritonconv.tuning.nc_runs`); 0 where it does not."""
    return tuning.nc_runs(*launched(problem, config))


def nc_flat(problem: Problem, config: Config) -> bool:
    """Whether a descriptor launch reads an NC(D)HW input's planes as rows (:func:`tritonconv.tuning.planes_as_rows`:
    a weight gradient's, a forward's, a unit-stride input gradient's)."""
    problem, config = launched(problem, config)
    return bool(config.tile_h) and tuning.planes_as_rows(problem)


def folds(problem: Problem, config: Config) -> bool:
    """Whether the launch folds taps into its tiles (rated ``fold_macs``): the pointer kernels' ``Config.fold``
    (the input gradient never folds)."""
    return bool(config.fold) and not config.tile_h and problem.kind in ("conv", "conv_wgrad")


def relayout_seconds(problem: Problem, device: Device) -> float:
    """The copies a relayout config (``Config.relayout``) makes before its launch: each NC(D)HW activation the pass
    reads (:attr:`~tritonconv.geometry.Problem.reads`) read and written once channels innermost, a launch each."""
    itemsize = problem.itemsize
    return sum(device.t0 + 2 * math.prod(shape) * itemsize / device.bandwidth for shape in problem.reads)


def rate_of(problem: Problem, config: Config) -> tuple[str, float]:
    """The :class:`Device` rate a launch runs at, and the factor applied to it: ``mma_macs`` at :data:`BANDED_MMA` for
    the banded depthwise kernel; ``fma_macs`` for the FMA depthwise kernels and fp64 dots (half of it), ``ieee_macs``
    for IEEE fp32 dots, a quarter of ``mma_macs`` for the pointer kernel's TF32 ones
    (:attr:`~tritonconv.geometry.Problem.tf32`); else the kernel's 16-bit rate (``tma_macs``,
    ``fold_macs``, ``row_macs``, ``mma_macs``), twice it for fp8, half of it for TF32 descriptor tiles (the tensor
    cores' TF32 rate; unfitted, no TF32 row measured); the pointer kernels' (``mma_macs``, ``row_macs``) at their
    pass's share of the forward's (:data:`PASS_ISSUE`)."""
    problem, config = launched(problem, config)
    if runs_banded(problem, config):
        return "mma_macs", BANDED_MMA
    if problem.kind.startswith("conv_dw") or problem.dtype == "float64":
        return "fma_macs", 0.5 if problem.dtype == "float64" else 1.0
    if problem.dtype == "float32" and not problem.tf32:
        return "ieee_macs", 1.0
    if problem.dtype == "float32" and not config.tile_h:
        return "mma_macs", 0.25 * PASS_ISSUE[problem.kind]
    name = ("tma_macs" if config.tile_h else "fold_macs" if folds(problem, config)
            else ("aligned_macs" if aligned(problem, config) else "row_macs") if by_rows(problem, config)
            else "mma_macs")
    factor = tensor_factor(problem)
    return name, factor * PASS_ISSUE[problem.kind] if name in ("mma_macs", *UNFITTED_SHARES) else factor


def tensor_factor(problem: Problem) -> float:
    """The tensor cores' rate for ``problem``'s operands over their 16-bit rate: twice it for fp8, half for TF32."""
    return 2.0 if problem.dtype.startswith("float8") else 0.5 if problem.tf32 else 1.0


STEP_ISSUE = (92, 3.8)
"""``(base, per_mma)``: the warp instructions a descriptor kernel's main loop issues per step and warp, estimated as
``base + per_mma * m``, ``m`` its MMA instructions per step and warp (:func:`mma_instructions`): the barriers, the
descriptors' loads and the loop's counters, and each MMA's own. Fitted (least squares of the logarithms) on the
committed sm_90 compile reports' descriptor kernels (the suite's heuristic tiles, bf16, TF32 and fp8, both layouts
and passes, Triton 3.9 and 3.6; ``benchmarks/results/static/``, ``loop_instructions``): within 1.5x of the census on
96% of today's 584, 1.25x on 78% (``tests/test_costmodel.py`` holds it to 95% within 1.5x). Its misses are NC(D)HW
launches that move sums or take rows apart in their loops (up to 2x the estimate), whose census shares
(:data:`NC_ROWS_ISSUE` and the rest) :func:`issue_seconds` divides it by."""


def mma_instructions(problem: Problem, config: Config) -> int:
    """A descriptor launch's MMA instructions per step and warp: Hopper's warpgroup MMA takes 64 rows (the
    output channels where it runs transposed, :func:`transposed_mma`; a weight gradient's input channels,
    :func:`input_channels_as_m`) of the tile per warpgroup and 32 bytes of the
    reduction (16 16-bit elements, 8 TF32, 32 fp8) an instruction, the tile's columns in one; tiles of fewer than 64
    rows take the warp-level MMA, 16 x 8 outputs an instruction shared over the warps. The census's count on every
    descriptor kernel of the committed reports (``tests/test_costmodel.py``)."""
    problem, config = launched(problem, config)
    depth = config.block_k // (32 // problem.itemsize)
    rows = config.block_n if transposed_mma(problem, config) or input_channels_as_m(problem, config) else config.block_m
    if rows < 64:
        return max(1, config.block_m * config.block_n // (16 * 8 * config.num_warps)) * depth
    return max(1, rows // 64 // max(1, config.num_warps // 4)) * depth


def step_instructions(problem: Problem, config: Config) -> float:
    """Warp instructions a descriptor launch's main loop issues per step and warp (:data:`STEP_ISSUE`), or a pointer
    launch's (:data:`POINTER_STEP`)."""
    problem, config = launched(problem, config)
    if not config.tile_h:
        return sum(c * t for c, t in zip(POINTER_STEP[kernel_of(problem, config)], pointer_step_terms(problem, config)))
    base, per_mma = STEP_ISSUE
    return base + per_mma * mma_instructions(problem, config)


POINTER_STEP = {"_conv_kernel": (75.4, 10.68, 6.09, 1.96), "_conv_weight_grad_kernel": (84.4, 2.08, 18.87, 12.9)}
"""Per pointer GEMM kernel (the forward's, which runs the input gradient too, and the weight gradient's), the
coefficients of the warp instructions its main loop issues per step and warp on channels-last tiles, over
:func:`pointer_step_terms`: a step's fixed part (barriers, counters, the pipeline's waits), each MMA instruction, and
the 16-byte vectors a thread loads of the two operand tiles (their addresses, masks and copies): the forward's once per
axis its taps move along (a one-tap axis's addresses are held across the loop: a 1 x 1 layer's loop computes none),
the weight gradient's once; plus those vectors per spatial axis past the first (an element's position taken apart
axis by axis). Fitted (least squares of the relative error, ``python -m benchmarks.static --tiles``) on the sm_90
census (Triton 3.9) of every tile the tuner's candidates hold on 12 suite layers and passes and of the NC(D)HW pointer
launches' tiles channels-last (the ``--rows`` report): within 1.5x of the census on 136 of the forward kernel's 139
compiles (1.25x on 130) and 46 of the weight gradient's 50 (a weight gradient's loop varies more with its layer: 1.25x
on 31); on Triton 3.6's compiles of the same tiles (the GPU machine's), 138 of 139 and 46 of 50. (Until 2026-12-06 the
forward's vectors counted once each, plus once per spatial axis past the first: a 1 x 1 weight in torch's layout was
then read 2 bytes at a time, which hid what its loop saves.) Refitted whenever the kernels change the census
(``tests/test_costmodel.py``; each refit is in ``benchmarks/NOTES.md``'s log). NC(D)HW launches issue this over
their class's census share (:data:`ROW_ISSUE`, :data:`ALIGNED_ISSUE`), which puts the suite's heuristic NC(D)HW
pointer launches (bf16, TF32, fp8; Triton 3.9 and 3.6; their censuses not in the fit) within 1.5x of their census on
131 of 142. A static count at the peak issue rate: the loops' latencies (the rows' synchronous loads) are not in it."""


def pointer_step_terms(problem: Problem, config: Config) -> tuple[float, float, float, float]:
    """What :data:`POINTER_STEP` weighs, per step and warp of a pointer launch: 1, its MMA instructions
    (:func:`mma_instructions`), the 16-byte vectors each thread loads of its ``BLOCK_M x BLOCK_K`` and ``BLOCK_K x
    BLOCK_N`` operand tiles (the forward kernel's times the kernel's axes of more than one tap), and those vectors times
    the spatial axes past the first."""
    problem, config = launched(problem, config)
    vectors = ((config.block_m + config.block_n) * config.block_k * problem.itemsize
               / (16 * 32 * config.num_warps))
    moved = sum(k > 1 for k in problem.weight_shape[2:]) if kernel_of(problem, config) == "_conv_kernel" else 1
    return 1.0, float(mma_instructions(problem, config)), vectors * moved, vectors * (len(problem.input_shape) - 3)


def runs_banded(problem: Problem, config: Config) -> bool:
    """Whether a depthwise launch runs the banded kernel (:func:`tritonconv.kernels.banded.runs`: its taps the tensor
    cores' reduction)."""
    return problem.kind.startswith("conv_dw") and banded.runs(
        problem.spec, getattr(torch, problem.dtype), problem.kind == "conv_dw_t", config)


BANDED_ISSUE = {"channels_last": (4.7, 6.8), "runs": (3.1, 4.0), "contiguous": (9.3, 10.2),
                "channels_last, rows": (7.3, 6.8), "runs, rows": (10.2, 9.4), "contiguous, rows": (13.8, 13.6)}
"""Per way of reading ``x`` (:func:`banded_reads`), the warp instructions the banded depthwise kernels' main loops issue
per 1000 multiply-adds issued (the window's masked rows included), the forward's and input gradient's, then the weight
gradient's: the SASS census (sm_90, bf16, Triton 3.9; ``benchmarks.static``) with the heuristic's tiles on 8 warps,
each tile's lanes along its segments and its band's window (:func:`tritonconv._tile.load_lanes`). One-row segments,
``depthwise_k31`` (31 taps in windows of 64, 2.06 issued a useful one), 32 x 8 x 32 (channels-last 311 a step of
524,288, NCL rows in runs 205; Triton 3.6: 315 and 224-231) and the weight gradient's 32 x 8 x 16 (224 and 131 a step
of 262,144; 3.6: 210 and 149; its diagonals and meeting after the loop not counted); NCL rows read 2 bytes at a time
(no whole runs) from the same layer's compiles on rows of 4,095 (610 and 333; 3.6: 741 and 413). Segments of several
rows, ``mobilenet_dw_3x3`` (3 x 3 taps, 7.1 issued a useful one): channels-last 4 x 8 outputs, windows of 6 x 10 in
64, 32 x 8 x 16 (235-238 and 223 a step of 262,144; 3.6: 226 and 211); NCHW rows read in runs
(:func:`tritonconv.kernels.banded.reading`: 2 x 8 outputs, windows of 4 rows of 16 in 64), 16 x 8 x 16 (167 and 154 a
step of 131,072; 3.6: 173 and 173); NCHW rows of 57 columns, 2 bytes at a time, 32 x 8 x 16 (451 and 445; 3.6: 511
and 521). Windows of more rows issue less per multiply-add issued: a ConvNeXt 7 x 7 layer (32 x 96 x 56 x 56; 2 x 8
outputs, windows of 8 x 16 in 128) NCHW in runs 6.8 and 6.2 (222 and 202 a step), which the model rates at the 3 x 3
layer's 10.2 and 9.4. Rows of 8-byte runs take the 16-byte figures. Unfitted."""

BANDED_REGISTERS = {"channels_last": (110, 128), "runs": (100, 146), "contiguous": (164, 196),
                    "channels_last, rows": (86, 142), "runs, rows": (80, 127), "contiguous, rows": (128, 207)}
"""Per way of reading ``x``, the banded kernels' registers, the forward's and input gradient's, then the weight
gradient's (ptxas, sm_90, Triton 3.9, the same compiles: 110 and 128 channels-last, 100 and 146 in runs, 164 and 196
2 bytes at a time, 80-93 and 142 in rows channels-last, 80 and 127 in rows in runs, 128 and 207 NCHW 2 bytes at a
time; Triton 3.6: 110, 128; 97-100, 128; 164, 154; 80, 136; 76, 102; 128, 165)."""


def banded_reads(problem: Problem, config: Config) -> str:
    """How a banded launch reads ``x`` (:func:`tritonconv.tuning.banded_reading`): one-row segments
    ``"channels_last"``, ``"runs"`` (NC(D)HW rows in aligned 16-, 8- or 4-byte runs) or ``"contiguous"`` (NC(D)HW rows
    2 bytes at a time); segments of several rows (taps along the height) ``"channels_last, rows"``, ``"runs, rows"`` or
    ``"contiguous, rows"``."""
    read = tuning.banded_reading(problem, config)
    way = "channels_last" if problem.layout == "channels_last" else "runs" if read.run else "contiguous"
    return f"{way}, rows" if banded.axes(problem.spec)[0][0] > 1 else way


BANDED_MMA = 0.5
"""The banded kernel's tensor-core rate as a share of ``mma_macs``: its batched ``tl.dot`` (one product per channel)
runs the warp-level MMA (``mma.sync``, ``HMMA`` in the SASS), where the pointer kernels' fitted 16-bit rate is of
Hopper's warpgroup MMA; unmeasured, half (conservative before Hopper, whose pointer kernels run the same MMA)."""


DEPTHWISE_ISSUE = {"channels_last": {"conv_dw": (163, 9), "conv_dw_t": (163, 2), "conv_dw_wgrad": (139, 41)},
                   "contiguous": {"conv_dw": (262, 111), "conv_dw_t": (262, 111), "conv_dw_wgrad": (285, 0)},
                   "runs": {"conv_dw": (164, -7), "conv_dw_t": (163, -9), "conv_dw_wgrad": (205, 0)}}
"""Per layout and pass, ``(first, further)``: the warp instructions the depthwise kernels' main loops issue per 1000
multiply-adds issued, with taps along one axis, and what each further axis of taps adds (its bounds and addresses:
per element in NC(D)HW, where a thread's elements are positions; shared by 8 channels channels-last). An fp32 FMA
is 31.25 of them; the rest are the operands' loads, their conversions, masks and addresses. Restated from the SASS
census (sm_90, bf16, Triton 3.9; ``benchmarks/results/static/``; ``benchmarks.static.fma_issue``) of the suite's two
depthwise layers with the heuristic's tiles, a 1-D one (31 taps) and a 2-D one (3 x 3); 3-D layers are extrapolated.
(On a GPU the heuristic now runs both layers' 16-bit passes banded, :data:`BANDED_ISSUE`, in either layout; the tiles
report keeps the NCHW 3 x 3 layer's FMA loops, ``benchmarks.static.FMA_LAYERS``, which these restate; the others are
from the compiles before.)

``"runs"``: NC(D)HW layers at unit width stride, whose rows are read in aligned runs (:func:`depthwise_runs`): the
forward and input gradient as cheap as channels-last (a further axis's taps share a run loop's addresses and masks,
its height taps unrolled in the width tap's loop, so it costs less), the weight gradient one tap a program (its output
gradient read per tap, in runs too). ``"contiguous"``'s forward and input gradient: NC(D)HW
rows read an element at a time (strided widths, widths of no run's multiple), a census of the suite's layers on
128-position tiles, before their runs (the heuristic's 256-position tiles issued 226-296 on a
strided and an odd-width 3 x 3 layer, where 128 issued 240-373: this overstates them). The NC(D)HW weight gradient's
row tiles issue as much for two axes of taps as for one (281 and 289: its bounds are per position, shared by a
thread's taps and channels). So these kernels are bound by issue where their bytes allow it: by this model the 31-tap
layer's weight gradient takes 3x its bytes' time on an H200. (Triton 3.6, the GPU machine's, issues 1.0-1.1x these;
its channels-last weight gradients 1.6-2.7x until their tiles' lanes ran along the positions, ``_tile.load_middle``.)"""


def depthwise_runs(problem: Problem, config: Config) -> int:
    """The runs (elements) in which a depthwise launch reads its NC(D)HW rows, or 0
    (:func:`tritonconv.kernels.depthwise.row_runs`, the weight gradient's :func:`tritonconv.tuning.dw_wgrad_runs`; on
    stand-ins laid out as the problem's)."""
    if problem.kind == "conv_dw_wgrad":
        return tuning.dw_wgrad_runs(problem, config)
    if problem.layout == "channels_last":
        return 0
    transposed = problem.kind == "conv_dw_t"
    read, written = (problem.output_shape, problem.input_shape) if transposed else (problem.input_shape,
                                                                                    problem.output_shape)
    x = tuning.standin(read, getattr(torch, problem.dtype), False, "meta")
    return depthwise.row_runs(x, written, problem.spec, transposed, config)[0]


def tap_axes(problem: Problem) -> int:
    """The axes of a problem's kernel with more than one tap (at least 1)."""
    return max(1, sum(k > 1 for k in problem.weight_shape[2:]))


def issue_seconds(problem: Problem, config: Config, device: Device) -> float:
    """Seconds per issued multiply-add that a launch's instructions take to issue on the whole device
    (:func:`issue_terms`), at ``Device.issue_rate``."""
    return issue_time(issue_terms(problem, config), device)


def issue_terms(problem: Problem, config: Config) -> tuple[float, float]:
    """``(instructions, multiply-adds)``: warp instructions a launch issues and the multiply-adds they issue. A GEMM
    launch's step on all its warps (:func:`step_instructions`) and the step's multiply-adds times its NC(D)HW class's
    census share (:func:`nc_share`); a depthwise launch's instructions per 1000 multiply-adds (:data:`DEPTHWISE_ISSUE`,
    the banded kernel's :data:`BANDED_ISSUE`) and 1000; ``(0, 1)`` for launches on FMA units (IEEE fp32 and fp64 dots)
    and those folding taps (``fold_macs``, fitted with their issue)."""
    problem, config = launched(problem, config)
    if runs_banded(problem, config):
        return BANDED_ISSUE[banded_reads(problem, config)][problem.kind == "conv_dw_wgrad"], 1000
    if problem.kind.startswith("conv_dw"):
        first, further = DEPTHWISE_ISSUE["runs" if depthwise_runs(problem, config) else problem.layout][problem.kind]
        return first + further * (tap_axes(problem) - 1), 1000
    if not config.tile_h and rate_of(problem, config)[0] not in ("mma_macs", *UNFITTED_SHARES):
        return 0, 1
    steps_macs = config.block_m * config.block_n * config.block_k
    return config.num_warps * step_instructions(problem, config), nc_share(problem, config) * steps_macs


def issue_time(terms: tuple[float, float], device: Device) -> float:
    """:func:`issue_seconds` from a launch's :func:`issue_terms`, on ``device``."""
    instructions, macs = terms
    return instructions / (macs * device.issue_rate)


def nc_share(problem: Problem, config: Config) -> float:
    """The share of a GEMM launch's issue that :func:`step_instructions` counts: its NC(D)HW class's census share
    (a pointer launch's :data:`ROW_ISSUE` or :data:`ALIGNED_ISSUE`; a descriptor one's :data:`NC_ROWS_ISSUE`,
    :data:`NC_FLAT_ISSUE`, :data:`NC_RUNS_ISSUE`), else 1."""
    if not launched(problem, config)[1].tile_h:
        name = rate_of(problem, config)[0]
        return UNFITTED_SHARES[name][problem.kind] if name in UNFITTED_SHARES else 1.0
    if nc_rows(problem, config):
        return NC_ROWS_ISSUE[problem.kind]
    if nc_flat(problem, config):
        return NC_FLAT_ISSUE[problem.kind]
    return NC_RUNS_ISSUE[problem.kind] if nc_runs(problem, config) else 1.0


def drained(problem: Problem, config: Config) -> float:
    """The share of a launch's main-loop steps in loops that wait for every MMA in flight to finish before the next
    step issues (Hopper's warpgroup MMA; the SASS census's ``loop_drains``, one count a loop): the loops that pass an
    MMA operand through registers on its way to shared memory, where the next step's store must wait for the MMAs
    reading the last one's; 0 where the warp-level MMA runs (tiles of fewer than 64 rows). From the census of the
    suite's sm_90 kernels (``tests/test_costmodel.py`` checks this against every committed report):

    * the pointer kernel's NC(D)HW row tiles (:func:`by_rows`) read 2 bytes at a time, or a weight gradient's ``x``
      dealt (a width stride) or moved in runs (:func:`wgrad_runs`: its width taps off a run boundary) where it is the
      MMA's second operand (where its first, from registers, none: :func:`tritonconv.kernels.weight_grad.x_as_m`);
    * the descriptor weight gradient's NC(D)HW ``x`` moved in runs (:func:`nc_runs`: its taps, planes read as rows
      too, off 16 bytes), or patches of several rows, whose box is laid out anew for the MMA every step;
    * the descriptor forward's steps one MMA deep (32 bytes of reduction: 16 channels of 16 bits, 32 of fp8) whose
      first operand the MMA takes from registers (:func:`first_from_registers`): ``ct_anisotropic``'s NC(D)HW rows,
      whose 16 input channels allow no deeper step (at 32, no wait); in fp8, ``unet3d_64cube``'s and the NC(D)HW
      ``r2plus1d18_l1`` temporal layer's too.

    Channels-last launches read their operands into shared memory by copy engine or asynchronous copies: 0 (but for
    the last rule). TF32 (fp32 multiplied in TF32) and fp8 differ where their MMA, which reads no operand transposed
    from shared memory, takes one through registers: in TF32 every loop of a weight gradient on channels-last tiles
    and of a dealt pointer forward waits, a pointer forward's 4-byte elements, copied asynchronously, do not (and fp32
    weight gradients are not run transposed); in fp8 (forwards only) every NC(D)HW pointer forward waits, aligned
    runs or not."""
    problem, config = launched(problem, config)
    rows = config.block_n if transposed_mma(problem, config) or input_channels_as_m(problem, config) else config.block_m
    if problem.kind not in ("conv", "conv_t", "conv_wgrad") or rows < 64 or (
            problem.dtype in ("float32", "float64") and not problem.tf32):
        return 0.0
    tf32, wgrad, spec = problem.tf32, problem.kind == "conv_wgrad", problem.spec
    if first_from_registers(problem, config):  # a descriptor forward's
        return 1.0 if config.block_k * problem.itemsize <= 32 else 0.0
    if problem.layout == "channels_last":
        return 1.0 if tf32 and wgrad else 0.0
    vec = 16 // problem.itemsize  # elements of a 16-byte run
    width_taps = geometry.tap_shifts(spec.weight_shape[-1], 1, spec.padding[-1][0], spec.dilation[-1], False)

    def off(shifts: list[int], run: int) -> float:  # the share of taps whose runs move in registers
        return sum(geometry.run_kind(t, run) != 1 for t in shifts) / len(shifts)
    if not config.tile_h:
        if not by_rows(problem, config):
            return 0.0
        if not wgrad:
            if problem.itemsize == 1:
                return 1.0
            if tf32:
                return 1.0 if aligned(problem, config) and row_reads(problem, config)[0].deal > 1 else 0.0
            return 0.0 if aligned(problem, config) else 1.0
        x_vec = wgrad_runs(problem, config)[1]
        if x_vec == 1:
            return 1.0
        if x_as_m(problem, config):  # the moved x from registers
            return 0.0
        if spec.stride[-1] > 1:
            return 1.0
        return off(width_taps, x_vec)
    if wgrad:
        if config.tile_h * config.tile_b > 1:  # patches of several rows: x's box reshaped for the MMA every step
            return 1.0
        if not nc_runs(problem, config):
            return 0.0
        return off(flat_shifts(spec) if nc_flat(problem, config) else width_taps, vec)
    return 0.0


def first_from_registers(problem: Problem, config: Config) -> bool:
    """Whether a descriptor forward or input-gradient launch's MMA takes its first operand (the positions' tile) from
    registers, loaded there from shared memory: where it is not run transposed (:func:`transposed_mma`) and its box is
    not the MMA's tile as it lies, NC(D)HW (positions innermost) or patches of several rows. The census's
    ``loop_mma_register_a`` on every such kernel of the committed sm_90 reports (bf16, fp16, TF32, fp8; Triton 3.9 and
    3.6; ``tests/test_costmodel.py``)."""
    problem, config = launched(problem, config)
    return (problem.kind in ("conv", "conv_t") and bool(config.tile_h) and not transposed_mma(problem, config)
            and (problem.layout != "channels_last" or config.tile_h * config.tile_b > 1))


def chain_seconds(f: Inputs, device: Device, t: dict[str, float], waves: float, per_sm: int) -> float:
    """Where a launch's loops wait for their MMAs every step (:func:`drained`), the time its programs take when each
    step's MMAs and its other instructions run one after the other rather than overlapped: a program's step takes its
    MMAs' time on the tensor cores (the descriptor kernels' rate, ``tma_macs``) plus its other instructions (the
    descriptor kernels' issue, ``t["issue"]``; the pointer kernels' time at their fitted rate, ``t["compute"]``), and the
    ``k`` programs resident on an SM (``per_sm``, :func:`ctas_per_sm`, at most the grid's share of an SM) overlap each
    other's. So with two or more programs an SM the waits mostly hide; with one, the loop's time is the sum. Those steps
    take this where it is longer than the overlapped time (:func:`soft_max` of the other limits), the rest overlap: the
    drained share ``d`` of them adds ``d * (chain - overlapped)``. 0 where no loop waits (or ``Device.async_mma`` is
    False). ``f`` the launch's :func:`inputs`, ``t`` its other limits and ``waves`` its multiply-adds over its wave
    efficiency, as :func:`bounds` has them."""
    share = f.drained if device.async_mma else 0.0
    if not share:
        return 0.0
    tensor = waves / (device.tma_macs * f.tensor)
    per_sm = min(per_sm, max(1, cdiv(f.ctas, device.sms)))
    chain = (tensor + (t["issue"] if f.descriptors else t["compute"])) / per_sm
    overlapped = soft_max(t["compute"], t["L2 fill"], t["issue"])
    return overlapped + share * (chain - overlapped) if chain > overlapped else 0.0


def soft_max(*times: float) -> float:
    """The largest of some times, smoothly (their 8-norm: at most 1.09x the largest of two, 1.0x where one dominates):
    the MMA, the fill of its tiles and the issue of the loop's instructions overlap in the software pipeline, not
    perfectly; and a fit sees every term."""
    return sum(t ** 8 for t in times) ** 0.125


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What :func:`predict` knows of a launch before any device's constants: the terms of the module docstring's form
    that the CPU counts, of the launch as it runs (:func:`launched`), gathered once a launch by :func:`inputs`."""

    kind: str  # the pass launched (an unfitted rate's census share is its pass's, :data:`UNFITTED_SHARES`)
    descriptors: bool  # a descriptor kernel (``tile_h``): its waits for the MMA add the loop's issue, else its compute
    warps: int
    macs: int  # W, and the grid (:func:`issued`)
    ctas: int
    rate: str  # the :class:`Device` rate the launch runs at, and the factor on it (:func:`rate_of`)
    factor: float
    fill: float  # L (:func:`fill_bytes`)
    issue: tuple[float, float]  # I (:func:`issue_terms`)
    moved: int  # B (:func:`moved`)
    drained: float  # D: the share of steps in loops that wait for their MMAs (:func:`drained`)
    tensor: float  # the tensor cores' rate for the operands over their 16-bit rate (:func:`tensor_factor`)
    residency: tuple[int, int] | int  # what sets e's CTAs per SM (:func:`residency`)
    back: tuple[int, int]  # S (:func:`read_back`)
    launches: int  # 2 where split partials are added by a second launch (:func:`sums_apart`)
    spills: bool  # :func:`spills`


@functools.lru_cache(maxsize=4096)
def inputs(problem: Problem, config: Config) -> Inputs:
    """:class:`Inputs` of ``problem``'s launch with ``config``. The last 4096 are kept (:func:`forget` drops them): a
    fit predicts the same launches under many constants."""
    run, cfg = launched(problem, config)
    macs, ctas = issued(run, cfg)
    rate, factor = rate_of(run, cfg)
    return Inputs(run.kind, bool(cfg.tile_h), cfg.num_warps, macs, ctas, rate, factor, fill_bytes(run, cfg),
                  issue_terms(run, cfg), moved(run, cfg), drained(run, cfg), tensor_factor(run), residency(run, cfg),
                  read_back(problem, config), 2 if sums_apart(problem, config) else 1, spills(problem, config))


def forget() -> None:
    """Drop what the model keeps of the launches it has seen (:func:`inputs`, :func:`launched`, :func:`gemm_launch` and
    its stand-ins): after a change of what they read (a test's bound on the kernels, say)."""
    for kept in (inputs, launched, gemm_launch, kept_standin):
        kept.cache_clear()


def bounds(problem: Problem, config: Config, device: Device) -> dict[str, float]:
    """The seconds each of a launch's limits would take alone (a relayout config's launch on its copies,
    :func:`launched`; the copies are not in them): ``"compute"`` (``W / (R e)``: tensor cores or FMA units),
    ``"L2 fill"`` (``W L / (BW_L2 e)``), ``"issue"`` (``W I / e``), ``"memory"`` (``B / BW``), and ``"MMA waits"``:
    the first three's time where loops that wait for their MMAs every step run them one after the other
    (:func:`chain_seconds`; 0 where that is no longer); :func:`predict` combines them."""
    f = inputs(problem, config)
    rate = getattr(device, f.rate)
    if rate is None:  # row_macs or aligned_macs unfitted: the pointer rate at the census's issue share
        rate = device.mma_macs * UNFITTED_SHARES[f.rate][f.kind]
    per_sm = resident(f.residency, f.warps, device)
    waves = f.macs / efficiency(f.ctas, per_sm, f.warps, device)
    t = {"compute": waves / (rate * f.factor), "L2 fill": waves * f.fill / device.l2_bandwidth,
         "issue": waves * issue_time(f.issue, device), "memory": f.moved / device.bandwidth}
    return {**t, "MMA waits": chain_seconds(f, device, t, waves, per_sm)}


def sums_apart(problem: Problem, config: Config) -> bool:
    """Whether a GEMM weight gradient's split partials are added by a second launch (:mod:`tritonconv.kernels.partials`,
    its bytes in :func:`moved`) rather than in the kernel (:func:`tritonconv.kernels.weight_grad.meets`, as the dispatch
    asks it)."""
    return (problem.kind == "conv_wgrad" and config.split_k > 1
            and not weight_grad.meets(kernel_of(problem, config) == "_conv_weight_grad_tma_kernel",
                                      getattr(torch, problem.dtype), config.split_k, config.block_m, config.block_n))


def predict(problem: Problem, config: Config, device: Device) -> float:
    """Predicted device seconds of one launch (the module docstring gives the form); a relayout config's copies
    included (:func:`relayout_seconds`), a second launch's fixed cost where split partials are added apart
    (:func:`sums_apart`), and where they meet in the kernel, the last splits' reading them back (:func:`meet_seconds`)."""
    f, t = inputs(problem, config), bounds(problem, config, device)
    copies = relayout_seconds(problem, device) if config.relayout else 0.0
    overlapped = max(soft_max(t["compute"], t["L2 fill"], t["issue"]), t["MMA waits"])
    return f.launches * device.t0 + max(overlapped, t["memory"]) + met_seconds(f.back, device) + copies


def bound(problem: Problem, config: Config, device: Device) -> str:
    """What limits a launch most, in :func:`bounds`' words, or ``"launch"`` where its fixed cost (``Device.t0``)
    outlasts every limit."""
    t = bounds(problem, config, device)
    limit = max(t, key=t.get)
    return limit if t[limit] > device.t0 else "launch"


def efficiency(ctas: int, per_sm: int, warps: int, device: Device) -> float:
    """The share of the device's rate a grid of ``ctas`` programs of ``warps`` warps gets, ``per_sm`` resident at a
    time on each SM: it runs in waves, full ones of ``per_sm`` programs per SM and a last one of the rest spread over
    the SMs; a wave of ``j`` programs per SM lasts ``j`` programs' work at the SM's rate, or, where those programs hold
    fewer than ``device.saturating_warps`` warps, at the share of it their warps reach. So a grid of whole waves of
    saturating programs gets 1, a single program per SM at most ``warps / saturating_warps``, and a grid within one
    wave the same however many more programs an SM could hold."""
    if not ctas:
        return 1.0
    def wave(j: int) -> float:  # a wave's time, in one program's work at an SM's rate
        return j / min(1.0, j * warps / device.saturating_warps)
    full, rest = divmod(ctas, device.sms * per_sm)
    time = full * wave(per_sm) + (wave(math.ceil(rest / device.sms)) if rest else 0.0)
    return ctas / (device.sms * time)


def pack_seconds(written: Problem, device: Device) -> float:
    """The two small launches a packed layer makes beside its convolution (:mod:`tritonconv.kernels.pack`): the
    forward packs its input and its weight, the weight gradient packs its input and unpacks the gradient, the input
    gradient packs the weight and unpacks its result; each moves its tensor and the packed one, one read and the
    other written, at the device's bandwidth, plus a launch; 0 where ``written`` (the layer as written, not as run)
    does not pack. A layer of narrow groups run merged (:func:`tritonconv.geometry.group_merge`) lays out its
    block-diagonal weight in two (zeroing it, copying the blocks) and takes its weight gradient's diagonal blocks in
    one."""
    spec = written.spec
    if written.kind not in ("conv", "conv_t", "conv_wgrad"):
        return 0.0
    merge = geometry.group_merge(spec, written.itemsize)
    if merge:
        weight = math.prod(written.weight_shape) * written.itemsize
        if written.kind == "conv_wgrad":
            return device.t0 + 2 * weight / device.bandwidth
        return 2 * device.t0 + (merge + 2) * weight / device.bandwidth
    factors = geometry.pack_factors(spec, written.kind == "conv_t", written.itemsize)
    if factors is None:
        return 0.0
    packed = geometry.packed(spec, factors, written.itemsize)
    elements = sum(math.prod(shape) for shape in (written.input_shape, packed.input_shape, written.weight_shape,
                                                  packed.weight_shape))
    return 2 * device.t0 + elements * written.itemsize / device.bandwidth


def pass_seconds(written: Problem, config: Config, device: Device) -> float:
    """Predicted device seconds of one pass of a layer as written (``written``: not packed or merged yet, as
    :meth:`~tritonconv.geometry.Problem.as_run` makes it) run with ``config``: the kernel's launch and a packed
    layer's packing launches (:func:`pack_seconds`)."""
    return predict(written.as_run(), config, device) + pack_seconds(written, device)


def rank(problem: Problem, configs: list[Config], device: Device) -> list[Config]:
    """``configs`` fastest first by :func:`predict` (ties keep the given order)."""
    return tuning.ranked(problem, configs, predicting(device))


def model(device_name: str, sms: int | None = None) -> tuning.Predict:
    """:func:`predict` with the constants of the GPU called ``device_name`` (:func:`device_for`; ``sms``: its SM count,
    where the constants are not its own): what a tuning in the library shortlists its candidates by, and what sets a
    default weight gradient's split count (:func:`tritonconv.tuning.shortlist`, :func:`tritonconv.tuning.default`)."""
    return predicting(device_for(device_name, sms))


def predicting(device: Device) -> tuning.Predict:
    """:func:`predict` with ``device``'s constants, or infinity for a launch the model expects to spill
    (:func:`spills`): what rankings, shortlists and split counts go by (a tuning times no config that spills)."""
    return lambda problem, config: math.inf if inputs(problem, config).spills else predict(problem, config, device)


def default(problem: Problem, device: Device, tma: bool) -> Config:
    """The config a launch of ``problem`` takes on ``device`` with nothing cached or tuned
    (:func:`tritonconv.tuning.default`, its split count predicted with ``device``'s constants)."""
    return tuning.default(problem, device.sms, tma, predicting(device))
