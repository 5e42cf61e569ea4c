"""CompressAI architectures as LearnedCodecModels: create(), shapes, config, tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from compressai.zoo.image import cfgs
from PIL import Image

import pku_aigi.models as models
from pku_aigi.errors import ModelError
from pku_aigi.models.base import LearnedCodecModel

COMPRESSAI_ARCHS = [
    "bmshj2018-factorized",
    "bmshj2018-hyperprior",
    "mbt2018-mean",
    "mbt2018",
    "cheng2020-anchor",
    "cheng2020-attn",
]
TINY = {"N": 16, "M": 24}
HYPERPRIOR = {
    "bmshj2018-hyperprior",
    "mbt2018-mean",
    "mbt2018",
    "cheng2020-anchor",
    "cheng2020-attn",
}


def tiny(arch: str, quality: int = 1, **extra):
    hparams = {"N": 16} if arch.startswith("cheng2020") else dict(TINY)
    return models.create(arch, quality=quality, **hparams, **extra)


@pytest.fixture(scope="module")
def image_64(pku_examples) -> torch.Tensor:
    """A real 64x64 crop of an AI-generated image, NCHW float in [0, 1]."""
    with Image.open(pku_examples / "mj52" / "1.png") as image:
        crop = np.asarray(image.convert("RGB").crop((200, 200, 264, 264)), dtype=np.float32)
    return torch.from_numpy(crop / 255).permute(2, 0, 1)[None]


def test_available_lists_the_compressai_architectures():
    assert set(COMPRESSAI_ARCHS) <= set(models.available())


@pytest.mark.parametrize("arch", COMPRESSAI_ARCHS)
def test_create_forward_compress_decompress_shapes(arch, image_64):
    torch.manual_seed(0)
    model = tiny(arch).eval()
    assert isinstance(model, LearnedCodecModel)
    assert model.architecture == arch and model.downsampling_factor == 64
    assert model.text_conditioned is False and model.encode_prompts(["a cat"]) is None
    M = 16 if arch.startswith("cheng2020") else TINY["M"]

    out = model(image_64, text=None)
    assert out["x_hat"].shape == (1, 3, 64, 64)
    assert out["likelihoods"]["y"].shape == (1, M, 4, 4)
    if arch in HYPERPRIOR:
        assert out["likelihoods"]["z"].shape[:2] == (1, 16)
    assert model.aux_loss().ndim == 0

    model.update()
    with torch.no_grad():
        encoded = model.compress(image_64, text=None)
        decoded = model.decompress(encoded["strings"], encoded["shape"], text=None)
    assert isinstance(encoded["shape"], tuple) and all(type(s) is int for s in encoded["shape"])
    assert all(isinstance(s, bytes) for strings in encoded["strings"] for s in strings)
    assert len(encoded["strings"]) == (2 if arch in HYPERPRIOR else 1)
    x_hat = decoded["x_hat"]
    assert x_hat.shape == (1, 3, 64, 64) and 0 <= x_hat.min() and x_hat.max() <= 1


@pytest.mark.parametrize("arch", COMPRESSAI_ARCHS)
def test_quality_tables_and_lambdas_are_compressais(arch):
    spec = models.get_spec(arch)
    assert sorted(spec.qualities) == sorted(cfgs[arch])
    for quality, sizes in cfgs[arch].items():
        assert tuple(spec.qualities[quality].values()) == sizes
    assert spec.lambdas["mse"][1] == 0.0018 and spec.lambdas["ms-ssim"][1] == 2.40
    assert spec.lambdas["mse"][6] == 0.0483 and spec.lambdas["ms-ssim"][6] == 60.50
    arxiv = {"bmshj2018": "1802.01436", "mbt2018": "1809.02736", "cheng2020": "2001.01568"}
    assert arxiv[arch.split("-")[0]] in spec.paper


def test_config_records_quality_metric_lambda_and_hyperparameters():
    model = models.create("mbt2018-mean", quality=5, metric="ms-ssim")
    assert model.config == {
        "architecture": "mbt2018-mean",
        "quality": 5,
        "metric": "ms-ssim",
        "lmbda": 31.73,
        "N": 192,
        "M": 320,
    }
    assert model.N == 192 and model.M == 320  # CompressAI's own attributes
    custom = models.create("bmshj2018-factorized", quality=2, lmbda=0.01, N=8, M=8)
    assert custom.config["lmbda"] == 0.01 and custom.config["N"] == 8
    assert models.create("cheng2020-anchor", quality=4).config["N"] == 192


def test_from_config_on_the_base_class_dispatches_on_architecture():
    model = LearnedCodecModel.from_config(architecture="mbt2018", quality=1, N=8, M=8)
    assert type(model).architecture == "mbt2018"
    assert model.config["lmbda"] == 0.0018
    again = type(model).from_config(**model.config)
    assert again.config == model.config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "mbt2019"}, "unknown architecture 'mbt2019'.*mbt2018-mean"),
        ({"name": "mbt2018-mean", "quality": 9}, "no quality 9.*1, 2, 3, 4, 5, 6, 7, 8"),
        ({"name": "cheng2020-attn", "quality": 7}, "no quality 7"),
        ({"name": "mbt2018-mean", "metric": "lpips"}, "no metric 'lpips'.*mse"),
        ({"name": "mbt2018-mean", "K": 3}, "no hyper-parameter K.*N, M"),
        ({"name": "cheng2020-anchor", "M": 3}, "no hyper-parameter M"),
    ],
)
def test_bad_create_arguments_raise_model_error(kwargs, message):
    name = kwargs.pop("name")
    with pytest.raises(ModelError, match=message):
        models.create(name, **kwargs)


def test_from_config_rejects_another_architecture():
    cls = models.get_spec("mbt2018").load_model_class()
    with pytest.raises(ModelError, match="'mbt2018-mean', not 'mbt2018'.*AutoCodec"):
        cls.from_config(architecture="mbt2018-mean", quality=1)


def test_declared_tables_are_compressais_and_name_their_classes():
    """The architectures are declared without importing model code
    (``architectures.builtin``): their tables must stay CompressAI's, and each lazily
    named class must be the one registered under that name."""
    from pku_aigi.models.architectures import builtin

    for name in builtin.COMPRESSAI_ARCHITECTURES:
        spec = models.get_spec(name)
        assert {q: tuple(h.values()) for q, h in spec.qualities.items()} == cfgs[name]
        assert list(spec.lambdas["mse"].values()) == list(builtin.MSE_LAMBDAS[: len(cfgs[name])])
    for name in models.available():
        spec = models.get_spec(name)
        model_class = spec.load_model_class()
        assert model_class.architecture == name
        assert spec.text_conditioned == bool(getattr(model_class, "text_conditioned", False))
