"""The tensor-descriptor kernel (``tritonconv.kernels.tma``): every config the tuner may try computes
the convolution (and the input gradient of unit-stride ones), with zero padding coming from
out-of-range boxes; problems it cannot take are never offered to it, and an unaligned view
falls back to pointer loads."""

import dataclasses
import random

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close

import tritonconv
from tritonconv import dispatch, geometry, tuning
from tritonconv._checks import conv_spec, conv_transpose_spec
from tritonconv._descriptors import flat_shifts, nc_flat, nc_volume, seam_share
from tritonconv.kernels import tma, weight_grad

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cuda" and torch.cuda.get_device_capability()[0] < 9:
    pytest.skip("tensor descriptors need compute capability 9+", allow_module_level=True)

CASES = [  # op, input, weight, arguments: odd sizes that no tile divides, padding beyond the taps
    ("conv2d", (2, 16, 9, 11), (24, 16, 3, 3), dict(padding=1)),
    ("conv2d", (1, 8, 7, 13), (16, 8, 3, 5), dict(padding=(2, 1), dilation=(2, 1))),
    ("conv2d", (2, 16, 5, 6), (16, 16, 1, 1), dict()),  # 1x1: a plain GEMM
    ("conv3d", (1, 8, 5, 6, 7), (16, 8, 3, 3, 3), dict(padding=1, stride=(2, 1, 1))),  # depth stride
    ("conv1d", (2, 16, 37), (8, 16, 3), dict(padding=8, dilation=8)),
    ("conv1d", (1, 24, 20), (40, 24, 4), dict(padding="same")),  # asymmetric 'same' padding
]


@pytest.fixture(autouse=True)
def layers_as_written(monkeypatch):
    """The descriptor kernels' own rules, on layers as written: the 8-channel layers here (the fewest a 16-byte
    bf16 row holds) would otherwise pack their positions into channels first (tests/test_conv.py tests that)."""
    monkeypatch.setattr(geometry, "pack_factors", lambda spec, transposed=False, itemsize=2: None)


def run(op, x, w, b, cfg, activation=None, flip=False, **kwargs):
    spec = conv_spec(op, int(op[-2]), x, w, b, kwargs.get("stride", 1), kwargs.get("padding", 0),
                     kwargs.get("dilation", 1), 1)
    return dispatch.conv_forward(x, w, b, spec, activation, flip, cfg)


