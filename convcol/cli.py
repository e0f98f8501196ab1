"""The ``convcol`` command."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import conv_backward, conv_forward
from .gradcheck import rel_error
from .naive import conv_backward_naive, conv_forward_naive
from .validation import ConvError

# The classic cs231n timing case ("fast layers" in the convolutional networks notebook).
CLASSIC = {
    "x": (100, 3, 31, 31),
    "w": (25, 3, 3, 3),
    "conv_param": {"stride": 2, "pad": 1},
}


def _best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _fmt_time(t: float) -> str:
    return f"{t:.2f} s" if t >= 1 else f"{t * 1e3:.2f} ms"


def bench(repeat: int = 5, seed: int = 0, out: Any = None) -> dict[str, dict[str, float]]:
    """Time the naive loops against convcol on the classic case and print the comparison.

    The naive loops run once (they take seconds); convcol runs once to compile (or load its
    cache) and then ``repeat`` times, the best time counting. Returns the figures printed.
    """
    out = out or sys.stdout
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(CLASSIC["x"])
    w = rng.standard_normal(CLASSIC["w"])
    b = rng.standard_normal(CLASSIC["w"][0])
    cp = CLASSIC["conv_param"]
    print(
        f"convcol bench: x {x.shape}, w {w.shape}, stride {cp['stride']}, pad {cp['pad']}, float64",
        file=out,
    )

    t0 = time.perf_counter()
    fast_out, fast_cache = conv_forward(x, w, b, cp)
    dout = rng.standard_normal(fast_out.shape)
    conv_backward(dout, fast_cache)
    print(
        f"first call (JIT compile or cache load): {_fmt_time(time.perf_counter() - t0)}", file=out
    )

    t_naive_f, (naive_out, naive_cache) = _best_of(lambda: conv_forward_naive(x, w, b, cp), 1)
    t_naive_b, naive_grads = _best_of(lambda: conv_backward_naive(dout, naive_cache), 1)
    t_fast_f, (fast_out, fast_cache) = _best_of(lambda: conv_forward(x, w, b, cp), repeat)
    t_fast_b, fast_grads = _best_of(lambda: conv_backward(dout, fast_cache), repeat)

    rows = {
        "forward": (t_naive_f, t_fast_f, rel_error(fast_out, naive_out)),
        "backward": (
            t_naive_b,
            t_fast_b,
            max(rel_error(f, n) for f, n in zip(fast_grads, naive_grads, strict=True)),
        ),
    }
    print(f"{'':10}{'naive':>12}{'convcol':>12}{'speed-up':>12}{'max rel. error':>17}", file=out)
    for name, (tn, tf, err) in rows.items():
        print(
            f"{name:10}{_fmt_time(tn):>12}{_fmt_time(tf):>12}{tn / tf:>11.0f}x{err:>17.1e}",
            file=out,
        )
    return {
        name: {"naive_s": tn, "convcol_s": tf, "speedup": tn / tf, "max_rel_error": err}
        for name, (tn, tf, err) in rows.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    """The ``convcol`` command; returns its exit status."""
    try:
        status = _main(argv)
        sys.stdout.flush()  # here, where a closed pipe can still be caught
        return status
    except BrokenPipeError:
        # The reader went away (``convcol check ... | head``): stop quietly, as other
        # command-line tools do, with stdout sent to devnull so that Python's flush at exit
        # does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="convcol", description="Fast, exact convolution for NumPy neural nets."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_bench = sub.add_parser(
        "bench",
        help="the naive loops against convcol on the cs231n case, then the benchmark suite "
        "against PyTorch and NumPy's GEMM",
    )
    p_bench.add_argument(
        "--quick",
        action="store_true",
        help="a few shapes and repeats (about 30 s once the kernels are compiled)",
    )
    p_bench.add_argument(
        "--shapes", nargs="+", metavar="NAME", help="run only these shapes (see --list)"
    )
    p_bench.add_argument("--list", action="store_true", help="list the shapes and exit")
    p_bench.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    p_bench.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timed rounds per shape (default 7, 3 with --quick)",
    )
    p_bench.add_argument("--no-naive", action="store_true", help="skip the naive-loops comparison")
    p_bench.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    p_bench.add_argument(
        "--plot", metavar="PATH", help="also draw the ratios to PyTorch as a PNG (needs matplotlib)"
    )
    p_bench.add_argument("--seed", type=int, default=0, help="seed of the random data")
    p_check = sub.add_parser(
        "check", help="check your own cs231n-style conv forward/backward against the oracle"
    )
    p_check.add_argument("forward", help="MODULE:FUNCTION or FILE.py:FUNCTION of the forward")
    p_check.add_argument(
        "backward", nargs="?", help="MODULE:FUNCTION or FILE.py:FUNCTION of the backward"
    )
    p_check.add_argument("--cases", type=int, default=40, help="configurations (default 40)")
    p_check.add_argument("--seed", type=int, default=0)
    p_check.add_argument(
        "--tol",
        type=float,
        default=1e-7,
        help="largest error relative to the largest expected value",
    )
    p_check.add_argument("--forward-only", action="store_true", help="check only the forward pass")
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(parser, args)
    if args.command == "bench":
        from . import bench as suite

        if args.list:
            for s in suite.SHAPES:
                print(
                    f"{s.name:22} N={s.n} C={s.c} F={s.f} {s.h}x{s.w} k={s.kernel} "
                    f"s={s.stride} p={s.padding} groups={s.groups}"
                )
            return 0
        repeat = args.repeat if args.repeat is not None else (3 if args.quick else 7)
        if repeat < 1:
            parser.error("--repeat must be >= 1")
        if args.seed < 0:
            parser.error(f"--seed must be an integer >= 0, got {args.seed}")
        known = {s.name for s in suite.SHAPES}
        unknown = sorted(set(args.shapes or ()) - known)
        if unknown:
            parser.error(f"unknown shape(s) {unknown}; --list shows them")
        if not args.no_naive:
            bench(repeat=repeat, seed=args.seed)
            print()
        names = args.shapes or (suite.QUICK if args.quick else None)
        dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
        results = suite.run_suite(
            names, dtypes, repeat=repeat, budget_s=3.0 if args.quick else 20.0
        )
        if args.json:
            suite.write_json(results, args.json)
        if args.plot:
            suite.plot(results, args.plot)
    return 0


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .check import check_conv, check_options, load_function

    if args.backward is None and not args.forward_only:
        parser.error("give FORWARD and BACKWARD, or --forward-only")
    try:  # check_conv's rules, applied before anything is imported or run
        check_options(args.cases, args.seed, args.tol)
    except ConvError as e:
        parser.error(f"--{e}")
    try:
        forward = load_function(args.forward)
        backward = None if args.forward_only else load_function(args.backward)
    except Exception as e:
        print(f"convcol check: cannot import: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    report = check_conv(
        forward,
        backward,
        cases=args.cases,
        seed=args.seed,
        tol=args.tol,
        specs=(args.forward, args.backward or ""),
    )
    print(report)
    if report.raised:
        return 2
    return 0 if report.passed else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
