"""The spec notebooks are regression tests: planted faults must make nbval fail.

Each case runs strict nbval on a copy of notebook 01 in a subprocess, with one fault planted
either in the stored outputs or, through a ``sitecustomize`` module on the kernel's
PYTHONPATH, in the library the notebook executes.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tritonconv.spec import KERNEL_STARTUP_S

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "spec_notebooks" / "01_1d_temporal_convolution.ipynb"

FAULTS = {
    # The shape formula off by one: the notebook's comparison with the document's formula fails.
    "formula_off_by_one": """
import tritonconv.shapes as s
_orig = s.conv_output_size
s.conv_output_size = lambda *a, **k: _orig(*a, **k) + 1
""",
    # Every output shifted by one position: the worked example's values change.
    "output_shifted": """
import tritonconv.dispatch as d
_orig = d.forward_plan
d.forward_plan = lambda *a, **k: (lambda plan: lambda *t: plan(*t).roll(1, dims=-1))(_orig(*a, **k))
""",
}


def run_nbval(notebook: Path, env: dict) -> subprocess.CompletedProcess:
    """Strict nbval on ``notebook``, stopping at its first failing cell (``-x``: a fault needs one)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=", "--nbval",
           "--nbval-current-env", "--nbval-kernel-startup-timeout", str(KERNEL_STARTUP_S),
           "--nbval-sanitize-with", str(ROOT / "spec_notebooks" / "sanitize.cfg"), str(notebook)]
    return subprocess.run(cmd, cwd=notebook.parent, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_planted_library_fault_fails_nbval(tmp_path, fault):
    (tmp_path / "sitecustomize.py").write_text(FAULTS[fault])
    notebook = tmp_path / NOTEBOOK.name
    shutil.copy(NOTEBOOK, notebook)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    result = run_nbval(notebook, env)
    assert result.returncode != 0, result.stdout[-2000:]
    assert "failed" in result.stdout


def test_edited_stored_output_fails_nbval(tmp_path):
    nb = json.loads(NOTEBOOK.read_text())
    edited = 0
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", []))
            if "[1.0, 0.0, 1.0, 8.0]" in text and not edited:  # the first print of the worked example
                out["text"] = text.replace("[1.0, 0.0, 1.0, 8.0]", "[1.0, 0.0, 1.0, 9.0]")
                edited += 1
    assert edited == 1
    notebook = tmp_path / NOTEBOOK.name
    notebook.write_text(json.dumps(nb))
    result = run_nbval(notebook, dict(os.environ))
    assert result.returncode != 0 and "failed" in result.stdout, result.stdout[-2000:]
