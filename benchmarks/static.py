"""Static kernel report: what Triton's compiler makes of each suite layer's kernels, no GPU needed.

    python -m benchmarks.static                     # sm_90, bf16, both layouts, forward + backward kernels
    python -m benchmarks.static --arch 80 --dtype fp16 --kinds conv
    python -m benchmarks.static --rows              # NC(D)HW row tiles beside the same tiles channels-last (pointer)
                                                    # or the model's step estimate (descriptors)
    python -m benchmarks.static --dtype fp32 --tf32  # fp32 products in TF32 (torch's matmul precision "high")
    python -m benchmarks.static --tiles             # every pointer tile the tuner holds, on a few layers (POINTER_STEP),
                                                    # and the FMA depthwise kernels (DEPTHWISE_ISSUE)

For every layer of ``benchmarks/shapes.json`` the kernel launches a GPU would make with its
default (heuristic) configs are recorded from CPU tensors, without running them, compiled for
``sm_<arch>`` with Triton's compiler and the ptxas shipped in its wheel, and ptxas's own
report is listed: registers per thread, spilled bytes, shared memory, and the matrix
instruction the dot became (``wgmma`` on Hopper, ``mma`` before it, ``fma`` for the depthwise
kernels), and from the SASS (``nvdisasm``) the main loop's instruction mix per iteration: math
instructions, TMA or asynchronous copies or plain loads (and their widest bytes), integer
instructions per math instruction; programs per SM from registers and shared memory.
Compile-time facts, not timings: they say whether a tile fits the register file and what a loop
iteration issues, not how fast it runs. The same recording serves ``tests/test_compile.py``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import functools
import itertools
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import triton

from tritonconv import _runtime, costmodel, geometry, shapes, tune, tuning
from tritonconv._descriptors import flat_shifts, plane_taps
from tritonconv.kernels import gemm, weight_grad

ROOT = Path(__file__).resolve().parent


@contextlib.contextmanager
def recording(execute: bool = True):
    """Record every kernel launch as ``(jit function, args, kwargs, grid)``; run it (interpreted) if ``execute``."""
    launches: list[tuple] = []
    getitem = _runtime.Kernel.__getitem__

    def recorder(self, device):
        def at(grid):
            def launch(*args, **kwargs):
                launches.append((self.compiled, args, kwargs, grid))
                if execute:
                    return self.interpreted[grid](*args, **kwargs)

            return launch

        return type("Launcher", (), {"__getitem__": lambda _, grid: at(grid)})()

    _runtime.Kernel.__getitem__ = recorder
    try:
        yield launches
    finally:
        _runtime.Kernel.__getitem__ = getitem


TARGET_OPTIONS = {"_conv_kernel": gemm.target_options, "_conv_weight_grad_kernel": weight_grad.target_options,
                  "_conv_weight_grad_tma_kernel": weight_grad.tma_target_options}
"""Per kernel with launch options that depend on the GPU, the function its launches take them from."""


MODEL = costmodel.device_for("NVIDIA H200")


def chosen(problem: tuning.Problem, tma: bool) -> tuning.Config:
    """The config a GPU call of ``problem`` takes untuned (:func:`tritonconv.costmodel.default`): for every arch with
    the H200's constants and 132 SMs, as the heuristic counted them before its weight gradients' splits were ranked."""
    return costmodel.default(problem, MODEL, tma)


def compile_for(arch: int, fn, args, kwargs):
    """Compile ``fn`` for ``sm_<arch>`` exactly as a GPU launch with these arguments would.

    Triton's launcher specialises the arguments first (an int equal to 1 becomes a constant,
    ints and pointers divisible by 16 are marked so, which lets loads vectorise); the same
    binder is built here for the target instead of the current device.
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    if "UPCAST" in kwargs:
        kwargs = {**kwargs, "UPCAST": False}  # the interpreter-only bf16 workaround is off on GPUs
    if "INLINE_PTX" in kwargs:
        kwargs = {**kwargs, "INLINE_PTX": True}  # (the interpreter runs none)
    if kwargs.get("DOT_PRECISION") == "ieee":  # fp32 products as a GPU multiplies them (TF32 where torch allows it)
        kwargs = {**kwargs, "DOT_PRECISION": geometry.dot_precision(torch.float32, interp=False)}
    options = TARGET_OPTIONS.get(fn.fn.__name__)
    if options:  # the launch options a GPU of that arch gets (recorded on the CPU: none)
        kwargs = options(kwargs, arch)
    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, specialization, options)
    return triton.compile(ASTSource(fn, signature, constexprs, attrs), target=target, options=options.__dict__)


def ptxas_report(ptx: str, arch: int) -> dict:
    """Registers, spills and static shared memory from ``ptxas -v`` on ``ptx``, and ``wgmma_serialized``: why ptxas
    serialized the kernel's Hopper MMAs (its "Potential Performance Loss" note, C7515: each MMA then waits for the one
    before to finish), or ``""``. Each PTX is assembled once a process (:func:`_ptxas_report`)."""
    return dict(_ptxas_report(ptx, arch))


@functools.lru_cache(maxsize=64)
def _ptxas_report(ptx: str, arch: int) -> dict:
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernel.ptx"
        src.write_text(ptx)
        log = subprocess.run([get_ptxas(arch).path, "-v", f"--gpu-name={sm_arch_from_capability(arch)}", str(src),
                              "-o", str(Path(tmp) / "kernel.o")], capture_output=True, text=True, check=True).stderr

    def number(pattern: str) -> int:
        found = re.search(pattern, log)
        return int(found.group(1)) if found else 0

    serialized = re.search(r"wgmma\.mma_async instructions are serialized due to (.*?)(?: in the function|$)", log, re.M)
    return {"registers": number(r"Used (\d+) registers"), "spill_store_bytes": number(r"(\d+) bytes spill stores"),
            "spill_load_bytes": number(r"(\d+) bytes spill loads"),
            "wgmma_serialized": serialized.group(1).strip() if serialized else ""}


MATH = ("HGMMA", "QGMMA", "HMMA", "QMMA", "IMMA", "DMMA", "FFMA", "DFMA", "HFMA2")  # QMMA: fp8 on Ada (sm_89)
INTEGER = {"IMAD", "IADD3", "IADD", "VIADD", "LEA", "SHF", "LOP3", "ISETP", "SEL", "IMNMX", "VIMNMX", "IABS", "SGXT",
           "PRMT", "BMSK", "FLO", "POPC"}
