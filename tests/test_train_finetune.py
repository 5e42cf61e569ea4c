"""Fine-tuning (``pku-aigi train --init``): from a zoo id served by a local checkpoint
server, a local model folder and a CompressAI checkpoint; lineage in config.json, the
card and the zoo; the benchmark's "fine-tuned vs base" section."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from compressai.models import FactorizedPrior
from test_models_zoo import TINY as ZOO_TINY
from test_models_zoo import served, zoo_env  # noqa: F401 - the zoo tests' fixtures

from pku_aigi import AutoCodec, models
from pku_aigi.cli import main
from pku_aigi.models import zoo
from pku_aigi.models.hub.lineage import weights_digest
from pku_aigi.train import TrainConfig, train
from pku_aigi.train.config import FINETUNE_LR, SCRATCH_LR, TrainingError
from pku_aigi.train.init import load_init

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"N": 16, "M": 16}
STEPS = 3


def _settings(images, out, **kwargs) -> dict:
    settings = dict(
        images=images, out=out, max_steps=STEPS, batch_size=2, patch_size=64, val_crop=64,
        val_holdout=2, workers=0, log_every=1, progress=False, lr=1e-6, aux_lr=1e-6,
    )  # fmt: skip
    return {**settings, **kwargs}


def _card_metadata(folder) -> dict:
    text = (folder / "README.md").read_text()
    return yaml.safe_load(text.split("---")[1])


def _assert_close_but_trained(base, tuned) -> None:
    """Every weight within 1e-3 of the base's (a tiny learning rate), and some moved."""
    base_params = dict(base.named_parameters())
    moved = 0
    for name, parameter in tuned.named_parameters():
        assert parameter.shape == base_params[name].shape, name
        difference = (parameter - base_params[name]).abs().max().item()
        assert difference < 1e-3, (name, difference)
        moved += difference > 0
    assert moved > 0  # the steps did train


@pytest.mark.usefixtures("zoo_env")
def test_zoo_id_is_fine_tuned_with_its_sizes_and_lineage(pku_examples, tmp_path):
    base = AutoCodec.from_pretrained("test-org/tiny-q1")  # fetched from the local server
    config = TrainConfig(init="test-org/tiny-q1", **_settings(pku_examples, tmp_path / "run"))
    assert (
        config.lr == 1e-6 and TrainConfig(init="x", images=tmp_path, out=tmp_path).lr == FINETUNE_LR
    )
    result = train(config)
    (folder,) = result.model_dirs
    assert folder.name == "bmshj2018-factorized-mse-lmbda0.0018"  # the init's lambda (q1)

    tuned = AutoCodec.from_pretrained(str(folder))
    assert tuned.config["architecture"] == "bmshj2018-factorized"
    assert {k: tuned.config[k] for k in ZOO_TINY} == ZOO_TINY
    assert tuned.config["quality"] == 1 and tuned.config["lmbda"] == 0.0018
    _assert_close_but_trained(base, tuned)

    lineage = json.loads((folder / "config.json").read_text())["base_model"]
    assert lineage["repo_id"] == "test-org/tiny-q1"
    assert lineage["weights_sha256"] == weights_digest(base)
    assert lineage["steps"] == STEPS and str(pku_examples) in lineage["data"]
    metadata = _card_metadata(folder)
    assert metadata["base_model"] == "test-org/tiny-q1"
    assert metadata["base_model_relation"] == "finetune"
    card = (folder / "README.md").read_text()
    assert "## Fine-tuned from" in card and f"Fine-tuning steps: {STEPS}" in card


