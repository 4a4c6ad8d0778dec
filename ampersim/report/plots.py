"""Report figures as PNG bytes (matplotlib, Agg canvas; no pyplot global state).

Every function takes plain numbers and returns one PNG; the report embeds it (HTML, base64) or
writes it next to the Markdown file.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DPI = 110
STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass(frozen=True)
class Series:
    """One line: ``group`` picks the colour (profile), ``variant`` the line style (pattern / path)."""

    label: str
    x: Sequence[float]
    y: Sequence[float | None]
    group: str
    variant: str


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _colors(keys: Sequence[str]) -> dict[str, str]:
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    unique = list(dict.fromkeys(keys))
    return {k: palette[i % len(palette)] for i, k in enumerate(unique)}


def _styles(keys: Sequence[str]) -> dict[str, str]:
    unique = list(dict.fromkeys(keys))
    return {k: STYLES[i % len(STYLES)] for i, k in enumerate(unique)}


def line_chart(
    series: Sequence[Series],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    scale: str = "tokens",
    reference_y: float | None = None,
    reference_label: str = "",
) -> bytes:
    """Lines coloured by group and styled by variant, with an optional horizontal reference line.

    scale: "tokens" (log2 x with 1k/2k ticks) or "loglog" (log10 both axes, plain tick labels).
    """
    fig = _figure(9.0, 5.0)
    ax = fig.add_subplot()
    colors = _colors([s.group for s in series])
    styles = _styles([s.variant for s in series])
    markers = {k: MARKERS[i % len(MARKERS)] for i, k in enumerate(dict.fromkeys(s.variant for s in series))}
    groups = list(colors)
    for s in series:
        points = [(x, y) for x, y in zip(s.x, s.y) if y is not None]
        if points:
            xs, ys = zip(*points)
            # earlier groups drawn wider so that lines with equal values stay visible underneath
            wide = (len(groups) - 1 - groups.index(s.group)) / max(1, len(groups) - 1)
            ax.plot(
                xs,
                ys,
                styles[s.variant],
                marker=markers[s.variant],
                markersize=4 + 3 * wide,
                linewidth=1.3 + 2.2 * wide,
                color=colors[s.group],
                label=s.label,
            )
    if reference_y is not None:
        ax.axhline(reference_y, color="0.4", linewidth=0.8, linestyle="-", zorder=0)
        if reference_label:
            ax.annotate(
                reference_label,
                (0.005, reference_y),
                xycoords=("axes fraction", "data"),
                xytext=(2, 3),
                textcoords="offset points",
                fontsize=8,
                color="0.35",
            )
    if scale == "tokens":
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(_token_formatter())
    else:
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    _legend(ax, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _png(fig)


def _legend(ax, **placement) -> None:
    """A legend of the labelled artists; none for a chart that drew nothing (matplotlib would warn)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, frameon=False, **placement)


def _token_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{v / 1024:g}k" if v >= 1024 else f"{v:g}")