LOAD_BYTES = {"128": 16, "64": 8, "U16": 2, "S16": 2, "U8": 1, "S8": 1}


def sass(cubin: bytes, arch: int) -> list[tuple[int, str, str]]:
    """The kernel's SASS from ``nvdisasm`` (shipped with Triton's wheel): ``(address, opcode, text)`` per
    instruction, a branch's text holding its target's address, a guarded instruction's text starting with its
    predicate (``@P0``, ``@!P1``). Each cubin is disassembled once a process (:func:`_sass`)."""
    return list(_sass(cubin, arch))


@functools.lru_cache(maxsize=64)
def _sass(cubin: bytes, arch: int) -> tuple[tuple[int, str, str], ...]:
    from triton.backends.nvidia.compiler import get_ptxas

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        # -ndf: no dataflow analysis, half nvdisasm's time; it only names an indirect branch's (BRX) targets, which
        # nothing here reads (the listings are otherwise the same)
        listing = subprocess.run([str(Path(get_ptxas(arch).path).with_name("nvdisasm")), "-c", "-ndf", str(path)],
                                 capture_output=True, text=True, check=True).stdout
    out, labels, pending = [], {}, []
    for line in listing.splitlines():
        label = re.match(r"^(\.L_x_\d+):", line.strip())
        if label:
            pending.append(label.group(1))
            continue
        found = re.match(r"\s*/\*([0-9a-f]+)\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)(.*)", line)
        if found:
            address = int(found.group(1), 16)
            for name in pending:
                labels[name] = address
            pending = []
            out.append((address, found.group(3), (found.group(2) or "") + found.group(4)))
    return tuple((a, op, re.sub(r"\.L_x_\d+", lambda m: str(labels.get(m.group(0), -1)), text)) for a, op, text in out)


def longest_path(code: list[tuple[int, str, str]], first: int, last: int, skip: tuple[int, int]) -> int:
    """Instructions on the longest path through :func:`sass`'s range ``[first, last]`` from its first instruction to
    its last (one iteration of the loop whose back branch ends it), those in ``skip`` (a loop inside, counted apart)
    left out: a guarded branch goes either way, an unguarded one (or one guarded by ``@PT``) to its target only, a
    backward one inside is not taken. Where an iteration runs one of several branches (moves of different steps),
    their sum overstates it."""
    region = [(a, op, text) for a, op, text in code if first <= a <= last]
    at = {a: i for i, (a, _, _) in enumerate(region)}
    weight = [0 if skip[0] <= a <= skip[1] else 1 for a, _, _ in region]
    best = [-1] * len(region)
    best[0] = weight[0]
    for i, (a, op, text) in enumerate(region[:-1]):
        if best[i] < 0:
            continue
        guarded = text.startswith("@") and not text.startswith("@PT")
        target = re.search(r"\(\s*(-?\d+)\s*\)", text) if op.startswith("BRA") else None
        to = int(target.group(1)) if target else None
        following = [at[to]] if to is not None and a < to and to in at else []
        if guarded or not (op.startswith(("BRA", "EXIT"))) or (to is not None and to <= a):
            following.append(i + 1)
        for j in following:
            best[j] = max(best[j], best[i] + weight[j])
    return max(best[-1], 0)


def backward_loops(code: list[tuple[int, str, str]]) -> list[tuple[int, int]]:
    """The ``(first, last)`` addresses of each backward branch's range in :func:`sass`'s listing: the loops. A branch
    placed out of line, after the kernel's last ``EXIT``, back into its body (a Hopper wait's retry, whose range would
    span the rest of the kernel from inside a loop) is no loop of the listing's order and is left out."""
    last_exit = max((a for a, op, _ in code if op.startswith("EXIT")), default=None)
    loops = []
    for address, op, text in code:
        target = re.search(r"\(\s*(-?\d+)\s*\)", text)
        if op.startswith("BRA") and target and 0 <= int(target.group(1)) <= address and not (
                last_exit is not None and int(target.group(1)) < last_exit < address):
            loops.append((int(target.group(1)), address))
    return loops


