import argparse
import functools
import http.server
import threading

import pytest
import torch

from mono_metric import InputError
from mono_metric.depth.weights import (WeightsEntry, download, load_into, load_state_dict, resolve_weights,
                                       sha256_file)


@pytest.fixture
def checkpoint(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    path = tmp_path / "src" / "ckpt.pth"
    path.parent.mkdir()
    torch.save({"model_state_dict": model.state_dict(), "step": 7}, path)
    return model, path


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "src"
    root.mkdir(exist_ok=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_from_local_server_then_cached(checkpoint, http_root, tmp_path, monkeypatch):
    model, src = checkpoint
    monkeypatch.setenv("MONO_METRIC_HOME", str(tmp_path / "cache"))
    registry = {"toy": WeightsEntry("ckpt.pth", http_root + "ckpt.pth", sha256_file(src))}
    path = resolve_weights("toy", registry=registry)
    assert path == tmp_path / "cache" / "ckpt.pth" and sha256_file(path) == sha256_file(src)
    src.unlink()  # the second call must use the cache, not the network
    assert resolve_weights("toy", registry=registry, allow_download=False) == path
    fresh = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    load_into(fresh, path)
    torch.testing.assert_close(fresh[0].weight, model[0].weight)


def test_checksum_mismatch_leaves_nothing(checkpoint, http_root, tmp_path):
    _, src = checkpoint
    dest = tmp_path / "cache" / "ckpt.pth"
    with pytest.raises(InputError, match="SHA-256"):
        download(http_root + "ckpt.pth", dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not list(dest.parent.glob("*.part"))


def test_file_url(checkpoint, tmp_path):
    _, src = checkpoint
    dest = download(src.as_uri(), tmp_path / "c2" / "x.pth", progress=False)
    assert sha256_file(dest) == sha256_file(src)


def test_offline_error_names_file_and_place(tmp_path, monkeypatch):
    monkeypatch.setenv("MONO_METRIC_HOME", str(tmp_path / "cache"))
    with pytest.raises(InputError, match=r"metric_depth_vit_small_800k\.pth.*cache"):
        resolve_weights("metric3d_vit_small", allow_download=False)
    registry = {"toy": WeightsEntry("x.pth", "http://127.0.0.1:9/x.pth")}  # nothing listens on port 9
    with pytest.raises(InputError, match=r"cannot download .*x.pth.*Put that file at"):
        resolve_weights("toy", registry=registry)
    with pytest.raises(InputError, match="unknown model"):
        resolve_weights("metric3d_vit_huge")
    with pytest.raises(InputError, match="does not exist"):
        resolve_weights("metric3d_vit_small", weights=tmp_path / "nope.pth")


def test_bad_checkpoints(checkpoint, tmp_path):
    model, src = checkpoint
    truncated = tmp_path / "trunc.pth"
    truncated.write_bytes(src.read_bytes()[:200])
    with pytest.raises(InputError, match="truncated"):
        load_state_dict(truncated)

    pickled = tmp_path / "evil.pth"  # an arbitrary pickled object must not be unpickled
    torch.save({"model_state_dict": model.state_dict(), "obj": argparse.Namespace(x=1)}, pickled)
    with pytest.raises(InputError, match="weights-only"):
        load_state_dict(pickled)
    other = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), other)
    with pytest.raises(InputError, match="another model"):
        load_into(model, other)
