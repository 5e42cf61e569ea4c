"""`train --resume` with a damaged checkpoint file : one TrainingError naming
the file and the way out, never a raw RuntimeError or EOFError from torch.load."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from pku_aigi.train import TrainConfig
from pku_aigi.train import checkpoint as ckpt
from pku_aigi.train.config import TrainingError


@pytest.fixture
def run_dir(tmp_path):
    config = TrainConfig(
        arch="mbt2018-mean", lmbdas=[0.0067], images=tmp_path, out=tmp_path / "run"
    )
    run = SimpleNamespace(state_dict=lambda: {"weights": torch.arange(50_000.0)})
    ckpt.save_checkpoint(config.out, 7, [run], config)
    ckpt.save_rng(config.out, 0)
    assert ckpt.load_checkpoint(config.out, config)["step"] == 7
    return config


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda data: b"", r"it is empty"),
        (lambda data: data[: len(data) // 2], r"central directory|EOF|read"),
        (lambda data: b"not a checkpoint at all" * 10, r"\("),
    ],
    ids=["empty", "truncated", "garbage"],
)
def test_damaged_state_file_is_named_with_the_fix(run_dir, damage, reason):
    path = ckpt.checkpoint_path(run_dir.out)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(TrainingError) as caught:
        ckpt.load_checkpoint(run_dir.out, run_dir)
    message = str(caught.value)
    assert f"checkpoint file {path} cannot be read" in message
    assert "truncated or corrupt" in message and "--force" in message
    assert __import__("re").search(reason, message), message


def test_damaged_rng_file_is_named(run_dir):
    path = run_dir.out / "checkpoint" / "rng-0.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(TrainingError, match=r"rng-0\.pt cannot be read"):
        ckpt.restore_rng(run_dir.out, 0)


def test_a_state_of_another_shape_is_refused(run_dir):
    torch.save({"step": "seven"}, ckpt.checkpoint_path(run_dir.out))
    with pytest.raises(TrainingError, match=r"not a checkpoint of this trainer"):
        ckpt.load_checkpoint(run_dir.out, run_dir)
