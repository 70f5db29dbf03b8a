"""`build_report`: a study directory (or StudyData in memory) → one self-contained HTML file."""

from __future__ import annotations

import base64
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from clipshift import __version__
from clipshift.analysis.check_tables import factor_tables, learning_table
from clipshift.analysis.checks import Verdict
from clipshift.analysis.data import StudyData, label, value_key
from clipshift.analysis.finding import Finding, Table
from clipshift.analysis.kinds.training_curves import curve_summary, curves_figure
from clipshift.analysis.paper import PaperVerdict
from clipshift.analysis.plots import embed
from clipshift.report.data import read_study_dir
from clipshift.report.findings import findings
from clipshift.report.html import Page, render
from clipshift.report.tables import metric_tables, status_table


@dataclass
class ReportSummary:
    path: Path
    study: str
    n_runs: int
    status: dict[str, int]
    headlines: list[str]  # every conclusion sentence, in report order
    supported: list[bool]  # per headline: did the data support it?
    verdicts: list[Verdict] = field(default_factory=list)  # per headline: status, reason, detectable
    findings: list[Finding] = field(default_factory=list, repr=False)
    warnings: list[str] = field(default_factory=list)  # about the study's design or data
    figure_files: list[Path] = field(default_factory=list)  # with build_report(figures_dir=...)

    @property
    def paper(self) -> list[PaperVerdict]:
        """Each comparison judged against its analysis's `paper:` claim, in report order."""
        return [p for f in self.findings for p in f.paper]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "study": self.study,
            "n_runs": self.n_runs,
            "status": self.status,
            "headlines": self.headlines,
            "supported": self.supported,
            "conclusions": [
                {"text": h, **v.to_dict()} for h, v in zip(self.headlines, self.verdicts, strict=True)
            ],
            "paper": [p.to_dict() for p in self.paper],
            "findings": [f.to_dict() for f in self.findings],
            "warnings": self.warnings,
            "figure_files": [str(p) for p in self.figure_files],
        }


def build_report(
    study_dir: str | Path,
    out_path: str | Path | None = None,
    ci: float = 0.95,
    n_boot: int = 1000,
    figures_dir: str | Path | None = None,
) -> ReportSummary:
    """Write the report of STUDY_DIR to `out_path` (default STUDY_DIR/report.html); with `figures_dir`,
    also every figure of the findings as an SVG file (`<n>-<analysis kind>-<k>.svg`)."""
    data = read_study_dir(study_dir)
    out = Path(out_path) if out_path is not None else Path(study_dir) / "report.html"
    summary = write_report(data, out, ci=ci, n_boot=n_boot)
    if figures_dir is not None:
        summary.figure_files = write_figures(summary.findings, Path(figures_dir))
    return summary


