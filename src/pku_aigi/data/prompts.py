"""Prompt files of PKU-AIGI-500K and the image-name -> prompt-line rule.

One prompt per line, UTF-8; some lines are blank and the last line may lack a newline.
An image ``<N>_<k>.png`` (train, validation) or ``<N>.png`` (test) takes line N, 1-based:
the authors' loader does ``int(name.split('.')[0].split('_')[0]) - 1``.

Concatenated into ``dataset_script/PKU-AIGI-500K.py`` (the loading script for
``datasets`` < 4, made by :mod:`pku_aigi.data.script_generator`): import only the
standard library, ``datasets`` and the other copied modules.
"""

from __future__ import annotations

import posixpath
import re

from ..errors import DatasetError

_PROMPT_ID = re.compile(r"(\d+)(?:_[^.]*)?\.png", re.IGNORECASE)
MAX_PROMPT_DIGITS = 9  # prompt numbers fit the int32 prompt_id feature


def parse_prompts(data: bytes, source: str) -> list[str]:
    """Lines of a prompt file, stripped of surrounding whitespace (blank lines kept as "")."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DatasetError(f"prompt file {source} is not UTF-8 (line {line})") from None
    # Split on "\n" only: str.splitlines() also splits on characters such as U+2028
    # that may occur inside a prompt, which would shift every later line.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start a new one
    return [line.strip() for line in lines]


def prompt_id(file_name: str) -> int:
    """The 1-based prompt line of an image, from its name (``0001_1.png`` -> 1)."""
    base = posixpath.basename(file_name)
    match = _PROMPT_ID.fullmatch(base)
    if not match:
        raise DatasetError(
            f"image {file_name}: its name does not start with a prompt number "
            "(expected <N>_<k>.png or <N>.png)"
        )
    digits = match.group(1)
    if len(digits) > MAX_PROMPT_DIGITS:
        raise DatasetError(
            f"image {file_name}: its prompt number has {len(digits)} digits, more than the "
            f"{MAX_PROMPT_DIGITS} any prompt line can need: the file is not of this dataset"
        )
    return int(digits)


def lookup_prompt(prompts: list[str] | None, pid: int, file_name: str, source: str) -> str | None:
    """Line ``pid`` of ``prompts`` (None when the subset has no prompt file)."""
    if prompts is None:
        return None
    if not 1 <= pid <= len(prompts):
        raise DatasetError(
            f"image {file_name} needs line {pid} of the prompt file {source}, which has "
            f"{len(prompts)} lines: the prompt file does not match the images"
        )
    return prompts[pid - 1]
