"""``python -m benchmarks.wheels``: the wheels the GPU machine's image lacks for a slot run, in ``.whl/``.

    python -m benchmarks.wheels            # download into .whl/ (ignored by git), then check the folder
    python -m benchmarks.wheels --check    # only check an existing folder

The GPU machine (``benchmarks/gpu_session.sh``) reaches no package registry, and its image has
PyTorch, Triton, pytest, pytest-xdist, hypothesis and matplotlib but not what ``python -m
tritonconv.spec`` needs besides: nbval, ipykernel, jupyter_client, nbformat and their own
requirements. This downloads them (and everything they require that the image does not have,
``IMAGE`` below) as wheels for the image's interpreter, CPython 3.12 on manylinux x86_64, and
checks the folder: every wheel installs on that interpreter (its tags), one version per
package, every requirement of every wheel met by the folder or the image, and the total within
``BUDGET_MIB`` (the device call carries at most 64 MiB with the working tree). The slot run
installs them first with ``pip install --no-index --no-deps --target``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging import tags
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / ".whl"
WANTED = ("nbval", "ipykernel", "jupyter_client", "nbformat")  # what python -m tritonconv.spec imports beyond the image
PYTHON = (3, 12)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "linux_x86_64")
ENVIRONMENT = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
               "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
               "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
BUDGET_MIB = 40
# The GPU image's Python packages (the device tool's KINDS.md, read 2026-11-17): never downloaded.
IMAGE = frozenset(canonicalize_name(n) for n in """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax
opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy
portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
""".split())


def supported_tags() -> set[tags.Tag]:
    """The wheel tags the image's interpreter accepts."""
    abi = f"cp{PYTHON[0]}{PYTHON[1]}"
    return set(tags.cpython_tags(PYTHON, [abi], PLATFORMS)) | set(tags.compatible_tags(PYTHON, abi, PLATFORMS))


def requirements(wheel: Path) -> list[Requirement]:
    """The wheel's unconditional requirements on the image's interpreter (extras left out)."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(name).decode())
    found = []
    for text in meta.get_all("Requires-Dist") or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(ENVIRONMENT):
            found.append(req)
    return found


def check(folder: Path) -> list[str]:
    """What is wrong with ``folder`` for the image (an empty list: nothing)."""
    wheels = sorted(folder.glob("*.whl"))
    problems, versions = [], {}
    ok_tags = supported_tags()
    for wheel in wheels:
        name, version, _, wheel_tags = parse_wheel_filename(wheel.name)
        versions.setdefault(name, []).append(str(version))
        if not wheel_tags & ok_tags:
            problems.append(f"{wheel.name}: no tag for CPython 3.12 on manylinux x86_64")
        if name in IMAGE:
            problems.append(f"{wheel.name}: the image has {name} already (two versions stop the install)")
    problems += [f"{name}: {len(v)} versions {v}" for name, v in versions.items() if len(v) > 1]
    problems += [f"{want}: missing" for want in WANTED if canonicalize_name(want) not in versions]
    for wheel in wheels:
        try:
            needs = requirements(wheel)
        except (zipfile.BadZipFile, StopIteration):
            problems.append(f"{wheel.name}: not a readable wheel")
            continue
        for req in needs:
            dep = canonicalize_name(req.name)
            if dep not in IMAGE and dep not in versions:
                problems.append(f"{wheel.name} requires {req}: neither in the folder nor in the image")
            elif dep in versions and not req.specifier.contains(versions[dep][0], prereleases=True):
                problems.append(f"{wheel.name} requires {req}: the folder has {dep} {versions[dep][0]}")
    size = sum(w.stat().st_size for w in wheels) / 2**20
    if size > BUDGET_MIB:
        problems.append(f"{size:.1f} MiB of wheels, over the {BUDGET_MIB} MiB budget")
    return problems


def download(folder: Path) -> None:
    """The wanted packages and their requirements for the image's interpreter; then drop what the image has."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.whl"):
        old.unlink()
    platforms = [arg for p in PLATFORMS[:-1] for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                    "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
                    *platforms, "-d", str(folder), *WANTED], check=True)
    for wheel in folder.glob("*.whl"):
        if parse_wheel_filename(wheel.name)[0] in IMAGE:
            wheel.unlink()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.wheels", description=__doc__.split("\n\n")[0])
    p.add_argument("--folder", type=Path, default=FOLDER)
    p.add_argument("--check", action="store_true", help="only check the folder; download nothing")
    args = p.parse_args(argv)
    if not args.check:
        download(args.folder)
    problems = check(args.folder)
    wheels = sorted(args.folder.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{args.folder}: {len(wheels)} wheels, {size:.1f} MiB, for CPython 3.12 manylinux x86_64")
    for line in problems:
        print(f"  {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
