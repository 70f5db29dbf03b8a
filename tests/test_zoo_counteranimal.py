"""An evaluation study end to end on a CounterAnimal layout: CLIP models and ImageNet classifiers (a
torchvision `tv:` model and a clipshift supervised checkpoint) evaluated through `clipshift study run`,
then `clipshift report --json --figures`. The drop from common to counter backgrounds by family, each
family's mean drop and its least-squares line of counter on common accuracy are the numbers recomputed
from the study's rows, and the counter-vs-common figure is written (tests/test_counteranimal_families.py
checks the same analysis on planted rows).

The set is `clipshift world export --format counteranimal` of a 5-class world (labels 0-4, no manifest, as
the real CounterAnimal has none), scored with a class-name file of ImageNet classes 0-4 so that the
CLIP models' zero-shot and the classifiers' heads answer over the same 5 classes. Random towers predict
one class for everything (every accuracy 20 %, every drop 0, no line), so each model's classifier is its
random tower's class means on fresh world images (as tests/test_eval_study.py builds its classifiers):
a CLIP's text projection is solved so that each class's prompt embeds along that mean. Their accuracies
stay near chance, but they differ between the models of a family, so each family has a line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_classifiers import TV_ARCH
from test_eval_study import ARCH, WORLD, _classifier, _clip_state

from clipshift.cli.main import main
from clipshift.study import ResultsStore

pytestmark = pytest.mark.usefixtures("private_cache")

N = 20  # images per group (common, counter): 4 per class each
FRESH = 50  # world iid samples (from index 50,000) whose class means are a model's classifier
CLIPS = (1, 2, 3)  # seeds of the CLIP family's models
FAMILIES = ("clip", "imagenet")


def _fresh(world, size: int) -> tuple[torch.Tensor, np.ndarray]:
    """uint8 images (FRESH, 3, size, size) apart from the exported ones, and their labels."""
    from clipshift.evaluate.datasets import world_set

    data = world_set(world, "iid", FRESH, start=50_000, image_size=32)
    images = data.images
    if size != 32:  # the ImageNet classifier's own input size
        up = torch.nn.functional.interpolate(images.float(), size=size, mode="bilinear", align_corners=False)
        images = up.round().clamp(0, 255).to(torch.uint8)
    return images, np.asarray(data.labels)


def _centred_means(features: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    f = torch.nn.functional.normalize(features.float(), dim=-1)
    means = torch.stack([f[torch.as_tensor(labels == c)].mean(0) for c in range(5)])
    return means - means.mean(0)


def _clip(seed: int, world, names: list[str], path: Path) -> None:
    """A random tiny CLIP whose prompt 'a photo of a {name}.' of each class embeds along its image tower's
    centred class mean: the text projection solved by least squares on the prompts' text states."""
    from clipshift.evaluate import image_features, open_model
    from clipshift.evaluate.templates import SINGLE
    from clipshift.models.factory import class_text_embeddings

    state = _clip_state(seed)
    width = state["text_projection"].shape[0]
    state["text_projection"] = torch.eye(width)  # the text tower's pooled state, as it is
    scratch = path.with_name(f"scratch-{path.name}")
    torch.save(state, scratch)
    model = open_model(f"{ARCH}:{scratch}")  # as the study opens it: its tokenizer and preprocessing
    images, labels = _fresh(world, model.image_size)
    with torch.no_grad():
        text = class_text_embeddings(model.module, model.tokenizer, names, SINGLE)  # (5, width)
        target = _centred_means(image_features(model, images), labels)
    state["text_projection"] = torch.linalg.pinv(text) @ target
    torch.save(state, path)


