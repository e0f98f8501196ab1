"""The benchmark suite's machinery (not its speed: that is measured, never asserted)."""

from __future__ import annotations

import io
import json

import pytest

from convcol import bench, cli


def test_flops_and_output_size_by_hand():
    s = next(s for s in bench.SHAPES if s.name == "cifar_3x3")
    assert s.out_size == (32, 32)
    # 2 flops per multiply-add: N * F * Ho * Wo outputs, each C * 3 * 3 multiply-adds.
    assert s.forward_flops() == 2 * 32 * 64 * 32 * 32 * 64 * 9
    dw = next(s for s in bench.SHAPES if s.name == "mobilenetv2_dw3x3_s2")
    assert dw.depthwise and dw.out_size == (28, 28)
    assert dw.forward_flops() == 2 * 8 * 144 * 28 * 28 * 1 * 9


def test_suite_table_and_results():
    out, progress = io.StringIO(), io.StringIO()
    results = bench.run_suite(
        ["cs231n_classic"], ("float64",), repeat=1, budget_s=0.1, out=out, progress=progress
    )
    rows = results["rows"]
    assert [r["pass"] for r in rows] == ["forward", "forward+backward"]
    for r in rows:
        assert r["convcol_s"] > 0 and r["gflops"] > 0 and r["peak_extra_mib"] >= 0
    assert "gemm" in rows[0]["ratios"]
    assert "cs231n_classic" in out.getvalue() and "[1/1]" in progress.getvalue()
    assert results["blas"] and all("num_threads" in d or "note" in d for d in results["blas"])
    assert f"BLAS: {bench.describe_blas(results['blas'])}\n" in out.getvalue()


@pytest.mark.parametrize(
    ("path", "package"),
    [
        ("/v/lib/python3.11/site-packages/numpy.libs/libscipy_openblas64_-32a4b2a6.so", "numpy"),
        ("/usr/lib/python3/dist-packages/scipy.libs/libscipy_openblas-6e8a.so", "scipy"),
        ("/v/lib/python3.11/site-packages/torch/lib/libgomp.so.1", "torch"),
        ("C:\\py\\Lib\\site-packages\\numpy.libs\\libopenblas.dll", "numpy"),
        ("/usr/lib/x86_64-linux-gnu/libopenblas.so.0", "libopenblas.so.0"),
        ("", ""),
    ],
)
def test_blas_library_named_by_the_package_that_ships_it(path, package):
    assert bench._package(path) == package


# threadpoolctl's entries as blas_info() keeps them: PyTorch's OpenMP first, as it comes
# when torch is imported before NumPy's BLAS is first used.
_POOLS = [
    {"library": "torch", "user_api": "openmp", "internal_api": "openmp", "num_threads": 8},
    {"library": "scipy", "user_api": "blas", "internal_api": "openblas", "num_threads": 3,
     "version": "0.3.30", "architecture": "Haswell", "threading_layer": "pthreads"},
    {"library": "numpy", "user_api": "blas", "internal_api": "openblas", "num_threads": 2,
     "version": "0.3.31", "architecture": "SkylakeX", "threading_layer": "pthreads"},
]  # fmt: skip


def test_blas_line_names_each_pool_and_its_package():
    assert bench.describe_blas(_POOLS) == (
        "torch: openmp, 8 threads; scipy: openblas 0.3.30 Haswell, 3 threads (pthreads); "
        "numpy: openblas 0.3.31 SkylakeX, 2 threads (pthreads)"
    )
    assert bench.describe_blas([{"note": "threadpoolctl not installed"}]) == (
        "threadpoolctl not installed"
    )


def test_thread_count_is_numpy_blas_not_the_first_pool():
    # PyTorch is given NumPy's BLAS thread count, not that of whichever pool came first.
    assert bench.numpy_blas_threads(_POOLS) == 2
    assert bench.numpy_blas_threads(_POOLS[:2]) == 3  # no NumPy entry: the first BLAS
    assert bench.numpy_blas_threads(_POOLS[:1]) is None
    assert bench.numpy_blas_threads([{"note": "threadpoolctl not installed"}]) is None


def test_json_and_plot(tmp_path):
    pytest.importorskip("torch")  # the plot shows ratios to PyTorch
    results = bench.run_suite(
        ["cs231n_classic"],
        ("float32",),
        repeat=1,
        budget_s=0.1,
        out=io.StringIO(),
        progress=io.StringIO(),
    )
    assert "torch" in results["rows"][0]["ratios"] and "torch_cl" in results["rows"][0]["ratios"]
    bench.write_json(results, str(tmp_path / "r.json"))
    assert json.loads((tmp_path / "r.json").read_text())["rows"][0]["shape"] == "cs231n_classic"
    bench.plot(results, str(tmp_path / "r.png"))
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_options(tmp_path, capsys):
    assert cli.main(["bench", "--list"]) == 0
    assert "googlenet_5x5" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--shapes", "no_such_shape"])
    assert exc.value.code == 2 and "unknown shape" in capsys.readouterr().err
    path = tmp_path / "q.json"
    assert (
        cli.main(
            [
                "bench",
                "--no-naive",
                "--shapes",
                "cs231n_classic",
                "--dtype",
                "float64",
                "--repeat",
                "1",
                "--json",
                str(path),
            ]
        )
        == 0
    )
    assert len(json.loads(path.read_text())["rows"]) == 2
