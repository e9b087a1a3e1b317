"""Kernel configurations: the tile sizes a launch uses, and how they are chosen."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton


@dataclass(frozen=True)
class Config:
    """Tile sizes and launch parameters of a kernel, in its GEMM's terms (rows, columns, reduction)."""

    block_m: int  # GEMM rows per program (forward: output positions)
    block_n: int  # GEMM columns per program (forward: output channels)
    block_k: int  # reduction step (forward: input channels)
    group_m: int = 8  # row tiles sharing a column tile (L2 swizzle)
    num_warps: int = 4
    num_stages: int = 3
    split_k: int = 1  # independent partial sums over the reduction (weight gradient)


def _clamp_pow2(value: int, low: int, high: int) -> int:
    return max(low, min(high, triton.next_power_of_2(max(value, 1))))


def heuristic_config(m: int, c_in_g: int, c_out_g: int, kernel: tuple[int, ...], interpret: bool) -> Config:
    """A deterministic config from the problem's sizes (``tl.dot`` needs every block >= 16).

    Under the interpreter each program is a sequence of numpy steps whose fixed cost
    dominates, so fewer, larger tiles run faster: up to 16K elements per operand tile.
    """
    block_n = _clamp_pow2(c_out_g, 16, 128)
    block_k = _clamp_pow2(c_in_g, 16, 64)
    if interpret:
        block_m = _clamp_pow2(m, 16, 16384 // max(block_k, block_n))
        return Config(block_m, block_n, block_k, group_m=1, num_warps=1, num_stages=1)
    block_m = 128 if m >= 128 * 64 else 64
    warps = 8 if block_m * block_n >= 128 * 128 else 4
    stages = 2 if math.prod(kernel) * c_in_g <= block_k else 3
    return Config(block_m, block_n, block_k, num_warps=warps, num_stages=stages)


def _sm_count(device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def weight_grad_config(
    positions: int, c_in_g: int, c_out_g: int, taps: int, groups: int, device, interpret: bool
) -> Config:
    """Weight-gradient GEMM: rows = output channels, columns = input channels, reduction = positions.

    On a GPU the reduction is split until about two waves of programs fill the machine.
    """
    block_m = _clamp_pow2(c_out_g, 16, 64 if interpret else 128)
    block_n = _clamp_pow2(c_in_g, 16, 64 if interpret else 128)
    if interpret:
        block_k = _clamp_pow2(positions, 16, 16384 // max(block_m, block_n))
        return Config(block_m, block_n, block_k, group_m=1, num_warps=1, num_stages=1)
    block_k = 64 if block_m * block_n <= 64 * 64 else 32
    tiles = groups * taps * triton.cdiv(c_out_g, block_m) * triton.cdiv(c_in_g, block_n)
    split = max(1, min(triton.cdiv(2 * _sm_count(device), tiles), triton.cdiv(positions, 8 * block_k)))
    return Config(block_m, block_n, block_k, group_m=1, num_warps=4, num_stages=3, split_k=split)
