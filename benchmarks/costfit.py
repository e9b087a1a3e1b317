"""``python -m benchmarks.costfit``: fit :mod:`tritonconv.costmodel` on measured suite rows; predict the next slot.

    python -m benchmarks.costfit                     # fit on benchmarks/results/*.jsonl, print each row and the errors
    python -m benchmarks.costfit --write             # also store the constants and the per-row fit (notebook 06)
    python -m benchmarks.costfit --restate           # the per-row fit with the stored constants (the model changed)
    python -m benchmarks.costfit --predict           # predicted device times of every row the next GPU slot times
                                                     # (the suite's, and KernelBench's beside PyTorch's last times),
                                                     # on each GPU a slot runs on (SLOT_DEVICES)
    python -m benchmarks.costfit --heuristic-check   # the heuristic's config against the model's best, per problem
                                                     # (--layout contiguous: NC(D)HW, and its best in place)

Each measured row (``benchmarks.run``) names the kernels its call launched and their configs; with the
layer's shapes they are the model's inputs, and the layer's time is the sum of its launches'. Rows
timed call by call whose time is within 1.5x of the host's cost of their launches (``--host-ms`` per
launch, 0.0833 ms on the H200 session of 2026-11-26, ``benchmarks.dispatch``) measured the host, not
the kernels: they are marked and left out of the fit. The fit adjusts the tensor-core rate, the
bandwidth and the launch cost (log-space least squares, ``scipy.optimize.least_squares``); the FMA
rate keeps its datasheet value unless depthwise rows are in the fit, the L2 fill and issue rates theirs unless at
least three device-timed rows are bound by them (:func:`fit`). Its honesty: every layer is
also predicted by a fit without that layer's rows (leave-one-layer-out), and both errors are
printed (median ratio, share within 1.5x).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from pathlib import Path

from scipy.optimize import least_squares

from tritonconv import cache, costmodel, shapes, tune, tuning
from tritonconv.geometry import Config, Problem

ROOT = Path(__file__).resolve().parent
FIT_ROWS = ROOT / "results" / "static" / "costmodel-fit.jsonl"
PREDICTIONS = ROOT / "predictions"
PASS_KINDS = {"forward": "conv", "input_grad": "conv_t", "weight_grad": "conv_wgrad"}
SLOT_TRITON = "3.6.0"  # the GPU machine's Triton: whose shipped cache file the slot's calls read
SLOT_DEVICES = ("NVIDIA H200", "NVIDIA H100 80GB HBM3")  # the GPU machines a slot runs on
TUNED_PASS = {kind: pas for pas, k in PASS_KINDS.items() for kind in (k, tuning.DEPTHWISE_KIND[k])}  # a kind's pass
HOST_MS = 0.0833


def stages(suite: dict) -> dict[str, list[dict]]:
    """Layer name -> its convolutions' arguments (a (2+1)D layer: spatial, then temporal)."""
    out: dict[str, list[dict]] = {}
    for name, prob in tune.suite_problems(suite):
        out.setdefault(name.split(":")[0], []).append(prob)
    return out


def problem_of(kind: str, dtype: str, layout: str, prob: dict, as_run: bool = True) -> Problem:
    """The problem a launch ran; ``as_run``: stems packed and axes a kernel of 1 passes over merged, as the dispatch
    has run them since 2026-11-29 (rows measured since say so: their configs record the ``ndim`` run)."""
    if shapes.is_depthwise(prob["input_shape"], prob["weight_shape"], prob["groups"]) and not kind.startswith("conv_dw"):
        kind = tuning.DEPTHWISE_KIND[kind]
    return Problem.of(kind, dtype, layout, prob["input_shape"], prob["weight_shape"], prob["stride"], prob["padding"],
                      prob["dilation"], prob["groups"], as_run=as_run)


