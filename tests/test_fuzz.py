"""Fuzz: random corruptions of every kind of input, through every subcommand.

Each case (seeded) takes valid inputs, corrupts one file (truncate, flip bytes, empty it, wrong types,
NaN/inf/huge numbers) and runs a subcommand in process. It must end with exit code 0 or one
``mono-metric: error:`` line (never a traceback or an internal error), a run that succeeds must have
tracked (no silent identity trajectory), and the results folder, reused with ``--overwrite``, must
never hold files of an earlier case beside the new ones. 16 cases run by default, 160 with ``-m slow``.
"""
import json
import time

import cv2
import numpy as np
import pytest
import torch
import yaml

from mono_metric import Trajectory
from mono_metric.cli import main
from mono_metric.datasets import SyntheticConfig, SyntheticSequence
from mono_metric.depth import Metric3D

FAST_CASES, SLOW_CASES = 16, 160


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Valid inputs of every kind, written once; cases corrupt copies."""
    root = tmp_path_factory.mktemp("fuzz_base")
    seq = SyntheticSequence(SyntheticConfig(scene="room", seed=9, frames=8, width=160, height=120))
    frames = root / "frames"
    frames.mkdir()
    for i in range(len(seq)):
        cv2.imwrite(str(frames / f"{i:04d}.png"), seq[i].image[:, :, ::-1])
    seq.camera.to_yaml(root / "camera.yaml")
    writer = cv2.VideoWriter(str(root / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(len(seq)):
        writer.write(seq[i].image[:, :, ::-1])
    writer.release()
    seq.gt.write_tum(root / "gt_tum.txt")
    seq.gt.write_kitti(root / "gt_kitti.txt")
    (root / "config.yaml").write_text(yaml.safe_dump({"depth": {"source": "gt", "max_depth_m": 10.0},
                                                      "tracking": {"max_features": 300},
                                                      "mapping": {"voxel_size_m": 0.05}}))
    torch.save({"model_state_dict": Metric3D.build("mono_metric_tiny").state_dict()}, root / "weights.pt")
    (root / "train.yaml").write_text(yaml.safe_dump({
        "model": "mono_metric_tiny", "steps": 1, "batch_size": 1, "crop_hw": [64, 96], "warmup_steps": 1,
        "val_every": 1, "checkpoint_every": 1,
        "data": {"synthetic": {"scenes": ["room"], "sequences_per_scene": 1, "frames_per_sequence": 1,
                               "room_width_px": [160, 160]}, "val_sequences_per_scene": 0}}))
    return root


# ---------------------------------------------------------------- corruptions
def _numbers_to(text: str, rng, values) -> str:
    tokens = text.split(" ")
    idx = [i for i, t in enumerate(tokens) if t.strip().lstrip("-").replace(".", "", 1).replace("e", "", 1)
           .replace("-", "", 1).replace("+", "", 1).strip().isdigit()]
    for i in rng.choice(idx, size=min(len(idx), int(rng.integers(1, 4))), replace=False) if idx else []:
        tokens[i] = str(values[int(rng.integers(len(values)))]) + ("\n" if tokens[i].endswith("\n") else "")
    return " ".join(tokens)


def _yaml_wrong_types(text: str, rng) -> str:
    data = yaml.safe_load(text)
    choices = ["abc", [1, 2], {"x": 1}, None, -1, 0, 1e308, float("nan"), True, ""]

    def walk(d):
        keys = list(d)
        k = keys[int(rng.integers(len(keys)))]
        if isinstance(d[k], dict) and rng.random() < 0.7:
            walk(d[k])
        else:
            d[k] = choices[int(rng.integers(len(choices)))]
    walk(data)
    return yaml.safe_dump(data)


def corrupt(path, rng) -> str:
    """Corrupt ``path`` in place; returns what was done."""
    data = path.read_bytes()
    text_like = path.suffix in (".txt", ".yaml")
    kinds = ["truncate", "flip", "empty"] + (["numbers", "numbers"] if text_like else []) + \
        (["types", "types"] if path.suffix == ".yaml" else [])
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "truncate":
        data = data[:int(len(data) * rng.uniform(0.0, 0.95))]
    elif kind == "flip":
        arr = bytearray(data)
        for pos in rng.integers(0, len(arr), size=int(rng.integers(1, 64))):
            arr[pos] ^= int(rng.integers(1, 256))
        data = bytes(arr)
    elif kind == "empty":
        data = b""
    elif kind == "numbers":
        data = _numbers_to(data.decode(), rng, ["nan", "inf", "-inf", "1e308", "-1e308", "0", "1e-300"]).encode()
    else:
        data = _yaml_wrong_types(data.decode(), rng).encode()
    path.write_bytes(data)
    return kind


def _copy(src, dst):
    if src.is_dir():
        dst.mkdir()
        for p in src.iterdir():
            (dst / p.name).write_bytes(p.read_bytes())
    else:
        dst.write_bytes(src.read_bytes())
    return dst


# ---------------------------------------------------------------- targets: (file to corrupt, command)
def t_run_frame(b, w, rng):
    folder = _copy(b / "frames", w / "frames")
    victim = sorted(folder.iterdir())[int(rng.integers(8))]
    return victim, ["run", str(folder), "--depth", "mono_metric_tiny", "--camera", str(b / "camera.yaml")]


def t_run_camera(b, w, rng):
    return _copy(b / "camera.yaml", w / "camera.yaml"), ["run", str(b / "frames"), "--depth", "mono_metric_tiny",
                                                           "--camera", str(w / "camera.yaml")]


def t_run_video(b, w, rng):
    return _copy(b / "clip.avi", w / "clip.avi"), ["run", str(w / "clip.avi"), "--depth", "mono_metric_tiny",
                                                   "--fov", "60"]


def t_run_config(b, w, rng):
    return _copy(b / "config.yaml", w / "config.yaml"), ["run", "synthetic:room?seed=9&frames=8&width=160&height=120",
                                                         "--config", str(w / "config.yaml")]


def t_run_weights(b, w, rng):
    return _copy(b / "weights.pt", w / "weights.pt"), ["run", str(b / "frames"), "--depth", "mono_metric_tiny",
                                                       "--weights", str(w / "weights.pt")]


def t_eval_tum(b, w, rng):
    name = ["gt_tum.txt", "est.txt"][int(rng.integers(2))]
    gt, est = _copy(b / "gt_tum.txt", w / "gt_tum.txt"), _copy(b / "gt_tum.txt", w / "est.txt")
    return w / name, ["eval", "--gt", str(gt), "--est", str(est), "--max-diff-s", "0.05"]


def t_eval_kitti(b, w, rng):
    name = ["gt_kitti.txt", "est.txt"][int(rng.integers(2))]
    gt, est = _copy(b / "gt_kitti.txt", w / "gt_kitti.txt"), _copy(b / "gt_kitti.txt", w / "est.txt")
    return w / name, ["eval", "--gt", str(gt), "--est", str(est), "--format", "kitti"]


def t_depth_image(b, w, rng):
    img = _copy(b / "frames" / "0000.png", w / "img.png")
    return img, ["depth", str(img), "--model", "mono_metric_tiny", "--fov", "60"]


def t_depth_weights(b, w, rng):
    return _copy(b / "weights.pt", w / "weights.pt"), ["depth", str(b / "frames" / "0000.png"), "--model",
                                                       "mono_metric_tiny", "--weights", str(w / "weights.pt")]


def t_train_config(b, w, rng):
    return _copy(b / "train.yaml", w / "train.yaml"), ["train", "--config", str(w / "train.yaml"), "--steps", "1"]


def t_batch_list(b, w, rng):
    (w / "list.txt").write_text(f"{b / 'frames'}\nsynthetic:room?frames=4&width=160&height=120\n")
    return w / "list.txt", ["batch", str(w / "list.txt"), "--sequential", "--depth", "gt", "--max-frames", "4"]


TARGETS = [t_run_frame, t_run_camera, t_run_video, t_run_config, t_run_weights, t_eval_tum, t_eval_kitti,
           t_depth_image, t_depth_weights, t_train_config, t_batch_list]


def check_case(seed, base, work, capsys):
    rng = np.random.default_rng([2024, seed])
    target = TARGETS[seed % len(TARGETS)]
    w = work / f"case{seed}"
    w.mkdir()
    victim, args = target(base, w, rng)
    kind = corrupt(victim, rng)
    out = work / f"out_{args[0]}"  # one folder per subcommand, reused by every case: nothing may mix
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} if out.is_dir() else {}
    t0 = time.time_ns()
    args = args + ["--out", str(out), "--overwrite"] + (["--quiet"] if args[0] in ("run", "train") else [])
    capsys.readouterr()
    rc = main(args)
    printed = capsys.readouterr()
    what = f"seed {seed}: {target.__name__} {kind} of {victim.name}: rc {rc}\n{printed.err[-2000:]}"
    assert rc in (0, 1), what
    assert "Traceback" not in printed.err and "internal error" not in printed.err, what
    if rc == 1:
        errors = [ln for ln in printed.err.splitlines() if ln.startswith("mono-metric: error:")]
        assert len(errors) == 1, what
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} if out.is_dir() else {}
    new = {p for p, t in after.items() if t >= t0}
    old = set(after) - new
    assert not (new and old), f"{what}\nold files beside new ones: {sorted(p.name for p in old)}"
    if old:
        assert after == before, what  # untouched: the earlier case's results, whole
    if rc == 0 and args[0] == "run":
        traj = Trajectory.read_tum(out / "trajectory_tum.txt")
        assert len(traj) >= 2 and not np.allclose(traj.T_world_cam, np.eye(4)), what  # it tracked
    for name in ("metrics.json", "timings.json", "summary.json"):
        for path in out.rglob(name):
            json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{what}: {path} holds {c}"))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_work")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MONO_METRIC_HOME", str(tmp_path_factory.getbasetemp() / "fuzz_home"))


@pytest.mark.parametrize("seed", range(FAST_CASES))
def test_fuzz(seed, base, work, capsys):
    check_case(seed, base, work, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(FAST_CASES, SLOW_CASES))
def test_fuzz_long(seed, base, work, capsys):
    check_case(seed, base, work, capsys)
