"""The convcol command."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from convcol import cli


def test_bench_reports_speedup_and_error():
    buf = io.StringIO()
    figures = cli.bench(repeat=1, out=buf)
    text = buf.getvalue()
    assert "x (100, 3, 31, 31), w (25, 3, 3, 3), stride 2, pad 1" in text
    for row in ("forward", "backward"):
        assert row in text
        # Same numbers as the oracle, to float64 rounding.
        assert figures[row]["max_rel_error"] < 1e-8
        assert figures[row]["naive_s"] > 0 and figures[row]["convcol_s"] > 0


def test_command_line_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "convcol", "--help"], capture_output=True, text=True, check=True
    )
    assert "bench" in done.stdout


def test_bad_repeat_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--repeat", "0"])
    assert exc.value.code == 2
    assert "--repeat must be >= 1" in capsys.readouterr().err
