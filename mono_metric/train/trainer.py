"""The training loop: canonical-space batches, AdamW, checkpoints with resume, validation metrics.

``train(config, out_dir)`` writes to ``out_dir``: ``config.yaml``, ``log.jsonl`` (one JSON record per
logged step: losses, learning rate, and validation metrics when computed), ``checkpoint.pt`` (model,
optimiser, scheduler, step; rewritten atomically) and, at the end, ``model.pt`` (weights only, loadable
with ``Metric3D.from_pretrained(name, weights=...)``). Batches depend only on (seed, step), so a
resumed run sees the same batches as an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mono_metric.depth.canonical import IMAGENET_MEAN_255
from mono_metric.depth.metric3d.model import Metric3D
from mono_metric.depth.weights import cache_dir, load_into, load_state_dict, resolve_weights
from mono_metric.errors import InputError
from mono_metric.eval.depth import depth_metrics
from mono_metric.outputs import write_json
from mono_metric.train.config import PRETRAINED, TrainConfig
from mono_metric.train.data import (Sample, canonical_view, load_samples, make_batch, render_synthetic,
                                    samples_from_entry, save_samples, to_network_input)
from mono_metric.train.losses import total_loss

VAL_SEED_OFFSET = 100000


def _cached(key: dict, build, what: str = "training data") -> list[Sample]:
    """Samples from the cache file keyed by ``key`` (rendering is deterministic), built when missing.

    Says which file it reads or writes, and its size (the cache under ``$MONO_METRIC_HOME/train_data`` can
    reach hundreds of MB; delete the folder to reclaim it)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "train_data" / f"{digest}.npz"
    if path.is_file():
        tqdm.write(f"{what}: cached in {path} ({path.stat().st_size / 1e6:.0f} MB)")
    else:
        tqdm.write(f"{what}: preparing; it is cached for later runs in {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        save_samples(build(), tmp)
        os.replace(tmp, path)
        total = sum(p.stat().st_size for p in path.parent.glob("*.npz"))
        tqdm.write(f"{what}: wrote {path} ({path.stat().st_size / 1e6:.0f} MB; the cache {path.parent} now holds "
                   f"{total / 1e6:.0f} MB)")
    return load_samples(path)  # also after building: the first run sees the same (float16) labels


def synthetic_samples(cfg, val: bool = False, frames: int | None = None, sequences: int | None = None,
                      fixed_hfov: float | None = None, progress: bool = False) -> list[Sample]:
    """Training (or held-out validation) frames of a :class:`SyntheticDataConfig` (cached on disk)."""
    out = []
    for k, scene in enumerate(cfg.scenes):
        n = sequences if sequences is not None else cfg.sequences_per_scene
        first = cfg.seed + (VAL_SEED_OFFSET if val else 0) + 1000 * k
        widths = cfg.street_width_px if scene == "street" else cfg.room_width_px
        key = dict(scene=scene, seeds=[first, n], frames=frames or cfg.frames_per_sequence, hfov=list(cfg.hfov_deg),
                   widths=list(widths), fixed_hfov=fixed_hfov, version=1)
        if list(cfg.realism) != ["off"]:  # keeps the keys (and caches) of plain renders unchanged
            key["realism"] = list(cfg.realism)
        rng = np.random.default_rng([first, 7])
        what = f"{'validation' if val else 'training'} data ({scene}, {n} sequences x {key['frames']} frames)"
        out += _cached(key, lambda: render_synthetic(scene, range(first, first + n), key["frames"], cfg.hfov_deg,
                                                     widths, rng, fixed_hfov, progress=progress,
                                                     realism=tuple(cfg.realism)), what)
    return out


def batch_crop(samples: list[Sample], crop_hw) -> tuple[int, int]:
    """``crop_hw`` shrunk to multiples of 32 that fit every image (one size: groups mix in a batch)."""
    hs = min(s.image.shape[0] for s in samples)
    ws = min(s.image.shape[1] for s in samples)
    return max(32, min(crop_hw[0], hs // 32 * 32)), max(32, min(crop_hw[1], ws // 32 * 32))


def draw_batch(by_group: dict[str, list[Sample]], batch_size: int, rng: np.random.Generator) -> list[Sample]:
    """``batch_size`` samples, the groups (e.g. street, room) in equal shares: mixed batches keep the
    BatchNorm statistics of training equal to the running ones used at inference."""
    groups = sorted(by_group)
    out = []
    for k in range(batch_size):
        pool = by_group[groups[k % len(groups)]]
        out.append(pool[int(rng.integers(len(pool)))])
    return out


@torch.inference_mode()
def predict_metric(model: Metric3D, sample: Sample, cstm: str) -> tuple[np.ndarray, np.ndarray]:
    """Whole-image metric prediction of a model trained in mode ``cstm``, on the mode's view.

    Returns:
        (pred_m, gt_m) on the same grid (the zoomed one for 'image'); gt 0 where invalid.
    """
    img, label, _, factor = canonical_view(sample, cstm, model.spec.canonical_focal_px)
    h, w = label.shape
    H, W = math.ceil(h / 32) * 32, math.ceil(w / 32) * 32
    top, left = (H - h) // 2, (W - w) // 2
    padded = np.empty((H, W, 3), np.uint8)
    padded[:] = np.array(IMAGENET_MEAN_255, np.uint8)
    padded[top:top + h, left:left + w] = img
    x = to_network_input(padded[None]).to(model.device)
    pred = model(x)["depth"][0, 0, top:top + h, left:left + w].float().cpu().numpy()
    return pred * factor, label * factor


def evaluate(model: Metric3D, samples: list[Sample], cstm: str, max_depth_m: float) -> dict[str, dict[str, float]]:
    """Mean per-frame depth metrics (abs_rel, d1, rmse) per sample group, and over all frames ('all')."""
    was_training = model.training
    model.eval()
    per_group: dict[str, list[dict]] = {}
    for s in samples:
        pred, gt = predict_metric(model, s, cstm)
        m = depth_metrics(pred, gt, max_depth_m=max_depth_m)
        per_group.setdefault(s.group, []).append(m)
        per_group.setdefault("all", []).append(m)
    model.train(was_training)
    return {g: {k: float(np.mean([m[k] for m in ms])) for k in ("abs_rel", "d1", "rmse")} | {"frames": len(ms)}
            for g, ms in per_group.items()}


def _lr_factor(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def export_weights(model: Metric3D, path: str | Path, cstm: str, half: bool = True) -> Path:
    """Write a weights-only file (float16 floats when ``half``) for ``Metric3D.from_pretrained``."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    path = Path(path)
    _atomic_save({"model_state_dict": state, "model_name": model.name, "cstm": cstm,
                  "canonical_focal_px": float(model.spec.canonical_focal_px)}, path)
    return path


def check_resume_checkpoint(path: str | Path, cfg: TrainConfig, device: str = "cpu") -> dict | None:
    """The checkpoint to resume from, checked before any data is prepared; None when there is none yet.

    Raises:
        InputError: not a readable weights-only checkpoint of this trainer (truncated, pickled objects,
            a ``model.pt`` copied in its place) or of another model.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for corrupt or unsafe files
        raise InputError(f"cannot resume from {path}: it is truncated, corrupt or holds pickled objects "
                         f"({type(err).__name__}); remove it (or use --overwrite) to train from the start") from err
    keys = ("model_state_dict", "optimizer_state_dict", "scheduler_state_dict", "step")
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in keys):
        raise InputError(f"cannot resume from {path}: it is not a checkpoint written by mono-metric train (a model.pt "
                         "holds weights only); use --overwrite to train from the start")
    if ckpt.get("model_name") != cfg.model:
        raise InputError(f"{path} belongs to model {ckpt.get('model_name')!r}, not {cfg.model!r}; "
                         "use another --out or drop --resume")
    return ckpt


def _seed_everything(seed: int) -> None:
    """Seed torch and make its CPU kernels deterministic (see docs/reliability.md)."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _trim_log(log_path: Path, step: int) -> None:
    """Keep only the log records up to ``step`` (a resumed run recomputes and logs the later ones)."""
    if not log_path.is_file():
        return
    keep = []
    for line in log_path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            break  # a line cut by a kill: drop it and what follows
    log_path.write_text("".join(ln + "\n" for ln in keep))


class TrainMetrics(dict):
    """Validation metrics per group (``{group: {abs_rel, d1, rmse, frames}}``) of a :func:`train` call.

    Attributes:
        stopped_at_step: the step a ``max_minutes`` budget stopped at (checkpoint written, no ``model.pt``
            yet: resume to continue); None when training reached ``cfg.steps``.
        model_check: what :func:`check_model_file` found in the final ``model.pt`` (None when stopped).
    """

    def __init__(self, metrics: dict, stopped_at_step: int | None = None, model_check: dict | None = None):
        super().__init__(metrics)
        self.stopped_at_step, self.model_check = stopped_at_step, model_check


def check_model_file(path: str | Path, sample: Sample, cstm: str, model_name: str) -> dict:
    """Validate a written ``model.pt``: strict re-load, finite and positive depth on ``sample``'s whole image.

    Returns:
        {'model', 'cstm', 'image_hw', 'min_m', 'median_m', 'max_m'} of the prediction.

    Raises:
        InputError: the file does not re-load strictly into ``model_name``, or its depth is not finite and
            positive everywhere.
    """
    model, file_cstm = load_trained(path)
    if model.name != model_name or file_cstm != cstm:
        raise InputError(f"{path} holds {model.name} ({file_cstm}), expected {model_name} ({cstm})")
    pred, _ = predict_metric(model, sample, cstm)
    if pred.shape != sample.depth_m.shape or not np.isfinite(pred).all() or not (pred > 0).all():
        bad = int((~np.isfinite(pred) | (pred <= 0)).sum()) if pred.shape == sample.depth_m.shape else -1
        raise InputError(f"{path} fails validation: depth of shape {pred.shape} on a {sample.depth_m.shape} image "
                         f"with {bad} non-finite or non-positive pixels; the training diverged (lower lr)")
    return {"model": model_name, "cstm": cstm, "image_hw": list(pred.shape), "min_m": float(pred.min()),
            "median_m": float(np.median(pred)), "max_m": float(pred.max())}


def _save_checkpoint(model, opt, sched, done: int, cfg: TrainConfig, path: Path) -> None:
    _atomic_save({"model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
                  "scheduler_state_dict": sched.state_dict(), "step": done, "model_name": cfg.model,
                  "cstm": cfg.cstm, "torch_rng_state": torch.get_rng_state(),
                  "threads": torch.get_num_threads()}, path)


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, progress: bool = True,
          device: str = "cpu", max_minutes: float | None = None) -> TrainMetrics:
    """Train (or fine-tune) ``cfg.model``; returns the final validation metrics.

    ``max_minutes`` bounds this call's wall time (data preparation included): once spent, the step in
    progress finishes, a checkpoint is written and the call returns with ``stopped_at_step`` set; a later
    ``resume=True`` call continues exactly where it stopped. At the end ``model.pt`` is written to a
    temporary file, checked by :func:`check_model_file` and only then renamed; ``val_metrics.json``
    (metrics per group plus ``model_check``) is written next to it.

    Deterministic on CPU for a given config, seed and thread count: batches depend on (seed, step), the
    torch RNG state is saved in the checkpoint, so a resumed run repeats an uninterrupted one.

    Raises:
        InputError: unwritable ``out_dir``, a checkpoint that cannot be resumed, an earlier run in
            ``out_dir`` without ``resume``, or data without depth.
    """
    t_call = time.perf_counter()
    if max_minutes is not None and not max_minutes > 0:
        raise InputError(f"--max-minutes must be > 0, got {max_minutes}")
    cfg.check_files()
    out = Path(out_dir)
    ckpt_path, log_path = out / "checkpoint.pt", out / "log.jsonl"
    ckpt = check_resume_checkpoint(ckpt_path, cfg, device) if resume else None
    if not resume and (ckpt_path.exists() or (out / "model.pt").exists()):
        raise InputError(f"{out} holds an earlier training run; resume it, or choose another output folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.yaml")
    except OSError as err:
        raise InputError(f"cannot write to output directory {out}: {err.strerror}; choose another --out") from err
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    _seed_everything(cfg.seed)
    model = Metric3D.build(cfg.model).to(device)
    if cfg.init_weights:
        given = None if cfg.init_weights == PRETRAINED else cfg.init_weights
        load_into(model, resolve_weights(cfg.model, given), model_name=cfg.model)
    model.train()

    samples = (synthetic_samples(cfg.data.synthetic, progress=progress) if cfg.data.synthetic.sequences_per_scene
               else [])
    for i, entry in enumerate(cfg.data.sequences):
        samples += samples_from_entry(entry, f"data.sequences[{i}]", progress=progress)
    val = (synthetic_samples(cfg.data.synthetic, val=True, frames=cfg.data.val_frames_per_sequence,
                             sequences=cfg.data.val_sequences_per_scene, progress=progress)
           if cfg.data.val_sequences_per_scene else [])
    for i, entry in enumerate(cfg.data.val_sequences):
        val += samples_from_entry(entry, f"data.val_sequences[{i}]", progress=progress)
    crop = batch_crop(samples, cfg.crop_hw)
    by_group: dict[str, list[Sample]] = {}
    for s in samples:
        by_group.setdefault(s.group, []).append(s)

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg))
    start = 0
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model_state_dict"])
            opt.load_state_dict(ckpt["optimizer_state_dict"])
            sched.load_state_dict(ckpt["scheduler_state_dict"])
            if "torch_rng_state" in ckpt:
                torch.set_rng_state(ckpt["torch_rng_state"].cpu())
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            raise InputError(f"cannot resume from {ckpt_path}: it does not fit this config ({type(err).__name__}); "
                             "use the config it was trained with, or --overwrite") from err
        start = int(ckpt["step"])
        _trim_log(log_path, start)
        if ckpt.get("threads", torch.get_num_threads()) != torch.get_num_threads():
            tqdm.write(f"warning: resuming with {torch.get_num_threads()} threads; {ckpt_path} was written with "
                       f"{ckpt['threads']}: the result may differ from an uninterrupted run (set threads: in the "
                       "config)")
    elif log_path.exists():
        log_path.unlink()

    metrics: dict = {}
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress, desc="train",
               dynamic_ncols=True)
    t0 = time.perf_counter()
    for step in bar:
        rng = np.random.default_rng([cfg.seed, step])
        batch = make_batch(draw_batch(by_group, cfg.batch_size, rng), crop, cfg.cstm, model.spec.canonical_focal_px,
                           rng, cfg.data.max_depth_m)
        batch = {k: v.to(device) for k, v in batch.items()}
        pred = model(batch["image"])["depth"]
        if pred.shape[-2:] != batch["depth"].shape[-2:]:
            pred = F.interpolate(pred, size=batch["depth"].shape[-2:], mode="bilinear", align_corners=False)
        gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + step)
        loss, terms = total_loss(pred, batch["depth"], batch["mask"], batch["K"], cfg.loss, generator=gen)
        if not torch.isfinite(loss):
            raise InputError(f"training loss became {float(loss)} at step {step}; lower lr (now {cfg.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        done = step + 1
        record = {"step": done, "loss": float(loss.detach()), **terms, "lr": sched.get_last_lr()[0],
                  "elapsed_s": time.perf_counter() - t0}
        if val and (done % cfg.val_every == 0 or done == cfg.steps):
            metrics = evaluate(model, val, cfg.cstm, cfg.data.max_depth_m)
            record["val"] = metrics
            bar.set_postfix(abs_rel=f"{metrics['all']['abs_rel']:.3f}")
        if done % 10 == 0 or "val" in record or done == cfg.steps:
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            bar.set_postfix(loss=f"{record['loss']:.3f}", **({"abs_rel": f"{metrics['all']['abs_rel']:.3f}"}
                                                             if metrics else {}))
        saved = done % cfg.checkpoint_every == 0 or done == cfg.steps
        if saved:
            _save_checkpoint(model, opt, sched, done, cfg, ckpt_path)
        if max_minutes is not None and done < cfg.steps and time.perf_counter() - t_call >= 60.0 * max_minutes:
            if not saved:
                _save_checkpoint(model, opt, sched, done, cfg, ckpt_path)
            bar.close()
            tqdm.write(f"stopped after {max_minutes:g} min at step {done} of {cfg.steps}; checkpoint {ckpt_path}; "
                       "continue with --resume")
            return TrainMetrics(metrics, stopped_at_step=done)
    tmp = export_weights(model, out / "model.pt.tmp", cfg.cstm)
    check = check_model_file(tmp, val[0] if val else samples[0], cfg.cstm, cfg.model)
    os.replace(tmp, out / "model.pt")
    if not metrics and val:
        metrics = evaluate(model, val, cfg.cstm, cfg.data.max_depth_m)
    write_json(out / "val_metrics.json", {**metrics, "model_check": check}, "no valid validation pixels")
    return TrainMetrics(metrics, model_check=check)


def load_trained(path: str | Path, device: str = "cpu") -> tuple[Metric3D, str]:
    """A model written by :func:`export_weights` and its canonical transform mode."""
    try:
        meta = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for corrupt or unsafe files
        raise InputError(f"cannot read {path}: truncated, corrupt or not a weights-only file "
                         f"({type(err).__name__})") from err
    if not isinstance(meta, dict) or "model_name" not in meta:
        raise InputError(f"{path} is not a model.pt written by mono-metric train")
    model = Metric3D.build(meta["model_name"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in load_state_dict(path).items()})
    return model.to(device).eval(), str(meta.get("cstm", "label"))
