"""``tritonconv.explain``: each pass as a call on a named GPU would run it, and the cost model's predictions of it."""

import copy
import dataclasses
import math

import pytest
import torch

import tritonconv
from tritonconv import cache, costmodel, explanation, geometry, tuning

GPU = "Test H100"  # no fitted constants, no shipped cache: the datasheet's constants and the heuristic; TMA
SHIPPED = cache.shipped_dir  # the library's own (the fixture below hides it)


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITONCONV_CACHE_DIR", str(tmp_path / "user"))
    monkeypatch.setattr(cache, "shipped_dir", lambda: tmp_path / "shipped")
    cache.clear_memory()
    yield
    cache.clear_memory()


def meta(*shape, dtype=torch.bfloat16, channels_last=False):
    t = torch.empty(*shape, dtype=dtype, device="meta")
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(len(shape)) if channels_last else None
    return t.to(memory_format=fmt) if fmt else t


def test_each_pass_is_the_launch_a_call_takes_and_the_models_time_of_it():
    """An NCHW 3x3 layer: forward, input gradient and weight gradient, each the default config on the problem
    the kernels run, its predicted time the model's for that launch, the model's best candidate no slower, and the
    same pass on channels-last activations beside it; the text names the datasheet's constants."""
    x, w = meta(8, 64, 28, 30), meta(128, 64, 3, 3)
    report = tritonconv.explain(x, w, padding=1, gpu=GPU)
    device = costmodel.device_for(GPU)
    assert [p.name for p in report.passes] == ["forward", "input gradient", "weight gradient"] and not report.fitted
    for p, kind in zip(report.passes, ("conv", "conv_t", "conv_wgrad")):
        written = tuning.Problem.of(kind, "bfloat16", "contiguous", x.shape, w.shape, 1, 1, as_run=False)
        assert p.problem == written.as_run() and p.source == "default"
        assert p.config == costmodel.default(p.problem, device, True)  # the heuristic's, splits ranked
        assert math.isclose(p.predicted_ms, 1e3 * costmodel.pass_seconds(written, p.config, device))
        assert p.best_ms <= p.predicted_ms and p.issued >= 1.0
        inner = dataclasses.replace(written, layout="channels_last")
        cfg = costmodel.default(inner.as_run(), device, True)
        assert math.isclose(p.channels_last_ms, 1e3 * costmodel.pass_seconds(inner, cfg, device))
    assert "NC(D)HW planes as rows" in report.passes[0].kernel  # rows of 30 (60 bytes) in planes of 840: descriptors
    text = str(report)
    assert "H200 datasheet" in text and "forward" in text and "weight gradient" in text
    assert explanation.config_text(report.passes[0].config) in text
    assert "bound by" in text and all(p.bound == costmodel.bound(p.problem, p.config, device) for p in report.passes)
    # a block per pass, its lines within 100 characters; a faster best candidate and channels-last named with the ratio
    assert max(map(len, text.splitlines())) <= 100
    blocks = text.split("\n\n")[1:]
    assert [b.split(" ", 1)[0] for b in blocks] == ["forward", "input", "weight"]
    for p, block in zip(report.passes, blocks):
        assert f"{p.predicted_ms:.4f} ms, bound by {p.bound}" in block and f"{p.channels_last_ms:.4f} ms" in block
        faster = p.best_ms < p.predicted_ms / 1.1
        assert (f"{p.predicted_ms / p.best_ms:.2f}x less time" in " ".join(block.split())) == faster


