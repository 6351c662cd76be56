"""Build the official Metric3D v1 network (ConvNeXt + hourglass) from a checkout of its code, for timing.

Benchmark harness only (not part of the library). ``src`` is a checkout of github.com/YvanYin/Metric3D;
only its two model files are imported, by path (``mono/model/backbones/ConvNeXt.py`` and
``mono/model/decode_heads/HourGlassDecoder.py``), so neither mmcv nor the package ``__init__`` files
are needed. Two shims, neither of which changes what the network computes:

* ``timm`` is replaced, when it is not installed, by a stand-in for the three names ConvNeXt.py imports
  (``trunc_normal_`` -> ``torch.nn.init.trunc_normal_``, ``DropPath`` -> identity: stochastic depth is off
  in eval mode, ``register_model`` -> no-op); the weights are loaded over the initialisation anyway.
* the decoder's depth bins and pixel grid are created on the CPU instead of its hard-coded ``'cuda'``.
"""
from __future__ import annotations

import importlib.util
import math
import sys
import types
from pathlib import Path

import torch
from torch import nn

# hub name -> (official backbone function, decoder channels, depth range): the official configs
# mono/configs/HourglassDecoder/conv{tiny,large}.0.3_150.py.
OFFICIAL_CONVNEXT = {
    "metric3d_convnext_tiny": ("convnext_tiny", [96, 192, 384, 768], [64, 64, 128, 256]),
    "metric3d_convnext_large": ("convnext_large", [192, 384, 768, 1536], [128, 128, 256, 512]),
}


def _ensure_timm() -> None:
    try:
        import timm.models.layers  # noqa: F401
        import timm.models.registry  # noqa: F401
        return
    except ImportError:
        pass

    class DropPath(nn.Identity):
        def __init__(self, *args, **kwargs):
            super().__init__()

    layers = types.ModuleType("timm.models.layers")
    layers.trunc_normal_, layers.DropPath = nn.init.trunc_normal_, DropPath
    registry = types.ModuleType("timm.models.registry")
    registry.register_model = lambda fn: fn
    models = types.ModuleType("timm.models")
    models.layers, models.registry = layers, registry
    timm = types.ModuleType("timm")
    timm.models = models
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers,
                        "timm.models.registry": registry})


def _load(path: Path, name: str):
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --official-src must be a checkout of YvanYin/Metric3D")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class OfficialDepthModel(nn.Module):
    """``depth_model`` of the official checkpoints: the official encoder and decoder, forward as the
    official DensePredModel (features = encoder(x); decoder(features))."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.decoder(self.encoder(x))


class OfficialMetric3D(nn.Module):
    """Holds ``depth_model`` so that our ``Metric3D`` state dict loads with ``strict=True``."""

    def __init__(self, depth_model: nn.Module):
        super().__init__()
        self.depth_model = depth_model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.depth_model(x)
        return {"depth": out["prediction"], "confidence": out["confidence"]}


def build_official(src: str | Path, name: str) -> OfficialMetric3D:
    """The official network of hub model ``name`` (random init; load weights with ``load_state_dict``)."""
    if name not in OFFICIAL_CONVNEXT:
        raise KeyError(f"official loader covers {', '.join(OFFICIAL_CONVNEXT)} only")
    src = Path(src)
    _ensure_timm()
    backbones = _load(src / "mono/model/backbones/ConvNeXt.py", "_official_convnext")
    heads = _load(src / "mono/model/decode_heads/HourGlassDecoder.py", "_official_hourglass")
    fn, feat_ch, dec_ch = OFFICIAL_CONVNEXT[name]
    min_depth, max_depth = 0.3, 150.0

    class CPUHourglassDecoder(heads.HourglassDecoder):
        def get_bins(self, bins_num):
            return torch.exp(torch.linspace(math.log(self.min_val), math.log(self.max_val), bins_num))

        def create_mesh_grid(self, height, width, batch, device="cpu", set_buffer=True):
            return super().create_mesh_grid(height, width, batch, device=device, set_buffer=set_buffer)

    ns = types.SimpleNamespace
    cfg = ns(model=ns(decode_head=ns(in_channels=feat_ch, decoder_channel=dec_ch)),
             data_basic=ns(depth_normalize=(min_depth, max_depth)))
    encoder = getattr(backbones, fn)(pretrained=False, in_22k=True, out_indices=[0, 1, 2, 3], drop_path_rate=0.4,
                                     layer_scale_init_value=1.0)
    return OfficialMetric3D(OfficialDepthModel(encoder, CPUHourglassDecoder(cfg))).eval()
