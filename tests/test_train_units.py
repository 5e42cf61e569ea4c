"""Training building blocks: RD loss vs CompressAI, parameter split, deterministic crops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pku_aigi.errors import PkuAigiError
from pku_aigi.train.data import CropStream, FolderSource, split_folder, validation_crops
from pku_aigi.train.loop import split_parameters
from pku_aigi.train.losses import RateDistortionLoss


def _fake_output(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    x_hat = (x + 0.05 * torch.randn(shape, generator=g)).clamp(0, 1)
    likelihoods = {
        "y": torch.rand(shape[0], 8, shape[2] // 16, shape[3] // 16, generator=g) * 0.9 + 0.05,
        "z": torch.rand(shape[0], 4, shape[2] // 64, shape[3] // 64, generator=g) * 0.9 + 0.05,
    }
    return x, {"x_hat": x_hat, "likelihoods": likelihoods}


@pytest.mark.parametrize("metric,lmbda,side", [("mse", 0.0067, 64), ("ms-ssim", 8.73, 192)])
def test_rd_loss_matches_compressai(metric, lmbda, side):
    from compressai.losses import RateDistortionLoss as Reference

    x, output = _fake_output((2, 3, side, side))
    ours = RateDistortionLoss(lmbda, metric)(output, x)
    ref = Reference(lmbda=lmbda, metric=metric)(output, x)
    torch.testing.assert_close(ours["loss"], ref["loss"])
    torch.testing.assert_close(ours["bpp_loss"], ref["bpp_loss"])
    # bpp is -log2 likelihood summed over all latents, per image pixel
    expected_bpp = sum(-torch.log2(v).sum() for v in output["likelihoods"].values()) / (
        2 * side * side
    )
    assert math.isclose(float(ours["bpp_loss"]), float(expected_bpp), rel_tol=1e-5)


def test_rd_loss_rejects_bad_input():
    with pytest.raises(PkuAigiError, match="metric"):
        RateDistortionLoss(0.01, "psnr")
    x, output = _fake_output((1, 3, 64, 64))
    with pytest.raises(PkuAigiError, match="--patch-size"):
        RateDistortionLoss(8.73, "ms-ssim")(output, x)


def test_parameter_split_is_compressais():
    from pku_aigi import models

    model = models.create("mbt2018-mean", quality=1, N=16, M=24)
    main, aux = split_parameters(model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in aux] == ["entropy_bottleneck.quantiles"]
    assert len(main) + len(aux) == len(list(model.parameters()))
    assert not {id(p) for p in main} & {id(p) for p in aux}


def test_crop_stream_is_deterministic_and_interleaves(pku_examples):
    mod, sd = FolderSource(pku_examples / "mod"), FolderSource(pku_examples / "sd21b")
    kwargs = dict(patch_size=32, batch_size=3, seed=5)
    a = CropStream([sd, mod], [1, 4], **kwargs)
    b = CropStream([sd, mod], [1, 4], **kwargs)
    assert a.epoch_length == len(sd) + 4 * len(mod)
    # batch 2 computed first on b, last on a: a pure function of (seed, step)
    later = b.batch(2)
    first = [a.batch(s) for s in range(3)]
    np.testing.assert_array_equal(first[2].images, later.images)
    assert first[0].images.shape == (3, 3, 32, 32) and first[0].images.dtype == np.uint8
    other_seed = CropStream([sd, mod], [1, 4], patch_size=32, batch_size=3, seed=6)
    assert not np.array_equal(other_seed.batch(0).images, first[0].images)
    # one epoch holds each sd image once and each mod image four times
    counts: dict[tuple[int, int], int] = {}
    for sample in range(a.epoch_length):
        key = a.locate(sample)
        counts[key] = counts.get(key, 0) + 1
    assert all(counts[(0, i)] == 1 for i in range(len(sd)))
    assert all(counts[(1, i)] == 4 for i in range(len(mod)))
    # the next epoch is another permutation
    order0 = [a.locate(s) for s in range(a.epoch_length)]
    order1 = [a.locate(a.epoch_length + s) for s in range(a.epoch_length)]
    assert order0 != order1 and sorted(order0) == sorted(order1)


def test_crops_come_from_the_image(pku_examples):
    source = FolderSource(pku_examples / "sd21b")
    stream = CropStream([source], patch_size=48, batch_size=1, seed=0)
    crop = stream.batch(0).images[0].transpose(1, 2, 0)
    index = stream.locate(0)[1]
    full = np.asarray(source.image(index))
    found = False
    for candidate in (crop, crop[:, ::-1], crop[::-1], crop[::-1, ::-1]):
        # find the crop's top-left pixel row in the image
        hits = np.argwhere(full[:, :, 0] == candidate[0, 0, 0])
        for top, left in hits[:20000]:
            if np.array_equal(full[top : top + 48, left : left + 48], candidate):
                found = True
                break
        if found:
            break
    assert found


def test_world_size_splits_batches(pku_examples):
    source = FolderSource(pku_examples / "sd21b")
    single = CropStream([source], patch_size=16, batch_size=4, seed=1)
    ranks = [
        CropStream([source], patch_size=16, batch_size=2, seed=1, rank=r, world_size=2)
        for r in range(2)
    ]
    joined = np.concatenate([ranks[0].batch(3).images, ranks[1].batch(3).images])
    np.testing.assert_array_equal(joined, single.batch(3).images)


def test_folder_prompts_and_holdout(diffusiondb, pku_examples):
    source = FolderSource(diffusiondb)
    assert len(source) == 40
    assert "Atlantis" in source.prompt(0)
    train, val = split_folder(pku_examples, 4)
    train2, val2 = split_folder(pku_examples, 4)
    assert val.files == val2.files and len(val) == 4
    assert not set(train.files) & set(val.files)
    assert len(train) + len(val) == len(list(pku_examples.rglob("*.png")))
    crops = validation_crops([val], 100)
    assert all(c.shape == (64, 64, 3) for c, _ in crops)  # rounded down to 64


def test_small_images_are_a_clear_error(pku_examples, tmp_path):
    stream = CropStream([FolderSource(pku_examples / "sd21b")], patch_size=600, batch_size=1)
    with pytest.raises(PkuAigiError, match="smaller than the 600x600"):
        stream.check_sizes()
    with pytest.raises(PkuAigiError, match="no images"):
        FolderSource(tmp_path)
    with pytest.raises(PkuAigiError, match="does not exist"):
        FolderSource(tmp_path / "missing")


def _config(tmp_path, **kwargs):
    from pku_aigi.train import TrainConfig

    return TrainConfig(arch="mbt2018-mean", lmbdas=[0.0067], images=tmp_path, **kwargs)


def test_out_dir_is_never_overwritten_without_force(tmp_path):
    from pku_aigi.train.setup import prepare_out_dir

    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "state.pt").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(PkuAigiError, match="holds a run: add --resume to continue it.*--force"):
        prepare_out_dir(_config(tmp_path, out=out), ["m"])
    prepare_out_dir(_config(tmp_path, out=out, force=True), ["m"])
    assert not (out / "checkpoint").exists()  # the old run is gone: no accidental resume
    assert (out / "notes.txt").read_text() == "mine"  # what we did not write stays
    # a run that failed before its first checkpoint: the retry names --force, not --resume
    with pytest.raises(PkuAigiError, match="no checkpoint .*--resume does not apply.*--force"):
        prepare_out_dir(_config(tmp_path, out=out), ["m"])
    with pytest.raises(PkuAigiError, match="no checkpoint"):
        prepare_out_dir(_config(tmp_path, out=out, resume=True), ["m"])


def test_hub_repo_names_per_lambda(tmp_path):
    from types import SimpleNamespace

    from pku_aigi.train.publish import hub_repo_id

    run = SimpleNamespace(lmbda=0.013, name="mbt2018-mean-mse-lmbda0.013")
    assert hub_repo_id("me/aigi-mbt", run, 1) == "me/aigi-mbt"
    assert hub_repo_id("me/aigi-mbt", run, 4) == "me/aigi-mbt-lmbda0.013"
    assert hub_repo_id("me/mbt-{lmbda}-x", run, 4) == "me/mbt-0.013-x"


def test_text_encoder_option_is_documented_and_reaches_the_models(tmp_path, capsys):
    """``--text-encoder DIR_OR_ID`` instead of ``--arch-override text_encoder=``."""
    from pku_aigi.cli import build_parser, main
    from pku_aigi.train.cli import config_from_args

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--text-encoder DIR_OR_ID" in capsys.readouterr().out
    argv = ["train", "--arch", "catc", "--lmbda", "0.013", "--images", str(tmp_path)]
    args = build_parser().parse_args([*argv, "--out", "o", "--text-encoder", "/opt/clip"])
    options = config_from_args(args).model_options()
    assert options == {"text_encoder": "/opt/clip", "text_encoder_revision": None}

    other = ["train", "--arch", "mbt2018-mean", "--lmbda", "0.01", "--images", str(tmp_path)]
    assert main([*other, "--out", str(tmp_path / "o"), "--text-encoder", "/opt/clip"]) == 2
    assert "--text-encoder is for text-conditioned architectures" in capsys.readouterr().err
    twice = [*argv, "--out", "o", "--text-encoder", "a", "--arch-override", "text_encoder=b"]
    assert main(twice) == 2
    assert "give the text encoder once" in capsys.readouterr().err
