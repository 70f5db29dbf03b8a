"""The Objective interface, the registry of objectives by name, and ObjectiveConfig.

An objective is one class in one module: its `name`, the model it trains (`model_kind`, `head`), whether
it reads captions, and its own typed settings (`Options`). Registering it (`@register`) makes it
selectable by `objective.name`, validates its settings, lists it in `clipshift train --help`, and tells
a run's identity which settings reach the run.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic_core import PydanticCustomError
from torch import nn

from clipshift.data.table import Batch
from clipshift.errors import UserError


class ObjectiveOptions(BaseModel):
    """An objective's own settings, next to `name` under `objective:` in a config. Subclasses add fields;
    a field name may be shared by objectives that mean the same by it (`templates`)."""

    model_config = ConfigDict(extra="forbid")


class TemplateOptions(ObjectiveOptions):
    templates: list[str] | None = Field(
        None, description="class-name templates ('a photo of a {}.'); default: the world's caption style"
    )


def registered_names() -> str:
    """The registered objectives as an enumeration for messages: 'clip', 'siglip' or 'dynamic'."""
    names = [repr(n) for n in OBJECTIVES]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


class ObjectiveConfig(BaseModel):
    """What the model is trained to do (the model is chosen by ModelConfig): `name`, a registered
    objective, and that objective's options (its `Options` fields) beside it.

    A field of *another* registered objective is accepted, checked against its owner's options, and
    dropped: it cannot reach this run (a study's base may set `dynamic_k` for a grid over clip and
    dynamic), so it is neither kept nor part of the run's identity. A field that no objective has is an
    error naming it. The validated config holds exactly its objective's options, defaults filled in."""

    model_config = ConfigDict(extra="allow")

    name: str = Field("clip", description="training objective (a registered name: see OBJECTIVES)")
    _options: ObjectiveOptions = PrivateAttr(default_factory=ObjectiveOptions)

    @field_validator("name")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in OBJECTIVES:
            raise PydanticCustomError(
                "literal_error", "Input should be {expected}", {"expected": registered_names()}
            )
        return v

    @model_validator(mode="after")
    def _own_options(self) -> ObjectiveConfig:
        given = dict(self.__pydantic_extra__ or {})
        own = OBJECTIVES[self.name].Options
        for key, value in given.items():
            if key not in own.model_fields:
                for other in _owners(key):
                    other.model_validate({key: value})  # a bad value is an error wherever it is set
        mine = {k: v for k, v in given.items() if k in own.model_fields or not _owners(k)}
        self._options = own.model_validate(mine)  # unknown fields fail here, each by its name
        object.__setattr__(self, "__pydantic_extra__", self._options.model_dump())
        return self

    @property
    def options(self) -> ObjectiveOptions:
        """The objective's own options, typed (`Objective.options` narrows to its `Options` class)."""
        return self._options


def _owners(key: str) -> list[type[ObjectiveOptions]]:
    """The options classes of registered objectives that have a field `key`."""
    seen: list[type[ObjectiveOptions]] = []
    for cls in OBJECTIVES.values():
        if key in cls.Options.model_fields and cls.Options not in seen:
            seen.append(cls.Options)
    return seen


OptionsT = TypeVar("OptionsT", bound=ObjectiveOptions)


