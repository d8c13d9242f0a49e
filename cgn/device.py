"""CUDA settings under which a sample's bytes do not depend on the process that made it."""

import torch


def deterministic_cuda() -> None:
    """cuDNN's autotuner (benchmark mode) times candidate kernels in each process and may pick other
    ones in the server than in a batch worker, which gives other bits for the same sample. Fixed
    heuristics and deterministic kernels give the same bytes in every process. TF32 off: with it, the
    full-size ImageNet CGN's fp32 output moved by 1/255 with a sample's row inside its chunk (H200,
    benchmarks/gpu_check.py); without it, bytes were the same at every row."""
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
