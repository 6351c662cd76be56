"""Bad input, tried as a new user would: a one-line error naming the input and the fix (exit code 1, no
traceback), or the documented recovery. One row per case."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from mono_metric import Trajectory
from mono_metric.camera import Camera
from mono_metric.cli import main
from mono_metric.datasets import SyntheticConfig, SyntheticSequence
from mono_metric.depth import Metric3D


@pytest.fixture(scope="module")
def room_frames():
    seq = SyntheticSequence(SyntheticConfig(scene="room", seed=9, frames=16, width=320, height=240))
    return [seq[i].image for i in range(len(seq))], seq.camera


def _folder(tmp_path, frames, camera, name="frames"):
    folder = tmp_path / name
    folder.mkdir()
    for i, img in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), img[:, :, ::-1])
    camera.to_yaml(folder / "intrinsics.yaml")
    return folder


def _checkpoint(tmp_path, name, fill=None):
    model = Metric3D.build(name)
    state = model.state_dict()
    if fill is not None:
        state = {k: torch.full_like(v, fill) if v.is_floating_point() else v for k, v in state.items()}
    path = tmp_path / f"{name}.pt"
    torch.save({"model_state_dict": state}, path)
    return path


def case_missing_path(tmp_path, frames, camera):
    return ["run", str(tmp_path / "nowhere")], "does not exist"


def case_unreadable_frame(tmp_path, frames, camera):
    folder = _folder(tmp_path, frames[:6], camera)
    (folder / "0003.png").unlink()
    (folder / "0003.png").mkdir()  # exists but cannot be read as an image (permissions do not bind root)
    return ["run", str(folder), "--depth", "mono_metric_tiny"], "0003.png"


def case_corrupt_png_midway(tmp_path, frames, camera):
    folder = _folder(tmp_path, frames[:8], camera)
    (folder / "0005.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return ["run", str(folder), "--depth", "mono_metric_tiny"], "0005.png cannot be decoded"


def case_video_cannot_open(tmp_path, frames, camera):
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 512)
    return ["run", str(tmp_path / "clip.mp4")], "clip.mp4"


def case_intrinsics_wrong_size(tmp_path, frames, camera):
    folder = _folder(tmp_path, frames[:4], camera)
    Camera(500, 500, 639.5, 359.5, 1280, 720).to_yaml(tmp_path / "cam.yaml")
    return ["run", str(folder), "--camera", str(tmp_path / "cam.yaml")], "1280x720"


def case_principal_point_outside(tmp_path, frames, camera):
    folder = _folder(tmp_path, frames[:4], camera)
    return ["run", str(folder), "--intrinsics", "300,300,900,120"], "outside"


def case_non_positive_focal(tmp_path, frames, camera):
    folder = _folder(tmp_path, frames[:4], camera)
    return ["run", str(folder), "--intrinsics=-300,300,160,120"], "focal lengths must be positive"


def case_nan_depth_from_model(tmp_path, frames, camera):
    folder = _folder(tmp_path, frames[:6], camera)
    weights = _checkpoint(tmp_path, "mono_metric_tiny", fill=float("nan"))
    return ["run", str(folder), "--depth", "mono_metric_tiny", "--weights", str(weights)], "no valid depth"


def case_checkpoint_of_another_model(tmp_path, frames, camera):
    folder = _folder(tmp_path, frames[:4], camera)
    weights = _checkpoint(tmp_path, "metric3d_convnext_tiny")
    return ["run", str(folder), "--depth", "mono_metric_tiny", "--weights", str(weights)], "does not fit mono_metric_tiny"


def case_truncated_checkpoint(tmp_path, frames, camera):
    folder = _folder(tmp_path, frames[:4], camera)
    weights = _checkpoint(tmp_path, "mono_metric_tiny")
    weights.write_bytes(weights.read_bytes()[:5000])
    return ["run", str(folder), "--depth", "mono_metric_tiny", "--weights", str(weights)], "truncated"


def case_pickled_object_checkpoint(tmp_path, frames, camera):
    folder = _folder(tmp_path, frames[:4], camera)
    torch.save({"model_state_dict": {"w": torch.zeros(1)}, "hook": Camera(1, 1, 0, 0, 1, 1)}, tmp_path / "evil.pt")
    return ["run", str(folder), "--depth", "mono_metric_tiny", "--weights", str(tmp_path / "evil.pt")], "weights-only"


def case_config_unknown_key(tmp_path, frames, camera):
    (tmp_path / "c.yaml").write_text("tracking:\n  max_featurez: 100\n")
    return ["run", "synthetic:room?frames=3", "--config", str(tmp_path / "c.yaml")], "tracking.max_featurez"


def case_config_wrong_type(tmp_path, frames, camera):
    (tmp_path / "c.yaml").write_text("mapping:\n  voxel_size_m: fine\n")
    return ["run", "synthetic:room?frames=3", "--config", str(tmp_path / "c.yaml")], "mapping.voxel_size_m"


def case_output_not_writable(tmp_path, frames, camera):
    (tmp_path / "a_file").write_text("x")
    return ["run", "synthetic:room?frames=3", "--out", str(tmp_path / "a_file" / "out")], "not writable"


def case_unknown_model(tmp_path, frames, camera):
    return ["run", "synthetic:room?frames=3", "--depth", "metric3d_vit_tiny"], "metric3d_vit_tiny"


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input_is_one_clear_line(case, tmp_path, room_frames, capsys):
    args, fragment = case(tmp_path, *room_frames)
    out = tmp_path / "out"
    if "--out" not in args:
        args += ["--out", str(out)]
    assert main(args + ["--quiet"]) == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("mono-metric: error:")]
    assert len(err) == 1 and fragment in err[0], err
    assert "Traceback" not in err[0]


def test_debug_shows_the_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mono_metric.cli", "--debug", "run", str(tmp_path / "nowhere")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_corrupt_frame_keeps_the_frames_before_it(tmp_path, room_frames, capsys):
    args, _ = case_corrupt_png_midway(tmp_path, *room_frames)
    assert main(args + ["--out", str(tmp_path / "out"), "--quiet"]) == 1
    kept = Trajectory.read_tum(tmp_path / "out" / "trajectory_tum.txt")
    assert len(kept) == 5 and np.isfinite(kept.T_world_cam).all()


def test_black_and_white_frames_are_survived(tmp_path, room_frames, capsys):
    frames, camera = room_frames
    frames = list(frames)
    frames[6] = np.zeros_like(frames[6])
    frames[7] = np.full_like(frames[7], 255)
    folder = _folder(tmp_path, frames, camera)
    assert main(["run", str(folder), "--depth", "mono_metric_tiny", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "lost [[6, 7]]" in printed
    assert len(Trajectory.read_tum(tmp_path / "out" / "trajectory_tum.txt")) == len(frames)


def test_invalid_depth_on_one_frame_is_recovered(tmp_path):
    from dataclasses import replace

    from mono_metric import OdometryPipeline, load_config
    from mono_metric.datasets.base import Sequence

    class FirstDepthNaN(Sequence):
        def __init__(self, base):
            self.base, self.name, self.camera, self.timestamps, self.gt = base, base.name, base.camera, base.timestamps, base.gt

        def _load(self, i):
            f = self.base[i]
            return replace(f, depth_m=np.full_like(f.depth_m, np.nan)) if i == 0 else f

    seq = FirstDepthNaN(SyntheticSequence(SyntheticConfig(scene="room", seed=9, frames=12, width=320, height=240)))
    cfg = load_config(None, {"depth": {"source": "gt", "max_depth_m": 10.0}, "mapping": {"enabled": False}})
    summary = OdometryPipeline(seq, cfg, tmp_path, progress=False).run()
    assert summary["invalid_depth_calls"] == 1 and summary["frames"] == 12
    assert summary["keyframes"] >= 1 and summary["metrics"]["ate"]["rmse_m"] < 0.05
