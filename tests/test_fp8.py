"""FP8 convolution: equal to the dequantised fp32 convolution within fp32 accumulation error; quantisation round
trips; converted models within a stated error of their float versions; clear errors; fp8 products compile."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from test_conv import ACT

import tritonconv
from tritonconv import dispatch, fp8, tuning
from tritonconv._checks import shape_spec

CASES = [  # (ndim, input shape, weight shape, kwargs)
    (1, (2, 8, 37), (16, 8, 5), dict(padding=2, dilation=2)),
    (2, (2, 8, 9, 11), (12, 4, 3, 3), dict(padding=1, groups=2)),
    (2, (1, 3, 13, 12), (8, 3, 7, 7), dict(stride=2, padding=3)),  # a stem: positions packed into channels
    (2, (2, 16, 7, 6), (8, 16, 1, 1), dict(stride=(2, 1))),
    (3, (1, 8, 5, 7, 6), (8, 8, 3, 3, 3), dict(padding="same")),
    (3, (2, 8, 4, 6, 5), (16, 8, 3, 1, 1), dict(stride=(2, 1, 1), padding=(1, 0, 0))),  # H and W merged
    (3, (1, 8, 3, 4, 5), (8, 8, 3, 1, 1), dict(padding=(1, 0, 0))),  # all three merged: a 1-D convolution
]


def reference(ndim, xq, xs, wq, ws, bias, kwargs, activation=None):
    y = getattr(F, f"conv{ndim}d")(fp8.dequantize(xq, xs), fp8.dequantize(wq, ws, 0), bias, **kwargs)
    return ACT[activation](y)


@pytest.mark.parametrize("ndim,x_shape,w_shape,kwargs", CASES)
@pytest.mark.parametrize("dtype", fp8.FP8_DTYPES)
def test_fp8_convolution_equals_the_dequantised_one(ndim, x_shape, w_shape, kwargs, dtype):
    g = torch.Generator().manual_seed(len(x_shape) + sum(w_shape))
    x, w, b = torch.randn(x_shape, generator=g), torch.randn(w_shape, generator=g), torch.randn(w_shape[0], generator=g)
    xq, xs = fp8.quantize(x, dtype=dtype)
    for per_channel in (0, None):
        wq, ws = fp8.quantize(w, per_channel_dim=per_channel, dtype=dtype)
        y = getattr(fp8, f"conv{ndim}d")(xq, wq, b, input_scale=xs, weight_scale=ws, out_dtype=torch.float32, **kwargs)
        want = reference(ndim, xq, xs, wq, ws, b, kwargs)
        assert y.dtype == torch.float32 and y.shape == want.shape
        torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


@pytest.mark.parametrize("out_dtype", fp8.OUT_DTYPES)
@pytest.mark.parametrize("activation", [None, "relu", "gelu", "leaky_relu(0.2)"])
def test_output_dtypes_activations_layouts_and_splits(out_dtype, activation):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 32, 6, 7, generator=g).contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(24, 32, 3, 3, generator=g), torch.randn(24, generator=g).to(out_dtype)
    (xq, xs), (wq, ws) = fp8.quantize(x), fp8.quantize(w, per_channel_dim=0)
    want = reference(2, xq, xs, wq, ws, b.float(), dict(padding=1), activation)
    y = fp8.conv2d(xq, wq, b, padding=1, input_scale=xs, weight_scale=ws, out_dtype=out_dtype, activation=activation)
    assert y.dtype == out_dtype and y.is_contiguous(memory_format=torch.channels_last)  # the input's layout, as torch's
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}[out_dtype]
    torch.testing.assert_close(y.float(), want, rtol=tol, atol=tol * want.abs().max().item())
    spec = shape_spec("fp8.conv2d", 2, xq, wq, b, 1, 1, 1, 1)  # a split reduction: each partial scaled, summed
    plan = dispatch.scaled_forward_plan(xq, wq, b, ws, spec, activation, out_dtype, tuning.Config(16, 16, 32, split_k=2))
    torch.testing.assert_close(plan(xq, wq, b, ws, xs).float(), want, rtol=tol, atol=tol * want.abs().max().item())


def test_quantize_round_trips_within_the_formats_precision():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(8, 4, 3, 3, generator=g) * torch.logspace(-3, 1, 8).view(8, 1, 1, 1)  # channels of unlike ranges
    for dtype, bits in ((torch.float8_e4m3fn, 3), (torch.float8_e5m2, 2)):
        q, s = fp8.quantize(w, per_channel_dim=0, dtype=dtype)
        assert q.dtype == dtype and s.shape == (8,) and q.float().abs().amax() == torch.finfo(dtype).max
        back = fp8.dequantize(q, s, per_channel_dim=0)
        for c in range(8):  # each channel within its format's relative precision (normal numbers near its amax)
            err = ((back[c] - w[c]).norm() / w[c].norm()).item()
            assert err < 2.0 ** -(bits + 1), (dtype, c, err)
        whole = fp8.dequantize(*fp8.quantize(w, dtype=dtype))
        assert ((whole[0] - w[0]).norm() / w[0].norm()) > ((back[0] - w[0]).norm() / w[0].norm())  # per-channel wins
    q, s = fp8.quantize(torch.zeros(3))
    assert s.item() == 1.0 and not q.float().any()
    # non-finite values: the scale is the finite values' (an infinite one had rounded every finite value to 0)
    t = torch.tensor([float("inf"), -float("inf"), float("nan"), 2.0, -448.0])
    q, s = fp8.quantize(t)
    assert s.item() == 1.0 and q.float()[3:].tolist() == [2.0, -448.0] and q.float()[:2].tolist() == [448.0, -448.0]
    assert q.float()[2].isnan()


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 16, 3, padding=1, groups=16), torch.nn.ReLU(),  # depthwise: stays
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 10, 1))

    def forward(self, x):
        return self.body(x).mean(dim=(2, 3))


def relative(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.mark.parametrize("calibrated", [False, True])
def test_converted_cnn_is_close_to_its_float_version(calibrated):
    """Static (calibrated) or dynamic input scales: the fp8 model's output within 10% (relative L2) of the fp32
    model's on fresh inputs; depthwise layers left and named."""
    torch.manual_seed(0)
    model = SmallCNN().eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        want = model(x)
        batches = [torch.randn(4, 3, 16, 16) for _ in range(3)] if calibrated else None
        report = fp8.convert(model, calibration=batches, report=True)
        got = model(x)
    assert report.converted == {"Conv2d": 3} and report.left == {"depthwise: no tensor-core products": 1}
    assert isinstance(model.body[0], fp8.Conv) and (model.body[0].input_scale is not None) == calibrated
    assert got.dtype == torch.float32 and relative(got, want) < 0.1, relative(got, want)


