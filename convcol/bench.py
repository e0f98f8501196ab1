"""The benchmark suite: convcol against PyTorch and against its own GEMM, on real layer shapes.

Shared by ``convcol bench`` and ``benchmarks/`` (pytest-benchmark). Shapes come from oneDNN
benchdnn's ResNet-50, MobileNet, VGG and GoogLeNet sets and DeepBench's training set, with
the batch reduced for a 2-core machine. Every figure is the minimum over repeats, candidates
are interleaved (one call of each per round) so that a noisy neighbour slows them alike, and
ratios are only ever between figures of the same run.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import numpy as np

from .conv import conv2d, conv2d_backward


@dataclass(frozen=True)
class Shape:
    """One layer: x (n, c, h, w), w (f, c // groups, kh, kw)."""

    name: str
    n: int
    c: int
    f: int
    h: int
    w: int
    kernel: tuple[int, int]
    stride: int
    padding: int
    groups: int = 1

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.c

    @property
    def out_size(self) -> tuple[int, int]:
        return tuple(  # type: ignore[return-value]
            (n + 2 * self.padding - k) // self.stride + 1
            for n, k in zip((self.h, self.w), self.kernel, strict=True)
        )

    def forward_flops(self) -> int:
        ho, wo = self.out_size
        return 2 * self.n * self.f * ho * wo * (self.c // self.groups) * math.prod(self.kernel)

    def options(self) -> dict[str, int]:
        return {"stride": self.stride, "padding": self.padding, "groups": self.groups}


SHAPES = [
    Shape("cs231n_classic", 100, 3, 25, 31, 31, (3, 3), 2, 1),
    Shape("cifar_3x3", 32, 64, 64, 32, 32, (3, 3), 1, 1),
    Shape("r50_conv1", 8, 3, 64, 224, 224, (7, 7), 2, 3),
    Shape("r50_res2a_3x3", 8, 64, 64, 56, 56, (3, 3), 1, 1),
    Shape("r50_3x3_s2", 8, 128, 128, 56, 56, (3, 3), 2, 1),
    Shape("r50_1x1_512_128", 8, 512, 128, 28, 28, (1, 1), 1, 0),
    Shape("r50_1x1_256_1024", 8, 256, 1024, 14, 14, (1, 1), 1, 0),
    Shape("vgg_7x7_512", 8, 512, 512, 7, 7, (3, 3), 1, 1),
    Shape("vgg_conv1_2", 2, 64, 64, 224, 224, (3, 3), 1, 1),
    Shape("googlenet_5x5", 16, 192, 32, 28, 28, (5, 5), 1, 2),
    Shape("mobilenet_dw3x3", 8, 128, 128, 56, 56, (3, 3), 1, 1, 128),
    Shape("mobilenetv2_dw3x3_s2", 8, 144, 144, 56, 56, (3, 3), 2, 1, 144),
    Shape("convnext_dw7x7", 8, 96, 96, 56, 56, (7, 7), 1, 3, 96),
    Shape("deepspeech_conv1", 4, 1, 32, 161, 700, (5, 20), 2, 0),
]
QUICK = ["cs231n_classic", "cifar_3x3", "r50_1x1_512_128", "mobilenet_dw3x3"]


def make_inputs(shape: Shape, dtype: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded x, w, b and an upstream gradient for ``shape``."""
    rng = np.random.default_rng(seed)
    kh, kw = shape.kernel
    ho, wo = shape.out_size
    return {
        "x": rng.standard_normal((shape.n, shape.c, shape.h, shape.w)).astype(dtype),
        "w": rng.standard_normal((shape.f, shape.c // shape.groups, kh, kw)).astype(dtype),
        "b": rng.standard_normal(shape.f).astype(dtype),
        "dout": rng.standard_normal((shape.n, shape.f, ho, wo)).astype(dtype),
    }


def convcol_calls(shape: Shape, a: dict[str, np.ndarray]) -> dict[str, Callable[[], Any]]:
    opts = shape.options()

    def both() -> Any:
        out = conv2d(a["x"], a["w"], a["b"], **opts)
        return (out, *conv2d_backward(a["dout"], a["x"], a["w"], **opts))

    return {"forward": lambda: conv2d(a["x"], a["w"], a["b"], **opts), "forward+backward": both}


def gemm_call(shape: Shape, dtype: Any) -> Callable[[], Any]:
    """The forward pass's own GEMM (per group), on preallocated operands, alone."""
    g = shape.groups
    kh, kw = shape.kernel
    ho, wo = shape.out_size
    rng = np.random.default_rng(1)
    a = rng.standard_normal((g, shape.f // g, shape.c // g * kh * kw)).astype(dtype)
    b = rng.standard_normal((g, shape.c // g * kh * kw, shape.n * ho * wo)).astype(dtype)
    out = np.empty((g, shape.f // g, shape.n * ho * wo), dtype)
    return lambda: np.matmul(a, b, out=out)


def torch_calls(
    shape: Shape, a: dict[str, np.ndarray], channels_last: bool
) -> dict[str, Callable[[], Any]] | None:
    try:
        import torch
    except ImportError:
        return None
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.from_numpy(a["x"]).contiguous(memory_format=fmt)
    w = torch.from_numpy(a["w"]).contiguous(memory_format=fmt)
    b = torch.from_numpy(a["b"])
    dout = torch.from_numpy(a["dout"]).contiguous(memory_format=fmt)
    opts = shape.options()
    conv = torch.nn.functional.conv2d

    def forward() -> Any:
        with torch.no_grad():
            return conv(x, w, b, **opts)

    def both() -> Any:
        xg, wg, bg = (t.detach().requires_grad_(True) for t in (x, w, b))
        conv(xg, wg, bg, **opts).backward(dout)
        return xg.grad, wg.grad, bg.grad

    return {"forward": forward, "forward+backward": both}


def interleaved_minimum(
    candidates: dict[str, Callable[[], Any]], repeat: int, budget_s: float
) -> dict[str, float]:
    """Time the candidates in turns; the minimum counts.

    Each turn times a candidate's second call in a row. The first, untimed, warms it up
    (JIT, caches) and lets the threads of the candidate before it settle: PyTorch's OpenMP
    threads and OpenBLAS's keep spinning for a while after a call, and measured right after
    a PyTorch call convcol's forward pass took 25% longer (cifar_3x3 float32).
    """
    best = dict.fromkeys(candidates, math.inf)
    start = time.perf_counter()
    for i in range(repeat):
        for name, fn in candidates.items():
            fn()
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
        if i >= 1 and time.perf_counter() - start > budget_s:
            break
    return best


def peak_extra_bytes(fn: Callable[[], Any]) -> int:
    """Peak NumPy memory of ``fn`` beyond the arrays it returns (the workspace, temporaries).

    The thread's kept column buffer is dropped first, so that its allocation is counted.
    """
    from . import workspace

    workspace._local.__dict__.clear()
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    results = result if isinstance(result, tuple) else (result,)
    return max(0, peak - sum(r.nbytes for r in results if isinstance(r, np.ndarray)))


@dataclass
class Row:
    shape: str
    dtype: str
    pass_: str
    convcol_s: float
    gflops: float
    gemm_s: float | None = None
    torch_s: float | None = None
    torch_cl_s: float | None = None
    peak_extra_mib: float | None = None
    ratios: dict[str, float] = field(default_factory=dict)


def blas_info() -> list[dict[str, Any]]:
    """The thread pools loaded in this process (threadpoolctl), NumPy's BLAS among them,
    each with the package that ships it, ``library``: SciPy, scikit-learn or PyTorch bring
    their own, and a bare list left readers guessing which one NumPy's ``matmul`` runs."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "threadpoolctl not installed: BLAS kernel unknown"}]
    keep = ("user_api", "internal_api", "architecture", "num_threads", "version", "threading_layer")
    return [
        {"library": _package(d.get("filepath") or ""), **{k: d.get(k) for k in keep}}
        for d in threadpool_info()
    ]


def _package(path: str) -> str:
    """The installed package a shared library comes with: ``.../site-packages/numpy.libs/
    libscipy_openblas64_.so`` is NumPy's; a library outside any package, its file name."""
    parts = path.replace("\\", "/").split("/")
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] in ("site-packages", "dist-packages"):
            return parts[i + 1].removesuffix(".libs")
    return parts[-1]


def describe_blas(info: list[dict[str, Any]]) -> str:
    """``blas_info()`` as one line: ``numpy: openblas 0.3.31 SkylakeX, 2 threads ...``."""
    items = []
    for d in info:
        if "note" in d:
            items.append(d["note"])
            continue
        api = " ".join(str(d[k]) for k in ("internal_api", "version", "architecture") if d.get(k))
        layer = f" ({d['threading_layer']})" if d.get("threading_layer") else ""
        items.append(f"{d['library']}: {api}, {d['num_threads']} threads{layer}")
    return "; ".join(items)


def numpy_blas_threads(info: list[dict[str, Any]]) -> int | None:
    """The thread count of NumPy's BLAS (else of the first BLAS listed), or None."""
    blas = [d for d in info if d.get("user_api") == "blas"]
    ours = [d for d in blas if d.get("library") == "numpy"] or blas
    return ours[0].get("num_threads") if ours else None


def run_suite(
    names: Sequence[str] | None = None,
    dtypes: Sequence[str] = ("float32", "float64"),
    repeat: int = 7,
    budget_s: float = 20.0,
    out: TextIO | None = None,
    progress: TextIO | None = None,
) -> dict[str, Any]:
    """Run the suite, print a table, return everything measured (as for ``--json``)."""
    out = out or sys.stdout
    progress = progress or sys.stderr
    shapes = [s for s in SHAPES if names is None or s.name in names]
    info = blas_info()
    threads = numpy_blas_threads(info)
    torch_version = None
    try:
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        torch_version = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        pass
    print(f"BLAS: {describe_blas(info)}", file=out)
    if hasattr(os, "getloadavg"):
        # Other work on the machine skews every figure (BLAS threads wait on busy cores).
        load, cpus = os.getloadavg()[0], os.cpu_count() or 1
        print(f"load average (1 min): {load:.2f} on {cpus} CPUs", file=out)
        if load > cpus / 2:
            print(
                "warning: the machine looks busy; timings will be noisy (see docs/bench.md)",
                file=progress,
            )
    print(f"PyTorch: {torch_version or 'not installed (no ratios to PyTorch)'}", file=out)
    header = (
        f"{'shape':22}{'dtype':8}{'pass':17}{'convcol':>10}{'GFLOP/s':>9}"
        f"{'vs torch':>9}{'vs t-NHWC':>10}{'vs GEMM':>9}{'extra MiB':>10}"
    )
    print(header, file=out)
    rows: list[Row] = []
    total = len(shapes) * len(dtypes)
    for i, (shape, dtype) in enumerate(((s, d) for s in shapes for d in dtypes), 1):
        print(f"[{i}/{total}] {shape.name} {dtype}", file=progress, flush=True)
        a = make_inputs(shape, dtype)
        cands: dict[str, Callable[[], Any]] = {}
        for pass_, fn in convcol_calls(shape, a).items():
            cands[f"convcol {pass_}"] = fn
        cands["gemm forward"] = gemm_call(shape, dtype)
        for cl in [False, True] if dtype == "float32" else [False]:
            t = torch_calls(shape, a, cl)
            for pass_, fn in (t or {}).items():
                cands[f"torch{'-cl' if cl else ''} {pass_}"] = fn
        best = interleaved_minimum(cands, repeat, budget_s)
        for pass_, calls in convcol_calls(shape, a).items():
            flops = shape.forward_flops() * (1 if pass_ == "forward" else 3)
            row = Row(
                shape.name,
                dtype,
                pass_,
                best[f"convcol {pass_}"],
                flops / best[f"convcol {pass_}"] / 1e9,
            )
            row.torch_s = best.get(f"torch {pass_}")
            row.torch_cl_s = best.get(f"torch-cl {pass_}")
            if pass_ == "forward":
                row.gemm_s = best["gemm forward"]
            row.peak_extra_mib = peak_extra_bytes(calls) / 2**20
            for key, ref in (
                ("torch", row.torch_s),
                ("torch_cl", row.torch_cl_s),
                ("gemm", row.gemm_s),
            ):
                if ref:
                    row.ratios[key] = row.convcol_s / ref
            rows.append(row)
            r = {
                k: f"{row.ratios[k]:.2f}x" if k in row.ratios else "-"
                for k in ("torch", "torch_cl", "gemm")
            }
            print(
                f"{shape.name:22}{dtype:8}{pass_:17}{row.convcol_s * 1e3:>8.2f}ms"
                f"{row.gflops:>9.1f}{r['torch']:>9}{r['torch_cl']:>10}"
                f"{r['gemm']:>9}{row.peak_extra_mib:>10.1f}",
                file=out,
                flush=True,
            )
    print(
        "ratios are convcol's time / the other's, from the same run: < 1 means convcol is faster",
        file=out,
    )
    return {
        "blas": info,
        "torch": torch_version,
        "rows": [{**asdict(r), "pass": r.pass_} for r in rows],
    }


def write_json(results: dict[str, Any], path: str) -> None:
    with open(path, "w") as f:
        json.dump(results, f, indent=2)


def plot(results: dict[str, Any], path: str) -> None:
    """A bar chart of convcol's time relative to PyTorch's (best of NCHW and NHWC) per shape."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter
    except ImportError as e:
        raise SystemExit("--plot needs matplotlib: pip install 'convcol[bench]'") from e
    rows = [r for r in results["rows"] if "torch" in r["ratios"]]
    if not rows:
        raise SystemExit("--plot needs PyTorch ratios, and PyTorch is not installed")
    fig, axes = plt.subplots(1, 2, figsize=(14, 7), sharey=True)
    for ax, pass_ in zip(axes, ["forward", "forward+backward"], strict=True):
        sel = [r for r in rows if r["pass"] == pass_]
        labels = [f"{r['shape']} {r['dtype'][-2:]}" for r in sel]
        # Against PyTorch's better time (NCHW or NHWC): the larger of the two ratios.
        values = [max(r["ratios"]["torch"], r["ratios"].get("torch_cl", 0.0)) for r in sel]
        colors = ["tab:green" if v < 1 else "tab:red" for v in values]
        ax.barh(labels, values, color=colors)
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_xscale("log")
        # Plain labels at a few round ratios: log axes label every minor tick in powers of
        # ten by default, and those overlapped.
        ticks = [t for t in (0.1, 0.25, 0.5, 1, 2, 4, 8) if min(values) / 2 < t < max(values) * 2]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{pass_}: convcol time / PyTorch time (< 1: convcol faster)")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