@pytest.mark.parametrize("op,x_shape,w_shape,kwargs", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_every_descriptor_config_matches_torch(op, x_shape, w_shape, kwargs, dtype, monkeypatch):
    x = geometry.to_layout(torch.randn(x_shape, device=DEVICE, dtype=dtype), "channels_last")
    every_descriptor_config(op, x, w_shape, kwargs, monkeypatch)


def every_descriptor_config(op, x, w_shape, kwargs, monkeypatch) -> tuple:
    """Run the forward of ``x`` with every descriptor candidate (bias, relu), each through the descriptor kernel,
    against torch; returns the spec, the weight and the list counting descriptor launches."""
    launched = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, _f=tma.Launch.__call__, **k: launched.append(1) or _f(*a, **k))
    w = torch.randn(w_shape, device=DEVICE, dtype=x.dtype)
    b = torch.randn(w_shape[0], device=DEVICE, dtype=x.dtype)
    ref = F.relu(getattr(F, op)(x.double(), w.double(), b.double(), **kwargs))
    spec = conv_spec(op, int(op[-2]), x, w, b, kwargs.get("stride", 1), kwargs.get("padding", 0),
                     kwargs.get("dilation", 1), 1)
    problem = tuning.Problem.for_launch("conv", x, spec)
    configs = tuning.tma_candidates(problem)
    assert tuning.tma_eligible(problem) and configs
    assert all(c.block_m // c.tile_h * x.element_size() >= 16 or problem.layout == "channels_last" for c in configs)
    for cfg in configs:
        assert_close(run(op, x, w, b, cfg, "relu", **kwargs), ref, x.dtype)
    assert len(launched) == len(configs)
    launched.clear()
    return spec, w, launched


STRIDED_CASES = [  # strides folded into the input's view (channels innermost): a strided tap is a unit-stride box
    ("conv2d", (2, 32, 10, 12), (24, 32, 3, 3), dict(padding=1, stride=2)),  # ResNet's 3x3 stride 2
    ("conv2d", (3, 16, 8, 14), (16, 16, 1, 1), dict(stride=2)),  # its 1x1 downsample; patches spanning images
    ("conv2d", (1, 16, 12, 15), (8, 16, 3, 5), dict(padding=(1, 2), stride=(2, 3), dilation=(1, 2))),
    ("conv1d", (2, 16, 36), (8, 16, 7), dict(padding=3, stride=4)),
    ("conv3d", (2, 16, 3, 8, 10), (16, 16, 1, 3, 3), dict(padding=(0, 1, 1), stride=(1, 2, 2))),
    ("conv3d", (2, 16, 5, 6, 8), (16, 16, 3, 3, 3), dict(padding=1, stride=2)),  # depth taps, slices padded
    ("conv3d", (1, 16, 3, 6, 8), (16, 16, 3, 3, 3), dict(padding=1, stride=(2, 1, 2))),  # width stride only
]


@pytest.mark.parametrize("op,x_shape,w_shape,kwargs", STRIDED_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_strided_boxes_match_torch(op, x_shape, w_shape, kwargs, dtype, monkeypatch):
    x = geometry.to_layout(torch.randn(x_shape, device=DEVICE, dtype=dtype), "channels_last")
    every_descriptor_config(op, x, w_shape, kwargs, monkeypatch)


@pytest.mark.parametrize("x_shape,w_shape,kwargs,layout,block_k,reason", [
    ((1, 16, 9, 12), (16, 16, 3, 3), dict(padding=1, stride=2), "channels_last", 16, "odd height"),
    ((1, 48, 8, 8), (16, 48, 3, 3), dict(padding=1, stride=2), "channels_last", 32, "a box past a column's channels"),
    ((1, 16, 9, 8), (16, 16, 3, 3), dict(padding=1, stride=2), "contiguous", 16, "NCHW, odd height: no row pairs"),
    ((1, 16, 8, 8), (16, 16, 5, 5), dict(padding=2, stride=2), "contiguous", 16, "NCHW, an output past its row"),
])
def test_strides_no_view_folds_take_pointer_loads(x_shape, w_shape, kwargs, layout, block_k, reason, monkeypatch):
    """A descriptor config (a cache entry, a config given by hand) on a strided layer whose input view does not
    exist runs the pointer kernel with the same tiles, and is right."""
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, **k: pytest.fail(f"descriptor path taken: {reason}"))
    op = f"conv{len(x_shape) - 2}d"
    x = geometry.to_layout(torch.randn(x_shape, device=DEVICE), layout)
    w = torch.randn(w_shape, device=DEVICE)
    cfg = tuning.Config(64, 16, block_k, 1, 4, 2, tile_h=8, tile_b=1)
    assert_close(run(op, x, w, None, cfg, **kwargs), getattr(F, op)(x, w, **kwargs))


NCHW_CASES = [  # NC(D)HW read in place: rows of 16-byte multiples, every box starting on one (one column of taps)
    ("conv2d", (2, 16, 9, 16), (24, 16, 1, 1), dict()),  # 1x1: a plain GEMM
    ("conv2d", (2, 16, 4, 16), (3, 16, 1, 1), dict()),  # 3 output channels: the input gradient reduces over 3
    ("conv2d", (1, 8, 7, 8), (16, 8, 3, 1), dict(padding=(2, 0), dilation=(2, 1))),
    ("conv3d", (1, 8, 5, 3, 8), (16, 8, 3, 1, 1), dict(padding=(1, 0, 0), stride=(2, 1, 1))),  # (2+1)D's temporal
    ("conv1d", (2, 16, 40), (8, 16, 1), dict()),
]


@pytest.mark.parametrize("op,x_shape,w_shape,kwargs", NCHW_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_nchw_boxes_match_torch_forward_and_input_gradient(op, x_shape, w_shape, kwargs, dtype, monkeypatch):
    """An NC(D)HW input (and output gradient) read in place by descriptors: boxes of channels x positions,
    transposed for the MMA; the forward for every candidate config (each an NC(D)HW box, rows of at least 16
    bytes), the input gradient for a spread of them."""
    x = torch.randn(x_shape, device=DEVICE, dtype=dtype)
    assert geometry.layout_of(x) == "contiguous"
    spec, w, launched = every_descriptor_config(op, x, w_shape, kwargs, monkeypatch)
    if "stride" in kwargs:
        return
    x64 = x.double().requires_grad_()
    y = getattr(F, op)(x64, w.double(), **kwargs)
    dy = torch.randn(y.shape, device=DEVICE, dtype=dtype)  # NC(D)HW
    (ref_dx,) = torch.autograd.grad(y, x64, dy.double())
    problem_t = tuning.Problem.for_launch("conv_t", dy, spec)
    # fp32: the weight laid out with its reduction (output) channels innermost first: rows of 16-byte multiples
    assert tuning.tma_eligible(problem_t) == (dtype != torch.float32 or w_shape[0] % 4 == 0)
    if not tuning.tma_eligible(problem_t):
        return
    picked = tuning.tma_candidates(problem_t)[::3]
    for cfg in picked:
        assert_close(dispatch.conv_grad_input(dy, w, spec, False, torch.contiguous_format, cfg), ref_dx, dtype)
    assert len(launched) == len(picked)


def test_nchw_boxes_only_where_they_start_on_16_bytes():
    """A descriptor load's innermost offset must be a 16-byte multiple: 1x1 and (k,1,1) layers, and taps shifted by
    16-byte multiples, take descriptors as they are; a 3x3 layer's one-column shifts take them only where its rows,
    of 16-byte multiples, fit a tile whole (read from column 0, the taps moving the sum:
    ``_descriptors.nc_row_shift``), the weight gradient's at unit width stride (x's boxes from the 16-byte boundary
    below and 16 bytes on, read on in registers: ``_descriptors.nc_box_runs``); else the pointer kernel."""
    def eligible(kind, w_shape, padding, dilation=1, dtype="bfloat16", width=16):
        return tuning.tma_eligible(tuning.Problem.of(kind, dtype, "contiguous", (1, 16, 9, width), w_shape, 1, padding,
                                                     dilation))
    assert eligible("conv", (16, 16, 1, 1), 0) and eligible("conv_t", (16, 16, 1, 1), 0)
    assert eligible("conv", (16, 16, 3, 3), 1) and eligible("conv_t", (16, 16, 3, 3), 1)  # rows whole
    assert not eligible("conv", (16, 16, 3, 3), 1, width=12)  # 24-byte rows: no box
    assert not eligible("conv", (16, 16, 3, 3), 1, width=4096)  # no tile holds the row
    assert eligible("conv_wgrad", (16, 16, 3, 3), 1)  # the weight gradient's x in runs read on in registers
    assert not eligible("conv_wgrad", (16, 16, 3, 3), 1, width=12)  # 24-byte rows: no box; planes of 216 bytes neither
    assert tuning.tma_eligible(tuning.Problem.of("conv_wgrad", "bfloat16", "contiguous", (1, 16, 8, 12), (16, 16, 3, 3),
                                                 1, 1, 1))  # 24-byte rows in 192-byte planes: planes as rows
    assert not tuning.tma_eligible(tuning.Problem.of("conv_wgrad", "bfloat16", "contiguous", (1, 16, 9, 16),
                                                     (16, 16, 3, 3), (1, 2), 1, 1))  # a width stride: no run
    assert eligible("conv", (16, 16, 3, 3), 8, dilation=8)  # taps shift by 8 bf16 columns: 16 bytes
    assert not eligible("conv", (16, 16, 1, 1), 0, width=12)  # 24-byte rows
    assert eligible("conv", (16, 16, 1, 1), 0, dtype="float32", width=12)  # 48-byte rows


def test_nchw_weight_gradient_in_runs_takes_64_output_channels():
    """An NC(D)HW weight gradient whose x the descriptor kernel reads in runs takes tiles of 64 output channels or more
    on a GPU with a TMA unit (narrower ones issued 0.43-0.78x the channels-last loop's rate): where 32-row tiles would
    cover the channels exactly (R(2+1)D's 144 and 288 mid channels), 64-row ones pad them; with fewer than 64 output
    channels, 32 x 32 tiles (the 3-D U-Net's 32 channels), else the pointer kernel (32 x 64 spilled on 4 warps)."""
    def heuristic(c_out, hw, c_in=128):
        problem = tuning.Problem.of("conv_wgrad", "bfloat16", "contiguous", (8, c_in, 4, hw, hw), (c_out, c_in, 1, 3, 3),
                                    1, (0, 1, 1))
        return problem, tuning.heuristic(problem, interpret=False, tma=True)

    for c_out, hw, flat in ((288, 28, True), (144, 56, False)):
        problem, cfg = heuristic(c_out, hw)
        assert cfg.tile_h and cfg.block_m == 64 and tuning.descriptors_launch(problem, cfg)
        assert tuning.nc_runs(problem, cfg) and tuning.planes_as_rows(problem) == flat
        narrow = tuning.within_slack((c_out, 128), (128, 128), tuning.tma_padding(problem, 64))[0]
        assert narrow == 32  # what the channels alone would take
    problem, cfg = heuristic(32, 56)
    assert not cfg.tile_h and cfg.block_m == 32  # under 64 output channels, 32 x 128 tiles: the pointer kernel
    problem, cfg = heuristic(32, 56, c_in=32)
    assert cfg.tile_h and (cfg.block_m, cfg.block_n, cfg.num_warps) == (32, 32, 4) and tuning.nc_runs(problem, cfg)


def test_planes_as_rows_where_rows_are_no_box():
    """The NC(D)HW weight gradient reads each plane as one row (``_descriptors.nc_flat``) where its rows are no 16-byte
    multiple and its planes are, at unit height and width stride with the output as wide as the input."""
    def flat(x_shape, w_shape, dtype=torch.bfloat16, **kwargs):
        x, w = torch.empty(x_shape, dtype=dtype), torch.empty(w_shape, dtype=dtype)
        spec = conv_spec(f"conv{len(x_shape) - 2}d", len(x_shape) - 2, x, w, None, kwargs.get("stride", 1),
                         kwargs.get("padding", 0), kwargs.get("dilation", 1), 1)
        return nc_flat(spec, x.element_size())
    assert flat((8, 128, 8, 28, 28), (256, 128, 3, 3, 3), padding=1)  # c3d_conv3a
    assert flat((1, 16, 4, 14), (8, 16, 5, 5), padding=2) and flat((1, 16, 4, 10), (8, 16, 3, 3), dtype=torch.float32,
                                                                     padding=1)
    assert not flat((1, 16, 4, 16), (8, 16, 3, 3), padding=1)  # 32-byte rows: rows
    assert not flat((1, 16, 9, 12), (8, 16, 3, 3), padding=1)  # 216-byte planes
    assert not flat((1, 16, 4, 14), (8, 16, 3, 3), padding=(1, 0))  # 12 output columns of 14
    assert not flat((1, 16, 8, 28), (8, 16, 3, 3), padding=1, stride=(1, 2))  # a width stride
    assert not flat((1, 16, 28), (8, 16, 3), padding=1)  # 1-D: a plane is a row
    assert flat_shifts(conv_spec("conv2d", 2, torch.empty(1, 1, 4, 10), torch.empty(1, 1, 2, 3), None, 1, (1, 2), (2, 1),
                                 1)) == [-12, -11, -10, 8, 9, 10]  # (kh*dh - ph) * W + kw*dw - pw


NC_PLANE_CASES = [  # NC(D)HW forwards whose rows are no 16-byte multiple but whose planes are (op, input, weight, args)
    ("conv2d", (2, 16, 4, 10), (24, 16, 3, 3), dict(padding=1)),  # seams on both sides, offsets 0-7
    ("conv2d", (1, 24, 4, 14), (16, 24, 3, 5), dict(padding=(1, 4), dilation=(1, 2))),  # columns 2 and 4 off; 24 channels
    ("conv2d", (1, 8, 8, 10), (16, 8, 5, 3), dict(padding=(0, 1))),  # no height padding: 4 rows of 8
    ("conv3d", (1, 8, 3, 4, 6), (16, 8, 3, 3, 3), dict(padding=1)),  # depth taps: the volume one row
    ("conv3d", (2, 8, 4, 4, 6), (8, 8, 3, 3, 3), dict(padding=(2, 1, 1), dilation=(2, 1, 1))),  # ... dilated
    ("conv3d", (1, 8, 4, 4, 6), (8, 8, 3, 3, 3), dict(padding=(0, 1, 1))),  # a shallower output: each plane a row
    ("conv3d", (2, 8, 5, 4, 6), (8, 8, 3, 3, 3), dict(padding=1, stride=(2, 1, 1))),  # a depth stride (forward only)
]


@pytest.mark.parametrize("op,x_shape,w_shape,kwargs", NC_PLANE_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_nchw_planes_as_rows_forward_and_input_gradient(op, x_shape, w_shape, kwargs, dtype, monkeypatch):
    """NC(D)HW layers whose rows no box starts on 16 bytes (10, 14 and 6 columns) but whose planes do read each plane
    as one row (``_descriptors.plane_taps``): a loop per width tap and offset past 16 bytes, the runs moved in
    registers, the positions whose tap column leaves the row masked. The forward (bias, an activation, the kernel
    flipped) and the unit-stride input gradient (a forward of dy) against torch, on tiles smaller and larger than a
    plane, each launch asserting that it read planes as rows, 3-D ones as deep and tall as their input their volumes
    (``_descriptors.nc_volume``: the planes' seams masked too), never with the MMA transposed (``POSITIONS_N``)."""
    flats = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda self, *a, _f=tma.Launch.__call__, **k: flats.append(
        (self.nc_flat, self.kwargs["POSITIONS_N"], self.nc_volume)) or _f(self, *a, **k))
    x = torch.randn(x_shape, device=DEVICE, dtype=dtype)
    w = torch.randn(w_shape, device=DEVICE, dtype=dtype)
    b = torch.randn(w_shape[0], device=DEVICE, dtype=dtype)
    nd = int(op[-2])
    spec = conv_spec(op, nd, x, w, b, kwargs.get("stride", 1), kwargs["padding"], kwargs.get("dilation", 1), 1)
    forward_and_input_gradient_match(op, x, w, b, spec, kwargs, [
        (geometry.Config(block_m, block_n, 16, 1, 4, 2, tile_h=1, tile_b=1), flip)
        for block_m, block_n, flip in ((32, 16, False), (64, 16, True), (64, 64, False))])
    strided = any(s > 1 for s in spec.stride)  # by stride phase: the pointer kernel (NC(D)HW)
    volume = nd == 3 and nc_volume(spec)
    assert volume == (nd == 3 and kwargs["padding"] != (0, 1, 1) and not strided)
    assert flats == [(True, False, volume)] * (3 if strided else 4)


def test_volumes_as_rows_only_over_dense_depth_slices(monkeypatch):
    """An NCDHW input whose depth slices are not dense (a slice of a taller volume: plane pitch 48, not 4 x 6) reads
    each plane as a row, not its volume; the input gradient's output gradient, dense, reads its volume; both right."""
    flats = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda self, *a, _f=tma.Launch.__call__, **k: flats.append(
        (self.nc_flat, self.nc_volume)) or _f(self, *a, **k))
    x = torch.randn(1, 8, 3, 8, 6, device=DEVICE, dtype=torch.bfloat16)[:, :, :, :4]
    w, b = torch.randn(16, 8, 3, 3, 3, device=DEVICE, dtype=torch.bfloat16), torch.randn(16, device=DEVICE, dtype=torch.bfloat16)
    spec = conv_spec("conv3d", 3, x, w, b, 1, 1, 1, 1)
    assert nc_volume(spec) and tma._x_view(x, spec, geometry.Config(32, 16, 16, tile_h=1))[0] == [1, 8, 3, 1, 24]
    forward_and_input_gradient_match("conv3d", x, w, b, spec, dict(padding=1),
                                     [(geometry.Config(32, 16, 16, 1, 4, 2, tile_h=1, tile_b=1), False)])
    assert flats == [(True, False), (True, True)]
    tall = conv_spec("conv3d", 3, torch.empty(1, 16, 2, 40, 6), torch.empty(8, 16, 1, 33, 3), None, 1, (0, 16, 1), 1, 1)
    assert nc_flat(tall, 2) and not nc_volume(tall)  # 33 height taps: more than the masks' 31 bits


@pytest.mark.parametrize("x_shape,w_shape,padding", [
    ((1, 8, 3, 4, 6), (16, 8, 3, 3, 3), 1),  # the volume one row
    ((2, 8, 4, 4, 6), (8, 8, 3, 3, 3), (0, 1, 1)),  # each plane a row
    ((1, 8, 4, 10), (16, 8, 3, 3), 1),  # 2-D
])
@pytest.mark.parametrize("int64", [False, True])
def test_planes_as_rows_store_runs_where_the_output_is_dense(x_shape, w_shape, padding, int64, monkeypatch):
    """A forward reading planes (volumes) as rows stores each position at ``p * syw`` where the output's positions are
    one run (``Y_RUN``: :func:`tritonconv.kernels.tma.positions_run`, contiguous or channels-last), by row and column
    where they are not (a slice of a wider output; of a taller one, a volume's): right both ways, nothing written past
    the slice; with 32-bit offsets and 64-bit ones (the threshold lowered)."""
    if int64:
        monkeypatch.setattr(geometry, "INT32_MAX", 16)
    nd = len(x_shape) - 2
    op = f"conv{nd}d"
    x = torch.randn(x_shape, device=DEVICE, dtype=torch.bfloat16)
    w = torch.randn(w_shape, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(w_shape[0], device=DEVICE, dtype=torch.bfloat16)
    spec = conv_spec(op, nd, x, w, b, 1, padding, 1, 1)
    ref = getattr(F, op)(x.double(), w.double(), b.double(), padding=padding)
    cfg = geometry.Config(32, 16, 16, 1, 4, 2, tile_h=1, tile_b=1)
    wider = torch.full((*ref.shape[:-1], ref.shape[-1] + 3), float("nan"), device=DEVICE, dtype=x.dtype)
    taller = torch.full((*ref.shape[:-2], ref.shape[-2] + 2, ref.shape[-1]), float("nan"), device=DEVICE, dtype=x.dtype)
    outputs = [(torch.full(ref.shape, float("nan"), device=DEVICE, dtype=x.dtype), True),
               (geometry.to_layout(torch.full(ref.shape, float("nan"), device=DEVICE, dtype=x.dtype), "channels_last"), True),
               (wider[..., :ref.shape[-1]], False), (taller[..., :ref.shape[-2], :], None)]
    for y, run in outputs:
        launch = tma.Launch(x, tma.lay_out(w), b, y, spec, None, False, cfg)
        run = not launch.nc_volume if run is None else run  # (a taller plane's rows still one run; a volume's not)
        assert launch.nc_flat and launch.kwargs["Y_RUN"] == run == tma.positions_run(y, launch.nc_volume)
        assert launch.kwargs["INT64"] == int64
        assert_close(launch(x, tma.lay_out(w), b, y), ref, x.dtype)
    assert wider[..., ref.shape[-1]:].isnan().all() and taller[..., ref.shape[-2]:, :].isnan().all()


def test_positions_run():
    """Planes' (volumes') positions as one run: dense layouts yes, a slice of a wider row or a taller plane no; a 1-D
    output's row always; a volume's slices dense only where their pitch is a plane's."""
    y = torch.empty(2, 3, 4, 5, 6)
    assert tma.positions_run(y, True) and tma.positions_run(y.to(memory_format=torch.channels_last_3d), True)
    assert not tma.positions_run(y[..., :5]) and not tma.positions_run(y[..., :4, :], True)
    assert tma.positions_run(y[:, :, :2]) and tma.positions_run(y[:, :, :, :4]) and not tma.positions_run(y[:, :, :, :4], True)
    assert tma.positions_run(torch.empty(2, 3, 9)[..., :5]) and tma.positions_run(torch.empty(2, 3, 1, 7)[..., :3])


def test_planes_as_rows_for_forwards_where_rows_are_no_box():
    """Forwards and unit-stride input gradients read NC(D)HW planes as rows where the weight gradient does
    (``tuning.planes_as_rows``): ``c3d_conv3a``'s and ResNet-50's 28 x 28 layers, not channels-last, not by stride phase,
    not in fp8 (runs of 16 one-byte columns have no register moves), not rows of 16-byte multiples (56 columns). On a
    GPU with descriptors the heuristic gives them 128-position patches of one row, which launch."""
    def problem(kind, x_shape, w_shape, dtype="bfloat16", layout="contiguous", stride=1):
        return tuning.Problem.of(kind, dtype, layout, x_shape, w_shape, stride, 1)
    c3d = (8, 128, 8, 28, 28), (256, 128, 3, 3, 3)
    for kind in ("conv", "conv_t", "conv_wgrad"):
        assert tuning.planes_as_rows(problem(kind, *c3d))
        assert not tuning.planes_as_rows(problem(kind, *c3d, layout="channels_last"))
    assert tuning.planes_as_rows(problem("conv", (32, 128, 28, 28), (128, 128, 3, 3)))
    assert not tuning.planes_as_rows(problem("conv_t", (32, 128, 28, 28), (128, 128, 3, 3), stride=2))
    assert not tuning.planes_as_rows(problem("conv", *c3d, dtype="float8_e4m3fn"))
    assert not tuning.planes_as_rows(problem("conv", (32, 64, 56, 56), (64, 64, 3, 3)))
    for kind in ("conv", "conv_t"):
        p = problem(kind, *c3d)
        cfg = tuning.heuristic(p, interpret=False, tma=True)
        assert (cfg.tile_h, cfg.tile_b, cfg.block_m, cfg.split_k) == (1, 1, 128, 1) and tuning.descriptors_launch(p, cfg)


@pytest.mark.parametrize("seed", range(4))
def test_random_nchw_rows_whole_layers(seed, monkeypatch):
    """Seeded random NC(D)HW layers (1-D to 3-D, widths of 16-byte rows, kernels 1-5 wide, padding up to past the
    taps' reach, dilation): where :func:`tritonconv._descriptors.nc_row_width` finds a tile, the forward and the
    input gradient through descriptors reading rows whole, against torch in float64, each launch reading as
    :func:`nc_row_shift` says; the weight gradient through descriptors too (x's boxes in runs at any shift)."""
    from tritonconv._descriptors import nc_row_shift, nc_row_width
    r = random.Random(7100 + seed)
    shifts, kinds = [], []
    monkeypatch.setattr(tma.Launch, "__call__",
                        lambda self, *a, _f=tma.Launch.__call__, **kw: shifts.append(self.nc_shift) or _f(self, *a, **kw))
    monkeypatch.setattr(weight_grad.DescriptorLaunch, "launch",
                        lambda *a, _f=weight_grad.DescriptorLaunch.launch: kinds.append(a[0].x_kinds) or _f(*a))
    done = 0
    while done < 2:
        nd = r.randint(1, 3)
        k = [r.randint(1, 3) for _ in range(nd - 1)] + [r.randint(1, 5)]
        d = r.randint(1, 2)
        pad = [r.randint(0, kk // 2) for kk in k[:-1]] + [r.randint(1 if k[-1] == 1 else 0, (k[-1] - 1) * d + 1)]
        sizes = [r.randint(kk, kk + 3) for kk in k[:-1]] + [8 * r.randint(1, 4)]
        if sizes[-1] + 2 * pad[-1] - d * (k[-1] - 1) < 1:
            continue
        c_in, c_out = r.choice([8, 16, 24]), r.choice([8, 16, 40])
        op = f"conv{nd}d"
        x = torch.randn((r.randint(1, 2), c_in, *sizes), device=DEVICE, dtype=torch.float32)
        w = torch.randn((c_out, c_in, *k), device=DEVICE, dtype=torch.float32)
        dilation = [1] * (nd - 1) + [d]
        spec = conv_spec(op, nd, x, w, None, 1, tuple(pad), tuple(dilation), 1)
        tile_w = nc_row_width(spec, 4)
        if not tile_w or nc_row_shift(spec, tile_w, 4) == 0:
            continue
        shifts.clear()
        rows = max(1, 64 // tile_w)
        cfg = geometry.Config(tile_w * rows, 16, 16, 1, 4, 2, tile_h=rows)
        x64 = x.double().requires_grad_()
        y64 = getattr(F, op)(x64, w.double(), padding=tuple(pad), dilation=tuple(dilation))
        assert_close(dispatch.conv_forward(x, w, None, spec, None, False, cfg), y64, x.dtype)
        dy = torch.randn(y64.shape, device=DEVICE, dtype=x.dtype)
        (dx_ref,) = torch.autograd.grad(y64, x64, dy.double())
        assert_close(dispatch.conv_grad_input(dy, w, spec, False, torch.contiguous_format, cfg), dx_ref, x.dtype)
        assert shifts[0] == nc_row_shift(spec, tile_w, 4) > 0, (spec, tile_w)
        # the weight gradient through descriptors, x's boxes in runs where a tap is off 16 bytes (nc_box_runs)
        w64 = w.double().requires_grad_()
        (dw_ref,) = torch.autograd.grad(getattr(F, op)(x.double(), w64, padding=tuple(pad), dilation=tuple(dilation)),
                                        w64, dy.double())
        wcfg = geometry.Config(16, 16, 64, 1, 4, 2, tile_h=max(1, 64 // sizes[-1]) if nd > 1 else 1)
        usable = weight_grad.descriptors_usable(dy, x, spec, wcfg)
        assert usable == (y64.shape[-1] % 4 == 0)  # dy's rows: 16 bytes
        kinds.clear()
        assert_close(dispatch.conv_grad_weight(dy, x, spec, False, wcfg), dw_ref, x.dtype)
        off = any((t * d - pad[-1]) % 4 for t in range(k[-1]))
        assert [k > 0b10 for k in kinds] == ([off] if usable else [])  # x in runs where a tap is off 16 bytes
        done += 1


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("seed", range(2))
def test_random_planes_as_rows(layout, seed, monkeypatch):
    """Seeded random weight gradients through the descriptor kernel reading planes as rows (2-D and 3-D, kernels 1-5
    wide, dilation, padding up to past the taps' reach, the width's keeping the output as wide; split or not): NC(D)HW
    ones whose rows are no 16-byte multiple and whose planes are (fp32), channels-last ones where the config asks
    (``Config.planes``: odd widths, depth strides, patches wider and narrower than a plane, flipped or not, fp32 and
    bf16); against torch in float64, the second seed with int64 offsets (the threshold lowered). Every case has a tap
    whose columns move, so the seams' products are taken out."""
    inner = layout == "channels_last"
    r = random.Random((7400 if inner else 7300) + seed)
    flat = []
    monkeypatch.setattr(weight_grad.DescriptorLaunch, "launch", lambda *a, _f=weight_grad.DescriptorLaunch.launch:
                        flat.append((a[0].flat, a[0].kwargs["INT64"])) or _f(*a))
    if seed:
        monkeypatch.setattr(geometry, "INT32_MAX", 16)
    done = 0
    while done < 3:
        nd = 2 + done % 2 if inner else r.randint(2, 3)
        k = [r.randint(1, 3) for _ in range(nd - 1)] + [r.choice([3, 5])]
        d = r.randint(1, 2)
        pad = [r.randint(0, kk) for kk in k[:-1]] + [(k[-1] - 1) * d // 2]
        if inner:  # odd widths, any height
            plane, stride = [r.randint(2, 5), r.choice([5, 7, 9, 13])], (r.randint(1, 2), 1, 1)[3 - nd:]
        else:  # fp32 rows of 24-72 bytes in planes of 16-byte multiples
            plane, stride = [r.choice([2, 4, 6]), r.choice([6, 10, 14, 18])], 1
        sizes = [r.randint(1, 3) for _ in range(nd - 2)] + plane
        dtype = (torch.float32, torch.bfloat16)[done % 2] if inner else torch.float32
        x = geometry.to_layout(torch.randn((r.randint(1, 2), 16, *sizes), device=DEVICE, dtype=dtype), layout)
        w = torch.randn((r.choice([8, 24]), 16, *k), device=DEVICE, dtype=dtype)
        dilation = (1,) * (nd - 1) + (d,)
        try:
            spec = conv_spec(f"conv{nd}d", nd, x, w, None, stride, tuple(pad), dilation, 1)
        except ValueError:  # an output of no positions
            continue
        if not inner and not nc_flat(spec, 4):
            continue
        w64 = w.double().requires_grad_()
        y = getattr(F, f"conv{nd}d")(x.double(), w64, stride=stride, padding=tuple(pad), dilation=dilation)
        dy = geometry.to_layout(torch.randn(y.shape, device=DEVICE, dtype=dtype), layout)
        (ref,) = torch.autograd.grad(y, w64, dy.double())
        flip = inner and r.random() < 0.5
        expected = ref.flip(tuple(range(2, ref.dim()))) if flip else ref
        cfg = geometry.Config(16, 16, r.choice([16, 64]) if inner else 64, 1, 4, 2, split_k=r.choice([1, 3]), tile_h=1,
                              planes=int(inner))
        assert weight_grad.descriptors_usable(dy, x, spec, cfg), spec
        flat.clear()
        assert_close(dispatch.conv_grad_weight(dy, x, spec, flip, cfg), expected, dtype)
        assert flat == [(True, bool(seed))], spec
        done += 1


def test_channels_last_planes_only_where_a_tap_moves_them_whole():
    """A channels-last config asking for planes read as rows launches the descriptor kernel only where a tap moves
    a plane's positions as a whole (``_descriptors.flat_geometry``: unit height and width stride, the output as wide
    as the input); elsewhere it runs the pointer kernel (``descriptors_usable`` is false)."""
    cfg = geometry.Config(16, 16, 64, 1, 4, 2, tile_h=1, planes=1)
    x = geometry.to_layout(torch.randn(1, 16, 6, 10), "channels_last")
    w = torch.randn(8, 16, 3, 3)
    for kwargs, usable in ((dict(padding=1), True), (dict(padding=(1, 0)), False), (dict(padding=1, stride=(1, 2)), False),
                           (dict(padding=1, stride=(2, 1)), False)):
        spec = conv_spec("conv2d", 2, x, w, None, kwargs.get("stride", 1), kwargs["padding"], 1, 1)
        dy = geometry.to_layout(torch.empty(spec.output_shape), "channels_last")
        assert weight_grad.descriptors_usable(dy, x, spec, cfg) == usable, kwargs
        assert not weight_grad.descriptors_usable(dy, x, spec, dataclasses.replace(cfg, tile_h=2))  # planes: one row
    assert seam_share(conv_spec("conv2d", 2, x, w, None, 1, 1, 1, 1)) == 2 / 30  # taps -1, 0, 1 over 10 columns


def forward_and_input_gradient_match(op, x, w, b, spec, kwargs, configs):
    """The forward (bias, a ReLU; each ``(config, flip)``: the kernel flipped, a true convolution) and the input
    gradient (the last config) against torch in float64; returns the output gradient drawn."""
    nd = int(op[-2])
    for cfg, flip in configs:
        w_ref = w.double().flip(list(range(2, 2 + nd))) if flip else w.double()
        ref = F.relu(getattr(F, op)(x.double(), w_ref, b.double(), **kwargs))
        assert_close(dispatch.conv_forward(x, w, b, spec, "relu", flip, cfg), ref, x.dtype)
    x64 = x.double().requires_grad_()
    y = getattr(F, op)(x64, w.double(), **kwargs)
    dy = torch.randn(y.shape, device=x.device, dtype=x.dtype)
    (ref_dx,) = torch.autograd.grad(y, x64, dy.double())
    assert_close(dispatch.conv_grad_input(dy, w, spec, False, torch.contiguous_format, cfg), ref_dx, x.dtype)
    return dy


NC_ROW_CASES = [  # NC(D)HW rows read whole from column 0 (op, input, weight, arguments, tile width, how the taps move)
    ("conv2d", (2, 16, 5, 8), (24, 16, 3, 3), dict(padding=1), 16, 1),  # the sum moves; rows padded to the tile
    ("conv2d", (1, 8, 6, 16), (16, 8, 3, 3), dict(padding=1), 16, 2),  # rows of the tile's width: products apart
    ("conv2d", (1, 8, 4, 8), (16, 8, 3, 3), dict(padding=3), 16, 2),  # padding past the taps' reach: s_max < 0
    ("conv2d", (1, 8, 7, 16), (16, 8, 3, 5), dict(padding=(2, 4), dilation=(2, 2)), 32, 1),
    ("conv2d", (2, 8, 7, 16), (16, 8, 3, 3), dict(padding=(1, 0)), 16, 1),  # no width padding: narrower output
    ("conv3d", (1, 8, 3, 5, 8), (16, 8, 3, 3, 3), dict(padding=1), 16, 1),  # depth and height taps as boxes' rows
    ("conv1d", (2, 16, 24), (8, 16, 3), dict(padding="same"), 32, 1),
]


@pytest.mark.parametrize("op,x_shape,w_shape,kwargs,tile_w,shift", NC_ROW_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_nchw_rows_whole_through_descriptors(op, x_shape, w_shape, kwargs, tile_w, shift, dtype, monkeypatch):
    """NC(D)HW layers whose taps would start a box off 16 bytes (3x3, padding 1) read each row whole from column 0,
    the width taps moving the sum (or each tap's products) along the rows: the forward (bias, an activation, and the
    kernel flipped) and the input gradient against torch, each launch asserting how it reads."""
    shifts = []
    monkeypatch.setattr(tma.Launch, "__call__",
                        lambda self, *a, _f=tma.Launch.__call__, **k: shifts.append(self.nc_shift) or _f(self, *a, **k))
    x = torch.randn(x_shape, device=DEVICE, dtype=dtype)
    w = torch.randn(w_shape, device=DEVICE, dtype=dtype)
    b = torch.randn(w_shape[0], device=DEVICE, dtype=dtype)
    nd = int(op[-2])
    spec = conv_spec(op, nd, x, w, b, 1, kwargs.get("padding", 0), kwargs.get("dilation", 1), 1)
    rows = 32 // tile_w if tile_w < 32 else 1
    cfg = geometry.Config(tile_w * rows, 16, 16, 1, 4, 2, tile_h=rows)
    dy = forward_and_input_gradient_match(op, x, w, b, spec, kwargs, [(cfg, False), (cfg, True)])
    # the input gradient runs as a forward convolution of dy: its rows whole too where they are 16-byte multiples
    dx_rows = dy.shape[-1] * dy.element_size() % 16 == 0
    assert shifts[:2] == [shift, shift] and (shifts[2:] == [tma_shift(spec, tile_w, dy)] if dx_rows else shifts[2:] == [])


@pytest.mark.parametrize("view,tile_h,shift", [
    ((slice(None), slice(0, 16), slice(None), slice(0, 16)), 4, 2),  # rows of 16 at a pitch of 24: past them, zeros
    ((slice(None), slice(4, 20), slice(None), slice(None)), 2, 1),  # channels from the 4th
    ((slice(None), slice(0, 16), slice(1, 6), slice(None)), 2, 1),  # rows from the 2nd
])
def test_nchw_rows_whole_read_views_in_place(view, tile_h, shift, monkeypatch):
    """A view of a larger NCHW tensor (its own strides, 16-byte aligned) is read in place by boxes of whole rows: a
    box past a row's width reads zeros, not the next columns of the larger tensor."""
    shifts = []
    monkeypatch.setattr(tma.Launch, "__call__",
                        lambda self, *a, _f=tma.Launch.__call__, **k: shifts.append(self.nc_shift) or _f(self, *a, **k))
    big = torch.randn(2, 20, 7, 24, device=DEVICE)
    x = big[view]
    w, b = torch.randn(8, 16, 3, 3, device=DEVICE), torch.randn(8, device=DEVICE)
    spec = conv_spec("conv2d", 2, x, w, b, 1, 1, 1, 1)
    cfg = geometry.Config(64, 16, 16, 1, 4, 2, tile_h=tile_h)
    assert_close(dispatch.conv_forward(x, w, b, spec, None, False, cfg),
                 F.conv2d(x.double(), w.double(), b.double(), padding=1), x.dtype)
    assert not x.is_contiguous() and shifts == [shift]


NC_DEALT_CASES = [  # NC(D)HW forwards strided 2 along height and width, rows read dealt (op, input, weight, arguments)
    ("conv2d", (2, 16, 8, 16), (24, 16, 3, 3), dict(padding=1)),  # ResNet's 3x3 stride 2: shifts -1, 0, 0
    ("conv2d", (2, 16, 8, 16), (24, 16, 1, 1), dict()),  # its 1x1 downsample: no move
    ("conv2d", (1, 8, 6, 24), (16, 8, 5, 3), dict(padding=(2, 0))),  # height taps on both rows of a pair
    ("conv2d", (1, 8, 10, 32), (16, 8, 3, 3), dict(padding=1, dilation=(2, 3))),  # shifts -1, 1, 2
    ("conv3d", (1, 8, 5, 6, 8), (16, 8, 3, 3, 3), dict(padding=1)),  # depth strided 2 too: the box's slice
    ("conv3d", (1, 8, 3, 6, 8), (16, 8, 1, 3, 3), dict(padding=(0, 1, 1), stride_d=1)),  # (1, 2, 2)
]


@pytest.mark.parametrize("op,x_shape,w_shape,kwargs", NC_DEALT_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_nchw_strided_rows_dealt_through_descriptors(op, x_shape, w_shape, kwargs, dtype, monkeypatch):
    """An NC(D)HW forward strided 2 along height and width reads, through a view pairing each two rows, boxes twice the
    tile's width from the even row's first column or the odd row's, deals their columns into phases and moves the
    width taps' products as at unit stride: against torch in float64 (bias, relu, flipped), each launch dealt."""
    seen = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda self, *a, _f=tma.Launch.__call__, **k:
                        seen.append((self.nc_shift, self.kwargs["NC_DEAL"])) or _f(self, *a, **k))
    nd = int(op[-2])
    kwargs = dict(kwargs)
    stride = (kwargs.pop("stride_d", 2),) * (nd - 2) + (2, 2)
    x = torch.randn(x_shape, device=DEVICE, dtype=dtype)
    w = torch.randn(w_shape, device=DEVICE, dtype=dtype)
    b = torch.randn(w_shape[0], device=DEVICE, dtype=dtype)
    spec = conv_spec(op, nd, x, w, b, stride, kwargs.get("padding", 0), kwargs.get("dilation", 1), 1)
    from tritonconv._descriptors import nc_row_width
    tile_w = nc_row_width(spec, x.element_size())
    cfg = geometry.Config(max(32, tile_w), 16, 16, 1, 4, 2, tile_h=max(1, 32 // tile_w))
    for flip in (False, True):
        w_ref = w.double().flip(list(range(2, 2 + nd))) if flip else w.double()
        ref = F.relu(getattr(F, op)(x.double(), w_ref, b.double(), stride=stride, **kwargs))
        assert_close(dispatch.conv_forward(x, w, b, spec, "relu", flip, cfg), ref, dtype)
    assert tile_w and len(seen) == 2 and all(deal == 2 and shift > 0 for shift, deal in seen), seen


@pytest.mark.parametrize("w_shape,padding", [((24, 16, 3, 3), 1), ((24, 16, 1, 1), 0)])
def test_every_descriptor_config_of_a_strided_nchw_forward_matches_torch(w_shape, padding, monkeypatch):
    """Every descriptor candidate of an NCHW forward strided 2 (tiles of every width: those that cannot hold the dealt
    rows are never offered, and would run the pointer kernel) computes the convolution."""
    x = torch.randn(2, 16, 8, 32, device=DEVICE, dtype=torch.bfloat16)
    from tritonconv._descriptors import nc_row_shift
    w = torch.empty(w_shape, device=DEVICE, dtype=x.dtype)
    spec = conv_spec("conv2d", 2, x, w, None, 2, padding, 1, 1)
    for cfg in (geometry.Config(64, 16, 16, 1, 4, 2, tile_h=th) for th in (1, 2, 4, 8)):  # rows of 64 down to 8
        assert tma.usable(x, tma.lay_out(w), spec, cfg) == bool(
            nc_row_shift(spec, cfg.patch(64)[2], 2)), cfg
    every_descriptor_config("conv2d", x, w_shape, dict(padding=padding, stride=2), monkeypatch)


def test_nchw_strided_rows_dealt_only_where_they_fit():
    """Dealt rows need an even height (rows paired), 16-byte rows and no output reading past its row (the even row's
    box runs on into the odd one): ResNet-50's 3x3 and 1x1 stride-2 rows of 56 take them, a 5x5 layer padded 2 and an
    odd height do not; the heuristic gives them to a 16-bit NC(D)HW forward on Hopper."""
    from tritonconv import costmodel
    from tritonconv._descriptors import nc_row_shift, nc_row_width

    def spec_of(x_shape, w_shape, padding):
        return conv_spec("conv2d", 2, torch.empty(x_shape), torch.empty(w_shape), None, 2, padding, 1, 1)
    assert nc_row_width(spec_of((1, 8, 56, 56), (8, 8, 3, 3), 1), 2) == 32
    assert nc_row_width(spec_of((1, 8, 56, 56), (8, 8, 1, 1), 0), 2) == 32
    assert nc_row_shift(spec_of((1, 8, 56, 56), (8, 8, 5, 5), 2), 32, 2) == 0  # the last output reads column 56
    assert nc_row_shift(spec_of((1, 8, 55, 56), (8, 8, 3, 3), 1), 32, 2) == 0  # odd height: no pairs
    assert nc_row_shift(spec_of((1, 8, 56, 52), (8, 8, 3, 3), 1), 32, 2) == 0  # 104-byte rows: the odd row off 16
    problem = tuning.Problem.of("conv", "bfloat16", "contiguous", (32, 128, 56, 56), (128, 128, 3, 3), 2, 1)
    cfg = tuning.heuristic(problem, interpret=False, tma=True)
    assert cfg.tile_h and cfg.patch(cfg.block_m)[2] == 32 and costmodel.nc_rows(problem, cfg) == 1
    assert not tuning.heuristic(dataclasses.replace(problem, kind="conv_t"), interpret=False, tma=True).tile_h


def tma_shift(spec, tile_w, dy) -> int:
    from tritonconv._descriptors import nc_row_shift
    return nc_row_shift(tma.transposed_as_forward(spec), tile_w, dy.element_size())


def test_nchw_rows_whole_only_where_they_fit():
    """Rows whole need the whole row in one tile (input and output), 16-byte rows and unit width stride, and are not
    split; a 1x1 layer needs no move. The heuristic gives an NC(D)HW 16-bit 3x3 layer such tiles on a GPU with a TMA
    unit (as many rows of the tile's width as fill it), and the cost model sees how they move."""
    from tritonconv import costmodel
    from tritonconv._descriptors import nc_row_shift, nc_row_width

    def spec_of(x_shape, w_shape, padding=1, stride=1):
        x, w = torch.empty(x_shape), torch.empty(w_shape)
        return conv_spec("conv2d", 2, x, w, None, stride, padding, 1, 1)
    assert nc_row_shift(spec_of((1, 8, 9, 56), (8, 8, 3, 3)), 64, 2) == 1  # 56 + 1 columns fit 64
    assert nc_row_shift(spec_of((1, 8, 9, 64), (8, 8, 3, 3)), 64, 2) == 2  # 64 + 1 do not: products apart
    assert nc_row_shift(spec_of((1, 8, 9, 64), (8, 8, 3, 3)), 32, 2) == 0  # the row past the tile
    assert nc_row_shift(spec_of((1, 8, 9, 12), (8, 8, 3, 3)), 16, 2) == 0  # 24-byte rows
    assert nc_row_shift(spec_of((1, 8, 9, 16), (8, 8, 3, 3), stride=2), 16, 2) == 0
    assert nc_row_shift(spec_of((1, 8, 9, 16), (8, 8, 1, 1), padding=0), 16, 2) == 0
    assert nc_row_width(spec_of((1, 8, 9, 56), (8, 8, 3, 3)), 2) == 64
    assert nc_row_width(spec_of((1, 8, 9, 28), (8, 8, 3, 3)), 4) == 32  # fp32: 112-byte rows
    problem = tuning.Problem.of("conv", "bfloat16", "contiguous", (32, 64, 56, 56), (64, 64, 3, 3), 1, 1)
    cfg = tuning.heuristic(problem, interpret=False, tma=True)
    assert cfg.tile_h and cfg.patch(cfg.block_m)[2] == 64 and cfg.split_k == 1
    assert costmodel.nc_rows(problem, cfg) == 1 and tuning.descriptors_launch(problem, cfg)
    assert not costmodel.nc_rows(problem, tuning.heuristic(problem, interpret=False))  # no TMA unit: the pointer kernel
    split = dataclasses.replace(cfg, split_k=2)
    assert not tuning.descriptors_launch(problem, split) and not costmodel.nc_rows(problem, split)


def test_rows_whole_sum_their_taps_ending_at_the_least_shift():
    """``NC_SHIFT`` 1 runs the width taps of negative shift first in increasing shift, then the others in decreasing
    shift (:func:`tritonconv._descriptors.nc_shift_order`), so that the sum ends at the least shift at or above 0 (0
    for 'same' padding: the epilogue's runs start where the output's rows do). Simulated on a tile's columns, over
    every small layer whose rows :func:`nc_row_shift` reads so: every output column's sum holds exactly the taps that
    read inside the row, none lost off either end of the tile on the way (one that was left behind where it leaves
    the tile would be); strided 2, its phase's columns (dealt)."""
    from tritonconv._descriptors import nc_row_shift, nc_shift_order
    assert nc_shift_order(conv_spec("conv2d", 2, torch.empty(1, 8, 9, 56), torch.empty(8, 8, 3, 3), None, 1, 1, 1,
                                    1)) == [0, 2, 1]
    checked = set()
    for taps, pad, dilation, width, stride in ((k, p, d, w, s) for k in range(1, 6) for p in range(0, 9)
                                               for d in (1, 2, 3) for w in (8, 16, 24) for s in (1, 2)):
        if width + 2 * pad < (taps - 1) * dilation + 1:
            continue
        x = torch.empty(1, 8, 4 if stride == 2 else 3, width)
        forward = conv_spec("conv2d", 2, x, torch.empty(8, 8, 1, taps), None, (stride, stride), (0, pad), (1, dilation), 1)
        for spec in [forward] + [tma.transposed_as_forward(forward)] * (stride == 1):  # (an input gradient: padding
            if nc_row_shift(spec, 32, 2) == 1:  # past the taps' reach, its own negative)
                checked.add(check_shift_order(spec, 32))
    assert checked == {(s, last, neg) for s in (1, 2) for last in (False, True) for neg in (False, True)
                       if neg or not last or s == 1}, checked  # (positive shifts alone from a negative padding)


def check_shift_order(spec, tile_w: int) -> tuple[int, bool, bool]:
    """Simulate :func:`nc_shift_order` on a tile's columns (see above); -> (stride, s_last > 0, a negative shift)."""
    from tritonconv._descriptors import nc_last_shift, nc_shift_order, nc_shifts
    taps, width, (pad, _) = spec.weight_shape[-1], spec.input_shape[-1], spec.padding[-1]
    dilation, stride = spec.dilation[-1], spec.stride[-1]
    shifts, order = nc_shifts(spec), nc_shift_order(spec)
    assert sorted(order) == list(range(taps)) and max(shifts) >= 0 and order[-1] == min(
        t for t in range(taps) if shifts[t] >= 0) and nc_last_shift(spec) == shifts[order[-1]] >= 0
    tile = [set() for _ in range(tile_w)]  # the taps summed in each column
    for i, t in enumerate(order):
        phase = (t * dilation - pad) % stride  # (strided: the row dealt, column c of a phase input stride*c + q)
        for c in range(tile_w):
            if stride * c + phase < width:  # inside the row: a product (past it or before it the padding, zero)
                tile[c].add(t)
        if i + 1 < len(order):
            move = shifts[order[i + 1]] - shifts[t]
            tile = [tile[c - move] if 0 <= c - move < tile_w else set() for c in range(tile_w)]
    for o in range(spec.output_shape[-1]):
        want = {t for t in range(taps) if 0 <= stride * o + t * dilation - pad < width}
        assert tile[o + nc_last_shift(spec)] == want, (taps, pad, dilation, width, stride, o)
    return stride, nc_last_shift(spec) > 0, min(shifts) < 0


@pytest.mark.parametrize("op,x_shape,w_shape,kwargs", [
    ("conv2d", (3, 16, 5, 6), (24, 16, 3, 3), dict(padding=1)),
    ("conv3d", (3, 8, 3, 4, 5), (16, 8, 3, 3, 3), dict(padding=1, stride=(2, 1, 1))),  # depth slices of each image
])
@pytest.mark.parametrize("images", [2, 4])
def test_patches_spanning_images_stop_at_the_batch(op, x_shape, w_shape, kwargs, images, monkeypatch):
    """Patches of several images (``Config.tile_b``) on a batch of 3: the last patch's images past the batch read
    zeros and are not stored (the output is poisoned first), in the forward (bias, relu), the input gradient and
    the weight gradient (one sum over every patch, and split so a split starts mid-batch), through the
    descriptor kernels, against torch; an NC(D)HW input, whose boxes are one image's, runs the pointer kernel
    with the same tiles."""
    launched = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, _f=tma.Launch.__call__, **k: launched.append(1) or _f(*a, **k))
    monkeypatch.setattr(weight_grad.DescriptorLaunch, "launch",
                        lambda *a, _f=weight_grad.DescriptorLaunch.launch: launched.append(1) or _f(*a))
    x = geometry.to_layout(torch.randn(x_shape, device=DEVICE), "channels_last").requires_grad_()
    w = torch.randn(w_shape, device=DEVICE)
    b = torch.randn(w_shape[0], device=DEVICE)
    y = getattr(F, op)(x, w, b, **kwargs)
    dy = geometry.to_layout(torch.randn(y.shape, device=DEVICE), "channels_last")
    (ref_dx,) = torch.autograd.grad(y, x, dy)
    x = x.detach()
    ref_dw = torch.autograd.grad(getattr(F, op)(x, w.requires_grad_(), **kwargs), w, dy)[0]
    w = w.detach()
    spec = conv_spec(op, int(op[-2]), x, w, b, kwargs.get("stride", 1), kwargs.get("padding", 0), 1, 1)
    cfg = tuning.Config(64, 16, 16, group_m=1, num_stages=1, tile_h=2, tile_b=images)
    assert_close(run(op, x, w, b, cfg, "relu", **kwargs), F.relu(y))
    for split in (1, 3):  # one sum walking every patch; three starting mid-batch
        assert_close(dispatch.conv_grad_weight(dy, x, spec, False, dataclasses.replace(cfg, split_k=split)), ref_dw)
    if "stride" not in kwargs:
        assert_close(dispatch.conv_grad_input(dy, w, spec, False, geometry.output_memory_format(x, w), cfg), ref_dx)
    assert len(launched) == (4 if "stride" not in kwargs else 3)
    nchw = x.contiguous()
    assert not tma.usable(nchw, w, spec, cfg)
    assert_close(run(op, nchw, w, b, cfg, "relu", **kwargs), F.relu(y))
    assert len(launched) == (4 if "stride" not in kwargs else 3)


POSITIONS_N_CASES = [  # (op, input, weight, arguments, layout, config): patches spanning rows and images, NC(D)HW boxes
    ("conv2d", (3, 16, 5, 6), (24, 16, 3, 3), dict(padding=1), "channels_last", dict(tile_h=2, tile_b=2)),
    ("conv2d", (2, 16, 9, 11), (72, 16, 3, 3), dict(padding=(2, 1), dilation=(2, 1)), "channels_last",
     dict(tile_h=4, split_k=3)),  # two channel tiles, the flat loop split (its partial tiles meet transposed back)
    ("conv3d", (2, 16, 3, 8, 10), (16, 16, 1, 3, 3), dict(padding=(0, 1, 1), stride=(1, 2, 2)), "channels_last",
     dict(tile_h=2, tile_b=2)),  # the strided input's phase view
    ("conv2d", (2, 16, 9, 16), (24, 16, 1, 1), dict(), "contiguous", dict(tile_h=2)),  # NC(D)HW boxes, rows on 16 bytes
]


@pytest.mark.parametrize("op,x_shape,w_shape,kwargs,layout,tiles", POSITIONS_N_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, "tf32", torch.bfloat16])
def test_transposed_mma_matches_torch(op, x_shape, w_shape, kwargs, layout, tiles, dtype, monkeypatch):
    """Tiles whose MMA runs transposed (output channels x positions, :func:`tritonconv.kernels.tma.positions_as_n`):
    the forward (bias, relu, flipped kernel) and the input gradient (unit stride: as a forward; strided: by phase),
    through the descriptor kernel with ``POSITIONS_N``, against torch in float64; IEEE fp32 tiles of the same shape
    run the MMA as written, fp32 ones multiplied in TF32 transposed where channels are innermost (the interpreter
    multiplies them in IEEE: the tiles are what is tested)."""
    tf32 = dtype == "tf32"
    if tf32:
        monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")
        dtype = torch.float32
    transposed = []
    monkeypatch.setattr(tma, "Direct", lambda kernel, args, kwargs, _d=tma.Direct: transposed.append(
        kwargs["POSITIONS_N"]) or _d(kernel, args, kwargs))
    x = geometry.to_layout(torch.randn(x_shape, device=DEVICE, dtype=torch.float64), layout).requires_grad_()
    w = torch.randn(w_shape, device=DEVICE, dtype=torch.float64)
    b = torch.randn(w_shape[0], device=DEVICE, dtype=torch.float64)
    y = getattr(F, op)(x, w.flip(list(range(2, w.dim()))), b, **kwargs)
    dy = geometry.to_layout(torch.randn_like(y), layout)
    (ref_dx,) = torch.autograd.grad(y, x, dy)
    xs, ws, bs, dys = (t.detach().to(dtype) for t in (x, w, b, dy))
    tol = "tf32" if tf32 and DEVICE == "cuda" else dtype  # a GPU multiplies in TF32 there
    cfg = tuning.Config(32, 64, 16, group_m=1, num_stages=1, **tiles)
    spec = conv_spec(op, int(op[-2]), xs, ws, bs, kwargs.get("stride", 1), kwargs.get("padding", 0),
                     kwargs.get("dilation", 1), 1)
    assert_close(run(op, xs, ws, bs, cfg, "relu", flip=True, **kwargs), F.relu(y), tol)
    dx = dispatch.conv_grad_input(dys, ws, spec, True, geometry.output_memory_format(xs, ws), cfg)
    assert_close(dx, ref_dx, tol)
    assert transposed == [dtype == torch.bfloat16 or (tf32 and layout == "channels_last")] * 2


def test_flip_and_nchw_input(monkeypatch):
    """True convolution (flipped kernel) through descriptors; an NCHW input whose rows are no 16-byte multiple
    (9 fp32 columns), given a descriptor config, is read in place by the pointer kernel with the same tiles."""
    launched = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, _f=tma.Launch.__call__, **k: launched.append(1) or _f(*a, **k))
    x = torch.randn(2, 16, 7, 9, device=DEVICE)
    w = torch.randn(8, 16, 3, 3, device=DEVICE)
    cfg = tuning.tma_candidates(tuning.Problem.of("conv", "float32", "channels_last", x.shape, w.shape, 1, 1))[0]
    assert not tuning.tma_eligible(tuning.Problem.of("conv", "float32", "contiguous", x.shape, w.shape, 1, 1))
    ref = F.conv2d(x.double(), w.double().flip(2, 3), padding=1)
    assert_close(run("conv2d", geometry.to_layout(x, "channels_last"), w, None, cfg, flip=True, padding=1), ref)
    assert launched == [1]
    assert_close(run("conv2d", x, w, None, cfg, flip=True, padding=1), ref)
    assert launched == [1]


def test_unaligned_view_falls_back_to_pointer_loads(monkeypatch):
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, **k: pytest.fail("descriptor path taken"))
    base = torch.randn(2, 9, 17, 11, device=DEVICE).contiguous(memory_format=torch.channels_last)
    x = base[:, 1:]  # 8 channels starting 4 bytes into each 16-byte row: not a valid descriptor base
    w = torch.randn(8, 8, 3, 3, device=DEVICE)
    cfg = tuning.tma_candidates(tuning.Problem.of("conv", "float32", "channels_last", x.shape, w.shape, 1, 1))[0]
    assert not tma.usable(x, w, conv_spec("conv2d", 2, x, w, None, 1, 1, 1, 1), cfg)
    assert_close(run("conv2d", x, w, None, cfg, padding=1), F.conv2d(x.double(), w.double(), padding=1))


def test_alignment_is_checked_per_call(monkeypatch):
    """Same shapes and strides, another base address: a view starting 4 bytes into a 16-byte line runs
    the pointer kernel, an aligned tensor of the same signature (the same plan) the descriptor kernel."""
    ran = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, _f=tma.Launch.__call__, **k: ran.append(1) or _f(*a, **k))
    aligned = geometry.to_layout(torch.randn(1, 8, 5, 6, device=DEVICE), "channels_last")
    shifted = torch.randn(aligned.numel() + 1, device=DEVICE)[1:].as_strided(aligned.shape, aligned.stride())
    w = torch.randn(8, 8, 3, 3, device=DEVICE)
    cfg = tuning.tma_candidates(tuning.Problem.of("conv", "float32", "channels_last", aligned.shape, w.shape, 1, 1))[0]
    for x, runs in ((shifted, 0), (aligned, 1), (shifted, 1)):
        assert_close(run("conv2d", x, w, None, cfg, padding=1), F.conv2d(x.double(), w.double(), padding=1))
        assert len(ran) == runs


def test_strided_nchw_input_gradient_never_takes_the_descriptor_kernel(monkeypatch):
    """A descriptor config reaching a strided input gradient of an NC(D)HW output gradient (a cache entry, a config
    given by hand) runs the pointer kernel with the same tiles: by phase, boxes start anywhere along the width."""
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, **k: pytest.fail("descriptor path taken"))
    x = torch.randn(1, 8, 5, 6, 16, device=DEVICE).requires_grad_()
    w = torch.randn(16, 8, 3, 3, 3, device=DEVICE)
    y = F.conv3d(x, w, padding=1, stride=(2, 1, 1))
    dy = torch.randn_like(y)
    (ref,) = torch.autograd.grad(y, x, dy)
    spec = conv_spec("conv3d", 3, x.detach(), w, None, (2, 1, 1), 1, 1, 1)
    cfg = tuning.Config(64, 16, 16, 1, 4, 2, tile_h=4, tile_b=1)
    assert not tma.usable(dy, w, spec, cfg, transposed=True)
    dx = dispatch.conv_grad_input(dy, w, spec, False, geometry.output_memory_format(x, w), cfg)
    assert_close(dx, ref)


STRIDED_T_CASES = [  # strided input gradients by stride phase: phases of unequal tap counts, and of none
    ("conv2d", (2, 32, 10, 12), (24, 32, 3, 3), dict(padding=1, stride=2)),
    ("conv2d", (3, 16, 8, 14), (16, 16, 1, 1), dict(stride=2)),  # patches spanning images
    ("conv2d", (1, 16, 13, 15), (16, 16, 3, 5), dict(padding=(1, 2), stride=(2, 3), dilation=(1, 2))),
    ("conv1d", (2, 16, 37), (16, 16, 7), dict(padding=3, stride=4)),
    ("conv3d", (1, 16, 5, 7, 9), (16, 16, 3, 3, 3), dict(padding=1, stride=2)),
    ("conv2d", (1, 16, 9, 9), (16, 16, 2, 2), dict(stride=3)),  # stride > kernel: a phase no tap reaches
]


@pytest.mark.parametrize("op,x_shape,w_shape,kwargs", STRIDED_T_CASES)
@pytest.mark.parametrize("flip", [False, True])
def test_strided_input_gradient_by_phase_through_descriptors(op, x_shape, w_shape, kwargs, flip, monkeypatch):
    """A strided input gradient, channels-last: each program writes one stride phase's positions from the taps
    reaching it, boxes of dy at ``j + (phase + p - t*d) / s``; every candidate config against torch (the output
    poisoned by the allocator: every position is written, zeros where no tap reaches)."""
    launched = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, _f=tma.Launch.__call__, **k: launched.append(1) or _f(*a, **k))
    x = geometry.to_layout(torch.randn(x_shape, device=DEVICE, dtype=torch.float64), "channels_last").requires_grad_()
    w = torch.randn(w_shape, device=DEVICE, dtype=torch.float64)
    y = getattr(F, op)(x, w.flip(list(range(2, w.dim()))) if flip else w, **kwargs)
    dy = geometry.to_layout(torch.randn_like(y), "channels_last")
    (ref,) = torch.autograd.grad(y, x, dy)
    x32, w32, dy32 = x.detach().float(), w.float(), dy.float()
    spec = conv_spec(op, int(op[-2]), x32, w32, None, kwargs["stride"], kwargs.get("padding", 0),
                     kwargs.get("dilation", 1), 1)
    problem = tuning.Problem.for_launch("conv_t", dy32, spec)
    configs = tuning.tma_candidates(problem)
    assert tuning.tma_eligible(problem) and configs
    for cfg in configs[::2]:
        dx = dispatch.conv_grad_input(dy32, w32, spec, flip, geometry.output_memory_format(x32, w32), cfg)
        assert_close(dx, ref)
    assert len(launched) == len(configs[::2])


def test_strided_transposed_convolution_through_descriptors(monkeypatch):
    """``conv_transpose2d`` (stride 2, output padding, bias, an activation) on a channels-last bf16 input runs
    the descriptor kernel by phase when given its config, and matches torch."""
    launched = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, _f=tma.Launch.__call__, **k: launched.append(1) or _f(*a, **k))
    x = geometry.to_layout(torch.randn(2, 32, 5, 7, device=DEVICE, dtype=torch.bfloat16), "channels_last")
    w = torch.randn(32, 16, 3, 3, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(16, device=DEVICE, dtype=torch.bfloat16)
    ref = F.relu(F.conv_transpose2d(x.double(), w.double(), b.double(), stride=2, padding=1, output_padding=1))
    spec = conv_transpose_spec("conv_transpose2d", 2, x, w, b, 2, 1, 1, 1, 1)
    cfg = tuning.tma_candidates(tuning.Problem.for_launch("conv_t", x, spec))[0]
    out = dispatch.conv_transpose(x, w, b, spec, "relu", False, torch.channels_last, cfg)
    assert_close(out, ref, torch.bfloat16)
    assert launched


@pytest.mark.parametrize("kind,dtype,input_shape,weight_shape,stride,groups,eligible", [
    ("conv", "bfloat16", (1, 64, 8, 8), (64, 64, 3, 3), 1, 1, True),
    ("conv", "bfloat16", (1, 64, 16, 16), (64, 64, 3, 3), 2, 1, True),  # strides folded into the input's view
    ("conv", "bfloat16", (1, 64, 17, 16), (64, 64, 3, 3), 2, 1, False),  # no such view: 17 rows at stride 2
    ("conv", "bfloat16", (1, 64, 4, 16, 16), (64, 64, 3, 3, 3), 2, 1, True),  # slices and rows on one axis
    ("conv", "bfloat16", (1, 64, 4, 16, 16), (64, 64, 1, 3, 3), (1, 2, 2), 1, True),
    ("conv", "bfloat16", (1, 24, 8, 8), (64, 24, 3, 3), 2, 1, False),  # 24 channels: no whole 16-wide chunks
    ("conv", "bfloat16", (1, 64, 8, 8), (64, 32, 3, 3), 1, 2, False),  # groups
    ("conv", "bfloat16", (1, 4, 8, 8), (64, 4, 3, 3), 1, 1, False),  # 8-byte channel rows
    ("conv", "float32", (1, 4, 8, 8), (64, 4, 3, 3), 1, 1, True),  # 16-byte rows in fp32
    ("conv_t", "bfloat16", (1, 64, 8, 8), (64, 64, 3, 3), 1, 1, True),  # input gradient: a forward conv of dy
    ("conv_t", "bfloat16", (1, 4, 8, 8), (64, 4, 3, 3), 1, 1, False),  # 8-byte weight rows (its written channels)
    ("conv_t", "bfloat16", (1, 64, 16, 16), (64, 64, 3, 3), 2, 1, True),  # strided: by stride phase
    ("conv_t", "bfloat16", (1, 64, 4, 16, 16), (64, 64, 3, 3, 3), (2, 1, 1), 1, True),
    ("conv_wgrad", "bfloat16", (1, 64, 8, 8), (64, 64, 3, 3), 1, 1, True),  # weight gradient: its own kernel
    ("conv_wgrad", "bfloat16", (1, 64, 16, 16), (64, 64, 3, 3), 2, 1, True),  # x read through the strided view
    ("conv_wgrad", "bfloat16", (1, 64, 17, 16), (64, 64, 3, 3), 2, 1, False),
    ("conv_wgrad", "bfloat16", (1, 4, 8, 8), (64, 4, 3, 3), 1, 1, False),  # 8-byte rows of x's channels
    ("conv_wgrad", "float32", (1, 4, 8, 8), (64, 4, 3, 3), 1, 1, True),
    ("conv", "bfloat16", (1, 64, 4, 8, 8), (64, 64, 3, 3, 3), (2, 1, 1), 1, True),
])
def test_offered_only_where_descriptors_apply(kind, dtype, input_shape, weight_shape, stride, groups, eligible):
    problem = tuning.Problem.of(kind, dtype, "channels_last", input_shape, weight_shape, stride, 1, groups=groups)
    with_tma = tuning.candidates(problem, tma=True)
    assert any(c.tile_h for c in with_tma) == eligible
    assert not any(c.tile_h for c in tuning.candidates(problem))  # never without a TMA unit
    assert not tuning.heuristic(problem, interpret=False).tile_h  # never without a TMA unit
    # with one, the heuristic takes it for 16-bit forward problems (measured faster on an H200), unit-stride
    # input gradients (the same kernel, run as a forward convolution) and weight gradients (their own kernel)
    chosen = tuning.heuristic(problem, interpret=False, tma=True)
    pointer = tuning.heuristic(problem, interpret=False)
    assert bool(chosen.tile_h) == (eligible and dtype != "float32")
    if kind == "conv_wgrad":  # the same channel tiles and splits; patches of 64 positions per step
        assert (chosen.block_m, chosen.block_n, chosen.split_k) == (pointer.block_m, pointer.block_n, pointer.split_k)
        assert not chosen.tile_h or chosen.block_k == 64
    else:  # the same channel tiles; patches of the pointer kernel's rows or 64, whichever pads the plane less
        assert (chosen.block_n, chosen.block_k, chosen.split_k) == (pointer.block_n, pointer.block_k, pointer.split_k)
        assert chosen.block_m in (pointer.block_m, 64)


def test_descriptor_patches_only_where_they_pad_the_plane_little():
    """Boxes have power-of-two sides: the heuristic gives a unit-stride layer the descriptor kernels only where
    their patches pad the output positions at most TMA_PADDING. Channels-innermost patches span images, so small
    planes pad little (14 x 14 and 17 x 17 at batch 32: at most 1.06x, taken); an NC(D)HW box is one image's
    (17 x 24 in rows of 8 bf16 columns or more: 1.41x, not taken). 56 x 56: two images' 8 x 8 patches, exact; the
    weight gradient's planes read as rows in 64 (exact: ``tuning.plane_patches``, where one row of 64 padded 1.14x)."""
    def chosen(kind, hw, batch=32):
        problem = tuning.Problem.of(kind, "bfloat16", "channels_last", (batch, 128, hw, hw), (128, 128, 3, 3), 1, 1)
        cfg = tuning.heuristic(problem, interpret=False, tma=True)
        return cfg, problem, cfg.block_k if kind == "conv_wgrad" else cfg.block_m

    for kind in ("conv", "conv_t", "conv_wgrad"):
        cfg, problem, positions = chosen(kind, 56)
        if kind == "conv_wgrad":
            assert cfg.patch(positions) == (1, 1, 64) and cfg.planes and tuning.tma_padding(problem, positions) == 1.0
        else:
            assert cfg.tile_h and tuning.tma_padding(problem, positions) == 1.0 and cfg.patch(positions)[1:] == (8, 8)
        for hw in (14, 17):
            cfg, problem, positions = chosen(kind, hw)
            assert cfg.tile_h and cfg.tile_b > 1 and tuning.tma_padding(problem, positions) <= 1.06
            cfg, problem, positions = chosen(kind, hw, batch=1)  # one image: its plane alone
            assert bool(cfg.tile_h) == (hw == 14) and cfg.tile_b == 1
        problem = tuning.Problem.of(kind, "bfloat16", "contiguous", (32, 128, 17, 24), (128, 128, 3, 3), 1, 8, 8)
        assert tuning.tma_eligible(problem) and tuning.tma_padding(problem, 64) > 1.4  # taps shift 16 bytes
        assert not tuning.heuristic(problem, interpret=False, tma=True).tile_h


def test_tile_shape_pads_the_output_positions_least():
    assert tuning.tma_tile(56, 56, 64) == (1, 8)  # 8 x 8 tiles cover 56 x 56 exactly
    assert tuning.tma_tile(56, 56, 128) == (1, 8)  # one image: 8 x 16 and 2 x 64 both pad to 56 x 64, the squarer
    assert tuning.tma_tile(56, 56, 128, batch=32) == (2, 8)  # two images' 8 x 8: exact
    assert tuning.tma_tile(1, 8192, 128) == (1, 1)  # 1-D: one row of 128
    assert tuning.tma_tile(28, 28, 128) == (1, 4)  # 4 x 32 pads to 28 x 32; 8 x 16 to 32 x 32
    assert tuning.tma_tile(14, 14, 128, batch=32) == (32, 2)  # 2 x 2 of 32 images: exact
    assert tuning.tma_tile(14, 14, 128, batch=3) == (1, 8)  # 4 images would pad the batch 1.33x
    assert tuning.tma_tile(17, 17, 64, min_w=8) == (1, 8)  # NC(D)HW rows of 16 bytes at least, one image
    for hw, batch in ((7, 32), (14, 8), (17, 32), (28, 8), (9, 2), (5, 3)):
        images, rows = tuning.tma_tile(hw, hw, 128, batch=batch)
        assert images < 2 * batch and 128 % (images * rows) == 0  # no more than the batch's next power of two


@pytest.mark.parametrize("op,x_shape,w_shape,kwargs", [c for c in CASES if "stride" not in c[3]])
@pytest.mark.parametrize("flip", [False, True])
def test_input_gradient_through_descriptors(op, x_shape, w_shape, kwargs, flip, monkeypatch):
    """Unit stride: the input gradient runs as a forward convolution of dy (kernel reversed, channel
    axes swapped, padding (K-1)*d - p) through the same kernel, for every candidate config."""
    launched = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, _f=tma.Launch.__call__, **k: launched.append(1) or _f(*a, **k))
    x = geometry.to_layout(torch.randn(x_shape, device=DEVICE, dtype=torch.float64), "channels_last").requires_grad_()
    w = torch.randn(w_shape, device=DEVICE, dtype=torch.float64)
    y = getattr(F, op)(x, w.flip(list(range(2, w.dim()))) if flip else w, **kwargs)
    dy = geometry.to_layout(torch.randn_like(y), "channels_last")  # torch's 1-D output is NCL
    (ref,) = torch.autograd.grad(y, x, dy)
    x32, w32, dy32 = x.detach().float(), w.float(), dy.float()
    spec = conv_spec(op, int(op[-2]), x32, w32, None, 1, kwargs.get("padding", 0), kwargs.get("dilation", 1), 1)
    problem = tuning.Problem.for_launch("conv_t", dy32, spec)
    configs = tuning.tma_candidates(problem)
    assert tuning.tma_eligible(problem) and configs
    for cfg in configs:
        dx = dispatch.conv_grad_input(dy32, w32, spec, flip, geometry.output_memory_format(x32, w32), cfg)
        assert_close(dx, ref)
    assert len(launched) == len(configs)


@pytest.mark.parametrize("kind,stride", [("conv", 1), ("conv_t", 1), ("conv", 2), ("conv_t", 2)])
def test_narrow_channel_tiles_take_one_row_patches(kind, stride, monkeypatch):
    """A channels-last forward or input gradient whose channel tile is under 64 (so its MMA does not run transposed)
    takes patches of one row on Hopper where its written rows fill them (``tuning.one_row_forward``: rows of 64 here,
    strided 2 too, the input gradient by phase), where patches spanning rows would put the MMA's first operand in
    registers; the tuner's candidates hold both shapes. Each runs through the descriptor kernel against torch."""
    launched = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, _f=tma.Launch.__call__, **k: launched.append(a[0]) or _f(*a, **k))
    x = geometry.to_layout(torch.randn(2, 16, 3 * stride, 64 * stride, device=DEVICE, dtype=torch.float64),
                           "channels_last").requires_grad_()
    w = torch.randn(24, 16, 3, 3, device=DEVICE, dtype=torch.float64)
    b = torch.randn(24, device=DEVICE, dtype=torch.float64)
    y = F.conv2d(x, w, b, stride=stride, padding=1)
    dy = geometry.to_layout(torch.randn_like(y), "channels_last")
    (ref_dx,) = torch.autograd.grad(y, x, dy)
    x32, w32, dy32 = x.detach().float(), w.float(), dy.float()
    spec = conv_spec("conv2d", 2, x32, w32, None, stride, 1, 1, 1)
    problem = tuning.Problem.for_launch(kind, dy32 if kind == "conv_t" else x32, spec)
    cfg = tuning.heuristic(dataclasses.replace(problem, dtype="bfloat16"), interpret=False, tma=True)
    assert cfg.block_n < 64 and (cfg.tile_b, cfg.tile_h, cfg.block_m) == (1, 1, 64)
    assert tuning.tma_patch(problem, 128) != dict(tile_b=1, tile_h=1)  # (the patch it took the place of spans rows)
    configs = tuning.tma_candidates(problem)
    assert {c.tile_b * c.tile_h == 1 for c in configs} == {True, False}
    for c in (cfg, *configs):
        if kind == "conv":
            assert_close(dispatch.conv_forward(x32, w32, b.float(), spec, None, False, c), y.detach())
        else:
            assert_close(dispatch.conv_grad_input(dy32, w32, spec, False, geometry.output_memory_format(x32, w32), c),
                         ref_dx)
    assert len(launched) >= len(configs) + 1


@pytest.mark.parametrize("layout", ["channels_last", "contiguous"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_wide_patches_match_torch(layout, dtype, monkeypatch):
    """Patches of 256 positions beside channel tiles of 32 (``tuning.wide_patch``: the 3-D U-Net's), spanning rows
    channels-last and of whole rows NC(D)HW, in the forward and the input gradient, each through the descriptor
    kernel, against torch (bias and relu on the forward)."""
    launched = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, _f=tma.Launch.__call__, **k: launched.append(1) or _f(*a, **k))
    x = geometry.to_layout(torch.randn(1, 16, 3, 8, 32, device=DEVICE, dtype=torch.float64), layout).requires_grad_()
    w = torch.randn(24, 16, 3, 3, 3, device=DEVICE, dtype=torch.float64)
    b = torch.randn(24, device=DEVICE, dtype=torch.float64)
    y = F.conv3d(x, w, b, padding=1)
    dy = geometry.to_layout(torch.randn_like(y), layout)
    (ref_dx,) = torch.autograd.grad(y, x, dy)
    xd, wd, dyd = x.detach().to(dtype), w.to(dtype), dy.to(dtype)
    spec = conv_spec("conv3d", 3, xd, wd, None, 1, 1, 1, 1)
    for kind in ("conv", "conv_t"):
        problem = tuning.Problem.for_launch(kind, dyd if kind == "conv_t" else xd, spec)
        cfg = tuning.Config(256, 32, 16, group_m=1, num_warps=4, num_stages=3, **tuning.tma_patch(problem, 256))
        assert cfg.tile_h > 1 and tuning.descriptors_launch(problem, cfg), cfg
        if kind == "conv":
            assert_close(run("conv3d", xd, wd, b.to(dtype), cfg, "relu", padding=1), F.relu(y.detach()), dtype)
        else:
            assert_close(dispatch.conv_grad_input(dyd, wd, spec, False, geometry.output_memory_format(xd, wd), cfg),
                         ref_dx, dtype)
    assert len(launched) == 2


WGRAD_CASES = [  # the weight gradient through descriptors: channels-last and NC(D)HW operands, strided channels-last
    ("conv2d", (2, 16, 9, 11), (24, 16, 3, 3), dict(padding=1), "channels_last"),
    ("conv3d", (1, 8, 5, 6, 7), (16, 8, 3, 3, 3), dict(padding=1, stride=(2, 1, 1)), "channels_last"),
    ("conv1d", (2, 16, 37), (8, 16, 3), dict(padding=8, dilation=8), "channels_last"),
    ("conv1d", (1, 24, 20), (40, 24, 4), dict(padding="same"), "channels_last"),  # asymmetric padding
    ("conv2d", (2, 16, 9, 16), (24, 16, 1, 1), dict(), "contiguous"),
    ("conv3d", (1, 8, 5, 3, 8), (16, 8, 3, 1, 1), dict(padding=(1, 0, 0), stride=(2, 1, 1)), "contiguous"),
    ("conv2d", (2, 16, 10, 12), (24, 16, 3, 3), dict(padding=1, stride=2), "channels_last"),  # x's strided view
    ("conv1d", (2, 16, 36), (8, 16, 7), dict(padding=3, stride=4), "channels_last"),
    ("conv3d", (2, 16, 3, 8, 10), (16, 16, 1, 3, 3), dict(padding=(0, 1, 1), stride=(1, 2, 2)), "channels_last"),
    ("conv3d", (2, 16, 5, 6, 8), (16, 16, 3, 3, 3), dict(padding=1, stride=2), "channels_last"),
    # NC(D)HW x read in runs: taps 1 and 7 (3 in fp32) columns off a 16-byte boundary, shifts of 2 (dilated), five taps,
    # 3-D, padding past the taps' reach, depth strided
    ("conv2d", (2, 16, 9, 16), (24, 16, 3, 3), dict(padding=1), "contiguous"),
    ("conv2d", (1, 16, 5, 24), (8, 16, 3, 3), dict(padding=2, dilation=2), "contiguous"),
    ("conv1d", (2, 16, 40), (8, 16, 5), dict(padding=2), "contiguous"),
    ("conv3d", (1, 16, 4, 5, 16), (16, 16, 3, 3, 3), dict(padding=1), "contiguous"),
    ("conv2d", (1, 16, 3, 8), (8, 16, 3, 3), dict(padding=9), "contiguous"),
    ("conv3d", (2, 16, 5, 4, 8), (16, 16, 3, 1, 3), dict(padding=(1, 0, 1), stride=(2, 1, 1)), "contiguous"),
    # NC(D)HW planes read as rows (rows of no 16-byte multiple, planes of one), the seams' products taken out; a 5x5
    # layer (taps two columns off, some on 16 bytes)
    ("conv2d", (2, 16, 4, 10), (24, 16, 3, 3), dict(padding=1), "contiguous"),
    ("conv3d", (1, 16, 3, 4, 6), (16, 16, 3, 3, 3), dict(padding=1), "contiguous"),
    ("conv2d", (1, 16, 8, 14), (8, 16, 5, 5), dict(padding=2), "contiguous"),  # splits inside a plane
    # NC(D)HW dy in boxes of one row viewed [N, D, H, C, W] (weight_grad.channels_fourth: x's boxes as they are)
    ("conv1d", (2, 16, 72), (8, 16, 3), dict(padding=8, dilation=8), "contiguous"),
    ("conv2d", (2, 16, 3, 64), (24, 16, 1, 1), dict(), "contiguous"),
]


@pytest.mark.parametrize("op,x_shape,w_shape,kwargs,layout", WGRAD_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weight_gradient_through_descriptors(op, x_shape, w_shape, kwargs, layout, dtype, monkeypatch):
    """Patches of output positions as boxes of dy and of x shifted by each tap (zero padding from out-of-range
    boxes, positions past the edge zero in dy; NC(D)HW x off 16 bytes read in runs, planes as rows where rows are of no
    16-byte multiple): a spread of the tuner's descriptor configs, split or not, with the kernel flipped or not, against
    torch."""
    launched, flat = [], []
    monkeypatch.setattr(weight_grad.DescriptorLaunch, "launch", lambda *a, _f=weight_grad.DescriptorLaunch.launch:
                        launched.append(a[0].x_kinds) or flat.append(a[0].flat) or _f(*a))
    x = geometry.to_layout(torch.randn(x_shape, device=DEVICE, dtype=dtype), layout)
    w = torch.randn(w_shape, device=DEVICE, dtype=dtype)
    spec = conv_spec(op, int(op[-2]), x, w, None, kwargs.get("stride", 1), kwargs.get("padding", 0),
                     kwargs.get("dilation", 1), 1)
    dy = geometry.to_layout(torch.randn(spec.output_shape, device=DEVICE, dtype=dtype), layout)
    w64 = w.double().requires_grad_()
    (ref,) = torch.autograd.grad(getattr(F, op)(x.double(), w64, **kwargs), w64, dy.double())
    problem = tuning.Problem.for_launch("conv_wgrad", x, spec)
    assert tuning.tma_eligible(problem) and problem.layout == layout
    configs = tuning.tma_candidates(problem)
    assert configs and all(c.tile_h and c.block_k >= 64 for c in configs)
    picked = configs[::5] + [dataclasses.replace(configs[0], block_m=16, block_n=16, split_k=3)]
    for i, cfg in enumerate(picked):
        flip = i % 2 == 1
        expected = ref.flip(tuple(range(2, ref.dim()))) if flip else ref
        assert_close(dispatch.conv_grad_weight(dy, x, spec, flip, cfg), expected, dtype)
        assert (launched[-1] > 0b10) == (tuning.nc_runs(problem, cfg) > 0)  # x read in runs where the model says so
    assert len(launched) == len(picked)
    (pad, _), dilation = spec.padding[-1], spec.dilation[-1]
    planes = layout == "contiguous" and x.shape[-1] * x.element_size() % 16 != 0  # rows of no 16-byte multiple
    shifts = flat_shifts(spec) if planes else [t * dilation - pad for t in range(w_shape[-1])]
    off = any(s * x.element_size() % 16 for s in shifts)
    assert (layout == "contiguous" and off) == any(kinds > 0b10 for kinds in launched)  # NC(D)HW taps off 16 bytes
    assert flat == [planes or bool(cfg.planes) for cfg in picked] and nc_flat(spec, x.element_size()) == planes


@pytest.mark.parametrize("op,x_shape,w_shape,kwargs,planes", [
    ("conv2d", (2, 72, 5, 7), (24, 72, 3, 3), dict(padding=1), 0),  # 72 input channels: a tile edge past them
    ("conv3d", (1, 64, 3, 4, 6), (40, 64, 1, 3, 3), dict(padding=(0, 1, 1)), 0),
    ("conv1d", (2, 64, 37), (24, 64, 3), dict(padding=2, dilation=2), 0),
    ("conv2d", (2, 72, 8, 8), (24, 72, 3, 3), dict(padding=1), 1),  # planes as rows, the seams' products taken out
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weight_gradient_runs_input_channels_as_the_mmas_rows(op, x_shape, w_shape, kwargs, planes, dtype, monkeypatch):
    """Channels-last weight-gradient tiles of fewer than 64 output channels beside 64 input channels or more run the
    MMA transposed (``weight_grad.input_channels_as_m``: input x output channels, the sum turned back after the main
    loop), split or not, flipped or not, planes read as rows or not: against torch."""
    used = []
    monkeypatch.setattr(weight_grad.DescriptorLaunch, "launch", lambda *a, _f=weight_grad.DescriptorLaunch.launch:
                        used.append((a[0].kwargs["IN_AS_M"], a[0].flat)) or _f(*a))
    x = geometry.to_layout(torch.randn(x_shape, device=DEVICE, dtype=dtype), "channels_last")
    w = torch.randn(w_shape, device=DEVICE, dtype=dtype)
    spec = conv_spec(op, int(op[-2]), x, w, None, 1, kwargs["padding"], kwargs.get("dilation", 1), 1)
    dy = geometry.to_layout(torch.randn(spec.output_shape, device=DEVICE, dtype=dtype), "channels_last")
    w64 = w.double().requires_grad_()
    (ref,) = torch.autograd.grad(getattr(F, op)(x.double(), w64, **kwargs), w64, dy.double())
    if planes:
        base = tuning.Config(32, 64, 64, num_warps=4, num_stages=3, tile_h=1, tile_b=1, planes=1)
    else:
        problem = tuning.Problem.for_launch("conv_wgrad", x, spec)
        base = dataclasses.replace(next(c for c in tuning.tma_candidates(problem)), block_m=32, block_n=64, planes=0)
    for cfg, flip in ((base, False), (dataclasses.replace(base, block_m=16, block_n=128, split_k=3, num_warps=8), True)):
        expected = ref.flip(tuple(range(2, ref.dim()))) if flip else ref
        assert_close(dispatch.conv_grad_weight(dy, x, spec, flip, cfg), expected, dtype)
    assert used == [(True, bool(planes))] * 2


def test_weight_gradient_descriptors_only_where_they_apply(monkeypatch):
    """A descriptor config reaching a weight gradient the kernel cannot take (H/W stride 2 on 9 rows; an NCHW input strided
    along its width, whose boxes no view reads; a base 4 bytes into a line, checked per call) runs the pointer kernel
    with the same tiles."""
    monkeypatch.setattr(weight_grad.DescriptorLaunch, "launch", lambda *a: pytest.fail("descriptor path taken"))
    cfg = tuning.Config(16, 16, 64, group_m=1, num_stages=1, tile_h=8)
    aligned = geometry.to_layout(torch.randn(1, 8, 9, 16, device=DEVICE), "channels_last")
    shifted = torch.randn(aligned.numel() + 1, device=DEVICE)[1:].as_strided(aligned.shape, aligned.stride())
    for x, kwargs in ((aligned, dict(stride=2)), (torch.randn(1, 8, 9, 16, device=DEVICE), dict(padding=1, stride=(1, 2))),
                      (shifted, dict(padding=1))):
        w = torch.randn(8, 8, 3, 3, device=DEVICE)
        w64 = w.double().requires_grad_()
        y = F.conv2d(x.double(), w64, **kwargs)
        dy = geometry.to_layout(torch.randn(y.shape, device=DEVICE), geometry.layout_of(x))
        (ref,) = torch.autograd.grad(y, w64, dy.double())
        spec = conv_spec("conv2d", 2, x, w, None, kwargs.get("stride", 1), kwargs.get("padding", 0), 1, 1)
        assert weight_grad.descriptors_usable(dy, x, spec, cfg) == (x is shifted)  # shapes and strides allow it there
        assert_close(dispatch.conv_grad_weight(dy, x, spec, False, cfg), ref)


@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format])
def test_descriptor_passes_read_the_weight_in_place(monkeypatch, plain_allocation, fmt):
    """On a Hopper GPU's heuristic, a 16-bit unit-stride layer runs its three passes on descriptor tiles, and a weight
    in ``tritonconv.nn``'s layout (input channels innermost) is read in place by all of them (the input gradient reads
    it as boxes of reduction x columns: its output channels are the reduction); a 1x1 weight in torch's layout too.
    Only torch's layout of a 3x3 weight is copied, once per input gradient (and forward). Results against torch."""
    from test_conv import copies_made

    monkeypatch.setattr(tuning, "choose", lambda problem, *_: tuning.heuristic(problem, interpret=False, tma=True))
    names = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, _f=tma.Launch.__call__, **k: names.append("tma") or _f(*a, **k))
    monkeypatch.setattr(weight_grad.DescriptorLaunch, "launch",
                        lambda *a, _f=weight_grad.DescriptorLaunch.launch: names.append("wgrad") or _f(*a))
    for k, copied in ((3, False), (1, False), (3, True)):
        x = torch.randn(2, 16, 6, 16, device=DEVICE, dtype=torch.bfloat16).contiguous(memory_format=fmt)
        w_torch = torch.randn(32, 16, k, k, device=DEVICE, dtype=torch.bfloat16)
        w = w_torch if copied else geometry.channels_inner(w_torch)
        if fmt == torch.contiguous_format and k == 3:
            continue  # NCHW 3x3: its boxes would start off 16 bytes; the pointer kernel takes it
        x.requires_grad_(), w.requires_grad_()
        dy = torch.randn(2, 32, 6, 16, device=DEVICE, dtype=torch.bfloat16).contiguous(memory_format=fmt)

        def step(x=x, w=w, k=k, dy=dy):
            (tritonconv.conv2d(x, w, padding=k // 2) * dy).sum().backward()

        dispatch.clear_plans()
        names.clear()
        step()
        assert names.count("tma") == 2 and names.count("wgrad") == 1, names
        x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
        (F.conv2d(x64, w64, padding=k // 2) * dy.double()).sum().backward()
        assert_close(x.grad, x64.grad, torch.bfloat16)
        assert_close(w.grad, w64.grad, torch.bfloat16)
        assert w.grad.stride() == w.stride()  # the weight gradient written in the weight's layout
        assert copies_made(step) == ([w.numel()] * 2 if copied and k == 3 else []), (k, copied)


def test_forward_reads_an_output_channels_inner_weight(monkeypatch):
    """A 16-bit weight whose output channels are innermost (a permuted view) is read by the forward as boxes of
    reduction x columns too, flipped or not; an fp32 one is laid out first (tf32 takes its operand K-major)."""
    seen = []
    monkeypatch.setattr(tma.Launch, "__call__",
                        lambda *a, _f=tma.Launch.__call__, **k: seen.append(a[0].kwargs["W_COLS_INNER"]) or _f(*a, **k))
    x = geometry.to_layout(torch.randn(2, 16, 8, 16, device=DEVICE, dtype=torch.bfloat16), "channels_last")
    w = torch.randn(16, 3, 3, 32, device=DEVICE, dtype=torch.bfloat16).permute(3, 0, 1, 2)  # (32, 16, 3, 3)
    assert w.stride(0) == 1 and tma.weight_view(w) is not None and tma.weight_view(w.float()) is None
    cfg = tuning.tma_candidates(tuning.Problem.of("conv", "bfloat16", "channels_last", x.shape, w.shape, 1, 1))[0]
    for flip in (False, True):
        ref = F.conv2d(x.double(), (w.flip(2, 3) if flip else w).double(), padding=1)
        assert_close(run("conv2d", x, w, None, cfg, flip=flip, padding=1), ref, torch.bfloat16)
    assert seen == [True, True]


RELAID_CASES = [  # NC(D)HW layers whose taps shift boxes off 16 bytes: in place they take pointer tiles only
    ("conv2d", (2, 16, 9, 11), (24, 16, 3, 3), dict(padding=1)),
    ("conv3d", (1, 8, 5, 6, 7), (16, 8, 3, 3, 3), dict(padding=1)),
    ("conv1d", (2, 16, 37), (8, 16, 3), dict(padding=1, dilation=3)),
    ("conv2d", (2, 16, 5, 7), (24, 16, 1, 1), dict(padding=0)),  # axes merged: copies of (N, C, H * W) views
    ("conv3d", (1, 16, 5, 3, 7), (16, 16, 3, 1, 1), dict(padding=(1, 0, 0))),  # (2+1)D's temporal, merged
    ("conv2d", (2, 16, 10, 12), (24, 16, 3, 3), dict(padding=1, stride=2)),  # strided: a folded view, phases
]


@pytest.mark.parametrize("op,x_shape,w_shape,kwargs", RELAID_CASES)
def test_relayout_configs_copy_the_activations_once_and_match_torch(op, x_shape, w_shape, kwargs, monkeypatch):
    """A tuning candidate of an NC(D)HW problem (``Config.relayout``, offered with descriptors only) copies the
    activations each pass reads channels innermost, once per call, and runs the channels-last problem's
    descriptor tiles on the copies: forward (bias, relu), input gradient and weight gradient, against torch; the
    output keeps the caller's NC(D)HW format. The heuristic never relays out."""
    from test_conv import copies_made

    launched = []
    for cls, name in ((tma.Launch, "__call__"), (weight_grad.DescriptorLaunch, "launch")):
        real = getattr(cls, name)
        monkeypatch.setattr(cls, name, lambda *a, _f=real, **k: launched.append(1) or _f(*a, **k))
    dtype = torch.bfloat16
    x = torch.randn(x_shape, device=DEVICE, dtype=dtype)
    w = torch.randn(w_shape, device=DEVICE, dtype=dtype)
    b = torch.randn(w_shape[0], device=DEVICE, dtype=dtype)
    spec = conv_spec(op, int(op[-2]), x, w, b, kwargs.get("stride", 1), kwargs["padding"], kwargs.get("dilation", 1), 1)
    dy = torch.randn(spec.output_shape, device=DEVICE, dtype=dtype)
    x64, w64 = x.double().requires_grad_(), w.double().requires_grad_()
    y64 = getattr(F, op)(x64, w64, **kwargs)
    dx_ref, dw_ref = torch.autograd.grad(y64, (x64, w64), dy.double())
    y_ref = F.relu(y64 + b.double().view(-1, *[1] * (x.dim() - 2)))
    fmt = geometry.output_memory_format(x, w)
    passes = {  # kind: (the tensor the pass reads, the call with a config, the reference, activations it copies)
        "conv": (x, lambda c: dispatch.conv_forward(x, w, b, spec, "relu", False, c), y_ref, [x.numel()]),
        "conv_t": (dy, lambda c: dispatch.conv_grad_input(dy, w, spec, False, fmt, c), dx_ref, [dy.numel()]),
        "conv_wgrad": (x, lambda c: dispatch.conv_grad_weight(dy, x, spec, False, c), dw_ref, [dy.numel(), x.numel()]),
    }
    for kind, (read, call, ref, copied) in passes.items():
        problem = tuning.Problem.for_launch(kind, read, spec)
        configs = tuning.relaid(problem)
        assert problem.layout == "contiguous" and not tuning.tma_eligible(problem) and configs
        assert all(c.relayout and c.tile_h for c in configs) and set(configs) <= set(tuning.candidates(problem, tma=True))
        assert not tuning.heuristic(problem, False, 132, True).relayout
        assert not tuning.relaid(tuning.as_relaid(problem))  # channels-last problems read in place
        for cfg in configs[::4]:
            out = call(cfg)
            assert_close(out, ref, dtype)
            assert kind == "conv_wgrad" or out.is_contiguous()  # NC(D)HW out, as the caller's
            # copies in a warm call: the relaid activations (the weight only where a large problem copies it)
            assert [n for n in copies_made(lambda call=call, cfg=cfg: call(cfg)) if n != w.numel()] == copied, (kind, cfg)
        assert len(launched) == len(configs[::4]) * 2  # the descriptor kernels ran (twice: checked, then recorded)
        launched.clear()


@pytest.mark.parametrize("seed", range(12))
def test_random_strided_layers_take_descriptors_in_every_pass(seed, monkeypatch):
    """Seeded random channels-last layers (1-D to 3-D; kernel 1-4, stride 1-3, dilation 1-2, padding up to the
    kernel's reach; sizes that are and are not multiples of the stride): every pass, on a descriptor candidate,
    against float64 torch, and every eligible pass does take a descriptor kernel."""
    r = random.Random(seed)
    launched = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, _f=tma.Launch.__call__, **k: launched.append(1) or _f(*a, **k))
    monkeypatch.setattr(weight_grad.DescriptorLaunch, "launch",
                        lambda *a, _f=weight_grad.DescriptorLaunch.launch: launched.append(1) or _f(*a))
    nd = r.choice([1, 2, 3])
    kernel, stride, dilation = ([r.choice(v) for _ in range(nd)] for v in ([1, 2, 3, 4], [1, 2, 3], [1, 1, 2]))
    padding = [r.randint(0, (k - 1) * d) for k, d in zip(kernel, dilation)]
    sizes = [max(s, (k - 1) * d + 1) * r.randint(1, 3) + r.choice([0, 1]) for s, k, d in zip(stride, kernel, dilation)]
    op, args = f"conv{nd}d", dict(stride=stride, padding=padding, dilation=dilation)
    x = geometry.to_layout(torch.randn(r.randint(1, 3), r.choice([16, 32]), *sizes, device=DEVICE), "channels_last")
    w = torch.randn(r.choice([8, 16, 24]), x.shape[1], *kernel, device=DEVICE)
    xd, wd = x.double().requires_grad_(), w.double().requires_grad_()
    y = getattr(F, op)(xd, wd, **args)
    dy = geometry.to_layout(torch.randn(y.shape, device=DEVICE), "channels_last")
    dx, dw = torch.autograd.grad(y, (xd, wd), dy.double())
    spec = conv_spec(op, nd, x, w, None, stride, padding, dilation, 1)
    runs = {"conv": (x, lambda c: dispatch.conv_forward(x, w, None, spec, None, False, c), y),
            "conv_t": (dy, lambda c: dispatch.conv_grad_input(dy, w, spec, False, geometry.output_memory_format(x, w), c), dx),
            "conv_wgrad": (x, lambda c: dispatch.conv_grad_weight(dy, x, spec, False, c), dw)}
    eligible = 0
    for kind, (operand, call, ref) in runs.items():
        problem = tuning.Problem.for_launch(kind, operand, spec)
        if tuning.tma_eligible(problem):
            eligible += 1
            assert_close(call(r.choice(tuning.tma_candidates(problem))), ref)
    assert len(launched) == eligible


@pytest.mark.parametrize("op,x_shape,w_shape,kwargs", [
    ("conv2d", (2, 48, 7, 9), (24, 48, 3, 3), dict(padding=1)),
    ("conv2d", (2, 32, 10, 12), (24, 32, 3, 3), dict(padding=1, stride=2)),  # strided: the folded view
    ("conv3d", (1, 32, 3, 5, 6), (16, 32, 3, 3, 3), dict(padding=1)),
])
def test_split_descriptor_reductions_meet_in_the_kernel(op, x_shape, w_shape, kwargs, monkeypatch):
    """A split descriptor launch (outputs under one wave): each split runs its share of the (tap, chunk) steps, and
    the partial tiles meet in the kernel in split order: against torch (bias, relu), bitwise the same on a second
    call, the ticket counters back at zero; the unit-stride input gradient too; a strided input gradient (by
    phase) given a split config runs unsplit, and is right."""
    splits = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, _f=tma.Launch.__call__, **k: splits.append(a[0].splits) or _f(*a, **k))
    x = geometry.to_layout(torch.randn(x_shape, device=DEVICE), "channels_last")
    w, b = torch.randn(w_shape, device=DEVICE), torch.randn(w_shape[0], device=DEVICE)
    stride = kwargs.get("stride", 1)
    spec = conv_spec(op, int(op[-2]), x, w, b, stride, kwargs["padding"], 1, 1)
    ref = F.relu(getattr(F, op)(x.double(), w.double(), b.double(), **kwargs))
    problem = tuning.Problem.for_launch("conv", x, spec)
    assert {c.split_k for c in tuning.tma_candidates(problem)} == set(tuning.FORWARD_SPLITS)  # a small output
    base = tuning.tma_candidates(problem)[0]
    for split in (2, 3, 5):
        cfg = dataclasses.replace(base, split_k=split, block_k=16)
        first = run(op, x, w, b, cfg, "relu", **kwargs)
        assert_close(first, ref)
        assert torch.equal(first, run(op, x, w, b, cfg, "relu", **kwargs))
        launch = dispatch.forward_plan(x, w, b, spec, "relu", False, cfg).launch.launch
        assert not launch.counters(x.device).any()
    assert splits == [2, 2, 3, 3, 5, 5]
    xd = x.double().requires_grad_()
    y = getattr(F, op)(xd, w.double(), **kwargs)
    dy = geometry.to_layout(torch.randn(y.shape, device=DEVICE), "channels_last")
    (dx_ref,) = torch.autograd.grad(y, xd, dy.double())
    splits.clear()
    cfg = dataclasses.replace(tuning.tma_candidates(tuning.Problem.for_launch("conv_t", dy, spec))[0], split_k=3,
                              block_k=16)
    assert_close(dispatch.conv_grad_input(dy, w, spec, False, geometry.output_memory_format(x, w), cfg), dx_ref)
    assert splits == [1 if stride != 1 else 3]


TF32_CASES = [  # channels-last layers whose Hopper TF32 configs take patches of rows, spanning images, of one row,
    ("conv2d", (2, 64, 8, 8), (64, 64, 3, 3), dict(padding=1)),  # planes as rows (weight gradient)
    ("conv2d", (2, 32, 8, 16), (64, 32, 3, 3), dict(padding=1, stride=2)),
    ("conv1d", (2, 16, 64), (64, 16, 3), dict(padding=2, dilation=2)),
    ("conv3d", (2, 16, 2, 8, 8), (64, 16, 3, 3, 3), dict(padding=1)),
    ("conv2d", (2, 32, 8, 32), (64, 32, 3, 3), dict(padding=1, stride=2)),  # NCHW: rows dealt, 16-wide steps
]


@pytest.mark.parametrize("op,x_shape,w_shape,kwargs", TF32_CASES)
@pytest.mark.parametrize("layout", ["channels_last", "contiguous"])
def test_tf32_heuristic_configs_match_torch(op, x_shape, w_shape, kwargs, layout, monkeypatch):
    """fp32 multiplied in TF32 (torch's matmul precision "high"): the heuristic's Hopper configs, 32-wide steps on the
    descriptor kernels where 16-bit ones take them (32-position weight-gradient patches), compute the forward, input
    gradient and weight gradient, channels-last and NC(D)HW, against torch in float64 (the interpreter multiplies in
    IEEE: the tiles are what is tested)."""
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")
    launched = []
    monkeypatch.setattr(tma.Launch, "__call__", lambda *a, _f=tma.Launch.__call__, **k: launched.append(1) or _f(*a, **k))
    monkeypatch.setattr(weight_grad.DescriptorLaunch, "launch",
                        lambda *a, _f=weight_grad.DescriptorLaunch.launch: launched.append(2) or _f(*a))
    x = geometry.to_layout(torch.randn(x_shape, device=DEVICE, dtype=torch.float64), layout).requires_grad_()
    w = torch.randn(w_shape, device=DEVICE, dtype=torch.float64).requires_grad_()
    b = torch.randn(w_shape[0], device=DEVICE, dtype=torch.float64)
    y = getattr(F, op)(x, w, b, **kwargs)
    dy = geometry.to_layout(torch.randn_like(y), layout)
    ref_dx, ref_dw = torch.autograd.grad(y, (x, w), dy)
    xs, ws, bs, dys = (t.detach().float() for t in (x, w, b, dy))
    spec = conv_spec(op, int(op[-2]), xs, ws, bs, kwargs.get("stride", 1), kwargs.get("padding", 0),
                     kwargs.get("dilation", 1), 1)
    tol = "tf32" if DEVICE == "cuda" else torch.float32  # a GPU multiplies in TF32 here
    passes = {"conv": (xs, lambda cfg: run(op, xs, ws, bs, cfg, **kwargs), y),
              "conv_t": (dys, lambda cfg: dispatch.conv_grad_input(dys, ws, spec, False, geometry.output_memory_format(xs, ws),
                                                                  cfg),
                         ref_dx),
              "conv_wgrad": (xs, lambda cfg: dispatch.conv_grad_weight(dys, xs, spec, False, cfg), ref_dw)}
    expected = []
    for kind, (read, call, ref) in passes.items():
        problem = tuning.Problem.for_launch(kind, read, spec, tf32=geometry.allows_tf32(read.dtype))
        cfg = tuning.heuristic(problem, interpret=False, tma=True)
        half = tuning.heuristic(dataclasses.replace(problem, dtype="bfloat16", tf32=False), interpret=False, tma=True)
        assert problem.tf32 and bool(cfg.tile_h) == bool(half.tile_h) and cfg.block_k <= tuning.TF32_STEP, (kind, cfg)
        expected += [2 if kind == "conv_wgrad" else 1] * bool(cfg.tile_h)
        assert_close(call(cfg), ref, tol)
    assert launched == expected and (len(expected) >= 2 or layout == "contiguous")  # (NC(D)HW strided: no descriptors)
