"""DataConfig: where a run's training data comes from (a world split or files on disk) and how it is
subsampled. Each source (`SOURCES`, by `kind`) reads itself; `load_table` reads and subsamples."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clipshift.configio import validate
from clipshift.data import subsample as sub
from clipshift.data.table import ImageTextTable, world_table
from clipshift.errors import UserError
from clipshift.world.spec import WorldSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubsampleConfig(_Strict):
    """Controlled subsampling, applied in this order: class profile (`zipf_alpha` or
    `match_counts_from`), then `trim_tail`, then data scale (`size` or `fraction`)."""

    size: int | None = Field(None, ge=1, description="keep this many rows (random, min_per_class of each)")
    fraction: float | None = Field(None, gt=0, le=1, description="keep this fraction of the rows")
    min_per_class: int = Field(1, ge=0, description="rows every class keeps under size/fraction and zipf")
    zipf_alpha: float | None = Field(
        None, ge=0, le=10, description="class counts ∝ rank^-alpha (ranks in a seeded class order)"
    )
    max_per_class: int | None = Field(
        None, ge=1, description="head-class count of the Zipf profile (default: as many as the data allows)"
    )
    trim_tail: int = Field(0, ge=0, description="cut the k rarest classes to trim_shots rows")
    trim_shots: int = Field(0, ge=0, le=1, description="rows left in each trimmed class (0 or 1)")
    match_counts_from: Path | None = Field(
        None,
        description="JSON list of per-class counts to match, or `clipshift world describe --json` output "
        "(its class_counts)",
    )
    seed: int = Field(0, ge=0, description="which rows are drawn (independent of the training seed)")

    @model_validator(mode="after")
    def _exclusive(self) -> SubsampleConfig:
        if self.size is not None and self.fraction is not None:
            raise ValueError("give size or fraction, not both")
        if self.zipf_alpha is not None and self.match_counts_from is not None:
            raise ValueError("give zipf_alpha or match_counts_from, not both")
        if self.max_per_class is not None and self.zipf_alpha is None:
            raise ValueError("max_per_class needs zipf_alpha")
        return self


class DataSource(_Strict):
    """A source of training rows. A new source is a subclass with its own `kind` Literal, fields and
    `read`, registered with `@source` and listed in `DataConfig`; loading, validation messages and the
    kinds in them follow from the registration."""

    kind: str  # each kind narrows this to its Literal; declared here so dumps list it first
    subsample: SubsampleConfig | None = Field(None, description="controlled subsampling of the rows")
    cache_dir: Path | None = Field(
        None,
        description="decoded-image cache (default: $CLIPSHIFT_CACHE/images or ~/.cache/clipshift/images)",
    )
    strict: bool = Field(False, description="fail on a missing or undecodable image instead of skipping it")

    # fields (dotted, below `data`) that shape only the captions, never which rows there are, their images
    # or labels: a run whose objective reads no captions leaves them out of its identity
    CAPTION_FIELDS: ClassVar[tuple[str, ...]] = ()

    def read(self, image_size: int, progress: bool) -> ImageTextTable:
        """The source's rows at `image_size` (before subsampling)."""
        raise NotImplementedError

    def class_counts(self) -> np.ndarray | None:
        """Rows per label the data will have (after subsampling), over the whole label space, when the
        source knows them without reading images (a plan's checks use them); None when it does not."""
        return None


SOURCES: dict[str, type[DataSource]] = {}
_D = TypeVar("_D", bound=type[DataSource])


def source(cls: _D) -> _D:
    """Class decorator: make a data source selectable by its `kind`."""
    klass: type[DataSource] = cls
    SOURCES[klass.model_fields["kind"].default] = klass
    return cls


# `stream: auto` streams a world split whose images would take more than this in memory
STREAM_AUTO_BYTES = 2 * 2**30


