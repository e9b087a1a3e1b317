"""The Triton kernels, one file per family, each with its ``@triton.jit`` code and its launch function.

    gemm            N-d implicit GEMM: forward and transposed pass (input gradient), taps folded
                    into the reduction, split reductions
    depthwise       depthwise layers without tensor cores: forward, input and weight gradients
    tma             forward pass with tile loads by tensor descriptor (Hopper's TMA)
    weight_grad     weight gradient as a GEMM per tap, split reduction
    fused_2plus1d   (2+1)D convolution in one launch

A kernel file imports only the ground layer (geometry, shapes, checks, runtime, device
functions); each launch function takes its config from the caller (:mod:`tritonconv.dispatch`).
"""
