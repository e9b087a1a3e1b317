"""Every kernel variant compiles for Hopper (sm_90) and Ampere (sm_80) GPUs, with or without one (the 64-bit-offset
variants for Hopper, the GPU's arch).

The interpreter runs the kernels' Python, not Triton's compiler: a construct the compiler
rejects (a type mismatch between branches, an unsupported builtin) would pass every CPU
test and fail on the first GPU call. Here the launches of small CPU problems are recorded
(not run) and each distinct kernel specialisation is compiled to a cubin with Triton's own
compiler (the ptxas shipped in its wheel), specialised as a GPU launch would be
(benchmarks.static). Nothing here needs a GPU or the interpreter, so a GPU session runs this
file first: a kernel its Triton version cannot compile shows in seconds.
"""

import dataclasses
import json
import os
import re
import warnings

import pytest
import torch
import triton

import tritonconv
from benchmarks import static
from tritonconv import costmodel, dispatch, geometry, shapes, tune, tuning
from tritonconv._checks import conv_spec

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
pytest.importorskip("triton.backends.nvidia")


def problems():
    """Small calls reaching every kernel and every constexpr branch the GPU can take."""
    g = torch.Generator().manual_seed(0)

    def rand(*shape, dtype=torch.float16, fmt=torch.contiguous_format):
        return torch.randn(*shape, generator=g).to(dtype).contiguous(memory_format=fmt)

    x = rand(2, 4, 7, 6, fmt=torch.channels_last).requires_grad_()
    w = rand(6, 2, 3, 3).requires_grad_()
    b = rand(6).requires_grad_()
    # 2 channels per group: folded taps, activation, flip; backward: transposed pass and weight gradient
    tritonconv.conv2d(x, w, b, stride=2, padding=1, groups=2, activation="gelu", flip=True).sum().backward()
    for act in ("relu6", "hardswish", "sigmoid", "tanh", "hardsigmoid", "leaky_relu(0.2)", "gelu_tanh", "mish", "elu",
                "selu"):  # the other activations' epilogues, forward
        tritonconv.conv2d(x.detach(), w.detach(), b.detach(), padding=1, groups=2, activation=act)
    xb = rand(1, 20, 5, 7, dtype=torch.bfloat16).requires_grad_()  # tap by tap; bf16 tl.dot; NCHW output
    tritonconv.conv2d(xb, rand(4, 20, 3, 3, dtype=torch.bfloat16), padding=1, activation="silu").sum().backward()
    x32 = rand(2, 20, 9, dtype=torch.float32)  # fp32 ieee dot, split reduction, relu
    spec = conv_spec("conv1d", 1, x32, rand(5, 20, 3, dtype=torch.float32), None, 1, 1, 1, 1)
    dispatch.conv_forward(x32, rand(5, 20, 3, dtype=torch.float32), None, spec, "relu", False,
                          tuning.Config(16, 16, 16, split_k=2))
    # a split weight gradient on the pointer kernel: fp32 partials added by the second launch, 16-bit ones met in the
    # kernel (weight_grad.pointer_meets)
    dispatch.conv_grad_weight(rand(2, 5, 9, dtype=torch.float32), x32, spec, False, tuning.Config(16, 16, 16, split_k=2))
    x16 = rand(2, 20, 9)
    spec16 = conv_spec("conv1d", 1, x16, rand(5, 20, 3), None, 1, 1, 1, 1)
    dispatch.conv_grad_weight(rand(2, 5, 9), x16, spec16, False, tuning.Config(16, 16, 16, split_k=2))
    x1 = rand(2, 3, 11).requires_grad_()  # 1-D on 3 channels: the weight gradient folds its width taps
    tritonconv.conv1d(x1, rand(4, 3, 5).requires_grad_(), padding=2).sum().backward()
    xd = rand(2, 3, 9, 8, fmt=torch.channels_last).requires_grad_()  # depthwise 3 x 3, multiplier 2: the banded
    # kernel's segments of several rows (forward, weight gradient), the FMA kernel's input gradient
    tritonconv.conv2d(xd, rand(6, 1, 3, 3).requires_grad_(), rand(6), padding=1, groups=3,
                      activation="relu").sum().backward()
    xf = rand(2, 4, 7, 6, fmt=torch.channels_last).requires_grad_()  # depthwise 2 x 3: FMA loops, every pass
    tritonconv.conv2d(xf, rand(4, 1, 2, 3).requires_grad_(), rand(4), padding=1, groups=4,
                      activation="relu").sum().backward()
    xr = rand(1, 8, 6, 16).requires_grad_()  # NCHW 3 x 3: FMA loops over rows read in aligned runs
    tritonconv.conv2d(xr, rand(8, 1, 3, 3).requires_grad_(), padding=1, groups=8).sum().backward()
    x7 = rand(1, 8, 9, 16).requires_grad_()  # NCHW 7 x 7: the banded kernel's windows of several rows read in runs
    tritonconv.conv2d(x7, rand(8, 1, 7, 7).requires_grad_(), rand(8), padding=3, groups=8).sum().backward()
    x4 = rand(1, 8, 9, 14)  # (rows of 4-byte runs)
    tritonconv.conv2d(x4, rand(8, 1, 7, 7), padding=3, groups=8)
    xw = rand(2, 8, 3, 20, fmt=torch.channels_last).requires_grad_()  # depthwise, 1 x 9 taps: the banded kernel,
    # forward (bias, activation, flip) and input gradient; bf16 NCL, dilated, no bias
    tritonconv.conv2d(xw, rand(8, 1, 1, 9).requires_grad_(), rand(8), padding=(0, 4), groups=8, activation="silu",
                      flip=True).sum().backward()
    xn = rand(1, 8, 30, dtype=torch.bfloat16).requires_grad_()
    tritonconv.conv1d(xn, rand(8, 1, 9, dtype=torch.bfloat16).requires_grad_(), padding=8, dilation=2,
                      groups=8).sum().backward()
    x64 = rand(1, 4, 5, 5, dtype=torch.float64).requires_grad_()  # fp64 accumulation, the transposed pass; 4
    # channels at stride 2: every pass packs positions into 16 channels (the pack and unpack launches)
    tritonconv.conv2d(x64, rand(4, 4, 3, 3, dtype=torch.float64).requires_grad_(), stride=2, padding=1,
                      activation="elu").sum().backward()  # (and fp64's exp(z) - 1, through log)
    xs = rand(1, 3, 4, 6, 6)  # (2+1)D fused: mid and output activations, both biases
    tritonconv.conv2plus1d(xs, rand(5, 3, 1, 3, 3), rand(4, 5, 3, 1, 1), rand(5), rand(4), padding=1,
                           mid_activation="relu", activation="gelu", fused=True)


@pytest.mark.parametrize("arch", [90, 80])  # Hopper (wgmma), Ampere (mma)
def test_every_kernel_variant_compiles(monkeypatch, arch):
    # the GPU's default tiles (the interpreter's are far larger: slow to compile, never run on a GPU)
    monkeypatch.setattr(tuning, "choose", lambda problem, *_: tuning.heuristic(problem, interpret=False))
    fused_config = tuning.fused_2plus1d_config
    monkeypatch.setattr(tuning, "fused_2plus1d_config", lambda *sizes, interp, **kw: fused_config(*sizes, interp=False, **kw))
    with static.recording(execute=False) as launches:
        problems()
    variants = {}
    for fn, args, kwargs, _ in launches:
        key = (fn.fn.__name__, tuple(sorted((k, str(v)) for k, v in kwargs.items())),
               tuple(str(a.dtype) for a in args if isinstance(a, torch.Tensor)))
        variants.setdefault(key, (fn, args, kwargs))
        # the same launch with 64-bit offsets, for the GPU's arch only (address arithmetic, the same on either)
        if "INT64" in kwargs and arch == 90:
            variants.setdefault(key + ("int64",), (fn, args, {**kwargs, "INT64": True}))
        if kwargs.get("DOT_PRECISION") == "ieee":  # fp32 under torch.set_float32_matmul_precision("high")
            variants.setdefault(key + ("tf32",), (fn, args, {**kwargs, "DOT_PRECISION": "tf32"}))
    names = {key[0] for key in variants}
    assert names == {"_conv_kernel", "_conv_weight_grad_kernel", "_depthwise_kernel", "_depthwise_weight_grad_kernel",
                     "_banded_kernel", "_banded_weight_grad_kernel", "_sum_partials_kernel", "_conv2plus1d_kernel",
                     "_pack_kernel", "_unpack_kernel"}, names
    warn_once = getattr(getattr(triton, "_utils", None), "warn_once", None)
    if warn_once is not None:
        warn_once.cache_clear()  # (Triton warns of each deprecation once a process)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for fn, args, kwargs in variants.values():
            compiled = static.compile_for(arch, fn, args, kwargs)
            assert compiled.asm["cubin"], fn.fn.__name__
    # nothing tritonconv compiles is something this Triton deprecates (a new version's warnings fail here first)
    assert not [str(w.message) for w in caught if f"{os.sep}triton{os.sep}" in w.filename]


def test_every_launch_asks_for_fused_multiply_adds_whatever_tritons_default(monkeypatch):
    """Every kernel family's launch asks for fused multiply-adds (``_runtime.COMPILE_OPTIONS``), so it compiles the same
    where Triton's default is off (``TRITON_DEFAULT_FP_FUSION=0``; Triton 3.10's default) and Triton 3.9 has nothing to
    warn about (its warning that the default will change): each kernel's PTX multiplies and adds in one instruction."""
    monkeypatch.setattr(tuning, "choose", lambda problem, *_: tuning.heuristic(problem, interpret=False))
    with static.recording(execute=False) as launches:
        problems()
        for kind in ("conv", "conv_wgrad"):  # the descriptor kernels
            problem = tuning.Problem.of(kind, "bfloat16", "channels_last", (1, 16, 8, 8), (16, 16, 3, 3), 1, 1)
            tune.runner(problem, torch.device("cpu"))(tuning.heuristic(problem, interpret=False, tma=True))
    assert len({fn.fn.__name__ for fn, _, _, _ in launches}) == 12
    assert all(kwargs.get("enable_fp_fusion") is True for _, _, kwargs, _ in launches)
    monkeypatch.setenv("TRITON_DEFAULT_FP_FUSION", "0")
    warn_once = getattr(getattr(triton, "_utils", None), "warn_once", None)
    if warn_once is not None:
        warn_once.cache_clear()  # (it warns once a process)
    fn, args, kwargs, _ = next(launch for launch in launches if launch[0].fn.__name__ == "_depthwise_kernel")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ptx = static.compile_for(90, fn, args, kwargs).asm["ptx"]
    assert "fma.rn.f32" in ptx
    assert not [w for w in caught if "FP_FUSION" in str(w.message)]
    fused_off = {k: v for k, v in kwargs.items() if k != "enable_fp_fusion"}  # what Triton's default compiles now
    assert "fma.rn.f32" not in static.compile_for(90, fn, args, fused_off).asm["ptx"]


def test_defaults_fitted_to_a_smaller_gpu_compile_within_its_shared_memory():
    """The default a GPU with less shared memory takes (``tuning.fit_shared``) compiles within it where the heuristic's
    does not: for sm_86 (Ampere and Ada cards' 99 KiB a block), ``unet3d_64cube``'s NCDHW weight gradient (114,688
    bytes: a first call there stopped with Triton's ``OutOfResources``) and ``ct_anisotropic``'s (106,496: its dealt
    operand laid out anew for the warp-level MMA through shared memory, :func:`tritonconv._tile.fragment`); and the
    suite's other NC(D)HW launches whose tiles ptxas puts furthest past their estimate (``resnet50_l2_3x3s2``'s NCHW
    weight gradient, ``ct_anisotropic``'s NCDHW input gradient) fit too."""
    arch, limit = 86, 101376
    probs = dict(tune.suite_problems(json.loads((static.ROOT / "shapes.json").read_text())))
    over = 0
    for name, kind in (("unet3d_64cube", "conv_wgrad"), ("resnet50_l2_3x3s2", "conv_wgrad"), ("ct_anisotropic", "conv_t"),
                       ("ct_anisotropic", "conv_wgrad")):
        problem = tuning.Problem.of(kind, "bfloat16", "contiguous", **probs[name])
        own = tuning.heuristic(problem, False, 82)
        shared = []
        for cfg in (own, tuning.default(problem, 82, False, None, limit)):
            with static.recording(execute=False) as launches:
                tune.runner(problem, torch.device("cpu"))(cfg)
            fn, args, kwargs, _ = next(launch for launch in launches if launch[0].fn.__name__ not in static.EPILOGUES)
            shared.append(static.compile_for(arch, fn, args, kwargs).metadata.shared)
        assert shared[1] <= limit, (name, kind, shared)
        over += shared[0] > limit
    assert over == 2


