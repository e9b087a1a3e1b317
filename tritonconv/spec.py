"""``python -m tritonconv.spec``: the spec notebooks under strict nbval, against the installed kernels.

    python -m tritonconv.spec                     # every notebook, CPU tensors (Triton's interpreter)
    python -m tritonconv.spec --device cuda       # the same notebooks on the GPU: the compiled kernels
    python -m tritonconv.spec 01 07 --junitxml spec.xml
    python -m tritonconv.spec --list

The notebooks restate the design document's formulas and worked examples and check them against
the kernels; their stored outputs are the interpreter's, and every value they print is exact, a
comparison against a tolerance, or rounded to 4 decimals (notebook 01's random example, 1000x its fp32
rounding), so the compiled kernels of a GPU must reproduce the same text. They
ship with the package (``share/tritonconv`` of the environment, with the benchmark data notebook 06
reads) and run from a copy in a temporary directory. Exit status: pytest's (0 when every cell passed).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

DEVICE_VARIABLE = "TRITONCONV_SPEC_DEVICE"  # read by each notebook's first cell (use_device)
RANDOM_FACTORIES = ("randn", "rand", "randint", "randperm")
# seconds nbval waits for a notebook's kernel to start: its default of 60 was once exceeded on a busy 2-core machine
KERNEL_STARTUP_S = 600


def use_device(device: str | None = None) -> str:
    """Put the tensors a notebook makes without naming a device on ``device`` (default: the
    ``TRITONCONV_SPEC_DEVICE`` variable, else the CPU). Random tensors are drawn on the CPU first and then
    moved: CUDA's generator draws other numbers from the same seed, and the stored outputs are the CPU's."""
    device = device or os.environ.get(DEVICE_VARIABLE, "cpu")
    if torch.device(device).type == "cpu":
        return device
    torch.set_default_device(device)
    # one factory call first: torch lists its factory functions on the first call under a default device and keeps
    # that list for the process; made from the wrappers below, it would miss the originals put back later
    torch.empty(0)
    for name in RANDOM_FACTORIES:
        draw = getattr(torch, name)
        if getattr(draw, "_drawn_on_cpu", False):
            continue

        def drawn_on_cpu(*args, draw=draw, device=None, **kwargs):
            return draw(*args, device="cpu", **kwargs).to(device if device is not None else torch.get_default_device())

        drawn_on_cpu._drawn_on_cpu = True
        setattr(torch, name, drawn_on_cpu)
    return device


SPEC_NEEDS = {"pytest": "pytest", "nbval": "nbval", "ipykernel": "ipykernel", "jupyter_client": "jupyter_client",
              "nbformat": "nbformat", "matplotlib": "matplotlib", "xdist": "pytest-xdist"}  # module: package (the extra)


def check_installed() -> None:
    """Exit with a message naming the extra to install if a package the spec run needs is missing."""
    missing = [package for module, package in SPEC_NEEDS.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise SystemExit(f"tritonconv.spec: {', '.join(missing)} not installed (the spec run needs "
                         f"{'it' if len(missing) == 1 else 'them'}): pip install \"tritonconv[spec]\"")


def source_root() -> Path:
    """The folder holding ``spec_notebooks/`` (and ``benchmarks/``, ``autotune_cache/``): this checkout's
    root when run from one, else what the package installed under ``share/tritonconv``."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "spec_notebooks" / "sanitize.cfg").is_file():
        return checkout
    for prefix in (sys.prefix, sys.base_prefix):
        shared = Path(prefix) / "share" / "tritonconv"
        if (shared / "spec_notebooks" / "sanitize.cfg").is_file():
            return shared
    raise SystemExit("tritonconv.spec: no spec notebooks found (neither a checkout nor share/tritonconv of "
                     f"{sys.prefix}); reinstall tritonconv")


def notebooks(root: Path, only: list[str] | None = None) -> list[Path]:
    found = sorted((root / "spec_notebooks").glob("[0-9][0-9]_*.ipynb"))
    chosen = [nb for nb in found if not only or any(nb.name.startswith(o) or o in nb.stem for o in only)]
    if only and not chosen:
        raise SystemExit(f"tritonconv.spec: no notebook matches {only}; --list shows them")
    return chosen


def stage(root: Path, chosen: list[Path], into: Path) -> list[Path]:
    """Copy the notebooks and what they read into ``into`` (a notebook reads ``../benchmarks`` and
    ``../autotune_cache`` relative to its folder)."""
    (into / "spec_notebooks").mkdir(parents=True)
    shutil.copy(root / "spec_notebooks" / "sanitize.cfg", into / "spec_notebooks")
    for sub in ("benchmarks", "autotune_cache"):
        if (root / sub).is_dir():
            shutil.copytree(root / sub, into / sub, ignore=shutil.ignore_patterns("*.py", "__pycache__", "*.png"))
    return [Path(shutil.copy(nb, into / "spec_notebooks")) for nb in chosen]


def summarize(junit: Path) -> list[tuple[str, int, int]]:
    """(notebook, cells passed, cells failed) from pytest's JUnit XML."""
    counts: dict[str, list[int]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("classname", "?").removeprefix("spec_notebooks.")  # one cell's test case
        entry = counts.setdefault(name, [0, 0])
        entry[case.find("failure") is not None or case.find("error") is not None] += 1
    return [(name, ok, bad) for name, (ok, bad) in sorted(counts.items())]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tritonconv.spec", description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", help="only these (a number such as 03, or part of a name)")
    p.add_argument("--device", default="cpu", help="where the notebooks' tensors live: cpu (the interpreter) or cuda")
    p.add_argument("--list", action="store_true", help="list the notebooks and exit")
    p.add_argument("--junitxml", type=Path, help="also write pytest's JUnit XML report here")
    p.add_argument("--workers", type=int, default=0,
                   help="run the notebooks in this many processes (pytest-xdist, a notebook per process)")
    args = p.parse_args(argv)
    root = source_root()
    chosen = notebooks(root, args.notebooks)
    if args.list:
        print("\n".join(nb.name for nb in chosen))
        return 0
    check_installed()
    with tempfile.TemporaryDirectory(prefix="tritonconv-spec-") as tmp:
        staged = stage(root, chosen, Path(tmp))
        junit = args.junitxml.resolve() if args.junitxml else Path(tmp) / "spec.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--nbval",
               "--nbval-current-env", "--nbval-kernel-startup-timeout", str(KERNEL_STARTUP_S),
               "--nbval-sanitize-with", str(Path(tmp) / "spec_notebooks" / "sanitize.cfg"), f"--junitxml={junit}",
               "--rootdir", tmp, *map(str, staged)]
        if args.workers > 0:
            cmd[3:3] = ["-n", str(args.workers), "--dist", "loadfile"]
        # cached or default configs, no tuning: the spec checks what a user's calls run
        env = dict(os.environ, **{DEVICE_VARIABLE: args.device})
        env.setdefault("TRITONCONV_AUTOTUNE", "0")
        env.setdefault("TRITONCONV_OVERFLOW_CHECKS", "0")  # computed and never asserted by default: half the time
        print(f"tritonconv.spec: {len(staged)} notebooks from {root}, tensors on {args.device}", flush=True)
        status = subprocess.run(cmd, cwd=Path(tmp) / "spec_notebooks", env=env).returncode
        if junit.is_file():
            for name, ok, bad in summarize(junit):
                print(f"{name:42} {ok:3d} cells passed {bad:3d} failed")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
