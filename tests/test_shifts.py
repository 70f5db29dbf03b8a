"""The shift registry, looped over: every registered domain and corruption renders, is validated,
parsed, captioned, previewed, exported and calibrated from its one entry. A new entry is tested by
registering it; `test_a_new_entry_needs_nothing_else` registers two for the length of a test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from clipshift import calibrate as calibrate_mod
from clipshift import configio
from clipshift.errors import UserError
from clipshift.world import World, WorldSpec, eval_set_descriptions, parse_split, shifts, standard_eval_sets
from clipshift.world.evalsets import split_names
from clipshift.world.export import export_split
from clipshift.world.names import COLOURS
from clipshift.world.preview import columns, render_preview
from clipshift.world.shifts import registry

N = 8  # samples per set: enough for every class of the small world to show up


@pytest.fixture(scope="module")
def world() -> World:
    return World(
        WorldSpec.model_validate({"concepts": {"n_classes": 4}, "backgrounds": {"n_backgrounds": 4}})
    )


def _domain_sets() -> list[str]:
    return [s for d in shifts.domains() for s in d.eval_sets]


def _corruption_sets() -> list[str]:
    return [s for c in shifts.corruptions() for s in c.eval_sets]


def _preview_sets() -> set[str]:
    return {split for _, cols in columns() for _, split in cols}


def _check_renders(w: World, split: str) -> torch.Tensor:
    """The set renders non-blank uint8 images, and a sample is the same alone as in its batch."""
    img = w.render(w.factors(split, np.arange(N)))
    assert img.shape == (N, 3, 32, 32) and img.dtype == torch.uint8, split
    assert img.float().std() > 5, split
    alone = w.render(w.factors(split, np.array([5])))
    assert torch.equal(img[5], alone[0]), split
    return img


def _check_validates(domain: str) -> None:
    """A spec may mix the domain into training, and the mixture then draws it."""
    mixture = {shifts.reference_domain(): 1.0, domain: 1.0}
    spec = configio.validate(WorldSpec, {"domains": mixture}, "w.yaml")
    drawn = World(spec).factors("train", np.arange(400)).domain
    assert set(np.unique(drawn)) == {shifts.domain_names().index(d) for d in mixture}, domain


def _check_everywhere(w: World, tmp_path: Path) -> None:
    """Each registered shift is parsed, listed in help and sets, previewed and exported."""
    descriptions = eval_set_descriptions()
    listed = split_names()
    photo = w.render(w.factors("iid", np.arange(N)))
    for d in shifts.domains():
        assert parse_split(d.name).domain == d.name
        assert descriptions[d.name] == d.description and d.name in listed.split(", ")
        assert d.name in _preview_sets()
        img = _check_renders(w, d.name)
        if d.render is not None:  # a style changes the photo; the reference is the photo
            assert not torch.equal(img, photo), d.name
            assert d.name in standard_eval_sets()
        _check_validates(d.name)
    for c in shifts.corruptions():
        assert f"corrupt-{c.name}-<1..{len(c.severities)}>" in descriptions and c.name in listed
        assert c.standard_set in _preview_sets() and c.standard_set in standard_eval_sets()
        for s in c.eval_sets:
            sdef = parse_split(s)
            assert (sdef.corruption, sdef.name) == (c.name, s)
            assert not torch.equal(_check_renders(w, s), photo), s
        with pytest.raises(UserError, match="severity must be"):
            parse_split(c.set_name(len(c.severities) + 1))
    for split in [*_domain_sets(), *(c.standard_set for c in shifts.corruptions())]:
        m = export_split(w, split, 3, "imagefolder", tmp_path / split, progress=False)
        assert m["n_images"] == 3 and m["split"] == split
        truth = [
            json.loads(line) for line in (tmp_path / split / "ground_truth.jsonl").read_text().splitlines()
        ]
        sdef = parse_split(split)
        assert all(t["domain"] == (sdef.domain or "photo") for t in truth), split
        assert all(t["corruption"] == (sdef.corruption or "none") for t in truth), split
        assert len(list((tmp_path / split).glob("*/*.png"))) == 3


def _check_captions(w: World) -> None:
    """`full` captions name each domain by its word, and no colour where the shift hides it."""
    full = World(w.spec.model_copy(update={"captions": w.spec.captions.model_copy(update={"level": "full"})}))
    for split in [*_domain_sets(), *_corruption_sets()]:
        f = full.factors(split, np.arange(N))
        domain = shifts.domain(shifts.domain_names()[int(f.domain[0])])
        caps = full.captions(f)
        assert all(c.endswith(f", in a {domain.word}") for c in caps), (split, caps[0])
        colours = {COLOURS[int(i)][0] for i in f.colour}
        named = any(word in c.split() for c in caps for word in colours)
        assert named == shifts.colour_survives(domain.name, f.corruption), split


def test_every_registered_shift_renders_parses_previews_and_exports(world: World, tmp_path: Path) -> None:
    _check_everywhere(world, tmp_path)
    _check_captions(world)


def test_registry_matches_the_builtin_sets() -> None:
    assert shifts.domain_names()[:4] == ["photo", "sketch", "rendition", "painting"]
    assert shifts.corruption_names()[:4] == ["noise", "blur", "contrast", "occlusion"]
    assert shifts.reference_domain() == "photo" and shifts.domain("rendition").word == "cartoon"
    assert not shifts.domain("sketch").keeps_colour and shifts.colour_survives("painting", "blur")
    # the preview's columns before the registry, in the same order
    assert columns()[:2] == [
        (
            "domain",
            [("photo", "photo"), ("sketch", "sketch"), ("rendition", "rendition"), ("painting", "painting")],
        ),
        ("background", [("common", "common"), ("counter", "counter")]),
    ]
    assert columns()[2][0] == "corruption (severity 3)"
    assert [s for _, s in columns()[2][1]][:4] == [
        f"corrupt-{c}-3" for c in ("noise", "blur", "contrast", "occlusion")
    ]
    for name in registry.RESERVED:  # a shift cannot shadow a named set
        assert name not in shifts.domain_names() and name not in shifts.corruption_names()
        parse_split(name)


def _negative(r: Any, s: registry.Scene) -> torch.Tensor:
    return 1.0 - s.photo


def _greyscale(r: Any, img: torch.Tensor, level: float, cp: torch.Tensor) -> torch.Tensor:
    grey = img.mean(dim=1, keepdim=True).expand_as(img)
    return torch.lerp(img, grey, level)


@pytest.fixture
def extra_shifts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A domain and a corruption registered for one test, the way an entry in domains.py or
    corruptions.py registers them (monkeypatch removes them afterwards)."""
    monkeypatch.setattr(registry, "_DOMAINS", dict(registry._DOMAINS))
    monkeypatch.setattr(registry, "_CORRUPTIONS", dict(registry._CORRUPTIONS))
    shifts.register_domain(shifts.DomainDef("negative", "negative", "inverted photos", _negative))
    shifts.register_corruption(
        shifts.CorruptionDef("greyscale", "colour washed out", (0.5, 1.0), _greyscale, keeps_colour=False)
    )


