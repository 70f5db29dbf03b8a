"""Every registered evaluation task runs on a tiny model and set, every registered dataset layout loads a
tiny world export written in it, and every metric they emit has a declared unit: a new task or layout is
tested by registering it (a new layout also needs its writer in LAYOUTS below)."""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_objectnet_mappings
from PIL import Image

from clipshift.evaluate import EvalData, evaluate_dataset, from_module, load_eval_data, world_set
from clipshift.evaluate.datasets import DATASETS, imagenet_tables
from clipshift.evaluate.tasks import TASKS
from clipshift.evaluate.units import is_declared
from clipshift.models import ModelConfig, OpenClipTokenizer, build_classifier, build_clip
from clipshift.world.export import export_split

TEMPLATES = ["a photo of a {}."]


@pytest.fixture(scope="module")
def tiny_clip():
    tok = OpenClipTokenizer()
    return from_module(build_clip(ModelConfig(), tok), tok, name="tiny-clip")


@pytest.fixture(scope="module")
def tiny_classifier():
    return from_module(build_classifier(ModelConfig(), 3, "linear"), name="tiny-classifier")


def _labelled() -> EvalData:
    g = torch.Generator().manual_seed(0)
    n = 24
    return EvalData(
        name="tiny",
        images=torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
        labels=np.arange(n) % 3,
        class_names=["zorp", "blick", "dax"],
        groups={"background": (np.arange(n) // 12, ["snow", "sand"])},
        subsets={"pair": [[0], [1]]},
        source="memory",
    )


def _pairs() -> EvalData:
    g = torch.Generator().manual_seed(1)
    n = 12
    return EvalData(
        name="tiny-pairs",
        images=torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
        labels=np.full(n, -1),
        class_names=[],
        texts=[f"a photo of thing {i}" for i in range(6)],
        image_text=np.arange(n) % 6,
        source="memory",
    )


def _check_declared(metrics: dict, per_class: dict) -> None:
    undeclared = [m for m in [*metrics, *per_class] if not is_declared(m)]
    assert not undeclared, f"declare their units where they are computed: {undeclared}"


@pytest.mark.parametrize("name", TASKS.names())
def test_every_registered_task_runs_on_a_tiny_model_and_set(name, tiny_clip, tiny_classifier):
    task = TASKS.get(name)
    data = _pairs() if task.retrieval else _labelled()
    for model in [tiny_clip] if task.retrieval else [tiny_clip, tiny_classifier]:
        (res,), feats, _ = evaluate_dataset(model, data, [name], TEMPLATES, min_group_size=1)
        assert res.dataset == data.name and res.task and res.metrics, (name, model.kind)
        assert feats.shape[0] == len(data)
        assert all(isinstance(v, float) for v in res.metrics.values())
        _check_declared(res.metrics, res.per_class)
        assert all(len(row) == 5 and row[1] == res.task for row in res.rows())
        assert {"eval_s", "images_per_s"} <= res.info.keys()
        if task.needs_probe:  # no probe set given: it learns from one half and scores the other
            assert res.info["probe_test_n"] == res.metrics["n"] == len(data) // 2
        elif not task.retrieval:
            assert res.metrics["n"] == len(data) and len(res.per_class["class_acc"]) == 3
        json.dumps(res.to_dict())


def test_tasks_are_known_by_name_and_alias():
    assert {"zeroshot_classification", "linear_probe", "knn", "retrieval"} <= set(TASKS.names())
    assert TASKS.get("classification") is TASKS.get("zeroshot_classification")
    from clipshift.errors import UserError

    with pytest.raises(UserError, match="unknown task 'fancy'; choose from"):
        TASKS.get("fancy")


def test_registries_and_units_load_without_torch():
    """`clipshift eval --help` lists the registered tasks and layouts, and the report reads every metric's
    unit; neither may import torch, so registered modules keep torch inside their functions."""
    code = (
        "import argparse, sys; from clipshift.cli import evaluate; "
        "evaluate.register(argparse.ArgumentParser().add_subparsers()); "
        "from clipshift.evaluate.units import unit_of; assert unit_of('probe_wd').unit == 'value'; "
        "assert unit_of('subset/x/acc1').unit == 'fraction'; sys.exit('torch' in sys.modules)"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


# ---------------------------------------------------------------------------------------------- layouts


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.transpose(1, 2, 0)).save(path)


def _export(fmt: str, split: str, n: int, images: int) -> Callable[..., int]:
    def write(world, root: Path) -> int:
        export_split(world, split, n, fmt, root, progress=False)
        return images

    return write


def _folders(pick: Callable[[dict], list[str]]) -> Callable[..., int]:
    """Two world images in each folder `pick(imagenet_tables())` names."""

    def write(world, root: Path) -> int:
        folders = pick(imagenet_tables())
        imgs = world_set(world, "iid", 2 * len(folders)).images.numpy()
        for j, f in enumerate(folders):
            for i in range(2):
                _png(root / f / f"{i}.png", imgs[2 * j + i])
        return 2 * len(folders)

    return write


def _objectnet(world, root: Path) -> int:
    write_objectnet_mappings(root / "mappings", {"mug": "Mug", "pens": "Pen"})
    return _folders(lambda t: ["mug", "pens"])(world, root / "images")


# a tiny set of each registered layout written from world images: (writer(world, root) -> image count)
LAYOUTS: dict[str, Callable[..., int]] = {
    "imagefolder": _export("imagefolder", "iid", 30, 30),
    "counteranimal": _export("counteranimal", "counteranimal", 12, 24),  # common and counter each
    "csv": _export("csv", "iid", 20, 20),
    "imagenet": _folders(lambda t: t["wnids"][:3]),
    "imagenet-v2": _folders(lambda t: ["0", "1", "999"]),
    "imagenet-r": _folders(lambda t: t["imagenet-r"][:3]),
    "imagenet-a": _folders(lambda t: t["imagenet-a"][:3]),
    "imagenet-sketch": _folders(lambda t: t["wnids"][-3:]),
    "objectnet": _objectnet,
}


def test_every_registered_layout_has_a_test_writer():
    assert sorted(LAYOUTS) == sorted(DATASETS.names())


@pytest.mark.parametrize("kind", DATASETS.names())
def test_every_dataset_kind_loads_a_world_export_in_its_layout(kind, small_world, tiny_clip, tmp_path):
    root = tmp_path / kind
    n = LAYOUTS[kind](small_world, root)
    data = load_eval_data(f"{kind}:{root}", tiny_clip.image_size, cache_dir=tmp_path / "cache")
    assert len(data) == n and data.images.shape[1:] == (3, 32, 32) and data.source.startswith(f"{kind}:")
    if data.retrieval:
        assert data.texts and data.image_text is not None and len(data.image_text) == n
    else:
        assert data.class_names and ((data.labels >= 0) & (data.labels < len(data.class_names))).all()
    results, _, _ = evaluate_dataset(tiny_clip, data, ["zeroshot_classification"], TEMPLATES)
    (res,) = results
    assert res.task == ("zeroshot_retrieval" if data.retrieval else "zeroshot_classification")
    assert res.metrics["n_images" if data.retrieval else "n"] == n
    _check_declared(res.metrics, res.per_class)