def test_how_nchw_rows_are_read_is_named():
    """Rows of 64 with 'same' padding: each tap's products moved (on descriptor boxes of whole rows with a TMA unit, the
    pointer kernel's aligned rows without), the weight gradient's x boxes read in runs; 2-D rows of 512 with no padding:
    planes as rows; a width stride 2: the forward's rows dealt into 2 phases (descriptor boxes with a TMA unit, pointer
    tiles without), the input gradient's phases' rows of dy each tap's products moved; a long 1-D row strided 2 (Whisper's
    second layer), dealt in segments; stride 3: 2-byte rows; rows of 28 in planes of 784 (``c3d_conv3a``): its volumes
    as rows for the forward and input gradient on descriptor boxes, their seams masked, planes as rows for the weight
    gradient, its seams taken out, and for a forward shallower than its input; a weight gradient moving x's runs
    (rows of 14) runs its MMA transposed, x the first operand, and one reading 2-byte rows (of 7) is bound by its
    loop's waits for its MMAs."""
    same = tritonconv.explain(meta(8, 64, 64, 64), meta(64, 64, 3, 3), padding=1, gpu=GPU).passes
    assert [p.kernel for p in same][:2] == ["descriptor (TMA) GEMM, NC(D)HW rows whole, each tap's products moved"] * 2
    assert "NC(D)HW boxes, x's runs read on in registers, " in same[2].kernel  # the weight gradient's
    same = tritonconv.explain(meta(8, 64, 64, 64), meta(64, 64, 3, 3), padding=1, gpu=GPU, tma=False).passes
    assert [p.kernel.endswith("NC(D)HW rows, aligned, each tap's products moved") for p in same] == [True, True, False]
    valid = tritonconv.explain(meta(8, 32, 64, 512), meta(64, 32, 5, 9), gpu=GPU).passes[0]
    assert valid.kernel.endswith("NC(D)HW planes as rows, aligned")
    strided = tritonconv.explain(meta(8, 64, 64, 64), meta(64, 64, 3, 3), stride=2, padding=1, gpu=GPU).passes
    assert strided[0].kernel == "descriptor (TMA) GEMM, NC(D)HW rows whole, dealt into 2 phases"
    assert strided[1].kernel.endswith("NC(D)HW rows, aligned, each tap's products moved")
    strided = tritonconv.explain(meta(8, 64, 64, 64), meta(64, 64, 3, 3), stride=2, padding=1, gpu=GPU, tma=False).passes
    assert strided[0].kernel.endswith("NC(D)HW rows, aligned, dealt into 2 phases")
    whisper = tritonconv.explain(meta(8, 384, 3000), meta(384, 384, 3), stride=2, padding=1, gpu=GPU).passes[0]
    assert whisper.kernel.endswith("NC(D)HW rows, aligned, dealt into 2 phases, in segments 120 apart")
    three = tritonconv.explain(meta(8, 64, 66, 66), meta(64, 64, 3, 3), stride=3, padding=1, gpu=GPU).passes[0]
    assert three.kernel.endswith("NC(D)HW rows")
    l3 = tritonconv.explain(meta(32, 256, 14, 14), meta(256, 256, 3, 3), padding=1, gpu=GPU).passes[2]  # rows of 14
    assert "x in runs of 2, x moved as the MMA's first operand" in l3.kernel and l3.bound != "MMA waits"
    l4 = tritonconv.explain(meta(32, 512, 7, 7), meta(512, 512, 3, 3), padding=1, gpu=GPU).passes[2]  # rows of 7
    assert "first operand" not in l4.kernel and l4.bound == "MMA waits"  # 2-byte rows: one program an SM waits
    c3d = tritonconv.explain(meta(8, 128, 8, 28, 28), meta(256, 128, 3, 3, 3), padding=1, gpu=GPU).passes
    planes = "descriptor (TMA) GEMM, NC(D)HW planes as rows, x's runs read on in registers, the rows' seams "
    volumes = "descriptor (TMA) GEMM, NC(D)HW volumes as rows, x's runs read on in registers, the rows' and planes' seams"
    assert [p.kernel for p in c3d[:2]] == [volumes + " masked"] * 2 and c3d[2].kernel.startswith(planes + "taken out")
    shallow = tritonconv.explain(meta(8, 128, 8, 28, 28), meta(256, 128, 3, 3, 3), padding=(0, 1, 1), gpu=GPU).passes
    assert shallow[0].kernel == planes + "masked"  # an output shallower than its input: each plane one row


