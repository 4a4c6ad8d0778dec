"""Validation plots: predicted vs measured (log-log, ±10 % band) and relative error vs tokens."""
from __future__ import annotations

from pathlib import Path
from typing import Any

PLOT_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".eps", ".ps")
"""File types the validation figure can be written as (matplotlib's Agg, SVG, PDF and PS writers)."""
_GROUPS = (("dense_gemm_grouped", "dense MoE experts (bmm)"), ("dense_gemm", "dense GEMM"),
           ("sparse_gemm_grouped", "2:4 MoE experts (a call per expert)"), ("sparse_gemm", "2:4 sparse GEMM"),
           ("attention", "attention"), ("norm", "norm"), ("elementwise:eager_torch", "eager-torch diagnostic"),
           ("elementwise", "elementwise"), ("embedding", "embedding"), ("prune", "prune"), ("allreduce", "all-reduce"),
           ("layer", "decoder layer"), ("model", "whole model"))


def _group(category: str) -> str:
    if "[" in category:  # 8-bit GEMMs: validated against a 16-bit calibration
        return "8-bit GEMM"
    for prefix, label in _GROUPS:
        if category.startswith(prefix):
            return label
    return category


def plot_validation(result: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Write a two-panel figure for a ``validate`` result (format from the file suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    labels = [label for label in [g for _, g in _GROUPS] + ["8-bit GEMM"] if any(_group(r["category"]) == label for r in rows)]
    colors = {label: plt.get_cmap("tab20")(i % 20) for i, label in enumerate(labels)}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5))
    lo = min(min(r["measured_s"], r["predicted_s"]) for r in rows) * 1e3 / 1.5
    hi = max(max(r["measured_s"], r["predicted_s"]) for r in rows) * 1e3 * 1.5
    ax1.plot([lo, hi], [lo, hi], color="black", lw=0.8)
    ax1.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="grey", alpha=0.2, label="±10 %")
    for label in labels:
        for split, marker in (("fit", "o"), ("held-out", "^")):
            pts = [r for r in rows if _group(r["category"]) == label and r["split"] == split]
            if pts:
                ax1.scatter([r["measured_s"] * 1e3 for r in pts], [r["predicted_s"] * 1e3 for r in pts], s=18,
                            marker=marker, color=colors[label], alpha=0.8, label=f"{label} ({split})")
                ax2.scatter([r["tokens"] * (1.04 if split == "held-out" else 1.0) for r in pts],
                            [r["err_pct"] for r in pts], s=18, marker=marker, color=colors[label], alpha=0.8)
    ax1.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured (ms)",
            ylabel="predicted (ms)", title="predicted vs measured")
    ax1.legend(fontsize=7, loc="upper left", ncol=2)
    ax2.axhline(0, color="black", lw=0.8)
    ax2.axhspan(-5, 5, color="green", alpha=0.1, label="±5 %")
    ax2.axhspan(-10, 10, color="grey", alpha=0.1, label="±10 %")
    ax2.set(xscale="log", xlabel="prompt tokens", ylabel="error: predicted / measured − 1 (%)",
            title="error vs tokens (o fit, ^ held-out)")
    ax2.legend(fontsize=7)
    fig.suptitle(title or f"{result['profile']} vs measurements on {result['gpu']}")
    fig.tight_layout()
    fig.savefig(Path(path), dpi=110)
    plt.close(fig)
