"""`clipshift robustness`: effective robustness against a reference line (imagenet-testbed or a CSV)."""

from __future__ import annotations

import argparse
from typing import Any

from clipshift.cli.common import add_command, add_group, emit_json, info
from clipshift.errors import UserError

GROUP_DESCRIPTION = """\
Effective robustness (Taori et al., 2020): fit a line through the (in-distribution, shift) accuracies
of reference models on logit (or probit) axes; a model's effective robustness is its shift accuracy
minus the line's prediction at its in-distribution accuracy, in accuracy points.
The shipped imagenet-testbed table (338 models × 213 settings) is the standard reference set.
"""

GROUP_EXAMPLES = """\
  clipshift robustness fit --y imagenetv2-matched-frequency-format-val
  clipshift robustness fit --y imagenet-r --json          # x becomes val-on-imagenet-r-classes
  clipshift robustness plot --y objectnet --point my-clip=72.4,50.1 --out er_objectnet
  clipshift robustness columns                            # the testbed's evaluation settings
"""

FIT_DESCRIPTION = """\
Fit the reference line and report every model's effective robustness (ER, accuracy points).

--reference imagenet-testbed uses the testbed's own selection rule per shift: STANDARD models, names
without 'aws'/'batch64'/'subsample', x ≥ 55 % (ImageNet-R/-A on their class subsets: x ≥ 75 %;
ImageNet-A without resnet50). For ImageNet-R, ImageNet-A and ObjectNet, --x val is replaced by the
ImageNet accuracy on the shift's classes (val-on-<shift>-classes), as the testbed plots them.
--reference FILE.csv reads columns model, x, y[, is_reference][, model_type] (or the columns named by
--x/--y); without is_reference every row defines the line. Accuracies are percentages (0–100).
0 % and 100 % have infinite logits: they are clipped to [eps, 100 − eps] (--eps, default 0.1 points),
or refused with --no-clip.
"""

FIT_EXAMPLES = """\
  clipshift robustness fit --y imagenetv2-matched-frequency-format-val
  clipshift robustness fit --x val --y imagenet-sketch --transform probit --json
  clipshift robustness fit --y imagenet-a --point my-model=80.2,12.5 --plot er_imagenet_a.png
  clipshift robustness fit --reference results.csv --x iid --y sketch --no-clip
"""

PLOT_DESCRIPTION = """\
Draw the effective-robustness plot: reference models, fitted line with a bootstrap band (the reference
models resampled --n-boot times), y = x, and any --point models. Writes OUT.png and OUT.svg.
"""

PLOT_EXAMPLES = """\
  clipshift robustness plot --y imagenetv2-matched-frequency-format-val --out er_v2
  clipshift robustness plot --y imagenet-r --point clip-rn50=90.1,71.2 --out er_r --n-boot 2000
  clipshift robustness plot --reference results.csv --out er_results
"""

COLUMNS_DESCRIPTION = "List the evaluation settings (columns) of the shipped imagenet-testbed table."
COLUMNS_EXAMPLES = """\
  clipshift robustness columns
  clipshift robustness columns --json
"""


