"""The benchmark harness keeps working on CPU (--smoke): checks run, rows and plot are written."""

import json
import os
import re
import subprocess

import torch
import torch.nn.functional as F

import tritonconv
from benchmarks import dispatch, run
from tritonconv import cache as tc_cache
from tritonconv import geometry, shapes, tune, tuning
from tritonconv import tuning as tc_tuning


def test_meet_bytes_are_set_for_the_run_and_recorded(tmp_path):
    """``--meet-bytes 0``: the run's weight gradients add every split's partials by a second launch; each row records
    the setting, and the library's own comes back after the run."""
    from tritonconv import geometry

    default = geometry.MEET_BYTES
    assert run.main(["--smoke", "--dtype", "bf16", "--layout", "channels_last", "--ops", "conv1d", "--names", "tcn_k3",
                     "--passes", "weight_grad", "--meet-bytes", "0", "--out", str(tmp_path)]) == 0
    (jsonl,) = tmp_path.glob("*.jsonl")
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert rows and all(r["meet_bytes"] == 0 and r["tritonconv"]["ok"] for r in rows)
    assert geometry.MEET_BYTES == default


def test_smoke_run_writes_checked_rows(tmp_path):
    assert run.main(["--smoke", "--dtype", "bf16", "--layout", "channels_last", "--ops", "conv1d", "conv2plus1d",
                     "--out", str(tmp_path)]) == 0
    (jsonl,) = tmp_path.glob("*.jsonl")
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(rows) == 6 + 3
    assert [r["name"] for r in rows[:4]] == ["tcn_k3", "r2plus1d18_l1", "tcn_k3_d8", "r2plus1d18_l2"]  # families in turn
    for row in rows:
        assert row["smoke"] and "interpreter smoke" in row["device"] and row["torch"] == torch.__version__
        assert row["tritonconv"]["ok"] and row["tritonconv"]["ms"] > 0 and row["speedup_vs_cudnn"] > 0
    assert all("cudnn_full3d" in r and r["tritonconv_fused"]["ok"] and r["speedup_vs_tritonconv_fused"] > 0
               for r in rows if r["op"] == "conv2plus1d")  # the fused launch timed beside the two
    kinds = {r["name"]: {c["kind"] for c in r["tritonconv"]["configs"]} for r in rows if r["op"] == "conv1d"}
    assert kinds["depthwise_k31"] == {"conv_dw"} and kinds["tcn_k3"] == {"conv"}  # the kernels each layer ran
    assert all(r["tritonconv"]["config_source"] == {"interpreter": 1} for r in rows if r["op"] == "conv1d")


def test_rows_are_written_as_measured_and_the_budget_stops_new_layers(tmp_path, capsys):
    """A run stopped by its budget (or killed by a time limit) keeps the rows it measured."""
    args = ["--smoke", "--dtype", "bf16", "--layout", "channels_last", "--ops", "conv1d", "--out", str(tmp_path),
            "--names", "tcn_k3", "depthwise_k31", "--tag", "part"]
    assert run.main([*args, "--budget-s", "0"]) == 0  # the budget check runs before each layer: none measured
    assert "not measured: tcn_k3 bf16 channels_last forward, depthwise_k31 bf16 channels_last forward" in (
        capsys.readouterr().out)
    assert run.main(args) == 0
    (jsonl,) = tmp_path.glob("*_part.jsonl")
    assert [json.loads(line)["name"] for line in jsonl.read_text().splitlines()] == ["tcn_k3", "depthwise_k31"]


def test_smoke_shapes_keep_the_layer_kind():
    suite = json.loads(open(run.ROOT / "shapes.json").read())
    for op in ("conv1d", "conv2d", "conv3d"):
        for entry in suite[op]:
            small = run.shrink(entry)
            if entry.get("groups", 1) == entry["C"] > 1:
                assert small["groups"] == small["C"]  # depthwise stays depthwise
            assert small["k"] == entry["k"] and small["s"] == entry["s"]


