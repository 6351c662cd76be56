"""ONNX export of the depth networks, checked against PyTorch with onnxruntime."""
import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="ONNX extra not installed: pip install 'mono_metric[onnx]'")

from mono_metric.camera import Camera  # noqa: E402
from mono_metric.datasets import SyntheticConfig, SyntheticSequence  # noqa: E402
from mono_metric.depth import Metric3D  # noqa: E402
from mono_metric.depth.onnx import OnnxDepthModel, compare_onnx, export_onnx  # noqa: E402
from mono_metric.errors import InputError  # noqa: E402


def test_embedded_model_round_trip(tmp_path):
    model = Metric3D.from_pretrained("mono_metric_tiny")
    frame = SyntheticSequence(SyntheticConfig(scene="street", seed=777, frames=1))[0]
    # exported at the input size PyTorch's predict picks for this frame, so both see the same input
    path = export_onnx(model, tmp_path / "tiny.onnx", *model.default_input_hw(frame.image.shape[:2]))
    report = compare_onnx(model, path)
    assert report["depth_max_rel_err"] < 1e-4 and report["confidence_max_rel_err"] < 1e-4
    ref = model.predict(frame.image, frame.camera)
    pred = OnnxDepthModel(path).predict(frame.image, frame.camera)
    np.testing.assert_allclose(pred.depth_m, ref.depth_m, rtol=1e-3, atol=1e-3)
    # Scale still follows the focal length given at run time: the transform is outside the graph.
    doubled = Camera(2 * frame.camera.fx, 2 * frame.camera.fy, frame.camera.cx, frame.camera.cy,
                     frame.camera.width, frame.camera.height)
    ratio = np.median(OnnxDepthModel(path).predict(frame.image, doubled).depth_m / pred.depth_m)
    assert ratio == pytest.approx(2.0, rel=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("name,hw", [("metric3d_vit_small", (224, 392)), ("metric3d_convnext_tiny", (256, 384))])
def test_official_families_export(tmp_path, name, hw):
    model = Metric3D.build(name)  # random weights: the graph, not the training, is under test
    report = compare_onnx(model, export_onnx(model, tmp_path / f"{name}.onnx", *hw))
    assert max(v for k, v in report.items() if k.endswith("rel_err")) < 1e-3
    if name.startswith("metric3d_vit"):
        assert "normal_max_rel_err" in report


def test_export_rejects_bad_sizes(tmp_path):
    with pytest.raises(InputError, match="multiples of 32"):
        export_onnx(Metric3D.from_pretrained("mono_metric_tiny"), tmp_path / "x.onnx", 100, 640)


def test_export_cli(tmp_path, capsys):
    from mono_metric.cli import main

    out = tmp_path / "tiny.onnx"
    assert main(["export-onnx", "--height", "96", "--width", "320", "--out", str(out)]) == 0
    assert out.is_file() and "max rel err" in capsys.readouterr().out