@pytest.mark.parametrize("ndim,layout", [(1, "contiguous"), (2, "contiguous"), (2, "channels_last"),
                                         (3, "contiguous")])
def test_a_converted_layer_reads_its_activations_channels_innermost(ndim, layout, monkeypatch):
    """``fp8.Conv`` quantises its input channels innermost in the pass that rounds it, so an NC(D)HW model's layer
    runs the kernels' channels-last tiles (on Hopper the descriptor kernel, where NC(D)HW fp8 rows of 56 bytes allow
    no descriptor box), its weight held channels innermost (no per-call copy); the output in the input's layout;
    the functional convolution of the same quantised operands within bf16's rounding (the layer writes bf16)."""
    from benchmarks import static

    g = torch.Generator().manual_seed(13)
    sizes = {1: (2, 64, 56), 2: (2, 64, 8, 8), 3: (1, 64, 2, 8, 8)}[ndim]
    x = tritonconv.geometry.to_layout(torch.randn(sizes, generator=g), layout)
    layer = getattr(torch.nn, f"Conv{ndim}d")(64, 64, 3, padding=1)
    converted = fp8.convert(torch.nn.Sequential(layer))[0]
    assert converted.weight.stride(1) == 1
    monkeypatch.setattr(tuning, "choose", lambda problem, *_: tuning.heuristic(problem, interpret=False, tma=True))
    with static.recording() as launches, torch.no_grad():
        y = converted(x)
    ((fn, args, _, _),) = launches
    assert fn.fn.__name__ == "_conv_tma_kernel" and args[0].base.stride(1) == 1  # the quantised input, channels inner
    assert tritonconv.geometry.memory_format_of(y) == tritonconv.geometry.memory_format_of(x) and y.dtype == x.dtype
    xq, xs = fp8.quantize(x)
    want = getattr(fp8, f"conv{ndim}d")(xq, converted.weight, converted.bias, padding=1, input_scale=xs,
                                        weight_scale=converted.weight_scale, out_dtype=torch.float32)
    torch.testing.assert_close(y, want, rtol=2**-8, atol=2**-8 * want.abs().max().item())  # y rounded to bf16


