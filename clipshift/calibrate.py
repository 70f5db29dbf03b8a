"""World calibration: are a world's knobs measurable at CPU scale? A fixed-budget probe answers.

The probe trains the default tiny image tower (an open_clip architecture) with a linear head,
supervised, for a fixed number of samples, twice: once with no spurious correlation (rho = 0: can
the core features be learnt? how much do domain shifts cost?) and once with a strong one (how much
does the background shortcut cost on `counter`?). Next to the measured reliance it reports how
predictive each shortcut is in the data itself (Bayes accuracy of the class from that factor alone),
computed exactly from the spec.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clipshift.world import World, WorldSpec, shifts

MEAN, STD = 0.5, 0.25


def _prep(x: torch.Tensor) -> torch.Tensor:
    return (x.float() / 255.0 - MEAN) / STD


def train_probe(
    world: World,
    samples: int,
    model: str | None = None,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
    desc: str = "probe",
) -> nn.Module:
    """Supervised training of image tower + linear head on the world's train split (one pass)."""
    from tqdm import tqdm

    from clipshift.models import DEFAULT_MODEL, build_image_tower

    torch.manual_seed(seed)
    tower, width = build_image_tower(model or DEFAULT_MODEL, world.spec.image_size)
    net = nn.Sequential(tower, nn.Linear(width, world.concepts.n_total))
    data = world.split("train", samples, with_captions=False)
    labels = torch.from_numpy(data.labels).long()
    steps = max(1, samples // batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    order = torch.randperm(samples, generator=torch.Generator().manual_seed(seed))
    net.train()
    bar = tqdm(range(steps), desc=desc, unit="step", disable=not progress, file=sys.stderr, leave=False)
    for s in bar:
        idx = order[s * batch_size : (s + 1) * batch_size]
        loss = F.cross_entropy(net(_prep(data.images[idx])), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if s % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return net.eval()


@torch.no_grad()
def probe_accuracy(net: nn.Module, world: World, split: str, n: int) -> float:
    """Top-1 accuracy (%) over the K evaluation classes on n samples of a named split."""
    correct = 0
    k = world.concepts.n_classes
    for f, img in world.batches(split, n, batch_size=500):
        logits = net(_prep(img))[:, :k]
        correct += int((logits.argmax(1).numpy() == f.label).sum())
    return 100.0 * correct / n


def bayes_accuracy(world: World, factor: str, rho: float | None = None) -> float:
    """Accuracy (%) of the best classifier that sees only `factor` of a training sample.

    Exact, from the spec's distributions: sum over factor values of max_k p(k) p(value | k).
    """
    c = world.concepts
    k = c.n_classes
    prior = c.train_probs[:k] / c.train_probs[:k].sum()
    if factor == "colour":
        cond = c.colour_probs[:k]
    elif factor == "pattern":
        cond = c.pattern_probs[:k]
    elif factor == "size":
        cond = c.size_probs[:k]
    elif factor == "background":
        b = world.spec.backgrounds.n_backgrounds
        r = world.spec.backgrounds.rho if rho is None else rho
        cond = np.full((k, b), (1 - r) / b)
        cond[np.arange(k), c.common_background[:k]] += r
    else:
        raise ValueError(f"unknown factor {factor}")
    return float(100.0 * (prior[:, None] * cond).max(axis=0).sum())


def calibrate(
    spec: WorldSpec,
    samples: int = 40000,
    rho: float = 0.95,
    model: str | None = None,
    eval_n: int = 2000,
    seed: int = 0,
    progress: bool = True,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Run both probes and return a JSON-able report (accuracies in %)."""
    k = spec.concepts.n_classes
    eval_n = max(k, eval_n - eval_n % k)  # class-balanced evaluation sets
    out: dict[str, Any] = {
        "samples": samples,
        "rho": rho,
        "seed": seed,
        "eval_n": eval_n,
        "chance": 100.0 / k,
    }

    t0 = time.perf_counter()
    world0 = World(_with_rho(spec, 0.0))
    net = train_probe(world0, samples, model, batch_size, seed=seed, progress=progress, desc="probe rho=0")
    out["train_s_per_probe"] = round(time.perf_counter() - t0, 1)
    out["core"] = {s: probe_accuracy(net, world0, s, eval_n) for s in ("iid", *shifts.shifted_domains())}

    world1 = World(_with_rho(spec, rho))
    net = train_probe(
        world1, samples, model, batch_size, seed=seed, progress=progress, desc=f"probe rho={rho:g}"
    )
    acc = {s: probe_accuracy(net, world1, s, eval_n) for s in ("iid", "common", "counter")}
    acc["drop"] = acc["common"] - acc["counter"]
    out["spurious"] = acc

    world = World(spec)
    out["bayes"] = {
        "colour": bayes_accuracy(world, "colour"),
        "pattern": bayes_accuracy(world, "pattern"),
        "size": bayes_accuracy(world, "size"),
        f"background_rho_{rho:g}": bayes_accuracy(world, "background", rho),
        f"background_rho_{spec.backgrounds.rho:g}": bayes_accuracy(world, "background"),
    }
    out["checks"] = {
        "core_learnable (iid ≥ 85 at rho=0)": out["core"]["iid"] >= 85.0,
        f"background_shortcut_strong (drop ≥ 15 at rho={rho:g})": acc["drop"] >= 15.0,
        "background_not_total (counter ≥ 2× chance)": acc["counter"] >= 2 * out["chance"],
    }
    return out


def format_report(r: dict[str, Any]) -> str:
    """A short table for people."""
    chance = r["chance"]
    lines = [
        f"world calibration — probe: default tiny image tower, {r['samples']} training samples "
        f"({r['train_s_per_probe']} s per probe), {r['eval_n']} eval samples, chance {chance:.1f} %",
        "",
        f"{'probe':50s} {'value':>8s}",
    ]

    def row(name: str, v: float, unit: str = "%") -> None:
        lines.append(f"{name:50s} {v:7.1f} {unit}")

    row("core: iid accuracy at rho=0", r["core"]["iid"])
    for d in (s for s in r["core"] if s != "iid"):  # every domain shift that was probed
        row(f"domain: {d} accuracy at rho=0", r["core"][d])
    rho = r["rho"]
    row(f"spurious: common accuracy at rho={rho:g}", r["spurious"]["common"])
    row(f"spurious: counter accuracy at rho={rho:g}", r["spurious"]["counter"])
    row("spurious: common − counter drop", r["spurious"]["drop"], "pts")
    for name, v in r["bayes"].items():
        row(f"shortcut: class from {name.replace('_', ' ')} alone", v)
    lines.append("")
    for name, ok in r["checks"].items():
        lines.append(f"{'ok  ' if ok else 'FAIL'} {name}")
    return "\n".join(lines)


def _with_rho(spec: WorldSpec, rho: float) -> WorldSpec:
    return spec.model_copy(update={"backgrounds": spec.backgrounds.model_copy(update={"rho": rho})})


__all__ = ["bayes_accuracy", "calibrate", "format_report", "probe_accuracy", "train_probe"]
