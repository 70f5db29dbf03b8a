"""Tests of `clipshift.world.export`: each on-disk format read back the way other tools read it, and
the atomicity of an export (an interrupted one leaves nothing at `out`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from clipshift.errors import UserError
from clipshift.world import World, WorldSpec
from clipshift.world import export as export_mod
from clipshift.world.export import class_folder, export_split

N = 24
K = 4


@pytest.fixture(scope="module")
def world() -> World:
    return World(WorldSpec.model_validate({"concepts": {"n_classes": K}}))


@pytest.fixture(scope="module")
def open_world() -> World:
    return World(
        WorldSpec.model_validate(
            {"concepts": {"n_classes": K}, "open_world": {"n_concepts": 2, "fraction": 0.3}}
        )
    )


def _read_jsonl(p: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in p.read_text().splitlines()]


def _no_leftovers(out: Path) -> None:
    stray = [p.name for p in out.parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]
    assert stray == []


def _check_manifest(out: Path, fmt: str, world: World) -> dict[str, Any]:
    m = json.loads((out / "manifest.json").read_text())
    assert m["format"] == fmt
    assert m["class_names"] == world.class_names
    assert WorldSpec.model_validate(m["spec"]) == world.spec  # the spec round-trips
    assert m["n_files"] == len(m["files"])
    for rel in m["files"]:
        assert (out / rel).is_file(), rel
    return m


def test_imagefolder(open_world: World, tmp_path: Path) -> None:
    out = tmp_path / "train"
    m = export_split(open_world, "train", N, "imagefolder", out, progress=False)
    assert m == _check_manifest(out, "imagefolder", open_world)
    assert (out / "classnames.txt").read_text().splitlines() == open_world.class_names
    names = open_world.concepts.names
    assert m["open_world_class_names"] == names[K:]

    pngs = sorted(out.glob("*/*.png"))
    assert len(pngs) == N
    gt = _read_jsonl(out / "ground_truth.jsonl")
    assert [g["index"] for g in gt] == list(range(N))
    labels = open_world.factors("train", np.arange(N)).label
    assert [g["label"] for g in gt] == labels.tolist()
    assert any(g["open_world"] for g in gt), "fraction 0.3 of 24 samples should include open-world ones"
    for g in gt:
        p = out / g["path"]
        assert p.parent.name == class_folder(g["label"], names) == f"{g['label']:03d}.{g['class_name']}"
        assert p.name == f"{g['index']:06d}.png"
    assert m["class_folders"] == {class_folder(c, names): c for c in sorted(set(labels.tolist()))}
    # torchvision's ImageFolder (sorted folder order) assigns the world's labels
    from torchvision.datasets import ImageFolder

    tv = ImageFolder(str(out))
    assert [tv.targets[i] for i in range(len(tv))] == [
        g["label"] for g in sorted(gt, key=lambda g: g["path"])
    ]

    with Image.open(pngs[0]) as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (32, 32)
    # the file is the rendered image, pixel for pixel
    f = open_world.factors("train", np.array([0]))
    expected = open_world.render(f)[0].permute(1, 2, 0).numpy()
    with Image.open(out / gt[0]["path"]) as im:
        assert np.array_equal(np.asarray(im), expected)
    _no_leftovers(out)


def test_csv_open_clip_format(world: World, tmp_path: Path) -> None:
    out = tmp_path / "csvout"
    m = export_split(world, "iid", N, "csv", out, progress=False)
    _check_manifest(out, "csv", world)
    assert m["csv"] == "iid.csv" and m["csv_paths"] == "absolute"
    lines = (out / "iid.csv").read_text().splitlines()
    assert lines[0] == "filepath\ttitle"
    assert all(line.count("\t") == 1 for line in lines)
    with (out / "iid.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert len(rows) == N
    assert [r["title"] for r in rows] == world.captions(world.factors("iid", np.arange(N)))
    for r in rows:
        p = Path(r["filepath"])
        assert p.is_absolute() and p.is_file() and p.parent == out / "images"
    gt = _read_jsonl(out / "ground_truth.jsonl")
    assert [g["caption"] for g in gt] == [r["title"] for r in rows]
    assert [out / g["path"] for g in gt] == [Path(r["filepath"]) for r in rows]
    with Image.open(rows[5]["filepath"]) as im:
        assert im.size == (32, 32)


def test_wds_shards_read_back_with_webdataset(world: World, tmp_path: Path) -> None:
    import webdataset as wds

    out = tmp_path / "shards"
    m = export_split(world, "sketch", N, "wds", out, shard_size=10, progress=False)
    _check_manifest(out, "wds", world)
    assert m["n_shards"] == 3
    pattern = (out / "shards.txt").read_text().strip()
    assert pattern == m["shards"] == "shard-{000000..000002}.tar"
    assert sorted(p.name for p in out.glob("*.tar")) == [f"shard-{i:06d}.tar" for i in range(3)]

    ds = wds.WebDataset(str(out / pattern), shardshuffle=False, empty_check=False).decode("pil")
    samples = list(ds)
    assert len(samples) == N
    captions = world.captions(world.factors("sketch", np.arange(N)))
    for i, s in enumerate(samples):
        assert s["__key__"] == f"{i:09d}"
        assert {"png", "txt", "json"} <= set(s)
        assert s["png"].size == (32, 32)
        assert s["txt"] == captions[i] == s["json"]["caption"]
        assert s["json"]["label"] == i % K and s["json"]["domain"] == "sketch"


def test_counteranimal_layout(world: World, tmp_path: Path) -> None:
    out = tmp_path / "ca"
    m = export_split(world, "counteranimal", N, "counteranimal", out, progress=False)
    _check_manifest(out, "counteranimal", world)
    assert m["groups"] == {"common": N, "counter": N} and m["n_images"] == 2 * N
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == sorted(f"{i} {name}" for i, name in enumerate(world.class_names))
    for d in folders:
        assert sorted(p.name for p in (out / d).iterdir()) == ["common", "counter"]
        assert len(list((out / d / "common").glob("*.png"))) == N // K

    habitats = world.background_names
    gt = _read_jsonl(out / "ground_truth.jsonl")
    assert len(gt) == 2 * N
    for g in gt:
        rel = Path(g["path"])
        assert rel.parts[0] == f"{g['label']} {g['class_name']}" and rel.parts[1] == g["group"]
        common_bg = habitats[int(world.concepts.common_background[g["label"]])]
        if g["group"] == "common":
            assert g["common"] and g["background"] == common_bg
        else:
            assert not g["common"] and g["background"] != common_bg
    # paired: the same index is the same object, so only the background differs
    a = np.asarray(Image.open(out / f"0 {world.class_names[0]}" / "common" / "000000.png"))
    b = np.asarray(Image.open(out / f"0 {world.class_names[0]}" / "counter" / "000000.png"))
    assert a.shape == b.shape == (32, 32, 3) and not np.array_equal(a, b)


def test_counteranimal_single_group(world: World, tmp_path: Path) -> None:
    out = tmp_path / "ca-counter"
    m = export_split(world, "counter", 8, "counteranimal", out, progress=False)
    assert m["groups"] == {"counter": 8}
    assert {p.name for p in out.glob("*/*")} == {"counter"}
    assert len(list(out.glob("*/counter/*.png"))) == 8


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_interrupted_export_leaves_nothing(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: type[BaseException]
) -> None:
    out = tmp_path / "data"
    real = export_mod.encode_png
    calls = {"n": 0}

    def flaky(arr: np.ndarray) -> bytes:
        calls["n"] += 1
        if calls["n"] > 5:
            raise exc("boom")
        return real(arr)

    monkeypatch.setattr(export_mod, "encode_png", flaky)
    with pytest.raises(exc):
        export_split(world, "iid", N, "imagefolder", out, progress=False)
    assert calls["n"] == 6  # it did write files before failing
    assert not out.exists()
    _no_leftovers(out)

    monkeypatch.setattr(export_mod, "encode_png", real)
    export_split(world, "iid", N, "imagefolder", out, progress=False)
    assert len(list(out.glob("*/*.png"))) == N and (out / "manifest.json").is_file()


def test_existing_output_needs_overwrite(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "data"
    export_split(world, "iid", 8, "csv", out, progress=False)
    with pytest.raises(UserError, match=r"already exists \(use --overwrite\)"):
        export_split(world, "iid", 8, "csv", out, progress=False)

    # a failed overwrite keeps the previous export intact
    def boom(arr: np.ndarray) -> bytes:
        raise RuntimeError("boom")

    monkeypatch.setattr(export_mod, "encode_png", boom)
    with pytest.raises(RuntimeError):
        export_split(world, "iid", 8, "wds", out, overwrite=True, progress=False)
    assert json.loads((out / "manifest.json").read_text())["format"] == "csv"
    monkeypatch.undo()

    m = export_split(world, "iid", 12, "wds", out, overwrite=True, progress=False)
    assert m["format"] == "wds"
    assert json.loads((out / "manifest.json").read_text())["n"] == 12
    assert not (out / "images").exists() and not (out / "iid.csv").exists()  # the old export is gone
    _no_leftovers(out)


def test_empty_existing_directory_is_fine(world: World, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    export_split(world, "iid", 4, "imagefolder", out, progress=False)
    assert (out / "manifest.json").is_file()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"fmt": "parquet"},
            "unknown export format 'parquet'; choose from imagefolder, csv, wds, counteranimal",
        ),
        ({"n": 0}, "n must be an integer ≥ 1, got 0"),
        ({"n": -3}, "got -3"),
        ({"split": "sideways"}, "unknown split 'sideways'"),
        ({"shard_size": 0}, "shard_size must be ≥ 1"),
    ],
)
def test_bad_arguments(world: World, tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"split": "iid", "n": 4, "fmt": "csv", **kwargs}
    out = tmp_path / "bad"
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        export_split(
            world, args["split"], args["n"], args["fmt"], out, shard_size=kwargs.get("shard_size", 10)
        )
    assert not out.exists()
    _no_leftovers(out)


def test_class_name_with_slash_is_refused(tmp_path: Path) -> None:
    w = World(WorldSpec.model_validate({"concepts": {"n_classes": 2, "names": ["a/b", "c"]}}))
    with pytest.raises(UserError, match="cannot be used as a folder name"):
        export_split(w, "iid", 4, "imagefolder", tmp_path / "x", progress=False)
    export_split(w, "iid", 4, "csv", tmp_path / "y", progress=False)  # no folders named after classes


def test_refuses_the_working_directory(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "keep.txt").write_text("precious")
    monkeypatch.chdir(tmp_path / "work")
    for target in (Path("."), tmp_path):
        with pytest.raises(UserError, match="refusing to export into the current directory"):
            export_split(world, "iid", 4, "csv", target, overwrite=True, progress=False)
    assert (tmp_path / "work" / "keep.txt").read_text() == "precious"