def test_default_configs_do_not_spill_on_hopper(capsys):
    """The heuristic's tiles fit the register file (ptxas reports no spills) for representative layers:
    a 3x3 layer read channels-last and NCHW (written back NCHW), a folded stem, a depthwise layer."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    picked = {"resnet50_conv1", "resnet50_l3_3x3", "mobilenet_dw_3x3"}
    mini = {"conv2d": [e for e in suite["conv2d"] if e["name"] in picked]}
    rows = static.report(90, ["bf16"], ["channels_last", "contiguous"], ["conv", "conv_t", "conv_wgrad"], mini)
    assert len(rows) == 3 * 2 * 3
    assert {r["instruction"] for r in rows if not r["kind"].startswith("conv_dw")} == {"wgmma"}
    assert [r for r in rows if r["spill_store_bytes"]] == []
    # a strided 3-D input gradient: the phase's tap table on top of 128 x 64 tiles (spilled on 4 warps)
    strided = {"conv3d": [e for e in suite["conv3d"] if e["name"] == "r3d18_l2_s2"]}
    assert [r["spill_store_bytes"] for r in static.report(90, ["bf16"], ["channels_last"], ["conv_t"], strided)] == [0]
    # NC(D)HW rows read whole with each width tap's products apart (a second accumulator at its limit, 64 elements a
    # thread): 254 registers on Triton 3.9, 253 on 3.6 (which spilled 36 B in the loop over width taps until
    # 2026-12-01); a few bytes outside the main loop would be tolerable, none in it
    apart = {"conv2d": [e for e in suite["conv2d"] if e["name"] == "deeplab_3x3_d2"]}
    (row,) = static.report(90, ["bf16"], ["contiguous"], ["conv"], apart)
    assert row["kernel"] == "_conv_tma_kernel" and row["loop_local"] == 0 and row["spill_store_bytes"] <= 64, row


def test_one_tap_forwards_do_not_spill_in_their_loop_on_ampere():
    """Before Hopper a one-tap forward's 64 x 128 tile runs 8 warps where its input channels are no multiple of 16
    (``tuning.hoisted_rows``: its loads 2 bytes wide, a 24-channel layer spilled 1,020 B in its loop on 4), 4 where they
    are: ``resnet50_ds_1x1s2``'s, which spilled 396 B on 4 warps (51 local accesses a step) while its weight was read 2
    bytes at a time, now none, in 16-byte copies. Layers with taps keep 4 warps on such tiles, and Hopper keeps its
    descriptor tiles."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    mini = {"conv2d": [e for e in suite["conv2d"] if e["name"] == "resnet50_ds_1x1s2"]}
    (row,) = static.report(80, ["bf16"], ["channels_last"], ["conv"], mini)
    assert (row["kernel"], row["num_warps"], row["instruction"]) == ("_conv_kernel", 4, "mma")
    assert row["spill_store_bytes"] == 0 and row["loop_local"] == 0 and row["loop_async_bytes"] == 16, row

    def layer(k: int, channels: int = 512) -> tuning.Problem:  # 1568 positions, 512 output channels: 64 x 128 tiles
        return tuning.Problem.of("conv", "bfloat16", "channels_last", input_shape=(32, channels, 7, 7),
                                 weight_shape=(512, channels, k, k), output_shape=(32, 512, 7, 7), stride=[1, 1],
                                 padding=[k // 2] * 2, dilation=[1, 1], groups=1)

    three, one, narrow = layer(3), layer(1), layer(1, 24)
    assert (tuning.heuristic(three, False).block_m, tuning.heuristic(three, False).block_n) == (64, 128)
    assert [tuning.heuristic(p, False).num_warps for p in (three, one, narrow)] == [4, 4, 8]
    assert (tuning.heuristic(narrow, False).block_m, tuning.heuristic(narrow, False).block_n) == (64, 128)
    assert tuning.heuristic(one, False, tma=True).num_warps == 4  # Hopper: its descriptor tiles


def test_one_tap_weights_in_torchs_layout_are_read_16_bytes_at_a_time():
    """A 1 x 1 weight in torch's layout, ``(C_out, C_in, 1, 1)`` (what ``nn.Conv2d`` holds), has tap strides of 1;
    passed as they were, they hid from the compiler that each tap's channels start on 16 bytes, and the pointer
    kernel loaded the weight 2 bytes at a time (sm_80 ``resnet50_l1_1x1``'s forward: 364 instructions a step where its
    16-byte loop issues 186). A one-tap axis is passed with stride 0 (``geometry.tap_strides``): the forward and the
    input gradient read it in 16-byte copies, channels-last on Ampere and NCHW on Hopper, where only the NCHW rows of a
    strided input are still read 2 bytes at a time."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    mini = {"conv2d": [e for e in suite["conv2d"] if e["name"] in ("resnet50_l1_1x1", "resnet50_ds_1x1s2")]}
    rows = static.report(80, ["bf16"], ["channels_last"], ["conv", "conv_t"], mini)
    assert len(rows) == 4 and {r["kernel"] for r in rows} == {"_conv_kernel"}
    assert [(r["name"], r["kind"], r["loop_loads"]) for r in rows if r["loop_loads"] or r["loop_async_bytes"] != 16] == []
    mini["conv2d"] = [e for e in mini["conv2d"] if e["name"] == "resnet50_ds_1x1s2"]
    for row in static.report(90, ["bf16"], ["contiguous"], ["conv", "conv_t"], mini):
        cfg = row["config"]
        x_elements = cfg["block_m"] * cfg["block_k"] // (32 * cfg["num_warps"])  # a thread's share of x's tile
        assert row["kernel"] == "_conv_kernel" and row["loop_async_bytes"] == 16, row
        assert (row["loop_loads"], row["loop_load_bytes"]) == (x_elements, 2), row


@pytest.mark.parametrize("arch", [90, 80])
def test_fp32_channels_last_tiles_do_not_spill_in_their_loop(arch):
    """fp32 forwards and input gradients read channels-last step 16 channels at most, 128 x 64 tiles and up on 8
    warps: at 64-wide steps their FMA loops spilled 2-10 KB a thread on sm_90, 1,000-6,000 local accesses a step."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    names = {"resnet50_l1_3x3", "tcn_k3"}
    mini = {op: [e for e in suite[op] if e["name"] in names] for op in ("conv1d", "conv2d")}
    rows = static.report(arch, ["fp32"], ["channels_last"], ["conv", "conv_t"], mini)
    assert len(rows) == 4 and {r["instruction"] for r in rows} == {"fma"}
    assert [(r["name"], r["kind"], r["loop_local"]) for r in rows if r["loop_local"]] == []
    assert [r for r in rows if r["spill_store_bytes"] > 32] == []


def test_tf32_layers_take_descriptor_tiles_that_read_shared_memory(monkeypatch):
    """fp32 multiplied in TF32 (torch's matmul precision "high"): the heuristic gives channels-last layers the
    descriptor kernels, 32-wide steps; they compile to wgmma without spilling, and the forward and input-gradient
    passes read both MMA operands from shared memory, ``resnet50_l3_3x3``'s patches of 16 images transposed
    (positions as the MMA's columns) as 16-bit tiles are (through registers they issued 1.9-2.2 warp instructions per
    1000 multiply-adds where they issue 1.5-1.8; the pointer kernel's 16-wide TF32 tiles, 7.4-9.6). NC(D)HW
    ``resnet50_l1_3x3`` takes them too, its first operand through registers; no MMA is serialized."""
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    mini = {"conv2d": [e for e in suite["conv2d"] if e["name"] in ("resnet50_l1_3x3", "resnet50_l3_3x3")]}
    rows = static.report(90, ["fp32"], ["channels_last"], ["conv", "conv_t", "conv_wgrad"], mini)
    assert {r["kernel"] for r in rows} == {"_conv_tma_kernel", "_conv_weight_grad_tma_kernel"}
    assert {(r["dtype"], r["instruction"], r["config"]["block_k"]) for r in rows} == {("tf32", "wgmma", 32)}
    passes = [r for r in rows if r["kind"] != "conv_wgrad"]
    assert len(passes) == 4 and [r["loop_mma_register_a"] for r in passes] == [0] * 4
    assert max(r["config"]["tile_b"] for r in passes) == 16
    nchw = {"conv2d": [e for e in suite["conv2d"] if e["name"] == "resnet50_l1_3x3"]}
    rows += static.report(90, ["fp32"], ["contiguous"], ["conv", "conv_t", "conv_wgrad"], nchw)
    assert [r["kernel"] for r in rows[-3:]] == ["_conv_tma_kernel"] * 2 + ["_conv_weight_grad_tma_kernel"]
    assert [r for r in rows if r["spill_store_bytes"] or r["wgmma_serialized"]] == []


def test_tf32_nchw_strided_forwards_keep_their_mmas_in_flight(monkeypatch):
    """TF32 NCHW forwards strided 2 (their rows dealt into phases in registers) step 16 channels on the descriptor
    kernel (``tuning.TF32_DEALT_STEP``): at 32, Triton 3.6 had ptxas serialize every MMA of ``resnet50_l2_3x3s2``'s and
    ``r3d18_l2_s2``'s loops; at 16 neither Triton does."""
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    for op, name in (("conv2d", "resnet50_l2_3x3s2"), ("conv3d", "r3d18_l2_s2")):
        (entry,) = [e for e in suite[op] if e["name"] == name]
        problem = tuning.Problem.of("conv", "float32", "contiguous", **shapes.suite_problem(op, entry), tf32=True)
        cfg = tuning.heuristic(problem, interpret=False, tma=True)
        assert cfg.tile_h and cfg.block_k == tuning.TF32_DEALT_STEP, cfg
        census = static.compiled_census(90, problem, cfg)
        assert census["wgmma_serialized"] == "" and census["spill_store_bytes"] == 0, census


def test_narrow_channel_tiles_on_wide_patches_issue_fewer_instructions():
    """The 3-D U-Net's 32 output channels (``tuning.wide_patch``): its heuristic forward and input-gradient tiles take
    256 positions in both layouts and compile for sm_90 without spilling or serialized MMAs, their main loops issuing
    at most 0.65x the warp instructions per multiply-add of the 128-position patches they replace (3.5-3.8 per 1000
    on Triton 3.6 and 3.9; 1.7-2.1 now)."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    (entry,) = [e for e in suite["conv3d"] if e["name"] == "unet3d_64cube"]
    prob = shapes.suite_problem("conv3d", entry)
    for kind, layout in (("conv", "channels_last"), ("conv_t", "contiguous")):
        problem = tuning.Problem.of(kind, "bfloat16", layout, **prob)
        wide = tuning.heuristic(problem, interpret=False, tma=True)
        assert (wide.block_m, wide.block_n, wide.num_warps) == (256, 32, 4)
        narrow = dataclasses.replace(wide, block_m=128, **tuning.tma_patch(problem, 128))
        per_mac = []
        for cfg in (narrow, wide):
            census = static.compiled_census(90, problem, cfg)
            assert census["kernel"] == "_conv_tma_kernel" and census["spill_store_bytes"] == 0, census
            assert not census["wgmma_serialized"], census
            per_mac.append(census["loop_instructions"] * cfg.num_warps / (cfg.block_m * cfg.block_n * cfg.block_k))
        assert per_mac[1] <= 0.65 * per_mac[0], per_mac


def test_narrow_weight_gradients_step_positions_enough_to_issue_fewer_instructions():
    """``tuning.NARROW_WGRAD_STEP``: the 3-D U-Net's channels-last weight gradient (32 x 32 descriptor tiles) and
    ``ct_anisotropic``'s NCDHW one (32 x 16 pointer tiles, strided) step 256 positions; compiled for sm_90 they spill
    nothing and their main loops issue at most half the warp instructions per multiply-add of the steps they replace
    (64 and 32 positions)."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    for name, layout, kernel, before in (("unet3d_64cube", "channels_last", "_conv_weight_grad_tma_kernel", 64),
                                         ("ct_anisotropic", "contiguous", "_conv_weight_grad_kernel", 32)):
        (entry,) = [e for e in suite["conv3d"] if e["name"] == name]
        problem = tuning.Problem.of("conv_wgrad", "bfloat16", layout, **shapes.suite_problem("conv3d", entry))
        cfg = tuning.heuristic(problem, interpret=False, tma=True)
        assert cfg.block_k == 256 and max(cfg.block_m, cfg.block_n) == 32, cfg
        old = dataclasses.replace(cfg, block_k=before, **(tuning.tma_patch(problem, before) if cfg.tile_h else {}))
        per_mac = []
        for c in (old, cfg):
            census = static.compiled_census(90, problem, c)
            assert census["kernel"] == kernel and census["spill_store_bytes"] == 0, census
            per_mac.append(census["loop_instructions"] * c.num_warps / (c.block_m * c.block_n * c.block_k))
        assert per_mac[1] <= 0.5 * per_mac[0], (name, per_mac)


def test_weight_gradients_under_64_output_channels_run_the_warpgroup_mma_transposed(monkeypatch):
    """A channels-last descriptor weight gradient whose output-channel tile is under 64 rows beside 64 input channels
    or more runs its MMA transposed (``weight_grad.input_channels_as_m``), so Hopper's warpgroup MMA (``HGMMA``, 64
    rows) runs where the warp-level one (``HMMA``, 16 a step) did: R(2+1)D's first spatial pass (144 output channels
    in 160, not 192), bf16 stepping 256 positions at most 2.0 warp instructions per 1000 useful multiply-adds (3.7 on
    ``HMMA`` at 64 positions; 64-row tiles 2.5), TF32 on the warpgroup MMA too; nothing spilled or serialized, and
    ``costmodel.mma_instructions`` the census's count."""
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    prob = dict(tune.suite_problems(suite))["r2plus1d18_l1:spatial"]
    for dtype in ("bfloat16", "float32"):
        problem = tuning.Problem.of("conv_wgrad", dtype, "channels_last", prob["input_shape"], prob["weight_shape"],
                                    prob["stride"], prob["padding"], prob["dilation"], prob["groups"],
                                    tf32=dtype == "float32")
        cfg = tuning.heuristic(problem, interpret=False, tma=True)
        assert cfg.tile_h and (cfg.block_m, cfg.block_n) == (32, 64), cfg
        assert cfg.block_k == tuning.narrow_step(problem) == (256 if dtype == "bfloat16" else 128), cfg
        census = static.compiled_census(90, problem, cfg)
        assert census["spill_store_bytes"] == 0 and not census["wgmma_serialized"], census
        assert census["loop_math_op"] == "HGMMA" and census["loop_math"] == costmodel.mma_instructions(problem, cfg)
        per_useful = census["loop_instructions"] * cfg.num_warps * 160 / (cfg.block_m * cfg.block_n * cfg.block_k * 144)
        assert per_useful <= (2.0e-3 if dtype == "bfloat16" else 4.2e-3), per_useful  # TF32: its MMA's pace, about 4.2


def test_narrow_tf32_weight_gradients_step_128_positions(monkeypatch):
    """TF32 weight gradients over channel tiles of at most 32 x 32 step ``tuning.narrow_step`` (128) positions, the same
    bytes a row as 16-bit ones at 256: the 3-D U-Net's (channels-last and NCDHW, the x of the latter read in runs) and
    the CT volume's compile for sm_90 without spilling, each main loop at most 0.5x the warp instructions per
    multiply-add of the 32 positions they stepped before (14.7, 12.8 and 27.3 per 1000 on Triton 3.9)."""
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    for name, layout in (("unet3d_64cube", "channels_last"), ("unet3d_64cube", "contiguous"),
                         ("ct_anisotropic", "channels_last")):
        (entry,) = [e for e in suite["conv3d"] if e["name"] == name]
        problem = tuning.Problem.of("conv_wgrad", "float32", layout, **shapes.suite_problem("conv3d", entry), tf32=True)
        cfg = tuning.heuristic(problem, interpret=False, tma=True)
        assert cfg.tile_h and cfg.block_k == tuning.narrow_step(problem) == 128, cfg
        per_mac = []
        for c in (dataclasses.replace(cfg, block_k=tuning.TF32_STEP, **tuning.tma_patch(problem, tuning.TF32_STEP)), cfg):
            census = static.compiled_census(90, problem, c)
            assert census["spill_store_bytes"] == 0 and not census["wgmma_serialized"], census
            per_mac.append(census["loop_instructions"] * c.num_warps / (c.block_m * c.block_n * c.block_k))
        assert per_mac[1] <= 0.5 * per_mac[0], (name, layout, per_mac)


def test_aligned_rows_let_ptxas_use_every_register_below_hopper():
    """Below sm_90 an aligned-rows launch (forward, input gradient, or weight gradient reading runs) compiles with
    ``maxnreg`` (ptxas otherwise traded a few spilled bytes for occupancy there); Hopper, the CPU, and 2-byte rows
    keep the options they had; ``benchmarks.static`` compiles for an arch with that arch's options."""
    from tritonconv import _runtime
    from tritonconv.kernels import gemm, weight_grad

    def options(target, capability, **kwargs):  # (the options that set nothing else)
        return {k: v for k, v in target({"BLOCK_M": 64, "BLOCK_N": 64, "X_AS_M": False, **kwargs}, capability).items()
                if k in ("maxnreg", *kwargs)}

    assert options(gemm.target_options, 80, ROW_VEC=8) == {"ROW_VEC": 8, "maxnreg": 255}
    assert options(gemm.target_options, 90, ROW_VEC=8) == options(gemm.target_options, None, ROW_VEC=8) == {"ROW_VEC": 8}
    assert options(gemm.target_options, 80, ROW_VEC=0) == {"ROW_VEC": 0}
    assert options(weight_grad.target_options, 80, DY_VEC=1, X_VEC=2)["maxnreg"] == 255
    assert options(weight_grad.target_options, 86, DY_VEC=8, X_VEC=1)["maxnreg"] == 255
    assert options(weight_grad.target_options, 90, DY_VEC=8, X_VEC=8) == {"DY_VEC": 8, "X_VEC": 8}
    assert options(weight_grad.target_options, 80, DY_VEC=1, X_VEC=1) == {"DY_VEC": 1, "X_VEC": 1}
    assert _runtime.capability(torch.device("cpu")) is None
    x, w = torch.randn(2, 16, 6, 32).bfloat16(), torch.randn(16, 16, 3, 3).bfloat16()
    spec = conv_spec("conv2d", 2, x, w, None, 2, 1, 1, 1)
    with static.recording(execute=False) as launches:
        dispatch.conv_forward(x, w, None, spec, None, False, tuning.Config(64, 16, 16, num_warps=4, num_stages=2))
    ((fn, args, kwargs, _),) = launches
    assert kwargs["DEAL"] == 2 and "maxnreg" not in kwargs
    assert ".maxnreg 255" in static.compile_for(80, fn, args, kwargs).asm["ptx"]
    assert ".maxnreg" not in static.compile_for(90, fn, args, kwargs).asm["ptx"]


@pytest.mark.parametrize("arch", [90, 80])
def test_banded_kernel_runs_on_the_tensor_cores(arch):
    """The banded depthwise kernels with the heuristic's tiles, on the suite's 31-tap and 3 x 3 layers' forward, input
    gradient and weight gradient in both layouts and a ConvNeXt 7 x 7 layer's (NCHW: windows' rows read in runs; on
    rows of 57, 2 bytes at a time) (bf16): no spill, their main loops' products tensor-core MMAs (the warp-level
    ``HMMA``, on Hopper too) and no FMA, ``x`` loaded 16 bytes at a time (not the 31-tap NCL rows or the rows of 57),
    and at most 20 (31 taps), 70 and 95 (3 x 3 channels-last and NCHW), 30 (7 x 7) and 75 (7 x 7, 2 bytes at a time)
    warp instructions per 1000 useful multiply-adds (the FMA kernels: 139-296; ``costmodel.BANDED_ISSUE``), on either
    Triton's rule for laying out axes of equal contiguity (``_tile.load_lanes``: the rule the other way gave 3.6's NCHW
    3 x 3 loops 200-218, 3.9's channels-last 70-75 and its 7 x 7 41); each input gradient's loop within 5% of its
    forward's (its band's taps reversed: on Triton 3.6 1.24-1.44x before its band took ``load_lanes`` too)."""
    suite = dict(tune.suite_problems(json.loads((static.ROOT / "shapes.json").read_text())))
    suite["convnext_7x7"] = dict(input_shape=(32, 96, 56, 56), weight_shape=(96, 1, 7, 7), padding=3, groups=96)
    suite["convnext_7x7_57"] = dict(input_shape=(32, 96, 56, 57), weight_shape=(96, 1, 7, 7), padding=3, groups=96)
    both = ("channels_last", "contiguous")
    for name, layout, most in (("depthwise_k31", "channels_last", 20), ("depthwise_k31", "contiguous", 20),
                               ("mobilenet_dw_3x3", "channels_last", 70), ("mobilenet_dw_3x3", "contiguous", 95),
                               *(("convnext_7x7", lay, 30) for lay in both), ("convnext_7x7_57", "contiguous", 75)):
        loops = {}
        for kind in ("conv_dw", "conv_dw_t", "conv_dw_wgrad"):
            problem = tuning.Problem.of(kind, "bfloat16", layout, **suite[name])
            cfg = tuning.heuristic(problem, interpret=False, tma=arch >= 90)
            census = static.compiled_census(arch, problem, cfg)
            loops[kind] = cfg, census["loop_instructions"]
            assert census["kernel"].startswith("_banded") and census["spill_store_bytes"] == 0, (name, kind, layout)
            assert census["loop_math_op"] == "HMMA" and census["loop_local"] == 0
            useful = cfg.block_n * cfg.block_k * cfg.block_m * problem.taps  # a step's
            assert 1000 * census["loop_instructions"] * cfg.num_warps / useful <= most, (name, kind, layout, census)
            if name == "convnext_7x7_57":
                assert census["loop_load_bytes"] == 2
            elif name != "depthwise_k31" or layout == "channels_last":
                assert census["loop_load_bytes"] == 16
        (forward_cfg, forward), (input_cfg, input_grad) = loops["conv_dw"], loops["conv_dw_t"]
        assert forward_cfg == input_cfg and input_grad <= 1.05 * forward, (name, layout, forward, input_grad)


def test_channels_last_depthwise_weight_gradient_lanes_run_along_the_positions():
    """The FMA depthwise weight gradient's channels-last ``[taps, positions, channels]`` tile lays a warp's lanes along
    the positions after the channels on either Triton (``_tile.load_middle``): the suite's two depthwise layers in fp32
    (the FMA kernels on a GPU; their bf16 runs banded), sm_90, at most 200 (31 taps) and 280 (3 x 3) warp
    instructions a step, no spill, 16-byte loads; Triton 3.6, its lanes along the taps, issued 393 and 428."""
    suite = dict(tune.suite_problems(json.loads((static.ROOT / "shapes.json").read_text())))
    for name, most in (("depthwise_k31", 200), ("mobilenet_dw_3x3", 280)):
        problem = tuning.Problem.of("conv_dw_wgrad", "float32", "channels_last", **suite[name])
        cfg = tuning.heuristic(problem, interpret=False, tma=True)
        census = static.compiled_census(90, problem, cfg)
        assert census["kernel"] == "_depthwise_weight_grad_kernel" and census["spill_store_bytes"] == 0, name
        assert census["loop_instructions"] <= most and census["loop_load_bytes"] == 16, (name, census)


@pytest.mark.parametrize("arch", [90, 80])
def test_depthwise_tiles_load_along_the_contiguous_axis_without_spilling(arch):
    """The depthwise kernels' activation tiles lay their threads along the axis memory holds contiguous: channels
    channels-last, positions NC(D)HW (the forward's and input gradient's rows of ``BLOCK_W``, whose consecutive
    addresses the compiler sees, read in aligned runs, 16 bytes a load; the weight gradient's [taps, channels,
    positions] on row tiles too, its x and output gradient in runs); the heuristic's tiles of the suite's depthwise
    layers in bf16, every pass, compile without spilling (sm_80: in their main loops).
    (Where the compiler proves no contiguity the two Tritons order lanes differently, 3.9 along a tile's last axis, 3.6
    along its first: the thirtieth session's log in ``benchmarks/NOTES.md``; row tiles leave neither a choice.)"""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    for name, prob in tune.suite_problems(suite):
        if not shapes.is_depthwise(prob["input_shape"], prob["weight_shape"], prob["groups"]):
            continue
        for kind in ("conv_dw", "conv_dw_t", "conv_dw_wgrad"):
            for layout in ("channels_last", "contiguous"):
                problem = tuning.Problem.of(kind, "bfloat16", layout, **prob)
                cfg = tuning.heuristic(problem, interpret=False, tma=arch >= 90)
                with static.recording(execute=False) as launches:
                    tune.runner(problem, torch.device("cpu"))(cfg)
                fn, args, kwargs, _ = launches[0]
                compiled = static.compile_for(arch, fn, args, kwargs)
                if arch == 90:
                    assert static.ptxas_report(compiled.asm["ptx"], arch)["spill_store_bytes"] == 0, (name, kind, layout)
                else:  # sm_80: a few bytes outside the main loop (4-8 B, mobilenet_dw_3x3's channels-last forward tiles)
                    assert static.loop_census(compiled.asm["cubin"], arch)["loop_local"] == 0, (name, kind, layout)
                if fn.fn.__name__.startswith("_banded"):  # on the tensor cores (test_banded_kernel_runs_on_the_tensor_cores)
                    continue
                wgrad = kind == "conv_dw_wgrad"
                ttgir = compiled.asm["ttgir"]
                layouts = {name: (int(order.split(",")[0]), [int(v) for v in per.split(",")]) for name, per, order in
                           re.findall(r"^(#blocked\d*) = #ttg\.blocked<\{sizePerThread = \[([\d, ]+)\].*?order = "
                                      r"\[([\d, ]+)\]", ttgir, re.M)}
                tiles = re.findall(r"= tt\.load .*: tensor<((?:\d+x)+)!tt\.ptr<bf16>, (#blocked\d*)>", ttgir)
                vec = kwargs.get("X_VEC" if wgrad else "RUN_VEC", 0)
                runs = vec > 1
                assert runs == (layout == "contiguous"), (name, kind, layout)
                # dy and x; x (dy); NC(D)HW rows in runs: each way of reading a run (and the next)
                assert len(tiles) == (2 if wgrad else 1) or runs and len(tiles) > 2, (name, kind, layout)
                # the contiguous axis: the weight gradient's last ([taps, positions, channels] channels-last, [taps,
                # channels, positions] NC(D)HW); the forward's [positions, channels] channels (1), its runs'
                # [channels, positions] positions (1), the run a thread
                axis = -1 if wgrad or runs else 1
                for dims, blocked in tiles:
                    order, per_thread = layouts[blocked]
                    assert order == axis % dims.count("x"), (name, kind, layout, dims)
                    assert not runs or per_thread[order] == vec, (name, kind, per_thread)
                if runs:  # 16-byte loads in the main loops
                    assert static.loop_census(compiled.asm["cubin"], arch)["loop_load_bytes"] == 16, (name, kind)


@pytest.mark.parametrize("arch", [90, 80])
def test_nchw_tiles_load_and_store_along_positions_without_spilling(arch):
    """NC(D)HW operands are read in place at every size, tiled by rows: the compiler lays each activation
    tile's threads along the positions (consecutive addresses; ``static.tile_orders``), loads and stores
    alike, and the heuristic's tiles fit the register file, every GEMM pass, 16- and 32-bit, 1-D to 3-D,
    stride 1 and 2."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    names = {"resnet50_l3_3x3", "resnet50_l2_3x3s2", "tcn_k3", "r3d18_l1"}
    mini = {op: [e for e in suite[op] if e["name"] in names] for op in ("conv1d", "conv2d", "conv3d")}
    rows = static.report(arch, ["bf16", "fp32"], ["contiguous"], ["conv", "conv_t", "conv_wgrad"], mini)
    assert len(rows) == 4 * 2 * 3
    assert [(r["name"], r["kind"], r["dtype"]) for r in rows if r["loop_local"]] == []
    # none spills but on sm_80 under Triton 3.6: 8 bytes outside the main loop, resnet50_l3_3x3's 16-bit forward and
    # input gradient on 64-channel steps (tuning.nc_wide_step; their loops 1.4-1.7x fewer warp instructions per
    # multiply-add, two programs an SM where one)
    assert [r for r in rows if r["spill_store_bytes"] > (0 if arch == 90 else 32)] == []
    assert {r["instruction"] for r in rows if r["dtype"] == "bf16"} == {"wgmma" if arch == 90 else "mma"}
    # on Hopper r3d18_l1's 16-bit forward and input gradient read their rows of 56 whole on descriptor boxes,
    # resnet50_l2_3x3s2's forward its rows dealt, and r3d18_l1's and tcn_k3's weight gradients x's boxes in runs
    boxes = [r for r in rows if r["kernel"] in ("_conv_tma_kernel", "_conv_weight_grad_tma_kernel")]
    assert {(r["name"], r["kind"], r["dtype"]) for r in boxes} == ({
        ("r3d18_l1", "conv", "bf16"), ("r3d18_l1", "conv_t", "bf16"), ("resnet50_l2_3x3s2", "conv", "bf16"),
        ("r3d18_l1", "conv_wgrad", "bf16"), ("tcn_k3", "conv_wgrad", "bf16")} if arch == 90 else set())
    for r in (r for r in rows if r not in boxes):  # a: the tile read (weight gradient: dy), b: x, store: the output
        along = {"a", "b"} if r["kind"] == "conv_wgrad" else {"a", "store"}
        if r["name"] == "resnet50_l2_3x3s2":  # stride 2: the input read at every second column (no run to see;
            along = {"conv": {"store"}, "conv_t": {"a"}, "conv_wgrad": {"a"}}[r["kind"]]  # a compiler may still order it)
        assert along <= set(r["activations_along"].split("+")), r
    # 1-D rows are long: the output's stores take 8 (bf16) or 4 (fp32) consecutive positions per thread there, 16-byte
    # vectors; the loads stay 2 bytes wide, a tap shifting the row (the SASS census, below)
    assert {r["vector_width"] for r in rows if r["name"] == "tcn_k3" and r not in boxes} == {8, 4}


def test_sass_census_sees_how_tiles_arrive():
    """The report's main-loop census from the SASS, for the configs a Hopper GPU's heuristic picks: the
    channels-last passes of a unit-stride 3x3 layer and of a stride-2 one, and the split forward of a layer under
    one wave, take TMA copies into HGMMA, and so do NC(D)HW rows of 56 read whole; on the pointer kernel long 1-D
    rows (in segments) in aligned runs, 16-byte asynchronous copies and no plain loads (the weight gradient's too,
    dilated or not), while 7-wide rows (no run of 2) load 2 bytes at a time (the weight tile an asynchronous copy);
    and it counts the integer instructions spent per MMA instruction."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    mini = {"conv2d": [e for e in suite["conv2d"]
                       if e["name"] in ("resnet50_l1_3x3", "resnet50_l2_3x3s2", "resnet50_l4_3x3", "deeplab_3x3_d2")],
            "conv1d": [e for e in suite["conv1d"] if e["name"] == "tcn_k3"]}
    rows = {(r["name"], r["kind"], r["layout"]): r
            for r in static.report(90, ["bf16"], ["channels_last", "contiguous"], ["conv", "conv_t", "conv_wgrad"], mini)}
    tma = [rows[name, kind, "channels_last"] for name in ("resnet50_l1_3x3", "resnet50_l2_3x3s2")
           for kind in ("conv", "conv_t", "conv_wgrad")] + [rows["resnet50_l4_3x3", "conv", "channels_last"]]
    aligned, nchw, ncl = (rows[name, "conv", "contiguous"] for name in ("resnet50_l1_3x3", "resnet50_l4_3x3", "tcn_k3"))
    assert {r["loop_math_op"] for r in rows.values()} == {"HGMMA"}
    assert all(r["loop_tma"] > 0 and r["loop_loads"] == 0 for r in tma)
    assert aligned["kernel"] == "_conv_tma_kernel" and aligned["loop_tma"] > 0 and aligned["loop_loads"] == 0
    assert aligned["loop_outer_extra"] > 0  # the moves of the sum between width taps
    assert ncl["loop_loads"] == 0 and ncl["loop_async_bytes"] == 16 and ncl["loop_outer_extra"] > 0
    assert nchw["loop_loads"] > 0 and nchw["loop_load_bytes"] == 2 and nchw["loop_async_copies"] > 0
    assert nchw["loop_outer_extra"] == 0
    # the NC(D)HW weight gradient on Hopper: x's boxes in runs, a loop for each offset a tap takes (its runs, or each
    # run and the next read 1 or 7 columns on; dilated by 2, 2 or 6), TMA copies and no plain load in any; without
    # a TMA unit (the pointer kernel) dY and x in 16-byte runs by asynchronous copies; at a width stride of 2 x in
    # 16-byte runs too, each position's 2 columns dealt in registers (a loop per offset, no plain load)
    wgrad, dilated, strided = (rows[name, "conv_wgrad", "contiguous"]
                               for name in ("resnet50_l1_3x3", "deeplab_3x3_d2", "resnet50_l2_3x3s2"))
    for r in (wgrad, dilated):
        assert r["kernel"] == "_conv_weight_grad_tma_kernel"
        assert len(r["loop_variants"]) == 3 and all(v[1] == 0 for v in r["loop_variants"]) and r["loop_tma"] > 0
        assert r["loop_local"] == 0
    assert wgrad["spill_store_bytes"] == 0  # (the dilated one's 2 splits meet in the kernel: held to 128 registers,
    # it spills outside its main loop)
    for name in ("resnet50_l1_3x3", "deeplab_3x3_d2"):
        problem = tuning.Problem.of("conv_wgrad", "bfloat16", "contiguous",
                                    **shapes.suite_problem("conv2d", next(e for e in mini["conv2d"] if e["name"] == name)))
        r = static.compiled_census(90, problem, tuning.heuristic(problem, interpret=False))
        assert len(r["loop_variants"]) == 3 and all(v[1] == 0 for v in r["loop_variants"]), name
        assert r["loop_async_bytes"] == 16 and r["spill_store_bytes"] == 0, name
    assert len(strided["loop_variants"]) == 3 and strided["loop_async_copies"] > 0
    if not triton.__version__.startswith(("3.6.", "3.7.")):  # they keep 16-32 two-byte loads a step there (NOTES.md)
        assert all(v[1] == 0 for v in strided["loop_variants"])
        assert strided["loop_async_bytes"] == 16 and strided["loop_loads"] == 0
    assert all(r["integer_per_math"] > 0 and 1 <= r["ctas_per_sm"] <= 32 for r in rows.values())


