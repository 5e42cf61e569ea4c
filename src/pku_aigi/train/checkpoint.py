"""Training checkpoints: everything needed to continue a run as if never stopped.

One file, ``<out>/checkpoint/state.pt``, written atomically (temporary file, then
rename), holding per model the weights, both optimizers and the scheduler, plus the step
(which is also the data position, see :mod:`pku_aigi.train.data`), the torch CPU and CUDA
RNG states (the entropy models' training noise) and the run's settings. Loaded with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import torch

from .config import TrainConfig, TrainingError

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.pt"


def checkpoint_path(out: Path) -> Path:
    return Path(out) / CHECKPOINT_DIR / STATE_FILE


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_rng(out: Path, rank: int) -> None:
    """Each process saves its own RNG states (the training noise differs per process)."""
    rng = {
        "cpu": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    _atomic_save(rng, Path(out) / CHECKPOINT_DIR / f"rng-{rank}.pt")


def save_checkpoint(out: Path, step: int, runs: list, config: TrainConfig) -> Path:
    """Write the state of every run at ``step`` (main process only; see :func:`save_rng`)."""
    state = {
        "step": step,
        "config": json.dumps(config.to_json(), sort_keys=True),
        "runs": [run.state_dict() for run in runs],
    }
    path = checkpoint_path(out)
    _atomic_save(state, path)
    logger.info("checkpoint at step %d written to %s", step, path)
    return path


def load_checkpoint(out: Path, config: TrainConfig) -> dict:
    """The saved state, after checking it was made by a run with the same settings."""
    path = checkpoint_path(out)
    if not path.is_file():
        raise TrainingError(f"--resume: no checkpoint at {path}: start a new run without --resume")
    state = _read(path)
    try:
        saved = json.loads(state["config"])
        if not isinstance(state["runs"], list) or not isinstance(state["step"], int):
            raise TypeError("runs or step of the wrong type")
    except (KeyError, TypeError, ValueError) as error:  # ValueError: bad JSON
        raise _unreadable(path, f"not a checkpoint of this trainer: {error}") from None
    now = config.to_json()
    changed = [k for k in TrainConfig.RESUME_KEYS if saved.get(k) != now.get(k)]
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise TrainingError(
            f"--resume: the checkpoint in {out} was made with other settings ({details}); "
            "resume with the same settings or start a new run in another --out"
        )
    return state


def _read(path: Path):
    """``torch.load`` of a checkpoint file; a truncated or corrupt file is named."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, OSError) as error:
        # An empty or cut file: RuntimeError "failed finding central directory" or EOFError
        reason = "it is empty" if path.stat().st_size == 0 else f"{error}".splitlines()[0]
        raise _unreadable(path, reason) from None


def _unreadable(path: Path, reason: str) -> TrainingError:
    out = path.parent.parent
    return TrainingError(
        f"--resume: the checkpoint file {path} cannot be read ({reason}); it is truncated "
        f"or corrupt (e.g. the disk filled up or the copy was cut). Restore {path.parent} "
        f"from a copy, or start the run again with --force (this deletes the run in {out})"
    )


def restore_rng(out: Path, rank: int) -> None:
    path = Path(out) / CHECKPOINT_DIR / f"rng-{rank}.pt"
    if not path.is_file():
        raise TrainingError(
            f"--resume: {path} is missing: resume with as many processes as the run had"
        )
    rng = _read(path)
    if not isinstance(rng, dict) or not isinstance(rng.get("cpu"), torch.Tensor):
        raise _unreadable(path, "no CPU random-number state in it")
    torch.set_rng_state(rng["cpu"])
    if torch.cuda.is_available() and rng["cuda"]:
        torch.cuda.set_rng_state_all(rng["cuda"][: torch.cuda.device_count()])
