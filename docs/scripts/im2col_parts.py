"""Where the im2col route's forward pass spends its time: the columns (``im2col``, each
channel's padded copy included; until 2026-12-03 ``pad_region`` padded a chunk's input
first, in a pass of its own), the GEMMs, and the rest (the output's allocation, reorders,
Python), on suite shapes, with Winograd's route turned off.

python docs/scripts/im2col_parts.py cifar_3x3 r50_3x3_s2 float64

Each part is timed around its calls inside one forward pass, the fastest pass of
``repeat``; the columns' bytes over im2col's time is the rate it writes them at, to set
against a plain copy's (``docs/scripts/target_bounds.py`` measures that). Timing the parts
adds a little to the pass. Arguments: shape names (default the dense 3x3 ones) and
``float32`` or ``float64`` (default both).
"""

import sys
import time
from collections import defaultdict

import numpy as np

from convcol import bench, conv, winograd

spent: dict[str, float] = defaultdict(float)


def timed(fn, name):
    def call(*args, **kwargs):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        spent[name] += time.perf_counter() - t0
        return result

    return call


kernels = conv._kernels()
kernels.im2col = timed(kernels.im2col, "im2col")
np.matmul = timed(np.matmul, "matmul")  # conv calls it as np.matmul
for dtype in list(winograd._TILES):
    winograd._TILES[dtype] = ()

args = sys.argv[1:]
dtypes = [a for a in args if a.startswith("float")] or ["float32", "float64"]
names = [a for a in args if not a.startswith("float")] or [
    "cifar_3x3", "r50_res2a_3x3", "r50_3x3_s2", "vgg_7x7_512", "vgg_conv1_2"
]  # fmt: skip
for shape in bench.SHAPES:
    if shape.name not in names:
        continue
    for dtype in dtypes:
        forward = bench.convcol_calls(shape, bench.make_inputs(shape, dtype))["forward"]
        forward()
        best = (np.inf, {})
        for _ in range(20):
            spent.clear()
            t0 = time.perf_counter()
            forward()
            best = min(best, (time.perf_counter() - t0, dict(spent)), key=lambda b: b[0])
        total, parts = best
        ho, wo = shape.out_size
        cols = shape.n * ho * wo * shape.c * np.prod(shape.kernel) * np.dtype(dtype).itemsize
        rest = total - sum(parts.values())
        print(
            f"{shape.name:16s}{dtype:8s} forward {total * 1e3:6.1f} ms: "
            + "  ".join(f"{k} {v * 1e3:5.1f}" for k, v in parts.items())
            + f"  rest {rest * 1e3:4.1f}; columns {cols / 1e6:.0f} MB, "
            f"written at {cols / parts['im2col'] / 1e9:.1f} GB/s"
        )
