"""Figures of the analyses (matplotlib, no pyplot: figures render with the Agg/SVG canvases, no GUI)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from numpy.typing import ArrayLike

from clipshift.analysis.data import value_key
from clipshift.analysis.effective_robustness import Fit, inverse_transform, transform
from clipshift.analysis.finding import Embedded
from clipshift.analysis.longtail import spearman_frequency
from clipshift.analysis.reference import ReferenceSet

_NICE_TICKS = (1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.9)
_FINE_TICKS = (1, 2, 3, 5, *range(10, 95, 5), 92, 94, 95, 96, 97, 98, 99, 99.5, 99.9)
_TYPE_COLOURS = {  # the testbed's colours for its model types
    "STANDARD": "tab:blue",
    "MORE_DATA": "tab:green",
    "ROBUST_INTV": "tab:brown",
    "LP_ADV": "tab:olive",
}
_NAMED_STYLE = [
    ("tab:orange", "o"),
    ("black", "D"),
    ("tab:purple", "s"),
    ("tab:cyan", "^"),
    ("tab:pink", "P"),
]
_HIGHLIGHT_STYLE = [
    ("tab:red", "*"),
    ("tab:purple", "D"),
    ("tab:orange", "s"),
    ("tab:cyan", "^"),
    ("tab:pink", "P"),
    ("black", "X"),
]


def _new_axes(ax: Axes | None, figsize: tuple[float, float] = (6.4, 5.2)) -> tuple[Figure, Axes]:
    if ax is not None:
        fig = ax.get_figure()
        assert isinstance(fig, Figure)
        return fig, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _percent_ticks(lo: float, hi: float, max_ticks: int = 9) -> list[float]:
    """Tick positions (percent) between lo and hi: round percentages, else evenly spaced nice values."""
    ticks: list[float] = []
    for level in (_NICE_TICKS, _FINE_TICKS):
        ticks = [float(t) for t in level if lo <= t <= hi]
        if len(ticks) >= 4:
            break
    if len(ticks) < 3:
        ticks = [float(t) for t in MaxNLocator(nbins=6).tick_values(lo, hi) if lo <= t <= hi and 0 < t < 100]
    step = max(1, int(np.ceil(len(ticks) / max_ticks)))
    return ticks[::step]


def _set_percent_axis(ax: Axes, which: str, lim_z: tuple[float, float], kind: str, eps: float) -> None:
    lo, hi = (float(v) for v in inverse_transform(np.array(lim_z), kind))
    ticks = _percent_ticks(lo, hi)
    pos = transform(ticks, kind, eps) if ticks else np.array([])
    labels = [f"{t:g}" for t in ticks]
    if which == "x":
        ax.set_xlim(*lim_z)
        ax.set_xticks(pos, labels)
    else:
        ax.set_ylim(*lim_z)
        ax.set_yticks(pos, labels)


def _padded(values: np.ndarray, frac: float = 0.06) -> tuple[float, float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = max(hi - lo, 0.2) * frac
    return lo - pad, hi + pad


def _highlight_z(
    highlight: Mapping[str, tuple[ArrayLike, ArrayLike]] | None, kind: str, eps: float
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        k: (transform(x, kind, eps).ravel(), transform(y, kind, eps).ravel())
        for k, (x, y) in (highlight or {}).items()
    }


def _view_x(
    ref: ReferenceSet, kind: str, eps: float, hl: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> tuple[float, float]:
    """x-limits (transformed) of the effective-robustness view: the reference and highlighted models."""
    zx = transform(ref.x, kind, eps)
    base = zx[ref.is_reference] if ref.is_reference.any() else zx
    return _padded(np.concatenate([base, *(v[0] for v in hl.values())]))


def view_grid(
    ref: ReferenceSet,
    fit: Fit,
    highlight: Mapping[str, tuple[ArrayLike, ArrayLike]] | None = None,
    n: int = 200,
) -> np.ndarray:
    """x accuracies (percent) spanning `plot_effective_robustness`'s view: a grid for `bootstrap_band`."""
    lo, hi = _view_x(ref, fit.kind, fit.eps, _highlight_z(highlight, fit.kind, fit.eps))
    return np.clip(inverse_transform(np.linspace(lo, hi, n), fit.kind), 0.0, 100.0)


