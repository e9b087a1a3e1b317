"""Domain-parallel convolution (tritonconv.distributed) on the gloo backend, 2 and 4 processes started here:
each rank's output and every gradient equal the single-process convolution's, uneven shards included."""

import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from tritonconv import distributed

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
        err = ((got.double() - expected).norm() / expected.norm()).item()
        assert err < 1e-5, f"{what}: relative error {err:.2e}"


def check_sharded(rank: int, world: int, op: str, x_shape, w_shape, dim: int, kw: dict) -> None:
    """This rank's output and gradients of ``op`` on its shard against one process's, in float64."""
    transposed = op.startswith("conv_transpose")
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(x_shape, generator=g), torch.randn(w_shape, generator=g)
    b = torch.randn(w_shape[1] * kw.get("groups", 1) if transposed else w_shape[0], generator=g)
    leaves = [t.double().requires_grad_() for t in (x, w, b)]
    ref = getattr(F, op)(*leaves, **kw)
    dy = torch.randn(ref.shape, generator=g)
    ref.backward(dy.double())
    sizes = chunks(x.shape[dim], world)
    start = sum(sizes[:rank])
    xs = x.narrow(dim, start, sizes[rank]).clone().requires_grad_()
    ws, bs = w.clone().requires_grad_(), b.clone().requires_grad_()
    y = getattr(distributed, op)(xs, ws, bs, dim=dim, **kw)
    ndim = len(x_shape) - 2
    if transposed:
        along = [distributed.shapes.as_tuple(kw.get(name, default), ndim, name)[dim - 2]
                 for name, default in (("stride", 1), ("padding", 0), ("output_padding", 0), ("dilation", 1))]
        halo = distributed.Halo.plan_transposed(sizes, w_shape[dim], *along)
    else:
        halo = distributed.Halo.plan(sizes, w_shape[dim], *_axis(kw, dim, ndim, w_shape))
    o0, o1 = halo.outputs[rank], halo.outputs[rank + 1]
    (y * dy.narrow(dim, o0, o1 - o0)).sum().backward()
    for name, got, expected in (("output", y, ref.detach().narrow(dim, o0, o1 - o0)),
                                ("input grad", xs.grad, leaves[0].grad.narrow(dim, start, sizes[rank])),
                                ("weight grad", ws.grad, leaves[1].grad), ("bias grad", bs.grad, leaves[2].grad)):
        compare(f"{op} {kw} rank {rank}: {name}", got, expected)


def worker(rank: int, world: int, init: str, errors: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        for op, x_shape, w_shape, dim, kw in CASES + TRANSPOSED:
            check_sharded(rank, world, op, x_shape, w_shape, dim, kw)
        for dim in (2, 3):  # (2+1)D: the mid tensor stays sharded; each stage exchanges its own halo
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
            spatial = distributed.Halo.plan(sizes, *((1, 1, (0, 0), 1) if dim == 2 else (3, 1, (1, 1), 1)))
            mid = [b - a for a, b in zip(spatial.outputs, spatial.outputs[1:])]
            final = distributed.Halo.plan(mid, *((3, 2, (1, 1), 1) if dim == 2 else (1, 1, (0, 0), 1)))
            o0, o1 = final.outputs[rank], final.outputs[rank + 1]
            (y * dy.narrow(dim, o0, o1 - o0)).sum().backward()
            for name, got, expected in (("output", y, ref.detach().narrow(dim, o0, o1 - o0)),
                                        ("input grad", xs.grad, leaves[0].grad.narrow(dim, start, sizes[rank])),
                                        ("spatial weight grad", ws_.grad, leaves[1].grad),
                                        ("temporal weight grad", wt_.grad, leaves[2].grad)):
                compare(f"(2+1)D dim {dim} rank {rank}: {name}", got, expected)
        train_two_steps(rank, world)
    except Exception:
        with open(f"{errors}.{rank}", "w") as f:
            f.write(traceback.format_exc())
    finally:
        dist.destroy_process_group()


def encoder_decoder(x, params, conv3d, conv_transpose3d):
    """conv + ReLU, strided conv + ReLU, transposed conv: a small 3-D encoder-decoder."""
    w1, b1, w2, b2, w3, b3 = params
    h = conv3d(x, w1, b1, padding=1, activation="relu")
    h = conv3d(h, w2, b2, stride=2, padding=1, activation="relu")
    return conv_transpose3d(h, w3, b3, stride=2)


def train_two_steps(rank: int, world: int) -> None:
    """Two SGD steps on a volume sharded along depth give the parameters one process gets."""
    import tritonconv

    g = torch.Generator().manual_seed(3)
    x, target = torch.randn(1, 1, 16, 6, 4, generator=g), torch.randn(1, 2, 16, 6, 4, generator=g)
    init = [torch.randn(4, 1, 3, 3, 3, generator=g) / 3, torch.randn(4, generator=g) / 3,
            torch.randn(4, 4, 3, 3, 3, generator=g) / 6, torch.randn(4, generator=g) / 3,
            torch.randn(4, 2, 2, 2, 2, generator=g) / 3, torch.randn(2, generator=g) / 3]
    runs = {}
    for name in ("one process", "sharded"):
        params = [p.clone().requires_grad_() for p in init]
        for _ in range(2):
            if name == "one process":
                y = encoder_decoder(x, params, tritonconv.conv3d, tritonconv.conv_transpose3d)
                loss = (y - target).square().sum()
            else:
                sizes = chunks(16, world)
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


def _axis(kw, dim, ndim, w_shape):
    """(stride, padding pair, dilation) of the sharded axis, as distributed resolves them."""
    from tritonconv import shapes

    stride = shapes.as_tuple(kw.get("stride", 1), ndim, "stride")
    dilation = shapes.as_tuple(kw.get("dilation", 1), ndim, "dilation")
    pads = shapes.resolve_padding(kw.get("padding", 0), w_shape[2:], stride, dilation)
    return stride[dim - 2], pads[dim - 2], dilation[dim - 2]


@pytest.mark.parametrize("world", [2, 4])
def test_sharded_convolutions_equal_one_process(tmp_path, world):
    errors = str(tmp_path / "errors")
    mp.start_processes(worker, args=(world, f"file://{tmp_path / 'store'}", errors), nprocs=world,
                       start_method="spawn", join=True)
    failures = [p.read_text() for p in sorted(tmp_path.glob("errors.*"))]
    assert not failures, "\n".join(failures)


def test_halo_plan():
    """Ownership by window start, halos from the right neighbour, and thin shards refused."""
    plan = distributed.Halo.plan([5, 5, 3], kernel=3, stride=1, padding=(1, 1), dilation=1)
    assert plan.outputs == (0, 6, 11, 13) and plan.recv == (2, 2, 0)  # windows starting at -1..4 are rank 0's
    assert (plan.lo[0], plan.hi[0]) == (-1, 7) and (plan.lo[2], plan.hi[2]) == (10, 14)  # 14: a zero past the end
    strided = distributed.Halo.plan([7, 6], kernel=3, stride=2, padding=(1, 1), dilation=1)
    assert strided.outputs == (0, 4, 7) and strided.recv == (1, 0)
    with pytest.raises(ValueError, match="past its shard, more than rank 1 holds"):
        distributed.Halo.plan([6, 6, 1, 6], kernel=5, stride=1, padding=(0, 0), dilation=2)
    thin = distributed.Halo.plan([6, 6, 6, 3], kernel=3, stride=2, padding=(1, 1), dilation=2)
    assert thin.outputs == (0, 4, 7, 10, 10) and thin.recv == (4, 4, 3, 0)  # the last shard owns no output
