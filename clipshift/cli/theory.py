"""`clipshift theory`: the latent simulator of contrastive vs supervised learning under shift."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from clipshift.cli.common import add_command, add_set_arg, emit_json
from clipshift.errors import UserError

DESCRIPTION = """\
Latent-feature simulator of the setting of Xue et al. (ICLR 2024): images x = D_I z + ξ and captions
t = D_T (named part of z) + ξ' over z = [core; spurious; shared details; noise]. Learners: contrastive-linear
(the regularised linear contrastive loss of Nakada et al. 2023 that Xue et al. analyse, trained by gradient
descent; its optimum is the top-p SVD of the image-caption cross-covariance / ρ), contrastive-spectral
(HaoChen et al.'s spectral contrastive loss), contrastive-infonce (CLIP's loss), and a supervised linear
classifier. Reports ID accuracy, accuracy under the spurious shift, and the drop (%). --explain prints the
closed-form pieces behind contrastive-linear's result. Every constant is a field of the spec (see --set);
a run takes about a second on a laptop CPU. Which parts of the paper's model are confirmed: see the
docstring of clipshift.theory.simulator.
"""

EXAMPLES = """\
  clipshift theory                                    # default spec: table of id_acc, shift_acc, drop
  clipshift theory --json                             # the same as JSON (spec + results)
  clipshift theory --explain                          # closed-form pieces behind contrastive-linear
  clipshift theory --set p_spurious=0.99 --set shift=flipped
  clipshift theory --sweep core_std=0.25,1,2 --set learners=[contrastive-linear,supervised]
  clipshift theory --set learners=[supervised,contrastive-linear] --set seed=3
  clipshift theory --sweep caption_richness=0,0.5,1 --sweep p_spurious=0.5,0.9,0.99
  clipshift theory --config theory.yaml --json        # a YAML/JSON file of spec fields
