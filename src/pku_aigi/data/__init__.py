"""PKU-AIGI-500K as a ``datasets`` dataset, read from the Hub repo's archives as published.

``load_dataset(config, split)`` is the entry point; ``builder`` holds the
``datasets.GeneratorBasedBuilder``, ``splitzip`` the in-place reader of split zip
archives, ``prompts`` the prompt-file rules, ``hub`` the checked downloads and
``export`` the Parquet export with a dataset card.
"""

from __future__ import annotations

from .loader import load_dataset

__all__ = ["load_dataset"]
