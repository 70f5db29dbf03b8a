"""Robustness analyses as pure functions on tables (numpy/scipy; no torch).

Modules (imported explicitly, so that `clipshift.analysis.spec` stays light):
- `effective_robustness`: logit/probit transform, line fit, effective robustness, bootstrap band
- `reference`: reference sets (imagenet-testbed, user CSV, clipshift results rows)
- `stats`: seed CIs (t), bootstrap CIs, Welch differences
- `spurious`: common/counter drops (CounterAnimal)
- `longtail`: frequency correlations, terciles, NC1, prototype coherence (Wen et al.)
- `plots`: figures (matplotlib, no GUI)
"""
