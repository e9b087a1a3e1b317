"""Domain-parallel convolution (tritonconv.distributed) on the gloo backend, 2 and 4 processes started here:
each rank's output and every gradient equal the single-process convolution's, uneven shards included."""

import datetime
import math
import random
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tritonconv import distributed, memory, shapes

CASES = [  # op, input shape, weight shape, sharded dim, arguments
    ("conv1d", (2, 3, 19), (4, 3, 3), 2, dict(padding=1)),
    ("conv1d", (1, 4, 23), (4, 2, 4), 2, dict(padding="same", groups=2)),  # even kernel: asymmetric padding
    ("conv2d", (1, 4, 6, 21), (6, 2, 3, 3), 3, dict(stride=2, padding=1, dilation=(1, 2), groups=2)),
    ("conv2d", (2, 2, 17, 5), (3, 2, 3, 2), 2, dict(stride=(3, 1), padding=(2, 0))),  # stride > kernel
    ("conv3d", (1, 2, 21, 5, 4), (3, 2, 3, 3, 3), 2, dict(padding=(2, 1, 1), dilation=(2, 1, 1))),
]


TRANSPOSED = [  # op, input shape, weight shape (C_in, C_out / groups, ...), sharded dim, arguments
    ("conv_transpose1d", (2, 4, 13), (4, 3, 3), 2, dict(stride=2, padding=1, output_padding=1)),
    ("conv_transpose2d", (1, 4, 5, 11), (4, 2, 3, 2), 3, dict(stride=(1, 3), padding=(1, 0), groups=2)),
    ("conv_transpose3d", (1, 2, 10, 3, 4), (2, 3, 3, 3, 3), 2, dict(stride=(2, 1, 1), padding=1, dilation=(2, 1, 1))),
]


def chunks(length: int, ranks: int) -> list[int]:
    """torch.chunk's (and DTensor's) split: ceil(length / ranks) each, the last ones smaller or empty."""
    sizes = [len(c) for c in torch.arange(length).chunk(ranks)]
    return sizes + [0] * (ranks - len(sizes))


def compare(what: str, got: torch.Tensor, expected: torch.Tensor) -> None:
    assert got.shape == expected.shape, f"{what}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    if expected.numel():  # a thin last shard owns no output
        err = ((got.double() - expected).norm() / expected.norm().clamp_min(1e-30)).item()  # 0: slices no tap reads
        assert err < 1e-5, f"{what}: relative error {err:.2e}"


def shard(t: torch.Tensor, axes) -> torch.Tensor:
    """This rank's block of ``t``: along each ``(dim, group, sizes)`` the slab at its rank in that group."""
    for dim, group, sizes in axes:
        rank = dist.get_rank(group)
        t = t.narrow(dim, sum(sizes[:rank]), sizes[rank])
    return t


def owned(op: str, w_shape, kw: dict, axes, out_sizes="chunk") -> list[tuple[int, int, int]]:
    """``(dim, first, count)`` of this rank's outputs along each sharded axis, from the op's own plans."""
    plan = distributed._conv_transpose_plan if op.startswith("conv_transpose") else distributed._conv_plan
    names = ("stride", "padding", "output_padding", "groups", "dilation") if "transpose" in op else \
        ("stride", "padding", "dilation", "groups")
    args = [kw.get(n, 1 if n in ("stride", "dilation", "groups") else 0) for n in names]
    cuts = []
    for d, group, sizes in axes:
        halo, r = plan(len(w_shape) - 2, w_shape, *args, d, sizes, out_sizes), dist.get_rank(group)
        cuts.append((d, halo.outputs[r], halo.outputs[r + 1] - halo.outputs[r]))
    return cuts


def block(t: torch.Tensor, cuts) -> torch.Tensor:
    for d, first, count in cuts:
        t = t.narrow(d, first, count)
    return t


