"""``python -m benchmarks.work``: matrix work each GEMM launch issues, against the useful multiply-adds.

For every layer of ``benchmarks/shapes.json`` and every pass (forward ``conv``, input gradient
``conv_t``, weight gradient ``conv_wgrad``), the launch a Hopper GPU (H100/H200: descriptor kernels
where the heuristic takes them) would make with its default (heuristic) config is prepared (nothing
runs) and asked for the multiply-adds its ``tl.dot``
calls issue, masked lanes included: channels padded to the tile, tile edges, split tails and,
before stride phases, the taps a transposed pass masked off. ``ratio = issued / useful``
(:func:`tritonconv.shapes.conv_macs`); 1.0 is no waste. Depthwise layers' passes on the banded kernel
(``tritonconv.kernels.banded``: a window of inputs padded to a power of two for each segment of outputs) count
as that kernel's dots issue them; those on the FMA kernels (no ``tl.dot``, the useful multiply-adds) are left out.
Counts, not timings: no GPU needed. ``--kernelbench``: the
same for KernelBench level 1's problems (NCHW).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tritonconv import costmodel, geometry, shapes, tune

ROOT = Path(__file__).resolve().parent
COMMITTED = ROOT / "results" / "static" / "work-bf16.jsonl"


MODEL = costmodel.device_for("NVIDIA H200")  # whose SM count and constants rank the default's splits


def report(suite: dict, dtype: str = "bf16", kinds=("conv", "conv_t", "conv_wgrad")) -> list[dict]:
    rows = []
    for name, prob in tune.suite_problems(suite):
        depthwise = shapes.is_depthwise(prob["input_shape"], prob["weight_shape"], prob["groups"])
        for kind in kinds:
            problem = geometry.Problem.of(geometry.DEPTHWISE_KIND[kind] if depthwise else kind, tune.DTYPES[dtype],
                                          "channels_last", **prob)
            useful = shapes.conv_macs(prob["input_shape"], prob["weight_shape"], problem.output_shape)  # as written
            cfg = costmodel.default(problem, MODEL, True)
            if depthwise and not costmodel.runs_banded(problem, cfg):  # FMA loops: the useful multiply-adds
                continue
            issued, _ = costmodel.issued(problem, cfg)
            rows.append({"name": name, "kind": problem.kind, "stride": list(problem.stride), "useful_macs": useful,
                         "issued_macs": issued, "ratio": round(issued / useful, 3),
                         "kernel": "banded" if depthwise else "descriptor" if cfg.tile_h else "pointer"})
    return rows


def kernelbench_report(dtype: str = "bf16") -> list[dict]:
    """The same count for KernelBench level 1's convolutions (``kernelbench_level1_conv.json``: NCHW, as its
    harness makes its inputs), one row per layer: the forward launch, or for a transposed convolution the
    transposed pass of the convolution it reverses (``conv_t``). Depthwise layers on the FMA kernels are left out."""
    from benchmarks.kernelbench import SUITE

    rows = []
    for name, prob, transposed in tune.kernelbench_problems(json.loads(SUITE.read_text())):
        depthwise = shapes.is_depthwise(prob["input_shape"], prob["weight_shape"], prob["groups"])
        kind = ("conv_dw_t" if depthwise else "conv_t") if transposed else ("conv_dw" if depthwise else "conv")
        problem = geometry.Problem.of(kind, tune.DTYPES[dtype], "contiguous", **prob)
        written = geometry.Problem.of(kind, tune.DTYPES[dtype], "contiguous", **prob, as_run=False)
        useful = shapes.conv_macs(written.input_shape, written.weight_shape, written.output_shape)
        cfg = costmodel.default(problem, MODEL, True)
        if depthwise and not costmodel.runs_banded(problem, cfg):
            continue
        issued, _ = costmodel.issued(problem, cfg)
        rows.append({"name": name.split(":")[0], "kind": kind, "useful_macs": useful, "issued_macs": issued,
                     "ratio": round(issued / useful, 3),
                     "kernel": "banded" if depthwise else "descriptor" if cfg.tile_h else "pointer"})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.work", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", type=Path, default=ROOT / "shapes.json")
    p.add_argument("--dtype", choices=list(tune.DTYPES), default="bf16")
    p.add_argument("--json", action="store_true", help="JSON lines instead of the table")
    p.add_argument("--kernelbench", action="store_true", help="KernelBench level 1's problems instead of the suite")
    p.add_argument("--write", action="store_true", help=f"write the JSON lines to {COMMITTED.relative_to(ROOT.parent)} "
                   "(what notebook 06 draws; tests/test_benchmarks.py checks it is current)")
    args = p.parse_args(argv)
    rows = kernelbench_report(args.dtype) if args.kernelbench else report(json.loads(args.suite.read_text()), args.dtype)
    if args.write and not args.kernelbench:
        COMMITTED.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return 0
    for row in rows:
        if args.json:
            print(json.dumps(row))
        else:
            stride = f" stride={str(row['stride']):>10}" if "stride" in row else ""
            print(f"{row['name'][:52]:>52} {row['kind']:>10}{stride} {row['kernel']:>10} issued/useful = {row['ratio']:6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
