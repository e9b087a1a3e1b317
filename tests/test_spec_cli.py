"""``python -m tritonconv.spec``: the spec notebooks travel with the package and run under nbval against
the installed library (here from a wheel in a fresh virtual environment, so packaging cannot drift)."""

import os
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


def test_use_device_draws_random_tensors_on_the_cpu(monkeypatch):
    """On another device the notebooks see the CPU's random numbers (here 'meta' stands in for CUDA)."""
    originals = {name: getattr(torch, name) for name in spec.RANDOM_FACTORIES}
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
        torch.set_default_device("cpu")
        for name, fn in originals.items():
            setattr(torch, name, fn)


def test_installed_wheel_runs_a_notebook(tmp_path):
    """Build the wheel, install it into a fresh environment (torch, triton and the test tools from this
    one), and run notebook 06 from outside the checkout (the quickest: it also reads the shipped data)."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("tritonconv-*.whl")
    env_dir = tmp_path / "env"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(python), "-c", "import tritonconv; print(tritonconv.__file__)"], cwd=tmp_path,
                           env=clean, capture_output=True, text=True, check=True).stdout
    assert str(env_dir) in where, where  # the wheel's copy, not this checkout's
    run = subprocess.run([str(python), "-m", "tritonconv.spec", "06"], cwd=tmp_path, env=clean,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert str(env_dir / "share" / "tritonconv") in run.stdout
    assert "06_autotuning_and_performance.ipynb" in run.stdout and " 0 failed" in run.stdout