def launches(row: dict, layers: dict) -> list[tuple[Problem, Config]] | None:
    """The (problem, config) of every launch a measured row's tritonconv call made, or None if unknown."""
    configs = (row.get("tritonconv") or {}).get("configs")
    convs = layers.get(row["name"])
    if not configs or not convs:
        return None
    order = convs[::-1] if row.get("pass") == "input_grad" else convs  # the input gradient runs back to front
    if len(configs) != len(order):
        return None  # e.g. a fused (2+1)D launch: not modelled
    out = []
    for cfg, prob in zip(configs, order):
        fields = {f.name for f in dataclasses.fields(Config)}
        try:
            out.append((problem_of(cfg["kind"], row["dtype"], row["layout"], prob, as_run="ndim" in cfg),
                        Config(**{k: v for k, v in cfg.items() if k in fields})))
        except ValueError:
            return None
    return out


def host_bound(row: dict, count: int, host_ms: float) -> bool:
    """A row timed call by call within 1.5x of its launches' host cost measured the host."""
    timing = row["tritonconv"].get("timing")
    return timing != "cuda_graph" and row["tritonconv"]["ms"] < 1.5 * host_ms * count


def samples(rows: list[dict], suite: dict, host_ms: float) -> list[dict]:
    layers = stages(suite)
    out = []
    for row in rows:
        if not (row.get("tritonconv") or {}).get("ms"):
            continue
        found = launches(row, layers)
        if found is None:
            continue
        out.append({"name": row["name"], "pass": row.get("pass", "forward"), "layout": row["layout"],
                    "date": row["date"], "device": row["device"], "measured_ms": row["tritonconv"]["ms"],
                    "host_bound": host_bound(row, len(found), host_ms), "launches": found,
                    "call_by_call": row["tritonconv"].get("timing") != "cuda_graph"})
    return out


def tuning_samples(cache_files: list[Path], device: str) -> list[dict]:
    """Every candidate a GPU tuning of ``device`` timed from CUDA graph replays (the cache entries' ``candidates``,
    :func:`tritonconv.cache.entry`) as a sample of one launch, named by its problem's key (a problem's candidates
    are left out together)."""
    out = []
    for path in cache_files:
        data = json.loads(path.read_text())
        if data.get("device") != device:
            continue
        for key, value in data.get("entries", {}).items():
            if value.get("timing") != "cuda_graph" or not value.get("candidates"):
                continue
            problem = Problem.from_key(key)
            for timed in value["candidates"]:
                if timed["ms"] and math.isfinite(timed["ms"]):
                    out.append({"name": key, "pass": TUNED_PASS[problem.kind], "layout": problem.layout, "date": "",
                                "device": device, "measured_ms": timed["ms"], "host_bound": False, "call_by_call": False,
                                "launches": [(problem, Config.from_dict(timed["config"]))], "source": "tuning",
                                "search": value.get("search")})
    return out


def pruned_report(tuned: list[dict], device: costmodel.Device, top: int = 5) -> dict:
    """Issue 34's test of a pruned search, on the tunings that timed every candidate (:func:`tuning_samples` of
    entries whose ``search`` is ``"full"``): per problem, the best time among the candidates a shortlist of the
    model's ``top`` (and the baselines, :func:`tritonconv.tuning.shortlist`) holds over the best of all; problems,
    those within 5%, their median ratio."""
    by_problem: dict[str, list[dict]] = {}
    for s in tuned:
        if s.get("search") == "full":
            by_problem.setdefault(s["name"], []).append(s)
    model, ratios = costmodel.predicting(device), []
    for group in by_problem.values():
        problem = group[0]["launches"][0][0]
        timed = {s["launches"][0][1]: s["measured_ms"] for s in group}
        listed = tuning.shortlist(problem, list(timed), model, top, device.sms, True)
        ratios.append(min(timed[c] for c in listed if c in timed) / min(timed.values()))
    return {"problems": len(ratios), "within_5pct": sum(r <= 1.05 for r in ratios),
            "median_ratio": statistics.median(ratios) if ratios else math.nan}


