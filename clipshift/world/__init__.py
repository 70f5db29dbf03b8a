"""The procedural image-caption world: every sample carries its ground-truth factors."""

from clipshift.world.evalsets import CORRUPTIONS, SetDef, parse_split, standard_eval_sets
from clipshift.world.spec import WorldSpec
from clipshift.world.world import World, WorldSplit

__all__ = ["CORRUPTIONS", "SetDef", "World", "WorldSpec", "WorldSplit", "parse_split", "standard_eval_sets"]