class Objective(nn.Module, Generic[OptionsT]):
    """A training loss over a model's output dict. `model_kind` says which model the trainer builds
    (`build_clip` or `build_classifier` with `head`); `texts` what the text tower reads; `forward` the loss.
    `reads_captions` False declares that the captions cannot reach a run of it (a classifier reads labels):
    caption settings then leave the run's identity. `Options` are its own settings (`self.options`).

    The trainer passes a per-step `torch.Generator` to `forward`: every random choice an objective makes
    comes from it, so a run is a function of (seed, step) and resumes bit-identically."""

    name: ClassVar[str] = ""
    model_kind: ClassVar[Literal["clip", "classifier"]] = "clip"
    reads_captions: ClassVar[bool] = True
    Options: ClassVar[type[ObjectiveOptions]] = ObjectiveOptions
    head: str | None = None

    def __init__(self, cfg: ObjectiveConfig, class_counts: np.ndarray, rank: int = 0, world_size: int = 1):
        super().__init__()
        self.cfg = cfg
        self.options: OptionsT = cfg.options  # type: ignore[assignment]  # ObjectiveConfig validated it as Options
        self.class_counts = np.asarray(class_counts, dtype=np.int64)
        self.rank = rank
        self.world_size = world_size

    def texts(self, batch: Batch, class_names: list[str]) -> list[str]:
        """What the text tower reads for this batch: the captions, unless an objective says otherwise."""
        return list(batch.texts)

    def corpus(self, class_names: list[str]) -> list[str]:
        """Texts beyond the captions that `texts` may produce (a vocab tokenizer should know their words)."""
        return []

    def model_overrides(self) -> dict[str, Any]:
        """Extra open_clip CLIP constructor arguments this objective needs (passed to build_clip)."""
        return {}

    def text_embeddings(self, class_names: list[str]) -> torch.Tensor:
        raise NotImplementedError(f"objective {self.name!r} has no text head")

    def forward(self, out: dict[str, torch.Tensor], batch: Batch, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def measures(self, labels: np.ndarray, batches: np.ndarray, n_classes: int) -> dict[str, float]:
        """What this objective did over a run's steps (its manipulation checks), from `batches` (steps, B):
        each step's global batch as row numbers; `labels` per row (-1 unknown), `n_classes` C, the label
        space. The default: a classifier scores its whole label space every step; a contrastive objective
        (model_kind clip) contrasts the batch, so the classes it scores are the batch's distinct known
        classes. An objective that chooses its classes (dynamic) overrides this."""
        from clipshift.data.measures import classes_per_batch

        if self.model_kind == "clip":
            scored = classes_per_batch(labels, batches).astype(float)
        else:
            scored = np.full(len(batches), float(n_classes))
        return scored_measures(scored, n_classes)

    @classmethod
    def inert(
        cls, options: ObjectiveOptions, class_probs: np.ndarray, batch_size: int
    ) -> tuple[str, str] | None:
        """Before a run: a setting of this objective that provably cannot act on data with these expected
        class frequencies (over the label space) and this global batch size, as (the setting, why), for a
        plan warning "<setting> cannot act in runs with …: <why>"; None when every setting can act."""
        return None

    def extra_repr(self) -> str:
        return f"name={self.name!r}, model_kind={self.model_kind!r}, head={self.head!r}"


def scored_measures(scored: np.ndarray, n_classes: int) -> dict[str, float]:
    """`objective/classes_scored_mean` and `objective/scored_share` from the classes scored at each step."""
    mean = float(np.mean(scored)) if len(scored) else float("nan")
    return {
        "objective/classes_scored_mean": mean,
        "objective/scored_share": mean / n_classes if n_classes else float("nan"),
    }


def class_templates(options: TemplateOptions) -> list[str]:
    """The templates of `options`, or the world's caption-style ones."""
    from clipshift.world.captions import world_templates

    return list(options.templates) if options.templates else world_templates()


OBJECTIVES: dict[str, type[Objective[Any]]] = {}
_T = TypeVar("_T", bound=type[Objective[Any]])


def register(cls: _T) -> _T:
    """Class decorator: make an objective selectable by its `name`."""
    OBJECTIVES[cls.name] = cls
    return cls


def build_objective(
    cfg: ObjectiveConfig, class_counts: np.ndarray, rank: int = 0, world_size: int = 1
) -> Objective[Any]:
    """The objective named by `cfg.name`; `class_counts` (samples per label) feeds frequency weighting."""
    if cfg.name not in OBJECTIVES:
        raise UserError(f"unknown objective {cfg.name!r}; choose from {', '.join(sorted(OBJECTIVES))}")
    return OBJECTIVES[cfg.name](cfg, class_counts, rank=rank, world_size=world_size)
