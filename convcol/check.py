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

__all__ = ["CheckReport", "Config", "Failure", "check_conv", "check_options", "load_function"]

OUTPUTS = ("out", "dx", "dw", "db")
# Findings that are not a wrong value: a call that raised, returned the wrong structure, or
# changed an argument in place (a net's layers share their arrays: the next layer, or the
# backward pass, would see the change). Reported in this order, before the outputs.
PROBLEMS = ("raised", "returned", "modified")


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

    output: str  # one of OUTPUTS or PROBLEMS
    config: Config
    message: str
    error: float = math.nan
    index: tuple[int, ...] | None = None
    snippet: str = ""
    got: float = math.nan  # the values at ``index``
    expected: float = math.nan

    def __str__(self) -> str:
        lines = [
            f"FAIL {self.output}: {self.message}",
            f"  smallest failing case: {self.config.describe()}",
        ]
        if self.index is not None:
            lines.append(
                f"  worst error {self.error:.3g} at index {self.index}: got {self.got:.6g}, "
                f"expected {self.expected:.6g}"
            )
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
            "or calls that raised, returned the wrong structure or changed their arguments"
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


_Finding = tuple[str, float, "tuple[int, ...] | None", float, float]


def _structure(value: Any) -> str:
    """What a call returned, for a message: ``a tuple of 2``, ``ndarray``."""
    return f"a tuple of {len(value)}" if isinstance(value, tuple) else type(value).__name__


def _changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The names whose values differ between two snapshots of a call's arguments."""
    return [
        k
        for k, v in before.items()
        if not (
            v == after[k] if isinstance(v, dict) else np.array_equal(v, after[k], equal_nan=True)
        )
    ]


def _run_case(
    forward: Callable[..., Any], backward: Callable[..., Any] | None, cfg: Config, tol: float
) -> dict[str, _Finding]:
    """What fails on ``cfg``: name -> (message, error, index, got, expected at index)."""
    x, w, b, dout = cfg.data()
    ref, ref_cache = conv_forward_naive(x, w, b, cfg.conv_param)
    # The user's functions get copies; the originals stay to compare them with afterwards.
    kept = {"x": x, "w": w, "b": b, "conv_param": cfg.conv_param}
    args = {k: (dict(v) if isinstance(v, dict) else v.copy()) for k, v in kept.items()}
    try:
        returned = forward(*args.values())
        if not (isinstance(returned, tuple) and len(returned) == 2):
            message = f"forward must return (out, cache), got {_structure(returned)}"
            return {"returned": (message, math.inf, None, math.nan, math.nan)}
        if changed := _changed(kept, args):
            message = f"forward changed its argument(s) {', '.join(changed)} in place"
            return {"modified": (message, math.inf, None, math.nan, math.nan)}
        out, cache = returned
        results = {"out": (out, ref)}
        if backward is not None:
            g = dout.copy()
            got = backward(g, cache)
            want = conv_backward_naive(dout, ref_cache)
            if not (isinstance(got, tuple) and len(got) == 3):
                message = f"backward must return (dx, dw, db), got {_structure(got)}"
                return {"returned": (message, math.inf, None, math.nan, math.nan)}
            if not np.array_equal(g, dout, equal_nan=True):
                message = "backward changed its argument dout in place"
                return {"modified": (message, math.inf, None, math.nan, math.nan)}
            results.update(zip(("dx", "dw", "db"), zip(got, want, strict=True), strict=True))
    except Exception as e:  # the user's code: any exception is a finding
        message = f"{type(e).__name__}: {e}{_where(e)}"
        return {"raised": (message, math.inf, None, math.nan, math.nan)}
    failed = {}
    for name, (g, e) in results.items():
        err, index, complaint = _worst(g, e)
        if complaint or err > tol:
            kind = "relative" if np.abs(e).max() > 0 else "absolute: every expected value is 0"
            message = complaint or f"differs from the oracle by {err:.3g} ({kind})"
            dtype = np.asarray(g).dtype
            if not complaint and dtype.kind == "f" and dtype.itemsize < 8 and err < 1e-4:
                message += (
                    f"; the output is {dtype}, whose rounding alone errs by "
                    "about 1e-7: a float32 conv wants a tolerance such as 1e-5"
                )
            got_v, want_v = (
                (float(np.asarray(g)[index]), float(e[index]))
                if index is not None
                else (math.nan, math.nan)
            )
            failed[name] = (message, err, index, got_v, want_v)
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


