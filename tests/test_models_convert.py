"""Converting CompressAI checkpoints: the converted model codes exactly like CompressAI's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from compressai.zoo.image import model_architectures
from PIL import Image

import pku_aigi.models as models
from pku_aigi.errors import ModelError
from pku_aigi.models.convert import convert_compressai, read_compressai_checkpoint


class NotATensor:  # a pickled object that weights_only loading must refuse
    pass


@pytest.fixture(scope="module")
def image(pku_examples) -> torch.Tensor:
    with Image.open(pku_examples / "sd21b" / "1.png") as im:
        crop = np.asarray(im.convert("RGB").crop((100, 40, 164, 104)), dtype=np.float32)
    return torch.from_numpy(crop / 255).permute(2, 0, 1)[None]  # 1x3x64x64


def compressai_model(arch: str, *, update: bool = True):
    """CompressAI's own model with perturbed (so non-default) weights."""
    torch.manual_seed(3)
    sizes = (16,) if arch.startswith("cheng2020") else (16, 24)
    net = model_architectures[arch](*sizes).eval()
    with torch.no_grad():
        for name, param in net.named_parameters():
            if not name.endswith("quantiles"):
                param.add_(0.01 * torch.randn_like(param))
    if update:
        net.update(force=True)
    return net, dict(zip(("N", "M"), sizes))


def legacy(state_dict: dict) -> dict:
    """Key names of CompressAI's v1 zoo / DataParallel checkpoints."""
    renamed = {}
    for key, value in state_dict.items():
        for new, old in (
            ("biases.", "_biases."),
            ("matrices.", "_matrices."),
            ("factors.", "_factors."),
        ):
            key = key.replace(f"entropy_bottleneck.{new}", f"entropy_bottleneck.{old}")
        renamed["module." + key.replace(".skip.", ".downsample.")] = value
    return renamed


def assert_codes_like(converted, reference, image):
    with torch.no_grad():
        ours = converted.compress(image)
        theirs = reference.compress(image)
        assert ours["strings"] == theirs["strings"]
        assert ours["shape"] == tuple(theirs["shape"])
        x_ours = converted.decompress(ours["strings"], ours["shape"])["x_hat"]
        x_theirs = reference.decompress(theirs["strings"], theirs["shape"])["x_hat"]
    assert torch.equal(x_ours, x_theirs)


@pytest.mark.parametrize(
    ("arch", "layout"),
    [
        ("mbt2018-mean", "legacy"),
        ("bmshj2018-factorized", "legacy"),
        ("bmshj2018-hyperprior", "bare"),
        ("mbt2018", "training"),
        ("cheng2020-attn", "legacy"),
    ],
)
def test_converted_checkpoint_codes_bit_exactly_like_compressai(arch, layout, image, tmp_path):
    net, hparams = compressai_model(arch)
    state_dict = net.state_dict()
    if layout == "legacy":
        state_dict = legacy(state_dict)
        if arch.startswith("cheng2020"):
            assert any(".downsample." in k for k in state_dict)
        assert any("._biases.0" in k for k in state_dict)
    checkpoint = tmp_path / f"{arch}.pth.tar"
    payload = {"epoch": 7, "state_dict": state_dict} if layout == "training" else state_dict
    torch.save(payload, checkpoint)

    out = convert_compressai(arch, checkpoint, tmp_path / "out", quality=2, metric="mse", **hparams)
    config = json.loads((out / "config.json").read_text())
    assert config == {
        "architecture": arch,
        "quality": 2,
        "metric": "mse",
        "lmbda": 0.0035,
        **hparams,
    }
    card = (out / "README.md").read_text()
    if layout == "training":  # issue 13.4: say what is known, claim nothing else
        assert "CompressAI training checkpoint" in card and "epoch 7" in card
        assert "Vimeo-90k" not in card and "pre-trained" not in card
    else:
        assert "CompressAI's pre-trained model zoo" in card and "Vimeo-90k" in card
    assert f"`{checkpoint.name}`" in card

    converted = models.AutoCodec.from_pretrained(out)
    for key, value in net.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key
    assert_codes_like(converted, net, image)


def test_checkpoint_without_coder_tables_is_updated_like_compressai(image, tmp_path):
    net, hparams = compressai_model("mbt2018-mean", update=False)
    checkpoint = tmp_path / "train.pth.tar"
    torch.save({"state_dict": net.state_dict()}, checkpoint)
    out = convert_compressai("mbt2018-mean", checkpoint, tmp_path / "out", quality=1, **hparams)
    net.update(force=True)  # what compressai.utils.eval_model does for such checkpoints
    assert_codes_like(models.AutoCodec.from_pretrained(out), net, image)


def test_legacy_keys_are_renamed_to_current_names(tmp_path):
    net, _ = compressai_model("cheng2020-anchor")
    torch.save(legacy(net.state_dict()), tmp_path / "c.pth.tar")
    assert read_compressai_checkpoint(tmp_path / "c.pth.tar").keys() == net.state_dict().keys()


def test_missing_constant_buffers_of_old_checkpoints_are_filled(image, tmp_path):
    net, hparams = compressai_model("bmshj2018-hyperprior")
    state_dict = {k: v for k, v in net.state_dict().items() if not k.endswith(".pedestal")}
    torch.save(state_dict, tmp_path / "old.pth.tar")
    out = convert_compressai(
        "bmshj2018-hyperprior", tmp_path / "old.pth.tar", tmp_path / "o", quality=1, **hparams
    )
    assert_codes_like(models.AutoCodec.from_pretrained(out), net, image)


def test_wrong_quality_or_architecture_is_a_clear_error(tmp_path):
    net, hparams = compressai_model("mbt2018-mean")
    torch.save(net.state_dict(), tmp_path / "m.pth.tar")
    with pytest.raises(ModelError, match=r"wrong shape.*model needs.*quality=1, N=128, M=192"):
        convert_compressai("mbt2018-mean", tmp_path / "m.pth.tar", tmp_path / "a", quality=1)
    with pytest.raises(ModelError, match="unexpected weights.*h_a|missing weights"):
        convert_compressai(
            "bmshj2018-factorized", tmp_path / "m.pth.tar", tmp_path / "b", quality=1, **hparams
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_pickled_objects_are_never_loaded(tmp_path):
    torch.save(
        {"state_dict": {"w": torch.zeros(1)}, "extra": NotATensor()}, tmp_path / "evil.pth.tar"
    )
    with pytest.raises(ModelError, match="never unpickled.*weights_only.*NotATensor"):
        read_compressai_checkpoint(tmp_path / "evil.pth.tar")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a torch file", "cannot read checkpoint"),
        (None, "does not exist"),
    ],
)
def test_unreadable_checkpoints(tmp_path, content, message):
    path = tmp_path / "x.pth.tar"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        read_compressai_checkpoint(path)


def test_non_state_dict_checkpoint(tmp_path):
    torch.save({"state_dict": {"a": 1}}, tmp_path / "x.pth.tar")
    with pytest.raises(ModelError, match="not a state dict: a"):
        read_compressai_checkpoint(tmp_path / "x.pth.tar")


def test_existing_output_needs_force(tmp_path):
    net, hparams = compressai_model("bmshj2018-factorized")
    torch.save(net.state_dict(), tmp_path / "f.pth.tar")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(ModelError, match="already exists.*--force"):
        convert_compressai(
            "bmshj2018-factorized", tmp_path / "f.pth.tar", out, quality=1, **hparams
        )
    assert (out / "keep.txt").read_text() == "user data"
    convert_compressai(
        "bmshj2018-factorized", tmp_path / "f.pth.tar", out, quality=1, force=True, **hparams
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
