"""TCM and CATC: shapes, exact coding round trips, Hub round trips, prompts, sizes.

Tiny widths keep the models fast; the default configurations are only instantiated to
count their parameters. Images and prompts are real (DiffusionDB sample).
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tiny_models import TINY_CATC, TINY_EVERY_ARCH, TINY_TCM

from pku_aigi import codecs
from pku_aigi.errors import CorruptStreamError, ModelError, PkuAigiError
from pku_aigi.models import AutoCodec, create
from pku_aigi.models.architectures.catc import CATC
from pku_aigi.models.architectures.tcm import TCM
from pku_aigi.models.architectures.text_encoder import load_text_encoder, save_tiny_text_encoder
from pku_aigi.models.hub.card import render_model_card

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def samples(diffusiondb):
    """(image, prompt) pairs: real DiffusionDB images with their prompts."""
    rows = [json.loads(line) for line in (diffusiondb / "metadata.jsonl").read_text().splitlines()]
    return [
        (Image.open(diffusiondb / r["file_name"]).convert("RGB"), r["prompt"]) for r in rows[:3]
    ]


def to_tensor(image: Image.Image, height: int, width: int, pad_to: int | None = None):
    """A top-left crop as a (1, 3, H, W) tensor, replicate-padded to ``pad_to``."""
    rgb = np.asarray(image.crop((0, 0, width, height)), dtype=np.float32) / 255.0
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    if pad_to:
        x = F.pad(x, (0, -width % pad_to, 0, -height % pad_to), mode="replicate")
    return x


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_text_encoder(tmp_path_factory.mktemp("clip") / "tiny-clip", dim=16)


def ready(model):
    """Eval mode, entropy coder ready, latents scaled up: an untrained model's latents
    round to almost all zeros, a trained one's do not (the tests want real symbols)."""
    with torch.no_grad():
        model.g_a[-1].weight.mul_(10)
    model.eval().update(force=True)
    return model


@pytest.fixture(scope="module")
def tcm():
    torch.manual_seed(0)
    return ready(create("tcm-small", **TINY_TCM))


@pytest.fixture(scope="module")
def catc(clip_dir):
    torch.manual_seed(0)
    return ready(
        create("catc", text_encoder=str(clip_dir), text_encoder_revision=None, **TINY_CATC)
    )