def test_a_weight_gradients_splits_are_said_to_meet_in_the_kernel_or_in_a_second_launch():
    """A weight gradient of many positions and few channel tiles splits them: 64 x 64 positions of 128 channels in more
    splits of 128 x 128 tiles than its last split may read back (past ``geometry.MEET_BYTES``), so a second launch adds
    them; 7 x 7 planes of 512 channels split in 2, met in the kernel."""
    many = tritonconv.explain(meta(16, 128, 64, 64, channels_last=True), meta(128, 128, 3, 3), padding=1,
                              gpu=GPU).passes[2]
    few = tritonconv.explain(meta(32, 512, 7, 7, channels_last=True), meta(512, 512, 3, 3), padding=1, gpu=GPU).passes[2]
    for p, meet in ((many, False), (few, True)):
        cfg = p.config
        assert cfg.split_k > 1 and geometry.splits_meet(cfg.split_k, cfg.block_m, cfg.block_n) == meet
        assert p.kernel.endswith(f"{cfg.split_k} splits " + ("met in the kernel" if meet else "added by a second launch"))


def test_a_tuned_config_in_the_cache_is_the_one_explained():
    x, w = meta(4, 32, 20, 20, channels_last=True), meta(32, 32, 3, 3)
    problem = tuning.Problem.of("conv", "bfloat16", "channels_last", x.shape, w.shape, 1, 1)
    cfg = tuning.Config(64, 32, 32, num_warps=4, num_stages=2)
    cache.store(GPU, {problem.key(): cache.entry(problem, cfg, 0.01)})
    cache.clear_memory()
    forward = tritonconv.explain(x, w, padding=1, gpu=GPU).passes[0]
    assert (forward.config, forward.source, forward.channels_last_ms) == (cfg, "cache", None)
    assert forward.kernel == "pointer GEMM"


def test_stems_depthwise_and_merged_layers_say_what_runs():
    stem = tritonconv.explain(meta(2, 3, 64, 64, channels_last=True), meta(16, 3, 7, 7), stride=2, padding=3, gpu=GPU)
    forward = stem.passes[0]
    assert "packed 3->16 ch" in forward.kernel and forward.problem.weight_shape[1] == 16 and forward.issued > 1.5
    # a ViT's patch embedding: one GEMM on 768 packed channels where, unpacked, it walked its 256 taps of 3 channels
    # padded to 16 (NCHW on a GPU; channels-last, it folded its 768 taps per element, which the H200 measured at
    # 15e12 multiply-adds a second): its fitted constants, shipped
    with pytest.MonkeyPatch.context() as m:
        m.setattr(cache, "shipped_dir", SHIPPED)
        vit = tritonconv.explain(meta(32, 3, 224, 224), meta(768, 3, 16, 16), stride=16, gpu="NVIDIA H200")
        m.setattr(geometry, "PACK_ISSUED", 0.0)
        unpacked = tritonconv.explain(meta(32, 3, 224, 224), meta(768, 3, 16, 16), stride=16, gpu="NVIDIA H200")
        folded = tritonconv.explain(meta(32, 3, 224, 224, channels_last=True), meta(768, 3, 16, 16), stride=16,
                                    gpu="NVIDIA H200")
    assert all("descriptor (TMA) GEMM, packed 3->768 ch" in p.kernel and p.issued == 1.0 for p in vit.passes[::2])
    assert "taps folded" in folded.passes[0].kernel and vit.fitted
    assert "taps folded" not in unpacked.passes[0].kernel and unpacked.passes[0].issued > 5
    for alternative in (unpacked, folded):
        assert all(p.predicted_ms < q.predicted_ms / 5 for p, q in zip(vit.passes[::2], alternative.passes[::2]))
    dw = tritonconv.explain(meta(2, 32, 14, 14), meta(32, 1, 3, 3), padding=1, groups=32, gpu=GPU)
    assert [p.problem.kind for p in dw.passes] == ["conv_dw", "conv_dw_t", "conv_dw_wgrad"]
    # 16 bits, 9 taps: the band on the tensor cores, rows of 14 (28 bytes) read in 4-byte runs, windows of 64 for 9
    # taps and segments of 4 x 8 over 14 x 14 planes
    assert all(p.kernel.startswith("depthwise (tensor cores, banded taps), 3 x 3 taps banded") for p in dw.passes)
    assert all(p.kernel.endswith("NC(D)HW rows in runs") and 64 / 9 < p.issued < 10 for p in dw.passes)
    with pytest.MonkeyPatch.context() as m:  # the FMA kernels, where the band does not run (fewer taps than this)
        m.setattr(tuning, "BANDED_TAPS", 10)
        dw = tritonconv.explain(meta(2, 32, 14, 14), meta(32, 1, 3, 3), padding=1, groups=32, gpu=GPU)
        wide = tritonconv.explain(meta(2, 32, 16, 16), meta(32, 1, 3, 3), padding=1, groups=32, gpu=GPU)
    # rows of 14 (28 bytes): runs of 2 elements, declined (kernels.depthwise.row_runs)
    assert all(p.kernel == "depthwise (FMA), NC(D)HW rows" for p in dw.passes)
    assert [p.issued for p in dw.passes] == [1.0, 1.0, 12 / 9]  # the weight gradient's 9 taps in tiles of 4
    assert [p.kernel for p in wide.passes] == ["depthwise (FMA), NC(D)HW rows, in runs of 8"] * 2 + [
        "depthwise (FMA), NC(D)HW rows, in runs of 8, one width tap's taps a program"]
    assert [p.issued for p in wide.passes] == [1.0, 1.0, 1.0]  # one tap a program
    pointwise = tritonconv.explain(meta(2, 16, 4, 6, 6, dtype=torch.float32), meta(8, 16, 1, 1, 1, dtype=torch.float32),
                                   gpu=GPU)
    assert all("axes merged" in p.kernel for p in pointwise.passes)


