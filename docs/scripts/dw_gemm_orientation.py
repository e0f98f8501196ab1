"""Time the weight gradient's GEMM both ways round, over a grid of filters and taps.

``dw += g @ cols.T`` (filters x taps, ``g`` the chunk's output gradient, ``cols`` its
columns) against ``dw += (cols @ g.T).T``: the same product, with the taps' side on the
left and the result added transposed. Each cell is the second's time over the first's
(below 1: the second is faster), the best of three rounds of seven calls each, on chunks of
8 MiB of operands (convcol's chunk size) with at least 392 positions, as in
``convcol.conv._transposed_dw_pays``. Arguments: ``float32`` or ``float64`` (default both).
Run it alone, with ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` for the AVX-512 kernels.
"""

import sys
import time

import numpy as np

FILTERS = (16, 32, 64, 96, 128, 192)
TAPS = (27, 75, 100, 147, 300, 576, 1152)


def best(fn, repeat=7):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ratio(filters: int, taps: int, dtype: str) -> float:
    itemsize = np.dtype(dtype).itemsize
    positions = max(392, min(20000, (8 << 20) // ((taps + filters) * itemsize)))
    rng = np.random.default_rng(0)
    cols = rng.standard_normal((taps, positions)).astype(dtype)
    g = rng.standard_normal((filters, positions)).astype(dtype)
    dw = np.zeros((filters, taps), dtype)

    def taps_right():
        dw.__iadd__(g @ cols.T)

    def taps_left():
        dw.__iadd__((cols @ g.T).T)

    taps_right(), taps_left()
    right = left = np.inf
    for _ in range(3):  # alternately, so that a noisy spell slows both
        right, left = min(right, best(taps_right)), min(left, best(taps_left))
    return left / right


dtypes = [a for a in sys.argv[1:] if a.startswith("float")] or ["float32", "float64"]
for dtype in dtypes:
    print(f"\n{dtype}: (cols @ g.T).T over g @ cols.T\n")
    print("| filters \\ taps | " + " | ".join(map(str, TAPS)) + " |")
    print("|---" * (len(TAPS) + 1) + "|")
    for f in FILTERS:
        print(f"| {f} | " + " | ".join(f"{ratio(f, t, dtype):.2f}" for t in TAPS) + " |")
