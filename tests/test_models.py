"""Tokenizers, CLIP and classifier factories, open_clip checkpoint compatibility, bad-input errors."""

import json

import pytest
import torch
import torch.nn.functional as F

from clipshift.data import world_table
from clipshift.errors import UserError
from clipshift.models import (
    ModelConfig,
    OpenClipTokenizer,
    VocabTokenizer,
    build_classifier,
    build_clip,
    build_tokenizer,
    class_text_embeddings,
    load_clip,
    open_clip_config,
    register_configs,
    tokenizer_from_state,
)
from clipshift.models.registry import CONFIG_DIR


@pytest.fixture(scope="module")
def table(small_world):
    return world_table(small_world.split("train", 128))


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- tokenizers


def test_vocab_tokenizer_ids_context_and_unknown_words():
    tok = VocabTokenizer.build(["A red Dub, on sand.", "a dub", "blue kaib on grass"])
    assert tok.words == ["a", "red", "dub", "on", "sand", "blue", "kaib", "grass"]  # punctuation is no word
    assert tok.vocab_size == len(tok.words) + 4
    assert (tok.sot, tok.eot) == (tok.vocab_size - 2, tok.vocab_size - 1)
    assert tok.context_length == 5 + 2  # longest text in words + SOT + EOT
    rows = tok(["a red dub", "a zebra on mars", ""])
    assert rows.dtype == torch.int64 and rows.shape == (3, 7)
    assert rows[0].tolist() == [tok.sot, 2, 3, 4, tok.eot, 0, 0]
    assert rows[1].tolist() == [tok.sot, 2, 1, 5, 1, tok.eot, 0]  # unknown words -> 1
    assert rows[2].tolist() == [tok.sot, tok.eot, 0, 0, 0, 0, 0]
    # open_clip pools text at argmax(token id): that must be the EOT position in every row
    eot_pos = (rows == tok.eot).int().argmax(dim=1)
    assert torch.equal(rows.argmax(dim=1), eot_pos)
    # truncation keeps EOT last
    long = tok(["a red dub on sand a red dub on sand"])
    assert long.shape == (1, 7) and long[0, -1] == tok.eot and long[0].argmax() == 6
    assert tok.decode(rows[1]) == "a <unk> on <unk>"


def test_vocab_tokenizer_state_round_trip_and_cache():
    tok = build_tokenizer("vocab", None, ["a small red dub on sand", "a kaib"])
    again = tokenizer_from_state(json.loads(json.dumps(tok.state())))
    texts = ["a red kaib", "a small dub on sand", "a red kaib", "new words here"]
    assert isinstance(again, VocabTokenizer) and again.vocab_size == tok.vocab_size
    assert torch.equal(tok(texts), again(texts))
    first = tok(texts)
    first[0, 0] = -5  # callers may modify the batch: the cached rows must not change
    assert torch.equal(tok(texts), again(texts))
    assert build_tokenizer("vocab", 20, ["a b"]).context_length == 20
    with pytest.raises(UserError, match="corpus"):
        build_tokenizer("vocab", None, None)


def test_openclip_tokenizer_matches_open_clip():
    import open_clip

    tok = build_tokenizer("openclip", 32, None)
    texts = [
        "a small spotted red dub on sand, in a photo",
        "a kaib",
        "a small spotted red dub on sand, in a photo",
    ]
    rows = tok(texts)
    assert isinstance(tok, OpenClipTokenizer) and rows.shape == (3, 32) and rows.dtype == torch.int64
    ref = open_clip.tokenizer.SimpleTokenizer(context_length=32)
    assert torch.equal(rows, ref(texts))
    assert tok.vocab_size == ref.vocab_size == 49408 and int(rows.max()) == ref.eot_token_id
    assert tokenizer_from_state(tok.state()).context_length == 32
    unbound = OpenClipTokenizer()
    with pytest.raises(RuntimeError, match="context length"):
        unbound(["a"])


# ----------------------------------------------------------------------------- CLIP models


def test_vocab_clip_forward_pools_at_eot(table):
    tok = build_tokenizer("vocab", None, table.captions + table.class_names)
    model = build_clip(ModelConfig(tokenizer="vocab"), tok).eval()
    assert model.text_pool_type == "argmax" and model.token_embedding.num_embeddings == tok.vocab_size
    assert model.positional_embedding.shape[0] == tok.context_length
    batch = table.batch(torch.arange(8))
    tokens = tok(batch.texts)
    images = batch.images.float() / 255
    with torch.no_grad():
        out = model(images, tokens)
        assert out["image_features"].shape == out["text_features"].shape == (8, 128)
        # the text feature is the EOT position's hidden state, projected
        x = model.token_embedding(tokens) + model.positional_embedding
        x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask))
        eot = (tokens == tok.eot).int().argmax(dim=1)
        manual = F.normalize(x[torch.arange(8), eot] @ model.text_projection, dim=-1)
    assert torch.allclose(out["text_features"], manual, atol=1e-5)