def write_figures(found: list[Finding], folder: Path) -> list[Path]:
    """The findings' figures as standalone SVG files, named by analysis position and kind."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, f in enumerate(found, 1):
        for k, fig in enumerate(f.figures, 1):
            head, _, payload = fig.data_uri.partition(",")
            svg = base64.b64decode(payload) if head.endswith(";base64") else unquote(payload).encode()
            path = folder / f"{i}-{f.kind.replace('_', '-')}-{k}.svg"
            path.write_bytes(svg)
            paths.append(path)
    return paths


def write_report(
    data: StudyData, out_path: str | Path, ci: float = 0.95, n_boot: int = 1000
) -> ReportSummary:
    out = Path(out_path)
    found = findings(data, ci=ci, n_boot=n_boot)
    warnings = [f"Warning: {w}" for w in data.warnings] + _copies_warning(data)
    check_tables: list[Table] = []
    if not data.evaluates:  # an evaluation study trained nothing: no factor was manipulated, none learning
        learning = learning_table(data)
        check_tables = factor_tables(data) + ([learning] if learning is not None else [])
    status_line, failed = status_table(data)
    across = "the models of each group" if data.evaluates else "seeds"  # the replicates
    extra = []
    if not any(f.kind == "training_curves" for f in found):
        axes = data.axes()
        fig = curves_figure(data, data.runs, axes[0] if axes else None)
        if fig is not None:
            extra.append(embed(fig, "Training loss per run. " + curve_summary(data, data.runs)[0]))
    page = Page(
        title=f"clipshift study: {data.name}",
        meta=_meta(data) + warnings,
        findings=found,
        metric_tables=metric_tables(data, ci),
        status_line=status_line,
        status_table=failed,
        runs_table=_runs_table(data),
        spec_yaml=_spec_yaml(data),
        extra_figures=extra,
        check_tables=check_tables,
        footnote=(
            f"Intervals are {round(ci * 100)} % intervals across {across}: Student t for means; for "
            "differences between levels, Welch intervals computed within each combination of the other "
            "factors and averaged (for effective robustness, widened by the fitted line's own bootstrap "
            "variance). "
            "A conclusion is stated only when its interval excludes 0 (and seeds differ). "
            "Intervals are per comparison, not corrected for multiple comparisons."
        ),
    )
    text = render(page)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)  # a reader never sees half a report
    return ReportSummary(
        path=out,
        study=data.name,
        n_runs=len(data.runs),
        status=dict(Counter(r.status for r in data.runs)),
        headlines=[s for f in found for s in f.conclusions],
        supported=[ok for f in found for ok in f.supported],
        verdicts=[v for f in found for v in f.verdicts],
        findings=found,
        warnings=warnings,
    )


def _meta(data: StudyData) -> list[str]:
    # SOURCE_DATE_EPOCH (the reproducible-builds convention) pins the date: same study, same bytes
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    moment = (
        datetime.fromtimestamp(int(epoch), timezone.utc) if epoch.isdigit() else datetime.now(timezone.utc)
    )
    when = moment.strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Generated {when} by clipshift {__version__}."]
    if data.study_dir is not None:
        lines.append(f"Study directory: {data.study_dir.resolve()}")
    axes = data.axes()
    if data.evaluates:  # its models are the replicates; it has no seeds
        n_models = len({str(r.factors.get("model")) for r in data.runs})
        lines.append(
            f"{len(data.runs)} runs evaluating {n_models} models (nothing trained); factors varied: "
            f"{', '.join(axes) or 'none'}."
        )
        return lines
    seeds = sorted({r.seed for r in data.runs if r.seed is not None})
    lines.append(
        f"{len(data.runs)} runs; factors varied: {', '.join(axes) or 'none'}; seeds: "
        f"{', '.join(str(s) for s in seeds) or 'n/a'}."
    )
    return lines


def _copies_warning(data: StudyData) -> list[str]:
    """One line when runs that differ in some factor gave identical results (pseudo-replicates)."""
    copies = data.copies()
    if not copies:
        return []
    n_runs = sum(len(runs) for runs, _ in copies)
    differ = sorted({k for _, keys in copies for k in keys})
    common = {
        k: v
        for k, v in copies[0][0][0].factors.items()
        if k not in differ and all(value_key(rs[0].factors.get(k)) == value_key(v) for rs, _ in copies)
    }
    where = f" ({', '.join(f'{k}={label(v)}' for k, v in common.items())})" if common else ""
    return [
        f"Warning: {n_runs} runs{where} form {len(copies)} groups of copies: within a group they differ "
        f"only in {', '.join(differ)} yet gave identical results, so that factor does not reach them. "
        "Intervals that count the copies as independent runs are too narrow; tie the factor to the "
        "settings it affects with `zip` so each run is trained once."
    ]


def _runs_table(data: StudyData) -> Table:
    axes = data.axes()
    rows = []
    for r in data.runs:
        rows.append(
            [
                r.run_id,
                *[label(r.factors.get(a)) for a in axes],
                label(r.seed),
                r.status,
                f"{r.wall_s:.0f}" if r.wall_s is not None else "",
                f"{r.samples_per_s:.0f}" if r.samples_per_s is not None else "",
            ]
        )
    return Table("All runs", ["run", *axes, "seed", "status", "wall (s)", "samples/s"], rows, collapsed=True)


def _spec_yaml(data: StudyData) -> str:
    if data.study_dir is not None and (data.study_dir / "study.yaml").is_file():
        return (data.study_dir / "study.yaml").read_text(errors="replace")
    return yaml.safe_dump(data.spec, sort_keys=False, allow_unicode=True)