def reference(op: str, x_shape, w_shape, kw: dict, seed: int):
    """Random ``x``, ``w``, ``b`` and output gradient ``dy``; one process's float64 output ``ref`` and its
    ``leaves`` (x, w, b) holding their gradients."""
    g = torch.Generator().manual_seed(seed)
    x, w = torch.randn(x_shape, generator=g), torch.randn(w_shape, generator=g)
    b = torch.randn(w_shape[1] * kw.get("groups", 1) if op.startswith("conv_transpose") else w_shape[0], generator=g)
    leaves = [t.double().requires_grad_() for t in (x, w, b)]
    ref = getattr(F, op)(*leaves, **kw)
    dy = torch.randn(ref.shape, generator=g)
    ref.backward(dy.double())
    return x, w, b, dy, ref, leaves


def check_sharded(op: str, x_shape, w_shape, where, kw: dict, out_sizes="chunk") -> None:
    """This rank's output and gradients of ``op`` on its block against one process's, in float64. ``where``:
    the sharded dimension (over the world, torch.chunk's split) or ``(dim, group, sizes)`` per sharded one."""
    axes = [(where, None, chunks(x_shape[where], dist.get_world_size()))] if isinstance(where, int) else where
    x, w, b, dy, ref, leaves = reference(op, x_shape, w_shape, kw, seed=0)
    xs = shard(x, axes).clone().requires_grad_()
    ws, bs = w.clone().requires_grad_(), b.clone().requires_grad_()
    if len(axes) == 1:
        sharded = dict(dim=axes[0][0], group=axes[0][1], sizes=axes[0][2])
    else:
        sharded = dict(dim=tuple(a[0] for a in axes), group=tuple(a[1] for a in axes))
    y = getattr(distributed, op)(xs, ws, bs, **sharded, out_sizes=out_sizes, **kw)
    cuts = owned(op, w_shape, kw, axes, out_sizes)
    (y * block(dy, cuts)).sum().backward()
    what = f"{op} {kw} dims {[a[0] for a in axes]} sizes {[a[2] for a in axes]} out_sizes {out_sizes} " \
           f"rank {dist.get_rank()}"
    for name, got, expected in (("output", y, block(ref.detach(), cuts)),
                                ("input grad", xs.grad, shard(leaves[0].grad, axes)),
                                ("weight grad", ws.grad, leaves[1].grad), ("bias grad", bs.grad, leaves[2].grad)):
        compare(f"{what}: {name}", got, expected)


def check_dtensor(mesh, op: str, x_shape, w_shape, placements, kw: dict, dtensor_weight: bool = False) -> None:
    """A DTensor input's output (a DTensor of the same placements) and gradients against one process's."""
    from torch.distributed.tensor import DTensor, Replicate, distribute_tensor

    x, w, b, dy, ref, leaves = reference(op, x_shape, w_shape, kw, seed=2)
    xd = distribute_tensor(x, mesh, placements).requires_grad_()
    params = [distribute_tensor(t, mesh, [Replicate()] * mesh.ndim) if dtensor_weight else t.clone()
              for t in (w, b)]
    params = [t.requires_grad_() for t in params]
    y = getattr(distributed, op)(xd, *params, **kw)
    what = f"DTensor {op} {kw} {placements} rank {dist.get_rank()}"
    assert isinstance(y, DTensor) and tuple(y.placements) == tuple(placements), f"{what}: {type(y)}"
    compare(f"{what}: output", y.full_tensor(), ref.detach())
    (y.to_local() * distribute_tensor(dy, mesh, placements).to_local()).sum().backward()  # each rank's part of the loss
    compare(f"{what}: input grad", xd.grad.full_tensor(), leaves[0].grad)
    for name, p, expected in (("weight grad", params[0], leaves[1].grad), ("bias grad", params[1], leaves[2].grad)):
        grad = p.grad.full_tensor() if dtensor_weight else p.grad
        if not dtensor_weight and any(getattr(pl, "dim", None) == 0 for pl in placements):
            grad = grad.clone()  # a plain weight's gradient is this batch shard's: sum it as data parallelism would
            dist.all_reduce(grad)
            grad /= math.prod(mesh.size(i) for i, pl in enumerate(placements) if getattr(pl, "dim", None) != 0)
        compare(f"{what}: {name}", grad, expected)


