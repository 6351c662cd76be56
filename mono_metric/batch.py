"""Many sequences, one pipeline each: Ray tasks when Ray is installed (local or a cluster), else in turn.

``mono-metric batch LIST_OR_GLOB... --out DIR`` writes ``DIR/<name>/`` per sequence (the ordinary
``run`` outputs) and ``DIR/summary.csv`` / ``summary.json`` with one row of metrics per sequence. A
sequence that fails is tried once more; a second failure is recorded in its row (with the error) and
the batch goes on. Ray is an optional extra: ``pip install 'mono_metric[ray]'``.
"""
from __future__ import annotations

import csv
import glob
import importlib.util
import json
import re
from pathlib import Path

from mono_metric.config import Config, config_from_dict
from mono_metric.errors import InputError, expected_message
from mono_metric.outputs import json_safe, output_dir, read_marker, write_json
from mono_metric.resume import has_snapshot

ROW = "row.json"  # a finished sequence's summary row, kept by --resume

FIELDS = ("input", "name", "status", "attempts", "depth", "frames", "keyframes", "lost_frames", "path_m", "ate_m",
          "scale_error_pct", "short_t_err_pct", "tracking_fps", "overall_fps", "depth_calls_per_frame", "out_dir", "error")


def expand_inputs(items: list[str]) -> list[str]:
    """Sequences from paths, globs, ``synthetic:`` specs and list files (``.txt``: one per line, ``#`` comments)."""
    out: list[str] = []
    for item in items:
        if item.startswith("synthetic:"):
            out.append(item)
        elif item.endswith((".txt", ".list")) and Path(item).is_file():
            try:
                lines = [ln.strip() for ln in Path(item).read_bytes().decode("utf-8").splitlines()]
            except UnicodeDecodeError as err:
                raise InputError(f"list file {item} is not text (byte {err.start} is not UTF-8); give one "
                                 "sequence path a line") from err
            out.extend(expand_inputs([ln for ln in lines if ln and not ln.startswith("#")]))
        elif any(c in item for c in "*?["):
            matches = sorted(glob.glob(item))
            if not matches:
                raise InputError(f"the pattern {item!r} matches no file or folder")
            out.extend(matches)
        else:
            out.append(item)
    if not out:
        raise InputError("batch got no sequences; give paths, globs, synthetic: specs or a .txt list")
    return out


def result_names(inputs: list[str]) -> list[str]:
    """A unique folder name per input (file stem or a cleaned spec)."""
    names, seen = [], {}
    for item in inputs:
        base = Path(item).stem if not item.startswith("synthetic:") else item.split(":", 1)[1]
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("_") or "sequence"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return names


def run_one(item: str, name: str, config: dict, out_root: str, load_opts: dict, auto_depth: bool = False,
            resume: bool = False) -> dict:
    """Run the pipeline on one sequence; returns its summary row (raises on failure).

    ``auto_depth``: the depth source is chosen from the sequence as ``mono-metric run`` does without
    ``--config`` (:func:`~mono_metric.depth.sources.default_depth_source`). With ``resume``, a sequence
    that finished keeps its row (``row.json``) and one that was interrupted continues from its snapshot;
    otherwise its folder is cleared first (also between attempts).
    """
    from mono_metric.datasets import load_sequence
    from mono_metric.depth.sources import default_depth_source
    from mono_metric.pipeline import OdometryPipeline

    out_dir = Path(out_root) / name
    mark = read_marker(out_dir)
    if resume and mark is not None and mark.get("state") == "finished" and (out_dir / ROW).is_file():
        row = json.loads((out_dir / ROW).read_text())
        if row.get("input") == item:
            return row
    seq = load_sequence(item, **load_opts)
    if auto_depth:
        config = {**config, "depth": {**config["depth"], "source": default_depth_source(seq)[0], "input_hw": None}}
    keep = resume and has_snapshot(out_dir) and mark is not None
    with output_dir(out_dir, "run", overwrite=not keep, resume=keep):
        summary = OdometryPipeline(seq, config_from_dict(config), out_dir, progress=False, resume=keep).run()
        row = _row(item, name, config, summary, out_dir)
        write_json(out_dir / ROW, row)
    return row


