"""Print docs/benchmarks.json (written by ``convcol bench --json``) as a Markdown table.

python docs/scripts/benchmark_table.py docs/benchmarks.json
"""

import json
import math
import sys


def main() -> None:
    results = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "docs/benchmarks.json"))
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
            # PyTorch's better time is the smaller one, so convcol's ratio to it is the larger.
            best = [
                max(r["ratios"]["torch"], r["ratios"].get("torch_cl", 0.0))
                for r in results["rows"]
                if r["dtype"] == dtype and r["pass"] == pass_ and "torch" in r["ratios"]
            ]
            if best:
                geo = math.exp(sum(map(math.log, best)) / len(best))
                print(
                    f"\ngeometric mean, {dtype} {pass_}, convcol / best PyTorch: {geo:.2f}", end=""
                )
    print()


if __name__ == "__main__":
    main()
