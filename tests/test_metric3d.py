import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mono_metric import Camera, InputError
from mono_metric.depth import Metric3D
from mono_metric.depth.weights import OFFICIAL_WEIGHTS

KEYS_FILE = Path(__file__).resolve().parents[1].parent / "shared" / "metric3d" / "state_dict_keys.json"


@pytest.fixture(scope="module")
def official_keys():
    if not KEYS_FILE.is_file():
        pytest.skip(f"{KEYS_FILE} not present (only the project's own checkout has ../shared)")
    return json.loads(KEYS_FILE.read_text())


@pytest.mark.parametrize("name", sorted(OFFICIAL_WEIGHTS))
def test_state_dict_matches_official_checkpoint(official_keys, name):
    model = Metric3D.build(name, device="meta")  # no memory is allocated
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == official_keys["models"][name]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = Metric3D.build("metric3d_convnext_tiny")
    path = tmp_path_factory.mktemp("w") / "convtiny_hourglass_v1.pth"
    torch.save({"model_state_dict": model.state_dict(), "optimizer": {}}, path)  # the official layout
    return model, path


def test_official_format_loads_strictly_and_predicts(tiny_checkpoint, shared_data):
    ref, path = tiny_checkpoint
    model = Metric3D.from_pretrained("metric3d_convnext_tiny", weights=path)
    for a, b in zip(ref.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    ann = json.loads((shared_data / "metric3d_demo" / "data" / "kitti_demo" / "test_annotations.json").read_text())
    from mono_metric.datasets.base import read_rgb

    for entry, sub in ((ann["files"][0], "kitti_demo"), (None, "nyu_demo")):
        if entry is None:
            nyu = json.loads((shared_data / "metric3d_demo" / "data" / sub / "test_annotations.json").read_text())
            entry = nyu["files"][0]
        img = read_rgb(shared_data / "metric3d_demo" / entry["rgb"])
        fx, fy, cx, cy = entry["cam_in"]
        pred = model.predict(img, Camera(fx, fy, cx, cy, img.shape[1], img.shape[0]), input_hw=(256, 512))
        assert pred.depth_m.shape == img.shape[:2] and pred.confidence.shape == img.shape[:2]
        assert np.isfinite(pred.depth_m).all() and (pred.depth_m >= 0).all()


def test_focal_length_scales_metric_output(tiny_checkpoint):
    model, _ = tiny_checkpoint
    img = np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8)
    cam = Camera(300.0, 300.0, 100.0, 60.0, 200, 120)
    cam2 = Camera(450.0, 450.0, 100.0, 60.0, 200, 120)
    d1 = model.predict(img, cam, input_hw=(128, 224)).depth_m
    d2 = model.predict(img, cam2, input_hw=(128, 224)).depth_m
    np.testing.assert_allclose(d2, d1 * 1.5, rtol=1e-5)
    batch = model.predict_batch([img, img[::-1].copy()], cam, input_hw=(128, 224))
    np.testing.assert_allclose(batch[0].depth_m, d1, rtol=1e-4, atol=1e-4)


def test_wrong_checkpoint_and_names(tmp_path):
    torch.save({"model_state_dict": torch.nn.Linear(3, 3).state_dict()}, tmp_path / "x.pth")
    with pytest.raises(InputError, match="another model"):
        Metric3D.from_pretrained("metric3d_convnext_tiny", weights=tmp_path / "x.pth")
    with pytest.raises(InputError, match="unknown depth model"):
        Metric3D.build("metric3d_resnet")
    with pytest.raises(InputError, match="multiples of 32"):
        Metric3D.build("metric3d_convnext_tiny").predict(np.zeros((10, 10, 3), np.uint8),
                                                         Camera(10, 10, 5, 5, 10, 10), input_hw=(100, 100))