def register(sub: Any) -> None:
    group = add_group(
        sub, "robustness", "effective robustness vs a reference line", GROUP_DESCRIPTION, GROUP_EXAMPLES
    )
    fit = add_command(
        group, "fit", "fit the reference line; ER of every model", FIT_DESCRIPTION, FIT_EXAMPLES, run_fit
    )
    _add_common_args(fit)
    fit.add_argument(
        "--top", type=int, default=5, metavar="N", help="rows shown at each end of the table (default 5)"
    )
    fit.add_argument("--plot", metavar="PATH", help="also draw the plot to PATH (.png and .svg)")
    fit.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    plot = add_command(
        group, "plot", "draw the effective-robustness plot", PLOT_DESCRIPTION, PLOT_EXAMPLES, run_plot
    )
    _add_common_args(plot)
    plot.add_argument("--out", required=True, metavar="PATH", help="output path stem (writes .png and .svg)")
    plot.add_argument("--json", action="store_true", help="print the written paths as JSON")
    cols = add_command(
        group, "columns", "list the testbed's settings", COLUMNS_DESCRIPTION, COLUMNS_EXAMPLES, run_columns
    )
    cols.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def _add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reference",
        default="imagenet-testbed",
        metavar="NAME|CSV",
        help="imagenet-testbed (default) or a CSV file of model accuracies",
    )
    p.add_argument(
        "--x", metavar="COLUMN", help="in-distribution column (testbed default: val; CSV default: x)"
    )
    p.add_argument("--y", metavar="COLUMN", help="shift column (required for the testbed; CSV default: y)")
    p.add_argument(
        "--exact-x",
        action="store_true",
        help="use --x as given (no class-subset substitution for the testbed)",
    )
    p.add_argument(
        "--transform", choices=["logit", "probit"], default="logit", help="axis transform (default logit)"
    )
    p.add_argument("--eps", type=float, help="clip accuracies to [eps, 100 − eps] points (default 0.1)")
    p.add_argument(
        "--no-clip", action="store_true", help="refuse 0 %% / 100 %% accuracies instead of clipping"
    )
    p.add_argument(
        "--point",
        action="append",
        default=[],
        metavar="LABEL=X,Y",
        help="a model of yours to place against the line (accuracies in percent; repeatable)",
    )
    p.add_argument(
        "--n-boot", type=int, default=1000, metavar="N", help="bootstrap resamples of the band (default 1000)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")


def parse_points(items: list[str]) -> dict[str, tuple[float, float]]:
    """`LABEL=X,Y` items → {label: (x, y)}."""
    points: dict[str, tuple[float, float]] = {}
    for item in items:
        label, sep, rest = item.rpartition("=")
        parts = rest.split(",")
        try:
            if not sep or not label.strip() or len(parts) != 2:
                raise ValueError
            x, y = float(parts[0]), float(parts[1])
        except ValueError:
            raise UserError(f"--point {item!r}: expected LABEL=X,Y with accuracies in percent") from None
        if not (0 <= x <= 100 and 0 <= y <= 100):
            raise UserError(f"--point {item!r}: accuracies must be percentages in [0, 100]")
        points[label.strip()] = (x, y)
    return points


def _analyse(args: argparse.Namespace) -> dict[str, Any]:
    """Load the reference set, fit, and compute ER of every model and --point."""
    from clipshift.analysis.effective_robustness import DEFAULT_EPS, effective_robustness
    from clipshift.analysis.reference import load_reference

    if args.n_boot < 1:
        raise UserError(f"--n-boot {args.n_boot}: must be ≥ 1")
    points = parse_points(args.point)
    ref = load_reference(args.reference, args.x, args.y, auto_subset=not args.exact_x)
    eps = DEFAULT_EPS if args.eps is None else args.eps
    fit = ref.fit(args.transform, eps, clip=not args.no_clip)
    er = ref.effective_robustness(fit)
    pred = ref.y - er
    models = [
        {
            "model": m,
            **({"model_type": ref.model_types[i]} if ref.model_types else {}),
            "x": float(ref.x[i]),
            "y": float(ref.y[i]),
            "predicted": float(pred[i]),
            "effective_robustness": float(er[i]),
            "is_reference": bool(ref.is_reference[i]),
        }
        for i, m in enumerate(ref.models)
    ]
    pts = []
    for label, (x, y) in points.items():
        e = float(effective_robustness(fit, [x], [y], names=[label])[0])
        pts.append({"model": label, "x": x, "y": y, "predicted": y - e, "effective_robustness": e})
    er_ref = er[ref.is_reference]
    return {
        "ref": ref,
        "fit": fit,
        "points": points,
        "out": {
            "reference": ref.source,
            "x": ref.x_name,
            "y": ref.y_name,
            **fit.to_dict(),
            "notes": ref.notes,
            "summary": {
                "n_models": len(ref.models),
                "n_reference": ref.n_reference,
                "reference_er_mean": float(er_ref.mean()),
                "reference_er_sd": float(er_ref.std(ddof=1)) if er_ref.size > 1 else float("nan"),
                "n_above_line": int((er > 0).sum()),
            },
            "models": models,
            "points": pts,
        },
    }


