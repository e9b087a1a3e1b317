"""tritonconv.shapes: the one copy of the shape algebra, checked against torch and by hand."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from tritonconv import shapes


def test_document_output_length_formula():
    # L' = floor((L + 2P - K) / S) + 1 is the d = 1 case.
    for L, K, P, S in itertools.product(range(1, 12), range(1, 5), range(3), range(1, 4)):
        assert shapes.conv_output_size(L, K, S, P) == (L + 2 * P - K) // S + 1


def test_output_shape_matches_torch_meta():
    for L, K, P, S, D in itertools.product((5, 8, 13), (1, 2, 3), (0, 1, 2), (1, 2, 3), (1, 2)):
        got = shapes.conv_output_shape((2, 3, L), (4, 3, K), S, P, D)
        if got[2] <= 0:
            with pytest.raises(RuntimeError):
                F.conv1d(torch.empty(2, 3, L, device="meta"), torch.empty(4, 3, K, device="meta"), None, S, P, D)
            continue
        ref = F.conv1d(torch.empty(2, 3, L, device="meta"), torch.empty(4, 3, K, device="meta"), None, S, P, D)
        assert got == tuple(ref.shape)


@pytest.mark.parametrize("kernel,dilation", [(3, 1), (4, 1), (4, 2), (2, 3), (5, 2)])
def test_same_padding_like_torch(kernel, dilation):
    (before, after), = shapes.resolve_padding("same", (kernel,), 1, dilation)
    assert before + after == dilation * (kernel - 1) and after - before in (0, 1)
    x, w = torch.randn(1, 1, 11), torch.randn(1, 1, kernel)
    ref = F.conv1d(x, w, padding="same", dilation=dilation) if kernel % 2 else None
    manual = F.conv1d(F.pad(x, (before, after)), w, dilation=dilation)
    assert manual.shape[-1] == 11
    if ref is not None:
        torch.testing.assert_close(manual, ref)


def test_padding_forms():
    assert shapes.resolve_padding("valid", (3, 3)) == ((0, 0), (0, 0))
    assert shapes.resolve_padding(2, (3, 3)) == ((2, 2), (2, 2))
    assert shapes.resolve_padding((1, 0), (3, 3)) == ((1, 1), (0, 0))
    assert shapes.resolve_padding(((1, 2), (0, 3)), (3, 3)) == ((1, 2), (0, 3))
    with pytest.raises(ValueError, match="stride 1"):
        shapes.resolve_padding("same", (3,), stride=2)


def test_receptive_field_resnet_stem():
    # conv 7x7 s2, maxpool 3x3 s2, two 3x3 s1: R = 1, 7, 11, 19, 27
    assert shapes.receptive_field([7, 3, 3, 3], [2, 2, 1, 1]) == [1, 7, 11, 19, 27]
    assert shapes.receptive_field([3, 3], [1, 1], [1, 2]) == [1, 3, 7]
    with pytest.raises(ValueError):
        shapes.receptive_field([3, 3], [1])


def test_flops_params_bytes():
    x, w = (2, 4, 10, 10), (8, 2, 3, 3)  # groups = 2
    y = shapes.conv_output_shape(x, w, padding=1, groups=2)
    assert y == (2, 8, 10, 10)
    assert shapes.conv_macs(x, w, y) == 2 * 8 * 100 * 2 * 9
    assert shapes.conv_flops(x, w, y) == 2 * shapes.conv_macs(x, w, y)
    assert shapes.conv_params(w) == 144 and shapes.conv_params(w, bias=True) == 152
    assert shapes.conv_bytes(x, w, y, "float16") == 2 * (800 + 144 + 1600)


def test_r2plus1d_mid_channels_published_widths():
    # R(2+1)D-18 widths for in = out, t = d = 3.
    assert [shapes.r2plus1d_mid_channels(c, c, 3, 3) for c in (64, 128, 256, 512)] == [144, 288, 576, 1152]
    assert shapes.factorized_params(64, 64, 3, 3, "2+1d") == shapes.factorized_params(64, 64, 3, 3, "3d")
    assert shapes.factorized_params(8, 16, 3, 3, "2+1d", mid_channels=4) == 8 * 4 * 9 + 4 * 16 * 3
    assert shapes.factorized_params(8, 16, 3, 3, "P3D-B") == 8 * 16 * 12
    assert shapes.factorized_params(8, 16, 3, 3, "P3D-A") == 8 * 16 * 9 + 16 * 16 * 3
    with pytest.raises(ValueError, match="variant"):
        shapes.factorized_params(8, 16, 3, 3, "P3D-D")
