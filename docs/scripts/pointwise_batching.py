"""Time a 1x1 convolution's three GEMMs as convcol runs them, one per sample, against one
GEMM over the whole batch, on the suite's 1x1 shapes.

The per-sample candidates are the bare GEMMs of ``conv._forward`` and
``conv._pointwise_backward`` (no validation, no bias), so PyTorch's figures here are
against those GEMMs, not against a whole ``conv2d`` call as in ``convcol bench``.

One GEMM over the batch needs the samples side by side: ``x`` (N, C, P) turned into
(C, N * P) first, and for the forward pass and ``dx`` the result turned back, so its
figures include those copies. PyTorch's forward and backward (NCHW) are timed alongside
when it is installed. All candidates alternate in one process and each figure is the
fastest of its rounds (``convcol.bench.interleaved_minimum``). Arguments: ``float32`` or
``float64`` (default both).
"""

import sys

import numpy as np

from convcol.bench import SHAPES, interleaved_minimum


def side_by_side(a):
    """(N, K, P) as (K, N * P), a copy."""
    n, k, p = a.shape
    return np.ascontiguousarray(a.transpose(1, 0, 2)).reshape(k, n * p)


def back(a, n):
    """(K, N * P) as (N, K, P), a copy."""
    k = a.shape[0]
    return np.ascontiguousarray(a.reshape(k, n, -1).transpose(1, 0, 2))


def candidates(shape, dtype):
    rng = np.random.default_rng(0)
    n, c, f, p = shape.n, shape.c, shape.f, shape.h * shape.w
    x = rng.standard_normal((n, c, p)).astype(dtype)
    g = rng.standard_normal((n, f, p)).astype(dtype)
    w = rng.standard_normal((f, c)).astype(dtype)

    def dw_per_sample():
        dw, part = np.zeros((f, c), dtype), np.empty((f, c), dtype)
        for g_n, x_n in zip(g, x, strict=True):
            dw += np.matmul(g_n, x_n.T, out=part)
        return dw

    calls = {
        # (Each candidate allocates its result, as convcol does.)
        "forward per sample": lambda: np.matmul(w, x, out=np.empty((n, f, p), dtype)),
        "forward batched": lambda: back(w @ side_by_side(x), n),
        "dx per sample": lambda: np.matmul(w.T, g, out=np.empty((n, c, p), dtype)),
        "dx batched": lambda: back(w.T @ side_by_side(g), n),
        "dw per sample": dw_per_sample,
        "dw batched": lambda: side_by_side(g) @ side_by_side(x).T,
    }
    try:
        import torch
    except ImportError:
        return calls
    tx = torch.from_numpy(x.reshape(n, c, shape.h, shape.w))
    tw = torch.from_numpy(w.reshape(f, c, 1, 1))
    tg = torch.from_numpy(g.reshape(n, f, shape.h, shape.w))
    calls["PyTorch forward"] = lambda: torch.nn.functional.conv2d(tx, tw)
    calls["PyTorch dx and dw"] = lambda: torch.ops.aten.convolution_backward(
        tg, tx, tw, None, (1, 1), (0, 0), (1, 1), False, (0, 0), 1, (True, True, False)
    )
    return calls


dtypes = [a for a in sys.argv[1:] if a.startswith("float")] or ["float32", "float64"]
for shape in SHAPES:
    if shape.kernel == (1, 1):
        for dtype in dtypes:
            best = interleaved_minimum(candidates(shape, dtype), 15, 60)
            print(f"{shape.name} {dtype}:")
            for name, t in best.items():
                print(f"  {name:20s} {t * 1e3:7.2f} ms")
