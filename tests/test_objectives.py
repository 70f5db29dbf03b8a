"""Objectives: agreement with open_clip's losses, dynamic classification, masking, and that every
objective's loss falls when a tiny model overfits a few world batches."""

import json
import math

import numpy as np
import pydantic
import pytest
import torch
import torch.nn.functional as F

from clipshift.data import Batch, world_table
from clipshift.errors import UserError
from clipshift.models import ModelConfig, build_classifier, build_clip, build_tokenizer, open_clip_config
from clipshift.objectives import OBJECTIVES, ObjectiveConfig, build_objective, dynamic_classes

MEAN = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(1, 3, 1, 1) * 255
STD = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(1, 3, 1, 1) * 255


@pytest.fixture(scope="module")
def table(small_world):
    return world_table(small_world.split("train", 256))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def fake_batch(labels: list[int], texts: list[str] | None = None) -> Batch:
    n = len(labels)
    return Batch(
        images=torch.zeros(n, 3, 4, 4, dtype=torch.uint8),
        texts=texts or [f"caption {i}" for i in range(n)],
        labels=torch.tensor(labels, dtype=torch.int64),
        index=torch.arange(n) + 100,
    )


def features(n: int = 16, d: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = gen(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=-1), F.normalize(
        torch.randn(n, d, generator=g), dim=-1
    )


# ----------------------------------------------------------------------------- contrastive losses


def test_clip_loss_is_open_clips_and_symmetric_infonce():
    from open_clip.loss import ClipLoss

    img, txt = features()
    scale = torch.tensor(1 / 0.07)
    obj = build_objective(ObjectiveConfig(name="clip"), np.ones(5))
    loss = obj(
        {"image_features": img, "text_features": txt, "logit_scale": scale}, fake_batch([0] * 16), gen()
    )
    assert torch.allclose(loss, ClipLoss()(img, txt, scale), atol=1e-6)
    logits = scale * img @ txt.T
    target = torch.arange(16)
    manual = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    assert abs(loss.item() - manual.item()) < 1e-5
    # the loss takes the scale as given, with its gradient: the cap of 100 is kept on the parameter by the
    # trainer after each step, as open_clip_train does (a clamp here would zero the gradient past 100)
    big = torch.tensor(150.0, requires_grad=True)
    loss_big = obj({"image_features": img, "text_features": txt, "logit_scale": big}, None, gen())
    assert torch.allclose(loss_big, ClipLoss()(img, txt, torch.tensor(150.0)), atol=1e-5)
    loss_big.backward()
    assert big.grad is not None and big.grad.abs() > 0


def test_siglip_loss_is_open_clips_and_pairwise_sigmoid():
    from open_clip.loss import SigLipLoss

    img, txt = features(seed=1)
    scale, bias = torch.tensor(10.0), torch.tensor(-10.0)
    obj = build_objective(ObjectiveConfig(name="siglip"), np.ones(5))
    out = {"image_features": img, "text_features": txt, "logit_scale": scale, "logit_bias": bias}
    loss = obj(out, fake_batch([0] * 16), gen())
    assert torch.allclose(loss, SigLipLoss()(img, txt, scale, bias), atol=1e-6)
    labels = 2 * torch.eye(16) - 1
    manual = -F.logsigmoid(labels * (scale * img @ txt.T + bias)).sum() / 16
    assert abs(loss.item() - manual.item()) < 1e-5
    assert obj.model_overrides() == {"init_logit_bias": -10.0, "init_logit_scale": math.log(10)}
    with pytest.raises(ValueError, match="logit bias"):
        obj({"image_features": img, "text_features": txt, "logit_scale": scale}, None, gen())


def test_siglip_model_and_saved_config(tmp_path):
    import open_clip

    obj = build_objective(ObjectiveConfig(name="siglip"), np.ones(5))
    tok = build_tokenizer("openclip", None, None)
    model = build_clip(ModelConfig(), tok, **obj.model_overrides())
    assert float(model.logit_bias.detach()) == -10.0 and math.isclose(
        float(model.logit_scale.detach().exp()), 10.0
    )
    # the saved config carries the bias, so plain open_clip can rebuild the model and load its weights
    mc = open_clip_config(ModelConfig(), tok, **obj.model_overrides())
    path = tmp_path / "siglip.pt"
    torch.save(model.state_dict(), path)
    plain = open_clip.create_model("clipshift-rn-tiny", pretrained=str(path), **json.loads(json.dumps(mc)))
    assert torch.equal(plain.logit_bias, model.logit_bias)


def test_clip_classname_texts_are_deterministic_templates():
    obj = build_objective(ObjectiveConfig(name="clip-classname", templates=["a {}.", "the {}!"]), np.ones(3))
    b = fake_batch([0, 2, -1, 1], texts=["c0", "c1", "c2", "c3"])  # index 100..103
    assert obj.texts(b, ["dub", "kaib", "skez"]) == ["a dub.", "the skez!", "c2", "the kaib!"]
    assert obj.corpus(["dub"]) == ["a dub.", "the dub!"]
    default = build_objective(ObjectiveConfig(name="clip-classname"), np.ones(3))
    from clipshift.world.captions import world_templates

    assert default.templates == world_templates()
    assert build_objective(ObjectiveConfig(name="clip"), np.ones(3)).texts(b, ["x"] * 3) == b.texts


# ----------------------------------------------------------------------------- supervised


def test_supervised_ignores_unknown_labels():
    obj = build_objective(ObjectiveConfig(name="supervised"), np.ones(4))
    logits = torch.randn(5, 4, requires_grad=True)
    loss = obj({"logits": logits}, fake_batch([0, -1, 3, 7, 1]), gen())  # -1 unknown, 7 beyond the head
    keep = torch.tensor([0, 2, 4])
    assert torch.allclose(loss, F.cross_entropy(logits[keep], torch.tensor([0, 3, 1])))
    none = obj({"logits": logits}, fake_batch([-1] * 5), gen())
    none.backward()
    assert none.item() == 0.0 and logits.grad is not None and not logits.grad.any()
    assert [OBJECTIVES[n].head for n in ("supervised", "supervised-cosine", "supervised-texthead")] == [
        "linear",
        "cosine",
        "texthead",
    ]


def test_config_validation_and_texthead_needs_a_checkpoint(tmp_path):
    with pytest.raises(pydantic.ValidationError):
        ObjectiveConfig(dynamic_k=1)
    with pytest.raises(pydantic.ValidationError):
        ObjectiveConfig.model_validate({"name": "clip", "temperature": 3})
    with pytest.raises(UserError, match="texthead_from"):
        build_objective(ObjectiveConfig(name="supervised-texthead"), np.ones(3))
    with pytest.raises(UserError, match="no such file"):
        build_objective(
            ObjectiveConfig(name="supervised-texthead", texthead_from=str(tmp_path / "x")), np.ones(3)
        )


# ----------------------------------------------------------------------------- registry and options


def test_the_registry_is_the_only_source_of_names(capsys):
    from clipshift.cli.main import build_parser
    from clipshift.configio import validate
    from clipshift.train import TrainConfig

    names = list(OBJECTIVES)
    assert {"clip", "siglip", "clip-classname", "supervised", "supervised-cosine", "supervised-texthead",
            "dynamic"} <= set(names)  # fmt: skip
    with pytest.raises(UserError) as e:
        validate(TrainConfig, {"objective": {"name": "clipp"}}, "run.yaml")
    assert str(e.value).startswith("run.yaml: objective.name = 'clipp': Input should be 'clip', 'siglip'")
    assert all(repr(n) in str(e.value) for n in names)
    train_help = next(
        a.choices["train"]
        for a in build_parser()._actions
        if hasattr(a, "choices") and isinstance(a.choices, dict) and "train" in a.choices
    ).format_help()
    assert all(n in " ".join(train_help.split()) for n in names)


def test_a_registered_objective_is_known_everywhere():
    """A new objective is one class: registering it makes its name and its own options valid."""
    from clipshift.objectives import Objective, ObjectiveOptions, register

    class ToyOptions(ObjectiveOptions):
        toy_margin: float = pydantic.Field(0.5, ge=0)

    @register
    class Toy(Objective[ToyOptions]):
        name = "toy-test"
        model_kind = "classifier"
        reads_captions = False
        Options = ToyOptions

    try:
        cfg = ObjectiveConfig(name="toy-test", toy_margin=0.25)
        obj = build_objective(cfg, np.ones(3))
        assert isinstance(obj, Toy) and obj.options.toy_margin == 0.25
        assert cfg.model_dump() == {"name": "toy-test", "toy_margin": 0.25}
        assert ObjectiveConfig(name="clip", toy_margin=3).model_dump() == {"name": "clip"}
        with pytest.raises(pydantic.ValidationError, match="greater than or equal to 0"):
            ObjectiveConfig(name="clip", toy_margin=-1)  # checked by its owner though clip ignores it
    finally:
        del OBJECTIVES["toy-test"]
    with pytest.raises(pydantic.ValidationError, match="toy_margin"):
        ObjectiveConfig(name="clip", toy_margin=3)  # unregistered: a field of no objective


def test_options_belong_to_their_objective():
    """Each objective keeps only its own options (defaults filled in); a field of another objective is
    checked and dropped; a field of none is an error naming it."""
    from clipshift.configio import validate
    from clipshift.objectives import DynamicOptions
    from clipshift.train import TrainConfig

    assert ObjectiveConfig(name="clip", dynamic_k=4, templates=["a {}"]).model_dump() == {"name": "clip"}
    dyn = ObjectiveConfig(name="dynamic", dynamic_k=4, templates=["a {}"])
    assert dyn.model_dump() == {"name": "dynamic", "dynamic_k": 4, "dynamic_weighting": "uniform",
                                "dynamic_head": "cosine"}  # fmt: skip
    assert isinstance(dyn.options, DynamicOptions) and dyn.options.dynamic_k == 4
    assert ObjectiveConfig(name="clip-classname").model_dump() == {
        "name": "clip-classname",
        "templates": None,
    }
    # a config written before options were per objective (every field, defaults included) still loads
    old = {"name": "clip", "dynamic_k": 50, "dynamic_weighting": "uniform", "dynamic_head": "cosine",
           "templates": None, "texthead_from": None}  # fmt: skip
    assert ObjectiveConfig.model_validate(old) == ObjectiveConfig()
    for data, expected in [
        ({"name": "clip", "temperature": 3}, "run.yaml: objective.temperature: unknown field"),
        ({"name": "clip", "dynamic_k": 1}, "run.yaml: objective.dynamic_k = 1: Input should be greater"),
        ({"name": "dynamic", "dynamic_head": "x"}, "run.yaml: objective.dynamic_head = 'x': Input should be"),
    ]:
        with pytest.raises(UserError) as e:
            validate(TrainConfig, {"objective": data}, "run.yaml")
        assert str(e.value).startswith(expected) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------- dynamic classification


def test_dynamic_class_set_contains_present_is_sorted_and_remaps():
    labels = torch.tensor([7, 3, 3, 12, 7])
    for seed in range(20):
        classes, targets = dynamic_classes(labels, 6, 20, None, gen(seed))
        assert len(classes) == 6 and torch.equal(classes, classes.sort().values)
        assert {3, 7, 12} <= set(classes.tolist()) and len(set(classes.tolist())) == 6
        assert torch.equal(classes[targets], labels)
    # more present classes than K: exactly the present ones
    many = torch.arange(10).repeat(2)
    classes, targets = dynamic_classes(many, 4, 20, None, gen())
    assert torch.equal(classes, torch.arange(10)) and torch.equal(targets, many)
    # K beyond the number of classes: all classes
    assert torch.equal(dynamic_classes(labels, 50, 15, None, gen())[0], torch.arange(15))


def test_dynamic_frequency_weighting_prefers_frequent_classes():
    counts = torch.tensor([1000.0, 1, 1, 1, 1, 1, 1, 1, 1, 1000])  # classes 0 and 9 are frequent
    labels = torch.tensor([5])
    uniform, freq = gen(0), gen(0)
    hits_u = hits_f = 0
    n = 400
    for _ in range(n):
        hits_u += len({0, 9} & set(dynamic_classes(labels, 3, 10, None, uniform)[0].tolist()))
        hits_f += len({0, 9} & set(dynamic_classes(labels, 3, 10, counts, freq)[0].tolist()))
    # uniform: 2 of 9 absent classes drawn, so E[hits] = 2 * 2/9 ≈ 0.44; frequency: ≈ 2
    assert hits_u / n < 0.6 and hits_f / n > 1.9
    # zero-weight classes fill the set only when the weighted ones run out
    zero = torch.tensor([0.0, 5, 0, 0, 0])
    classes, _ = dynamic_classes(torch.tensor([4]), 4, 5, zero, gen())
    assert len(classes) == 4 and {1, 4} <= set(classes.tolist())


def test_dynamic_objective_loss_and_determinism():
    counts = np.array([50, 40, 30, 20, 10, 5, 5, 5])
    cfg = ObjectiveConfig(name="dynamic", dynamic_k=4, dynamic_weighting="sqrt", dynamic_head="linear")
    obj = build_objective(cfg, counts)
    assert obj.head == "linear" and obj.model_kind == "classifier"
    logits = torch.randn(6, 8)
    batch = fake_batch([2, -1, 5, 2, 9, 5])  # -1 and 9 (beyond the head) are left out
    keep, classes, targets = obj.choose(batch.labels, 8, gen(3))
    assert keep.tolist() == [True, False, True, True, False, True] and len(classes) == 4
    assert {2, 5} <= set(classes.tolist())
    loss = obj({"logits": logits}, batch, gen(3))
    manual = F.cross_entropy(logits[keep][:, classes], targets)
    assert torch.allclose(loss, manual)
    # a fresh generator with the same seed gives the same classes (what a resumed run relies on)
    fresh = {tuple(obj.choose(batch.labels, 8, gen(7))[1].tolist()) for _ in range(10)}
    assert len(fresh) == 1
    # one generator across steps: the choices vary, and the sequence is reproducible
    g = gen(7)
    seq = [obj.choose(batch.labels, 8, g)[1].tolist() for _ in range(10)]
    g = gen(7)
    assert seq == [obj.choose(batch.labels, 8, g)[1].tolist() for _ in range(10)]
    assert len({tuple(x) for x in seq}) > 1 and tuple(seq[0]) in fresh


# ----------------------------------------------------------------------------- overfitting world batches

# final / initial mean loss after 20 AdamW steps on the same 2 batches of 64 (clipshift-rn-tiny, 32 px;
# CLIP objectives with the vocab tokenizer for speed). Measured: clip 0.57, siglip 0.56, clip-classname
# 0.79 (ambiguous same-class targets keep it high), supervised 0.13, supervised-cosine 0.18,
# supervised-texthead 0.21 (random text tower), dynamic (K = 4, 3 classes present per batch) 0.15.
# An objective registered without a measured ratio is held to the loosest one (its loss must still fall).
DEFAULT_MAX_RATIO = 0.92
MAX_RATIO = {
    "clip": 0.8,
    "siglip": 0.8,
    "clip-classname": 0.92,
    "supervised": 0.5,
    "supervised-cosine": 0.5,
    "supervised-texthead": 0.5,
    "dynamic": 0.5,
}


def save_clip_run(tmp_path, table) -> str:
    """A clipshift-style CLIP run directory (random weights) for the text head to embed names with."""
    tok = build_tokenizer("vocab", None, table.captions + table.class_names)
    model = build_clip(ModelConfig(tokenizer="vocab"), tok)
    run = tmp_path / "cliprun"
    (run / "checkpoints").mkdir(parents=True)
    (run / "open_clip_config").mkdir()
    torch.save(
        {"state_dict": model.state_dict(), "name": "clipshift-rn-tiny", "kind": "clip"},
        run / "checkpoints" / "final.pt",
    )
    (run / "open_clip_config" / "clipshift-rn-tiny.json").write_text(
        json.dumps(open_clip_config(ModelConfig(), tok))
    )
    (run / "tokenizer.json").write_text(json.dumps(tok.state()))
    return str(run)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_objective_loss_falls_when_overfitting(name, table, tmp_path):
    assert set(MAX_RATIO) <= set(OBJECTIVES)  # every measured ratio belongs to a registered objective
    torch.manual_seed(0)
    needs_clip = "texthead_from" in OBJECTIVES[name].Options.model_fields
    extra = {"texthead_from": save_clip_run(tmp_path, table)} if needs_clip else {}
    obj = build_objective(ObjectiveConfig(name=name, dynamic_k=4, **extra), table.class_counts())
    names = table.class_names
    tok = None
    if obj.model_kind == "clip":
        tok = build_tokenizer("vocab", None, table.captions + names + obj.corpus(names))
        model = build_clip(ModelConfig(tokenizer="vocab"), tok, **obj.model_overrides())
    else:
        emb = obj.text_embeddings(names) if obj.head == "texthead" else None
        model = build_classifier(ModelConfig(), len(names), obj.head, emb)
    opt = torch.optim.AdamW(list(model.parameters()) + list(obj.parameters()), lr=2e-3, weight_decay=0.0)
    rows = np.arange(len(table))
    if name == "dynamic":  # batches with 3 of the 5 classes, so each step tops up one sampled class
        rows = rows[table.labels < 3]
    batches = [table.batch(rows[i * 64 : (i + 1) * 64]) for i in range(2)]
    g = gen(0)
    losses = []
    for step in range(20):
        b = batches[step % 2]
        images = (b.images.float() - MEAN) / STD
        out = model(images, tok(obj.texts(b, names))) if tok else model(images)
        loss = obj(out, b, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:2]), np.mean(losses[-2:])
    assert np.isfinite(losses).all()
    assert last < MAX_RATIO.get(name, DEFAULT_MAX_RATIO) * first, (name, first, last)
