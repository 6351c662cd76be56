"""Training: data in canonical space, config validation, the loop with resume, and the embedded model."""
import json

import numpy as np
import pytest
import torch

from mono_metric.camera import Camera
from mono_metric.datasets.synthetic import SyntheticConfig, SyntheticSequence
from mono_metric.depth import Metric3D
from mono_metric.depth.weights import load_state_dict
from mono_metric.errors import InputError
from mono_metric.eval.depth import depth_metrics
from mono_metric.train.config import train_config_from_dict
from mono_metric.train.data import canonical_view, hfov_to_fx, image_effects, make_batch, render_synthetic
from mono_metric.train.trainer import batch_crop, draw_batch, load_trained, train


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    return render_synthetic("street", [3], 2, (60.0, 60.0), (256, 256), rng) + \
        render_synthetic("room", [4], 2, (70.0, 70.0), (160, 160), rng)


def test_render_synthetic_uses_the_drawn_field_of_view(samples):
    street = [s for s in samples if s.group == "street"]
    assert len(street) == 2 and street[0].image.shape == (78, 256, 3)
    assert street[0].camera.fx == pytest.approx(hfov_to_fx(256, 60.0))
    assert hfov_to_fx(200, 90.0) == pytest.approx(100.0)
    with pytest.raises(InputError, match="field of view"):
        hfov_to_fx(100, 190.0)


def test_canonical_views(samples):
    s = samples[0]
    img, label, cam, factor = canonical_view(s, "label", 300.0)
    np.testing.assert_allclose(label, s.depth_m * 300.0 / s.camera.fx, rtol=1e-6)
    np.testing.assert_allclose(label * factor, s.depth_m, rtol=1e-5)
    img, label, cam, factor = canonical_view(s, "image", 300.0)
    assert cam.fx == 300.0 and factor == 1.0 and img.shape == s.image.shape
    img, label, cam, factor = canonical_view(s, "none", 300.0)
    assert label is s.depth_m and factor == 1.0
    with pytest.raises(InputError, match="canonical transform"):
        canonical_view(s, "zoom", 300.0)


def test_make_batch_crops_and_intrinsics(samples):
    street = [s for s in samples if s.group == "street"]
    rng = np.random.default_rng(1)
    b = make_batch(street, (64, 128), "label", 300.0, rng, max_depth_m=80.0, augment=False)
    assert b["image"].shape == (2, 3, 64, 128) and b["depth"].shape == (2, 1, 64, 128)
    assert b["mask"].dtype == torch.bool and b["mask"].any()
    # Centre crop: principal point shifts by the crop offset; labels are canonical depth.
    cam = street[0].camera
    y0, x0 = (78 - 64) // 2, (256 - 128) // 2
    assert b["K"][0, 0, 2].item() == pytest.approx(cam.cx - x0)
    assert b["K"][0, 1, 2].item() == pytest.approx(cam.cy - y0)
    np.testing.assert_allclose(b["depth"][0, 0].numpy(), street[0].depth_m[y0:y0 + 64, x0:x0 + 128] * 300.0 / cam.fx,
                               rtol=1e-6)
    # Crops larger than the image are padded with invalid depth.
    b = make_batch(street[:1], (96, 288), "none", 300.0, rng, max_depth_m=80.0)
    assert b["image"].shape == (1, 3, 96, 288) and not b["mask"][0, 0, :5].any()


def test_batches_mix_groups_with_one_crop(samples):
    assert batch_crop(samples, [160, 416]) == (64, 160)
    by_group = {"street": [s for s in samples if s.group == "street"], "room": [s for s in samples if s.group == "room"]}
    batch = draw_batch(by_group, 6, np.random.default_rng(0))
    assert [s.group for s in batch].count("street") == 3 and [s.group for s in batch].count("room") == 3


def test_train_config_validation():
    cfg = train_config_from_dict({"steps": 5, "loss": {"vnl": 0.0}})
    assert cfg.steps == 5 and cfg.loss.vnl == 0.0
    for bad, key in (({"cstm": "labels"}, "cstm"), ({"data": {"synthetic": {"hfov_deg": [90, 40]}}}, "hfov_deg"),
                     ({"loss": {"silog": -1.0}}, "loss.silog"), ({"crop_hw": [160]}, "crop_hw"),
                     ({"optimizer": "sgd"}, "optimizer"), ({"model": "unet"}, "model"),
                     ({"data": {"synthetic": {"sequences_per_scene": 0}}}, "no training frames"),
                     ({"data": {"synthetic": {"realism": ["kinect"]}}}, "data.synthetic.realism"),
                     ({"data": {"synthetic": {"realism": [False, "kitti"]}}}, "quote 'off'")):
        with pytest.raises(InputError, match=key):
            train_config_from_dict(bad)


