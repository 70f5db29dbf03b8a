"""`clipshift study plan|run|status|export`: a grid of runs from one YAML spec."""

from __future__ import annotations

import argparse
from typing import Any

from clipshift.cli.common import add_command, add_group, add_set_arg, emit_json, info

GROUP_EXAMPLES = """\
  clipshift study plan study.yaml                       # list the runs (id, factors), run nothing
  clipshift study run study.yaml --out studies/bg       # train and evaluate every run; re-run to continue
  clipshift study status studies/bg                     # done / running / failed / pending
  clipshift study export studies/bg --format csv --out bg.csv
"""

SPEC_HELP = """\
A study file (YAML):

  name: spurious-backgrounds
  base:                                # a full run config (clipshift train's + eval:); defaults fill in
    data: {kind: world, n: 8000, world: {backgrounds: {rho: 0.9}}}
    epochs: 2
    eval: {sets: [iid, common, counter], n_per_set: 1000}
  grid:                                # dotted path -> values; the runs are the cartesian product
    objective.name: [clip, supervised]
    data.world.backgrounds.rho: [0.5, 0.9]
  zip:                                 # optional groups of axes that vary together, crossed with the grid
    - {data.n: [4000, 16000], optim.batch_size: [128, 256]}
  seeds: [0, 1, 2]
  profiles:                            # named overrides of base (--profile NAME); may also set seeds
    quick: {data.n: 4000, epochs: 1}
    full: {device: cuda, data.n: 200000}
  profile: quick                       # the default profile
  analyses:
    - {kind: spurious_drop, compare: objective.name}

An evaluation study trains nothing: `models:` lists existing checkpoints (any --model spec of
`clipshift eval`), each evaluated under base (eval, world, probe_train, threads, device), crossed with any
grid:

  name: zoo
  models:
    - {name: openai-rn50, model: /models/openai/RN50.pt, family: clip}
    - {name: my-rn50, model: "RN50:/models/oct/epoch_32.pt", family: clip}
    - {name: sup, model: runs/supervised, family: imagenet}
    - {name: tv-rn50, model: "tv:resnet50:/models/tv/resnet50-0676ba61.pth", family: imagenet}
  base: {eval: {sets: ["imagenet:/data/imagenet/val", "imagenet-r:/data/imagenet-r"], templates: openai}}
  analyses:
    - {kind: effective_robustness, x: "imagenet:/data/imagenet/val", baseline: {family: imagenet},
       compare: family}

Its runs carry the factors `model` (the name) and `family` (default: clip, classifier or
imagenet_classifier); a run's id
hashes the checkpoint's content (sha256 of the files its loader reads), not its path.

A training run's id is a hash of its resolved config (log_every, checkpoint_every and the image caches
excluded), so runs are shared by specs that resolve identically. It includes `threads` (default 2): on CPU the
numbers depend on the thread count, so every executor runs a run with its own count, and under Ray a run
reserves that many CPUs. --set PATH=VALUE wins over the profile:
a run-config path (epochs=1, data.n=512) is set into base, a study key (seeds=[0], grid.AXIS=[...],
zip=[]) edits the study.
"""

PLAN_EXAMPLES = """\
  clipshift study plan study.yaml
  clipshift study plan study.yaml --profile full --json
  clipshift study plan study.yaml --set seeds=[0] --set epochs=1
"""

RUN_EXAMPLES = """\
  clipshift study run study.yaml --out studies/bg                          # in this process
  clipshift study run study.yaml --out studies/bg --executor process --workers 4
  clipshift study run study.yaml --out studies/bg --executor ray           # a local Ray instance
  clipshift study run study.yaml --out studies/bg --executor ray --address 10.0.0.5:6379 --profile full
  clipshift study run study.yaml --out studies/bg --retry-failed           # run the failed runs again
"""

STATUS_EXAMPLES = """\
  clipshift study status studies/bg
  clipshift study status studies/bg --json | jq '.counts'
"""

