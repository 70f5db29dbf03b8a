"""Figures of the report: embedding matplotlib figures in the HTML, colours per factor level, and the
training-curve plot (the other plots come from `clipshift.analysis.plots`)."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
from matplotlib.axis import Axis
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from clipshift.report.data import Run, StudyData, label, value_key


@dataclass(frozen=True)
class Embedded:
    """A figure ready for the page: an SVG as a data URI (vector, and no namespace URLs in the HTML)."""

    caption: str
    data_uri: str
    alt: str


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


def training_curves(data: StudyData, runs: Sequence[Run], colour_by: str | None) -> Figure | None:
    """Loss vs step of every run that logged metrics, one colour per level of `colour_by`."""
    curves = [(r, data.curve(r)) for r in runs]
    curves = [(r, [c for c in cs if _finite(c.get("step")) and _finite(c.get("loss"))]) for r, cs in curves]
    curves = [(r, cs) for r, cs in curves if cs]
    if not curves:
        return None
    levels = data.levels(colour_by, [r for r, _ in curves]) if colour_by else []
    colours = level_colours(levels)
    fig = Figure(figsize=(7.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    shown: set[str] = set()
    for run, cs in curves:
        k = value_key(run.factors.get(colour_by)) if colour_by else ""
        name = f"{colour_by}={label(run.factors.get(colour_by))}" if colour_by else None
        ax.plot(
            [c["step"] for c in cs],
            [c["loss"] for c in cs],
            color=colours.get(k, "#444444"),
            alpha=0.75,
            linewidth=1.2,
            label=name if name and name not in shown else None,
        )
        if name:
            shown.add(name)
    positive = all(c["loss"] > 0 for _, cs in curves for c in cs)
    if positive:
        ax.set_yscale("log")  # losses of different objectives span orders of magnitude
        plain_log_ticks(ax.yaxis)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss" + (" (log scale)" if positive else ""))
    ax.grid(True, alpha=0.3)
    if shown:
        ax.legend(frameon=False, fontsize=8)
    return fig


def plain_log_ticks(axis: Axis) -> None:
    """Label a log axis 1, 2, 5, 10, 20 … instead of 2×10⁰ and crowded minor labels."""
    if axis.get_scale() != "log":
        return
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