def plot_effective_robustness(
    ref: ReferenceSet,
    fit: Fit,
    band: tuple[ArrayLike, ArrayLike, ArrayLike] | None = None,
    highlight: Mapping[str, tuple[ArrayLike, ArrayLike]] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    named: Mapping[str, tuple[Sequence[str], ArrayLike, ArrayLike]] | None = None,
) -> Figure:
    """Shift vs in-distribution accuracy on transformed (logit/probit) axes labelled in percent.

    Reference models in blue (other testbed types in the testbed's colours, else grey), the fitted line,
    `band` = (grid_x, lo, hi) in percent (e.g. from `bootstrap_band`) shaded, y = x dashed, and each
    `highlight` label → (x, y) accuracy arrays as its own marker. The view covers the reference and
    highlighted models; other models outside it are cut off, as in the testbed's plots. `named`: group
    label → (model names, x, y): each group in its level colour, each point labelled with its name.
    """
    fig, ax = _new_axes(ax)
    kind, eps = fit.kind, fit.eps
    zx, zy = transform(ref.x, kind, eps), transform(ref.y, kind, eps)
    hl = _highlight_z(highlight, kind, eps)
    nm = _highlight_z({k: (v[1], v[2]) for k, v in (named or {}).items()}, kind, eps)
    ref_mask = ref.is_reference
    xlim = _view_x(ref, kind, eps, {**hl, **{f"named {k}": v for k, v in nm.items()}})
    in_view = (zx >= xlim[0]) & (zx <= xlim[1])
    ys_for_lim = np.concatenate(
        [zy[in_view | ref_mask], *(v[1] for v in hl.values()), *(v[1] for v in nm.values())]
    )
    ylim = _padded(ys_for_lim)

    grid_z = np.linspace(*xlim, 200)
    line = fit.slope * grid_z + fit.intercept
    diag = np.linspace(min(xlim[0], ylim[0]), max(xlim[1], ylim[1]), 2)
    ax.plot(diag, diag, linestyle="--", color="black", linewidth=1, label="y = x", zorder=2)
    if band is not None:
        gx, lo, hi = (np.asarray(v, dtype=float).ravel() for v in band)
        ax.fill_between(
            transform(gx, kind, eps),
            transform(lo, kind, eps),
            transform(hi, kind, eps),
            color="tab:red",
            alpha=0.25,
            linewidth=0,
            label="bootstrap band",
            zorder=3,
        )
    ax.plot(grid_z, line, color="tab:red", linewidth=1.8, label=f"{kind} fit (n = {fit.n})", zorder=4)

    others = ~ref_mask
    if others.any():
        # the testbed's own types in its colours; everything else (or no types at all) as one grey group
        types = [t if t in _TYPE_COLOURS else "" for t in (ref.model_types or [""] * len(ref.models))]
        for t in sorted({types[i] for i in np.flatnonzero(others)}, key=lambda t: (t == "", t)):
            sel = others & np.array([mt == t for mt in types])
            name = t.lower().replace("_", " ") if t else "other models"
            if t == "STANDARD":
                name = "standard (not fitted)"
            colour = _TYPE_COLOURS.get(t, "tab:gray")
            ax.scatter(zx[sel], zy[sel], s=14, color=colour, alpha=0.45, linewidths=0, label=name, zorder=5)
    if ref_mask.any():
        ax.scatter(
            zx[ref_mask],
            zy[ref_mask],
            s=20,
            color="tab:blue",
            alpha=0.8,
            linewidths=0,
            label=f"reference ({int(ref_mask.sum())})",
            zorder=6,
        )
    for i, (label, (hx, hy)) in enumerate(hl.items()):
        colour, marker = _HIGHLIGHT_STYLE[i % len(_HIGHLIGHT_STYLE)]
        ax.scatter(hx, hy, s=110, color=colour, marker=marker, edgecolors="white", label=label, zorder=8)
    for i, (group, (gx, gy)) in enumerate(nm.items()):
        # not blue (the line's models) nor red (the line)
        colour, marker = _NAMED_STYLE[i % len(_NAMED_STYLE)]
        ax.scatter(gx, gy, s=80, color=colour, marker=marker, edgecolors="white", label=group, zorder=9)
        for name, px, py in zip((named or {})[group][0], gx, gy):
            ax.annotate(str(name), (px, py), textcoords="offset points", xytext=(4, 3), fontsize="x-small")

    _set_percent_axis(ax, "x", xlim, kind, eps)
    _set_percent_axis(ax, "y", ylim, kind, eps)
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.set_xlabel(f"{ref.x_name} (top-1, %)")
    ax.set_ylabel(f"{ref.y_name} (top-1, %)")
    ax.set_title(title or f"{ref.y_name} vs {ref.x_name} ({kind} axes)")
    # labelled models may lie anywhere: let the legend avoid them
    ax.legend(loc="best" if nm else "upper left", fontsize="small", frameon=False)
    return fig


