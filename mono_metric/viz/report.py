"""``report.html``: one self-contained page per run (pictures embedded as base64 data URIs, no scripts,
no external files) with the summary, the trajectory plot, the depth previews, the camera and where its
intrinsics came from, the timings and the metrics."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1150px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.4em 0; } td, th { padding: 0.2em 0.8em; border-bottom: 1px solid #eee;
text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.3em 0; } figure { margin: 0.6em 0; }
figcaption { color: #555; font-size: 0.9em; } .note { color: #555; }
.warning { color: #a00; border: 1px solid #a00; padding: 0.5em; }
"""


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _table(rows: list[tuple[str, object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f'<td class="num">{v:.4g}</td>'
        if isinstance(v, int):
            return f'<td class="num">{v}</td>'
        return f"<td>{html.escape(str(v))}</td>"

    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th>{cell(v)}</tr>" for k, v in rows) + "</table>"


def _label(key: str) -> str:
    """'accuracy_median_m' -> 'accuracy median [m]'."""
    return key[:-2].replace("_", " ") + " [m]" if key.endswith("_m") else key.replace("_", " ")


def _metric_rows(m: dict) -> list[tuple[str, object]]:
    a = m["ate"]
    rows: list[tuple[str, object]] = [("frames evaluated", m["frames"]), ("path length [m]", m["path_length_m"]),
                                      ("ATE RMSE [m] (SE(3) alignment, no scale)", a["rmse_m"]),
                                      ("Sim(3) scale (estimate to truth)", a["sim3_scale"]),
                                      ("estimate / true length", 1.0 / a["sim3_scale"] if a["sim3_scale"] else ""),
                                      ("scale error [%]", 100 * a["scale_error"])]
    if m.get("rpe"):
        rows += [("RPE 1 frame, translation RMSE [cm]", 100 * m["rpe"]["trans_rmse_m"]),
                 ("RPE 1 frame, rotation RMSE [deg]", m["rpe"]["rot_rmse_deg"])]
    for name in ("kitti", "kitti_short"):
        s = m.get(name) or {}
        if s.get("segments"):
            label = "KITTI" if name == "kitti" else "KITTI-short"
            rows += [(f"{label} t_err [%] ({s['segments']} segments)", s["t_err_pct"]),
                     (f"{label} r_err [deg/100 m]", s["r_err_deg_per_100m"])]
    flags = m.get("not_meaningful", {})
    names = {"sim3_scale": "Sim(3) scale", "kitti": "KITTI", "kitti_short": "KITTI-short"}
    rows = [r for r in rows if not any(r[0].startswith(names[k]) for k in flags)
            and not ("sim3_scale" in flags and r[0] in ("estimate / true length", "scale error [%]"))]
    rows += [(f"{names[k]}: not meaningful", why) for k, why in flags.items()]
    return rows


def write_report(out_dir: str | Path, summary: dict) -> Path:
    """Write ``out_dir/report.html`` from a pipeline summary and the pictures already in ``out_dir``.

    Args:
        out_dir: the results folder (``trajectory.png`` and ``depth/*.png`` are embedded when present).
        summary: the dict :meth:`OdometryPipeline.run` returns.

    Returns:
        The path of the report.
    """
    out = Path(out_dir)
    s, cam, t = summary, summary["camera"], summary["timings"]
    parts = [f"<h1>mono_metric run: {html.escape(s['sequence'])}</h1>",
             *(f"<p class='warning'><b>{html.escape(w)}</b></p>" for w in s.get("warnings", [])),
             "<h2>Summary</h2>",
             _table([("frames", s["frames"]), ("keyframes", s["keyframes"]), ("lost frames", s["lost_frames"]),
                     ("lost spans [first, last frame]", ", ".join(f"{a}-{b}" for a, b in s["lost_spans"]) or "none"),
                     ("depth source", s.get("depth_source", "")), ("results folder", s["out_dir"])])]
    if "metrics" in s:
        parts += ["<h2>Metrics (against ground truth)</h2>", _table(_metric_rows(s["metrics"]))]
    else:
        parts += ["<h2>Metrics</h2><p class='note'>No ground truth: no accuracy metrics. The trajectory is in the "
                  "first camera's frame, in metres as estimated.</p>"]
    if (out / "trajectory.png").is_file():
        parts += ["<h2>Trajectory</h2>", _img(out / "trajectory.png", "top and side view; dots: keyframes")]
    previews = sorted((out / "depth").glob("kf_*.png")) if (out / "depth").is_dir() else []
    if previews:
        parts.append("<h2>Keyframe depth</h2><p class='note'>One colour range for the whole run.</p>")
        parts += [_img(p, f"frame {int(p.stem.split('_')[1])}") for p in previews]
    parts += ["<h2>Camera</h2>",
              _table([("fx, fy [px]", f"{cam['fx']:.2f}, {cam['fy']:.2f}"),
                      ("cx, cy [px]", f"{cam['cx']:.2f}, {cam['cy']:.2f}"),
                      ("image size [px]", f"{cam['width']} x {cam['height']}"),
                      ("where the intrinsics came from", cam.get("note", "")),
                      ("undistorted with", cam.get("undistorted_with") or "not undistorted")])]
    if "map" in s:
        parts += ["<h2>Map</h2>", _table([(_label(k), v) for k, v in s["map"].items()])]
    if s.get("frames_note"):
        parts.append(f"<p class='note'>{html.escape(s['frames_note'])}</p>")
    stages = ("load", "depth", "tracking", "fusion", "tracking_features", "tracking_pose", "tracking_ba", "tracking_icp")
    parts += ["<h2>Timings</h2>",
              _table([(f"{k.replace('_', ' ')} [ms per frame]", t[f"{k}_ms_per_frame"]) for k in stages
                      if f"{k}_ms_per_frame" in t]
                     + [("tracking fps (without the depth network)", t["tracking_fps"]),
                        ("overall fps", t["overall_fps"]), ("depth calls per frame", t["depth_calls_per_frame"]),
                        ("total [s]", t["total_s"])])]
    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "report.html")
    recordings = [f for f in files if f.endswith(".rrd")]
    parts += ["<h2>Files</h2><p>" + ", ".join(html.escape(f) for f in files) + "</p>"]
    parts += [f"<p>rerun recording: <code>{html.escape(f)}</code>; open it with <code>rerun {html.escape(f)}</code> "
              "(pip install 'mono_metric[viz]').</p>" for f in recordings]
    parts.append("<details><summary>summary as JSON</summary><pre>"
                 + html.escape(json.dumps({k: v for k, v in s.items() if k != "metrics"}, indent=1, default=str))
                 + "</pre></details>")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(s['sequence'])}"
            f"</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
