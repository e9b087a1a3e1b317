"""``python -m benchmarks.readout DIR``: a GPU slot's files, committed, drawn, tabulated and read.

    python -m benchmarks.readout /work/.device/<files_at>     # after `bash benchmarks/gpu_session.sh`
    python -m benchmarks.readout DIR --dry-run                 # print the comparison, write nothing
    python -m benchmarks.readout --draw benchmarks/results/2026-11-26_NVIDIA_H200_tuned.jsonl   # charts only

From the folder a slot run wrote (``benchmarks/gpu_session.sh``: slot.log, spec.xml, fuzz.jsonl,
suite.jsonl, kernelbench.jsonl, tuned.jsonl, e2e.jsonl, the tuning cache file):

(a) the rows go to ``benchmarks/results/<date>_<device>_slot_<part>.jsonl``, the log and the spec's
    JUnit report to ``benchmarks/results/logs/``, the tuning cache to ``autotune_cache/``;
(b) the README's slot table (between ``<!-- slot-table:start -->`` and ``<!-- slot-table:end -->``):
    per family, geometric means of time(cuDNN) / time(tritonconv) for each pass (forward, input
    gradient, weight gradient) and layout (channels-last, NCHW), device time and eager time, and one
    chart per pass and layout (``<date>_<device>_slot_<pass>_<layout>.png``: horizontal bars on a log
    ratio axis grouped by family, eager ratios as dots, 1.0 marked), which the documentation site's
    performance page shows; notebook 06 reads the same rows (rebuild it: ``bash spec_notebooks/build.sh 06``);
(c) ``<date>_<device>_slot_readout.md`` beside them: the spec, tests and fuzz outcome, every layer's
    ratio now against the previous slot's (or the last committed rows of the same pass and layout),
    each prediction of ``benchmarks/NOTES.md`` ("Predictions to check", its ``claim`` column)
    held, not held or not measured, and the cost model's predicted device times
    (``benchmarks/predictions/<device>.jsonl``, ``python -m benchmarks.costfit --predict``) against the
    measured ones, and how it ranked what the tuning timed (its pick, its shortlist against the full searches).
    The same markdown is printed.
"""

from __future__ import annotations

import argparse
import json
import operator
import re
import shutil
import statistics
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from benchmarks.report import FAMILY, geomean

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PASSES = ("forward", "input_grad", "weight_grad")
LAYOUTS = ("channels_last", "contiguous")
LAYOUT_NAME = {"channels_last": "channels-last", "contiguous": "NCHW"}
PARTS = ("suite", "tuned", "kernelbench", "fuzz", "e2e")
START, END = "<!-- slot-table:start -->", "<!-- slot-table:end -->"
OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def read_rows(path: Path) -> list[dict]:
    """JSON rows of a file, lines cut off by a stopped run left out."""
    rows = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def suite_rows(rows: list[dict]) -> list[dict]:
    """Measured suite rows (not smoke)."""
    return [r for r in rows if "name" in r and "op" in r and "tritonconv" in r and not r.get("smoke")]


def stem_of(rows: list[dict]) -> str:
    first = rows[0]
    device = re.sub(r"[^A-Za-z0-9]+", "_", first["device"]).strip("_")
    return f"{first['date'][:10]}_{device}_slot"


# --- (b) the table and the charts ---------------------------------------------------------------

