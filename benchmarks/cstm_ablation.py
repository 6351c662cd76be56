"""The canonical camera space ablation (Metric3D's CSTM table at our scale).

Trains the same small model (``mono_metric_tiny``) three ways -- no canonical transform, CSTM_label,
CSTM_image -- on synthetic street and room frames whose horizontal field of view lies in a training
range, then evaluates metric depth on held-out sequences (new seeds) rendered with fields of view
inside and outside that range. Training and test frames carry the camera effects of the embedded model's
recipe (``--realism``: one preset per sequence among perfect pinhole, KITTI-like and phone-like; labels exact). Prints a Markdown table of AbsRel / delta1 per setting and FOV group
and writes ``results.json`` and ``table.md`` to ``--out``.

    python benchmarks/cstm_ablation.py [--steps 300] [--realism off,kitti,phone] [--threads 1] [--out runs/cstm_ablation]

Training checkpoints are kept: re-running resumes (or just re-evaluates) each setting.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from mono_metric.train.config import train_config_from_dict
from mono_metric.train.trainer import evaluate, load_trained, synthetic_samples, train

TRAIN_HFOV_DEG = [55.0, 75.0]
TEST_HFOV_DEG = (40.0, 65.0, 95.0)
MODES = ("none", "label", "image")


def ablation_config(mode: str, steps: int, realism: list[str], threads: int) -> dict:
    return {
        "model": "mono_metric_tiny", "cstm": mode, "steps": steps, "batch_size": 8, "crop_hw": [128, 320],
        "warmup_steps": 50, "val_every": steps, "checkpoint_every": 50, "seed": 0, "threads": threads,
        "data": {"synthetic": {"scenes": ["street", "room"], "sequences_per_scene": 16, "frames_per_sequence": 20,
                               "hfov_deg": TRAIN_HFOV_DEG, "street_width_px": [448, 544],
                               "room_width_px": [224, 320], "seed": 500, "realism": realism},
                 "val_sequences_per_scene": 1, "val_frames_per_sequence": 4, "max_depth_m": 80.0},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", default="runs/cstm_ablation")
    ap.add_argument("--test-sequences", type=int, default=2, help="held-out sequences per scene and FOV")
    ap.add_argument("--test-frames", type=int, default=5, help="frames per held-out sequence")
    ap.add_argument("--realism", default="off,kitti,phone", help="camera-effect presets, one drawn per sequence")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the training")
    args = ap.parse_args()
    out = Path(args.out)
    realism = args.realism.split(",")
    results: dict = {"train_hfov_deg": TRAIN_HFOV_DEG, "steps": args.steps, "realism": realism, "settings": {}}
    for mode in MODES:
        cfg = train_config_from_dict(ablation_config(mode, args.steps, realism, args.threads))
        print(f"== training cstm={mode} ({args.steps} steps)")
        train(cfg, out / mode, resume=True)
        model, _ = load_trained(out / mode / "model.pt")
        groups = {}
        for hfov in TEST_HFOV_DEG:
            test = synthetic_samples(cfg.data.synthetic, val=True, frames=args.test_frames,
                                     sequences=args.test_sequences, fixed_hfov=hfov)
            groups[f"{hfov:g}"] = evaluate(model, test, mode, cfg.data.max_depth_m)
        results["settings"][mode] = groups

    lo, hi = TRAIN_HFOV_DEG
    head = "| canonical transform | " + " | ".join(
        f"HFOV {h:g} deg ({'inside' if lo <= h <= hi else 'outside'} {lo:g}-{hi:g})" for h in TEST_HFOV_DEG) + " |"
    lines = [head, "|" + "---|" * (len(TEST_HFOV_DEG) + 1)]
    names = {"none": "none", "label": "CSTM_label", "image": "CSTM_image"}
    for mode in MODES:
        cells = [f"{g['all']['abs_rel']:.3f} / {g['all']['d1']:.3f}" for g in results["settings"][mode].values()]
        lines.append(f"| {names[mode]} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    frames = next(iter(results["settings"]["label"].values()))["all"]["frames"]
    note = (f"AbsRel / delta1 of metric depth, mean over {frames} held-out frames per column "
            f"(street and room, new seeds); training FOV {lo:g}-{hi:g} deg, {args.steps} steps per setting; "
            f"camera effects {'/'.join(realism)}, one per sequence.")
    print(table)
    print(note)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "table.md").write_text(table + "\n\n" + note + "\n")
    per_scene = {m: {h: {s: round(v["abs_rel"], 3) for s, v in g.items() if s != "all"}
                     for h, g in results["settings"][m].items()} for m in MODES}
    print("AbsRel per scene:", json.dumps(per_scene))


if __name__ == "__main__":
    main()
