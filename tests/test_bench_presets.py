"""Codec selection: the pku-aigi protocol offline, --model folders, --qualities."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from pku_aigi import models
from pku_aigi.bench import images_from_folder, presets, run_sweep
from pku_aigi.errors import PkuAigiError


def test_parse_qualities():
    assert presets.parse_qualities(["jpeg=20,50.5", "vvc=37"]) == {"jpeg": (20, 50.5), "vvc": (37,)}
    for bad in ("jpeg", "jpeg=", "=1,2", "jpeg=a,b"):
        with pytest.raises(PkuAigiError, match="expected CODEC=Q1,Q2"):
            presets.parse_qualities([bad])


def test_protocol_offline_runs_hevc_and_vvc_and_lists_the_rest(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    selection = presets.protocol_selection("cpu")
    assert [(r.name, r.qualities) for r in selection.runs] == [
        ("hevc", (42, 37, 32, 27)),
        ("vvc", (42, 37, 32, 27)),
    ]
    assert selection.padding == 128
    missing = {name: str(reason) for name, reason in selection.unavailable.items()}
    for arch in ("bmshj2018-hyperprior", "mbt2018", "cheng2020-attn"):
        assert "cannot be loaded" in missing[arch] and f"pku-aigi/{arch}-mse-q1" in missing[arch]
    assert "mbt2018-mean" not in missing  # not part of the protocol
    assert "no mse weights in the model zoo" in missing["catc"]


def test_model_folders_become_one_curve_per_architecture(pku_examples, tmp_path):
    torch.manual_seed(0)
    folders = []
    for quality in (2, 1):
        model = models.create("bmshj2018-factorized", quality=quality, N=16, M=16)
        model.update(force=True)
        model.save_pretrained(tmp_path / f"q{quality}")
        folders.append(str(tmp_path / f"q{quality}"))
    runs, unavailable = presets.learned_runs(
        folders + [str(tmp_path / "missing")], pad_multiple=128, device="cpu"
    )
    assert list(unavailable) == [str(tmp_path / "missing")]
    (run,) = runs
    assert (run.name, run.qualities, run.parallel) == ("bmshj2018-factorized", (1, 2), False)
    # each model is named by its folder (a Hub id by its id), as in its .aigic headers
    assert [v.split(":")[1] for v in run.version().split("|")] == ["q1", "q2"]

    (tmp_path / "img").mkdir()
    with Image.open(pku_examples / "sd21" / "1.png") as image:
        image.convert("RGB").crop((0, 0, 200, 170)).save(tmp_path / "img" / "a.png")
    result = run_sweep(images_from_folder(tmp_path / "img"), runs, tmp_path / "out", progress=False)
    assert result.failures == [] and len(result.rows) == 2
    for row in result.rows:
        assert 0 < row["payload_bytes"] < row["bytes"]
        assert row["payload_bpp"] == pytest.approx(row["payload_bytes"] * 8 / (200 * 170))
