"""Latent-feature simulator of the theory: contrastive vs supervised learning under distribution shift."""

from clipshift.theory.explain import explain
from clipshift.theory.simulator import ALL_LEARNERS, Learner, TheorySpec, simulate, sweep

__all__ = ["ALL_LEARNERS", "Learner", "TheorySpec", "explain", "simulate", "sweep"]
