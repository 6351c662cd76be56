"""``train`` says what it renders and what it writes to the cache (path and size), with a progress bar."""
import re

import torch

from mono_metric.train.config import train_config_from_dict
from mono_metric.train.trainer import train


def test_train_announces_its_data_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MONO_METRIC_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)
    cfg = train_config_from_dict({
        "steps": 1, "batch_size": 2, "crop_hw": [64, 128], "warmup_steps": 1, "val_every": 1, "checkpoint_every": 1,
        "data": {"synthetic": {"scenes": ["street"], "sequences_per_scene": 1, "frames_per_sequence": 2,
                               "street_width_px": [256, 256]},
                 "val_sequences_per_scene": 1, "val_frames_per_sequence": 1}})
    train(cfg, tmp_path / "a", progress=True)
    first = capsys.readouterr()
    text = first.out + first.err
    assert "rendering street training frames" in text
    cache = tmp_path / "home" / "train_data"
    files = sorted(cache.glob("*.npz"))
    assert len(files) == 2  # training and validation frames
    for f in files:
        assert f"wrote {f} (" in text
    mb = [float(m) for m in re.findall(r"now holds (\d+) MB", text)]
    assert mb and round(sum(f.stat().st_size for f in files) / 1e6) == mb[-1]
    train(cfg, tmp_path / "b", progress=False)
    second = capsys.readouterr()
    assert second.out.count("cached in") + second.err.count("cached in") == 2 and "wrote" not in second.out + second.err