def test_training_realism_changes_the_image_and_keeps_exact_labels():
    """A preset's camera effects reach the training images; its depth-sensor effects never reach the labels."""
    plain = render_synthetic("room", [4], 2, (70.0, 70.0), (160, 160), np.random.default_rng(0))
    tum = render_synthetic("room", [4], 2, (70.0, 70.0), (160, 160), np.random.default_rng(0), realism=("tum",))
    for a, b in zip(plain, tum):
        assert np.array_equal(a.depth_m > 0, b.depth_m > 0)  # no sensor holes or range limits
        # the rolling shutter's exact depth (each row at its own pose), no sensor noise or disparity steps
        rel = np.abs(b.depth_m - a.depth_m)[a.depth_m > 0] / a.depth_m[a.depth_m > 0]
        assert 0 < np.median(rel) < 0.02
        assert np.abs(a.image.astype(float) - b.image.astype(float)).mean() > 2.0
    effects = image_effects("tum")
    assert effects.readout_ms == 25.0 and effects.exposure_ms == 12.0 and not effects.depth_enabled
    mixed = render_synthetic("room", range(4, 10), 1, (70.0, 70.0), (160, 160), np.random.default_rng(0),
                             realism=("off", "phone"))
    seqs = [render_synthetic("room", [k], 1, (70.0, 70.0), (160, 160), np.random.default_rng(0))[0] for k in range(4, 10)]
    same = [np.array_equal(m.image, q.image) for m, q in zip(mixed, seqs)]
    assert 0 < sum(same) < len(same)  # one preset drawn per sequence: some plain, some 'phone'


def _tiny_cfg(steps: int, cstm: str = "label"):
    return train_config_from_dict({
        "steps": steps, "batch_size": 2, "crop_hw": [64, 128], "warmup_steps": 2, "val_every": 2,
        "checkpoint_every": 2, "cstm": cstm,
        "data": {"synthetic": {"scenes": ["street"], "sequences_per_scene": 1, "frames_per_sequence": 2,
                               "street_width_px": [256, 256]},
                 "val_sequences_per_scene": 1, "val_frames_per_sequence": 1}})


def test_train_resume_matches_uninterrupted_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MONO_METRIC_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)
    train(_tiny_cfg(4), tmp_path / "full", progress=False)
    train(_tiny_cfg(2), tmp_path / "part", progress=False)
    metrics = train(_tiny_cfg(4), tmp_path / "part", resume=True, progress=False)
    a, b = load_state_dict(tmp_path / "full" / "model.pt"), load_state_dict(tmp_path / "part" / "model.pt")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    log = [json.loads(line) for line in (tmp_path / "part" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 4 and all(np.isfinite(r["loss"]) for r in log)
    assert set(metrics) == {"street", "all"} and np.isfinite(metrics["all"]["abs_rel"])
    model, cstm = load_trained(tmp_path / "part" / "model.pt")
    assert cstm == "label" and model.name == "mono_metric_tiny"


def test_train_image_mode_and_wrong_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("MONO_METRIC_HOME", str(tmp_path / "home"))
    train(_tiny_cfg(2, "image"), tmp_path / "img", progress=False)
    _, cstm = load_trained(tmp_path / "img" / "model.pt")
    assert cstm == "image"
    ckpt = torch.load(tmp_path / "img" / "checkpoint.pt", weights_only=True)
    ckpt["model_name"] = "metric3d_convnext_tiny"
    torch.save(ckpt, tmp_path / "img" / "checkpoint.pt")
    with pytest.raises(InputError, match="belongs to model"):
        train(_tiny_cfg(3, "image"), tmp_path / "img", resume=True, progress=False)


def test_embedded_model_is_metric_on_new_frames():
    """The packaged model loads offline and predicts metric depth on unseen synthetic frames."""
    model = Metric3D.from_pretrained("mono_metric_tiny", allow_download=False)
    # Held-out AbsRel (README): street 0.085, room 0.085 over 9 frames each; these seeds' 3 frames gave
    # street 0.078 and room 0.121 (its hardest seed).
    for scene, seed, bound in (("street", 777, 0.12), ("room", 778, 0.15)):
        seq = SyntheticSequence(SyntheticConfig(scene=scene, seed=seed, frames=30))
        errs = []
        for i in (0, 15, 29):
            f = seq[i]
            pred = model.predict(f.image, f.camera)
            assert pred.depth_m.shape == f.depth_m.shape and np.isfinite(pred.depth_m).all()
            errs.append(depth_metrics(pred.depth_m, f.depth_m, max_depth_m=80.0)["abs_rel"])
        assert np.mean(errs) < bound, (scene, errs)


def test_embedded_model_scale_follows_focal_length():
    """Same image, focal length doubled in the intrinsics: the metric output doubles (CSTM_label)."""
    model = Metric3D.from_pretrained("mono_metric_tiny", allow_download=False)
    f = SyntheticSequence(SyntheticConfig(scene="street", seed=779, frames=1))[0]
    cam2 = Camera(f.camera.fx * 2, f.camera.fy * 2, f.camera.cx, f.camera.cy, f.camera.width, f.camera.height)
    d1, d2 = model.predict(f.image, f.camera).depth_m, model.predict(f.image, cam2).depth_m
    ok = (d1 > 0.5) & (d1 < 50)
    np.testing.assert_allclose(d2[ok] / d1[ok], 2.0, rtol=1e-3)


def test_installer_refuses_a_model_whose_metric_scale_is_biased():
    """A model with better AbsRel but a larger scale bias is refused: the odometry's trajectory length follows the
    depth's scale (a 4 % bias gave a 7 % scale error on the demo)."""
    from mono_metric.train.install import worse_reasons

    shipped = {"street": {"abs_rel": 0.073, "d1": 0.95, "invalid_fraction": 0.0, "scale_bias": 0.01}}
    biased = {"street": {"abs_rel": 0.064, "d1": 0.95, "invalid_fraction": 0.0, "scale_bias": -0.04}}
    fine = {"street": {"abs_rel": 0.064, "d1": 0.95, "invalid_fraction": 0.0, "scale_bias": -0.015}}
    assert [r for r in worse_reasons(biased, shipped) if "metric scale -4.0 %" in r]
    assert worse_reasons(fine, shipped) == []
