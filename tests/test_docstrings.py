"""The API reference is generated from the docstrings (the documentation site): every public name of the
documented modules has one, and a function's or class's docstring names each of its parameters."""

import inspect

import pytest

import tritonconv
from tritonconv import distributed, fp8, memory, netstream, nn, routing, shapes, streaming, tune

MODULES = [tritonconv, nn, shapes, memory, streaming, netstream, distributed, tune, routing, fp8]
INHERITED = {"torch.nn.Conv1d", "torch.nn.Conv2d", "torch.nn.Conv3d", "torch.nn.ConvTranspose1d",
             "torch.nn.ConvTranspose2d", "torch.nn.ConvTranspose3d"}  # constructor documented by torch, named in ours


def public(module):
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name)
        if inspect.ismodule(obj) or not callable(obj):
            continue
        if module is not tritonconv and getattr(obj, "__module__", None) != module.__name__:
            continue  # imported from elsewhere
        yield f"{module.__name__}.{name}", obj


NAMES = [item for m in MODULES for item in public(m)]


@pytest.mark.parametrize("qualname,obj", NAMES, ids=[name for name, _ in NAMES])
def test_public_name_documents_its_parameters(qualname, obj):
    doc = inspect.getdoc(obj) or ""
    assert len(doc) >= 40, f"{qualname}: no real docstring"
    if inspect.isclass(obj) and any(f"{b.__module__}.{b.__name__}".replace("torch.nn.modules.conv", "torch.nn")
                                    in INHERITED for b in obj.__mro__[1:]):
        assert "torch.nn." in doc, f"{qualname}: say which torch module's constructor it takes"
        return
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        params = [p for p in inspect.signature(target).parameters if p not in ("self", "args", "kwargs", "argv")]
    except (TypeError, ValueError):
        return
    missing = [p for p in params if not any(f in doc for f in (f"``{p}``", f"``{p}=", f":param {p}:"))]
    assert not missing, f"{qualname}: parameters not described in the docstring: {missing}"
