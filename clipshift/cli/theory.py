"""`clipshift theory`: the latent simulator of contrastive vs supervised learning under shift."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from clipshift.cli.common import add_command, add_set_arg, emit_json
from clipshift.errors import UserError

DESCRIPTION = """\
Latent-feature simulator of Xue et al. (ICLR 2024): linear contrastive (linearised loss or InfoNCE) and
supervised learners on z = [core; spurious; shared details; noise], with images x = D_I z + ξ and captions
t = D_T (annotated part of z) + ξ'. Reports ID accuracy, accuracy under the spurious shift, and the drop (%).
Every constant is a field of the spec (see --set); a run takes about a second on a laptop CPU.
"""

EXAMPLES = """\
  clipshift theory                                    # default spec: table of id_acc, shift_acc, drop
  clipshift theory --json                             # the same as JSON (spec + results)
  clipshift theory --set p_spurious=0.99 --set shift=flipped
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
    from clipshift.theory import TheorySpec, simulate, sweep

    data: dict[str, Any] = configio.read_mapping(args.config) if args.config else {}
    base = configio.validate(TheorySpec, data, source=args.config)  # file errors name the file first
    if args.overrides:
        data = configio.apply_overrides(data, args.overrides)
        base = configio.validate(TheorySpec, data, source="--set")
    axes = parse_sweep(args.sweep)

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
