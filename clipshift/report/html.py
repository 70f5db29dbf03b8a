"""The report page: one self-contained HTML file (inline CSS, figures as data URIs, no scripts).

A Content-Security-Policy forbids every fetch except `data:` images, so a page that would reach the
network (or run a script) fails loudly in a browser instead of quietly depending on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from clipshift.analysis.finding import Embedded, Finding, Table

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

CSS = """
:root { --fg: #1d1d1f; --muted: #5f6368; --line: #d9dce1; --yes: #0b6e3f; --no: #8a5300; --bg2: #f6f7f9; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); margin: 0 auto; max-width: 1080px; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 40px 0 8px; padding-top: 12px; border-top: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
.meta, .note, figcaption, .muted { color: var(--muted); font-size: 13px; }
p.conclusion { font-weight: 600; margin: 8px 0; padding: 8px 12px; border-left: 4px solid var(--yes);
               background: #eef7f1; }
p.conclusion.not_supported { border-left-color: var(--no); background: #fbf5ea; }
p.conclusion.withheld { border-left: 4px dashed var(--muted); background: var(--bg2); font-weight: 500; }
ul.headlines { padding-left: 20px; } ul.headlines li { margin: 4px 0; }
ul.headlines li.not_supported, ul.headlines li.withheld { color: var(--muted); }
span.badge { display: inline-block; font-size: 11px; font-weight: 700; letter-spacing: 0.04em;
             text-transform: uppercase; padding: 0 6px; margin-right: 6px; border-radius: 3px; color: #fff; }
span.badge.supported { background: var(--yes); } span.badge.not_supported { background: var(--no); }
span.badge.withheld, span.badge.not_tested { background: var(--muted); }
span.badge.reproduced { background: var(--yes); }
span.badge.contradicted, span.badge.not_reproduced { background: var(--no); }
p.paper { margin: 4px 0 8px; padding: 4px 12px; font-size: 14px; }
figure { margin: 16px 0; } figure img { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--bg2); font-weight: 600; }
th.num { text-align: right; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.scroll { overflow-x: auto; }
details { margin: 8px 0; } summary { cursor: pointer; font-weight: 600; }
pre { background: var(--bg2); padding: 12px; overflow-x: auto; font-size: 12.5px; line-height: 1.4; }
code { font-size: 13px; }
span.status-failed { color: #a50e0e; font-weight: 600; }
nav a { color: inherit; }
"""


@dataclass
class Page:
    """Everything the page shows, already computed."""

    title: str
    meta: list[str]
    findings: list[Finding]
    metric_tables: list[Table]
    status_line: str
    status_table: Table | None
    runs_table: Table
    spec_yaml: str
    extra_figures: list[Embedded] = field(default_factory=list)  # e.g. training curves
    check_tables: list[Table] = field(default_factory=list)  # the "Manipulation checks" section
    footnote: str = ""


def render(page: Page) -> str:
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<link rel="icon" href="data:,">',  # otherwise a browser asks for /favicon.ico
        f"<title>{escape(page.title)}</title>",
        f"<style>{CSS}</style>",
        "</head><body>",
        f"<h1>{escape(page.title)}</h1>",
        *(f'<div class="meta">{escape(m)}</div>' for m in page.meta),
    ]
    out += _details("Study spec (study.yaml, resolved)", [f"<pre>{escape(page.spec_yaml)}</pre>"])
    out += _summary(page.findings)
    for i, f in enumerate(page.findings):
        out += _finding(f, f"a{i + 1}")
    if page.check_tables:
        out.append('<h2 id="checks">Manipulation checks</h2>')
        out.append(
            '<p class="note">What each factor actually changed in the runs, and whether the runs had '
            "learned the task. A comparison whose factor did not act, or whose arms had not learned or "
            "were still improving, is withheld above.</p>"
        )
        for t in page.check_tables:
            out += _table(t)
    out.append('<h2 id="metrics">Every metric by factor combination</h2>')
    out.append(
        '<p class="note">Mean across seeds ± half the 95 % confidence interval (Student t); n = runs. '
        "Accuracies in percent.</p>"
    )
    for t in page.metric_tables:
        out += _table(t)
    out.append('<h2 id="runs">Runs</h2>')
    out.append(f"<p>{escape(page.status_line)}</p>")
    if page.status_table is not None:
        out += _table(page.status_table)
    for fig in page.extra_figures:
        out += _figure(fig)
    out += _table(page.runs_table)
    if page.footnote:
        out.append(f'<p class="note">{escape(page.footnote)}</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _summary(findings: Sequence[Finding]) -> list[str]:
    if not findings:
        return [
            "<h2>Conclusions</h2>",
            '<p class="muted">The study spec asks for no analyses (add an <code>analyses:</code> list); '
            "the metrics and runs are tabulated below.</p>",
        ]
    out = ["<h2>Conclusions</h2>", '<nav><ul class="headlines">']
    for i, f in enumerate(findings):
        for sentence, v in zip(f.conclusions, f.verdicts):
            out.append(
                f'<li class="{v.status}">{_badge(v.status)}<a href="#a{i + 1}">{escape(f.title)}</a>: '
                f"{escape(sentence)}</li>"
            )
    out.append("</ul></nav>")
    papers = [(i, p) for i, f in enumerate(findings) for p in f.paper]
    if papers:
        out.append('<h3>Against the papers</h3><ul class="headlines">')
        out += [
            f'<li class="{p.status}">{_badge(p.status)}<a href="#a{i + 1}">{escape(findings[i].title)}</a>: '
            f"{escape(p.text)}</li>"
            for i, p in papers
        ]
        out.append("</ul>")
    return out


def _finding(f: Finding, anchor: str) -> list[str]:
    out = [f'<h2 id="{anchor}">{escape(f.title)}</h2>']
    for sentence, v in zip(f.conclusions, f.verdicts):
        out.append(f'<p class="conclusion {v.status}">{_badge(v.status)}{escape(sentence)}</p>')
    for p in f.paper:
        out.append(f'<p class="paper {p.status}">{_badge(p.status)}{escape(p.text)}</p>')
    if f.details:
        out.append("<ul>" + "".join(f"<li>{escape(d)}</li>" for d in f.details) + "</ul>")
    for fig in f.figures:
        out += _figure(fig)
    for t in f.tables:
        out += _table(t)
    if f.notes:
        out.append('<ul class="note">' + "".join(f"<li>{escape(n)}</li>" for n in f.notes) + "</ul>")
    return out


def _figure(fig: Embedded) -> list[str]:
    return [
        "<figure>",
        f'<img src="{fig.data_uri}" alt="{escape(fig.alt)}">',
        f"<figcaption>{escape(fig.caption)}</figcaption>",
        "</figure>",
    ]


def _table(t: Table) -> list[str]:
    head = "".join(
        f'<th class="num">{escape(c)}</th>' if j >= t.numeric_from > 0 else f"<th>{escape(c)}</th>"
        for j, c in enumerate(t.columns)
    )
    body = []
    for row in t.rows:
        cells = "".join(
            f'<td class="num">{escape(c)}</td>' if j >= t.numeric_from > 0 else f"<td>{_cell(c)}</td>"
            for j, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    html = [
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>',
        *body,
        "</tbody></table></div>",
    ]
    if t.note:
        html.append(f'<p class="note">{escape(t.note)}</p>')
    if t.collapsed:
        return _details(t.title, html)
    return [f"<h3>{escape(t.title)}</h3>", *html]


def _cell(c: Any) -> str:
    text = escape(str(c))
    return f'<span class="status-failed">{text}</span>' if text == "failed" else text


def _details(summary: str, inner: list[str]) -> list[str]:
    return ["<details>", f"<summary>{escape(summary)}</summary>", *inner, "</details>"]


BADGES = {
    "supported": "supported",
    "not_supported": "not supported",
    "withheld": "withheld",
    "reproduced": "reproduced",
    "contradicted": "contradicted",
    "not_reproduced": "not reproduced",
    "not_tested": "not tested",
}


def _badge(status: str) -> str:
    return f'<span class="badge {status}">{BADGES.get(status, status)}</span>'