"""


def register(sub: Any) -> None:
    p = add_command(sub, "theory", "latent simulator: contrastive vs supervised", DESCRIPTION, EXAMPLES, run)
    p.add_argument("--config", metavar="FILE", help="YAML or JSON file of TheorySpec fields")
    add_set_arg(p, "p_spurious=0.99", dest="overrides")
    p.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="FIELD=V1,V2,...",
        help="run every combination of the listed values (repeatable: cartesian product)",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="print the closed-form pieces behind contrastive-linear's result (one setting, no --sweep)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def parse_sweep(items: list[str]) -> dict[str, list[Any]]:
    """`FIELD=v1,v2` items -> {FIELD: [v1, v2]}, each value parsed as a YAML scalar."""
    axes: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--sweep {item!r}: expected FIELD=V1,V2,...")
        name, raw = (part.strip() for part in item.split("=", 1))
        if name in axes:
            raise UserError(f"--sweep {name}: given twice")
        values: list[Any] = []
        for text in raw.split(","):
            try:
                values.append(yaml.safe_load(text))
            except yaml.YAMLError:
                values.append(text.strip())
        if not raw.strip() or any(v is None for v in values):
            raise UserError(f"--sweep {name}: empty value in {raw!r}")
        axes[name] = values
    return axes


def run(args: argparse.Namespace) -> int:
    # Imported here so that `clipshift --help` does not pay for importing torch.
    from clipshift import configio
    from clipshift.theory import TheorySpec, explain, simulate, sweep

    data: dict[str, Any] = configio.read_mapping(args.config) if args.config else {}
    base = configio.validate(TheorySpec, data, source=args.config)  # file errors name the file first
    if args.overrides:
        data = configio.apply_overrides(data, args.overrides)
        base = configio.validate(TheorySpec, data, source="--set")
    axes = parse_sweep(args.sweep)

    if args.explain:
        if axes:
            raise UserError("--explain takes one setting; drop --sweep")
        ex = explain(base)
        if args.json:
            emit_json(ex)
        else:
            print(format_explanation(ex))
        return 0
    if not axes:
        out = simulate(base)
        if args.json:
            emit_json(out)
        else:
            lines = [[name, *_numbers(r)] for name, r in out["results"].items()]
            print(_table(["learner", "id_acc", "shift_acc", "drop"], lines))
        return 0

    rows = sweep(base, axes)
    if args.json:
        emit_json({"spec": base.model_dump(mode="json"), "axes": axes, "rows": rows})
        return 0
    names = list(axes)
    table = [
        [*(_fmt(row[n]) for n in names), learner, *_numbers(r)]
        for row in rows
        for learner, r in row["results"].items()
    ]
    print(_table([*names, "learner", "id_acc", "shift_acc", "drop"], table))
    return 0


def format_explanation(ex: dict[str, Any]) -> str:
    """The `explain()` dictionary as text: one short section per closed-form piece."""
    blocks = ["core", "spurious", "details", "noise"]
    p, sv = ex["p"], ex["singular_values"]
    spec = ex["spec"]

    def shares(d: dict[str, float], keys: list[str]) -> list[str]:
        return [f"{d[k]:.2f}" for k in keys]

    out = [
        f"contrastive-linear: L = -<W_I^T W_T, S> + rho/2 ||W_I^T W_T||_F^2 (rho = {ex['rho']:g}, p = {p}),",
        "  S = centred image-caption cross-covariance; optimum W_I^T W_T = SVD_p(S) / rho",
        "singular values of S: kept "
        + " ".join(f"{v:.3f}" for v in sv[:p])
        + " | next "
        + " ".join(f"{v:.3f}" for v in sv[p:]),
        "",
        "kept directions: share of each singular vector in the latent blocks ('other': view noise only)",
    ]
    keys = [*blocks, "other"]
    rows = [
        [str(i + 1), f"{d['sigma']:.3f}", *shares(d["image"], keys), *shares(d["caption"], keys)]
        for i, d in enumerate(ex["kept_directions"])
    ]
    head = ["#", "sigma", *(f"img:{k[:4]}" for k in keys), *(f"cap:{k[:4]}" for k in keys)]
    out += [_table(head, rows), ""]
    out.append("share of each block's dimensions inside the kept subspace:")
    out.append(
        _table(
            ["side", *blocks],
            [
                ["image", *shares(ex["capture_image"], blocks)],
                ["caption", *shares(ex["capture_caption"], blocks)],
            ],
        )
    )
    out += [
        "",
        "||Cov(image block, caption's class-name coordinates)||_F on the training pairs",
        "(untruncated, the image template of class k is D_I Cov(z, core_T) mu_k / rho):",
    ]
    out.append("  " + "  ".join(f"{b} {ex['cov_with_class_name'][b]:.3f}" for b in blocks))
    out += ["", "share (%) of the class-score variation on the ID test images carried by each block:"]
    out.append(
        _table(
            ["learner", *keys],
            [[name, *(f"{100 * d[k]:.1f}" for k in keys)] for name, d in ex["score_share"].items()],
        )
    )
    cf, tr = ex["closed_form"], ex["trained"]
    out += [
        "",
        _table(
            ["contrastive-linear", "id_acc", "shift_acc", "drop"],
            [
                ["closed form", *_numbers(cf)],
                [f"gradient descent ({spec['linear_steps']} steps)", *_numbers(tr)],
            ],
        ),
        "relative difference of the ID class scores, trained vs closed form: "
        f"{ex['trained_vs_closed_form']:.2g}",
    ]
    return "\n".join(out)


def _numbers(r: dict[str, float]) -> list[str]:
    return [f"{r['id_acc']:.2f}", f"{r['shift_acc']:.2f}", f"{r['drop']:+.2f}"]


def _fmt(v: Any) -> str:
    return ",".join(map(str, v)) if isinstance(v, list) else str(v)


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Aligned columns: text left-aligned, numbers right-aligned."""
    cols = list(zip(header, *rows, strict=True))
    widths = [max(len(c) for c in col) for col in cols]
    numeric = [all(_is_number(c) for c in col[1:]) for col in cols]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
