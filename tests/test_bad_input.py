"""Bad input, tried as a new user would: a one-line error naming the input and the fix (exit code 1, no
traceback), or the documented recovery. One row per case."""
import json
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
from mono_metric.errors import InputError
from mono_metric.outputs import MARKER, read_marker


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



# ---------------------------------------------------------------- the classes of issue 19
TINY_TRAIN = {"model": "mono_metric_tiny", "steps": 2, "batch_size": 2, "crop_hw": [64, 128], "warmup_steps": 1,
              "val_every": 2, "checkpoint_every": 1,
              "data": {"synthetic": {"scenes": ["street"], "sequences_per_scene": 1, "frames_per_sequence": 2,
                                     "street_width_px": [256, 256]},
                       "val_sequences_per_scene": 1, "val_frames_per_sequence": 1}}


def _yaml(path, data):
    import yaml
    path.write_text(yaml.safe_dump(data))
    return path


def _tum(path, rows):
    path.write_text("".join(" ".join(f"{v:.6f}" for v in r) + "\n" for r in rows))
    return path


def _tum_rows(n=6, t0=0.0):
    return [[t0 + 0.1 * i, 0.1 * i, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0] for i in range(n)]


def case_focal_in_millimetres(tmp_path, frames, camera):
    folder = _folder(tmp_path, frames[:4], camera)
    return ["run", str(folder), "--intrinsics", "4.2,4.2,160,120"], "not millimetres"


def case_camera_yaml_not_numbers(tmp_path, frames, camera):
    folder = _folder(tmp_path, frames[:4], camera)
    (tmp_path / "cam.yaml").write_text("fx: abc\nfy: 300\ncx: 160\ncy: 120\nwidth: 320\nheight: 240\n")
    return ["run", str(folder), "--camera", str(tmp_path / "cam.yaml")], "must be numbers"


def case_camera_yaml_binary(tmp_path, frames, camera):
    folder = _folder(tmp_path, frames[:4], camera)
    (tmp_path / "cam.yaml").write_bytes(bytes(range(256)) * 4)
    return ["run", str(folder), "--camera", str(tmp_path / "cam.yaml")], "cam.yaml"


def case_eval_duplicate_timestamps(tmp_path, frames, camera):
    rows = _tum_rows()
    rows[3][0] = rows[2][0]
    return ["eval", "--gt", str(_tum(tmp_path / "gt.txt", _tum_rows())), "--est", str(_tum(tmp_path / "e.txt", rows))], \
        "appears twice"


def case_eval_zero_quaternion(tmp_path, frames, camera):
    rows = _tum_rows()
    rows[2][4:8] = [0, 0, 0, 0]
    return ["eval", "--gt", str(_tum(tmp_path / "gt.txt", rows)), "--est", str(_tum(tmp_path / "e.txt", _tum_rows()))], \
        "zero quaternion"


def case_eval_kitti_not_rotation(tmp_path, frames, camera):
    good = "1 0 0 0 0 1 0 0 0 0 1 0\n"
    (tmp_path / "gt.txt").write_text(good * 5)
    (tmp_path / "e.txt").write_text(good * 2 + "2 0 0 0 0 1 0 0 0 0 1 0\n" + good * 2)
    return ["eval", "--gt", str(tmp_path / "gt.txt"), "--est", str(tmp_path / "e.txt"), "--format", "kitti"], \
        "pose 3 (of 5) has a 3x3 block that is not a rotation"


def case_depth_nan_weights(tmp_path, frames, camera):
    folder = _folder(tmp_path, frames[:1], camera)
    weights = _checkpoint(tmp_path, "mono_metric_tiny", fill=float("nan"))
    return ["depth", str(folder / "0000.png"), "--model", "mono_metric_tiny", "--weights", str(weights),
            "--fov", "60"], "no valid depth"


def case_depth_out_is_a_file(tmp_path, frames, camera):
    folder = _folder(tmp_path, frames[:1], camera)
    (tmp_path / "f").write_text("x")
    return ["depth", str(folder), "--model", "mono_metric_tiny", "--out", str(tmp_path / "f")], "is a file"


def case_eval_out_is_a_file(tmp_path, frames, camera):
    (tmp_path / "f").write_text("x")
    return ["eval", "--gt", str(_tum(tmp_path / "gt.txt", _tum_rows())), "--est", str(_tum(tmp_path / "e.txt", _tum_rows())),
            "--out", str(tmp_path / "f")], "is a file"


