"""Tuning cache and config choice, on CPU: keys, round trip, atomic and concurrent writes, bad files."""

import dataclasses
import json
import math
import os
import subprocess
import sys
import textwrap
import warnings
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

import tritonconv
from tritonconv import _runtime, cache, dispatch, geometry, shapes, tuning
from tritonconv.kernels import banded
from tritonconv.tune import main as tune_main
from tritonconv.tune import runner

GPU = "Test GPU 80GB"  # a device name of our own: the GPU path's logic, driven from the CPU


def problem(kind="conv", n=2, size=9, c_in=4, c_out=6):
    return tuning.Problem.of(kind, "float32", "contiguous", (n, c_in, size, size), (c_out, c_in, 3, 3), 1, 1, as_run=False)


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITONCONV_CACHE_DIR", str(tmp_path / "user"))
    monkeypatch.setattr(cache, "shipped_dir", lambda: tmp_path / "shipped")
    cache.clear_memory()
    tuning.stats.clear()
    yield
    cache.clear_memory()


def fake_bench(fn):
    """No GPU timer here: 'time' is a fixed function of the config, so the winner is known."""
    fn()
    return 1.0


def test_key_is_stable_and_buckets_group_near_shapes():
    p = problem()
    assert p.key() == "conv|float32|contiguous|x=2x4x9x9|w=6x4x3x3|s=1x1|p=1,1x1,1|d=1x1|g=1"
    assert p.bucket() == "conv|float32|contiguous|c=4|w=6x4x3x3|s=1x1|d=1x1|g=1|rows~256"
    assert problem(n=3, size=8).bucket() == p.bucket()  # 192 rows -> 256, as 162
    assert problem(n=4).bucket() != p.bucket()  # 324 rows -> 512
    assert problem(c_out=8).bucket() != p.bucket()  # channels never share a bucket
    assert problem("conv_wgrad").bucket().startswith("conv_wgrad|")


def test_round_trip_exact_then_bucket():
    cfg = tuning.Config(32, 16, 16, num_warps=2, num_stages=4)
    path = cache.store(GPU, {problem().key(): cache.entry(problem(), cfg, 0.5)})
    assert path.parent == cache.user_dir() and path.name == cache.file_name(GPU)
    cache.clear_memory()
    assert cache.lookup(GPU, problem()) == (cfg, "cache")
    assert cache.lookup(GPU, problem(n=3, size=8)) == (cfg, "bucket")
    assert cache.lookup(GPU, problem(c_out=8)) is None
    assert cache.lookup("Another GPU", problem()) is None


def test_user_cache_overrides_shipped():
    shipped, mine = tuning.Config(64, 16, 16), tuning.Config(16, 16, 16)
    cache.store(GPU, {problem().key(): cache.entry(problem(), shipped, 1.0)}, cache.shipped_dir())
    assert cache.lookup(GPU, problem()) == (shipped, "cache")
    cache.store(GPU, {problem().key(): cache.entry(problem(), mine, 1.0)})
    assert cache.lookup(GPU, problem()) == (mine, "cache")


def test_shipped_host_timed_entries_are_kept_for_tuning_but_not_served():
    """A shipped winner timed call by call may have won by chance, against the kernels of its day: lookups pass over
    it, exact and bucket alike (the heuristic runs), while its file keeps it for tuning to redo first; a user's own
    host-timed entry is served."""
    host, graph = tuning.Config(64, 16, 16), tuning.Config(32, 32, 16)
    cache.store(GPU, {problem().key(): cache.entry(problem(), host, 1.0, "host"),
                      problem(c_out=8).key(): cache.entry(problem(c_out=8), graph, 1.0)}, cache.shipped_dir())
    assert cache.lookup(GPU, problem()) is None and cache.lookup(GPU, problem(n=3, size=8)) is None
    assert cache.lookup(GPU, problem(c_out=8)) == (graph, "cache")
    assert tuning.resolve(problem(), GPU, None, autotune=False) == tuning.heuristic(problem(), interpret=False)
    assert cache.timing_of(cache.read(cache.shipped_dir() / cache.file_name(GPU), GPU)[problem().key()]) == "host"
    cache.store(GPU, {problem().key(): cache.entry(problem(), host, 1.0, "host")})
    assert cache.lookup(GPU, problem()) == (host, "cache")


def test_lookup_reads_another_triton_versions_files_when_asked():
    """Predictions for a GPU machine read the cache of its Triton version, whatever Triton runs here."""
    cfg = tuning.Config(32, 16, 16)
    directory = cache.shipped_dir()
    directory.mkdir(parents=True)
    (directory / cache.file_name(GPU, "0.0.1")).write_text(json.dumps(
        {"format": cache.FORMAT, "device": GPU, "triton": "0.0.1",
         "entries": {problem().key(): cache.entry(problem(), cfg, 1.0)}}))
    assert cache.file_name(GPU, "0.0.1") != cache.file_name(GPU)
    assert cache.lookup(GPU, problem(), "0.0.1") == (cfg, "cache") and cache.lookup(GPU, problem()) is None


def test_atomic_write_keeps_old_file_on_failure(monkeypatch):
    old = tuning.Config(32, 16, 16)
    path = cache.store(GPU, {problem().key(): cache.entry(problem(), old, 1.0)})
    before = path.read_text()

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        cache.store(GPU, {problem(n=4).key(): cache.entry(problem(n=4), old, 1.0)})
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".tmp"] == []


@pytest.mark.parametrize("content,why", [
    ("{not json", "unreadable"),
    ('{"format": 1, "device": "Test GPU 80GB", "triton": "0.0.1", "entries": {}}', "triton"),
    ('{"format": 99, "device": "Test GPU 80GB", "triton": "%s", "entries": {}}', "format"),
    ('[1, 2, 3]', "not a tritonconv cache file"),
])
def test_bad_cache_file_warns_once_and_is_ignored(content, why):
    path = cache.user_dir() / cache.file_name(GPU)
    path.parent.mkdir(parents=True)
    path.write_text(content.replace("%s", __import__("triton").__version__))
    with pytest.warns(RuntimeWarning, match=why) as record:
        assert cache.lookup(GPU, problem()) is None
        cache._tables.clear()  # forget the table, keep the warned set: the file is read again
        assert cache.lookup(GPU, problem(n=3)) is None
    assert len(record) == 1
    # A call still gets a config: the heuristic.
    cfg = tuning.resolve(problem(), GPU, None, autotune=False)
    assert cfg == tuning.heuristic(problem(), interpret=False)
    # Writing over it replaces the bad file with a good one.
    cache.store(GPU, {problem().key(): cache.entry(problem(), cfg, 1.0)})
    cache.clear_memory()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.lookup(GPU, problem()) == (cfg, "cache")


def test_concurrent_writers_lose_nothing(tmp_path):
    script = textwrap.dedent("""
        import sys
        from tritonconv import cache, geometry, tuning
        who = int(sys.argv[1])
        for i in range(40):
            p = tuning.Problem.of("conv", "float32", "contiguous", (1 + who, 4, 5 + i, 5), (6, 4, 3, 3), as_run=False)
            cache.store("Test GPU 80GB", {p.key(): cache.entry(p, tuning.Config(16, 16, 16), float(i))})
    """)
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(who)], env=env) for who in (0, 1)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    data = json.loads((cache.user_dir() / cache.file_name(GPU)).read_text())
    assert len(data["entries"]) == 80


