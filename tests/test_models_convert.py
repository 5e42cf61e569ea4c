"""Converting CompressAI checkpoints: the converted model codes exactly like CompressAI's."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from compressai.zoo.image import model_architectures
from PIL import Image

import pku_aigi.models as models
from pku_aigi.errors import ModelError
from pku_aigi.models.zoo.convert import convert_compressai, read_compressai_checkpoint


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
    if layout == "training":  # say what is known, claim nothing else
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
    with pytest.raises(
        ModelError,
        match=r"m\.pth\.tar does not hold mbt2018-mean quality 1 \(N=128, M=192\) weights, nor "
        r"those of any quality of mbt2018-mean \(1-4: N=128, M=192; 5-8: N=192, M=320\): "
        r"weights of the wrong shape: .*\(16, .*\(quality 1 needs \(128, ",
    ):
        convert_compressai("mbt2018-mean", tmp_path / "m.pth.tar", tmp_path / "a", quality=1)
    with pytest.raises(ModelError, match="unexpected weights.*h_a|missing weights"):
        convert_compressai(
            "bmshj2018-factorized", tmp_path / "m.pth.tar", tmp_path / "b", quality=1, **hparams
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def factorized_checkpoints(tmp_path_factory):
    """CompressAI bmshj2018-factorized state dicts of its two sizes: N=128, M=192
    (qualities 1-5) and N=192, M=320 (qualities 6-8)."""
    folder = tmp_path_factory.mktemp("factorized")
    paths = {}
    for sizes in ((128, 192), (192, 320)):
        torch.manual_seed(0)
        net = model_architectures["bmshj2018-factorized"](*sizes).eval()
        net.update(force=True)
        paths[sizes] = folder / f"factorized-{sizes[0]}-{sizes[1]}.pth.tar"
        torch.save(net.state_dict(), paths[sizes])
    return paths


@pytest.mark.parametrize(
    ("sizes", "quality", "message"),
    [
        (
            (128, 192),
            6,
            r"factorized-128-192\.pth\.tar does not hold bmshj2018-factorized quality 6 "
            r"\(N=192, M=320\) weights: the checkpoint's shapes fit quality 1-5 \(N=128, "
            r"M=192\), not quality 6; convert it as the quality it was trained for, one of 1-5 "
            r"\(their hyper-parameters are the same: the shapes cannot tell them apart\)",
        ),
        (
            (192, 320),
            1,
            r"factorized-192-320\.pth\.tar does not hold bmshj2018-factorized quality 1 "
            r"\(N=128, M=192\) weights: the checkpoint's shapes fit quality 6-8 \(N=192, "
            r"M=320\), not quality 1",
        ),
    ],
)
def test_a_checkpoint_of_another_quality_is_refused_naming_its_own(
    factorized_checkpoints, sizes, quality, message, tmp_path
):
    with pytest.raises(ModelError, match=message):
        convert_compressai(
            "bmshj2018-factorized", factorized_checkpoints[sizes], tmp_path / "o", quality=quality
        )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("quality", [1, 3, 5])
def test_a_checkpoint_converts_as_any_quality_its_shapes_fit(
    factorized_checkpoints, quality, tmp_path
):
    """Qualities 1-5 share N=128, M=192: the shapes cannot tell which it was trained for."""
    checkpoint = factorized_checkpoints[(128, 192)]
    out = convert_compressai("bmshj2018-factorized", checkpoint, tmp_path / "o", quality=quality)
    config = json.loads((out / "config.json").read_text())
    assert (config["quality"], config["N"], config["M"]) == (quality, 128, 192)
    converted = models.AutoCodec.from_pretrained(out)
    expected = torch.load(checkpoint, weights_only=True)
    for key, value in converted.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_a_published_checkpoint_keeps_its_own_quality(
    factorized_checkpoints, tmp_path, monkeypatch
):
    """CompressAI's published files are recognised by name and sha256: a quality-1 file
    is not converted as quality 3, though quality 3 has the same shapes."""
    from pku_aigi.models.zoo import manifest

    data = factorized_checkpoints[(128, 192)].read_bytes()
    name = f"bmshj2018-factorized-prior-1-{hashlib.sha256(data).hexdigest()[:8]}.pth.tar"
    (tmp_path / name).write_bytes(data)
    entry = {
        "repo_id": "pku-aigi/bmshj2018-factorized-mse-q1",
        "architecture": "bmshj2018-factorized",
        "quality": 1,
        "metric": "mse",
        "trained_on": "Vimeo-90k",
        "source": f"https://compressai.s3.amazonaws.com/models/v1/{name}",
    }
    monkeypatch.setattr(manifest, "packaged_compressai_entries", lambda: [entry])
    for quality, metric in ((3, "mse"), (1, "ms-ssim")):
        with pytest.raises(
            ModelError,
            match=rf"{name} is CompressAI's published bmshj2018-factorized quality 1 mse model "
            rf"\(its file name and sha256\), not bmshj2018-factorized quality {quality} "
            rf"{metric}: convert it as bmshj2018-factorized, quality 1, metric mse",
        ):
            convert_compressai(
                "bmshj2018-factorized", tmp_path / name, tmp_path / "o", quality=quality,
                metric=metric,
            )  # fmt: skip
    assert not (tmp_path / "o").exists()
    out = convert_compressai("bmshj2018-factorized", tmp_path / name, tmp_path / "o", quality=1)
    assert json.loads((out / "config.json").read_text())["quality"] == 1
    assert "CompressAI's pre-trained models" in (out / "README.md").read_text()


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


def _declaring(tmp_path, *, legacy: bool, numel: int = 2**24) -> Path:
    """A small checkpoint {"w": tensor} whose tensor declares ``numel`` float32s: a zip
    whose data/0 member is ``numel`` zeros deflated (64 KiB for 64 MiB), or a legacy
    (pickled) file whose pickle claims them with no data behind."""
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, buffer, _use_new_zipfile_serialization=not legacy)
    data = buffer.getvalue()
    big = b"J" + struct.pack("<i", numel)
    path = tmp_path / ("legacy.pth.tar" if legacy else "bomb.pth.tar")
    if legacy:  # the storage's numel, then the tensor's size
        path.write_bytes(data.replace(b"cpuq\x06K\x04", b"cpuq\x06" + big, 1))
        return path
    source = zipfile.ZipFile(io.BytesIO(data))
    with zipfile.ZipFile(path, "w") as archive:
        for info in source.infolist():
            member = source.read(info.filename)
            if info.filename.endswith("data/0"):
                archive.writestr(info.filename, bytes(numel * 4), zipfile.ZIP_DEFLATED)
                continue
            if info.filename.endswith("data.pkl"):
                member = member.replace(b"cpuq\x06K\x04", b"cpuq\x06" + big, 1)
                member = member.replace(b"K\x04\x85", big + b"\x85", 1)
            archive.writestr(info.filename, member)
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip-bomb", "legacy"])
def test_a_checkpoint_declaring_more_than_it_holds_is_refused_before_loading(tmp_path, legacy):
    """torch.load would allocate (and here fill) 64 MiB for a file of a few KiB."""
    path = _declaring(tmp_path, legacy=legacy)
    assert path.stat().st_size < 200_000
    with pytest.raises(ModelError, match=r"declares \d+ bytes of data, more than the file's"):
        read_compressai_checkpoint(path)


def test_legacy_checkpoints_still_convert(tmp_path):
    net, hparams = compressai_model("bmshj2018-factorized")
    torch.save(net.state_dict(), tmp_path / "old.pth.tar", _use_new_zipfile_serialization=False)
    out = convert_compressai(
        "bmshj2018-factorized", tmp_path / "old.pth.tar", tmp_path / "o", quality=1, **hparams
    )
    assert (out / "model.safetensors").is_file()
