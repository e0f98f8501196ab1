"""Time float64 3x3 layers on the Winograd route, F(4x4, 3x3) and F(2x2, 3x3), against
im2col, side by side: forward, and forward+backward.

The measurements behind ``convcol.winograd``'s thresholds (docs/design.md). Run alone, from
the repository root, with the machine's full-speed BLAS kernels:
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python docs/scripts/winograd_thresholds.py``,
or with cases of its own as arguments ``N,C,F,H``.
"""

import sys

import numpy as np

import convcol
from convcol import winograd
from convcol.bench import interleaved_minimum

CASES = [  # N, C, F, H (= W); padding 1
    (2, 64, 64, 16),
    (8, 64, 64, 16),
    (8, 256, 256, 14),
    (8, 16, 16, 32),
    (8, 8, 8, 32),
    (8, 3, 64, 32),
    (8, 512, 512, 7),
    (8, 256, 256, 7),
    (8, 128, 128, 7),
    (8, 64, 64, 7),
    (4, 512, 512, 7),
    (4, 256, 256, 14),
    (8, 512, 512, 14),
]
ROUTES = {"im2col": None, "F(4x4)": 4, "F(2x2)": 2}


def on_route(fn, size):
    """``fn`` with the route forced on every eligible call with tiles of ``size``, or off
    for every call (``size`` None)."""
    saved = winograd._TILES
    forced = {
        dtype: tuple(t.forced() for t in each if t.m == size) for dtype, each in saved.items()
    }

    def run():
        winograd._TILES = forced
        try:
            return fn()
        finally:
            winograd._TILES = saved

    return run


DTYPE = np.float64
if "--float32" in sys.argv:
    sys.argv.remove("--float32")
    DTYPE = np.float32
if sys.argv[1:]:
    CASES = [tuple(int(v) for v in arg.split(",")) for arg in sys.argv[1:]]
rng = np.random.default_rng(0)
print("N, C -> F, H x W | tiles 4x4, 2x2 | im2col fwd, f+b | F(4x4) / im2col | F(2x2) / im2col")
for n, c, f, h in CASES:
    x = rng.standard_normal((n, c, h, h)).astype(DTYPE)
    w = rng.standard_normal((f, c, 3, 3)).astype(DTYPE)
    dout = rng.standard_normal((n, f, h, h)).astype(DTYPE)

    def forward(x=x, w=w):
        return convcol.conv2d(x, w, padding=1)

    def both(x=x, w=w, dout=dout):
        convcol.conv2d(x, w, padding=1)
        return convcol.conv2d_backward(dout, x, w, padding=1)

    calls = {
        (route, pass_): on_route(fn, size)
        for route, size in ROUTES.items()
        for pass_, fn in (("fwd", forward), ("f+b", both))
    }
    t = interleaved_minimum(calls, 7, 40)
    tiles = [n * (-(-h // m)) ** 2 for m in (4, 2)]
    ratios = [
        ", ".join(f"{t[route, p] / t['im2col', p]:.2f}" for p in ("fwd", "f+b"))
        for route in ("F(4x4)", "F(2x2)")
    ]
    print(
        f"{n}, {c} -> {f}, {h} x {h} | {tiles[0]}, {tiles[1]} | "
        f"{t['im2col', 'fwd'] * 1e3:.1f}, {t['im2col', 'f+b'] * 1e3:.1f} ms | "
        f"{ratios[0]} | {ratios[1]}"
    )
