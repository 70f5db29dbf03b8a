"""`clipshift world ...`: preview, export, describe, calibrate and print the procedural world."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from clipshift.cli.common import add_command, add_group, add_set_arg, emit_json, info

_LIST_MAX = 24  # longer lists are cut in the text output (--json has everything)
# the same as clipshift.world.export.FORMATS (a test checks); literal here so --help needs no torch
EXPORT_FORMATS = ("imagefolder", "csv", "wds", "counteranimal", "imagenet-captions")


def add_spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", metavar="FILE", help="world spec (YAML or JSON); default: the default world")
    p.add_argument(
        "--scale",
        type=int,
        metavar="K",
        help="start from the K-class preset: superclasses, habitats, colours, patterns and sizes grown with "
        "K (K ≤ 16: the default world with K classes); --spec and --set override it",
    )
    add_set_arg(p, "backgrounds.rho=0.9")


def load_spec(args: argparse.Namespace) -> Any:
    from clipshift import configio
    from clipshift.world import WorldSpec
    from clipshift.world.hierarchy import scale_overrides

    data = configio.read_mapping(args.spec) if args.spec else {}
    data = data.get("world", data) if isinstance(data.get("world"), dict) else data
    if getattr(args, "scale", None) is not None:
        preset = scale_overrides(args.scale)
        for block, values in data.items():  # the file's fields win over the preset's
            preset[block] = {**preset[block], **values} if isinstance(preset.get(block), dict) else values
        data = preset
    data = configio.apply_overrides(data, args.set)
    source = args.spec or "world spec"
    if getattr(args, "scale", None) is not None:
        source += f" (--scale {args.scale})"
    if args.set:
        source += " (with --set " + ", ".join(args.set) + ")"
    return configio.validate(WorldSpec, data, source)


def register(sub: Any) -> None:
    # torch-free: the split names come from the shift registry, so a new domain or corruption shows here
    from clipshift.world import shifts
    from clipshift.world.evalsets import split_names

    g = add_group(
        sub,
        "world",
        help="the procedural image-caption world: preview, export, describe, calibrate",
        description="The procedural world: K concepts with core shapes, shared details, habitats with a "
        f"spurious strength rho, domains ({', '.join(shifts.domain_names())}), corruptions "
        f"({', '.join(shifts.corruption_names())}), captions at four levels of detail, class-frequency "
        "profiles and open-world concepts. Every sample carries its ground truth.",
        examples="  clipshift world preview --out grid.png\n"
        "  clipshift world export --split counter --n 500 --format counteranimal --out data/ca\n"
        "  clipshift world calibrate --set backgrounds.salience=0.3\n",
    )

    p = add_command(
        g,
        "spec",
        "print the full default spec (or a spec with overrides) as YAML",
        "Print a complete world spec, every field with its value: a starting point for your own.",
        "  clipshift world spec > world.yaml\n  clipshift world spec --set concepts.n_classes=20 --json\n"
        "  clipshift world spec --scale 1000 > imagenet-scale.yaml\n",
        _spec,
    )
    add_spec_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")

    p = add_command(
        g,
        "preview",
        "one picture of the world: a row per class, columns across domains, habitats, corruptions",
        "Render a grid with a row per class and columns across domains, common/counter backgrounds, "
        "corruptions and pose, with each tile's caption under it.",
        "  clipshift world preview --out grid.png\n"
        "  clipshift world preview --spec world.yaml --classes 6 --out small.png\n",
        _preview,
    )
    add_spec_args(p)
    p.add_argument("--out", default="world-preview.png", help="output PNG (default: %(default)s)")
    p.add_argument("--classes", type=int, default=None, help="rows to show (default: all, at most 12)")

    p = add_command(
        g,
        "export",
        "write a split in real formats: imagefolder, csv (open_clip), wds (webdataset), counteranimal",
        "Export a split of the world to disk in a format other tools read. Written atomically: an "
        "interrupted export leaves nothing at --out. Formats: imagefolder (PNG per class folder), csv "
        "(open_clip's tab-separated filepath/title), wds (webdataset tar shards with .png/.txt/.json), "
        "counteranimal (<index name>/<common|counter>/...).",
        "  clipshift world export --split train --n 10000 --format csv --out data/train\n"
        "  clipshift world export --split sketch --n 1000 --format imagefolder --out data/sketch\n"
        "  clipshift world export --split train --n 50000 --format wds --shard-size 5000 --out shards\n"
        "  clipshift world export --n 500 --format counteranimal --out data/counteranimal\n",
        _export,
    )
    add_spec_args(p)
    p.add_argument(
        "--split",
        default="train",
        help=f"{split_names()} (default: %(default)s)",
    )
    p.add_argument("--n", type=int, default=1000, help="number of samples (default: %(default)s)")
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--shard-size", type=int, default=1000, help="samples per webdataset shard")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")

    p = add_command(
        g,
        "describe",
        "the spec and summary statistics of a split (class frequencies, habitats, domain mix)",
        "Summarise a split without rendering it: class counts and imbalance, background/class "
        "co-occurrence, fraction on the common background, domain mix, example captions.",
        "  clipshift world describe --json\n"
        "  clipshift world describe --set frequency.profile=zipf --set frequency.alpha=1.5 --n 50000\n",
        _describe,
    )
    add_spec_args(p)
    p.add_argument("--split", default="train", help=f"{split_names()} (default: %(default)s)")
    p.add_argument("--n", type=int, default=10000, help="number of samples (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add_command(
        g,
        "calibrate",
        "are this world's effects measurable? core learnability and shortcut strength by a probe",
        "Train the default tiny image tower for a fixed budget twice — with rho = 0 (core learnability, "
        f"cost of each domain shift: {', '.join(shifts.shifted_domains())}) and with a strong rho "
        "(background shortcut: common vs counter) — and report "
        "how predictive colour, pattern, size and background are of the class. Takes about two minutes "
        "with the default budget on a 2-core CPU.",
        "  clipshift world calibrate\n"
        "  clipshift world calibrate --set backgrounds.salience=0.3 --samples 20000 --json\n",
        _calibrate,
    )
    add_spec_args(p)
    p.add_argument(
        "--samples", type=int, default=40000, help="training samples per probe (default: %(default)s)"
    )
    p.add_argument("--rho", type=float, default=0.95, help="spurious strength of the second probe")
    p.add_argument("--model", default=None, help="image tower (an open_clip architecture name)")
    p.add_argument("--eval-n", type=int, default=2000, help="samples per evaluation set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _spec(args: argparse.Namespace) -> int:
    import yaml

    spec = load_spec(args)
    every_field = spec.model_dump(mode="json", context={"complete": True})  # the scale fields too
    if args.json:
        emit_json(every_field)
    else:
        print(yaml.safe_dump(every_field, sort_keys=False), end="")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from clipshift.world import World
    from clipshift.world.preview import render_preview

    path = render_preview(World(load_spec(args)), Path(args.out), n_classes=args.classes)
    print(path)
    return 0


def _export(args: argparse.Namespace) -> int:
    from clipshift.errors import UserError
    from clipshift.world import World
    from clipshift.world.export import export_split

    if args.n < 1:
        raise UserError(f"--n must be ≥ 1, got {args.n}")
    manifest = export_split(
        World(load_spec(args)),
        args.split,
        args.n,
        args.format,
        Path(args.out),
        shard_size=args.shard_size,
        overwrite=args.overwrite,
    )
    info(f"wrote {manifest.get('n_images', args.n)} images ({args.format}) to {args.out}")
    print(args.out)
    return 0


def _describe(args: argparse.Namespace) -> int:
    from clipshift.world import World, parse_split
    from clipshift.world.describe import describe_split

    parse_split(args.split)
    d = describe_split(World(load_spec(args)), args.split, args.n)
    if args.json:
        emit_json(d)
        return 0
    imb = d["class_frequency_imbalance"]
    imbalance = "n/a" if imb is None else f"{imb:.2f}"
    print(
        f"split {d['split']}: {d['n']} samples, {len(d['class_names'])} classes, "
        f"imbalance max/median {imbalance}"
    )
    counts = [f"{n}={c}" for n, c in zip(d["class_names"], d["class_counts"])]
    more = f", … ({len(counts) - _LIST_MAX} more)" if len(counts) > _LIST_MAX else ""
    print("class counts: " + ", ".join(counts[:_LIST_MAX]) + more)
    if "superclass_names" in d:
        names, family = d["superclass_names"], d["superclass_of"]
        members = [[c for c, f in zip(d["class_names"], family) if f == s] for s in range(len(names))]
        print(f"superclasses: {len(names)}, {len(d['class_names']) / len(names):.1f} classes each")
        for s in range(min(len(names), _LIST_MAX)):
            kids = ", ".join(members[s][:6]) + (", …" if len(members[s]) > 6 else "")
            print(f"  {names[s]} ({len(members[s])} classes, {d['superclass_counts'][s]} samples): {kids}")
        if len(names) > _LIST_MAX:
            print(f"  … ({len(names) - _LIST_MAX} more)")
    print(f"on the class's common background: {100 * d['common_fraction']:.1f} %")
    print("domain mix: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in d["domain_mix"].items()))
    for c in d["example_captions"]:
        print(f"  “{c}”")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from clipshift.calibrate import calibrate, format_report
    from clipshift.errors import UserError

    if args.samples < 256:
        raise UserError(f"--samples must be ≥ 256, got {args.samples}")
    if not 0.0 <= args.rho <= 1.0:
        raise UserError(f"--rho must be in [0, 1], got {args.rho}")
    report = calibrate(load_spec(args), args.samples, args.rho, args.model, args.eval_n, args.seed)
    if args.json:
        emit_json(report)
    else:
        print(format_report(report))
    return 0
