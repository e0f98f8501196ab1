"""The forward pass with the bias added by its GEMM (a last weight column against a row of
ones under the columns, ``conv._bias_folds``) against the bias added to each chunk's output
after its GEMM, on suite shapes of im2col's route. PyTorch's forward pass (NCHW) is timed
alongside when it is installed, with NumPy's BLAS's thread count.

env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python docs/scripts/bias_in_gemm.py

The candidates alternate in one process and each figure is the fastest of its rounds
(``convcol.bench.interleaved_minimum``); "after" is the same ``conv2d`` call with
``conv._bias_folds`` patched to say no, timed twice as two candidates: the better is the
figure, and their ratio ("A/A") shows how far two runs of the same code differ here.
Arguments: shape names (default the suite's dense shapes whose bias im2col's route adds:
r50_conv1, r50_3x3_s2, deepspeech_conv1, the classic case, and vgg_7x7_512, where the rule
keeps the add after) and ``float32`` or ``float64`` (default both).
"""

import sys

from convcol import bench, conv, conv2d

args = sys.argv[1:]
dtypes = [a for a in args if a.startswith("float")] or ["float64", "float32"]
names = [a for a in args if not a.startswith("float")] or [
    "r50_conv1",
    "r50_3x3_s2",
    "deepspeech_conv1",
    "cs231n_classic",
    "vgg_7x7_512",
]
folds = conv._bias_folds
try:
    import torch

    torch.set_num_threads(bench.numpy_blas_threads(bench.blas_info()) or 1)
except ImportError:
    torch = None

print(f"BLAS: {bench.describe_blas(bench.blas_info())}")
print("shape             dtype    in GEMM   after   ratio  (A/A)  PyTorch  ours/PyTorch")
for name in names:
    shape = next(s for s in bench.SHAPES if s.name == name)
    for dtype in dtypes:
        a = bench.make_inputs(shape, dtype)
        opts = shape.options()

        def call(fold, a=a, opts=opts):
            def run():
                conv._bias_folds = folds if fold else lambda geo: False
                try:
                    return conv2d(a["x"], a["w"], a["b"], **opts)
                finally:
                    conv._bias_folds = folds

            return run

        # "after" twice: their ratio is the noise floor of the run.
        cands = {"in GEMM": call(True), "after": call(False), "after again": call(False)}
        if torch is not None:
            cands["torch"] = bench.torch_calls(shape, a, False)["forward"]
        best = bench.interleaved_minimum(cands, 25, 30.0)
        after = min(best["after"], best["after again"])
        ratio, floor = best["in GEMM"] / after, best["after again"] / best["after"]
        t = best.get("torch")
        vs = f"{t * 1e3:7.2f}  {best['in GEMM'] / t:5.2f}" if t else "      -      -"
        print(
            f"{name:17} {dtype:8} {best['in GEMM'] * 1e3:7.2f} {after * 1e3:7.2f}"
            f"  {ratio:5.3f}  {floor:5.3f}  {vs}",
            flush=True,
        )
