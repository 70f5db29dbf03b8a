"""`clipshift train`: one run from a YAML config and/or flags into a run directory."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipshift.cli.common import LazyHelp, add_command, add_set_arg, emit_json, info

if TYPE_CHECKING:
    from clipshift.train import TrainConfig

EXAMPLES = """\
  clipshift train --out runs/clip                          # tiny CLIP on 20k samples of the default world
  clipshift train --objective supervised-cosine --out runs/sl --set data.world.backgrounds.rho=0.9
  clipshift train --config run.yaml --set optim.lr=1e-3 --out runs/a
  clipshift train --set data.kind=csv --set data.path=data/train/train.csv --out runs/csv
  torchrun --nproc_per_node 2 -m clipshift train --out runs/ddp   # DDP (gloo on CPU, nccl on GPUs)
"""


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "train",
        "train one model (CLIP, SigLIP, supervised, dynamic classification, ...) into a run directory",
        "Train one run. The run directory gets the resolved config (config.yaml), metrics.jsonl (loss, "
        "lr, samples/s per logging step), checkpoints/final.pt (open_clip-loadable for CLIP models) and "
        "final.json. Re-running the same command resumes from the latest checkpoint (a run that finished "
        "with the same config is reported, not retrained). A non-finite loss "
        "stops the run with a failure record naming the step. Print the full default config with "
        "`clipshift train --print-config`.",
        EXAMPLES,
        _train,
    )
    p.add_argument("--config", metavar="FILE", help="run config (YAML/JSON); flags and --set override it")
    add_set_arg(p, "optim.lr=1e-3")
    p.add_argument("--recipe", action=LazyHelp, help_from=_recipe_help)
    p.add_argument("--out", help="run directory (required unless --print-config)")
    p.add_argument("--objective", action=LazyHelp, help_from=_objective_help)
    p.add_argument("--model", help="open_clip architecture (default clipshift-rn-tiny)")
    p.add_argument("--pretrained", help="local checkpoint to start from")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the final record as JSON")


def _objective_help() -> str:
    from clipshift.objectives import OBJECTIVES

    return f"training objective: {', '.join(OBJECTIVES)} (default clip)"


def _recipe_help() -> str:
    from clipshift.train.recipes import RECIPES

    listed = "; ".join(f"{r.name}: {r.summary}" for r in RECIPES.values())
    return f"apply a named recipe over --config (flags and --set override it): {listed}"


def load_train_config(args: argparse.Namespace) -> TrainConfig:
    from clipshift import configio
    from clipshift.data.config import parse_data_config, with_default_source
    from clipshift.train import TrainConfig

    data = configio.read_mapping(args.config) if args.config else {}
    shortcuts = {
        "objective.name": args.objective,
        "model.name": args.model,
        "model.pretrained": args.pretrained,
        "epochs": args.epochs,
        "optim.batch_size": args.batch_size,
        "optim.lr": args.lr,
        "seed": args.seed,
        "threads": args.threads,
    }
    sets = [f"{k}={v}" for k, v in shortcuts.items() if v is not None] + list(args.set)
    if getattr(args, "recipe", None):
        from clipshift.train.recipes import get_recipe

        sets = get_recipe(args.recipe).overrides() + sets
    data = with_default_source(configio.apply_overrides(data, sets))
    source = args.config or "train config"
    if isinstance(data.get("data"), dict):
        parse_data_config(data["data"], source, prefix="data")  # clearer messages than the union's
    return configio.validate(TrainConfig, data, source)


def _train(args: argparse.Namespace) -> int:
    import yaml

    from clipshift.errors import UserError
    from clipshift.train import RunFailed, train

    cfg = load_train_config(args)
    if args.print_config:
        print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
        return 0
    if not args.out:
        raise UserError("--out is required: the run directory")
    speaks = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 speaks for the run
    try:
        record = train(cfg, Path(args.out), resume=not args.no_resume, progress=not args.quiet)
    except RunFailed as e:
        if speaks:
            info(f"run failed: {e} (record: {Path(args.out) / 'final.json'})")
        return 1
    if not speaks:
        return 0
    if args.json:
        emit_json(record)
    else:
        info(
            f"done: {record['steps']} steps, {record['samples_per_s']} samples/s, final loss "
            f"{record['final_loss']:.4f}"
        )
        print(Path(args.out) / "checkpoints" / "final.pt")
    return 0
