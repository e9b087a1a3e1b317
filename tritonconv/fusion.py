"""``tritonconv.fuse``: each convolution of a model with the batch norm and activation after it, as one launch.

In eager PyTorch a ``Conv -> BatchNorm -> ReLU`` runs three kernels, and the two after the convolution read and
write the whole activation each. :func:`fuse` traces the model with ``torch.fx`` and rewrites every such chain as
one tritonconv convolution: an eval-mode batch norm folded into the convolution's weight and bias
(``torch.nn.utils.fusion.fuse_conv_bn_weights``, computed in fp32 at least and rounded once to the weight's dtype),
the activation computed in the convolution's epilogue (the module's ``activation``). ::

    Conv2d -> BatchNorm2d (eval) -> ReLU      becomes   Conv2d(activation='relu'), its weight and bias folded
    Conv1d -> SiLU                            becomes   Conv1d(activation='silu')  (training too)
    ConvTranspose3d -> BatchNorm3d (eval)     becomes   ConvTranspose3d, folded

Fused: ``torch.nn`` convolutions and transposed convolutions (tritonconv's or any :func:`tritonconv.nn.convert`
converts), each called once in the graph and read by the next node alone; then an eval-mode batch norm that keeps
running statistics over the convolution's channels (not after a grouped transposed convolution), read by the next
node alone, or timm's ``BatchNormAct2d`` (a batch norm with its activation inside, which it is replaced by), or a
frozen batch norm (torchvision's ``FrozenBatchNorm2d``, timm's ``FrozenBatchNormAct2d``) in eval mode; then
``ReLU``, ``ReLU6``, ``GELU`` (exact or tanh-approximated), ``SiLU``, ``Mish``, ``Hardswish``, ``Sigmoid``, ``Tanh``,
``Hardsigmoid``, ``ELU`` (alpha 1), ``SELU``, ``LeakyReLU`` (any slope) or an eval-mode ``PReLU`` of one slope, as
modules, functions
(``F.relu``, ``torch.relu``, ``F.relu6``, ``F.gelu``, ``F.silu``, ``F.mish``, ``F.hardswish``, ``torch.sigmoid``,
``torch.tanh``, ``F.hardsigmoid``, ``F.elu``, ``F.selu``, ``torch.selu``, ``F.leaky_relu`` with a number for its
slope, in place or not), methods (``x.relu()``, ``x.sigmoid()``, ``x.tanh()``, in place or not) or timm's modules
of one such function (``GELUTanh``, ``GELU``, ``Sigmoid``, ``Tanh``); or written out: SiLU as ``x * sigmoid(x)``
(timm's ``Swish``), ReLU and ReLU6 as clamps (``x.clamp(min=0)``, ``torch.clamp(x, 0, 6)``, ``F.hardtanh(x, 0,
6)``, ``nn.Hardtanh(0, 6)``). An ``nn.Identity`` between any two (timm's ``drop_block`` where it is off) is passed
over.
Everything else stays as it was; every convolution then runs tritonconv (:func:`tritonconv.nn.convert`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import operator
from collections import Counter

import torch
import torch.nn.functional as F
from torch.fx import GraphModule, Node
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_weights

from . import _checks, nn

__all__ = ["FusionReport", "fuse"]

_MODULES = {torch.nn.ReLU: "relu", torch.nn.ReLU6: "relu6", torch.nn.GELU: "gelu", torch.nn.SiLU: "silu",
            torch.nn.Mish: "mish", torch.nn.Hardswish: "hardswish", torch.nn.Sigmoid: "sigmoid", torch.nn.Tanh: "tanh",
            torch.nn.Hardsigmoid: "hardsigmoid", torch.nn.ELU: "elu", torch.nn.SELU: "selu",
            torch.nn.LeakyReLU: "leaky_relu", torch.nn.Hardtanh: "hardtanh"}
_FUNCTIONS = {F.relu: "relu", F.relu_: "relu", torch.relu: "relu", torch.relu_: "relu", F.relu6: "relu6",
              F.gelu: "gelu", F.silu: "silu", F.mish: "mish", F.hardswish: "hardswish", torch.sigmoid: "sigmoid",
              F.sigmoid: "sigmoid", torch.sigmoid_: "sigmoid", torch.tanh: "tanh", F.tanh: "tanh", torch.tanh_: "tanh",
              F.hardsigmoid: "hardsigmoid", F.elu: "elu", F.elu_: "elu", F.selu: "selu", F.selu_: "selu",
              torch.selu: "selu", torch.selu_: "selu", F.leaky_relu: "leaky_relu", F.leaky_relu_: "leaky_relu",
              F.hardtanh: "hardtanh", F.hardtanh_: "hardtanh", torch.clamp: "clamp", torch.clamp_: "clamp",
              torch.clip: "clamp", torch.clamp_min: "clamp_min", torch.clamp_min_: "clamp_min"}
_METHODS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "sigmoid_": "sigmoid", "tanh": "tanh",
            "tanh_": "tanh", "clamp": "clamp", "clamp_": "clamp", "clip": "clamp", "clip_": "clamp",
            "clamp_min": "clamp_min", "clamp_min_": "clamp_min"}
# the products of x * sigmoid(x), a SiLU written out
_PRODUCTS = {("call_function", operator.mul), ("call_function", torch.mul), ("call_method", "mul"), ("call_method", "mul_")}
_ELEMENTWISE = frozenset((  # torch's elementwise activations (modules, by their functions' names): what fuse reports
    # as left where the epilogue has no branch for one, or not for its arguments
    "threshold", "relu", "rrelu", "hardtanh", "relu6", "sigmoid", "hardsigmoid", "tanh", "silu", "mish", "hardswish", "elu",
    "celu", "selu", "gelu", "hardshrink", "leaky_relu", "logsigmoid", "softplus", "softshrink", "prelu", "softsign",
    "tanhshrink"))
_ELEMENTWISE_MODULES = frozenset(name.replace("_", "") for name in _ELEMENTWISE)  # their classes' names, lower case
# what each may be given besides its input (a module's attributes of those names but ``inplace``)
_KEYWORDS = {"relu": ("inplace",), "relu6": ("inplace",), "gelu": ("approximate",), "silu": ("inplace",),
             "mish": ("inplace",), "hardswish": ("inplace",), "sigmoid": (), "tanh": (), "hardsigmoid": ("inplace",),
             "elu": ("alpha", "inplace"), "selu": ("inplace",), "leaky_relu": ("negative_slope", "inplace"),
             "hardtanh": ("min_val", "max_val", "inplace"), "clamp": ("min", "max"), "clamp_min": ("min",)}


@dataclasses.dataclass
class FusionReport:
    """What :func:`fuse` did: ``folded`` batch norms and ``fused`` activations, per convolution class name; ``kept``:
    reason -> convolutions left unfused for it (besides those with nothing to fuse after them), among them each
    activation after one that the epilogue lacks, as written (``"an activation the epilogue lacks (ELU(alpha=0.5))"``)."""

    folded: Counter = dataclasses.field(default_factory=Counter)
    fused: Counter = dataclasses.field(default_factory=Counter)
    kept: Counter = dataclasses.field(default_factory=Counter)

    def __str__(self) -> str:
        def listed(counts):
            return ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "none"

        text = (f"tritonconv.fuse: {sum(self.folded.values())} batch norms folded ({listed(self.folded)}), "
                f"{sum(self.fused.values())} activations fused ({listed(self.fused)})")
        return text + (f"; not fused: {listed(self.kept)}" if self.kept else "")


class _Tracer(torch.fx.Tracer):
    """torch.fx's tracer, with every convolution module (torch's subclasses included), tritonconv's modules and timm's
    batch norms with an activation inside leaves."""

    def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
        return isinstance(m, nn.TORCH_CONVOLUTIONS) or type(m).__module__.startswith("tritonconv.") or \
            _norm_act(m) or _frozen(m) or super().is_leaf_module(m, qualname)


def _norm_act(m: torch.nn.Module) -> bool:
    """Whether ``m`` is timm's ``BatchNormAct2d`` or ``FrozenBatchNormAct2d``: a batch norm computing
    ``m.act(m.drop(batch_norm(x)))``."""
    return type(m).__module__.startswith("timm.") and type(m).__name__ in ("BatchNormAct2d", "FrozenBatchNormAct2d")


def _frozen(m: torch.nn.Module) -> bool:
    """Whether ``m`` is a frozen batch norm, its statistics and affine parameters buffers: torchvision's
    ``FrozenBatchNorm2d`` (its detection and segmentation backbones', timm's too) or timm's ``FrozenBatchNormAct2d``;
    each computes ``(x - running_mean) * weight / sqrt(running_var + eps) + bias``."""
    return (type(m).__module__, type(m).__name__) in (("torchvision.ops.misc", "FrozenBatchNorm2d"),
                                                      ("timm.layers.norm_act", "FrozenBatchNormAct2d"))


def fuse(model: torch.nn.Module, verbose: bool = False, report: bool = False):
    """``model`` with each convolution's following batch norm (eval mode) folded into its weight and bias and its
    following activation fused into its epilogue (module docstring: which chains), as a ``torch.fx.GraphModule``
    whose convolutions all run tritonconv. ``model`` itself is left as it is (a copy is fused).

    The result computes what ``model`` computes (to the rounding of the folded weights). Batch norms fold only in
    eval mode, so fuse an inference model after ``model.eval()``; a model in training mode gets its activations fused
    alone (exact for training: the gradients run the kernels, through the activation's slope), and a fused model
    has no batch norm left to train. ``verbose=True`` prints a :class:`FusionReport`; ``report=True`` returns
    ``(fused model, report)``. A model ``torch.fx`` cannot trace (control flow on values) is refused by name.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"fuse: expected `model` to be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, nn.TORCH_CONVOLUTIONS):
        raise ValueError(f"fuse: `model` is itself a {type(model).__name__}: nothing follows it to fuse (set its "
                         f"`activation`, or fuse a module holding it)")
    root = copy.deepcopy(model)
    try:
        graph = _Tracer().trace(root)
    except Exception as err:  # data-dependent control flow, len() of shapes, ...
        raise ValueError(f"fuse: {type(model).__name__} cannot be traced into a graph (torch.fx: {type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); convert it instead "
                         f"(tritonconv.nn.convert), which needs no graph") from None
    gm = GraphModule(root, graph, type(model).__name__)
    gm.training = model.training
    nn.convert(gm)
    found = FusionReport()
    modules = dict(gm.named_modules())
    calls = Counter(node.target for node in gm.graph.nodes if node.op == "call_module")
    read = {node.target.rpartition(".")[0] for node in gm.graph.nodes if node.op == "get_attr"}
    seen = set()
    for node in list(gm.graph.nodes):
        conv = modules.get(node.target) if node.op == "call_module" else None
        ours = isinstance(conv, nn.CONVOLUTIONS)
        if not isinstance(conv, nn.TORCH_CONVOLUTIONS) or ours and conv.activation is not None:
            continue  # (not a convolution, or one fused already)
        why = None
        if not ours:
            why = "left on torch (tritonconv.nn.convert's report says why)"
        elif calls[node.target] > 1 or node.target in read:
            why = "called or read in more than one place"
        if why is not None:
            if node.target not in seen:  # (a module counted once, however many its calls)
                found.kept[why] += 1
            seen.add(node.target)
            continue
        chain = _chain(node, conv, gm, modules, calls, found)
        if len(chain) > 1:
            chain[-1].replace_all_uses_with(node)
            for done in reversed(chain[1:]):
                gm.graph.erase_node(done)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    if verbose:
        print(found)
    return (gm, found) if report else gm


def _chain(node: Node, conv: torch.nn.Module, gm: GraphModule, modules: dict, calls: Counter,
           found: FusionReport) -> list[Node]:
    """The nodes from ``node`` (calling ``conv``) on that become ``conv``'s call: ``[node]``, then the batch norm
    after it (folded into ``conv`` here), then the activation after that (set as ``conv.activation`` here: one node,
    or a SiLU written out, two), with any ``nn.Identity`` between (timm's blocks hold them where a dropout or an
    anti-aliasing is off). A batch norm with its activation inside (timm's) is folded and then replaced by its
    activation, which follows as any would (``calls``: how often the graph calls each module)."""
    chain, name = [node], type(conv).__name__
    passed, nxt = _past_identities(node, modules)
    if nxt is not None and nxt.op == "call_module" and (isinstance(modules[nxt.target], _BatchNorm) or
                                                       _frozen(modules[nxt.target])):
        bn = modules[nxt.target]
        why = _why_not_folded(conv, bn)
        if why is None and _norm_act(bn) and not isinstance(bn.drop, torch.nn.Identity):
            why = "batch norm with a dropout inside"
        if why is None and _norm_act(bn) and calls[nxt.target] > 1:
            why = "batch norm with its activation inside called in more than one place"  # (it is replaced: below)
        if why is not None:
            found.kept[why] += 1
            return chain  # the activation follows the batch norm: nothing to fuse
        _fold(conv, bn)
        found.folded[name] += 1
        chain += passed
        if _norm_act(bn):  # (an nn.Identity where it has no activation: passed below)
            gm.set_submodule(nxt.target, bn.act)
            modules[nxt.target] = bn.act
        else:
            chain.append(nxt)
        passed, nxt = _past_identities(chain[-1], modules)
    chain += passed
    written = _written_silu(chain[-1], modules) if nxt is None else None
    activation = "silu" if written else None if nxt is None else _activation(nxt, chain[-1], modules)
    if activation is not None:
        conv.activation = activation
        found.fused[name] += 1
        chain += written or [nxt]
    elif nxt is not None and _elementwise(nxt, modules) is not None:
        found.kept[f"an activation the epilogue lacks ({_elementwise(nxt, modules)})"] += 1
    return chain


def _past_identities(node: Node, modules: dict) -> tuple[list[Node], Node | None]:
    """The ``nn.Identity`` calls after ``node``, each the one reader of the one before, and the one reader after them
    (or None)."""
    passed, nxt = [], _only_reader(node)
    while nxt is not None and nxt.op == "call_module" and isinstance(modules[nxt.target], torch.nn.Identity) and \
            nxt.args == ((passed or [node])[-1],) and not nxt.kwargs:
        passed.append(nxt)
        nxt = _only_reader(nxt)
    return passed, nxt


def _elementwise(node: Node, modules: dict) -> str | None:
    """torch's (or timm's) elementwise activation ``node`` calls, as a reader would write it (a module by its class
    and its extra_repr, a function or method by its name and arguments past the input), else None."""
    if node.op == "call_module":
        module, cls = modules[node.target], type(modules[node.target])
        timms = cls.__module__.startswith("timm.layers.activations")
        if not timms and (cls.__module__ != "torch.nn.modules.activation" or cls.__name__.lower() not in _ELEMENTWISE_MODULES):
            return None
        return f"{cls.__name__}({module.extra_repr()})" if module.extra_repr() else cls.__name__
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    if node.op not in ("call_function", "call_method") or name.rstrip("_") not in _ELEMENTWISE:
        return None
    extra = [repr(a) for a in node.args[1:]] + [f"{k}={v!r}" for k, v in node.kwargs.items()]
    return f"{name}({', '.join(extra)})" if extra else name


def _only_reader(node: Node) -> Node | None:
    """The one node reading ``node``'s value, if exactly one does (and reads it once)."""
    if len(node.users) != 1:
        return None
    (user,) = node.users
    return user if (*user.args, *user.kwargs.values()).count(node) == 1 else None


def _why_not_folded(conv: torch.nn.Module, bn: torch.nn.Module) -> str | None:
    """Why batch norm ``bn`` (frozen or not) after ``conv`` cannot fold into it, or None."""
    if bn.training or not getattr(bn, "track_running_stats", True) or bn.running_mean is None:
        return "batch norm in training mode or without running statistics"
    if bn.running_mean.numel() != conv.out_channels:
        return "batch norm over another number of channels"
    if conv.transposed and conv.groups > 1:
        return "batch norm after a grouped transposed convolution"
    return None


def _fold(conv: torch.nn.Module, bn: torch.nn.Module) -> None:
    """Fold eval-mode ``bn`` into ``conv``'s weight and bias (new parameters, laid out as :func:`tritonconv.nn.convert`
    lays weights out), computed in fp32 at least, rounded once to the weight's and bias's dtypes."""
    weight, bias = conv.weight, conv.bias
    acc = torch.promote_types(weight.dtype, torch.float32)

    def up(t):
        return None if t is None else t.detach().to(acc)

    with torch.no_grad():
        w, b = fuse_conv_bn_weights(up(weight), up(bias), up(bn.running_mean), up(bn.running_var), bn.eps,
                                    up(bn.weight), up(bn.bias), transpose=conv.transposed)
        conv.weight = torch.nn.Parameter(w.to(weight.dtype), weight.requires_grad)
        conv.bias = torch.nn.Parameter(b.to(weight.dtype if bias is None else bias.dtype),
                                       weight.requires_grad if bias is None else bias.requires_grad)
    if not conv.transposed:
        nn.lay_out_weight(conv)


def _activation(node: Node, source: Node, modules: dict) -> str | None:
    """The activation ``node`` applies to ``source`` (a name :func:`tritonconv._checks.check_activation` takes) if
    tritonconv's epilogue computes it, else None."""
    if node.op == "call_module":
        module = modules[node.target]
        if node.args != (source,) or node.kwargs:
            return None
        if type(module) is torch.nn.PReLU:
            return _prelu(module)
        found = _MODULES.get(type(module))
        if found is None:
            return _traced_activation(module)
        return _named(found, {k: getattr(module, k) for k in _KEYWORDS[found] if k != "inplace"})
    table = _METHODS if node.op == "call_method" else _FUNCTIONS if node.op == "call_function" else {}
    if node.target not in table or not node.args or node.args[0] is not source:
        return None
    found = table[node.target]
    names = _KEYWORDS.get(found, ())
    given = {**dict(zip(names, node.args[1:])), **node.kwargs}
    if len(node.args) > 1 + len(names) or set(given) - set(names):
        return None
    return _named(found, given)


def _prelu(module: torch.nn.PReLU) -> str | None:
    """An eval-mode PReLU of one slope as the leaky ReLU of its learned slope (fixed for inference, as a folded batch
    norm's statistics are), else None: a slope per channel, which the epilogue cannot take, or one still learned."""
    if module.training or module.weight.numel() != 1 or module.weight.is_meta:
        return None
    return _leaky(module.weight.detach().float().item())


def _traced_activation(module: torch.nn.Module) -> str | None:
    """The activation a timm activation module computes (a timm batch norm's ``act``, a leaf of the graph) where its
    forward, traced, is one function or method of its input that the epilogue computes (timm's ``GELU``,
    ``GELUTanh``, ``Sigmoid``, ``Tanh``) or a SiLU written out (its ``Swish``), else None."""
    if not type(module).__module__.startswith("timm."):
        return None
    try:
        graph = _Tracer().trace(module)
    except Exception:
        return None
    nodes, modules = list(graph.nodes), dict(module.named_modules())
    if [n.op for n in nodes[::len(nodes) - 1]] != ["placeholder", "output"] or len(nodes[-1].args) != 1:
        return None
    if len(nodes) == 3 and nodes[-1].args[0] is nodes[1]:
        return _activation(nodes[1], nodes[0], modules)
    written = _written_silu(nodes[0], modules)
    return "silu" if written and len(nodes) == 4 and nodes[-1].args[0] is written[-1] else None


def _written_silu(node: Node, modules: dict) -> list[Node] | None:
    """``[sigmoid, product]`` where ``node``'s two readers compute ``node * sigmoid(node)`` (a SiLU written out, as
    timm's ``Swish`` and hand-written blocks have it, in either order, the product in place or not), else None."""
    if len(node.users) != 2:
        return None
    for sig in node.users:
        if len(sig.users) != 1 or _activation(sig, node, modules) != "sigmoid":
            continue
        (prod,) = sig.users
        if prod in node.users and (prod.op, prod.target) in _PRODUCTS and len(prod.args) == 2 and \
                set(prod.args) == {node, sig} and not prod.kwargs:
            return [sig, prod]
    return None


def _named(found: str, given: dict) -> str | None:
    """The epilogue's name of torch's activation ``found`` given ``given`` (its arguments past the input), or None
    where the epilogue computes no such one (a GELU approximated otherwise than by tanh, an ELU of another alpha)."""
    if found == "leaky_relu":
        return _leaky(given.get("negative_slope", 0.01))
    if found == "gelu":
        return {"none": "gelu", "tanh": "gelu_tanh"}.get(given.get("approximate", "none"))
    if found == "elu":
        alpha = given.get("alpha", 1.0)
        return "elu" if isinstance(alpha, (int, float)) and alpha == 1.0 else None
    if found in ("hardtanh", "clamp", "clamp_min"):  # ReLU and ReLU6 written as bounds
        low, high = given.get("min_val", -1.0) if found == "hardtanh" else given.get("min"), \
            given.get("max_val", 1.0) if found == "hardtanh" else given.get("max")
        bounds = (low, math.inf if high is None else high)
        if not all(isinstance(b, (int, float)) for b in bounds):
            return None
        return {(0, math.inf): "relu", (0, 6): "relu6"}.get(bounds)
    return found


def _leaky(slope) -> str | None:
    """The activation name of a leaky ReLU of ``slope``, or None where the epilogue cannot take it (a traced value, or
    a slope that is no finite number)."""
    if not isinstance(slope, (int, float)):
        return None
    name = _checks.leaky_relu(slope)
    return name if _checks.negative_slope(name) is not None else None

