"""Channels-last data that convcol computes channels-first (depthwise and other narrow
groups) is transposed there and back. This times those transposes, NumPy's copy of the
moved axes (the old way) against ``kernels.swap_last_axes`` in tiles, alone and inside the
suite's depthwise shapes given channels-last data, beside the same call on channels-first
data (which needs no transpose), all alternating in one process.

env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python docs/scripts/channels_last_transposes.py

Each figure is the minimum over ``--repeat`` rounds (default 15), in ms.
"""

import argparse
import time

import numpy as np

import convcol
from convcol import bench, conv

tiled = conv._swap_last_axes


def numpy_way(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 1))


def timed(calls: dict, repeat: int) -> dict[str, float]:
    best = dict.fromkeys(calls, np.inf)
    for _ in range(repeat):
        for name, (way, fn) in calls.items():
            conv._swap_last_axes = way
            fn()
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    conv._swap_last_axes = tiled
    return {k: v * 1e3 for k, v in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    repeat = parser.parse_args().repeat
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):
        a = rng.standard_normal((8, 56 * 56, 128)).astype(dtype)
        t = timed(
            {
                "numpy": (numpy_way, lambda a=a: conv._swap_last_axes(a)),
                "tiled": (tiled, lambda a=a: conv._swap_last_axes(a)),
                "copy": (tiled, a.copy),
            },
            repeat,
        )
        print(
            f"transpose (8, 3136, 128) {dtype}: NumPy {t['numpy']:.2f}, tiled "
            f"{t['tiled']:.2f}, a plain copy {t['copy']:.2f} ms"
        )
    for shape in bench.SHAPES:
        if shape.groups == 1:
            continue
        for dtype in ("float32", "float64"):
            x = rng.standard_normal((shape.n, shape.c, shape.h, shape.w)).astype(dtype)
            w = rng.standard_normal((shape.f, 1, *shape.kernel)).astype(dtype)
            options = shape.options()
            out = convcol.conv2d(x, w, **options)
            g = rng.standard_normal(out.shape).astype(dtype)
            xl, gl = np.moveaxis(x, 1, -1).copy(), np.moveaxis(g, 1, -1).copy()
            last = {**options, "data_format": "channels_last"}

            def fwd(x=x, w=w, xl=xl, last=last, options=options, cl=True):
                return convcol.conv2d(xl, w, **last) if cl else convcol.conv2d(x, w, **options)

            def both(x=x, w=w, g=g, xl=xl, gl=gl, last=last, options=options, cl=True):
                if cl:
                    convcol.conv2d(xl, w, **last)
                    return convcol.conv2d_backward(gl, xl, w, **last)
                convcol.conv2d(x, w, **options)
                return convcol.conv2d_backward(g, x, w, **options)

            t = timed(
                {
                    "f numpy": (numpy_way, fwd),
                    "f tiled": (tiled, fwd),
                    "f first": (tiled, lambda fwd=fwd: fwd(cl=False)),
                    "fb numpy": (numpy_way, both),
                    "fb tiled": (tiled, both),
                    "fb first": (tiled, lambda both=both: both(cl=False)),
                },
                repeat,
            )
            print(
                f"{shape.name:21s}{dtype:8s} channels last, forward: NumPy transposes "
                f"{t['f numpy']:6.2f}, tiled {t['f tiled']:6.2f} (channels first "
                f"{t['f first']:6.2f}); forward+backward: {t['fb numpy']:6.2f}, "
                f"{t['fb tiled']:6.2f} ({t['fb first']:6.2f})"
            )


if __name__ == "__main__":
    main()