def loop_census(cubin: bytes, arch: int) -> dict:
    """The instruction mix of the kernel's main loop: of the backward branches' ranges that hold math instructions
    (tensor-core MMAs, else FMAs) and no other such range, the one holding the most, per iteration: math instructions,
    TMA bulk copies (``UTMALDG``), asynchronous copies (``LDGSTS``) and plain global loads, with each kind's widest
    bytes, integer instructions (address and index arithmetic) and their count per math instruction; and the
    instructions of the loop around it outside it, if that loop holds no other math, on the longest path of one
    iteration (:func:`longest_path`: where the move is a branch of several, one of them) (``loop_outer_extra``: the
    aligned rows' move of the sum between width taps, with the main loop's prologue and epilogue); where that loop is unrolled
    (a strided forward's width taps, dealt: copies of the main loop, about as long, one after another), the
    instructions between one copy and the next, on average; ``loop_variants``, where
    the kernel holds more than one such loop (unrolled copies; the weight gradient's loops, one for each way its
    programs read ``x``), each one's instructions and plain global loads, in address order; ``loop_local``, the
    main loop's local-memory loads and stores (``LDL``, ``STL``: registers spilled and reloaded at every step; ptxas's
    spill count covers the whole kernel, where a spill outside the main loop costs once per tap or tile);
    ``loop_mma_register_a``, its Hopper MMAs whose first operand comes from registers (loaded from shared memory by
    ``LDSM`` first), and ``loop_mma_drains``, its waits for every MMA in flight to finish (the next one issues after
    the pipe drains; a pipelined loop waits for all but the last group); ``loop_drains``, those waits in each loop
    that holds the main loop's MMAs and no loop that does (the main loop, its unrolled copies, the weight gradient's
    loop for each way it reads ``x``), in address order (:func:`tritonconv.costmodel.drained` says which);
    ``epilogue_instructions``, those after the last loop holding math to the last ``EXIT`` (once a tile: the output's
    addresses, masks and stores, a split's partials met), its stores (``epilogue_stores``, ``STG``) and the widest
    one's bytes (``epilogue_store_bytes``: 16 where the output is stored in vectors)."""
    code = sass(cubin, arch)
    loops = backward_loops(code)
    def math_in(first: int, last: int) -> int:
        return sum(first <= a <= last and o.startswith(MATH) for a, o, _ in code)

    def inside(a: tuple[int, int], b: tuple[int, int]) -> bool:  # loop a strictly inside loop b
        return b[0] <= a[0] and a[1] <= b[1] and a != b

    best = None  # of the loops holding math and no other loop that does (a range around unrolled copies holds more)
    for first, last in loops:
        body = [(o, t) for a, o, t in code if first <= a <= last]
        math_ops = sum(o.startswith(MATH) for o, _ in body)
        if math_ops and not any(inside(m, (first, last)) and math_in(*m) for m in loops) and (
                best is None or (math_ops, -len(body)) > (best[0], -len(best[1]))):
            best = (math_ops, body, (first, last))
    if best is None:
        return {}
    math_ops, body, (first, last) = best
    around = [(a, b) for a, b in loops if inside((first, last), (a, b)) and math_in(a, b) == math_ops]
    outer = min(around, key=lambda ab: ab[1] - ab[0], default=None)  # the loop around the main loop, if any
    outer_extra = longest_path(code, *outer, (first, last)) if outer else 0
    def length(m: tuple[int, int]) -> int:
        return sum(m[0] <= a <= m[1] for a, _, _ in code)

    # copies of the main loop: its math, about its length, no math loop inside (a wait's retry branch spans more)
    copies = sorted(m for m in loops if math_in(*m) == math_ops and length(m) <= 1.25 * len(body)
                    and not any(inside(n, m) and math_in(*n) for n in loops)
                    and not any(inside(m, n) and math_in(*n) == math_ops for n in loops))
    disjoint = all(end < start for (_, end), (start, _) in zip(copies, copies[1:]))
    if not outer and len(copies) > 1 and disjoint:  # an unrolled loop around the main loop: its copies one after another
        span = sum(copies[0][0] <= a <= copies[-1][1] for a, _, _ in code)
        inside = sum(sum(a <= c <= b for c, _, _ in code) for a, b in copies)
        outer_extra = round((span - inside) / (len(copies) - 1))
    roots = [o.split(".")[0] for o, _ in body]
    def widest(root: str) -> int:  # bytes of the widest such instruction (4 where no width is named), 0 if none
        found = [o for o, _ in body if o.split(".")[0] == root]
        return max((LOAD_BYTES[part] for o in found for part in o.split(".")[1:] if part in LOAD_BYTES),
                   default=4 if found else 0)

    loads = [o for o, _ in body if o.split(".")[0] == "LDG"]
    integer = sum(r in INTEGER for r in roots)
    # an MMA whose first operand is registers (HGMMA's "Rd, Ra, gdesc[...]": loaded from shared memory by LDSM), and
    # the waits for every MMA in flight to finish (WARPGROUP.DEPBAR.LE gsb0, 0x0) before the loop's next one issues
    register_a = sum(o.startswith(MATH) and re.search(r"\bR\d+, R\d+, gdesc", t) is not None for o, t in body)
    def drain(o: str, t: str) -> bool:
        return o.startswith("WARPGROUP.DEPBAR") and re.search(r"gsb0,\s*0x0\b", t) is not None

    drains = sum(drain(o, t) for o, t in body)
    math_end = max(b for a, b in loops if math_in(a, b))  # the epilogue: after the last loop holding math, to the last EXIT
    last_exit = max((a for a, o, _ in code if o.startswith("EXIT")), default=code[-1][0])
    epilogue = [o for a, o, _ in code if math_end < a <= last_exit]
    stores = [o for o in epilogue if o.split(".")[0] == "STG"]
    innermost = [(a, b) for a, b in loops if sum(a <= c <= b and o.startswith(MATH) for c, o, _ in code) == math_ops
                 and not any(a <= x and y <= b and (x, y) != (a, b) for x, y in loops
                             if any(x <= c <= y and o.startswith(MATH) for c, o, _ in code))]
    variants = [[sum(a <= c <= b for c, _, _ in code), sum(a <= c <= b and o.split(".")[0] == "LDG" for c, o, _ in code)]
                for a, b in sorted(innermost)]
    loop_drains = [sum(a <= c <= b and drain(o, t) for c, o, t in code) for a, b in sorted(innermost)]
    return {"loop_math": math_ops, "loop_math_op": next(o.split(".")[0] for o, _ in body if o.startswith(MATH)),
            "loop_tma": roots.count("UTMALDG"), "loop_async_copies": roots.count("LDGSTS"),
            "loop_async_bytes": widest("LDGSTS"), "loop_loads": len(loads), "loop_load_bytes": widest("LDG"),
            "loop_integer": integer, "integer_per_math": round(integer / math_ops, 2),
            "loop_instructions": len(body), "loop_outer_extra": outer_extra,
            "loop_local": sum(r in ("LDL", "STL") for r in roots),
            "loop_mma_register_a": register_a, "loop_mma_drains": drains, "loop_drains": loop_drains,
            "loop_variants": variants if len(variants) > 1 else [],
            "epilogue_instructions": len(epilogue), "epilogue_stores": len(stores),
            "epilogue_store_bytes": max((LOAD_BYTES.get(o.split(".")[-1], 4) for o in stores), default=0)}


def fma_loops(cubin: bytes, arch: int) -> list[list[int]]:
    """The FMA kernels' innermost loops (the depthwise kernels'): ``[instructions, FFMAs]`` per iteration of each loop
    holding fp32 FMAs and no loop that does, in address order (one per way an NC(D)HW forward reads its rows,
    ``RUN_KINDS``; a loop's FFMAs may be several taps', its tap loops unrolled). :func:`fma_issue` sums them."""
    code = sass(cubin, arch)
    loops = backward_loops(code)
    def ffma(a: int, b: int) -> int:
        return sum(a <= c <= b and o.startswith("FFMA") for c, o, _ in code)

    innermost = [(a, b) for a, b in loops if ffma(a, b) and not any(
        a <= x and y <= b and (x, y) != (a, b) and ffma(x, y) for x, y in loops)]
    return [[sum(a <= c <= b for c, _, _ in code), ffma(a, b)] for a, b in sorted(innermost)]


def fma_issue(loops: list[list[int]]) -> float:
    """Warp instructions per 1000 multiply-adds of an FMA kernel's main loops (:func:`fma_loops`, each loop at equal
    weight: one per way of reading, each about as many taps): an FFMA is 32 multiply-adds a warp, 31.25 per 1000."""
    return 1000 * sum(i for i, _ in loops) / (32 * sum(f for _, f in loops))


