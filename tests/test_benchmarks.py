"""The benchmark harness keeps working on CPU (--smoke): checks run, rows and plot are written."""

import json

import torch

from benchmarks import dispatch, run


def test_smoke_run_writes_checked_rows(tmp_path):
    assert run.main(["--smoke", "--dtype", "bf16", "--layout", "channels_last", "--ops", "conv1d", "conv2plus1d",
                     "--out", str(tmp_path)]) == 0
    (jsonl,) = tmp_path.glob("*.jsonl")
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(rows) == 6 + 3 and (tmp_path / jsonl.name.replace(".jsonl", ".png")).stat().st_size > 0
    for row in rows:
        assert row["smoke"] and "interpreter smoke" in row["device"] and row["torch"] == torch.__version__
        assert row["tritonconv"]["ok"] and row["tritonconv"]["ms"] > 0 and row["speedup_vs_cudnn"] > 0
    assert all("cudnn_full3d" in r for r in rows if r["op"] == "conv2plus1d")
    kinds = {r["name"]: {c["kind"] for c in r["tritonconv"]["configs"]} for r in rows if r["op"] == "conv1d"}
    assert kinds["depthwise_k31"] == {"conv_dw"} and kinds["tcn_k3"] == {"conv"}  # the kernels each layer ran


def test_smoke_shapes_keep_the_layer_kind():
    suite = json.loads(open(run.ROOT / "shapes.json").read())
    for op in ("conv1d", "conv2d", "conv3d"):
        for entry in suite[op]:
            small = run.shrink(entry)
            if entry.get("groups", 1) == entry["C"] > 1:
                assert small["groups"] == small["C"]  # depthwise stays depthwise
            assert small["k"] == entry["k"] and small["s"] == entry["s"]


def test_dispatch_smoke(capsys):
    assert dispatch.main(["--smoke", "--calls", "50"]) == 0
    assert "us per call" in capsys.readouterr().out


def test_streaming_benchmark_smoke(capsys):
    from benchmarks import streaming as bench_streaming

    assert bench_streaming.main(["--smoke"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["rel_err"] < 1e-2 and row["peak_bytes_stream"] < row["peak_bytes_one_shot"]
