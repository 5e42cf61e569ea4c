"""Prompt ablation for text-conditioned codecs: ``pku-aigi bench --prompt-mode``.

What is the prompt worth to CATC? The same images are coded with

- ``correct``: each image's own prompt (the paper's setting);
- ``empty``: no prompt (the codec uses the empty prompt, and no prompt bytes are stored);
- ``shuffled``: the image's own prompt with its words in a random order (same words,
  no syntax);
- ``swapped``: another image's prompt (a random derangement over the images that have
  one: no image keeps its own, unless two images share the same text).

The transformation is deterministic for a given ``seed``. Quality-to-text alignment
(CLIP score) is still measured against the image's own prompt.
"""

from __future__ import annotations

import dataclasses
import random

from ..errors import PkuAigiError

PROMPT_MODES = ("correct", "empty", "shuffled", "swapped")


def apply_prompt_mode(prompts: list[str | None], mode: str, seed: int = 0) -> list[str | None]:
    """The prompts the codec gets under ``mode`` (None: the image has no prompt).

    Raises:
        PkuAigiError: unknown mode, or ``swapped`` with fewer than two prompts.
    """
    prompts = list(prompts)
    if mode == "correct":
        return prompts
    if mode == "empty":
        return [None] * len(prompts)
    if mode == "shuffled":
        shuffled = []
        for index, prompt in enumerate(prompts):
            if not prompt:
                shuffled.append(prompt)
                continue
            words = prompt.split()
            random.Random(f"{seed}:{index}").shuffle(words)
            shuffled.append(" ".join(words))
        return shuffled
    if mode == "swapped":
        having = [i for i, p in enumerate(prompts) if p]
        if len(having) < 2:
            raise PkuAigiError(
                f"--prompt-mode swapped needs at least two images with prompts, got {len(having)}:"
                " add images or use --prompt-mode empty"
            )
        order = list(having)
        random.Random(seed).shuffle(order)
        swapped = list(prompts)
        for position, index in enumerate(order):  # a cycle: each takes the next one's prompt
            swapped[index] = prompts[order[(position + 1) % len(order)]]
        return swapped
    raise PkuAigiError(f"unknown prompt mode {mode!r}: choose one of {', '.join(PROMPT_MODES)}")


def apply_to_images(images: list, mode: str, seed: int = 0) -> list:
    """``BenchImage``\\ s whose ``prompt`` is the one coded; ``reference_prompt`` keeps theirs."""
    if mode == "correct":
        return list(images)
    prompts = apply_prompt_mode([image.prompt for image in images], mode, seed)
    return [
        dataclasses.replace(image, prompt=prompt, reference_prompt=image.prompt)
        for image, prompt in zip(images, prompts)
    ]


def label_runs(runs: list, mode: str) -> None:
    """Name the learned codecs' curves after the mode (their rows differ per mode)."""
    if mode == "correct":
        return
    for run in runs:
        if run.codec is not None:  # learned codecs: the prompt travels in the .aigic file
            run.label = f"{run.display_name} (prompt {mode})"
