"""Index math and epilogue shared by the kernels (device functions, inlined by the compiler).

Every kernel sees its problem as 3-D (depth, height, width) and flat output positions
``m = ((b*OD + od)*OH + oh)*OW + ow``. Per axis, a tap ``t`` with stride ``s``, padding
``p`` and dilation ``d`` relates output ``o`` to input ``i`` by ``i = o*s - p + t*d``.
"""

import triton.language as tl

from ._runtime import device


@device
def positions(m, OD, OH, OW):
    """Flat output positions -> ``(batch, od, oh, ow)``."""
    ow = m % OW
    oh = (m // OW) % OH
    od = (m // (OW * OH)) % OD
    return m // (OW * OH * OD), od, oh, ow


@device
def tap(o, s, p, t, d, size, TRANSPOSED: tl.constexpr):
    """The input coordinate tap ``t`` of output ``o`` reads, and whether it lies in ``[0, size)``.

    Forward: ``i = o*s - p + t*d``. Transposed (the gradient with respect to the input, where
    ``o`` runs over the forward pass's inputs): the ``i`` with ``i*s - p + t*d = o``, valid
    only where ``o + p - t*d`` is a multiple of ``s``.
    """
    if TRANSPOSED:
        q = o + p - t * d
        i = q // s
        ok = (q >= 0) & (q % s == 0) & (i < size)
    else:
        i = o * s - p + t * d
        ok = (i >= 0) & (i < size)
    return i, ok


@device
def activate(acc, ACTIVATION: tl.constexpr):
    """The fused activation epilogue (GELU exact, through erf, as ``torch.nn.functional.gelu``)."""
    if ACTIVATION == "relu":
        acc = tl.maximum(acc, 0.0)
    elif ACTIVATION == "gelu":
        acc = 0.5 * acc * (1.0 + tl.erf(acc * 0.7071067811865476))
    elif ACTIVATION == "silu":
        acc = acc / (1.0 + tl.exp(-acc))
    return acc


@device
def weight_tap(kd, kh, kw, swd, swh, sww, KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, FLIP: tl.constexpr):
    """Offset of tap ``(kd, kh, kw)`` in a weight; ``FLIP`` reads the kernel reversed on every axis."""
    if FLIP:  # true convolution
        offset = (KD - 1 - kd) * swd + (KH - 1 - kh) * swh + (KW - 1 - kw) * sww
    else:
        offset = kd * swd + kh * swh + kw * sww
    return offset