def _row(item: str, name: str, config: dict, summary: dict, out_dir: Path) -> dict:
    t, m = summary["timings"], summary.get("metrics")
    row = {"input": item, "name": name, "status": "ok", "depth": config["depth"]["source"], "frames": summary["frames"], "keyframes": summary["keyframes"],
           "lost_frames": summary["lost_frames"], "tracking_fps": t["tracking_fps"], "overall_fps": t["overall_fps"],
           "depth_calls_per_frame": t["depth_calls_per_frame"], "out_dir": str(out_dir)}
    if m:
        row.update(path_m=m["path_length_m"], ate_m=m["ate"]["rmse_m"], scale_error_pct=100 * m["ate"]["scale_error"],
                   short_t_err_pct=m["kitti_short"]["t_err_pct"])
    return json_safe(row)


def _failed(item: str, name: str, err: BaseException, attempts: int) -> dict:
    text = expected_message(err) or f"{type(err).__name__}: {err}".strip()
    return {"input": item, "name": name, "status": "failed", "attempts": attempts, "error": text.splitlines()[-1]}


def run_batch(inputs: list[str], config: Config, out_dir: str | Path, use_ray: bool | None = None,
              ray_address: str | None = None, cpus_per_task: float = 1.0, gpus_per_task: float = 0.0,
              retries: int = 1, load_opts: dict | None = None, log=print, auto_depth: bool = False,
              resume: bool = False) -> list[dict]:
    """Run every input; returns the summary rows (also written to ``summary.csv``/``summary.json``).

    Args:
        inputs: sequence paths or specs (see :func:`expand_inputs`).
        config: settings shared by all runs.
        out_dir: results root.
        use_ray: True: Ray (error if missing); False: one after another; None: Ray when installed.
        ray_address: address of a running cluster (None: start a local Ray).
        cpus_per_task, gpus_per_task: resources of each Ray task.
        retries: extra attempts of a failed sequence.
        load_opts: passed to ``load_sequence`` (e.g. ``kind``, ``stride``, ``fov_deg``).
        log: where progress lines go.
        auto_depth: choose each sequence's depth source from its data (see :func:`run_one`).
        resume: keep finished sequences' rows and resume interrupted ones (see :func:`run_one`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = result_names(inputs)
    cfg, opts = config.validate().to_dict(), dict(load_opts or {})
    if use_ray is None:
        use_ray = importlib.util.find_spec("ray") is not None
    if use_ray:
        rows = _run_ray(inputs, names, cfg, str(out), opts, ray_address, cpus_per_task, gpus_per_task, retries, log,
                        auto_depth, resume)
    else:
        rows = []
        for item, name in zip(inputs, names):
            for attempt in range(1, retries + 2):
                try:
                    rows.append({**run_one(item, name, cfg, str(out), opts, auto_depth, resume and attempt == 1),
                                 "attempts": attempt})
                    break
                except Exception as err:  # noqa: BLE001 - one bad sequence must not stop the batch
                    log(f"{name}: attempt {attempt} failed: {type(err).__name__}: {err}")
                    if attempt == retries + 1:
                        rows.append(_failed(item, name, err, attempt))
            log(f"{name}: {rows[-1]['status']}")
    write_summary(out, rows)
    return rows


def _run_ray(inputs, names, cfg, out, opts, address, cpus, gpus, retries, log, auto_depth=False,
             resume=False) -> list[dict]:
    try:
        import ray
    except ImportError as err:
        raise InputError("batch --ray needs Ray: pip install 'mono_metric[ray]' (or run without --ray)") from err
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_one)
    try:
        pending = {task.remote(i, n, cfg, out, opts, auto_depth, resume): (i, n, 1) for i, n in zip(inputs, names)}
        done: dict[str, dict] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            item, name, attempt = pending.pop(ready[0])
            try:
                done[name] = {**ray.get(ready[0]), "attempts": attempt}
                log(f"{name}: ok")
            except Exception as err:  # noqa: BLE001 - Ray wraps the task's exception
                cause = getattr(err, "cause", None) or err
                log(f"{name}: attempt {attempt} failed: {type(cause).__name__}: {cause}")
                if attempt <= retries:
                    pending[task.remote(item, name, cfg, out, opts, auto_depth)] = (item, name, attempt + 1)
                else:
                    done[name] = _failed(item, name, cause, attempt)
        return [done[n] for n in names]
    finally:
        if started:
            ray.shutdown()


def write_summary(out: Path, rows: list[dict]) -> None:
    """``summary.json`` (all fields) and ``summary.csv`` (one row per sequence)."""
    write_json(out / "summary.json", rows)
    with open(out / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in FIELDS})
