"""Print docs/benchmarks.json (written by ``convcol bench --json``) as a Markdown table.

python docs/scripts/benchmark_table.py docs/benchmarks.json
python docs/scripts/benchmark_table.py docs/benchmarks.json more.json --before a.json b.json

The table is of the first run. With ``--before``, a second table compares the runs with
earlier ones shape by shape, each side's time the fastest of its runs (single figures move
by up to 1.5x between runs on a shared machine; the fastest is the least disturbed).
"""

import argparse
import json
import math


def best_ratio(row: dict) -> float:
    # PyTorch's better time is the smaller one, so convcol's ratio to it is the larger.
    return max(row["ratios"]["torch"], row["ratios"].get("torch_cl", 0.0))


def geomean(values: list[float]) -> float:
    return math.exp(sum(map(math.log, values)) / len(values))


def table(results: dict) -> None:
    print(
        "| shape | dtype | pass | convcol | GFLOP/s | / PyTorch NCHW | / PyTorch NHWC "
        "| / own GEMM | extra MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results["rows"]:
        ratios = r["ratios"]

        def cell(key, ratios=ratios):
            return f"{ratios[key]:.2f}" if key in ratios else "-"

        print(
            f"| {r['shape']} | {r['dtype']} | {r['pass']} | {r['convcol_s'] * 1e3:.1f} ms | "
            f"{r['gflops']:.1f} | {cell('torch')} | {cell('torch_cl')} | {cell('gemm')} | "
            f"{r['peak_extra_mib']:.1f} |"
        )
    for dtype in ("float32", "float64"):
        for pass_ in ("forward", "forward+backward"):
            best = [
                best_ratio(r)
                for r in results["rows"]
                if r["dtype"] == dtype and r["pass"] == pass_ and "torch" in r["ratios"]
            ]
            if best:
                print(
                    f"\ngeometric mean, {dtype} {pass_}, convcol / best PyTorch: "
                    f"{geomean(best):.2f}",
                    end="",
                )
    print()


def fastest(runs: list[dict]) -> dict:
    """Per (shape, dtype, pass): the row of the run where convcol was fastest."""
    best: dict = {}
    for run in runs:
        for r in run["rows"]:
            key = (r["shape"], r["dtype"], r["pass"])
            if key not in best or r["convcol_s"] < best[key]["convcol_s"]:
                best[key] = r
    return best


def comparison(after: list[dict], before: list[dict]) -> None:
    new, old = fastest(after), fastest(before)
    print(
        "\n| shape | dtype | pass | before | after | speed-up "
        "| before / best PyTorch | after / best PyTorch |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for key, r in new.items():
        o = old.get(key)
        if o is None:
            continue
        with_torch = "torch" in r["ratios"] and "torch" in o["ratios"]
        print(
            f"| {' | '.join(key)} | {o['convcol_s'] * 1e3:.1f} ms | "
            f"{r['convcol_s'] * 1e3:.1f} ms | {o['convcol_s'] / r['convcol_s']:.2f}x | "
            f"{best_ratio(o) if with_torch else float('nan'):.2f} | "
            f"{best_ratio(r) if with_torch else float('nan'):.2f} |"
        )
    for side, rows in (("before", old), ("after", new)):
        for dtype in ("float32", "float64"):
            for pass_ in ("forward", "forward+backward"):
                ratios = [
                    best_ratio(r)
                    for (_, d, p), r in rows.items()
                    if d == dtype and p == pass_ and "torch" in r["ratios"]
                ]
                if ratios:
                    print(
                        f"\n{side}: geometric mean, {dtype} {pass_}, convcol / best PyTorch: "
                        f"{geomean(ratios):.2f}",
                        end="",
                    )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", default=["docs/benchmarks.json"])
    parser.add_argument("--before", nargs="+", help="earlier runs to compare with")
    args = parser.parse_args()
    runs = []
    for path in args.results:
        with open(path) as f:
            runs.append(json.load(f))
    table(runs[0])
    if args.before:
        before = []
        for path in args.before:
            with open(path) as f:
                before.append(json.load(f))
        comparison(runs, before)


if __name__ == "__main__":
    main()
