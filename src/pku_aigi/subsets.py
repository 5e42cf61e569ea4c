"""The five subsets of PKU-AIGI-500K in one table.

Everything the package knows about the Hub repo ``Forerunner/PKU-AIGI-500K`` lives here:
config names, the archive and prompt files as published, inner folders, split sizes and
resolutions (see the authors' README, summarised in the dataset card). A new subset is a
new row; nothing else in the package hard-codes file names.

Concatenated into ``dataset_script/PKU-AIGI-500K.py`` (the loading script for
``datasets`` < 4, made by :mod:`pku_aigi.data.script_generator`): import only the
standard library, ``datasets`` and the other copied modules.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import DatasetError

HUB_REPO_ID = "Forerunner/PKU-AIGI-500K"
VALIDATION_ARCHIVE = "vaild.zip"  # sic: the Hub file name is misspelt
VALIDATION_FOLDER = "vaild"
SPLITS = ("train", "validation", "test")

CITATION = """@article{duan2024pkuaigi500k,
  title   = {PKU-AIGI-500K: A Neural Compression Benchmark and Model for AI-Generated Images},
  author  = {Duan, Xunxu and Ma, Siwei and Liu, Hongbin and Jia, Chuanmin},
  journal = {IEEE Journal on Emerging and Selected Topics in Circuits and Systems},
  year    = {2024},
  doi     = {10.1109/JETCAS.2024.3385629}
}"""


@dataclass(frozen=True)
class Archive:
    """One zip archive of the Hub repo.

    ``parts`` lists every file of the archive in disk order. A multi-disk split archive
    (Info-ZIP ``zip -s``) has ``name.z01`` .. ``name.zNN`` followed by ``name.zip``, the
    last disk, which holds the central directory.
    """

    parts: tuple[str, ...]

    @property
    def last_disk(self) -> str:
        return self.parts[-1]

    @property
    def is_split(self) -> bool:
        return len(self.parts) > 1


def split_archive(stem: str, disks: int) -> Archive:
    """Archive ``stem.z01`` .. ``stem.z{disks}`` + ``stem.zip``."""
    return Archive(tuple(f"{stem}.z{i:02d}" for i in range(1, disks + 1)) + (f"{stem}.zip",))


@dataclass(frozen=True)
class Subset:
    """One subset (one ``datasets`` config) of PKU-AIGI-500K."""

    config: str  # datasets config name
    title: str  # name used in the paper
    generator: str  # text-to-image model that made the images
    train_archives: tuple[Archive, ...]  # ordinary zips or split zips, in order
    prompt_file: str | None  # Hub prompt file of the train split; None if unpublished
    validation_folder: str  # folder inside vaild.zip: vaild/<folder>/...
    train_size: tuple[int, int]  # (width, height) of train and validation images
    test_size: tuple[int, int]  # (width, height) of the (unpublished) test images
    num_train: int
    num_validation: int
    num_test: int

    @property
    def validation_prompt_file(self) -> str:
        """Prompt file of the validation split, inside vaild.zip (e.g. ``vaild/MJ.txt``)."""
        return f"{VALIDATION_FOLDER}/{self.validation_folder}.txt"

    def hub_files(self, split: str) -> tuple[str, ...]:
        """Hub file names a split of this subset needs (the test split has none)."""
        check_split(split)
        if split == "validation":
            return (VALIDATION_ARCHIVE,)
        if split == "test":
            return ()
        files = [part for archive in self.train_archives for part in archive.parts]
        if self.prompt_file:
            files.append(self.prompt_file)
        return tuple(files)


SUBSETS: dict[str, Subset] = {
    s.config: s
    for s in (
        Subset(
            config="sd21b",
            title="SD2.1B",
            generator="Stable Diffusion 2.1 base",
            train_archives=(
                Archive(("SD-2_1-B-part1.zip",)),
                Archive(("SD-2_1-B-part2.zip",)),
            ),
            prompt_file="SD-2_1-B.txt",
            validation_folder="SD21B",
            train_size=(512, 512),
            test_size=(768, 768),
            num_train=202_265,
            num_validation=40,
            num_test=40,
        ),
        Subset(
            config="sd21",
            title="SD2.1",
            generator="Stable Diffusion 2.1",
            train_archives=(split_archive("SD21", 18),),
            prompt_file="SD21.txt",
            validation_folder="SD21",
            train_size=(768, 768),
            test_size=(1024, 1024),
            num_train=203_242,
            num_validation=40,
            num_test=40,
        ),
        Subset(
            config="sdxl",
            title="SDXL1.0B",
            generator="Stable Diffusion XL 1.0 base",
            train_archives=(split_archive("SD-XL", 15),),
            prompt_file=None,  # no prompt file is published for SDXL
            validation_folder="SDXL",
            train_size=(1024, 1024),
            test_size=(1280, 1280),
            num_train=105_554,
            num_validation=20,
            num_test=80,  # 40 with and 40 without watermark
        ),
        Subset(
            config="mj52",
            title="MJ5.2",
            generator="Midjourney 5.2",
            train_archives=(Archive(("MJ.zip",)),),
            prompt_file="MJ.txt",
            validation_folder="MJ",
            train_size=(1024, 1024),
            test_size=(2048, 1024),
            num_train=13_240,
            num_validation=10,
            num_test=25,
        ),
        Subset(
            config="mod",
            title="MOD",
            generator="MOD",
            train_archives=(Archive(("MOD.zip",)),),
            prompt_file="MOD.txt",
            validation_folder="MOD",
            train_size=(1408, 640),
            test_size=(2112, 960),
            num_train=3_670,
            num_validation=5,
            num_test=25,
        ),
    )
}

CONFIGS = tuple(SUBSETS)


def get_subset(config: str) -> Subset:
    """The subset named ``config``, or a clear error listing the valid names."""
    try:
        return SUBSETS[config]
    except KeyError:
        raise DatasetError(
            f"unknown config {config!r}: PKU-AIGI-500K has the configs {', '.join(CONFIGS)}"
        ) from None


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return split
