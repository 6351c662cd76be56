"""Our Metric3D modules against outputs of the official implementation (see tests/golden.py)."""
import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch

from golden import GOLDEN_INPUTS, golden_input, golden_state_dict
from mono_metric.depth import Metric3D
from mono_metric.depth.metric3d.fused import reference_kernels

GOLDEN = np.load(Path(__file__).parent / "data" / "metric3d_golden.npz")


@pytest.mark.parametrize("name", sorted(GOLDEN_INPUTS))
@pytest.mark.parametrize("attention", ["sdpa", "plain"])
@pytest.mark.parametrize("kernels", ["fused", "reference"])
def test_outputs_equal_official_implementation(name, attention, kernels):
    model = Metric3D.build(name)
    model.load_state_dict(golden_state_dict(model.state_dict()))
    model.set_attention(attention)
    with torch.no_grad(), reference_kernels() if kernels == "reference" else contextlib.nullcontext():
        out = model(golden_input(GOLDEN_INPUTS[name]))
    ref_depth = GOLDEN[f"{name}/depth"]
    assert ref_depth.std() > 0.01  # a non-trivial reference
    np.testing.assert_allclose(out["depth"].numpy(), ref_depth, rtol=1e-5, atol=1e-4 * np.abs(ref_depth).max())
    np.testing.assert_allclose(out["confidence"].numpy(), GOLDEN[f"{name}/confidence"], atol=1e-4)
    if f"{name}/normal" in GOLDEN:
        np.testing.assert_allclose(out["normal"].numpy(), GOLDEN[f"{name}/normal"], atol=1e-4)
