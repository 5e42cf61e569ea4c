"""Every .aigic file the encoder can write decodes with `pku-aigi decompress` alone, and
weights other than the encoder's are refused (the model fingerprint, the float checks)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import TINY_EVERY_ARCH, tiny_model

from pku_aigi.cli import main
from pku_aigi.codecs import container
from pku_aigi.codecs.learned import LearnedCodec, _binding
from pku_aigi.errors import CorruptStreamError
from pku_aigi.models.architectures.text_encoder import save_tiny_text_encoder
from pku_aigi.models.coding.entropy_coding import Coded, DesyncError
from pku_aigi.sample import sample_images

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ARCHS = sorted(TINY_EVERY_ARCH)
# Input mode -> the mode decoding gives (see pku_aigi.codecs.learned).
MODES = {"RGB": "RGB", "L": "L", "LA": "L", "I;16": "I;16", "P": "RGB"}
PROMPT = "a lighthouse on a cliff at dusk, oil painting"


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_text_encoder(tmp_path_factory.mktemp("clip") / "tiny-clip", dim=16)


@pytest.fixture(scope="module")
def image() -> Image.Image:
    """150x70, the size of the refused file in the bug report (not a multiple of 64)."""
    path, _ = sample_images()[0]
    with Image.open(path) as opened:
        return opened.convert("RGB").crop((100, 80, 250, 150))


def as_mode(image: Image.Image, mode: str) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(np.asarray(image.convert("L"), dtype="<u2") * 257, "I;16")
    if mode == "P":
        return image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return image.convert(mode)


def pad_multiples(model) -> list[int | None]:
    """The pad multiples the encoder accepts for ``model``: none (its own), 64, 128."""
    own = model.downsampling_factor
    return [None] + [m for m in (64, 128) if m % own == 0]


@pytest.mark.parametrize("arch", ARCHS)
def test_every_file_the_encoder_writes_decodes_with_decompress_alone(
    arch, image, clip_dir, tmp_path, monkeypatch, capsys
):
    folder = tmp_path / f"tiny-{arch}"
    tiny_model(arch, text_encoder=clip_dir).save_pretrained(folder)
    monkeypatch.chdir(tmp_path)  # the header's reference, the folder's name, resolves here
    written = 0
    for pad in pad_multiples(tiny_model(arch, text_encoder=clip_dir)):
        codec = LearnedCodec.from_pretrained(folder, device="cpu", pad_multiple=pad)
        for mode, decoded_mode in MODES.items():
            for prompt in (None, PROMPT):
                data = codec.encode(as_mode(image, mode), prompt=prompt)
                header = container.parse(data)
                assert header.model_id == folder.name and header.version == 2
                assert header.fingerprint == codec.fingerprint
                assert header.coded_size == (
                    -(-150 // codec.pad_multiple) * codec.pad_multiple,
                    -(-70 // codec.pad_multiple) * codec.pad_multiple,
                )
                source = tmp_path / "file.aigic"
                source.write_bytes(data)
                out = tmp_path / "out.png"
                out.unlink(missing_ok=True)
                code = main(["decompress", str(source), "-o", str(out), "--device", "cpu"])
                assert code == 0, capsys.readouterr().err
                with Image.open(out) as decoded:
                    assert decoded.size == (150, 70) and decoded.mode == decoded_mode
                    expected = codec.decode(data)  # the encoder's own model, this process
                    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(expected))
                written += 1
    assert written == 10 * len(pad_multiples(tiny_model(arch, text_encoder=clip_dir)))


@pytest.mark.parametrize("arch", ARCHS)
def test_other_weights_are_refused_before_decoding(arch, image, clip_dir, monkeypatch):
    """One weight of the last convolution changed by 1e-3: the fingerprint differs, the
    file is refused and no decoding work is done."""
    model = tiny_model(arch, text_encoder=clip_dir)
    data = LearnedCodec(model, device="cpu").encode(image, prompt=PROMPT)
    other = tiny_model(arch, text_encoder=clip_dir)
    with torch.no_grad():
        last_convolution(other).weight[0].view(-1)[0] += 1e-3
    codec = LearnedCodec(other, device="cpu")
    ran = []
    monkeypatch.setattr(type(other), "decode_latents", lambda *a, **k: ran.append(1))
    with pytest.raises(CorruptStreamError, match="needs the model .* other weights"):
        codec.decode(data)
    assert ran == []


def last_convolution(model) -> torch.nn.Module:
    """The last convolution the model registers (slice models: in their last slice)."""
    kinds = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
    return [m for m in model.modules() if isinstance(m, kinds)][-1]


@pytest.mark.parametrize(
    "arch, layer, check",
    [
        ("tcm-small", lambda m: m.cc_mean_transforms[-1][-1], "slice means"),
        ("tcm-small", lambda m: m.lrp_transforms[-1][-1], "latent residual prediction"),
        ("catc", lambda m: m.mean_heads[-1][-1], "slice means"),
    ],
)
def test_slice_models_check_their_means_and_lrp(arch, layer, check, image, clip_dir):
    """Weights that differ only in the last slice's mean head or LRP leave the scale
    indexes and symbols alone; the float checks still refuse them (past the fingerprint,
    as float noise would be)."""
    model = tiny_model(arch, text_encoder=clip_dir)
    codec = LearnedCodec(model, device="cpu")
    header = container.parse(codec.encode(image, prompt=PROMPT))
    coded = Coded(header.strings, header.latent_shape, header.params_crc, header.symbols_crc)
    coded.float_checks = header.float_checks
    text = codec._text(header.prompt)
    model.decode_latents(coded, text, _binding(header))  # the encoder's weights: fine
    with torch.no_grad():
        layer(model).bias.add_(0.25)
    with pytest.raises(DesyncError, match=check):
        model.decode_latents(coded, text, _binding(header))


def test_version_1_files_keep_decoding(aigic_v1, tmp_path, capsys):
    """Genuine version 1 files, the paper's pad 128 included, decode with decompress
    alone (the coded size is recovered from the latent shape) to the image the previous
    version decoded (``*.decoded.png``; within float noise of the synthesis)."""
    work = tmp_path / "v1"
    shutil.copytree(aigic_v1, work)
    files = sorted(work.glob("*.aigic"))
    assert len(files) == 8
    for path in files:
        out = path.with_suffix(".png")
        folder = work / container.parse(path.read_bytes()).model_id
        code = main(["decompress", str(path), "-o", str(out), "--model", str(folder)])
        assert code == 0, capsys.readouterr().err
        with Image.open(out) as decoded, Image.open(f"{path.with_suffix('')}.decoded.png") as old:
            assert decoded.size == (150, 70) and decoded.mode == old.mode
            difference = np.abs(np.asarray(decoded, int) - np.asarray(old, int))
            assert difference.max() <= 1 and difference.mean() < 0.01
