"""The convcol command."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

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


def test_a_reader_that_goes_away_ends_the_command_quietly(monkeypatch):
    # `convcol check ... | head`: printing to a closed pipe raised BrokenPipeError with a
    # traceback (found by a new user's trial); now the command stops with status 1.
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        monkeypatch.chdir(Path(__file__).parent)
        assert cli.main(["check", "student_convs:forward_pad_one_side", "--forward-only"]) == 1
        closed.write("more output, after the reader went away\n")  # now goes to devnull
        closed.flush()