def test_trimmed_text_encoder_equals_open_clips_on_the_full_context(table):
    """clipshift runs the text transformer only up to the batch's last end-of-text token; outputs and
    gradients must be those of open_clip's own CLIP.encode_text over the whole padded context."""
    import open_clip

    from clipshift.models.trim import TrimmedTextCLIP

    tok = OpenClipTokenizer()
    ours = build_clip(ModelConfig(), tok)
    assert type(ours) is TrimmedTextCLIP
    plain = open_clip.create_model("clipshift-rn-tiny", output_dict=True)
    plain.load_state_dict(ours.state_dict())
    assert type(plain) is open_clip.CLIP
    texts = [*table.batch(torch.arange(6)).texts, "a", "a much longer caption " * 4]
    tokens = tok(texts)
    assert tokens.shape[1] == 32 and int(tokens.argmax(-1).max()) + 1 < 32  # there is padding to drop
    for m in (ours, plain):
        m.zero_grad()
        m.encode_text(tokens, normalize=True).pow(2).mul(torch.arange(128.0)).sum().backward()
    with torch.no_grad():
        assert torch.allclose(ours.encode_text(tokens), plain.encode_text(tokens), atol=1e-5)
        # a batch of short captions is cut further and still agrees row by row
        short = tokens[:6]
        assert torch.allclose(ours.encode_text(short), plain.encode_text(short), atol=1e-5)
    grads = dict(plain.named_parameters())
    for name, p in ours.named_parameters():
        if name.startswith("transformer") or name in ("token_embedding.weight", "positional_embedding"):
            torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-4, atol=1e-4, msg=name)
    # the state dict is open_clip's: nothing was added or renamed
    assert ours.state_dict().keys() == plain.state_dict().keys()


def test_text_encoder_is_left_alone_when_trailing_positions_matter():
    """Without a causal mask (or with last-token pooling) padding changes the result: no trimming."""
    from clipshift.models.trim import TrimmedTextCLIP, trim_text

    register_configs()
    cfg = open_clip_config(ModelConfig(), OpenClipTokenizer())
    for change in ({"pool_type": "last"}, {"no_causal_mask": True}):
        import open_clip

        text_cfg = {**cfg["text_cfg"], **change}
        model = open_clip.create_model("clipshift-rn-tiny", text_cfg=text_cfg)
        assert type(trim_text(model)) is not TrimmedTextCLIP, change


def test_openclip_model_checkpoint_loads_in_plain_open_clip(tmp_path):
    import open_clip

    tok = OpenClipTokenizer()
    model = build_clip(ModelConfig(), tok)
    assert tok.context_length == 32  # bound to the architecture's context
    path = tmp_path / "clip.pt"
    torch.save(model.state_dict(), path)
    register_configs()
    plain = open_clip.create_model("clipshift-rn-tiny", pretrained=str(path))
    assert same_weights(plain.state_dict(), model.state_dict())
    # and back through clipshift
    again = build_clip(ModelConfig(pretrained=str(path)), OpenClipTokenizer())
    assert same_weights(again.state_dict(), model.state_dict())


def test_vocab_model_reloads_via_saved_config(tmp_path, table):
    import open_clip

    tok = build_tokenizer("vocab", None, table.captions + table.class_names)
    cfg = ModelConfig(tokenizer="vocab")
    model = build_clip(cfg, tok)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "open_clip_config").mkdir()
    ckpt = run / "checkpoints" / "final.pt"
    torch.save({"state_dict": model.state_dict(), "name": cfg.name, "kind": "clip"}, ckpt)
    (run / "open_clip_config" / f"{cfg.name}.json").write_text(json.dumps(open_clip_config(cfg, tok)))
    (run / "tokenizer.json").write_text(json.dumps(tok.state()))
    try:
        open_clip.add_model_config(run / "open_clip_config")  # shadows clipshift-rn-tiny in open_clip
        plain = open_clip.create_model(cfg.name, pretrained=str(ckpt))
        assert same_weights(plain.state_dict(), model.state_dict())
        # clipshift reads its own config files, so the shadowing does not change what the name builds
        assert build_clip(ModelConfig(), OpenClipTokenizer()).token_embedding.num_embeddings == 49408
    finally:
        open_clip.add_model_config(CONFIG_DIR)
    loaded, loaded_tok = load_clip(run)
    assert same_weights(loaded.state_dict(), model.state_dict())
    assert loaded_tok.state() == tok.state()


