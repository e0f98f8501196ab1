"""convcol check / convcol.check_conv: a student's conv against the oracle."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import student_convs as sc

import convcol
from convcol.check import Config, check_conv, configs
from convcol.naive import conv_backward_naive, conv_forward_naive

HERE = Path(__file__).parent


def test_the_oracle_and_a_correct_student_pass():
    assert check_conv(conv_forward_naive, conv_backward_naive).passed
    report = check_conv(sc.forward_correct, sc.backward_correct)
    assert report.passed, str(report)
    assert "PASS: 40 cases" in str(report)


def test_convcol_itself_passes():
    assert check_conv(convcol.conv_forward, convcol.conv_backward, cases=20).passed


@pytest.mark.parametrize(
    ("forward", "backward", "output"),
    [
        (sc.forward_transposed_kernel, None, "out"),
        (sc.forward_pad_one_side, None, "out"),
        (sc.forward_stride_on_kernel_offset, None, "out"),
        (sc.forward_bias_per_channel, None, "out"),
        (sc.forward_correct, sc.backward_overwrite, "dx"),
        (sc.forward_correct, sc.backward_unpad_negative_slice, "dx"),
    ],
    ids=[
        "transposed_kernel",
        "pad_one_side",
        "stride_on_kernel_offset",
        "bias_per_channel",
        "scatter_without_add",
        "unpad_negative_slice",
    ],
)
def test_classic_bugs_are_caught_and_shrunk(forward, backward, output):
    report = check_conv(forward, backward)
    assert not report.passed
    failure = next(f for f in report.failures if f.output == output)
    assert failure.error > 1e-3
    # The shrunk case still fails, and no single step smaller does.
    cfg = failure.config
    assert cfg.fits()
    from convcol.check import _run_case, _smaller

    assert output in _run_case(forward, backward, cfg, 1e-7)
    for smaller in _smaller(cfg):
        if smaller.fits():
            assert output not in _run_case(forward, backward, smaller, 1e-7), smaller
    assert "reproduce with:" in str(report) and "Config(" in failure.snippet


def test_an_empty_dx_is_named_by_its_shape():
    # dxp[:, :, p:-p, p:-p] is empty when p == 0: the report shows the wrong shape, on a
    # case with no padding, the one where the slice goes wrong.
    report = check_conv(sc.forward_correct, sc.backward_unpad_negative_slice)
    failure = next(f for f in report.failures if f.output == "dx")
    assert failure.config.pad == 0
    assert "FAIL dx: shape (1, 1, 0, 0), expected (1, 1, 1, 1)" in str(report)


def _forward_bad_pad(x, w, b, conv_param):
    return np.pad(x, -1), None  # raises inside NumPy's own Python code


def test_an_error_raised_inside_numpy_points_at_the_line_that_called_it():
    report = check_conv(_forward_bad_pad)
    (failure,) = report.failures
    assert failure.output == "raised"
    line = _forward_bad_pad.__code__.co_firstlineno + 1
    assert f"(at test_check.py:{line} in _forward_bad_pad)" in str(report), str(report)


def test_shrunk_cases_are_small():
    report = check_conv(sc.forward_bias_per_channel)
    (failure,) = report.failures
    # Bias added once per channel is only wrong with two channels or more.
    assert failure.config.c == 2 and failure.config.n == 1 and failure.config.f == 1


def test_snippet_reproduces_the_failure():
    spec = f"{HERE}/student_convs.py:forward_pad_one_side"
    report = check_conv(sc.forward_pad_one_side, specs=(spec, ""))
    (failure,) = report.failures
    done = subprocess.run(
        [sys.executable, "-c", failure.snippet], capture_output=True, text=True, check=True
    )
    assert float(done.stdout.split()[-1]) > 1e-3  # after the two (equal) shapes


def test_raising_functions_are_reported():
    report = check_conv(sc.forward_raises)
    assert report.raised
    # Where it was raised: the student's line, named by file, line and function.
    line = next(
        i
        for i, text in enumerate((HERE / "student_convs.py").read_text().splitlines(), 1)
        if 'raise ValueError("only square kernels")' in text
    )
    assert f"ValueError: only square kernels (at student_convs.py:{line} in forward_raises)" in (
        str(report)
    )
    (failure,) = report.failures
    assert "out, cache = forward(x, w, b, conv_param)" in failure.snippet


def test_configs_are_valid_and_varied():
    cases = list(configs(200, 3))
    assert len(cases) == 200 and all(c.fits() for c in cases)
    assert {c.stride for c in cases} == {1, 2} and {c.pad for c in cases} == {0, 1, 2}
    assert any(c.kh != c.kw for c in cases) and any(c.n == 1 for c in cases)
    assert any(c.c == 1 for c in cases)
    x, _, _, dout = Config(2, 3, 4, 5, 6, 3, 2, 1, 1, 0).data()
    assert x.shape == (2, 3, 5, 6) and dout.shape == (2, 4, 5, 7)
    np.testing.assert_array_equal(x, Config(2, 3, 4, 5, 6, 3, 2, 1, 1, 0).data()[0])


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "convcol", "check", *args], capture_output=True, text=True, cwd=HERE
    )


def test_cli_exit_codes():
    ok = _cli("student_convs:forward_correct", "student_convs:backward_correct", "--cases", "8")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASS: 8 cases" in ok.stdout
    bad = _cli("student_convs.py:forward_correct", "student_convs.py:backward_overwrite")
    assert bad.returncode == 1 and "FAIL dx" in bad.stdout
    assert "load_function('student_convs.py:backward_overwrite')" in bad.stdout
    fwd = _cli("student_convs:forward_bias_per_channel", "--forward-only", "--seed", "5")
    assert fwd.returncode == 1 and "FAIL out" in fwd.stdout
    raised = _cli("student_convs:forward_raises", "--forward-only")
    assert raised.returncode == 2 and "FAIL raised" in raised.stdout
    missing = _cli("no_such_module:forward", "--forward-only")
    assert missing.returncode == 2 and "cannot import" in missing.stderr
    usage = _cli("student_convs:forward_correct")
    assert usage.returncode == 2 and "--forward-only" in usage.stderr


def test_load_function_by_module_and_by_path(monkeypatch):
    from convcol.check import load_function

    monkeypatch.chdir(HERE)
    assert load_function("student_convs:forward_correct").__name__ == "forward_correct"
    by_path = load_function(str(HERE / "student_convs.py") + ":backward_overwrite")
    assert by_path.__name__ == "backward_overwrite"
    for bad, message in [
        ("student_convs", "expected MODULE:FUNCTION"),
        ("student_convs:no_such_function", "has no function 'no_such_function'"),
        ("no_such_file.py:f", "no file 'no_such_file.py'"),
    ]:
        with pytest.raises(ImportError, match=message):
            load_function(bad)


def test_cli_in_process(monkeypatch, capsys):
    from convcol import cli

    monkeypatch.chdir(HERE)
    assert (
        cli.main(
            [
                "check",
                "student_convs:forward_correct",
                "student_convs:backward_correct",
                "--cases",
                "5",
            ]
        )
        == 0
    )
    assert "PASS: 5 cases" in capsys.readouterr().out
    assert cli.main(["check", "student_convs:forward_transposed_kernel", "--forward-only"]) == 1
    assert "FAIL out" in capsys.readouterr().out
    assert cli.main(["check", "nope:f", "--forward-only"]) == 2
    assert "cannot import" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["check", "student_convs:forward_correct", "--forward-only", "--cases", "0"])


def test_shrinking_skips_cases_whose_expected_gradient_is_zero():
    # With stride 2 and padding on a 1x1 input no window reaches the pixel, so dx is exactly
    # zero there: a poor example. The report must show a case with something to compare.
    report = check_conv(sc.forward_correct, sc.backward_stride_ignored)
    failure = next(f for f in report.failures if f.output == "dx")
    assert "(relative)" in failure.message and failure.error < 1e3
    x, w, b, dout = failure.config.data()
    _, cache = conv_forward_naive(x, w, b, failure.config.conv_param)
    assert np.any(conv_backward_naive(dout, cache)[0])


def test_forward_must_return_out_and_cache():
    (failure,) = check_conv(sc.forward_without_cache).failures
    assert failure.output == "returned"
    assert failure.message == "forward must return (out, cache), got ndarray"


def _run_snippet(snippet):
    done = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, check=True, cwd=HERE
    )
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("forward", "backward", "message", "printed"),
    [
        (
            "forward_centres_input_in_place",
            "backward_correct",
            "forward changed its argument(s) x in place",
            "changed: ['x']",
        ),
        (
            "forward_correct",
            "backward_scales_dout_in_place",
            "backward changed its argument dout in place",
            "dout changed: True",
        ),
    ],
)
def test_arguments_changed_in_place_are_reported(forward, backward, message, printed):
    # Its outputs may even be right: a net's next layer, or its backward pass, would see the
    # change. The snippet shows the change rather than a difference from the oracle.
    specs = (f"student_convs.py:{forward}", f"student_convs.py:{backward}")
    report = check_conv(getattr(sc, forward), getattr(sc, backward), specs=specs)
    (failure,) = report.failures
    assert failure.output == "modified" and failure.message == message
    assert _run_snippet(failure.snippet) == printed


def test_wrong_return_structures_are_reported_with_what_came_back():
    specs = ("student_convs.py:forward_correct", "student_convs.py:backward_without_db")
    report = check_conv(sc.forward_correct, sc.backward_without_db, specs=specs)
    (failure,) = report.failures
    assert failure.output == "returned"
    assert failure.message == "backward must return (dx, dw, db), got a tuple of 2"
    assert _run_snippet(failure.snippet) == "tuple 2"


def test_a_wrong_value_is_shown_beside_the_expected_one():
    report = check_conv(sc.forward_pad_one_side)
    (failure,) = report.failures
    x, w, b, _ = failure.config.data()
    want = conv_forward_naive(x, w, b, failure.config.conv_param)[0][failure.index]
    got = sc.forward_pad_one_side(x, w, b, failure.config.conv_param)[0][failure.index]
    assert (failure.got, failure.expected) == (got, want) and got != want
    assert f"got {got:.6g}, expected {want:.6g}" in str(report)


def test_a_float32_conv_is_told_about_its_rounding():
    report = check_conv(sc.forward_in_float32)
    (failure,) = report.failures
    assert failure.output == "out" and failure.error < 1e-5
    assert "the output is float32" in failure.message and "1e-5" in failure.message
    assert check_conv(sc.forward_in_float32, tol=1e-5).passed


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tol": float("nan")}, "tol must be a finite number >= 0, got nan"),
        ({"tol": -1.0}, "tol must be a finite number >= 0, got -1.0"),
        ({"tol": float("inf")}, "tol must be a finite number >= 0, got inf"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"seed": 1.5}, "seed must be an integer >= 0, got 1.5"),
        ({"cases": 0}, "cases must be an integer >= 1, got 0"),
        ({"cases": True}, "cases must be an integer >= 1, got True"),
    ],
)
def test_bad_options_are_refused(options, message):
    # A NaN tolerance compares false with every error, so it would pass any conv.
    with pytest.raises(convcol.ConvError, match=re.escape(message)):
        check_conv(sc.forward_transposed_kernel, **options)


@pytest.mark.parametrize(
    "options", [["--tol", "nan"], ["--tol", "-1"], ["--seed", "-1"], ["--cases", "0"]]
)
def test_cli_refuses_bad_options(options):
    done = _cli("student_convs:forward_transposed_kernel", "--forward-only", *options)
    assert done.returncode == 2 and f"error: {options[0]} must be" in done.stderr
    assert not done.stdout


def test_bench_refuses_a_negative_seed():
    done = subprocess.run(
        [sys.executable, "-m", "convcol", "bench", "--seed", "-1"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "--seed must be an integer >= 0, got -1" in done.stderr


def test_the_documented_output_is_what_the_command_prints():
    # docs/check.md shows two runs from the repository's root; every line it shows (its
    # "..." aside) must be in what the command prints today.
    page = (HERE.parent / "docs" / "check.md").read_text()
    blocks = [b.split("```")[0] for b in page.split("```text\n")[1:]]
    assert len(blocks) == 2
    for block in blocks:
        command, *shown = block.strip("\n").splitlines()
        assert command.startswith("$ convcol check ")
        done = subprocess.run(
            [sys.executable, "-m", "convcol", *command.split()[2:]],
            capture_output=True,
            text=True,
            cwd=HERE.parent,
        )
        printed = done.stdout.splitlines()
        for line in shown:
            if line.strip() != "...":
                assert line in printed, line