def worker(rank: int, world: int, init: str, errors: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world,
                            timeout=datetime.timedelta(minutes=3))  # a rank that fails never hangs the others long
    try:
        for case in random_cases(world, count=2 if world == 2 else 4):
            check_sharded(*case)
        x, w = torch.randn(1, 2, 5, 4 * world + 1), torch.randn(3, 2, 3, 3)
        mine = x.tensor_split(world, -1)[rank]
        assert torch.equal(distributed.conv2d(mine, w, padding=1, dim=-1), distributed.conv2d(mine, w, padding=1, dim=3))
        dtensors(world)
        converted_model(world)  # a 1-D mesh on two ranks, 2 x 2 on four
        if world == 2:
            fully_sharded(rank, world)
        if world == 4:  # the rest once, on four ranks (end ranks and middle ones; uneven, thin and empty shards)
            for op, x_shape, w_shape, dim, kw in CASES + TRANSPOSED:
                check_sharded(op, x_shape, w_shape, dim, kw)
            for op, x_shape, w_shape, dim, kw in (CASES[1], CASES[2], TRANSPOSED[0]):  # the windows starting in a shard
                check_sharded(op, x_shape, w_shape, dim, kw, out_sizes=None)
            more_than_neighbours(rank)
            two_dimensions()
            data_parallel()
            conv2plus1d(rank, world)
            train_two_steps(rank, world)
        open(f"{errors}-done.{rank}", "w").close()  # every check of this rank ran and passed
    except Exception:
        with open(f"{errors}.{rank}", "w") as f:
            f.write(traceback.format_exc())
    finally:
        try:  # every rank done before any tears its group down: a send still in flight to a slower rank aborts gloo
            dist.barrier()
        finally:
            dist.destroy_process_group()


