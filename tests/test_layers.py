"""The package's layers point one way: ground -> kernels -> tuning -> dispatch -> API.

Read from the source with ``ast`` (nothing is imported), so the check holds for every module,
including the ones a test run never imports.
"""

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tritonconv"

LAYERS = {  # module -> layer; a module may import only from its own layer or below
    "shapes": 0, "_checks": 0, "_runtime": 0, "_tile": 0, "geometry": 0, "memory": 0, "_descriptors": 0,
    "kernels": 1, "kernels.gemm": 1, "kernels.depthwise": 1, "kernels.banded": 1, "kernels.tma": 1,
    "kernels.weight_grad": 1, "kernels.fused_2plus1d": 1, "kernels.pack": 1, "kernels.partials": 1,
    "cache": 2, "tuning": 2, "costmodel": 2,
    "dispatch": 3,
    "functional": 4, "conv2plus1d": 4, "streaming": 4, "netstream": 4, "distributed": 4, "nn": 4, "tune": 4,
    "spec": 4, "routing": 4, "fp8": 4, "explanation": 4, "fusion": 4, "__main__": 4, "": 5,
}


def modules(package: Path | None = None) -> dict[str, Path]:
    """Dotted module names relative to the package ('' for the package itself) -> file."""
    package = package or PACKAGE
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports (relative or absolute imports of ``tritonconv``)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [p for p in package if p]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "tritonconv":
                base = node.module.split(".")[1:]
            else:
                continue
            targets = [".".join(base)] + [".".join([*base, alias.name]) for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [".".join(a.name.split(".")[1:]) for a in node.names if a.name.split(".")[0] == "tritonconv"]
        else:
            continue
        out |= {t for t in targets if t in known and t not in (name, "")}  # "": the package, imported by any
    return out


def graph() -> dict[str, set[str]]:
    return _graph(PACKAGE)


@functools.cache
def _graph(package: Path) -> dict[str, set[str]]:  # (one parse of the package per test run)
    mods = modules(package)
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def test_every_module_has_a_layer():
    assert set(modules()) == set(LAYERS), "add new modules to LAYERS (and to the README's layer table)"


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_imports_point_down(name):
    up = {t: LAYERS[t] for t in graph()[name] if t and LAYERS[t] > LAYERS[name]}
    assert not up, f"tritonconv.{name} (layer {LAYERS[name]}) imports from higher layers: {up}"


@pytest.mark.parametrize("name", [m for m in sorted(LAYERS) if m.startswith("kernels.")])
def test_kernels_import_only_the_ground(name):
    """A kernel file needs the ground layer only: never another kernel file, the tuner or the dispatcher."""
    assert {t for t in graph()[name] if LAYERS[t] != 0} == set()


def test_the_checker_sees_a_cycle(tmp_path, monkeypatch):
    """The walk above finds imports of every form (a check that cannot fail checks nothing)."""
    pkg = tmp_path / "tritonconv"
    (pkg / "kernels").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "kernels" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("from .kernels import k\n")
    (pkg / "kernels" / "k.py").write_text("import tritonconv.a\n")
    monkeypatch.setitem(globals(), "PACKAGE", pkg)
    assert graph() == {"": set(), "kernels": set(), "a": {"b"}, "b": {"kernels", "kernels.k"}, "kernels.k": {"a"}}
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycle()