@pytest.mark.parametrize(
    "bad", ["openai", "laion2b_s34b_b79k", "https://example.com/x.pt", "/no/such/file.pt"]
)
def test_pretrained_must_be_a_local_file(bad):
    with pytest.raises(UserError) as e:
        build_clip(ModelConfig(pretrained=bad), OpenClipTokenizer())
    msg = str(e.value)
    assert msg == f"pretrained {bad!r}: not a local file; clipshift loads checkpoints from local paths only"
    with pytest.raises(UserError, match="not a local file"):
        build_classifier(ModelConfig(pretrained=bad), 5, "linear")


def test_checkpoint_of_another_architecture_names_file_and_key(tmp_path):
    other = build_clip(ModelConfig(name="clipshift-vit-tiny"), OpenClipTokenizer())
    path = tmp_path / "vit.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(UserError) as e:
        build_clip(ModelConfig(pretrained=str(path)), OpenClipTokenizer())
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg and "does not match the architecture" in msg
    assert "key 'visual." in msg  # the first differing key is in the image tower
    with pytest.raises(UserError, match="image tower does not match"):
        build_classifier(ModelConfig(pretrained=str(path)), 5, "linear")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"junk\.pt.*not a readable checkpoint"):
        build_clip(ModelConfig(pretrained=str(junk)), OpenClipTokenizer())


def test_unknown_architecture_lists_ours():
    with pytest.raises(
        UserError, match=r"clipshift-rn-micro, clipshift-rn-tiny, clipshift-vit-tiny.*open_clip\.list_models"
    ):
        build_clip(ModelConfig(name="ResNet-9000"), OpenClipTokenizer())


def test_micro_resnet_is_the_tiny_one_at_half_the_width():
    tok = OpenClipTokenizer()
    micro, tiny = (build_clip(ModelConfig(name=n), tok) for n in ("clipshift-rn-micro", "clipshift-rn-tiny"))
    assert micro.visual.attnpool.c_proj.in_features * 2 == tiny.visual.attnpool.c_proj.in_features
    assert micro.transformer.width * 2 == tiny.transformer.width
    count = lambda m: sum(p.numel() for p in m.visual.parameters())  # noqa: E731
    assert count(micro) < count(tiny) / 3
    out = micro(torch.zeros(2, 3, 32, 32), tok(["a zorp", "a blorp"]))
    assert out["image_features"].shape == out["text_features"].shape == (2, 128)


def test_open_clip_config_overrides_and_image_size():
    tok = OpenClipTokenizer(16)
    mc = open_clip_config(ModelConfig(name="clipshift-vit-tiny", image_size=16), tok, init_logit_bias=-10.0)
    assert mc["vision_cfg"]["image_size"] == 16 and mc["text_cfg"]["context_length"] == 16
    assert mc["text_cfg"]["vocab_size"] == 49408 and mc["init_logit_bias"] == -10.0
    model = build_clip(ModelConfig(name="clipshift-vit-tiny", image_size=16), tok, init_logit_bias=-10.0)
    out = model(torch.zeros(2, 3, 16, 16), tok(["a", "b"]))
    assert out["image_features"].shape == (2, 128) and float(out["logit_bias"].detach()) == -10.0


# ----------------------------------------------------------------------------- classifiers


def test_cosine_head_logit_scale_init_and_clamp():
    clf = build_classifier(ModelConfig(), 5, "cosine")
    head = clf.head
    assert torch.isclose(head.scale(), torch.tensor(1 / 0.07))
    feats = torch.randn(4, 128)
    logits = head(feats)
    cos = F.normalize(feats, dim=-1) @ F.normalize(head.weight, dim=-1).T
    assert torch.allclose(logits, cos / 0.07, atol=1e-4)
    # the cap of 100 is kept on the parameter after each optimiser step (as open_clip_train and Wen et al.
    # do), not in the forward pass, where it would zero the gradient above the cap
    from clipshift.train.schedule import clamp_logit_scales

    with torch.no_grad():
        head.logit_scale.fill_(7.0)  # e^7 ≈ 1097
    head(feats).sum().backward()
    assert head.logit_scale.grad is not None and head.logit_scale.grad.abs() > 0
    clamp_logit_scales(clf)
    assert torch.isclose(head.scale(), torch.tensor(100.0))
    assert torch.allclose(head(feats), 100 * cos, atol=1e-4)


