"""The procedural world: determinism, ground truth, named splits, knobs, captions."""

import numpy as np
import pytest
import torch

from clipshift import configio
from clipshift.errors import UserError
from clipshift.world import World, WorldSpec, parse_split, standard_eval_sets
from clipshift.world.names import COLOURS


def spec(**kw) -> WorldSpec:
    return WorldSpec.model_validate(kw)


def test_samples_are_deterministic_and_batch_independent(small_world):
    idx = np.arange(40)
    a = small_world.render(small_world.factors("train", idx))
    b = World(small_world.spec).render(small_world.factors("train", idx))
    assert torch.equal(a, b)
    # sample 17 rendered alone equals sample 17 rendered inside a batch: no batch-dependent randomness
    for split in ("train", "corrupt-noise-4", "corrupt-occlusion-2", "painting"):
        full = small_world.render(small_world.factors(split, idx))
        alone = small_world.render(small_world.factors(split, np.array([17, 3])))
        assert torch.equal(full[17], alone[0]) and torch.equal(full[3], alone[1]), split
    caps = small_world.captions(small_world.factors("train", idx))
    assert caps == small_world.captions(small_world.factors("train", idx))


def test_seed_changes_world():
    a, b = World(spec(seed=1)), World(spec(seed=2))
    assert a.class_names != b.class_names
    ia = a.render(a.factors("iid", np.arange(8)))
    ib = b.render(b.factors("iid", np.arange(8)))
    assert not torch.equal(ia, ib)


def test_images_shape_dtype_and_content(small_world):
    img = small_world.render(small_world.factors("iid", np.arange(10)))
    assert img.shape == (10, 3, 32, 32) and img.dtype == torch.uint8
    assert img.float().std() > 10  # not blank
    big = World(spec(image_size=64))
    assert big.render(big.factors("iid", np.arange(2))).shape == (2, 3, 64, 64)


def test_spec_round_trips_yaml_and_json(tmp_path):
    s = spec(
        seed=3,
        backgrounds={"rho": 0.8},
        domains={"photo": 0.5, "sketch": 0.5},
        captions={"level": "attributes", "details": ["colour"]},
        frequency={"profile": "zipf", "alpha": 1.5},
    )
    for name in ("w.yaml", "w.json"):
        configio.dump(s, tmp_path / name)
        assert configio.load(WorldSpec, tmp_path / name) == s


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"backgrounds": {"rho": 1.5}}, "backgrounds.rho = 1.5: Input should be less than or equal to 1"),
        (
            {"concepts": {"n_classes": 1}},
            "concepts.n_classes = 1: Input should be greater than or equal to 2",
        ),
        ({"captions": {"level": "poem"}}, "captions.level = 'poem'"),
        ({"domains": {"photo": 1, "xray": 1}}, "domains.xray"),
        ({"colour": 1}, "colour: unknown field"),
        ({"frequency": {"trim_tail": 10}}, "trim_tail = 10 must be < concepts.n_classes"),
    ],
)
def test_bad_spec_names_field_and_range(data, needle):
    with pytest.raises(UserError) as e:
        configio.validate(WorldSpec, data, "w.yaml")
    msg = str(e.value)
    assert needle in msg and msg.startswith("w.yaml: ") and "\n" not in msg


def test_ground_truth_carries_every_factor(small_world):
    s = small_world.split("train", 12)
    gt = s.ground_truth(3)
    for key in (
        "class",
        "class_name",
        "background",
        "common",
        "domain",
        "corruption",
        "severity",
        "colour",
        "pattern",
        "size",
        "caption_level",
        "caption",
    ):
        assert key in gt
    assert gt["class_name"] == small_world.concepts.names[gt["class"]]


def test_named_eval_sets_shift_one_factor_each(small_world):
    w = small_world
    idx = np.arange(300)
    iid = w.factors("iid", idx)
    common, counter = w.factors("common", idx), w.factors("counter", idx)
    assert common.common.all() and not counter.common.any()
    # paired design: same class and details, only the named factor differs
    for other in (common, counter, w.factors("sketch", idx), w.factors("corrupt-blur-3", idx)):
        assert np.array_equal(other.label, iid.label) and np.array_equal(other.colour, iid.colour)
    assert (w.factors("sketch", idx).domain == 1).all()
    assert w.factors("corrupt-noise-5", idx).severity == 5
    pose = w.factors("pose", idx)
    assert (np.abs(np.rad2deg(pose.rotation)) > w.spec.pose.rotation_deg).all()
    assert np.bincount(iid.label, minlength=5).tolist() == [60] * 5  # class-balanced
    assert set(standard_eval_sets()) >= {
        "iid",
        "common",
        "counter",
        "sketch",
        "rendition",
        "painting",
        "pose",
    }
    with pytest.raises(UserError, match="unknown corruption"):
        parse_split("corrupt-fog-3")
    with pytest.raises(UserError, match="severity must be 1–5"):
        parse_split("corrupt-blur-7")


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.95])
def test_rho_sets_the_common_background_rate(rho):
    w = World(spec(backgrounds={"rho": rho, "n_backgrounds": 8}))
    f = w.factors("train", np.arange(20000))
    expected = rho + (1 - rho) / 8
    assert abs(f.common.mean() - expected) < 0.015