def ranking_report(tuned: list[dict], device: costmodel.Device) -> dict:
    """How the model ranked what tunings timed (:func:`tuning_samples`): per problem, the measured time of the
    candidate it predicted fastest over the fastest measured; problems, those within 5%, their median ratio."""
    by_problem: dict[str, list[dict]] = {}
    for s in tuned:
        by_problem.setdefault(s["name"], []).append(s)
    ratios = []
    for group in by_problem.values():
        pick = min(group, key=lambda s: predicted_ms(s, device))
        ratios.append(pick["measured_ms"] / min(s["measured_ms"] for s in group))
    return {"problems": len(ratios), "within_5pct": sum(r <= 1.05 for r in ratios),
            "median_ratio": statistics.median(ratios) if ratios else math.nan}


def split_report(tuned: list[dict], device: costmodel.Device) -> dict:
    """The default's split counts against the heuristic's (:func:`tritonconv.tuning.default`, the model's pick for the
    heuristic's tiles), where a tuning timed both (:func:`tritonconv.tuning.shortlist` times both): per problem the
    heuristic's measured time over the default's; problems, those the default ran faster, their median ratio."""
    by_problem: dict[str, dict[Config, float]] = {}
    problems = {}
    for s in tuned:
        (problem, config), = s["launches"]
        by_problem.setdefault(s["name"], {})[config] = s["measured_ms"]
        problems[s["name"]] = problem
    ratios = []
    for name, times in by_problem.items():
        pair = tuning.baselines(problems[name], device.sms, True, costmodel.predicting(device))  # [default, heuristic's]
        if len(pair) == 2 and all(cfg in times for cfg in pair):
            ratios.append(times[pair[1]] / times[pair[0]])
    return {"problems": len(ratios), "default_faster": sum(r > 1 for r in ratios),
            "median_ratio": statistics.median(ratios) if ratios else math.nan}


def predicted_ms(sample: dict, device: costmodel.Device, host_ms: float = 0.0) -> float:
    """The sample's predicted time: its launches' device time, plus for a row timed call by call ``host_ms`` per
    launch (the part of the host's cost that the timing did not hide; fitted)."""
    device_ms = 1e3 * sum(costmodel.predict(p, c, device) for p, c in sample["launches"])
    return device_ms + host_ms * len(sample["launches"]) if sample["call_by_call"] else device_ms


def log_errors(samples: list[dict], device: costmodel.Device, host_ms: float = 0.0) -> list[float]:
    """Per sample, the log of its predicted time (:func:`predicted_ms`) over its measured one: what :func:`fit`
    minimises the squares of."""
    return [math.log(predicted_ms(s, device, host_ms) / s["measured_ms"]) for s in samples]


TERM_CONSTANTS = {"L2 fill": "l2_bandwidth", "issue": "issue_rate"}
"""The model's terms whose constants are unfitted until device-timed rows are bound by them (:func:`fit`)."""
MIN_BOUND_ROWS = 3
BOUND_MARGIN = 1.5


def bound_by(problem: Problem, config: Config, device: costmodel.Device, term: str) -> bool:
    """Whether ``term`` bounds a launch by :data:`BOUND_MARGIN` over every other of its terms
    (:func:`tritonconv.costmodel.bounds`): a row whose terms are near each other would let a fit trade one constant for
    another."""
    t = costmodel.bounds(problem, config, device)
    return t[term] >= BOUND_MARGIN * max(v for k, v in t.items() if k != term)