def test_converted_3d_unet_is_close_to_its_float_version():
    """MONAI's UNet (3-D, strided and transposed convolutions, instance norm): its convolutions on fp8, the
    transposed ones left; the output within 10% of the fp32 model's (measured here about 5.5%)."""
    monai = pytest.importorskip("monai")
    torch.manual_seed(0)
    net = monai.networks.nets.UNet(3, 1, 2, channels=(8, 16), strides=(2,), num_res_units=0).eval()
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        want = net(x)
        report = fp8.convert(net, report=True)
        got = net(x)
    assert report.converted["Conv3d"] >= 2 and report.left["transposed convolution: not in fp8"] >= 1
    assert relative(got, want) < 0.1, relative(got, want)


def test_converted_model_compiles_into_one_graph_and_traces_on_fake_tensors():
    """``torch.compile`` of a converted model: one graph, no break (the fp8 convolution is the custom op
    ``tritonconv::conv_fp8``), equal to the eager model bit for bit (the same kernel); on fake tensors the op gives the
    output's shape, dtype and layout without launching."""
    from torch._dynamo.testing import CompileCounterWithBackend
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(16, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 16, 1, stride=2)).eval()
    x = torch.randn(2, 16, 7, 9)
    targets = []

    def backend(gm, _):
        targets.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    for calibration in ([x], None):  # a static input scale, then each call's own
        q = fp8.convert(model, calibration=calibration)
        targets.clear()
        with torch.no_grad():
            eager = q(x)
            counter = CompileCounterWithBackend(backend)
            torch._dynamo.reset()
            compiled = torch.compile(q, backend=counter, fullgraph=True)(x)
        assert counter.frame_count == 1 and targets.count("tritonconv.conv_fp8.default") == 2, targets
        assert torch.equal(compiled, eager) and compiled.dtype == x.dtype
    spec = shape_spec("fp8.conv2d", 2, x, model[0].weight, None, 1, 1, 1, 1)
    xq, xs = fp8.quantize(x.contiguous(memory_format=torch.channels_last))
    wq, ws = fp8.quantize(model[0].weight.detach(), per_channel_dim=0)
    real = fp8.conv2d(xq, wq, None, padding=1, input_scale=xs, weight_scale=ws)
    with FakeTensorMode() as mode:
        fake = fp8.conv2d(*(mode.from_tensor(t) for t in (xq, wq)), None, padding=1, input_scale=mode.from_tensor(xs),
                          weight_scale=mode.from_tensor(ws))
    assert isinstance(fake, FakeTensor) and (fake.shape, fake.stride(), fake.dtype) == (
        real.shape, real.stride(), real.dtype) and real.shape == spec.output_shape