def test_depth_cli(tiny_checkpoint, tmp_path, capsys):
    import cv2

    from mono_metric.cli import main

    _, path = tiny_checkpoint
    img = np.random.default_rng(1).integers(0, 255, (96, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "frame.png"), img)
    args = ["depth", str(tmp_path / "frame.png"), "--model", "metric3d_convnext_tiny", "--weights", str(path),
            "--input-size", "128x192", "--out", str(tmp_path / "out")]
    assert main(args + ["--fov", "60"]) == 0
    depth_mm = cv2.imread(str(tmp_path / "out" / "frame_depth.png"), cv2.IMREAD_UNCHANGED)
    depth_m = np.load(tmp_path / "out" / "frame_depth.npy")
    assert depth_mm.dtype == np.uint16 and depth_mm.shape == (96, 160)
    np.testing.assert_allclose(depth_mm / 1000.0, depth_m, atol=6e-4)
    assert (tmp_path / "out" / "frame_cloud.ply").stat().st_size > 1000
    preview = cv2.imread(str(tmp_path / "out" / "frame_preview.png"))
    assert preview.shape[1] > 1.8 * preview.shape[0]  # the image beside the depth (and a colour bar)
    assert "wrote 1 prediction" in capsys.readouterr().out
    args.append("--overwrite")  # the same --out again
    assert main(args) == 0  # no intrinsics: the phone default, said out loud
    assert "ASSUMED" in capsys.readouterr().out
    assert main(args + ["--intrinsics", "100,100,80"]) == 1
    assert main(args + ["--fov", "60", "--intrinsics", "100,100,80,48"]) == 1  # two sources


@pytest.fixture(scope="module")
def vit_small_checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    model = Metric3D.build("metric3d_vit_small")
    path = tmp_path_factory.mktemp("w") / "metric_depth_vit_small_800k.pth"
    torch.save({"model_state_dict": model.state_dict()}, path)
    return model, path


def test_vit_small_loads_and_predicts_depth_and_normals(vit_small_checkpoint, shared_data):
    from mono_metric.datasets.base import read_rgb

    _, path = vit_small_checkpoint
    model = Metric3D.from_pretrained("metric3d_vit_small", weights=path)
    nyu = json.loads((shared_data / "metric3d_demo" / "data" / "nyu_demo" / "test_annotations.json").read_text())
    entry = nyu["files"][0]
    img = read_rgb(shared_data / "metric3d_demo" / entry["rgb"])
    fx, fy, cx, cy = entry["cam_in"]
    pred = model.predict(img, Camera(fx, fy, cx, cy, img.shape[1], img.shape[0]), input_hw=(280, 364))
    assert pred.depth_m.shape == img.shape[:2] and np.isfinite(pred.depth_m).all()
    # Canonical depth is clamped to [0.1, 200] m, then scaled by fx_scaled / 1000.
    scale = min(280 / img.shape[0], 364 / img.shape[1]) * fx / 1000.0
    assert pred.depth_m.min() >= 0.1 * scale * 0.999 and pred.depth_m.max() <= 200 * scale * 1.001
    assert pred.normal.shape == (*img.shape[:2], 3)
    np.testing.assert_allclose(np.linalg.norm(pred.normal, axis=-1), 1.0, atol=1e-3)


def test_vit_fused_attention_equals_reference(vit_small_checkpoint):
    model, _ = vit_small_checkpoint
    x = torch.randn(1, 3, 112, 196)
    with torch.no_grad():
        model.set_attention("plain")
        ref = model(x)
        model.set_attention("sdpa")
        fast = model(x)
    for key in ("depth", "confidence", "normal"):
        torch.testing.assert_close(fast[key], ref[key], rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match="multiples of 28"):
        model.predict(np.zeros((50, 50, 3), np.uint8), Camera(50, 50, 25, 25, 50, 50), input_hw=(100, 100))


def test_run_pipeline_with_network_depth(tiny_checkpoint, tmp_path, capsys):
    """The odometry runs on a depth network's output end to end (random weights: a smoke test)."""
    import yaml

    from mono_metric.cli import main

    _, path = tiny_checkpoint
    cfg = tmp_path / "net.yaml"
    cfg.write_text(yaml.safe_dump({"depth": {"source": "metric3d_convnext_tiny", "weights": str(path),
                                             "input_hw": [128, 192], "max_depth_m": 500.0}}))
    out = tmp_path / "run"
    assert main(["run", "synthetic:room?seed=1&frames=4&width=160&height=120", "--config", str(cfg),
                 "--out", str(out), "--quiet"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["depth"]["source"] == "metric3d_convnext_tiny" and saved["depth"]["input_hw"] == [128, 192]
    assert len((out / "trajectory_tum.txt").read_text().splitlines()) == 4
