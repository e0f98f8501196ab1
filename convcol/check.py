"""Check anyone's cs231n-style convolution against the oracle: ``convcol check``.

A forward ``f(x, w, b, conv_param) -> (out, cache)`` and a backward
``g(dout, cache) -> (dx, dw, db)`` are run on many small configurations and compared with
``convcol.naive``. Each failing output is shrunk to the smallest configuration that still
fails and reported with a snippet that reproduces it.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .naive import conv_backward_naive, conv_forward_naive
from .validation import ConvError

__all__ = ["CheckReport", "Config", "Failure", "check_conv", "load_function"]

OUTPUTS = ("out", "dx", "dw", "db")


@dataclass(frozen=True)
class Config:
    """One configuration: shapes, cs231n ``conv_param`` and the seed of its data."""

    n: int
    c: int
    f: int
    h: int
    w: int
    kh: int
    kw: int
    stride: int
    pad: int
    seed: int

    @property
    def conv_param(self) -> dict[str, int]:
        return {"stride": self.stride, "pad": self.pad}

    def fits(self) -> bool:
        # The window fits, and the stride tiles the padded input (cs231n asserts it does).
        return all(
            k <= n + 2 * self.pad and (n + 2 * self.pad - k) % self.stride == 0
            for n, k in ((self.h, self.kh), (self.w, self.kw))
        )

    def data(self) -> tuple[np.ndarray, ...]:
        rng = np.random.default_rng(self.seed)
        x = rng.standard_normal((self.n, self.c, self.h, self.w))
        w = rng.standard_normal((self.f, self.c, self.kh, self.kw))
        b = rng.standard_normal(self.f)
        ho = (self.h + 2 * self.pad - self.kh) // self.stride + 1
        wo = (self.w + 2 * self.pad - self.kw) // self.stride + 1
        dout = rng.standard_normal((self.n, self.f, ho, wo))
        return x, w, b, dout

    def size(self) -> int:
        return self.n * self.c * self.f * self.h * self.w * self.kh * self.kw + self.pad

    def describe(self) -> str:
        return (
            f"x ({self.n}, {self.c}, {self.h}, {self.w}), w ({self.f}, {self.c}, {self.kh}, "
            f"{self.kw}), stride {self.stride}, pad {self.pad}"
        )


@dataclass
class Failure:
    """The smallest failing configuration found for one output."""

    output: str  # 'out', 'dx', 'dw', 'db', or 'raised'
    config: Config
    message: str
    error: float = math.nan
    index: tuple[int, ...] | None = None
    snippet: str = ""

    def __str__(self) -> str:
        lines = [
            f"FAIL {self.output}: {self.message}",
            f"  smallest failing case: {self.config.describe()}",
        ]
        if self.index is not None:
            lines.append(f"  worst error {self.error:.3g} at index {self.index}")
        lines.append("  reproduce with:")
        lines += ["    " + s for s in self.snippet.splitlines()]
        return "\n".join(lines)


@dataclass
class CheckReport:
    """What ``check_conv`` found. ``passed`` is true when every case agreed."""

    cases: int
    tol: float
    failures: list[Failure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def raised(self) -> bool:
        return any(f.output == "raised" for f in self.failures)

    def __str__(self) -> str:
        if self.passed:
            return (
                f"PASS: {self.cases} cases agree with convcol's oracle "
                f"(tolerance {self.tol:g} relative to the largest value)"
            )
        head = (
            f"{len(self.failures)} problem(s): outputs that disagree with convcol's oracle, "
            "or calls that raised"
        )
        return "\n\n".join([head, *map(str, self.failures)])


def configs(cases: int, seed: int) -> Iterator[Config]:
    """A fixed list of bug-catching cases first, then random small ones, all valid."""
    fixed = [
        Config(2, 3, 4, 5, 7, 3, 2, 1, 1, seed),  # non-square kernel, rectangular input
        Config(2, 2, 3, 7, 7, 3, 3, 2, 1, seed),  # stride 2 with padding
        Config(1, 1, 1, 4, 4, 2, 2, 1, 0, seed),  # the tutorial's single channel
        Config(3, 2, 5, 6, 6, 3, 3, 1, 2, seed),  # more padding than one pixel
        Config(2, 3, 2, 5, 5, 1, 1, 1, 0, seed),  # 1x1
        Config(1, 4, 1, 3, 5, 3, 1, 1, 1, seed),  # kernel 3x1
        Config(2, 1, 3, 9, 5, 3, 3, 2, 0, seed),  # stride 2 without padding
    ]
    yield from fixed[:cases]
    rng = np.random.default_rng(seed)
    made = len(fixed)
    while made < cases:
        cfg = Config(
            n=int(rng.integers(1, 4)),
            c=int(rng.integers(1, 4)),
            f=int(rng.integers(1, 5)),
            h=int(rng.integers(1, 9)),
            w=int(rng.integers(1, 9)),
            kh=int(rng.integers(1, 5)),
            kw=int(rng.integers(1, 5)),
            stride=int(rng.integers(1, 3)),
            pad=int(rng.integers(0, 3)),
            seed=seed + made,
        )
        if cfg.fits():
            made += 1
            yield cfg


def _worst(got: Any, want: np.ndarray) -> tuple[float, tuple[int, ...] | None, str | None]:
    """Worst error relative to the largest expected value, its index, or a shape complaint."""
    got = np.asarray(got)
    if got.shape != want.shape:
        return math.inf, None, f"shape {got.shape}, expected {want.shape}"
    if got.size == 0:
        return 0.0, None, None
    scale = float(np.abs(want).max())
    # All-zero expected values (e.g. a pixel no window reaches): the error is absolute.
    err = np.abs(got.astype(np.float64) - want) / (scale if scale > 0 else 1.0)
    err = np.where(np.isnan(err), np.inf, err)
    i = np.unravel_index(int(np.argmax(err)), err.shape)
    return float(err[i]), tuple(int(v) for v in i), None


def _run_case(
    forward: Callable[..., Any], backward: Callable[..., Any] | None, cfg: Config, tol: float
) -> dict[str, tuple[str, float, tuple[int, ...] | None]]:
    """The outputs that fail on ``cfg``: name -> (message, error, index)."""
    x, w, b, dout = cfg.data()
    ref, ref_cache = conv_forward_naive(x, w, b, cfg.conv_param)
    failed = {}
    try:
        returned = forward(x.copy(), w.copy(), b.copy(), dict(cfg.conv_param))
        if not (isinstance(returned, tuple) and len(returned) == 2):
            return {"out": ("forward must return (out, cache)", math.inf, None)}
        out, cache = returned
        results = {"out": (out, ref)}
        if backward is not None:
            got = backward(dout.copy(), cache)
            want = conv_backward_naive(dout, ref_cache)
            if not (isinstance(got, tuple) and len(got) == 3):
                return {"dx": ("backward must return (dx, dw, db)", math.inf, None)}
            results.update(zip(("dx", "dw", "db"), zip(got, want, strict=True), strict=True))
    except Exception as e:  # the user's code: any exception is a finding
        return {"raised": (f"{type(e).__name__}: {e}{_where(e)}", math.inf, None)}
    for name, (g, e) in results.items():
        err, index, complaint = _worst(g, e)
        if complaint or err > tol:
            kind = "relative" if np.abs(e).max() > 0 else "absolute: every expected value is 0"
            failed[name] = (
                complaint or f"differs from the oracle by {err:.3g} ({kind})",
                err,
                index,
            )
    return failed


def _smaller(cfg: Config) -> Iterator[Config]:
    for name in ("n", "c", "f", "h", "w", "kh", "kw", "pad", "stride"):
        value = getattr(cfg, name)
        low = 0 if name == "pad" else 1
        for v in sorted({low, value - 1}):
            if low <= v < value:
                yield replace(cfg, **{name: v})


def _informative(cfg: Config, output: str) -> bool:
    """Whether the oracle's ``output`` on ``cfg`` has a non-zero value to compare with."""
    if output not in OUTPUTS[1:]:
        return True
    x, w, b, dout = cfg.data()
    _, cache = conv_forward_naive(x, w, b, cfg.conv_param)
    grads = conv_backward_naive(dout, cache)
    return bool(np.any(grads[OUTPUTS.index(output) - 1]))


