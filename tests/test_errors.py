"""Bad input gets an exception naming the argument and what was expected, never a wrong answer."""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F

import tritonconv

x2 = torch.randn(2, 4, 8, 8)
w2 = torch.randn(6, 4, 3, 3)


def _nested(t: torch.Tensor) -> torch.Tensor:
    """``t``'s components as a nested tensor of torch's older layout (which, unlike the jagged one, calls itself
    strided and has no sizes to read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (torch's notice: a prototype)
        return torch.nested.nested_tensor(list(t.unbind()))

CASES = [
    ("rank", lambda: tritonconv.conv2d(torch.randn(4, 8), w2), ValueError, r"`input` of rank 4 \(N, C, H, W\) or 3"),
    ("weight rank", lambda: tritonconv.conv2d(x2, torch.randn(6, 4, 3)), ValueError, r"`weight` of rank 4"),
    ("channels", lambda: tritonconv.conv2d(x2, torch.randn(6, 3, 3, 3)), ValueError, r"\(C_out, 4, \.\.\.\)"),
    ("channels, unbatched", lambda: tritonconv.conv2d(torch.randn(2, 4, 8), w2), ValueError,
     r"\(C_out, 2, \.\.\.\) for 2 input channels .* \(`input` of shape \(2, 4, 8\) is read as unbatched, \(C_in, H, W\); "
     r"a batch needs rank 4"),
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
    ("activation", lambda: tritonconv.conv2d(x2, w2, activation="softplus"), ValueError, r"`activation` to be one of"),
    ("leaky slope", lambda: tritonconv.conv2d(x2, w2, activation="leaky_relu(0.2x)"), ValueError,
     r"or 'leaky_relu\(<slope>\)' \(a finite slope, e.g. 'leaky_relu\(0.2\)'\), got 'leaky_relu\(0.2x\)'"),
    ("leaky inf", lambda: tritonconv.conv2d(x2, w2, activation="leaky_relu(inf)"), ValueError, r"a finite slope"),
    ("device", lambda: tritonconv.conv2d(x2, w2.to("meta")), ValueError, r"`weight` on cpu"),
    ("no input channels", lambda: tritonconv.conv2d(torch.randn(2, 0, 8, 8), torch.randn(6, 0, 3, 3)), ValueError,
     r"`input` with at least one channel, got shape \(2, 0, 8, 8\)"),  # (a fault under the interpreter before)
    ("input None", lambda: tritonconv.conv2d(None, w2), TypeError, r"`input` to be a torch.Tensor, got NoneType"),
    ("stride float", lambda: tritonconv.conv2d(x2, w2, stride=1.5), ValueError, r"`stride` to be an int or 2 ints, got 1.5"),
    ("padding None", lambda: tritonconv.conv2d(x2, w2, padding=None), ValueError, r"`padding` to be an int or 2 ints"),
    ("sparse input", lambda: tritonconv.conv2d(x2.to_sparse(), w2), TypeError,
     r"`input` to be a dense \(strided\) tensor, got layout torch.sparse_coo"),
    ("sparse weight", lambda: tritonconv.conv2d(x2, w2.to_sparse()), TypeError,
     r"`weight` to be a dense \(strided\) tensor, got layout torch.sparse_coo"),
    ("sparse bias", lambda: tritonconv.conv2d(x2, w2, torch.randn(6).to_sparse()), TypeError,
     r"`bias` to be a dense \(strided\) tensor"),
    ("mkldnn input", lambda: tritonconv.conv2d(x2.to_mkldnn(), w2), TypeError, r"got layout torch._mkldnn"),
    ("nested input", lambda: tritonconv.conv2d(_nested(x2), w2), TypeError,  # (its layout says strided)
     r"`input` to be a dense \(strided\) tensor, got a nested tensor: convolve its components one by one"),
    ("nested weight", lambda: tritonconv.conv2d(x2, _nested(w2)), TypeError, r"`weight` to be a dense .* nested"),
    ("padding pairs float", lambda: tritonconv.conv2d(x2, w2, padding=((1.5, 1), (1, 1))), ValueError,
     r"`padding` to have 2 \(before, after\) pairs of ints"),
    ("groups float", lambda: tritonconv.conv2d(x2, w2, groups=1.5), ValueError, r"`groups` to be a positive int, got 1.5"),
    ("memory format rank", lambda: tritonconv.conv2d(x2, w2, memory_format=torch.channels_last_3d), ValueError,
     r"`memory_format` to be one of None, torch.preserve_format, torch.contiguous_format, torch.channels_last, got "
     r"torch.channels_last_3d"),
    ("memory format bool", lambda: tritonconv.conv2d(x2, w2, memory_format=True), ValueError,
     r"`memory_format` to be one of .*, got True"),
    ("unsupported device", lambda: tritonconv._runtime.interpreting(torch.device("mps")), ValueError, r"got device mps"),
]


@pytest.mark.parametrize("name,call,exc,match", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, call, exc, match):
    with pytest.raises(exc, match=match):
        call()


x1, w1 = torch.randn(2, 4, 9), torch.randn(6, 4, 3)
x3, w3 = torch.randn(1, 4, 5, 6, 6), torch.randn(6, 4, 3, 3, 3)
NAMED = [  # (function name the message must start with, call): every family's argument checks
    *[("conv2d", call) for _, call, _, _ in CASES[:-1]],
    ("conv1d", lambda: tritonconv.conv1d(x1, w1, stride=0)),
    ("conv1d", lambda: tritonconv.conv1d(x1, w1, dilation=(1, 1))),
    ("conv1d", lambda: tritonconv.conv1d(x1, w1, padding="full")),
    ("conv1d", lambda: tritonconv.conv1d(x1, w1, memory_format=torch.channels_last)),  # (no 1-D channels-last)
    ("conv3d", lambda: tritonconv.conv3d(x3, w3, stride=(1, 0, 1))),
    ("conv3d", lambda: tritonconv.conv3d(x3, w3, padding=-2)),
    ("conv3d", lambda: tritonconv.conv3d(x3, torch.randn(6, 4, 9, 3, 3))),
    ("conv_transpose1d", lambda: tritonconv.conv_transpose1d(x1, torch.randn(4, 6, 3), stride=0)),
    ("conv_transpose2d", lambda: tritonconv.conv_transpose2d(x2, torch.randn(4, 6, 3, 3), dilation=0)),
    ("conv_transpose2d", lambda: tritonconv.conv_transpose2d(torch.randn(2, 0, 8, 8), torch.randn(0, 6, 3, 3))),
    ("conv_transpose2d", lambda: tritonconv.conv_transpose2d(x2, torch.randn(4, 6, 3, 3), padding=-1)),
    ("conv_transpose2d", lambda: tritonconv.conv_transpose2d(x2, torch.randn(4, 6, 3, 3), stride=2, output_padding=3)),
    ("conv_transpose3d", lambda: tritonconv.conv_transpose3d(x3, torch.randn(4, 6, 3, 3, 3), stride=(1, 2))),
    ("conv_transpose2d", lambda: tritonconv.conv_transpose2d(x2.to_sparse(), torch.randn(4, 6, 3, 3))),
    ("conv_transpose3d", lambda: tritonconv.conv_transpose3d(x3, torch.randn(5, 6, 3, 3, 3))),
    ("conv2plus1d", lambda: tritonconv.conv2plus1d(x3, torch.randn(5, 4, 1, 3, 3), torch.randn(6, 5, 3, 1, 1), stride=0)),
    ("conv2plus1d", lambda: tritonconv.conv2plus1d(x3, torch.randn(5, 4, 1, 3, 3), torch.randn(6, 5, 3, 1, 1),
                                                   padding=(1, 1))),
    ("conv2plus1d", lambda: tritonconv.conv2plus1d(x3, torch.randn(5, 4, 1, 3, 3), torch.randn(6, 7, 3, 1, 1))),
    ("conv2d", lambda: tritonconv.nn.Conv2d(4, 6, 3, stride=0)(x2)),
    ("conv3d", lambda: tritonconv.nn.Conv3d(4, 6, 3, dilation=0)(x3)),
]


def test_an_unbatched_reading_is_named_where_it_sets_the_channels():
    """A batch missing an axis reads as an unbatched input (torch's rule): the channel count the message quotes comes
    from that reading, so the message says so; a batched input's message does not."""
    with pytest.raises(ValueError, match=r"for 4 input channels, got \(6, 2, 3\) \(`input` of shape \(4, 9\) is read "
                                         r"as unbatched, \(C_in, L\); a batch needs rank 3\)$"):
        tritonconv.conv_transpose1d(torch.randn(4, 9), torch.randn(6, 2, 3))
    with pytest.raises(ValueError, match=r"groups=2 \(`input` of shape \(3, 5, 5, 5\) is read as unbatched"):
        tritonconv.conv3d(torch.randn(3, 5, 5, 5), torch.randn(4, 1, 3, 3, 3), groups=2)
    with pytest.raises(ValueError) as err:
        tritonconv.conv2d(x2, torch.randn(6, 3, 3, 3))
    assert "unbatched" not in str(err.value)


@pytest.mark.parametrize("name,call", NAMED, ids=[f"{n}-{i}" for i, (n, _) in enumerate(NAMED)])
def test_messages_name_their_function_once(name, call):
    """An argument error starts with the function's name, and says it once (not "conv2d: conv2d: ...")."""
    with pytest.raises((ValueError, TypeError)) as err:
        call()
    message = str(err.value)
    prefix = message.split(": ", 1)[0]
    assert prefix.split(" ")[0] == name, message
    assert message.count(f"{prefix}:") == 1 and message.count(f"{name}: {name}") == 0, message


def test_integer_arguments_from_numpy_and_tensors_work_as_in_torch():
    """``F.conv2d`` takes numpy integers and 0-d integer tensors for its integer arguments, and so do tritonconv's
    functions and modules (a model built from numpy hyperparameters converts and runs); results as torch's."""
    np = pytest.importorskip("numpy")
    x, w = torch.randn(2, 4, 9, 9), torch.randn(6, 2, 3, 3)
    args = dict(stride=np.int64(2), padding=(np.int32(1), torch.tensor(0)), dilation=torch.tensor(1), groups=np.int64(2))
    torch.testing.assert_close(tritonconv.conv2d(x, w, **args), F.conv2d(x, w, **args), rtol=1e-4, atol=1e-4)
    wt = torch.randn(4, 3, 3, 3)
    targs = dict(stride=np.int64(2), padding=np.int64(1), output_padding=np.int64(1), groups=torch.tensor(1))
    torch.testing.assert_close(tritonconv.conv_transpose2d(x, wt, **targs), F.conv_transpose2d(x, wt, **targs),
                               rtol=1e-4, atol=1e-4)
    layer = torch.nn.Conv2d(np.int64(4), np.int64(6), np.int64(3), stride=np.int64(2), padding=np.int64(1))
    torch.testing.assert_close(tritonconv.nn.convert(copy.deepcopy(layer))(x), layer(x), rtol=1e-4, atol=1e-4)