def fit(fitted: list[dict], start: costmodel.Device) -> tuple[costmodel.Device, float]:
    """The rates, bandwidth and launch cost minimising the squared log error over ``fitted``; a kernel's rate
    only when ``fitted`` has launches of it (the others keep ``start``'s); the L2 fill rate and the issue rate where
    at least :data:`MIN_BOUND_ROWS` device-timed rows (CUDA graph replays, not calls timed one by one, whose host time
    hides the kernels') have a launch bound by that term (:func:`bound_by`, :data:`TERM_CONSTANTS`); and, when rows timed
    call by call are among them, the host milliseconds per launch those timings added (else 0)."""
    used = {costmodel.rate_of(p, c)[0] for s in fitted for p, c in s["launches"]}
    names = ["bandwidth", "t0"] + sorted(used)
    for term, name in TERM_CONSTANTS.items():  # an unfitted term's constant, where device-timed rows are bound by it
        bound = [s for s in fitted if not s["call_by_call"] and any(bound_by(p, c, start, term) for p, c in s["launches"])]
        if len(bound) >= MIN_BOUND_ROWS:
            names.append(name)
    for name in costmodel.UNFITTED_SHARES:  # NC(D)HW rows measured: their rate fitted, from the pointer kernels'
        if name in used:  # (else it stays None)
            start = dataclasses.replace(start, **{name: getattr(start, name) or start.mma_macs})

    host = any(s["call_by_call"] for s in fitted)

    def device(theta):
        return dataclasses.replace(start, **{n: float(math.exp(v)) for n, v in zip(names, theta)})

    def residuals(theta):
        dev, extra = device(theta[:len(names)]), theta[len(names)] if host else 0.0
        return log_errors(fitted, dev, extra)

    theta0 = [math.log(getattr(start, n)) for n in names]
    low = {"bandwidth": math.log(0.5), "t0": -3, "l2_bandwidth": -2.0, "issue_rate": -1.4}  # rates: down to 1/50
    high = {"t0": 1.2, "l2_bandwidth": 0.7}  # t0 <= 10 us; the L2's fill up to twice the 64 bytes a clock assumed
    bounds = ([math.log(getattr(start, n)) + low.get(n, -4) for n in names] + [0.0] * host,
              [math.log(getattr(start, n)) + high.get(n, 0.01) for n in names] + [0.2] * host)
    theta = least_squares(residuals, theta0 + [0.03] * host, bounds=bounds).x
    return device(theta[:len(names)]), float(theta[len(names)]) if host else 0.0


def evaluate(all_samples: list[dict], start: costmodel.Device,
             kept: tuple[costmodel.Device, float] | None = None) -> tuple[costmodel.Device, float, list[dict]]:
    """The fit on every kernel-bound sample (constants, host ms per call-by-call launch), and per sample its
    in-fit and left-out (its layer excluded) prediction; with ``kept``, those constants and host ms in place of the
    fit's (the left-out fits still made)."""
    used = [s for s in all_samples if not s["host_bound"]]
    device, extra = kept or fit(used, start)
    loo = {}
    for name in sorted({s["name"] for s in used}):
        others = [s for s in used if s["name"] != name]
        loo[name] = fit(others, start) if others else (device, extra)
    rows = []
    for s in all_samples:
        row = {k: v for k, v in s.items() if k != "launches"}
        row["kernels"] = [p.kind + (" tma" if c.tile_h else "") for p, c in s["launches"]]
        row["device_ms"] = predicted_ms({**s, "call_by_call": False}, device)  # the launches alone (a graph replay)
        row["predicted_ms"] = predicted_ms(s, device, extra)  # as this row was timed
        if not s["host_bound"]:
            row["left_out_ms"] = predicted_ms(s, *loo[s["name"]])
        rows.append(row)
    return device, extra, rows


def stored_host_ms(found: list[dict]) -> float:
    """The host milliseconds per call-by-call launch of the stored fit (:data:`FIT_ROWS`): a row timed call by call's
    predicted time over its launches' device time, per launch."""
    stored = {r["name"]: r for r in map(json.loads, FIT_ROWS.read_text().splitlines())}
    s = next(s for s in found if s["call_by_call"] and s["name"] in stored)
    return (stored[s["name"]]["predicted_ms"] - stored[s["name"]]["device_ms"]) / len(s["launches"])


