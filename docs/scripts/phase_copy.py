"""Time the stride-2 padded, phase-split copy of one input plane (``kernels._pad_plane``,
what every stride-2 layer makes of its input before im2col or the depthwise taps) against
a plain copy of the same elements, on the input planes of the suite's stride-2 shapes.

Both copy the same plane again and again, so that it stays in cache where it fits (up to
56 x 56 planes; not deepspeech_conv1's, about 1.8 MB in float64): the difference is then
the copy's own work, not memory traffic. The padded copy's figure includes zeroing the
padded plane first (stride 2 along W zeroes it whole, then fills it), about one plain
copy's worth; it is timed alone too, so that what is left is the split itself.
Arguments: ``float32`` or ``float64`` (default both).
"""

import sys

import numba
import numpy as np

from convcol import conv, kernels
from convcol.bench import SHAPES, interleaved_minimum
from convcol.geometry import conv_geometry


@numba.njit
def padded_copies(x, xp, base, pad, phases, times):
    lo, hi = kernels._phase_runs(phases, xp, pad[2], x.shape[4])
    for _ in range(times):
        kernels._pad_plane(x[0, 0], xp[0, 0], base, pad, phases, lo, hi)


@numba.njit
def zeroings(xp, zeros, times):
    # The zero is read from an array: a constant would let LLVM drop all but one pass.
    flat = xp.reshape(-1)
    for t in range(times):
        z = zeros[t % 2]
        for i in range(flat.shape[0]):
            flat[np.uint64(i)] = z


@numba.njit
def plain_copies(x, out, times):
    src, dst = x.reshape(-1), out.reshape(-1)
    for _ in range(times):
        for i in range(src.shape[0]):
            dst[np.uint64(i)] = src[np.uint64(i)]


TIMES = 1000


def per_plane(shape, dtype):
    """Microseconds per copy of one of ``shape``'s input planes: padded, its zeroing alone,
    plain."""
    x = np.random.default_rng(0).standard_normal((1, 1, 1, shape.h, shape.w)).astype(dtype)
    w_shape = (shape.f, shape.c // shape.groups, *shape.kernel)
    geo = conv_geometry((1, shape.c, shape.h, shape.w), w_shape, None, 2, **shape.options())
    rows = conv._rows(geo)[0]
    base, region = conv._region(geo, conv._Chunk(0, 1, 0, rows, True))
    xp, out = np.zeros((1, 1, *region), dtype), np.empty_like(x)
    pad, phases = geo.kernel_args()[2], conv._phases(geo)
    best = interleaved_minimum(
        {
            "padded": lambda: padded_copies(x, xp, base, pad, phases, TIMES),
            "zeroing": lambda: zeroings(xp, np.zeros(2, dtype), TIMES),
            "plain": lambda: plain_copies(x, out, TIMES),
        },
        20,
        30,
    )
    return tuple(best[k] / TIMES * 1e6 for k in ("padded", "zeroing", "plain"))


dtypes = [a for a in sys.argv[1:] if a.startswith("float")] or ["float32", "float64"]
for shape in SHAPES:
    if shape.stride == 2:
        for dtype in dtypes:
            padded, zeroing, plain = per_plane(shape, dtype)
            print(
                f"{shape.name:22s}{dtype:8s} plane {shape.h} x {shape.w}: padded copy "
                f"{padded:6.2f} us (of which zeroing {zeroing:5.2f}), plain copy "
                f"{plain:6.2f} us; split: {(padded - zeroing) / shape.h * 1e3:5.1f} ns a "
                f"row, plain: {plain / shape.h * 1e3:5.1f}"
            )