def test_narrow_groups_are_explained_merged_and_predicted_faster_than_as_written(monkeypatch):
    """ResNeXt-50's first-stage 3 x 3 (32 groups of 4, batch 32, bf16): every pass one GEMM with 4 groups merged,
    issuing 4x the useful multiply-adds on tiles, predicted (the H200's shipped constants) faster than as written:
    5x where that folds its taps (the forward), 2x the weight gradient (its 16 x 16 tiles bound by their loop's
    issue), 2.5x where its tiles are 4 channels of 16 on both sides (the input gradient); the block-diagonal weight's
    launches counted."""
    monkeypatch.setattr(cache, "shipped_dir", SHIPPED)
    x, w = meta(32, 128, 56, 56, channels_last=True), meta(128, 4, 3, 3)
    merged = tritonconv.explain(x, w, padding=1, groups=32, gpu="NVIDIA H200")
    monkeypatch.setattr(geometry, "GROUP_MERGE_CHANNELS", 0)
    written = tritonconv.explain(x, w, padding=1, groups=32, gpu="NVIDIA H200")
    assert all("groups merged 4 at a time" in p.kernel and p.problem.groups == 8 for p in merged.passes)
    assert all(p.issued == pytest.approx(4, rel=0.01) for p in merged.passes)
    assert ["taps folded" in p.kernel for p in written.passes] == [True, False, True]
    speedups = [q.predicted_ms / p.predicted_ms for p, q in zip(merged.passes, written.passes)]
    assert speedups[0] > 5 and speedups[1] > 2.5 and speedups[2] > 2, speedups
    device = costmodel.device_for("NVIDIA H200")
    for p in merged.passes:
        launches = 1e3 * costmodel.predict(p.problem, p.config, device)
        assert launches + 1e3 * device.t0 < p.predicted_ms < launches + 3e-3 + 1e3 * 2 * device.t0


def test_real_tensors_and_unbatched_inputs_work_and_bad_arguments_get_the_convolutions_errors():
    x, w = torch.randn(3, 9, 11), torch.randn(5, 3, 3, 3)  # unbatched, on the CPU: nothing runs
    report = tritonconv.explain(x, w, gpu=GPU)
    assert report.written.input_shape == (1, 3, 9, 11) and report.passes[0].problem.dtype == "float32"
    with pytest.raises(ValueError, match="weight"):
        tritonconv.explain(meta(2, 4, 9, 9), meta(8, 5, 3, 3), gpu=GPU)  # 5 input channels against 4
    with pytest.raises(ValueError, match="explain"):
        tritonconv.explain(meta(2, 4, 9), meta(8, 4), gpu=GPU)
    with pytest.raises(TypeError, match="dtype"):
        tritonconv.explain(meta(2, 4, 9, 9), meta(8, 4, 3, 3, dtype=torch.float16), gpu=GPU)
    layer = torch.nn.Conv2d(4, 8, 3)  # a module where a tensor goes: named, and where a module goes
    with pytest.raises(TypeError, match=r"`input` to be a torch.Tensor, got Conv2d: .*explain_model"):
        tritonconv.explain(layer, meta(2, 4, 9, 9), gpu=GPU)
    with pytest.raises(TypeError, match="`weight` to be a torch.Tensor, got Conv2d"):
        tritonconv.explain(meta(2, 4, 9, 9), layer, gpu=GPU)
    with pytest.raises(TypeError, match="`model` to be a module or a function, got Tensor"):
        tritonconv.explain_model(meta(2, 4, 9, 9), layer, gpu=GPU)