def test_bad_inputs_get_clear_errors(monkeypatch):
    x, w = fp8.quantize(torch.randn(1, 4, 6, 6))[0], fp8.quantize(torch.randn(8, 4, 3, 3))[0]
    one = torch.tensor(1.0)
    kw = dict(input_scale=one, weight_scale=one)
    with pytest.raises(TypeError, match=r"fp8.conv2d: expected `input` dtype to be torch.float8_e4m3fn"):
        fp8.conv2d(torch.randn(1, 4, 6, 6), w, **kw)
    with pytest.raises(TypeError, match=r"expected `weight` dtype to be torch.float8_e4m3fn \(the input's\)"):
        fp8.conv2d(x, w.float().to(torch.float8_e5m2), **kw)
    with pytest.raises(ValueError, match=r"`weight_scale` of one value or shape \(8,\)"):
        fp8.conv2d(x, w, input_scale=one, weight_scale=torch.ones(3))
    with pytest.raises(ValueError, match=r"`input_scale` to hold one value"):
        fp8.conv2d(x, w, input_scale=torch.ones(2), weight_scale=one)
    with pytest.raises(TypeError, match=r"`out_dtype`"):
        fp8.conv2d(x, w, out_dtype=torch.float64, **kw)
    with pytest.raises(ValueError, match=r"depthwise"):
        fp8.conv2d(x, fp8.quantize(torch.randn(4, 1, 3, 3))[0], groups=4, **kw)
    with pytest.raises(RuntimeError, match=r"forward only"):
        fp8.conv2d(x, w, input_scale=one.clone().requires_grad_(), weight_scale=one)
    with pytest.raises(ValueError, match=r"fp8.conv2d: expected `weight` of rank 4"):
        fp8.conv2d(x, w[0], **kw)
    xs = fp8.quantize(torch.randn(3, 4, 6, 6))[0]
    with pytest.raises(NotImplementedError, match=r"fp8.conv2d: called under torch.func.vmap"):
        torch.func.vmap(lambda xi: fp8.conv2d(xi[None], w, **kw))(xs)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-80GB")
    with pytest.raises(RuntimeError, match=r"compute capability 8.9 or newer .*A100-SXM4-80GB is 8.0"):
        fp8._check_device("fp8.conv2d", torch.device("cuda", 0))
    assert "fp8" in dir(tritonconv)
    conv = torch.nn.Conv2d(4, 8, 3)  # a model that is itself a convolution: nothing to replace it in, said so
    with pytest.raises(ValueError, match=r"`model` is itself a Conv2d.*fp8.convert\(torch.nn.Sequential\(conv\)\)\[0\]"):
        fp8.convert(conv)
    assert list(conv.state_dict()) == ["weight", "bias"]
    assert isinstance(fp8.convert(torch.nn.Sequential(conv))[0], fp8.Conv)


def test_fp8_products_compile_to_tensor_core_instructions_without_spills():
    """On Hopper the fp8 dot becomes wgmma on e4m3 operands, on Ada mma; no register spills (ptxas)."""
    pytest.importorskip("triton.backends.nvidia")
    from benchmarks import static

    x = fp8.quantize(torch.randn(2, 32, 9, 10))[0].contiguous(memory_format=torch.channels_last)
    w, s = fp8.quantize(torch.randn(64, 32, 3, 3), per_channel_dim=0)
    choose = tuning.choose
    tuning.choose = lambda problem, *_: tuning.heuristic(problem, interpret=False)
    try:
        with static.recording(execute=False) as launches:
            fp8.conv2d(x, w, torch.randn(64), padding=1, input_scale=torch.tensor(0.1), weight_scale=s)
    finally:
        tuning.choose = choose
    ((fn, args, kwargs, _),) = launches
    assert kwargs["SCALED"] and kwargs["BLOCK_K"] >= 32
    for arch, instruction, sass_op in ((90, "wgmma", "QGMMA"), (89, "mma", "QMMA")):
        compiled = static.compile_for(arch, fn, args, kwargs)
        ptx = compiled.asm["ptx"]
        report = static.ptxas_report(ptx, arch)
        assert static.instruction(ptx) == instruction and "e4m3" in ptx and report["spill_store_bytes"] == 0, report
        assert static.loop_census(compiled.asm["cubin"], arch)["loop_math_op"] == sass_op  # the census counts them
    assert math.isfinite(report["registers"])