def case_batch_out_is_a_file(tmp_path, frames, camera):
    (tmp_path / "f").write_text("x")
    return ["batch", "synthetic:room?frames=3", "--sequential", "--out", str(tmp_path / "f")], "is a file"


def case_export_onnx_out_is_a_folder(tmp_path, frames, camera):
    (tmp_path / "d.onnx").mkdir()
    return ["export-onnx", "--height", "64", "--width", "64", "--out", str(tmp_path / "d.onnx")], "is a folder"


def case_depth_input_size_malformed(tmp_path, frames, camera):
    folder = _folder(tmp_path, frames[:1], camera)
    return ["depth", str(folder), "--model", "mono_metric_tiny", "--input-size", "160x"], "--input-size '160x'"


def case_out_reused_without_overwrite(tmp_path, frames, camera):
    out = tmp_path / "out"
    assert main(["run", "synthetic:room?frames=4&width=160&height=120", "--depth", "gt", "--out", str(out), "--quiet"]) == 0
    return ["run", "synthetic:room?frames=4&width=160&height=120", "--depth", "gt"], "pass --overwrite"


def case_overwrite_refuses_a_foreign_folder(tmp_path, frames, camera):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("precious")
    return ["run", "synthetic:room?frames=3", "--depth", "gt", "--overwrite"], "holds no mono-metric results"


def case_resume_corrupt_snapshot(tmp_path, frames, camera):
    out = tmp_path / "out"
    (out / "resume").mkdir(parents=True)
    (out / "resume" / "progress.json").write_text("{not json")
    (out / "resume" / "odometry.npz").write_bytes(b"PK\x03\x04 broken")
    (out / ".mono-metric.json").write_text('{"command": "run", "state": "running"}')
    return ["run", "synthetic:room?frames=4&width=160&height=120", "--depth", "gt", "--resume"], "is damaged"


def case_resume_other_sequence(tmp_path, frames, camera):
    from mono_metric import OdometryPipeline, load_config
    from mono_metric.outputs import write_marker
    from mono_metric.resume import save_snapshot

    out = tmp_path / "out"
    out.mkdir()
    write_marker(out, "run", "running")
    cfg = load_config(None, {"depth": {"source": "gt"}})
    seq = SyntheticSequence(SyntheticConfig(scene="room", seed=1, frames=4, width=160, height=120))
    OdometryPipeline(seq, cfg, tmp_path / "scratch", progress=False)
    save_snapshot(out, {}, {"config": cfg.to_dict(), "frames": 4, "input": "another sequence", "statuses": []})
    return ["run", "synthetic:room?frames=4&width=160&height=120&seed=2", "--depth", "gt", "--resume"], \
        "snapshot of another input"


def case_never_tracks(tmp_path, frames, camera):
    folder = tmp_path / "tiny"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
    return ["run", str(folder), "--depth", "mono_metric_tiny"], "no frame of tiny could be tracked"


def case_truncated_video_midway(tmp_path, frames, camera):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (camera.width, camera.height))
    for img in frames:
        writer.write(img[:, :, ::-1])
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * 0.6)])
    return ["run", str(path), "--depth", "mono_metric_tiny", "--fov", f"{camera.hfov_deg:.3f}"], "stopped at frame"


def case_train_resume_truncated_checkpoint(tmp_path, frames, camera):
    _yaml(tmp_path / "t.yaml", TINY_TRAIN)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".mono-metric.json").write_text('{"command": "train", "state": "interrupted"}')
    torch.save({"model_state_dict": {}, "step": 1}, out / "checkpoint.pt")
    (out / "checkpoint.pt").write_bytes((out / "checkpoint.pt").read_bytes()[:40])
    return ["train", "--config", str(tmp_path / "t.yaml"), "--resume"], "cannot resume from"


def case_train_resume_model_pt_as_checkpoint(tmp_path, frames, camera):
    _yaml(tmp_path / "t.yaml", TINY_TRAIN)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".mono-metric.json").write_text('{"command": "train", "state": "interrupted"}')
    (out / "checkpoint.pt").write_bytes(_checkpoint(tmp_path, "mono_metric_tiny").read_bytes())
    return ["train", "--config", str(tmp_path / "t.yaml"), "--resume"], "not a checkpoint written by mono-metric train"


def case_train_resume_pickled_object(tmp_path, frames, camera):
    _yaml(tmp_path / "t.yaml", TINY_TRAIN)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".mono-metric.json").write_text('{"command": "train", "state": "interrupted"}')
    torch.save({"step": 1, "hook": Camera(1, 1, 0, 0, 1, 1)}, out / "checkpoint.pt")
    return ["train", "--config", str(tmp_path / "t.yaml"), "--resume"], "holds pickled objects"