def ctas_per_sm(arch: int, registers: int, shared: int, warps: int) -> int:
    """Programs resident per SM from ptxas's registers and the shared memory (:func:`tritonconv.costmodel.occupancy`,
    the rule the cost model applies to its estimates): 228 KiB of shared memory on sm_90, 164 KiB on sm_80."""
    return costmodel.occupancy(registers, shared, warps, (228 if arch >= 90 else 164) * 1024)


def instruction(ptx: str) -> str:
    return "wgmma" if "wgmma" in ptx else "mma" if "mma.sync" in ptx else "fma"


POSITION_AXES = {"_conv_kernel": {"a": 0, "store": 0}, "_conv_weight_grad_kernel": {"a": 1, "b": 0}}
"""Per GEMM kernel, the axis of output positions in its activation tiles: ``a``/``b`` the tiles loaded into
the variables of those names in the kernel's source, ``store`` its output tile."""


def tile_orders(ttgir: str) -> dict[str, tuple[tuple[int, ...], int]]:
    """Per tile a kernel loads (by source variable, ``a``/``b``; plain or asynchronous loads) or stores
    (``store``), from Triton's GPU IR: its thread order (the first axis is the one whose consecutive
    elements sit in consecutive lanes, where the compiler proved consecutive addresses: the accesses
    coalesce along it) and the elements each thread moves at once along that axis (its vector width). A tile stored
    flat (``Y_ACROSS``: the output tile transposed and flattened, positions fastest) is 1-D: its one axis, 0."""
    layouts = {name: (tuple(int(v) for v in order.split(",")), tuple(int(v) for v in per_thread.split(",")))
               for name, per_thread, order in re.findall(
                   r"^(#blocked\d*) = #ttg\.blocked<\{sizePerThread = \[([\d, ]+)\].*?order = \[([\d, ]+)\]", ttgir, re.M)}
    tiles = {}
    for line in ttgir.splitlines():
        found = re.search(r"tensor<\d+(?:x\d+)?x!tt\.ptr<[^>]+>, (#blocked\d*)>", line)
        if not found:
            continue
        name = re.match(r"\s*%([ab])_\d+ = (?:tt\.load|ttg\.async_copy_global_to_local) ", line)
        key = name.group(1) if name else "store" if re.match(r"\s*tt\.store ", line) else None
        if key and key not in tiles:
            order, per_thread = layouts[found.group(1)]
            tiles[key] = (order, per_thread[order[0]])
    return tiles


def activations_along(kernel: str, ttgir: str) -> str | None:
    """Which activation tiles of a GEMM kernel (:data:`POSITION_AXES`) run their lanes along output positions,
    e.g. ``"a+store"`` (``""``: none, all along channels); ``None`` for the other kernels."""
    axes = POSITION_AXES.get(kernel)
    if axes is None:
        return None
    tiles = tile_orders(ttgir)
    return "+".join(key for key, axis in axes.items() if key in tiles and tiles[key][0][0] == axis)


def vector_width(kernel: str, ttgir: str) -> int | None:
    """The elements a thread moves at once in the widest activation tile of a GEMM kernel (1: scalar)."""
    tiles = tile_orders(ttgir)
    widths = [tiles[key][1] for key in POSITION_AXES.get(kernel, {}) if key in tiles]
    return max(widths) if widths else None


EPILOGUES = {"_sum_partials_kernel"}
"""Element-wise launches after a pass's main kernel (the partials of a weight gradient of many splits added): no main
loop to census; ``tests/test_compile.py`` compiles them with every other variant."""


DTYPES = {**tune.DTYPES, "fp8": "float8_e4m3fn"}
"""The dtypes a report compiles: the tuner's, and fp8 (``tritonconv.fp8``: forwards only, depthwise layers refused)."""


def report(arch: int, dtypes: list[str], layouts: list[str], kinds: list[str], suite: dict,
           choose=None, jobs: int = 1) -> list[dict]:
    """One row per main kernel of each suite layer's pass (the default config for ``arch``, :func:`chosen`, or
    ``choose(problem, tma)``'s): ptxas's report, the main loop's census, programs per SM. ``jobs``: threads compiling
    and disassembling at once (Triton's compiler, ptxas and nvdisasm release the GIL); the rows keep the suite's
    order."""
    choose = choose or chosen
    todo = []
    for name, prob in tune.suite_problems(suite):
        for dtype, layout, kind in ((d, lay, k) for d in dtypes for lay in layouts for k in kinds):
            depthwise = shapes.is_depthwise(prob["input_shape"], prob["weight_shape"], prob["groups"])
            if dtype == "fp8" and (kind != "conv" or depthwise):
                continue
            if depthwise:
                kind = tuning.DEPTHWISE_KIND[kind]
            problem = tuning.Problem.of(kind, DTYPES[dtype], layout, **prob,
                                        tf32=geometry.allows_tf32(getattr(torch, DTYPES[dtype])))
            todo.append((name, dtype, problem, choose(problem, arch >= 90)))  # as a GPU of that arch chooses
    return compile_rows(arch, todo, jobs)


TILE_LAYERS = tuple((name, kind, "channels_last") for name, kind in (
    ("resnet50_l3_3x3", "conv"), ("c3d_conv3a", "conv"), ("tcn_k3", "conv"), ("downsample_k7_s4", "conv"),
    ("resnet50_l1_1x1", "conv"), ("telemetry_k9", "conv"), ("deeplab_3x3_d2", "conv_t"), ("r3d18_l1", "conv_t"),
    ("r3d18_l1", "conv_wgrad"), ("resnet50_l1_1x1", "conv_wgrad"), ("deeplab_3x3_d2", "conv_wgrad"),
    ("tcn_k3", "conv_wgrad"))) + tuple((name, kind, "contiguous") for name, kind in (
        ("resnet50_l2_3x3s2", "conv"), ("c3d_conv3a", "conv"), ("tcn_k3", "conv"), ("resnet50_l3_3x3", "conv_t")))
"""The suite layers, passes and layouts whose pointer tiles :func:`tile_report` compiles (``--tiles``): channels-last
ones 1-D, 2-D and 3-D, strided, 1 x 1 and dilated, forward, input gradient and weight gradient (what
:data:`tritonconv.costmodel.POINTER_STEP` is fitted on); NC(D)HW forwards and an input gradient reading their rows in
aligned runs (:data:`tritonconv.costmodel.ALIGNED_REGISTERS`)."""


