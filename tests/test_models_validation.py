"""Tampered model folders: config values and entropy tables are checked on
load, before anything is allocated or handed to the rANS coder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

import pku_aigi.models as models
from pku_aigi.codecs import from_model
from pku_aigi.errors import ModelError
from pku_aigi.models.hub.folder import CARD_METADATA_KEY
from pku_aigi.models.hub.validation import check_entropy_tables

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = models.create("mbt2018-mean", quality=2, N=16, M=24).eval()
    folder = tmp_path_factory.mktemp("validation") / "tiny"
    model.save_pretrained(folder)
    return folder


@pytest.fixture
def copy(saved, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(saved, target)
    return target


def set_config_text(folder, key: str, raw: str) -> None:
    """Put ``raw`` JSON text as the value of ``key`` (raw, so NaN and huge numbers fit)."""
    config = json.loads((folder / "config.json").read_text())
    config[key] = "@@"
    (folder / "config.json").write_text(json.dumps(config).replace('"@@"', raw))


@pytest.mark.parametrize(
    "key, raw, message",
    [
        ("N", "3000", r"'N' = 3000 is out of range 1\.\.48 \(the largest tensor dimension"),
        ("N", '"16"', "'N' must be an integer, not '16'"),
        ("N", "16.5", "'N' must be an integer, not 16.5"),
        ("N", "true", "'N' must be an integer, not True"),
        ("N", "null", "'N' must be an integer, not None"),
        ("N", "-1", "'N' = -1 is out of range"),
        ("N", "[16]", r"'N' must be an integer, not \[16\]"),
        ("N", "NaN", "'N' must be an integer, not nan"),
        ("N", "9" * 5000, "cannot read .*config.json.*"),
        ("M", "1e400", "'M' must be an integer, not inf"),
        ("quality", '"2"', "has no quality '2'"),
        ("quality", "2.0", "has no quality 2.0"),
        ("lmbda", "NaN", "'lmbda' must be a positive number"),
        ("metric", "[1]", "'metric' must be a name"),
        ("architecture", '["mbt2018-mean"]', "'architecture' must be a name"),
        ("architecture", '{"a": 1}', "'architecture' must be a name"),
    ],
)
def test_config_values_are_type_and_range_checked(copy, key, raw, message):
    set_config_text(copy, key, raw)
    with pytest.raises(ModelError, match=message):
        models.AutoCodec.from_pretrained(copy)


def test_deeply_nested_config_is_a_model_error(copy):
    (copy / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelError, match="cannot read .*config.json: JSON nested too deeply"):
        models.AutoCodec.from_pretrained(copy)


def test_deeply_nested_card_metadata_is_a_model_error(copy):
    tensors = load_file(copy / "model.safetensors")
    nested = "[" * 100_000 + "]" * 100_000
    save_file(tensors, copy / "model.safetensors", metadata={CARD_METADATA_KEY: nested})
    with pytest.raises(ModelError, match="model-card metadata .* is unreadable"):
        models.AutoCodec.from_pretrained(copy)


def test_counts_are_bounded_by_the_architecture():
    from pku_aigi.models.hub.validation import check_config

    config = {"architecture": "tcm-small", "quality": 1, "depths": [2, 2, 2, 2, 2, 4000]}
    with pytest.raises(ModelError, match=r"'depths' = 4000 is out of range 1\.\.8"):
        check_config(config, "config.json")
    with pytest.raises(ModelError, match="'depths' must be a list"):
        check_config({**config, "depths": 2}, "config.json")


def edit_tensor(folder, key, edit):
    tensors = load_file(folder / "model.safetensors")
    tensors[key] = edit(tensors[key].clone())
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def _garbage_cdf(cdf):
    return torch.randint(
        -(2**31),
        2**31 - 1,
        cdf.shape,
        generator=torch.Generator().manual_seed(0),
        dtype=torch.int32,
    )


@pytest.mark.parametrize(
    "key, edit, message",
    [
        ("gaussian_conditional._cdf_length", lambda t: t.fill_(-5), "_cdf_length outside"),
        ("entropy_bottleneck._cdf_length", lambda t: t + 10_000, "_cdf_length outside"),
        ("gaussian_conditional._offset", lambda t: t.fill_(2**30), "_offset outside"),
        ("entropy_bottleneck._offset", lambda t: t - 2**30, "_offset outside"),
        ("gaussian_conditional._quantized_cdf", _garbage_cdf, "CDF row"),
        ("entropy_bottleneck._quantized_cdf", lambda t: t.flip(1), "CDF row"),
        ("gaussian_conditional._quantized_cdf", lambda t: t * 2, "does not end at 2\\*\\*16"),
        ("entropy_bottleneck.quantiles", lambda t: t.fill_(float("nan")), "medians"),
        ("gaussian_conditional.scale_table", lambda t: t.flip(0), "scale_table"),
        ("gaussian_conditional._cdf_length", lambda t: t[:-1], "one entry per CDF row"),
    ],
)
def test_tampered_entropy_tables_are_refused_on_load(copy, key, edit, message):
    edit_tensor(copy, key, edit)
    with pytest.raises(ModelError, match=f"entropy coder tables .* invalid .*{message}"):
        models.AutoCodec.from_pretrained(copy)


@pytest.mark.parametrize(
    "arch, hparams",
    [
        ("bmshj2018-factorized", {"N": 16, "M": 16}),
        ("mbt2018", {"N": 16, "M": 16}),
        ("cheng2020-attn", {"N": 16}),
    ],
)
def test_computed_tables_pass_and_a_loaded_model_codes(arch, hparams, tmp_path):
    torch.manual_seed(0)
    model = models.create(arch, quality=1, **hparams).eval()
    model.update(force=True)
    check_entropy_tables(model)
    model.save_pretrained(tmp_path / arch)
    loaded = models.AutoCodec.from_pretrained(tmp_path / arch)
    codec = from_model(loaded, device="cpu")
    from PIL import Image

    image = Image.new("RGB", (40, 30), (200, 100, 50))
    assert codec.decode(codec.encode(image)).size == (40, 30)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.fill_(1e30), "medians .* beyond"),
        (lambda t: t + torch.tensor([0.0, 3.0, 0.0]), "do not match the medians"),
    ],
)
def test_medians_must_match_the_bottleneck_tables(copy, edit, message):
    """Huge medians made the factorized prior's symbols overflow the rANS encoder (an
    endless loop); medians moved within their quantiles no longer fit the saved tables."""
    edit_tensor(copy, "entropy_bottleneck.quantiles", edit)
    with pytest.raises(ModelError, match=message):
        models.AutoCodec.from_pretrained(copy)


@pytest.mark.parametrize("arch", ["bmshj2018-factorized", "mbt2018-mean", "mbt2018"])
def test_broken_weights_are_a_codec_error_not_an_endless_encoder(arch):
    """NaN latents round to -2**31, on which CompressAI's rANS encoder never returns."""
    script = f"""
import torch
from PIL import Image
from pku_aigi import models
from pku_aigi.codecs import from_model
from pku_aigi.errors import CodecError
torch.set_num_threads(1)
torch.manual_seed(0)
model = models.create({arch!r}, quality=1, N=16, M=16)
with torch.no_grad():
    [m for m in model.g_a.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight.fill_(1e38)
try:
    from_model(model, device="cpu").encode(Image.new("RGB", (64, 64), (90, 20, 200)))
except CodecError as error:
    print("REFUSED", error)
"""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert "REFUSED the model produced" in run.stdout, run.stderr[-1500:]


