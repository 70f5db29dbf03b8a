"""Benchmarks: each prints `name: value` lines (or JSON) recorded in BENCHMARKS.md."""
