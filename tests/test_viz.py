"""What a person looks at: the rerun recording (read back with rerun's own reader), trajectory.png,
depth previews, T_world_first_cam and report.html (in headless Chromium, slow)."""
import base64
import json
import re
import shutil
import subprocess

import cv2
import numpy as np
import open3d as o3d
import pytest

from mono_metric.cli import main
from mono_metric.eval.plot import depth_range_m, plot_trajectory, save_depth_preview, up_axis
from mono_metric.geometry import make_se3, quat_to_rotmat
from mono_metric.types import Trajectory

SPEC = "synthetic:room?seed=2&frames=12&width=320&height=240"


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory):
    """One small run with exact depth and a recording (default config: no local BA, so the poses as tracked
    are the final ones)."""
    out = tmp_path_factory.mktemp("viz") / "run"
    assert main(["run", SPEC, "--out", str(out), "--quiet", "--depth", "gt", "--rerun", str(out / "run.rrd")]) == 0
    return out


def _strip(table, column="LineStrips3D:strips", row=-1) -> np.ndarray:
    return np.array(table.column(column)[row].as_py()[0], dtype=np.float64)


def test_recording_read_back_matches_the_run(recorded_run):
    from mono_metric.viz import read_recording

    out = recorded_run
    tables = read_recording(out / "run.rrd")
    for entity in ("/world", "/world/camera", "/world/camera/image", "/world/camera/image/rgb",
                   "/world/camera/image/features", "/keyframe/depth", "/keyframe/depth_scale", "/world/trajectory",
                   "/world/keyframes", "/world/ground_truth", "/world/mesh", "/plots/inliers", "/info"):
        assert entity in tables, entity
    traj = Trajectory.read_tum(out / "trajectory_tum.txt")
    keyframes = Trajectory.read_tum(out / "keyframes_tum.txt")
    cam = tables["/world/camera"]
    assert cam.column("frame").to_pylist() == list(range(12))
    for name in ("/world/camera/image/rgb", "/world/camera/image/features", "/plots/inliers"):
        assert tables[name].column("frame").to_pylist() == list(range(12)), name
    # Every logged pose is the trajectory file's (float32 in the recording; rerun stores 3x3 column-major).
    t = np.array(cam.column("Transform3D:translation").to_pylist(), dtype=np.float64).reshape(12, 3)
    R = np.array(cam.column("Transform3D:mat3x3").to_pylist(), dtype=np.float64).reshape(12, 3, 3).transpose(0, 2, 1)
    np.testing.assert_allclose(t, traj.positions, atol=1e-5)
    np.testing.assert_allclose(R, traj.T_world_cam[:, :3, :3], atol=1e-5)
    assert np.abs(traj.positions[-1]).max() > 0.1  # the camera moved: the comparison is not of zeros
    # Keyframes: one depth image each over one colour range, one point set each; the final trajectory line.
    kf_frames = tables["/keyframe/depth"].column("frame").to_pylist()
    assert len(kf_frames) == len(keyframes) >= 2
    ranges = tables["/keyframe/depth"].column("EncodedDepthImage:depth_range").to_pylist()
    assert all(r == ranges[0] for r in ranges) and ranges[0][0][1] > 1000.0  # millimetres
    # The first keyframe's depth decodes to the exact depth of frame 0 (millimetres).
    from mono_metric import load_sequence

    blob = tables["/keyframe/depth"].column("EncodedDepthImage:blob")[0].as_py()[0]
    mm = cv2.imdecode(np.frombuffer(bytes(blob), np.uint8), cv2.IMREAD_UNCHANGED)
    exact = load_sequence(SPEC)[0].depth_m
    assert mm.dtype == np.uint16 and mm.shape == exact.shape
    ok = (mm > 0) & (exact < 10.0)
    assert ok.mean() > 0.9 and np.abs(mm[ok] / 1000.0 - exact[ok]).max() < 0.001
    assert sorted(k for k in tables if k.startswith("/world/map/kf_")) == [f"/world/map/kf_{i:06d}" for i in kf_frames]
    np.testing.assert_allclose(_strip(tables["/world/trajectory"]), traj.positions, atol=1e-5)
    # Ground truth drawn from the first camera: equals gt_tum.txt re-anchored at its first pose.
    gt = Trajectory.read_tum(out / "gt_tum.txt")
    np.testing.assert_allclose(_strip(tables["/world/ground_truth"], row=0),
                               (np.linalg.inv(gt.T_world_cam[0]) @ gt.T_world_cam)[:, :3, 3], atol=1e-5)
    mesh = o3d.io.read_triangle_mesh(str(out / "mesh.ply"))
    logged = np.array(tables["/world/mesh"].column("Mesh3D:vertex_positions")[0].as_py()).reshape(-1, 3)
    assert len(logged) == len(mesh.vertices) > 100
    pinhole = tables["/world/camera/image"]
    assert pinhole.column("Pinhole:resolution").to_pylist()[0] == [[320.0, 240.0]]


