"""`clipshift bench ...`: benchmarks printing `name: value` lines (recorded in BENCHMARKS.md)."""

from __future__ import annotations

import argparse
from typing import Any

from clipshift.cli.common import add_command, add_group, emit_json


def register(sub: Any) -> None:
    g = add_group(
        sub,
        "bench",
        help="benchmarks: print `name: value` lines (see BENCHMARKS.md)",
        description="Benchmarks measured on this machine; figures go into BENCHMARKS.md with the command.",
        examples="  clipshift bench world\n  clipshift bench world --json\n",
    )
    p = add_command(
        g,
        "world",
        "rendering throughput (images/s with captions and ground truth) and memory of a 100k split",
        "Render the default world's training split (32x32 RGB, captions, ground truth) and report the "
        "median images/s over repeated passes; then hold a 100,000-sample split in memory and report its "
        "size (counted bytes and process RSS growth).",
        "  clipshift bench world\n  clipshift bench world --n 20000 --no-memory --json\n",
        _world,
    )
    from clipshift.cli.world import add_spec_args

    add_spec_args(p)
    p.add_argument("--n", type=int, default=50000, help="images per timed pass (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes (default: %(default)s)")
    p.add_argument("--memory-n", type=int, default=100_000, help="size of the in-memory split measured")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    p.add_argument("--json", action="store_true")


def print_figures(figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(figures)
    else:
        for k, v in figures.items():
            print(f"{k}: {v}")


def _world(args: argparse.Namespace) -> int:
    from clipshift.bench.world import render_throughput, split_memory
    from clipshift.cli.world import load_spec

    spec = load_spec(args)
    figures: dict[str, Any] = {}
    if not args.no_memory:  # first, so the RSS growth is not hidden by memory freed from the timing passes
        figures.update(split_memory(spec, args.memory_n))
    figures.update(render_throughput(spec, args.n, args.repeats))
    print_figures(figures, args.json)
    return 0