@pytest.mark.parametrize("x_shape,w_shape,kwargs,factors,packed", [
    ((2, 3, 32, 30), (64, 3, 7, 7), dict(stride=2, padding=3), (2, 2), 32),  # ResNet's stem: space to depth, 12
    ((1, 3, 5, 9, 11), (64, 3, 3, 3, 3), dict(padding=1), (1, 1, 3), 32),  # C3D's: its width taps, 9 channels
    ((1, 3, 66, 69), (64, 3, 8, 8), dict(stride=8, padding=0), (8, 8), 192),  # a patch embedding: 192, 1 tap
])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_fp8_stems_pack_positions_into_chunks_of_32_channels(x_shape, w_shape, kwargs, factors, packed, layout,
                                                            monkeypatch):
    """A layer of few input channels packs its positions into channels as 16-bit ones do, in chunks of 32 (fp8's
    MMA reduction): two packing launches, then the packed convolution on the heuristic's Hopper tiles (the descriptor
    kernel), the dequantised convolution's result; compiled for sm_90, wgmma on e4m3, no spill. Before, fp8 stems
    gathered their taps per element (the pointer kernel's folded loop: 19-40 warp instructions per 1000 multiply-adds
    on the suite's stems, against 1.1-1.3 packed)."""
    from benchmarks import static

    g = torch.Generator().manual_seed(11)
    ndim = len(x_shape) - 2
    x = tritonconv.geometry.to_layout(torch.randn(x_shape, generator=g), layout)
    w, b = torch.randn(w_shape, generator=g), torch.randn(w_shape[0], generator=g)
    (xq, xs), (wq, ws) = fp8.quantize(x), fp8.quantize(w, per_channel_dim=0)
    spec = shape_spec(f"fp8.conv{ndim}d", ndim, xq, wq, b, kwargs.get("stride", 1), kwargs["padding"], 1, 1)
    assert tritonconv.geometry.pack_factors(spec, itemsize=1) == factors
    assert tritonconv.geometry.packed(spec, factors, itemsize=1).weight_shape[1] == packed
    monkeypatch.setattr(tuning, "choose", lambda problem, *_: tuning.heuristic(problem, interpret=False, tma=True))
    with static.recording() as launches:
        y = getattr(fp8, f"conv{ndim}d")(xq, wq, b, input_scale=xs, weight_scale=ws, out_dtype=torch.float32,
                                         activation="relu", **kwargs)
    assert [fn.fn.__name__ for fn, *_ in launches] == ["_pack_kernel", "_pack_kernel", "_conv_tma_kernel"]
    want = reference(ndim, xq, xs, wq, ws, b, kwargs, "relu")
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())
    assert y.stride() == want.contiguous(memory_format=tritonconv.geometry.output_memory_format(x, w)).stride()
    pytest.importorskip("triton.backends.nvidia")
    fn, args, kw, _ = launches[-1]
    ptx = static.compile_for(90, fn, args, kw).asm["ptx"]
    assert static.instruction(ptx) == "wgmma" and "e4m3" in ptx and static.ptxas_report(ptx, 90)["spill_store_bytes"] == 0


def test_the_descriptor_kernel_runs_fp8_too():
    """A config with tensor-descriptor tiles (Hopper's kernel, its weight tile K-major as fp8 MMA wants): the same
    result as the dequantised convolution, and compiled for sm_90 it is wgmma on e4m3 without spills."""
    from benchmarks import static

    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 32, 6, 9, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(16, 32, 3, 3, generator=g).contiguous(memory_format=torch.channels_last)
    (xq, xs), (wq, ws) = fp8.quantize(x), fp8.quantize(w, per_channel_dim=0)
    spec = shape_spec("fp8.conv2d", 2, xq, wq, None, 1, 1, 1, 1)
    cfg = tuning.Config(64, 16, 32, group_m=1, num_warps=4, num_stages=2, tile_h=8)  # wgmma: 64-row tiles
    with static.recording() as launches:
        y = dispatch.scaled_forward_plan(xq, wq, None, ws, spec, "relu", torch.float32, cfg)(xq, wq, None, ws, xs)
    ((fn, args, kwargs, _),) = launches
    assert fn.fn.__name__ == "_conv_tma_kernel" and kwargs["SCALED"]
    want = reference(2, xq, xs, wq, ws, None, dict(padding=1), "relu")
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())
    pytest.importorskip("triton.backends.nvidia")
    ptx = static.compile_for(90, fn, args, kwargs).asm["ptx"]
    assert static.instruction(ptx) == "wgmma" and "e4m3" in ptx and static.ptxas_report(ptx, 90)["spill_store_bytes"] == 0


