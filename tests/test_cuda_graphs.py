"""CUDA graphs: once their plans and configs exist, tritonconv's ops are captured and replayed like torch's.

GPU only (the GPU slot, `benchmarks/gpu_session.sh`, runs this file on CUDA tensors); on the CPU the host-side
rules a capture needs are tested in ``test_host_path.py`` (no synchronisation on a warm call, no tuning
inside a capture)."""

import copy

import pytest
import torch

import tritonconv
from tritonconv import nn as tnn

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="captures CUDA graphs: needs a GPU")


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


class BasicBlock(torch.nn.Module):
    """A ResNet basic block: 3x3 conv, BN, ReLU, 3x3 conv, BN, residual add, ReLU."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c)
        self.conv2, self.bn2 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


def capture_training_step(model, static_x):
    """Warm up (plans built, configs chosen) outside the capture, then capture forward and backward once."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            model(static_x).square().mean().backward()
    torch.cuda.current_stream().wait_stream(side)
    model.zero_grad(set_to_none=True)
    static_x.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = model(static_x)
        static_y.square().mean().backward()
    return graph, static_y


def test_converted_block_trains_in_a_cuda_graph():
    """Forward and backward of a converted block captured once, replayed on new data: output and every
    gradient match the same block in fp64 through torch."""
    torch.manual_seed(0)
    ref = BasicBlock(32).cuda().eval()  # eval: BN uses its running statistics, the same in every replay
    ours = tnn.convert(copy.deepcopy(ref)).to(memory_format=torch.channels_last)
    static_x = torch.randn(4, 32, 17, 19, device="cuda").contiguous(memory_format=torch.channels_last)
    static_x.requires_grad_()
    graph, static_y = capture_training_step(ours, static_x)
    for _ in range(2):  # each replay on fresh data
        x = torch.randn(4, 32, 17, 19, device="cuda")
        with torch.no_grad():
            static_x.copy_(x)
        graph.replay()
        torch.cuda.synchronize()
        ref64 = copy.deepcopy(ref).double()
        x64 = x.double().requires_grad_()
        y64 = ref64(x64)
        y64.square().mean().backward()
        assert rel_err(static_y, y64) < 1e-5
        assert rel_err(static_x.grad, x64.grad) < 1e-5
        for (name, p), p64 in zip(ours.named_parameters(), ref64.parameters()):
            assert rel_err(p.grad, p64.grad) < 1e-5, name


OPS = {  # forward-only captures of the other op families
    "conv1d": lambda x, w: tritonconv.conv1d(x, w, padding=2, dilation=2),
    "depthwise conv3d": lambda x, w: tritonconv.conv3d(x, w, padding=1, groups=x.shape[1]),
    "conv_transpose2d": lambda x, w: tritonconv.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
}
SHAPES = {"conv1d": ((2, 16, 45), (24, 16, 5)), "depthwise conv3d": ((1, 8, 5, 9, 11), (8, 1, 3, 3, 3)),
          "conv_transpose2d": ((2, 16, 7, 9), (16, 8, 3, 3))}


@pytest.mark.parametrize("name", OPS)
def test_ops_replay_in_a_cuda_graph(name):
    op, (x_shape, w_shape) = OPS[name], SHAPES[name]
    torch.manual_seed(0)
    static_x = torch.randn(x_shape, device="cuda")
    w = torch.randn(w_shape, device="cuda")
    op(static_x, w)  # warm-up: the plan
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = op(static_x, w)
    x = torch.randn(x_shape, device="cuda")
    static_x.copy_(x)
    graph.replay()
    torch.cuda.synchronize()
    torch_op = {"conv1d": lambda x, w: torch.nn.functional.conv1d(x, w, padding=2, dilation=2),
                "depthwise conv3d": lambda x, w: torch.nn.functional.conv3d(x, w, padding=1, groups=x.shape[1]),
                "conv_transpose2d": lambda x, w: torch.nn.functional.conv_transpose2d(x, w, stride=2, padding=1,
                                                                                      output_padding=1)}[name]
    assert rel_err(static_y, torch_op(x.double(), w.double())) < 1e-5


