"""`clipshift demo`: a small combined study on the default world, its report, and the headlines."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from clipshift.cli.common import add_command, add_set_arg, info

DEMO_SPEC = Path(__file__).resolve().parent.parent / "study" / "specs" / "demo.yaml"


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "demo",
        "train and evaluate a small study (CLIP vs supervised under a spurious background), write its report",
        "The quickest look at clipshift, a few minutes on a laptop CPU: a preview of the world, then a "
        "small study — CLIP and a supervised model trained on the same world images with a strong "
        "spurious background, 3 seeds, evaluated in-distribution and under five shifts, plus the latent "
        "simulator's caption-richness sweep — and its HTML report with conclusions and confidence "
        "intervals. Running it again reuses the finished runs. The study file is printed by "
        "--print-spec; the four papers' full studies are in the repository's studies/ folder.",
        "  clipshift demo\n  clipshift demo --out /tmp/demo\n  clipshift demo --set seeds=[0]       "
        "# one seed: faster, but no CIs\n  clipshift demo --print-spec > my-study.yaml\n",
        _demo,
    )
    p.add_argument("--out", default="demo-out", help="output directory (default: %(default)s)")
    p.add_argument("--print-spec", action="store_true", help="print the demo's study file and exit")
    add_set_arg(p, "seeds=[0]")
    p.add_argument("--quiet", action="store_true", help="no per-run lines or progress bars")


def _demo(args: argparse.Namespace) -> int:
    if args.print_spec:
        print(DEMO_SPEC.read_text(), end="")
        return 0
    from clipshift.cli.report import print_conclusions
    from clipshift.report import build_report
    from clipshift.study.runner import run_study
    from clipshift.world import World
    from clipshift.world.preview import render_preview

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    preview = render_preview(World(), out / "world-preview.png")
    info(f"world preview: {preview}")
    summary = run_study(DEMO_SPEC, out / "study", overrides=args.set, progress=not args.quiet)
    report = build_report(out / "study", out / "report.html")
    print(f"world preview: {preview}")
    print(f"study:         {out / 'study'}  ({summary.line()})")
    print(f"report:        {report.path}")
    print_conclusions(report, "headlines:")
    return 0 if summary.ok else 1
