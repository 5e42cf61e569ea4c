"""Generate ``dataset_script/PKU-AIGI-500K.py``, the loading script for ``datasets`` < 4.

``datasets`` < 4 loads a Hub dataset through a Python script in the repo
(``load_dataset("Forerunner/PKU-AIGI-500K", "mj52", trust_remote_code=True)``). That
script must not depend on this package, and must not drift from the package's builder;
so it is made by concatenating the very modules the package uses (the errors, the subsets
table, the split-zip reader, the prompt rules and the builder), with their relative
imports between each other removed. Any other relative import (to a module that is not
copied, or inside a function) cannot be rewritten: the generator refuses it, naming the
line. ``pku-aigi data script`` rewrites it; a test checks it is current.
"""

from __future__ import annotations

import ast
import posixpath
import re
from pathlib import Path

from ..errors import DatasetError

SCRIPT_NAME = "PKU-AIGI-500K.py"
PACKAGE = Path(__file__).resolve().parents[1]
MODULES = ("errors.py", "subsets.py", "data/splitzip.py", "data/prompts.py", "data/builder.py")

_HEADER = '''# ruff: noqa
# PKU-AIGI-500K loading script for `datasets` < 4 (trust_remote_code=True).
#
# GENERATED from the pku-aigi package ({modules}) by
# `pku-aigi data script`: do not edit, edit the package and regenerate.
# With `datasets` >= 4 use the Parquet configs of this repo, or `pku_aigi.load_dataset`.
"""PKU-AIGI-500K: a neural compression benchmark of AI-generated images (JETCAS 2024)."""

from __future__ import annotations
'''
_FUTURE = re.compile(r"^from __future__ import annotations\n", re.MULTILINE)


def _target(module: str, node: ast.ImportFrom) -> str:
    """The package file a relative import reads, e.g. ``"errors.py"``."""
    folder = posixpath.dirname(module)
    for _ in range(node.level - 1):
        folder = posixpath.dirname(folder)
    return posixpath.join(folder, *(node.module or "__init__").split(".")) + ".py"


def strip_sibling_imports(module: str, source: str, copied=MODULES) -> str:
    """``source`` without its top-level relative imports of modules in ``copied``.

    Raises:
        DatasetError: a relative import the concatenated script cannot satisfy (a module
            that is not copied, or an import inside a function or class).
    """
    lines = source.splitlines(keepends=True)
    drop: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.ImportFrom) and node.level):
            continue
        target = _target(module, node)
        if target not in copied or node.col_offset:
            raise DatasetError(
                f"pku_aigi/{module}, line {node.lineno}: the relative import of {target} "
                f"cannot be rewritten for {SCRIPT_NAME} (only top-level imports of "
                f"{', '.join(copied)} can): import the standard library or `datasets` "
                "there, or add the module to MODULES"
            )
        drop.update(range(node.lineno - 1, node.end_lineno))
    return "".join(line for number, line in enumerate(lines) if number not in drop)


def render_script() -> str:
    """The loading script's text, from the package sources as they are now."""
    chunks = [_HEADER.format(modules=", ".join(MODULES))]
    for module in MODULES:
        source = (PACKAGE / module).read_text(encoding="utf-8")
        source = _FUTURE.sub("", strip_sibling_imports(module, source))
        chunks.append(f"\n\n# ---- pku_aigi/{module} " + "-" * (70 - len(module)) + "\n")
        chunks.append(source.strip("\n") + "\n")
    return "".join(chunks)


def write_dataset_repo(folder: str | Path, *, force: bool = False) -> list[Path]:
    """Write the loading script and the dataset card into ``folder``.

    A file there that this function did not write is only replaced with ``force``.
    """
    from ..errors import DatasetError
    from ..outputs import make_output_folder, write_file_atomically
    from .card import GENERATED_MARK, render_card

    folder = make_output_folder(folder, option="--out")
    files = {
        folder / SCRIPT_NAME: (render_script(), "GENERATED from the pku-aigi package"),
        folder / "README.md": (render_card(), GENERATED_MARK),
    }
    for path, (_, mark) in files.items():
        if path.is_dir():
            raise DatasetError(f"{path} is a folder: choose another --out")
        if path.exists() and mark not in path.read_text(errors="replace") and not force:
            raise DatasetError(
                f"{path} exists and was not written by `pku-aigi data script`: "
                "choose another --out, or pass --force to replace it"
            )
    for path, (text, _) in files.items():
        write_file_atomically(path, text.encode("utf-8"))
    return list(files)