def table(rows: list[dict]) -> str:
    """Markdown: per family and pass/layout, geomean device ratio (eager ratio) vs cuDNN, layers timed."""
    cell = defaultdict(list)
    for r in rows:
        if r.get("speedup_vs_cudnn"):
            cell[(FAMILY[r["op"]], r.get("pass", "forward"), r["layout"])].append(r)
    columns = [(p, lay) for p in PASSES for lay in LAYOUTS if any(k[1:] == (p, lay) for k in cell)]
    first = rows[0]
    head = (f"{first['device']}, torch {first['torch']}, Triton {first['triton']}, CUDA {first.get('cuda')}, "
            f"{first['date'][:10]}, {first['dtype']}: time(cuDNN) / time(tritonconv), geometric mean per family, "
            "device time (CUDA-graph replays) and, in brackets, eager time (calls issued one by one from Python, "
            "host included); n = layers timed.\n\n")
    lines = ["| family | " + " | ".join(f"{p.replace('_', ' ')} {LAYOUT_NAME[lay]}" for p, lay in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for fam in FAMILY.values():
        cells = []
        for p, lay in columns:
            group = cell.get((fam, p, lay), [])
            dev = geomean([r["speedup_vs_cudnn"] for r in group])
            eager = geomean([r["eager_speedup_vs_cudnn"] for r in group if r.get("eager_speedup_vs_cudnn")])
            cells.append(f"{dev:.2f}x ({eager:.2f}x) n={len(group)}" if group else "not timed")
        lines.append(f"| {fam} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def plot(rows: list[dict], directory: Path, stem: str) -> list[Path]:
    """One chart per pass and layout that has rows; returns the files written."""
    import matplotlib
    import matplotlib.patches
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    first = rows[0]
    for pas in PASSES:
        for layout in LAYOUTS:
            group = [r for r in rows if r.get("pass", "forward") == pas and r["layout"] == layout
                     and r.get("speedup_vs_cudnn")]
            if not group:
                continue
            group.sort(key=lambda r: list(FAMILY).index(r["op"]))  # grouped by family, in the suite's order
            fig, ax = plt.subplots(figsize=(8.5, 0.32 * len(group) + 1.6))
            y = list(range(len(group)))[::-1]
            colors = [f"C{list(FAMILY).index(r['op'])}" for r in group]
            ratios = [r["speedup_vs_cudnn"] for r in group]
            ax.barh(y, [v - 1 for v in ratios], left=1, color=colors, height=0.7)  # from 1.0 to the ratio
            eager = [(yy, r["eager_speedup_vs_cudnn"]) for yy, r in zip(y, group) if r.get("eager_speedup_vs_cudnn")]
            if eager:
                ax.plot([e[1] for e in eager], [e[0] for e in eager], "k.", markersize=5, label="eager (host included)")
            ax.axvline(1.0, color="k", lw=1)
            ax.set_xscale("log")
            values = ratios + [e[1] for e in eager]
            low, high = min(values + [0.5]) / 1.3, max(values + [2.0]) * 1.3
            ticks = [t for t in (0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if low <= t <= high]
            ax.set_xlim(low, high)
            ax.set_xticks(ticks, [f"{t:g}x" for t in ticks], fontsize=9)
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            handles = [matplotlib.patches.Patch(color=f"C{i}", label=fam) for i, fam in enumerate(FAMILY.values())
                       if any(FAMILY[r["op"]] == fam for r in group)]
            ax.set_yticks(y, [f"{r['name']} ({FAMILY[r['op']]})" for r in group], fontsize=9)
            ax.set_xlabel("time(cuDNN) / time(tritonconv)   (> 1: tritonconv faster)", fontsize=9)
            graph = all((r.get("tritonconv") or {}).get("timing") == "cuda_graph" for r in group)
            timing = ("bars: device time (CUDA-graph replays)" if graph else
                      "bars: calls timed one by one from Python (host-bound where a kernel is shorter than a call)")
            ax.set_title(f"{first['device']}, {first['dtype']}, {pas.replace('_', ' ')}, {LAYOUT_NAME[layout]}, "
                         f"{first['date'][:10]}\n{timing}", fontsize=10)
            ax.grid(axis="x", which="both", alpha=0.3)
            ax.legend(handles=handles + ax.get_legend_handles_labels()[0], fontsize=8, loc="upper left",
                      bbox_to_anchor=(1.01, 1.0), frameon=False)
            fig.tight_layout()
            path = directory / f"{stem}_{pas}_{layout}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    return written


def write_readme_table(markdown: str, readme: Path = ROOT / "README.md") -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"readout: {readme} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    readme.write_text(head + START + "\n" + markdown + END + rest.split(END, 1)[1])


# --- (c) the comparison -------------------------------------------------------------------------

def previous_rows(rows: list[dict], results: Path, exclude: set[Path]) -> tuple[str, dict]:
    """The newest earlier measured row of each (layer, pass, layout, dtype) in ``results`` (slot files first)."""
    date = rows[0]["date"]
    best: dict[tuple, tuple[str, dict]] = {}
    for path in sorted(results.glob("*.jsonl")):
        if path in exclude:
            continue
        for r in suite_rows(read_rows(path)):
            if r["date"] >= date or not r.get("speedup_vs_cudnn"):
                continue
            key = (r["name"], r.get("pass", "forward"), r["layout"], r["dtype"])
            if key not in best or best[key][1]["date"] <= r["date"]:
                best[key] = (path.name, r)
    return ", ".join(sorted({name for name, _ in best.values()})) or "none", {k: r for k, (_, r) in best.items()}


def comparison(rows: list[dict], before: dict) -> list[str]:
    """Markdown: each row's ratio to cuDNN beside the previous measurement's (its timing, and its device where another
    GPU measured it: each ratio is to cuDNN on its own GPU)."""
    lines = ["| layer | pass | layout | now (device) | now (eager) | before | change |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r.get("speedup_vs_cudnn"):
            continue
        key = (r["name"], r.get("pass", "forward"), r["layout"], r["dtype"])
        old = before.get(key)
        then = old["speedup_vs_cudnn"] if old else None
        eager = r.get("eager_speedup_vs_cudnn")
        lines.append(f"| {r['name']} | {key[1]} | {LAYOUT_NAME[r['layout']]} | {r['speedup_vs_cudnn']:.2f}x | "
                     + (f"{eager:.2f}x" if eager else "-") + " | "
                     + (f"{then:.2f}x ({old.get('tritonconv', {}).get('timing', 'host')}"
                        + (f", {old['device']}" if old.get("device", r.get("device")) != r.get("device") else "") + ")"
                        if then else "not measured")
                     + " | " + (f"{r['speedup_vs_cudnn'] / then:.2f}" if then else "-") + " |")
    return lines


def predictions(notes: Path = ROOT / "benchmarks" / "NOTES.md") -> list[dict]:
    """The rows of NOTES.md's "Predictions to check" table: id, layers, pass, layout, claim, why."""
    text = notes.read_text()
    section = text.split("## Predictions to check", 1)[1].split("\n## ", 1)[0]
    out = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and re.fullmatch(r"P\d+", cells[0]):
            layers = [n.strip("` ") for n in cells[1].split(",")]
            out.append({"id": cells[0], "layers": layers, "pass": cells[2], "layout": cells[3], "claim": cells[4].strip("`"),
                        "why": cells[5]})
    return out


def judge(prediction: dict, rows: list[dict]) -> tuple[str, str]:
    """("held" | "not held" | "not measured", the measured values) for one prediction on ``rows``."""
    metric, op, value = prediction["claim"].split()
    found = {}
    for r in rows:
        if (r["name"] in prediction["layers"] and r.get("pass", "forward") == prediction["pass"]
                and r["layout"] == prediction["layout"] and r.get(metric) is not None):
            found[r["name"]] = r[metric]
    if not found:
        return "not measured", "-"
    held = all(OPS[op](v, float(value)) for v in found.values())
    missing = [n for n in prediction["layers"] if n not in found]
    measured = ", ".join(f"{n} {v:.2f}" for n, v in found.items()) + (f"; not measured: {', '.join(missing)}" if missing else "")
    return ("held" if held else "not held") + (" (partly measured)" if missing else ""), measured


def outcome(folder: Path) -> list[str]:
    """Spec notebooks, tests and fuzz as the slot's files report them."""
    lines = []
    spec = folder / "spec.xml"
    if spec.is_file():
        cases = list(ET.parse(spec).getroot().iter("testcase"))
        bad = [c.get("classname", "?").removeprefix("spec_notebooks.") for c in cases
               if c.find("failure") is not None or c.find("error") is not None]
        lines.append(f"- spec notebooks on the GPU: {len(cases) - len(bad)} cells passed, {len(bad)} failed"
                     + (f" (in {', '.join(sorted(set(bad)))})" if bad else ""))
    else:
        lines.append("- spec notebooks on the GPU: no report (the step did not finish)")
    fuzz = [r for r in read_rows(folder / "fuzz.jsonl") if "seed" in r]
    if fuzz:
        wrong = [r["seed"] for r in fuzz if r.get("ok") is False or "ok" not in r]
        unrun = sum(r.get("ok", False) is None for r in fuzz)
        harness = [r["seed"] for r in fuzz if "harness" in r]
        conditioned = [r["seed"] for r in fuzz if r.get("ok") and r.get("by_floor")]
        lines.append(f"- fuzz: {len(fuzz)} random configurations, {len(wrong)} wrong" + (f" (seeds {wrong})" if wrong else "")
                     + (f", {len(harness)} of them the harness's own error (seeds {harness})" if harness else "")
                     + (f", {unrun} not run (a drawn config out of the GPU's resources)" if unrun else "")
                     + (f", {len(conditioned)} passed by their bias gradient's condition alone (seeds {conditioned})"
                        if conditioned else ""))
    log = folder / "slot.log"
    if log.is_file():
        summary = re.findall(r"^(?:\d+ (?:passed|failed).*) in [\d.]+s.*$", log.read_text(), re.M)
        lines += [f"- GPU tests: {s}" for s in summary[:1]]
        if "## direct launches differ" in log.read_text():
            lines.append("- direct launches differed from JITFunction.run's in the table: this slot measured with "
                         "TRITONCONV_DIRECT=0 (every launch through JITFunction.run)")
        cut = re.findall(r"^## exit (124|137)$", log.read_text(), re.M)
        if cut:
            lines.append(f"- {len(cut)} step(s) stopped at their deadline (their rows so far are kept)")
    return lines


def kernelbench_predicted(kb: list[dict], path: Path) -> list[str]:
    """The cost model's KernelBench predictions (``python -m benchmarks.costfit --predict``) against the slot's rows:
    per problem and dtype, predicted and measured tritonconv ms, and the speedups the prediction implied (against
    PyTorch's time measured before) beside those measured."""
    predicted = {(r["name"], r["dtype"]): r for r in read_rows(path)}
    pairs = [(r, predicted[r["name"], r["dtype"]]) for r in kb if (r["name"], r["dtype"]) in predicted]
    if not pairs:
        return []
    within = sum(1 / 1.5 <= p["predicted_ms"] / r["tritonconv"]["ms"] <= 1.5 for r, p in pairs)
    lines = ["", f"The cost model's predictions ({path.name}): within 1.5x of the measured device time on {within} of "
             f"{len(pairs)} problems (target: 80%).", ""]
    for dtype in sorted({r["dtype"] for r, _ in pairs}):
        mine = [(r, p) for r, p in pairs if r["dtype"] == dtype and p.get("speedup")]
        lines.append(f"- {dtype}: predicted faster than PyTorch on {sum(p['speedup'] > 1 for _, p in mine)} of {len(mine)}, "
                     f"measured faster on {sum(r['speedup'] > 1 for r, _ in mine)} of them")
    lines += ["", "| problem | dtype | predicted ms | measured ms | predicted / measured | speedup predicted | measured |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['name'][:40]} | {r['dtype']} | {p['predicted_ms']:.3f} | {r['tritonconv']['ms']:.3f} | "
              f"{p['predicted_ms'] / r['tritonconv']['ms']:.2f} | {p.get('speedup', float('nan')):.2f} | {r['speedup']:.2f} |"
              for r, p in pairs]
    return lines


def tuning_ranked(folder: Path, device: str) -> list[str]:
    """How the cost model ranked the candidates the slot's tuning timed (their times are in the cache file's
    entries, ``candidates``): what issue 34's pruned search rests on, and on the full searches its test
    (:func:`benchmarks.costfit.pruned_report`)."""
    from benchmarks import costfit
    from tritonconv import costmodel

    files = sorted(folder.glob("*__triton-*.json"))
    tuned = costfit.tuning_samples(files, device)
    if not tuned:
        return []
    rep = costfit.ranking_report(tuned, costmodel.device_for(device))
    splits = costfit.split_report(tuned, costmodel.device_for(device))
    pruned = costfit.pruned_report(tuned, costmodel.device_for(device))
    entries = {key: value for path in files for key, value in json.loads(path.read_text()).get("entries", {}).items()
               if key in {s["name"] for s in tuned}}
    nchw = [key for key in entries if key.split("|")[2] == "contiguous"]
    relaid = sorted(key for key in nchw if entries[key]["config"].get("relayout"))
    return ["", "## Tuning, against the cost model", "",
            f"{len(tuned)} candidates timed for {rep['problems']} problems; the one the model predicted fastest was "
            f"within 5% of the fastest timed on {rep['within_5pct']} (median {rep['median_ratio']:.3f}x).",
            "", f"Full searches (every candidate timed): {pruned['problems']}; the shortlist of the model's 5 best and the "
            f"baselines held a config within 5% of the full search's best on {pruned['within_5pct']} (target: 90%; "
            f"median {pruned['median_ratio']:.3f}x).",
            "", f"Weight gradients whose default split count the model moved from the heuristic's, both timed: "
            f"{splits['problems']}; the default faster on {splits['default_faster']} (the heuristic's time over the "
            f"default's, median {splits['median_ratio']:.3f}x).",
            "", f"NC(D)HW problems tuned: {len(nchw)}; won by a relayout config (activations copied channels innermost): "
            f"{len(relaid)}" + "".join(f"\n- `{key}`" for key in relaid)]


def readout(folder: Path, results: Path = RESULTS, cache_dir: Path = ROOT / "autotune_cache",
            readme: Path = ROOT / "README.md", notes: Path = ROOT / "benchmarks" / "NOTES.md",
            predictions_dir: Path = ROOT / "benchmarks" / "predictions", dry_run: bool = False) -> str:
    """Everything above for one slot's ``folder``; returns the markdown report."""
    every = suite_rows(read_rows(folder / "suite.jsonl"))
    rows = [r for r in every if not r["dtype"].startswith("float8")]  # fp8 rows: a section of their own
    quantised = [r for r in every if r["dtype"].startswith("float8")]
    if not rows:
        raise SystemExit(f"readout: no measured suite rows in {folder / 'suite.jsonl'}")
    stem = stem_of(rows)
    targets = {part: results / f"{stem}_{part}.jsonl" for part in PARTS}
    source, before = previous_rows(rows, results, exclude=set(targets.values()))
    tuned = {(r["name"], r["pass"], r["layout"]): r for r in suite_rows(read_rows(folder / "tuned.jsonl"))}
    latest = [tuned.get((r["name"], r["pass"], r["layout"]), r) for r in rows]  # tuned rows replace the first timing
    report = [f"# GPU slot {stem}", "", *outcome(folder), "", "## Suite", "", table(latest),
              f"## Each layer against the previous measurement ({source})", "", *comparison(latest, before), "",
              "## Predictions (benchmarks/NOTES.md)", "", "| id | layers | pass | layout | claim | measured | verdict |",
              "|---|---|---|---|---|---|---|"]
    for p in predictions(notes):
        verdict, measured = judge(p, latest)
        report.append(f"| {p['id']} | {', '.join(p['layers'])} | {p['pass']} | {p['layout']} | `{p['claim']}` | "
                      f"{measured} | {verdict} |")
    predicted = {(r["name"], r["pass"], r["layout"]): r
                 for r in read_rows(predictions_dir / f"{rows[0]['device'].replace(' ', '_')}.jsonl")}
    pairs = [(r, predicted[key]) for r in latest for key in [(r["name"], r.get("pass", "forward"), r["layout"])]
             if key in predicted and (r.get("tritonconv") or {}).get("ms")]
    if pairs:
        ratios = [p["predicted_ms"] / r["tritonconv"]["ms"] for r, p in pairs]
        within = sum(1 / 1.5 <= q <= 1.5 for q in ratios)
        by_bound: dict[str, list[float]] = {}
        for (_, p), q in zip(pairs, ratios):
            by_bound.setdefault(p.get("bound", "?"), []).append(q)
        report += ["", "## The cost model's predictions (benchmarks/predictions/), against this slot", "",
                   f"Within 1.5x of the measured device time: {within} of {len(pairs)} rows (target: 80%).", "",
                   "By what the model said bounds each launch (a term whose rows it over- or under-predicts alike is the "
                   "constant to refit: `Device.l2_bandwidth` for L2 fill, `issue_rate` for issue):", "",
                   *[f"- {bound}: {len(qs)} rows, median predicted / measured {statistics.median(qs):.2f}"
                     for bound, qs in sorted(by_bound.items())], "",
                   "| layer | pass | layout | bound | predicted ms | measured ms | predicted / measured |",
                   "|---|---|---|---|---|---|---|"]
        report += [f"| {r['name']} | {r.get('pass', 'forward')} | {LAYOUT_NAME[r['layout']]} | {p.get('bound', '?')} | "
                   f"{p['predicted_ms']:.4f} | {r['tritonconv']['ms']:.4f} | {q:.2f} |" for (r, p), q in zip(pairs, ratios)]
    if quantised:
        report += ["", "## FP8 forward (tritonconv.fp8, e4m3, channels-last) against cuDNN in bf16", ""]
        for fam in FAMILY.values():
            mine = [r for r in quantised if FAMILY[r["op"]] == fam and r.get("speedup_vs_cudnn")]
            if mine:
                report.append(f"- {fam}: {len(mine)} layers, geomean {geomean([r['speedup_vs_cudnn'] for r in mine]):.2f}x "
                              f"(quantisation error vs fp32: up to {max(r['tritonconv']['rel_err'] for r in mine):.3f})")
    kb = [r for r in read_rows(folder / "kernelbench.jsonl") if r.get("speedup")]
    if kb:
        report += ["", "## KernelBench level 1", ""]
        for dtype in sorted({r["dtype"] for r in kb}):
            mine = [r for r in kb if r["dtype"] == dtype]
            harness = [r["kernelbench_speedup"] for r in mine if r.get("kernelbench_speedup")]
            report.append(f"- {dtype}: {len(mine)} problems timed, fast_1 {sum(r['speedup'] > 1 for r in mine)}, geomean "
                          f"{geomean([r['speedup'] for r in mine]):.2f}x (device time); as KernelBench's harness times: "
                          f"geomean {geomean(harness):.2f}x over {len(harness)}")
        report += kernelbench_predicted(kb, predictions_dir / f"{kb[0]['device'].replace(' ', '_')}_kernelbench.jsonl")
    report += tuning_ranked(folder, rows[0]["device"])
    e2e = [r for r in read_rows(folder / "e2e.jsonl") if r.get("speedup")]
    steps = [r for r in e2e if r.get("suite") != "e2e-inference"]
    if steps:
        report += ["", "## Whole networks: a training step under tritonconv.enabled() vs torch", ""]
        report += [f"- {r['model']} {r['input']} {r['dtype']}: torch {r['torch_ms']:.1f} ms, tritonconv "
                   f"{r['tritonconv_ms']:.1f} ms ({r['speedup']:.2f}x); routed {r['routed']}, left {r['left'] or 'none'}; "
                   f"loss rel. diff {r['loss_rel_diff']:.1e}" for r in steps]
    inference = [r for r in e2e if r.get("suite") == "e2e-inference"]
    if inference:
        report += ["", "## Whole networks: inference, torch vs tritonconv.enabled() vs tritonconv.fuse", ""]
        report += [f"- {r['model']} {r['input']} {r['dtype']}: torch {r['torch_ms']:.1f} ms, routed {r['routed_ms']:.1f} "
                   f"ms, fused {r['tritonconv_ms']:.1f} ms ({r['speedup']:.2f}x torch's, {r['fusion_gain']:.2f}x the routed "
                   f"run's); {r['folded']} batch norms folded, {r['fused']} activations fused; output rel. diff "
                   f"{r['out_rel_err']:.1e}" for r in inference]
    text = "\n".join(report) + "\n"
    if dry_run:
        return text
    results.mkdir(parents=True, exist_ok=True)
    (results / "logs").mkdir(exist_ok=True)
    for part, target in targets.items():
        if (folder / f"{part}.jsonl").is_file():  # suite.jsonl keeps its fp8 rows
            shutil.copy(folder / f"{part}.jsonl", target)
    for name, suffix in (("slot.log", "log.log"), ("spec.xml", "spec.xml")):
        if (folder / name).is_file():
            shutil.copy(folder / name, results / "logs" / f"{stem}_{suffix}")
    for cache_file in folder.glob("*__triton-*.json"):
        shutil.copy(cache_file, cache_dir / cache_file.name)
    plot(latest, results, stem)
    write_readme_table(table(latest), readme)
    (results / f"{stem}_readout.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.readout", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, nargs="?", help="the files one slot run wrote ($OUT of benchmarks/gpu_session.sh)")
    p.add_argument("--dry-run", action="store_true", help="print the report; write nothing")
    p.add_argument("--draw", nargs="+", type=Path, default=[],
                   help="only (re)draw the charts of these committed row files, beside them (<file stem>_<pass>_<layout>.png)")
    args = p.parse_args(argv)
    for path in args.draw:
        for chart in plot(suite_rows(read_rows(path)), path.parent, path.stem):
            print(f"drew {chart}")
    if args.folder is None and not args.draw:
        p.error("give a slot's folder, or --draw FILES")
    if args.folder is not None:
        print(readout(args.folder, dry_run=args.dry_run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