def test_fp8_descriptor_patches_run_the_mma_transposed():
    """fp8 tiles of 64 output channels on patches spanning rows and images (``tma.positions_as_n``): output channels x
    positions, both operands K-major as fp8 MMA wants; the dequantised convolution's result, and compiled for sm_90
    wgmma on e4m3 fed from shared memory, no drain, no spill."""
    from benchmarks import static

    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 32, 5, 6, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(72, 32, 3, 3, generator=g).contiguous(memory_format=torch.channels_last)
    (xq, xs), (wq, ws) = fp8.quantize(x), fp8.quantize(w, per_channel_dim=0)
    spec = shape_spec("fp8.conv2d", 2, xq, wq, None, 1, 1, 1, 1)
    cfg = tuning.Config(64, 64, 32, group_m=1, num_warps=4, num_stages=2, tile_h=4, tile_b=2)
    with static.recording() as launches:
        y = dispatch.scaled_forward_plan(xq, wq, None, ws, spec, "relu", torch.float32, cfg)(xq, wq, None, ws, xs)
    ((fn, args, kwargs, _),) = launches
    assert fn.fn.__name__ == "_conv_tma_kernel" and kwargs["SCALED"] and kwargs["POSITIONS_N"]
    want = reference(2, xq, xs, wq, ws, None, dict(padding=1), "relu")
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())
    pytest.importorskip("triton.backends.nvidia")
    out = static.compile_for(90, fn, args, kwargs)
    assert static.instruction(out.asm["ptx"]) == "wgmma" and "e4m3" in out.asm["ptx"]
    assert static.ptxas_report(out.asm["ptx"], 90)["spill_store_bytes"] == 0
    loop = static.loop_census(out.asm["cubin"], 90)
    assert loop["loop_math_op"] == "QGMMA" and loop["loop_mma_register_a"] == 0 and loop["loop_mma_drains"] == 0, loop


@pytest.mark.parametrize("kernel,padding,stride,nc_shift", [(1, 0, 1, 0), (3, 1, 1, 2), (3, 1, 2, 1)])
def test_nchw_fp8_boxes_through_descriptors(kernel, padding, stride, nc_shift):
    """An NCHW fp8 input read in place as descriptor boxes of channels x positions (rows of 16-byte multiples: 32
    columns of 1 byte) on Hopper's heuristic, a 1x1 layer's boxes as they are, a 3x3 layer's rows whole from column 0 (each width
    tap's products moved along them; strided 2, dealt): the dequantised convolution's result; wgmma on e4m3, no spills."""
    from benchmarks import static

    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 32, 8, 32, generator=g)  # boxes of whole rows, exact
    w = torch.randn(64, 32, kernel, kernel, generator=g)
    (xq, xs), (wq, ws) = fp8.quantize(x), fp8.quantize(w, per_channel_dim=0)
    spec = shape_spec("fp8.conv2d", 2, xq, wq, None, stride, padding, 1, 1)
    cfg = tuning.heuristic(tuning.Problem.for_launch("conv", xq, spec), interpret=False, tma=True)
    assert cfg.tile_h and cfg.block_m // cfg.tile_h >= 16
    with static.recording() as launches:
        y = dispatch.scaled_forward_plan(xq, wq, None, ws, spec, None, torch.float32, cfg)(xq, wq, None, ws, xs)
    ((fn, args, kwargs, _),) = launches
    assert fn.fn.__name__ == "_conv_tma_kernel" and not kwargs["CHANNELS_INNER"] and kwargs["NC_SHIFT"] == nc_shift
    want = reference(2, xq, xs, wq, ws, None, dict(padding=padding, stride=stride), None)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())
    pytest.importorskip("triton.backends.nvidia")
    ptx = static.compile_for(90, fn, args, kwargs).asm["ptx"]
    assert static.instruction(ptx) == "wgmma" and "e4m3" in ptx and static.ptxas_report(ptx, 90)["spill_store_bytes"] == 0


