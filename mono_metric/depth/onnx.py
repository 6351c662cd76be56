"""ONNX export of the depth network at a fixed input size, checked with onnxruntime, and ONNX inference.

Only the network goes into the graph; the canonical camera transform stays in Python
(:mod:`mono_metric.depth.canonical`), so one exported file serves every camera. A JSON sidecar
(``FILE.onnx.json``) records the model name, input size and canonical focal length that
:class:`OnnxDepthModel` needs. Needs the ``onnx`` extra: ``pip install 'mono_metric[onnx]'``.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mono_metric.camera import Camera
from mono_metric.depth.base import DepthPrediction
from mono_metric.depth.canonical import preprocess
from mono_metric.depth.metric3d.model import MODEL_SPECS, Metric3D, to_prediction
from mono_metric.errors import InputError
from mono_metric.outputs import write_json

OUTPUTS = ("depth", "confidence", "normal")


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as err:
        raise InputError(f"ONNX export/inference needs {module}: pip install 'mono_metric[onnx]' "
                         "(onnx, onnxscript, onnxruntime)") from err


class _Graph(nn.Module):
    """The network with tuple outputs (depth, confidence[, normal]) for export."""

    def __init__(self, model: Metric3D):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        out = self.model(image)
        return tuple(out[k] for k in OUTPUTS if k in out)


def export_onnx(model: Metric3D, path: str | Path, height: int, width: int, opset: int = 18) -> Path:
    """Write the depth network of ``model`` as ONNX for a (1, 3, height, width) normalised input.

    Args:
        model: a Metric3D model (any family) on the CPU.
        path: output ``.onnx`` file (weights inside; beside it in ``.onnx.data`` above 2 GB, e.g.
            giant2); ``path + '.json'`` gets the sidecar.
        height, width: network input size (multiples of the model's ``input_multiple``).
        opset: ONNX opset.

    Returns:
        The written path.
    """
    _require("onnx")
    _require("onnxscript")
    m = model.spec.input_multiple
    if height <= 0 or width <= 0 or height % m or width % m:
        raise InputError(f"--height/--width {height}x{width} must be positive multiples of {m} for {model.name}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = _Graph(model.eval().cpu())
    example = torch.zeros(1, 3, height, width)
    names = list(OUTPUTS) if model.spec.family == "vit" else list(OUTPUTS[:2])  # v2 also predicts normals
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # One self-contained file unless protobuf's 2 GB limit forces the weights into ``FILE.onnx.data``.
        external = sum(p.numel() * p.element_size() for p in model.parameters()) > 1.8e9
        torch.onnx.export(graph, (example,), str(path), dynamo=True, opset_version=opset, input_names=["image"],
                          output_names=names, verbose=False, external_data=external)
    sidecar = {"model": model.name, "input_hw": [height, width], "outputs": names,
               "canonical_focal_px": model.spec.canonical_focal_px, "max_depth_m": model.spec.max_depth_m}
    write_json(f"{path}.json", sidecar)
    return path


def compare_onnx(model: Metric3D, path: str | Path, seed: int = 0) -> dict[str, float]:
    """Run the exported file with onnxruntime (CPU) and PyTorch on one random input.

    Returns:
        Per output: the largest absolute difference divided by the largest absolute PyTorch value
        (``<name>_max_rel_err``), and the largest absolute difference (``<name>_max_abs_err``).
    """
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))
    onnx_out = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        ref = _Graph(model.eval().cpu())(x)
    report = {}
    for name, a, b in zip((o.name for o in session.get_outputs()), onnx_out, ref):
        b = b.float().numpy()
        diff = float(np.abs(a - b).max())
        report[f"{name}_max_abs_err"] = diff
        report[f"{name}_max_rel_err"] = diff / max(float(np.abs(b).max()), 1e-12)
    return report


class OnnxDepthModel:
    """Metric depth from an exported file with onnxruntime: same ``predict`` as :class:`Metric3D`.

    Args:
        path: ``.onnx`` file written by :func:`export_onnx` (its ``.json`` sidecar beside it).
        providers: onnxruntime execution providers (default CPU).
    """

    def __init__(self, path: str | Path, providers: list[str] | None = None):
        ort = _require("onnxruntime")
        path = Path(path)
        meta_path = Path(f"{path}.json")
        if not path.is_file() or not meta_path.is_file():
            raise InputError(f"{path} or its sidecar {meta_path.name} is missing; export with mono-metric export-onnx")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("model") not in MODEL_SPECS:
            raise InputError(f"{meta_path} names an unknown model {self.meta.get('model')!r}")
        self.session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        self.input_hw = tuple(self.meta["input_hw"])

    def predict(self, image, camera: Camera) -> DepthPrediction:
        """(H, W) metric depth (and confidence, normals when exported) for one RGB image."""
        info = preprocess(image, camera, self.input_hw, "cpu", self.meta["canonical_focal_px"])
        arrays = self.session.run(None, {"image": info.tensor.numpy()})
        out = {name: torch.from_numpy(a) for name, a in zip(self.meta["outputs"], arrays)}
        return to_prediction(out, 0, info, self.meta["max_depth_m"])
