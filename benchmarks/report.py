"""``python -m benchmarks.report``: the suite's results against the performance targets, as markdown.

    python -m benchmarks.report                              # every run in benchmarks/results/*.jsonl
    python -m benchmarks.report benchmarks/results/2027-01-05_NVIDIA_H100_80GB_HBM3_compile.jsonl

For each result file (one run of ``python -m benchmarks.run``: one device, its rows) and each
dtype, layout and pass in it, per op family (1D, 2D, 3D, (2+1)D): the geometric mean of
time(cuDNN) / time(tritonconv), the slowest layer, the geometric mean against
torch.compile(max-autotune) where it ran, and each layer's fraction of its roofline bound
(compute-bound layers against the measured bf16 matrix rate, memory-bound ones against the
measured copy bandwidth). The targets are checked and listed with the layers that miss them:

* per family, geometric mean vs cuDNN >= 1.10 and no layer below 0.80;
* geometric mean vs torch.compile(max-autotune) >= 1.3;
* compute-bound layers >= 70% of the matrix rate, memory-bound ones >= 80% of copy bandwidth.

Rows from ``--smoke`` runs (CPU interpreter) are never reported: they carry no speed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent
FAMILY = {"conv1d": "1D", "conv2d": "2D", "conv3d": "3D", "conv2plus1d": "(2+1)D"}
TARGETS = {"geomean_vs_cudnn": 1.10, "min_vs_cudnn": 0.80, "geomean_vs_compile": 1.3, "compute_roofline": 0.70,
           "memory_roofline": 0.80}


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def load(paths: list[Path]) -> dict[Path, list[dict]]:
    """Rows per file, smoke rows and unreadable lines left out."""
    runs = {}
    for path in paths:
        rows = []
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut off when a run was stopped
            if isinstance(row, dict) and "speedup_vs_cudnn" in row and not row.get("smoke"):  # suite rows only
                rows.append(row)
        if rows:
            runs[path] = rows
    return runs


def summarize(rows: list[dict]) -> list[dict]:
    """One summary per (dtype, layout, pass, family): speedups, roofline fractions, targets missed."""
    groups = defaultdict(list)
    for row in rows:
        groups[(row["dtype"], row["layout"], row.get("pass", "forward"), FAMILY[row["op"]])].append(row)
    out = []
    for (dtype, layout, pas, family), group in sorted(groups.items()):
        vs_cudnn = {r["name"]: r["speedup_vs_cudnn"] for r in group if r.get("speedup_vs_cudnn")}
        vs_compile = [r["speedup_vs_torch_compile"] for r in group if r.get("speedup_vs_torch_compile")]
        failed = [r["name"] for r in group if not (r.get("tritonconv") or {}).get("ok")]
        missed = []
        g = geomean(list(vs_cudnn.values()))
        if not g >= TARGETS["geomean_vs_cudnn"]:
            missed.append(f"geomean vs cuDNN {g:.2f} < {TARGETS['geomean_vs_cudnn']}")
        slow = sorted((v, k) for k, v in vs_cudnn.items() if v < TARGETS["min_vs_cudnn"])
        missed += [f"{k} {v:.2f}x cuDNN < {TARGETS['min_vs_cudnn']}" for v, k in slow]
        gc = geomean(vs_compile)
        if vs_compile and gc < TARGETS["geomean_vs_compile"]:
            missed.append(f"geomean vs torch.compile {gc:.2f} < {TARGETS['geomean_vs_compile']}")
        for r in group:
            frac, bound = r.get("roofline_fraction"), r.get("bound")
            if frac is not None and frac < TARGETS[f"{bound}_roofline"]:
                missed.append(f"{r['name']} {frac:.0%} of its {bound} bound < {TARGETS[f'{bound}_roofline']:.0%}")
        missed += [f"{name}: wrong or failing" for name in failed]
        slowest = min(vs_cudnn.items(), key=lambda kv: kv[1]) if vs_cudnn else ("-", math.nan)
        out.append({"dtype": dtype, "layout": layout, "pass": pas, "family": family, "layers": len(group),
                    "geomean_vs_cudnn": g, "slowest": slowest, "geomean_vs_compile": gc if vs_compile else None,
                    "missed": missed})
    return out


def markdown(path: Path, rows: list[dict]) -> str:
    first = rows[0]
    head = (f"**{first['device']}**, torch {first['torch']}, triton {first['triton']}, CUDA {first.get('cuda')}, "
            f"{first['date'][:10]} (`{path.name}`)\n\n"
            "| dtype | layout | pass | family | layers | vs cuDNN (geomean) | slowest vs cuDNN | "
            "vs torch.compile (geomean) | targets missed |\n|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for s in summarize(rows):
        compile_ = f"{s['geomean_vs_compile']:.2f}x" if s["geomean_vs_compile"] else "not run"
        lines.append(f"| {s['dtype']} | {s['layout']} | {s['pass']} | {s['family']} | {s['layers']} | "
                     f"{s['geomean_vs_cudnn']:.2f}x | {s['slowest'][0]} {s['slowest'][1]:.2f}x | {compile_} | "
                     f"{'; '.join(s['missed']) or 'none'} |")
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", type=Path, help="result files (default: benchmarks/results/*.jsonl)")
    args = p.parse_args(argv)
    runs = load(args.files or sorted((ROOT / "results").glob("*.jsonl")))
    if not runs:
        print("no GPU results (smoke rows are not reported)", file=sys.stderr)
        return 1
    print("\n".join(markdown(path, rows) for path, rows in runs.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
