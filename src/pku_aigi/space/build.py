"""``pku-aigi space build OUT``: a ready-to-push Hugging Face Space folder.

The Space runs this package, which is not on PyPI: OUT gets the Space's ``app.py`` and
card (``README.md`` with the Spaces YAML header) from ``space/`` of the source tree, a
wheel of the package built from that tree (offline, with the setuptools of the running
interpreter, from a clean copy so that no ``build/`` folder is left in the tree), and a
``requirements.txt`` that installs CPU-only torch (PyTorch's CPU wheel index: a Space's
CPU hardware needs none of CUDA's gigabytes) and the wheel by its ``resolve/main`` URL in
the Space named by ``--space-id`` (a Space installs its requirements before the
repository's other files are in place, so a path cannot name the wheel there). Push it
with ``hf upload ORG/NAME OUT . --repo-type space``; ``--local`` names the wheel by its
path instead, to try the folder on this machine (not pushable).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import PkuAigiError
from ..outputs import make_output_folder, write_file_atomically

logger = logging.getLogger(__name__)

SOURCE_ROOT = Path(__file__).resolve().parents[3]  # src/pku_aigi/space/build.py -> root
SPACE_FILES = ("app.py", "README.md")
WHEEL_GLOB = "pku_aigi-*.whl"
# What a wheel is built from: pyproject.toml names README.md as the long description.
SOURCE_FILES = ("pyproject.toml", "README.md")
# PyTorch's CPU-only wheels: pip takes torch from there (a "+cpu" build ranks above the
# same release on PyPI), everything else from PyPI.
CPU_TORCH_LINES = ("--extra-index-url https://download.pytorch.org/whl/cpu", "torch>=2.1")


class SpaceBuildError(PkuAigiError):
    """The Space folder cannot be built as asked."""


def register(subparsers) -> None:
    """Add ``pku-aigi space build``."""
    space = subparsers.add_parser("space", help="build the Hugging Face Space folder")
    commands = space.add_subparsers(dest="space_command", metavar="ACTION")
    build = commands.add_parser(
        "build",
        help="write a ready-to-push Space: app.py, card, this package's wheel, requirements",
        description=__doc__.split("\n\n")[1],
    )
    build.add_argument("out", type=Path, metavar="OUT", help="folder to write (the Space repo)")
    build.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty OUT (replaces app.py, README.md, requirements.txt and "
        "old pku-aigi wheels; other files, e.g. .git, stay)",
    )
    build.add_argument(
        "--wheel", type=Path, metavar="FILE", help="use this pku-aigi wheel instead of building one"
    )
    where = build.add_mutually_exclusive_group()
    where.add_argument(
        "--space-id",
        metavar="ORG/NAME",
        help="the (public) Space you will push to: requirements.txt installs the wheel by "
        "its URL there (needed: a Space installs requirements before its files are in place)",
    )
    where.add_argument(
        "--local",
        action="store_true",
        help="name the wheel by its path, to try the folder on this machine (not pushable)",
    )
    build.set_defaults(func=run_build)
    space.set_defaults(func=lambda args: space.print_help() or 2)


def run_build(args: argparse.Namespace) -> int:
    if not args.space_id and not args.local:
        raise SpaceBuildError(
            "name the Space you will push to with --space-id ORG/NAME (its requirements.txt "
            "must install the wheel by its URL there), or pass --local to try the folder here"
        )
    out = build_space(args.out, force=args.force, wheel=args.wheel, space_id=args.space_id)
    for path in sorted(out.iterdir()):
        if path.name in (*SPACE_FILES, "requirements.txt") or path.match(WHEEL_GLOB):
            print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    if args.space_id:
        print(f"push it with: hf upload {args.space_id} {out} . --repo-type space")
    else:
        print(f"try it with: pip install -r {out}/requirements.txt && python {out}/app.py")
    return 0


def build_space(
    out: str | Path,
    *,
    force: bool = False,
    wheel: str | Path | None = None,
    space_id: str | None = None,
    source_root: Path = SOURCE_ROOT,
) -> Path:
    """Write the Space folder ``out`` and return it (see the module docstring)."""
    out = Path(out)
    space_dir = source_root / "space"
    missing = [name for name in SPACE_FILES if not (space_dir / name).is_file()]
    if missing:
        raise SpaceBuildError(
            f"no {', '.join(missing)} in {space_dir}: `pku-aigi space build` runs from a "
            "source checkout of pku-aigi (the space/ folder is not part of the wheel)"
        )
    if wheel is not None and not (Path(wheel).is_file() and Path(wheel).match(WHEEL_GLOB)):
        raise SpaceBuildError(f"--wheel {wheel}: not a pku_aigi-*.whl file")
    if out.exists() and not out.is_dir():
        raise SpaceBuildError(f"{out} is a file: give a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SpaceBuildError(
            f"{out} is not empty: choose an empty or new folder, or pass --force to replace "
            "the Space files in it (other files, e.g. .git, stay)"
        )
    make_output_folder(out, option="OUT")
    with tempfile.TemporaryDirectory(prefix="pku-aigi-wheel-") as scratch:
        built = Path(wheel) if wheel else build_wheel(Path(scratch), source_root)
        for old in out.glob(WHEEL_GLOB):
            old.unlink()
        write_file_atomically(out / built.name, built.read_bytes())
    for name in SPACE_FILES:
        write_file_atomically(out / name, (space_dir / name).read_bytes())
    requirements = _requirements(space_dir / "requirements.txt", built.name, space_id)
    write_file_atomically(out / "requirements.txt", requirements.encode("utf-8"))
    logger.info("Space folder %s: %s", out, built.name)
    return out


def _requirements(template: Path, wheel_name: str, space_id: str | None) -> str:
    """The template's lines (comments and other requirements), CPU-only torch and the
    wheel's line (its URL in Space ``space_id``, else its path: for local use only)."""
    lines = template.read_text(encoding="utf-8").splitlines() if template.is_file() else []
    lines = [line for line in lines if not line.strip().lower().startswith("pku-aigi")]
    lines += [line for line in CPU_TORCH_LINES if line not in lines]
    if space_id:
        url = f"https://huggingface.co/spaces/{space_id}/resolve/main/{wheel_name}"
        lines.append(f"pku-aigi @ {url}")
    else:
        lines.append(f"./{wheel_name}")  # pip reads it relative to the Space's root
    return "\n".join(lines) + "\n"


