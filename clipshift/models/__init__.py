"""Image and text towers. Tiny CLIP architectures are open_clip JSON configs registered at import,
so every clipshift model is an open_clip model constructible from its name."""

from clipshift.models.registry import DEFAULT_MODEL, build_image_tower, list_models, register_configs

__all__ = ["DEFAULT_MODEL", "build_image_tower", "list_models", "register_configs"]
