"""Every kernel variant compiles for Hopper (sm_90) and Ampere (sm_80) GPUs, on a machine without one.

The interpreter runs the kernels' Python, not Triton's compiler: a construct the compiler
rejects (a type mismatch between branches, an unsupported builtin) would pass every CPU
test and fail on the first GPU call. Here the launches of small CPU problems are recorded
and each distinct kernel specialisation is compiled to a cubin with Triton's own compiler
(the ptxas shipped in its wheel), with the GPU's constexprs (no interpreter bf16 upcast).
"""

import importlib

import pytest
import torch
import triton

import tritonconv
from tritonconv import _runtime, conv, tuning
from tritonconv._checks import conv_spec

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU every launch compiles for real")

conv2plus1d = importlib.import_module("tritonconv.conv2plus1d")  # the module (the package exports the function)
TYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
LAUNCH_OPTIONS = ("num_warps", "num_stages")


def record_launches(monkeypatch) -> list:
    """Make every interpreted launch also append (jit function, args, kwargs) to the returned list."""
    launches = []

    def getitem(self, device):
        interpreted = self.interpreted

        class Recorder:
            def __getitem__(_, grid):
                def launch(*args, **kwargs):
                    launches.append((self.compiled, args, kwargs))
                    return interpreted[grid](*args, **kwargs)

                return launch

        return Recorder()

    monkeypatch.setattr(_runtime.Kernel, "__getitem__", getitem)
    return launches


def compile_for(arch: int, fn, args, kwargs):
    """Compile ``fn`` for ``sm_<arch>`` as the GPU would for these arguments (signature from their types)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    values = dict(zip(fn.arg_names, args)) | {k: v for k, v in kwargs.items() if k not in LAUNCH_OPTIONS}
    values["UPCAST"] = False if "UPCAST" in values else None  # the interpreter-only bf16 workaround is off on GPUs
    signature, constexprs = {}, {}
    for param in fn.params:
        value = values[param.name]
        if param.is_constexpr:
            signature[param.name] = "constexpr"
            constexprs[param.name] = value
        elif isinstance(value, torch.Tensor):
            signature[param.name] = "*" + TYPES[value.dtype]
        else:
            signature[param.name] = "i32" if -(2**31) <= value < 2**31 else "i64"
    options = {k: kwargs[k] for k in LAUNCH_OPTIONS if k in kwargs}
    return triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                          target=GPUTarget("cuda", arch, 32), options=options)


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
    xb = rand(1, 20, 5, 7, dtype=torch.bfloat16).requires_grad_()  # tap by tap; bf16 tl.dot
    tritonconv.conv2d(xb, rand(4, 20, 3, 3, dtype=torch.bfloat16), padding=1, activation="silu").sum().backward()
    x32 = rand(2, 20, 9, dtype=torch.float32)  # fp32 ieee dot, split reduction, relu
    spec = conv_spec("conv1d", 1, x32, rand(5, 20, 3, dtype=torch.float32), None, 1, 1, 1, 1)
    conv.conv_forward(x32, rand(5, 20, 3, dtype=torch.float32), None, spec, "relu", False,
                      tuning.Config(16, 16, 16, split_k=2))
    xd = rand(2, 3, 9, 8, fmt=torch.channels_last).requires_grad_()  # depthwise, multiplier 2
    tritonconv.conv2d(xd, rand(6, 1, 3, 3).requires_grad_(), rand(6), padding=1, groups=3,
                      activation="relu").sum().backward()
    xs = rand(1, 3, 4, 6, 6)  # (2+1)D fused: mid and output activations, both biases
    tritonconv.conv2plus1d(xs, rand(5, 3, 1, 3, 3), rand(4, 5, 3, 1, 1), rand(5), rand(4), padding=1,
                           mid_activation="relu", activation="gelu", fused=True)


@pytest.mark.parametrize("arch", [90, 80])  # Hopper (wgmma), Ampere (mma)
def test_every_kernel_variant_compiles(monkeypatch, arch):
    pytest.importorskip("triton.backends.nvidia")
    monkeypatch.setattr(conv, "INT32_MAX", 2**40)  # record real launches; INT64 variants are added below
    # the GPU's default tiles (the interpreter's are far larger: slow to compile, never run on a GPU)
    monkeypatch.setattr(tuning, "choose", lambda problem, *_: tuning.heuristic(problem, interpret=False))
    fused_config = conv2plus1d.fused_config
    monkeypatch.setattr(conv2plus1d, "fused_config", lambda *sizes, interp: fused_config(*sizes, interp=False))
    launches = record_launches(monkeypatch)
    problems()
    variants = {}
    for fn, args, kwargs in launches:
        key = (fn.fn.__name__, tuple(sorted((k, str(v)) for k, v in kwargs.items())),
               tuple(str(a.dtype) for a in args if isinstance(a, torch.Tensor)))
        variants.setdefault(key, (fn, args, kwargs))
        if "INT64" in kwargs:  # the same launch with 64-bit offsets
            variants.setdefault(key + ("int64",), (fn, args, {**kwargs, "INT64": True}))
        if kwargs.get("DOT_PRECISION") == "ieee":  # fp32 under torch.set_float32_matmul_precision("high")
            variants.setdefault(key + ("tf32",), (fn, args, {**kwargs, "DOT_PRECISION": "tf32"}))
    names = {key[0] for key in variants}
    assert names == {"_conv_kernel", "_conv_weight_grad_kernel", "_depthwise_kernel",
                     "_depthwise_weight_grad_kernel", "_conv2plus1d_kernel"}, names
    for fn, args, kwargs in variants.values():
        compiled = compile_for(arch, fn, args, kwargs)
        assert compiled.asm["cubin"], fn.fn.__name__
