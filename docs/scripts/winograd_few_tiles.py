"""Where Winograd's F(4x4, 3x3) loses on vgg_7x7_512 (float64, 8 x 512 x 7 x 7, 32 tiles), and
what F(2x2, 3x3) would cost there, part by part, side by side (docs/benchmarks.md).

F(2x2, 3x3) is not a route of convcol: its parts are timed with ``np.matmul`` on random
operands of its sizes (16 components of 128 tiles instead of 36 of 32). Run alone, from the
repository root, with the machine's full-speed BLAS kernels:
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python docs/scripts/winograd_few_tiles.py``
"""

import numpy as np

import convcol
from convcol import winograd, workspace
from convcol.bench import interleaved_minimum

N, C, H = 8, 512, 7
rng = np.random.default_rng(0)
x, w = rng.standard_normal((N, C, H, H)), rng.standard_normal((C, C, 3, 3))


def forward(forced):
    def run():
        saved = winograd._MIN_TILES
        winograd._MIN_TILES = 0 if forced else 2**62
        try:
            return convcol.conv2d(x, w, padding=1)
        finally:
            winograd._MIN_TILES = saved

    return run


def parts(components, tiles):
    """Its weight transform (a GEMM with 9 inner products) and its GEMMs."""
    u = np.empty((components, C, C))
    g = rng.standard_normal((components, 9))
    v, m = rng.standard_normal((components, C, tiles)), np.empty((components, C, tiles))
    flat = u.reshape(components, C * C)
    return {
        f"weights {components}": lambda: np.matmul(g, w.reshape(C * C, 9).T, out=flat),
        f"GEMMs {components}": lambda: np.matmul(u, v, out=m),
    }


def two_weight_buffers():
    # dw's two (36, F, C) arrays, over the 64 MiB a thread keeps: allocated and touched anew.
    workspace.scratch(2 * 36 * C * C * 8).view(np.float64)[::512].fill(0)


cols, gemm_out = rng.standard_normal((C * 9, N * H * H)), np.empty((C, N * H * H))
calls = {
    "im2col forward": forward(False),
    "F(4x4) forward": forward(True),
    "im2col's GEMM": lambda: np.matmul(w.reshape(C, -1), cols, out=gemm_out),
    **parts(36, N * 4),
    **parts(16, N * 16),
    "two F(4x4) buffers": two_weight_buffers,
}
for name, seconds in interleaved_minimum(calls, repeat=10, budget_s=60).items():
    print(f"{name:>20}: {seconds * 1e3:6.1f} ms")
