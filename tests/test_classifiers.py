"""Supervised ImageNet classifiers (`tv:ARCH:PATH`, `timm:ARCH:PATH`): random-initialised torchvision
and timm models saved locally (.pth, .safetensors), scored by their own 1,000-way head on small on-disk
ImageNet-R and ObjectNet layouts; every number is checked against the model run by hand through
torchvision's / timm's own eval transforms."""

import json
import os
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_objectnet_mappings
from PIL import Image

from clipshift.cli.main import main
from clipshift.errors import UserError
from clipshift.evaluate import image_features, load_eval_data, open_model
from clipshift.evaluate.datasets import imagenet_tables

TV_ARCH = "regnet_x_400mf"  # small, and its DEFAULT weights resize to 232 (not 256): the preset is read
TIMM_ARCH = "test_resnet"  # timm's 160 px test model, crop_pct 0.95 (resize to 168)
SIZES = [(300, 240), (200, 260), (257, 256), (224, 224), (400, 180), (230, 500)]  # (w, h)


pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """Random-initialised models' state dicts: torchvision's as .pth, timm's as .safetensors."""
    import timm
    import torchvision
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    tv = torchvision.models.get_model(TV_ARCH, weights=None, num_classes=1000)
    torch.save(tv.state_dict(), root / "tv.pth")
    tm = timm.create_model(TIMM_ARCH, pretrained=False, num_classes=1000)
    save_file(tm.state_dict(), root / "timm.safetensors")
    torch.save(tv, root / "whole.pth")  # a pickled module, not a state dict
    return {"tv": root / "tv.pth", "timm": root / "timm.safetensors", "whole": root / "whole.pth"}


def _images(n: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        ramp = np.linspace(0, 150 * (i % 3), w)[None, :, None]
        arr = rng.integers(0, 256, (1, 1, 3)) + rng.normal(0, 40, (h, w, 3)) + ramp
        out.append(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)))
    return out


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, object]:
    """An ImageNet-R layout (3 of its 200 classes, 2 images each) and an ObjectNet layout (2 classes,
    one mapped to two ImageNet classes), as PNGs of assorted sizes, with each image's path and label in
    the loaders' order."""
    root = tmp_path_factory.mktemp("sets")
    tables = imagenet_tables()
    wnids, subset = tables["wnids"], tables["imagenet-r"]
    inr = [(w, i) for i, w in enumerate(subset) if i in (0, 5, 199)]
    files, labels = [], []
    imgs = iter(_images(6, 0))
    for wnid, label in inr:  # wnid folders in sorted order, as the loader reads them
        for k in range(2):
            p = root / "inr" / wnid / f"{k}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            next(imgs).save(p)
            files.append(p)
            labels.append(label)
    write_objectnet_mappings(root / "on" / "mappings", {"mug": "Mug", "pens": "Pen"})
    on_files, on_labels = [], []
    imgs = iter(_images(6, 1))
    for label, folder in enumerate(["mug", "pens"]):
        for k in range(3):
            p = root / "on" / "images" / folder / f"{k}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            next(imgs).save(p)
            on_files.append(p)
            on_labels.append(label)
    return {
        "inr": root / "inr",
        "inr_files": files,
        "inr_labels": labels,
        "inr_columns": [wnids.index(w) for w in subset],
        "on": root / "on",
        "on_files": on_files,
        "on_labels": on_labels,
        "on_columns": [[504], [418, 563]],
    }


@cache
def _reference(kind: str, path: Path, files: tuple[Path, ...]) -> tuple[torch.Tensor, np.ndarray]:
    """(logits, uint8 crops) of the model as its library builds it, through its library's own eval
    transform: torchvision's weights preset / timm's create_transform(resolve_data_config)."""
    from torchvision.transforms import v2 as T

    if kind == "tv":
        import torchvision

        net = torchvision.models.get_model(TV_ARCH, weights=None, num_classes=1000)
        net.load_state_dict(torch.load(path, weights_only=True))
        transform = torchvision.models.get_model_weights(TV_ARCH).DEFAULT.transforms()
        crop = T.Compose([T.Resize(transform.resize_size), T.CenterCrop(transform.crop_size)])
    else:
        import timm
        from safetensors.torch import load_file
        from timm.data import create_transform, resolve_data_config

        net = timm.create_model(TIMM_ARCH, pretrained=False, num_classes=1000)
        net.load_state_dict(load_file(str(path)))
        transform = create_transform(**resolve_data_config({}, model=net))
        crop = T.Compose(transform.transforms[:2])  # Resize, CenterCrop
    pil = [Image.open(f).convert("RGB") for f in files]
    with torch.no_grad():
        logits = net.eval()(torch.stack([transform(im) for im in pil]))
    crops = np.stack([np.asarray(crop(im)).transpose(2, 0, 1) for im in pil])
    return logits, crops


def _collapse(logits: torch.Tensor, columns: list[list[int]]) -> torch.Tensor:
    return torch.stack([logits[:, c].max(dim=1).values for c in columns], dim=1)