def summary(rows: list[dict], key: str) -> str:
    ratios = [r[key] / r["measured_ms"] for r in rows if key in r and not r["host_bound"]]
    if not ratios:
        return "no kernel-bound rows"
    within = sum(1 / 1.5 <= q <= 1.5 for q in ratios)
    return (f"{len(ratios)} rows: median predicted/measured {statistics.median(ratios):.2f}, "
            f"median |log2| {statistics.median(abs(math.log2(q)) for q in ratios):.2f}, within 1.5x {within}/{len(ratios)}")


def layer_seconds(kind: str, dtype: str, layout: str, prob: dict, device: costmodel.Device) -> tuple[float, Config]:
    """Predicted device seconds of one convolution's pass (packing launches included) and the config a GPU call
    would use: the cache shipped for the GPU machine's Triton (:data:`SLOT_TRITON`, whatever Triton runs here),
    else the default (:func:`tritonconv.costmodel.default`); no tuning."""
    written = problem_of(kind, dtype, layout, prob, as_run=False)
    hit = cache.lookup(device.name, written.as_run(), SLOT_TRITON)
    cfg = hit[0] if hit else costmodel.default(written.as_run(), device, tma=True)
    return costmodel.pass_seconds(written, cfg, device), cfg


def predictions(suite: dict, device: costmodel.Device, dtype: str = "bfloat16") -> list[dict]:
    """Predicted device ms of every suite layer, pass and layout the GPU slot times, with its configs and what the
    model says bounds each launch (:func:`tritonconv.costmodel.bound`; the readout groups its errors by it)."""
    out = []
    for name, convs in stages(suite).items():
        for pas, kind in PASS_KINDS.items():
            for layout in ("channels_last", "contiguous"):
                order = convs[::-1] if pas == "input_grad" else convs
                timed = [layer_seconds(kind, dtype, layout, prob, device) for prob in order]
                bounds = [costmodel.bound(problem_of(kind, dtype, layout, prob), cfg, device)
                          for prob, (_, cfg) in zip(order, timed)]
                out.append({"device": device.name, "name": name, "pass": pas, "layout": layout, "dtype": dtype,
                            "predicted_ms": 1e3 * sum(t for t, _ in timed), "configs": [vars(c) for _, c in timed],
                            "bound": "+".join(bounds)})
    return out


def kernelbench_predictions(device: costmodel.Device, measured: list[dict],
                            dtypes: tuple[str, ...] = ("bfloat16", "float32")) -> list[dict]:
    """Predicted device ms of every KernelBench level 1 problem the GPU slot times (NCHW inputs, as its harness
    makes them; a problem's layers summed; fp32 in IEEE products, as the slot runs it), beside PyTorch's latest
    time in ``measured`` (rows of ``benchmarks.kernelbench`` on ``device``) where there is one: ``speedup`` is
    PyTorch's measured time over the predicted one."""
    from benchmarks import kernelbench

    layers: dict[str, list[tuple[str, dict]]] = {}
    for name, prob, transposed in tune.kernelbench_problems(json.loads(kernelbench.SUITE.read_text())):
        layers.setdefault(name.split(":")[0], []).append(("conv_t" if transposed else "conv", prob))
    torch_ms = {(r["name"], r["dtype"]): (r["torch"]["ms"], r["date"][:10]) for r in sorted(measured, key=lambda r: r["date"])
                if r.get("device") == device.name and not r.get("smoke") and (r.get("torch") or {}).get("ms")}
    out = []
    for dtype in dtypes:
        for name, convs in layers.items():
            timed = [layer_seconds(kind, dtype, "contiguous", prob, device) for kind, prob in convs]
            row = {"device": device.name, "suite": "kernelbench", "name": name, "dtype": dtype,
                   "predicted_ms": 1e3 * sum(t for t, _ in timed), "configs": [vars(c) for _, c in timed]}
            if (name, dtype) in torch_ms:
                ms, date = torch_ms[name, dtype]
                row.update(torch_ms=ms, torch_measured=date, speedup=ms / row["predicted_ms"])
            out.append(row)
    return out


