"""Which of the missed speed targets a GEMM-based convolution could meet at all.

python docs/scripts/target_bounds.py docs/benchmarks.json docs/benchmarks-2.json

For every row of the runs that misses its target (issue 5: float64 2x faster than PyTorch
on dense shapes, 3x on depthwise ones; float32 faster on the 1x1 shapes and on the depthwise
and large-kernel forward+backward), the rate the target asks for: the layer's GEMM flops
(the forward pass's, three times over for forward+backward: the output, dx and dw are one
GEMM each of the same size) over the time the target allows. That rate is set against two
measured ceilings:

- this machine's peak: the best of NumPy's ``matmul`` on large square matrices, measured
  here (run it alone: a neighbour's load lowers it);
- the BLAS on this layer: the run's own GEMM, the forward pass's matrix product alone at
  the layer's sizes (``/ own GEMM`` in the table), which im2col cannot beat.

Asking more than the peak, a target cannot be met by any algorithm doing the layer's
flops, only by one doing fewer (Winograd's, where it applies); asking more than the
layer's GEMM, not on this BLAS. Depthwise layers have no GEMM, and fewer flops than bytes
moved: no rate is given for them. Each figure is the run's, the range over the runs given.

A second table does the same for the forward pass on the dense 3x3 shapes, asked to take at
most 1.25 times its own GEMM's time (im2col at most a quarter of it). The columns are
written once, C * 9 values per output, and im2col cannot write them faster than one thread
fills memory: their bytes over this machine's fill rate (``ndarray.fill`` of a buffer the
size of im2col's chunks, measured here) is a floor under im2col's time. Where that floor
alone passes a quarter of the run's GEMM time, no im2col can meet the target on this
machine, only a route that writes fewer bytes (Winograd's transformed tiles: 16 values per
2 x 2 outputs, against 36) or none. (``docs/scripts/im2col_parts.py`` gives the rate
im2col writes its columns at.)
"""

import argparse
import json
import math
import time

import numpy as np

from convcol import winograd
from convcol.bench import SHAPES
from convcol.geometry import conv_geometry

BY_NAME = {s.name: s for s in SHAPES}


