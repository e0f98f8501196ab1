"""Numerical gradients, to check any layer's backward pass (convcol's, or your own)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .validation import ConvError

__all__ = ["numerical_gradient", "rel_error"]


def numerical_gradient(
    f: Callable[[np.ndarray], Any], x: Any, dout: Any, h: float = 1e-6
) -> np.ndarray:
    """Centred-difference gradient of ``sum(f(x) * dout)`` with respect to ``x``.

    This is what a backward pass must return for ``x`` when the upstream gradient is
    ``dout``. Each element of a float64 copy of ``x`` is moved by ``+h`` and ``-h`` in turn,
    so ``f`` is called ``2 * x.size`` times; the caller's ``x`` is never modified.

    Parameters
    ----------
    f : callable
        Maps an array shaped like ``x`` to an array shaped like ``dout``.
    x : array_like
    dout : array_like
        Upstream gradient, shaped like ``f(x)``.
    h : float
        Step. The error is O(h**2) truncation plus O(eps / h) rounding; 1e-6 suits float64
        functions with values of order one.

    Returns
    -------
    ndarray, float64, shape of ``x``

    Examples
    --------
    >>> import numpy as np
    >>> from convcol.gradcheck import numerical_gradient
    >>> x = np.array([1.0, 2.0, 3.0])
    >>> numerical_gradient(lambda v: v ** 2, x, np.ones(3)).round(6)
    array([2., 4., 6.])
    """
    xp = np.array(x, dtype=np.float64)  # a private copy: perturbed in place below
    d = np.asarray(dout, dtype=np.float64)
    grad = np.zeros(xp.shape)
    flat, gflat = xp.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = np.asarray(f(xp), dtype=np.float64)
        flat[i] = old - h
        minus = np.asarray(f(xp), dtype=np.float64)
        flat[i] = old
        if plus.shape != d.shape:
            raise ConvError(f"f(x) has shape {plus.shape} but dout has shape {d.shape}")
        gflat[i] = np.sum((plus - minus) * d) / (2 * h)
    return grad


def rel_error(a: Any, b: Any) -> float:
    """The largest elementwise relative error ``|a - b| / max(1e-8, |a| + |b|)``.

    The cs231n measure: about 1e-7 or less means a float64 gradient agrees with its
    numerical estimate. Shapes must match exactly (no broadcasting).

    Examples
    --------
    >>> from convcol.gradcheck import rel_error
    >>> rel_error([1.0, 2.0], [1.0, 3.0])   # |2 - 3| / (2 + 3)
    0.2
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ConvError(f"rel_error needs equal shapes, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))
