"""Amber robust-norm factor: definition, determinism, invariances."""
import numpy as np
import pytest

from ampersim.core.errors import InvalidArgument
from ampersim.sparsity.scoring import amber_factor, static_factor


def _reference(w, outliers="clamp"):
    """Plain float64 transcription of the definition in ampersim/sparsity/scoring.py."""
    w = np.asarray(w, dtype=np.float64)
    lo, hi = np.quantile(w.astype(np.float32), [0.005, 0.995])
    if outliers == "clamp":
        k = np.clip(w, lo, hi)
        z = (k - k.mean()) / k.std()
    else:
        inside = (w >= lo) & (w <= hi)
        z = np.where(inside, (w - w[inside].mean()) / w[inside].std(), 0.0)
    norms = np.sqrt((z ** 2).sum(axis=0))
    return norms / norms[norms > 0].min()


@pytest.mark.parametrize("outliers", ["clamp", "drop"])
def test_amber_factor_matches_definition(outliers):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 48)).astype(np.float32) * rng.uniform(0.1, 3.0, size=48).astype(np.float32)
    w[3, 7] = 100.0  # an outlier that clipping must tame
    f = amber_factor(w, outliers=outliers)
    assert f.dtype == np.float32 and f.shape == (48,)
    np.testing.assert_allclose(f, _reference(w, outliers), rtol=2e-5)
    assert f.min() == pytest.approx(1.0)
    assert np.array_equal(f, amber_factor(w, outliers=outliers))  # deterministic


def test_amber_factor_scale_invariant_and_clips_outliers():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((256, 32)).astype(np.float32)
    np.testing.assert_allclose(amber_factor(w * 7.5), amber_factor(w), rtol=1e-5)
    spiked = w.copy()
    spiked[0, 5] = 1e4
    # One huge weight moves column 5's plain L2 norm by orders of magnitude, the robust norm barely.
    assert amber_factor(spiked)[5] < 1.2 * amber_factor(w)[5]


def test_amber_factor_accepts_torch_and_zero_columns():
    torch = pytest.importorskip("torch")
    w = torch.randn(16, 8, dtype=torch.bfloat16)
    w[:, 2] = 0
    f = amber_factor(w)
    assert f.shape == (8,) and f.min() >= 0
    assert static_factor(w, "magnitude") is None
    np.testing.assert_array_equal(static_factor(w, "amber"), f)


def test_bad_arguments():
    with pytest.raises(InvalidArgument, match="2-D"):
        amber_factor(np.ones(4))
    with pytest.raises(InvalidArgument, match="outliers"):
        amber_factor(np.ones((2, 2)), outliers="trim")
    with pytest.raises(InvalidArgument, match="unknown scoring 'wanda'"):
        static_factor(np.ones((2, 2)), "wanda")