def peak(dtype: str, n: int = 3072, repeat: int = 5) -> float:
    """GFLOP/s of NumPy's matmul on n x n matrices, the best of ``repeat``."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    out = np.empty((n, n), dtype)
    np.matmul(a, b, out=out)
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def fill_rate(nbytes: int = 8 * 2**20, repeat: int = 50) -> float:
    """GB/s written by one thread filling ``nbytes`` (im2col's chunk size), the best of
    ``repeat``."""
    out = np.zeros(nbytes // 8)
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out.fill(1.0)
        best = min(best, time.perf_counter() - t0)
    return nbytes / best / 1e9


def target(row: dict) -> float | None:
    """The ratio convcol / best PyTorch the issue asks of the row, or None (no target)."""
    shape = BY_NAME[row["shape"]]
    if row["dtype"] == "float64":
        return 1 / 3 if shape.depthwise else 1 / 2
    pointwise = shape.kernel == (1, 1)
    large = shape.depthwise or math.prod(shape.kernel) >= 25
    if pointwise or (large and row["pass"] == "forward+backward"):
        return 1.0
    return None


def best_torch(row: dict) -> float:
    return min(t for t in (row["torch_s"], row.get("torch_cl_s")) if t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    args = parser.parse_args()
    runs = []
    for path in args.results:
        with open(path) as f:
            runs.append({(r["shape"], r["dtype"], r["pass"]): r for r in json.load(f)["rows"]})
    peaks = {dtype: peak(dtype) for dtype in ("float64", "float32")}
    print(
        "peak matmul GFLOP/s here: "
        + ", ".join(f"{d} {p:.0f}" for d, p in peaks.items())
        + "\n\n| shape | dtype | pass | target | convcol / best PyTorch | needs GFLOP/s "
        "| layer's own GEMM GFLOP/s | verdict |\n|---|---|---|---|---|---|---|---|"
    )

    def span(values: list[float], fmt: str = ".2f") -> str:
        lo, hi = min(values), max(values)
        return f"{lo:{fmt}}" if f"{lo:{fmt}}" == f"{hi:{fmt}}" else f"{lo:{fmt}}-{hi:{fmt}}"

    for key, first in runs[0].items():
        rows = [run[key] for run in runs if key in run and "torch" in run[key]["ratios"]]
        goal = target(first)
        if not rows or goal is None:
            continue
        ratios = [max(r["ratios"]["torch"], r["ratios"].get("torch_cl", 0.0)) for r in rows]
        if max(ratios) <= goal:
            continue  # met in every run
        shape = BY_NAME[first["shape"]]
        if shape.depthwise:
            needs = own = "-"
            verdict = "no GEMM: memory-bound kernels"
        else:
            flops = shape.forward_flops() * (3 if first["pass"] == "forward+backward" else 1)
            rates = [flops / (best_torch(r) * goal) / 1e9 for r in rows]
            needs = span(rates, ".0f")
            # The forward rows carry the GEMM's time; forward+backward uses the same sizes.
            fwd = [run.get((key[0], key[1], "forward"), {}).get("gemm_s") for run in runs]
            gemm = [shape.forward_flops() / g / 1e9 for g in fwd if g]
            own = span(gemm, ".0f") if gemm else "-"
            if min(rates) > peaks[first["dtype"]]:
                verdict = "beyond the machine's peak: only fewer flops"
            elif gemm and min(rates) > max(gemm):
                verdict = "beyond this BLAS at these sizes"
            else:
                verdict = "within reach of a GEMM"
        print(
            f"| {key[0]} | {key[1]} | {key[2]} | {goal:.2f} | {span(ratios)} | {needs} | "
            f"{own} | {verdict} |"
        )

    rate = fill_rate()
    print(
        f"\nOne thread fills memory at {rate:.1f} GB/s here (8 MiB).\n\n"
        "| shape | dtype | route | convcol / own GEMM | columns MB | their fill / own GEMM "
        "| needs GB/s | verdict |\n|---|---|---|---|---|---|---|---|"
    )
    for key, first in runs[0].items():
        shape = BY_NAME[first["shape"]]
        # The dense 3x3 shapes (the classic case is the engine issue's, and small).
        dense3x3 = shape.kernel == (3, 3) and shape.groups == 1 and shape.name != "cs231n_classic"
        if key[2] != "forward" or not dense3x3:
            continue
        rows = [run[key] for run in runs if key in run and run[key].get("gemm_s")]
        ho, wo = shape.out_size
        cols = shape.n * ho * wo * shape.c * 9 * np.dtype(key[1]).itemsize
        floor = [cols / 1e9 / rate / r["gemm_s"] for r in rows]
        # The rate im2col must write at to take a quarter, were everything else free.
        needs = [cols / 1e9 / (0.25 * r["gemm_s"]) for r in rows]
        geo = conv_geometry(
            (shape.n, shape.c, shape.h, shape.w), (shape.f, shape.c, 3, 3), None, 2,
            **shape.options(),
        )  # fmt: skip
        route = "Winograd" if winograd.plan(geo, np.dtype(key[1])) else "im2col"
        if max(r["ratios"]["gemm"] for r in rows) <= 1.25:
            verdict = "met"
        elif min(floor) > 0.25:
            verdict = "beyond the fill rate: only fewer bytes"
        else:
            verdict = "within the fill rate"
        print(
            f"| {key[0]} | {key[1]} | {route} | {span([r['ratios']['gemm'] for r in rows])} | "
            f"{cols / 1e6:.0f} | {span(floor)} | {span(needs, '.1f')} | {verdict} |"
        )


if __name__ == "__main__":
    main()
