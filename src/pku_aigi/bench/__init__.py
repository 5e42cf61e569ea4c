"""The paper's rate-distortion benchmark: sweep, BD-rate, reports (``pku-aigi bench``).

``run_sweep(images, runs, out_dir)`` measures every image x codec x quality (cached and
resumable), ``write_report(rows, out_dir, ...)`` writes the CompressAI JSON files, the
tidy CSV, the Markdown report and the RD plots.
"""

from .bdrate import INTERPOLATION, bd_quality, bd_rate
from .images import BenchImage, images_from_dataset, images_from_folder
from .report import write_report
from .sweep import CodecRun, Extras, measure, run_sweep

__all__ = [
    "INTERPOLATION",
    "BenchImage",
    "CodecRun",
    "Extras",
    "bd_quality",
    "bd_rate",
    "images_from_dataset",
    "images_from_folder",
    "measure",
    "run_sweep",
    "write_report",
]
