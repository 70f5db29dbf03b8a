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
        examples="  clipshift bench world\n  clipshift bench train\n  clipshift bench eval\n"
        "  clipshift bench demo\n"
        "  clipshift bench learn\n"
        "  clipshift bench world --json\n",
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
    _register_train(g)
    _register_eval(g)
    _register_demo(g)
    _register_learn(g)
    p.add_argument("--n", type=int, default=50000, help="images per timed pass (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes (default: %(default)s)")
    p.add_argument("--memory-n", type=int, default=100_000, help="size of the in-memory split measured")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    p.add_argument("--json", action="store_true")


def _register_train(g: Any) -> None:
    p = add_command(
        g,
        "train",
        "training throughput and FLOP efficiency of the tiny CLIP, and the same model in open_clip's trainer",
        "Train the default tiny CLIP model on world data and report steady-state samples/s, the model's "
        "FLOPs per sample (forward + backward), the achieved GFLOP/s against a matmul peak measured in "
        "the same process, and — unless --no-openclip — the same architecture, batch and image size in "
        "open_clip's own training program (python -m open_clip_train.main, fp32, CSV exported from the "
        "same world data, best of the tried --workers).",
        "  clipshift bench train\n  clipshift bench train --no-openclip --steps 20 --json\n",
        _train,
    )
    p.add_argument("--model", default=None, help="architecture (default: clipshift-rn-tiny)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=30, help="timed steps after warm-up (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="untimed warm-up steps (default: %(default)s)")
    p.add_argument(
        "--workers", default="0,1,2", help="open_clip --workers values to try (default: %(default)s)"
    )
    p.add_argument("--no-openclip", action="store_true", help="skip the open_clip comparison")
    p.add_argument(
        "--no-torchcompile",
        action="store_true",
        help="do not also try open_clip with --torchcompile (its compilation takes about a minute)",
    )
    p.add_argument("--json", action="store_true")


def _train(args: argparse.Namespace) -> int:
    from clipshift.bench.train import bench_train
    from clipshift.models import DEFAULT_MODEL

    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    figures = bench_train(
        args.model or DEFAULT_MODEL,
        args.batch_size,
        args.steps,
        args.warmup,
        workers,
        with_openclip=not args.no_openclip,
        torchcompile=not args.no_torchcompile,
    )
    print_figures(figures, args.json)
    return 0


def _register_eval(g: Any) -> None:
    p = add_command(
        g,
        "eval",
        "zero-shot evaluation speed and accuracy of the tiny CLIP, and CLIP_benchmark's on the same images",
        "Train the default tiny CLIP briefly on default-world data (once; reused from --cache), render an "
        "iid evaluation set and time clipshift's zero-shot evaluation (median of --repeats, text side "
        "included). Export the same images as an ImageFolder of PNGs; time clipshift on it with a cold "
        "decoded-image cache, and CLIP_benchmark's zero-shot evaluate (in this process, same model object, "
        "class names and templates, torchvision ImageFolder + open_clip's eval transform, fp32, best of the "
        "tried DataLoader workers). Accuracies must be identical. Then the same comparison for a "
        "random-initialised ViT-B-32 at 224 px (--large-arch; large_* figures, alternated passes, medians, "
        "with the load average before and after).",
        "  clipshift bench eval\n  clipshift bench eval --n 2000 --steps 100 --json\n"
        "  clipshift bench eval --large-n 512 --repeats 5\n  clipshift bench eval --large-arch ''\n",
        _eval,
    )
    p.add_argument("--n", type=int, default=4000, help="evaluation images (default: %(default)s)")
    p.add_argument(
        "--steps", type=int, default=300, help="training steps of the model (default: %(default)s)"
    )
    p.add_argument("--batch-size", type=int, default=128, help="training batch size (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed clipshift passes (default: %(default)s)")
    p.add_argument(
        "--workers", default="0,2", help="CLIP_benchmark DataLoader workers to try (default: %(default)s)"
    )
    p.add_argument("--cb-batch-size", type=int, default=256, help="CLIP_benchmark batch size")
    p.add_argument(
        "--cache", metavar="DIR", help="where the trained model is kept (default: ~/.cache/clipshift)"
    )
    p.add_argument("--no-clip-benchmark", action="store_true", help="skip the CLIP_benchmark comparison")
    p.add_argument(
        "--large-arch",
        default="ViT-B-32",
        metavar="ARCH",
        help="open_clip architecture timed at its own resolution, random-initialised ('' to skip; "
        "default: %(default)s)",
    )
    p.add_argument("--large-n", type=int, default=256, help="images for --large-arch (default: %(default)s)")
    p.add_argument("--json", action="store_true")


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from clipshift.bench.eval import bench_eval
    from clipshift.errors import UserError

    for flag in ("n", "steps", "batch_size", "repeats", "cb_batch_size", "large_n"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be ≥ 1, got {getattr(args, flag)}")
    if args.large_arch:
        from clipshift.models import list_models

        if args.large_arch not in list_models():
            raise UserError(f"--large-arch {args.large_arch!r}: not an open_clip architecture")
    workers = tuple(int(w) for w in args.workers.split(",") if w.strip())
    figures = bench_eval(
        n=args.n,
        steps=args.steps,
        batch_size=args.batch_size,
        cb_batch_sizes=(args.cb_batch_size,),
        cb_workers=workers or (0,),
        repeats=args.repeats,
        cache=Path(args.cache) if args.cache else None,
        with_clip_benchmark=not args.no_clip_benchmark,
        large_arch=args.large_arch or None,
        large_n=args.large_n,
    )
    print_figures(figures, args.json)
    return 0


def _register_demo(g: Any) -> None:
    p = add_command(
        g,
        "demo",
        "wall time of `clipshift demo` from scratch (target: 5 minutes on 2 CPU cores)",
        "Run the whole `clipshift demo` command in a new temporary directory (no runs reused: every model "
        "is trained, evaluated and reported) and print the median wall time, start-up included.",
        "  clipshift bench demo\n  clipshift bench demo --repeats 3 --json\n",
        _demo,
    )
    p.add_argument("--repeats", type=int, default=1, help="timed runs (default: %(default)s)")
    p.add_argument("--json", action="store_true")


def _demo(args: argparse.Namespace) -> int:
    from clipshift.bench.demo import bench_demo
    from clipshift.errors import UserError

    if args.repeats < 1:
        raise UserError(f"--repeats must be ≥ 1, got {args.repeats}")
    print_figures(bench_demo(args.repeats), args.json)
    return 0


def _register_learn(g: Any) -> None:
    p = add_command(
        g,
        "learn",
        "does CLIP learn a 100-class world within 10 minutes on this machine? (zero-shot and supervised)",
        "Train CLIP and the supervised model with their CPU recipes (`clipshift train --recipe`, listed "
        "by `clipshift train --help`) on the default world with --classes classes and full captions, "
        "then score both on the same class-balanced iid samples: CLIP zero-shot, the supervised model "
        "by its head. Prints the accuracies (clip_zeroshot_acc_<K>cls, supervised_acc_<K>cls), each "
        "training's wall time (rendering included) against --budget-s, samples/s, and the learning "
        "curve (accuracy after 25/50/75/100 % of the samples, same evaluation samples).",
        "  clipshift bench learn\n  clipshift bench learn --classes 10 --json\n"
        "  clipshift bench learn --set data.n=100000   # a shorter run of the same recipes\n",
        _learn,
    )
    p.add_argument("--classes", type=int, default=100, help="classes of the world (default: %(default)s)")
    p.add_argument("--clip-recipe", default="clip-cpu", help="CLIP's recipe (default: %(default)s)")
    p.add_argument(
        "--supervised-recipe", default="supervised-cpu", help="the classifier's recipe (default: %(default)s)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--budget-s", type=float, default=600.0, help="training budget, s (default: %(default)s)")
    p.add_argument("--eval-n", type=int, default=5000, help="iid evaluation samples (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--out", default=None, help="keep the two runs here (default: a temporary directory)")
    p.add_argument(
        "--set", action="append", default=[], metavar="PATH=VALUE", help="override both recipes' setting"
    )
    p.add_argument("--json", action="store_true")


def _learn(args: argparse.Namespace) -> int:
    from pathlib import Path

    from clipshift.bench.learn import bench_learn
    from clipshift.errors import UserError

    for flag in ("classes", "eval_n"):
        if getattr(args, flag) < 2:
            raise UserError(f"--{flag.replace('_', '-')} must be ≥ 2, got {getattr(args, flag)}")
    figures = bench_learn(
        classes=args.classes,
        clip_recipe=args.clip_recipe,
        supervised_recipe=args.supervised_recipe,
        budget_s=args.budget_s,
        eval_n=args.eval_n,
        threads=args.threads,
        out=Path(args.out) if args.out else None,
        extra=tuple(args.set),
        progress=not args.quiet,
    )
    print_figures(figures, args.json)
    return 0


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
