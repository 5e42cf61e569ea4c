"""A surface that misbehaves on purpose, so that the tests can check the harness itself.

Not listed among the surfaces (its name starts with ``_``); each case's ``kind`` names
the outcome it provokes.
"""

from __future__ import annotations

import os
import random
import signal
import tempfile
import time
from pathlib import Path

from pku_aigi.errors import DatasetError

SURFACE = "_selftest"
KINDS = (
    "valid", "refused", "unclean", "crash", "hang", "over-memory", "over-disk", "wrong", "dropped",
)  # fmt: skip


def make_cases(rng: random.Random, count: int, workdir: Path) -> list[dict]:
    return [{"kind": KINDS[i % len(KINDS)]} for i in range(count)]


def check(case: dict) -> str:
    kind = case["kind"]
    if kind == "refused":
        raise DatasetError("refused on purpose")
    if kind == "unclean":
        raise KeyError("escaped on purpose")
    if kind == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "hang":
        time.sleep(3600)
    if kind == "over-memory":
        return str(len(bytearray(64 * 2**30)))  # 64 GiB: far above the cap
    if kind == "over-disk":  # 16 MiB left in the temporary folder, then a clean answer
        handle, path = tempfile.mkstemp()
        os.write(handle, os.urandom(16 << 20))
        os.close(handle)
        return "clean"
    if kind in ("wrong", "dropped"):
        return kind
    return "clean"
