"""clipshift: controlled studies of language-image models under distribution shift."""

__version__ = "0.1.0"