def test_open_and_preprocessing_match_the_libraries(weights, sets):
    """The preset is each library's own (torchvision's weights transforms, timm's pretrained_cfg): the
    decoded pixels equal the libraries' Resize + CenterCrop, and the head's logits their model's."""
    for kind, spec, shorter, size in [
        ("tv", f"tv:{TV_ARCH}:{weights['tv']}", 232, 224),
        ("timm", f"timm:{TIMM_ARCH}:{weights['timm']}", 168, 160),
    ]:
        model = open_model(spec)
        assert (model.kind, model.family, model.label_space) == (
            "classifier",
            "imagenet_classifier",
            "imagenet-1k",
        )
        assert model.image_size == size and model.resize is not None and model.resize.shorter == shorter
        data = load_eval_data(f"imagenet-r:{sets['inr']}", model.image_size, resize=model.resize)
        ref_logits, ref_crops = _reference(kind, weights[kind], tuple(sets["inr_files"]))
        assert np.array_equal(np.asarray(data.images), ref_crops)
        with torch.inference_mode():
            logits = model.module.head(image_features(model, data.images))
        assert torch.allclose(logits, ref_logits, rtol=1e-4, atol=1e-4 * float(ref_logits.abs().max()))
    # the weights named explicitly, or by torchvision's file name, choose their own preset (V1: 256)
    v1 = weights["tv"].parent / "regnet_x_400mf-adf1edd5.pth"
    v1.write_bytes(weights["tv"].read_bytes())
    for spec in [f"tv:RegNet_X_400MF_Weights.IMAGENET1K_V1:{weights['tv']}", f"tv:{TV_ARCH}:{v1}"]:
        m = open_model(spec)
        assert m.resize is not None and m.resize.shorter == 256 and m.name == f"tv:{TV_ARCH}"


@pytest.mark.parametrize("kind", ["tv", "timm"])
def test_cli_scores_subset_and_objectnet_sets_with_the_head(kind, weights, sets, tmp_path, capsys):
    """ImageNet-R: the argmax over its 200 classes' logits; ObjectNet: over its classes, each the max
    of its ImageNet classes' logits (imagenet-testbed's conventions). acc1, predictions and confusion
    equal the hand computation."""
    arch = TV_ARCH if kind == "tv" else TIMM_ARCH
    out = tmp_path / "{dataset}.json"
    argv = ["eval", "--model", f"{kind}:{arch}:{weights[kind]}", "--dataset", f"imagenet-r:{sets['inr']}",
            "--dataset", f"objectnet:{sets['on']}", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    for name, columns in [
        ("imagenet-r", [[c] for c in sets["inr_columns"]]),
        ("objectnet", sets["on_columns"]),
    ]:
        doc = json.loads((tmp_path / f"{name}.json").read_text())
        assert doc["model"] == f"{kind}:{arch}" and doc["task"] == "classification"
        assert doc["info"]["model_family"] == "imagenet_classifier"
        short = "inr" if name == "imagenet-r" else "on"
        logits, _ = _reference(kind, weights[kind], tuple(sets[f"{short}_files"]))
        pred = _collapse(logits, columns).argmax(dim=1).numpy()
        labels = np.asarray(sets[f"{short}_labels"])
        assert doc["metrics"]["acc1"] == pytest.approx(float((pred == labels).mean()))
        confusion = np.zeros((len(columns), len(columns)), dtype=np.int64)
        np.add.at(confusion, (labels, pred), 1)
        assert np.array_equal(np.asarray(doc["confusion"]), confusion)
    assert "acc1" in capsys.readouterr().out


def test_imagefolder_with_imagenet_class_names(weights, sets, tmp_path):
    """A plain folder set is scored when its classes name ImageNet classes (wnids here); a class that
    names none is one line."""
    model = open_model(f"timm:{TIMM_ARCH}:{weights['timm']}")
    data = load_eval_data(f"imagefolder:{sets['inr']}", model.image_size, resize=model.resize)
    from clipshift.evaluate import evaluate_model

    res = evaluate_model(model, data)
    logits, _ = _reference("timm", weights["timm"], tuple(sets["inr_files"]))
    wnids = imagenet_tables()["wnids"]
    cols = [[wnids.index(w)] for w in sorted(os.listdir(sets["inr"]))]
    pred = _collapse(logits, cols).argmax(dim=1).numpy()
    assert res.metrics["acc1"] == pytest.approx(float((pred == np.repeat([0, 1, 2], 2)).mean()))
    data.class_names = ["zorp", *data.class_names[1:]]
    with pytest.raises(UserError, match="class 'zorp' names no ImageNet-1k class"):
        evaluate_model(model, data)


def test_bad_specs_and_unscorable_sets_are_one_line(weights, sets, capsys):
    timm = f"timm:{TIMM_ARCH}:{weights['timm']}"
    cases = [
        (
            ["--model", f"tv:shufflenet_v2_x0_5:{weights['tv']}"],
            "does not fit torchvision shufflenet_v2_x0_5",
        ),
        (["--model", f"timm:{TIMM_ARCH}:{weights['tv']}"], "missing keys (first"),
        (["--model", f"tv:{TV_ARCH}:{weights['whole']}"], "not a state dict"),
        (["--model", f"tv:{TV_ARCH}:/nowhere/w.pth"], "not found"),
        (["--model", f"tv:not_a_net:{weights['tv']}"], "unknown torchvision classification architecture"),
        (["--model", f"timm:not_a_net:{weights['timm']}"], "unknown timm architecture"),
        (["--model", timm, "--dataset", "iid"], "cannot score it"),
    ]
    for argv, needle in cases:
        full = ["eval", *argv, *([] if "--dataset" in argv else ["--dataset", f"imagenet-r:{sets['inr']}"])]
        assert main([*full, "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and err.count("\n") == 0 and err.startswith("clipshift: error: "), err
