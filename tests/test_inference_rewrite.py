"""The inference rewrite of the image tower (folded batch norm, one-query attention pool) computes what
open_clip's forward computes, is applied only where that is proven, and never changes the model."""

import pytest
import torch
from torch import nn

from clipshift.evaluate.features import FeatureCache
from clipshift.evaluate.model import from_module, image_encoder, image_features, inference_tag
from clipshift.models import ModelConfig, OpenClipTokenizer, build_classifier, build_clip
from clipshift.models.inference import REWRITE, PooledTokenAttention, can_rewrite, for_inference


def _randomise_norms(model: nn.Module) -> nn.Module:
    """Batch norms far from identity (fresh ones are nearly so, which would hide a wrong fold)."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=g))
            m.bias.data.copy_(0.3 * torch.randn(m.bias.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def clip_model():
    torch.manual_seed(0)
    model = build_clip(ModelConfig(name="clipshift-rn-tiny", image_size=64), OpenClipTokenizer())
    return _randomise_norms(model).eval().to(memory_format=torch.channels_last)


def _pixels(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


def test_rewritten_tower_equals_open_clips_forward(clip_model):
    """64 px: a 2x2 map, so the pool attends over 5 positions and the one-query shortcut is tested."""
    x = torch.randn(40, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    fast = for_inference(clip_model.visual, channels_last=True)
    assert isinstance(fast.attnpool, PooledTokenAttention)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    with torch.inference_mode():
        ref, got = clip_model.visual(x), fast(x)
    assert ref.abs().max() > 0.1  # a tower whose output is not ~0, so the tolerance below means something
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)


def test_rewrite_copies_and_leaves_the_model_alone(clip_model):
    before = {k: v.clone() for k, v in clip_model.state_dict().items()}
    fast = for_inference(clip_model.visual)
    assert fast is not clip_model.visual
    assert any(isinstance(m, nn.BatchNorm2d) for m in clip_model.visual.modules())
    after = clip_model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_rewrite_applies_only_where_proven(clip_model):
    vit = build_clip(ModelConfig(name="clipshift-vit-tiny"), OpenClipTokenizer()).eval()
    assert not can_rewrite(vit.visual) and for_inference(vit.visual) is vit.visual
    assert inference_tag(from_module(vit, OpenClipTokenizer())) is None
    clip_model.visual.train()  # batch norm in training mode normalises by the batch: no fold
    try:
        assert not can_rewrite(clip_model.visual)
    finally:
        clip_model.visual.eval()
    assert inference_tag(from_module(clip_model, OpenClipTokenizer())) == REWRITE
    frozen = build_clip(ModelConfig(name="clipshift-rn-tiny"), OpenClipTokenizer()).eval()
    frozen.visual.lock(freeze_bn_stats=True)  # open_clip's FrozenBatchNorm2d: not the layout proven
    assert not can_rewrite(frozen.visual) and for_inference(frozen.visual) is frozen.visual


def test_evaluation_features_and_predictions_agree_with_encode_image(clip_model):
    model = from_module(clip_model, OpenClipTokenizer())
    images = _pixels(64, 64)
    feats = image_features(model, images, batch_size=16)
    x = images.float().div(255)
    x = x.sub(torch.tensor(model.mean).view(1, 3, 1, 1)).div(torch.tensor(model.std).view(1, 3, 1, 1))
    with torch.inference_mode():
        ref = clip_model.encode_image(x.contiguous(memory_format=torch.channels_last), normalize=True)
    torch.testing.assert_close(feats, ref, atol=1e-5, rtol=1e-4)
    protos = torch.nn.functional.normalize(
        torch.randn(10, ref.shape[1], generator=torch.Generator().manual_seed(3)), dim=-1
    )
    assert torch.equal((feats @ protos.T).argmax(1), (ref @ protos.T).argmax(1))


def test_classifier_tower_is_rewritten_too():
    torch.manual_seed(0)
    clf = _randomise_norms(build_classifier(ModelConfig(name="clipshift-rn-tiny"), 7, "linear")).eval()
    model = from_module(clf)
    assert inference_tag(model) == REWRITE
    x = torch.randn(8, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(image_encoder(model)(x), clf.visual(x), atol=1e-5, rtol=1e-4)


def test_feature_cache_keys_name_the_rewrite(clip_model, tmp_path):
    """Features computed with the rewrite and without it are never taken for each other."""
    rn = from_module(clip_model, OpenClipTokenizer())
    cache = FeatureCache(tmp_path, "same-weights")
    images = _pixels(4, 64)
    clip_model.visual.train()
    try:
        plain = cache.key(rn, images, 16)
    finally:
        clip_model.visual.eval()
    assert cache.key(rn, images, 16) != plain