def case_train_over_a_finished_run(tmp_path, frames, camera):
    _yaml(tmp_path / "t.yaml", TINY_TRAIN)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".mono-metric.json").write_text('{"command": "train", "state": "finished"}')
    (out / "model.pt").write_bytes(b"weights")
    return ["train", "--config", str(tmp_path / "t.yaml")], "pass --overwrite"


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input_is_one_clear_line(case, tmp_path, room_frames, capsys):
    args, fragment = case(tmp_path, *room_frames)
    out = tmp_path / "out"
    if "--out" not in args:
        args += ["--out", str(out)]
    if args[0] in ("run", "train", "demo"):
        args = args + ["--quiet"]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")} if out.is_dir() else {}
    assert main(args) == 1
    err_text = capsys.readouterr().err
    err = [ln for ln in err_text.splitlines() if ln.startswith("mono-metric: error:")]
    assert len(err) == 1 and fragment in err[0], err
    assert "Traceback" not in err_text and "weights_only" not in err_text and "internal error" not in err[0]
    if before:  # a refused command changed nothing of an earlier run in --out
        after = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
        assert {p: t for p, t in after.items() if p.name != MARKER} == {p: t for p, t in before.items()
                                                                         if p.name != MARKER}


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


# ---------------------------------------------------------------- outputs finished, nothing mixed, resolved inputs
def _strict_json(path):
    def refuse(name):
        raise AssertionError(f"{path} holds {name}")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_truncated_video_finishes_the_outputs_of_the_frames_before(tmp_path, room_frames, capsys):
    args, _ = case_truncated_video_midway(tmp_path, *room_frames)
    out = tmp_path / "out"
    assert main(args + ["--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    done = int(err.split("stopped at frame ")[1].split()[0])
    assert 3 <= done < len(room_frames[0])
    assert len(Trajectory.read_tum(out / "trajectory_tum.txt")) == done
    assert _strict_json(out / "timings.json")["depth_calls"] >= 1
    assert (out / "mesh.ply").stat().st_size > 1000 and (out / "cloud.ply").is_file()
    assert read_marker(out)["state"] == "failed"


def _room_pipeline(tmp_path, frames=10):
    from mono_metric import OdometryPipeline, load_config

    seq = SyntheticSequence(SyntheticConfig(scene="room", seed=9, frames=frames, width=320, height=240))
    cfg = load_config(None, {"depth": {"source": "gt", "max_depth_m": 10.0}})
    return OdometryPipeline(seq, cfg, tmp_path / "out", progress=False)


def test_failed_mesh_write_keeps_the_metrics(tmp_path):
    pipe = _room_pipeline(tmp_path)
    (pipe.out_dir / "mesh.ply").mkdir()  # cannot be written as a file
    with pytest.raises(InputError, match="cannot write .*mesh.ply"):
        pipe.run()
    metrics = _strict_json(pipe.out_dir / "metrics.json")
    assert metrics["ate"]["rmse_m"] < 0.05 and (pipe.out_dir / "cloud.ply").is_file()
    assert (pipe.out_dir / "timings.json").is_file()


def test_unwritable_depth_previews_are_reported(tmp_path, capsys):
    pipe = _room_pipeline(tmp_path)
    (pipe.out_dir / "depth").write_text("a file where the preview folder goes")
    with pytest.raises(InputError, match="depth previews"):
        pipe.run()
    assert "cannot write the depth preview" in capsys.readouterr().err
    assert (pipe.out_dir / "metrics.json").is_file() and (pipe.out_dir / "mesh.ply").is_file()


def test_json_outputs_have_no_nan():
    from mono_metric.outputs import json_safe

    safe = json_safe({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": np.float64("nan")}, "e": 2})
    assert safe == {"a": None, "a_null_reason": "nan (not finite)", "b": [1.0, None], "c": {"d": None,
                    "d_null_reason": "nan (not finite)"}, "e": 2}
    json.dumps(safe, allow_nan=False)


def test_eval_of_a_standing_camera_writes_strict_json(tmp_path, capsys):
    rows = [[0.1 * i, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0] for i in range(6)]  # no motion: scale undefined
    assert main(["eval", "--gt", str(_tum(tmp_path / "gt.txt", rows)), "--est", str(_tum(tmp_path / "e.txt", rows)),
                 "--out", str(tmp_path / "ev")]) == 0
    _strict_json(tmp_path / "ev" / "metrics.json")


def test_eval_sorts_unsorted_timestamps(tmp_path, capsys):
    gt = _tum_rows(8)
    est = [[r[0], r[1] * 1.1, 0.01 * i, 0, 0, 0, 0, 1] for i, r in enumerate(gt)]
    _tum(tmp_path / "gt.txt", gt)
    assert main(["eval", "--gt", str(tmp_path / "gt.txt"), "--est", str(_tum(tmp_path / "a.txt", est)),
                 "--out", str(tmp_path / "a")]) == 0
    assert main(["eval", "--gt", str(tmp_path / "gt.txt"), "--est", str(_tum(tmp_path / "b.txt", est[::-1])),
                 "--out", str(tmp_path / "b")]) == 0
    assert _strict_json(tmp_path / "a" / "metrics.json") == _strict_json(tmp_path / "b" / "metrics.json")


def test_sixteen_bit_images_use_their_bit_depth(tmp_path, room_frames):
    from mono_metric.datasets import ImageFolder

    img = room_frames[0][0]
    folder = tmp_path / "raw12"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), (img[:, :, ::-1].astype(np.uint16) << 4))  # 12-bit data
    seq = ImageFolder(folder, fov_deg=60)
    assert seq.bits == 12 and "12-bit" in seq.camera_note
    np.testing.assert_array_equal(seq[1].image, img)


def test_depth_png_must_be_sixteen_bit(tmp_path):
    from mono_metric.datasets.base import read_depth_png

    cv2.imwrite(str(tmp_path / "d.png"), np.full((4, 4), 200, np.uint8))
    with pytest.raises(InputError, match="16-bit"):
        read_depth_png(tmp_path / "d.png", 5000.0)


def test_frames_are_read_in_natural_order(tmp_path, room_frames):
    from mono_metric.datasets import ImageFolder

    folder = tmp_path / "f"
    folder.mkdir()
    for i in (1, 2, 10):
        cv2.imwrite(str(folder / f"frame_{i}.png"), room_frames[0][i][:, :, ::-1])
    assert [p.name for p in ImageFolder(folder, fov_deg=60).files] == ["frame_1.png", "frame_2.png", "frame_10.png"]


def test_absurd_distortion_warns(tmp_path, room_frames, capsys):
    frames, camera = room_frames
    folder = _folder(tmp_path, frames[:4], camera)
    _yaml(folder / "intrinsics.yaml", {**camera.to_dict(), "distortion": [-3.0, 0.0, 0.0, 0.0, 0.0]})
    main(["run", str(folder), "--depth", "mono_metric_tiny", "--out", str(tmp_path / "out"), "--quiet"])
    assert "looks wrong" in capsys.readouterr().err


def test_init_frames_count_as_lost(tmp_path, room_frames, capsys):
    frames, camera = room_frames
    frames = [np.zeros_like(frames[0])] * 2 + list(frames[2:10])
    folder = _folder(tmp_path, frames, camera)
    assert main(["run", str(folder), "--depth", "mono_metric_tiny", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "2 lost [[0, 1]]" in capsys.readouterr().out


def test_output_folder_policy(tmp_path, capsys):
    out = tmp_path / "out"
    spec = ["run", "synthetic:room?frames=4&width=160&height=120", "--depth", "gt", "--out", str(out), "--quiet"]
    assert main(spec) == 0
    (out / "stale_from_an_earlier_version.txt").write_text("old")
    assert main(spec + ["--resume"]) == 1 and "nothing to resume" in capsys.readouterr().err
    assert main(spec + ["--overwrite"]) == 0
    assert not (out / "stale_from_an_earlier_version.txt").exists() and read_marker(out)["state"] == "finished"
    assert main(["eval", "--gt", str(out / "gt_tum.txt"), "--est", str(out / "trajectory_tum.txt"),
                 "--out", str(out)]) == 1
    assert "results of 'mono-metric run'" in capsys.readouterr().err


def test_debug_after_the_subcommand_shows_the_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mono_metric.cli", "run", str(tmp_path / "nowhere"), "--debug"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_internal_error_is_a_short_report(tmp_path, monkeypatch, capsys):
    import mono_metric.eval.trajectory as trajectory

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(trajectory, "evaluate_trajectory", broken)
    gt = str(_tum(tmp_path / "gt.txt", _tum_rows()))
    assert main(["eval", "--gt", gt, "--est", gt, "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error (ZeroDivisionError: a bug)" in err[0]
    assert f"mono-metric --debug eval --gt {gt}" in err[0]
