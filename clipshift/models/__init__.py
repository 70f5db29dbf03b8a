"""Image and text towers. Tiny CLIP architectures are open_clip JSON configs registered at import,
so every clipshift model is an open_clip model constructible from its name; `resolve_checkpoint` is the
one place a model spec (run directory, checkpoint file, ARCH:PATH) becomes a file to load."""

from clipshift.models.checkpoints import (
    ResolvedCheckpoint,
    load_classifier,
    load_clip,
    load_model,
    resolve_checkpoint,
)
from clipshift.models.factory import (
    Classifier,
    CosineHead,
    LinearHead,
    ModelConfig,
    TextHead,
    build_classifier,
    build_clip,
    class_text_embeddings,
    open_clip_config,
)
from clipshift.models.registry import DEFAULT_MODEL, build_image_tower, list_models, register_configs
from clipshift.models.text import (
    OpenClipTokenizer,
    Tokenizer,
    VocabTokenizer,
    build_tokenizer,
    tokenizer_from_state,
)

__all__ = [
    "DEFAULT_MODEL",
    "Classifier",
    "CosineHead",
    "LinearHead",
    "ModelConfig",
    "OpenClipTokenizer",
    "ResolvedCheckpoint",
    "TextHead",
    "Tokenizer",
    "VocabTokenizer",
    "build_classifier",
    "build_clip",
    "build_image_tower",
    "build_tokenizer",
    "class_text_embeddings",
    "list_models",
    "load_classifier",
    "load_clip",
    "load_model",
    "open_clip_config",
    "register_configs",
    "resolve_checkpoint",
    "tokenizer_from_state",
]
