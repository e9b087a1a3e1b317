"""The benchmark suite shipped in benchmarks/ and the launcher's configurations for it."""

import json
import math
from pathlib import Path

import pytest

from tritonconv import shapes, tuning

ROOT = Path(__file__).resolve().parents[1]
SUITE = json.loads((ROOT / "benchmarks" / "shapes.json").read_text())
SHARED = ROOT.parent / "shared" / "bench" / "shapes.json"


@pytest.mark.skipif(not SHARED.exists(), reason="the project's shared suite is not beside this checkout")
def test_suite_copy_matches_shared():
    assert SUITE == json.loads(SHARED.read_text())


@pytest.mark.parametrize("interpret", [False, True])
def test_heuristic_configs_valid_for_suite(interpret):
    for op in shapes.SUITE_AXES:
        for entry in SUITE[op]:
            name, prob = entry["name"], shapes.suite_problem(op, entry)
            w, y, g = prob["weight_shape"], prob["output_shape"], prob["groups"]
            assert all(v > 0 for v in y[2:]), name
            cfg = tuning.heuristic_config(y[0] * math.prod(y[2:]), w[1], w[0] // g, w[2:], interpret)
            for block in (cfg.block_m, cfg.block_n, cfg.block_k):
                assert block >= 16 and block & (block - 1) == 0, (name, cfg)  # tl.dot: powers of two >= 16
            assert cfg.block_n <= max(16, 2 * w[0] // g) and cfg.block_k <= max(16, 2 * w[1]), (name, cfg)


def test_suite_problem_matches_torch_output_shape():
    import torch
    import torch.nn.functional as F

    for op in shapes.SUITE_AXES:
        for entry in SUITE[op]:
            p = shapes.suite_problem(op, entry)
            ref = getattr(F, op)(torch.empty(p["input_shape"], device="meta"), torch.empty(p["weight_shape"], device="meta"),
                                 None, p["stride"], p["padding"], p["dilation"], p["groups"])
            assert p["output_shape"] == tuple(ref.shape), entry["name"]
