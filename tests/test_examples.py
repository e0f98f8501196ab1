"""The examples run, and the digits CNN learns."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_digits_cnn_short_run_learns(capsys):
    pytest.importorskip("sklearn")  # the test extra installs it; CI runs this test
    sys.path.insert(0, str(EXAMPLES))
    try:
        import digits_cnn
    finally:
        sys.path.remove(str(EXAMPLES))
    # Three epochs instead of fifteen; the full run reaches about 0.99.
    accuracy = digits_cnn.main(["--epochs", "3", "--time-batches", "1"])
    out = capsys.readouterr().out
    assert accuracy >= 0.9, out
    assert "conv forward+backward, naive" in out and "final test accuracy" in out
