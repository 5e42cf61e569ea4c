"""The images a benchmark runs on: a dataset split or a folder, as :class:`BenchImage`.

Every image is decoded once to RGB 8-bit (by :func:`pku_aigi.image_input.to_rgb`, the
rule every codec applies, through :func:`pku_aigi.metrics.to_rgb_array`) and keyed by the
SHA-256 of its pixels (and size), so cached measurements follow the content, not the file
name. Image files are opened by :func:`pku_aigi.image_input.open_image_file`, so a
crafted file is one :class:`~pku_aigi.errors.CodecError` naming it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DatasetError, PkuAigiError
from ..image_input import open_image_file, read_folder
from ..metrics import MS_SSIM_MIN_SIDE, ImageTooSmallError, to_rgb_array

logger = logging.getLogger(__name__)

_OFFLINE_HINT = (
    "Without access to the Hub, benchmark a local copy with --data-dir DIR (a folder "
    "laid out like the Hub repo, holding vaild.zip), any folder of images with --images DIR, "
    "or the built-in sample of 8 CC0 images with --sample"
)


@dataclass(frozen=True, eq=False)
class BenchImage:
    """One test image: pixels, content key, subset and prompt."""

    name: str  # file name (relative to the folder, or the dataset's file_name)
    subset: str  # dataset config, or the first sub-folder of an --images folder
    rgb: np.ndarray  # (H, W, 3) uint8
    prompt: str | None = None
    # The image's own prompt when ``prompt`` was changed by ``--prompt-mode`` (CLIP
    # scores compare against it); see prompt_modes.py.
    reference_prompt: str | None = None

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def key(self) -> str:
        """SHA-256 of the size and RGB pixels (first 16 hex digits)."""
        cached = self.__dict__.get("_key")
        if cached is None:
            digest = hashlib.sha256(f"{self.width}x{self.height}:".encode())
            digest.update(np.ascontiguousarray(self.rgb).tobytes())
            cached = digest.hexdigest()[:16]
            object.__setattr__(self, "_key", cached)
        return cached


def check_sizes(images: list[BenchImage]) -> list[BenchImage]:
    """Fail early (before hours of coding) on images too small for MS-SSIM."""
    small = [
        f"{i.name} ({i.width}x{i.height})"
        for i in images
        if min(i.rgb.shape[:2]) < MS_SSIM_MIN_SIDE
    ]
    if small:
        raise ImageTooSmallError(
            f"{len(small)} image(s) are smaller than {MS_SSIM_MIN_SIDE} px on a side, the minimum "
            f"of MS-SSIM: {', '.join(small[:5])}{' ...' if len(small) > 5 else ''}; "
            "remove them or use larger images"
        )
    return images


def images_from_folder(folder: str | Path, limit: int | None = None) -> list[BenchImage]:
    """All images under ``folder`` (:func:`pku_aigi.image_input.read_folder`), each opened
    by :func:`pku_aigi.image_input.open_image_file`.

    The subset of an image is its first sub-folder (``folder/mj52/1.png`` -> ``mj52``),
    or the folder's own name for images directly inside it. ``limit`` keeps the first
    ``limit`` images of each subset.
    """
    root = Path(folder)
    try:
        found = read_folder(root)
    except DatasetError as error:
        raise DatasetError(f"--images: {error}") from None
    per_subset: dict[str, int] = {}
    images = []
    for item in found:
        parts = item.relative.split("/")
        subset = parts[0] if len(parts) > 1 else root.resolve().name
        if limit is not None and per_subset.get(subset, 0) >= limit:
            continue
        opened = open_image_file(item.path)  # a CodecError naming the file
        try:
            rgb = to_rgb_array(opened)
        except PkuAigiError as error:
            raise PkuAigiError(f"cannot read image {item.path}: {error}") from error
        per_subset[subset] = per_subset.get(subset, 0) + 1
        images.append(BenchImage(item.relative, subset, rgb, item.prompt))
    return check_sizes(images)


def images_from_dataset(
    configs: list[str],
    split: str = "validation",
    data_dir: str | Path | None = None,
    limit: int | None = None,
    cache_dir: str | Path | None = None,
) -> list[BenchImage]:
    """Images of ``split`` of each config through :func:`pku_aigi.load_dataset`.

    Without ``data_dir`` the files come from the Hub; a failed download becomes one
    error naming the offline alternatives (``--images`` / ``--data-dir``).
    """
    from ..data import load_dataset

    images = []
    for config in configs:
        try:
            dataset = load_dataset(config, split=split, data_dir=data_dir, cache_dir=cache_dir)
        except PkuAigiError as error:
            if data_dir is not None:
                raise
            raise DatasetError(f"{error}. {_OFFLINE_HINT}") from error
        except Exception as error:  # network / hub errors of huggingface_hub and datasets
            where = f"from {data_dir}" if data_dir else "from the Hugging Face Hub"
            raise DatasetError(
                f"cannot load {config}/{split} {where} ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}). {_OFFLINE_HINT}"
            ) from error
        count = len(dataset) if limit is None else min(limit, len(dataset))
        logger.info("%s/%s: %d images", config, split, count)
        for index in range(count):
            example = dataset[index]
            image = example["image"]
            if not isinstance(image, Image.Image):  # undecoded {"bytes", "path"}
                import io

                image = Image.open(io.BytesIO(image["bytes"]))
            images.append(
                BenchImage(
                    name=example.get("file_name") or f"{config}/{index}",
                    subset=example.get("subset") or config,
                    rgb=to_rgb_array(image),
                    prompt=example.get("prompt") or None,
                )
            )
    return check_sizes(images)