def stacked_bars(
    bars: Sequence[tuple[str, Mapping[str, float]]], categories: Sequence[str], *, xlabel: str, title: str
) -> bytes:
    """Horizontal stacked bars, one per (label, {category: value}), categories in a fixed order."""
    fig = _figure(9.0, 0.45 * len(bars) + 1.6)
    ax = fig.add_subplot()
    colors = _colors(list(categories))
    labels = [label for label, _ in bars]
    left = [0.0] * len(bars)
    for cat in categories:
        widths = [values.get(cat, 0.0) for _, values in bars]
        if any(widths):
            ax.barh(labels, widths, left=left, color=colors[cat], label=cat, edgecolor="white", linewidth=0.5)
            left = [a + b for a, b in zip(left, widths)]
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=11)
    ax.grid(True, axis="x", alpha=0.3)
    _legend(ax, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _png(fig)


def grouped_bars(
    groups: Sequence[str], bars: Mapping[str, Sequence[float | None]], *, ylabel: str, title: str,
    value_format: str | None = None,
) -> bytes:
    """Vertical bars: for each group (profile) one bar per key of ``bars`` (missing values left out);
    ``value_format`` (e.g. "{:.1f}") writes each bar's value above it."""
    fig = _figure(9.0, 4.6)
    ax = fig.add_subplot()
    keys = list(bars)
    colors = _colors(keys)
    width = 0.8 / max(1, len(keys))
    for i, key in enumerate(keys):
        xs = [g + (i - (len(keys) - 1) / 2) * width for g in range(len(groups))]
        points = [(x, v) for x, v in zip(xs, bars[key]) if v is not None]
        if points:
            px, pv = zip(*points)
            drawn = ax.bar(px, pv, width * 0.95, color=colors[key], label=key, hatch="//" if "sparse" in key else "")
            if value_format:
                ax.bar_label(drawn, [value_format.format(v) for v in pv], fontsize=7, padding=2)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(True, axis="y", alpha=0.3)
    _legend(ax)
    return _png(fig)


@dataclass(frozen=True)
class Point:
    """A scatter point: colour by ``group`` (profile), marker by ``variant`` (pattern), optionally hollow."""

    x: float
    y: float
    group: str
    variant: str
    hollow: bool = False


def frontier_chart(
    points: Sequence[Point],
    frontier: Sequence[tuple[float, float]],
    labels: Sequence[tuple[float, float, str]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
) -> bytes:
    """Scatter of options, the Pareto frontier as a step line, and text ``labels`` at chosen points."""
    from matplotlib.lines import Line2D

    fig = _figure(9.0, 5.4)
    ax = fig.add_subplot()
    colors = _colors([p.group for p in points])
    markers = {k: MARKERS[i % len(MARKERS)] for i, k in enumerate(dict.fromkeys(p.variant for p in points))}
    for p in points:
        face = "white" if p.hollow else colors[p.group]
        ax.scatter(
            [p.x],
            [p.y],
            facecolors=face,
            edgecolors=colors[p.group],
            marker=markers[p.variant],
            s=46,
            linewidths=1.3,
            zorder=3,
        )
    handles = [Line2D([], [], color=c, marker="o", linestyle="", label=g) for g, c in colors.items()]
    handles += [Line2D([], [], color="0.45", marker=m, linestyle="", label=v) for v, m in markers.items()]
    if any(p.hollow for p in points):
        handles.append(
            Line2D([], [], color="0.45", marker="o", markerfacecolor="white", linestyle="", label="hollow: every layer")
        )
    if len(frontier) > 1:
        fx, fy = zip(*frontier)
        handles += ax.plot(fx, fy, color="0.2", linewidth=1.0, drawstyle="steps-post", zorder=2, label="frontier")
    for x, y, text in labels:
        ax.annotate(text, (x, y), xytext=(6, -10), textcoords="offset points", fontsize=7.5, color="0.15")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _png(fig)


def saving_sweeps(
    curves: Sequence[Series],
    points: Sequence[tuple[float, float, str]],
    by_output: Sequence[tuple[float, float | None]],
    by_hit: Sequence[tuple[float, float | None]],
    *,
    title: str,
) -> bytes:
    """Three panels of end-to-end saving (%): vs prefill share (formula ``curves`` per profile and
    simulated ``points`` (share, saving, label)), vs output tokens per request, vs prefix-cache hit rate."""
    fig = _figure(12.0, 4.2)
    share_ax, out_ax, hit_ax = fig.subplots(1, 3)
    colors = _colors([s.group for s in curves])
    for s in curves:
        share_ax.plot(s.x, s.y, color=colors[s.group], linewidth=1.4, label=s.label)
    for x, y, label in points:
        share_ax.scatter([x], [y], color="0.15", s=22, zorder=3)
        share_ax.annotate(label, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7)
    share_ax.set_xlabel("prefill share of busy GPU time (%)")
    share_ax.set_ylabel("end-to-end saving (%)")
    share_ax.set_title("formula share x (1 - 1/speedup) and simulated fleets", fontsize=9)
    share_ax.legend(fontsize=7, frameon=False)
    for ax, data, xlabel, log in ((out_ax, by_output, "output tokens per request", True),
                                  (hit_ax, by_hit, "prefix-cache hit rate (share of prompt tokens)", False)):
        pts = [(x, y) for x, y in data if y is not None]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", color="0.2", linewidth=1.3)
        if log:
            ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("end-to-end saving (%)")
    out_ax.set_title("saving vs answer length (simulated)", fontsize=9)
    hit_ax.set_title("saving vs prefix caching (simulated)", fontsize=9)
    for ax in (share_ax, out_ax, hit_ax):
        ax.grid(True, alpha=0.3)
        ax.axhline(0.0, color="0.5", linewidth=0.8)
    fig.suptitle(title, fontsize=11)
    return _png(fig)
