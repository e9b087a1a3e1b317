"""Kernel configurations: the tile sizes a launch uses, and how they are chosen."""

from __future__ import annotations

import math
from dataclasses import dataclass

import triton


@dataclass(frozen=True)
class Config:
    """Tile sizes and launch parameters of the convolution kernel."""

    block_m: int  # output positions per program
    block_n: int  # output channels per program
    block_k: int  # input channels per reduction step
    group_m: int = 8
    num_warps: int = 4
    num_stages: int = 3


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