def heuristic_check(suite: dict, device: costmodel.Device, layout: str = "channels_last") -> list[dict]:
    """Per suite problem (bf16, ``layout``, each kernel kind): the default config's predicted time (the heuristic's, a
    weight gradient's split count ranked: :func:`tritonconv.costmodel.default`) against the model's best
    candidate's, and (NC(D)HW) against its best that reads the activations in place (no relayout copy)."""
    out = []
    for name, prob in tune.suite_problems(suite):
        for kind in PASS_KINDS.values():
            problem = problem_of(kind, "bfloat16", layout, prob)
            heuristic = costmodel.default(problem, device, True)
            model = costmodel.predicting(device)
            ranked = tuning.ranked(problem, tuning.candidates(problem, tma=True, sm_count=device.sms, predict=model), model)
            in_place = next((c for c in ranked if not c.relayout), heuristic)
            h, b, i = (costmodel.predict(problem, c, device) for c in (heuristic, ranked[0], in_place))
            out.append({"name": name, "kind": problem.kind, "heuristic_ms": 1e3 * h, "model_best_ms": 1e3 * b,
                        "ratio": h / b, "best": vars(ranked[0]), "in_place_ms": 1e3 * i, "in_place_ratio": h / i})
    return out


def start(name: str) -> costmodel.Device:
    """Where a fit of the device called ``name`` starts: :data:`tritonconv.costmodel.DATASHEET`, carried to it where
    the model has its datasheet (:data:`tritonconv.costmodel.SHEETS`), else renamed. The constants a fit leaves
    (those of terms too few rows are bound by) keep these values."""
    if name in costmodel.SHEETS:
        return costmodel.carried(costmodel.DATASHEET, name)
    return dataclasses.replace(costmodel.DATASHEET, name=name)


def prediction_path(device: str, suite: str = "") -> Path:
    """``predictions/<device>.jsonl`` (the suite's rows) or ``predictions/<device>_<suite>.jsonl``."""
    return PREDICTIONS / f"{device.replace(' ', '_')}{'_' + suite if suite else ''}.jsonl"


def load_rows(paths: list[Path]) -> list[dict]:
    rows = []
    for path in paths:
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "speedup_vs_cudnn" in row and not row.get("smoke"):
                rows.append(row)
    return rows