def test_fused_2plus1d_replays_in_a_cuda_graph():
    torch.manual_seed(0)
    static_x = torch.randn(1, 8, 4, 9, 10, device="cuda")
    ws, wt = torch.randn(12, 8, 1, 3, 3, device="cuda"), torch.randn(16, 12, 3, 1, 1, device="cuda")

    def op(x):
        return tritonconv.conv2plus1d(x, ws, wt, padding=1, fused=True)

    op(static_x)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = op(static_x)
    x = torch.randn_like(static_x)
    static_x.copy_(x)
    graph.replay()
    torch.cuda.synchronize()
    mid = torch.nn.functional.conv3d(x.double(), ws.double(), padding=(0, 1, 1))
    ref = torch.nn.functional.conv3d(mid, wt.double(), padding=(1, 0, 0))
    assert rel_err(static_y, ref) < 1e-5


def test_a_routed_block_trains_in_a_cuda_graph():
    """tritonconv.enabled() on an unconverted block: forward and backward captured once (the routing decision and
    tritonconv's launches inside the capture), replayed on new data, equal to the same block in fp64 through torch."""
    torch.manual_seed(0)
    ref = BasicBlock(16).cuda().eval()
    ours = copy.deepcopy(ref)
    static_x = torch.randn(2, 16, 11, 13, device="cuda", requires_grad=True)
    with tritonconv.enabled() as counts:
        graph, static_y = capture_training_step(ours, static_x)
    assert counts.routed["conv2d"] == 6 and not counts.left
    x = torch.randn(2, 16, 11, 13, device="cuda")
    with torch.no_grad():
        static_x.copy_(x)
    graph.replay()
    torch.cuda.synchronize()
    ref64, x64 = copy.deepcopy(ref).double(), x.double().requires_grad_()
    y64 = ref64(x64)
    y64.square().mean().backward()
    assert rel_err(static_y, y64) < 1e-5 and rel_err(static_x.grad, x64.grad) < 1e-5


def test_a_tuning_compiles_its_candidates_in_threads(monkeypatch, tmp_path, compile_threads_seen):
    """On a GPU a first call's tuning compiles its candidates' kernels at once on worker threads
    (``_runtime.compile_ahead``: Triton's compile-only launches, ``JITFunction.warmup``), then times them; the tuned
    call is still torch's result. (A fused activation and a flipped kernel: variants other tests are unlikely to have
    compiled in this process.)"""
    from tritonconv import tuning

    monkeypatch.setenv("TRITONCONV_CACHE_DIR", str(tmp_path / "user"))
    monkeypatch.setenv("TRITONCONV_AUTOTUNE", "1")
    monkeypatch.setenv("TRITONCONV_AUTOTUNE_TOP", "3")
    tuning._memo.clear()
    x = torch.randn(3, 24, 13, 11, device="cuda", dtype=torch.float16)
    w = torch.randn(40, 24, 3, 3, device="cuda", dtype=torch.float16)
    before = tuning.stats["tuned"]
    y = tritonconv.conv2d(x, w, padding=1, activation="silu", flip=True)
    assert tuning.stats["tuned"] == before + 1
    ref = torch.nn.functional.silu(torch.nn.functional.conv2d(x.double(), w.double().flip(2, 3), padding=1))
    assert rel_err(y, ref) < 2e-3
    threads = compile_threads_seen
    assert len(threads) >= 2 and all(name.startswith("tritonconv-compile") for name in threads), threads


def test_a_model_tuned_ahead_calls_its_tuned_configs_and_tunes_nothing(monkeypatch, tmp_path):
    """``tune.ahead`` tunes every problem a training step of the model runs (found on fake tensors; candidates compiled
    on threads, ``jobs=0``), after which the step takes every config from the cache and tunes nothing, and still
    gives torch's gradients."""
    from tritonconv import cache, tune, tuning

    monkeypatch.setenv("TRITONCONV_CACHE_DIR", str(tmp_path / "user"))
    monkeypatch.setenv("TRITONCONV_AUTOTUNE", "1")
    cache.clear_memory()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(16, 24, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.ConvTranspose2d(24, 8, 2, stride=2)).cuda().to(memory_format=torch.channels_last)
    ref = copy.deepcopy(model).double()
    x = torch.randn(2, 16, 13, 11, device="cuda").contiguous(memory_format=torch.channels_last)
    tnn.convert(model)
    names = tune.ahead(model, x, jobs=0, top=2)
    assert len(names) == len(tune.model_problems(model, x, gpu=torch.cuda.get_device_name())) == 5
    before = tuning.stats.copy()
    model(x).square().mean().backward()
    assert tuning.stats["tuned"] == before["tuned"] and tuning.stats["heuristic"] == before["heuristic"]
    ref(x.double()).square().mean().backward()
    assert rel_err(model[0].weight.grad, ref[0].weight.grad) < 1e-3
