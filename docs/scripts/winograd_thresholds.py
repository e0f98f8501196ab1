"""Time float64 3x3 forward passes on the Winograd route against im2col, side by side.

The measurements behind ``convcol.winograd``'s thresholds (docs/design.md). Run alone, from
the repository root, with the machine's full-speed BLAS kernels:
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python docs/scripts/winograd_thresholds.py``
"""

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
]


def on_route(fn, forced):
    """``fn`` with the route forced on every eligible call, or off for every call."""
    saved = winograd._MIN_TILES, winograd._MIN_CHANNELS

    def run():
        winograd._MIN_TILES, winograd._MIN_CHANNELS = (0, 1) if forced else (2**62, 2**62)
        try:
            return fn()
        finally:
            winograd._MIN_TILES, winograd._MIN_CHANNELS = saved

    return run


rng = np.random.default_rng(0)
print("N, C -> F, H x W | tiles | im2col | Winograd | ratio")
for n, c, f, h in CASES:
    x, w = rng.standard_normal((n, c, h, h)), rng.standard_normal((f, c, 3, 3))

    def forward(x=x, w=w):
        return convcol.conv2d(x, w, padding=1)

    t = interleaved_minimum(
        {"im2col": on_route(forward, False), "wino": on_route(forward, True)}, 9, 30
    )
    tiles = n * -((-h // 4) ** 2)
    print(
        f"{n}, {c} -> {f}, {h} x {h} | {tiles} | {t['im2col'] * 1e3:.2f} ms | "
        f"{t['wino'] * 1e3:.2f} ms | {t['wino'] / t['im2col']:.2f}"
    )
