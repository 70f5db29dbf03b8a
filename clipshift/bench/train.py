"""Training benchmark: clipshift's trainer vs open_clip's own training program, same model and data.

Figures: `train_samples_per_s` (clipshift, steady state), `achieved_gflops_per_s` (model FLOPs per
sample x samples/s, FLOPs counted by torch's FlopCounterMode over one forward+backward as clipshift
executes it; `model_gflops_per_sample_full_context` is the same step with the text tower over the
whole padded context, as open_clip runs it),
`matmul_peak_gflops_per_s` (a large fp32 matmul in the same process, same threads) and their ratio;
`openclip_samples_per_s` (python -m open_clip_train.main on a CSV export of the same world data,
fp32, best of the tried --workers with and without --torchcompile) and `speedup_vs_openclip`.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from clipshift.data.table import world_table
from clipshift.models import DEFAULT_MODEL
from clipshift.world import World


def matmul_peak_gflops(n: int = 2048, reps: int = 10) -> float:
    """Best fp32 GFLOP/s of an n x n matmul over `reps` (the machine's practical peak for dense math;
    the best, not the median, so a busy moment of a shared machine cannot lower the peak)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    rates = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        rates.append(2 * n**3 / (time.perf_counter() - t) / 1e9)
    return max(rates)


def flops_per_sample(model_name: str, batch_size: int, table: Any, *, full_context: bool = False) -> float:
    """Forward + backward FLOPs of one CLIP training step on a real batch, per sample: as clipshift runs
    it (text tower up to the batch's last end-of-text token), or with `full_context` as open_clip does."""
    from open_clip.model import CLIP
    from torch.utils.flop_counter import FlopCounterMode

    from clipshift.models.factory import ModelConfig, build_clip
    from clipshift.models.text import build_tokenizer
    from clipshift.objectives import ObjectiveConfig, build_objective

    tok = build_tokenizer("openclip", None, None)
    model = build_clip(ModelConfig(name=model_name), tok)
    if full_context:
        model.__class__ = CLIP  # open_clip's own encode_text
    objective = build_objective(ObjectiveConfig(name="clip"), table.class_counts())
    batch = table.batch(torch.arange(batch_size))
    images = batch.images.float() / 255.0
    tokens = tok(batch.texts)
    counter = FlopCounterMode(display=False)
    with counter:
        loss = objective(model(images, tokens), batch, torch.Generator().manual_seed(0))
        loss.backward()
    return counter.get_total_flops() / batch_size


def clipshift_speed(
    model_name: str, batch_size: int, steps: int, warmup: int, threads: int | None
) -> dict[str, Any]:
    from clipshift.train import TrainConfig, train

    n = batch_size * (steps + warmup)
    table = world_table(World().split("train", n))
    cfg = TrainConfig.model_validate(
        {
            "data": {"kind": "world", "n": n},
            "model": {"name": model_name},
            "objective": {"name": "clip"},
            # open_clip's defaults: no gradient clipping (the rest does not change the work per step)
            "optim": {"batch_size": batch_size, "grad_clip": None},
            "log_every": 1,
            "threads": threads,
        }
    )
    with tempfile.TemporaryDirectory() as d:
        train(cfg, Path(d), table=table, progress=False)
        lines = (Path(d) / "metrics.jsonl").read_text().splitlines()
        rates = [json.loads(line)["samples_per_s"] for line in lines]
    steady = rates[warmup:]
    return {"train_samples_per_s": round(statistics.median(steady), 1), "table": table}


_RATE = re.compile(r"([0-9.]+)/s/gpu")


def openclip_speed(
    model_name: str,
    table_world_n: int,
    batch_size: int,
    workers: list[int],
    steps: int,
    warmup: int,
    torchcompile: bool = True,
) -> dict[str, Any]:
    """Run open_clip's training program on a CSV export of the same world split; median samples/s."""
    from clipshift.world.export import export_split

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        export_split(World(), "train", table_world_n, "csv", Path(d) / "csv", progress=False)
        csv = Path(d) / "csv" / "train.csv"
        variants = [(w, False) for w in workers] + ([(min(workers), True)] if torchcompile else [])
        for w, compiled in variants:
            label = f"workers={w}" + (" torchcompile" if compiled else "")
            logs = Path(d) / f"logs-{len(results)}"
            flags = {
                "--train-data": str(csv), "--dataset-type": "csv", "--csv-separator": "\t",
                "--csv-img-key": "filepath", "--csv-caption-key": "title", "--model": model_name,
                "--batch-size": str(batch_size), "--epochs": "1", "--precision": "fp32", "--workers": str(w),
                "--lr": "1e-3", "--warmup": "10", "--seed": "0", "--logs": str(logs), "--name": "bench",
                "--log-every-n-steps": "1", "--save-frequency": "0", "--zeroshot-frequency": "0",
                "--val-frequency": "0", "--report-to": "",
            }  # fmt: skip
            argv = [x for kv in flags.items() for x in kv] + (["--torchcompile"] if compiled else [])
            # open_clip's own program, with clipshift's tiny configs registered so it knows the name
            code = (
                "import sys; from clipshift.models import register_configs; register_configs(); "
                "from open_clip_train.main import main; main(sys.argv[1:])"
            )
            proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
            text = proc.stdout + proc.stderr
            rates = [float(m) for m in _RATE.findall(text)]
            if proc.returncode != 0 or len(rates) <= warmup:
                tail = "\n".join(text.strip().splitlines()[-5:])
                raise RuntimeError(f"open_clip_train failed with {label}:\n{tail}")
            # torch.compile's first steps include compilation: skip a longer warm-up for it
            results[label] = statistics.median(rates[3 * warmup if compiled else warmup :])
    best = max(results, key=lambda k: results[k])
    return {
        "openclip_samples_per_s": round(results[best], 1),
        "openclip_best_setting": best,
        "openclip_by_setting": {k: round(v, 1) for k, v in results.items()},
    }


def bench_train(
    model_name: str = DEFAULT_MODEL,
    batch_size: int = 256,
    steps: int = 30,
    warmup: int = 5,
    workers: list[int] | None = None,
    with_openclip: bool = True,
    threads: int | None = None,
    torchcompile: bool = True,
) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model_name, "batch_size": batch_size, "threads": torch.get_num_threads()}
    peak = matmul_peak_gflops()
    speed = clipshift_speed(model_name, batch_size, steps, warmup, threads)
    # measured before and after the timed training, the higher taken: the fraction errs low, not high
    out["matmul_peak_gflops_per_s"] = round(max(peak, matmul_peak_gflops()), 1)
    table = speed.pop("table")
    out.update(speed)
    fps = flops_per_sample(model_name, batch_size, table)
    out["model_gflops_per_sample"] = round(fps / 1e9, 4)
    full = flops_per_sample(model_name, batch_size, table, full_context=True)
    out["model_gflops_per_sample_full_context"] = round(full / 1e9, 4)
    out["achieved_gflops_per_s"] = round(fps * speed["train_samples_per_s"] / 1e9, 1)
    out["achieved_fraction_of_peak"] = round(
        out["achieved_gflops_per_s"] / out["matmul_peak_gflops_per_s"], 3
    )
    if with_openclip:
        oc = openclip_speed(
            model_name,
            batch_size * (steps + warmup),
            batch_size,
            workers or [0, 1, 2],
            steps,
            warmup,
            torchcompile,
        )
        out.update(oc)
        out["speedup_vs_openclip"] = round(out["train_samples_per_s"] / oc["openclip_samples_per_s"], 2)
    return out
