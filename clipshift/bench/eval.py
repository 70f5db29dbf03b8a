"""Evaluation benchmark: clipshift's zero-shot evaluation vs CLIP_benchmark's, same model and images.

A briefly trained default tiny CLIP (cached between invocations) is evaluated zero-shot on a rendered
world set (`eval_images_per_s`: images in memory, as in a study); the same images are exported as an
ImageFolder of PNGs and evaluated by CLIP_benchmark's `zeroshot_classification.evaluate` in this process
with the same model object, class names and templates (torchvision ImageFolder + open_clip's eval
transform, fp32 — CLIP_benchmark's CPU default, amp, would autocast to bfloat16), best of the tried
DataLoader workers (`clip_benchmark_images_per_s`). clipshift also reads the same ImageFolder from disk,
first with a cold decoded-image cache (`eval_imagefolder_images_per_s`: PNG decoding included), then warm
(`eval_imagefolder_warm_images_per_s`). Accuracies must agree exactly.

A ViT-B-32-sized model at 224 px (`large_*` figures; `large_arch`, default ViT-B-32, random-initialised
by open_clip, never downloaded) is timed the same way on `large_n` world images rendered at its
resolution: clipshift in memory and CLIP_benchmark on the same images as PNGs, in alternated passes
(clipshift, then each CLIP_benchmark setting, `repeats` times), medians; the machine's load average is
recorded before and after, as shared machines drift.

CLIP_benchmark 1.6.2's `evaluate()` fails under NumPy >= 2.3 (its accuracy helper calls float() on a
one-element array), so its two working parts, `zero_shot_classifier` and `run_classification`, are
called and acc1 / mean per-class recall computed as `evaluate()` defines them (top-1 of the logits;
sklearn's `balanced_accuracy_score`). Only `clip_benchmark` and scikit-learn are needed:
`pip install --no-deps clip-benchmark scikit-learn` avoids its transformers / pycocoevalcap requirements
(~230 MB, used by its captioning and multilingual paths only).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipshift.errors import UserError
from clipshift.models import DEFAULT_MODEL


def default_cache() -> Path:
    root = os.environ.get("CLIPSHIFT_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "clipshift") / "bench-eval"


def trained_run(steps: int, batch_size: int, cache: Path, model_name: str = DEFAULT_MODEL) -> Path:
    """A CLIP run of `steps` steps on the default world's images, trained once per (model, steps, batch)
    into `cache`."""
    from clipshift.train import TrainConfig, train

    cfg = TrainConfig.model_validate(
        {
            # sparse captions (the studies' recipe): with every detail named, 300 steps barely learn
            # the classes, and a benchmark of agreement wants accuracies well away from chance
            "data": {"kind": "world", "n": steps * batch_size, "world": {"captions": {"detail_prob": 0.3}}},
            "model": {"name": model_name},
            "optim": {"batch_size": batch_size},
            "log_every": 50,
        }
    )
    digest = hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]
    run = cache / f"run-{digest}"
    train(cfg, run, progress=True)  # a run already finished in the cache is reused, not retrained
    return run


def clip_benchmark_zeroshot(
    module: torch.nn.Module,
    tokenizer: Any,
    root: Path,
    class_names: list[str],
    templates: list[str],
    image_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int = 256,
    workers: int = 0,
) -> dict[str, float]:
    """CLIP_benchmark's zero-shot evaluation of `module` on an ImageFolder, as its CLI runs it (the
    dataset through torchvision's ImageFolder and open_clip's eval transform); fp32 on CPU."""
    try:
        from clip_benchmark.metrics import zeroshot_classification as zsc
        from sklearn.metrics import balanced_accuracy_score  # what CLIP_benchmark's evaluate() uses
    except ImportError as e:
        raise UserError("CLIP_benchmark is not installed (pip install clip-benchmark)") from e
    import open_clip
    from torchvision.datasets import ImageFolder

    transform = open_clip.image_transform(image_size, is_train=False, mean=mean, std=std)
    ds = ImageFolder(str(root), transform=transform)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)
    # CLIP_benchmark's evaluate() = zero_shot_classifier + run_classification + metrics; its accuracy
    # helper fails under NumPy >= 2.3 (float() of a one-element array), so the two functions that do the
    # work are called here and the metrics computed as evaluate() defines them
    t = time.perf_counter()
    weights = zsc.zero_shot_classifier(
        module, tokenizer, class_names, [tpl.replace("{}", "{c}") for tpl in templates], "cpu", amp=False
    )
    logits, target = zsc.run_classification(module, weights, loader, "cpu", amp=False)
    wall = time.perf_counter() - t
    pred = logits.argmax(dim=1)
    return {
        "acc1": float((pred == target).sum()) / len(target),
        "mean_per_class_recall": float(balanced_accuracy_score(target, pred)),
        "images_per_s": len(ds) / wall,
        "n": float(len(ds)),
    }


def random_clip(arch: str) -> Any:
    """An open_clip architecture, random-initialised (no weights read or downloaded), as an EvalModel with
    open_clip's BPE tokenizer; channels-last like every opened model."""
    from clipshift.evaluate.model import from_module
    from clipshift.models import ModelConfig, OpenClipTokenizer, build_clip

    tok = OpenClipTokenizer()
    module = build_clip(ModelConfig(name=arch), tok).to(memory_format=torch.channels_last)
    return from_module(module, tok, name=arch)