@pytest.mark.parametrize("pad", [(4096, 0), (4096, 1)], ids=["zero-bytes", "16-kB"])
def test_weights_are_compared_with_the_config_before_the_model_is_built(copy, monkeypatch, pad):
    """A tensor of shape (4096, 0) (no bytes) or (4096, 1) lifted the width bound: the
    179 KB folder built N=M=4096 (10 GB). Shapes are compared on the meta device first."""
    from pku_aigi.models.architectures.specs import get_spec

    model_class = get_spec("mbt2018-mean").load_model_class()
    build = model_class.__init__

    def only_on_meta(self, *args, **kwargs):
        assert torch.get_default_device().type == "meta" or kwargs["N"] == 16, "built for real"
        build(self, *args, **kwargs)

    monkeypatch.setattr(model_class, "__init__", only_on_meta)
    tensors = load_file(copy / "model.safetensors")
    save_file({**tensors, "pad": torch.zeros(pad)}, copy / "model.safetensors")
    set_config_text(copy, "N", "4096")
    set_config_text(copy, "M", "4096")
    needs = r"unexpected weights in .*: pad; weights of the wrong shape .*model needs \(4096"
    with pytest.raises(ModelError, match=rf"'M' = 4096 is out of range 1\.\.48|{needs}"):
        models.AutoCodec.from_pretrained(copy)


def test_config_keys_that_are_not_hyper_parameters_are_refused(copy):
    """``cls`` reached from_config as a keyword (TypeError); no key is passed on unchecked."""
    for key in ("cls", "model_id", "revision", "token", "cache_dir", "force_download", "self"):
        config = json.loads((copy / "config.json").read_text())
        (copy / "config.json").write_text(json.dumps({**config, key: 1}))
        with pytest.raises(ModelError, match=f"config.json: unknown key '{key}': mbt2018-mean"):
            models.AutoCodec.from_pretrained(copy)
        (copy / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "card, key",
    [
        ({"training": 5}, "training"),
        ({"rd_points": [1]}, "rd_points"),
        ({"source": 5}, "source"),
        ({"license": ["mit"]}, "license"),
    ],
)
def test_card_metadata_of_the_wrong_type_is_refused_on_load(copy, card, key):
    """Such metadata loaded, then save_pretrained failed with a TypeError."""
    tensors = load_file(copy / "model.safetensors")
    metadata = {"format": "pt", CARD_METADATA_KEY: json.dumps(card)}
    save_file(tensors, copy / "model.safetensors", metadata=metadata)
    with pytest.raises(ModelError, match=f"{CARD_METADATA_KEY}.*card_info '{key}' must be"):
        models.AutoCodec.from_pretrained(copy)


def test_a_bad_config_in_the_models_dir_is_listed_not_fatal(saved, tmp_path):
    """One bad config.json under PKU_AIGI_MODELS_DIR crashed the Space's start-up."""
    from pku_aigi.space.catalog import Catalog

    shutil.copytree(saved, tmp_path / "org" / "good")
    bad = {
        "quality": '{"architecture": "mbt2018-mean", "quality": "abc"}',
        "list": "[1, 2]",
        "huge": '{"architecture": 1e400, "quality": 1e400}',
        "nested": "[" * 100_000 + "]" * 100_000,
        "metric": '{"architecture": "mbt2018-mean", "metric": {"a": 1}}',
    }
    for name, text in bad.items():
        shutil.copytree(saved, tmp_path / "org" / name)
        (tmp_path / "org" / name / "config.json").write_text(text)
    catalog = Catalog.discover(tmp_path)
    assert catalog.get("mbt2018-mean (mse)").codec.sources[2] == "org/good"
    for name in bad:
        option = catalog.get(f"org/{name} (mse)")
        assert not option.available and "config.json" in option.reason, option.reason
