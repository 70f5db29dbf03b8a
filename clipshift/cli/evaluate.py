"""`clipshift eval`: evaluate a model on datasets; CLIP_benchmark-shaped result JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from clipshift.cli.common import add_command, emit_json, info

EXAMPLES = """\
  clipshift eval --model runs/clip --dataset iid --dataset counter --out result.json
  clipshift eval --model runs/clip --dataset imagefolder:data/sketch --templates openai --json
  clipshift eval --model runs/clip --dataset counteranimal:data/ca --out ca.json
  clipshift eval --model RN50:weights/rn50.pt --dataset imagenet-r:/data/imagenet-r --templates openai
  clipshift eval --model tv:resnet50:weights/resnet50-0676ba61.pth --dataset imagenet-r:/data/imagenet-r
  clipshift eval --model timm:convnext_tiny.fb_in1k:weights/model.safetensors --dataset objectnet:/data/on
  clipshift eval --model runs/clip --dataset csv:data/val/val.csv          # retrieval recall@1/5/10
  clipshift eval --model runs/clip --dataset iid --task linear_probe --few-shot 16
  clipshift eval --model runs/sl --dataset iid --out '{dataset}_{task}.json'   # one file per result
"""


def _description() -> str:
    """The command's help, with the dataset layouts and tasks read from their registries."""
    from clipshift.evaluate.datasets import dataset_help
    from clipshift.evaluate.tasks import TASKS

    tasks = "\n".join(f"  {t.name}: {t.help}" for t in TASKS)
    return (
        "Evaluate a model on one or more datasets. --model is a clipshift run directory (CLIP runs are "
        "evaluated zero-shot, classifier runs with their own head), a checkpoint file, ARCH:PATH for any "
        "open_clip architecture with a local checkpoint, an open_clip snapshot folder as the Hugging Face "
        "hub keeps them (open_clip_config.json + open_clip_model.safetensors), hf-hub:ORG/NAME from "
        "the local Hugging Face cache, an OpenAI TorchScript archive (RN50.pt, ViT-B-32.pt), or a "
        "supervised ImageNet classifier, tv:ARCH:PATH (torchvision) or timm:ARCH:PATH (timm) with a local "
        "state dict, scored by its own 1,000-way head over each set's ImageNet classes with its own "
        "preprocessing; nothing is downloaded. The result JSON has "
        "CLIP_benchmark's fields (dataset, model, pretrained, task, metrics with acc1, acc5, "
        "mean_per_class_recall as fractions) plus per-class accuracy, prediction counts, the confusion "
        "matrix and per-group metrics.\n\n"
        f"--dataset is {dataset_help()}\n\n--task is one of:\n{tasks}"
    )


def register(sub: Any) -> None:
    from clipshift.evaluate.tasks import TASKS

    p = add_command(
        sub,
        "eval",
        "evaluate a model: zero-shot, its own head, linear probe, kNN, retrieval; CLIP_benchmark-shaped JSON",
        _description(),
        EXAMPLES,
        _eval,
    )
    p.add_argument(
        "--model",
        required=True,
        help="run directory, checkpoint file, ARCH:PATH, snapshot folder, hf-hub:ORG/NAME (local cache), "
        "or an ImageNet classifier tv:ARCH:PATH / timm:ARCH:PATH",
    )
    p.add_argument("--pretrained", metavar="PATH", help="local checkpoint for --model ARCH (or tv:ARCH)")
    p.add_argument(
        "--dataset",
        action="append",
        required=True,
        metavar="SPEC",
        help="world set name or KIND:PATH (repeatable; the kinds are listed above)",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="result JSON; several results make a list, unless FILE has {dataset} / {task} (one file each)",
    )
    p.add_argument(
        "--templates", default=None, help="world, openai (80), simple, single, or a file (default: world for "
        "world data, openai otherwise)"
    )  # fmt: skip
    p.add_argument("--classnames", metavar="FILE", help="class names, one per line, in label order")
    p.add_argument(
        "--task",
        choices=TASKS.names(),
        default=None,
        help="default: zeroshot_classification (retrieval for csv:)",
    )
    p.add_argument("--n", type=int, default=2000, help="samples per world set (default: %(default)s)")
    p.add_argument("--world", metavar="FILE", help="world spec for world sets (default: the run's world)")
    p.add_argument(
        "--probe-train",
        metavar="SPEC",
        help="linear probe / kNN training data (default: fresh world iid samples, or half of each dataset)",
    )
    p.add_argument("--probe-n", type=int, default=2000, help="world samples the probe learns from")
    p.add_argument(
        "--few-shot", type=int, metavar="K", help="linear probe / kNN: K training samples per class"
    )
    p.add_argument("--knn-k", type=int, default=20)
    p.add_argument("--group-by", default="background,domain", help="world factors for group accuracies")
    p.add_argument("--min-group-size", type=int, default=10)
    p.add_argument(
        "--confusable-n",
        default="20",
        metavar="N[,N…]",
        help="also score acc1 against each class's N most confusable classes only (acc1_vs{N}_confusable; "
        "'' for none; default: %(default)s)",
    )
    p.add_argument(
        "--confusable",
        metavar="FILE",
        help="JSON {class name: [confusable class names]} for non-world datasets (world sets: the world's)",
    )
    p.add_argument("--objectnet-mappings", metavar="DIR", help="ObjectNet's mappings/ folder")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the result JSON instead of the summary")


