"""SLAM back-end: the Map, place recognition, verification, pose graph, loop closure and relocalisation."""
import numpy as np
import pytest

from mono_metric import load_config
from mono_metric.backend.place import BinaryVocabulary, proximity_mask
from mono_metric.backend.posegraph import optimise_pose_graph, optimise_pose_graph_sim3
from mono_metric.backend import Backend
from mono_metric.backend.verify import features_depth, information, match_orb, orb_features, register
from mono_metric.cli import main
from mono_metric.datasets.synthetic import SyntheticSequence
from mono_metric.depth.sources import make_depth_source
from mono_metric.errors import InputError
from mono_metric.eval.trajectory import ate
from mono_metric.geometry import inv_se3, make_se3, median_filtered_depth, rotation_angle_rad
from mono_metric.mapping.map import KeyframeFeatures, LoopEdge, Map
from mono_metric.odometry import Odometry
from mono_metric.types import Keyframe

BLOCK = "synthetic:block?frames=240&seed=2&width=620&height=188"


def _yaw(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def test_map_snapshot_round_trip(rng):
    m = Map()
    for k in range(3):
        T = make_se3(_yaw(0.1 * k), np.array([k, 0.0, 0.0]))
        feat = KeyframeFeatures(rng.random((5, 2), dtype=np.float32), rng.integers(0, 255, (5, 32), dtype=np.uint8),
                                rng.random(5), rng.random(8).astype(np.float32), rng.random((4, 6)).astype(np.float16),
                                lost=k == 2)
        m.add_keyframe(Keyframe(10 * k, 1.0 * k, T, rng.random((4 + k, 3)), 2.0), feat if k else None,
                       np.eye(6) * k if k == 1 else None)
        m.add_frame(1.0 * k + 0.5, T @ make_se3(np.eye(3), np.array([0.2, 0, 0])))
    m.loops.append(LoopEdge(0, 2, np.eye(4), np.eye(6) * 3))
    m.odometry_scale[2] = 0.98
    # Keyframe 1's ORB features are not computed yet: its image is kept (and saved) instead, no global descriptor.
    m.features[1].gray = rng.integers(0, 255, (8, 12), dtype=np.uint8)
    m.features[1].global_desc = np.zeros(0, np.float32)
    back = Map.from_state_dict(m.state_dict())
    assert np.array_equal(back.features[1].gray, m.features[1].gray) and back.features[2].gray is None
    assert len(back.features[1].global_desc) == 0 and np.array_equal(back.features[2].global_desc, m.features[2].global_desc)
    assert back.odometry_scale == [None, None, 0.98] and back.scales == [1.0, 1.0, 1.0]
    assert np.allclose(back.poses(), m.poses())
    assert back.features[0] is None and back.features[2].lost and not back.features[1].lost
    assert np.array_equal(back.features[2].desc, m.features[2].desc)
    assert back.odometry_info[0] is None and np.allclose(back.odometry_info[1], np.eye(6))
    assert back.loops[0].b == 2 and np.allclose(back.loops[0].information, np.eye(6) * 3)
    assert np.allclose(back.trajectory().T_world_cam, m.trajectory().T_world_cam)
    # Moving a keyframe moves the frames that follow it and its points.
    T_new = make_se3(np.eye(3), np.array([5.0, 1.0, 0.0]))
    before = m.keyframes[1].xyz_world - m.keyframes[1].T_world_cam[:3, 3]
    m.move_keyframes(T_new[None], first=1)
    assert np.allclose(m.trajectory().T_world_cam[1][:3, 3], [5.2, 1.0, 0.0])
    assert np.allclose(np.linalg.norm(m.keyframes[1].xyz_world - [5, 1, 0], axis=1), np.linalg.norm(before, axis=1))
    # A Sim(3) scale: the keyframe's points and its frames' offsets grow with it, and a snapshot keeps it.
    m.move_keyframes(T_new[None], first=1, scales=np.array([1.1]))
    assert np.allclose(m.trajectory().T_world_cam[1][:3, 3], [5.22, 1.0, 0.0])
    assert np.allclose(np.linalg.norm(m.keyframes[1].xyz_world - [5, 1, 0], axis=1), 1.1 * np.linalg.norm(before, axis=1))
    assert Map.from_state_dict(m.state_dict()).scales == [1.0, 1.1, 1.0]


def _noisy(rng, centres: np.ndarray, bits: int) -> np.ndarray:
    """Copies of (N, 32) uint8 descriptors with ``bits`` random bits flipped in each."""
    unpacked = np.unpackbits(centres, axis=1)
    for row in unpacked:
        row[rng.choice(256, bits, replace=False)] ^= 1
    return np.packbits(unpacked, axis=1)


def test_vocabulary_ranks_the_same_place_first(rng):
    centres = rng.integers(0, 256, (200, 32), dtype=np.uint8)  # the "visual words" of a world
    places = [rng.choice(200, 300) for _ in range(4)]  # each place shows its own mix of them
    desc = [_noisy(rng, centres[p], 10) for p in places]
    voc = BinaryVocabulary(np.concatenate(desc), words=128)
    hists = np.stack([voc.histogram(d) for d in desc])
    for h in hists:
        voc.add_document(h)
    for i, p in enumerate(places):  # a revisit: the same words, other noise
        assert int(np.argmax(voc.scores(voc.histogram(_noisy(rng, centres[p], 10)), hists))) == i


def test_proximity_prior_scales_with_the_path():
    pos = np.array([[0.0, 0, 0], [50, 0, 0], [100, 0, 0], [6, 0, 0]])
    path = np.array([0.0, 50, 100, 200])
    assert proximity_mask(pos, path, 3, 0.01, 3.0).tolist() == [False, False, False, True]  # 3 + 2 m < 6 m
    assert proximity_mask(pos, path, 3, 0.05, 3.0).tolist() == [True, False, False, True]  # 3 + 10 m > 6 m


def _circle(n: int, radius: float = 20.0) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi * (n - 1) / n, n)
    return np.stack([make_se3(_yaw(t + np.pi / 2), radius * np.array([np.cos(t), np.sin(t), 0.0])) for t in a])