def random_cases(world: int, count: int = 4) -> list[tuple]:
    """Seeded random convolutions and transposed convolutions, 1-D to 3-D, on random uneven shards (empty
    ones included) of a random spatial dimension; the same on every rank."""
    rng, cases = random.Random(world), []
    while len(cases) < count:
        ndim, transposed = rng.randint(1, 3), rng.random() < 0.4
        groups = rng.choice([1, 2])
        c_in, c_out = groups * rng.randint(1, 2), groups * rng.randint(1, 2)
        kernel = [rng.randint(1, 3) for _ in range(ndim)]
        stride, dilation = [rng.randint(1, 3) for _ in range(ndim)], [rng.randint(1, 2) for _ in range(ndim)]
        spatial = [rng.randint(3, 6) for _ in range(ndim)]
        dim = rng.randint(2, ndim + 1)
        spatial[dim - 2] = rng.randint(world, 14)
        cuts = sorted(rng.randint(0, spatial[dim - 2]) for _ in range(world - 1))
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, spatial[dim - 2]])]
        x_shape = (rng.randint(1, 2), c_in, *spatial)
        if transposed:
            padding = [rng.randint(0, (k - 1) * d) for k, d in zip(kernel, dilation)]
            out_pad = [rng.randint(0, max(s, d) - 1) for s, d in zip(stride, dilation)]
            kw = dict(stride=stride, padding=padding, output_padding=out_pad, groups=groups, dilation=dilation)
            w_shape = (c_in, c_out // groups, *kernel)
            if min(shapes.conv_transpose_output_size(*a) for a in zip(spatial, kernel, stride, padding, out_pad,
                                                                      dilation)) <= 0:
                continue
        else:
            padding = [rng.randint(0, 2) for _ in range(ndim)]
            kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
            w_shape = (c_out, c_in // groups, *kernel)
            if min(shapes.conv_output_shape(x_shape, w_shape, stride, padding, dilation)[2:]) <= 0:
                continue
        op = f"conv{'_transpose' if transposed else ''}{ndim}d"
        cases.append((op, x_shape, w_shape, [(dim, None, sizes)], kw, rng.choice(["chunk", None])))
    return cases


def more_than_neighbours(rank: int) -> None:
    """Shards thinner than a window: the slices come from every rank that holds them."""
    check_sharded("conv1d", (1, 2, 19), (3, 2, 5), [(2, None, [8, 1, 1, 9])], dict(dilation=2), out_sizes=None)
    check_sharded("conv1d", (1, 2, 19), (3, 2, 5), [(2, None, [0, 12, 1, 6])], dict(padding=3, dilation=2),
                  out_sizes=[5, 0, 6, 6])
    check_sharded("conv_transpose1d", (1, 2, 9), (2, 3, 4), [(2, None, [6, 1, 0, 2])], dict(stride=1, dilation=2))


def two_dimensions() -> None:
    """A 2 x 2 mesh: two spatial dimensions sharded at once, corners included."""
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh("cpu", (2, 2))
    rows, cols = mesh.get_group(0), mesh.get_group(1)
    check_sharded("conv2d", (1, 3, 9, 7), (4, 3, 3, 3), [(2, rows, [5, 4]), (3, cols, [4, 3])], dict(padding=1))
    check_sharded("conv3d", (1, 2, 4, 11, 9), (3, 2, 2, 3, 3), [(4, rows, [5, 4]), (3, cols, [6, 5])],
                  dict(stride=(1, 2, 2), padding=(0, 1, 2), dilation=(1, 2, 1)))
    check_sharded("conv3d", (1, 2, 5, 7, 4), (3, 2, 3, 3, 3), [(2, rows, [3, 2]), (3, cols, [7, 0])],
                  dict(padding=1), out_sizes=None)
    check_sharded("conv_transpose2d", (1, 2, 5, 6), (2, 3, 3, 3), [(2, rows, [3, 2]), (3, cols, [3, 3])],
                  dict(stride=2, padding=1, output_padding=1))


def dtensors(world: int) -> None:
    """DTensor inputs: spatial and batch shards on one or two mesh dimensions; DTensor or plain parameters."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    import tritonconv

    if world == 2:
        mesh = init_device_mesh("cpu", (2,))
        x, w = distribute_tensor(torch.randn(1, 2, 6, 5), mesh, [Shard(2)]), torch.randn(3, 2, 3, 3)
        tritonconv.conv2d(torch.randn(1, 2, 6, 5), w)  # a plain call of x's shape and strides: its signature is seen
        for call, message in ((lambda: tritonconv.conv2d(x, w),
                               "expected `input` to be a plain tensor, got a DTensor: sharded tensors go through "
                               "tritonconv.distributed.conv2d"),
                              (lambda: tritonconv.nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular")(x),
                               "padding_mode='circular' on a DTensor input: only 'zeros' is sharded")):
            try:
                call()
            except (TypeError, ValueError) as e:
                assert message in str(e), e
            else:
                raise AssertionError(f"accepted: {message}")
        check_dtensor(mesh, "conv1d", (2, 3, 11), (4, 3, 3), [Shard(2)], dict(padding=1, stride=2))
        check_dtensor(mesh, "conv2d", (1, 2, 5, 9), (3, 2, 3, 3), [Shard(3)], dict(padding="same"),
                      dtensor_weight=True)
        check_dtensor(mesh, "conv_transpose1d", (1, 2, 7), (2, 3, 3), [Shard(2)], dict(stride=2))
        return
    mesh = init_device_mesh("cpu", (2, 2))
    check_dtensor(mesh, "conv3d", (1, 2, 7, 5, 6), (3, 2, 3, 3, 3), [Shard(2), Shard(4)], dict(padding=1))
    check_dtensor(mesh, "conv2d", (1, 2, 9, 7), (3, 2, 3, 3), [Shard(3), Shard(2)], dict(stride=2, padding=1),
                  dtensor_weight=True)
    check_dtensor(mesh, "conv_transpose3d", (2, 2, 3, 5, 4), (2, 3, 2, 2, 2), [Shard(0), Shard(3)], dict(stride=2),
                  dtensor_weight=True)
    check_dtensor(mesh, "conv2d", (2, 2, 7, 5), (3, 2, 3, 3), [Shard(0), Shard(2)], dict(padding=1))
    try:
        check_dtensor(mesh, "conv2d", (1, 4, 6, 6), (3, 4, 3, 3), [Shard(1), Replicate()], {})
    except ValueError as e:
        assert "channels cannot be sharded" in str(e), e
    else:
        raise AssertionError("a channel-sharded DTensor was accepted")


def conv2plus1d(rank: int, world: int) -> None:
    """(2+1)D: the mid tensor stays sharded; each stage exchanges its own halo."""
    for dim in (2, 3):
        g = torch.Generator().manual_seed(1)
        x = torch.randn(1, 2, 14, 9, 5, generator=g)
        ws, wt = torch.randn(4, 2, 1, 3, 3, generator=g), torch.randn(3, 4, 3, 1, 1, generator=g)
        leaves = [t.double().requires_grad_() for t in (x, ws, wt)]
        ref = F.conv3d(torch.relu(F.conv3d(leaves[0], leaves[1], padding=(0, 1, 1))), leaves[2], stride=(2, 1, 1),
                       padding=(1, 0, 0))
        dy = torch.randn(ref.shape, generator=g)
        ref.backward(dy.double())
        sizes = chunks(x.shape[dim], world)
        start = sum(sizes[:rank])
        xs = x.narrow(dim, start, sizes[rank]).clone().requires_grad_()
        ws_, wt_ = ws.clone().requires_grad_(), wt.clone().requires_grad_()
        y = distributed.conv2plus1d(xs, ws_, wt_, stride=(2, 1, 1), padding=1, mid_activation="relu", dim=dim)
        owned = chunks(ref.shape[dim], world)  # each stage's output: torch.chunk's split
        o0, o1 = sum(owned[:rank]), sum(owned[:rank + 1])
        (y * dy.narrow(dim, o0, o1 - o0)).sum().backward()
        for name, got, expected in (("output", y, ref.detach().narrow(dim, o0, o1 - o0)),
                                    ("input grad", xs.grad, leaves[0].grad.narrow(dim, start, sizes[rank])),
                                    ("spatial weight grad", ws_.grad, leaves[1].grad),
                                    ("temporal weight grad", wt_.grad, leaves[2].grad)):
            compare(f"(2+1)D dim {dim} rank {rank}: {name}", got, expected)


def converted_model(world: int) -> None:
    """A converted 3-D model fed a DTensor, as the README's example: its convolutions (and a (2+1)D block) run
    sharded, ReLU on the DTensor as torch runs it, the loss a DTensor too; every parameter's gradient is the
    one-process one."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Shard, distribute_tensor

    import tritonconv

    torch.manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv3d(4, 4, 3, stride=2, padding=1), torch.nn.ReLU(),
                                torch.nn.ConvTranspose3d(4, 3, 2, stride=2),
                                tritonconv.nn.Conv2Plus1d(3, 2, 3, padding=1, mid_activation="relu")).double()
    x, target = torch.randn(1, 2, 8, 6, 4, dtype=torch.float64), torch.randn(1, 2, 8, 6, 4, dtype=torch.float64)
    ref = model(x)
    (ref - target).square().mean().backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    tritonconv.nn.convert(model)
    mesh = init_device_mesh("cpu", (world,) if world == 2 else (2, 2))
    placements = [Shard(2)] if world == 2 else [Shard(2), Shard(3)]
    y = model(distribute_tensor(x, mesh, placements))
    assert isinstance(y, DTensor) and tuple(y.placements) == tuple(placements)
    compare(f"converted model {placements}: output", y.full_tensor(), ref.detach())
    (y - distribute_tensor(target, mesh, placements)).square().mean().backward()
    for i, (p, e) in enumerate(zip(model.parameters(), expected)):
        compare(f"converted model {placements}: parameter {i} grad", p.grad, e)


def data_parallel() -> None:
    """DDP over one mesh dimension (batch), the domain sharded over the other: each replica's loss over its own
    batch half, DDP's average over replicas, gives the one-process gradient of the whole batch's loss."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor
    from torch.nn.parallel import DistributedDataParallel

    import tritonconv

    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Conv3d(2, 3, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv3d(3, 2, 3, padding=1)).double()
    x = torch.randn(4, 2, 6, 5, 4, dtype=torch.float64)
    model(x).square().mean().backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("batch", "domain"))
    ddp = DistributedDataParallel(tritonconv.nn.convert(model), process_group=mesh.get_group("batch"))
    y = ddp(distribute_tensor(x, mesh, [Shard(0), Shard(2)]))
    (y.to_local().square().sum() / (y.numel() / 2)).backward()  # this rank's part of its replica's mean
    for i, (p, e) in enumerate(zip(model.parameters(), expected)):
        compare(f"DDP over batch, domain sharded: parameter {i} grad", p.grad, e)


def fully_sharded(rank: int, world: int) -> None:
    """FSDP2 (``fully_shard``) then ``convert``: each rank's batch half, FSDP's average of the ranks' gradients, gives
    the one-process gradient of the whole batch's loss, and an optimizer step reaches the parameters FSDP gathers.
    ``convert`` first is refused by torch (FSDP2 takes no non-contiguous parameter; the weights are laid out
    channels-innermost): README, "Training and modules"; ``convert(lay_out_weights=False)`` first is taken."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    import tritonconv

    def make():
        torch.manual_seed(6)
        return torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.SiLU(),
                                   torch.nn.ConvTranspose3d(4, 2, 2, stride=2)).double()

    mesh = init_device_mesh("cpu", (world,))
    x = torch.randn(2 * world, 2, 4, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    model, sharded = make(), make()
    for layer in (sharded[0], sharded[2], sharded):
        fully_shard(layer, mesh=mesh)
    assert sum(tritonconv.nn.convert(sharded, report=True).converted.values()) == 2
    mine = x.tensor_split(world)[rank]
    steps = [torch.optim.SGD(m.parameters(), lr=0.01) for m in (model, sharded)]
    for step in range(2):
        model(x).square().mean().backward()
        sharded(mine).square().mean().backward()
        for i, (p, e) in enumerate(zip(sharded.parameters(), model.parameters())):
            compare(f"FSDP2, step {step}: parameter {i} grad", p.grad.full_tensor(), e.grad)
        for opt in steps:
            opt.step()
            opt.zero_grad()
    with pytest.raises(NotImplementedError, match="non-contiguous parameters"):
        fully_shard(tritonconv.nn.convert(make()), mesh=mesh)
    kept, whole = tritonconv.nn.convert(make(), lay_out_weights=False), make()  # torch's layout: either order
    for layer in (kept[0], kept[2], kept):
        fully_shard(layer, mesh=mesh)
    kept(mine).square().mean().backward()
    whole(x).square().mean().backward()
    for i, (p, e) in enumerate(zip(kept.parameters(), whole.parameters())):
        compare(f"FSDP2 after convert(lay_out_weights=False): parameter {i} grad", p.grad.full_tensor(), e.grad)


def encoder_decoder(x, params, conv3d, conv_transpose3d):
    """conv + ReLU, strided conv + ReLU, transposed conv: a small 3-D encoder-decoder."""
    w1, b1, w2, b2, w3, b3 = params
    h = conv3d(x, w1, b1, padding=1, activation="relu")
    h = conv3d(h, w2, b2, stride=2, padding=1, activation="relu")
    return conv_transpose3d(h, w3, b3, stride=2)


def train_two_steps(rank: int, world: int) -> None:
    """Two SGD steps on a volume sharded along depth give the parameters one process (torch) gets."""

    def torch_conv(conv):
        return lambda x, *a, activation=None, **k: torch.relu(conv(x, *a, **k)) if activation else conv(x, *a, **k)

    g = torch.Generator().manual_seed(3)
    x, target = torch.randn(1, 1, 8, 6, 4, generator=g), torch.randn(1, 2, 8, 6, 4, generator=g)
    init = [torch.randn(4, 1, 3, 3, 3, generator=g) / 3, torch.randn(4, generator=g) / 3,
            torch.randn(4, 4, 3, 3, 3, generator=g) / 6, torch.randn(4, generator=g) / 3,
            torch.randn(4, 2, 2, 2, 2, generator=g) / 3, torch.randn(2, generator=g) / 3]
    runs = {}
    for name in ("one process", "sharded"):
        params = [p.clone().requires_grad_() for p in init]
        for _ in range(2):
            if name == "one process":
                y = encoder_decoder(x, params, torch_conv(F.conv3d), torch_conv(F.conv_transpose3d))
                loss = (y - target).square().sum()
            else:
                sizes = chunks(x.shape[2], world)
                shard = x.narrow(2, sum(sizes[:rank]), sizes[rank])
                y = encoder_decoder(shard, params, lambda *a, **k: distributed.conv3d(*a, dim=2, **k),
                                    lambda *a, **k: distributed.conv_transpose3d(*a, dim=2, **k))
                lengths = distributed.shard_sizes(y, 2)
                loss = (y - target.narrow(2, sum(lengths[:rank]), lengths[rank])).square().sum()  # this rank's part
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p -= 0.01 * p.grad
                    p.grad = None
        runs[name] = params
    for a, b in zip(*runs.values()):
        err = ((a - b).norm() / b.norm()).item()
        assert err < 1e-5, f"rank {rank}: parameters after two sharded steps differ by {err:.2e}"


@pytest.mark.parametrize("world", [2, 4])
def test_sharded_convolutions_equal_one_process(tmp_path, world):
    """Every rank's checks pass. A rank that dies is a failure unless every rank had finished its checks: gloo has
    aborted a worker at teardown, after the checks and the last barrier ("terminate called without an active
    exception", twice in some fifty CI runs), which says nothing of the convolutions."""
    errors = str(tmp_path / "errors")
    try:
        mp.start_processes(worker, args=(world, f"file://{tmp_path / 'store'}", errors), nprocs=world,
                           start_method="spawn", join=True)
    except mp.ProcessExitedException:
        if len(list(tmp_path.glob("errors-done.*"))) < world:
            raise
    failures = [p.read_text() for p in sorted(tmp_path.glob("errors.*"))]
    assert not failures, "\n".join(failures)
    assert len(list(tmp_path.glob("errors-done.*"))) == world


def test_halo_plan():
    """Ownership by window start, halos from the right neighbour, windows past the next rank."""
    plan = distributed.Halo.plan([5, 5, 3], kernel=3, stride=1, padding=(1, 1), dilation=1)
    assert plan.outputs == (0, 6, 11, 13)  # windows starting at -1..4 are rank 0's
    assert [plan.received(r) for r in range(3)] == [2, 2, 0] and [plan.sent(r) for r in range(3)] == [0, 2, 2]
    assert (plan.before[0], plan.lo[0], plan.hi[0]) == (1, 0, 7) and (plan.lo[2], plan.hi[2], plan.after[2]) == (10, 13, 1)
    strided = distributed.Halo.plan([7, 6], kernel=3, stride=2, padding=(1, 1), dilation=1)
    assert strided.outputs == (0, 4, 7) and strided.piece(0, 1) == (7, 8)
    thin = distributed.Halo.plan([6, 6, 1, 6], kernel=5, stride=1, padding=(0, 0), dilation=2)
    assert thin.piece(1, 2) == (12, 13) and thin.piece(1, 3) == (13, 19)  # rank 1 reads from ranks 2 and 3
    empty = distributed.Halo.plan([6, 6, 6, 3], kernel=3, stride=2, padding=(1, 1), dilation=2)
    assert empty.outputs == (0, 4, 7, 10, 10) and empty.lo[3] == empty.hi[3]  # the last shard owns no output
    with pytest.raises(ValueError, match="expected `out_sizes` to be 3 lengths >= 0 adding up to 13"):
        distributed.Halo.plan([5, 5, 3], 3, 1, (1, 1), 1, outputs=[6, 6, 0])


def _window(x: torch.Tensor, halo, r: int) -> torch.Tensor:
    zeros = lambda n: x.new_zeros(*x.shape[:-1], n)  # noqa: E731
    return torch.cat([zeros(halo.before[r]), x[..., halo.lo[r]:halo.hi[r]], zeros(halo.after[r])], -1)


def _split(total: int, cuts: list[int]) -> list[int]:
    """``total`` cut at ``cuts`` (mod total + 1): ``len(cuts) + 1`` lengths, empty ones included."""
    bounds = [0, *sorted(c % (total + 1) for c in cuts), total]
    return [b - a for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=300, deadline=None)
@given(length=st.integers(1, 24), cuts=st.lists(st.integers(0, 99), max_size=4), kernel=st.integers(1, 4),
       stride=st.integers(1, 4), dilation=st.integers(1, 3), pads=st.tuples(st.integers(0, 4), st.integers(0, 4)),
       out_cuts=st.none() | st.lists(st.integers(0, 99), max_size=4), transposed=st.booleans(), seed=st.integers(0, 9))
def test_halo_plans_put_every_split_together(length, cuts, kernel, stride, dilation, pads, out_cuts, transposed, seed):
    """Any shard sizes (empty ones too) and any output split: each rank's window, convolved, gives its outputs,
    and the parts together are the whole convolution (torch's, one process)."""
    sizes = _split(length, cuts)
    g = torch.Generator().manual_seed(seed)
    x, w = torch.randn(1, 1, length, generator=g, dtype=torch.float64), torch.randn(1, 1, kernel, generator=g,
                                                                                     dtype=torch.float64)
    if transposed:
        padding, output_padding = min(pads[0], (kernel - 1) * dilation), pads[1] % max(stride, dilation)
        assume(shapes.conv_transpose_output_size(length, kernel, stride, padding, output_padding, dilation) > 0)
        ref = F.conv_transpose1d(x, w, stride=stride, padding=padding, output_padding=output_padding,
                                 dilation=dilation)
        outputs = None if out_cuts is None else _split(ref.shape[-1], ((out_cuts or [0]) * len(sizes))[:len(sizes) - 1])
        halo = distributed.Halo.plan_transposed(sizes, kernel, stride, padding, output_padding, dilation, outputs)
    else:
        assume(shapes.conv_output_size(length, kernel, stride, pads, dilation) > 0)
        ref = F.conv1d(F.pad(x, pads), w, stride=stride, dilation=dilation)
        outputs = None if out_cuts is None else _split(ref.shape[-1], ((out_cuts or [0]) * len(sizes))[:len(sizes) - 1])
        halo = distributed.Halo.plan(sizes, kernel, stride, pads, dilation, outputs)
    assert halo.outputs[-1] == ref.shape[-1] and len(halo.outputs) == len(sizes) + 1
    parts = []
    for r in range(len(sizes)):
        o0, o1 = halo.outputs[r], halo.outputs[r + 1]
        assert sum(b - a for a, b in (halo.piece(r, q) for q in range(len(sizes)))) == halo.hi[r] - halo.lo[r]
        if o1 == o0:
            continue
        if transposed:
            y = F.conv_transpose1d(_window(x, halo, r), w, stride=stride, dilation=dilation)
            first = halo.lo[r] * stride - padding
            assert first <= o0 and first + y.shape[-1] >= o1
            parts.append(y[..., o0 - first:o1 - first])
        else:
            parts.append(F.conv1d(_window(x, halo, r), w, stride=stride, dilation=dilation))
            assert parts[-1].shape[-1] == o1 - o0
    torch.testing.assert_close(torch.cat(parts, -1), ref)


def test_shard_shares():
    """Per-rank costs on paper: what one rank sends another receives, the ranks' work adds up to the whole
    convolution's, and each window is the halo plan's."""
    x_shape, w_shape = (1, 2, 11, 9, 7), (3, 2, 3, 3, 3)
    whole = shapes.conv_macs(x_shape, w_shape, shapes.conv_output_shape(x_shape, w_shape, 2, 1, 1))
    for shards in ({2: [3, 3, 3, 2]}, {3: [5, 4], 4: [4, 3]}, {4: [2, 2, 2, 1], 2: [6, 5]}):
        shares = memory.shard_shares(x_shape, w_shape, shards, stride=2, padding=1, dtype="float32", out_sizes=None)
        assert len(shares) == math.prod(len(n) for n in shards.values())
        assert sum(s.received for s in shares) == sum(s.sent for s in shares) > 0
        assert sum(s.macs for s in shares) == whole
        for s in shares:
            for (d, n), r in zip(shards.items(), s.coords):
                h = shapes.Halo.plan(n, 3, 2, (1, 1), 1)
                assert s.input_shape[d] == n[r] and s.window_shape[d] == h.before[r] + h.hi[r] - h.lo[r] + h.after[r]
    depth, square = (memory.shard_shares((1, 8, 64, 64, 64), (8, 8, 3, 3, 3), shards, padding=1)
                     for shards in ({2: [4] * 16}, {3: [16] * 4, 4: [16] * 4}))
    assert len({s.macs for s in depth}) == 1  # torch.chunk's split of the output: the same work on every rank
    assert max(s.received for s in depth) == 2 * 8 * 64 * 64 * 2  # a depth slice from each side, bf16
    assert max(s.received for s in square) == 2 * 8 * 64 * (16 + 18) * 2  # 4 x 4: less surface (18: after the first halo)