@pytest.mark.parametrize("arch", [90, 80])
def test_split_reduction_compiles_to_a_ticket_and_l2_reads(arch):
    """A layer under one wave (``resnet50_l4_3x3`` at batch 32: the heuristic splits its reduction) meets its
    splits in the kernel: an acquire-release atomic add on a tile counter (gpu scope), the partials read
    back through L2 (``ld.global.cg``), no spills; forward and input gradient (the weight gradient's:
    :func:`test_split_descriptor_weight_gradient_meets_and_keeps_two_programs_an_sm`)."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    entry = next(e for e in suite["conv2d"] if e["name"] == "resnet50_l4_3x3")
    for kind in ("conv", "conv_t"):
        problem = tuning.Problem.of(kind, "bfloat16", "channels_last", **shapes.suite_problem("conv2d", entry))
        cfg = tuning.heuristic(problem, interpret=False)
        assert cfg.split_k > 1
        with static.recording(execute=False) as launches:
            tune.runner(problem, torch.device("cpu"))(cfg)
        ((fn, args, kwargs, grid),) = launches
        assert kwargs["SPLIT"] and grid[1] == cfg.split_k
        ptx = static.compile_for(arch, fn, args, kwargs).asm["ptx"]
        assert "atom.global.gpu.acq_rel.add" in ptx and "ld.global.cg" in ptx
        assert static.ptxas_report(ptx, arch)["spill_store_bytes"] == 0


def test_split_descriptor_weight_gradient_meets_and_keeps_two_programs_an_sm():
    """The Hopper heuristic's weight gradients of NC(D)HW 3x3 layers (``deeplab_3x3_d2``, ``c3d_conv3a``: descriptor
    tiles of 128 x 128 on 8 warps, x's runs read on in registers) split their positions in 2 or 4 and meet the splits
    in the kernel, one launch: a ticket (acquire-release atomic add) and the partials read back through L2. Held to
    ``weight_grad.HELD_REGISTERS`` they keep two programs an SM (ptxas chose 164-168 registers: one), and what spills
    is outside their main loops. (The default configs split them 6 and 12 ways, past ``geometry.MEET_BYTES``: a
    second launch adds those.)"""
    from tritonconv.kernels import weight_grad

    suite = json.loads((static.ROOT / "shapes.json").read_text())
    mini = {dim: [e for e in suite[dim] if e["name"] in ("deeplab_3x3_d2", "c3d_conv3a")] for dim in ("conv2d", "conv3d")}
    rows = static.report(90, ["bf16"], ["contiguous"], ["conv_wgrad"], mini,
                         choose=lambda problem, tma: tuning.heuristic(problem, False, tma=tma))
    assert len(rows) == 2
    for r in rows:
        assert r["kernel"] == "_conv_weight_grad_tma_kernel" and 1 < r["config"]["split_k"] <= 4, r
        assert r["num_warps"] == 8 and r["registers"] <= weight_grad.HELD_REGISTERS and r["ctas_per_sm"] == 2, r
        assert r["loop_local"] == 0 and r["spill_store_bytes"] <= 256, r
    problem = tuning.Problem.of("conv_wgrad", "bfloat16", "contiguous", **shapes.suite_problem("conv2d", mini["conv2d"][0]))
    cfg = tuning.heuristic(problem, interpret=False, tma=True)
    with static.recording(execute=False) as launches:
        tune.runner(problem, torch.device("cpu"))(cfg)
    ((fn, args, kwargs, grid),) = launches
    assert kwargs["SPLIT"] and grid[1] == cfg.split_k and kwargs["maxnreg"] == weight_grad.HELD_REGISTERS
    ptx = static.compile_for(90, fn, args, kwargs).asm["ptx"]
    assert "atom.global.gpu.acq_rel.add" in ptx and "ld.global.cg" in ptx


@pytest.mark.parametrize("arch", [90, 80])
def test_split_pointer_weight_gradient_meets_row_by_row_and_keeps_its_programs_an_sm(arch):
    """The pointer kernel's split weight gradients meet in the kernel (a ticket, the partials read back through L2)
    and hold no more than their unsplit launch's programs an SM: the last split adds the partials
    ``weight_grad.MEET_ROWS`` rows at a time once its own is stored (added whole beside the sum they had held 20-50
    registers more), the split count a constant (``SPLITS``): no loop after the main loop but a slice's one at a time,
    unrolled whole, every load of a slice issued before its first add (a loop over the splits, unrolled by four with
    its remainders, went to L2 and back twice a slice here: 3 other splits, a pair, then one). The NC(D)HW 7 x 7
    layer Hopper runs on the pointer kernel (``resnet50_l4_3x3``, 128 x 128 tiles on 8 warps, 4 splits) and, on
    Ampere, the same layer's channels-last one (4 warps, 246 registers unsplit)."""
    from tritonconv.kernels import weight_grad

    suite = json.loads((static.ROOT / "shapes.json").read_text())
    entry = next(e for e in suite["conv2d"] if e["name"] == "resnet50_l4_3x3")
    layout = "contiguous" if arch == 90 else "channels_last"
    problem = tuning.Problem.of("conv_wgrad", "bfloat16", layout, **shapes.suite_problem("conv2d", entry))
    cfg = tuning.heuristic(problem, interpret=False, tma=arch >= 90)
    with static.recording(execute=False) as launches:
        tune.runner(problem, torch.device("cpu"))(cfg)
    ((fn, args, kwargs, grid),) = launches
    assert fn.fn.__name__ == "_conv_weight_grad_kernel" and kwargs["SPLIT"] and grid[1] == cfg.split_k > 1
    assert kwargs["MEET_ROWS"] == weight_grad.MEET_ROWS < cfg.block_m and kwargs["SPLITS"] == cfg.split_k
    reports = []
    for split in (True, False):
        compiled = static.compile_for(arch, fn, args, {**kwargs, "SPLIT": split})
        reports.append({**static.ptxas_report(compiled.asm["ptx"], arch), "shared": compiled.metadata.shared})
        if split:
            assert "atom.global.gpu.acq_rel.add" in compiled.asm["ptx"] and "ld.global.cg" in compiled.asm["ptx"]
            code = static.sass(compiled.asm["cubin"], arch)
            main = max(static.backward_loops(code), key=lambda loop: loop[1] - loop[0])
            assert [(a, b) for a, b in static.backward_loops(code) if a > main[1] and b > a] == []
    met, unmet = ({**r, "ctas": static.ctas_per_sm(arch, r["registers"], r["shared"], kwargs["num_warps"])}
                  for r in reports)
    assert met["spill_store_bytes"] == 0 and met["ctas"] >= unmet["ctas"], (met, unmet)


