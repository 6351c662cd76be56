"""Reproducibility of ``train`` on CPU: CPU time with and without deterministic algorithms, and weight
differences between runs with the same and with different thread counts (tiny config, 12 steps).

Usage: ``python benchmarks/train_determinism.py [--steps 12] [--out runs/determinism]``; prints a table
and writes it to OUT/determinism.json. Numbers in docs/reliability.md.
"""
import argparse
import json
import shutil
import time
from pathlib import Path

import torch

import mono_metric.train.trainer as trainer
from mono_metric.depth.weights import load_state_dict
from mono_metric.train.config import train_config_from_dict


def tiny(steps: int):
    return train_config_from_dict({
        "steps": steps, "batch_size": 2, "crop_hw": [64, 128], "warmup_steps": 2, "val_every": steps,
        "checkpoint_every": steps,
        "data": {"synthetic": {"scenes": ["street"], "sequences_per_scene": 1, "frames_per_sequence": 2,
                               "street_width_px": [256, 256]}, "val_sequences_per_scene": 1,
                 "val_frames_per_sequence": 1}})


def run(out: Path, steps: int, threads: int, deterministic: bool):
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    seed_everything = trainer._seed_everything
    trainer._seed_everything = lambda seed: torch.manual_seed(seed)  # keep the flag set above
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.process_time()
    try:
        trainer.train(tiny(steps), out, progress=False)
    finally:
        trainer._seed_everything = seed_everything
    return time.process_time() - t0, load_state_dict(out / "model.pt")


def max_diff(a, b) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--out", default="runs/determinism")
    args = p.parse_args()
    out = Path(args.out)
    run(out / "warm", args.steps, 1, True)  # builds the data cache
    rows = {}
    for det in (True, False):
        rows[f"cpu_s_deterministic_{det}"] = [round(run(out / f"d{det}{i}", args.steps, 1, det)[0], 2) for i in range(2)]
    _, a = run(out / "t1", args.steps, 1, True)
    _, b = run(out / "t2", args.steps, 2, True)
    _, c = run(out / "t2b", args.steps, 2, True)
    rows.update(max_weight_diff_1_vs_2_threads=max_diff(a, b), max_weight_diff_2_vs_2_threads=max_diff(b, c))
    for k, v in rows.items():
        print(f"{k:36s} {v}")
    (out / "determinism.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