def bench_eval_large(
    arch: str = "ViT-B-32",
    n: int = 256,
    repeats: int = 3,
    cb_batch_size: int = 256,
    cb_workers: tuple[int, ...] = (0, 2),
    with_clip_benchmark: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """`large_*` figures: a random-initialised `arch` on `n` default-world iid images at its resolution,
    clipshift (in memory) and CLIP_benchmark (the same images as PNGs) timed in alternated passes."""
    from clipshift.evaluate import evaluate_model, resolve_templates, world_set
    from clipshift.evaluate.model import _ZS_CACHE
    from clipshift.world import World, WorldSpec
    from clipshift.world.export import export_split

    model = random_clip(arch)
    world = World(WorldSpec.model_validate({"image_size": model.image_size}))
    templates = resolve_templates("world")
    data = world_set(world, "iid", n, image_size=model.image_size)
    out: dict[str, Any] = {
        "large_model": arch,
        "large_image_size": model.image_size,
        "large_images": n,
        "large_load_average_before": round(os.getloadavg()[0], 2),
    }
    ours: list[float] = []
    theirs: dict[int, list[float]] = {w: [] for w in cb_workers}
    res = cb = None
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "iid"
        if with_clip_benchmark:
            export_split(world, "iid", n, "imagefolder", folder, progress=progress)
        for _ in range(repeats):
            _ZS_CACHE.clear()
            t = time.perf_counter()
            res = evaluate_model(model, data, templates=templates)
            ours.append(n / (time.perf_counter() - t))
            if not with_clip_benchmark:
                continue
            for w in cb_workers:
                cb = clip_benchmark_zeroshot(
                    model.module, model.tokenizer, folder, data.class_names, templates, model.image_size,
                    model.mean, model.std, cb_batch_size, w,
                )  # fmt: skip
                theirs[w].append(cb["images_per_s"])
    assert res is not None
    out["large_eval_images_per_s"] = round(float(np.median(ours)), 1)
    out["large_eval_images_per_s_runs"] = [round(r, 1) for r in ours]
    out["large_acc1"] = res.metrics["acc1"]
    if with_clip_benchmark and cb is not None:
        medians = {w: float(np.median(r)) for w, r in theirs.items()}
        best = max(medians, key=lambda w: medians[w])
        out["large_clip_benchmark_images_per_s"] = round(medians[best], 1)
        out["large_clip_benchmark_by_workers"] = {f"workers={w}": round(v, 1) for w, v in medians.items()}
        out["large_speedup_vs_clip_benchmark"] = round(out["large_eval_images_per_s"] / medians[best], 2)
        out["large_clip_benchmark_acc1"] = cb["acc1"]
        out["large_same_acc1"] = cb["acc1"] == res.metrics["acc1"]
    out["large_load_average_after"] = round(os.getloadavg()[0], 2)
    return out


def bench_eval(
    n: int = 4000,
    steps: int = 300,
    batch_size: int = 128,
    cb_batch_sizes: tuple[int, ...] = (256,),
    cb_workers: tuple[int, ...] = (0, 2),
    repeats: int = 3,
    cache: Path | None = None,
    with_clip_benchmark: bool = True,
    progress: bool = True,
    large_arch: str | None = "ViT-B-32",
    large_n: int = 256,
) -> dict[str, Any]:
    from clipshift.evaluate import evaluate_model, load_eval_data, open_model, resolve_templates, world_set
    from clipshift.evaluate.model import _ZS_CACHE
    from clipshift.world import World
    from clipshift.world.export import export_split

    run = trained_run(steps, batch_size, cache or default_cache())
    model = open_model(run)
    model.cache_dir = None  # time the text side too: no zero-shot weights from disk
    world = World()
    templates = resolve_templates("world")
    data = world_set(world, "iid", n, image_size=model.image_size)
    out: dict[str, Any] = {
        "model": model.name,
        "train_steps": steps,
        "images": n,
        "threads": torch.get_num_threads(),
    }
    rates = []
    res = None
    for _ in range(repeats):
        _ZS_CACHE.clear()
        t = time.perf_counter()
        res = evaluate_model(model, data, templates=templates)
        rates.append(n / (time.perf_counter() - t))
    assert res is not None
    out["eval_images_per_s"] = round(float(np.median(rates)), 1)
    out["acc1"] = res.metrics["acc1"]
    out["mean_per_class_recall"] = res.metrics["mean_per_class_recall"]
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "iid"
        export_split(world, "iid", n, "imagefolder", folder, progress=progress)
        _ZS_CACHE.clear()
        t = time.perf_counter()
        disk = load_eval_data(f"imagefolder:{folder}", model.image_size, cache_dir=Path(d) / "cache")
        res_disk = evaluate_model(model, disk, templates=templates)
        out["eval_imagefolder_images_per_s"] = round(n / (time.perf_counter() - t), 1)
        out["imagefolder_acc1"] = res_disk.metrics["acc1"]
        _ZS_CACHE.clear()
        t = time.perf_counter()  # again: the decoded-image cache now holds the PNGs' pixels
        disk = load_eval_data(f"imagefolder:{folder}", model.image_size, cache_dir=Path(d) / "cache")
        evaluate_model(model, disk, templates=templates)
        out["eval_imagefolder_warm_images_per_s"] = round(n / (time.perf_counter() - t), 1)
        if with_clip_benchmark:
            best: dict[str, float] | None = None
            settings: dict[str, float] = {}
            for bs in cb_batch_sizes:
                for w in cb_workers:
                    cb = clip_benchmark_zeroshot(
                        model.module, model.tokenizer, folder, data.class_names, templates, model.image_size,
                        model.mean, model.std, bs, w,
                    )  # fmt: skip
                    settings[f"batch={bs} workers={w}"] = round(cb["images_per_s"], 1)
                    if best is None or cb["images_per_s"] > best["images_per_s"]:
                        best = cb
            assert best is not None
            out["clip_benchmark_images_per_s"] = round(best["images_per_s"], 1)
            out["clip_benchmark_by_setting"] = settings
            out["speedup_vs_clip_benchmark"] = round(out["eval_images_per_s"] / best["images_per_s"], 2)
            out["clip_benchmark_acc1"] = best["acc1"]
            out["clip_benchmark_mean_per_class_recall"] = best["mean_per_class_recall"]
            out["same_acc1"] = best["acc1"] == out["acc1"] == out["imagefolder_acc1"]
            out["same_mean_per_class_recall"] = best["mean_per_class_recall"] == out["mean_per_class_recall"]
    if large_arch:
        out.update(
            bench_eval_large(
                large_arch, large_n, repeats, cb_batch_sizes[0], cb_workers, with_clip_benchmark, progress
            )
        )
    return out
