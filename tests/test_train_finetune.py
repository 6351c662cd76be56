"""Fine-tuning on real RGB-D: sequence entries in the config, --max-minutes with resume, the final model
check, and the installer of the shipped weights (which refuses a worse model)."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

from mono_metric.cli import main
from mono_metric.depth.weights import load_state_dict
from mono_metric.errors import InputError
from mono_metric.outputs import read_marker
from mono_metric.train.config import SequenceEntry, train_config_from_dict
from mono_metric.train.data import samples_from_entry
from mono_metric.train.install import SHIPPED, install
from mono_metric.train.install import main as install_main
from mono_metric.train.trainer import check_model_file, train


def test_sequence_entries_parse_and_validate(tmp_path):
    cfg = train_config_from_dict({"data": {"sequence_stride": 3, "sequences": [
        "some/tum", {"path": "other/tum", "start": 5, "max_frames": 10, "scale": 0.5, "undistort": False}],
        "val_sequences": [{"path": "val/tum", "stride": 2, "skip_missing": True}]}})
    a, b = cfg.data.sequences
    assert a == SequenceEntry(path="some/tum", stride=3)
    assert (b.start, b.max_frames, b.scale, b.undistort, b.stride) == (5, 10, 0.5, False, 3)
    (v,) = cfg.data.val_sequences
    assert v.stride == 2 and v.skip_missing and v.undistort
    cfg.save(tmp_path / "c.yaml")  # entries are saved as mappings and read back equal
    assert train_config_from_dict(yaml.safe_load((tmp_path / "c.yaml").read_text())) == cfg
    for bad, key in ((["x", {"path": "y", "scale": 1.5}], r"data.sequences\[1\].scale"),
                     ([{"path": "y", "scael": 0.5}], r"data.sequences\[0\].scael"),
                     ([{"path": "y", "start": "0"}], r"data.sequences\[0\].start"),
                     ([{"path": "y", "max_frames": 0}], r"data.sequences\[0\].max_frames"),
                     ([{"start": 3}], r"data.sequences\[0\].path"),
                     ([3], r"data.sequences\[0\]"),
                     ("a/path", "data.sequences=")):
        with pytest.raises(InputError, match=key):
            train_config_from_dict({"data": {"sequences": bad}})
    with pytest.raises(InputError, match=r"data.val_sequences\[0\].undistort"):
        train_config_from_dict({"data": {"val_sequences": [{"path": "v", "undistort": "yes"}]}})
    # Files are checked when training starts (a config may name data only some machines have).
    missing = train_config_from_dict({"data": {"val_sequences": [str(tmp_path / "nope")]}})
    with pytest.raises(InputError, match=r"data.val_sequences\[0\].path"):
        missing.check_files()
    with pytest.raises(InputError, match="init_weights"):
        train_config_from_dict({"init_weights": str(tmp_path / "none.pt")}).check_files()
    train_config_from_dict({"init_weights": "pretrained"}).check_files()


def test_tum_entry_frames_are_undistorted_and_scaled(shared_data):
    from mono_metric.datasets.tum import TUM_DISTORTION
    from mono_metric.undistort import Undistorter

    root = str(shared_data / "tum_fr1_desk_9f")
    entry = SequenceEntry(path=root, max_frames=2, stride=1, skip_missing=True)
    raw = samples_from_entry(replace(entry, undistort=False), "data.sequences[0]")
    full = samples_from_entry(entry, "data.sequences[0]")
    half = samples_from_entry(replace(entry, scale=0.5), "data.sequences[0]")
    assert len(raw) == len(half) == 2 and half[0].group == "tum_fr1_desk_9f"
    # Undistorted with the published fr1 coefficients: colour bilinear, depth nearest (no blended depth).
    und = Undistorter(raw[0].camera, TUM_DISTORTION["freiburg1"])
    np.testing.assert_array_equal(full[0].depth_m, und.depth(raw[0].depth_m))
    np.testing.assert_array_equal(full[0].image, und.image(raw[0].image))
    assert not np.array_equal(full[0].image, raw[0].image)
    assert raw[0].image.shape == (480, 640, 3) and half[0].image.shape == (240, 320, 3)
    assert half[0].depth_m.shape == (240, 320) and half[0].camera.fx == pytest.approx(raw[0].camera.fx / 2)
    valid = half[0].depth_m > 0
    assert set(np.unique(half[0].depth_m[valid])) <= set(np.unique(full[0].depth_m))  # nearest: sensor values only
    with pytest.raises(InputError, match=r"data.sequences\[0\]"):
        samples_from_entry(replace(entry, skip_missing=False), "data.sequences[0]")  # 9 of many listed frames


def _tum_cfg(shared_data, steps: int) -> dict:
    entry = {"path": str(shared_data / "tum_fr1_xyz"), "max_frames": 3, "stride": 20, "scale": 0.25}
    return {"steps": steps, "batch_size": 2, "crop_hw": [96, 128], "warmup_steps": 1, "val_every": 2,
            "checkpoint_every": 100, "init_weights": "pretrained", "threads": 1, "lr": 1e-4,
            "data": {"synthetic": {"sequences_per_scene": 0}, "val_sequences_per_scene": 0, "max_depth_m": 10.0,
                     "sequences": [entry], "val_sequences": [{**entry, "start": 200, "max_frames": 1}]}}


def test_max_minutes_stops_with_a_checkpoint_and_resume_matches(shared_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MONO_METRIC_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)
    full = train(train_config_from_dict(_tum_cfg(shared_data, 3)), tmp_path / "full", progress=False)
    assert full.stopped_at_step is None and full.model_check["min_m"] > 0
    saved = json.loads((tmp_path / "full" / "val_metrics.json").read_text())
    assert saved["model_check"]["image_hw"] == [120, 160] and "tum_fr1_xyz" in saved
    config = tmp_path / "tum.yaml"
    config.write_text(yaml.safe_dump(_tum_cfg(shared_data, 3)))
    part = tmp_path / "part"
    assert main(["train", "--config", str(config), "--out", str(part), "--quiet", "--max-minutes", "1e-6"]) == 0
    assert not (part / "model.pt").exists() and read_marker(part)["state"] == "stopped"
    assert torch.load(part / "checkpoint.pt", weights_only=True)["step"] == 1
    assert main(["train", "--config", str(config), "--out", str(part), "--quiet", "--resume"]) == 0
    a, b = load_state_dict(tmp_path / "full" / "model.pt"), load_state_dict(part / "model.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    capsys.readouterr()
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "z"), "--max-minutes", "0"]) != 0
    assert "--max-minutes 0.0 must be > 0" in capsys.readouterr().err


def test_model_check_refuses_a_diverged_model(shared_data, tmp_path):
    model_pt = tmp_path / "bad.pt"
    ckpt = torch.load(SHIPPED, weights_only=True)
    ckpt["model_state_dict"] = {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v)
                                for k, v in ckpt["model_state_dict"].items()}
    ckpt.setdefault("model_name", "mono_metric_tiny")
    torch.save(ckpt, model_pt)
    (sample,) = samples_from_entry(SequenceEntry(path=str(shared_data / "tum_fr1_xyz"), max_frames=1, stride=1,
                                                 scale=0.25), "data.val_sequences[0]")
    assert check_model_file(SHIPPED, sample, "label", "mono_metric_tiny")["min_m"] > 0
    with pytest.raises(InputError, match="fails validation"):
        check_model_file(model_pt, sample, "label", "mono_metric_tiny")


def test_install_refuses_a_worse_model_and_dry_run_changes_nothing(shared_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MONO_METRIC_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)
    target = tmp_path / "assets" / "mono_metric_tiny.pt"
    target.parent.mkdir()
    target.write_bytes(SHIPPED.read_bytes())
    shipped_bytes = target.read_bytes()
    fast = {"seeds": (551,), "frames": (0,)}
    # A few real-data steps at a high learning rate move the synthetic scale: worse, refused.
    cfg = _tum_cfg(shared_data, 3) | {"lr": 0.001}
    train(train_config_from_dict(cfg), tmp_path / "ft", progress=False)
    with pytest.raises(InputError, match="worse than the shipped"):
        install(tmp_path / "ft" / "model.pt", target, **fast)
    assert target.read_bytes() == shipped_bytes and sorted(target.parent.iterdir()) == [target]
    monkeypatch.setattr("mono_metric.train.install.VAL_SEEDS", (551,))
    monkeypatch.setattr("mono_metric.train.install.VAL_FRAMES", (0,))
    assert install_main([str(tmp_path / "ft" / "model.pt"), "--target", str(target), "--dry-run"]) == 1
    assert "nothing replaced" in capsys.readouterr().err
    # The shipped file itself is not worse: a dry run reports it and changes nothing; a real run keeps a backup.
    report = install(SHIPPED, target, dry_run=True, **fast)
    assert not report["installed"] and report["worse"] == [] and sorted(target.parent.iterdir()) == [target]
    report = install(tmp_path / "ft" / "model.pt", target, allow_worse=True, **fast)
    assert report["installed"] and report["worse"]
    backup = [p for p in target.parent.iterdir() if p != target]
    assert len(backup) == 1 and backup[0].read_bytes() == shipped_bytes
    assert target.read_bytes() == (tmp_path / "ft" / "model.pt").read_bytes()
    with pytest.raises(InputError, match="does not exist"):
        install(tmp_path / "missing.pt", target, **fast)