def _tv(seed: int, world, names: list[str], path: Path) -> None:
    """A random torchvision classifier whose head rows of the 5 named ImageNet classes are its trunk's
    centred class means (through its own preprocessing); the other 995 rows stay random."""
    import torchvision

    from clipshift.evaluate import image_features, open_model
    from clipshift.evaluate.datasets.imagenet import imagenet_columns

    torch.manual_seed(seed)
    net = torchvision.models.get_model(TV_ARCH, weights=None, num_classes=1000)
    scratch = path.parent / "scratch" / path.name  # torchvision reads its preset off the file name
    scratch.parent.mkdir()
    torch.save(net.state_dict(), scratch)
    model = open_model(f"tv:{TV_ARCH}:{scratch}")
    images, labels = _fresh(world, model.image_size)
    rows = [c[0] for c in imagenet_columns(names, "names", "tv")]
    with torch.no_grad():
        net.fc.weight[rows] = _centred_means(image_features(model, images), labels)
        net.fc.bias[rows] = 0.0
    torch.save(net.state_dict(), path)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The CounterAnimal folder, five checkpoints in three formats, and the study run by the CLI."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    from clipshift.world import World, WorldSpec
    from clipshift.world.export import export_split

    root = tmp_path_factory.mktemp("zoo-ca")
    world = World(WorldSpec.model_validate(WORLD))
    ca = root / "counteranimal"
    export_split(world, "counteranimal", N, "counteranimal", ca, progress=False)
    (ca / "manifest.json").unlink()  # CounterAnimal's own layout: ImageNet labels, no class names
    names = list(IMAGENET_CLASSNAMES[:5])
    (root / "classnames.txt").write_text("\n".join(names) + "\n")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for seed in CLIPS:
            _clip(seed, world, names, root / f"clip{seed}.pt")
        _tv(0, world, names, root / "tv.pth")
        torch.save(_classifier(4, world), root / "sup.pt")
    finally:
        torch.set_num_threads(threads)
    models = [
        {"name": f"clip-{s}", "model": f"{ARCH}:{root / f'clip{s}.pt'}", "family": "clip"} for s in CLIPS
    ]
    models += [
        {"name": "tv", "model": f"tv:{TV_ARCH}:{root / 'tv.pth'}", "family": "imagenet"},
        {"name": "sup", "model": str(root / "sup.pt"), "family": "imagenet"},
    ]
    spec = {
        "name": "zoo-counteranimal",
        "models": models,
        "base": {
            "eval": {"sets": [f"counteranimal:{ca}"], "class_names": str(root / "classnames.txt"),
                     "templates": "single"},
            "threads": 1,
        },
        "analyses": [{"kind": "spurious_drop", "within": "counteranimal", "compare": "family"}],
    }  # fmt: skip
    path = root / "zoo.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = root / "study"
    assert main(["study", "run", str(path), "--out", str(out), "--quiet"]) == 0
    return {"spec": spec, "set": f"counteranimal:{ca}", "out": out, "figures": root / "figures"}


def _groups(study) -> dict[str, tuple[str, float, float]]:
    """model -> (family, common, counter) accuracy from the study's rows."""
    with ResultsStore(study["out"] / "results.sqlite") as store:
        rows = store.results()
    acc: dict[str, dict[str, float]] = {}
    family = {}
    for r in rows:
        if r["eval_set"] == study["set"] and r["class_id"] == -1 and r["metric"].startswith("group_acc/"):
            acc.setdefault(r["factors"]["model"], {})[r["metric"]] = r["value"]
            family[r["factors"]["model"]] = r["factors"]["family"]
    return {m: (family[m], a["group_acc/group=common"], a["group_acc/group=counter"]) for m, a in acc.items()}


def test_every_model_has_common_and_counter_rows(study):
    groups = _groups(study)
    families = {m["name"]: m["family"] for m in study["spec"]["models"]}
    assert {m: f for m, (f, _, _) in groups.items()} == families  # every model, with its family
    for family in FAMILIES:  # each family's line has two distinct common accuracies
        common = [c for f, c, _ in groups.values() if f == family]
        assert np.ptp(common) > 0, (family, groups)


def test_report_numbers_are_the_rows_by_family(study, capsys):
    groups = _groups(study)
    figures = study["figures"]
    assert main(["report", str(study["out"]), "--json", "--figures", str(figures)]) == 0
    doc = json.loads(capsys.readouterr().out)
    (f,) = doc["findings"]
    assert f["kind"] == "spurious_drop" and doc["n_runs"] == 5
    drops = {fam: [100 * (c - k) for ff, c, k in groups.values() if ff == fam] for fam in FAMILIES}
    (comp,) = [n for n in f["numbers"] if n["what"] == "drop"]
    assert (comp["ref"], comp["level"]) == ("clip", "imagenet")  # the file's first family is the reference
    assert comp["ref_mean"]["value"] == pytest.approx(np.mean(drops["clip"]))
    assert comp["level_mean"]["value"] == pytest.approx(np.mean(drops["imagenet"]))
    assert comp["diff"]["value"] == pytest.approx(np.mean(drops["imagenet"]) - np.mean(drops["clip"]))
    table = f["tables"][0]
    assert [row[:2] for row in table["rows"]] == [["clip", str(len(CLIPS))], ["imagenet", "2"]]
    lines = {n["family"]: n for n in f["numbers"] if n["what"] == "counter_vs_common_line"}
    assert set(lines) == {"clip", "imagenet"}
    for fam, line in lines.items():
        cx = [100 * c for ff, c, _ in groups.values() if ff == fam]
        ky = [100 * k for ff, _, k in groups.values() if ff == fam]
        slope, intercept = np.polyfit(cx, ky, 1)
        assert line["slope"] == pytest.approx(slope) and line["intercept"] == pytest.approx(intercept)
    assert any(f"family={fam}: counter = " in note for note in f["notes"] for fam in lines)
    assert doc["figure_files"] == [str(figures / "1-spurious-drop-1.svg")]
    svg = (figures / "1-spurious-drop-1.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
