"""Models: open_clip CLIP models by architecture name, and image classifiers on the same image tower.

Everything is built by ``open_clip.create_model`` so a clipshift CLIP checkpoint is an open_clip checkpoint.
Weights come from local files only: clipshift never downloads (a hub tag such as ``'openai'`` or a URL
is a user error, not a fetch).
"""

from __future__ import annotations

import json
import math
from copy import deepcopy
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer
from torch import nn

from clipshift.errors import UserError
from clipshift.models.registry import CONFIG_DIR, DEFAULT_MODEL, _ours, quiet_open_clip, register_configs
from clipshift.models.text import OpenClipTokenizer, Tokenizer
from clipshift.models.trim import trim_text

INIT_LOGIT_SCALE = math.log(1 / 0.07)  # CLIP's initial temperature


class ModelConfig(BaseModel):
    """Which architecture, which (local) weights, which tokenizer."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        DEFAULT_MODEL, description="open_clip architecture name (RN50, ViT-B-32, clipshift-rn-tiny…)"
    )
    pretrained: str | None = Field(None, description="local checkpoint file; clipshift never downloads")
    image_size: int | None = Field(None, ge=8, description="input resolution (None: the architecture's)")
    tokenizer: Literal["openclip", "vocab"] = Field(
        "openclip",
        description="openclip: BPE, loadable by name anywhere; vocab: caption words, ~100x smaller",
    )
    context_length: int | None = Field(None, ge=2, le=77, description="text tokens (None: default)")
    channels_last: bool = Field(True, description="NHWC image tensors (faster convolutions on CPU and GPU)")
    init_temperature: float | None = Field(
        None,
        gt=0.01 - 1e-9,
        le=1.0,
        description="CLIP's initial softmax temperature (None: CLIP's 0.07); its inverse is the learnable "
        "logit scale, clamped at 100 (temperature 0.01)",
    )

    @model_serializer(mode="wrap")
    def _omit_unset_temperature(self, handler: SerializerFunctionWrapHandler) -> Any:
        # left out at its default, so the run ids of configs that predate it do not change
        data = handler(self)
        if isinstance(data, dict) and data.get("init_temperature") is None:
            data.pop("init_temperature", None)
        return data


# ----------------------------------------------------------------------------- configs


def _base_config(name: str) -> dict[str, Any]:
    """The architecture's open_clip config. clipshift's own are read from their files, so a run's saved
    config registered under the same name (open_clip.add_model_config) cannot change what name means."""
    import open_clip

    register_configs()
    if name in _ours():
        ours: dict[str, Any] = json.loads((CONFIG_DIR / f"{name}.json").read_text())
        if open_clip.get_model_config(name) != ours:
            # a saved run config registered under our name shadows it; create_model starts from the
            # registry's entry, so put ours back on top (open_clip rescans its paths in order)
            open_clip.add_model_config(CONFIG_DIR / f"{name}.json")
        return ours
    cfg = open_clip.get_model_config(name) if name in open_clip.list_models() else None
    if cfg is None:
        raise UserError(
            f"unknown model {name!r}; clipshift's tiny models: {', '.join(_ours())} "
            "(open_clip.list_models() lists every architecture)"
        )
    text = cfg.get("text_cfg", {})
    if "hf_model_name" in text or "hf_tokenizer_name" in text:
        raise UserError(
            f"model {name!r} uses a Hugging Face text tower or tokenizer, which clipshift would have to "
            "download; choose an architecture with open_clip's own text transformer (e.g. RN50, ViT-B-32)"
        )
    return deepcopy(cfg)


def _context_length(cfg: ModelConfig, tokenizer: Tokenizer | None, base: dict[str, Any]) -> int:
    if tokenizer is not None and tokenizer.context_length is not None:
        return int(tokenizer.context_length)
    if cfg.context_length is not None:
        return cfg.context_length
    return int(base["text_cfg"].get("context_length", 77))


def open_clip_config(
    cfg: ModelConfig, tokenizer: Tokenizer | None = None, **overrides: Any
) -> dict[str, Any]:
    """The exact open_clip model config `build_clip` instantiates. Saved as `<name>.json` in a directory,
    `open_clip.add_model_config(dir)` + `open_clip.create_model(name, pretrained=ckpt)` rebuilds the model
    (that shadows the built-in `name` in open_clip's registry; `create_model(name, pretrained=ckpt,
    **config)` does the same without touching the registry).
    `overrides` are top-level constructor arguments (e.g. SigLIP's init_logit_bias, which must be saved
    for the checkpoint's logit_bias to have a parameter to load into)."""
    if tokenizer is None and cfg.tokenizer == "vocab":
        raise UserError(
            "model.tokenizer = 'vocab': the model needs the built VocabTokenizer (its vocab_size)"
        )
    base = _base_config(cfg.name)
    if cfg.init_temperature is not None:
        base["init_logit_scale"] = math.log(1 / cfg.init_temperature)
    if cfg.image_size is not None:
        base["vision_cfg"]["image_size"] = cfg.image_size
    text = base["text_cfg"]
    text["context_length"] = _context_length(cfg, tokenizer, base)
    text["vocab_size"] = int(tokenizer.vocab_size) if tokenizer is not None else OpenClipTokenizer.vocab_size
    base.update(overrides)
    return base


def _check_pretrained(path: str | None) -> Path | None:
    if path is None:
        return None
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(
            f"pretrained {path!r}: not a local file; clipshift loads checkpoints from local paths only"
        )
    return p.resolve()


def _create(cfg: ModelConfig, model_cfg: dict[str, Any], pretrained: Path | None) -> nn.Module:
    """open_clip.create_model with the whole text/vision config passed as overrides: open_clip 3.3 merges
    **model_kwargs into the config with a shallow dict.update, so a partial text_cfg would drop keys."""
    import open_clip

    kwargs = {k: v for k, v in model_cfg.items() if k != "custom_text"}  # popped by create_model itself
    with quiet_open_clip():
        model = open_clip.create_model(
            cfg.name,
            pretrained=str(pretrained) if pretrained else None,  # absolute path: never read as a hub tag
            output_dict=True,
            pretrained_image=False,  # no default tower weights (timm / HF would download them)
            pretrained_text=False,
            **kwargs,
        )
    return trim_text(model)


def build_clip(cfg: ModelConfig, tokenizer: Tokenizer | None = None, **overrides: Any) -> nn.Module:
    """An open_clip CLIP model (dict outputs) whose text tower matches `tokenizer` (vocab size, context).

    An OpenClipTokenizer without a context length is bound to the architecture's here, so tokens and
    positional embeddings agree. `overrides` are CLIP constructor arguments (an objective's
    `model_overrides()`, e.g. SigLIP's logit bias)."""
    model_cfg = open_clip_config(cfg, tokenizer, **overrides)
    if isinstance(tokenizer, OpenClipTokenizer) and tokenizer.context_length is None:
        tokenizer.bind(int(model_cfg["text_cfg"]["context_length"]))
    path = _check_pretrained(cfg.pretrained)
    try:
        return _create(cfg, model_cfg, path)
    except UserError:
        raise
    except Exception as e:
        if path is None:
            raise
        raise UserError(_mismatch_message(cfg, model_cfg, path, e)) from e


def _mismatch_message(cfg: ModelConfig, model_cfg: dict[str, Any], path: Path, err: Exception) -> str:
    empty = _create(cfg, model_cfg, None)
    return f"pretrained {str(path)!r}: {_first_mismatch(empty.state_dict(), path, err)} (model {cfg.name!r})"


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    from open_clip.factory import load_state_dict

    return load_state_dict(str(path), weights_only=True)


def _first_mismatch(model_sd: dict[str, torch.Tensor], path: Path, err: Exception | None = None) -> str:
    """One line naming the first key of the checkpoint that does not fit the model."""
    try:
        sd = _load_state(path)
    except Exception as e:
        return f"not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
    found = _describe_mismatch(model_sd, sd)
    if found:
        return f"does not match the architecture: {found}"
    first = str(err).strip().splitlines()[0][:160] if err is not None else "unknown error"
    return f"could not be loaded ({type(err).__name__}: {first})"


def _describe_mismatch(want: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> str | None:
    """The first missing / reshaped / unexpected key in model order (positional embeddings last: open_clip
    resizes those, so they are rarely the real problem)."""
    problems: list[str] = []
    for k, v in want.items():
        if k not in got:
            if k != "logit_bias":  # open_clip fills a missing logit_bias with zeros
                problems.append(f"key {k!r} is missing from the checkpoint")
        elif tuple(got[k].shape) != tuple(v.shape):
            problems.append(
                f"key {k!r} has shape {tuple(got[k].shape)} in the checkpoint, {tuple(v.shape)} in the model"
            )
    problems += [f"unexpected key {k!r} in the checkpoint" for k in got if k not in want]
    problems.sort(key=lambda p: "positional_embedding" in p)  # stable: model order otherwise
    return problems[0] if problems else None


# ----------------------------------------------------------------------------- text embeddings


@torch.no_grad()
def class_text_embeddings(
    clip_model: nn.Module, tokenizer: Tokenizer, class_names: list[str], templates: list[str]
) -> torch.Tensor:
    """(C, D) zero-shot classifier weights: per class, the mean of its L2-normalised template embeddings,
    renormalised (CLIP's prompt-ensemble recipe)."""
    if not templates:
        raise UserError("no templates to embed class names with")
    was_training = clip_model.training
    clip_model.eval()
    device = next(clip_model.parameters()).device
    prompts = [t.format(c) for c in class_names for t in templates]
    encode: Any = clip_model.encode_text
    chunks = [
        encode(tokenizer(prompts[i : i + 1024]).to(device), normalize=True)
        for i in range(0, len(prompts), 1024)
    ]
    clip_model.train(was_training)
    emb = torch.cat(chunks).float().view(len(class_names), len(templates), -1).mean(dim=1)
    return F.normalize(emb, dim=-1)


# ----------------------------------------------------------------------------- classifiers


class LinearHead(nn.Module):
    def __init__(self, dim: int, n_classes: int):
        super().__init__()
        self.fc = nn.Linear(dim, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)


class _ScaledCosine(nn.Module):
    """Cosine logits times a learnable temperature, init 1/0.07; the trainer keeps it in [1, 100] by
    clamping the parameter after each step, as CLIP and Wen et al. do (train.schedule.clamp_logit_scales)."""

    def __init__(self) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(INIT_LOGIT_SCALE))

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp()

    def prototypes(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        w = F.normalize(self.prototypes(), dim=-1).to(features.dtype)
        return self.scale() * F.normalize(features, dim=-1) @ w.T


class CosineHead(_ScaledCosine):
    """Learnable class prototypes (normal, std dim^-1/2 as in Wen et al.)."""

    def __init__(self, dim: int, n_classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, dim) * dim**-0.5)

    def prototypes(self) -> torch.Tensor:
        return self.weight


class TextHead(_ScaledCosine):
    """Frozen prototypes: L2-normalised class-name embeddings of a CLIP text tower (a buffer, so the
    optimiser never sees them but checkpoints keep them)."""

    weight: torch.Tensor

    def __init__(self, text_embeddings: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", F.normalize(text_embeddings.detach().float().clone(), dim=-1))

    def prototypes(self) -> torch.Tensor:
        return self.weight


class Classifier(nn.Module):
    """Image tower of an open_clip architecture (``visual``, identical to the CLIP model's) + a head."""

    def __init__(self, visual: nn.Module, head: nn.Module, head_kind: str):
        super().__init__()
        self.visual = visual
        self.head = head
        self.head_kind = head_kind

    def forward(self, image: torch.Tensor, text: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`text` is accepted and ignored, so trainers can call every model the same way."""
        features = self.visual(image)
        return {"logits": self.head(features), "features": features}


def _image_only(cfg: ModelConfig) -> ModelConfig:
    """A classifier has no text tower, so its tokenizer setting is moot: build with the default one
    (a `vocab` tokenizer would otherwise be demanded just to size an unused text embedding)."""
    return cfg.model_copy(update={"tokenizer": "openclip"})


def build_classifier(
    cfg: ModelConfig,
    n_classes: int,
    head: Literal["linear", "cosine", "texthead"],
    text_embeddings: torch.Tensor | None = None,
) -> Classifier:
    """A classifier on the image tower of `cfg.name`. `cfg.pretrained` (a local CLIP or classifier
    checkpoint) initialises the tower from its `visual.*` weights; the head always starts fresh."""
    cfg = _image_only(cfg)
    model_cfg = open_clip_config(cfg, None)
    visual: nn.Module = _create(cfg, model_cfg, None).visual  # type: ignore[assignment]
    path = _check_pretrained(cfg.pretrained)
    if path is not None:
        _load_visual(visual, path)
    dim = int(model_cfg["embed_dim"])
    module: nn.Module
    if head == "linear":
        module = LinearHead(dim, n_classes)
    elif head == "cosine":
        module = CosineHead(dim, n_classes)
    elif head == "texthead":
        if text_embeddings is None:
            raise UserError("head 'texthead' needs class-name text embeddings (objective.texthead_from)")
        if tuple(text_embeddings.shape) != (n_classes, dim):
            raise UserError(
                f"text head: embeddings of shape {tuple(text_embeddings.shape)}, the classifier needs "
                f"({n_classes}, {dim}) — is the text model's embed_dim the image tower's?"
            )
        module = TextHead(text_embeddings)
    else:
        raise UserError(f"unknown head {head!r}; choose linear, cosine or texthead")
    return Classifier(visual, module, head)


def _load_visual(visual: nn.Module, path: Path) -> None:
    try:
        sd = _load_state(path)
    except Exception as e:
        raise UserError(f"pretrained {str(path)!r}: not a readable checkpoint ({type(e).__name__})") from e
    tower = {k.removeprefix("visual."): v for k, v in sd.items() if k.startswith("visual.")}
    if not tower:
        raise UserError(f"pretrained {str(path)!r}: no image-tower weights (visual.*) in it")
    try:
        visual.load_state_dict(tower, strict=True)
    except RuntimeError as e:
        want = {f"visual.{k}": v for k, v in visual.state_dict().items()}
        got = {f"visual.{k}": v for k, v in tower.items()}
        found = _describe_mismatch(want, got) or str(e).splitlines()[0]
        raise UserError(f"pretrained {str(path)!r}: image tower does not match: {found}") from e


__all__ = [
    "Classifier",
    "CosineHead",
    "LinearHead",
    "ModelConfig",
    "TextHead",
    "build_classifier",
    "build_clip",
    "class_text_embeddings",
    "open_clip_config",
]

_MOVED = ("load_classifier", "load_clip", "load_model")  # to clipshift.models.checkpoints


def __getattr__(name: str) -> Any:
    """Checkpoint loading moved to `clipshift.models.checkpoints`; still importable from here."""
    if name in _MOVED:
        from clipshift.models import checkpoints

        return getattr(checkpoints, name)
    raise AttributeError(f"module 'clipshift.models.factory' has no attribute {name!r}")
