"""Trajectory metrics: ATE after SE(3) alignment (no scale), Sim(3) scale, RPE, KITTI segment errors.

All functions take :class:`~mono_metric.types.Trajectory` or (N, 4, 4) ``T_world_cam`` arrays of equal
length (associated frame by frame) and never modify their inputs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mono_metric.geometry import inv_se3, make_se3, rotation_angle_rad
from mono_metric.types import Trajectory

KITTI_LENGTHS_M = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0)
MIN_SPREAD_M = 0.05
"""Ground-truth positions closer than this (RMS) to their centroid do not fix a Sim(3) scale."""
MAX_SHAPE_ERROR = 0.3
"""Nor do they when the Sim(3)-aligned RMSE exceeds this fraction of their spread (shape lost in noise)."""
MIN_SEGMENT_M = 0.1
"""KITTI-short segments shorter than this measure tracking noise, not drift."""


def _poses(x) -> np.ndarray:
    return x.T_world_cam if isinstance(x, Trajectory) else np.asarray(x, dtype=np.float64)


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares similarity ``dst ~ s * R @ src + t`` (Umeyama 1991).

    Args:
        src, dst: (N, 3) corresponding points, N >= 3 for a unique rotation.
        with_scale: estimate s; otherwise s = 1 (rigid SE(3) alignment).

    Returns:
        R (3, 3), t (3,), s.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 2:
        raise ValueError(f"umeyama needs two (N, 3) arrays with N >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1.0
    R = U @ D @ Vt
    var_s = (xs**2).sum() / len(src)
    s = float(np.trace(np.diag(S) @ D) / var_s) if with_scale and var_s > 0 else 1.0
    t = mu_d - s * R @ mu_s
    return R, t, s


@dataclass
class ATEResult:
    """Absolute trajectory error after rigid alignment of the estimate onto the ground truth.

    Attributes:
        rmse_m, mean_m, median_m, max_m: statistics of position errors in metres (SE(3) aligned).
        sim3_scale: scale of the best Sim(3) alignment (1.0 = perfect metric scale).
        scale_error: |1 - sim3_scale|.
        rmse_sim3_m: position RMSE after Sim(3) alignment (shape error with scale removed).
        T_gt_est: (4, 4) the SE(3) alignment applied.
    """

    rmse_m: float
    mean_m: float
    median_m: float
    max_m: float
    sim3_scale: float
    scale_error: float
    rmse_sim3_m: float
    T_gt_est: np.ndarray

    def as_dict(self) -> dict:
        d = asdict(self)
        d["T_gt_est"] = self.T_gt_est.tolist()
        return d


def ate(gt, est) -> ATEResult:
    """ATE of ``est`` against ``gt`` (same length, associated by index); metric VO is not scale-corrected."""
    P_gt, P_est = _poses(gt)[:, :3, 3], _poses(est)[:, :3, 3]
    if P_gt.shape != P_est.shape:
        raise ValueError(f"trajectories differ in length: gt {len(P_gt)} vs est {len(P_est)}")
    R, t, _ = umeyama(P_est, P_gt, with_scale=False)
    err = np.linalg.norm(P_est @ R.T + t - P_gt, axis=1)
    Rs, ts, s = umeyama(P_est, P_gt, with_scale=True)
    err_sim3 = np.linalg.norm(s * P_est @ Rs.T + ts - P_gt, axis=1)
    return ATEResult(float(np.sqrt((err**2).mean())), float(err.mean()), float(np.median(err)), float(err.max()),
                     s, abs(1.0 - s), float(np.sqrt((err_sim3**2).mean())), make_se3(R, t))


@dataclass
class RPEResult:
    """Relative pose error over frame pairs (i, i + delta), as evo_rpe computes it.

    Attributes:
        trans_rmse_m, trans_mean_m: translation part of the relative error, metres.
        rot_rmse_deg, rot_mean_deg: rotation angle of the relative error, degrees.
        delta: frame offset; pairs: number of pairs.
    """

    trans_rmse_m: float
    trans_mean_m: float
    rot_rmse_deg: float
    rot_mean_deg: float
    delta: int
    pairs: int

    def as_dict(self) -> dict:
        return asdict(self)


def rpe(gt, est, delta: int = 1, all_pairs: bool = False) -> RPEResult:
    """RPE with E_i = (Q_i^-1 Q_{i+d})^-1 (P_i^-1 P_{i+d}) for ground truth Q and estimate P.

    As evo: pairs start at frames 0, d, 2d, ... unless ``all_pairs`` (every frame starts one).
    """
    Q, P = _poses(gt), _poses(est)
    if Q.shape != P.shape:
        raise ValueError(f"trajectories differ in length: gt {len(Q)} vs est {len(P)}")
    if not 1 <= delta < len(Q):
        raise ValueError(f"delta must be in [1, {len(Q) - 1}], got {delta}")
    first = np.arange(0, len(Q) - delta, 1 if all_pairs else delta)
    rel_q = inv_se3(Q[first]) @ Q[first + delta]
    rel_p = inv_se3(P[first]) @ P[first + delta]
    E = inv_se3(rel_q) @ rel_p
    te = np.linalg.norm(E[:, :3, 3], axis=1)
    re = np.degrees(rotation_angle_rad(E[:, :3, :3]))
    return RPEResult(float(np.sqrt((te**2).mean())), float(te.mean()), float(np.sqrt((re**2).mean())),
                     float(re.mean()), delta, len(E))


def relative_rotation_errors_deg(gt, est, delta: int = 1) -> np.ndarray:
    """(N - delta,) angle of (R_gt_i^T R_gt_i+d)^T (R_est_i^T R_est_i+d) for every frame i, degrees.

    The rotation part of the RPE for every pair (not only its RMSE): medians of it compare
    frame-to-frame rotation estimators regardless of their translation.
    """
    Q, P = _poses(gt)[:, :3, :3], _poses(est)[:, :3, :3]
    if Q.shape != P.shape:
        raise ValueError(f"trajectories differ in length: gt {len(Q)} vs est {len(P)}")
    if not 1 <= delta < len(Q):
        raise ValueError(f"delta must be in [1, {len(Q) - 1}], got {delta}")
    rel_q = np.swapaxes(Q[:-delta], 1, 2) @ Q[delta:]
    rel_p = np.swapaxes(P[:-delta], 1, 2) @ P[delta:]
    return np.degrees(rotation_angle_rad(np.swapaxes(rel_q, 1, 2) @ rel_p))


def cumulative_distance_m(T_world_cam: np.ndarray) -> np.ndarray:
    """(N,) distance travelled up to each frame."""
    steps = np.linalg.norm(np.diff(T_world_cam[:, :3, 3], axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


@dataclass
class SegmentResult:
    """KITTI odometry devkit errors: mean over all segments of all lengths.

    Attributes:
        t_err_pct: translation error in percent of segment length.
        r_err_deg_per_100m: rotation error in degrees per 100 m.
        segments: number of segments evaluated (0 when the sequence is too short).
        lengths_m: segment lengths used.
        step_frames: a segment starts every ``step_frames`` frames.
        name: 'kitti' for the official lengths, 'kitti_short' for lengths scaled to the sequence.
    """

    t_err_pct: float
    r_err_deg_per_100m: float
    segments: int
    lengths_m: list[float]
    step_frames: int
    name: str

    def as_dict(self) -> dict:
        return asdict(self)


def kitti_segment_errors(gt, est, lengths_m=KITTI_LENGTHS_M, step_frames: int = 10,
                         name: str = "kitti") -> SegmentResult:
    """The KITTI odometry metric (devkit ``evaluate_odometry``): for each start frame (every
    ``step_frames``) and length L, the first frame more than L metres further along the ground truth;
    errors of the relative pose over that segment divided by L, averaged over all segments."""
    Q, P = _poses(gt), _poses(est)
    if Q.shape != P.shape:
        raise ValueError(f"trajectories differ in length: gt {len(Q)} vs est {len(P)}")
    dist = cumulative_distance_m(Q)
    t_errs, r_errs = [], []
    for first in range(0, len(Q), step_frames):
        for length in lengths_m:
            last = int(np.searchsorted(dist, dist[first] + length, side="right"))
            if last >= len(Q):
                continue
            rel_q = inv_se3(Q[first]) @ Q[last]
            rel_p = inv_se3(P[first]) @ P[last]
            E = inv_se3(rel_p) @ rel_q
            t_errs.append(np.linalg.norm(E[:3, 3]) / length)
            r_errs.append(rotation_angle_rad(E[:3, :3]) / length)
    if not t_errs:
        return SegmentResult(float("nan"), float("nan"), 0, list(map(float, lengths_m)), step_frames, name)
    return SegmentResult(float(np.mean(t_errs) * 100.0), float(np.degrees(np.mean(r_errs)) * 100.0),
                         len(t_errs), list(map(float, lengths_m)), step_frames, name)


def kitti_short_segment_errors(gt, est, step_frames: int = 1) -> SegmentResult:
    """KITTI-style errors for sequences shorter than 800 m: eight segment lengths at 10 %, 20 %, ...,
    80 % of the ground-truth path length, a segment starting every ``step_frames`` frames."""
    total = cumulative_distance_m(_poses(gt))[-1]
    lengths = tuple(float(total * k / 10.0) for k in range(1, 9)) if total > 0 else ()
    return kitti_segment_errors(gt, est, lengths, step_frames, name="kitti_short")


def position_spread_m(T_world_cam: np.ndarray) -> float:
    """RMS distance of the camera centres from their centroid (metres): how far the path spreads out."""
    P = _poses(T_world_cam)[:, :3, 3]
    return float(np.sqrt(((P - P.mean(0)) ** 2).sum(1).mean()))


def meaningless_metrics(metrics: dict) -> dict[str, str]:
    """Metrics of :func:`evaluate_trajectory` that mean nothing on this ground truth, with the reason.

    - ``sim3_scale`` when the ground-truth positions spread less than :data:`MIN_SPREAD_M` (RMS) about
      their centroid: a path of a few centimetres (or a rotation on the spot) does not fix a scale; or
      when the Sim(3)-aligned RMSE is above :data:`MAX_SHAPE_ERROR` of that spread;
    - ``kitti_short`` then too, or when its shortest segment (10 % of the path) is below
      :data:`MIN_SEGMENT_M`: the segment errors are dominated by noise, not drift;
    - ``kitti`` when the path is shorter than its shortest (100 m) segment.
    """
    out = {}
    spread = metrics["spread_m"]
    if spread < MIN_SPREAD_M:
        out["sim3_scale"] = (f"the ground-truth path spreads only {100 * spread:.1f} cm (RMS about its centre; "
                             f"needs {100 * MIN_SPREAD_M:g} cm): too small to fix a scale")
    elif metrics["ate"]["rmse_sim3_m"] > MAX_SHAPE_ERROR * spread:
        out["sim3_scale"] = (f"the shape error after Sim(3) alignment ({100 * metrics['ate']['rmse_sim3_m']:.1f} cm) "
                             f"is over {100 * MAX_SHAPE_ERROR:g} % of the path's spread ({100 * spread:.1f} cm)")
    shortest = 0.1 * metrics["path_length_m"]
    if spread < MIN_SPREAD_M:
        out["kitti_short"] = out["sim3_scale"].replace("to fix a scale", "for drift per metre (rotation on the spot?)")
    elif shortest < MIN_SEGMENT_M:
        out["kitti_short"] = (f"its shortest segment is {100 * shortest:.1f} cm (10 % of a {metrics['path_length_m']:.2f} m "
                              f"path; needs {100 * MIN_SEGMENT_M:g} cm): errors of such segments are noise")
    if not metrics["kitti"]["segments"]:
        out["kitti"] = f"the path ({metrics['path_length_m']:.1f} m) is shorter than the shortest segment (100 m)"
    return out


def evaluate_trajectory(gt: Trajectory, est: Trajectory) -> dict:
    """All trajectory metrics as a JSON-ready dict (ATE, RPE at 1 frame, KITTI and short-KITTI).

    ``spread_m`` is :func:`position_spread_m` of the ground truth; ``not_meaningful`` maps the names of
    metrics that mean nothing on this path to the reason (:func:`meaningless_metrics`).
    """
    metrics = {
        "frames": len(gt),
        "path_length_m": gt.path_length_m(),
        "spread_m": position_spread_m(gt),
        "ate": ate(gt, est).as_dict(),
        "rpe": rpe(gt, est, 1).as_dict() if len(gt) > 1 else None,
        "kitti": kitti_segment_errors(gt, est).as_dict(),
        "kitti_short": kitti_short_segment_errors(gt, est).as_dict(),
    }
    metrics["ate"]["length_factor"] = 1.0 / metrics["ate"]["sim3_scale"] if metrics["ate"]["sim3_scale"] > 0 else None
    metrics["not_meaningful"] = meaningless_metrics(metrics)
    return metrics


def format_metrics(m: dict) -> str:
    """The metrics of ``evaluate_trajectory`` as printed lines; metrics that mean nothing on this path are
    named with the reason instead of a number."""
    a, k, ks = m["ate"], m["kitti"], m["kitti_short"]
    flags = m.get("not_meaningful", {})
    lines = [f"frames {m['frames']}, path {m['path_length_m']:.2f} m",
             f"ATE RMSE (SE3, no scale) {a['rmse_m']:.3f} m"]
    if "sim3_scale" in flags:
        lines[-1] += f" | Sim3 scale not meaningful: {flags['sim3_scale']}"
    else:
        factor = 1.0 / a["sim3_scale"] if a["sim3_scale"] > 0 else float("inf")
        lines[-1] += (f" | Sim3 scale {a['sim3_scale']:.4f}: estimate {factor:.2f}x the true length "
                      f"(scale error {100 * a['scale_error']:.2f} %)")
    if m.get("rpe"):
        r = m["rpe"]
        lines.append(f"RPE (1 frame) {r['trans_rmse_m'] * 100:.2f} cm, {r['rot_rmse_deg']:.3f} deg RMSE")
    for key, name, s in (("kitti", "KITTI", k), ("kitti_short", "KITTI-short", ks)):
        if key in flags:
            lines.append(f"{name}: not meaningful: {flags[key]}")
        elif s["segments"]:
            lines.append(f"{name}: t_err {s['t_err_pct']:.2f} %, r_err {s['r_err_deg_per_100m']:.3f} deg/100 m "
                         f"({s['segments']} segments)")
        else:
            lines.append(f"{name}: sequence shorter than the shortest segment")
    return "\n".join(lines)
