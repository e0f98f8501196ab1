"""The benchmark suite under pytest-benchmark: the same shapes as ``convcol bench``.

Run it alone (parallel jobs on 2 cores make every number wrong)::

    python -m pytest benchmarks --benchmark-group-by=param:shape --benchmark-columns=min,median

Shapes whose forward pass exceeds ``CONVCOL_BENCH_MAX_GFLOP`` (default 2) are skipped, with
the reason shown; set it higher for the whole suite. The PyTorch rows run when PyTorch is
installed. Every candidate is called once before timing, so JIT compilation and first-touch
page faults stay out of the figures.
"""

from __future__ import annotations

import os

import pytest

from convcol import bench

SHAPES = {s.name: s for s in bench.SHAPES}
DTYPES = ["float32", "float64"]


def _shape(name: str) -> bench.Shape:
    shape = SHAPES[name]
    cap = float(os.environ.get("CONVCOL_BENCH_MAX_GFLOP", "2"))
    if shape.forward_flops() / 1e9 > cap:
        pytest.skip(
            f"{name}: {shape.forward_flops() / 1e9:.1f} GFLOP forward > "
            f"CONVCOL_BENCH_MAX_GFLOP={cap:g}"
        )
    return shape


def _run(benchmark, call):
    call()  # warm-up: compile, fill caches, touch pages
    benchmark.pedantic(call, rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("pass_", ["forward", "forward+backward"])
def test_convcol(benchmark, shape, dtype, pass_):
    s = _shape(shape)
    benchmark.group = f"{shape} {dtype} {pass_}"
    _run(benchmark, bench.convcol_calls(s, bench.make_inputs(s, dtype))[pass_])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("pass_", ["forward", "forward+backward"])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_torch(benchmark, shape, dtype, pass_, layout):
    pytest.importorskip("torch")
    if layout == "nhwc" and dtype == "float64":
        pytest.skip("channels_last is compared for float32 only")
    s = _shape(shape)
    calls = bench.torch_calls(s, bench.make_inputs(s, dtype), layout == "nhwc")
    benchmark.group = f"{shape} {dtype} {pass_}"
    _run(benchmark, calls[pass_])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_numpy_gemm_of_the_forward_pass(benchmark, shape, dtype):
    s = _shape(shape)
    benchmark.group = f"{shape} {dtype} forward"
    _run(benchmark, bench.gemm_call(s, dtype))