def test_domain_mixture_is_respected():
    w = World(spec(domains={"photo": 3, "rendition": 1}))
    d = w.factors("train", np.arange(8000)).domain
    assert abs((d == 2).mean() - 0.25) < 0.02 and set(np.unique(d)) == {0, 2}


def test_zipf_trim_tail_and_prefix_stability():
    w = World(
        spec(
            concepts={"n_classes": 10},
            frequency={"profile": "zipf", "alpha": 1.2, "trim_tail": 3, "trim_shots": 1},
        )
    )
    lab = w.factors("train", np.arange(20000)).label
    counts = np.bincount(lab, minlength=10)
    assert sorted(counts.tolist()).count(1) == 3  # three one-shot classes
    big = np.sort(counts)[::-1][:7]
    assert (np.diff(big) <= 0).all() and big[0] > 4 * big[-1]
    # prefix-stable: the first 5000 samples of a 20000 split are the 5000-sample split
    assert np.array_equal(w.factors("train", np.arange(5000)).label, lab[:5000])
    w0 = World(spec(frequency={"profile": "uniform", "trim_tail": 2, "trim_shots": 0}))
    assert (np.bincount(w0.factors("train", np.arange(5000)).label, minlength=10) == 0).sum() == 2


def test_open_world_concepts_only_in_training():
    w = World(spec(concepts={"n_classes": 4}, open_world={"n_concepts": 3, "fraction": 0.3}))
    f = w.factors("train", np.arange(5000))
    assert abs((f.label >= 4).mean() - 0.3) < 0.02
    caps = w.captions(w.factors("train", np.flatnonzero(f.label >= 4)[:20]))
    assert any(w.concepts.names[5] in c or w.concepts.names[4] in c or w.concepts.names[6] in c for c in caps)
    assert len(w.class_names) == 4 and (w.factors("iid", np.arange(100)).label < 4).all()


def _caps(**captions):
    w = World(spec(captions=captions))
    f = w.factors("train", np.arange(200))
    return w, f, w.captions(f)


def test_caption_levels():
    w, f, caps = _caps(level="name")
    assert caps[0] == w.concepts.names[f.label[0]]
    w, f, caps = _caps(level="template")
    assert all(w.concepts.names[lab] in c and c != w.concepts.names[lab] for c, lab in zip(caps, f.label))
    w, f, caps = _caps(level="attributes")
    assert all(COLOURS[c][0] in cap for c, cap in zip(f.colour, caps)) and " on " not in caps[0]
    w, f, caps = _caps(level="full")
    gt = [w.split("train", 3).ground_truth(i) for i in range(3)]
    for g in gt:
        assert f" on {g['background']}" in g["caption"] and g["class_name"] in g["caption"]


def test_caption_noise_and_detail_choice():
    w, f, caps = _caps(level="full", missing_name_prob=1.0)
    assert not any(w.concepts.names[lab] in c.split() for c, lab in zip(caps, f.label))
    w, f, caps = _caps(level="name", synonym_prob=1.0)
    assert caps == [w.concepts.synonyms[lab] for lab in f.label]
    w, f, caps = _caps(level="full", details=["background"])
    assert not any(COLOURS[c][0] in cap.split() for c, cap in zip(f.colour, caps))
    assert all(" on " in c for c in caps)
    w, f, caps = _caps(level="full", detail_prob=0.5)
    with_bg = np.mean([" on " in c for c in caps])
    assert 0.35 < with_bg < 0.65


def test_user_class_names():
    w = World(spec(concepts={"n_classes": 3, "names": ["cat", "dog", "owl"]}))
    assert w.class_names == ["cat", "dog", "owl"]


def test_split_memory_per_sample():
    s = World().split("train", 2000)
    # 32x32x3 bytes of pixels plus a little ground truth and caption: 100k samples stay under 350 MB
    assert s.nbytes() / len(s) * 100_000 < 350e6
