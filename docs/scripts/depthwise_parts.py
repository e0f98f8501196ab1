"""Time the depthwise kernels' parts on the suite's depthwise shapes: the forward pass, and
the backward pass with both gradients, ``dx`` alone and ``dw`` alone.

For before-and-after comparisons of the kernels, whose share of a layer the full suite's
noise hides: run it alternately on two checkouts (``PYTHONPATH=...``), several times each,
and compare the minima. Threads as for the library (``NUMBA_NUM_THREADS``), so
``NUMBA_NUM_THREADS=1`` times one core. Arguments: ``float32`` or ``float64`` (default
both), and shape names (default all three).
"""

import sys
import time

import numpy as np

from convcol import conv
from convcol.bench import SHAPES
from convcol.geometry import conv_geometry


def best(fn, repeat=30):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def parts(shape, dtype):
    """The four calls timed, on seeded inputs of ``shape`` in ``dtype``."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((shape.n, shape.c, shape.h, shape.w)).astype(dtype)
    w = rng.standard_normal((shape.f, 1, *shape.kernel)).astype(dtype)
    geo = conv_geometry(x.shape, w.shape, None, 2, **shape.options())
    dout = rng.standard_normal(geo.out_shape).astype(dtype)
    return {
        "forward": lambda: conv._depthwise_forward(x, w, None, geo),
        "backward": lambda: conv._depthwise_backward(dout, x, w, geo, True),
        "dx": lambda: conv._depthwise_backward(dout, None, w, geo, True),
        "dw": lambda: conv._depthwise_backward(dout, x, w, geo, False),
    }


dtypes = [a for a in sys.argv[1:] if a.startswith("float")] or ["float32", "float64"]
names = [a for a in sys.argv[1:] if not a.startswith("float")]
for shape in SHAPES:
    if shape.depthwise and (not names or shape.name in names):
        for dtype in dtypes:
            times = "  ".join(f"{k} {best(fn):6.2f}" for k, fn in parts(shape, dtype).items())
            print(f"{shape.name:22s}{dtype:8s} {times}  (ms)")