EXPORT_EXAMPLES = """\
  clipshift study export studies/bg --format csv --out bg.csv
  clipshift study export studies/bg --format parquet --out bg.parquet     # needs pyarrow
"""


def register(sub: Any) -> None:
    group = add_group(
        sub,
        "study",
        "plan, run and inspect a study: a grid of runs from one YAML spec",
        "A study trains and evaluates every run of a grid (axes by dotted run-config path, zipped axes, "
        "seeds), or evaluates given checkpoints (an evaluation study, `models:`), "
        "and keeps one tidy row per (run, eval set, metric) in STUDY_DIR/results.sqlite. Runs live "
        "in STUDY_DIR/runs/<run id>/; a completed run has a `done` marker and is never retrained, an "
        "interrupted one resumes from its checkpoint, a failed one is recorded with its reason.\n\n"
        + SPEC_HELP,
        GROUP_EXAMPLES,
    )

    p = add_command(
        group,
        "plan",
        "list a study's runs (id, factors) without running anything",
        "Expand the grid, zip axes and seeds into run configs, validate every one, and list them. A factor "
        "that provably cannot act is warned about on stderr (an axis that cannot reach some runs, e.g. "
        "captions under a supervised objective; dynamic_k not above the classes a batch holds).\n\n"
        + SPEC_HELP,
        PLAN_EXAMPLES,
        _plan,
    )
    _spec_args(p)
    p.add_argument("--json", action="store_true", help="print the runs (with full configs) as JSON")

    p = add_command(
        group,
        "run",
        "train and evaluate every run of a study (skips done runs, resumes interrupted ones)",
        "Run a study into --out. Re-running the same command continues it: done runs are skipped, runs "
        "interrupted mid-training resume from their checkpoint, failed runs are kept as failed unless "
        "--retry-failed. One line per run start and finish, and an overall bar, go to stderr; so do, first, "
        "the plan's warnings of factors that cannot act (also kept in the store's meta `warnings`). The "
        "exit code is 1 when any run failed.",
        RUN_EXAMPLES,
        _run,
    )
    _spec_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="the study directory")
    p.add_argument(
        "--executor",
        choices=["local", "process", "ray"],
        default="local",
        help="local: one run at a time in this process (default); process: a pool of --workers processes; "
        "ray: Ray tasks (pip install 'clipshift[ray]')",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="runs at once (process: default CPU count // the runs' threads; ray: a cap, each run "
        "reserving its own threads)",
    )
    p.add_argument("--address", metavar="HOST:PORT", help="Ray cluster to join (default: start a local one)")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--quiet", action="store_true", help="no progress lines or bar, only the summary")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = add_command(
        group,
        "status",
        "show which runs of a study are done, running, failed or pending",
        "Read STUDY_DIR: every planned run with its state (from its run directory: `done` marker, a process "
        "holding it, failure record) and, for done runs, wall time and samples/s.",
        STATUS_EXAMPLES,
        _status,
    )
    p.add_argument("study_dir", metavar="STUDY_DIR")
    p.add_argument("--json", action="store_true", help="machine-readable")

    p = add_command(
        group,
        "export",
        "write a study's results as one tidy table (CSV or Parquet)",
        "Columns: study, run_id, one column per factor (grid and zip axes), seed, eval_set, metric, "
        "class_id (-1 for scalar metrics), value. Only done runs are included.",
        EXPORT_EXAMPLES,
        _export,
    )
    p.add_argument("study_dir", metavar="STUDY_DIR")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv")
    p.add_argument("--out", required=True, metavar="FILE")


def _spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="STUDY.yaml", help="the study file")
    p.add_argument("--profile", help="a profile of the study file (default: its `profile`)")
    add_set_arg(p, "epochs=1 or --set seeds=[0]")


