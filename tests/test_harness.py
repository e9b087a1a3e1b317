"""The test harness's own pieces: what lets the same tests run on CUDA tensors in the GPU session."""

import torch
from conftest import DrawnOnTheGenerator


def test_seeded_draws_on_another_default_device_come_from_the_generators_device():
    """Under a default device other than the generator's (the GPU session: CUDA, which refuses a CPU generator; here
    ``meta``), ``torch.randn(..., generator=g)`` draws on ``g``'s device and moves the draw: the generator advances as
    on the CPU, the tensor lands on the default device; explicit devices and unseeded draws pass through."""
    g, fresh = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    with torch.device("meta"), DrawnOnTheGenerator():
        x = torch.randn(2, 3, generator=g)
        y = torch.randn(4, device="cpu")
        z = torch.randn(5)
    assert x.device.type == "meta" and x.shape == (2, 3)
    assert y.device.type == "cpu" and z.device.type == "meta"
    torch.randn(2, 3, generator=fresh)  # the draw x took
    assert torch.equal(torch.randn(3, generator=g), torch.randn(3, generator=fresh))
