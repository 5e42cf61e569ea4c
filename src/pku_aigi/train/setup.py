"""Setting up a training run: names checked, device and accelerator, speed options, the
output folder and the data."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass

import torch

from ..outputs import check_output_folder, make_output_folder
from . import checkpoint as ckpt
from .config import TrainConfig, TrainingError
from .data import (
    PAPER_REPEATS,
    CropStream,
    DatasetSource,
    FolderSource,
    split_folder,
)

logger = logging.getLogger(__name__)

LOGS_DIR = "logs"
ARGS_FILE = "train_args.json"


@dataclass
class Runtime:
    """Where and how the run computes: the accelerator and the speed options."""

    accelerator: object  # accelerate.Accelerator
    graphs: bool  # training steps captured into CUDA graphs
    channels_last: bool

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world(self) -> int:
        return self.accelerator.num_processes


def make_runtime(config: TrainConfig) -> Runtime:
    """The accelerator for ``config.device`` and the CUDA speed options resolved."""
    accelerator = make_accelerator(config.device)
    on_cuda = accelerator.device.type == "cuda"
    world = accelerator.num_processes
    graphs = _resolve(config.cuda_graphs, on_cuda and world == 1)
    if graphs and not on_cuda:
        raise TrainingError("--cuda-graphs on needs a CUDA device")
    if graphs and world > 1:
        logger.warning("CUDA graphs are off with several processes (DDP)")
        graphs = False
    if on_cuda:
        torch.backends.cudnn.benchmark = True
    return Runtime(accelerator, graphs, _resolve(config.channels_last, on_cuda))


def make_accelerator(device: str):
    from accelerate import Accelerator

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {device}: CUDA is not available on this machine")
        if ":" in device:
            torch.cuda.set_device(int(device.split(":", 1)[1]))
    elif device not in ("auto", "cpu"):
        raise TrainingError(f"unknown --device {device!r}: use auto, cpu, cuda or cuda:N")
    return Accelerator(cpu=device == "cpu")


def _resolve(flag: str, default: bool) -> bool:
    return default if flag == "auto" else flag == "on"


def prepare_out_dir(config: TrainConfig, names: list[str]) -> None:
    """Refuse to overwrite a previous run unless --resume or --force."""
    out = check_output_folder(config.out, option="--out")
    busy = out.exists() and any(out.iterdir())
    if config.resume:
        if not ckpt.checkpoint_path(out).is_file():
            raise TrainingError(f"--resume: no checkpoint in {out}: start without --resume")
        return
    if busy and not config.force:
        if ckpt.checkpoint_path(out).is_file():
            raise TrainingError(
                f"{out} already holds a run: add --resume to continue it from its last "
                "checkpoint, --force to start again (its checkpoint and models are "
                "replaced), or choose another --out"
            )
        raise TrainingError(
            f"{out} is not empty and holds no checkpoint (a run that stopped before its "
            "first one, or other files): --resume does not apply; add --force to start "
            "again (only what a run writes is replaced), or choose another --out"
        )
    if busy:  # --force: remove what a previous run wrote, nothing else
        for name in [ckpt.CHECKPOINT_DIR, LOGS_DIR, *names]:
            shutil.rmtree(out / name, ignore_errors=True)
        (out / ARGS_FILE).unlink(missing_ok=True)
    make_output_folder(out, option="--out")


def build_data(config: TrainConfig, rank: int, world: int):
    """(train stream, validation sources, training data and validation data descriptions)."""
    if config.images:
        if config.val_images:
            train_sources = [FolderSource(config.images)]
            val_sources = [FolderSource(config.val_images)]
            val_description = f"{len(val_sources[0])} images of {config.val_images}"
        else:
            train, val = split_folder(config.images, config.val_holdout)
            train_sources, val_sources = [train], [val]
            val_description = f"{len(val)} images held out of {config.images}"
        repeats = [1]
        description = f"{len(train_sources[0])} images of {config.images}"
    else:
        if config.streaming:
            raise TrainingError(
                "--streaming is not supported by training yet: download the configs "
                "(drop --streaming) so that crops can be read in a resumable random order"
            )
        where = (config.data_dir, config.cache_dir)
        train_sources = [DatasetSource.load(c, "train", *where) for c in config.configs]
        val_sources = [DatasetSource.load(c, "validation", *where) for c in config.configs]
        repeats = [PAPER_REPEATS.get(c, 1) for c in config.configs]
        val_description = "PKU-AIGI-500K validation split (" + ", ".join(config.configs) + ")"
        description = (
            "PKU-AIGI-500K train split, "
            + ", ".join(f"{c} x{r}" for c, r in zip(config.configs, repeats))
            + " per epoch"
        )
    stream = CropStream(
        train_sources,
        repeats,
        patch_size=config.patch_size,
        batch_size=config.batch_size,
        seed=config.seed,
        rank=rank,
        world_size=world,
    )
    stream.check_sizes()
    return stream, val_sources, description, val_description