@pytest.mark.parametrize("arch,name", [(90, "resnet50_l3_3x3"), (80, "resnet50_l4_3x3")])
def test_a_channels_last_weight_gradient_stores_runs_where_its_splits_meet(arch, name):
    """A weight-gradient tile holds one tap's output x input channels: of a contiguous (O, I, kh, kw) weight's
    gradient no two neighbours (input channels ``kh * kw`` apart), so where the splits meet the last one stored it 2
    bytes at a time (64 stores a thread on ``resnet50_l3_3x3``'s 128 x 128 tiles on 8 warps, 908 SASS instructions
    after the main loops, sm_90). Laid out as the channels-last weight it is for (input channels innermost), what
    the tuner now times: no 2-byte store after the main loops, on the compile report's configs (the descriptor
    kernel's 3 splits on sm_90; on sm_80 the pointer kernel's, ``resnet50_l4_3x3``'s 3)."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    entry = next(e for e in suite["conv2d"] if e["name"] == name)
    problem = tuning.Problem.of("conv_wgrad", "bfloat16", "channels_last", **shapes.suite_problem("conv2d", entry))
    cfg = static.chosen(problem, arch >= 90)
    with static.recording(execute=False) as launches:
        tune.runner(problem, torch.device("cpu"))(cfg)
    ((fn, args, kwargs, grid),) = [launch for launch in launches if launch[0].fn.__name__ not in static.EPILOGUES]
    assert kwargs["SPLIT"] and grid[1] == cfg.split_k > 1, (kwargs, grid)
    code = static.sass(static.compile_for(arch, fn, args, kwargs).asm["cubin"], arch)
    main = max(static.backward_loops(code), key=lambda loop: loop[1] - loop[0])
    stores = [op for a, op, _ in code if a > main[1] and op.startswith("STG")]
    assert "STG.E.128" in stores and not [op for op in stores if op.endswith((".U16", ".16"))], stores


# (layer, op, entry overrides, pass, layout): the descriptor kernels' passes compiled for sm_90 below
DESCRIPTOR_PASSES = [("resnet50_l3_3x3", "conv2d", {}, "conv", "channels_last"),
                     ("resnet50_l3_3x3", "conv2d", {}, "conv_t", "channels_last"),
                     ("resnet50_l1_1x1", "conv2d", {}, "conv", "channels_last"),
                     ("resnet50_l1_1x1", "conv2d", {}, "conv", "contiguous"),
                     ("resnet50_l1_1x1", "conv2d", {}, "conv_t", "contiguous"),
                     ("resnet50_l1_3x3", "conv2d", {}, "conv", "contiguous"),  # NC(D)HW rows whole: the sum moves
                     ("deeplab_3x3_d2", "conv2d", {}, "conv_t", "contiguous"),  # ... each tap's products apart
                     ("resnet50_l2_3x3s2", "conv2d", {}, "conv", "contiguous"),  # ... strided 2: dealt
                     ("tcn_k3_d8", "conv1d", {}, "conv", "channels_last"),
                     ("r3d18_l2_s2", "conv3d", {"s": [2, 1, 1]}, "conv", "channels_last"),
                     ("resnet50_l3_3x3", "conv2d", {}, "conv_wgrad", "channels_last"),
                     ("resnet50_l1_1x1", "conv2d", {}, "conv_wgrad", "contiguous"),
                     ("resnet50_l1_3x3", "conv2d", {}, "conv_wgrad", "contiguous"),  # NC(D)HW x in runs: 1 and 7 on
                     ("deeplab_3x3_d2", "conv2d", {}, "conv_wgrad", "contiguous"),  # ... 2 and 6 on
                     ("c3d_conv3a", "conv3d", {}, "conv_wgrad", "contiguous"),  # NC(D)HW planes as rows, the seams taken out
                     ("c3d_conv3a", "conv3d", {}, "conv", "contiguous"),  # ... the seams masked
                     ("c3d_conv3a", "conv3d", {}, "conv_t", "contiguous"),
                     ("r3d18_l1", "conv3d", {}, "conv_wgrad", "channels_last"),
                     ("resnet50_l2_3x3s2", "conv2d", {}, "conv", "channels_last"),  # strides folded into the input's view
                     ("resnet50_l2_3x3s2", "conv2d", {}, "conv_wgrad", "channels_last"),
                     ("resnet50_l2_3x3s2", "conv2d", {}, "conv_t", "channels_last"),  # by stride phase
                     ("r3d18_l2_s2", "conv3d", {}, "conv_t", "channels_last"),
                     ("r3d18_l2_s2", "conv3d", {}, "conv_wgrad", "channels_last"),  # slices and rows on one axis
                     ("resnet50_l4_3x3", "conv2d", {}, "conv", "channels_last"),  # under one wave: split in the kernel
                     ("downsample_k7_s4", "conv1d", {}, "conv", "channels_last"),
                     ("ct_anisotropic", "conv3d", {}, "conv", "channels_last")]  # depth slices as images


@pytest.mark.parametrize("name,op,override,kind,layout", DESCRIPTOR_PASSES)
def test_descriptor_kernel_compiles_to_bulk_tensor_copies_and_wgmma_on_hopper(name, op, override, kind, layout):
    """The tensor-descriptor kernels (offered to the tuner on compute capability 9+): their loads become
    TMA bulk tensor copies feeding wgmma, without spills, for a spread of the configs the tuner tries (three a pass)
    on a 3x3 layer (forward, input and weight gradient), a 1x1 layer (channels-last, and NCHW read as boxes
    of channels x positions, forward and both gradients), NCHW 3x3 layers' rows read whole (the weight gradient's
    x in runs read on in registers; rows of 28 columns, planes as rows, every pass), a dilated 1-D
    layer, 3-D layers (depth stride 2; a weight gradient) and strided layers' forward and weight gradient (height
    and width strides folded into the input's view) and input gradient (by stride phase)."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    entry = {**next(e for e in suite[op] if e["name"] == name), **override}
    problem = tuning.Problem.of(kind, "bfloat16", layout, **shapes.suite_problem(op, entry))
    assert tuning.tma_eligible(problem)
    candidates = tuning.tma_candidates(problem)
    for cfg in candidates[::-(-len(candidates) // 3)]:  # three spread over them, the first among them
        with static.recording(execute=False) as launches:
            tune.runner(problem, torch.device("cpu"))(cfg)
        ((fn, args, kwargs, _),) = [launch for launch in launches if launch[0].fn.__name__ not in static.EPILOGUES]
        assert fn.fn.__name__ == ("_conv_weight_grad_tma_kernel" if kind == "conv_wgrad" else "_conv_tma_kernel")
        out = static.compile_for(90, fn, args, kwargs)
        ptx = out.asm["ptx"]
        wgmma = cfg.block_m >= 64  # a warpgroup's MMA takes 64 rows; narrower tiles run Ampere's mma
        assert "cp.async.bulk.tensor" in ptx and static.instruction(ptx) == ("wgmma" if wgmma else "mma"), cfg
        loop = static.loop_census(out.asm["cubin"], 90)  # the SASS main loop: TMA copies feed HGMMA
        assert loop["loop_tma"] > 0 and loop["loop_math_op"] == ("HGMMA" if wgmma else "HMMA"), loop
        assert loop["loop_loads"] == 0, loop
        assert static.ptxas_report(ptx, 90)["spill_store_bytes"] == 0, cfg


@pytest.mark.parametrize("kind", ["conv", "conv_t"])
def test_volumes_as_rows_mask_their_seams_a_register_pair_at_a_time_and_never_drain_the_pipe(kind):
    """``c3d_conv3a``'s NCDHW forward and input gradient read its volumes as rows on the heuristic's tiles: the positions
    whose tap column leaves their row, or whose tap row leaves their plane, are zeroed by one 32-bit AND per pair of
    bf16 elements (``_tile.keep_columns``, inline PTX), not a select per element (``selp.b16``: each element unpacked,
    selected and repacked, some 45 more SASS instructions a step, sm_90); and none of the six loops (a width tap and
    offset each) waits for its MMAs to finish before the next step (the moved box the MMA's first operand, from
    registers: as its second, stored back to shared memory, five of the six waited every step)."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    entry = next(e for e in suite["conv3d"] if e["name"] == "c3d_conv3a")
    problem = tuning.Problem.of(kind, "bfloat16", "contiguous", **shapes.suite_problem("conv3d", entry))
    with static.recording(execute=False) as launches:
        tune.runner(problem, torch.device("cpu"))(static.chosen(problem, True))
    ((fn, args, kwargs, _),) = [launch for launch in launches if launch[0].fn.__name__ not in static.EPILOGUES]
    assert kwargs["NC_VOLUME"] and kwargs["NC_ROW_SEAMS"] and not kwargs["POSITIONS_N"]
    assert not kwargs["INLINE_PTX"]  # recorded on the CPU: the interpreter runs no PTX
    compiled = static.compile_for(90, fn, args, kwargs)
    ptx = compiled.asm["ptx"]
    masks = sum("and.b32" in block.split("end inline asm")[0] for block in ptx.split("begin inline asm")[1:])
    selects = re.findall(r"selp\.b16\s+%rs\d+, %rs\d+, 0,", ptx)  # an element or zero (the where: 128 here)
    assert masks >= 16 and not selects, (masks, len(selects))
    code = static.sass(compiled.asm["cubin"], 90)
    math = [(a, b) for a, b in static.backward_loops(code) if any(a <= c <= b and o.startswith("HGMMA") for c, o, _ in code)]
    loops = [m for m in math if not any(n != m and m[0] <= n[0] and n[1] <= m[1] for n in math)]
    drains = [sum(a <= c <= b and o.startswith("WARPGROUP.DEPBAR") and re.search(r"gsb0,\s*0x0\b", t) is not None
                  for c, o, t in code) for a, b in loops]
    assert drains == [0] * 6, drains


@pytest.mark.parametrize("name,kind", [("c3d_conv3a", "conv"), ("c3d_conv3a", "conv_t"), ("r2plus1d18_l2:spatial", "conv")])
def test_planes_as_rows_store_their_outputs_16_bytes_at_a_time(name, kind):
    """The NC(D)HW descriptor forwards reading planes (volumes) as rows, on the heuristic's tiles, store their dense
    outputs as runs (``Y_RUN``): after the main loops, 16-byte stores only and some 200 instructions, no spill (a
    position divided into its row and column took some 3,000 instructions and 64 two-byte stores a thread on Triton
    3.7 and 3.9, 255 registers, and Triton 3.7 spilled 344-552 bytes there)."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    problem = tuning.Problem.of(kind, "bfloat16", "contiguous", **dict(tune.suite_problems(suite))[name])
    with static.recording(execute=False) as launches:
        tune.runner(problem, torch.device("cpu"))(static.chosen(problem, True))
    ((fn, args, kwargs, _),) = [launch for launch in launches if launch[0].fn.__name__ not in static.EPILOGUES]
    assert kwargs["NC_FLAT"] and kwargs["Y_RUN"]
    compiled = static.compile_for(90, fn, args, kwargs)
    assert static.ptxas_report(compiled.asm["ptx"], 90)["spill_store_bytes"] == 0
    census = static.loop_census(compiled.asm["cubin"], 90)  # every output element stored once, 16 bytes a store
    tile_bytes = kwargs["TILE_W"] * kwargs["BLOCK_N"] * 2
    assert census["epilogue_store_bytes"] == 16 and census["epilogue_stores"] * 16 * 32 * kwargs["num_warps"] == tile_bytes
    assert census["epilogue_instructions"] < 400, census


@pytest.mark.parametrize("name,kind,store_bytes", [
    ("resnet50_l1_3x3", "conv", 16), ("resnet50_l1_3x3", "conv_t", 16), ("r2plus1d18_l1:spatial", "conv", 16),
    ("r3d18_l2_s2", "conv", 8),  # (rows of 28: 56 bytes)
])
def test_rows_read_whole_store_their_outputs_in_runs(name, kind, store_bytes):
    """The NC(D)HW descriptor forwards and input gradients reading rows whole (``NC_SHIFT`` 1), on the heuristic's
    tiles, end their sum at shift 0 ('same' padding; :func:`tritonconv._descriptors.nc_shift_order`) and are told
    the output rows' pitch and width multiples of a run (``Y_ALIGN``): they store runs of the rows, 16 bytes a store
    (8 where rows are 56 bytes), every output element once, in some 200 instructions after the last loop, no spill,
    and no loop waits for its MMAs. In increasing shift the sum ended at column 1 and every element was stored alone
    (64 two-byte stores a thread, 400-480 instructions). The unit-stride taps run one loop whose moves are branches
    of constant steps: unrolled, Triton 3.6 waited out every MMA of each copy of the steps' loop."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    problem = tuning.Problem.of(kind, "bfloat16", "contiguous", **dict(tune.suite_problems(suite))[name])
    with static.recording(execute=False) as launches:
        tune.runner(problem, torch.device("cpu"))(static.chosen(problem, True))
    ((fn, args, kwargs, _),) = [launch for launch in launches if launch[0].fn.__name__ not in static.EPILOGUES]
    assert kwargs["NC_SHIFT"] == 1 and kwargs["Y_ALIGN"] == store_bytes // 2
    compiled = static.compile_for(90, fn, args, kwargs)
    assert static.ptxas_report(compiled.asm["ptx"], 90)["spill_store_bytes"] == 0
    census = static.loop_census(compiled.asm["cubin"], 90)
    tile_bytes = kwargs["TILE_H"] * kwargs["TILE_W"] * kwargs["BLOCK_N"] * 2
    assert census["epilogue_store_bytes"] == store_bytes
    assert census["epilogue_stores"] * store_bytes * 32 * kwargs["num_warps"] == tile_bytes
    assert census["epilogue_instructions"] < 300 and not any(census["loop_drains"]), census


@pytest.mark.parametrize("arch,name,kind,store_bytes", [
    (90, "tcn_k3", "conv", 8),  # (a long row in segments: runs of 4 within the slack)
    (90, "resnet50_l3_3x3", "conv_t", 4),  # (rows of 14: 28 bytes)
    (80, "resnet50_l1_3x3", "conv", 16), (80, "resnet50_l1_3x3", "conv_t", 16), (80, "c3d_conv3a", "conv_t", 8),
])
def test_pointer_rows_moving_their_sum_store_their_outputs_in_runs(arch, name, kind, store_bytes):
    """The pointer kernel's NC(D)HW rows moving their sum (``SHIFT`` 1), on the heuristic's tiles for Hopper (Triton
    3.9 and 3.6 alike) and Ampere, end it at shift 0 (``geometry.moved_first``) and are told the output's strides and
    width multiples of a run (``Y_ALIGN``): every output element stored once, ``store_bytes`` a store, no spill, no loop
    waiting for its MMAs; the width taps unrolled (a copy of the steps' loop each: every move a constant step). In
    increasing shift the sum ended at column 1 and every element was stored alone (2 bytes a store, 250-370
    instructions after the loops); in one loop over the taps, whose moves were a branch of two, ptxas held both moves'
    indices in registers (tcn_k3's input gradient: 140-156 registers, one program an SM instead of two)."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    problem = tuning.Problem.of(kind, "bfloat16", "contiguous", **dict(tune.suite_problems(suite))[name])
    with static.recording(execute=False) as launches:
        tune.runner(problem, torch.device("cpu"))(static.chosen(problem, arch >= 90))
    ((fn, args, kwargs, _),) = [launch for launch in launches if launch[0].fn.__name__ not in static.EPILOGUES]
    assert fn.fn.__name__ == "_conv_kernel" and kwargs["SHIFT"] == 1 and kwargs["NEG"] == 1
    assert kwargs["Y_ALIGN"] == store_bytes // 2
    compiled = static.compile_for(arch, fn, args, kwargs)
    assert static.ptxas_report(compiled.asm["ptx"], arch)["spill_store_bytes"] == 0
    census = static.loop_census(compiled.asm["cubin"], arch)
    assert census["epilogue_store_bytes"] == store_bytes
    tile_bytes = kwargs["BLOCK_M"] * kwargs["BLOCK_N"] * 2
    assert census["epilogue_stores"] * store_bytes * 32 * kwargs["num_warps"] == tile_bytes
    assert len(census["loop_drains"]) == 3 and not any(census["loop_drains"]), census


@pytest.mark.parametrize("kind", ["conv", "conv_t"])
def test_descriptor_rows_whose_channels_are_no_16_apart_store_their_outputs_in_runs(monkeypatch, kind):
    """The descriptor kernel is told every output stride a multiple of its run (``geometry.stored_runs``, the pointer
    kernel's rule), not the rows' pitch alone: R(2+1)D's third temporal pass in TF32, rows of 392 fp32 outputs whose
    channels are 392 apart (a multiple of 4, not of 16, so Triton's specialisation does not say it), stores 16 bytes a
    store, every output element once, no spill. Told the pitch alone, it stored 4 bytes at a time (64 stores a thread
    and 440 instructions after the loop for the forward)."""
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    problem = tuning.Problem.of(kind, "float32", "contiguous", **dict(tune.suite_problems(suite))["r2plus1d18_l3:temporal"],
                                tf32=True)
    with static.recording(execute=False) as launches:
        tune.runner(problem, torch.device("cpu"))(static.chosen(problem, True))
    ((fn, args, kwargs, _),) = [launch for launch in launches if launch[0].fn.__name__ not in static.EPILOGUES]
    assert fn.fn.__name__ == "_conv_tma_kernel" and kwargs["Y_ALIGN"] == 4
    assert dict(zip(fn.arg_names, args))["syc"] % 16  # (what Triton's specialisation leaves unsaid)
    compiled = static.compile_for(90, fn, args, kwargs)
    assert static.ptxas_report(compiled.asm["ptx"], 90)["spill_store_bytes"] == 0
    census = static.loop_census(compiled.asm["cubin"], 90)
    tile_bytes = kwargs["TILE_B"] * kwargs["TILE_H"] * kwargs["TILE_W"] * kwargs["BLOCK_N"] * 4
    assert census["epilogue_store_bytes"] == 16
    assert census["epilogue_stores"] * 16 * 32 * kwargs["num_warps"] == tile_bytes, census


@pytest.mark.parametrize("arch,name,layout,kernel", [
    (90, "tcn_k3", "contiguous", "_conv_weight_grad_tma_kernel"),
    (90, "tcn_k3", "channels_last", "_conv_weight_grad_tma_kernel"),
    (90, "resnet50_l2_3x3s2", "contiguous", "_conv_weight_grad_kernel"),
    (80, "tcn_k3", "channels_last", "_conv_weight_grad_kernel"),
    (90, "resnet50_ds_1x1s2", "channels_last", "_conv_weight_grad_tma_kernel"),  # (one split: the gradient itself)
])
def test_weight_gradient_tiles_store_runs_along_their_input_channels(arch, name, layout, kernel):
    """A weight-gradient tile, (output, input) channels of one tap, stores 16 bytes a store, every element once: the
    split partials are laid out taps first and input channels innermost (``geometry.alloc_partials``; their sum's
    launch reads them in that order), and a one-tap layer's descriptor tile adds no tap offset (the program's tap, 0,
    which the compiler could not tell). In ``(C_out, C_in, taps)`` order they stored every element alone: 4 bytes a
    store, 64-128 stores a thread and 540-1,010 instructions after the loops (``tcn_k3``, ``resnet50_l2_3x3s2``);
    ``resnet50_ds_1x1s2``'s bf16 gradient 2 bytes a store, 631 instructions."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    problem = tuning.Problem.of("conv_wgrad", "bfloat16", layout, **dict(tune.suite_problems(suite))[name])
    with static.recording(execute=False) as launches:
        tune.runner(problem, torch.device("cpu"))(static.chosen(problem, arch >= 90))
    (fn, args, kwargs, _), *after = launches
    assert fn.fn.__name__ == kernel
    partials = [f.fn.__name__ for f, *_ in after] == ["_sum_partials_kernel"]
    assert partials == (name != "resnet50_ds_1x1s2")
    compiled = static.compile_for(arch, fn, args, kwargs)
    assert static.ptxas_report(compiled.asm["ptx"], arch)["spill_store_bytes"] == 0
    census = static.loop_census(compiled.asm["cubin"], arch)
    tile_bytes = kwargs["BLOCK_M"] * kwargs["BLOCK_N"] * (4 if partials else 2)
    assert census["epilogue_store_bytes"] == 16
    assert census["epilogue_stores"] * 16 * 32 * kwargs["num_warps"] == tile_bytes, census
    assert census["epilogue_instructions"] < 450, census


@pytest.mark.parametrize("arch,name,layout,kernel", [
    (90, "downsample_k7_s4", "contiguous", "_conv_kernel"),
    (90, "downsample_k7_s4", "channels_last", "_conv_tma_kernel"),  # (1-D: the gradient is NCL, torch's rule)
    (90, "resnet50_l2_3x3s2", "contiguous", "_conv_kernel"),
    (90, "r3d18_l2_s2", "contiguous", "_conv_kernel"),
    (80, "resnet50_l2_3x3s2", "contiguous", "_conv_kernel"),
])
def test_stride_phases_store_their_nc_rows_with_lanes_along_positions(arch, name, layout, kernel):
    """A strided input gradient written NC(D)HW stores one stride phase's positions, ``s`` apart: no run to store at
    once. Its tile is stored transposed and flat (``Y_ACROSS``), so that a warp's lanes take consecutive positions of a
    phase (a store instruction reaching 4-8 sectors of a row) rather than 32 channels (32 rows, one sector each): the
    compiler's coalescing, finding one element a run along either axis of a 2-D tile, chose by a tie-break that
    Triton 3.6 and 3.9 break differently (3.9 ordered the lanes along the channels). The instructions after the
    loops drop with it on Triton 3.9: ``downsample_k7_s4``'s 492 -> 270 (pointer) and 681 -> 454 (descriptors),
    ``resnet50_l2_3x3s2``'s 523 -> 372, ``r3d18_l2_s2``'s 643 -> 430 (sm_90)."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    problem = tuning.Problem.of("conv_t", "bfloat16", layout, **dict(tune.suite_problems(suite))[name])
    cfg = static.chosen(problem, arch >= 90)
    with static.recording(execute=False) as launches:
        tune.runner(problem, torch.device("cpu"))(cfg)
    [(fn, args, kwargs, _)] = launches
    assert fn.fn.__name__ == kernel and kwargs["Y_ACROSS"]
    compiled = static.compile_for(arch, fn, args, kwargs)
    assert static.ptxas_report(compiled.asm["ptx"], arch)["spill_store_bytes"] == 0
    ttgir = compiled.asm["ttgir"]
    assert re.search(rf"tt\.store .*: tensor<{cfg.block_m * cfg.block_n}x!tt\.ptr<bf16>", ttgir)  # flat, positions fastest
    assert static.tile_orders(ttgir)["store"][0] == (0,)
    census = static.loop_census(compiled.asm["cubin"], arch)
    assert census["epilogue_instructions"] < 460, census


def test_the_census_counts_one_iteration_down_its_longest_path():
    """``static.longest_path``: a guarded branch goes either way, an unguarded one only to its target, a loop inside
    (``skip``) counts 0, a backward branch inside is not taken: an if/else of two and three instructions counts the
    longer (the static sum counts both), and with the longer skipped, the other."""
    code = [(0, "ISETP", ""), (16, "BRA", "@P0 (96)"), (32, "IMAD", ""), (48, "IMAD", ""), (64, "IMAD", ""),
            (80, "BRA", " (128)"), (96, "IMAD", ""), (112, "IMAD", ""), (128, "BRA", "@!P1 (128)"), (144, "IADD3", ""),
            (160, "BRA", "@P2 (0)")]
    assert static.longest_path(code, 0, 160, (-1, -1)) == 9  # 0-80, 128-160: the three
    assert static.longest_path(code, 0, 160, (32, 64)) == 7  # 0, 16, 96, 112, 128, 144, 160: the two
    assert static.longest_path([(0, "IMAD", ""), (16, "EXIT", ""), (32, "BRA", "@P0 (0)")], 0, 32, (-1, -1)) == 0


def test_pointer_weight_gradients_moving_x_keep_their_mmas_in_flight():
    """``resnet50_l3_3x3``'s NCHW weight gradient on the heuristic's tiles (the pointer kernel: rows of 14 read in runs,
    the outer width taps' moved a column in registers) runs its MMA transposed (``weight_grad.x_as_m``): x the first
    operand, from registers, and neither loop waits for its MMAs (``loop_drains``), with no spill; as the second
    operand (``X_AS_M`` off) the moved loop stores it to shared memory each step and waits out every MMA first."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    entry = next(e for e in suite["conv2d"] if e["name"] == "resnet50_l3_3x3")
    problem = tuning.Problem.of("conv_wgrad", "bfloat16", "contiguous", **shapes.suite_problem("conv2d", entry))
    with static.recording(execute=False) as launches:
        tune.runner(problem, torch.device("cpu"))(static.chosen(problem, True))
    ((fn, args, kwargs, _),) = [launch for launch in launches if launch[0].fn.__name__ not in static.EPILOGUES]
    assert fn.fn.__name__ == "_conv_weight_grad_kernel" and kwargs["X_AS_M"] and kwargs["X_KINDS"] & ~0b10
    waits = {}
    for as_m in (True, False):
        compiled = static.compile_for(90, fn, args, {**kwargs, "X_AS_M": as_m})
        census = static.loop_census(compiled.asm["cubin"], 90)
        assert static.ptxas_report(compiled.asm["ptx"], 90)["spill_store_bytes"] == 0
        waits[as_m] = census["loop_drains"]
    assert waits[True] == [0, 0] and waits[False] == [0, 1], waits


def suite_launch(name: str, kind: str, layout: str, dtype: str = "bfloat16", tma: bool = True):
    """The main kernel launch of a suite layer's pass, in ``dtype`` (``"tf32"``: fp32 multiplied in TF32), on the config
    a Hopper GPU takes untuned (``tma`` False: a GPU before Hopper)."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    prob = dict(tune.suite_problems(suite))[name]
    problem = tuning.Problem.of(kind, "float32" if dtype == "tf32" else dtype, layout, prob["input_shape"],
                                prob["weight_shape"], prob["stride"], prob["padding"], prob["dilation"], prob["groups"],
                                tf32=dtype == "tf32")
    with static.recording(execute=False) as launches:
        tune.runner(problem, torch.device("cpu"))(static.chosen(problem, tma))
    ((fn, args, kwargs, _),) = [launch for launch in launches if launch[0].fn.__name__ not in static.EPILOGUES]
    return fn, args, kwargs


def kwidths(ttgir: str) -> set[int]:
    """The register widths (``kWidth``) of a compiled kernel's MMA operands."""
    return {int(k) for k in re.findall(r"kWidth = (\d+)", ttgir)}


def test_moved_operands_pass_through_a_fragment_where_the_mma_is_warp_level():
    """``FRAGMENTS`` (:func:`tritonconv._tile.fragment`) is set for a GPU whose MMA of the tile's rows is the warp-level
    one: before Hopper always, on Hopper under 64 rows (the weight gradient's input channels where it runs transposed);
    never on the CPU. In fp32 only where multiplied in TF32 (IEEE products are no MMA), and not for a forward dealing
    its rows (its fragments never halved; through the move it issued 1.15x)."""
    from tritonconv.kernels import gemm, weight_grad

    assert gemm.target_options({"BLOCK_M": 128, "FRAGMENTS": False}, 80)["FRAGMENTS"]
    assert not gemm.target_options({"BLOCK_M": 128, "FRAGMENTS": False}, 90)["FRAGMENTS"]
    assert gemm.target_options({"BLOCK_M": 32, "FRAGMENTS": False}, 90)["FRAGMENTS"]
    assert not gemm.target_options({"BLOCK_M": 32, "FRAGMENTS": False}, None)["FRAGMENTS"]
    wgrad = {"BLOCK_M": 32, "BLOCK_N": 64, "FRAGMENTS": False}
    assert weight_grad.target_options({**wgrad, "X_AS_M": False}, 90)["FRAGMENTS"]
    assert not weight_grad.target_options({**wgrad, "X_AS_M": True}, 90)["FRAGMENTS"]
    assert weight_grad.tma_target_options({**wgrad, "IN_AS_M": False}, 90)["FRAGMENTS"]
    assert not weight_grad.tma_target_options({**wgrad, "IN_AS_M": True}, 90)["FRAGMENTS"]
    assert not gemm.target_options({"BLOCK_M": 128, "DOT_PRECISION": "ieee", "RUN_VEC": 4}, 80)["FRAGMENTS"]
    assert gemm.target_options({"BLOCK_M": 128, "DOT_PRECISION": "tf32", "RUN_VEC": 4}, 80)["FRAGMENTS"]
    assert not gemm.target_options({"BLOCK_M": 128, "DOT_PRECISION": "tf32", "DEAL": 2}, 80)["FRAGMENTS"]
    assert gemm.target_options({"BLOCK_M": 128, "DOT_PRECISION": None, "DEAL": 2}, 80)["FRAGMENTS"]
    assert weight_grad.target_options({**wgrad, "X_AS_M": False, "DOT_PRECISION": "tf32", "X_DEAL": 2}, 80)["FRAGMENTS"]
    assert not weight_grad.target_options({**wgrad, "X_AS_M": False, "DOT_PRECISION": "ieee"}, 80)["FRAGMENTS"]


@pytest.mark.parametrize("arch", [90, 80])
def test_a_dealt_weight_gradient_reads_x_by_copies_and_its_mma_operands_by_ldmatrix(monkeypatch, arch):
    """``ct_anisotropic``'s NCHW weight gradient on the heuristic's tiles (the pointer kernel, 32 output channels: the
    warp-level MMA; ``x``'s rows strided 2 read in runs and dealt in registers, the outer width taps' moved a column).
    Its loops read ``x`` by 16-byte asynchronous copies, no plain load (each run's mask hinted constant after the
    phases' repeat: Triton 3.6 lost a hint given to the repeat itself and read ``x`` 2 bytes at a time, 399-598
    instructions a step on sm_90 where 3.9 issued 308-328). The dealt operand passes through
    :func:`tritonconv._tile.fragment`, so both operands' fragments keep their width (``kWidth`` 2) and ``dY`` is read
    from shared memory by ``ldmatrix``: without it (planted) both Tritons halve them (the repeat's join on ``x``'s
    addresses), and the loops issued 1.4-1.5x (sm_90, Triton 3.9). No spill."""
    fn, args, kwargs = suite_launch("ct_anisotropic", "conv_wgrad", "contiguous")
    assert fn.fn.__name__ == "_conv_weight_grad_kernel" and kwargs["X_DEAL"] == 2 and kwargs["BLOCK_M"] < 64
    compiled = static.compile_for(arch, fn, args, kwargs)
    census = static.loop_census(compiled.asm["cubin"], arch)
    assert static.ptxas_report(compiled.asm["ptx"], arch)["spill_store_bytes"] == 0
    assert len(census["loop_variants"]) == 3 and all(loads == 0 for _, loads in census["loop_variants"]), census
    assert census["loop_async_bytes"] == 16 and census["loop_math_op"] == "HMMA"
    assert kwidths(compiled.asm["ttgir"]) == {2}
    options = static.TARGET_OPTIONS["_conv_weight_grad_kernel"]
    monkeypatch.setitem(static.TARGET_OPTIONS, "_conv_weight_grad_kernel",
                        lambda kw, target: {**options(kw, target), "FRAGMENTS": False})
    assert 4 in kwidths(static.compile_for(arch, fn, args, kwargs).asm["ttgir"])


def test_tf32_weight_gradients_moving_x_on_the_warp_level_mma_keep_their_fragments(monkeypatch):
    """fp32 multiplied in TF32 on sm_80: ``resnet50_l2_3x3s2``'s NCHW weight gradient (``x``'s rows strided 2, dealt in
    registers) and ``resnet50_l3_3x3``'s (rows of 14 read in runs, the outer width taps' moved a column) pass ``x``
    through :func:`tritonconv._tile.fragment` as 16-bit operands do: both operands' fragments keep TF32's width
    (``kWidth`` 1). Without it (planted) Triton 3.6 halves them (``kWidth`` 2) and the moved loops issued 1.3-1.7x
    (143-155 -> 94-102 and 138 -> 108 instructions a step with it); Triton 3.9 never halved them. No spill."""
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")
    options = static.TARGET_OPTIONS["_conv_weight_grad_kernel"]
    for name in ("resnet50_l2_3x3s2", "resnet50_l3_3x3"):
        fn, args, kwargs = suite_launch(name, "conv_wgrad", "contiguous", "tf32", tma=False)
        assert fn.fn.__name__ == "_conv_weight_grad_kernel" and (kwargs["X_DEAL"] > 1 or kwargs["X_KINDS"] & ~0b10)
        compiled = static.compile_for(80, fn, args, kwargs)
        assert "tf32" in compiled.asm["ptx"] and kwidths(compiled.asm["ttgir"]) == {1}, name
        assert static.ptxas_report(compiled.asm["ptx"], 80)["spill_store_bytes"] == 0
        if triton.__version__.startswith("3.6."):
            with monkeypatch.context() as m:
                m.setitem(static.TARGET_OPTIONS, "_conv_weight_grad_kernel",
                          lambda kw, target: {**options(kw, target), "FRAGMENTS": False})
                assert 2 in kwidths(static.compile_for(80, fn, args, kwargs).asm["ttgir"]), name


def test_a_moved_descriptor_weight_gradient_on_the_warp_level_mma_reads_dy_by_ldmatrix(monkeypatch):
    """``unet3d_64cube``'s NCDHW weight gradient on the heuristic's 32 x 32 descriptor tiles (the warp-level MMA on
    Hopper), in 16 bits and in TF32: its outer width taps' ``x`` moved a column in registers passes through
    :func:`tritonconv._tile.fragment`, so the operands' fragments keep their width (``kWidth`` 2 in 16 bits, 1 in
    TF32; ``dY``'s box read by ``ldmatrix`` in 16 bits) in every loop and the moved loops issue at most 1.6x the loop
    reading its boxes as they are (Triton 3.6 halved the fragments through the move's joins: 2.6x, 431-435
    instructions a step in 16 bits and 419-424 in TF32, where 3.9 issued 236-242 and 230-235)."""
    for dtype in ("bfloat16", "tf32"):
        monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")
        fn, args, kwargs = suite_launch("unet3d_64cube", "conv_wgrad", "contiguous", dtype)
        assert fn.fn.__name__ == "_conv_weight_grad_tma_kernel" and kwargs["BLOCK_M"] < 64 and not kwargs["IN_AS_M"]
        compiled = static.compile_for(90, fn, args, kwargs)
        census = static.loop_census(compiled.asm["cubin"], 90)
        assert kwidths(compiled.asm["ttgir"]) == {1 if dtype == "tf32" else 2} and census["loop_math_op"] == "HMMA"
        steps = sorted(instructions for instructions, _ in census["loop_variants"])
        assert len(steps) == 3 and steps[-1] <= 1.6 * steps[0], (dtype, steps)


def test_hopper_mma_reads_both_operands_from_shared_memory():
    """The descriptor kernels with the configs a Hopper GPU's heuristic picks: forwards and input gradients on patches
    spanning rows and images (3x3 and 1x1 layers, a split one under one wave, strided by phase), NC(D)HW boxes and
    1-D rows, and weight gradients on one-row patches (channels-last rows of 64, planes of 56 x 56 and 28 x 28 read as
    rows, their seams' products taken out after the main loop; NC(D)HW rows, dy's boxes channels x positions with their
    unit axes leading, ``weight_grad.channels_fourth``); each main loop's HGMMAs read both operands from shared memory
    (none from registers, so no ``LDSM`` copies) and never wait for the pipe to drain
    (:func:`tritonconv.kernels.tma.positions_as_n`, :func:`tritonconv.tuning.one_row_patches`,
    :func:`tritonconv.tuning.plane_patches`: before them, most of these loops copied it through registers). An NC(D)HW weight
    gradient reading planes as rows (x's runs moved in registers by design) waits at most once a step: the seams' loop
    before its main loop had made it wait out every MMA."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    layers = [("resnet50_l1_3x3", "conv2d", "conv", "channels_last"), ("resnet50_l1_3x3", "conv2d", "conv_t", "channels_last"),
              ("resnet50_l3_3x3", "conv2d", "conv", "channels_last"), ("resnet50_l4_3x3", "conv2d", "conv", "channels_last"),
              ("resnet50_ds_1x1s2", "conv2d", "conv", "channels_last"), ("r3d18_l2_s2", "conv3d", "conv_t", "channels_last"),
              ("resnet50_l1_1x1", "conv2d", "conv", "contiguous"), ("tcn_k3", "conv1d", "conv", "channels_last"),
              ("resnet50_l1_3x3", "conv2d", "conv_wgrad", "channels_last"),  # planes as rows (tuning.plane_patches)
              ("c3d_conv3a", "conv3d", "conv_wgrad", "channels_last"),
              ("deeplab_3x3_d2", "conv2d", "conv_wgrad", "channels_last"),  # one row (tuning.one_row_patches)
              ("r3d18_l1", "conv3d", "conv_wgrad", "channels_last"), ("c3d_conv3a", "conv3d", "conv_wgrad", "contiguous"),
              ("resnet50_l1_1x1", "conv2d", "conv_wgrad", "contiguous"),  # dy's one-row boxes [1, 1, 1, C, W]
              ("tcn_k3_d8", "conv1d", "conv_wgrad", "contiguous")]
    for name, op, kind, layout in layers:
        entry = next(e for e in suite[op] if e["name"] == name)
        problem = tuning.Problem.of(kind, "bfloat16", layout, **shapes.suite_problem(op, entry))
        census = static.compiled_census(90, problem, tuning.heuristic(problem, interpret=False, tma=True))
        assert census["kernel"].startswith("_conv_") and "tma" in census["kernel"], (name, kind)
        assert census["loop_math_op"] == "HGMMA", (name, kind)
        if census.get("seam_loop") and layout == "contiguous":  # NC(D)HW planes: x's runs in registers, by design;
            # Triton 3.6 waits once a step for the MMAs reading them, 3.9 not at all (both waited 4 times before)
            assert census["loop_mma_drains"] <= 1, (name, kind, census)
            continue
        assert census["loop_mma_register_a"] == 0 and census["loop_mma_drains"] == 0, (name, kind, census)


def test_ptxas_never_waits_out_every_hopper_mma():
    """Loops whose MMA takes its first operand through registers (channel tiles under 64 beside patches spanning rows,
    a stem's packed input gradient, channels-last weight gradients on patches spanning rows or images, strided ones
    among them) keep two MMAs in flight: ptxas serializes none (its C7515 note, "non wgmma instructions defining
    accumulator registers": the path around a loop it cannot see run, which zeroed the accumulator between the last
    MMA and the wait for it, until the kernels told the compiler every loop runs), and the main loop never waits for
    the pipe to drain. Before: 9 of the suite's kernels serialized on Triton 3.6, 15 on 3.9. And tuner candidates
    serialized on 3.6 until their kernels told the compiler the same: a strided input gradient by stride phase whose
    every phase has taps (a phase no tap reaches runs no step), and pointer-kernel forwards (channels-last 128 x 256
    tiles; NCHW stem rows)."""
    suite = json.loads((static.ROOT / "shapes.json").read_text())
    layers = [("unet3d_64cube", "conv3d", "conv", "channels_last", None),
              ("c3d_conv1", "conv3d", "conv_t", "contiguous", None),
              ("resnet50_conv1", "conv2d", "conv_t", "channels_last", None),
              ("resnet50_l3_3x3", "conv2d", "conv_wgrad", "channels_last", None),
              ("r3d18_l2_s2", "conv3d", "conv_wgrad", "channels_last", None),
              ("ct_anisotropic", "conv3d", "conv_t", "contiguous",
               tuning.Config(64, 16, 32, num_warps=4, num_stages=4, tile_h=8, relayout=1)),
              ("resnet50_l4_3x3", "conv2d", "conv", "channels_last", tuning.Config(128, 256, 64, 8, 8, 3)),
              ("resnet50_conv1", "conv2d", "conv", "contiguous", tuning.Config(128, 16, 16, 8, 4, 3))]
    for name, op, kind, layout, cfg in layers:
        entry = next(e for e in suite[op] if e["name"] == name)
        problem = tuning.Problem.of(kind, "bfloat16", layout, **shapes.suite_problem(op, entry))
        census = static.compiled_census(90, problem, cfg or tuning.heuristic(problem, interpret=False, tma=True))
        assert census["loop_math_op"] == "HGMMA", (name, kind, census)
        assert cfg or census["loop_mma_register_a"] > 0, (name, kind, census)
        assert census["wgmma_serialized"] == "" and census["loop_mma_drains"] == 0, (name, kind, census)


def test_fused_2plus1d_keeps_its_mmas_in_flight(monkeypatch):
    """The fused (2+1)D kernel's channels-last launches (R(2+1)D-18's first block: 64 -> 144 -> 64 channels, mid
    with neither bias nor activation, as torchvision's blocks have it, and with both): ptxas serializes none of their
    MMAs, and their main loops never wait for the pipe. Without bias and activation it did on both Triton versions
    while the mid tile's temporal padding was a select on the spatial MMA's accumulator ("non wgmma instructions
    reading accumulator registers": 4 waits a step). A mid sigmoid (which maps 0 to 0.5) zeroes the padding's rows after it,
    on their rounded copy: no MMA serialized either."""
    fused_config = tuning.fused_2plus1d_config
    monkeypatch.setattr(tuning, "fused_2plus1d_config", lambda *sizes, interp, **kw: fused_config(*sizes, interp=False, **kw))
    monkeypatch.setattr(geometry, "WEIGHT_COPY_MACS", 0)  # weights channels-innermost, as a layer's size has them
    x = torch.empty(2, 64, 4, 14, 14, dtype=torch.bfloat16).to(memory_format=torch.channels_last_3d)
    ws, wt = torch.empty(144, 64, 1, 3, 3, dtype=torch.bfloat16), torch.empty(64, 144, 3, 1, 1, dtype=torch.bfloat16)
    with static.recording(execute=False) as launches:
        tritonconv.conv2plus1d(x, ws, wt, padding=1, fused=True)
        tritonconv.conv2plus1d(x, ws, wt, torch.empty(144, dtype=torch.bfloat16), padding=1, mid_activation="relu",
                               fused=True)
        tritonconv.conv2plus1d(x, ws, wt, padding=1, mid_activation="sigmoid", fused=True)
    assert len(launches) == 3
    for fn, args, kwargs, _ in launches:
        out = static.compile_for(90, fn, args, kwargs)
        census = {**static.ptxas_report(out.asm["ptx"], 90), **static.loop_census(out.asm["cubin"], 90)}
        assert census["loop_math_op"] == "HGMMA" and census["spill_store_bytes"] == 0, census
        assert census["wgmma_serialized"] == "" and census["loop_mma_drains"] == 0, (kwargs["HAS_BS"], census)


def test_fused_2plus1d_fp32_does_not_spill(monkeypatch):
    """The fused (2+1)D kernel in fp32 (FMA loops) steps 16 input and 16 mid channels on 8 warps: on 64-wide steps on 4
    warps its channels-last launch spilled 2,320 B on sm_90, 33 local accesses a step."""
    fused_config = tuning.fused_2plus1d_config
    monkeypatch.setattr(tuning, "fused_2plus1d_config", lambda *sizes, interp, **kw: fused_config(*sizes, interp=False, **kw))
    monkeypatch.setattr(geometry, "WEIGHT_COPY_MACS", 0)
    ws, wt = torch.empty(144, 64, 1, 3, 3), torch.empty(64, 144, 3, 1, 1)
    with static.recording(execute=False) as launches:
        for fmt in (torch.channels_last_3d, torch.contiguous_format):
            tritonconv.conv2plus1d(torch.empty(2, 64, 4, 14, 14).to(memory_format=fmt), ws, wt, padding=1, fused=True)
    assert len(launches) == 2
    for fn, args, kwargs, _ in launches:
        assert (kwargs["BLOCK_K"], kwargs["BLOCK_C"], kwargs["num_warps"]) == (16, 16, 8)
        assert static.ptxas_report(static.compile_for(90, fn, args, kwargs).asm["ptx"], 90)["spill_store_bytes"] == 0


def test_descriptor_input_gradient_reads_the_weight_as_it_is_laid_out():
    """The input gradient of a weight laid out as ``tritonconv.nn`` keeps it (input channels innermost: the
    transposed pass's columns) reads it as boxes of reduction x columns, the MMA's second operand N-major, with
    no copy: TMA copies into HGMMA, no spills, channels-last (3x3) and NCHW (1x1) tiles."""
    for layout, k in (("channels_last", 3), ("contiguous", 1)):
        x = geometry.to_layout(torch.randn(8, 64, 8, 16, dtype=torch.bfloat16), layout)
        w = geometry.channels_inner(torch.randn(128, 64, k, k, dtype=torch.bfloat16))
        spec = conv_spec("conv2d", 2, x, w, None, 1, k // 2, 1, 1)
        dy = geometry.to_layout(torch.randn(spec.output_shape, dtype=torch.bfloat16), layout)
        for cfg in tuning.tma_candidates(tuning.Problem.for_launch("conv_t", dy, spec))[::5]:
            with static.recording(execute=False) as launches:
                dispatch.conv_grad_input(dy, w, spec, False, geometry.output_memory_format(x, w), cfg)
            ((fn, args, kwargs, _),) = launches
            assert fn.fn.__name__ == "_conv_tma_kernel" and kwargs["W_COLS_INNER"]
            out = static.compile_for(90, fn, args, kwargs)
            assert static.instruction(out.asm["ptx"]) == "wgmma" and "cp.async.bulk.tensor" in out.asm["ptx"]
            assert static.loop_census(out.asm["cubin"], 90)["loop_math_op"] == "HGMMA"
            assert static.ptxas_report(out.asm["ptx"], 90)["spill_store_bytes"] == 0, (layout, cfg)


def test_direct_launches_pass_what_jitfunction_run_passes(monkeypatch):
    """Every kernel family's launch, laid out by the direct path, is the argument list Triton's own binder gives
    JITFunction.run for the GPU (every parameter in signature order, defaults applied, constexprs included)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    from tritonconv import _runtime

    monkeypatch.setattr(tuning, "choose", lambda problem, *_: tuning.heuristic(problem, interpret=False))
    with static.recording(execute=False) as launches:
        problems()
        for kind in ("conv", "conv_wgrad"):  # the descriptor kernels: descriptors are per-call arguments too
            problem = tuning.Problem.of(kind, "bfloat16", "channels_last", (1, 16, 8, 8), (16, 16, 3, 3), 1, 1)
            tune.runner(problem, torch.device("cpu"))(tuning.heuristic(problem, interpret=False, tma=True))
    backend = make_backend(GPUTarget("cuda", 90, 32))
    seen = set()
    for fn, args, kwargs, _ in launches:
        binder = create_function_from_signature(fn.signature, fn.params, backend)
        bound, _, _ = binder(*args, **kwargs)
        per_call = (torch.Tensor, _runtime.TensorDescriptor)
        n = next(i for i, a in enumerate(args) if not isinstance(a, per_call))  # the tensors lead
        assert not any(isinstance(a, per_call) for a in args[n:]), fn.fn.__name__  # the rest is fixed per plan
        rest, _ = _runtime.Direct(_runtime.Kernel(fn), args[n:], kwargs).layout(args[:n])
        expected = list(bound.values())
        assert len(rest) == len(expected) - n, fn.fn.__name__
        assert all(a is b or a == b for a, b in zip(rest, expected[n:])), fn.fn.__name__
        seen.add(fn.fn.__name__)
    assert len(seen) == 12


class FakeCompiled:
    """A compiled kernel as JITFunction.run returns it: a launcher taking grid, stream, function, metadata,
    launch metadata, hooks and every argument."""

    function, packed_metadata = "function", "packed"

    def __init__(self):
        self.calls = []

    def launch_metadata(self, grid, stream, *args):
        return ("metadata", grid, stream)

    def run(self, *args):
        self.calls.append(args)


def test_direct_path_reuses_the_compiled_kernel_and_falls_back_when_specialisation_changes(monkeypatch):
    """After one launch through JITFunction.run, later calls go to the compiled kernel's launcher with the new
    tensors in place; a tensor that lost its 16-byte alignment goes through JITFunction.run again."""
    import triton

    from tritonconv import _runtime

    compiled, through_run = FakeCompiled(), []

    class FakeJit:
        def __getitem__(self, grid):
            return lambda *args, **kwargs: through_run.append(args) or compiled

    @triton.jit
    def k(x, y, n, BLOCK: triton.language.constexpr, FLAG: triton.language.constexpr = 3):
        pass

    kernel = _runtime.Kernel(k)
    monkeypatch.setattr(_runtime.Kernel, "__getitem__", lambda self, device: FakeJit())
    monkeypatch.setattr(_runtime, "interpreting", lambda device: False)
    monkeypatch.setattr(_runtime, "current_stream", lambda device: 7)
    direct = _runtime.Direct(kernel, (10,), dict(BLOCK=16, num_warps=4))
    cpu = torch.device("cpu")
    a, b = torch.empty(64), torch.empty(64)
    direct(cpu, (4,), a, b)
    assert len(through_run) == 1 and not compiled.calls
    c, d = torch.empty(64), torch.empty(64)
    direct(cpu, (4,), c, d)
    (call,) = compiled.calls
    runtime = triton.knobs.runtime
    assert call[:9] == (4, 1, 1, 7, "function", "packed", None, runtime.launch_enter_hook, runtime.launch_exit_hook)
    assert call[9:] == (c, d, 10, 16, 3) and len(through_run) == 1
    hooks = triton.knobs.runtime.launch_enter_hook  # Triton's chain of hooks (3.6, 3.9), empty: no metadata made
    hook = lambda metadata: None  # noqa: E731
    hooks.add(hook)  # a profiler's: the launch metadata as Triton makes it
    try:
        direct(cpu, (4,), c, d)
    finally:
        hooks.remove(hook)
    assert compiled.calls.pop()[:8] == (4, 1, 1, 7, "function", "packed", ("metadata", (4, 1, 1), 7), hooks)
    leaving = triton.knobs.runtime.launch_exit_hook  # an exit hook alone reads the metadata too
    leaving.add(hook)
    try:
        direct(cpu, (4,), c, d)
    finally:
        leaving.remove(hook)
    assert compiled.calls.pop()[6] == ("metadata", (4, 1, 1), 7)
    misaligned = torch.empty(65)[1:]
    direct(cpu, (4,), misaligned, d)
    assert len(through_run) == 2 and len(compiled.calls) == 1
    monkeypatch.setattr(_runtime, "DIRECT", False)  # TRITONCONV_DIRECT=0: every launch through JITFunction.run
    off = _runtime.Direct(kernel, (10,), dict(BLOCK=16, num_warps=4))
    for _ in range(3):
        off(cpu, (4,), a, b)
    assert len(through_run) == 5 and len(compiled.calls) == 1 and not off.ready(cpu)


def test_the_direct_path_asks_for_the_stream_as_triton_does(monkeypatch):
    """The stream handle comes from torch's raw getter (an int, no Stream object), for the tensor's device or,
    for a device named without an index, the current one."""
    from tritonconv import _runtime

    asked = []
    monkeypatch.setattr(_runtime, "_raw_stream", lambda index: asked.append(index) or 100 + index)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert _runtime.current_stream(torch.device("cuda", 1)) == 101
    assert _runtime.current_stream(torch.device("cuda")) == 103 and asked == [1, 3]


def test_direct_launches_keep_descriptors_by_address_not_tensors(monkeypatch):
    """A launch site's descriptors are built on the tensor for its first launch (JITFunction.run specialises on
    it), then on the tensor's address alone, one per address: the same address reuses its descriptor, a new one
    gets its own, and no kept descriptor keeps its tensor alive."""
    import gc
    import weakref

    import triton

    from tritonconv import _runtime

    if _runtime.TensorDescriptor is None:
        pytest.skip("host-side tensor descriptors need Triton 3.4+")

    class FakeJit:
        def __getitem__(self, grid):
            return lambda *args, **kwargs: FakeCompiled()

    @triton.jit
    def k(x_desc, n):
        pass

    monkeypatch.setattr(_runtime.Kernel, "__getitem__", lambda self, device: FakeJit())
    monkeypatch.setattr(_runtime, "interpreting", lambda device: False)
    monkeypatch.setattr(_runtime, "current_stream", lambda device: 7)
    direct = _runtime.Direct(_runtime.Kernel(k), (1,))
    descriptors = _runtime.Descriptors(direct, [4, 64], [64, 1], [2, 16])
    a = torch.randn(4, 64)
    first = descriptors(a)
    assert first.base is a  # before the first launch: on the tensor
    direct(a.device, (1,), first)
    kept = descriptors(a)
    assert isinstance(kept.base, _runtime.Address) and kept.base.data_ptr() == a.data_ptr()
    assert kept.base.dtype == a.dtype and descriptors(a) is kept and len(descriptors.kept) == 1
    b = torch.randn(4, 64)
    assert descriptors(b) is not kept and descriptors(b).base.data_ptr() == b.data_ptr()
    gone = weakref.ref(b)
    del b
    gc.collect()
    assert gone() is None  # the kept descriptor holds an address, not the tensor


def test_the_table_checks_direct_launches_against_the_first_call(monkeypatch, capsys):
    """``python -m tritonconv`` on a GPU runs each case twice and wants both outputs equal bit for bit (the second
    call launches below JITFunction.run); a planted difference is reported and fails the table."""
    from tritonconv import __main__ as table

    monkeypatch.setattr(table, "CASES", table.CASES[:1])
    monkeypatch.setattr(table, "interpreting", lambda device: False)  # as compiled; the kernels still interpret
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU", raising=False)
    with pytest.raises(SystemExit) as ok:
        table.main()
    out = capsys.readouterr().out
    assert ok.value.code == 0 and out.count(" same") == 3 and "DIFFERS" not in out
    real, calls = tritonconv.conv1d, []

    def drifting(*args, **kwargs):
        calls.append(1)
        y = real(*args, **kwargs)
        return y if len(calls) % 2 else y + torch.finfo(y.dtype).eps * y.abs().max()

    monkeypatch.setattr(tritonconv, "conv1d", drifting)
    with pytest.raises(SystemExit) as bad:
        table.main()
    assert bad.value.code == 1 and capsys.readouterr().out.count("DIFFERS") == 3
