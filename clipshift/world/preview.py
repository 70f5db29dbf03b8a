"""One picture of a world: a row per class, a column per evaluation set, each tile with its caption."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from clipshift.errors import UserError
from clipshift.world import shifts
from clipshift.world.world import World

MAX_ROWS = 12
DPI = 100
Columns = list[tuple[str, list[tuple[str, str]]]]


def columns() -> Columns:
    """(group header, [(column header, split)]): every column is one evaluation set; a column per
    registered domain and per registered corruption (at the standard severity)."""
    return [
        ("domain", [(d.name, d.name) for d in shifts.domains()]),
        ("background", [("common", "common"), ("counter", "counter")]),
        (
            f"corruption (severity {shifts.STANDARD_SEVERITY})",
            [(c.name, c.standard_set) for c in shifts.corruptions()],
        ),
        ("pose", [("pose", "pose")]),
    ]


COLUMNS: Columns = columns()  # the columns of the built-in registry (render_preview reads columns())

# layout in pixels (the figure is laid out by hand so nothing can overlap, whatever K or scale)
_CAPTION_PT = 7.0
_HEADER_PT = 9.5
_GROUP_PT = 10.5
_TITLE_PT = 12.0
_ROW_PT = 11.0
_MIN_COL_PX = 146  # captions need room even when tiles are small
_GAP_X, _GAP_Y = 14, 14
_LEFT_PX = 118  # at least; widened for long class names
_TOP_PX = 96
_BOTTOM_PX = 30


def _pt_to_px(pt: float) -> float:
    return pt * DPI / 72.0


def preview_classes(world: World, rows: int) -> np.ndarray:
    """The classes the preview's rows show: 0..rows-1, or with superclasses up to 3 siblings of each
    family in turn (families 0, 1, 2, ...), so siblings sit next to each other."""
    k = world.concepts.n_classes
    family = world.superclass_of
    if family[0] < 0:
        return np.arange(rows)
    per = 3 if rows > 3 else rows
    picked = [int(c) for f in range(family.max() + 1) for c in np.flatnonzero(family == f)[:per]]
    chosen = set(picked)
    rest = [c for c in range(k) if c not in chosen]
    return np.asarray((picked + rest)[:rows], dtype=np.int64)


def _row_info(world: World, cls: int) -> str:
    """The grey lines under a row's class name: label, superclass, common habitat."""
    habitat = world.background_names[int(world.concepts.common_background[cls])]
    family = int(world.concepts.superclass_of[cls])
    if family < 0:
        return f"label {cls} · habitat: {habitat}"
    return f"label {cls} · a kind of {world.superclass_names[family]}\nhabitat: {habitat}"


