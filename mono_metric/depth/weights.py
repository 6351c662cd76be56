"""Checkpoint files: the registry of official Metric3D weights, a cache, downloads and safe loading.

Files are looked up in ``$MONO_METRIC_HOME`` (default ``~/.cache/mono_metric``). Downloads go to a
temporary file that is renamed only after its size (and SHA-256, when the registry knows it) check
out, so an interrupted download never leaves a truncated checkpoint behind. Checkpoints are always
read with ``torch.load(..., weights_only=True)``: no arbitrary objects are unpickled.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from mono_metric.errors import InputError

_HF = "https://huggingface.co/JUGGHM/Metric3D/resolve/main/"


@dataclass(frozen=True)
class WeightsEntry:
    """One downloadable checkpoint: file name, URL and, when known, its SHA-256."""

    filename: str
    url: str
    sha256: str | None = None


OFFICIAL_WEIGHTS: dict[str, WeightsEntry] = {
    name: WeightsEntry(fname, _HF + fname) for name, fname in {
        "metric3d_convnext_tiny": "convtiny_hourglass_v1.pth",
        "metric3d_convnext_large": "convlarge_hourglass_0.3_150_step750k_v1.1.pth",
        "metric3d_vit_small": "metric_depth_vit_small_800k.pth",
        "metric3d_vit_large": "metric_depth_vit_large_800k.pth",
        "metric3d_vit_giant2": "metric_depth_vit_giant2_800k.pth",
    }.items()
}


ASSETS_DIR = Path(__file__).parent / "assets"
PACKAGED_WEIGHTS: dict[str, str] = {"mono_metric_tiny": "mono_metric_tiny.pt"}
"""Models whose weights ship inside the package (trained here; no download)."""


def cache_dir() -> Path:
    """``$MONO_METRIC_HOME`` or ``~/.cache/mono_metric``."""
    return Path(os.environ.get("MONO_METRIC_HOME", Path.home() / ".cache" / "mono_metric"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: Path, sha256: str | None = None, progress: bool = True, timeout_s: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` atomically, checking the byte count and optional SHA-256.

    Raises:
        InputError: network failure, size or checksum mismatch (nothing is left at ``dest``).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as resp:
            total = resp.headers.get("Content-Length")
            total = int(total) if total is not None else None
            received = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise InputError(f"download of {url} stopped after {received} of {total} bytes; try again")
        if sha256 is not None and sha256_file(tmp) != sha256:
            raise InputError(f"download of {url} has the wrong SHA-256; the file was discarded")
        shutil.move(tmp, dest)
        return dest
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise InputError(f"cannot download {url} ({reason})") from err
    finally:
        tmp.unlink(missing_ok=True)


def resolve_weights(name: str, weights: str | Path | None = None, allow_download: bool = True,
                    registry: dict[str, WeightsEntry] = OFFICIAL_WEIGHTS) -> Path:
    """Path of the checkpoint for model ``name``.

    Args:
        name: a key of ``registry``.
        weights: an explicit local file (used as is), or None for the cached official file.
        allow_download: fetch a missing cached file from its URL.

    Raises:
        InputError: unknown name, missing explicit file, or no cached file and no download possible;
            the message says which file to put where.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InputError(f"weights file {path} does not exist; pass an existing checkpoint with --weights")
        return path
    if name in PACKAGED_WEIGHTS:
        path = ASSETS_DIR / PACKAGED_WEIGHTS[name]
        if not path.is_file():
            raise InputError(f"the packaged weights of {name} are missing ({path}); reinstall mono_metric, or "
                             "train them: mono-metric train --config configs/train_tiny.yaml")
        return path
    if name not in registry:
        raise InputError(f"unknown model {name!r}; known: {', '.join(registry)}")
    entry = registry[name]
    path = cache_dir() / entry.filename
    if path.is_file():
        return path
    if not allow_download:
        raise InputError(f"no weights for {name}: put {entry.filename} (from {entry.url}) at {path}, "
                         "or pass --weights PATH (weights=PATH)")
    try:
        return download(entry.url, path, entry.sha256)
    except InputError as err:
        raise InputError(f"no weights for {name}: {err}. Put that file at {path}, "
                         "or pass --weights PATH (weights=PATH)") from err


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint safely; accepts a bare state dict or one under ``model_state_dict``/``state_dict``.

    Raises:
        InputError: the file is truncated, not a checkpoint, or holds pickled objects.
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files
        raise InputError(f"cannot read checkpoint {path}: it is truncated, corrupt or not a weights-only "
                         f"PyTorch file ({type(err).__name__}); download it again") from err
    for key in ("model_state_dict", "state_dict", "model", "extractor"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"checkpoint {path} does not hold a state dict of tensors")
    return obj


def load_into(model: torch.nn.Module, path: str | Path, model_name: str = "model", rename=None) -> None:
    """Load a checkpoint into ``model`` with ``strict=True``, explaining mismatches in one message.

    ``rename`` (optional) maps the file's state dict to the model's names first.
    """
    state = load_state_dict(path)
    if rename is not None:
        state = rename(state)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(f"{what}: {keys[:3]}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
                           for what, keys in (("missing", missing), ("unexpected", unexpected),
                                              ("wrong shape", wrong)) if keys)
        raise InputError(f"checkpoint {path} does not fit {model_name} ({detail}); "
                         "is it the checkpoint of another model?")
    model.load_state_dict(state, strict=True)