def test_a_gpu_without_tma_gets_no_descriptor_kernels():
    x, w = meta(8, 64, 28, 30, channels_last=True), meta(64, 64, 3, 3)
    assert "descriptor" in tritonconv.explain(x, w, padding=1, gpu=GPU).passes[0].kernel
    for report in (tritonconv.explain(x, w, padding=1, gpu="NVIDIA A100-SXM4-80GB"),
                   tritonconv.explain(x, w, padding=1, gpu=GPU, tma=False)):
        assert not any("descriptor" in p.kernel or p.config.tile_h or p.best.tile_h for p in report.passes)


def test_the_shipped_h200_constants_are_named_as_fitted(monkeypatch):
    monkeypatch.setattr(cache, "shipped_dir", SHIPPED)
    report = tritonconv.explain(meta(2, 16, 12, 12, channels_last=True), meta(16, 16, 3, 3), padding=1)
    assert report.fitted and report.gpu == "NVIDIA H200" and "fitted on its measured rows" in str(report)
    assert geometry.layout_of(meta(2, 16, 12, 12, channels_last=True)) == report.written.layout == "channels_last"


def test_an_h100_is_explained_with_the_h200s_fit_carried_and_says_so(monkeypatch):
    monkeypatch.setattr(cache, "shipped_dir", SHIPPED)
    x, w = meta(2, 16, 12, 12, channels_last=True), meta(16, 16, 3, 3)
    report = tritonconv.explain(x, w, padding=1, gpu="NVIDIA H100 80GB HBM3")
    assert not report.fitted and report.constants == costmodel.provenance(report.gpu) and "NVIDIA H200's fit" in str(report)
    model = tritonconv.explain_model(torch.nn.Conv2d(16, 16, 3).to("meta", torch.bfloat16), x, gpu=report.gpu)
    assert not model.fitted and "carried to it by their datasheets" in " ".join(str(model).split())


def test_fp32_is_explained_in_the_precision_torch_allows(monkeypatch):
    """fp32 under torch's matmul precision "high": the problems are TF32's, channels-last passes take descriptor
    tiles, and the text says TF32; under "highest" IEEE products on the pointer kernel."""
    x, w = meta(8, 64, 28, 28, dtype=torch.float32, channels_last=True), meta(64, 64, 3, 3, dtype=torch.float32)
    ieee = tritonconv.explain(x, w, padding=1, gpu=GPU)
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")
    tf32 = tritonconv.explain(x, w, padding=1, gpu=GPU)
    assert not any(p.problem.tf32 or p.config.tile_h for p in ieee.passes) and "TF32" not in str(ieee)
    assert all(p.problem.tf32 and p.config.tile_h for p in tf32.passes) and "float32 (TF32 products)" in str(tf32)
    assert all(t.predicted_ms < i.predicted_ms for t, i in zip(tf32.passes, ieee.passes))


