"""The Triton kernels, one file per family, each with its ``@triton.jit`` code and a ``Launch`` class.

    gemm            N-d implicit GEMM: forward and transposed pass (input gradient), taps folded
                    into the reduction, split reductions
    depthwise       depthwise layers without tensor cores: forward, input and weight gradients
    banded          depthwise layers (one tap along the depth) on tensor cores: each channel's taps a
                    band over a segment's window, the reduction of a batched dot (forward, input and
                    weight gradients)
    tma             forward and transposed passes with tile loads by tensor descriptor (Hopper's TMA;
                    strides folded into a view of the input, or by stride phase), split reductions
    weight_grad     weight gradient as a GEMM per tap (taps folded for few channels), split
                    reduction; on Hopper, tile loads by tensor descriptor
    fused_2plus1d   (2+1)D convolution in one launch
    pack            positions packed into channels (layers of few input channels), and back
    partials        a weight gradient from the partial sums of many splits: added in order, flipped, cast, laid out

A kernel file imports only the ground layer (geometry, shapes, checks, runtime, device
functions, descriptors). A ``Launch`` is prepared once per call signature with the config the caller
(:mod:`tritonconv.dispatch`) chose: grid and every argument but the tensors; calling it launches.
"""
