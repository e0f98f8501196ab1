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