def render_preview(world: World, out: Path, n_classes: int | None = None, scale: int = 3) -> Path:
    """Render the preview grid of `world` to `out` (PNG; with an `.svg` suffix, SVG plus a PNG beside it).

    Row c shows sample index c of every evaluation set, which has label c (eval sets are
    class-balanced, label = index % K) — and because the sets share one base draw it is the *same*
    object in every column, with only the column's factor changed. Returns `out`.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: never try to open a window
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise UserError(f"{out}: preview must be a .png or .svg file, got suffix {out.suffix or '(none)'!r}")
    k = world.concepts.n_classes
    rows = min(k, MAX_ROWS) if n_classes is None else n_classes
    if rows < 1 or rows > k:
        raise UserError(f"n_classes must be between 1 and {k} (the world's classes), got {n_classes}")
    if scale < 1:
        raise UserError(f"scale must be ≥ 1, got {scale}")

    # render every column: evaluation index c is class c; a world with superclasses shows a few siblings
    # of each of its first families, so the rows show what tells siblings apart
    idx = preview_classes(world, rows)
    groups = columns()
    tiles: list[np.ndarray] = []  # per column: (rows, H, W, 3)
    captions: list[list[str]] = []
    for _, cols in groups:
        for _, split in cols:
            f = world.factors(split, idx)
            tiles.append(world.render(f).permute(0, 2, 3, 1).numpy())
            captions.append(world.captions(f))
    n_cols = len(tiles)

    tile_px = world.spec.image_size * scale
    col_px = max(tile_px, _MIN_COL_PX)
    cap_px = _pt_to_px(_CAPTION_PT)
    line_px = 1.25 * cap_px
    # DejaVu Sans averages ~0.55 em per character; wrap to the column width
    wrap = max(10, int(col_px / (0.56 * cap_px)))
    wrapped = [[textwrap.fill(c, wrap) for c in col] for col in captions]
    max_lines = max(w.count("\n") + 1 for col in wrapped for w in col)
    row_px = tile_px + 6 + max_lines * line_px + _GAP_Y

    # row labels: user-given class names can be long; wrap them and widen the margin to fit
    names = [textwrap.fill(world.class_names[c], 16) for c in idx]
    longest = max(len(line) for name in names for line in name.split("\n"))
    infos = [_row_info(world, int(c)) for c in idx]
    longest_info = max(len(line) for info in infos for line in info.split("\n"))
    left_px = max(
        _LEFT_PX,
        int(20 + 0.68 * _pt_to_px(_ROW_PT) * longest),
        int(20 + 0.56 * _pt_to_px(_CAPTION_PT + 0.5) * longest_info),
    )
    width = left_px + n_cols * col_px + (n_cols - 1) * _GAP_X + 16
    height = _TOP_PX + rows * row_px + _BOTTOM_PX
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")

    def fx(x: float) -> float:  # pixels from the left -> figure fraction
        return x / width

    def fy(y: float) -> float:  # pixels from the top -> figure fraction
        return 1.0 - y / height

    def col_x(c: int) -> float:
        return left_px + c * (col_px + _GAP_X)

    spec = world.spec
    families = len(world.superclass_names)
    title = (
        f"clipshift world · seed {spec.seed} · {k} classes"
        + (f" in {families} superclasses" if families else "")
        + f" · {spec.backgrounds.n_backgrounds} backgrounds "
        f"(ρ = {spec.backgrounds.rho:g}) · {spec.image_size} px · captions: {spec.captions.level}"
    )
    fig.text(fx(12), fy(10), title, fontsize=_TITLE_PT, weight="bold", va="top", ha="left")
    fig.text(
        fx(12),
        fy(32),
        "each row is one object (evaluation index = class) with one factor changed per column",
        fontsize=_HEADER_PT - 1,
        color="0.35",
        va="top",
        ha="left",
    )

    # two-level column headers: group name over a rule, then one header per column
    c0 = 0
    for group, cols in groups:
        x0, x1 = col_x(c0), col_x(c0 + len(cols) - 1) + col_px
        fig.text(
            fx((x0 + x1) / 2), fy(62), group, fontsize=_GROUP_PT, weight="bold", ha="center", va="baseline"
        )
        fig.add_artist(Line2D([fx(x0 + 4), fx(x1 - 4)], [fy(67), fy(67)], color="0.5", linewidth=0.8))
        for j, (header, _) in enumerate(cols):
            xc = col_x(c0 + j) + col_px / 2
            fig.text(fx(xc), fy(_TOP_PX - 8), header, fontsize=_HEADER_PT, ha="center", va="baseline")
        c0 += len(cols)

    for r in range(rows):
        y_top = _TOP_PX + r * row_px
        fig.text(
            fx(10),
            fy(y_top + tile_px / 2 - 1),
            names[r],
            fontsize=_ROW_PT,
            weight="bold",
            ha="left",
            va="bottom",
            linespacing=1.1,
        )
        fig.text(
            fx(10),
            fy(y_top + tile_px / 2 + 3),
            infos[r],
            fontsize=_CAPTION_PT + 0.5,
            color="0.35",
            ha="left",
            va="top",
        )
        for c in range(n_cols):
            x_tile = col_x(c) + (col_px - tile_px) / 2
            ax = fig.add_axes((fx(x_tile), fy(y_top + tile_px), fx(tile_px), tile_px / height))
            ax.imshow(tiles[c][r], interpolation="nearest")
            ax.set_axis_off()
            fig.text(
                fx(col_x(c) + col_px / 2),
                fy(y_top + tile_px + 4),
                wrapped[c][r],
                fontsize=_CAPTION_PT,
                ha="center",
                va="top",
                linespacing=1.15,
                color="0.1",
            )
        if r < rows - 1:  # faint rule between rows
            y_rule = y_top + row_px - _GAP_Y / 2
            fig.add_artist(
                Line2D([fx(8), fx(width - 8)], [fy(y_rule), fy(y_rule)], color="0.88", linewidth=0.6)
            )

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out.with_suffix(".png"), dpi=DPI, facecolor="white")
    if suffix == ".svg":
        fig.savefig(out, format="svg", facecolor="white")
    plt.close(fig)
    return out
