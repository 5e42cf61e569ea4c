"""Training data: random crops and flips from image folders or PKU-AIGI-500K configs.

The order of samples is a pure function of ``(seed, sample index)``: epoch ``e`` is a
permutation (seeded by ``(seed, e)``) of every source repeated as the paper interleaves
them (one pass over each SD subset, four over MJ5.2, seven over MOD per epoch), and the
crop and flips of a sample come from an RNG seeded by ``(seed, epoch, position)``. So
batch ``b`` is the same whatever worker decodes it, and resuming at step ``b`` needs only
``b`` (the data position) to continue exactly where an interrupted run stopped.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DatasetError
from ..image_input import FolderImage, image_file_size, open_image_file, read_folder, to_rgb

logger = logging.getLogger(__name__)

# Passes over each subset per epoch, as the paper's training interleaves them.
PAPER_REPEATS = {"sd21b": 1, "sd21": 1, "sdxl": 1, "mj52": 4, "mod": 7}


class FolderSource:
    """The images under a folder (:func:`pku_aigi.image_input.read_folder`), with prompts.

    Images without a prompt in the folder's ``metadata.jsonl`` get the empty prompt. Files
    are opened by :func:`pku_aigi.image_input.open_image_file` (a crafted file is one
    :class:`~pku_aigi.errors.CodecError` naming it).
    ``images`` (default: all of them) selects some, e.g. a validation hold-out.
    """

    def __init__(self, root: str | Path, images: list[FolderImage] | None = None):
        self.root = Path(root)
        self.images = list(images) if images is not None else read_folder(self.root)
        self.name = self.root.name

    @property
    def files(self) -> list[Path]:
        return [item.path for item in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def size(self, index: int) -> tuple[int, int]:
        return image_file_size(self.images[index].path)  # the header only

    def image(self, index: int) -> Image.Image:
        return to_rgb(open_image_file(self.images[index].path))

    def prompt(self, index: int) -> str:
        return self.images[index].prompt or ""

    def example(self, index: int) -> tuple[Image.Image, str]:
        return self.image(index), self.prompt(index)

    def describe(self) -> str:
        return f"{len(self)} images from the folder {self.root}"


class DatasetSource:
    """One PKU-AIGI-500K config (``pku_aigi.load_dataset``) with random access."""

    def __init__(self, dataset, name: str):
        self.dataset = dataset
        self.name = name

    @classmethod
    def load(
        cls, config: str, split: str, data_dir: str | None = None, cache_dir: str | None = None
    ) -> DatasetSource:
        from .. import load_dataset

        dataset = load_dataset(config, split=split, data_dir=data_dir, cache_dir=cache_dir)
        return cls(dataset, config)

    def __len__(self) -> int:
        return len(self.dataset)

    def size(self, index: int) -> tuple[int, int]:
        row = self.dataset[index]
        return int(row["width"]), int(row["height"])

    def image(self, index: int) -> Image.Image:
        return to_rgb(_as_pil(self.dataset[index]["image"]))

    def prompt(self, index: int) -> str:
        return self.example(index)[1]

    def example(self, index: int) -> tuple[Image.Image, str]:
        row = self.dataset[index]  # one read: a row access decodes its image
        return to_rgb(_as_pil(row["image"])), row.get("prompt") or ""

    def describe(self) -> str:
        return f"{len(self)} images of PKU-AIGI-500K config {self.name}"


def _as_pil(value) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict) and value.get("bytes") is not None:
        import io

        return Image.open(io.BytesIO(value["bytes"]))
    if isinstance(value, dict) and value.get("path"):
        return Image.open(value["path"])
    raise DatasetError(f"cannot read an image from a value of type {type(value).__name__}")


def random_crop(image: Image.Image, patch: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``patch`` x ``patch`` crop with random horizontal and vertical flips.

    Returns uint8 HWC. Images smaller than the patch are a :class:`DatasetError`.
    """
    width, height = image.size
    if width < patch or height < patch:
        raise DatasetError(
            f"an image of {width}x{height} is smaller than the {patch}x{patch} crops: "
            "lower --patch-size or remove small images"
        )
    left = int(rng.integers(0, width - patch + 1))
    top = int(rng.integers(0, height - patch + 1))
    flip_h, flip_v = rng.random(2) < 0.5
    crop = np.asarray(image.crop((left, top, left + patch, top + patch)), dtype=np.uint8)
    if flip_h:
        crop = crop[:, ::-1]
    if flip_v:
        crop = crop[::-1]
    return np.ascontiguousarray(crop)


def centre_crop(image: Image.Image, size: int) -> np.ndarray:
    """The centre ``size`` x ``size`` crop (uint8 HWC), clipped to the image."""
    width, height = image.size
    size = min(size, width, height)
    left, top = (width - size) // 2, (height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


@dataclass
class Batch:
    """A batch of crops: uint8 NCHW images and their prompts."""

    images: np.ndarray
    prompts: list[str]


