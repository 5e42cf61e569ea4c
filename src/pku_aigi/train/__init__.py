"""Training learned codecs with the paper's recipe, from one CPU to many GPUs.

``train(TrainConfig(...))`` (or ``pku-aigi train``, ``accelerate launch -m pku_aigi.train``)
trains one model per lambda on PKU-AIGI-500K configs or a folder of images and writes
each as a Hub model folder with its model card.
"""

import importlib

# Imported on first use: the CLI imports pku_aigi.train.cli without torch.
_LAZY = {
    "TrainConfig": "config",
    "TrainingError": "config",
    "TrainResult": "loop",
    "train": "loop",
    "RateDistortionLoss": "losses",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
