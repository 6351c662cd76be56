"""CLI frictions: help text and defaults, default depth, --fps/--max-width/--threads, eval pairing and hints,
partial KITTI ground truth, the signed scale factor, metrics that mean nothing, the self-calibration line."""
import argparse
import json

import cv2
import numpy as np
import pytest

from mono_metric import Trajectory, load_sequence
from mono_metric.cli import build_parser, default_threads, main
from mono_metric.depth.sources import TINY_REAL_WARNING, default_depth_source
from mono_metric.depth.weights import OFFICIAL_WEIGHTS
from mono_metric.outputs import read_partial_trajectory


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_option_has_help_and_shows_its_default():
    for name, sub in _subparsers(build_parser()).items():
        text = " ".join(sub.format_help().split())
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help text"
            if action.option_strings and action.default not in (None, False):
                assert f"(default: {action.default})" in text, f"{name} {action.option_strings[0]}"


def _image_folder(tmp_path, frames=6, width=320, height=240, seed=5):
    seq = load_sequence(f"synthetic:room?seed={seed}&frames={frames}&width={width}&height={height}")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for f in seq:
        cv2.imwrite(str(folder / f"{f.index:04d}.png"), f.image[:, :, ::-1])
    return seq, folder


def test_default_depth_follows_the_input(tmp_path, monkeypatch):
    monkeypatch.setenv("MONO_METRIC_HOME", str(tmp_path / "cache"))
    _, folder = _image_folder(tmp_path, frames=2)
    assert default_depth_source(load_sequence("synthetic:room?frames=2&width=64&height=48"))[0] == "gt"
    assert default_depth_source(load_sequence(folder))[0] == "mono_metric_tiny"
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / OFFICIAL_WEIGHTS["metric3d_convnext_tiny"].filename).write_bytes(b"x")
    source, why = default_depth_source(load_sequence(folder))
    assert source == "metric3d_convnext_tiny" and str(tmp_path / "cache") in why