def test_interpreter_always_uses_the_heuristic():
    p = problem()
    cache.store(GPU, {p.key(): cache.entry(p, tuning.Config(16, 16, 16), 1.0)})
    cfg = tuning.choose(p, torch.device("cpu"), True, run=None)
    assert cfg == tuning.heuristic(p, interpret=True) and tuning.stats["interpreter"] == 1


@pytest.mark.parametrize("kind", tuning.KINDS)
def test_tuning_runs_real_kernels_and_rejects_wrong_configs(kind):
    """Every candidate runs (interpreted, tiny shape); one that computes a wrong result cannot win."""
    if kind.startswith("conv_dw"):
        p = tuning.Problem.of(kind, "float32", "contiguous", (1, 3, 5, 4), (6, 1, 2, 3), 2, (1, 0), groups=3, as_run=False)
    else:
        p = tuning.Problem.of(kind, "float32", "contiguous", (1, 3, 5, 4), (5, 3, 2, 3), 2, (1, 0), as_run=False)
    run = runner(p, torch.device("cpu"))
    configs = tuning.candidates(p)
    cheat = next(c for c in reversed(configs) if c != tuning.heuristic(p, False))  # (the heuristic is the reference)

    def run_or_cheat(cfg):
        out = run(cfg)
        return out + 1 if cfg == cheat else out

    def bench(fn):  # the cheat is "fastest", then the first candidate
        return 0.1 if fn.__defaults__[0] == cheat else 1.0 + configs.index(fn.__defaults__[0])

    best, ms = tuning.tune(p, run_or_cheat, bench, tuning.DEFAULT_SMEM, 132)
    assert best == configs[0] and ms == 1.0


def test_second_process_does_no_tuning():
    p = problem()
    run = runner(p, torch.device("cpu"))
    first = tuning.resolve(p, GPU, run, autotune=True, bench=fake_bench)
    assert tuning.stats["tuned"] == 1
    again = tuning.resolve(p, GPU, run, autotune=True, bench=fake_bench)  # same process, fresh lookup
    assert again == first and tuning.stats["cache"] == 1
    script = textwrap.dedent(f"""
        from tritonconv import tuning
        p = tuning.Problem.of("conv", "float32", "contiguous", (2, 4, 9, 9), (6, 4, 3, 3), 1, 1, as_run=False)
        def no_bench(fn):
            raise AssertionError("tuned again")
        cfg = tuning.resolve(p, {GPU!r}, lambda cfg: None, autotune=True, bench=no_bench)
        print(dict(tuning.stats), cfg)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{{'cache': 1}} {first}"


def test_tuning_in_the_library_times_the_ranked_shortlist_and_the_default(monkeypatch):
    """With a model, a tuning times the ``TRITONCONV_AUTOTUNE_TOP`` candidates it predicts fastest and the default
    config, in the candidates' order; ``TRITONCONV_AUTOTUNE_TOP=0`` (or no model) times them all."""
    for i, (top, model) in enumerate((("2", True), ("0", True), ("2", False))):
        p = problem(c_out=6 + i)  # channels differ: no cache or bucket hit between the three
        every, default = tuning.candidates(p), tuning.heuristic(p, False)
        predict = (lambda problem, cfg, every=every: every.index(cfg)) if model else None  # the first "fastest"
        expected = every[:2] + [default] if top == "2" and model else every
        assert default not in every[:2]
        monkeypatch.setenv("TRITONCONV_AUTOTUNE_TOP", top)
        timed = []

        def bench(fn, timed=timed):
            timed.append(fn.__defaults__[0])
            return 1.0

        tuning.resolve(p, GPU, runner(p, torch.device("cpu")), autotune=True, bench=bench, predict=predict)
        assert timed == [c for c in every if c in expected], (top, model)
    monkeypatch.setenv("TRITONCONV_AUTOTUNE_TOP", "all")
    with pytest.raises(ValueError, match="TRITONCONV_AUTOTUNE_TOP"):
        tuning.autotune_top()


def test_autotune_env_is_checked(monkeypatch):
    monkeypatch.setenv("TRITONCONV_AUTOTUNE", "yes")
    with pytest.raises(ValueError, match="TRITONCONV_AUTOTUNE"):
        tuning.autotune_enabled()
    monkeypatch.setenv("TRITONCONV_AUTOTUNE", "0")
    assert not tuning.autotune_enabled()


def test_cli_without_gpu(capsys):
    if torch.cuda.is_available():
        pytest.skip("this checks the CPU-only behaviour")
    assert tune_main(["--op", "conv1d", "--input", "2,4,50", "--weight", "8,4,3", "--padding", "same"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert tune_main(["benchmarks/shapes.json", "--dry-run", "--dtype", "bf16", "--layout", "channels_last"]) == 0
    out = capsys.readouterr()
    assert "resnet50_l1_3x3" in out.out and "r2plus1d18_l1:temporal" in out.out and "100%" in out.err
    cache.store(GPU, {problem().key(): cache.entry(problem(), tuning.Config(16, 16, 16), 0.25)})
    assert tune_main(["--show"]) == 0
    out = capsys.readouterr().out
    assert "Test GPU 80GB / triton" in out and problem().key() in out and "0.2500 ms" in out


@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 5, 4), (2, 3, 2, 5, 4)])
def test_layout_of_and_to_layout(shape):
    """Channels innermost is "channels_last" in every rank (1-D: NLC memory); other views are "contiguous"."""
    x = torch.randn(shape)
    last = geometry.to_layout(x, "channels_last")
    assert torch.equal(last, x) and last.stride()[1] == 1 and geometry.layout_of(last) == "channels_last"
    assert geometry.layout_of(x) == "contiguous" and geometry.layout_of(geometry.to_layout(last, "contiguous")) == "contiguous"
    if len(shape) > 3:  # torch's own channels-last formats agree
        fmt = {4: torch.channels_last, 5: torch.channels_last_3d}[len(shape)]
        assert last.is_contiguous(memory_format=fmt)
    assert geometry.layout_of(last[..., ::2]) == "contiguous"  # a strided view of it is not dense
    assert geometry.layout_of(torch.randn(2, 1, *shape[2:])) == "contiguous"  # one channel: no channel order


def test_problem_layout_is_the_callers(monkeypatch):
    """NCHW operands are copied channels-innermost for the GEMM kernels, but the config is chosen (and
    cached) for the caller's layout: the output is still written through NCHW strides."""
    seen = []
    choose = tuning.choose
    monkeypatch.setattr(tuning, "choose", lambda problem, *a: seen.append((problem.kind, problem.layout)) or
                        choose(problem, *a))
    x = torch.randn(2, 16, 6, 5, requires_grad=True)  # 16 channels: fewer pack (read channels-last, packed)
    w = torch.randn(3, 16, 3, 3, requires_grad=True)
    tritonconv.conv2d(x, w, padding=1).sum().backward()
    tritonconv.conv2d(x.detach().contiguous(memory_format=torch.channels_last), w.detach(), padding=1)
    assert seen == [("conv", "contiguous"), ("conv_t", "contiguous"), ("conv_wgrad", "contiguous"),
                    ("conv", "channels_last")]