def test_fp8_layers_are_explained_forward_only():
    """``tritonconv.fp8`` operands: the forward alone (inference), as ``fp8.conv2d`` runs it, a stem packed into chunks
    of 32 channels (fp8's MMA reduction) on the descriptor kernel; weights of another dtype and depthwise layers refused."""
    fp8 = torch.float8_e4m3fn
    x, w = torch.empty(32, 3, 224, 224, device="meta", dtype=fp8), torch.empty(64, 3, 7, 7, device="meta", dtype=fp8)
    found = tritonconv.explain(x, w, stride=2, padding=3)
    (forward,) = found.passes
    assert found.op == "fp8.conv2d" and forward.name == "forward" and forward.problem.weight_shape == (64, 32, 4, 4)
    assert forward.kernel == "descriptor (TMA) GEMM, packed 3->32 ch" and "float8_e4m3fn" in str(found)
    with pytest.raises(TypeError, match="weight"):
        tritonconv.explain(x, w.to(torch.float8_e5m2), stride=2, padding=3)
    with pytest.raises(ValueError, match="depthwise"):
        tritonconv.explain(torch.empty(2, 32, 8, 8, device="meta", dtype=fp8),
                           torch.empty(32, 1, 3, 3, device="meta", dtype=fp8), padding=1, groups=32)


class _Shared(torch.nn.Module):
    """A stem, a frozen 3x3 layer called twice, a transposed layer and a depthwise tritonconv layer."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 16, 7, stride=2, padding=3)
        self.norm = torch.nn.BatchNorm2d(16)
        self.frozen = torch.nn.Conv2d(16, 16, 3, padding=1).requires_grad_(False)
        self.up = torch.nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dw = tritonconv.nn.Conv2d(8, 8, 3, padding=1, groups=8)

    def forward(self, x):
        x = self.norm(self.stem(x))
        return self.dw(self.up(self.frozen(self.frozen(x).relu())))


def test_a_models_convolutions_are_explained_layer_by_layer_without_running_it():
    """Every convolution of a model, torch's and tritonconv's, each distinct one once with its count of calls, is
    :func:`tritonconv.explain`'s answer for its operands; a step runs the passes it needs (no input gradient for the
    model's input, no weight gradient for a frozen layer; a transposed layer's forward is its transpose's input
    gradient); the model's parameters and buffers are untouched; the table fits 100 columns."""
    torch.manual_seed(0)
    model = _Shared().to(torch.bfloat16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = tritonconv.explain_model(model, meta(4, 3, 32, 32), gpu=GPU)
    assert [(layer.op, layer.calls) for layer in report.layers] == [("conv", 1), ("conv", 2), ("conv_transpose", 1),
                                                                     ("conv", 1)]
    assert [sorted(layer.runs) for layer in report.layers] == [
        ["forward", "weight gradient"], ["forward", "input gradient"],
        ["forward", "input gradient", "weight gradient"], ["forward", "input gradient", "weight gradient"]]
    stem, frozen, up, dw = report.layers
    assert stem.explanation == tritonconv.explain(meta(4, 3, 32, 32), meta(16, 3, 7, 7), stride=2, padding=3, gpu=GPU)
    assert frozen.explanation == tritonconv.explain(meta(4, 16, 16, 16), meta(16, 16, 3, 3), padding=1, gpu=GPU)
    transposed = tritonconv.explain(meta(4, 8, 32, 32), meta(16, 8, 2, 2), stride=2, gpu=GPU)  # the conv it transposes
    assert up.runs == {"forward": transposed.passes[1], "input gradient": transposed.passes[0],
                       "weight gradient": transposed.passes[2]}
    assert dw.explanation == tritonconv.explain(meta(4, 8, 32, 32), meta(8, 1, 3, 3), padding=1, groups=8, gpu=GPU)
    assert math.isclose(report.ms, sum(layer.calls * p.predicted_ms for layer in report.layers
                                       for p in layer.runs.values()))
    assert report.channels_last_ms < report.ms and not report.fitted and not report.left
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # num_batches_tracked included
    text = str(report)
    assert max(map(len, text.splitlines())) <= 100
    assert ("with channels-last activations" in text) == (report.channels_last_ms < report.ms / 1.05)
    assert all(layer.text() in text for layer in report.layers) and "convT2d 16->8 k2x2/2 4x16x16 bf16 NC" in text
    converted = tritonconv.explain_model(tritonconv.nn.convert(copy.deepcopy(model)), meta(4, 3, 32, 32), gpu=GPU)
    assert [layer.explanation.written.layout for layer in converted.layers] == \
        [layer.explanation.written.layout for layer in report.layers]  # NC(D)HW throughout, as torch's modules
    inference = tritonconv.explain_model(model, meta(4, 3, 32, 32), gpu=GPU, training=False)
    assert [sorted(layer.runs) for layer in inference.layers] == [["forward"]] * 4
    video = torch.nn.Conv3d(3, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3)).to(torch.bfloat16)
    rows = str(tritonconv.explain_model(video, meta(2, 3, 16, 112, 112), gpu=GPU)).splitlines()
    row = next(i for i, line in enumerate(rows) if line.startswith("  1     1  "))
    words = "conv3d 3->64 k3x7x7/1x2x2 2x16x112x112 bf16 NC"  # past the column's 44: it goes on under itself
    assert rows[row][11:55].rstrip() + " " + rows[row + 1].strip() == words and rows[row + 1].startswith(" " * 11)


