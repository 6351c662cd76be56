"""ONNX export of each model family: export time, file size, PyTorch vs onnxruntime speed and agreement.

The embedded model uses its trained weights; the official architectures use random weights (the graph,
not the training, is under test; official weights are not needed). CPU only.

    python benchmarks/onnx_export.py [--out runs/onnx] [--models mono_metric_tiny,...]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from mono_metric.depth import Metric3D
from mono_metric.depth.onnx import compare_onnx, export_onnx

CASES = [("mono_metric_tiny", (160, 512)), ("metric3d_convnext_tiny", (544, 1216)), ("metric3d_vit_small", (308, 532))]


def _time(fn, repeats: int = 3) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats * 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/onnx")
    ap.add_argument("--models", default=",".join(name for name, _ in CASES))
    args = ap.parse_args()
    import onnxruntime as ort

    lines = ["| model | input | weights | export (s) | file (MB) | PyTorch (ms) | onnxruntime (ms) | max rel err |",
             "|---|---|---|---|---|---|---|---|"]
    for name, (h, w) in (case for case in CASES if case[0] in args.models.split(",")):
        model = Metric3D.from_pretrained(name) if name == "mono_metric_tiny" else Metric3D.build(name)
        path = Path(args.out) / f"{name}_{h}x{w}.onnx"
        t = time.perf_counter()
        export_onnx(model, path, h, w)
        export_s = time.perf_counter() - t
        report = compare_onnx(model, path)
        x = torch.randn(1, 3, h, w)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            torch_ms = _time(lambda: model(x))
        ort_ms = _time(lambda: session.run(None, {"image": x.numpy()}))
        err = max(v for k, v in report.items() if k.endswith("rel_err"))
        lines.append(f"| {name} | {h}x{w} | {'trained' if name == 'mono_metric_tiny' else 'random'} | {export_s:.1f} | "
                     f"{path.stat().st_size / 1e6:.1f} | {torch_ms:.0f} | {ort_ms:.0f} | {err:.1e} |")
        print(lines[-1], flush=True)
    print("\n".join(lines))
    (Path(args.out) / "table.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