@source
class WorldData(DataSource):
    """A split of the procedural world, rendered at the model's resolution."""

    CAPTION_FIELDS = ("world.captions",)  # captions draw from their own random stream (world.sampling)

    kind: Literal["world"] = "world"
    world: WorldSpec = Field(default_factory=WorldSpec, description="the procedural world")
    split: str = Field("train", description="which split to render")
    n: int = Field(..., ge=1, description="number of samples (indices 0..n-1 of the split)")
    stream: bool | Literal["auto"] = Field(
        "auto",
        description="render each batch's rows when the loop takes them instead of the whole split up front "
        "(memory: a few bytes a row instead of 3 x image_size² for its image; the same rows bit for bit, "
        "so the same weights, at the cost of rendering every epoch again). auto: stream when the images "
        "would exceed 2 GiB (n x 3 x image_size² bytes: 699,051 rows at 32 px); changes no number, so it "
        "is not part of a run's identity",
    )

    def streams(self) -> bool:
        """Whether this split is streamed (`stream`, with auto decided by the images' size)."""
        from clipshift.data.streamed import stream_bytes

        if self.stream == "auto":
            return stream_bytes(self.n, self.world.image_size) > STREAM_AUTO_BYTES
        return self.stream

    @field_validator("split")
    @classmethod
    def _split_known(cls, v: str) -> str:
        from clipshift.world.evalsets import parse_split

        try:
            parse_split(v)
        except UserError as e:
            raise ValueError(str(e)) from None
        return v

    def read(self, image_size: int, progress: bool) -> ImageTextTable:
        from clipshift.world import World

        have = self.world.image_size
        if have != image_size:
            raise UserError(
                f"data.world.image_size = {have} but the model takes {image_size} px images; "
                f"set data.world.image_size={image_size} (the world renders at any size) or the model's size"
            )
        world = World(self.world)
        if self.streams():
            from clipshift.data.streamed import StreamedTable

            return StreamedTable(world.stream(self.split, self.n))
        return world_table(world.split(self.split, self.n, progress=progress))

    def class_counts(self) -> np.ndarray | None:
        from clipshift.world.sampling import split_labels

        labels = split_labels(self.world, self.split, np.arange(self.n))
        if self.subsample is not None:
            labels = labels[subsample_rows(labels, self.subsample)[0]]
        return np.bincount(labels, minlength=self.world.concepts.n_classes + self.world.open_world.n_concepts)


@source
class CsvData(DataSource):
    """open_clip's CSV/TSV of image paths and captions."""

    CAPTION_FIELDS = ("caption_key",)

    kind: Literal["csv"] = "csv"
    path: Path = Field(..., description="open_clip CSV/TSV; relative image paths resolve against its folder")
    img_key: str = "filepath"
    caption_key: str = "title"
    sep: str = "\t"
    class_key: str | None = Field(None, description="column with class labels or names (default: none)")

    def read(self, image_size: int, progress: bool) -> ImageTextTable:
        from clipshift.data import loaders

        return loaders.load_csv(
            self.path,
            image_size,
            img_key=self.img_key,
            caption_key=self.caption_key,
            sep=self.sep,
            class_key=self.class_key,
            cache_dir=self.cache_dir,
            strict=self.strict,
            progress=progress,
        )


@source
class WdsData(DataSource):
    """webdataset shards."""

    kind: Literal["wds"] = "wds"
    pattern: str = Field(..., description="brace pattern, shards.txt file, or a directory holding shards.txt")

    def read(self, image_size: int, progress: bool) -> ImageTextTable:
        from clipshift.data import loaders

        return loaders.load_wds(
            self.pattern, image_size, cache_dir=self.cache_dir, strict=self.strict, progress=progress
        )


