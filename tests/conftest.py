from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real sequences in ../shared/data; skipped on a fresh clone that lacks them."""
    if not SHARED.is_dir():
        pytest.skip(f"real data not present at {SHARED} (only the project's own checkout has ../shared)")
    return SHARED


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def random_poses(rng: np.random.Generator, n: int, step_m: float = 1.0) -> np.ndarray:
    """A smooth random-walk trajectory of (n, 4, 4) poses."""
    from mono_metric.geometry import make_se3, quat_to_rotmat

    t = np.cumsum(rng.normal(0, step_m, (n, 3)), axis=0)
    q = rng.normal(0, 1, (n, 4))
    return make_se3(quat_to_rotmat(q), t)