def kernelbench_rows(results: Path = ROOT / "results") -> list[dict]:
    """Every committed KernelBench row (``benchmarks.kernelbench``'s files and the slots' copies of them)."""
    rows = []
    for path in sorted(results.glob("*kernelbench*.jsonl")):
        rows += [r for line in path.read_text().splitlines() if line.startswith("{")
                 for r in [json.loads(line)] if r.get("suite") == "kernelbench-level1-conv"]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.costfit", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", type=Path, help="measured rows (default: benchmarks/results/*.jsonl)")
    p.add_argument("--suite", type=Path, default=ROOT / "shapes.json")
    p.add_argument("--device", help="the rows' device (and the constants' name); default: the newest rows' device "
                   f"(--predict: each of {', '.join(SLOT_DEVICES)})")
    p.add_argument("--host-ms", type=float, default=HOST_MS, help="host cost of one call-by-call launch, ms")
    p.add_argument("--write", action="store_true", help="store the constants (autotune_cache/costmodel/) and the per-row fit")
    p.add_argument("--restate", action="store_true",
                   help="rewrite the per-row fit with the stored constants (after a change of the model's form)")
    p.add_argument("--predict", action="store_true", help=f"write {PREDICTIONS.name}/<device>.jsonl for the next slot")
    p.add_argument("--heuristic-check", action="store_true", help="heuristic config vs the model's best, per problem")
    p.add_argument("--layout", choices=("channels_last", "contiguous"), default="channels_last",
                   help="the activations' layout --heuristic-check takes (contiguous: NC(D)HW)")
    args = p.parse_args(argv)
    suite = json.loads(args.suite.read_text())
    files = args.files or sorted((ROOT / "results").glob("*.jsonl"))
    measured = load_rows(files)
    name = args.device or max(measured, key=lambda r: r["date"], default={"device": SLOT_DEVICES[0]})["device"]
    if args.heuristic_check:
        checks = heuristic_check(suite, costmodel.device_for(name), args.layout)
        nc = args.layout == "contiguous"
        for c in checks:
            in_place = f"  in place {c['in_place_ms']:8.4f} ms ({c['in_place_ratio']:.2f}x)" if nc else ""
            print(f"{c['name']:>24} {c['kind']:>13}  heuristic {c['heuristic_ms']:8.4f} ms  model's best "
                  f"{c['model_best_ms']:8.4f} ms  ({c['ratio']:.2f}x){in_place}")
        print(f"{sum(c['ratio'] <= 1.1 for c in checks)}/{len(checks)} heuristic configs within 10% of the model's best"
              + (f", {sum(c['in_place_ratio'] <= 1.1 for c in checks)} of its best in place" if nc else ""))
        return 0
    if args.predict:
        PREDICTIONS.mkdir(exist_ok=True)
        for name in [args.device] if args.device else SLOT_DEVICES:
            device = costmodel.device_for(name)
            print(f"{name}: the cost model's constants {costmodel.provenance(name)}")
            kb = kernelbench_predictions(device, kernelbench_rows())
            for path, rows in ((prediction_path(name), predictions(suite, device)),
                               (prediction_path(name, "kernelbench"), kb)):
                path.write_text("".join(json.dumps(r) + "\n" for r in rows))
                print(f"wrote {len(rows)} predictions to {path}")
            for dtype in sorted({r["dtype"] for r in kb if r.get("speedup")}):
                mine = [r for r in kb if r["dtype"] == dtype and r.get("speedup")]
                print(f"KernelBench {dtype}: predicted faster than PyTorch's measured time on "
                      f"{sum(r['speedup'] > 1 for r in mine)} of {len(mine)}")
        return 0
    rows = [r for r in measured if r["device"] == name]
    tuned = tuning_samples(sorted(cache.shipped_dir().glob("*.json")), name)
    found = samples(rows, suite, args.host_ms) + tuned
    kept = (costmodel.device_for(name), stored_host_ms(found)) if args.restate else None
    device, extra, fitted = evaluate(found, start(name), kept)
    for r in fitted:
        flag = "host-bound (not fitted)" if r["host_bound"] else f"left out {r['left_out_ms']:.4f} ms"
        print(f"{r['name']:>18} {r['pass']:>11} {r['layout']:>13} measured {r['measured_ms']:.4f} ms  "
              f"predicted {r['predicted_ms']:.4f} ms  {flag}")
    print(f"fitted: {device}; rows timed call by call: {extra * 1e3:.0f} us of host time per launch on top")
    print(f"in the fit: {summary(fitted, 'predicted_ms')}")
    print(f"left out (leave-one-layer-out): {summary(fitted, 'left_out_ms')}")
    if tuned:
        rep = ranking_report(tuned, device)
        print(f"tunings: {len(tuned)} timed candidates of {rep['problems']} problems; the model's pick among each "
              f"tuning's within 5% of its fastest on {rep['within_5pct']} (median {rep['median_ratio']:.3f}x)")
    if args.write:
        path = costmodel.fitted_path(device.name)
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(device), indent=1, sort_keys=True) + "\n")
        FIT_ROWS.write_text("".join(json.dumps(r) + "\n" for r in fitted))
        print(f"wrote {path} and {FIT_ROWS}")
    elif args.restate:
        FIT_ROWS.write_text("".join(json.dumps(r) + "\n" for r in fitted))
        print(f"wrote {FIT_ROWS} with the stored constants")
    return 0


if __name__ == "__main__":
    sys.exit(main())