@source
class ImageFolderData(DataSource):
    """A `root/<class folder>/<image>` tree, captioned by class-name templates."""

    CAPTION_FIELDS = ("templates",)

    kind: Literal["imagefolder"] = "imagefolder"
    root: Path
    templates: list[str] | None = Field(
        None, description="caption templates with {} (default: a photo of a {}.)"
    )
    class_names: list[str] | Path | None = Field(
        None, description="names in folder order, or a file of them (default: root/classnames.txt)"
    )

    @field_validator("templates")
    @classmethod
    def _placeholder(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("give at least one template")
            for t in v:
                if "{}" not in t:
                    raise ValueError(f"template {t!r} has no {{}} for the class name")
        return v

    def read(self, image_size: int, progress: bool) -> ImageTextTable:
        from clipshift.data import loaders

        return loaders.load_imagefolder(
            self.root,
            image_size,
            templates=self.templates,
            class_names=self.class_names,
            cache_dir=self.cache_dir,
            strict=self.strict,
            progress=progress,
        )


CaptionField = Literal["title", "tags", "description"]


def _all_fields() -> list[CaptionField]:
    return ["title", "tags", "description"]


@source
class ImageNetCaptionsData(DataSource):
    """ImageNet-Captions records (JSON) over ImageNet's image folders."""

    CAPTION_FIELDS = ("fields", "append_class_name")  # loaders.load_imagenet_captions: rows come first

    # `json` would shadow BaseModel.json, so the field is json_path and `json` its name in configs
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: Literal["imagenet-captions"] = "imagenet-captions"
    json_path: Path = Field(..., alias="json", description="records as a JSON list or JSON lines")
    image_root: Path = Field(..., description="images at image_root/<wnid>/<filename>")
    fields: list[CaptionField] = Field(
        default_factory=_all_fields, description="caption text fields, in order"
    )
    append_class_name: bool = True
    class_names: Path | None = Field(None, description="wnid<TAB>name lines or JSON {wnid: name}")

    def read(self, image_size: int, progress: bool) -> ImageTextTable:
        from clipshift.data import loaders

        return loaders.load_imagenet_captions(
            self.json_path,
            self.image_root,
            image_size,
            fields=list(self.fields),
            append_class_name=self.append_class_name,
            class_names=self.class_names,
            cache_dir=self.cache_dir,
            strict=self.strict,
            progress=progress,
        )


# every registered source; a new one is added here too (a static union, so mypy narrows on `kind`)
DataConfig = Annotated[
    WorldData | CsvData | WdsData | ImageFolderData | ImageNetCaptionsData, Field(discriminator="kind")
]
KINDS = tuple(SOURCES)
# a run's training data when its config names none (TrainConfig's default): the procedural world
DEFAULT_DATA: dict[str, Any] = {"kind": "world", "n": 20000}


def with_default_source(run: dict[str, Any]) -> dict[str, Any]:
    """A run mapping (a copy) whose data names its source: the world is the default one (no `data`:
    DEFAULT_DATA; a `data` mapping without `kind`: kind world). `clipshift train` and studies use it."""
    out = copy.deepcopy(run)
    data = out.get("data")
    if data is None:
        out["data"] = dict(DEFAULT_DATA)
    elif isinstance(data, dict):
        data.setdefault("kind", DEFAULT_DATA["kind"])
    return out


def parse_data_config(data: Any, source: str | None = None, prefix: str = "") -> DataConfig:
    """Validate a mapping into a DataConfig; one-line UserErrors that name the field as the user wrote
    it (`kind`, `path`, ...), without the union's tag in the middle."""
    where = f"{source}: " if source else ""
    field = f"{prefix}.kind" if prefix else "kind"
    if not isinstance(data, dict):
        raise UserError(f"{where}{prefix or '<root>'}: expected a mapping, got {type(data).__name__}")
    kind = data.get("kind")
    if kind is None:
        raise UserError(f"{where}{field}: required field is missing; choose from {', '.join(KINDS)}")
    if kind not in SOURCES:
        raise UserError(f"{where}{field} = {kind!r}: unknown data kind; choose from {', '.join(KINDS)}")
    return cast(DataConfig, validate(SOURCES[kind], data, source, prefix))


# --------------------------------------------------------------------------------------------------
# loading


def load_table(cfg: DataConfig, image_size: int, progress: bool = True) -> ImageTextTable:
    """The configured data as a table at `image_size`, subsampled if asked; `table.stats` records the
    subsampling (`subsample`, `rows_before`, `rows_after`) next to the loader's own stats."""
    table = cfg.read(image_size, progress)
    if cfg.subsample is not None:
        table = apply_subsample(table, cfg.subsample)
    return table


def read_counts(path: Path) -> np.ndarray:
    """Per-class counts from a JSON list, or from a JSON object's `class_counts` (`world describe`)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"subsample.match_counts_from: {p}: file not found")
    try:
        data = json.loads(p.read_text())
    except ValueError as e:
        raise UserError(f"subsample.match_counts_from: {p}: not valid JSON ({e})") from None
    if isinstance(data, dict):
        data = data.get("class_counts")
    if not isinstance(data, list) or not all(isinstance(c, int) and c >= 0 for c in data):
        raise UserError(
            f"subsample.match_counts_from: {p}: expected a list of counts ≥ 0 or an object with class_counts"
        )
    return np.asarray(data, dtype=np.int64)


def apply_subsample(table: ImageTextTable, cfg: SubsampleConfig) -> ImageTextTable:
    """Apply `cfg` to a table (profile, then tail, then scale) and record it in the stats."""
    rows, record = subsample_rows(table.labels, cfg)
    out = table.subset(rows)
    out.stats = {**table.stats, "subsample": record, "rows_before": len(table), "rows_after": len(rows)}
    return out


def subsample_rows(labels: np.ndarray, cfg: SubsampleConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """The rows `cfg` keeps of data with these labels (it reads nothing else), and its record."""
    rows = np.arange(len(labels), dtype=np.int64)
    record: dict[str, Any] = cfg.model_dump(mode="json", exclude_none=True)
    if cfg.zipf_alpha is not None:
        rows = rows[
            sub.subsample_zipf(
                labels[rows], cfg.zipf_alpha, cfg.seed, cfg.max_per_class, min_per_class=cfg.min_per_class
            )
        ]
    elif cfg.match_counts_from is not None:
        target = read_counts(cfg.match_counts_from)
        short = sub.match_shortfall(labels[rows], target)
        record["shortfall"] = int(short.sum())
        record["shortfall_classes"] = int((short > 0).sum())
        rows = rows[sub.match_counts(labels[rows], target, cfg.seed)]
    if cfg.trim_tail:
        rows = rows[sub.trim_tail(labels[rows], cfg.trim_tail, cfg.trim_shots, cfg.seed)]
    if cfg.size is not None or cfg.fraction is not None:
        size = cfg.size
        if size is not None and size > len(rows):
            raise UserError(f"subsample.size = {size}: only {len(rows)} rows to choose from")
        rows = rows[sub.subset_by_size(labels[rows], size, cfg.fraction, cfg.seed, cfg.min_per_class)]
    if len(rows) == 0:
        raise UserError("subsample: no rows left")
    return rows, record