def plot_counter_common(
    common: ArrayLike,
    counter: ArrayLike,
    labels: Sequence[str] | None = None,
    fit: Fit | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Counter- vs common-group accuracy (percent) per model on linear axes, with y = x and a fit line."""
    fig, ax = _new_axes(ax)
    c = np.asarray(common, dtype=float).ravel()
    k = np.asarray(counter, dtype=float).ravel()
    both = np.concatenate([c, k])
    lo, hi = _padded(both)
    lo, hi = max(lo, 0.0), min(hi, 100.0)
    ax.plot([lo, hi], [lo, hi], linestyle="--", color="black", linewidth=1, label="y = x (no drop)")
    if fit is not None:
        gx = np.linspace(max(float(c.min()), 1e-6), min(float(c.max()), 100 - 1e-6), 100)
        ax.plot(gx, fit.predict(gx), color="tab:red", linewidth=1.8, label=f"{fit.kind} fit (n = {fit.n})")
    ax.scatter(c, k, s=30, color="tab:blue", alpha=0.8, linewidths=0, zorder=5)
    if labels is not None and len(labels) <= 40:
        for xi, yi, text in zip(c, k, labels):
            ax.annotate(str(text), (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize="x-small")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.set_xlabel("common-background accuracy (%)")
    ax.set_ylabel("counter-background accuracy (%)")
    ax.set_title(title or "counter vs common")
    ax.legend(loc="upper left", fontsize="small", frameon=False)
    return fig


def plot_accuracy_vs_frequency(
    freq: ArrayLike,
    acc: ArrayLike,
    labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Per-class accuracy vs training frequency on a log x axis (symlog when a class has 0 samples).

    The title reports Spearman's rho (Wen et al.'s corr_acc).
    """
    fig, ax = _new_axes(ax)
    f = np.asarray(freq, dtype=float).ravel()
    a = np.asarray(acc, dtype=float).ravel()
    ax.scatter(f, a, s=22, color="tab:blue", alpha=0.75, linewidths=0)
    if (f <= 0).any():
        ax.set_xscale("symlog", linthresh=1.0)
    else:
        ax.set_xscale("log")
    if labels is not None and len(labels) <= 40:
        for xi, yi, text in zip(f, a, labels):
            ax.annotate(str(text), (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize="x-small")
    rho, p = spearman_frequency(f, a)
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.set_xlabel("training samples per class")
    ax.set_ylabel("accuracy")
    ax.set_title(title or f"accuracy vs class frequency (Spearman ρ = {rho:.2f}, p = {p:.2g})")
    return fig


def save_figure(fig: Figure, stem: Path | str, dpi: int = 150) -> list[Path]:
    """Write `stem.png` and `stem.svg` (a .png/.svg suffix on `stem` is dropped); returns both paths."""
    base = Path(stem)
    if base.suffix.lower() in (".png", ".svg"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for ext in ("png", "svg"):
        path = base.parent / f"{base.name}.{ext}"
        fig.savefig(path, dpi=dpi, format=ext)
        out.append(path)
    return out


# -- figures for the report ---------------------------------------------------------------------------
def embed(fig: Figure, caption: str, alt: str | None = None) -> Embedded:
    """Serialise and close a figure. The SVG keeps text as paths, so it needs no fonts to render."""
    buf = io.BytesIO()
    # figures are built without pyplot (no GUI backend is ever touched)
    with matplotlib.rc_context({"svg.hashsalt": "clipshift", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    fig.clear()  # analysis plots are not pyplot-managed: clearing is what frees them
    uri = "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return Embedded(caption, uri, alt or caption)


def level_colours(levels: Sequence[Any]) -> dict[str, str]:
    """Colour per factor level (by its key), stable across every figure of a report."""
    cmap = matplotlib.colormaps["tab10"]
    return {value_key(v): to_hex(cmap(i % 10)) for i, v in enumerate(levels)}


def plain_log_ticks(axis: Axis) -> None:
    """Label a log axis 1, 2, 5, 10, 20 … instead of 2×10⁰ and crowded minor labels."""
    if axis.get_scale() != "log":
        return
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())
