"""`clipshift report`: a study directory → one self-contained HTML report with its conclusions."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipshift.cli.common import add_command, emit_json, info
from clipshift.errors import UserError

if TYPE_CHECKING:
    from clipshift.report.build import ReportSummary


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "report",
        "write a study's HTML report: conclusions with confidence intervals, tables, plots",
        "Read STUDY_DIR (written by `clipshift study run`) and write one self-contained HTML file: the "
        "study spec, every metric by factor combination (mean ± 95 % CI across seeds), and for each "
        "analysis of the spec its plots and one-sentence conclusions computed from the data, each with "
        "a status: supported (the interval excludes 0), not supported (with the smallest difference the "
        "design could have detected at 80 % power) or withheld (the compared factor did not act in the "
        "runs, or an arm had not learned the task or was still improving; the reason is given). A "
        "'Manipulation checks' section shows what each factor actually changed. Prints the report's path "
        "and the conclusions; --json gives each conclusion's status, reason and detectable difference.",
        "  clipshift report studies/bg\n"
        "  clipshift report studies/bg --out bg.html --open\n"
        "  clipshift report studies/bg --json\n",
        _report,
    )
    p.add_argument(
        "study_dir", metavar="STUDY_DIR", help="a study directory (study.yaml, results.sqlite, runs/)"
    )
    p.add_argument("--out", default=None, help="the HTML file to write (default: STUDY_DIR/report.html)")
    p.add_argument("--open", action="store_true", help="open the report in the default browser")
    p.add_argument(
        "--figures", metavar="DIR", default=None, help="also write every figure as an SVG file into DIR"
    )
    p.add_argument(
        "--ci", type=float, default=0.95, help="confidence level of every interval (default: 0.95)"
    )
    p.add_argument("--json", action="store_true", help="print the conclusions and estimates as JSON")


def _report(args: argparse.Namespace) -> int:
    from clipshift.report import build_report

    if not 0.5 <= args.ci < 1.0:
        raise UserError(f"--ci {args.ci}: must be in [0.5, 1)")
    summary = build_report(args.study_dir, args.out, ci=args.ci, figures_dir=args.figures)
    if args.json:
        emit_json(summary.to_dict())
    else:
        print(f"report: {summary.path}")
        if summary.figure_files:
            print(f"figures: {len(summary.figure_files)} SVG files in {args.figures}")
        print_conclusions(summary)
        for warning in summary.warnings:
            info(f"clipshift: {warning}")
    if args.open:
        import webbrowser

        if not webbrowser.open(Path(summary.path).resolve().as_uri()):
            info("no browser found to open the report")
    return 0


MARKS = {"withheld": "WITHHELD", "not_tested": "NOT TESTED"}  # statuses that must stand out in a terminal


def print_conclusions(summary: ReportSummary, heading: str | None = None) -> None:
    """Each conclusion with its status, then each comparison against a paper's claim."""
    if heading:
        print(heading)
    for sentence, v in zip(summary.headlines, summary.verdicts, strict=True):
        print(f"  - [{_mark(v.status)}] {sentence}")
    if summary.paper:
        print("against the papers:")
        for p in summary.paper:
            print(f"  - [{_mark(p.status)}] {p.text}")


def _mark(status: str) -> str:
    return MARKS.get(status, status.replace("_", " "))
