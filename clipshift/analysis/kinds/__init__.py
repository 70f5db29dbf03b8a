"""The analysis kinds: one module per kind, each registering its typed spec, default title and
computation with `clipshift.analysis.registry.register`. Every module here (not starting with `_`) is
imported when the kinds are first asked for, so adding a kind is adding a file."""
