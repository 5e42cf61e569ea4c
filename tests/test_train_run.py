"""End-to-end training on CPU: tiny models, small crops of the real sample images."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from tiny_models import TINY_CATC

from pku_aigi.cli import main
from pku_aigi.train import TrainConfig, train
from pku_aigi.train.checkpoint import checkpoint_path

TINY = {"N": 16, "M": 24}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(images, out, **kwargs) -> TrainConfig:
    settings = dict(
        arch="mbt2018-mean",
        lmbdas=[0.0067],
        images=images,
        out=out,
        overrides=TINY,
        max_steps=3,
        batch_size=2,
        patch_size=64,
        val_crop=64,
        val_holdout=2,
        workers=0,
        log_every=1,
        progress=False,
    )
    settings.update(kwargs)
    return TrainConfig(**settings)


def test_trained_folder_is_a_hub_model_whose_bitstreams_decode(pku_examples, tmp_path):
    from pku_aigi import AutoCodec
    from pku_aigi.codecs.learned import LearnedCodec

    config = tiny_config(pku_examples, tmp_path / "run")
    result = train(config)
    assert not result.interrupted and result.steps == 3
    assert config.milestones is None  # the default milestones did not overwrite the config
    (folder,) = result.model_dirs
    assert folder == tmp_path / "run" / "mbt2018-mean-mse-lmbda0.0067"
    model = AutoCodec.from_pretrained(str(folder))
    assert model.config["lmbda"] == 0.0067 and model.config["N"] == 16
    codec = LearnedCodec.from_pretrained(folder, device="cpu")
    image = Image.open(pku_examples / "sd21b" / "1.png").convert("RGB").crop((0, 0, 96, 80))
    data = codec.encode(image)
    decoded = codec.decode(data)
    assert decoded.size == image.size
    error = np.abs(np.asarray(decoded, float) - np.asarray(image, float)).mean()
    assert error < 128  # a real (if barely trained) reconstruction, not noise
    card = (folder / "README.md").read_text()
    assert "- Steps: 3" in card and "lr_milestones=[2]" in card
    point = result.rd_points[0]
    assert point["images"] == 2 and point["bpp"] > 0 and 0 < point["psnr"] < 60
    assert f"{point['bpp']:.4g}" in card or str(round(point["bpp"], 4)) in card
    assert list((tmp_path / "run" / "logs").glob("events.out.tfevents.*"))
    args = json.loads((tmp_path / "run" / "train_args.json").read_text())
    assert args["lmbdas"] == [0.0067] and args["milestones"] is None  # as asked


def test_interrupted_then_resumed_equals_uninterrupted(pku_examples, tmp_path):
    steps = 5
    whole = train(tiny_config(pku_examples, tmp_path / "whole", max_steps=steps, workers=2))

    def interrupt(step, runs):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does

    part = train(tiny_config(pku_examples, tmp_path / "part", max_steps=steps), callback=interrupt)
    assert part.interrupted and part.steps == 2 and not part.model_dirs
    saved = torch.load(checkpoint_path(tmp_path / "part"), weights_only=True)
    assert saved["step"] == 2

    resumed = train(tiny_config(pku_examples, tmp_path / "part", max_steps=steps, resume=True))
    assert resumed.steps == steps and not resumed.interrupted
    a = load_file(whole.model_dirs[0] / "model.safetensors")
    b = load_file(resumed.model_dirs[0] / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the optimizers ended in the same state too
    sa = torch.load(checkpoint_path(tmp_path / "whole"), weights_only=True)["runs"][0]
    sb = torch.load(checkpoint_path(tmp_path / "part"), weights_only=True)["runs"][0]
    for pa, pb in zip(sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values()):
        assert torch.equal(pa["exp_avg_sq"], pb["exp_avg_sq"])
    assert sa["scheduler"] == sb["scheduler"]


def test_several_lambdas_give_one_model_each(pku_examples, tmp_path):
    out = tmp_path / "multi"
    result = train(tiny_config(pku_examples, out, lmbdas=[0.0035, 0.013], max_steps=2))
    names = sorted(p.name for p in result.model_dirs)
    assert names == ["mbt2018-mean-mse-lmbda0.0035", "mbt2018-mean-mse-lmbda0.013"]
    configs = [json.loads((p / "config.json").read_text()) for p in result.model_dirs]
    assert sorted(c["lmbda"] for c in configs) == [0.0035, 0.013]
    # qualities picked from CompressAI's lambda ladder (0.0035 -> 2, 0.013 -> 4)
    assert sorted(c["quality"] for c in configs) == [2, 4]
    w = [load_file(p / "model.safetensors")["g_s.6.weight"] for p in result.model_dirs]
    assert not torch.equal(w[0], w[1])  # same start and batches, different losses

    # the CLI refuses to overwrite the run
    code = main(
        ["train", "--arch", "mbt2018-mean", "--lmbda", "0.01", "--images", str(pku_examples)]
        + ["--out", str(out)]
    )
    assert code == 2


def _cli(pku_examples, out, *extra):
    return ["train", "--images", str(pku_examples), "--out", str(out), *extra]


def test_cli_errors(pku_examples, tmp_path, capsys):
    code = main(_cli(pku_examples, tmp_path / "a", "--arch", "nope", "--lmbda", "0.01"))
    assert code == 2 and "unknown architecture 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    code = main(
        _cli(pku_examples, tmp_path / "b", "--arch", "mbt2018-mean", "--lmbda", "0.01", "--resume")
    )
    assert code == 2 and "no checkpoint" in capsys.readouterr().err
    code = main(
        ["train", "--arch", "mbt2018-mean", "--lmbda", "0.01", "--config", "mj52,nope"]
        + ["--out", str(tmp_path / "c")]
    )
    assert code == 2 and "unknown config 'nope'" in capsys.readouterr().err
    code = main(_cli(pku_examples, tmp_path / "d", "--arch", "mbt2018-mean", "--lmbda", "0,1"))
    assert code == 2 and "positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # both data sources
        main(_cli(pku_examples, tmp_path / "e", "--arch", "x", "--lmbda", "1", "--config", "mj52"))


def test_sigint_checkpoints_and_exits_130(pku_examples, tmp_path):
    out = tmp_path / "sig"
    command = [sys.executable, "-m", "pku_aigi.train", "--arch", "mbt2018-mean"]
    command += ["--lmbda", "0.0067", "--images", str(pku_examples), "--out", str(out)]
    command += ["--arch-override", "N=16,M=24", "--patch-size", "64", "--batch-size", "1"]
    command += ["--max-steps", "100000", "--log-every", "1", "--workers", "0", "--no-progress"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines = []
    deadline = time.monotonic() + 120
    for line in process.stdout:
        lines.append(line)
        if " step 2 " in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    output = "".join(lines) + rest
    assert process.returncode == 130, output
    assert "interrupted at step" in output and "--resume" in output
    state = torch.load(checkpoint_path(out), weights_only=True)
    assert state["step"] >= 2
    assert not list(out.glob("mbt2018-mean-*"))  # no half-trained model folder


def test_text_conditioned_models_get_the_prompts(diffusiondb, tmp_path, monkeypatch):
    from pku_aigi.models.architectures.text_encoder import save_tiny_text_encoder
    from pku_aigi.train import loop

    clip = save_tiny_text_encoder(tmp_path / "tiny-clip", dim=16)
    seen: list[list[str]] = []
    original = loop.PromptEmbedder.__call__

    def spy(self, prompts):
        seen.append(list(prompts))
        return original(self, prompts)

    monkeypatch.setattr(loop.PromptEmbedder, "__call__", spy)
    config = tiny_config(
        diffusiondb, tmp_path / "catc", arch="catc", overrides=TINY_CATC, text_encoder=str(clip)
    )
    result = train(config, callback=lambda step, runs: seen.append(step))
    prompts = {
        json.loads(line)["file_name"]: json.loads(line)["prompt"].strip()
        for line in (diffusiondb / "metadata.jsonl").read_text().splitlines()
    }
    batches = [s for s in seen if isinstance(s, list)]
    assert len(batches) == 3 and all(len(b) == 2 for b in batches)
    assert all(p in prompts.values() and p for b in batches for p in b)
    (folder,) = result.model_dirs
    saved = json.loads((folder / "config.json").read_text())
    assert saved["architecture"] == "catc" and saved["text_encoder"] == str(clip)
    assert result.rd_points[0]["bpp"] > 0


def test_dataset_configs_are_interleaved_as_in_the_paper(hub_replica, tmp_path):
    config = TrainConfig(
        arch="mbt2018-mean",
        lmbdas=[0.0067],
        configs=["mj52", "mod"],
        data_dir=str(hub_replica.root),
        cache_dir=str(tmp_path / "cache"),
        out=tmp_path / "run",
        overrides=TINY,
        max_steps=2,
        batch_size=2,
        patch_size=64,
        val_crop=64,
        workers=0,
        progress=False,
    )
    result = train(config)
    (folder,) = result.model_dirs
    card = (folder / "README.md").read_text()
    assert "PKU-AIGI-500K train split, mj52 x4, mod x7 per epoch" in card
    assert "Forerunner/PKU-AIGI-500K" in card  # the card's datasets metadata
    n_val = len(hub_replica.expected[("mj52", "validation")]) + len(
        hub_replica.expected[("mod", "validation")]
    )
    assert result.rd_points[0]["images"] == n_val


def test_two_processes_with_torchrun(pku_examples, tmp_path):
    """Data-parallel training (DDP over gloo on CPU), as accelerate/torchrun launch it."""
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_port", str(29500 + os.getpid() % 1000)]
    command += ["-m", "pku_aigi.train", "--device", "cpu", "--arch", "mbt2018-mean"]
    command += ["--lmbda", "0.0067", "--images", str(pku_examples), "--out", str(out)]
    command += ["--arch-override", "N=16,M=24", "--patch-size", "64", "--batch-size", "1"]
    command += ["--max-steps", "3", "--val-crop", "64", "--workers", "0", "--no-progress"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "batch 1 x 2 processes" in done.stderr
    assert (out / "checkpoint" / "rng-0.pt").is_file() and (
        out / "checkpoint" / "rng-1.pt"
    ).is_file()
    assert torch.load(checkpoint_path(out), weights_only=True)["step"] == 3
    from pku_aigi import AutoCodec

    AutoCodec.from_pretrained(str(out / "mbt2018-mean-mse-lmbda0.0067"))