def test_an_fp8_problem_tunes_and_the_cost_model_counts_its_rate_and_bytes():
    """Tuning an fp8 layer checks candidates against the heuristic's output (a tolerance exists for fp8 dtypes);
    the cost model runs its products at twice the 16-bit rate, reading 1-byte operands and writing a 16-bit output."""
    from tritonconv import costmodel

    g = torch.Generator().manual_seed(2)
    xq, xs = fp8.quantize(torch.randn(1, 32, 5, 6, generator=g))
    wq, ws = fp8.quantize(torch.randn(16, 32, 3, 3, generator=g), per_channel_dim=0)
    spec = shape_spec("fp8.conv2d", 2, xq, wq, None, 1, 1, 1, 1)
    problem = tuning.Problem.for_launch("conv", xq, spec)
    configs = tuning.candidates(problem)
    run = lambda c: dispatch.scaled_forward_plan(xq, wq, None, ws, spec, None, torch.float32, c)(xq, wq, None, ws, xs)  # noqa: E731
    best, ms = tuning.tune(problem, run, lambda fn: 1.0, tuning.DEFAULT_SMEM, 132, skip=configs[2:])
    assert best == configs[0] and ms == 1.0 and all(c.block_k >= 32 for c in configs)
    bf16 = dataclasses.replace(problem, dtype="bfloat16")
    cfg = tuning.Config(64, 16, 32, num_warps=4, num_stages=2)
    assert costmodel.moved(problem, cfg) == (32 * 30 + 16 * 32 * 9) + 2 * 16 * 30  # 1-byte operands, 2-byte output
    fast = dataclasses.replace(costmodel.DATASHEET, bandwidth=1e30, t0=0.0, issue_rate=1e30)  # the products alone
    assert math.isclose(costmodel.predict(bf16, cfg, fast), 2 * costmodel.predict(problem, cfg, fast))


def test_the_tuner_and_the_compile_report_run_fp8_forwards():
    """``tune.runner`` times an fp8 problem through its scaled plan (the scaled kernel on fp8 operands laid out as the
    problem says, under the interpreter here); ``benchmarks.static --dtype fp8`` compiles the forwards alone (no
    gradient in fp8), on sm_90 wgmma on e4m3."""
    from benchmarks import static
    from tritonconv import tune

    problem = tuning.Problem.of("conv", "float8_e4m3fn", "channels_last", (1, 16, 5, 7), (16, 16, 3, 3), padding=1)
    with static.recording() as launches:
        y = tune.runner(problem, torch.device("cpu"))(tuning.heuristic(problem, interpret=True))
    ((fn, args, kwargs, _),) = launches
    assert kwargs["SCALED"] and args[0].dtype == torch.float8_e4m3fn and args[0].stride(1) == 1
    assert y.shape == problem.output_shape and y.dtype == torch.bfloat16 and torch.isfinite(y.float()).all()
    pytest.importorskip("triton.backends.nvidia")
    mini = {"conv2d": [dict(name="l", N=2, C=32, H=9, W=16, OC=64, k=[3, 3], s=[1, 1], p=[1, 1], d=[1, 1])]}
    rows = static.report(90, ["fp8"], ["channels_last"], ["conv", "conv_t", "conv_wgrad"], mini)
    assert [(r["kind"], r["dtype"], r["instruction"]) for r in rows] == [("conv", "fp8", "wgmma")]
    assert rows[0]["spill_store_bytes"] == 0 and rows[0]["loop_math_op"] == "QGMMA"
