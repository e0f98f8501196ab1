"""Argument checking shared by the fast path and the oracle.

Everything here answers "is this input allowed, and what does it mean?" and nothing here
computes a result, so that the oracle may share it without sharing the fast path's
arithmetic.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["ConvError"]

#: An explicit padding: one ``(before, after)`` pair per spatial axis.
Pads = tuple[tuple[int, int], ...]
PaddingSpec = Pads | str

_AXES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}

# Sizes, strides and element counts stay below this, so no index arithmetic (int64 in the
# kernels) can overflow.
MAX_INT = 2**62


class ConvError(ValueError):
    """The one exception convcol raises for bad input.

    The message names the argument, the shapes or values involved and the rule broken.
    It subclasses ``ValueError``, so ``except ValueError`` catches it too.

    Examples
    --------
    >>> import numpy as np, convcol
    >>> convcol.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((4, 2, 3, 3)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    convcol.ConvError: w has 2 input channels per group but x has 3 channels and groups=1 ...
    """


# Shown as convcol.ConvError in tracebacks, where users import it from.
ConvError.__module__ = "convcol"


def as_int(name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as a Python int, refusing bools, floats and values below ``minimum``."""
    if isinstance(value, (bool, np.bool_)):
        raise ConvError(f"{name} must be an integer, got the bool {value!r}")
    try:
        ivalue = operator.index(value)
    except TypeError:
        raise ConvError(
            f"{name} must be an integer, got {value!r} of type {type(value).__name__}"
        ) from None
    if ivalue < minimum:
        raise ConvError(f"{name} must be >= {minimum}, got {ivalue}")
    if ivalue > MAX_INT:
        raise ConvError(f"{name}={ivalue} is too large (at most 2**62)")
    return ivalue


def per_axis(name: str, value: Any, nd: int, minimum: int) -> tuple[int, ...]:
    """An int or a length-``nd`` sequence of ints, as a tuple of ``nd`` ints."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if isinstance(value, (tuple, list)):
        if len(value) != nd:
            raise ConvError(
                f"{name} must be an int or a sequence of {nd} ints (one per spatial axis "
                f"{', '.join(_AXES[nd])}), got {value!r} of length {len(value)}"
            )
        return tuple(as_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(value))
    try:
        return (as_int(name, value, minimum),) * nd
    except ConvError as e:
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            raise  # an int out of range: the form was right, the message says what is wrong
        raise ConvError(f"{e}; {name} must be an int or a sequence of {nd} ints") from None


def parse_padding(name: str, padding: Any, nd: int) -> PaddingSpec:
    """Normalize a padding argument to ``'same'`` or one ``(before, after)`` pair per axis.

    Accepted forms: an int; ``'valid'``; ``'same'``; ``nd`` ints (symmetric per axis);
    ``nd`` pairs ``(before, after)``.
    """
    forms = f"an int, 'valid', 'same', {nd} ints (one per axis) or {nd} (before, after) pairs"
    if isinstance(padding, np.ndarray) and padding.ndim in (1, 2):
        padding = padding.tolist()  # as per_axis takes a stride: the same forms as lists
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding == "same":
            return "same"
        raise ConvError(f"{name} must be {forms}; got the string {padding!r}")
    if (
        nd == 1
        and isinstance(padding, (tuple, list))
        and len(padding) == 2
        and not any(isinstance(p, (tuple, list)) for p in padding)
    ):
        padding = (tuple(padding),)  # 1-D: two numbers can only be (before, after)
    if isinstance(padding, (tuple, list)):
        if len(padding) != nd:
            raise ConvError(f"{name} must be {forms}; got {padding!r} of length {len(padding)}")
        pairs = []
        for i, p in enumerate(padding):
            if isinstance(p, (tuple, list)):
                if len(p) != 2:
                    raise ConvError(
                        f"{name}[{i}] must be a (before, after) pair, got {p!r}; {name} must "
                        f"be {forms}"
                    )
                pairs.append(
                    (as_int(f"{name}[{i}][0]", p[0], 0), as_int(f"{name}[{i}][1]", p[1], 0))
                )
            else:
                v = as_int(f"{name}[{i}]", p, 0)
                pairs.append((v, v))
        return tuple(pairs)
    try:
        v = as_int(name, padding, 0)
    except ConvError as e:
        raise ConvError(f"{e}; {name} must be {forms}") from None
    return ((v, v),) * nd


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
DATA_FORMATS = ("channels_first", "channels_last")


def choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else a ConvError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ConvError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_padding_mode(mode: str, in_size: tuple[int, ...], pads: Pads, shapes: str) -> None:
    """Refuse pads a non-zero padding mode cannot fill from the input (as PyTorch does)."""
    for ax, (n, (lo, hi)) in enumerate(zip(in_size, pads, strict=True)):
        if mode == "reflect" and max(lo, hi) >= n:
            raise ConvError(
                f"padding_mode='reflect' needs each pad < the input size, but spatial axis "
                f"{ax} has size {n} and pads ({lo}, {hi}) ({shapes})"
            )
        if mode == "circular" and max(lo, hi) > n:
            raise ConvError(
                f"padding_mode='circular' needs each pad <= the input size, but spatial axis "
                f"{ax} has size {n} and pads ({lo}, {hi}) ({shapes})"
            )
        if mode == "replicate" and n == 0 and lo + hi > 0:
            raise ConvError(
                f"padding_mode='replicate' cannot pad the empty spatial axis {ax} ({shapes})"
            )


def check_transpose_options(
    padding: PaddingSpec,
    padding_mode: str,
    output_padding: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> None:
    """The rules a transposed convolution adds: explicit zero padding, small output_padding."""
    if padding_mode != "zeros":
        raise ConvError(
            f"padding_mode={padding_mode!r} is not defined for a transposed convolution, whose "
            "padding removes border pixels of the output; only 'zeros' is supported (as in "
            "PyTorch)"
        )
    if padding == "same":
        raise ConvError(
            "padding='same' is not defined for a transposed convolution; give the padding "
            "explicitly (an int, per-axis ints or (before, after) pairs)"
        )
    for ax, (op, s, d) in enumerate(zip(output_padding, stride, dilation, strict=True)):
        if op >= s and op >= d:
            raise ConvError(
                f"output_padding={op} along spatial axis {ax} must be smaller than the stride "
                f"({s}) or the dilation ({d})"
            )


_CONV_PARAM_KEYS = ("stride", "pad", "dilation", "groups")


def parse_conv_param(conv_param: Any, nd: int = 2) -> dict[str, Any]:
    """Read a cs231n-style ``conv_param`` dict into keyword arguments.

    ``'stride'`` and ``'pad'`` default to 1 and 0 like cs231n's backward pass;
    ``'dilation'`` and ``'groups'`` default to 1. Unknown keys are refused, so a typo such
    as ``'strides'`` cannot silently fall back to a default.
    """
    if not isinstance(conv_param, Mapping):
        raise ConvError(
            f"conv_param must be a dict with keys {_CONV_PARAM_KEYS}, got "
            f"{type(conv_param).__name__}"
        )
    unknown = sorted(set(conv_param) - set(_CONV_PARAM_KEYS), key=str)
    if unknown:
        raise ConvError(
            f"conv_param has unknown key(s) {unknown}; allowed keys are {_CONV_PARAM_KEYS}"
        )
    return {
        "stride": per_axis("conv_param['stride']", conv_param.get("stride", 1), nd, 1),
        "padding": parse_padding("conv_param['pad']", conv_param.get("pad", 0), nd),
        "dilation": per_axis("conv_param['dilation']", conv_param.get("dilation", 1), nd, 1),
        "groups": as_int("conv_param['groups']", conv_param.get("groups", 1), 1),
    }


def as_array(name: str, a: Any) -> np.ndarray:
    """``a`` as an ndarray of a real numeric dtype (no copy when it already is one)."""
    try:
        arr = np.asarray(a)
    except Exception as e:  # ragged lists and the like
        raise ConvError(f"{name} could not be read as an array: {e}") from None
    if arr.dtype.kind not in "fiu":
        raise ConvError(
            f"{name} must have a real numeric dtype (float or integer), got dtype "
            f"{arr.dtype} with shape {arr.shape}"
        )
    return arr


def compute_dtype(*arrays: np.ndarray | None) -> np.dtype:
    """The dtype a convolution of these arrays is computed and returned in.

    NumPy promotion, then: integer results become float64, float16 becomes float32 (there
    are no half-precision kernels), and anything wider than float64 is refused.
    """
    dt = np.result_type(*(a.dtype for a in arrays if a is not None))
    if dt.kind in "iu":
        return np.dtype(np.float64)
    if dt == np.float16:
        return np.dtype(np.float32)
    if dt not in (np.float32, np.float64):
        raise ConvError(f"dtype {dt} is not supported; use float32 or float64")
    return np.dtype(dt)


def check_conv_shapes(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    b_shape: tuple[int, ...] | None,
    groups: int,
    nd: int,
    *,
    channels_last: bool = False,
    transposed: bool = False,
) -> None:
    """Check ranks, channel counts, groups and the bias shape of a convolution.

    ``w`` is (F, C // groups, k...) for a convolution and (C, F // groups, k...) for a
    transposed one, where C is the input's channel count and F the output's.
    """
    shapes = f"x.shape={x_shape}, w.shape={w_shape}"
    axes = ", ".join(_AXES[nd])
    x_layout = f"(N, {axes}, C)" if channels_last else f"(N, C, {axes})"
    w_layout = "(C, F // groups, " if transposed else "(F, C // groups, "
    if len(x_shape) != nd + 2:
        raise ConvError(f"x must be {nd + 2}-D {x_layout}, got {len(x_shape)}-D x.shape={x_shape}")
    if len(w_shape) != nd + 2:
        raise ConvError(
            f"w must be {nd + 2}-D {w_layout}kernel {axes}), got {len(w_shape)}-D w.shape={w_shape}"
        )
    for ax, k in enumerate(w_shape[2:]):
        if k < 1:
            raise ConvError(
                f"w has a kernel of size {k} along spatial axis {ax} ({shapes}); every kernel "
                f"size must be >= 1"
            )
    C = x_shape[-1] if channels_last else x_shape[1]
    if C % groups:
        raise ConvError(f"groups={groups} does not divide the {C} input channels ({shapes})")
    if transposed:
        if w_shape[0] != C:
            raise ConvError(
                f"w has {w_shape[0]} input channels but x has {C} ({shapes}): a transposed "
                f"convolution's w.shape[0] must equal C"
            )
        F = w_shape[1] * groups
    else:
        F = w_shape[0]
        if F % groups:
            raise ConvError(f"groups={groups} does not divide the {F} filters of w ({shapes})")
        if w_shape[1] != C // groups:
            raise ConvError(
                f"w has {w_shape[1]} input channels per group but x has {C} channels and "
                f"groups={groups} ({shapes}): w.shape[1] must equal C // groups"
            )
    if b_shape is not None and b_shape != (F,):
        raise ConvError(
            f"b must have shape (F,) = ({F},), one per output channel of w.shape={w_shape}, "
            f"got b.shape={b_shape}"
        )


def check_window_fits(
    in_size: tuple[int, ...],
    pads: Pads,
    kernel: tuple[int, ...],
    dilation: tuple[int, ...],
    shapes: str,
) -> None:
    """Refuse a (dilated) kernel that is larger than the padded input along some axis."""
    for ax, (n, (lo, hi), k, d) in enumerate(zip(in_size, pads, kernel, dilation, strict=True)):
        extent = (k - 1) * d + 1
        if extent > n + lo + hi:
            raise ConvError(
                f"the kernel does not fit the padded input along spatial axis {ax}: kernel "
                f"size {k} with dilation {d} spans {extent} but the input is {n} + padding "
                f"{lo} + {hi} = {n + lo + hi} ({shapes}); the window must fit at least once"
            )


def check_element_count(name: str, shape: tuple[int, ...], shapes: str) -> None:
    """Refuse an array whose element count would overflow int64 index arithmetic."""
    count = 1
    for n in shape:
        count *= n
    if count > MAX_INT:
        raise ConvError(
            f"{name} would have shape {shape}, {count} elements: more than 2**62 ({shapes})"
        )


def check_dout(dout: np.ndarray, expected: tuple[int, ...], context: str) -> None:
    """Refuse an upstream gradient whose shape is not the forward output's."""
    if dout.shape != tuple(expected):
        raise ConvError(
            f"dout.shape={dout.shape} does not match the forward output shape "
            f"{tuple(expected)} ({context})"
        )
