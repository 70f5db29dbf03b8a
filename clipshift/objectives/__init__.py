"""Training objectives, selectable by name (`ObjectiveConfig.name`): contrastive image-text losses
(clip, siglip, clip-classname) and supervised classification (supervised, supervised-cosine,
supervised-texthead, and Wen et al.'s dynamic classification)."""

from clipshift.objectives.base import OBJECTIVES, Objective, ObjectiveConfig, build_objective, register
from clipshift.objectives.contrastive import ClipClassNameObjective, ClipObjective, SigLipObjective
from clipshift.objectives.dynamic import DynamicObjective, dynamic_classes, sampling_weights
from clipshift.objectives.supervised import Supervised, SupervisedCosine, SupervisedTextHead

__all__ = [
    "OBJECTIVES",
    "ClipClassNameObjective",
    "ClipObjective",
    "DynamicObjective",
    "Objective",
    "ObjectiveConfig",
    "SigLipObjective",
    "Supervised",
    "SupervisedCosine",
    "SupervisedTextHead",
    "build_objective",
    "dynamic_classes",
    "register",
    "sampling_weights",
]
