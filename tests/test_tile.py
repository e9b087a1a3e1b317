"""The kernels' shared index math (tritonconv._tile), run as a kernel, against plain Python."""

import pytest
import torch
import triton
import triton.language as tl
from hypothesis import given, settings
from hypothesis import strategies as st

from tritonconv import geometry
from tritonconv._runtime import device, kernel
from tritonconv._tile import keep_columns, position_tiles, positions, run_kind, shift_runs, tap, tile_positions


@kernel
@triton.jit
def _tap_kernel(i_ptr, ok_ptr, s, p, t, d, size, TRANSPOSED: tl.constexpr, B: tl.constexpr):
    o = tl.arange(0, B)
    i, ok = tap(o, s, p, t, d, size, TRANSPOSED)
    tl.store(i_ptr + o, i, mask=ok)
    tl.store(ok_ptr + o, ok.to(tl.int32))


@settings(max_examples=40, deadline=None)
@given(s=st.integers(1, 4), p=st.integers(0, 3), t=st.integers(0, 4), d=st.integers(1, 3), size=st.integers(1, 20),
       transposed=st.booleans())
def test_tap_relation(s, p, t, d, size, transposed):
    """Forward: i = o*s - p + t*d inside [0, size). Transposed: the i in [0, size) with i*s - p + t*d = o."""
    i = torch.full((32,), -99, dtype=torch.int32)
    ok = torch.empty(32, dtype=torch.int32)
    _tap_kernel[i.device][(1,)](i, ok, s, p, t, d, size, TRANSPOSED=transposed, B=32)
    for o in range(32):
        if transposed:
            want = [j for j in range(size) if j * s - p + t * d == o]
        else:
            want = [o * s - p + t * d] if 0 <= o * s - p + t * d < size else []
        assert bool(ok[o]) == bool(want), o
        if want:
            assert i[o] == want[0], o


@kernel
@triton.jit
def _positions_kernel(out_ptr, OD, OH, OW, B: tl.constexpr):
    m = tl.arange(0, B)
    nb, od, oh, ow = positions(m, OD, OH, OW)
    tl.store(out_ptr + m * 4, nb)
    tl.store(out_ptr + m * 4 + 1, od)
    tl.store(out_ptr + m * 4 + 2, oh)
    tl.store(out_ptr + m * 4 + 3, ow)


@pytest.mark.parametrize("sizes", [(1, 1, 7), (2, 3, 5), (3, 1, 2)])
def test_positions_unflatten_row_major(sizes):
    out = torch.empty(64, 4, dtype=torch.int32)
    _positions_kernel[out.device][(1,)](out, *sizes, B=64)
    grid = torch.arange(64).reshape(-1, 1)
    od, oh, ow = sizes
    expect = torch.cat([grid // (od * oh * ow), grid // (oh * ow) % od, grid // ow % oh, grid % ow], dim=1)
    assert torch.equal(out, expect.int())


@kernel
@triton.jit
def _tiles_kernel(out_ptr, count_ptr, M, OD, OH, OW, BLOCK: tl.constexpr, BLOCK_W: tl.constexpr):
    tile = tl.program_id(0)
    if tile == 0:
        tl.store(count_ptr, position_tiles(M, OW, BLOCK, BLOCK_W))
    nb, od, oh, ow, ok = tile_positions(tile, M, OD, OH, OW, BLOCK, BLOCK_W, False)
    m = ((nb * OD + od) * OH + oh) * OW + ow
    tl.atomic_add(out_ptr + m, 1, mask=ok)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), od=st.integers(1, 3), oh=st.integers(1, 5), ow=st.integers(1, 40),
       block=st.sampled_from([16, 32, 64]))
def test_position_tiles_cover_every_position_once(n, od, oh, ow, block):
    """Flat tiles and row tiles (NC(D)HW, ``geometry.row_block``) visit each output position exactly once; the
    host's tile count (the grid) is the kernel's."""
    m = n * od * oh * ow
    for block_w in {0, 8, block, geometry.row_block(m, ow, block)}:
        tiles = geometry.position_tiles(m, ow, block, block_w)
        seen = torch.zeros(m, dtype=torch.int32)
        count = torch.zeros(1, dtype=torch.int32)
        _tiles_kernel[seen.device][(tiles,)](seen, count, m, od, oh, ow, BLOCK=block, BLOCK_W=block_w)
        assert int(count) == tiles and torch.equal(seen, torch.ones_like(seen)), block_w


@device
def _checked(x, FAIL: tl.constexpr):
    tl.static_assert(not FAIL, "a planted failure")
    return x


@kernel
@triton.jit
def _checked_kernel(out_ptr, FAIL: tl.constexpr):
    tl.store(out_ptr, _checked(1, FAIL))


