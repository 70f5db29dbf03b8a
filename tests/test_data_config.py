"""DataConfig validation (one-line errors naming the field) and load_table with subsampling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from clipshift.data.config import (
    CsvData,
    ImageNetCaptionsData,
    SubsampleConfig,
    WorldData,
    load_table,
    parse_data_config,
)
from clipshift.data.subsample import subset_by_size
from clipshift.errors import UserError
from clipshift.world import World, WorldSpec
from clipshift.world.export import export_split

WORLD = {"concepts": {"n_classes": 4}}


def test_kinds_parse() -> None:
    assert isinstance(parse_data_config({"kind": "world", "n": 10}), WorldData)
    c = parse_data_config({"kind": "csv", "path": "x.csv", "subsample": {"fraction": 0.5}})
    assert isinstance(c, CsvData) and c.sep == "\t" and c.subsample == SubsampleConfig(fraction=0.5)
    inc = parse_data_config({"kind": "imagenet-captions", "json": "a.json", "image_root": "img"})
    assert isinstance(inc, ImageNetCaptionsData) and inc.json_path == Path("a.json")
    assert inc.fields == ["title", "tags", "description"]
    # a dumped config loads back (the field is stored under its Python name)
    assert parse_data_config(inc.model_dump(mode="json")) == inc
    for kind, extra in [("wds", {"pattern": "s-{0..1}.tar"}), ("imagefolder", {"root": "r"})]:
        assert parse_data_config({"kind": kind, **extra}).kind == kind


def test_every_registered_source_reads_itself_and_is_a_data_config() -> None:
    """A source is one registered class: its kind, its reader, the fields that shape only its captions."""
    from typing import get_args

    from clipshift.data.config import KINDS, SOURCES, DataConfig, DataSource

    union = get_args(get_args(DataConfig)[0])  # Annotated[Union[...], discriminator]
    assert {c.model_fields["kind"].default for c in union} == set(SOURCES) == set(KINDS)
    for cls in SOURCES.values():
        assert cls.read is not DataSource.read
        for path in cls.CAPTION_FIELDS:
            assert path.split(".")[0] in cls.model_fields, (cls, path)
    assert WorldData.CAPTION_FIELDS == ("world.captions",)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"n": 3}, "data.kind: required field is missing; choose from world, csv, wds"),
        ({"kind": "parquet"}, "data.kind = 'parquet': unknown data kind; choose from world"),
        ({"kind": "csv"}, "data.path: required field is missing"),
        ({"kind": "csv", "path": "a", "colour": 1}, "data.colour: unknown field"),
        ({"kind": "world"}, "data.n: required field is missing"),
        ({"kind": "world", "n": 0}, "data.n = 0: Input should be greater than or equal to 1"),
        ({"kind": "world", "n": 5, "split": "moon"}, "data.split = 'moon': "),
        ({"kind": "world", "n": 5, "world": {"seed": -1}}, "data.world.seed = -1: "),
        ({"kind": "wds"}, "data.pattern: required field is missing"),
        (
            {"kind": "imagefolder", "root": "r", "templates": ["photo"]},
            "data.templates = ['photo']: template",
        ),
        (
            {"kind": "imagenet-captions", "json": "a", "image_root": "i", "fields": ["alt"]},
            "data.fields[0] = 'alt'",
        ),
        (
            {"kind": "csv", "path": "a", "subsample": {"size": 5, "fraction": 0.5}},
            "size or fraction, not both",
        ),
        ({"kind": "csv", "path": "a", "subsample": {"trim_shots": 2}}, "data.subsample.trim_shots = 2"),
        ({"kind": "csv", "path": "a", "subsample": {"max_per_class": 5}}, "max_per_class needs zipf_alpha"),
    ],
)
def test_errors_name_the_field(data: dict, message: str) -> None:
    with pytest.raises(UserError) as e:
        parse_data_config(data, "run.yaml", prefix="data")
    text = str(e.value)
    assert text.startswith("run.yaml: ") and message in text and "\n" not in text


def test_train_config_nests_data_config() -> None:
    # TrainConfig holds a DataConfig; the discriminated union works inside a larger model too
    from pydantic import BaseModel, ConfigDict

    from clipshift.configio import validate
    from clipshift.data.config import DataConfig

    class Holder(BaseModel):
        model_config = ConfigDict(extra="forbid")
        data: DataConfig

    h = validate(Holder, {"data": {"kind": "wds", "pattern": "x.tar", "strict": True}})
    assert h.data.kind == "wds" and h.data.strict
    with pytest.raises(UserError, match="kind"):
        validate(Holder, {"data": {"kind": "nope"}})


def test_load_table_world_with_subsample() -> None:
    cfg = parse_data_config({"kind": "world", "n": 60, "world": WORLD, "subsample": {"size": 20, "seed": 1}})
    t = load_table(cfg, 32, progress=False)
    full = World(WorldSpec.model_validate(WORLD)).split("train", 60)
    rows = subset_by_size(full.labels.astype(np.int64), n=20, seed=1)  # what the config asks for
    assert t.captions == [full.captions[i] for i in rows]
    assert len(t) == 20 and t.stats["rows_before"] == 60 and t.stats["rows_after"] == 20
    assert t.stats["subsample"] == {
        "size": 20,
        "min_per_class": 1,
        "trim_tail": 0,
        "trim_shots": 0,
        "seed": 1,
    }
    assert isinstance(t.images, torch.Tensor) and torch.equal(t.images, full.images[rows])
    assert t.labels.tolist() == full.labels[rows].tolist() and set(t.labels.tolist()) == {0, 1, 2, 3}
    plain = load_table(parse_data_config({"kind": "world", "n": 8, "world": WORLD}), 32, progress=False)
    assert len(plain) == 8 and "subsample" not in plain.stats
    with pytest.raises(UserError, match=r"data.world.image_size = 32 but the model takes 64 px"):
        load_table(cfg, 64, progress=False)


def test_load_table_csv_with_subsample(tmp_path: Path) -> None:
    world = World(WorldSpec.model_validate(WORLD))
    out = tmp_path / "csv"
    export_split(world, "train", 48, "csv", out, progress=False)
    # add a class column from the ground truth, so class-aware subsampling has labels to work with
    gt = [json.loads(line) for line in (out / "ground_truth.jsonl").read_text().splitlines()]
    lines = (out / "train.csv").read_text().splitlines()
    (out / "labelled.csv").write_text(
        "\n".join([lines[0] + "\tlabel"] + [f"{ln}\t{g['label']}" for ln, g in zip(lines[1:], gt)]) + "\n"
    )
    counts = tmp_path / "counts.json"
    counts.write_text(json.dumps({"class_counts": [6, 5, 4, 2]}))  # as `world describe --json` writes
    cfg = parse_data_config(
        {
            "kind": "csv",
            "path": str(out / "labelled.csv"),
            "class_key": "label",
            "cache_dir": str(tmp_path / "cache"),
            "subsample": {"match_counts_from": str(counts), "trim_tail": 1, "trim_shots": 1, "fraction": 0.5},
        }
    )
    t = load_table(cfg, 16, progress=False)
    assert t.image_size == 16 and t.class_names == ["0", "1", "2", "3"]
    # profile [6, 5, 4, 2] -> tail (class 3) cut to 1 -> half of 16 rows, keeping every class
    assert len(t) == 8 and t.stats["rows_before"] == 48 and t.stats["rows_after"] == 8
    assert np.bincount(t.labels, minlength=4).min() >= 1
    assert t.stats["subsample"]["shortfall"] == 0 and t.stats["n_images"] == 48
    b = t.batch(np.arange(len(t)))  # memmap rows through the subset view
    assert b.images.shape == (8, 3, 16, 16) and b.images.dtype == torch.uint8
    again = load_table(cfg, 16, progress=False)
    assert again.captions == t.captions and again.stats["cache"] == "hit"

    bad = parse_data_config({"kind": "csv", "path": str(out / "train.csv"), "subsample": {"size": 100}})
    with pytest.raises(UserError, match=r"subsample.size = 100: only 48 rows"):
        load_table(bad.model_copy(update={"cache_dir": tmp_path / "cache"}), 16, progress=False)
    (tmp_path / "bad.json").write_text('{"counts": [1]}')
    nolab = parse_data_config(
        {
            "kind": "csv",
            "path": str(out / "labelled.csv"),
            "subsample": {"match_counts_from": str(tmp_path / "bad.json")},
        }
    )
    with pytest.raises(UserError, match=r"match_counts_from: .*bad.json: expected a list of counts"):
        load_table(nolab.model_copy(update={"cache_dir": tmp_path / "cache"}), 16, progress=False)
