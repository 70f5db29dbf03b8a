"""Study specs: a base run config, grid and zip axes, seeds, named profiles and analyses.

A study YAML is validated in two steps. Its structure first (`StudySpec`), then every run config it
expands to (`RunConfig`): each value is set into the run config by a *layer* that remembers where in the
file it came from, so a problem in an expanded config is reported at the grid value, zip value,
profile entry or `--set` that caused it (`study.yaml: grid.objective.name[2] = 'clipp': ...`).

An *evaluation study* (`models:`) trains nothing: each run evaluates one existing checkpoint (`ModelEntry`,
any spec `clipshift eval --model` takes) under `base`, an `EvalSettings` (eval sets and metrics, a world
for world sets, threads, device), crossed with the grid and zip axes over those settings
(`clipshift.study.evaluation` plans and executes such runs).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from clipshift.analysis.spec import AnalysisSpec
from clipshift.configio import parse_override, read_mapping, set_path, validate
from clipshift.data.config import with_default_source
from clipshift.errors import UserError, format_validation_error
from clipshift.evaluate.config import EvalConfig
from clipshift.train.config import Device, TrainConfig
from clipshift.world.spec import WorldSpec

C = TypeVar("C", bound=BaseModel)

# the top-level keys of a study file; a dotted path starting with any other name is a run-config path
SPEC_FIELDS = ("name", "base", "grid", "zip", "seeds", "profiles", "profile", "analyses", "models")
# study keys a profile (or --set) may replace besides run-config paths
PROFILE_SPEC_KEYS = ("seeds", "grid", "zip", "analyses", "models")
# the factors every run of an evaluation study carries besides its grid and zip axes
MODEL_FACTORS = ("model", "family")
# torch CPU threads of a study run whose config leaves them unset: a fixed number, not the machine's, so
# the run id (which includes it) means the same numbers on every machine and executor
DEFAULT_RUN_THREADS = 2


class RunConfig(TrainConfig):
    """One run of a study: everything `clipshift train` takes, plus what the model is evaluated on."""

    eval: EvalConfig = Field(default_factory=EvalConfig, description="evaluation sets and metrics")

    def train_config(self) -> TrainConfig:
        """The training part: what `train()` writes to config.yaml (without `eval`). It also keeps the
        snapshots the convergence check evaluates (`eval.convergence_points`; snapshots change no number
        and no run id)."""
        data = self.model_dump(exclude={"eval"})
        data["snapshots"] = sorted({*self.snapshots, *self.eval.convergence_points})
        return TrainConfig.model_validate(data)


class ModelEntry(BaseModel):
    """One model of an evaluation study: a spec as `clipshift eval --model` takes it, and the labels its
    results carry (factors `model` and `family`). A plain string is an entry with only `model`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        "", description="the model's name in the results (factor `model`); default: the spec as written"
    )
    model: str = Field(
        ...,
        min_length=1,
        description="what `clipshift eval --model` takes: a clipshift run directory, a checkpoint file, "
        "ARCH:PATH, an open_clip snapshot folder, hf-hub:ORG/NAME (local cache), an OpenAI .pt archive, "
        "tv:ARCH:PATH or timm:ARCH:PATH (an ImageNet classifier)",
    )
    pretrained: str | None = Field(
        None, min_length=1, description="local weights when `model` is an architecture name (--pretrained)"
    )
    family: str | None = Field(
        None,
        min_length=1,
        description="a group label (factor `family`, e.g. clip, imagenet) analyses compare or fit their "
        "baseline on; default: clip, classifier (a clipshift supervised run) or imagenet_classifier "
        "(tv:/timm:)",
    )

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, v: Any) -> Any:
        return {"model": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _named(self) -> ModelEntry:
        if not self.name:
            self.name = f"{self.model}:{self.pretrained}" if self.pretrained else self.model
        return self


class EvalSettings(BaseModel):
    """The `base` of an evaluation study: what every model is evaluated on, and how."""

    model_config = ConfigDict(extra="forbid")

    eval: EvalConfig = Field(default_factory=EvalConfig, description="evaluation sets and metrics")
    world: WorldSpec | None = Field(
        None,
        description="the world that world sets (iid, counter, ...) are drawn from; default: a clipshift "
        "run's own world (other models then need it)",
    )
    probe_train: str | None = Field(
        None,
        description="linear probe / kNN training data, a dataset spec (default: fresh world iid samples, "
        "or half of each set)",
    )
    objectnet_mappings: Path | None = Field(None, description="ObjectNet's mappings/ folder")
    threads: int | None = Field(
        None, ge=1, description="torch CPU threads (a study fixes them: float results depend on them)"
    )
    # CPU unless asked: evaluation ran on the CPU before it had a device (and those runs keep their ids)
    device: Device = Field(
        "cpu",
        description="where the model runs, as a training run's `device` (cpu, cuda; auto: cuda when torch "
        "sees one); part of the run id unless cpu",
    )


class EvalRunConfig(EvalSettings):
    """One run of an evaluation study: one model evaluated, nothing trained."""

    model: str = Field(..., min_length=1, description="the model spec (`clipshift eval --model`)")
    pretrained: str | None = Field(None, description="local weights for an architecture name")


class StudySpec(BaseModel):
    """A study file. `base` stays a mapping here: it is validated as a RunConfig once the profile and
    the axes are set into it (`resolve`, `clipshift.study.plan.plan`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="the study's name (results store, report)")
    base: dict[str, Any] = Field(default_factory=dict, description="a RunConfig; defaults fill the rest")
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="dotted run-config path -> values; runs = cartesian product"
    )
    zip: list[dict[str, list[Any]]] = Field(
        default_factory=list,
        description="groups of axes that vary together (equal lengths); each group is crossed with the grid",
    )
    seeds: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: [0], min_length=1, description="training seeds (sets `seed`)"
    )
    profiles: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="named overrides of base (dotted paths and/or nested maps; also `seeds`, "
        "`grid(.<axis>)`, `zip`, `analyses`)",
    )
    profile: str | None = Field(None, description="the default profile (the CLI's --profile overrides)")
    analyses: list[AnalysisSpec] = Field(default_factory=list, description="analyses the report computes")
    models: list[ModelEntry] | None = Field(
        None,
        description="an evaluation study: the models its runs evaluate (existing checkpoints, never "
        "trained); `base` is then an evaluation config (eval, world, probe_train, threads)",
    )

    _source: str = PrivateAttr("study")
    _profile_used: str | None = PrivateAttr(None)

    @property
    def source(self) -> str:
        """Where the spec came from (a file name), for error messages."""
        return self._source

    @property
    def profile_used(self) -> str | None:
        """The profile folded into `base` by `resolve` (None: none, or not resolved yet)."""
        return self._profile_used

    @property
    def evaluates(self) -> bool:
        """An evaluation study (`models:`): its runs evaluate given checkpoints instead of training."""
        return self.models is not None

    def axes(self) -> list[str]:
        """Every factor the runs vary: an evaluation study's `model` and `family`, then every grid and zip
        axis, in file order."""
        own = list(MODEL_FACTORS) if self.evaluates else []
        return own + list(self.grid) + [a for group in self.zip for a in group]

    def n_points(self) -> int:
        """Runs before de-duplication: seeds (or models) x grid product x zip lengths."""
        n = len(self.models) if self.models is not None else len(self.seeds)
        for values in self.grid.values():
            n *= len(values)
        for group in self.zip:
            n *= len(next(iter(group.values()))) if group else 1
        return n


@dataclass(frozen=True)
class Layer:
    """A value set into a run config, and where the study file says it (for error messages)."""

    path: tuple[str, ...]  # run-config path
    value: Any
    where: tuple[str | int, ...]  # location in the study file, e.g. ('grid', 'objective.name', 2)
    axis: tuple[str | int, ...] | None = None  # the same without the value's index (an unknown axis)


# --------------------------------------------------------------------------------------------------
# loading and resolving


def load_study(path: str | Path) -> StudySpec:
    """Read a study file and check its structure (run configs are checked by `resolve` and `plan`)."""
    return parse_study(read_mapping(path), str(path))


def parse_study(data: dict[str, Any], source: str = "study") -> StudySpec:
    spec = validate(StudySpec, data, source)
    spec._source = source
    _check_structure(spec)
    return spec


def resolve(spec: StudySpec, profile: str | None = None, overrides: Sequence[str] = ()) -> StudySpec:
    """The spec as it will run: the profile (`profile` or the spec's default) and `--set` overrides folded
    into it, and its base validated. The result has `profile: None` and `profile_used` set, so resolving
    it again changes nothing.

    Overrides (`PATH=VALUE`) win over the profile. A PATH that starts with a study key edits the study
    (`seeds=[0]`, `grid.objective.name=[clip]`, `zip=[]`, `name=x`, `profiles.quick.epochs=1`); any other
    PATH is a run-config path set into base (`epochs=1`, `data.n=512`; `base.epochs=1` is the same).
    """
    data = spec.model_dump(mode="json")
    source = spec.source
    parsed = [(text, *parse_override(text)) for text in overrides]
    early = [p for p in parsed if p[1][0] in ("profile", "profiles")]  # they choose or shape the profile
    late = [p for p in parsed if p[1][0] not in ("profile", "profiles")]
    for _, parts, value in early:
        _set_spec_path(data, parts, value, f"--set {'.'.join(parts)}")
    if early:
        data = parse_study(data, source).model_dump(mode="json")

    chosen = profile if profile is not None else data.get("profile")
    if chosen is not None and chosen not in data["profiles"]:
        names = ", ".join(data["profiles"]) or "none defined"
        raise UserError(f"{source}: profile {chosen!r} is not in profiles ({names})")

    base = copy.deepcopy(data["base"])
    layers: list[Layer] = []
    if chosen is not None:
        for key, value in data["profiles"][chosen].items():
            parts = key.split(".")
            if parts[0] in PROFILE_SPEC_KEYS:  # e.g. real data has other axes
                _set_spec_path(data, parts, value, f"profiles.{chosen}.{key}")
            elif parts[0] in SPEC_FIELDS:
                raise UserError(
                    f"{source}: profiles.{chosen}.{key}: a profile sets run-config paths, seeds, zip, "
                    f"grid(.<axis>), analyses or models, not {parts[0]}"
                )
            else:
                set_path(base, parts, value, f"{source}: profiles.{chosen}.{key}")
                layers.append(Layer(tuple(parts), value, ("profiles", chosen, key)))
    for _, parts, value in late:
        key = ".".join(parts)
        if parts[0] in SPEC_FIELDS and parts[0] != "base":
            _set_spec_path(data, parts, value, f"--set {key}")
        else:
            run_parts = parts[1:] if parts[0] == "base" else parts
            if not run_parts:
                raise UserError(f"--set {key}: give a path inside base, e.g. base.epochs=1")
            set_path(base, run_parts, value, f"{source}: --set {key}")
            layers.append(Layer(tuple(run_parts), value, (f"--set {key}",)))

    data["base"] = base
    data["profile"] = None
    out = parse_study(data, source)
    if out.evaluates:
        validate_config(EvalSettings, eval_defaults(base), layers, source)
    else:
        validate_run(with_defaults(base), layers, source)
    out._profile_used = chosen if chosen is not None else spec.profile_used
    return out


def _set_spec_path(data: dict[str, Any], parts: list[str], value: Any, where: str) -> None:
    """Set a study-level path: grid axes and profile entries are single keys that contain dots."""
    head = parts[0]
    if len(parts) == 1:
        data[head] = value
    elif head == "grid":
        data.setdefault("grid", {})[".".join(parts[1:])] = value
    elif head == "profiles" and len(parts) >= 3:
        data.setdefault("profiles", {}).setdefault(parts[1], {})[".".join(parts[2:])] = value
    else:
        raise UserError(f"{where}: cannot set inside {head}; give the whole value ({head}=...)")


def _check_structure(spec: StudySpec) -> None:
    """What pydantic cannot say about the spec's shape: axis names, equal zip lengths, unique seeds."""
    where = f"{spec.source}: "
    seen: set[str] = set()

    def check_axis(loc: str, axis: str, values: list[Any]) -> None:
        if not axis or any(not p for p in axis.split(".")):
            raise UserError(f"{where}{loc}: not a dotted run-config path")
        if axis in ("seed",) or axis.split(".")[0] in SPEC_FIELDS:
            hint = "list seeds under `seeds`" if axis == "seed" else "axes are run-config paths"
            raise UserError(f"{where}{loc}: not a run-config path ({hint})")
        if not values:
            raise UserError(f"{where}{loc}: give at least one value")
        if axis in seen:
            raise UserError(f"{where}{loc}: axis {axis!r} appears twice")
        seen.add(axis)

    for axis, values in spec.grid.items():
        check_axis(f"grid.{axis}", axis, values)
    for i, group in enumerate(spec.zip):
        if not group:
            raise UserError(f"{where}zip[{i}]: an empty group")
        lengths = {a: len(v) for a, v in group.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{a}: {n}" for a, n in lengths.items())
            raise UserError(f"{where}zip[{i}]: axes that vary together need equal lengths ({shown})")
        for axis, values in group.items():
            check_axis(f"zip[{i}].{axis}", axis, values)
    if len(set(spec.seeds)) != len(spec.seeds):
        raise UserError(f"{where}seeds = {spec.seeds}: a seed appears twice")
    if spec.models is not None:
        _check_models(spec)


def _check_models(spec: StudySpec) -> None:
    """An evaluation study: some models, each name once, no seeds, no axis that names the model."""
    where = f"{spec.source}: "
    assert spec.models is not None
    if not spec.models:
        raise UserError(f"{where}models: give at least one model (or leave `models` out to train)")
    if spec.seeds != [0]:
        raise UserError(
            f"{where}seeds = {spec.seeds}: an evaluation study trains nothing, so it has no seeds "
            "(its models are the replicates); leave `seeds` out"
        )
    for key in ("model", "pretrained"):
        if key in spec.base:
            raise UserError(f"{where}base.{key}: an evaluation study names its models under `models:`")
    names: dict[str, int] = {}
    for i, m in enumerate(spec.models):
        if m.name in names:
            raise UserError(
                f"{where}models[{i}].name = {m.name!r}: models[{names[m.name]}] has that name too; "
                "names identify the models in the results"
            )
        names[m.name] = i
    for axis in spec.axes()[len(MODEL_FACTORS) :]:
        head = axis.split(".")[0]
        if head in ("model", "pretrained", "family"):
            raise UserError(
                f"{where}{axis}: an evaluation study varies its models through `models:`, not an axis"
            )


def check_analyses(spec: StudySpec, sets: Sequence[str]) -> None:
    """Analyses compare grid or zip axes (and an evaluation study's `model` and `family`) and name sets
    that the runs evaluate (`sets`; a real-data set by its spec, or by its dataset kind when one set has
    it); checked after the runs, whose errors come first."""
    where = f"{spec.source}: "
    axes = spec.axes()
    for i, a in enumerate(spec.analyses):
        if a.compare is not None and a.compare not in axes and a.compare != "seed":
            raise UserError(
                f"{where}analyses[{i}].compare = {a.compare!r}: not a factor of the study "
                f"({', '.join(axes) or 'the study has none'})"
            )
        for field, keys in a.axis_filters().items():
            for key in keys:
                if key not in axes:
                    raise UserError(
                        f"{where}analyses[{i}].{field}.{key}: not a factor of the study "
                        f"({', '.join(axes) or 'the study has none'})"
                    )
        try:  # now, not as a withheld finding once every run is done
            a.with_sets(sets, strict=True)
        except UserError as e:
            raise UserError(f"{where}analyses[{i}].{e}") from None


# --------------------------------------------------------------------------------------------------
# building run configs


def with_defaults(base: dict[str, Any]) -> dict[str, Any]:
    """A run mapping as `clipshift train` reads it (`with_default_source`: the world is the default data
    source), with the thread count fixed (DEFAULT_RUN_THREADS when unset)."""
    out = with_default_source(base)
    if out.get("threads") is None:
        out["threads"] = DEFAULT_RUN_THREADS
    return out


def eval_defaults(base: dict[str, Any]) -> dict[str, Any]:
    """An evaluation run mapping with its thread count fixed (DEFAULT_RUN_THREADS when unset)."""
    out = copy.deepcopy(base)
    if out.get("threads") is None:
        out["threads"] = DEFAULT_RUN_THREADS
    return out


def validate_run(data: dict[str, Any], layers: Sequence[Layer], source: str) -> RunConfig:
    """Validate one expanded run; the first problem is reported where the study file caused it."""
    cfg = validate_config(RunConfig, data, layers, source)
    _check_eval_sets(cfg, layers, source)
    return cfg


def validate_config(cls: type[C], data: dict[str, Any], layers: Sequence[Layer], source: str) -> C:
    """`data` as a `cls`; the first problem is reported where the study file caused it."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        first: dict[str, Any] = dict(e.errors()[0])
        loc = _clean_loc(tuple(first.get("loc", ())), data)
        first["loc"] = _study_loc(loc, layers, first.get("type") == "extra_forbidden")
        raise UserError(format_validation_error(_OneError(first, len(e.errors())), source)) from None


def _check_eval_sets(cfg: RunConfig, layers: Sequence[Layer], source: str) -> None:
    """Evaluation set names are plain strings to pydantic; a typo must fail now, not after training."""
    from clipshift.evaluate.datasets import split_spec
    from clipshift.world.evalsets import parse_split

    for i, name in enumerate(cfg.eval.sets):
        where = format_where(_study_loc(("eval", "sets", i), layers, False))
        try:
            kind, _ = split_spec(name)
            if kind is None:
                parse_split(name)
                if cfg.data.kind != "world":
                    raise UserError(
                        f"world set {name!r} needs world training data (data.kind: {cfg.data.kind})"
                    )
        except UserError as e:
            raise UserError(f"{source}: {where} = {name!r}: {e}") from None


def format_where(loc: tuple[Any, ...]) -> str:
    """A location in the study file as the user writes it: `grid.objective.name[2]`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _OneError:
    """A ValidationError look-alike holding one relocated error (format_validation_error reads .errors())."""

    def __init__(self, first: dict[str, Any], total: int):
        self._errors = [first] + [first] * (total - 1)

    def errors(self) -> list[dict[str, Any]]:
        return self._errors


def _clean_loc(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop the tags pydantic inserts for discriminated unions (`data.world.n` -> `data.n` when
    data.kind is 'world'), so the location is the path the user writes."""
    out: list[Any] = []
    node = data
    tag_skipped = False
    for part in loc:
        if not tag_skipped and isinstance(node, dict) and isinstance(part, str) and node.get("kind") == part:
            tag_skipped = True  # the union's tag, not a key (once per node: `data.world` may follow it)
            continue
        tag_skipped = False
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


def _study_loc(loc: tuple[Any, ...], layers: Sequence[Layer], unknown: bool) -> tuple[Any, ...]:
    """Map a run-config location to the study file: the last layer that set it or a parent of it."""
    for layer in reversed(layers):
        n = len(layer.path)
        if loc[:n] == layer.path:
            if unknown and len(loc) == n and layer.axis is not None:
                return layer.axis  # the axis itself names an unknown field
            return layer.where + loc[n:]
        if layer.path[: len(loc)] == loc:  # a problem at a parent of what the layer set
            return layer.axis if unknown and layer.axis is not None else layer.where
    return ("base", *loc)
