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
"""

import argparse
import json
import math
import time

import numpy as np

from convcol.bench import SHAPES

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


if __name__ == "__main__":
    main()