def test_kernelbench_smoke_problems_keep_their_kind_and_match_torch(tmp_path):
    from benchmarks import kernelbench

    for problem in kernelbench.load():
        small = kernelbench.shrink(problem)
        assert [layer["op"] for layer in small["layers"]] == [layer["op"] for layer in problem["layers"]]
        for big, tiny in zip(problem["layers"], small["layers"]):
            assert (big["groups"] == 1) == (tiny["groups"] == 1)  # grouped and depthwise layers stay so
    assert kernelbench.main(["--smoke", "--dtype", "fp32", "--names", "75", "86", "--out", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in next(tmp_path.glob("*.jsonl")).read_text().splitlines()]
    assert [r["name"][:2] for r in rows] == ["75", "86"]
    assert all(r["tritonconv"]["ok"] and r["torch"]["ok"] and r["precision"]["tritonconv"] == "float32" for r in rows)


def test_kernelbench_layers_for_tuning_are_the_convolutions_dispatch_runs():
    """Each KernelBench layer becomes the problem dispatch launches (a transposed layer as the convolution it
    transposes, whose input is the layer's output: shapes from torch's meta tensors)."""
    from benchmarks import kernelbench
    from tritonconv import tune

    data = json.loads(kernelbench.SUITE.read_text())
    layers = list(tune.kernelbench_problems(data))
    assert len(layers) == sum(len(p["layers"]) for p in data["problems"]) == 36
    flat = [(p, layer) for p in data["problems"] for layer in p["layers"]]
    shape = None
    for (name, prob, transposed), (problem, layer) in zip(layers, flat):
        x = torch.empty(problem["input"] if not name.endswith(":1") else shape, device="meta")
        w = torch.empty(layer["weight"], device="meta")
        if transposed:
            y = F.conv_transpose1d if x.dim() == 3 else F.conv_transpose2d if x.dim() == 4 else F.conv_transpose3d
            y = y(x, w, None, layer["stride"], layer["padding"], layer["output_padding"], layer["groups"], layer["dilation"])
            assert prob["input_shape"] == tuple(y.shape) and layer["op"].startswith("conv_transpose")
        else:
            y = getattr(F, layer["op"])(x, w, None, layer["stride"], layer["padding"], layer["dilation"], layer["groups"])
            assert prob["input_shape"] == tuple(x.shape)
        shape = y.shape


def test_host_path_benchmark_runs_every_case(capsys):
    from benchmarks import host

    assert host.main(["--calls", "20", "--repeat", "1", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["case"] for r in rows] == list(host.cases()) and all(r["us_per_call"] > 0 for r in rows)


def test_dispatch_smoke(capsys):
    assert dispatch.main(["--smoke", "--calls", "50"]) == 0
    assert "us per call" in capsys.readouterr().out


def test_streaming_benchmark_smoke(capsys):
    from benchmarks import streaming as bench_streaming

    assert bench_streaming.main(["--smoke"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["rel_err"] < 1e-2 and row["peak_bytes_stream"] < row["peak_bytes_one_shot"]


def test_large_tensor_check_smoke(monkeypatch, capsys, tmp_path):
    """The >2**31-element check runs its cases (scaled down, int64 offsets forced) and writes its rows."""
    from benchmarks import large

    monkeypatch.setattr(geometry, "INT32_MAX", geometry.INT32_MAX)  # restored after the smoke run lowers it
    assert large.main(["--smoke", "--out", str(tmp_path / "large.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "large.jsonl").read_text().splitlines()]
    assert [r["case"] for r in rows] == [c[0] for c in large.CASES]
    assert all(r["ok"] and r["int64_offsets"] for r in rows) and "grad_weight_rel_err_vs_fp32" in rows[-1]


def test_gradient_passes_are_timed_alone_and_checked(tmp_path, monkeypatch):
    """The input and weight gradients of every stage of a layer ((2+1)D: both convolutions), tritonconv's kernels
    beside aten.convolution_backward, each checked against fp32 on the same operands; a planted fault is caught."""
    args = ["--smoke", "--dtype", "fp32", "--layout", "contiguous", "--passes", "input_grad", "weight_grad",
            "--names", "r2plus1d18_l1", "--out", str(tmp_path), "--file", "g.jsonl"]
    assert run.main(args) == 0
    rows = [json.loads(line) for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert [r["pass"] for r in rows] == ["input_grad", "weight_grad"]
    assert all(r["tritonconv"]["rel_err"] < 1e-5 and r["cudnn"]["ok"] for r in rows)
    kinds = [{c["kind"] for c in r["tritonconv"]["configs"]} for r in rows]
    assert kinds == [{"conv_t"}, {"conv_wgrad"}]
    from tritonconv import dispatch as tc_dispatch

    real = tc_dispatch.conv_grad_weight

    def off(dy, x, spec, flip):  # the spatial stage's weight gradient off by a little: the row says wrong
        return real(dy, x, spec, flip) * (1.001 if spec.weight_shape[2] == 1 else 1)

    monkeypatch.setattr(tc_dispatch, "conv_grad_weight", off)
    assert run.main([*args[:-1], "bad.jsonl", "--passes", "weight_grad"]) == 1


def test_fuzz_runs_fp8_forwards_and_catches_a_planted_fault(monkeypatch):
    """A share of forward cases run in fp8 (``fuzz.FP8``), functional or through a converted ``fp8.Conv``, against the
    dequantised operands' convolution; an fp8 convolution off by a little fails its case."""
    from benchmarks import fuzz
    from tritonconv import fp8

    cases = [c for c in map(fuzz.draw, range(400)) if c.get("fp8")]
    assert 0.03 < len(cases) / 400 < 0.15 and {c["fp8"] for c in cases} == {"functional", "module"}
    assert not any(c["transposed"] or c["views"] or c["C"] == c["groups"] > 1 for c in cases)  # (fp8 refuses depthwise)
    for kind in ("functional", "module"):
        case = next(c for c in cases if c["fp8"] == kind and c["ndim"] == 2)
        assert fuzz.check(case, torch.device("cpu"))["ok"], case
    case = next(c for c in cases if c["fp8"] == "functional" and c["ndim"] == 2)
    real = fp8.conv2d
    monkeypatch.setattr(fp8, "conv2d", lambda *a, **k: real(*a, **k) * 1.001)
    assert fuzz.check(case, torch.device("cpu"))["ok"] is False


def test_fuzz_runs_cases_under_vmap_and_catches_a_planted_fault(monkeypatch):
    """A share of cases run under ``torch.func.vmap`` (``fuzz.VMAP``), over two weights or two inputs, against torch's
    convolution under the same vmap; a batching rule that swaps the batch's members fails its case."""
    from benchmarks import fuzz
    from tritonconv import functional

    cases = [c for c in map(fuzz.draw, range(400)) if c.get("vmap")]
    assert 0.02 < len(cases) / 400 < 0.1 and {c["vmap"] for c in cases} == {"weights", "inputs"}
    assert not any(c.get("fp8") for c in cases)
    picked = [next(c for c in map(fuzz.draw, range(1000))
                   if c.get("vmap") == kind and c["dtype"] == "float32" and c["ndim"] < 3) for kind in ("weights", "inputs")]
    for case in picked:
        assert fuzz.check(case, torch.device("cpu"))["ok"], case
    real = functional._vmap_conv

    def swapped(*args):
        y, dim = real(*args)
        return y.flip(dim), dim

    monkeypatch.setattr(functional, "_vmap_conv", swapped)
    for case in picked:
        assert fuzz.check(case, torch.device("cpu"))["ok"] is False, case


def test_fuzz_runs_cases_in_forward_mode_and_catches_a_planted_fault(monkeypatch):
    """A share of cases run on dual tensors (``fuzz.TANGENTS``: tangents on the input, the weight and bias, or all), the
    output's tangent compared as the output is; a tangent that drops the weight's term fails the cases that carry one."""
    from benchmarks import fuzz
    from tritonconv import functional

    cases = [c for c in map(fuzz.draw, range(400)) if c.get("tangents")]
    assert 0.02 < len(cases) / 400 < 0.1 and {c["tangents"] for c in cases} == {"inputs", "weights", "all"}
    assert not any(c.get("fp8") or c.get("vmap") for c in cases)
    picked = {kind: next(c for c in map(fuzz.draw, range(1000)) if c.get("tangents") == kind
                         and c["dtype"] == "float32" and c["ndim"] < 3) for kind in ("inputs", "weights", "all")}
    for case in picked.values():
        row = fuzz.check(case, torch.device("cpu"))
        assert row["ok"] and row["tritonconv"]["tangent"] < 1e-4, row
    real = functional._tangent
    monkeypatch.setattr(functional, "_tangent", lambda di, dw, *a: real(di, None, *a))
    assert fuzz.check(picked["inputs"], torch.device("cpu"))["ok"]
    for kind in ("weights", "all"):
        row = fuzz.check(picked[kind], torch.device("cpu"))
        assert row["ok"] is False and row["tritonconv"]["tangent"] > 1e-2, row


def test_fuzz_runs_fused_epilogues_and_catches_planted_faults(monkeypatch):
    """A share of cases ask for a fused activation and a flipped kernel (``fuzz.EPILOGUES``), against torch's activation
    of its convolution with the weight reversed; an activation dropped in the forward, or its slope in the backward,
    fails its case."""
    from benchmarks import fuzz
    from tritonconv import functional

    cases = [c for c in map(fuzz.draw, range(1000)) if c.get("activation") or c.get("flip")]
    assert 0.05 < len(cases) / 1000 < 0.15
    assert {c["activation"] for c in cases} == set(fuzz.ACTIVATIONS)
    assert not any(c.get("fp8") or c["transposed"] and c["flip"] for c in cases)
    for stepped in ("relu6", "hardswish", "hardsigmoid", "leaky_relu(-0.5)"):  # (their references round the operands
        # first, as ReLU's)
        case = next(c for c in cases if c["activation"] == stepped and c["ndim"] < 3)
        assert fuzz.check(case, torch.device("cpu"))["ok"], case
    case = next(c for c in map(fuzz.draw, range(2000)) if c.get("activation") == "gelu" and c["flip"]
                and c["dtype"] == "float32" and c["ndim"] == 2 and not c.get("vmap"))
    assert fuzz.check(case, torch.device("cpu"))["ok"], case
    real = tritonconv.conv2d
    monkeypatch.setattr(tritonconv, "conv2d", lambda *a, activation=None, **k: real(*a, **k))
    row = fuzz.check(case, torch.device("cpu"))
    assert row["ok"] is False and row["tritonconv"]["out"] > 1e-2, row
    monkeypatch.setattr(tritonconv, "conv2d", real)
    monkeypatch.setattr(functional, "activation_grad", lambda grad_y, *_: grad_y)
    row = fuzz.check(case, torch.device("cpu"))
    assert row["ok"] is False and row["tritonconv"]["out"] < 1e-4 < row["tritonconv"]["grad_input"], row


def test_fuzz_draws_negative_views_and_catches_them_read_raw(monkeypatch):
    """A share of cases (``fuzz.NEGATED``) pass negative views (storage holding the opposite values): the input, weight
    and bias, or the output gradient; kernels that read the storage as the values fail them."""
    from benchmarks import fuzz
    from tritonconv import functional

    cases = [c for c in map(fuzz.draw, range(600)) if "negated" in (c["views"], c["grad_view"])]
    assert 0.02 < len(cases) / 600 < 0.08 and not any(c.get("fp8") for c in cases)
    picked = [next(c for c in cases if c[kind] == "negated" and c["dtype"] == "float32" and c["ndim"] < 3
                   and not (c.get("tangents") or c.get("vmap"))) for kind in ("views", "grad_view")]
    for case in picked:
        assert fuzz.check(case, torch.device("cpu"))["ok"], case
    monkeypatch.setattr(functional, "stored", lambda *tensors: tensors)  # the storage read as the values
    for case in picked:  # (the input's and the weight's signs cancel in the output, not in the input's gradient)
        row = fuzz.check(case, torch.device("cpu"))
        assert row["ok"] is False and row["tritonconv"]["grad_input"] > 1, row


def test_fuzz_runs_outputs_of_padding_alone_past_torchs_cpu_crash():
    """Seed 72568 draws a bf16 3-D convolution none of whose outputs reads the input (depth 1 padded by 3, dilated,
    strided 2): torch's own oneDNN convolution on the CPU crashed the process there (segfault, torch 2.11 and 2.13),
    so the fuzz runs torch's in such a case without oneDNN; tritonconv's output is the zero it should be."""
    from benchmarks import fuzz

    case = fuzz.draw(72568)
    assert case["dtype"] == "bfloat16" and case["ndim"] == 3 and case["sizes"][0] == 1 and case["padding"][0] == 3
    row = fuzz.check(case, torch.device("cpu"))
    assert row["ok"] and row["tritonconv"]["out"] == 0.0, row


def test_fuzz_asks_for_output_layouts_and_catches_one_ignored(monkeypatch):
    """A share of convolutions ask for their output's layout (``fuzz.FORMATS``: the input's, contiguous, channels-last),
    values and layout checked; a convolution that ignores ``memory_format`` fails its case."""
    from benchmarks import fuzz

    cases = [c for c in map(fuzz.draw, range(400)) if c.get("memory_format")]
    assert 0.04 < len(cases) / 400 < 0.15 and {c["memory_format"] for c in cases} == {"preserve", "contiguous",
                                                                                       "channels_last"}
    assert not any(c["transposed"] or c.get("fp8") or c.get("vmap") for c in cases)
    case = next(c for c in cases if c["memory_format"] == "channels_last" and not c["channels_last"] and c["ndim"] == 2)
    assert fuzz.check(case, torch.device("cpu"))["ok"], case
    real = tritonconv.conv2d
    monkeypatch.setattr(tritonconv, "conv2d", lambda *a, memory_format=None, **k: real(*a, **k))
    row = fuzz.check(case, torch.device("cpu"))
    assert row["ok"] is False and "memory_format=channels_last" in row["tritonconv"]["error"], row


def test_fuzz_draws_valid_cases_and_catches_a_planted_fault(monkeypatch, capsys):
    """Every drawn configuration is one torch accepts; a tritonconv op off by a little fails its case."""
    from benchmarks import fuzz

    for seed in range(300):
        case = fuzz.draw(seed)
        x = torch.empty(case["N"], case["C"], *case["sizes"], device="meta")
        if case["transposed"]:
            w = torch.empty(case["C"], case["OC"] // case["groups"], *case["k"], device="meta")
            getattr(F, f"conv_transpose{case['ndim']}d")(x, w, None, case["stride"], case["padding"],
                                                           case["output_padding"], case["groups"], case["dilation"])
        else:
            w = torch.empty(case["OC"], case["C"] // case["groups"], *case["k"], device="meta")
            getattr(F, f"conv{case['ndim']}d")(x, w, None, case["stride"], case["padding"], case["dilation"], case["groups"])
    # about one draw in 4,000 had a non-positive output (a long row's 'same' padding dropped on its other axes) and
    # ended the run: 5881 and 9108 were two; the shape algebra checks many more draws than torch's meta kernels can
    for seed in [5881, 9108, *range(300, 30_000)]:
        case = fuzz.draw(seed)
        if case["transposed"]:
            out = [shapes.conv_transpose_output_size(*axis) for axis in zip(
                case["sizes"], case["k"], case["stride"], case["padding"], case["output_padding"], case["dilation"])]
        else:
            out = shapes.conv_output_shape((1, 1, *case["sizes"]), (1, 1, *case["k"]), case["stride"],
                                           case["padding"], case["dilation"])[2:]
        assert min(out) > 0, case
    assert fuzz.main(["--device", "cpu", "--count", "2", "--seed", "7"]) == 0
    def check_raising_on_8(case, device):
        if case["seed"] == 8:
            raise RuntimeError("reference raised")
        return {**case, "ok": True}

    with monkeypatch.context() as m:  # an error of the harness's own fails its case, and the run goes on
        m.setattr(fuzz, "check", check_raising_on_8)
        capsys.readouterr()
        assert fuzz.main(["--device", "cpu", "--count", "3", "--seed", "7"]) == 1
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
        assert [(r["seed"], r["ok"], r.get("harness")) for r in rows] == [
            (7, True, None), (8, False, "RuntimeError: reference raised"), (9, True, None)]
    drawn = next(c for c in map(fuzz.draw, range(100))
                 if c["configs"] == "drawn" and c["ndim"] == 1 and c["C"] >= 8 and c["groups"] == 1)
    row = fuzz.check(drawn, torch.device("cpu"))  # each launch's config drawn from the tuner's candidates
    assert row["ok"] and len(row["picked"]) >= 3 and {p["kind"] for p in row["picked"]} >= {"conv", "conv_t"}
    from triton.runtime.errors import OutOfResources

    def too_big(*args, **kwargs):
        raise OutOfResources(300000, 232448, "shared memory")

    with monkeypatch.context() as m:  # a drawn config the GPU cannot launch: not run, not wrong
        m.setattr(tritonconv, "conv1d", too_big)
        assert fuzz.check(drawn, torch.device("cpu"))["ok"] is None
    case = next(c for c in map(fuzz.draw, range(100)) if not c["transposed"] and c["ndim"] == 1 and c["dtype"] == "float32")
    real = tritonconv.conv1d
    with monkeypatch.context() as m:
        m.setattr(tritonconv, "conv1d", lambda *a, **k: real(*a, **k) * 1.001)
        assert not fuzz.check(case, torch.device("cpu"))["ok"]

    class Skewed(torch.autograd.Function):  # the output right, every gradient 0.1% off
        forward = staticmethod(lambda ctx, y: y.view_as(y))
        backward = staticmethod(lambda ctx, g: g * 1.001)

    with monkeypatch.context() as m:  # (fp32 on the CPU: each implementation's gradients on leaves of its own)
        m.setattr(tritonconv, "conv1d", lambda *a, **k: Skewed.apply(real(*a, **k)))
        row = fuzz.check(case, torch.device("cpu"))
        assert not row["ok"] and row["tritonconv"]["out"] < 1e-6 and row["torch"]["grad_input"] < 1e-6
    # a weight and bias sliced out of larger tensors (NaN between their elements), or expanded from one input
    # channel and one element: kernels reading the bias as dense fail the sliced case
    expanded = next(c for c in map(fuzz.draw, range(200)) if c["views"] == "expanded" and c["bias"])
    assert fuzz.check(expanded, torch.device("cpu"))["ok"]
    viewed = next(c for c in map(fuzz.draw, range(100)) if c["views"] == "sliced" and c["bias"] and c["dtype"] == "float32")
    assert fuzz.check(viewed, torch.device("cpu"))["ok"]
    monkeypatch.setattr(geometry, "bias_step", lambda bias: 1)
    assert not fuzz.check(viewed, torch.device("cpu"))["ok"]
    monkeypatch.undo()
    # an output gradient expanded (stride 0), sliced or with its axes reversed: a backward reading it as dense fails
    for kind in ("expanded", "sliced", "reversed"):
        case = next(c for c in map(fuzz.draw, range(300)) if c["grad_view"] == kind and c["ndim"] == 1)
        assert fuzz.check(case, torch.device("cpu"))["ok"], kind

    class Dense(torch.autograd.Function):  # the gradient's storage read as if it were dense
        forward = staticmethod(lambda ctx, y: y.view_as(y))
        backward = staticmethod(lambda ctx, g: torch.as_strided(g, g.shape, torch.empty(g.shape).stride()))

    sliced = next(c for c in map(fuzz.draw, range(300)) if c["grad_view"] == "sliced" and c["ndim"] == 1
                  and not c["transposed"])
    monkeypatch.setattr(tritonconv, "conv1d", lambda *a, **k: Dense.apply(real(*a, **k)))
    assert not fuzz.check(sliced, torch.device("cpu"))["ok"]


def test_fuzz_holds_a_bias_gradient_to_its_condition(monkeypatch):
    """Seed 91153: fp16, an expanded bias, so one sum of 3,696 terms whose L2 norm is 61 times the sum; tritonconv's
    error (0.017) and PyTorch's (0.008) are both rounding noise, more than twice apart, and the bias gradient's
    condition floor passes the case. An fp32 case's bias gradients 0.1% off still fail."""
    from benchmarks import fuzz

    row = fuzz.check(fuzz.draw(91153), torch.device("cpu"))
    assert row["tritonconv"]["grad_bias"] > 2 * row["torch"]["grad_bias"] and 0.1 < row["floors"]["grad_bias"] < 1
    assert row["ok"] and row["by_floor"] == ["grad_bias"]
    case = fuzz.draw(90)  # fp32, 64 channels' biases
    assert case["bias"] and case["dtype"] == "float32" and fuzz.check(case, torch.device("cpu"))["ok"]
    real = tritonconv.functional._bias_grad
    monkeypatch.setattr(tritonconv.functional, "_bias_grad", lambda grad_z, dtype: real(grad_z, dtype) * 1.001)
    row = fuzz.check(case, torch.device("cpu"))
    assert not row["ok"] and row["tritonconv"]["grad_bias"] > max([fuzz.TOL[torch.float32], *row.get("floors", {}).values()])


def test_fuzz_holds_an_ill_conditioned_result_to_torchs_own_error():
    """Seed 53040: a one-channel bias gradient in fp16 whose float64 sum is near zero; the operands' rounding alone
    errs past the fp16 tolerance (PyTorch: 0.024), so tritonconv is held to twice PyTorch's error there."""
    from benchmarks import fuzz

    row = fuzz.check(fuzz.draw(53040), torch.device("cpu"))
    assert fuzz.TOL[torch.float16] < row["tritonconv"]["grad_bias"] <= 2 * row["torch"]["grad_bias"]
    assert row["ok"]


# what the CPU smoke run writes; a GPU adds spec.xml and the tuning cache (8 files)
SLOT_FILES = {"slot.log", "fuzz.jsonl", "suite.jsonl", "kernelbench.jsonl", "tuned.jsonl", "e2e.jsonl"}


def test_gpu_slot_runs_its_cpu_smoke_version_end_to_end(tmp_path):
    """The one-command GPU slot runs here (smoke versions of its steps), so an error in the script or a
    command's arguments shows on the CPU, not in scarce GPU time. No deadline applies off the GPU. A planted
    failing test sits among the GPU tests: it is reported, and the run goes on to every later step."""
    out = tmp_path / "out"
    planted = tmp_path / "test_planted.py"
    planted.write_text("def test_planted_failure():\n    assert False\n")
    env = {**os.environ, "OUT": str(out), "GPU_SESSION_TESTS": str(planted)}
    done = subprocess.run(["bash", "benchmarks/gpu_session.sh"], capture_output=True, text=True, env=env,
                          cwd=run.ROOT.parent)
    log = (out / "slot.log").read_text()
    steps = re.findall(r"^## \S+ \[(\w+)\] (.*)$\n(?:.*\n)*?^## exit (\d+)$", log, re.M)
    assert done.returncode == 0 and steps, log
    assert [name for name, _, _ in steps] == ["versions", "table", "spec", "tests", "fuzz", "warm", "suite", "fp8",
                                               "kernelbench", "tune", "retime", "e2e"], log
    assert [name for name, _, code in steps if code != "0"] == ["tests"], log  # only the planted failure
    assert "1 failed" in log
    files = {p.name for p in out.iterdir()}
    assert files == SLOT_FILES and len(files) <= 8, files
    suite = [json.loads(line) for line in (out / "suite.jsonl").read_text().splitlines()]
    bf16 = [r for r in suite if r["dtype"] == "bfloat16"]
    assert {(r["pass"], r["layout"]) for r in bf16} == {(p, lay) for p in run.PASSES for lay in ("channels_last", "contiguous")}
    assert [(r["dtype"], r["pass"], r["layout"]) for r in suite if r not in bf16] == [("float8_e4m3fn", "forward",
                                                                                      "channels_last")]
    assert all(r["tritonconv"]["ok"] for r in suite)
    assert [json.loads(line)["name"] for line in (out / "tuned.jsonl").read_text().splitlines()] == ["tcn_k3"] * 6


def test_gpu_slot_deadlines_fit_one_device_call():
    script = (run.ROOT / "gpu_session.sh").read_text()
    deadlines = dict(pair.split("=") for pair in re.search(r"^DEADLINES=\(([^)]*)\)$", script, re.M).group(1).split())
    assert set(deadlines) >= {"spec", "tests", "fuzz", "suite", "kernelbench", "tune", "retime", "e2e"}
    assert sum(map(int, deadlines.values())) <= 560
    used = set(re.findall(r"^\s*step (\w+) ", script, re.M)) | set(re.findall(r"&& step (\w+) ", script))
    assert used <= set(deadlines), used - set(deadlines)  # every step has a deadline


def test_wheel_folder_holds_what_the_spec_run_needs_for_the_gpu_image(tmp_path):
    """The wheel script downloads here and its folder installs on the GPU image's Python (3.12, manylinux
    x86_64): tags, one version each, every requirement met by the folder or the image; a wrong one is named."""
    from benchmarks import wheels

    folder = tmp_path / "whl"
    assert wheels.main(["--folder", str(folder)]) == 0
    names = {f.name.split("-")[0].lower() for f in folder.glob("*.whl")}
    assert {"nbval", "ipykernel", "jupyter_client", "nbformat", "pyzmq"} <= names
    (folder / "torch-2.11.0-cp311-cp311-win_amd64.whl").write_bytes(b"")  # a planted wrong wheel
    assert any("no tag for CPython 3.12" in line for line in wheels.check(folder))
    assert any("the image has torch" in line for line in wheels.check(folder))
    (folder / "torch-2.11.0-cp311-cp311-win_amd64.whl").unlink()
    next(folder.glob("traitlets-*.whl")).unlink()  # a requirement missing
    assert any("traitlets" in line and "neither in the folder nor in the image" in line for line in wheels.check(folder))


def test_report_checks_the_targets(tmp_path, capsys):
    """Rows made up here (not measurements) with known ratios: the report's means and misses follow."""
    from benchmarks import report

    meta = {"device": "Test GPU", "torch": "t", "triton": "t", "cuda": "c", "date": "2026-01-01T00:00:00",
            "smoke": False, "dtype": "bfloat16", "layout": "channels_last", "pass": "forward"}

    def row(op, name, vs_cudnn, vs_compile=None, frac=0.9, bound="compute", ok=True):
        r = {**meta, "op": op, "name": name, "speedup_vs_cudnn": vs_cudnn, "roofline_fraction": frac, "bound": bound,
             "tritonconv": {"ok": ok}}
        return {**r, "speedup_vs_torch_compile": vs_compile} if vs_compile else r

    rows = [row("conv2d", "a", 2.0, 1.5), row("conv2d", "b", 0.5, 1.0), row("conv2d", "c", 1.0, frac=0.5),
            row("conv1d", "d", 1.2, bound="memory", frac=0.85)]
    path = tmp_path / "run.jsonl"
    large = {**meta, "op": "conv2d", "case": "conv2d_3x3", "ok": True}  # benchmarks.large's rows: not the suite's
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + json.dumps(large) + '\n{"cut off"\n')
    by_family = {s["family"]: s for s in report.summarize(report.load([path])[path])}
    two = by_family["2D"]
    assert abs(two["geomean_vs_cudnn"] - 1.0) < 1e-12 and two["slowest"] == ("b", 0.5)
    assert abs(two["geomean_vs_compile"] - 1.5 ** 0.5) < 1e-12
    assert two["missed"] == ["geomean vs cuDNN 1.00 < 1.1", "b 0.50x cuDNN < 0.8", "geomean vs torch.compile 1.22 < 1.3",
                             "c 50% of its compute bound < 70%"]
    assert by_family["1D"]["missed"] == [] and by_family["1D"]["geomean_vs_compile"] is None
    assert report.main([str(path)]) == 0 and "| bfloat16 | channels_last | forward | 2D | 3 | 1.00x | b 0.50x |" in (
        capsys.readouterr().out)
    smoke = tmp_path / "smoke.jsonl"
    smoke.write_text(json.dumps({**rows[0], "smoke": True}) + "\n")
    assert report.main([str(smoke)]) == 1  # CPU smoke rows carry no speed: nothing to report


def test_committed_work_report_is_current():
    """Notebook 06 draws the committed matrix-work counts: they are what the heuristic configs issue now."""
    from benchmarks import work

    fresh = work.report(json.loads((work.ROOT / "shapes.json").read_text()))
    committed = [json.loads(line) for line in work.COMMITTED.read_text().splitlines()]
    assert fresh == committed, "the heuristic changed: regenerate with `python -m benchmarks.work --write`"
    # issued / useful within 1.15 everywhere but the stems packed (resnet50_conv1: 12 channels in 16, 4 x 4 taps where
    # the 7 x 7 kernel has 49 / 4: 1.74x, its input gradient 1.85x; c3d_conv1: 9 in 16, 1.78x; at the plain tiles'
    # rate where a folded loop is integer-bound) and c3d_conv1's input gradient (3 channels written by 16-wide
    # columns: 5.3x, at the plain rate; unit-stride packing's copies overlap, so it does not pack). The descriptor
    # kernels' patches span images where a plane is small (14 x 14, 7 x 7, 17 x 17, 28 x 28), and their channel
    # tiles narrow beside a patch that pads (tuning.within_slack), so no other layer or pass passes 1.15.
    # The banded depthwise passes (kernels/banded.py: 31 taps in windows of 64, 2.06x, 3 x 3 in 64, 7.1x, on the
    # tensor cores, where the FMA kernels issue 2.1-25x the warp instructions) pass it on purpose.
    stems = {"resnet50_conv1", "c3d_conv1"}
    assert not [r for r in committed if r["ratio"] > 1.15 and r["name"] not in stems and r["kernel"] != "banded"]
    assert {(r["name"], r["kind"]) for r in committed if r["kernel"] == "banded"} == {
        (name, k) for name in ("depthwise_k31", "mobilenet_dw_3x3") for k in ("conv_dw", "conv_dw_t", "conv_dw_wgrad")}
    assert all(r["ratio"] <= tuning.BANDED_ISSUED for r in committed if r["kernel"] == "banded")
    packed = [r for r in committed if r["name"] in stems and (r["name"], r["kind"]) != ("c3d_conv1", "conv_t")]
    assert all(set(r["stride"]) == {1} and r["kernel"] == "descriptor" and r["ratio"] < 2.05 for r in packed), packed


def test_committed_compile_reports_record_todays_default_configs():
    """Every committed compile report (``benchmarks/results/static/``, but the tuner's tiles, ``--tiles``) records, row by
    row, the config a GPU of its arch takes today (``benchmarks.static.chosen``; the ``--rows`` pairs'
    ``benchmarks.static.pair_config``): the census, the model's constants fitted on it and notebook 06 describe the
    kernels that run, and a change of a default config is followed by its rows, recompiled."""
    from benchmarks import static

    probs = dict(tune.suite_problems(json.loads((static.ROOT / "shapes.json").read_text())))
    dtypes = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "tf32": "float32", "fp8": "float8_e4m3fn"}
    today: dict[tuple, dict] = {}  # (reports of both Tritons, and a launch's several kernels, share their configs)
    stale, seen = [], 0
    for path in sorted((static.ROOT / "results" / "static").glob("static-*.jsonl")):
        if path.name.endswith("-tiles.jsonl"):
            continue
        for r in map(json.loads, path.read_text().splitlines()):
            arch, layout = int(r["arch"].removeprefix("sm_")), r.get("layout", "contiguous")  # (--rows pairs: NC(D)HW)
            key = (arch, r["name"], r["kind"], r["dtype"], layout, "channels_last" in r)
            if key not in today:
                problem = tc_tuning.Problem.of(r["kind"], dtypes[r["dtype"]], layout, **probs[r["name"]],
                                               tf32=r["dtype"] == "tf32")
                today[key] = vars(static.pair_config(problem, arch) if "channels_last" in r
                                  else static.chosen(problem, arch >= 90))
            seen += 1
            if today[key] != r["config"]:
                stale.append((path.name, r["name"], r["kind"], r["dtype"], layout))
    assert seen > 1500 and not stale, stale


def test_kernelbench_work_report_counts_every_gemm_layer():
    """The same count for KernelBench level 1 (NCHW), no GPU: every layer but the depthwise ones on FMA loops (its 3 x 3
    and 3 x 7 ones run banded, their rows read in runs; 83's 3 x 1, too few taps, does not), transposed convolutions as
    the transposed pass of the convolution they reverse."""
    from benchmarks import kernelbench, work

    rows = work.kernelbench_report()
    layers = sum(len(p["layers"]) for p in kernelbench.load())
    assert 30 <= len(rows) < layers and {r["kind"] for r in rows} == {"conv", "conv_t", "conv_dw"}
    assert [r["name"][:2] for r in rows if r["kind"] == "conv_dw"] == ["82", "84", "85", "86"]
    assert all(r["ratio"] >= 0.9 and r["useful_macs"] > 0 for r in rows)
    assert work.main(["--kernelbench"]) == 0


def test_notes_predictions_are_checkable_claims_on_suite_layers():
    """Every prediction of benchmarks/NOTES.md names suite layers, a pass, a layout and a claim the readout can judge."""
    from benchmarks import readout

    suite = json.loads((run.ROOT / "shapes.json").read_text())
    names = {e["name"] for op in run.OPS for e in suite[op]}
    found = readout.predictions()
    assert len(found) >= 10
    for p in found:
        metric, op, value = p["claim"].split()
        assert set(p["layers"]) <= names and p["pass"] in run.PASSES and p["layout"] in readout.LAYOUTS, p
        metrics = {f"speedup_vs_{other}" for other in run.COMPARED} | {"eager_speedup_vs_cudnn", "roofline_fraction"}
        assert metric in metrics and op in readout.OPS, p
        float(value)


def made_up_slot(folder, date="2026-12-01T10:00:00+00:00", scale=1.0):
    """A slot's files with rows made up here (not measurements): known ratios, two layers, every pass and layout."""
    meta = {"device": "Test GPU", "torch": "t", "triton": "3.6.0", "cuda": "c", "date": date, "smoke": False,
            "dtype": "bfloat16"}
    rows = []
    for op, name, ratio in (("conv2d", "resnet50_l1_3x3", 0.5), ("conv1d", "tcn_k3", 2.0)):
        for pas in run.PASSES:
            for layout, f in (("channels_last", 1.0), ("contiguous", 0.5)):
                rows.append({**meta, "op": op, "name": name, "pass": pas, "layout": layout,
                             "speedup_vs_cudnn": ratio * f * scale, "eager_speedup_vs_cudnn": ratio * f * scale / 4,
                             "roofline_fraction": 0.4, "bound": "compute",
                             "tritonconv": {"ok": True, "ms": 1.0, "timing": "cuda_graph"}})
    folder.mkdir(parents=True)
    quantised = {**rows[0], "dtype": "float8_e4m3fn", "speedup_vs_cudnn": 1.6, "tritonconv": {"ok": True, "rel_err": 0.04}}
    (folder / "suite.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*rows, quantised]) + '{"cut off')
    tuned = {**rows[0], "speedup_vs_cudnn": 0.8 * scale}  # resnet50_l1_3x3 forward channels-last, after tuning
    (folder / "tuned.jsonl").write_text(json.dumps(tuned) + "\n")
    (folder / "kernelbench.jsonl").write_text(json.dumps({**meta, "name": "87_pointwise", "speedup": 0.5,
                                                          "kernelbench_speedup": 0.25, "tritonconv": {"ms": 4.0}}) + "\n")
    fuzzed = ((1, True), (2, False), (3, None))  # passed, wrong, not run
    conditioned = {"seed": 4, "ok": True, "dtype": "float16", "floors": {"grad_bias": 0.3},  # passed by its floor
                   "tritonconv": {"grad_bias": 0.017}, "torch": {"grad_bias": 0.008}, "by_floor": ["grad_bias"]}
    (folder / "fuzz.jsonl").write_text("".join(json.dumps({"seed": i, "ok": ok}) + "\n" for i, ok in fuzzed)
                                       + json.dumps(conditioned) + "\n")
    (folder / "spec.xml").write_text('<testsuites><testsuite><testcase classname="spec_notebooks.01"/>'
                                     '<testcase classname="spec_notebooks.02"><failure/></testcase></testsuite></testsuites>')
    (folder / "slot.log").write_text("## 10:00:00 [tests] pytest\n3 passed, 1 failed in 9.0s\n## exit 1\n## exit 124\n"
                                     "## direct launches differ from JITFunction.run's: TRITONCONV_DIRECT=0 from here on\n")
    tuned_problem = tc_tuning.Problem.of("conv", "bfloat16", "channels_last", (8, 64, 28, 30), (128, 64, 3, 3), 1, 1)
    candidates = [(c, 1.0) for c in tc_tuning.candidates(tuned_problem, tma=True)[:2]]  # timed alike
    nchw = tc_tuning.Problem.of("conv", "bfloat16", "contiguous", (8, 64, 28, 30), (128, 64, 3, 3), 1, 1)
    relaid = [(tc_tuning.relaid(nchw)[0], 1.0), (tc_tuning.heuristic(nchw, False, 132, True), 1.0)]
    (folder / "Test_GPU__triton-3.6.0.json").write_text(json.dumps({"device": "Test GPU", "entries": {
        tuned_problem.key(): tc_cache.entry(tuned_problem, candidates[0][0], 1.0, "cuda_graph", candidates, "full"),
        nchw.key(): tc_cache.entry(nchw, relaid[0][0], 1.0, "cuda_graph", relaid)}}))
    (folder / "e2e.jsonl").write_text(json.dumps({**meta, "model": "resnet50", "input": [32, 3, 224, 224], "torch_ms": 100.0,
                                                  "tritonconv_ms": 200.0, "speedup": 0.5, "routed": {"conv2d": 53},
                                                  "left": {}, "loss_rel_diff": 1e-3}) + "\n" + json.dumps(
        {**meta, "suite": "e2e-inference", "model": "resnet50", "input": [32, 3, 224, 224], "torch_ms": 30.0,
         "routed_ms": 40.0, "tritonconv_ms": 20.0, "speedup": 1.5, "fusion_gain": 2.0, "folded": 53, "fused": 33,
         "kept": {}, "out_rel_err": 1e-2}) + "\n")
    return rows


def test_readout_names_the_gpu_of_a_previous_measurement_on_another():
    """Each ratio is to cuDNN on its own GPU: a layer last measured on another GPU (an H200 before an H100 slot) is
    compared with that GPU named."""
    from benchmarks import readout

    now = {"name": "tcn_k3", "pass": "forward", "layout": "channels_last", "dtype": "bfloat16", "device": "NVIDIA H100",
           "speedup_vs_cudnn": 2.0, "tritonconv": {"ms": 1.0, "timing": "cuda_graph"}}
    key = ("tcn_k3", "forward", "channels_last", "bfloat16")
    for before, shown in (({**now, "device": "NVIDIA H200", "speedup_vs_cudnn": 1.0}, "1.00x (cuda_graph, NVIDIA H200)"),
                          ({**now, "speedup_vs_cudnn": 1.0}, "1.00x (cuda_graph) |")):
        assert shown in readout.comparison([now], {key: before})[-1]


def test_readout_commits_tabulates_draws_and_compares(tmp_path):
    """From a slot's files: rows, logs and cache copied where they belong; the README block rewritten with per-family
    geomeans (tuned rows replacing first timings); one chart per pass and layout; the report compares each layer
    with the previous slot and judges the predictions."""
    from benchmarks import readout

    results, cache_dir = tmp_path / "results", tmp_path / "cache"
    cache_dir.mkdir()
    made_up_slot(tmp_path / "before", date="2026-11-30T10:00:00+00:00", scale=0.5)
    readme, notes = tmp_path / "README.md", tmp_path / "NOTES.md"
    readme.write_text(f"# x\n{readout.START}\nold\n{readout.END}\nrest\n")
    notes.write_text("## Predictions to check\n\n| id | layers | pass | layout | claim | why |\n|---|---|---|---|---|---|\n"
                     "| P1 | resnet50_l1_3x3 | forward | channels_last | `speedup_vs_cudnn >= 0.7` | tuned |\n"
                     "| P2 | tcn_k3, resnet50_l1_3x3 | weight_grad | contiguous | `speedup_vs_cudnn >= 0.5` | w |\n"
                     "| P3 | c3d_conv1 | forward | channels_last | `speedup_vs_cudnn >= 1` | x |\n\n## Log\n")
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    (predictions / "Test_GPU.jsonl").write_text(json.dumps({"name": "tcn_k3", "pass": "forward", "layout": "channels_last",
                                                             "predicted_ms": 1.2, "bound": "memory"}) + "\n")
    (predictions / "Test_GPU_kernelbench.jsonl").write_text(json.dumps({"name": "87_pointwise", "dtype": "bfloat16",
                                                                         "predicted_ms": 2.0, "speedup": 1.5}) + "\n")
    args = dict(results=results, cache_dir=cache_dir, readme=readme, notes=notes, predictions_dir=predictions)
    readout.readout(tmp_path / "before", **args)
    made_up_slot(tmp_path / "now")
    text = readout.readout(tmp_path / "now", **args)
    stem = "2026-12-01_Test_GPU_slot"
    assert {f"{stem}_{part}.jsonl" for part in readout.PARTS} <= {p.name for p in results.iterdir()}
    assert (results / "logs" / f"{stem}_spec.xml").is_file() and (cache_dir / "Test_GPU__triton-3.6.0.json").is_file()
    assert len(list(results.glob(f"{stem}_*.png"))) == 6  # 3 passes x 2 layouts, none empty
    block = readme.read_text().split(readout.START)[1].split(readout.END)[0]
    assert "| 2D | 0.80x (0.13x) n=1 | 0.25x (0.06x) n=1 |" in block and "rest" in readme.read_text()
    assert "| 1D | 2.00x (0.50x) n=1 | 1.00x (0.25x) n=1 |" in block
    assert "spec notebooks on the GPU: 1 cells passed, 1 failed (in 02)" in text
    assert "fuzz: 4 random configurations, 1 wrong (seeds [2]), 1 not run" in text and "stopped at their deadline" in text
    assert "1 passed by their bias gradient's condition alone (seeds [4])" in text
    assert "this slot measured with TRITONCONV_DIRECT=0" in text
    assert ("4 candidates timed for 2 problems; the one the model predicted fastest was within 5% of the fastest "
            "timed on 2") in text
    assert ("Full searches (every candidate timed): 1; the shortlist of the model's 5 best and the baselines held a "
            "config within 5% of the full search's best on 1") in text
    assert "NC(D)HW problems tuned: 1; won by a relayout config (activations copied channels innermost): 1\n- `conv|" in text
    assert "| resnet50_l1_3x3 | forward | channels-last | 0.80x | 0.12x | 0.40x (cuda_graph) | 2.00 |" in text
    assert "| P1 | resnet50_l1_3x3 | forward | channels_last | `speedup_vs_cudnn >= 0.7` | resnet50_l1_3x3 0.80 | held |" in text
    assert "| P2 |" in text and "resnet50_l1_3x3 0.25, tcn_k3 1.00 | not held |" in text
    assert "| P3 |" in text and "not measured |" in text
    assert "bfloat16: 1 problems timed, fast_1 0, geomean 0.50x" in text and "geomean 0.25x over 1" in text
    assert "Within 1.5x of the measured device time: 1 of 1 rows" in text
    assert "within 1.5x of the measured device time on 0 of 1 problems" in text  # KernelBench: 2.0 ms predicted, 4.0 run
    assert "- bfloat16: predicted faster than PyTorch on 1 of 1, measured faster on 0 of them" in text
    assert "| 87_pointwise | bfloat16 | 2.000 | 4.000 | 0.50 | 1.50 | 0.50 |" in text
    assert "- 2D: 1 layers, geomean 1.60x (quantisation error vs fp32: up to 0.040)" in text  # fp8, apart
    assert "| tcn_k3 | forward | channels-last | memory | 1.2000 |" in text
    assert "- memory: 1 rows, median predicted / measured" in text
    assert "- resnet50 [32, 3, 224, 224] bfloat16: torch 100.0 ms, tritonconv 200.0 ms (0.50x); routed {'conv2d': 53}" in text
    assert ("- resnet50 [32, 3, 224, 224] bfloat16: torch 30.0 ms, routed 40.0 ms, fused 20.0 ms (1.50x torch's, 2.00x "
            "the routed run's); 53 batch norms folded, 33 activations fused; output rel. diff 1.0e-02") in text
