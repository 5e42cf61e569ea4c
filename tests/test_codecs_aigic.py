"""LearnedCodec: .aigic round trips, modes, padding, limits, deterministic coding, desync."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tiny_models import TINY_COMPRESSAI, TINY_TCM

from pku_aigi import models
from pku_aigi.codecs import container, from_model
from pku_aigi.codecs.learned import LearnedCodec
from pku_aigi.errors import CodecError, CorruptStreamError
from pku_aigi.models.architectures.channel_slices import ChannelSliceCodec
from pku_aigi.models.coding import entropy_coding

TINY = TINY_COMPRESSAI


def tiny_model(arch: str, seed: int = 0):
    """A tiny untrained model whose latents are scaled up: untrained latents round to
    almost all zeros, a trained model's do not (the tests want real symbols)."""
    torch.manual_seed(seed)
    model = models.create(arch, quality=1, **TINY[arch])
    convs = [m for m in model.g_a.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[-1].weight.mul_(10)
    return model


def as_if_float_noise(model) -> None:
    """Keep the model's fingerprint through the perturbation that follows: the decoder
    then sees what float noise on another device gives (the same weights, other
    results), which only the desync check can catch."""
    value = model.fingerprint()
    model.fingerprint = lambda: value


@pytest.fixture(scope="module")
def image(pku_examples) -> Image.Image:
    """An odd-sized crop of a real SDXL image (not a multiple of 64)."""
    path = sorted((pku_examples / "sdxl").iterdir())[0]
    return Image.open(path).convert("RGB").crop((300, 200, 397, 261))


def compressai_reconstruction(model, image: Image.Image) -> np.ndarray:
    """CompressAI's own compress/decompress of the same padded image."""
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float() / 255
    x = F.pad(x, (0, -image.width % 64, 0, -image.height % 64), mode="replicate")
    with torch.no_grad():
        out = model.compress(x)
        x_hat = model.decompress(out["strings"], out["shape"])["x_hat"]
    x_hat = x_hat[0, :, : image.height, : image.width]
    return (x_hat * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


@pytest.mark.parametrize("arch", sorted(TINY))
def test_round_trip_matches_compressai(arch, image):
    model = tiny_model(arch)
    codec = from_model(model, device="cpu")
    data = codec.encode(image)
    header = container.parse(data)
    assert (header.architecture, header.quality, header.mode) == (arch, 1, "RGB")
    assert (header.width, header.height) == image.size
    decoded = codec.decode(data)
    assert decoded.size == image.size and decoded.mode == "RGB"
    ours = np.asarray(decoded).astype(int)
    reference = compressai_reconstruction(model, image).astype(int)
    difference = np.abs(ours - reference)
    if arch in ("bmshj2018-factorized", "bmshj2018-hyperprior"):
        # No means: the same latent, up to a rare rounding flip where the banded float32
        # analysis differs from CompressAI's one pass in the last bits (CPU-dependent).
        assert difference.mean() < 0.05 and np.mean(difference > 1) < 0.01
    else:  # means on a 1/1024 grid: the same image within rounding
        assert difference.mean() < 0.5


@pytest.mark.parametrize("arch", ["mbt2018-mean", "mbt2018"])
def test_coding_is_deterministic(arch, image):
    codec = from_model(tiny_model(arch), device="cpu")
    first, second = codec.encode(image), codec.encode(image)
    assert first == second
    assert np.array_equal(np.asarray(codec.decode(first)), np.asarray(codec.decode(first)))


def test_indexes_equal_compressai_build_indexes():
    model = tiny_model("mbt2018-mean")
    model.update(force=True)
    gc = model.gaussian_conditional
    scales = torch.exp(torch.linspace(-4, 7, 5000)).reshape(1, 5, 10, 100)
    ours = entropy_coding.GaussianTables(gc).indexes(scales)
    np.testing.assert_array_equal(ours.numpy(), gc.build_indexes(scales).numpy())


def test_deterministic_settings_are_restored():
    cudnn = torch.backends.cudnn
    before = (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32)
    with entropy_coding.deterministic_torch():
        assert cudnn.deterministic and not cudnn.benchmark and not cudnn.allow_tf32
        assert not torch.backends.cuda.matmul.allow_tf32
    assert (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32) == before


@pytest.mark.parametrize("arch", ["mbt2018-mean", "mbt2018", "bmshj2018-hyperprior"])
def test_perturbed_entropy_model_is_a_detected_desync(arch, image):
    model = tiny_model(arch)
    codec = from_model(model, device="cpu")
    data = codec.encode(image)
    as_if_float_noise(model)
    with torch.no_grad():
        model.h_s[0].bias.add_(0.5)  # what float noise on another device does, amplified
    with pytest.raises(CorruptStreamError, match="decoder desync: the entropy parameters") as e:
        codec.decode(data)
    assert "encoded on cpu" in str(e.value) and "decoding on cpu" in str(e.value)


def test_changed_factorized_tables_are_a_detected_desync(image):
    model = tiny_model("bmshj2018-factorized")
    codec = from_model(model, device="cpu")
    data = codec.encode(image)
    as_if_float_noise(model)
    with torch.no_grad():
        model.entropy_bottleneck.quantiles.add_(3.0)
    model.update(force=True)
    with pytest.raises(CorruptStreamError, match="decoder desync: the entropy parameters"):
        codec.decode(data)


def test_file_from_another_model_is_rejected(image):
    data = from_model(tiny_model("mbt2018-mean", seed=0), device="cpu").encode(image)
    other_weights = from_model(tiny_model("mbt2018-mean", seed=1), device="cpu")
    with pytest.raises(CorruptStreamError, match="needs the model mbt2018-mean-q1 with fing"):
        other_weights.decode(data)
    other_arch = from_model(tiny_model("bmshj2018-hyperprior"), device="cpu")
    with pytest.raises(CorruptStreamError, match="made by mbt2018-mean-q1 .* decode it with"):
        other_arch.decode(data)


def test_header_fields_are_bound_to_the_strings(image):
    codec = from_model(tiny_model("mbt2018-mean"), device="cpu")
    header = container.parse(codec.encode(image))
    header.width -= 1  # a forged header with a valid CRC32
    with pytest.raises(CorruptStreamError, match="desync"):
        codec.decode(container.pack(header))


@pytest.mark.parametrize(
    "mode, back",
    [("RGBA", "RGB"), ("L", "L"), ("I;16", "I;16"), ("P", "RGB"), ("CMYK", "RGB")],
)
def test_modes(mode, back, image):
    codec = from_model(tiny_model("bmshj2018-hyperprior"), device="cpu")
    if mode == "I;16":
        gray = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        source = Image.fromarray(gray, "I;16")
    else:
        source = image.convert(mode)
    decoded = codec.decode(codec.encode(source))
    assert decoded.mode == back and decoded.size == image.size
    if mode == "I;16":
        assert np.all(np.asarray(decoded) % 257 == 0)
    if mode == "L":
        rgb = codec.decode(codec.encode(image.convert("L").convert("RGB")))
        np.testing.assert_array_equal(np.asarray(decoded), np.asarray(rgb.convert("L")))


def test_pad_multiple_override(image):
    model = tiny_model("mbt2018-mean")
    data = LearnedCodec(model, device="cpu", pad_multiple=128).encode(image)
    assert container.parse(data).latent_shape == (2, 2)  # 128x128 padded, z at 1/64
    default = LearnedCodec(model, device="cpu").encode(image)
    assert container.parse(default).latent_shape == (1, 2)  # 64x128 padded
    with pytest.raises(CodecError, match="multiple of the model's 64"):
        LearnedCodec(model, device="cpu", pad_multiple=100)


def test_pixel_limit(image):
    model = tiny_model("mbt2018-mean")
    with pytest.raises(CodecError, match="more than the limit"):
        LearnedCodec(model, device="cpu", max_pixels=1000).encode(image)
    data = LearnedCodec(model, device="cpu").encode(image)
    with pytest.raises(CorruptStreamError, match="more than the limit"):
        LearnedCodec(model, device="cpu", max_pixels=1000).decode(data)


def test_quality_is_the_models(image):
    codec = from_model(tiny_model("mbt2018-mean"), device="cpu")
    assert codec.quality_range == (1, 1) and codec.name == "mbt2018-mean"
    assert codec.encode(image, 1) == codec.encode(image)
    with pytest.raises(CodecError, match="quality 1 only"):
        codec.encode(image, 5)


def test_family_dispatches_on_quality(image):
    low = tiny_model("mbt2018-mean", seed=0)
    torch.manual_seed(1)
    high = models.create("mbt2018-mean", quality=2, N=16, M=16)
    family = LearnedCodec.family("mbt2018-mean", {1: low, 2: high}, device="cpu")
    assert family.quality_range == (1, 2) and family.default_qualities == (1, 2)
    data = family.encode(image, 2)
    assert container.parse(data).quality == 2
    assert family.decode(data).size == image.size
    with pytest.raises(CodecError, match="no model for quality 3"):
        family.encode(image, 3)


def test_from_pretrained_records_the_model(tmp_path, image):
    tiny_model("mbt2018-mean").save_pretrained(tmp_path / "tiny")
    codec = LearnedCodec.from_pretrained(tmp_path / "tiny", device="cpu")
    header = container.parse(codec.encode(image))
    assert header.model_id == "tiny"  # the folder's name, never its absolute path
    assert str(tmp_path) not in codec.encode(image).decode("latin-1")
    assert codec.decode(codec.encode(image)).size == image.size
    assert codec.version.endswith(f":{codec.fingerprint.hex()}:aigic2")


def test_other_architectures_use_their_own_coder_with_the_index_check(image):
    """TCM (slice coding, not a CompressAI class): round trip, then a detected desync."""
    torch.manual_seed(0)
    model = models.create("tcm-small", **TINY_TCM)
    with torch.no_grad():
        model.g_a[-1].weight.mul_(10)  # real symbols, as a trained model's
    assert isinstance(model, ChannelSliceCodec)
    codec = from_model(model, device="cpu")
    data = codec.encode(image)
    assert codec.decode(data).size == image.size
    as_if_float_noise(model)
    with torch.no_grad():
        next(model.h_scale_s.parameters()).add_(0.3)
    with pytest.raises(CorruptStreamError, match="decoder desync: the entropy parameters"):
        codec.decode(data)


def test_family_loads_each_model_once_on_first_use(tmp_path, image, monkeypatch):
    import threading

    from pku_aigi.codecs.families import LearnedCodecFamily
    from pku_aigi.codecs.rate_control import encode_to_bpp

    for quality in (1, 2):
        torch.manual_seed(quality)
        models.create("mbt2018-mean", quality=quality, N=16, M=16).save_pretrained(
            tmp_path / f"q{quality}"
        )
    loads = []
    original = LearnedCodec.from_pretrained.__func__

    def counting(cls, source, *args, **kwargs):
        loads.append(Path(source).name)
        return original(cls, source, *args, **kwargs)

    monkeypatch.setattr(LearnedCodec, "from_pretrained", classmethod(counting))
    family = LearnedCodecFamily(
        "mbt2018-mean (mse)",
        {1: tmp_path / "q1", 2: tmp_path / "q2"},
        architecture="mbt2018-mean",
        device="cpu",
    )
    assert loads == [] and family.ladder.steps == (1, 2) and not family.text_conditioned
    threads = [threading.Thread(target=family.codec, args=(2,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == ["q2"]  # four callers, one load
    data = family.encode(image, 2)
    assert family.matches(data) and not family.matches(data[:-1]) and loads == ["q2"]
    quality, best = encode_to_bpp(family, image, 1000.0)  # the ladder's highest rate fits
    assert (quality, best) == (2, data) and loads == ["q2", "q1"]