def _drifted_circle(n: int, drift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true, drifted) (n, 4, 4) keyframe poses round a circle, each relative pose multiplied by ``drift``."""
    gt = _circle(n)
    est = [gt[0]]
    for k in range(1, n):
        est.append(est[-1] @ inv_se3(gt[k - 1]) @ gt[k] @ drift)
    return gt, np.stack(est)


def _optimise(library: str, est: np.ndarray, info, loops, max_corr_m: float):
    if library == "open3d":
        return optimise_pose_graph(est, info, loops, max_corr_m)
    # The back-end measures each odometry link's relative scale; here the chain has none (ratio 1).
    ratio = [None] + [1.0] * (len(est) - 1)
    poses, scales, kept = optimise_pose_graph_sim3(est, np.ones(len(est)), info, loops, max_corr_m, odometry_scale=ratio)
    return poses, kept


@pytest.mark.parametrize("library", ["open3d", "pypose_sim3"])
def test_pose_graph_closes_a_drifted_loop_and_prunes_a_wrong_one(library):
    gt, est = _drifted_circle(40, make_se3(_yaw(np.radians(0.4)), np.array([0.02, 0, 0])))  # per step: 0.4 deg, 2 cm
    info = [np.eye(6) * 100.0] * 40
    good = LoopEdge(0, 39, inv_se3(gt[0]) @ gt[39], np.eye(6) * 100.0)
    wrong = LoopEdge(5, 30, make_se3(np.eye(3), np.array([3.0, 0, 0])), np.eye(6) * 100.0)
    poses, kept = _optimise(library, est, info, [good, wrong], 0.3)
    assert kept == [True, False]
    err_before = np.linalg.norm(est[:, :3, 3] - gt[:, :3, 3], axis=1).max()
    err_after = np.linalg.norm(poses[:, :3, 3] - gt[:, :3, 3], axis=1).max()
    assert err_before > 3.0 and err_after < err_before / 5
    assert np.allclose(poses[0], est[0], atol=1e-9)  # the first keyframe is the reference
    for R in poses[:, :3, :3]:
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-9)


def test_sim3_pose_graph_rescales_a_segment_the_se3_graph_only_bends():
    # Keyframes 10-29 have depth 5 % too large: their steps are 5 % too long. The measured relative scales
    # of the odometry links say where the scale jumps; the loop says where the end belongs.
    gt, est = _drifted_circle(40, np.eye(4))
    wrong = (np.arange(40) >= 10) & (np.arange(40) < 30)
    for k in range(1, 40):
        est[k, :3, 3] = est[k - 1, :3, 3] + (1.05 if wrong[k - 1] else 1.0) * (gt[k, :3, 3] - gt[k - 1, :3, 3])
    ratio = [None] + [{10: 1 / 1.05, 30: 1.05}.get(k, 1.0) for k in range(1, 40)]  # s_k / s_(k-1)
    info = [np.diag([1e4] * 3 + [100.0] * 3)] * 40
    loop = [LoopEdge(0, 39, inv_se3(gt[0]) @ gt[39], info[0])]
    se3, _ = optimise_pose_graph(est, info, loop, 0.3)  # (with 0.03 its line process prunes the loop)
    # ICP correspondences within 3 cm: the rigid part of each link is certain to about a centimetre.
    sim3, scales, kept = optimise_pose_graph_sim3(est, np.ones(40), info, loop, 0.03, odometry_scale=ratio)
    err = {name: np.sqrt((np.linalg.norm(P[:, :3, 3] - gt[:, :3, 3], axis=1) ** 2).mean())
           for name, P in (("before", est), ("se3", se3), ("sim3", sim3))}
    assert kept == [True] and abs(scales[wrong].mean() - 1 / 1.05) < 0.01 and abs(scales[~wrong].mean() - 1) < 0.01
    assert err["sim3"] < 0.6 * err["se3"] < 0.6 * err["before"], err


def _features(frame, n: int = 1000, with_depth: bool = True) -> KeyframeFeatures:
    import cv2

    gray = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)
    uv, desc = orb_features(gray, n)
    z = features_depth(median_filtered_depth(frame.depth_m), uv, 80.0) if with_depth else np.zeros(len(uv))
    return KeyframeFeatures(uv, desc, z, np.zeros(1, np.float32), np.zeros((1, 1), np.float16))


def test_information_of_clouds_without_pairs_is_zero(rng):
    import open3d as o3d
    import open3d.core as o3c

    a = o3d.t.geometry.PointCloud(o3c.Tensor(rng.random((100, 3)).astype(np.float32)))
    b = o3d.t.geometry.PointCloud(o3c.Tensor(rng.random((100, 3)).astype(np.float32) + 50.0))
    assert np.array_equal(information(a, b, np.eye(4), 0.1), np.zeros((6, 6)))  # a jump while lost: no pairs
    assert np.linalg.eigvalsh(information(a, a, np.eye(4), 0.1)).max() > 0


def test_registration_recovers_a_revisit_and_rejects_another_place():
    seq = SyntheticSequence("synthetic:block?frames=240&seed=2&width=620&height=188")
    near = len(seq) - 60 + int(np.argmin(np.linalg.norm(seq.gt.positions[-60:] - seq.gt.positions[3], axis=1)))
    first, revisit, elsewhere = seq[3], seq[near], seq[110]  # the revisit passes within a metre
    reg = register(seq.camera, _features(revisit), _features(first), 3.0, 40, 0.25, 0.15)
    assert reg.ok
    T_gt = inv_se3(revisit.T_world_cam) @ first.T_world_cam
    D = inv_se3(T_gt) @ reg.T_query_cand
    assert np.linalg.norm(D[:3, 3]) < 0.2 and np.degrees(rotation_angle_rad(D[:3, :3])) < 0.5
    assert not register(seq.camera, _features(elsewhere), _features(first), 3.0, 40, 0.25, 0.15).ok


def _run(spec: str, conf: str, on: bool, frames=None, **backend):
    cfg = load_config(conf, {"depth": {"source": "gt_degraded"},
                             "backend": {"loop_closure": on, "relocalise": on, **backend}})
    src = make_depth_source(cfg.depth)
    seq = SyntheticSequence(spec)
    odo = Odometry(cfg.tracking, seq.camera, max_depth_m=cfg.depth.max_depth_m, backend=cfg.backend)
    frames = [seq[i] for i in range(len(seq))] if frames is None else frames
    results = [odo.track(f.image, f.timestamp, lambda f=f: src(f)) for f in frames]
    odo.finish()
    return seq, odo, results


def _end_to_start_m(gt, est) -> float:
    a = inv_se3(est.T_world_cam[0]) @ est.T_world_cam[-1]
    b = inv_se3(gt.T_world_cam[0]) @ gt.T_world_cam[-1]
    return float(np.linalg.norm(a[:3, 3] - b[:3, 3]))


def test_loop_closure_on_a_block_drive_removes_the_end_to_start_drift():
    seq, off, _ = _run(BLOCK, "configs/synthetic_street.yaml", False)
    _, on, results = _run(BLOCK, "configs/synthetic_street.yaml", True)
    closures = [r.loop for r in results if r.loop is not None]
    assert closures and all(c.matched_keyframe < c.keyframe - 10 for c in closures)
    path = seq.gt.path_length_m()
    e_off, e_on = _end_to_start_m(seq.gt, off.trajectory()), _end_to_start_m(seq.gt, on.trajectory())
    assert e_on < 0.003 * path < e_off
    kf = on.map.keyframes
    for c in closures:  # every closure joins a true revisit (the odometry's world is frame 0's camera)
        a, b = seq.gt.T_world_cam[kf[c.keyframe].index], seq.gt.T_world_cam[kf[c.matched_keyframe].index]
        assert np.linalg.norm(a[:3, 3] - b[:3, 3]) < 10.0
    # The SE(3) pose graph fixes the end but not the scale drift along the way: ATE need not drop, and on this
    # seed it rises 12 % (0.39 -> 0.44 m; docs/backend.md); a wrong or badly weighted closure would do far worse.
    assert ate(seq.gt, on.trajectory()).rmse_m < 1.3 * ate(seq.gt, off.trajectory()).rmse_m
    # Resuming from a snapshot keeps the map (keyframes, loops, features).
    restored = Odometry(on.config, on.camera, max_depth_m=on.max_depth_m, backend=on.backend.config)
    restored.load_state_dict(on.state_dict())
    assert len(restored.map.loops) == len(on.map.loops) > 0
    assert np.allclose(restored.trajectory().T_world_cam, on.trajectory().T_world_cam)


def test_repetitive_facades_close_no_loop_even_without_the_pose_prior():
    # proximity_ratio 10: every older keyframe is a candidate, so verification alone must reject them.
    _, odo, results = _run("synthetic:facades?frames=150&seed=5&width=620&height=188", "configs/synthetic_street.yaml",
                           True, proximity_ratio=10.0)
    assert odo.backend.stats["candidates"] > 0
    assert not any(r.loop for r in results) and not odo.map.loops


def test_relocalisation_after_black_frames_and_a_jump():
    seq = SyntheticSequence("synthetic:room_loop?frames=200&seed=3&width=320&height=240&laps=1.2")
    lap = int(len(seq) / 1.2)
    black = seq[0]
    black = type(black)(0, 0.0, np.zeros_like(black.image), black.camera, np.zeros_like(black.depth_m), black.T_world_cam)
    order = list(range(lap)) + [None] * 3 + list(range(30, 45))  # a lap, black frames, a jump back
    frames = [black if i is None else seq[i] for i in order]
    cfg = load_config("configs/synthetic_room.yaml", {"depth": {"source": "gt_degraded"},
                                                      "backend": {"loop_closure": True, "relocalise": True}})
    src = make_depth_source(cfg.depth)
    odo = Odometry(cfg.tracking, seq.camera, max_depth_m=cfg.depth.max_depth_m, backend=cfg.backend)
    results = [odo.track(f.image, float(k), lambda f=f: src(f)) for k, f in enumerate(frames)]
    assert [r.status for r in results[lap:lap + 3]] == ["lost"] * 3
    after = results[lap + 3:lap + 13]
    first = next(j for j, r in enumerate(after) if r.status == "relocalised")
    T_gt = seq.gt.T_world_cam[0] @ after[first].T_world_cam  # the odometry's world is frame 0's camera
    assert np.linalg.norm(T_gt[:3, 3] - seq.gt.T_world_cam[30 + first][:3, 3]) < 0.05
    assert all(r.status in ("ok", "relocalised") for r in after[first + 1:]), [r.status for r in after]


@pytest.mark.slow
def test_long_block_drive_closes_its_loop():
    spec = "synthetic:block?frames=1500&seed=4&width=620&height=188&laps=2.1"
    seq, odo, results = _run(spec, "configs/synthetic_street.yaml", True)
    assert sum(r.loop is not None for r in results) >= 2
    assert _end_to_start_m(seq.gt, odo.trajectory()) < 0.003 * seq.gt.path_length_m()


def test_backend_config_is_validated():
    with pytest.raises(InputError, match="backend.descriptor"):
        load_config(None, {"backend": {"descriptor": "netvlad"}})
    with pytest.raises(InputError, match="backend.min_inliers"):
        load_config(None, {"backend": {"min_inliers": 2}})
    with pytest.raises(InputError, match="backend.pose_graph"):
        load_config(None, {"backend": {"pose_graph": "g2o"}})
    with pytest.raises(InputError, match="backend.scale_sigma"):
        load_config(None, {"backend": {"scale_sigma": 0.0}})


def test_cli_loop_closure_flag(tmp_path):
    spec = "synthetic:street?frames=25&seed=3&width=620&height=188"
    assert main(["run", spec, "--depth", "gt", "--out", str(tmp_path / "on"), "--quiet", "--loop-closure"]) == 0
    assert (tmp_path / "on" / "backend.json").is_file()
    assert main(["run", spec, "--depth", "gt", "--out", str(tmp_path / "off"), "--quiet", "--no-loop-closure"]) == 0
    assert not (tmp_path / "off" / "backend.json").exists()


def test_two_way_registration_cancels_opposite_depth_scale_errors():
    from dataclasses import replace

    from mono_metric.backend.verify import two_way

    seq = SyntheticSequence("synthetic:room?frames=40&seed=3&width=320&height=240")
    query, cand = _features(seq[10]), _features(seq[0])  # 0.26 m apart

    def poses(s_query: float, s_cand: float):
        q, c = replace(query, depth_m=query.depth_m * s_query), replace(cand, depth_m=cand.depth_m * s_cand)
        fwd = register(seq.camera, q, c, 3.0, 40, 0.25, 0.5)
        assert fwd.ok
        return fwd.T_query_cand, two_way(seq.camera, q, c, fwd.T_query_cand, 3.0, 40, 0.25, 0.5)

    (fwd, both), (fwd_s, both_s) = poses(1.0, 1.0), poses(0.93, 1.07)
    shift = lambda A, B: np.linalg.norm((inv_se3(A) @ B)[:3, 3])
    # The forward pose scales with the candidate's depth (7 % of the baseline, ~2 cm); half-way between it and
    # the reverse one (the query's 7 % too shallow depth) the two errors cancel.
    assert shift(fwd, fwd_s) > 0.01 and shift(both, both_s) < 0.2 * shift(fwd, fwd_s)
    no_depth = replace(query, depth_m=np.zeros_like(query.depth_m))  # the reverse fails: the forward pose stays
    assert np.array_equal(two_way(seq.camera, no_depth, cand, fwd, 3.0, 40, 0.25, 0.5), fwd)


def test_loop_edge_information_falls_with_the_square_of_its_baseline():
    from mono_metric.camera import Camera

    m = Map()
    for k in range(20):  # keyframes 0.5 m apart on a line
        m.add_keyframe(Keyframe(k, float(k), make_se3(np.eye(3), [0.5 * k, 0, 0]), np.zeros((0, 3))))
    backend = Backend(load_config(None).backend, Camera(300, 300, 160, 120, 320, 240), m)
    assert backend._baseline_weight(19, make_se3(np.eye(3), [0.3, 0, 0])) == 1.0  # shorter than a link
    assert np.isclose(backend._baseline_weight(19, make_se3(np.eye(3), [0, 2.0, 0])), (0.5 / 2.0) ** 2)


def test_ratio_test_matches_are_opencvs_knn_matches(rng):
    import cv2
    a = rng.integers(0, 256, (300, 32), dtype=np.uint8)
    b = np.concatenate([_noisy(rng, a[:150], 12), rng.integers(0, 256, (200, 32), dtype=np.uint8)])
    reference = [(p[0].queryIdx, p[0].trainIdx) for p in cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(a, b, k=2)
                 if p[0].distance < 0.8 * p[1].distance]
    pairs = match_orb(a, b)
    assert pairs.tolist() == [list(p) for p in reference] and len(pairs) >= 140
    assert match_orb(a[:1], b).shape == (0, 2)


def test_loop_candidates_far_below_the_best_score_are_not_verified():
    backend = Backend(load_config(None, {"backend": {"descriptor": "thumbnail"}}).backend, None, Map())
    query = np.eye(4, dtype=np.float32)[0]

    def keyframe(score: float) -> KeyframeFeatures:
        glob = np.array([score, np.sqrt(1.0 - score ** 2), 0, 0], np.float32)
        return KeyframeFeatures(np.zeros((0, 2)), np.zeros((0, 32), np.uint8), np.zeros(0), glob, np.zeros((2, 2)))

    database = [keyframe(s) for s in (0.5, 0.9, 0.8, 0.6)]
    q = keyframe(1.0)
    q.global_desc = query
    assert backend._rank(q, database, 3) == [1, 2, 3]
    assert backend._rank(q, database, 3, min_score_ratio=0.75) == [1, 2]  # 0.6 < 0.75 * 0.9
