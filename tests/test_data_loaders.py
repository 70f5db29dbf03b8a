"""Each real-data loader on the world's own exports: images round-trip exactly (PNG is lossless and
nothing is resampled at the world's size), captions and labels are the world's; plus the loaders'
one-line errors and the `imagenet-captions` export format."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from clipshift.data.loaders import (
    load_csv,
    load_imagefolder,
    load_imagenet_captions,
    load_wds,
    read_class_mapping,
    wds_urls,
)
from clipshift.errors import UserError
from clipshift.world import World, WorldSpec
from clipshift.world.export import export_split
from clipshift.world.names import BACKGROUNDS

N = 40
K = 4
SIZE = 32
SPEC = {"concepts": {"n_classes": K}}


@pytest.fixture(scope="module")
def world() -> World:
    return World(WorldSpec.model_validate(SPEC))


@pytest.fixture(scope="module")
def truth(world: World) -> dict[str, object]:
    f = world.factors("train", np.arange(N))
    return {
        "images": world.render(f).numpy(),
        "captions": world.captions(f),
        "labels": f.label.astype(np.int64),
    }


@pytest.fixture(scope="module")
def exports(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exports")
    for fmt in ("csv", "wds", "imagefolder", "imagenet-captions"):
        export_split(world, "train", N, fmt, root / fmt, shard_size=16, progress=False)
    return root


def test_csv_round_trip(exports: Path, truth: dict, tmp_path: Path) -> None:
    t = load_csv(exports / "csv" / "train.csv", SIZE, cache_dir=tmp_path, progress=False)
    assert isinstance(t.images, np.memmap) and t.images.shape == (N, 3, SIZE, SIZE)
    assert np.array_equal(np.asarray(t.images), truth["images"])
    assert t.captions == truth["captions"]
    assert (t.labels == -1).all() and t.class_names == []
    assert t.stats["cache"] == "miss" and t.source.startswith("csv:")
    assert (
        load_csv(exports / "csv" / "train.csv", SIZE, cache_dir=tmp_path, progress=False).stats["cache"]
        == "hit"
    )
    b = t.batch(np.array([3, 1]))
    assert b.texts == [truth["captions"][3], truth["captions"][1]]


def test_csv_relative_paths_class_column_and_errors(exports: Path, truth: dict, tmp_path: Path) -> None:
    # a CSV beside the export with relative paths, a class-name column and a custom separator
    gt = [json.loads(line) for line in (exports / "csv" / "ground_truth.jsonl").read_text().splitlines()]
    p = exports / "csv" / "named.csv"
    with p.open("w", newline="") as fh:
        w = csv.writer(fh, delimiter=",")
        w.writerow(["img", "text", "cls"])
        for g, cap in zip(gt, truth["captions"]):
            w.writerow([g["path"], cap, g["class_name"]])
    t = load_csv(
        p,
        SIZE,
        img_key="img",
        caption_key="text",
        sep=",",
        class_key="cls",
        cache_dir=tmp_path,
        progress=False,
    )
    assert np.array_equal(np.asarray(t.images), truth["images"]) and t.captions == truth["captions"]
    assert t.class_names == sorted({g["class_name"] for g in gt})  # names numbered in sorted order
    assert [t.class_names[i] for i in t.labels] == [g["class_name"] for g in gt]

    with pytest.raises(UserError) as e:
        load_csv(p, SIZE, img_key="filepath", sep=",", cache_dir=tmp_path, progress=False)
    assert str(e.value) == f"{p}: no column 'filepath'; columns are 'img', 'text', 'cls'"
    with pytest.raises(UserError, match="file not found"):
        load_csv(tmp_path / "nope.csv", SIZE, cache_dir=tmp_path)


def test_csv_skips_corrupt_and_missing(
    world: World, truth: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "csv"
    export_split(world, "train", N, "csv", out, progress=False)
    bad, gone = out / "images" / "000004.png", out / "images" / "000007.png"
    bad.write_bytes(b"garbage bytes, not a PNG at all")
    gone.unlink()
    t = load_csv(out / "train.csv", SIZE, cache_dir=tmp_path / "c", progress=False)
    keep = [i for i in range(N) if i not in (4, 7)]
    assert len(t) == N - 2 and t.captions == [truth["captions"][i] for i in keep]
    assert np.array_equal(np.asarray(t.images), truth["images"][keep])
    assert t.stats["skipped_corrupt"] == 1 and t.stats["skipped_missing"] == 1
    assert "warning: skipped 1 missing and 1 undecodable of 40 images" in capsys.readouterr().err
    with pytest.raises(UserError) as e:
        load_csv(out / "train.csv", SIZE, cache_dir=tmp_path / "c", strict=True, progress=False)
    assert str(e.value).startswith(f"{bad}: cannot decode image (") and "\n" not in str(e.value)


def test_wds_round_trip(exports: Path, world: World, truth: dict, tmp_path: Path) -> None:
    out = exports / "wds"
    assert wds_urls(out) == [str(out / f"shard-{i:06d}.tar") for i in range(3)]
    assert wds_urls(out / "shards.txt") == wds_urls(out)
    assert wds_urls(str(out / "shard-{000000..000002}.tar")) == wds_urls(out)
    t = load_wds(out, SIZE, cache_dir=tmp_path, progress=False)
    assert np.array_equal(np.asarray(t.images), truth["images"])
    assert t.captions == truth["captions"] and t.labels.tolist() == truth["labels"].tolist()
    assert t.class_names == world.class_names  # from the json's class_name
    hit = load_wds(out, SIZE, cache_dir=tmp_path, progress=False)
    assert (
        hit.stats["cache"] == "hit"
        and hit.captions == t.captions
        and hit.labels.tolist() == t.labels.tolist()
    )
    with pytest.raises(
        UserError, match=re.escape(f"{out / 'shard-000003.tar'}: shard not found (7 of 10 missing)")
    ):
        load_wds(str(out / "shard-{000000..000009}.tar"), SIZE, cache_dir=tmp_path)


def test_wds_cls_labels_and_bad_images(tmp_path: Path) -> None:
    import io

    import webdataset as wds
    from PIL import Image

    ramp = np.linspace(0, 255, 16, dtype=np.uint8)  # smooth, so JPEG keeps it close
    arr = np.stack(
        [np.tile(ramp, (16, 1)), np.tile(ramp[:, None], (1, 16)), np.full((16, 16), 90, np.uint8)], -1
    )
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    shard = tmp_path / "s.tar"
    with wds.TarWriter(str(shard)) as w:
        w.write({"__key__": "a", "jpg": buf.getvalue(), "txt": b"first", "cls": b"2"})
        w.write({"__key__": "b", "png": b"not a png", "txt": b"second", "cls": b"1"})
        w.write({"__key__": "c", "txt": b"no image", "cls": b"0"})
        w.write({"__key__": "d", "jpg": buf.getvalue(), "cls": b"1"})
    t = load_wds(str(shard), 16, cache_dir=tmp_path / "c", progress=False)
    assert t.captions == ["first", ""] and t.labels.tolist() == [2, 1] and t.class_names == ["0", "1", "2"]
    assert t.stats["skipped_corrupt"] == 1 and t.stats["skipped_missing"] == 1
    assert np.abs(np.asarray(t.images[0]).astype(int) - arr.transpose(2, 0, 1)).mean() < 4  # JPEG is lossy
    with pytest.raises(UserError, match=re.escape(f"{shard}#b: cannot decode image")):
        load_wds(str(shard), 16, cache_dir=tmp_path / "c", strict=True, progress=False)


def test_imagefolder_round_trip(exports: Path, world: World, truth: dict, tmp_path: Path) -> None:
    root = exports / "imagefolder"
    templates = ["a photo of a {}.", "a drawing of the {}."]
    t = load_imagefolder(root, SIZE, templates=templates, cache_dir=tmp_path, progress=False)
    # rows: class folders in sorted order, files sorted within them
    order = [int(p.stem) for p in sorted(root.glob("*/*.png"))]
    assert t.class_names == world.class_names and t.n_eval_classes is None
    assert t.labels.tolist() == truth["labels"][order].tolist()
    assert np.array_equal(np.asarray(t.images), truth["images"][order])
    expected = [templates[i % 2].format(world.class_names[lab]) for i, lab in enumerate(t.labels)]
    assert t.captions == expected
    # without classnames.txt: folder names minus the `NNN.` prefix; default template; names as a list
    (root / "classnames.txt").rename(tmp_path / "names.txt")
    try:
        t2 = load_imagefolder(root, SIZE, cache_dir=tmp_path, progress=False)
        assert (
            t2.class_names == world.class_names and t2.captions[0] == f"a photo of a {world.class_names[0]}."
        )
        assert t2.stats["cache"] == "hit"
        t3 = load_imagefolder(
            root, SIZE, class_names=["p", "q", "r", "s"], cache_dir=tmp_path, progress=False
        )
        assert t3.class_names == ["p", "q", "r", "s"] and t3.captions[-1] == "a photo of a s."
        t4 = load_imagefolder(
            root, SIZE, class_names=tmp_path / "names.txt", cache_dir=tmp_path, progress=False
        )
        assert t4.class_names == world.class_names
    finally:
        (tmp_path / "names.txt").rename(root / "classnames.txt")


def test_imagefolder_class_names_count(tmp_path: Path, world: World) -> None:
    root = tmp_path / "if"
    export_split(world, "iid", 24, "imagefolder", root, progress=False)
    (root / "classnames.txt").write_text("one\ntwo\n")
    with pytest.raises(UserError) as e:
        load_imagefolder(root, SIZE, cache_dir=tmp_path / "c", progress=False)
    assert str(e.value) == f"{root / 'classnames.txt'}: 2 class names for {K} class folders in {root}"


def test_imagefolder_world_export_with_missing_and_open_world_classes(tmp_path: Path) -> None:
    # 12 samples of 10 classes: some classes have no folder; open-world concepts get folders past K
    w = World(
        WorldSpec.model_validate(
            {"concepts": {"n_classes": 10}, "open_world": {"n_concepts": 3, "fraction": 0.4}}
        )
    )
    root = tmp_path / "if"
    export_split(w, "train", 12, "imagefolder", root, progress=False)
    labels = w.factors("train", np.arange(12)).label
    assert len({int(x) for x in labels if x < 10}) < 10 and (labels >= 10).any()
    t = load_imagefolder(root, SIZE, cache_dir=tmp_path / "c", progress=False)
    order = [int(p.stem) for p in sorted(root.glob("*/*.png"))]
    assert t.labels.tolist() == labels[order].tolist()  # the folders' prefixes, not their sorted ranks
    assert t.n_eval_classes == 10 and t.class_names[:10] == w.class_names
    for lab in set(t.labels.tolist()):
        assert t.class_names[lab] == w.concepts.names[lab]


def test_imagenet_captions_export(exports: Path, world: World, truth: dict) -> None:
    out = exports / "imagenet-captions"
    m = json.loads((out / "manifest.json").read_text())
    assert m["format"] == "imagenet-captions" and m["json"] == "imagenet_captions.json"
    assert all((out / rel).is_file() for rel in m["files"])
    records = json.loads((out / "imagenet_captions.json").read_text())
    assert len(records) == N
    wnid_lines = (out / "wnids.txt").read_text().splitlines()
    assert wnid_lines == [f"w{i:08d}\t{name}" for i, name in enumerate(world.concepts.names)]
    f = world.factors("train", np.arange(N))
    for i, r in enumerate(records):
        lab = int(truth["labels"][i])
        assert r["wnid"] == f"w{lab:08d}" and r["filename"] == f"{r['wnid']}_{i}.png"
        assert (out / "images" / r["wnid"] / r["filename"]).is_file()
        assert r["description"] == truth["captions"][i]  # the default world's captions are full-level
        assert r["description"].startswith(r["title"]) and world.concepts.names[lab] in r["title"]
        assert "on" not in r["title"].split()  # no scene in the title
        tags = dict(zip(("size", "pattern", "colour", "background", "domain"), r["tags"]))
        assert tags["background"] == BACKGROUNDS[int(f.background[i])][0] and tags["domain"] == "photo"
        assert set(r) == {"filename", "wnid", "title", "description", "tags"}


def test_imagenet_captions_round_trip(exports: Path, world: World, truth: dict, tmp_path: Path) -> None:
    out = exports / "imagenet-captions"
    js, imgs, wn = out / "imagenet_captions.json", out / "images", out / "wnids.txt"
    t = load_imagenet_captions(js, imgs, SIZE, class_names=wn, cache_dir=tmp_path, progress=False)
    records = json.loads(js.read_text())
    assert np.array_equal(np.asarray(t.images), truth["images"])
    assert t.labels.tolist() == truth["labels"].tolist() and t.class_names == world.concepts.names
    r0 = records[0]
    name0 = world.concepts.names[int(truth["labels"][0])]
    assert t.captions[0] == f"{r0['title']} {' '.join(r0['tags'])} {r0['description']} {name0}"
    assert t.stats["class_name_appended"] is True

    # chosen fields, JSON lines, no appended name, empty fields skipped, sorted-wnid labels
    jl = tmp_path / "recs.jsonl"
    recs = [dict(r) for r in records]
    recs[1]["title"] = ""
    recs[2]["tags"] = []
    del recs[3]["wnid"]  # taken from the filename's prefix
    jl.write_text("".join(json.dumps(r) + "\n" for r in recs))
    t2 = load_imagenet_captions(
        jl, imgs, SIZE, fields=("title", "tags"), append_class_name=False, cache_dir=tmp_path
    )
    assert t2.captions[0] == f"{r0['title']} {' '.join(r0['tags'])}"
    assert t2.captions[1] == " ".join(recs[1]["tags"]) and t2.captions[2] == recs[2]["title"]
    wnids = sorted({r["wnid"] for r in records})
    assert t2.labels.tolist() == [wnids.index(r["wnid"]) for r in records] and t2.class_names == wnids

    with pytest.raises(UserError) as e:
        load_imagenet_captions(js, imgs, SIZE, fields=("title", "caption"), cache_dir=tmp_path)
    assert str(e.value) == "fields: unknown field 'caption'; valid ones are title, tags, description"
    partial = tmp_path / "partial.txt"
    partial.write_text("w00000000\tfirst\n")
    with pytest.raises(UserError, match="no class for wnid 'w00000001'"):
        load_imagenet_captions(js, imgs, SIZE, class_names=partial, cache_dir=tmp_path)


def test_read_class_mapping_formats(tmp_path: Path) -> None:
    loc = tmp_path / "LOC_synset_mapping.txt"
    loc.write_text("n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n")
    assert read_class_mapping(loc) == {
        "n01440764": "tench, Tinca tinca",
        "n01443537": "goldfish, Carassius auratus",
    }
    js = tmp_path / "m.json"
    js.write_text(json.dumps({"b": "bee", "a": "ant"}))
    assert list(read_class_mapping(js).items()) == [("b", "bee"), ("a", "ant")]  # file order = label order
