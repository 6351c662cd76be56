import pytest
import yaml

from mono_metric import InputError
from mono_metric.config import config_from_dict, load_config


def test_repo_configs_load(tmp_path):
    from pathlib import Path

    from mono_metric.train.config import load_train_config

    configs = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    names = {p.stem for p in configs}
    assert {"kitti", "tum", "phone", "synthetic_street", "synthetic_room", "train_tiny"} <= names
    for path in configs:
        load = load_train_config if path.stem.startswith("train_") else load_config
        cfg = load(path)
        cfg.save(tmp_path / "saved.yaml")
        assert load(tmp_path / "saved.yaml") == cfg


@pytest.mark.parametrize("data,match", [
    ({"depth": {"sorce": "gt"}}, "depth.sorce"),
    ({"trackin": {}}, "trackin"),
    ({"depth": {"source": "lidar"}}, "depth.source"),
    ({"tracking": {"max_features": "many"}}, "tracking.max_features"),
    ({"tracking": {"max_features": 5}}, "tracking.max_features"),
    ({"depth": {"max_depth_m": -1.0}}, "depth.max_depth_m"),
    ({"depth": 3}, "depth"),
    ({"mapping": {"voxel_size_m": 0.0}}, "mapping.voxel_size_m"),
    ({"mapping": {"device": "tpu"}}, "mapping.device"),
    ({"mapping": {"enabled": "yes"}}, "mapping.enabled"),
    ({"tracking": {"keyframe_inlier_ratio": 1.5}}, "tracking.keyframe_inlier_ratio"),
    ({"depth": {"min_confidence": "high"}}, "depth.min_confidence"),
    ({"tracking": {"local_ba": True, "ba_window": 4, "ba_fixed_keyframes": 4}}, "tracking.ba_fixed_keyframes"),
    ({"tracking": {"ba_depth_every_n_frames": 2}}, "tracking.local_ba: true"),
    ({"tracking": {"local_ba": True, "ba_multiview": True, "frontend": "sift"}}, "needs tracking.frontend 'klt'"),
    ({"tracking": {"ba_huber": -1.0}}, "tracking.ba_huber"),
    ({"depth": {"degrade_seed": -3}}, "depth.degrade_seed"),
    ({"depth": {"degrade_seed": 1.5}}, "depth.degrade_seed"),
    ({"tracking": {"pnp_solver": "p3p"}}, "tracking.pnp_solver"),
])
def test_bad_values_name_the_key(data, match):
    with pytest.raises(InputError, match=match):
        config_from_dict(data)


def test_ints_are_floats_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"depth": {"max_depth_m": 40}}))
    cfg = load_config(path, overrides={"depth": {"source": "gt_degraded"}})
    assert cfg.depth.max_depth_m == 40.0 and isinstance(cfg.depth.max_depth_m, float)
    assert cfg.depth.source == "gt_degraded"
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "none.yaml")


def test_depth_model_source_validated():
    cfg = config_from_dict({"depth": {"source": "metric3d_vit_small", "input_hw": [308, 532]}})
    assert cfg.depth.input_hw == [308, 532]
    with pytest.raises(InputError, match="depth.source"):
        config_from_dict({"depth": {"source": "metric3d_vit_huge"}})
    with pytest.raises(InputError, match="input_hw"):
        config_from_dict({"depth": {"input_hw": [308]}})


def test_degrade_seed_draws_other_noise():
    import numpy as np

    from mono_metric.depth.sources import make_depth_source

    gt = np.full((48, 64), 3.0, np.float32)
    frame = type("F", (), {"depth_m": gt, "index": 5})()
    draws = [make_depth_source(config_from_dict({"depth": {"source": "gt_degraded", "degrade_seed": s}}).depth)(frame)
             for s in (0, 0, 1)]
    np.testing.assert_array_equal(draws[0], draws[1])
    assert np.abs(np.log(draws[0][draws[0] > 0] / 3.0)).mean() > 0.01 and not np.allclose(draws[0], draws[2])
