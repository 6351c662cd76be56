"""Validate a trained ``model.pt`` and make it the shipped embedded weights only if it is not worse.

    python -m mono_metric.train.install MODEL_PT [--dry-run] [--allow-worse]

The candidate must re-load strictly into ``mono_metric_tiny``, have been trained with CSTM_label (the
convention ``Metric3D.predict`` applies to the embedded model) and give finite, positive depth. It and the
shipped ``mono_metric/depth/assets/mono_metric_tiny.pt`` are then evaluated on the synthetic validation
set (street and room, :data:`VAL_SEEDS` x :data:`VAL_FRAMES`, full-size frames, ``predict`` at the default
input size; the test seeds 777-779 of docs/models.md stay untouched). It replaces the shipped file only
when, in each scene, its AbsRel is at most ``1 + TOLERANCE`` times the shipped one's and its delta1 at
most ``D1_TOLERANCE`` lower, its share of pixels with depth <= 0 (dropped by the pipeline) at most
``INVALID_TOLERANCE`` higher, and its metric scale bias (the median over frames of each frame's median
predicted / true depth, minus 1: the odometry's trajectory length follows it) at most ``SCALE_TOLERANCE`` larger
in magnitude; the replaced file is kept beside it as ``mono_metric_tiny.pt.bak-TIMESTAMP``
(outside the package data, which takes ``*.pt``).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from mono_metric.depth.weights import ASSETS_DIR, PACKAGED_WEIGHTS
from mono_metric.errors import InputError

MODEL = "mono_metric_tiny"
SHIPPED = ASSETS_DIR / PACKAGED_WEIGHTS[MODEL]
VAL_SEEDS = (551, 552, 553, 554, 558, 559)
"""Synthetic validation seeds (those the default input size was chosen on); no training uses them."""
VAL_FRAMES = (0, 15, 29)
TOLERANCE = 0.02
D1_TOLERANCE = 0.01
INVALID_TOLERANCE = 0.001
SCALE_TOLERANCE = 0.01


def validation_frames(seeds=VAL_SEEDS, frames=VAL_FRAMES) -> dict[str, list]:
    """{scene: [(image, camera, depth_m)]} of the synthetic validation set (rendered, deterministic)."""
    from mono_metric.datasets.synthetic import SyntheticConfig, SyntheticSequence

    out = {}
    for scene in ("street", "room"):
        out[scene] = []
        for seed in seeds:
            seq = SyntheticSequence(SyntheticConfig(scene=scene, seed=int(seed), frames=max(frames) + 1))
            out[scene] += [(f.image, f.camera, f.depth_m) for f in (seq[i] for i in frames)]
    return out


def evaluate_file(path: str | Path, frames: dict[str, list], max_depth_m: float = 80.0) -> dict[str, dict]:
    """Mean per-frame AbsRel / delta1 per scene of the weights file ``path`` used as the embedded model is.

    Returns:
        {scene: {'abs_rel', 'd1', 'invalid_fraction' (pixels with depth <= 0, which the pipeline drops;
        counted as errors in the metrics), 'frames'}}.

    Raises:
        InputError: the file does not load strictly into ``mono_metric_tiny``, was trained with another
            canonical transform than 'label', or predicts non-finite depth.
    """
    from mono_metric.depth import Metric3D
    from mono_metric.eval.depth import depth_metrics
    from mono_metric.train.trainer import load_trained

    _, cstm = load_trained(path)  # strict; says when the file is not a model.pt of mono-metric train
    if cstm != "label":
        raise InputError(f"{path} was trained with cstm '{cstm}'; the embedded model is used with CSTM_label "
                         "(Metric3D.predict scales by fx / f_c): train it with cstm: label")
    model = Metric3D.from_pretrained(MODEL, weights=path, allow_download=False)
    result = {}
    for scene, items in frames.items():
        ms, invalid, ratios = [], [], []
        for image, camera, gt in items:
            pred = model.predict(image, camera).depth_m
            if not np.isfinite(pred).all():
                raise InputError(f"{path} fails validation: non-finite depth on a {scene} frame")
            invalid.append(float((pred <= 0).mean()))
            valid = (gt > 0) & (gt <= max_depth_m) & (pred > 0)
            ratios.append(float(np.median(pred[valid] / gt[valid])) if valid.any() else 0.0)
            ms.append(depth_metrics(pred, gt, max_depth_m=max_depth_m))  # depth <= 0 is clamped: a large error
        result[scene] = {"abs_rel": float(np.mean([m["abs_rel"] for m in ms])),
                         "d1": float(np.mean([m["d1"] for m in ms])), "invalid_fraction": float(np.mean(invalid)),
                         "scale_bias": float(np.median(ratios)) - 1.0, "frames": len(ms)}
    return result


def worse_reasons(candidate: dict, shipped: dict, tolerance: float = TOLERANCE,
                  d1_tolerance: float = D1_TOLERANCE) -> list[str]:
    """Why ``candidate`` is worse than ``shipped`` (per-scene metrics of :func:`evaluate_file`); [] if not."""
    reasons = []
    for scene, s in shipped.items():
        c = candidate[scene]
        if c["abs_rel"] > s["abs_rel"] * (1 + tolerance):
            reasons.append(f"{scene} AbsRel {c['abs_rel']:.3f} > shipped {s['abs_rel']:.3f} (+{100 * tolerance:g} %)")
        if c["d1"] < s["d1"] - d1_tolerance:
            reasons.append(f"{scene} delta1 {c['d1']:.3f} < shipped {s['d1']:.3f} (-{d1_tolerance:g})")
        if c["invalid_fraction"] > s["invalid_fraction"] + INVALID_TOLERANCE:
            reasons.append(f"{scene} {100 * c['invalid_fraction']:.2f} % of pixels with depth <= 0 (shipped "
                           f"{100 * s['invalid_fraction']:.2f} %)")
        if abs(c["scale_bias"]) > abs(s["scale_bias"]) + SCALE_TOLERANCE:
            reasons.append(f"{scene} metric scale {100 * c['scale_bias']:+.1f} % (shipped {100 * s['scale_bias']:+.1f} %; "
                           f"+{100 * SCALE_TOLERANCE:g} points allowed: the odometry's scale follows it)")
    return reasons


def install(model_pt: str | Path, target: str | Path = SHIPPED, dry_run: bool = False, allow_worse: bool = False,
            seeds=None, frames=None) -> dict:
    """Validate ``model_pt`` and copy it over ``target`` unless it is worse (see the module docstring).

    ``seeds`` / ``frames`` (None: :data:`VAL_SEEDS` / :data:`VAL_FRAMES`) choose the validation frames.

    Returns:
        {'candidate', 'shipped': per-scene metrics, 'worse': reasons, 'installed': bool, 'backup': path or None}.

    Raises:
        InputError: a missing or invalid file, or a worse candidate without ``allow_worse`` (nothing changed).
    """
    model_pt, target = Path(model_pt), Path(target)
    for what, p in (("model", model_pt), ("shipped weights", target)):
        if not p.is_file():
            raise InputError(f"{what} {p} does not exist")
    val = validation_frames(VAL_SEEDS if seeds is None else seeds, VAL_FRAMES if frames is None else frames)
    candidate, shipped = evaluate_file(model_pt, val), evaluate_file(target, val)
    reasons = worse_reasons(candidate, shipped)
    report = {"candidate": candidate, "shipped": shipped, "worse": reasons, "installed": False, "backup": None}
    if reasons and not allow_worse:
        raise InputError(f"{model_pt} is worse than the shipped {target.name} on the synthetic validation set ("
                         + "; ".join(reasons) + "); nothing replaced (--allow-worse overrides)")
    if dry_run:
        return report
    backup = target.with_name(f"{target.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.copy2(target, backup)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(model_pt, tmp)
    os.replace(tmp, target)
    return report | {"installed": True, "backup": str(backup)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mono_metric.train.install", description=__doc__.splitlines()[0])
    p.add_argument("model_pt", help="model.pt written by mono-metric train (mono_metric_tiny, cstm label)")
    p.add_argument("--dry-run", action="store_true", help="validate and compare only; change nothing")
    p.add_argument("--allow-worse", action="store_true", help="install even when worse on the synthetic validation")
    p.add_argument("--target", default=str(SHIPPED), help="the weights file to replace (default: the shipped one)")
    args = p.parse_args(argv)
    try:
        report = install(args.model_pt, args.target, args.dry_run, args.allow_worse)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for scene in report["shipped"]:
        c, s = report["candidate"][scene], report["shipped"][scene]
        print(f"{scene}: AbsRel {s['abs_rel']:.3f} -> {c['abs_rel']:.3f}, delta1 {s['d1']:.3f} -> {c['d1']:.3f}, "
              f"scale bias {100 * s['scale_bias']:+.1f} % -> {100 * c['scale_bias']:+.1f} % ({c['frames']} frames)")
    if report["worse"]:
        print("worse (--allow-worse): " + "; ".join(report["worse"]))
    print(f"replaced {args.target} (backup {report['backup']})" if report["installed"]
          else f"dry run: {args.target} would be replaced; nothing changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