def build_wheel(target: Path, source_root: Path = SOURCE_ROOT) -> Path:
    """Build this package's wheel from ``source_root`` into ``target``, offline.

    The build runs ``pip wheel --no-deps --no-build-isolation`` on a copy of
    ``pyproject.toml``, ``README.md`` and ``src/`` (no caches, no ``*.egg-info``), so the
    wheel holds exactly the tree's files and the tree stays untouched.
    """
    if not (source_root / "pyproject.toml").is_file() or not (source_root / "src").is_dir():
        raise SpaceBuildError(
            f"no source tree at {source_root} (pyproject.toml and src/): build the Space from "
            "a source checkout of pku-aigi, or pass --wheel FILE"
        )
    for module in ("setuptools", "wheel"):
        if importlib.util.find_spec(module) is None:
            raise SpaceBuildError(
                f"building the wheel needs {module}: pip install 'setuptools>=68' wheel"
            )
    copy = target / "source"
    copy.mkdir(parents=True)
    for name in SOURCE_FILES:
        shutil.copyfile(source_root / name, copy / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(source_root / "src", copy / "src", ignore=ignore)
    dist = target / "dist"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
               "--no-index", "--quiet", "--wheel-dir", str(dist), str(copy)]  # fmt: skip
    logger.info("building the pku-aigi wheel: %s", " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(dist.glob(WHEEL_GLOB))
    if result.returncode != 0 or len(wheels) != 1:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise SpaceBuildError(f"building the pku-aigi wheel failed:\n{tail}")
    return wheels[0]
