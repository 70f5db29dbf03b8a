"""Robustness analyses as pure functions on tables (numpy/scipy/matplotlib; no torch).

Statistics (imported explicitly, so that the light modules stay light):
- `effective_robustness`: logit/probit transform, line fit, effective robustness, bootstrap band
- `reference`: reference sets (imagenet-testbed, user CSV, clipshift results rows)
- `stats`: seed CIs (t), bootstrap CIs, Welch differences
- `compare`: estimates with CIs, differences between a factor's levels stratified by the other factors,
  the extra uncertainty of a fitted line (`Comparison`, `LineReplicates`)
- `spurious`: common/counter drops (CounterAnimal)
- `longtail`: frequency correlations, terciles, NC1, prototype coherence (Wen et al.)
- `plots`: figures (matplotlib, no GUI)

The analyses a study asks for (`analyses:` in its YAML):
- `spec`: `AnalysisSpec`, the union of every kind's typed spec keyed on `kind` (light: pydantic only)
- `registry`: kinds by name; `run_analysis` runs one on a study's data into a `Finding`
- `kinds/`: one module per kind (spec, default title, computation, wording)
- `data` (`StudyData`: a study's runs and tidy rows), `context` (what a kind's computation gets),
  `finding` (`Finding`, `Table`, `Embedded`), `wording` (numbers, intervals and units in sentences)
"""
