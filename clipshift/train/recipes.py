"""Named training recipes: settings found to make a model learn the world on a small budget.

A recipe is a list of dotted settings applied under the user's own flags and `--set` (`clipshift train
--recipe clip-cpu`), so a run made with one is a plain config: what the recipe set is in its
config.yaml. What each setting bought, and how far the recipes get, is in BENCHMARKS.md ("Learning a
100-class world on a CPU", measured by `clipshift bench learn`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clipshift.errors import UserError


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    settings: dict[str, Any] = field(default_factory=dict)  # dotted path -> value

    def overrides(self) -> list[str]:
        """The settings as `--set PATH=VALUE` strings (values as YAML/JSON)."""
        import json

        return [f"{k}={json.dumps(v)}" for k, v in self.settings.items()]


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r}; choose one of {', '.join(sorted(RECIPES))}")
    return RECIPES[name]


# Sized so that training (rendering included) fits 10 minutes on the 2-core machine of BENCHMARKS.md
# at the samples/s measured there; `clipshift bench learn` checks both.
register(
    Recipe(
        "clip-cpu",
        "CLIP on a CPU: tiny ResNet, caption-word tokenizer (a class name is one token), batch 256, "
        "one pass over 300k fresh world samples",
        {
            "objective.name": "clip",
            "model.name": "clipshift-rn-tiny",
            "model.tokenizer": "vocab",
            "optim.batch_size": 256,
            "optim.lr": 0.002,
            "optim.warmup": 0.05,
            "data.n": 300_000,
            "epochs": 1,
        },
    )
)
register(
    Recipe(
        "supervised-cpu",
        "the supervised classifier on a CPU: the same image tower with a linear head, batch 256, one "
        "pass over 300k fresh world samples",
        {
            "objective.name": "supervised",
            "model.name": "clipshift-rn-tiny",
            "optim.batch_size": 256,
            "optim.lr": 0.002,
            "optim.warmup": 0.05,
            "data.n": 300_000,
            "epochs": 1,
        },
    )
)