def test_tune_all_resumes_orders_by_dtype_and_layout_and_stops_on_budget(tmp_path, capsys):
    """A tuning run groups (dtype, layout) in the order asked, skips what the cache holds, and a
    run out of budget leaves the rest for the next one; candidates compile in worker processes."""
    from tritonconv.tune import tune_all

    def tiny(dtype, layout):
        return tuning.Problem.of("conv", dtype, layout, (1, 2, 5, 4), (3, 2, 2, 3), 1, (1, 0), as_run=False)

    todo = [("a", tiny("float32", "channels_last")), ("b", tiny("float32", "contiguous")),
            ("c", tiny("float16", "channels_last"))]
    order = []

    def bench(fn):
        order.append(fn.__defaults__[0])
        return 1.0

    target = tmp_path / "shipped"
    assert tune_all(todo[:1], "cpu", GPU, target, bench, tuning.DEFAULT_SMEM, 132, jobs=2) == ["a"]
    n = len(tuning.candidates(todo[0][1]))
    assert (f"compiled {n} candidate kernels; 0 spill registers (not timed, but for the default's); 0 failed"
            in capsys.readouterr().out)
    assert tune_all(todo, "cpu", GPU, target, bench, tuning.DEFAULT_SMEM, 132, budget_s=0.0) == []  # resumed: 'a' skipped
    assert "2 left for a next run" in capsys.readouterr().out
    assert tune_all(todo[:2], "cpu", GPU, target, bench, tuning.DEFAULT_SMEM, 132) == ["b"]
    entries = cache.read(target / cache.file_name(GPU), GPU)
    assert set(entries) == {todo[0][1].key(), todo[1][1].key()}
    assert len(order) == 2 * len(tuning.candidates(todo[0][1]))  # each problem timed once, never re-tuned


def test_host_timed_entries_are_tuned_again_and_the_layers_furthest_behind_go_first(tmp_path):
    """An entry timed call by call (or written before entries said how) is not done: the next run tunes it,
    first; then the layers whose measured rows are furthest behind cuDNN; graph-timed entries stay."""
    from tritonconv.tune import behind_first, tune_all

    def tiny(c, layout="channels_last"):
        return tuning.Problem.of("conv", "float32", layout, (1, c, 5, 4), (3, c, 2, 3), 1, 0, as_run=False)

    todo = [("fast", tiny(2)), ("slow", tiny(3)), ("host", tiny(4)), ("graph", tiny(5)), ("new", tiny(6))]
    target = tmp_path / "shipped"
    old = cache.entry(todo[2][1], tuning.heuristic(todo[2][1], False), 0.1)
    del old["timing"]  # as the first GPU session's entries were written
    cache.store(GPU, {todo[2][1].key(): old, todo[3][1].key(): cache.entry(todo[3][1], tuning.heuristic(todo[3][1], False),
                                                                             0.1, "cuda_graph")}, target)
    rows = [{"name": n, "pass": "forward", "layout": "channels_last", "dtype": "float32", "speedup_vs_cudnn": v}
            for n, v in (("fast", 2.0), ("slow", 0.3), ("host", 1.5))]
    have = cache.read(target / cache.file_name(GPU), GPU)
    assert [n for n, _ in behind_first(todo, rows, have)] == ["host", "graph", "slow", "fast", "new"]
    done = tune_all(todo, "cpu", GPU, target, lambda fn: 1.0, tuning.DEFAULT_SMEM, 132, rows=rows)
    assert done == ["host", "slow", "fast", "new"]  # the graph-timed entry is done
    assert all(cache.timing_of(e) == "cuda_graph" for e in cache.read(target / cache.file_name(GPU), GPU).values())


def test_spilling_candidates_are_not_timed_unless_all_spill():
    from tritonconv.tune import not_to_time

    p = problem()
    configs = tuning.candidates(p)
    results = {p: dict(zip(configs, [False, "spills", True] + [True] * (len(configs) - 3)))}
    assert not_to_time(results, {p: configs}) == {p: {configs[0], configs[1]}}
    every = {p: dict.fromkeys(configs, "spills")}
    assert not_to_time(every, {p: configs}) == {}  # all spill: time them rather than none
    # the heuristic's config is timed though it spills (the baseline), unless it failed
    assert not_to_time(results, {p: configs}, {p: configs[1]}) == {p: {configs[0]}}
    assert not_to_time(results, {p: configs}, {p: configs[0]}) == {p: {configs[0], configs[1]}}


def test_configs_failing_in_a_compile_worker_are_not_timed(monkeypatch):
    """A config that fails (or faults the GPU) while precompiling is skipped by the timing loop."""
    p = problem()
    configs = tuning.candidates(p)
    timed = []

    def bench(fn):
        timed.append(fn.__defaults__[0])
        return 1.0

    best, _ = tuning.tune(p, runner(p, torch.device("cpu")), bench, tuning.DEFAULT_SMEM, 132, skip={configs[0]})
    assert configs[0] not in timed and len(timed) == len(configs) - 1 and best == configs[1]


@pytest.mark.parametrize("kind", tuning.KINDS)
def test_gpu_heuristic_takes_an_empty_batch(kind):
    """An empty batch (0 GEMM rows or an empty reduction) still gets a config on the GPU branch, which the
    interpreter never takes (found on an H200: the backward of an empty batch divided by zero tiles)."""
    depthwise = kind.startswith("conv_dw")
    weight = (4, 1, 3, 3) if depthwise else (6, 4, 3, 3)
    p = tuning.Problem.of(kind, "bfloat16", "channels_last", (0, 4, 9, 9), weight, 1, 1, groups=4 if depthwise else 1,
                          as_run=False)
    cfg = tuning.heuristic(p, interpret=False, sm_count=132)
    assert cfg.split_k >= 1 and cfg.block_m >= (1 if kind == "conv_dw_wgrad" else 16)  # its rows: taps, no dot