def test_image_folder_fps_max_width_threads_and_the_real_image_warning(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setenv("MONO_METRIC_HOME", str(tmp_path / "cache"))
    seq, folder = _image_folder(tmp_path)
    c = seq.camera
    out = tmp_path / "run"
    assert main(["run", str(folder), "--intrinsics", f"{c.fx},{c.fy},{c.cx},{c.cy}", "--fps", "20", "--max-width",
                 "160", "--threads", "1", "--out", str(out), "--quiet"]) == 0
    assert torch.get_num_threads() == 1
    text = capsys.readouterr()
    assert "depth: mono_metric_tiny" in text.out and TINY_REAL_WARNING in text.out and TINY_REAL_WARNING in text.err
    np.testing.assert_allclose(read_partial_trajectory(out).timestamps, np.arange(6) / 20.0, atol=1e-6)
    assert json.loads((out / "summary.json").read_text())["warnings"] == [TINY_REAL_WARNING]  # no GT: no metrics.json
    import html

    assert html.escape(TINY_REAL_WARNING) in (out / "report.html").read_text()
    cam = yaml_camera = __import__("yaml").safe_load((out / "camera.yaml").read_text())
    assert (yaml_camera["width"], yaml_camera["height"]) == (160, 120)
    assert cam["fx"] == pytest.approx(c.fx / 2)
    # Messages name the flags, not the Python arguments.
    assert main(["run", str(folder), "--fov", "60", "--camera", str(out / "camera.yaml"), "--out", str(out)]) == 1
    assert "--intrinsics fx,fy,cx,cy, --camera FILE.yaml or --fov" in capsys.readouterr().err
    assert main(["run", str(folder), "--sequence", "00", "--out", str(out), "--quiet"]) == 1
    assert "--sequence (sequence=) does not apply to images" in capsys.readouterr().err
    assert main(["run", str(folder), "--weights", "w.pth", "--out", str(out), "--quiet"]) == 1
    assert "needs --depth MODEL" in capsys.readouterr().err


def test_default_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert default_threads() == 1
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert default_threads() == 8


def test_self_calibrate_first_line(tmp_path, capsys):
    _, folder = _image_folder(tmp_path, frames=1)
    for i in range(1, 6):  # a still camera: self-calibration then refuses, after the first line is printed
        (folder / f"{i:04d}.png").write_bytes((folder / "0000.png").read_bytes())
    assert main(["run", str(folder), "--self-calibrate", "--depth", "mono_metric_tiny", "--out",
                 str(tmp_path / "o"), "--quiet"]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert "estimated from the motion" in first and "ASSUMED" not in first and "--self-calibrate" not in first
    assert main(["run", str(folder), "--depth", "mono_metric_tiny", "--max-frames", "1", "--out",
                 str(tmp_path / "o2"), "--quiet"]) == 0
    assert "ASSUMED" in capsys.readouterr().out.splitlines()[0]


def _line(T_z_m: np.ndarray) -> np.ndarray:
    T = np.stack([np.eye(4)] * len(T_z_m))
    T[:, 2, 3] = T_z_m
    T[:, 0, 3] = 0.3 * np.sin(np.arange(len(T_z_m)) / 5.0)  # not a straight line: a unique alignment
    return T


def test_eval_pairs_partial_estimates_and_hints_the_format(tmp_path, capsys):
    T = _line(np.arange(40) * 0.5)
    gt = Trajectory(np.arange(40) * 0.1, T)
    gt.write_tum(tmp_path / "gt.txt")
    gt.write_kitti(tmp_path / "gt.kitti")
    half = T[:20].copy()
    half[:, :3, 3] *= 0.5  # half as long as the truth
    Trajectory(gt.timestamps[:20] + 0.002, half).write_tum(tmp_path / "est.txt")
    Trajectory(gt.timestamps[:20], half).write_kitti(tmp_path / "est.kitti")
    assert main(["eval", "--gt", str(tmp_path / "gt.txt"), "--est", str(tmp_path / "est.txt"), "--out",
                 str(tmp_path / "e1")]) == 0
    out = capsys.readouterr().out
    assert "evaluating 20 estimated poses" in out and "estimate 0.50x the true length" in out
    assert "(scale error 100.00 %)" in out
    assert json.loads((tmp_path / "e1" / "metrics.json").read_text())["frames"] == 20
    assert main(["eval", "--gt", str(tmp_path / "gt.kitti"), "--est", str(tmp_path / "est.kitti"), "--format",
                 "kitti", "--out", str(tmp_path / "e2")]) == 0
    assert "first 20 of 40 ground-truth poses" in capsys.readouterr().out
    assert main(["eval", "--gt", str(tmp_path / "gt.kitti"), "--est", str(tmp_path / "est.kitti"), "--out",
                 str(tmp_path / "e3")]) == 1
    assert "add --format kitti" in capsys.readouterr().err
    assert main(["eval", "--gt", str(tmp_path / "gt.txt"), "--est", str(tmp_path / "est.txt"), "--format", "kitti",
                 "--out", str(tmp_path / "e4")]) == 1
    assert "add --format tum" in capsys.readouterr().err


def test_metrics_that_mean_nothing_are_flagged(tmp_path, capsys):
    rng = np.random.default_rng(0)
    # A camera turning on the spot, with 1 cm of jitter: no scale, no drift per metre.
    n = 60
    ang = np.linspace(0, 1.5, n)
    T = np.stack([np.eye(4)] * n)
    T[:, 0, 0], T[:, 0, 2], T[:, 2, 0], T[:, 2, 2] = np.cos(ang), np.sin(ang), -np.sin(ang), np.cos(ang)
    T[:, :3, 3] = rng.normal(0, 0.01, (n, 3))
    Trajectory(np.arange(n) * 0.1, T).write_tum(tmp_path / "gt.txt")
    E = T.copy()
    E[:, :3, 3] += rng.normal(0, 0.01, (n, 3))
    Trajectory(np.arange(n) * 0.1, E).write_tum(tmp_path / "est.txt")
    assert main(["eval", "--gt", str(tmp_path / "gt.txt"), "--est", str(tmp_path / "est.txt"), "--out",
                 str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert "Sim3 scale not meaningful" in out and "KITTI-short: not meaningful" in out and "x the true length" not in out
    flags = json.loads((tmp_path / "e" / "metrics.json").read_text())["not_meaningful"]
    assert set(flags) == {"sim3_scale", "kitti_short", "kitti"}
    # A 20 m path keeps both.
    T2 = _line(np.arange(40) * 0.5)
    Trajectory(np.arange(40) * 0.1, T2).write_tum(tmp_path / "gt2.txt")
    Trajectory(np.arange(40) * 0.1, T2).write_tum(tmp_path / "est2.txt")
    assert main(["eval", "--gt", str(tmp_path / "gt2.txt"), "--est", str(tmp_path / "est2.txt"), "--out",
                 str(tmp_path / "e2")]) == 0
    out = capsys.readouterr().out
    assert "not meaningful" in out and "estimate 1.00x the true length" in out and "KITTI-short: t_err" in out
    # An estimate whose shape is lost in noise (3 m errors on a path spreading ~6 m) does not fix a scale either.
    from mono_metric.eval.trajectory import evaluate_trajectory

    noisy = T2.copy()
    noisy[:, :3, 3] += rng.normal(0, 3.0, (40, 3))
    m = evaluate_trajectory(Trajectory(np.arange(40) * 0.1, T2), Trajectory(np.arange(40) * 0.1, noisy))
    assert "shape error after Sim(3) alignment" in m["not_meaningful"]["sim3_scale"]
    assert "sim3_scale" not in evaluate_trajectory(Trajectory(np.arange(40) * 0.1, T2),
                                                   Trajectory(np.arange(40) * 0.1, T2))["not_meaningful"]


def test_kitti_ground_truth_shorter_than_the_images(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MONO_METRIC_HOME", str(tmp_path / "cache"))
    synth = load_sequence("synthetic:street?seed=2&frames=10&width=320&height=96")
    seq_dir = tmp_path / "kitti" / "sequences" / "07"
    (seq_dir / "image_0").mkdir(parents=True)
    for f in synth:
        cv2.imwrite(str(seq_dir / "image_0" / f"{f.index:06d}.png"), f.image[:, :, ::-1])
    c = synth.camera
    P = f"{c.fx} 0 {c.cx} 0 0 {c.fy} {c.cy} 0 0 0 1 0"
    (seq_dir / "calib.txt").write_text("".join(f"P{i}: {P}\n" for i in range(4)))
    (seq_dir / "times.txt").write_text("".join(f"{i * 0.1:.6e}\n" for i in range(10)))
    (tmp_path / "kitti" / "poses").mkdir()
    synth.gt[:7].write_kitti(tmp_path / "kitti" / "poses" / "07.txt")
    seq = load_sequence(tmp_path / "kitti")
    assert len(seq) == 10 and len(seq.gt) == 7 and "first 7 of the 10 selected frames" in seq.gt_note
    np.testing.assert_allclose(seq.gt.T_world_cam, synth.gt.T_world_cam[:7], atol=1e-6)
    assert seq[8].T_world_cam is None
    assert "all selected frames have one" in load_sequence(tmp_path / "kitti", max_frames=5).gt_note
    out = tmp_path / "run"
    assert main(["run", str(tmp_path / "kitti"), "--out", str(out), "--quiet"]) == 0
    assert "ground truth: " in capsys.readouterr().out
    assert len(read_partial_trajectory(out)) == 10
    assert json.loads((out / "metrics.json").read_text())["frames"] == 7


def test_batch_without_config_picks_depth_per_sequence(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MONO_METRIC_HOME", str(tmp_path / "cache"))
    _, folder = _image_folder(tmp_path)
    out = tmp_path / "batch"
    assert main(["batch", "synthetic:room?seed=1&frames=6&width=320&height=240", str(folder), "--sequential",
                 "--out", str(out)]) == 0
    rows = json.loads((out / "summary.json").read_text())
    assert [(r["status"], r["depth"]) for r in rows] == [("ok", "gt"), ("ok", "mono_metric_tiny")]
    assert "depth chosen per sequence" in capsys.readouterr().out
