"""Training objectives, selectable by name (`ObjectiveConfig.name`): contrastive image-text losses
(clip, siglip, clip-classname) and supervised classification (supervised, supervised-cosine,
supervised-texthead, and Wen et al.'s dynamic classification). A new objective is one module in this
package (every module here is imported, so its `@register` runs): registering makes it known everywhere
(config validation, `clipshift train --help`, run identity, the registry-wide tests)."""

import importlib
import pkgutil

from clipshift.objectives.base import (
    OBJECTIVES,
    Objective,
    ObjectiveConfig,
    ObjectiveOptions,
    TemplateOptions,
    build_objective,
    register,
)
from clipshift.objectives.contrastive import ClipClassNameObjective, ClipObjective, SigLipObjective
from clipshift.objectives.dynamic import DynamicObjective, DynamicOptions, dynamic_classes, sampling_weights
from clipshift.objectives.supervised import Supervised, SupervisedCosine, SupervisedTextHead, TextHeadOptions

# the modules not imported by name above (a new objective's): importing them registers their objectives
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "OBJECTIVES",
    "ClipClassNameObjective",
    "ClipObjective",
    "DynamicObjective",
    "DynamicOptions",
    "Objective",
    "ObjectiveConfig",
    "ObjectiveOptions",
    "SigLipObjective",
    "Supervised",
    "SupervisedCosine",
    "SupervisedTextHead",
    "TemplateOptions",
    "TextHeadOptions",
    "build_objective",
    "dynamic_classes",
    "register",
    "sampling_weights",
]
