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


def suite_problems():
    for op, nd in (("conv1d", 1), ("conv2d", 2), ("conv3d", 3)):
        for s in SUITE[op]:
            spatial = [s[a] for a in {1: ["L"], 2: ["H", "W"], 3: ["D", "H", "W"]}[nd]]
            g = s.get("groups", 1)
            x = (s["N"], s["C"], *spatial)
            w = (s["OC"], s["C"] // g, *shapes.as_tuple(s["k"], nd))
            yield s["name"], x, w, g, (s["s"], s["p"], s["d"])


@pytest.mark.parametrize("interpret", [False, True])
def test_heuristic_configs_valid_for_suite(interpret):
    for name, x, w, g, (s, p, d) in suite_problems():
        y = shapes.conv_output_shape(x, w, s, p, d, g)
        assert all(v > 0 for v in y[2:]), name
        cfg = tuning.heuristic_config(y[0] * math.prod(y[2:]), w[1], w[0] // g, w[2:], interpret)
        for block in (cfg.block_m, cfg.block_n, cfg.block_k):
            assert block >= 16 and block & (block - 1) == 0, (name, cfg)  # tl.dot: powers of two >= 16
        assert cfg.block_n <= max(16, 2 * w[0] // g) and cfg.block_k <= max(16, 2 * w[1]), (name, cfg)