@given(tiles=st.integers(1, 600), most=st.integers(1, 300), sm_count=st.sampled_from((78, 108, 132)))
@settings(max_examples=300, deadline=None)
def test_weight_gradient_splits_fill_their_rounds(tiles, most, sm_count):
    """``tuning.wave_split``: at most the split count that rounds the target's programs up (and ``most``), at least
    half of it, and of those the one whose rounds of programs over the SMs take least time (each program ``1/s`` of
    a tile's work), the fewest on ties."""
    target = 2 * sm_count
    high = max(1, min(-(-target // tiles), most))
    split = tuning.wave_split(tiles, target, most, sm_count)
    span = range(-(-high // 2), high + 1)
    assert split in span

    def time(s):  # rounds of programs on every SM, each 1/s of a tile's work
        return Fraction(-(-tiles * s // sm_count), s)

    assert all(time(split) < time(s) or (time(split) == time(s) and split <= s) for s in span)


def test_weight_gradient_splits_end_on_a_full_round():
    """Nine taps' tiles on 132 SMs: 29 splits, 261 programs in two rounds of the SMs, where rounding 264 up gave 30 (270:
    a third round on 6 SMs; the cost model, ``python -m benchmarks.costfit``, rated the suite's weight gradients
    1.0-1.45x faster so, none slower); 144 tiles keep 2 (288 in three rounds, where one split takes two rounds for
    all the work)."""
    assert tuning.wave_split(9, 264, 1000, 132) == 29
    assert tuning.wave_split(144, 264, 64, 132) == 2
    assert tuning.wave_split(9, 264, 3, 132) == 3  # the reduction's own bound
    problem = tuning.Problem.of("conv_wgrad", "bfloat16", "channels_last", (32, 64, 56, 56), (64, 64, 3, 3), 1, 1)
    cfg = tuning.heuristic(problem, interpret=False, sm_count=132, tma=True)
    assert (cfg.block_m, cfg.block_n, cfg.split_k) == (64, 64, 29)


@pytest.mark.parametrize("shape, weight", [((32, 128, 17, 17), (128, 128, 1, 7)), ((8, 32, 64, 64, 64), (32, 32, 3, 3, 3)),
                                           ((32, 128, 56, 56), (128, 128, 3, 3))])
def test_descriptor_weight_gradient_splits_run_eight_steps(shape, weight):
    """A descriptor weight gradient's split leaves each program at least 8 of its own steps (``Config.block_k``
    positions: 64, or 256 on narrow tiles): ``anisotropic_1x7`` (9,248 positions) split 37 ways where its steps were
    counted at the pointer kernel's 32 positions, under 4 steps a program (its partials, 37 x 114,688 fp32 sums, moved
    more bytes than the layer's operands); now 18."""
    stride = 2 if shape[-1] == 56 else 1
    problem = tuning.Problem.of("conv_wgrad", "bfloat16", "channels_last", shape, weight, stride,
                                tuple(k // 2 for k in weight[2:]))
    cfg = tuning.heuristic(problem, interpret=False, sm_count=132, tma=True)
    assert cfg.tile_h, "the descriptor kernel"
    positions = problem.gemm[2]
    assert cfg.split_k == 1 or positions / (cfg.split_k * cfg.block_k) >= 8
    if weight[-2:] == (1, 7):
        assert cfg.split_k == 18


def test_tiles_fit_the_channels_they_cover():
    """The heuristic's GPU tiles pad a channel count by at most 15% where a power of two allows: R(2+1)D's
    144 / 288 / 576 mid channels take 32 / 64 / 128 (128-wide tiles issued up to 1.78x their work)."""
    assert [tuning.fit_pow2(c, 16, 128) for c in (144, 288, 576, 64, 96, 3)] == [32, 64, 128, 64, 32, 16]
    assert tuning.fit_pow2(81, 16, 64) == 32  # nothing within 15%: the least padding (96), the wider of equals
    problem = tuning.Problem.of("conv", "bfloat16", "channels_last", (8, 64, 16, 56, 56), (144, 64, 1, 3, 3), 1,
                                (0, 1, 1))
    assert tuning.heuristic(problem, interpret=False).block_n == 32


@pytest.mark.parametrize("kind", ["conv", "conv_t", "conv_wgrad"])
def test_wide_dtypes_step_few_channels(kind):
    """fp32 and fp64 GEMM tiles (FMA loops, fp64 MMAs: operands held in registers) step 16 channels in the
    heuristic's configs and at most 32 among the tuner's candidates, where 16-bit ones step 64 and more (fp32's 64-wide
    steps spilled kilobytes a thread in their main loops: tests/test_compile.py); TF32's step 32, descriptor
    candidates too, but for narrow weight-gradient tiles (``tuning.narrow_step``: at most 128)."""
    def steps(dtype: str, tf32: bool = False) -> tuple[int, set[int], int]:
        problem = tuning.Problem.of(kind, dtype, "channels_last", (8, 64, 28, 28), (128, 64, 3, 3), 1, (1, 1),
                                    tf32=tf32)
        tried = tuning.candidates(problem, tma=True)
        def narrow(c: tuning.Config) -> bool:  # a narrow descriptor weight-gradient tile (channels-last)
            return bool(c.tile_h) and kind == "conv_wgrad" and (max(c.block_m, c.block_n) <= 32 or c.block_m < 64 <= c.block_n)

        assert not tf32 or all(c.block_k <= 128 for c in tried if narrow(c))
        return (tuning.heuristic(problem, interpret=False).block_k,
                {c.block_k for c in tried if (not c.tile_h or tf32) and not narrow(c)}, sum(bool(c.tile_h) for c in tried))

    for dtype in ("float32", "float64"):
        default, tried, _ = steps(dtype)
        assert default == 16 and max(tried) == 32, (dtype, default, tried)
    _, tried, descriptors = steps("float32", tf32=True)
    assert max(tried) == 32 and descriptors and steps("float64")[2] == 0
    assert max(steps("bfloat16")[1]) >= 64


@pytest.mark.parametrize("kind", ["conv", "conv_t", "conv_wgrad"])
def test_tf32_problems_take_descriptor_tiles(kind):
    """fp32 multiplied in TF32 (``Problem.tf32``): on Hopper a unit-stride layer takes the descriptor kernels,
    channels-last and NC(D)HW, stepping 32 channels (positions in a weight gradient) where 16-bit tiles step 64; IEEE
    fp32 keeps the pointer kernel's 16-wide FMA tiles; TF32 before Hopper takes its 32-wide ones."""
    def chosen(dtype: str, tf32: bool, layout: str = "channels_last") -> tuning.Config:
        problem = tuning.Problem.of(kind, dtype, layout, (8, 64, 56, 56), (64, 64, 3, 3), 1, (1, 1), tf32=tf32)
        return tuning.heuristic(problem, interpret=False, tma=True)

    tf32, ieee, half = chosen("float32", True), chosen("float32", False), chosen("bfloat16", False)
    assert tf32.tile_h and half.tile_h and not ieee.tile_h
    assert (tf32.block_k, ieee.block_k, half.block_k) == (32, 16, 64)
    assert (tf32.block_m, tf32.block_n, tf32.patch(tf32.block_m)) == (half.block_m, half.block_n,
                                                                        half.patch(tf32.block_m)) or kind == "conv_wgrad"
    assert chosen("float32", True, "contiguous").tile_h and not chosen("float32", False, "contiguous").tile_h
    ampere = tuning.heuristic(dataclasses.replace(tuning.Problem.of(kind, "float32", "channels_last", (8, 64, 56, 56),
                                                                    (64, 64, 3, 3), 1, (1, 1)), tf32=True),
                              interpret=False, tma=False)
    assert not ampere.tile_h and ampere.block_k == 32  # no descriptors before Hopper


def test_tf32_is_part_of_a_problems_key():
    """TF32 and IEEE fp32 problems never share a cache entry; IEEE keys read as before TF32 had one; only fp32 has it."""
    ieee = problem()
    tf32 = dataclasses.replace(ieee, tf32=True)
    assert tf32.key() == ieee.key() + "|tf32" and tf32.bucket() == ieee.bucket() + "|tf32"
    assert tuning.Problem.from_key(tf32.key()) == tf32 and tuning.Problem.from_key(ieee.key()) == ieee
    with pytest.raises(ValueError, match="tf32 applies to float32"):
        dataclasses.replace(ieee, dtype="bfloat16", tf32=True)


def test_the_dispatch_asks_for_tf32_tiles_as_torch_allows(monkeypatch):
    """A float32 launch's problem is TF32 exactly when torch's matmul precision allows TF32 products."""
    seen = []
    choose = tuning.choose
    monkeypatch.setattr(tuning, "choose", lambda p, *a, **k: seen.append(p.tf32) or choose(p, *a, **k))
    x, w = torch.randn(1, 4, 5, 5), torch.randn(8, 4, 3, 3)
    dispatch.clear_plans()  # (a plan chooses its config once)
    before = torch.get_float32_matmul_precision()
    try:
        for precision in ("highest", "high", "medium"):
            torch.set_float32_matmul_precision(precision)
            tf32 = x.is_cuda and precision != "highest"  # (a GPU multiplies in TF32 then: cuDNN too)
            assert_close(tritonconv.conv2d(x, w, padding=1), torch.conv2d(x.double(), w.double(), padding=1),
                         "tf32" if tf32 else torch.float32)
        tritonconv.conv2d(x.bfloat16(), w.bfloat16(), padding=1)
    finally:
        torch.set_float32_matmul_precision(before)
    assert seen == [False, True, True, False]


def test_problems_are_rebuilt_from_their_cache_keys():
    """A cache entry's key gives back its problem (the cost model is fitted on tunings' timings by key)."""
    for kind in tuning.KINDS:
        depthwise = kind.startswith("conv_dw")
        for x, w, stride, pad, dil in (((2, 16, 9, 11), (32, 16, 3, 5), (2, 1), (1, 2), (1, 2)),
                                       ((1, 8, 5, 6, 7), (8, 8, 3, 1, 1), 1, (1, 0, 0), 1),
                                       ((3, 8, 37), (16, 8, 4), 3, "same", 1)):
            if depthwise:
                w = (x[1] * 2, 1, *w[2:])
            s = 1 if pad == "same" else stride
            for as_run in (True, False):
                p = tuning.Problem.of(kind, "bfloat16", "contiguous", x, w, s, pad, dil, x[1] if depthwise else 1,
                                      as_run=as_run)
                assert tuning.Problem.from_key(p.key()) == p


def test_a_tuning_keeps_what_it_timed_in_its_entry(monkeypatch):
    """Every config a tuning timed, with its milliseconds, is kept in the cache entry (``candidates``)."""
    monkeypatch.setenv("TRITONCONV_AUTOTUNE_TOP", "0")
    p = problem(c_out=10)
    every = tuning.candidates(p)
    bench = lambda fn: 1.0 + every.index(fn.__defaults__[0])  # noqa: E731
    cfg = tuning.resolve(p, GPU, runner(p, torch.device("cpu")), autotune=True, bench=bench)
    entry = cache.read(cache.user_dir() / cache.file_name(GPU), GPU)[p.key()]
    assert cfg == every[0] and [(geometry.Config.from_dict(c["config"]), c["ms"]) for c in entry["candidates"]] == [
        (c, 1.0 + i) for i, c in enumerate(every)]


def test_the_gpu_heuristic_plans_problems_beyond_this_machines_memory():
    """Choosing a descriptor config checks the kernels' 16-byte rules on meta stand-ins (sizes and strides only),
    so the heuristic plans a 4K-video volume of 10**12 elements as it plans a small one."""
    for kind in ("conv", "conv_t", "conv_wgrad"):
        p = tuning.Problem.of(kind, "bfloat16", "channels_last", (8, 64, 64, 2160, 3840), (64, 64, 3, 3, 3), 1, 1)
        assert math.prod(p.input_shape) > 10**11
        assert tuning.heuristic(p, False, 132, True).tile_h  # a descriptor config, checked, for every pass


@pytest.mark.parametrize("name,op,patches", [
    ("resnet50_l1_3x3", "conv2d", "planes"), ("deeplab_3x3_d2", "conv2d", "one row"), ("r3d18_l1", "conv3d", "planes"),
    ("resnet50_l3_3x3", "conv2d", "spanning"), ("c3d_conv3a", "conv3d", "planes"),
    ("r2plus1d18_l1", "conv2plus1d", "spanning"), ("r2plus1d18_l2", "conv2plus1d", "spanning")])
def test_weight_gradient_patches_of_one_row_where_rows_or_planes_fill_them(name, op, patches):
    """A channels-last weight gradient on Hopper takes descriptor patches of one row where its rows fill them within
    ``ROW_SLACK`` (64 wide), or reads its planes as rows where they fill them within it, seams counted, and better (56
    x 56 and 28 x 28 planes), its output channels keeping tiles of 64 or more (not R(2+1)D's 144 and 288 mid channels),
    else patches spanning rows and images (14 wide); NC(D)HW ones as before. The tuner's candidates hold every
    shape."""
    from tritonconv import shapes, tune

    suite = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "shapes.json").read_text())
    prob = dict(tune.suite_problems(suite))[name if op != "conv2plus1d" else f"{name}:spatial"]
    problem = tuning.Problem.of("conv_wgrad", "bfloat16", "channels_last", **prob)
    cfg = tuning.heuristic(problem, interpret=False, tma=True)
    assert tuning.one_row_patches(problem, cfg.block_k) == (patches == "one row")
    assert tuning.plane_patches(problem, cfg.block_k) == bool(cfg.planes) == (patches == "planes")
    assert (cfg.tile_b, cfg.tile_h) == (1, 1) if patches != "spanning" else cfg.tile_b * cfg.tile_h > 1
    assert cfg.block_m >= 64 or patches == "spanning"
    assert tuning.tma_padding(problem, cfg.block_k) <= (tuning.ROW_SLACK if patches != "spanning" else 1.0)
    shapes_offered = {(c.tile_b, c.tile_h, c.planes) for c in tuning.tma_candidates(problem)}
    assert (1, 1, 0) in shapes_offered and any(b * h > 1 for b, h, _ in shapes_offered)
    assert ((1, 1, 1) in shapes_offered) == tuning.can_read_planes(problem)
    nchw = tuning.Problem.of("conv_wgrad", "bfloat16", "contiguous", **prob)
    assert not tuning.one_row_patches(nchw, 64) and not tuning.plane_patches(nchw, 64)
    assert not shapes.is_depthwise(prob["input_shape"], prob["weight_shape"], prob["groups"])


def test_narrow_channel_tiles_take_wide_patches():
    """Descriptor forwards and input gradients whose channel tiles are 32 or narrower (and so run untransposed, the patch
    through registers) take 256 positions on 4 warps where that pads no more and leaves two waves of programs
    (``tuning.wide_patch``): the 3-D U-Net's 32 channels in both layouts and passes, in bf16, fp8 and TF32; not 64-wide
    tiles, not a small volume; the tuner's candidates hold them beside narrow tiles only."""
    unet = dict(input_shape=(2, 32, 64, 64, 64), weight_shape=(32, 32, 3, 3, 3), padding=1)
    for kind, layout, dtype, tf32 in [("conv", "channels_last", "bfloat16", False), ("conv_t", "contiguous", "bfloat16", False),
                                      ("conv", "contiguous", "float8_e4m3fn", False), ("conv", "channels_last", "float32", True)]:
        problem = tuning.Problem.of(kind, dtype, layout, **unet, tf32=tf32)
        cfg = tuning.heuristic(problem, interpret=False, tma=True)
        assert (cfg.block_m, cfg.block_n, cfg.num_warps) == (256, 32, 4) and cfg.tile_h, (kind, layout, dtype, cfg)
        assert tuning.tma_padding(problem, 256) == 1.0 and any(c.block_m == 256 for c in tuning.tma_candidates(problem))
    wide = tuning.Problem.of("conv", "bfloat16", "channels_last", (2, 64, 64, 64, 64), (64, 64, 3, 3, 3), padding=1)
    assert tuning.heuristic(wide, interpret=False, tma=True).block_m == 128  # 64 channels: transposed MMAs
    small = tuning.Problem.of("conv", "bfloat16", "channels_last", (1, 32, 16, 32, 32), (32, 32, 3, 3, 3), padding=1)
    assert tuning.heuristic(small, interpret=False, tma=True).block_m == 128  # 64 programs of 256: under two waves
    assert not any(c.block_m == 256 and (c.block_n > 32 or c.num_warps != 4) for c in tuning.tma_candidates(
        tuning.Problem.of("conv", "bfloat16", "channels_last", (2, 32, 64, 64, 64), (128, 32, 3, 3, 3), padding=1)))


def test_narrow_weight_gradients_step_256_positions():
    """16-bit weight gradients over channel tiles of at most 32 x 32 (``tuning.NARROW_WGRAD_STEP``) step 256 positions
    on the descriptor kernel, where the patches pad no more (the 3-D U-Net's 32 channels, both layouts), TF32 ones 128
    (``tuning.narrow_step``: the same bytes a row); 64 x 16 tiles (a stem's) keep theirs."""
    unet = dict(input_shape=(2, 32, 64, 64, 64), weight_shape=(32, 32, 3, 3, 3), padding=1)
    for layout in ("channels_last", "contiguous"):
        cfg = tuning.heuristic(tuning.Problem.of("conv_wgrad", "bfloat16", layout, **unet), interpret=False, tma=True)
        assert (cfg.block_m, cfg.block_n, cfg.block_k) == (32, 32, 256) and cfg.tile_h, cfg
    tf32 = tuning.Problem.of("conv_wgrad", "float32", "channels_last", **unet, tf32=True)
    assert tuning.heuristic(tf32, interpret=False, tma=True).block_k == 128 == tuning.narrow_step(tf32)
    # the tuner's descriptor candidates too: narrow TF32 tiles up to 128 positions a step, wide ones TF32_STEP
    steps = {(c.block_m, c.block_n, c.block_k) for c in tuning.tma_candidates(tf32)}
    assert (32, 32, 128) in steps and all(k <= 128 if max(m, n) <= 32 else k == tuning.TF32_STEP for m, n, k in steps)
    stem = tuning.Problem.of("conv_wgrad", "bfloat16", "channels_last", (32, 3, 224, 224), (64, 3, 7, 7), stride=2,
                             padding=3)
    cfg = tuning.heuristic(stem, interpret=False, tma=True)
    assert (cfg.block_m, cfg.block_k) == (64, 64), cfg


def test_a_tuning_compiles_every_candidate_at_once_before_timing_any(monkeypatch):
    """``tune`` runs the heuristic's config and every candidate it times once inside ``_runtime.compile_ahead`` (each
    launch compiles its kernel, on Triton's executor, and launches nothing), then runs and times them in turn; a
    config that fails inside it is still tried after (and skipped where it fails again)."""
    p = problem(c_out=7)
    every, first = tuning.candidates(p), tuning.heuristic(p, False)
    broken = every[1]
    seen = []

    def run(cfg):
        ahead = _runtime._ahead.get()
        seen.append((cfg, ahead))
        if cfg == broken:
            raise RuntimeError("out of resources")
        return torch.ones(3)

    best, _ = tuning.tune(p, run, lambda fn: 1.0, tuning.DEFAULT_SMEM, 132)
    compiled = [cfg for cfg, ahead in seen if ahead]
    assert compiled == [first, *every] and all(not ahead for _, ahead in seen[len(compiled):])
    assert [cfg for cfg, _ in seen[len(compiled):]] == [first, *every]  # the reference, then each in turn
    assert best == every[0]


def test_compile_ahead_compiles_launches_and_runs_none(monkeypatch):
    """Inside ``compile_ahead`` a compiled kernel's launch goes to ``JITFunction.warmup`` (with its grid, under
    Triton's compile-only executor mode) and launches nothing, so no launch site keeps it as launched; an interpreted
    launch does nothing. Outside, launches run."""
    from triton.runtime import _async_compile

    kernel = _runtime.Kernel(_fill_ones())
    y = torch.zeros(8)
    with _runtime.compile_ahead():
        kernel[y.device][(1,)](y, 8, BLOCK=8)
    assert torch.equal(y, torch.zeros(8))  # the interpreted launch did nothing
    kernel[y.device][(1,)](y, 8, BLOCK=8)
    assert torch.equal(y, torch.ones(8))
    warmed = []

    class Jit:  # a compiled kernel as a GPU has it
        def warmup(self, *args, grid, **kwargs):
            warmed.append((args, grid, kwargs, _async_compile.active_mode.get() is not None))

    monkeypatch.setattr(_runtime, "interpreting", lambda device: False)
    kernel.compiled = Jit()
    site = _runtime.Direct(kernel, (8,), {"BLOCK": 8})
    with _runtime.compile_ahead(workers=2):
        assert site(torch.device("cuda"), (3,), y) is None
    options = {**_runtime.COMPILE_OPTIONS, "BLOCK": 8}  # the call site's, after the options every launch asks for
    assert warmed == [((y, 8), (3,), options, True)] and not site.ready(torch.device("cuda"))
    import concurrent.futures  # inside a caller's own compile-only mode (one at a time), its executor compiles them
    with concurrent.futures.ThreadPoolExecutor(1) as pool, _async_compile.AsyncCompileMode(pool) as theirs:
        with _runtime.compile_ahead():
            site(torch.device("cuda"), (2,), y)
        assert _async_compile.active_mode.get() is theirs and not _runtime._ahead.get()
    assert len(warmed) == 2 and warmed[-1][1] == (2,)
    monkeypatch.setattr(_runtime, "AsyncCompileMode", None)  # a Triton without that mode: compiled in turn, not launched
    with _runtime.compile_ahead():
        site(torch.device("cuda"), (4,), y)
    assert len(warmed) == 3 and warmed[-1][1:] == ((4,), options, False) and not site.ready(torch.device("cuda"))


def _fill_ones():
    import triton
    import triton.language as tl

    @triton.jit
    def fill_ones(y_ptr, n, BLOCK: tl.constexpr):
        offs = tl.arange(0, BLOCK)
        tl.store(y_ptr + offs, tl.full((BLOCK,), 1.0, tl.float32), mask=offs < n)

    return fill_ones


def test_first_calls_tuning_are_announced_once_per_gpu(monkeypatch):
    """A process's first tuning on a GPU warns (``TuningWarning``) that first calls tune, naming the cache and how to
    tune ahead or not at all; later tunings on it say nothing."""
    monkeypatch.setattr(tuning, "_announced", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for c_out in (9, 10):
            p = problem(c_out=c_out)
            tuning.resolve(p, GPU, runner(p, torch.device("cpu")), autotune=True, bench=fake_bench)
        p = problem(c_out=11)
        tuning.resolve(p, "Other GPU", runner(p, torch.device("cpu")), autotune=True, bench=fake_bench)
    said = [str(w.message) for w in caught if issubclass(w.category, tuning.TuningWarning)]
    assert len(said) == 2 and GPU in said[0] and "Other GPU" in said[1]
    assert str(cache.user_dir()) in said[0] and "python -m tritonconv.tune" in said[0] and "TRITONCONV_AUTOTUNE=0" in said[0]


def test_compile_ahead_compiles_tritonconvs_kernels_on_threads_through_tritons_own_path(monkeypatch,
                                                                                      compile_threads_seen):
    """Triton's real compile-only path, without a GPU: a stand-in CUDA driver (an sm_90 target, device 0) and launches
    taken as compiled. A tuning's candidates run inside ``compile_ahead`` go through ``JITFunction.warmup`` and
    Triton's ``AsyncCompileMode``: every kernel compiles on the pool's threads, none launches, and leaving the block
    leaves them in the kernel's cache, where the timing loop's launches find them."""
    from triton.backends.compiler import GPUTarget
    from triton.runtime import driver
    from triton.runtime._async_compile import AsyncCompileMode

    from tritonconv.kernels import gemm

    class StandIn:  # what JITFunction.warmup asks of the driver
        def get_current_device(self):
            return 0

        def get_current_stream(self, device=None):
            return 0

        def get_current_target(self):
            return GPUTarget("cuda", 90, 32)

    jit = gemm._conv_kernel.compiled
    monkeypatch.setattr(driver, "_active", StandIn())
    monkeypatch.setattr(jit, "device_caches", type(jit.device_caches)(jit.device_caches.default_factory))
    monkeypatch.setattr(_runtime, "interpreting", lambda device: False)
    # a compile that fails raises here, where a tuning leaves it to fail again, and be reported, where it launches
    monkeypatch.setattr(_runtime, "AsyncCompileMode", lambda pool, ignore_errors: AsyncCompileMode(pool))
    p = tuning.Problem.of("conv", "float16", "channels_last", (2, 16, 7, 9), (32, 16, 3, 3), 1, 1, as_run=False)
    configs = [tuning.heuristic(p, False), tuning.Config(64, 32, 32, group_m=1, num_warps=4, num_stages=2)]
    assert configs[0] != configs[1]
    run = runner(p, torch.device("cpu"))
    with _runtime.compile_ahead(workers=2):
        for cfg in configs:
            run(cfg)
    threads = compile_threads_seen
    assert len(threads) == 2 and all(name.startswith("tritonconv-compile") for name in threads), threads
    compiled = list(jit.device_caches[0][0].values())
    kept = [(k.metadata.num_warps, k.metadata.num_stages, k.metadata.shared) for k in compiled]
    assert len(compiled) == 2 and all(k.metadata.target.arch == 90 for k in compiled), (configs, kept)


def test_compile_threads_parse_kernels_one_at_a_time():
    """Before Python 3.12 ``ast.parse`` is not safe across threads (python/cpython#106905): threads parsing tritonconv's
    kernels (Triton's ``JITFunction.parse``, which every compile runs) while the collector runs finalizers raised
    ``SystemError: AST constructor recursion depth mismatch`` (on 3.11.7, about 40 of 900 parses; it failed the
    threaded compile test now and then). ``compile_ahead`` has them parse one at a time."""
    import gc
    import threading

    from tritonconv.kernels import gemm

    with _runtime.compile_ahead(workers=2):
        pass

    class Finalized:  # a cycle the collector frees, running Python code in whichever thread it interrupts
        def __init__(self):
            self.me = self

        def __del__(self):
            sum(range(50))

    errors = []

    def parse():
        garbage = []
        for _ in range(100):
            try:
                gemm._conv_kernel.compiled.parse()
            except SystemError as err:
                errors.append(err)
            garbage = garbage[-20:] + [[Finalized() for _ in range(200)]]

    threads = [threading.Thread(target=parse) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.collect()
    assert not errors, errors[:2]


def test_compile_threads_share_the_cpus_among_local_processes(monkeypatch):
    """``compile_ahead``'s threads: ``TRITONCONV_COMPILE_THREADS``, else the process's CPUs over torchrun's
    ``LOCAL_WORLD_SIZE``, between 1 and 16; a bad setting is an error naming it."""
    monkeypatch.setattr(_runtime.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.delenv("TRITONCONV_COMPILE_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert _runtime.compile_threads() == 16
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert _runtime.compile_threads() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "128")
    assert _runtime.compile_threads() == 1
    monkeypatch.setenv("TRITONCONV_COMPILE_THREADS", "3")
    assert _runtime.compile_threads() == 3
    monkeypatch.setenv("TRITONCONV_COMPILE_THREADS", "0")
    with pytest.raises(ValueError, match="TRITONCONV_COMPILE_THREADS"):
        _runtime.compile_threads()


def test_a_models_problems_are_those_its_calls_choose_configs_for_and_tune_ahead(tmp_path, monkeypatch):
    """``tune.model_problems`` lists, from fake tensors, exactly the problems a training step of the model chooses
    configs for (each once: the model's input takes no gradient, a transposed layer's passes are its transpose's);
    ``tune_all`` on them fills the cache that ``explain_model`` (and so a call) then reads; ``tune.ahead`` needs CUDA."""
    import copy

    from tritonconv import tune

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(16, 16, 3, padding=1, groups=4),  # narrow groups, run merged
                                torch.nn.ConvTranspose2d(16, 4, 2, stride=2))
    x = torch.randn(1, 3, 5, 7)
    todo = tune.model_problems(model, x, gpu=GPU)
    assert [p.kind for _, p in todo] == ["conv", "conv_wgrad", "conv", "conv_t", "conv_wgrad", "conv_t", "conv",
                                         "conv_wgrad"]
    assert [name.split(":")[0] for name, _ in todo] == ["1", "1", "2", "2", "2", "3", "3", "3"]
    assert {p.groups for name, p in todo if name.startswith("2")} == {1}  # 4 groups of 4 merged into one
    chosen, choose = [], tuning.choose
    monkeypatch.setattr(tuning, "choose", lambda problem, *args: chosen.append(problem) or choose(problem, *args))
    converted = tritonconv.nn.convert(copy.deepcopy(model))  # its weights channels innermost, outputs as torch's
    layouts = []
    for run, routed in ((model, True), (converted, False)):  # as the model runs: routed, or converted
        chosen.clear()
        dispatch.clear_plans()
        with tritonconv.enabled(routed):
            run(x).sum().backward()  # (the transposed layer's input gradient in its input's layout, as torch's)
        assert set(chosen) == {p for _, p in tune.model_problems(run, x, gpu=GPU)}
        layouts.append({p.layout for p in chosen})
    assert "contiguous" in layouts[0] and layouts[1] == layouts[0]  # (a packed stem reads channels-last)
    assert all(p.source == "default" for layer in tritonconv.explain_model(model, x, gpu=GPU).layers
               for p in layer.runs.values())
    assert tune.tune_all(todo, "cpu", GPU, cache.user_dir(), fake_bench, tuning.DEFAULT_SMEM, 132, top=1) == \
        [name for name, _ in todo]
    cache.clear_memory()
    assert all(p.source == "cache" for layer in tritonconv.explain_model(model, x, gpu=GPU).layers
               for p in layer.runs.values())
    with pytest.raises(RuntimeError, match="tune.ahead: needs a CUDA GPU"):
        tune.ahead(model, x)


@pytest.mark.parametrize("layout,dims,inner", [("channels_last", 2, True), ("channels_last", 1, False),
                                               ("contiguous", 2, False)])
def test_the_tuner_times_weight_gradients_laid_out_as_their_weights(layout, dims, inner):
    """``tune.runner`` (what the tuner times and the compile reports count) writes a weight gradient laid out as the
    weight it is for is held (``tuning.weight_layout``: input channels innermost beside 2-D and 3-D channels-last
    activations, as ``tritonconv.nn``'s and a channels-last model's weights, whose gradients autograd writes so; run
    here under the interpreter, on 3 splits; such gradients' values against torch: ``tests/test_nn.py``)."""
    shape = {1: ((2, 20, 13), (7, 20, 3)), 2: ((2, 20, 9, 7), (7, 20, 3, 3))}[dims]  # (20 channels: not packed)
    problem = tuning.Problem.of("conv_wgrad", "float32", layout, *shape, padding=1)
    assert (tuning.weight_layout(problem) == "channels_last") == inner
    torch.manual_seed(0)
    dw = runner(problem, torch.device("cpu"))(tuning.Config(16, 16, 16, num_stages=1, split_k=3))
    assert geometry.grad_channels_inner(dw) == inner and dw.shape == problem.weight_shape


def test_defaults_fit_the_shared_memory_of_smaller_gpus():
    """On a GPU with less shared memory a block than an H100 (``fit_shared``: an A100's 163 KiB, 99 KiB on Ampere, Ada
    and GeForce Blackwell cards, 64 KiB on Turing), the default config (and the tuning's reference and baselines) has
    fewer stages, then the pointer kernel's tiles, then shorter steps and smaller tiles, until its tiles (times
    ``shared_margin``: up to twice them on NC(D)HW pointer launches) fit; at an H100's it is the heuristic's,
    unchanged, on every suite problem."""
    suite = json.loads((Path(__file__).parents[1] / "benchmarks" / "shapes.json").read_text())
    from tritonconv import tune

    shrunk = 0
    for _, prob in tune.suite_problems(suite):
        for layout in ("channels_last", "contiguous"):
            for kind in ("conv", "conv_t", "conv_wgrad"):
                for dtype in ("bfloat16", "float32"):
                    depthwise = shapes.is_depthwise(prob["input_shape"], prob["weight_shape"], prob["groups"])
                    p = tuning.Problem.of(tuning.DEPTHWISE_KIND[kind] if depthwise else kind, dtype, layout, **prob)
                    for tma in (False, True):
                        own = tuning.heuristic(p, False, 132, tma)
                        assert tuning.default(p, 132, tma) == own
                        for limit in (166912, 101376, 65536):
                            cfg = tuning.default(p, 132, tma, None, limit)
                            if p.kind.startswith("conv_dw"):  # the banded kernel's tiles, fewer segments a step
                                assert cfg == own or (cfg.fold and banded.shared_bytes(p.spec, cfg, p.itemsize) + 1024
                                                      <= limit and cfg.block_k < own.block_k), (p.key(), cfg)
                                continue
                            assert tuning.fits_shared(p, cfg, limit), (p.key(), cfg)
                            if cfg != own:
                                shrunk += 1
                                assert cfg.num_stages >= 2 and min(cfg.block_m, cfg.block_n, cfg.block_k) >= 16
                                assert cfg.num_stages < own.num_stages or own.num_stages == 2, (own, cfg)
                                assert (cfg.split_k, cfg.group_m, cfg.num_warps, cfg.fold) == (
                                    own.split_k, own.group_m, own.num_warps, own.fold)
    assert shrunk > 50
    nc = tuning.Problem.of("conv_wgrad", "bfloat16", "contiguous", (2, 32, 64, 64, 64), (32, 32, 3, 3, 3), 1, 1)
    cfg = tuning.Config(32, 32, 256, num_warps=8, num_stages=3, split_k=19)  # unet3d_64cube's: 114,688 B on sm_86
    assert not tuning.fits_shared(nc, cfg, 101376)
    assert tuning.fit_shared(nc, cfg, 101376) == dataclasses.replace(cfg, num_stages=2, block_k=128)
    descriptor = tuning.Config(128, 128, 64, num_warps=8, num_stages=4, tile_h=2, tile_b=2)
    cl = dataclasses.replace(nc, layout="channels_last")
    assert tuning.fit_shared(cl, descriptor, 101376) == dataclasses.replace(descriptor, num_stages=3)
    assert tuning.fit_shared(cl, descriptor, 65536).tile_h == 0  # the pointer kernel's tiles where TMA's do not fit


def test_resolving_on_a_smaller_gpu_takes_the_fitted_default(monkeypatch):
    """``resolve`` with nothing cached and no tuning returns the default fitted to the GPU's shared memory, and a
    tuning's reference run (the heuristic's config, that every candidate must reproduce) is fitted too."""
    monkeypatch.setattr(cache, "lookup", lambda *args: None)
    p = tuning.Problem.of("conv_wgrad", "bfloat16", "contiguous", (2, 32, 64, 64, 64), (32, 32, 3, 3, 3), 1, 1)
    cfg = tuning.resolve(p, "Small GPU", None, autotune=False, smem_limit=65536, sm_count=82)
    assert cfg == tuning.default(p, 82, False, None, 65536) and tuning.fits_shared(p, cfg, 65536)
    assert cfg != tuning.resolve(p, "Small GPU", None, autotune=False, sm_count=82)
    ran = []

    def run(config):
        ran.append(config)
        return torch.zeros(4)

    tuning.tune(p, run, lambda fn: 1.0, 65536, 82)
    assert tuning.fits_shared(p, ran[0], 65536)  # the reference, run first


def test_descriptor_forwards_moving_nc_rows_in_registers_take_the_warpgroup_mma():
    """The descriptor forward (:mod:`tritonconv.kernels.tma`) moves or deals an NC(D)HW tile's rows in registers as its
    MMA's first operand, ``BLOCK_M`` rows, without :func:`tritonconv._tile.fragment`: sound on Hopper's warpgroup MMA,
    64 rows or more; under 64 (the warp-level MMA) Triton would halve both operands' fragments through the move's joins.
    No candidate the tuner may time (nor the default) for the suite's NC(D)HW forwards and input gradients, in 16 bits
    or TF32, runs it on fewer rows."""
    from tritonconv import costmodel, tune

    suite = json.loads((Path(__file__).parents[1] / "benchmarks" / "shapes.json").read_text())
    device = costmodel.device_for("NVIDIA H200")
    descriptor = 0
    for _, prob in tune.suite_problems(suite):
        if shapes.is_depthwise(prob["input_shape"], prob["weight_shape"], prob["groups"]):
            continue  # (their own kernels)
        for kind in ("conv", "conv_t"):
            for dtype, tf32 in (("bfloat16", False), ("float32", True)):
                p = tuning.Problem.of(kind, dtype, "contiguous", **prob, tf32=tf32)
                configs = tuning.candidates(p, tma=True, sm_count=device.sms, predict=costmodel.predicting(device))
                for cfg in [*configs, tuning.default(p, device.sms, True)]:
                    if costmodel.kernel_of(p, cfg) == "_conv_tma_kernel":
                        descriptor += 1
                        assert cfg.block_m >= 64, (p.key(), cfg)
    assert descriptor > 100