def _shrink(forward, backward, cfg: Config, output: str, tol: float) -> Config:
    """Greedily make ``cfg`` smaller while ``output`` still fails on it.

    Cases where the expected gradient is all zero (no window reaches a pixel) are passed
    over: they make a poor example of a bug.
    """
    improved = True
    while improved:
        improved = False
        for smaller in _smaller(cfg):
            if (
                smaller.fits()
                and _informative(smaller, output)
                and output in _run_case(forward, backward, smaller, tol)
            ):
                cfg, improved = smaller, True
                break
    return cfg


# The snippet's last line: both shapes, and the largest difference when they agree.
_COMPARE = (
    "print(np.shape(got), want.shape, np.abs(got - want).max() if np.shape(got) == want.shape "
    "else 'shapes differ')"
)


def _where(e: BaseException) -> str:
    """`` (at FILE:LINE in FUNCTION)``: the deepest frame of the traceback in the user's code,
    not in an installed package or the standard library (NumPy's ``np.pad`` raising on a
    bad width is the user's line that called it), else the deepest frame."""
    frames = traceback.extract_tb(e.__traceback__)[1:]  # [0] is the call in _run_case
    library = (os.path.dirname(os.__file__), os.path.dirname(np.__file__))
    own = [
        f for f in frames if not f.filename.startswith(library) and "-packages" not in f.filename
    ] or frames
    if not own:
        return ""
    f = own[-1]
    return f" (at {os.path.basename(f.filename)}:{f.lineno} in {f.name})"