def _world(args: argparse.Namespace, model_spec: str) -> Any:
    from clipshift import configio
    from clipshift.world import World, WorldSpec

    if args.world:
        data = configio.read_mapping(args.world)
        data = data.get("world", data) if isinstance(data.get("world"), dict) else data
        if isinstance(data.get("data"), dict) and isinstance(data["data"].get("world"), dict):
            data = data["data"]["world"]  # a run config
        return World(configio.validate(WorldSpec, data, args.world))
    from clipshift.evaluate.run import run_world_spec

    spec = run_world_spec(model_spec)
    return World(spec) if spec is not None else None


def _eval(args: argparse.Namespace) -> int:
    import torch

    from clipshift import configio
    from clipshift.errors import UserError
    from clipshift.evaluate import EvalConfig, evaluate_sets, open_model, to_clip_benchmark_json

    if args.threads:
        torch.set_num_threads(args.threads)
    for flag in ("n", "probe_n", "batch_size", "knn_k", "min_group_size"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be ≥ 1, got {getattr(args, flag)}")
    if args.few_shot is not None and args.few_shot < 1:
        raise UserError(f"--few-shot must be ≥ 1, got {args.few_shot}")
    model = open_model(args.model, args.pretrained)
    world = _world(args, args.model)
    cfg = configio.validate(
        EvalConfig,
        {
            "sets": args.dataset,
            "n_per_set": args.n,
            "templates": args.templates or ("world" if world is not None else "openai"),
            "group_by": [g.strip() for g in args.group_by.split(",") if g.strip()],
            "batch_size": args.batch_size,
            "probe_n": args.probe_n,
            "few_shot_k": args.few_shot,
            "knn_k": args.knn_k,
            "min_group_size": args.min_group_size,
            "class_names": args.classnames,
            "confusable_n": _ints(args.confusable_n, "--confusable-n"),
            "confusable": args.confusable,
        },
        "clipshift eval",
    )
    results = evaluate_sets(
        model, cfg, [args.task or "zeroshot_classification"], world=world, probe_train=args.probe_train,
        objectnet_mappings=args.objectnet_mappings, result_names="dataset", progress=not args.quiet,
    )  # fmt: skip
    docs = [to_clip_benchmark_json(r, model.name, model.pretrained) for r in results]
    if args.out:
        _write(args.out, docs)
    if args.json:
        emit_json(docs[0] if len(docs) == 1 else docs)
    else:
        _summary(docs)
        if args.out:
            info(f"wrote {args.out}")
    return 0


def _ints(text: str, flag: str) -> list[int]:
    from clipshift.errors import UserError

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag}: expected integers separated by commas, got {text!r}") from None


def _write(out: str, docs: list[dict[str, Any]]) -> None:
    from clipshift.cli.common import _json_default

    def dump(path: Path, obj: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")

    if "{dataset}" in out or "{task}" in out:
        for d in docs:
            safe = str(d["dataset"]).replace("/", "_")
            dump(Path(out.replace("{dataset}", safe).replace("{task}", str(d["task"]))), d)
    else:
        dump(Path(out), docs[0] if len(docs) == 1 else docs)


def _summary(docs: list[dict[str, Any]]) -> None:
    for d in docs:
        m = d["metrics"]
        n = int(m.get("n", m.get("n_images", 0)) or 0)
        print(f"{d['dataset']}  ({d['task']}, {n} images)")
        main = [k for k in m if "/" not in k and k not in ("n", "n_images", "n_texts")]
        for k in main:
            print(f"  {k:<28} {_fmt(k, m[k])}")
        groups = [k for k in m if k.startswith(("group_acc/", "subset/")) and k.count("/") <= 2]
        for k in groups[:24]:
            print(f"  {k:<28} {_fmt(k, m[k])}")
        if len(groups) > 24:
            print(f"  … {len(groups) - 24} more in the JSON")


def _fmt(key: str, v: Any) -> str:
    if v is None:
        return "n/a"
    counts = key.rsplit("/", 1)[-1].startswith("n")  # n, n_unscored, subset/…/n
    return str(int(v)) if counts else f"{v:.4f}"
