"""Static per-input-channel score factors for N:M activation pruning (score = |x_j| * f_j).

- ``magnitude``: no factor (score = |x|).
- ``amber``: Amber Pruner's robust-norm factor of the weight W [out_features, in_features]:
  1. clip W to its 0.5 % and 99.5 % quantiles over the whole matrix — exact quantiles
     (``numpy.quantile``, linear interpolation over all entries, no sampling), so the factor is
     deterministic; values outside are *clamped* to the bounds by default (``outliers="clamp"``) or
     *dropped* (``outliers="drop"``: left out of the statistics and counted as 0 in the norms);
  2. standardise with the mean and standard deviation of the kept (clipped) weights;
  3. take the L2 norm of every input column j;
  4. divide by the smallest positive column norm, so f >= 1 (a column whose standardised entries
     are all zero keeps f = 0; in practice every column of a trained weight has f >= 1).
The factor is computed once at sparsify time, in float64 reductions, and returned as float32.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ampersim.core.errors import InvalidArgument
from ampersim.core.vocab import AMBER_OUTLIERS, SCORINGS, AmberOutliers

CLIP_QUANTILES = (0.005, 0.995)


def _as_numpy(weight: Any) -> np.ndarray:
    if hasattr(weight, "detach"):  # torch tensor (any dtype/device)
        weight = weight.detach().to("cpu").float().numpy()
    w = np.asarray(weight, dtype=np.float32)
    if w.ndim != 2 or w.size == 0:
        raise InvalidArgument(f"weight must be a non-empty 2-D matrix [out, in], got shape {w.shape}")
    return w


def amber_factor(weight: Any, *, clip: tuple[float, float] = CLIP_QUANTILES,
                 outliers: AmberOutliers = "clamp") -> np.ndarray:
    """Robust-norm factor f[in_features] (float32, min positive entry 1) of ``weight`` [out, in]."""
    if outliers not in AMBER_OUTLIERS:
        raise InvalidArgument(f"outliers must be one of {', '.join(AMBER_OUTLIERS)}, got '{outliers}'",
                              field="outliers")
    if not 0.0 <= clip[0] < clip[1] <= 1.0:
        raise InvalidArgument(f"clip quantiles must satisfy 0 <= low < high <= 1, got {clip}")
    w = _as_numpy(weight)
    low, high = np.quantile(w, clip, method="linear")
    if outliers == "clamp":
        kept = np.clip(w, low, high)
        inside = None
    else:
        inside = (w >= low) & (w <= high)
        kept = np.where(inside, w, np.float32(0.0))
    values = kept if inside is None else kept[inside]
    mean = float(np.mean(values, dtype=np.float64))
    std = float(np.std(values, dtype=np.float64))
    z = (kept - np.float32(mean)) / np.float32(std if std > 0 else 1.0)
    if inside is not None:
        z = np.where(inside, z, np.float32(0.0))
    norms = np.sqrt(np.einsum("ij,ij->j", z, z, dtype=np.float64))
    positive = norms[norms > 0]
    if positive.size == 0:
        return np.zeros(w.shape[1], dtype=np.float32)
    return (norms / positive.min()).astype(np.float32)


def static_factor(weight: Any, scoring: str, *, outliers: AmberOutliers = "clamp") -> np.ndarray | None:
    """The static factor for ``scoring`` ("magnitude" -> None, "amber" -> robust-norm factor with
    ``outliers`` clamped or dropped)."""
    if scoring == "magnitude":
        return None
    if scoring == "amber":
        return amber_factor(weight, outliers=outliers)
    raise InvalidArgument(f"unknown scoring '{scoring}': choose one of {', '.join(SCORINGS)}")