def _plan(args: argparse.Namespace) -> int:
    from clipshift.study import load_study, plan, resolve
    from clipshift.study.inert import plan_warnings

    spec = resolve(load_study(args.spec), args.profile, args.set)
    runs = plan(spec)
    warnings = plan_warnings(spec, runs)
    for w in warnings:
        info(f"warning: {w}")
    if args.json:
        emit_json(
            {
                "name": spec.name,
                "profile": spec.profile_used,
                "warnings": warnings,
                "runs": [
                    {
                        "run_id": r.run_id,
                        "factors": r.factors,
                        "seed": r.seed,
                        "config": r.config.model_dump(mode="json"),
                        **({"checkpoint": r.checkpoint} if r.checkpoint is not None else {}),
                    }
                    for r in runs
                ],
            }
        )
        return 0
    axes = spec.axes()
    if spec.evaluates:  # no seeds; the start of the weights' sha256 instead (as `sha256sum` prints it)
        header = ["run_id", *axes, "weights_sha256"]
        table = [
            [
                r.run_id,
                *[_show(r.factors.get(a)) for a in axes],
                (r.checkpoint or {})["files"]["weights"][:12],
            ]
            for r in runs
        ]
    else:
        header = ["run_id", *axes, "seed"]
        table = [[r.run_id, *[_show(r.factors.get(a)) for a in axes], str(r.seed)] for r in runs]
    _print_table(header, table)
    shared = spec.n_points() - len(runs)
    note = f" ({shared} grid points resolve to another point's config and share its run)" if shared else ""
    profile = f", profile {spec.profile_used}" if spec.profile_used else ""
    info(f"study {spec.name}{profile}: {len(runs)} runs{note}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from clipshift.study import run_study

    summary = run_study(
        args.spec,
        args.out,
        profile=args.profile,
        overrides=args.set,
        executor=args.executor,
        workers=args.workers,
        address=args.address,
        retry_failed=args.retry_failed,
        progress=not args.quiet,
    )
    if args.json:
        emit_json(
            {
                "name": summary.name,
                "dir": str(summary.out_dir),
                "total": summary.total,
                "done": summary.done,
                "skipped": summary.skipped,
                "ran": summary.ran,
                "failed": summary.failed,
                "pending": summary.pending,
                "wall_s": round(summary.wall_s, 2),
                "failures": summary.failures,
                "warnings": summary.warnings,
            }
        )
    for f in summary.failures:
        info(f"failed {f['run_id']} ({_label(f['factors'], f['seed'])}): {f['reason']}")
    info(summary.line())
    return 0 if summary.ok else 1


def _status(args: argparse.Namespace) -> int:
    from clipshift.study import study_status

    st = study_status(args.study_dir)
    if args.json:
        emit_json(st)
        return 0
    axes: list[str] = []
    for r in st["runs"]:
        axes += [a for a in r["factors"] if a not in axes]
    header = ["run_id", "status", *axes, "seed", "wall_s", "note"]
    table = []
    for r in st["runs"]:
        note = r.get("reason") or ("resumes from its checkpoint" if r.get("resumable") else "")
        wall = f"{r['wall_s']:.1f}" if r.get("wall_s") is not None else ""
        table.append(
            [
                r["run_id"],
                r["status"],
                *[_show(r["factors"].get(a)) for a in axes],
                str(r["seed"]),
                wall,
                note,
            ]
        )
    _print_table(header, table)
    c = st["counts"]
    print(
        f"study {st['name']}: {st['total']} runs: {c['done']} done, {c['running']} running, "
        f"{c['failed']} failed, {c['pending']} pending"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from clipshift.study.export import export_results

    n = export_results(args.study_dir, args.format, args.out)
    info(f"{n} rows -> {args.out}")
    return 0


def _weights_sha(identity: dict[str, Any] | None) -> str:
    return str(((identity or {}).get("files") or {}).get("weights", ""))[:12]


def _show(v: Any) -> str:
    import json

    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


def _label(factors: dict[str, Any], seed: int) -> str:
    return " ".join([*(f"{k}={_show(v)}" for k, v in factors.items()), f"seed={seed}"])


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
