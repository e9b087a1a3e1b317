"""The benchmark suite shipped in benchmarks/ and the launcher's configurations for it."""

import json
from pathlib import Path

import pytest
import torch

from tritonconv import shapes, tuning
from tritonconv.kernels import banded

ROOT = Path(__file__).resolve().parents[1]
SUITE = json.loads((ROOT / "benchmarks" / "shapes.json").read_text())
SHARED = ROOT.parent / "shared" / "bench" / "shapes.json"


@pytest.mark.skipif(not SHARED.exists(), reason="the project's shared suite is not beside this checkout")
@pytest.mark.parametrize("name", ["shapes.json", "kernelbench_level1_conv.json"])
def test_suite_copies_match_shared(name):
    assert json.loads((ROOT / "benchmarks" / name).read_text()) == json.loads((SHARED.parent / name).read_text())


def suite_problems():
    for op in shapes.SUITE_AXES:
        for entry in SUITE[op]:
            yield entry["name"], shapes.suite_problem(op, entry)


def assert_valid(cfg, problem, name):
    rows, cols, red = problem.gemm
    if cfg.fold and problem.kind.startswith("conv_dw"):  # the banded kernels: segments, channels, segments a step
        assert banded.applies(problem.spec, getattr(torch, problem.dtype), problem.kind == "conv_dw_t"), (name, cfg)
        for block in (cfg.block_m, cfg.block_n, cfg.block_k):
            assert block & (block - 1) == 0, (name, cfg)
        assert cfg.block_m >= 16 and cfg.block_k >= 16 and cfg.block_n <= max(8, 2 * cols), (name, cfg)
        wgrad = problem.kind == "conv_dw_wgrad"
        assert banded.shared_bytes(problem.spec, cfg, problem.itemsize, wgrad) <= tuning.DEFAULT_SMEM, (name, cfg)
        return
    if cfg.fold:  # taps folded into the reduction (forward) or the columns (weight gradient)
        assert tuning.can_fold(problem), (name, cfg)
        if problem.kind == "conv_wgrad":
            cols *= tuning.folded_taps(problem, cfg.fold)
        else:
            red *= problem.taps
    low = 1 if problem.kind.startswith("conv_dw") else 16  # tl.dot: powers of two >= 16; the FMA kernels' any
    for block in (cfg.block_m, cfg.block_n, cfg.block_k):
        assert block >= low and block & (block - 1) == 0, (name, cfg)
    assert cfg.block_m <= max(16, 2 * rows) and cfg.block_n <= max(16, 2 * cols), (name, cfg)
    assert cfg.block_k <= max(16, 2 * red), (name, cfg)
    assert cfg.num_warps in (1, 2, 4, 8) and cfg.num_stages >= 1 and cfg.split_k >= 1, (name, cfg)
    itemsize = {"float32": 4, "float16": 2, "bfloat16": 2}[problem.dtype]
    assert tuning.smem_bytes(cfg, itemsize) <= tuning.DEFAULT_SMEM, (name, cfg)


@pytest.mark.parametrize("kind", list(tuning.DEPTHWISE_KIND))
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_configs_valid_for_suite(kind, dtype):
    """Heuristic (GPU and interpreter) and every pruned candidate are valid for every suite layer."""
    seen = set()
    for name, prob in suite_problems():
        dw = shapes.is_depthwise(prob["input_shape"], prob["weight_shape"], prob["groups"])
        problem = tuning.Problem.of(tuning.DEPTHWISE_KIND[kind] if dw else kind, dtype, "channels_last", **prob)
        seen.add(problem.kind)
        assert all(v > 0 for v in problem.output_shape[2:]), name
        for interpret in (False, True):
            assert_valid(tuning.heuristic(problem, interpret), problem, name)
        configs = tuning.candidates(problem)
        assert 1 <= len(configs) <= 64 and len(set(configs)) == len(configs), (name, len(configs))
        for cfg in configs:
            assert_valid(cfg, problem, name)
    assert seen == {kind, tuning.DEPTHWISE_KIND[kind]}  # the suite has depthwise layers: all kinds covered


def test_suite_problem_matches_torch_output_shape():
    import torch
    import torch.nn.functional as F

    for op in shapes.SUITE_AXES:
        for entry in SUITE[op]:
            p = shapes.suite_problem(op, entry)
            ref = getattr(F, op)(torch.empty(p["input_shape"], device="meta"), torch.empty(p["weight_shape"], device="meta"),
                                 None, p["stride"], p["padding"], p["dilation"], p["groups"])
            assert p["output_shape"] == tuple(ref.shape), entry["name"]