# What a "modified" snippet prints: the names of the arguments the call changed.
_CHANGED = (
    "print('changed:', [k for k, a, a0 in (('x', x, x0), ('w', w, w0), ('b', b, b0)) "
    "if not np.array_equal(a, a0, equal_nan=True)] + (['conv_param'] if conv_param != p0 else []))"
)


def _snippet(
    cfg: Config, output: str, specs: tuple[str, str] | None, in_backward: bool = False
) -> str:
    """Lines that reproduce one failure; ``in_backward``: the problem came from backward."""
    args = (cfg.n, cfg.c, cfg.f, cfg.h, cfg.w, cfg.kh, cfg.kw, cfg.stride, cfg.pad, cfg.seed)
    needs_backward = (
        output in ("dx", "dw", "db")
        or in_backward
        or (output == "raised" and bool(specs and specs[1]))
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
    ]
    call = "out, cache = forward(x, w, b, conv_param)"
    if output == "raised":
        lines.append(call)
        if needs_backward:
            lines.append("dx, dw, db = backward(dout, cache)")
    elif output == "returned":
        lines += (
            [call, "returned = backward(dout, cache)"]
            if in_backward
            else ["returned = forward(x, w, b, conv_param)"]
        )
        lines.append(
            "print(type(returned).__name__, len(returned) if isinstance(returned, tuple) else '')"
        )
    elif output == "modified" and in_backward:
        lines += [
            call,
            "dout0 = dout.copy()",
            "backward(dout, cache)",
            "print('dout changed:', not np.array_equal(dout, dout0, equal_nan=True))",
        ]
    elif output == "modified":
        lines += ["x0, w0, b0, p0 = x.copy(), w.copy(), b.copy(), dict(conv_param)", call, _CHANGED]
    else:  # the oracle first: a call that changes its arguments would change its input
        lines += ["ref, ref_cache = conv_forward_naive(x, w, b, conv_param)", call]
        if output == "out":
            lines += ["got, want = out, ref", _COMPARE]
        else:
            i = ("dx", "dw", "db").index(output)
            lines += [
                f"want = conv_backward_naive(dout, ref_cache)[{i}]",
                f"got = backward(dout, cache)[{i}]",
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

    Raises
    ------
    ConvError
        If ``cases`` is not an integer >= 1, ``seed`` not one >= 0, or ``tol`` not a finite
        number >= 0 (``check_options``).

    Examples
    --------
    >>> from convcol.check import check_conv
    >>> from convcol.naive import conv_forward_naive, conv_backward_naive
    >>> print(check_conv(conv_forward_naive, conv_backward_naive, cases=10))
    PASS: 10 cases agree with convcol's oracle (tolerance 1e-07 relative to the largest value)
    """
    check_options(cases, seed, tol)
    report = CheckReport(cases=cases, tol=tol)
    seen: set[str] = set()
    for cfg in configs(cases, seed):
        for output in _run_case(forward, backward, cfg, tol):
            if output in seen:
                continue
            seen.add(output)
            small = _shrink(forward, backward, cfg, output, tol)
            message, err, index, got, expected = _run_case(forward, backward, small, tol)[output]
            snippet = _snippet(small, output, specs, message.startswith("backward"))
            report.failures.append(
                Failure(output, small, message, err, index, snippet, got, expected)
            )
    report.failures.sort(key=lambda f: [*PROBLEMS, *OUTPUTS].index(f.output))
    return report


def check_options(cases: Any, seed: Any, tol: Any) -> None:
    """Raise ``ConvError`` unless ``cases`` is an integer >= 1, ``seed`` one >= 0 and
    ``tol`` a finite number >= 0 (a NaN tolerance would pass everything)."""
    for name, value, low in (("cases", cases, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConvError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(tol, bool) or not (
        isinstance(tol, (int, float, np.integer, np.floating)) and math.isfinite(tol) and tol >= 0
    ):
        raise ConvError(f"tol must be a finite number >= 0, got {tol!r}")


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