def test_run_outputs_frames_and_pictures(recorded_run):
    from mono_metric import load_sequence
    from mono_metric.mapping.tsdf import points_to_mesh_distance

    out = recorded_run
    for name in ("trajectory.png", "report.html", "T_world_first_cam.txt"):
        assert (out / name).is_file(), name
    # The mesh is in the first camera's frame; T_world_first_cam puts it on the scene's ground-truth surface.
    T = np.loadtxt(out / "T_world_first_cam.txt")
    mesh = o3d.io.read_triangle_mesh(str(out / "mesh.ply"))
    pts = np.asarray(mesh.vertices)
    gt_mesh = load_sequence(SPEC).gt_mesh()
    moved = np.median(points_to_mesh_distance(pts @ T[:3, :3].T + T[:3, 3], gt_mesh))
    unmoved = np.median(points_to_mesh_distance(pts, gt_mesh))
    assert moved < 0.02 < unmoved, (moved, unmoved)
    previews = sorted((out / "depth").glob("kf_*.png"))
    assert previews
    img = cv2.imread(str(previews[0]))
    assert img.shape[1] > 1.8 * img.shape[0]  # image beside depth, not above it
    assert json.loads((out / "metrics.json").read_text())["ate"]["rmse_m"] < 0.05


def test_loop_closure_hook_and_address(tmp_path):
    from mono_metric.camera import Camera
    from mono_metric.viz import RerunRecorder, read_recording
    from mono_metric.viz.recorder import grpc_url

    rec = RerunRecorder(tmp_path / "loop.rrd")
    rec.begin("loop", Camera(100, 100, 50, 40, 100, 80))
    a, b = make_se3(np.eye(3), np.array([1.0, 2.0, 3.0])), make_se3(np.eye(3), np.array([1.5, 2.0, 2.0]))
    rec.log_loop_closure(40, a, b, matched_index=3)
    rec.log_loop_closure(60, b, a, matched_index=10)
    rec.close()
    table = read_recording(tmp_path / "loop.rrd")["/world/loop_closures"]
    assert table.column("frame").to_pylist() == [40, 60]
    strips = table.column("LineStrips3D:strips")[-1].as_py()
    np.testing.assert_allclose(np.array(strips, float), [[[1, 2, 3], [1.5, 2, 2]], [[1.5, 2, 2], [1, 2, 3]]])
    assert grpc_url("127.0.0.1:9877") == "rerun+http://127.0.0.1:9877/proxy"
    assert grpc_url("rerun+http://h:1/proxy") == "rerun+http://h:1/proxy"


def test_trajectory_plot_without_ground_truth(tmp_path, rng):
    from tests.conftest import random_poses

    est = Trajectory(np.arange(40.0), random_poses(rng, 40, 0.1))
    plot_trajectory(tmp_path / "t.png", est, keyframes=[0, 10, 20], lost_spans=[[12, 15]], title="no gt")
    img = cv2.imread(str(tmp_path / "t.png"))
    assert img is not None and img.shape[1] > img.shape[0] and img.std() > 5
    # Orange (lost) and the red estimate are drawn.
    b, g, r = (img[..., i].astype(int) for i in range(3))
    assert ((r > 200) & (g > 100) & (g < 180) & (b < 80)).sum() > 20
    # Keyframes and lost spans of a run longer than the drawn (ground-truth-paired) part are cut, not an error.
    plot_trajectory(tmp_path / "short.png", est[:20], est[:20], np.eye(4), keyframes=[0, 10, 30],
                    lost_spans=[[18, 25], [30, 33]], ate_rmse_m=0.0)
    assert cv2.imread(str(tmp_path / "short.png")) is not None


def test_up_axis_and_depth_range():
    R_cam = np.eye(3)[None].repeat(3, 0)  # camera frames: y down
    assert up_axis(make_se3(R_cam, np.zeros((3, 3)))) == (1, -1.0)
    # A camera looking along +x with z up (x forward, y left, z up world, as TUM's motion capture).
    R = np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    assert up_axis(make_se3(R[None].repeat(2, 0), np.zeros((2, 3)))) == (2, 1.0)
    d = np.full((10, 10), 3.0)
    assert depth_range_m(d) == (0.0, 4.0)  # 1.1 * 3.0 = 3.3 -> 4
    assert depth_range_m(d * 10, max_depth_m=20.0) == (0.0, 20.0)  # 33 -> 40, capped
    assert depth_range_m(np.zeros((4, 4))) == (0.0, 1.0)


