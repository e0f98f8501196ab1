"""The Numba kernels, im2col and its adjoint col2im, and the thread pool that runs them.

Private and plain on purpose: callers (``convcol.conv``) validate, allocate every buffer with
NumPy (its allocator gets huge pages; Numba's does not) and pass it in.

Layout: ``x`` is (N, C, D, H, W); ``cols`` is (C * KD * KH * KW, N * OD * OH * OW), row
``(c, kd, kh, kw)`` and column ``(n, od, oh, ow)``, both in C order.

Parallelism: a kernel call handles the (sample, channel) pairs ``job_lo <= n * C + c <
job_hi``; :func:`run` splits the pairs into one contiguous range per thread. Each pair writes
only its own rows of ``cols`` or its own plane of ``dx``, so no two threads ever touch the same
element. The kernels release the GIL and the pool's idle workers sleep on a lock, so there is
no spinning to slow the OpenBLAS GEMM that follows (Numba's ``omp`` layer after a ``prange``
spins, its ``workqueue`` layer is not safe for concurrent callers); and the pool, unlike a
``prange``, can be shared by any number of calling threads.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba

# Below this many output elements per thread, handing work to another thread costs more than
# it saves.
_MIN_ELEMENTS_PER_THREAD = 1 << 16


def _default_threads() -> int:
    env = os.environ.get("CONVCOL_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


NUM_THREADS = _default_threads()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(NUM_THREADS - 1, thread_name_prefix="convcol")
        return _pool


def run(kernel: Any, n_jobs: int, elements: int, *args: Any) -> None:
    """Call ``kernel(*args, lo, hi)`` over ``[0, n_jobs)``, split across the threads."""
    threads = min(NUM_THREADS, n_jobs, max(1, elements // _MIN_ELEMENTS_PER_THREAD))
    if threads <= 1:
        kernel(*args, 0, n_jobs)
        return
    bounds = [n_jobs * i // threads for i in range(threads + 1)]
    pool = _get_pool()
    futures = [pool.submit(kernel, *args, bounds[i], bounds[i + 1]) for i in range(1, threads)]
    kernel(*args, bounds[0], bounds[1])
    for f in futures:
        f.result()


@numba.njit(cache=True, inline="always")
def _valid_range(off, stride, n_in, n_out):
    # The output indices o with 0 <= o * stride + off < n_in, as a half-open range [lo, hi).
    lo = 0 if off >= 0 else (-off + stride - 1) // stride
    hi = (n_in - 1 - off) // stride + 1 if n_in - 1 - off >= 0 else 0
    hi = min(hi, n_out)
    return lo, max(lo, hi)


@numba.njit(cache=True, nogil=True)
def im2col(x, cols, kernel, stride, pad, dilation, out_size, job_lo, job_hi):
    _, C, D, H, W = x.shape
    KD, KH, KW = kernel
    OD, OH, OW = out_size
    K = KD * KH * KW
    P = OD * OH * OW
    for job in range(job_lo, job_hi):
        n = job // C
        c = job % C
        for kd in range(KD):
            for kh in range(KH):
                for kw in range(KW):
                    row = c * K + (kd * KH + kh) * KW + kw
                    off_w = kw * dilation[2] - pad[2]
                    lo, hi = _valid_range(off_w, stride[2], W, OW)
                    for od in range(OD):
                        i_d = od * stride[0] + kd * dilation[0] - pad[0]
                        for oh in range(OH):
                            i_h = oh * stride[1] + kh * dilation[1] - pad[1]
                            base = n * P + (od * OH + oh) * OW
                            if i_d < 0 or i_d >= D or i_h < 0 or i_h >= H:
                                for ow in range(OW):
                                    cols[row, base + ow] = 0
                                continue
                            for ow in range(lo):
                                cols[row, base + ow] = 0
                            for ow in range(lo, hi):
                                cols[row, base + ow] = x[n, c, i_d, i_h, ow * stride[2] + off_w]
                            for ow in range(hi, OW):
                                cols[row, base + ow] = 0


@numba.njit(cache=True, nogil=True)
def col2im(cols, dx, kernel, stride, pad, dilation, out_size, job_lo, job_hi):
    _, C, D, H, W = dx.shape
    KD, KH, KW = kernel
    OD, OH, OW = out_size
    K = KD * KH * KW
    P = OD * OH * OW
    for job in range(job_lo, job_hi):
        n = job // C
        c = job % C
        dx[n, c] = 0
        for kd in range(KD):
            for kh in range(KH):
                for kw in range(KW):
                    row = c * K + (kd * KH + kh) * KW + kw
                    off_w = kw * dilation[2] - pad[2]
                    lo, hi = _valid_range(off_w, stride[2], W, OW)
                    for od in range(OD):
                        i_d = od * stride[0] + kd * dilation[0] - pad[0]
                        if i_d < 0 or i_d >= D:
                            continue
                        for oh in range(OH):
                            i_h = oh * stride[1] + kh * dilation[1] - pad[1]
                            if i_h < 0 or i_h >= H:
                                continue
                            base = n * P + (od * OH + oh) * OW
                            for ow in range(lo, hi):
                                dx[n, c, i_d, i_h, ow * stride[2] + off_w] += cols[row, base + ow]
