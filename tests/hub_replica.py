"""A miniature replica of the Hub repo Forerunner/PKU-AIGI-500K, built at test time.

Real AI-generated images from ../shared/data/pku-examples, packed with Info-ZIP ``zip``
exactly as the Hub publishes them: the same file names (``SD21.z01`` .. ``SD21.z18`` +
``SD21.zip``, ``SD-XL.z01`` .. ``SD-XL.z15`` + ``SD-XL.zip``, the two SD-2_1-B parts,
``MJ.zip`` as Zip64, ``MOD.zip``, ``vaild.zip``), the same inner paths (``MJ/0001_1.png``),
stored and deflated members, and prompt files in the real line format (blank lines, no
trailing newline). ``expected`` lists what the loader must yield for each config/split.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pku_aigi.subsets import SUBSETS

ZIP = shutil.which("zip")


@dataclass
class Expected:
    """One example the loader must yield: source image, names and prompt."""

    source: Path
    file_name: str
    prompt_id: int
    prompt: str | None


@dataclass
class Replica:
    root: Path
    expected: dict[tuple[str, str], list[Expected]] = field(default_factory=dict)


def _zip(cwd: Path, archive: str, members: list[str], *options: str) -> None:
    subprocess.run([ZIP, "-q", "-X", *options, archive, *members], cwd=cwd, check=True)


def _image_name(index: int) -> str:
    """Names like the Hub's: two images per prompt, <N>_<k>.png (0-based index)."""
    return f"{index // 2 + 1:04d}_{index % 2 + 1}.png"


def _write_prompts(path: Path, lines: list[str]) -> None:
    # Real format: one per line, UTF-8, and no newline after the last line.
    path.write_bytes("\n".join(lines).encode())


def _prompt_lines(config: str, count: int) -> list[str]:
    lines = [f"{config} prompt {n}, a photo of something" for n in range(1, count + 1)]
    if count >= 2:
        lines[1] = ""  # the Hub's prompt files have blank lines
    if config == "mod":
        lines = [line + "; a second caption" if line else line for line in lines]
    return lines


def _split_zip(work: Path, out: Path, stem: str, folder: str, disks: int, *options: str):
    """``zip -s`` into exactly ``disks`` + 1 files (as on the Hub), searching the split size."""
    _zip(work, str(out / f"{stem}.zip"), ["-r", folder], *options)
    total = (out / f"{stem}.zip").stat().st_size
    (out / f"{stem}.zip").unlink()
    low, high = total / (disks + 1) / 1024, total / disks / 1024
    middle = (low + high) / 2
    sizes = sorted(range(max(64, int(low) + 1), int(high) + 1), key=lambda k: abs(k - middle))
    for size_k in sizes[:12]:
        for old in out.glob(f"{stem}.z*"):
            old.unlink()
        _zip(work, str(out / f"{stem}.zip"), ["-r", folder], "-s", f"{size_k}k", *options)
        made = sorted(out.glob(f"{stem}.z[0-9]*"))
        # zip 3.0 sometimes moves the end records alone onto an extra disk with wrong
        # disk numbers (its own `zip -s 0` rejects that archive): try another size then.
        if len(made) == disks and len({p.stat().st_size for p in made}) == 1:
            return
    raise RuntimeError(f"could not make {stem} with {disks} disks")