FMA_LAYERS = (("mobilenet_dw_3x3", "contiguous"),)
"""The suite's depthwise layers whose FMA kernels :func:`tile_report` compiles (``--tiles``), every pass, with the tiles a
GPU's heuristic gives the FMA kernels (:func:`tritonconv.tuning.fma_depthwise`, :func:`~tritonconv.tuning.fma_depthwise_wgrad`)
where it does not run the banded ones: what :data:`tritonconv.costmodel.DEPTHWISE_ISSUE` restates, the suite report's
16-bit depthwise launches being banded."""


def tile_report(arch: int, dtype: str, suite: dict, jobs: int = 1) -> list[dict]:
    """:func:`report`'s rows for every pointer-kernel tile the tuner's candidates hold (:func:`tritonconv.tuning.candidates`:
    distinct tiles, warps and stages, one split count each) of :data:`TILE_LAYERS`'s problems: what the pointer
    kernels' loop issues per step, and the registers it holds, against the tile's shape; then the FMA depthwise kernels
    of :data:`FMA_LAYERS`."""
    probs = dict(tune.suite_problems(suite))
    todo = []
    for name, kind, layout in TILE_LAYERS:
        problem = tuning.Problem.of(kind, DTYPES[dtype], layout, **probs[name])
        seen = set()
        for cfg in tuning.candidates(problem, tma=arch >= 90):
            tile = (cfg.block_m, cfg.block_n, cfg.block_k, cfg.num_warps, cfg.num_stages)
            if not (cfg.tile_h or cfg.relayout or cfg.fold or tile in seen):
                seen.add(tile)
                todo.append((name, dtype, problem, cfg))
    for (name, layout), kind in itertools.product(FMA_LAYERS, ("conv_dw", "conv_dw_t", "conv_dw_wgrad")):
        problem = tuning.Problem.of(kind, DTYPES[dtype], layout, **probs[name])
        todo.append((name, dtype, problem, (tuning.fma_depthwise_wgrad if kind == "conv_dw_wgrad"
                                            else tuning.fma_depthwise)(problem)))
    return compile_rows(arch, todo, jobs)


def pointer_samples(tiles: list[dict], pairs: list[dict], suite: dict) -> list[tuple[str, tuple[float, ...], int]]:
    """``(kernel, terms, warp instructions a step)`` of every pointer kernel that spills no register in the tiles report
    (:func:`tile_report`) and on the channels-last side of the rows report (:func:`row_pairs`), ``terms`` its
    :func:`tritonconv.costmodel.pointer_step_terms`."""
    probs = dict(tune.suite_problems(suite))
    found = [(r["name"], r["kind"], r["dtype"], r["config"], r) for r in tiles if r["layout"] == "channels_last"] + [
        (r["name"], r["kind"], r["dtype"], r["config"], r["channels_last"]) for r in pairs]
    out = []
    for name, kind, dtype, config, census in found:
        if census["kernel"] in costmodel.POINTER_STEP and not census["spill_store_bytes"]:
            problem = tuning.Problem.of(kind, DTYPES[dtype], "channels_last", **probs[name])
            terms = costmodel.pointer_step_terms(problem, tuning.Config(**config))
            out.append((census["kernel"], terms, census["loop_instructions"]))
    return out


def pointer_step_fit(samples: list[tuple[str, tuple[float, ...], int]]) -> dict[str, tuple[float, ...]]:
    """Per pointer kernel, :data:`tritonconv.costmodel.POINTER_STEP`'s coefficients: the least squares of the relative
    error of their estimate over :func:`pointer_samples`' instructions, to two places (the fixed part to one)."""
    import numpy as np

    fit = {}
    for kernel in costmodel.POINTER_STEP:
        terms = np.array([t for k, t, _ in samples if k == kernel])
        counts = np.array([n for k, _, n in samples if k == kernel], dtype=float)
        coef = np.linalg.lstsq(terms / counts[:, None], np.ones(len(counts)), rcond=None)[0]
        fit[kernel] = (round(float(coef[0]), 1), *(round(float(c), 2) for c in coef[1:]))
    return fit


def pointer_step_ratios(samples: list[tuple[str, tuple[float, ...], int]], kernel: str,
                        coef: tuple[float, ...]) -> list[float]:
    """``kernel``'s estimates with ``coef`` over the census, per :func:`pointer_samples` sample of it."""
    return [sum(c * t for c, t in zip(coef, terms)) / n for k, terms, n in samples if k == kernel]


def compile_rows(arch: int, todo: list[tuple[str, str, tuning.Problem, tuning.Config]], jobs: int) -> list[dict]:
    """For each ``(layer name, dtype name, problem, config)``, a row per main kernel its launch compiles to (the
    rows in order): ptxas's report, the main loop's census, programs per SM."""
    cpu = torch.device("cpu")
    launched = []  # (name, dtype, problem, config, (fn, args, kwargs)) of every main kernel, in order
    for name, dtype, problem, cfg in todo:
        with recording(execute=False) as launches:
            tune.runner(problem, cpu)(cfg)
        launched += [(name, dtype, problem, cfg, (fn, args, kwargs)) for fn, args, kwargs, _ in launches
                     if fn.fn.__name__ not in EPILOGUES]

    def row(item) -> dict:
        name, dtype, problem, cfg, (fn, args, kwargs) = item
        compiled = compile_for(arch, fn, args, kwargs)
        ptx = compiled.asm["ptx"]
        found = {"name": name, "kind": problem.kind, "dtype": "tf32" if problem.tf32 else dtype,
                 "layout": problem.layout, "kernel": fn.fn.__name__, "config": vars(cfg),
                 "num_warps": kwargs.get("num_warps"), "shared_bytes": compiled.metadata.shared,
                 "instruction": instruction(ptx),
                 "activations_along": activations_along(fn.fn.__name__, compiled.asm["ttgir"]),
                 "vector_width": vector_width(fn.fn.__name__, compiled.asm["ttgir"]),
                 **ptxas_report(ptx, arch), **loop_census(compiled.asm["cubin"], arch)}
        found["ctas_per_sm"] = ctas_per_sm(arch, found["registers"], compiled.metadata.shared, kwargs.get("num_warps", 4))
        if fn.fn.__name__.startswith("_depthwise"):  # (the banded kernel's MMA loop: the census above)
            found.update(fma_loops=fma_loops(compiled.asm["cubin"], arch), **run_args(kwargs))
        return found

    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        rows = []
        for found in pool.map(row, launched):
            rows.append(found)
            print(f"{found['name']:>24} {found['kind']:>13} {dtype_of(found)} {found['layout']:>13} {found['kernel']:>30} "
                  f"regs={found['registers']:3d} spill={found['spill_store_bytes']:5d}B "
                  f"smem={found['shared_bytes'] // 1024:3d}KiB {found['instruction']} "
                  f"along={found['activations_along']} vec={found['vector_width']}", flush=True)
    return rows