# ------------------------------------------------------------------ shapes and inputs
@pytest.mark.parametrize("name", ["tcm", "catc"])
def test_forward_shapes_at_odd_sizes_after_padding(name, request, samples):
    model = request.getfixturevalue(name)
    multiple = model.downsampling_factor
    x = to_tensor(samples[0][0], 97, 145, pad_to=multiple)
    assert x.shape[-2:] == (-(-97 // multiple) * multiple, -(-145 // multiple) * multiple)
    with torch.no_grad():
        text = model.encode_prompts([samples[0][1]])
        out = model(x, text)
    h, w = x.shape[-2:]
    assert out["x_hat"].shape == x.shape
    assert out["likelihoods"]["y"].shape == (1, 40, h // 16, w // 16)
    assert out["likelihoods"]["z"].shape == (1, 16, h // 64, w // 64)
    assert bool(((out["likelihoods"]["y"] > 0) & (out["likelihoods"]["y"] <= 1)).all())


@pytest.mark.parametrize("name", ["tcm", "catc"])
def test_unpadded_input_is_refused(name, request):
    model = request.getfixturevalue(name)
    with pytest.raises(ModelError, match="multiples of"):
        model(torch.rand(1, 3, 96, 130), model.encode_prompts([""]))


def test_pad_multiples_follow_the_paper():
    assert TCM.downsampling_factor == 128  # 8x8 windows on the 16x-downsampled latent
    assert CATC.downsampling_factor == 64 and CATC.text_conditioned and not TCM.text_conditioned


def test_codec_wrapper_codes_odd_sized_images(tcm, samples):
    codec = codecs.from_model(tcm, device="cpu")
    image = samples[1][0].crop((0, 0, 131, 70))
    decoded = codec.decode(codec.encode(image))
    assert decoded.size == (131, 70) and decoded.mode == "RGB"


# ------------------------------------------------------------------ exact round trips
@pytest.mark.parametrize("name", ["tcm", "catc"])
def test_compress_decompress_equals_forward_reconstruction(name, request, samples):
    model = request.getfixturevalue(name)
    x = torch.cat([to_tensor(image, 128, 128) for image, _ in samples[:2]])
    text = model.encode_prompts([prompt for _, prompt in samples[:2]])
    with torch.no_grad():
        expected = model(x, text)["x_hat"].clamp(0, 1)
        coded = model.compress(x, text)
        decoded = model.decompress(coded["strings"], coded["shape"], text)["x_hat"]
    y_strings, z_strings = coded["strings"]
    assert len(y_strings) == len(z_strings) == 2 and coded["shape"] == (2, 2)
    assert y_strings[0] != y_strings[1]
    torch.testing.assert_close(decoded, expected, atol=1e-6, rtol=0)
    # Decoding each image on its own gives the same pixels as the batch.
    one_text = None if text is None else text[1:]
    single = model.decompress([[y_strings[1]], [z_strings[1]]], coded["shape"], one_text)
    torch.testing.assert_close(single["x_hat"], decoded[1:], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["tcm", "catc"])
def test_training_forward_backpropagates(name, request, clip_dir):
    kwargs = TINY_TCM if name == "tcm" else {**TINY_CATC, "text_encoder": str(clip_dir)}
    model = create("tcm-small" if name == "tcm" else "catc", **kwargs).train()
    x = torch.rand(1, 3, 128, 128)
    text = model.encode_prompts(["a red fox"])
    out = model(x, text)
    bpp = sum(-torch.log2(v).sum() for v in out["likelihoods"].values()) / x[0, 0].numel()
    (F.mse_loss(out["x_hat"], x) * 255**2 * 0.01 + bpp).backward()
    assert model.g_a[0].conv1.weight.grad.abs().sum() > 0
    assert model.g_s[-1][0].weight.grad.abs().sum() > 0
    if name == "catc":  # the text path is trained too
        assert model.g_a[1].attention.mixer.text_hidden.weight.grad.abs().sum() > 0
    assert model.aux_loss().item() > 0


# ------------------------------------------------------------------ Hub round trips
@pytest.mark.parametrize("name", ["tcm", "catc"])
def test_save_and_load_pretrained_round_trip(name, request, tmp_path, samples):
    model = request.getfixturevalue(name)
    model.save_pretrained(tmp_path / name)
    loaded = AutoCodec.from_pretrained(tmp_path / name)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.entropy_coder_ready()
    loaded_state = loaded.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded_state[key], value), key
    x = to_tensor(samples[2][0], 128, 256)
    text = model.encode_prompts([samples[2][1]])
    with torch.no_grad():
        assert loaded.compress(x, text)["strings"] == model.compress(x, text)["strings"]
    card = (tmp_path / name / "README.md").read_text()
    assert f"Parameters: {sum(p.numel() for p in model.parameters()):,}" in card


def test_catc_config_names_the_text_encoder_and_weights_exclude_it(catc, clip_dir, tmp_path):
    from safetensors.torch import load_file

    catc.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["text_encoder"] == str(clip_dir) and "text_encoder_revision" in config
    assert set(load_file(tmp_path / "model.safetensors")) == set(catc.state_dict())
    encoder_params = sum(p.numel() for p in load_text_encoder(str(clip_dir)).model.parameters())
    stored = sum(t.numel() for t in load_file(tmp_path / "model.safetensors").values())
    buffers = sum(b.numel() for b in catc.buffers())
    assert stored == sum(p.numel() for p in catc.parameters()) + buffers
    assert encoder_params > 0 and not any("text_model" in k for k in catc.state_dict())
    default = create("catc", N=32, M=40, z_channels=16, text_dim=16, kv_tokens=4,
                     attention_dim=32, attention_heads=4, encoder_heads=[4, 4, 4],
                     decoder_heads=[4, 4, 4], hyper_heads=4)  # fmt: skip
    assert default.config["text_encoder"] == "openai/clip-vit-base-patch32"
    assert default.config["text_encoder_revision"] == "3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268"


# ------------------------------------------------------------------ prompts
def test_prompt_changes_bitstream_and_wrong_prompt_changes_reconstruction(catc, samples):
    x = to_tensor(samples[0][0], 128, 128)
    right, wrong = catc.encode_prompts([samples[0][1], samples[1][1]]).split(1)
    with torch.no_grad():
        coded = catc.compress(x, right)
        other = catc.compress(x, wrong)
        good = catc.decompress(coded["strings"], coded["shape"], right)["x_hat"]
        bad = catc.decompress(coded["strings"], coded["shape"], wrong)["x_hat"]
    assert coded["strings"][0] != other["strings"][0]
    assert (good - bad).abs().max() > 1e-3


def test_missing_text_means_the_empty_prompt(catc):
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        implicit = catc(x)["x_hat"]
        explicit = catc(x, catc.encode_prompts([""]))["x_hat"]
    torch.testing.assert_close(implicit, explicit)
    with pytest.raises(ModelError, match=r"\(1, 16\) tensor"):
        catc(x, torch.zeros(1, 512))


def test_aigic_carries_the_prompt_and_detects_a_tampered_one(catc, samples):
    codec = codecs.from_model(catc, device="cpu")
    image, prompt = samples[0][0].crop((0, 0, 150, 100)), "a water city, matte painting"
    data = codec.encode(image, prompt=prompt)
    assert prompt.encode() in data
    reference = np.asarray(codec.decode(data))
    assert reference.shape == (100, 150, 3)
    tampered = data.replace(prompt.encode(), b"a fire city, matte painting!")
    with pytest.raises(CorruptStreamError, match="CRC32"):
        codec.decode(tampered)
    # Even with the file CRC fixed, the desync check (seeded by the prompt) catches it.
    forged = tampered[:-4] + struct.pack("<I", zlib.crc32(tampered[:-4]))
    with pytest.raises(CorruptStreamError, match="desync"):
        codec.decode(forged)


def test_text_encoder_truncates_to_77_tokens_and_fails_clearly_offline(clip_dir, tmp_path):
    encoder = load_text_encoder(str(clip_dir))
    assert encoder is load_text_encoder(str(clip_dir))  # cached
    long = " ".join(["lighthouse"] * 100)
    embeddings = encoder.encode([long, long + " at night", "", "a cat"])
    assert embeddings.shape == (4, 16) and embeddings.dtype == torch.float32
    torch.testing.assert_close(embeddings[0], embeddings[1])  # words past 77 tokens ignored
    assert not torch.allclose(embeddings[2], embeddings[3])
    with pytest.raises(ModelError, match="cannot load the CLIP text encoder"):
        load_text_encoder("pku-aigi-test/no-such-clip", revision="main", cache_dir=tmp_path)
    with pytest.raises(ModelError, match="list of strings"):
        encoder.encode("a cat")


def test_text_encoder_of_the_wrong_size_is_refused(clip_dir):
    model = create("catc", **{**TINY_CATC, "text_dim": 32}, text_encoder=str(clip_dir))
    with pytest.raises(ModelError, match="16-d embeddings"):
        model.encode_prompts(["a cat"])


# ------------------------------------------------------------------ default sizes
def test_parameter_counts_of_the_default_configurations():
    counts = {}
    for name in ("tcm-small", "tcm-medium", "tcm-large", "catc"):
        model = create(name)
        counts[name] = sum(p.numel() for p in model.parameters())
        if name == "catc":
            assert model.config["N"] == 256 and model.config["M"] == 320
            assert "109,303,820 (109.3 M, without the frozen text encoder)" in str(
                render_model_card(model)
            )
        del model
    # TCM paper, Table 3: 45.18 M, 59.13 M, 76.57 M; CATC paper: "about 109 M".
    assert counts == {
        "tcm-small": 45_180_752,
        "tcm-medium": 59_133_650,
        "tcm-large": 76_568_148,
        "catc": 109_303_820,
    }


def test_unknown_hyperparameter_and_bad_slicing_are_clear_errors():
    with pytest.raises(ModelError, match="no hyper-parameter"):
        create("tcm-small", depth=3)
    with pytest.raises(ModelError, match="multiple of num_slices"):
        create("tcm-small", **{**TINY_TCM, "M": 42})
    with pytest.raises(PkuAigiError, match="head width"):
        create("tcm-small", **{**TINY_TCM, "head_dims": [7] * 6})


# ------------------------------------------------------------------ prompt ablation
PROMPTS = ["a red fox in the snow", None, "the old lighthouse at night, oil painting", "cat"]


def test_prompt_modes_transform_prompts_deterministically():
    from pku_aigi.bench.prompt_modes import apply_prompt_mode

    assert apply_prompt_mode(PROMPTS, "correct") == PROMPTS
    assert apply_prompt_mode(PROMPTS, "empty") == [None] * 4
    shuffled = apply_prompt_mode(PROMPTS, "shuffled", seed=1)
    assert shuffled == apply_prompt_mode(PROMPTS, "shuffled", seed=1)
    assert shuffled[1] is None and shuffled[3] == "cat"
    assert sorted(shuffled[2].split()) == sorted(PROMPTS[2].split()) and shuffled[2] != PROMPTS[2]
    swapped = apply_prompt_mode(PROMPTS, "swapped", seed=1)
    assert swapped[1] is None and sorted(filter(None, swapped)) == sorted(filter(None, PROMPTS))
    assert all(a != b for a, b in zip(swapped, PROMPTS) if b)  # nobody keeps its own
    assert apply_prompt_mode(PROMPTS, "swapped", seed=1) == swapped
    with pytest.raises(PkuAigiError, match="at least two images"):
        apply_prompt_mode(["only one", None], "swapped")
    with pytest.raises(PkuAigiError, match="unknown prompt mode"):
        apply_prompt_mode(PROMPTS, "reversed")


def test_bench_prompt_mode_codes_other_prompts_and_labels_the_curves(catc, samples, tmp_path):
    from pku_aigi.cli import main

    folder = tmp_path / "images" / "sd"
    folder.mkdir(parents=True)
    with (folder / "metadata.jsonl").open("w") as metadata:
        for i, (image, prompt) in enumerate(samples):
            image.crop((0, 0, 192, 176)).save(folder / f"{i}.png")
            metadata.write(json.dumps({"file_name": f"{i}.png", "prompt": prompt}) + "\n")
    catc.save_pretrained(tmp_path / "catc")
    out = tmp_path / "out"
    for mode in ("correct", "empty", "swapped"):
        argv = ["bench", "--images", str(tmp_path / "images"), "--model", str(tmp_path / "catc")]
        argv += ["--anchor", "catc", "--prompt-mode", mode, "--out", str(out), "--no-progress"]
        assert main(argv + ["--workers", "1"]) == 0
    rows = [json.loads(line) for line in (out / "measurements.jsonl").read_text().splitlines()]
    by_mode = {
        label: {r["image"]: r for r in rows if r["codec"] == label}
        for label in ("catc", "catc (prompt empty)", "catc (prompt swapped)")
    }
    assert all(len(found) == 3 for found in by_mode.values())
    overheads = set()
    for i, (_, prompt) in enumerate(samples):
        prompt = prompt.strip()  # folder prompts are stripped, as the dataset's prompt files
        right, empty = by_mode["catc"][f"sd/{i}.png"], by_mode["catc (prompt empty)"][f"sd/{i}.png"]
        assert right["prompt_chars"] == len(prompt) and empty["prompt_chars"] == 0
        stored = (right["bytes"] - right["payload_bytes"]) - (
            empty["bytes"] - empty["payload_bytes"]
        )
        overheads.add(stored - len(prompt.encode()))  # the prompt is in the file and counted
    assert len(overheads) == 1 and 0 < overheads.pop() <= 8
    own = [by_mode["catc"][f"sd/{i}.png"]["prompt_chars"] for i in range(3)]
    other = [by_mode["catc (prompt swapped)"][f"sd/{i}.png"]["prompt_chars"] for i in range(3)]
    assert sorted(own) == sorted(other) and all(a != b for a, b in zip(own, other))


@pytest.mark.parametrize("arch", sorted(TINY_EVERY_ARCH))
def test_a_created_model_codes_at_once(arch, clip_dir):
    """``create`` then ``compress`` (no ``update()``), for every architecture."""
    from pku_aigi.models import available

    assert set(TINY_EVERY_ARCH) == set(available())
    hparams = dict(TINY_EVERY_ARCH[arch])
    if arch == "catc":
        hparams.update(text_encoder=str(clip_dir), text_encoder_revision=None)
    torch.manual_seed(0)
    model = create(arch, quality=1, **hparams).eval()
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model.compress(x)
        x_hat = model.decompress(out["strings"], out["shape"])["x_hat"]
    assert x_hat.shape == x.shape and model.entropy_coder_ready()


def test_the_readme_catc_snippet_runs_as_written(tmp_path, monkeypatch):
    """The README's CATC example, verbatim (a tiny 512-d CLIP stands in offline)."""
    import re
    from pathlib import Path

    import pku_aigi
    from pku_aigi.models.architectures import catc as catc_module

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    (snippet,) = [b for b in blocks if 'create("catc"' in b]
    clip = save_tiny_text_encoder(tmp_path / "clip-512", dim=512)
    monkeypatch.setattr(
        catc_module, "load_text_encoder", lambda *_: load_text_encoder(str(clip), None)
    )
    scope = {"pku_aigi": pku_aigi, "x": torch.rand(1, 3, 64, 64)}
    exec(compile(snippet, "README.md", "exec"), scope)
    assert scope["x_hat"].shape == (1, 3, 64, 64)
