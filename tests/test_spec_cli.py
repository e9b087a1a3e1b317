"""``python -m tritonconv.spec``: the spec notebooks travel with the package and run under nbval against
the installed library (here from a wheel in a fresh virtual environment, so packaging cannot drift)."""

import importlib.metadata
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import torch

from tritonconv import spec

ROOT = Path(__file__).resolve().parents[1]


def test_lists_every_notebook_of_the_checkout(capsys):
    assert spec.main(["--list"]) == 0
    listed = capsys.readouterr().out.split()
    assert listed == sorted(p.name for p in (ROOT / "spec_notebooks").glob("[0-9][0-9]_*.ipynb")) and len(listed) == 7


def test_every_nbval_run_waits_as_long_for_a_notebook_kernel():
    """The suite's own nbval run (pyproject addopts) waits as long as ``python -m tritonconv.spec`` does."""
    addopts = re.search(r'^addopts = "(.*)"$', (ROOT / "pyproject.toml").read_text(), re.M).group(1).split()
    i = addopts.index("--nbval-kernel-startup-timeout")
    assert int(addopts[i + 1]) == spec.KERNEL_STARTUP_S > 60


def test_use_device_draws_random_tensors_on_the_cpu(monkeypatch):
    """On another device the notebooks see the CPU's random numbers (here 'meta' stands in for CUDA)."""
    originals = {name: getattr(torch, name) for name in spec.RANDOM_FACTORIES}
    before = torch.get_default_device()  # (the GPU session's tests: CUDA)
    try:
        torch.manual_seed(0)
        want = torch.randn(5)
        assert spec.use_device("meta") == "meta"
        torch.manual_seed(0)
        got = torch.randn(5)
        assert got.device.type == "meta" and torch.empty(2).device.type == "meta"
        drawn = []
        monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: drawn.append(self.clone()) or self)
        torch.manual_seed(0)
        torch.randn(5)
        assert torch.equal(drawn[0], want)  # the same numbers as on the CPU, then moved
    finally:
        torch.set_default_device(None if before.type == "cpu" else before)  # (None: no device context left behind)
        for name, fn in originals.items():
            setattr(torch, name, fn)
    with torch.device("meta"):  # nothing stays behind: torch's own factories put back take a device context's device
        assert torch.randn(2).device.type == "meta"


BASE = ("torch", "triton", "numpy", "filelock", "tqdm", "typing-extensions", "sympy", "mpmath", "networkx", "jinja2",
        "markupsafe", "fsspec", "setuptools")  # tritonconv's own requirements and torch's, taken from this environment


def base_packages(into: Path) -> None:
    """Links to this environment's copies of ``BASE`` (each distribution's top-level files and its metadata) in
    ``into``: a fresh environment that puts ``into`` on its path has torch and triton but nothing of the extras."""
    into.mkdir()
    for name in BASE:
        dist = importlib.metadata.distribution(name)
        site = Path(dist.locate_file(""))
        for top in {Path(str(f)).parts[0] for f in dist.files or ()} - {"..", "__pycache__"}:
            if (site / top).exists() and not (into / top).exists():
                (into / top).symlink_to(site / top)


def test_installed_wheel_with_the_spec_extra_alone_runs_a_notebook(tmp_path):
    """Build the wheel and install it into a fresh environment that has only torch, triton and their requirements
    (from this one): the spec run stops with the extra to install, and runs notebook 06 (the quickest, and the one
    that reads the shipped data) from outside the checkout once ``tritonconv[spec]`` is installed."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("tritonconv-*.whl")
    env_dir = tmp_path / "env"
    venv.create(env_dir, system_site_packages=False, with_pip=True)
    python = env_dir / "bin" / "python"
    base_packages(tmp_path / "base")
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "base.pth").write_text(str(tmp_path / "base") + "\n")
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True, timeout=300, env=clean)
    where = subprocess.run([str(python), "-c", "import tritonconv; print(tritonconv.__file__)"], cwd=tmp_path,
                           env=clean, capture_output=True, text=True, check=True).stdout
    assert str(env_dir) in where, where  # the wheel's copy, not this checkout's
    bare = subprocess.run([str(python), "-m", "tritonconv.spec", "06"], cwd=tmp_path, env=clean,
                          capture_output=True, text=True, timeout=300)
    assert bare.returncode != 0 and 'pip install "tritonconv[spec]"' in bare.stderr, bare.stderr[-2000:]
    assert "pytest" in bare.stderr and "Traceback" not in bare.stderr
    subprocess.run([*pip, f"{wheel}[spec]"], check=True, capture_output=True, timeout=600, env=clean)
    run = subprocess.run([str(python), "-m", "tritonconv.spec", "06"], cwd=tmp_path, env=clean,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert str(env_dir / "share" / "tritonconv") in run.stdout
    assert "06_autotuning_and_performance.ipynb" in run.stdout and " 0 failed" in run.stdout