def dtype_of(row: dict) -> str:
    """A row's operand dtype as the command line names it (TF32 rows: fp32)."""
    return "fp32" if row["dtype"] == "tf32" else row["dtype"]


def compiled_census(arch: int, problem: tuning.Problem, cfg) -> dict:
    """ptxas's report and the main loop's census of the main kernel ``problem``'s launch with ``cfg`` compiles to."""
    with recording(execute=False) as launches:
        tune.runner(problem, torch.device("cpu"))(cfg)
    fn, args, kwargs, _ = next(launch for launch in launches if launch[0].fn.__name__ not in EPILOGUES)
    compiled = compile_for(arch, fn, args, kwargs)
    seams = {"seam_loop": seam_loop(compiled.asm["cubin"], arch), "seams": kwargs["SEAMS"]} if kwargs.get("FLAT") else {}
    return {"kernel": fn.fn.__name__, **ptxas_report(compiled.asm["ptx"], arch), **loop_census(compiled.asm["cubin"], arch),
            **run_args(kwargs), **seams}


def seam_loop(cubin: bytes, arch: int) -> int:
    """Instructions of the weight gradient's seam loop, where it reads planes as rows (``FLAT``: the rows' seam
    positions read by address, their products taken out): the innermost loop holding math and plain global loads."""
    code = sass(cubin, arch)
    loops = backward_loops(code)
    def holds(first: int, last: int, root: str) -> bool:
        return any(first <= a <= last and o.startswith(root) for a, o, _ in code)

    found = [(a, b) for a, b in loops if any(holds(a, b, m) for m in MATH) and holds(a, b, "LDG")
             and not any((a, b) != (x, y) and a <= x and y <= b and any(holds(x, y, m) for m in MATH) for x, y in loops)]
    return max((sum(a <= c <= b for c, _, _ in code) for a, b in found), default=0)


def run_args(kwargs: dict) -> dict:
    """A GEMM launch's runs along its rows' taps (``RUN_VEC``/``RUN_KINDS``, the weight gradient's
    ``X_VEC``/``X_KINDS``) as ``run_vec``/``run_kinds``, where it has them."""
    vec, kinds = kwargs.get("RUN_VEC", kwargs.get("X_VEC")), kwargs.get("RUN_KINDS", kwargs.get("X_KINDS"))
    return {"run_vec": vec, "run_kinds": kinds} if vec and vec > 1 else {}


def pair_config(problem: tuning.Problem, arch: int) -> tuning.Config:
    """The config :func:`row_pairs` compiles for an NC(D)HW ``problem``: the default for ``arch`` (:func:`chosen`), or
    where that reads rows whole or x in runs on descriptors, the pointer rows a GPU without them runs."""
    cfg = chosen(problem, arch >= 90)
    return chosen(problem, False) if costmodel.nc_rows(problem, cfg) or costmodel.nc_runs(problem, cfg) else cfg


def row_pairs(arch: int, dtypes: list[str], kinds: list[str], suite: dict) -> list[dict]:
    """Per suite layer and pass whose NC(D)HW launch the pointer kernel tiles by rows (:func:`costmodel.by_rows`, the
    heuristic's config for ``arch``; where that reads rows whole on descriptors, :func:`nc_row_pairs`, the pointer
    rows a GPU without a TMA unit runs): the main loop's census of that launch and of the same tiles on the
    channels-last problem, and ``ratio``, the channels-last loop's instructions per math instruction over the rows'
    (the rows' issue rate relative to the channels-last pointer rate, where issue bound: what
    :data:`tritonconv.costmodel.ROW_ISSUE` holds until NC(D)HW rows are measured)."""
    rows = []
    for name, prob in tune.suite_problems(suite):
        if shapes.is_depthwise(prob["input_shape"], prob["weight_shape"], prob["groups"]):
            continue
        for dtype, kind in ((d, k) for d in dtypes for k in kinds if not k.startswith("conv_dw")):
            problem = tuning.Problem.of(kind, tune.DTYPES[dtype], "contiguous", **prob)
            cfg = pair_config(problem, arch)
            if not costmodel.by_rows(problem, cfg):
                continue
            by_rows = compiled_census(arch, problem, cfg)
            inner = compiled_census(arch, dataclasses.replace(problem, layout="channels_last"), cfg)
            aligned = costmodel.aligned(problem, cfg)
            per_math = runs_instructions_per_math(problem, by_rows) if "run_vec" in by_rows else \
                row_instructions_per_math(problem, cfg, by_rows) if aligned else \
                by_rows["loop_instructions"] / by_rows["loop_math"]
            ratio = (inner["loop_instructions"] / inner["loop_math"]) / per_math
            rows.append({"name": name, "kind": kind, "dtype": dtype, "config": vars(cfg), "aligned": aligned,
                         "rows": by_rows, "channels_last": inner, "ratio": round(ratio, 3)})
            print(f"{name:>24} {kind:>10} {dtype} instructions per math: rows{' (aligned)' * aligned} "
                  f"{per_math:.0f}, channels-last {inner['loop_instructions'] / inner['loop_math']:.0f} "
                  f"({ratio:.2f}x)", flush=True)
    return rows