def _plot(res: dict[str, Any], args: argparse.Namespace, stem: str) -> list[str]:
    from clipshift.analysis.effective_robustness import bootstrap_band
    from clipshift.analysis.plots import plot_effective_robustness, save_figure, view_grid

    ref, fit, points = res["ref"], res["fit"], res["points"]
    highlight = {k: ([x], [y]) for k, (x, y) in points.items()}
    grid = view_grid(ref, fit, highlight)
    sel = ref.is_reference
    lo, hi = bootstrap_band(
        ref.x[sel], ref.y[sel], grid, fit.kind, args.n_boot, 0.95, args.seed, fit.eps, fit.clip
    )
    fig = plot_effective_robustness(ref, fit, band=(grid, lo, hi), highlight=highlight)
    return [str(p) for p in save_figure(fig, stem)]


def _fmt(v: float) -> str:
    return f"{v:+.2f}"


def _print_table(out: dict[str, Any], top: int) -> None:
    s = out["summary"]
    clip = f"clipped to [{out['eps']:g}, {100 - out['eps']:g}] %" if out["clip"] else "no clipping"
    print(
        f"{out['reference']}: {out['y']} vs {out['x']}, {out['transform']} fit on {out['n']} reference models"
    )
    print(f"  slope {out['slope']:.4f}  intercept {out['intercept']:.4f}  R² {out['r2']:.3f}  ({clip})")
    for note in out["notes"]:
        print(f"  note: {note}")
    rows = sorted(out["models"], key=lambda r: r["effective_robustness"], reverse=True)
    width = max([len("model"), *(len(r["model"]) for r in rows[:top] + rows[-top:])])
    header = f"  {'model':<{width}}  {'x %':>6}  {'y %':>6}  {'line %':>6}  {'ER':>6}  ref"
    print()
    print(header)

    def line(r: dict[str, Any]) -> str:
        ref = "yes" if r.get("is_reference") else ("" if "is_reference" in r else "you")
        return (
            f"  {r['model']:<{width}}  {r['x']:6.2f}  {r['y']:6.2f}  {r['predicted']:6.2f}  "
            f"{_fmt(r['effective_robustness']):>6}  {ref}"
        )

    if len(rows) <= 2 * top:
        for r in rows:
            print(line(r))
    else:
        for r in rows[:top]:
            print(line(r))
        print(f"  {'…':<{width}}  ({len(rows) - 2 * top} more)")
        for r in rows[-top:]:
            print(line(r))
    if out["points"]:
        print()
        for r in out["points"]:
            print(line(r))
    print()
    print(
        f"  {s['n_models']} models, {s['n_reference']} on the line; "
        f"reference ER mean {_fmt(s['reference_er_mean'])}, "
        f"sd {s['reference_er_sd']:.2f} points; {s['n_above_line']} models above the line"
    )


def run_fit(args: argparse.Namespace) -> int:
    res = _analyse(args)
    out = res["out"]
    if args.plot:
        out["plots"] = _plot(res, args, args.plot)
    if args.json:
        emit_json(out)
        return 0
    _print_table(out, max(1, args.top))
    if args.plot:
        info(f"wrote {', '.join(out['plots'])}")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    res = _analyse(args)
    paths = _plot(res, args, args.out)
    if args.json:
        emit_json(
            {"plots": paths, **{k: res["out"][k] for k in ("reference", "x", "y", "slope", "intercept", "n")}}
        )
    else:
        print("\n".join(paths))
    return 0


def run_columns(args: argparse.Namespace) -> int:
    from clipshift.analysis.reference import SUBSET_X, testbed_columns

    cols = testbed_columns()
    if args.json:
        emit_json({"reference": "imagenet-testbed", "columns": cols, "class_subset_x": SUBSET_X})
        return 0
    for c in cols:
        extra = f"   (x: {SUBSET_X[c]})" if c in SUBSET_X else ""
        print(c + extra)
    return 0
