"""The README's quick start is code a reader can paste: it runs as written (CPU tensors here)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start() -> str:
    block = ROOT.joinpath("README.md").read_text().split("<!-- quickstart:start -->")[1].split("<!-- quickstart:end -->")[0]
    return re.search(r"```python\n(.*?)```", block, re.S).group(1)


def test_quick_start_is_short_and_runs_as_written(tmp_path):
    code = quick_start()
    assert len(code.splitlines()) <= 22
    for shown in ("tritonconv.conv2d", "tritonconv.nn.Conv3d", "tritonconv.nn.convert", "conv3d_stream",
                  "explain_model", "tune.ahead"):
        assert shown in code
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table, slabs = done.stdout.split("\n(", 1)  # explain_model's table, then the printed slab shapes
    assert "conv1d 4->8 k5 2x50 fp32 NC" in table and "predicted device times" in table, table
    slabs = [eval(line) for line in ("(" + slabs).splitlines()]
    assert all(s[:2] == (1, 8) and s[3:] == (16, 16) for s in slabs) and sum(s[2] for s in slabs) == 12, slabs


def test_readme_opens_with_the_quick_start_before_the_capability_list():
    text = ROOT.joinpath("README.md").read_text()
    assert text.index("## Quick start") < text.index("## Performance") < text.index("## What it does")
    intro = text.split("<!-- --8<-- [start:intro] -->")[1].split("## Quick start")[0].strip()
    assert len(intro.splitlines()) == 3


def test_the_capability_list_is_a_list_a_reader_can_scan():
    """"What it does" names each capability in a few lines; how the kernels do it is a section (and a page) of its
    own."""
    text = ROOT.joinpath("README.md").read_text()
    features = text.split("## What it does")[1].split("<!-- --8<-- [end:features] -->")[0]
    bullets = re.split(r"\n\* ", features)[1:]
    assert len(features.splitlines()) <= 60 and 8 <= len(bullets)
    assert all(len(bullet.splitlines()) <= 7 for bullet in bullets), [b[:60] for b in bullets if len(b.splitlines()) > 7]
    assert '"How the kernels work"' in features and "## How the kernels work" in text.split("[start:kernels]")[1]
    assert '--8<-- "README.md:kernels"' in ROOT.joinpath("docs", "kernels.md").read_text()


def test_the_explain_example_prints_what_the_readme_says():
    """The README's ``tritonconv.explain`` example, run as written: the forward's channels-last saving it quotes is the
    one printed (the cost model or the heuristic moving changes it)."""
    import re

    import tritonconv  # noqa: F401  (the example's namespace)

    text = ROOT.joinpath("README.md").read_text()
    section = text.split("### What a layer runs: `tritonconv.explain`")[1]
    code = section.split("```python")[1].split("```")[0].replace("print(", "found = (")
    scope: dict = {"torch": __import__("torch"), "tritonconv": tritonconv}
    exec(code, scope)
    quoted = re.search(r"here\s+([\d.]+)x less time for the forward", section).group(1)
    forward = str(scope["found"]).split("\n\n")[1]
    assert forward.startswith("forward") and "channels-last activations: " in forward and f"{quoted}x less)" in forward


def test_the_explain_model_example_runs_as_written():
    """The README's ``tritonconv.explain_model`` example, run as written: a row per layer, the stem with no input
    gradient."""
    import tritonconv

    section = ROOT.joinpath("README.md").read_text().split("### What a layer runs: `tritonconv.explain`")[1]
    code = section.split("```python")[2].split("```")[0].replace("print(", "found = (")
    scope: dict = {"torch": __import__("torch"), "tritonconv": tritonconv}
    exec(code, scope)
    report = scope["found"]
    assert [sorted(layer.runs) for layer in report.layers] == [["forward", "weight gradient"],
                                                                ["forward", "input gradient", "weight gradient"]]
    assert "conv2d 3->64 k7x7/2 32x224x224 bf16 NC" in str(report)
