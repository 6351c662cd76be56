"""Batch runs: one pipeline per sequence, a summary table, a failed sequence retried and recorded."""
import csv
import json

import pytest

from mono_metric.batch import expand_inputs, result_names, run_batch
from mono_metric.cli import main
from mono_metric.config import load_config
from mono_metric.errors import InputError

SEQS = ["synthetic:room?seed=1&frames=12&width=320&height=240",
        "synthetic:room?seed=2&frames=12&width=320&height=240"]
BROKEN = "synthetic:room?seed=3&frames=12&nonsense=1"


def _cfg():
    return load_config(None, {"depth": {"source": "gt", "max_depth_m": 10.0}, "mapping": {"enabled": False}})


def test_expand_inputs(tmp_path):
    (tmp_path / "a.mp4").touch()
    (tmp_path / "b.mp4").touch()
    (tmp_path / "list.txt").write_text(f"# my drives\n{tmp_path / 'a.mp4'}\n\n{SEQS[0]}\n")
    assert expand_inputs([str(tmp_path / "*.mp4")]) == [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]
    assert expand_inputs([str(tmp_path / "list.txt")]) == [str(tmp_path / "a.mp4"), SEQS[0]]
    with pytest.raises(InputError, match="matches no"):
        expand_inputs([str(tmp_path / "*.mkv")])
    assert result_names(["x/a.mp4", "y/a.mp4", SEQS[0]]) == ["a", "a_2", "room_seed_1_frames_12_width_320_height_240"]


def test_sequential_batch_retries_and_records_failures(tmp_path):
    lines = []
    rows = run_batch([SEQS[0], BROKEN], _cfg(), tmp_path, use_ray=False, log=lines.append)
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert rows[0]["ate_m"] < 0.05 and rows[0]["attempts"] == 1
    assert rows[1]["attempts"] == 2 and "nonsense" in rows[1]["error"]
    assert sum("attempt" in ln for ln in lines) == 2  # tried twice
    with open(tmp_path / "summary.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["status"] for r in table] == ["ok", "failed"]
    assert (tmp_path / rows[0]["name"] / "trajectory_tum.txt").is_file()


@pytest.mark.slow
def test_ray_batch_cli(tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray extra not installed: pip install 'mono_metric[ray]'")
    out = tmp_path / "batch"
    assert main(["batch", *SEQS, BROKEN, "--ray", "--depth", "gt", "--out", str(out)]) == 0
    rows = json.loads((out / "summary.json").read_text())
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"]
    assert rows[2]["attempts"] == 2 and all(r["ate_m"] < 0.05 for r in rows[:2])
    assert "2 ok, 1 failed" in capsys.readouterr().out