def test_helpers_inside_a_launch_run_without_patching_the_language_again(monkeypatch):
    """An interpreted launch patches ``triton.language`` once for its kernel; the helpers it calls
    (``tritonconv._runtime.DeviceFunction``) run in that patch, where Triton's interpreter patched the language again
    on every helper call (two thirds of an interpreted kernel's time). Called outside a launch, a helper still gets
    Triton's own patching; an error inside a helper is Triton's ``InterpreterError``, as before."""
    from triton.runtime import interpreter

    from tritonconv import _tile

    calls, scopes = [], []
    patch = interpreter._patch_lang
    monkeypatch.setattr(interpreter, "_patch_lang",
                        lambda fn: calls.append(fn.__name__) or scopes.append(patch(fn)) or scopes[-1])
    n, od, oh, ow, block = 2, 1, 3, 10, 16
    m = n * od * oh * ow
    tiles = geometry.position_tiles(m, ow, block, 8)
    seen, count = torch.zeros(m, dtype=torch.int32, device="cpu"), torch.zeros(1, dtype=torch.int32, device="cpu")
    _tiles_kernel[seen.device][(tiles,)](seen, count, m, od, oh, ow, BLOCK=block, BLOCK_W=8)
    assert torch.equal(seen, torch.ones_like(seen)) and int(count) == tiles
    # once, for the launch, however many helper calls its programs made (before it, the interpreter's probe, once)
    assert calls.count("_tiles_kernel") == 1 and set(calls) <= {"_tiles_kernel", "_loop_to"}, calls
    calls.clear()
    try:
        assert _tile.positions(17, 1, 2, 4) == (2, 0, 0, 1)
    finally:
        scopes[-1].restore()  # (Triton leaves a helper's own patch in place)
    assert calls == ["positions"]
    out = torch.zeros(1, dtype=torch.int32, device="cpu")
    _checked_kernel[out.device][(1,)](out, FAIL=False)
    assert int(out) == 1
    with pytest.raises(interpreter.InterpreterError, match="a planted failure"):
        _checked_kernel[out.device][(1,)](out, FAIL=True)


def test_row_block_pads_least_then_runs_widest():
    assert [geometry.row_block(32 * w, w, 64) for w in (7, 14, 28, 56, 112)] == [8, 16, 32, 8, 16]
    assert geometry.row_block(8 * 16000, 16000, 128) == 128  # a few long 1-D rows: whole tiles along them
    assert geometry.row_block(100, 3, 64) == 0  # rows under 4 wide: flat tiles


@kernel
@triton.jit
def _shift_runs_kernel(lo_ptr, hi_ptr, out_ptr, R: tl.constexpr, LEAD: tl.constexpr, WIDTH: tl.constexpr,
                       VEC: tl.constexpr):
    at = tl.arange(0, LEAD)[:, None] * WIDTH + tl.arange(0, WIDTH)[None, :]
    tl.store(out_ptr + at, shift_runs(tl.load(lo_ptr + at), tl.load(hi_ptr + at), R, LEAD, WIDTH, VEC))


@pytest.mark.parametrize("vec, r", [(vec, r) for vec in (2, 4, 8) for r in range(1, vec)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_shift_runs_reads_each_run_r_columns_on(vec, r, dtype):
    """Each run of ``vec`` columns, followed by the next run's (``hi``), read ``r`` columns on: x for a width tap whose
    shift is ``r`` columns past a run boundary (the weight gradient's, or a forward's reading its rows in runs)."""
    lo = torch.randperm(4 * 32).reshape(4, 32).to(dtype)
    hi = lo + 1000
    out = torch.full_like(lo, -1)
    _shift_runs_kernel[lo.device][(1,)](lo, hi, out, r, 4, 32, vec)
    both = torch.cat([lo.reshape(4, -1, vec), hi.reshape(4, -1, vec)], -1)
    assert torch.equal(out, both[..., r:r + vec].reshape(4, 32))


@kernel
@triton.jit
def _run_kind_kernel(kind_ptr, first, VEC: tl.constexpr, B: tl.constexpr):
    shift = first + tl.arange(0, B)
    tl.store(kind_ptr + tl.arange(0, B), run_kind(shift, VEC))


@pytest.mark.parametrize("vec", [1, 2, 4, 8])
def test_run_kind_on_the_device_is_the_host_rule(vec):
    """The weight gradient's kernel classifies each tap's shift as :func:`tritonconv.geometry.run_kind` does (the host
    chooses which loops to compile by it; a program whose way of reading has no loop would add nothing)."""
    kinds = torch.full((64,), -1, dtype=torch.int32)
    _run_kind_kernel[kinds.device][(1,)](kinds, -32, vec, 64)
    assert kinds.tolist() == [geometry.run_kind(shift, vec) for shift in range(-32, 32)]


@kernel
@triton.jit
def _keep_columns_kernel(a_ptr, out_ptr, OW, c, LEAD: tl.constexpr, WIDTH: tl.constexpr):
    col = tl.arange(0, WIDTH) % OW
    at = tl.arange(0, LEAD)[:, None] * WIDTH + tl.arange(0, WIDTH)[None, :]
    tl.store(out_ptr + at, keep_columns(tl.load(a_ptr + at), (col + c >= 0) & (col + c < OW), False))


@pytest.mark.parametrize("c", [-2, -1, 1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_keep_columns_zeroes_the_positions_whose_tap_leaves_their_row(c, dtype):
    """A planes-as-rows tile (channels x positions of rows of 7 read as one row) keeps the positions whose tap column
    ``col + c`` stays in the row and zeroes the others (the seams), every channel alike (the interpreter's path; a GPU
    ANDs register pairs, ``tests/test_compile.py``)."""
    a = torch.randn(4, 32).to(dtype)
    out = torch.full_like(a, float("nan"))
    _keep_columns_kernel[a.device][(1,)](a, out, 7, c, 4, 32)
    col = torch.arange(32) % 7
    keep = (col + c >= 0) & (col + c < 7)
    assert torch.equal(out, torch.where(keep[None, :], a, torch.zeros_like(a)))
