"""Bad input gets an exception naming the argument and what was expected, never a wrong answer."""

import pytest
import torch

import tritonconv

x2 = torch.randn(2, 4, 8, 8)
w2 = torch.randn(6, 4, 3, 3)

CASES = [
    ("rank", lambda: tritonconv.conv2d(torch.randn(4, 8), w2), ValueError, r"`input` of rank 4 \(N, C, H, W\) or 3"),
    ("weight rank", lambda: tritonconv.conv2d(x2, torch.randn(6, 4, 3)), ValueError, r"`weight` of rank 4"),
    ("channels", lambda: tritonconv.conv2d(x2, torch.randn(6, 3, 3, 3)), ValueError, r"\(C_out, 4, \.\.\.\)"),
    ("groups divide in", lambda: tritonconv.conv2d(x2, torch.randn(6, 4, 3, 3), groups=3), ValueError,
     r"`groups` to divide the input channels 4, got groups=3"),
    ("groups divide out", lambda: tritonconv.conv2d(x2, torch.randn(5, 2, 3, 3), groups=2), ValueError,
     r"output channels \(5\) to be a positive multiple of groups=2"),
    ("groups zero", lambda: tritonconv.conv2d(x2, w2, groups=0), ValueError, r"`groups` to be a positive int"),
    ("stride", lambda: tritonconv.conv2d(x2, w2, stride=(1, 0)), ValueError, r"`stride` to be positive, got \(1, 0\)"),
    ("stride length", lambda: tritonconv.conv2d(x2, w2, stride=(1, 1, 1)), ValueError, r"`stride` to be an int or 2 ints"),
    ("dilation", lambda: tritonconv.conv2d(x2, w2, dilation=-1), ValueError, r"`dilation` to be positive"),
    ("padding", lambda: tritonconv.conv2d(x2, w2, padding=-1), ValueError, r"`padding` to be >= 0"),
    ("padding string", lambda: tritonconv.conv2d(x2, w2, padding="full"), ValueError, r"'same', 'valid'"),
    ("same with stride", lambda: tritonconv.conv2d(x2, w2, padding="same", stride=2), ValueError,
     r"padding='same' needs stride 1"),
    ("output size", lambda: tritonconv.conv2d(x2, torch.randn(6, 4, 9, 3)), ValueError,
     r"computed output size \(0, 6\) is not positive"),
    ("bias length", lambda: tritonconv.conv2d(x2, w2, torch.randn(5)), ValueError, r"`bias` of shape \(6,\), got \(5,\)"),
    ("dtype weight", lambda: tritonconv.conv2d(x2, w2.half()), TypeError, r"`weight` dtype to be torch.float32"),
    ("dtype bias", lambda: tritonconv.conv2d(x2, w2, torch.randn(6).double()), TypeError, r"`bias` dtype"),
    ("int dtype", lambda: tritonconv.conv2d(x2.int(), w2.int()), TypeError, r"bfloat16, float64, got torch.int32"),
    ("not a tensor", lambda: tritonconv.conv2d(x2, [[1.0]]), TypeError, r"`weight` to be a torch.Tensor, got list"),
    ("activation", lambda: tritonconv.conv2d(x2, w2, activation="tanh"), ValueError, r"`activation` to be one of"),
    ("device", lambda: tritonconv.conv2d(x2, w2.to("meta")), ValueError, r"`weight` on cpu"),
    ("unsupported device", lambda: tritonconv._runtime.interpreting(torch.device("mps")), ValueError, r"got device mps"),
]


@pytest.mark.parametrize("name,call,exc,match", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, call, exc, match):
    with pytest.raises(exc, match=match):
        call()