def _snippet(cfg: Config, output: str, specs: tuple[str, str] | None) -> str:
    args = (cfg.n, cfg.c, cfg.f, cfg.h, cfg.w, cfg.kh, cfg.kw, cfg.stride, cfg.pad, cfg.seed)
    needs_backward = output in ("dx", "dw", "db") or (
        output == "raised" and bool(specs and specs[1])
    )
    if specs:
        load = [f"forward = load_function({specs[0]!r})"]
        if needs_backward:
            load.append(f"backward = load_function({specs[1]!r})")
    else:
        load = ["# forward, backward = your two functions"]
    lines = [
        "import numpy as np",
        "from convcol.check import Config, load_function",
        "from convcol.naive import conv_forward_naive, conv_backward_naive",
        *load,
        "x, w, b, dout = Config("
        + ", ".join(f"{k}={v}" for k, v in zip(Config.__dataclass_fields__, args, strict=True))
        + ").data()",
        f"conv_param = {cfg.conv_param}",
        "out, cache = forward(x, w, b, conv_param)",
        "ref, ref_cache = conv_forward_naive(x, w, b, conv_param)",
    ]
    if output == "raised":
        lines = [line for line in lines if "ref" not in line]
        if needs_backward:
            lines.append("dx, dw, db = backward(dout, cache)")
    elif output == "out":
        lines += ["got, want = out, ref", _COMPARE]
    elif output in ("dx", "dw", "db"):
        i = ("dx", "dw", "db").index(output)
        lines += [
            f"got = backward(dout, cache)[{i}]",
            f"want = conv_backward_naive(dout, ref_cache)[{i}]",
            _COMPARE,
        ]
    return "\n".join(lines)


def check_conv(
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None = None,
    *,
    cases: int = 40,
    seed: int = 0,
    tol: float = 1e-7,
    specs: tuple[str, str] | None = None,
) -> CheckReport:
    """Check a cs231n-style convolution against convcol's oracle.

    Parameters
    ----------
    forward : callable
        ``forward(x, w, b, conv_param) -> (out, cache)``, x (N, C, H, W), w (F, C, HH, WW),
        ``conv_param`` with ``'stride'`` and ``'pad'``.
    backward : callable, optional
        ``backward(dout, cache) -> (dx, dw, db)``; without it only the forward pass is checked.
    cases : int
        How many configurations: a fixed set aimed at the classic bugs, then random small
        ones (sizes 1-8, kernels 1-4, stride 1-2, padding 0-2, float64).
    seed : int
        Seed of the random configurations and data.
    tol : float
        Largest accepted error relative to the largest value of each expected output.
    specs : (str, str), optional
        ``MODULE:FUNCTION`` of the two functions, for the snippets to load them.

    Returns
    -------
    CheckReport
        ``passed``, and per failing output the smallest failing configuration, the worst
        error and where, and a snippet that reproduces it.

    Examples
    --------
    >>> from convcol.check import check_conv
    >>> from convcol.naive import conv_forward_naive, conv_backward_naive
    >>> print(check_conv(conv_forward_naive, conv_backward_naive, cases=10))
    PASS: 10 cases agree with convcol's oracle (tolerance 1e-07 relative to the largest value)
    """
    if cases < 1:
        raise ConvError(f"cases must be >= 1, got {cases}")
    report = CheckReport(cases=cases, tol=tol)
    seen: set[str] = set()
    for cfg in configs(cases, seed):
        for output in _run_case(forward, backward, cfg, tol):
            if output in seen:
                continue
            seen.add(output)
            small = _shrink(forward, backward, cfg, output, tol)
            message, err, index = _run_case(forward, backward, small, tol)[output]
            report.failures.append(
                Failure(output, small, message, err, index, _snippet(small, output, specs))
            )
    report.failures.sort(key=lambda f: ["raised", *OUTPUTS].index(f.output))
    return report


def load_function(spec: str) -> Callable[..., Any]:
    """``module:function`` or ``path/to/file.py:function`` -> the function."""
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise ImportError(f"expected MODULE:FUNCTION or FILE.py:FUNCTION, got {spec!r}")
    if target.endswith(".py") or os.sep in target:
        path = os.path.abspath(target)
        if not os.path.exists(path):
            raise ImportError(f"no file {target!r}")
        mod_name = f"_convcol_check_{abs(hash(path))}"
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ImportError(f"cannot import {target!r}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        sys.path.insert(0, os.path.dirname(path))
        try:
            loader_spec.loader.exec_module(module)
        finally:
            sys.path.remove(os.path.dirname(path))
    else:
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(target)
        finally:
            sys.path.remove(os.getcwd())
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ImportError(f"{target!r} has no function {name!r}")
    return fn
