"""Benchmark results on the Hub: a ``bench`` run as a dataset, comparisons, a leaderboard.

``publish(bench_out, out)`` writes a finished ``pku-aigi bench`` output folder as a Hub
dataset folder (Parquet rows and a card whose YAML ``configs`` ``datasets.load_dataset``
reads), ``open_results(folder_or_hub_id)`` reads one back, ``compare(runs)`` makes BD
tables across runs on the images they share, and :mod:`.leaderboard` is what the Space's
Leaderboard tab shows. ``pku-aigi results publish|compare`` is the command line.
"""

from .compare import compare
from .dataset import Results, open_results
from .publish import publish, push

__all__ = ["Results", "compare", "open_results", "publish", "push"]