class CropStream:
    """An endless, deterministic stream of random crops over interleaved sources.

    Args:
        sources: image sources (``FolderSource`` / ``DatasetSource``).
        repeats: passes over each source per epoch (the paper's interleaving).
        patch_size: side of the square crops.
        batch_size: crops per batch and process.
        seed: seeds the order, the crops and the flips.
        rank, world_size: this process's share; global step ``s`` gives process ``r`` the
            crops ``[(s * world_size + r) * batch_size, ... + batch_size)``.
    """

    def __init__(
        self,
        sources: list,
        repeats: list[int] | None = None,
        *,
        patch_size: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.sources = list(sources)
        self.repeats = list(repeats or [1] * len(self.sources))
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        spans = [len(s) * r for s, r in zip(self.sources, self.repeats)]
        self.offsets = np.cumsum([0] + spans)
        self.epoch_length = int(self.offsets[-1])
        self._orders: OrderedDict[int, np.ndarray] = OrderedDict()

    def steps_per_epoch(self) -> int:
        return max(1, self.epoch_length // (self.batch_size * self.world_size))

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            rng = np.random.default_rng([self.seed, epoch])
            self._orders[epoch] = rng.permutation(self.epoch_length)
            while len(self._orders) > 2:
                self._orders.popitem(last=False)
        return self._orders[epoch]

    def locate(self, sample: int) -> tuple[int, int]:
        """(source number, index in source) of global sample number ``sample``."""
        epoch, position = divmod(sample, self.epoch_length)
        k = int(self._order(epoch)[position])
        source = int(np.searchsorted(self.offsets, k, side="right") - 1)
        return source, (k - int(self.offsets[source])) % len(self.sources[source])

    def crop(self, sample: int) -> tuple[np.ndarray, str]:
        source, index = self.locate(sample)
        epoch, position = divmod(sample, self.epoch_length)
        rng = np.random.default_rng([self.seed, epoch, position, 1])
        image, prompt = self.sources[source].example(index)
        return random_crop(image, self.patch_size, rng), prompt

    def batch(self, step: int) -> Batch:
        """The batch of this process at global step ``step`` (0-based)."""
        first = (step * self.world_size + self.rank) * self.batch_size
        crops, prompts = zip(*(self.crop(first + i) for i in range(self.batch_size)))
        images = np.stack(crops).transpose(0, 3, 1, 2)
        return Batch(np.ascontiguousarray(images), list(prompts))

    def check_sizes(self) -> None:
        """Fail early on images smaller than the crops (folders only: headers are cheap)."""
        for source in self.sources:
            if not isinstance(source, FolderSource):
                continue
            for index, path in enumerate(source.files):
                width, height = source.size(index)
                if min(width, height) < self.patch_size:
                    raise DatasetError(
                        f"{path} is {width}x{height}, smaller than the "
                        f"{self.patch_size}x{self.patch_size} crops: lower --patch-size "
                        "or remove it"
                    )


class _BatchDataset:
    """Map-style view ``step -> Batch`` for torch's DataLoader (worker prefetching)."""

    def __init__(self, stream: CropStream):
        self.stream = stream

    def __getitem__(self, step: int) -> Batch:
        return self.stream.batch(step)


def _collate(batch: Batch):
    import torch

    return torch.from_numpy(batch.images), batch.prompts


def batch_loader(stream: CropStream, start_step: int, stop_step: int, workers: int, pin: bool):
    """Batches ``start_step .. stop_step - 1``, decoded by ``workers`` processes ahead of use.

    Yields ``(uint8 NCHW tensor, prompts)``.
    """
    import torch

    if workers <= 0:
        for step in range(start_step, stop_step):
            yield _collate(stream.batch(step))
        return
    loader = torch.utils.data.DataLoader(
        _BatchDataset(stream),
        batch_size=None,
        sampler=range(start_step, stop_step),
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=pin,
        prefetch_factor=4,
        # its own generator: the loader's worker seeds must not draw from the global RNG,
        # which drives the entropy models' training noise
        generator=torch.Generator(),
    )
    yield from loader


def validation_crops(sources: list, size: int, multiple: int = 64) -> list[tuple[np.ndarray, str]]:
    """Centre crops (uint8 HWC, side a multiple of ``multiple``) of every validation image."""
    crops = []
    for source in sources:
        for index in range(len(source)):
            image, prompt = source.example(index)
            side = min(size, *image.size) // multiple * multiple
            if side == 0:
                raise DatasetError(
                    f"validation image {index} of {source.name} ({image.size[0]}x"
                    f"{image.size[1]}) is smaller than {multiple} pixels"
                )
            crops.append((centre_crop(image, side), prompt))
    return crops


def split_folder(
    root: str | Path, holdout: int, seed: int = 0
) -> tuple[FolderSource, FolderSource]:
    """Train and validation sources from one folder: ``holdout`` images picked at random
    (fixed seed, so the split does not move with ``--seed``) are kept for validation."""
    everything = FolderSource(root)
    if len(everything) < 2:
        raise DatasetError(
            f"{root} has {len(everything)} image: give at least 2 (one is held out for "
            "validation) or a separate --val-images folder"
        )
    holdout = max(1, min(holdout, len(everything) // 2))
    picked = set(np.random.default_rng(seed).choice(len(everything), holdout, replace=False))
    val = [item for i, item in enumerate(everything.images) if i in picked]
    train = [item for i, item in enumerate(everything.images) if i not in picked]
    return FolderSource(root, train), FolderSource(root, val)