def test_functions_routed_calls_real_tensors_and_channels_last_models():
    """A plain function of real tensors (no gradient wanted: forwards only), the same under
    ``tritonconv.enabled()`` (tritonconv's custom ops recorded instead of torch's), and a channels-last model, whose
    report gives no channels-last advice; a model with no convolution is an error."""
    torch.manual_seed(0)
    x, w = torch.randn(2, 4, 9, 11), torch.randn(6, 4, 3, 3)

    def fn(x):
        return torch.nn.functional.conv2d(x, w, padding=1).relu()

    plain = tritonconv.explain_model(fn, x, gpu=GPU)
    with tritonconv.enabled():
        routed = tritonconv.explain_model(fn, x, gpu=GPU)
    assert plain == routed and len(plain.layers) == 1 and list(plain.layers[0].runs) == ["forward"]
    assert plain.layers[0].explanation == tritonconv.explain(x, w, padding=1, gpu=GPU)
    model = _Shared().to(torch.bfloat16).to(memory_format=torch.channels_last)
    report = tritonconv.explain_model(model, meta(4, 3, 32, 32, channels_last=True), gpu=GPU)
    assert all(layer.explanation.written.layout == "channels_last" for layer in report.layers)
    assert report.channels_last_ms == report.ms and "channels-last activations" not in str(report)
    nchw = tritonconv.explain_model(torch.nn.Conv2d(64, 64, 3, padding=1).to(torch.bfloat16), meta(32, 64, 56, 56),
                                    gpu=GPU)  # a layer whose NCHW passes the model puts slower
    assert f"with channels-last activations: {nchw.channels_last_ms:.4f} ms" in str(nchw)
    assert nchw.channels_last_ms < nchw.ms / 1.05 and str(nchw).startswith("1 convolution call, 1 distinct")
    fp8 = tritonconv.explain_model(tritonconv.fp8.convert(torch.nn.Sequential(torch.nn.Conv2d(32, 64, 3))),
                                   meta(2, 32, 12, 12), gpu=GPU)  # quantised: forward only, in fp8
    assert [(layer.op, list(layer.runs)) for layer in fp8.layers] == [("conv_fp8", ["forward"])]
    assert "conv2d 32->64 k3x3 2x12x12 fp8e4m3" in str(fp8)
    factorized = tritonconv.explain_model(tritonconv.nn.Conv2Plus1d(8, 16, 3, padding=1), meta(2, 8, 4, 6, 6,
                                                                                                dtype=torch.float32))
    assert [layer.explanation.written.weight_shape[2:] for layer in factorized.layers] == [(1, 3, 3), (3, 1, 1)]
    with pytest.raises(ValueError, match="ran no convolution"):
        tritonconv.explain_model(torch.nn.Linear(3, 3), torch.randn(2, 3))
    empty = torch.randn(4, 0, 3, 3)  # no input channels: torch runs it, tritonconv leaves it to torch (as routed)
    left = tritonconv.explain_model(lambda x: torch.nn.functional.conv2d(x, empty), torch.randn(1, 0, 8, 8), gpu=GPU)
    assert not left.layers and left.left == ("1 x conv (1, 0, 8, 8) (4, 0, 3, 3): conv2d: expected `input` with at "
                                             "least one channel, got shape (1, 0, 8, 8)",)
    assert str(left).startswith("0 convolution calls") and str(left).endswith(left.left[0])
    with pytest.raises(ValueError, match="reads its tensors' values"):
        tritonconv.explain_model(lambda x: fn(x) if fn(x).sum() > 0 else x, x)
