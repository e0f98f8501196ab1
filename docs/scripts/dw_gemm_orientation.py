"""Time the weight gradient's GEMM both ways round, over a grid of filters and taps.

``dw += g @ cols.T`` (filters x taps, ``g`` the chunk's output gradient, ``cols`` its
columns) against ``dw += (cols @ g.T).T``: the same product, with the taps' side on the
left and the result added transposed. Each cell is the second's time over the first's
(below 1: the second is faster), the best of three rounds of seven calls each, on chunks of
8 MiB of operands (convcol's chunk size) with at least 392 positions, as in
``convcol.conv._transposed_dw_pays``. Arguments: ``float32`` or ``float64`` (default both).
With ``--layers``, instead: the backward pass (both gradients) of each suite shape the rule
sends the second way, with the rule as it is and with it off, alternately in one process.
Run it alone, with ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` for the AVX-512 kernels.
"""

import functools
import sys
import time

import numpy as np

import convcol

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


def layers(dtype: str) -> None:
    """Backward passes with the rule on and off, for the suite shapes it applies to."""
    from convcol import conv
    from convcol.bench import SHAPES

    rule, taken = conv._transposed_dw_pays, []

    def watched(*args):
        taken.append(rule(*args))
        return taken[-1]

    print(f"\n{dtype}: backward pass, rule on over rule off\n")
    print("| shape | rule off | rule on | on / off |")
    print("|---|---|---|---|")
    for shape in SHAPES:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((shape.n, shape.c, shape.h, shape.w)).astype(dtype)
        w = rng.standard_normal((shape.f, shape.c // shape.groups, *shape.kernel)).astype(dtype)
        dout = np.ones_like(convcol.conv2d(x, w, **shape.options()))
        backward = functools.partial(convcol.conv2d_backward, dout, x, w, **shape.options())
        taken.clear()
        conv._transposed_dw_pays = watched
        backward()
        if not any(taken):
            continue
        times = {"off": np.inf, "on": np.inf}
        for _ in range(5):  # alternately, so that a noisy spell slows both
            for name, pays in (("off", lambda *a: False), ("on", rule)):
                conv._transposed_dw_pays = pays
                times[name] = min(times[name], best(backward, 3))
        print(
            f"| {shape.name} | {times['off'] * 1e3:.1f} ms | {times['on'] * 1e3:.1f} ms "
            f"| {times['on'] / times['off']:.2f} |"
        )
    conv._transposed_dw_pays = rule


dtypes = [a for a in sys.argv[1:] if a.startswith("float")] or ["float32", "float64"]
for dtype in dtypes:
    if "--layers" in sys.argv:
        layers(dtype)
        continue
    print(f"\n{dtype}: (cols @ g.T).T over g @ cols.T\n")
    print("| filters \\ taps | " + " | ".join(map(str, TAPS)) + " |")
    print("|---" * (len(TAPS) + 1) + "|")
    for f in FILTERS:
        print(f"| {f} | " + " | ".join(f"{ratio(f, t, dtype):.2f}" for t in TAPS) + " |")
