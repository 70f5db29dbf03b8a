"""Image and text towers. Tiny CLIP architectures are open_clip JSON configs registered at import,
so every clipshift model is an open_clip model constructible from its name."""

from clipshift.models.factory import (
    Classifier,
    CosineHead,
    LinearHead,
    ModelConfig,
    TextHead,
    build_classifier,
    build_clip,
    class_text_embeddings,
    load_clip,
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
    "TextHead",
    "Tokenizer",
    "VocabTokenizer",
    "build_classifier",
    "build_clip",
    "build_image_tower",
    "build_tokenizer",
    "class_text_embeddings",
    "list_models",
    "load_clip",
    "open_clip_config",
    "register_configs",
    "tokenizer_from_state",
]
