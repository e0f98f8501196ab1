"""Shared fixtures: the hypothesis profile, a seeded rng and dtype-aware tolerances."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# JIT compiles make first calls slow, so no per-example deadline.
settings.register_profile(
    "convcol", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", parent=settings.get_profile("convcol"), max_examples=60)
# A long soak for local use: HYPOTHESIS_PROFILE=soak python -m pytest -k "random or fuzz"
settings.register_profile("soak", parent=settings.get_profile("convcol"), max_examples=1500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "convcol"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261129)


def tolerance(dtype: np.dtype, reduction: int) -> float:
    """Relative tolerance of a fast result against the float64 oracle.

    float64: 1e-10, far above the ~reduction * 1e-16 rounding of any case here, far below any
    real bug. float32: 4 * eps * reduction, the worst-case growth of rounding error in a sum
    of ``reduction`` terms (the typical error is about sqrt(reduction) * eps).
    """
    if np.dtype(dtype) == np.float64:
        return 1e-10
    return 4 * float(np.finfo(np.float32).eps) * max(1, reduction)


def assert_close(actual, expected, dtype, reduction: int = 1, magnitude=None) -> None:
    """Shapes and dtype exactly; values within the tolerance, relative to the largest value.

    ``magnitude``, when given, replaces the expected values as the scale: the same sums
    taken over the terms' absolute values, which bounds the rounding error even where the
    terms cancel (a sum of 12 float32 normals that comes to 0.002 is off by about 1e-7).
    """
    assert isinstance(actual, np.ndarray)
    assert actual.dtype == np.dtype(dtype), (actual.dtype, dtype)
    expected = np.asarray(expected, dtype=np.float64)
    tol = tolerance(dtype, reduction)
    scale_of = expected if magnitude is None else np.asarray(magnitude, dtype=np.float64)
    scale = float(np.max(np.abs(scale_of))) if scale_of.size else 0.0
    np.testing.assert_allclose(
        actual.astype(np.float64), expected, rtol=tol, atol=tol * scale, strict=True
    )


def assert_peak_within(call, limit: int, results: int) -> None:
    """``call()``'s peak NumPy memory (tracemalloc sees NumPy's allocations) stays under the
    workspace ``limit`` plus ``results`` bytes for the arrays it returns or keeps, and 64 KiB
    of small objects. A first call outside the measurement compiles the kernels (a new
    array layout loads another version of one); the thread's kept scratch buffer is then
    dropped, so that its allocation counts."""
    from convcol import workspace

    call()
    workspace._local.__dict__.clear()
    tracemalloc.start()
    try:
        call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= limit + results + 64 * 2**10, (peak, limit, results)


def force_winograd(monkeypatch, m: int | None = 4) -> None:
    """Every 3x3 stride-1 convolution of a dtype that has Winograd's F(m x m, 3x3) takes
    it, however small or thin; with ``m`` None, none takes the route."""
    from convcol import winograd

    tiles = {
        dtype: tuple(t.forced() for t in each if t.m == m)
        for dtype, each in winograd._TILES.items()
    }
    monkeypatch.setattr(winograd, "_TILES", tiles)


@pytest.fixture
def workspaces(monkeypatch):
    """The (chunk, ones) of every im2col workspace handed out from here on; ``ones``: with
    a row of ones for a bias that the forward GEMM adds."""
    from convcol import conv

    seen = []
    workspace = conv._workspace

    def spy(geo, chunk, dtype, ones=False):
        seen.append((chunk, ones))
        return workspace(geo, chunk, dtype, ones)

    monkeypatch.setattr(conv, "_workspace", spy)
    return seen
