"""The workspace limit: how many bytes of scratch (im2col columns, the padded input they are
read from, depthwise scratch) one call may hold at once."""

from __future__ import annotations

import contextvars
import os
import threading

import numpy as np

from .validation import ConvError, as_int

__all__ = ["DEFAULT_WORKSPACE_LIMIT", "get_workspace_limit", "workspace_limit"]

#: The limit when neither ``workspace_limit`` nor ``CONVCOL_WORKSPACE_LIMIT`` sets one.
DEFAULT_WORKSPACE_LIMIT = 256 * 2**20

_UNITS = {
    "": 1,
    "K": 2**10,
    "KB": 2**10,
    "KIB": 2**10,
    "M": 2**20,
    "MB": 2**20,
    "MIB": 2**20,
    "G": 2**30,
    "GB": 2**30,
    "GIB": 2**30,
}

# A context variable, so that a limit set in one thread (or asyncio task) is not seen by
# calls running in another.
_limit: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "convcol_workspace_limit", default=None
)


def _parse(text: str) -> int:
    t = text.strip().upper().replace(" ", "")
    digits = t.rstrip("KMGIB")
    unit = t[len(digits) :]
    if not digits.isdigit() or unit not in _UNITS:
        raise ConvError(
            f"CONVCOL_WORKSPACE_LIMIT must be a number of bytes, optionally with a K, M or G "
            f"suffix (e.g. 512M), got {text!r}"
        )
    return as_int("CONVCOL_WORKSPACE_LIMIT", int(digits) * _UNITS[unit], 1)


def get_workspace_limit() -> int:
    """The limit in force: the innermost ``workspace_limit``, else the environment's.

    Examples
    --------
    >>> import convcol
    >>> with convcol.workspace_limit(2**20):
    ...     convcol.get_workspace_limit()
    1048576
    """
    limit = _limit.get()
    if limit is not None:
        return limit
    env = os.environ.get("CONVCOL_WORKSPACE_LIMIT")
    return _parse(env) if env else DEFAULT_WORKSPACE_LIMIT


class workspace_limit:  # a context manager, named like the function it acts as
    """Cap the im2col workspace of the convolutions run inside the ``with`` block.

    Every convolution builds its im2col columns (and the padded copy of the input they are
    read from; on the Winograd route its transformed weights and tiles) in chunks of
    samples, or of output rows of one sample, that fit in ``nbytes`` (the default is
    256 MiB, or ``CONVCOL_WORKSPACE_LIMIT`` in bytes, e.g. ``512M``); it uses at most 8 MiB
    anyway when that fits, to stay in cache, or twice the weights' size if larger (16 MiB,
    or twice the transformed weights, on the Winograd route).
    A call whose single output row needs more raises ``ConvError`` before allocating
    anything, saying how much it needs. The limit applies to the calling thread only.

    Use it in a ``with`` statement: calling it alone changes nothing.

    Parameters
    ----------
    nbytes : int
        The most bytes of workspace held at once; >= 1 (checked at once).

    Examples
    --------
    >>> import numpy as np, convcol
    >>> x, w = np.ones((64, 16, 32, 32)), np.ones((16, 16, 3, 3))
    >>> with convcol.workspace_limit(2**20):       # chunks of 28 output rows
    ...     out = convcol.conv2d(x, w, padding=1)
    >>> with convcol.workspace_limit(32 * 2**10):  # one output row needs 37.0 KiB
    ...     convcol.conv2d(x, w, padding=1)
    Traceback (most recent call last):
    ...
    convcol.ConvError: one output row needs 37936 bytes (37.0 KiB) of workspace ...
    """

    def __init__(self, nbytes: int) -> None:
        self.nbytes = as_int("nbytes", nbytes, 1)
        self._tokens: list[contextvars.Token[int | None]] = []

    def __enter__(self) -> int:
        self._tokens.append(_limit.set(self.nbytes))
        return self.nbytes

    def __exit__(self, *exc: object) -> None:
        _limit.reset(self._tokens.pop())


# Each thread keeps its scratch buffer between calls (page faults on a fresh buffer cost
# more than filling it) unless it is larger than this.
_KEEP_BYTES = 64 * 2**20
_local = threading.local()


def scratch(nbytes: int) -> np.ndarray:
    """The first ``nbytes`` of this thread's scratch buffer (uint8; contents undefined)."""
    buf = getattr(_local, "buffer", None)
    if buf is None or buf.nbytes < nbytes:
        # The old buffer goes before the new one comes: both at once could double the limit
        # (even when the new one is too large to keep, and the next call starts afresh).
        buf = _local.buffer = None
        buf = np.empty(nbytes, np.uint8)
        if nbytes <= _KEEP_BYTES:
            _local.buffer = buf
    return buf[:nbytes]