def nc_row_pairs(arch: int, dtypes: list[str], kinds: list[str], suite: dict) -> list[dict]:
    """Per suite layer and pass whose NC(D)HW launch the descriptor kernel runs reading rows whole
    (:func:`costmodel.nc_rows`, the heuristic's config for ``arch``) or, the weight gradient, x's boxes in runs
    (:func:`costmodel.nc_runs`), or planes as rows (:func:`costmodel.nc_flat`): the main loop's census of that launch,
    the warp instructions it issues a step with the moves between width taps spread over the steps
    (:func:`row_instructions_per_math`; the runs' loops weighed by their taps, :func:`runs_instructions_per_math` and
    :func:`planes_instructions_per_math`), and ``ratio``, the cost model's estimate for a descriptor step of its
    tiles (:func:`tritonconv.costmodel.step_instructions`, fitted on every descriptor kernel) over that, at most 1:
    what :data:`tritonconv.costmodel.NC_ROWS_ISSUE`, :data:`~tritonconv.costmodel.NC_RUNS_ISSUE` and
    :data:`~tritonconv.costmodel.NC_FLAT_ISSUE` hold. The
    estimate, not the channels-last launch's census, so the share does not move when the channels-last kernels do."""
    rows = []
    for name, prob in tune.suite_problems(suite):
        if shapes.is_depthwise(prob["input_shape"], prob["weight_shape"], prob["groups"]):
            continue
        for dtype, kind in ((d, k) for d in dtypes for k in kinds):
            problem = tuning.Problem.of(kind, tune.DTYPES[dtype], "contiguous", **prob)
            cfg = chosen(problem, arch >= 90)
            runs = costmodel.nc_runs(problem, cfg)
            planes = costmodel.nc_flat(problem, cfg) and kind != "conv_wgrad"  # (the weight gradient's: runs)
            if not costmodel.nc_rows(problem, cfg) and not runs and not planes:
                continue
            nc = compiled_census(arch, problem, cfg)
            per_math = runs_instructions_per_math(problem, nc, cfg.block_k) if runs else \
                planes_instructions_per_math(problem, nc) if planes else row_instructions_per_math(problem, cfg, nc)
            per_step, estimate = per_math * nc["loop_math"], costmodel.step_instructions(problem, cfg)
            ratio = min(1.0, estimate / per_step)
            how = "nc_flat" if costmodel.nc_flat(problem, cfg) else "nc_runs" if runs else "nc_rows"
            rows.append({"name": name, "kind": kind, "dtype": dtype, "config": vars(cfg), "rows": nc, how: True,
                         "step_instructions": round(per_step, 1), "estimate": round(estimate, 1),
                         "ratio": round(ratio, 3)})
            label = {"nc_flat": "planes as rows", "nc_runs": "runs", "nc_rows": "rows whole"}[how]
            print(f"{name:>24} {kind:>10} {dtype} descriptor {label}: {per_step:.0f} warp instructions a step and "
                  f"warp, the model's estimate {estimate:.0f} ({ratio:.2f}x)", flush=True)
    return rows


def row_instructions_per_math(problem: tuning.Problem, cfg, census: dict) -> float:
    """An aligned-rows launch's instructions per math instruction: its main loop's, with the loop around it (the
    sum's move between width taps, ``loop_outer_extra``) spread over the main loop's steps, one move per width tap
    but the last (:func:`tritonconv.costmodel.issued`: a program's steps). Where the products are held apart
    (:func:`tritonconv.costmodel.apart`) every tap is charged a move: the kernel skips the one at shift 0 at run
    time, which a static count cannot see, so the figure overstates those launches' moves. By stride phase, a program
    loops over its phase's width taps only: each tap reaches one phase, so ``KW / s`` of them on average."""
    macs, ctas = costmodel.issued(problem, cfg)
    steps = macs / (ctas * cfg.block_m * cfg.block_n * cfg.block_k)
    taps = problem.weight_shape[-1] / (problem.stride[-1] if problem.by_phase else 1)
    moves = taps - (0 if costmodel.apart(problem, cfg) or costmodel.nc_rows(problem, cfg) == 2 else 1)
    return (census["loop_instructions"] * steps + census["loop_outer_extra"] * moves) / (census["loop_math"] * steps)


def planes_instructions_per_math(problem: tuning.Problem, census: dict) -> float:
    """A forward or input-gradient launch reading NC(D)HW planes as rows (:func:`tritonconv.costmodel.nc_flat`): its
    instructions per math instruction over its taps, each loop (one per width tap and offset some tap takes,
    :func:`tritonconv._descriptors.plane_taps`, in address order, as in the source) at the share of the taps that run
    it (each tap its channel chunks)."""
    run = problem.as_run()
    spec = tuning.as_forward(run)
    groups, table = plane_taps(spec, run.itemsize)
    depth, rows, period = math.prod(spec.weight_shape[2:-2]), spec.weight_shape[-2], table[-1]
    counts = [depth * len(range(first, rows, period)) for g, first in enumerate(table[:-1]) if groups >> g & 1]
    variants = census.get("loop_variants") or [[census["loop_instructions"], 0]]
    if len(variants) != len(counts):
        return census["loop_instructions"] / census["loop_math"]
    return sum(n * v[0] for n, v in zip(counts, variants)) / (sum(counts) * census["loop_math"])