@pytest.mark.usefixtures("extra_shifts")
def test_a_new_entry_needs_nothing_else(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "negative" in shifts.domain_names() and "corrupt-greyscale-2" in _corruption_sets()
    _check_everywhere(world, tmp_path)
    _check_captions(world)
    with pytest.raises(UserError, match="severity must be 1–2"):
        parse_split("corrupt-greyscale-3")
    # calibration probes every domain shift, the new one too (a stand-in probe keeps it fast)
    monkeypatch.setattr(calibrate_mod, "train_probe", lambda *a, **k: None)
    monkeypatch.setattr(calibrate_mod, "probe_accuracy", lambda net, w, split, n: 50.0)
    report = calibrate_mod.calibrate(WorldSpec(), samples=256, eval_n=20, progress=False)
    assert set(report["core"]) == {"iid", *shifts.shifted_domains()} and "negative" in report["core"]
    assert "domain: negative accuracy at rho=0" in calibrate_mod.format_report(report)
    out = render_preview(world, tmp_path / "p.png", n_classes=1, scale=1)
    assert out.is_file()


def test_registry_refuses_bad_entries(extra_shifts: None) -> None:
    photo_like = shifts.DomainDef("other", "other", "x", render=None)
    with pytest.raises(ValueError, match="only the first domain"):
        shifts.register_domain(photo_like)
    for name in ("sketch", "noise", "pose", "Bad-Name"):
        with pytest.raises(ValueError, match=r"already taken|lower-case"):
            shifts.register_domain(shifts.DomainDef(name, name, "x", _negative))
    with pytest.raises(ValueError, match="1 to 9 severities"):
        shifts.register_corruption(shifts.CorruptionDef("fog", "x", (), _greyscale))
    with pytest.raises(UserError) as e:
        configio.validate(WorldSpec, {"domains": {"xray": 1.0}}, "w.yaml")
    # a spec names the registered domains, the new one too, in pydantic's wording for a choice
    assert (
        str(e.value)
        == f"w.yaml: domains.xray.[key] = 'xray': Input should be {shifts.choices(shifts.domain_names())}"
    )
    assert str(e.value).endswith("'rendition', 'painting' or 'negative'")
    assert (
        shifts.choices(["photo", "sketch", "rendition", "painting"])
        == "'photo', 'sketch', 'rendition' or 'painting'"
    )


def test_help_lists_every_shift_without_torch() -> None:
    code = (
        "import sys, argparse; from clipshift.cli import world; "
        "p = argparse.ArgumentParser(); world.register(p.add_subparsers()); "
        "from clipshift.world import evalsets; evalsets.eval_set_descriptions(); "
        "sys.exit(10 * ('torch' in sys.modules) + ('numpy' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    out = subprocess.run(
        [sys.executable, "-m", "clipshift", "world", "export", "--help"], capture_output=True, text=True
    ).stdout
    flat = " ".join(out.split())
    for name in [*shifts.domain_names(), *shifts.corruption_names()]:
        assert name in flat