def test_local_folder_through_the_cli_and_mismatches_are_one_error(pku_examples, tmp_path, capsys):
    torch.manual_seed(3)
    base = models.create("mbt2018-mean", quality=2, **TINY)
    base_dir = tmp_path / "base-model"
    base.save_pretrained(base_dir)
    base = AutoCodec.from_pretrained(str(base_dir))
    args = ["train", "--init", str(base_dir), "--images", str(pku_examples)]
    small = ["--max-steps", "2", "--batch-size", "2", "--patch-size", "64", "--val-crop", "64"]
    small += ["--workers", "0", "--no-progress", "--aux-lr", "1e-7"]

    code = main([*args, "--out", str(tmp_path / "run"), *small])
    assert code == 0
    (folder,) = (tmp_path / "run").glob("mbt2018-mean-mse-lmbda*")
    assert folder.name == "mbt2018-mean-mse-lmbda0.0035"  # quality 2's lambda
    tuned = AutoCodec.from_pretrained(str(folder))
    _assert_close_but_trained(base, tuned)  # 2 steps at the fine-tuning lr, 1e-5
    card = (folder / "README.md").read_text()
    assert f"lr {FINETUNE_LR:g}" in card and f"lr {SCRATCH_LR:g}" not in card
    lineage = tuned.config["base_model"]
    assert lineage["folder"] == "base-model" and "repo_id" not in lineage
    assert "base_model:" not in card.split("---")[1]  # no repo id: the text names it
    assert "the model folder base-model" in card

    capsys.readouterr()
    for extra, named in (
        (["--arch", "cheng2020-anchor"], ["cheng2020-anchor", "mbt2018-mean"]),
        (["--arch-override", "N=32"], ["N=32", "N=16"]),
        (["--quality", "5"], ["--quality 5", "quality 2"]),
    ):
        code = main([*args, "--out", str(tmp_path / "bad"), *small, *extra])
        err = capsys.readouterr().err.strip()
        assert code != 0 and len(err.splitlines()) == 1, err
        assert all(name in err for name in named), err
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_compressai_checkpoint_label_from_flags_or_shapes(tmp_path):
    torch.manual_seed(0)
    net = FactorizedPrior(N=128, M=192)  # bmshj2018-factorized quality 1-5 sizes
    path = tmp_path / "my-training.pth.tar"
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, path)

    config = TrainConfig(init=str(path), lmbdas=[0.0035], images=tmp_path, out=tmp_path / "r")
    init = load_init(config)
    assert (config.arch, config.quality) == ("bmshj2018-factorized", 2)  # nearest lambda
    assert init.lineage["checkpoint"] == path.name and len(init.lineage["sha256"]) == 64
    state = init.model.state_dict()
    assert torch.equal(state["g_a.0.weight"], net.state_dict()["g_a.0.weight"])

    config = TrainConfig(init=str(path), images=tmp_path, out=tmp_path / "r")
    with pytest.raises(TrainingError, match="qualities 1, 2, 3, 4, 5 .*give --quality"):
        load_init(config)
    config = TrainConfig(init=str(path), quality=4, images=tmp_path, out=tmp_path / "r")
    load_init(config)
    assert config.quality == 4 and config.lmbdas == [0.013]  # quality 4's lambda
    config = TrainConfig(init=str(path), arch="mbt2018", images=tmp_path, out=tmp_path / "r")
    with pytest.raises(TrainingError, match="fit no CompressAI architecture as mbt2018"):
        load_init(config)


def test_a_fine_tuned_zoo_entry_wins_over_its_base(tmp_path, monkeypatch):
    config = {"architecture": "mbt2018-mean", "quality": 3, "metric": "mse"}
    config["base_model"] = {"repo_id": "pku-aigi/mbt2018-mean-mse-q3", "steps": 10}
    tuned = zoo.entry_for_pushed_model("me/mbt-aigi-q3", config, "Vimeo-90k")
    assert tuned["base_model"] == "pku-aigi/mbt2018-mean-mse-q3"
    extra = tmp_path / "zoo.json"
    extra.write_text(json.dumps({"models": [tuned]}))
    monkeypatch.setenv("PKU_AIGI_ZOO", str(extra))
    assert zoo.repo_id("mbt2018-mean", 3, "mse") == "me/mbt-aigi-q3"
    tuned["base_model"] = "not a repo id!"
    extra.write_text(json.dumps({"models": [tuned]}))
    with pytest.raises(Exception, match="base_model"):
        zoo.load_zoo()


def test_bench_compares_fine_tuned_models_with_their_bases(pku_examples, tmp_path):
    """Two base models (a low and a high lambda), each fine-tuned: the bench pairs them
    by lineage and reports the BD-rate of the fine-tuned curve against the base curve."""
    bases = train(
        TrainConfig(
            arch="mbt2018-mean",
            lmbdas=[0.0005, 0.2],
            overrides=TINY,
            **_settings(
                pku_examples, tmp_path / "bases", max_steps=100, lr=2e-3, aux_lr=1e-3, batch_size=4
            ),
        )  # fmt: skip
    ).model_dirs
    tuned = []
    for base in bases:
        run = tmp_path / f"tuned-{base.name}"
        tuned += train(TrainConfig(init=str(base), **_settings(pku_examples, run))).model_dirs
    images = tmp_path / "images"
    images.mkdir()
    for name in ("sd21b/1.png", "sdxl/1.png"):
        from PIL import Image

        Image.open(pku_examples / name).convert("RGB").crop((0, 0, 192, 192)).save(
            images / name.replace("/", "-")
        )
    out = tmp_path / "bench"
    models_args = [arg for folder in [*bases, *tuned] for arg in ("--model", str(folder))]
    code = main(["bench", "--images", str(images), *models_args, "--out", str(out)]
                + ["--workers", "1", "--no-progress", "--anchor", "mbt2018-mean"])  # fmt: skip
    assert code == 0
    bd = json.loads((out / "bd.json").read_text())
    (group,) = bd["fine_tuned_vs_base"]
    row = bd["fine_tuned_vs_base"][group]["mbt2018-mean-finetuned"]
    assert row["base"] == "mbt2018-mean" and len(row["qualities"]) == 2
    value = row["bd_rate_psnr"]["value"]
    assert value is not None and abs(value) < 5, row  # a few steps at lr 1e-6: nearly equal
    report = (out / "report.md").read_text()
    assert "## Fine-tuned vs base" in report
    assert f"{value:+.2f} %" in report