def runs_instructions_per_math(problem: tuning.Problem, census: dict, patch: int = 0) -> float:
    """A launch reading each width tap's columns in runs (:func:`tritonconv.costmodel.tap_runs`): its instructions per
    math instruction over its programs and taps, each loop (one per way a tap reads, ``run_kinds``; in address order,
    as in the source) at the share of the taps that run it (:func:`tritonconv.geometry.tap_shifts`,
    :func:`tritonconv.geometry.run_kind`; planes read as rows, :func:`tritonconv._descriptors.flat_shifts`, their seam
    loop's instructions added, per plane, against the main loop's steps of ``patch`` positions)."""
    kinds = [k for k in range(census.get("run_vec", 1) + 1) if census.get("run_kinds", 1) >> k & 1]
    variants = census.get("loop_variants") or []
    if len(kinds) < 2 or len(variants) != len(kinds):
        return census["loop_instructions"] / census["loop_math"]
    run = problem.as_run()  # (the problem the kernel runs: axes merged, stems packed)
    shifts = geometry.tap_shifts(run.weight_shape[-1], run.stride[-1], run.padding[-1][0], run.dilation[-1],
                                 run.kind == "conv_t")
    if tuning.planes_as_rows(run):  # planes read as rows: each (height, width) tap's shift of the plane
        shifts = flat_shifts(run.spec)
    taps = [geometry.run_kind(t, census["run_vec"]) for t in shifts]
    main = sum(taps.count(k) * v[0] for k, v in zip(kinds, variants)) / (len(taps) * census["loop_math"])
    if not census.get("seam_loop"):
        return main
    # planes as rows: per plane, each tap whose column c leaves the rows runs the seam loop |c| * ceil(rows / SEAMS)
    # times beside the main loop's steps (ceil(positions / its patch))
    oh, ow = run.output_shape[-2:]
    columns = [abs(c) for c in geometry.tap_shifts(run.weight_shape[-1], 1, run.padding[-1][0], run.dilation[-1], False)]
    steps = -(-oh * ow // patch)
    seams = sum(c * -(-oh // census["seams"]) for c in columns) / len(columns)
    return main + seams * census["seam_loop"] / (steps * census["loop_math"])


def pass_shares(pairs: list[dict]) -> dict[str, float]:
    """Per pass, the median over the layers of :func:`row_pairs`' rows of the channels-last forward main loop's
    instructions per math instruction over that pass's (each with its own heuristic tiles), to two places: the pointer
    kernels' rate per pass as a share of the forward's, :data:`tritonconv.costmodel.PASS_ISSUE`."""
    per: dict[str, dict[str, float]] = {}
    for r in pairs:
        inner = r["channels_last"]
        per.setdefault(r["name"], {})[r["kind"]] = inner["loop_instructions"] / inner["loop_math"]
    return {kind: round(statistics.median(v["conv"] / v[kind] for v in per.values() if "conv" in v and kind in v), 2)
            for kind in costmodel.PASS_ISSUE}


CENSUS_TRITON = "3.9.0"
"""The Triton version whose committed reports the cost model's census constants restate (``tests/test_costmodel.py``)
and notebook 06 draws. The GPU machine's version (``benchmarks.costfit.SLOT_TRITON``) has its reports beside them."""


def report_path(arch: int, dtypes: list[str], out: Path, suffix: str = "", version: str | None = None) -> Path:
    """Where a report goes: :func:`report`'s, or with ``suffix="-rows"`` :func:`row_pairs`'s (``--rows``); of this
    process's Triton unless ``version`` names another."""
    return out / f"static-sm{arch}-triton{version or triton.__version__}-{'-'.join(dtypes)}{suffix}.jsonl"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.static", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", type=Path, default=ROOT / "shapes.json")
    p.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 (H100/H200), 80 (A100)")
    p.add_argument("--dtype", nargs="+", choices=list(DTYPES), default=["bf16"],
                   help="fp8: tritonconv.fp8's e4m3 forwards")
    p.add_argument("--layout", nargs="+", choices=["channels_last", "contiguous"], default=["channels_last", "contiguous"])
    p.add_argument("--kinds", nargs="+", choices=list(tuning.DEPTHWISE_KIND), default=list(tuning.DEPTHWISE_KIND))
    p.add_argument("--out", type=Path, default=ROOT / "results" / "static", help="where the JSON lines go")
    p.add_argument("--rows", action="store_true",
                   help="NC(D)HW row tiles against the same tiles channels-last (pointer) or the model's step estimate")
    p.add_argument("--tiles", action="store_true",
                   help="every pointer tile of the tuner's candidates on a few layers, and their step fit")
    p.add_argument("--tf32", action="store_true", help="fp32 products in TF32 (torch's matmul precision \"high\")")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="threads compiling at once (default: every CPU)")
    args = p.parse_args(argv)
    if args.rows and "fp8" in args.dtype:
        p.error("--rows compares 16- and 32-bit NC(D)HW row tiles; fp8 has no report of them")
    if args.tf32:
        torch.set_float32_matmul_precision("high")
    meta = {"what": "static compile report (no GPU, no timing)", "arch": f"sm_{args.arch}", "triton": triton.__version__,
            "torch": torch.__version__, "date": dt.date.today().isoformat()}
    args.out.mkdir(parents=True, exist_ok=True)
    if args.rows:
        suite = json.loads(args.suite.read_text())
        pairs = row_pairs(args.arch, args.dtype, [k for k in args.kinds if k in costmodel.ROW_ISSUE], suite)
        whole = nc_row_pairs(args.arch, args.dtype, [k for k in args.kinds if k in costmodel.NC_ROWS_ISSUE
                                                     or k in costmodel.NC_RUNS_ISSUE or k in costmodel.NC_FLAT_ISSUE],
                             suite)
        path = report_path(args.arch, args.dtype, args.out, "-rows")
        path.write_text("".join(json.dumps({**meta, **row}) + "\n" for row in pairs + whole))
        classes = (("", costmodel.ROW_ISSUE, [r for r in pairs if not r["aligned"]]),
                   (" aligned", costmodel.ALIGNED_ISSUE, [r for r in pairs if r["aligned"]]),
                   (" descriptor rows whole", costmodel.NC_ROWS_ISSUE, [r for r in whole if r.get("nc_rows")]),
                   (" descriptor runs", costmodel.NC_RUNS_ISSUE, [r for r in whole if r.get("nc_runs")]),
                   (" descriptor planes as rows", costmodel.NC_FLAT_ISSUE, [r for r in whole if r.get("nc_flat")]))
        for label, shares, members in classes:
            for kind in shares:
                ratios = [r["ratio"] for r in members if r["kind"] == kind]
                if ratios:
                    print(f"{kind}{label}: median ratio {statistics.median(ratios):.2f} over {len(ratios)} layers")
        print(f"pointer kernels' rate per pass, as a share of the forward's (channels-last): {pass_shares(pairs)}")
        print(f"wrote {path}")
        return 0
    if args.tiles:
        suite = json.loads(args.suite.read_text())
        rows = tile_report(args.arch, args.dtype[0], suite, jobs=args.jobs)
        path = report_path(args.arch, args.dtype[:1], args.out, "-tiles")
        path.write_text("".join(json.dumps({**meta, **row}) + "\n" for row in rows))
        pairs_path = report_path(args.arch, args.dtype[:1], args.out, "-rows")
        pairs = [json.loads(line) for line in pairs_path.read_text().splitlines()] if pairs_path.exists() else []
        samples = pointer_samples(rows, [r for r in pairs if "channels_last" in r], suite)
        fit = pointer_step_fit(samples)
        for kernel, coef in fit.items():
            ratios = pointer_step_ratios(samples, kernel, coef)
            print(f"{kernel}: POINTER_STEP {coef}, within 1.5x of the census on "
                  f"{sum(1 / 1.5 <= q <= 1.5 for q in ratios)} of {len(ratios)}")
        print(f"wrote {path}")
        return 0
    rows = report(args.arch, args.dtype, args.layout, args.kinds, json.loads(args.suite.read_text()), jobs=args.jobs)
    path = report_path(args.arch, args.dtype, args.out, "-tf32" * args.tf32)
    path.write_text("".join(json.dumps({**meta, **row}) + "\n" for row in rows))
    spills, reloads = [r for r in rows if r["spill_store_bytes"]], [r for r in rows if r.get("loop_local")]
    print(f"{len(rows)} kernels compiled for sm_{args.arch}; {len(spills)} spill registers, {len(reloads)} of them in "
          f"their main loop; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
