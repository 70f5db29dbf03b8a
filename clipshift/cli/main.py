"""Entry point of the `clipshift` command."""

from __future__ import annotations

import argparse
import sys

from clipshift import __version__
from clipshift.errors import UserError

DESCRIPTION = """\
clipshift: controlled studies of language-image models (CLIP and relatives) under distribution shift.

State a study in one YAML file (vary objective x caption richness x spurious strength x seed, say);
clipshift trains the grid on a procedural image-caption world whose every sample carries its ground
truth (or on real data), evaluates each model in-distribution and under every shift, computes effective
robustness, common-vs-counter drops and long-tail statistics, and writes a report with confidence
intervals.
"""

EXAMPLES = """\
examples:
  clipshift demo                                  # a small study and its report, in about 3.5 minutes
  clipshift study run studies/spurious-backgrounds.yaml --out runs/bg --executor process --workers 2
  clipshift report runs/bg                        # runs/bg/report.html and the headline sentences
  clipshift train --out runs/clip && clipshift eval --model runs/clip --dataset iid --dataset counter
  clipshift robustness fit --reference imagenet-testbed --x val --y imagenet-r
  clipshift world preview --out grid.png          # see the default world at a glance
  clipshift world export --split train --n 2000 --format csv --out data/train
  clipshift world calibrate                       # are the world's effects measurable at CPU scale?
  clipshift theory --json                         # latent simulator: contrastive vs supervised
  clipshift bench world                           # rendering throughput on this machine
  clipshift COMMAND --help                        # every command explains itself with examples
"""


def build_parser() -> argparse.ArgumentParser:
    from clipshift.cli import bench, demo, evaluate, report, robustness, study, theory, train, world

    parser = argparse.ArgumentParser(
        prog="clipshift",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"clipshift {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    world.register(sub)
    theory.register(sub)
    train.register(sub)
    evaluate.register(sub)
    robustness.register(sub)
    study.register(sub)
    report.register(sub)
    bench.register(sub)
    demo.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"clipshift: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clipshift: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