def test_depth_preview_has_a_colour_bar(tmp_path):
    image = np.full((60, 80, 3), 128, np.uint8)
    depth = np.linspace(0.5, 4.0, 60 * 80).reshape(60, 80)
    depth[:10] = 0  # invalid: black
    save_depth_preview(tmp_path / "p.png", image, depth, (0.0, 5.0), title="frame 3")
    img = cv2.imread(str(tmp_path / "p.png"))
    assert img is not None and img.shape[1] > 2 * img.shape[0] * 0.8


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not installed (scripts/system_deps.sh installs it when run as root)")
    return exe


PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(e.message || ('failed to load ' + e.target.tagName)), true);
window.addEventListener('load', () => {
  const out = document.createElement('pre'); out.id = 'probe';
  out.textContent = JSON.stringify({errors: window.__errors,
    images: [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])});
  document.body.appendChild(out);
});
</script>"""


def _browser(exe: str, page, tmp_path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=10000"]
    return subprocess.run([exe, *flags, *args, page.as_uri()], capture_output=True, text=True, timeout=120)


def _probe(exe: str, html: str, tmp_path, name: str) -> dict:
    page = tmp_path / name
    page.write_text(html.replace("<head>", "<head>" + PROBE, 1))
    proc = _browser(exe, page, tmp_path, "--dump-dom")
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"'))


@pytest.mark.slow
def test_report_in_headless_chromium(recorded_run, tmp_path):
    exe = _chromium()
    html = (recorded_run / "report.html").read_text()
    assert "<script" not in html and "src=\"data:image/png;base64," in html
    n_images = 1 + len(list((recorded_run / "depth").glob("kf_*.png")))
    result = _probe(exe, html, tmp_path, "report.html")
    assert result["errors"] == []
    assert len(result["images"]) == n_images >= 2
    assert all(done and w > 300 and h > 200 for done, w, h in result["images"]), result["images"]
    # The probe notices a broken picture (so the check above can fail).
    start = html.index("base64,") + len("base64,")
    broken = html[:start] + base64.b64encode(b"not a png").decode() + html[html.index('"', start):]
    bad = _probe(exe, broken, tmp_path, "broken.html")
    assert bad["images"][0][1] == 0 and bad["errors"]
    # A screenshot of the page is not blank: text, plots and depth colours are drawn.
    shot = tmp_path / "shot.png"
    _browser(exe, recorded_run / "report.html", tmp_path, f"--screenshot={shot}", "--window-size=1200,2000")
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (2000, 1200) and img.std() > 20
    assert (np.abs(img.astype(int) - img.mean(axis=2, keepdims=True)) > 40).any(axis=2).sum() > 5000  # colour


@pytest.mark.slow
def test_rerun_connect_streams_to_a_running_server(tmp_path):
    """``--rerun-connect`` streams to a running rerun gRPC server (here ``rerun --save``, no window)."""
    import signal
    import socket
    import time

    from mono_metric.viz import read_recording
    from mono_metric.viz.recorder import viewer_executable

    exe = viewer_executable() or shutil.which("rerun")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    saved = tmp_path / "streamed.rrd"
    server = subprocess.Popen([exe, "--save", str(saved), "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        spec = "synthetic:room?seed=2&frames=6&width=320&height=240"
        assert main(["run", spec, "--out", str(tmp_path / "run"), "--quiet", "--depth", "gt",
                     "--rerun-connect", f"127.0.0.1:{port}"]) == 0
        deadline = time.time() + 30
        while time.time() < deadline and not (saved.is_file() and "/world/mesh" in read_recording(saved)):
            time.sleep(0.5)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    tables = read_recording(saved)
    assert tables["/world/camera"].column("frame").to_pylist() == list(range(6)) and "/world/mesh" in tables


def test_recording_and_previews_share_one_depth_range(recorded_run):
    """The recording's colour range is the one depth/*.png use: from the first keyframe's depth."""
    from mono_metric import load_sequence
    from mono_metric.config import load_config
    from mono_metric.viz import read_recording

    ranges = read_recording(recorded_run / "run.rrd")["/keyframe/depth"].column("EncodedDepthImage:depth_range")
    expected = depth_range_m(load_sequence(SPEC)[0].depth_m, load_config(recorded_run / "config.yaml").depth.max_depth_m)
    np.testing.assert_allclose(np.array(ranges[0].as_py()[0]) / 1000.0, expected)


def test_rerun_missing_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "rerun", None)  # as if rerun-sdk were not installed
    assert main(["run", SPEC, "--out", str(tmp_path), "--quiet", "--depth", "gt", "--rerun", str(tmp_path / "x.rrd")]) == 1
    err = capsys.readouterr().err
    assert "pip install 'mono_metric[viz]'" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "trajectory_tum.txt").exists()  # refused before the run started