def test_classifier_shapes_tower_and_frozen_text_head(tmp_path):
    clip = build_clip(ModelConfig(), OpenClipTokenizer())
    clf = build_classifier(ModelConfig(), 5, "linear")
    want = {k: v.shape for k, v in clip.visual.state_dict().items()}
    assert {k: v.shape for k, v in clf.visual.state_dict().items()} == want  # the same image tower
    out = clf(torch.zeros(3, 3, 32, 32))
    assert out["logits"].shape == (3, 5) and out["features"].shape == (3, 128)

    emb = F.normalize(torch.randn(5, 128), dim=-1)
    th = build_classifier(ModelConfig(), 5, "texthead", emb)
    names = {n for n, _ in th.named_parameters()}
    assert "head.weight" not in names and "head.logit_scale" in names
    assert torch.allclose(th.head.weight, emb) and "head.weight" in th.state_dict()
    with pytest.raises(UserError, match="needs class-name text embeddings"):
        build_classifier(ModelConfig(), 5, "texthead")
    with pytest.raises(UserError, match=r"\(5, 128\)"):
        build_classifier(ModelConfig(), 5, "texthead", torch.randn(4, 128))

    # a CLIP checkpoint initialises the classifier's image tower
    path = tmp_path / "clip.pt"
    torch.save({"state_dict": clip.state_dict()}, path)
    init = build_classifier(ModelConfig(pretrained=str(path)), 5, "cosine")
    assert same_weights(init.visual.state_dict(), clip.visual.state_dict())


def test_class_text_embeddings_prompt_ensemble():
    tok = build_tokenizer("vocab", None, ["a photo of a dub", "a picture of a kaib"])
    model = build_clip(ModelConfig(tokenizer="vocab"), tok)
    templates = ["a photo of a {}.", "a picture of a {}."]
    emb = class_text_embeddings(model, tok, ["dub", "kaib", "skez"], templates)
    assert emb.shape == (3, 128) and torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert model.training  # mode restored
    with torch.no_grad():
        model.eval()
        per = model.encode_text(tok([t.format("kaib") for t in templates]), normalize=True)
    assert torch.allclose(emb[1], F.normalize(per.mean(0), dim=-1), atol=1e-5)


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_resolver_reads_every_format(tmp_path):
    """One resolver for every spec that loads: ARCH:PATH (and ARCH + pretrained) over a plain state dict,
    an open_clip_train checkpoint (`module.` prefixes) and .safetensors; a run directory and its final.pt;
    a classifier checkpoint. Mistakes are one line."""
    from safetensors.torch import save_file

    from clipshift.models import ResolvedCheckpoint, load_model, resolve_checkpoint

    model = build_clip(ModelConfig(), OpenClipTokenizer())
    sd = model.state_dict()
    torch.save(sd, tmp_path / "plain.pt")
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "oct.pt")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "w.safetensors"))
    arch = "clipshift-rn-tiny"
    for f in ("plain.pt", "oct.pt", "w.safetensors"):
        for spec, pre in ((f"{arch}:{tmp_path / f}", None), (arch, str(tmp_path / f))):
            ck = resolve_checkpoint(spec, pre)
            assert (ck.kind, ck.arch, ck.arch_given, ck.run_dir) == ("clip", arch, True, None)
            assert ck.path == (tmp_path / f).resolve()
            loaded, tok = load_model(ck)
            assert tok is not None and same_weights(loaded.state_dict(), sd), f
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": sd, "name": arch, "kind": "clip"}, run / "checkpoints" / "final.pt")
    by_dir, by_file = resolve_checkpoint(run), resolve_checkpoint(run / "checkpoints" / "final.pt")
    assert by_dir.run_dir == run.resolve() and by_file.run_dir is None
    assert by_dir.path == by_file.path and by_dir.home == by_file.home == run.resolve()
    assert (by_dir.kind, by_dir.arch, by_dir.arch_given) == ("clip", arch, False)
    assert same_weights(load_clip(by_dir)[0].state_dict(), sd)
    clf = build_classifier(ModelConfig(), 4, "linear")
    torch.save({"state_dict": clf.state_dict(), "name": arch, "kind": "classifier"}, tmp_path / "clf.pt")
    ck = resolve_checkpoint(tmp_path / "clf.pt")
    assert isinstance(ck, ResolvedCheckpoint) and ck.kind == "classifier"
    loaded, tok = load_model(ck)
    assert tok is None and same_weights(loaded.state_dict(), clf.state_dict())
    with pytest.raises(UserError, match="is a classifier checkpoint"):
        load_clip(ck)
    bad = [
        ((f"{arch}:{tmp_path / 'none.pt'}",), "not a local file"),
        ((str(tmp_path / "plain.pt"),), "cannot tell the architecture"),
        ((str(tmp_path / "nothing"),), "no such run directory or checkpoint file"),
        ((str(tmp_path),), "no checkpoint there"),
        (("ResNet-9000", str(tmp_path / "plain.pt")), "unknown model 'ResNet-9000'"),
    ]
    for args, needle in bad:
        with pytest.raises(UserError, match=needle) as e:
            resolve_checkpoint(*args)
        assert "\n" not in str(e.value)