def build_replica(root: Path, pku_examples: Path) -> Replica:
    """Write the replica under ``root`` and return it with the expected examples."""
    if ZIP is None:
        raise RuntimeError("Info-ZIP `zip` is missing: apt-get install zip")
    replica = Replica(root)
    work = root.parent / (root.name + "-work")
    work.mkdir(parents=True)
    root.mkdir(parents=True, exist_ok=True)
    sources = {
        c: sorted((pku_examples / c).glob("*.png"), key=lambda p: int(p.stem)) for c in SUBSETS
    }

    def stage(config: str, folder: str, images: list[Path], offset: int = 0):
        (work / folder).mkdir(parents=True, exist_ok=True)
        names = []
        for i, src in enumerate(images, start=offset):
            name = _image_name(i)
            os.link(src, work / folder / name)
            names.append(name)
        return names

    def expect(config: str, split: str, folder: str, images, names, prompts):
        items = replica.expected.setdefault((config, split), [])
        for src, name in zip(images, names):
            pid = int(name.split("_")[0].split(".")[0])
            prompt = None if prompts is None else prompts[pid - 1]
            items.append(Expected(src, f"{folder}/{name}", pid, prompt))

    # Train split, one packaging per subset as on the Hub.
    for config, subset in SUBSETS.items():
        images = sources[config]
        count = len(images) // 2 + 1
        prompts = _prompt_lines(config, count) if subset.prompt_file else None
        if prompts is not None:
            _write_prompts(root / subset.prompt_file, prompts)
        if config == "mj52":  # one Zip64 archive, deflated
            names = stage(config, "MJ", images)
            _zip(work, str(root / "MJ.zip"), ["-r", "MJ"], "-fz", "-6")
            expect(config, "train", "MJ", images, names, prompts)
        elif config == "mod":  # inner folder unconfirmed: use another name on purpose
            names = stage(config, "MOD_images", images)
            _zip(work, str(root / "MOD.zip"), ["-r", "MOD_images"], "-0")
            expect(config, "train", "MOD_images", images, names, prompts)
        elif config == "sd21b":  # two ordinary zips, the second stored
            half = (len(images) + 1) // 2
            for part, chunk, offset, method in (
                ("SD-2_1-B-part1", images[:half], 0, "-1"),
                ("SD-2_1-B-part2", images[half:], half, "-0"),
            ):
                names = stage(config, part, chunk, offset)
                _zip(work, str(root / f"{part}.zip"), ["-r", part], method)
                expect(config, "train", part, chunk, names, prompts)
        else:  # multi-disk split archives: SD21 stored, SD-XL deflated Zip64
            stem = subset.train_archives[0].last_disk[: -len(".zip")]
            disks = len(subset.train_archives[0].parts) - 1
            names = stage(config, stem, images)
            options = ("-0",) if config == "sd21" else ("-fz", "-1")
            _split_zip(work, root, stem, stem, disks, *options)
            expect(config, "train", stem, images, names, prompts)

    # vaild.zip: vaild/<FOLDER>/ images + vaild/<FOLDER>.txt (none for SDXL).
    vaild = work / "vaild"
    for config, subset in SUBSETS.items():
        images = sources[config][:2] if config != "mod" else sources[config][:1]
        folder = f"vaild/{subset.validation_folder}"
        names = stage(config, folder, images)
        prompts = None
        if config != "sdxl":
            prompts = [f"validation {config} {n}" for n in range(1, 3)]
            _write_prompts(vaild / f"{subset.validation_folder}.txt", prompts)
        expect(config, "validation", folder, images, names, prompts)
    _zip(work, str(root / "vaild.zip"), ["-r", "vaild", "-x", "vaild/MOD/*"], "-9")
    _zip(work, str(root / "vaild.zip"), ["-r", "vaild/MOD"], "-0")  # stored members too

    # A local test split (not on the Hub): test/MJ/<N>.png + test/MJ.txt.
    test_dir = root / "test" / "MJ"
    test_dir.mkdir(parents=True)
    test_images = sources["mj52"][:3]
    for n, src in enumerate(test_images, start=1):
        os.link(src, test_dir / f"{n}.png")
    test_prompts = ["test one", "", "test three"]
    _write_prompts(root / "test" / "MJ.txt", test_prompts)
    replica.expected[("mj52", "test")] = [
        Expected(src, f"test/MJ/{n}.png", n, test_prompts[n - 1])
        for n, src in enumerate(test_images, start=1)
    ]
    shutil.rmtree(work)
    return replica


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_hub_cache(replica_root: Path, cache: Path, files: list[str], copy: bool = False) -> Path:
    """A Hugging Face cache (``hub/datasets--Forerunner--PKU-AIGI-500K``) holding ``files``.

    Laid out as ``huggingface_hub`` writes it: ``blobs/<sha256>`` for LFS files,
    ``snapshots/<commit>/<name>`` symlinks, ``refs/main``; so ``hf_hub_download`` with
    ``HF_HUB_OFFLINE=1`` resolves the files from it.
    """
    repo = cache / "hub" / "datasets--Forerunner--PKU-AIGI-500K"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in files:
        source = replica_root / name
        blob = repo / "blobs" / sha256(source)
        if copy:
            shutil.copyfile(source, blob)
        else:
            os.link(source, blob)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    return repo
