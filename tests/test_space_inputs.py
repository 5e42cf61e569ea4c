"""The Space's input checks: every kind of upload gives RGB 8-bit or one clear error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pku_aigi.errors import PkuAigiError
from pku_aigi.image_input import to_rgb
from pku_aigi.space.upload import InputImageError, load_input_image, max_pixels


@pytest.fixture(scope="module")
def crop(pku_examples) -> Image.Image:
    with Image.open(pku_examples / "sd21b" / "1.png") as image:
        return image.convert("RGB").crop((0, 0, 96, 64))


def test_rgb_png_is_used_as_is(tmp_path, crop):
    path = tmp_path / "a.png"
    crop.save(path)
    loaded = load_input_image(path)
    assert loaded.notes == []
    assert loaded.image.mode == "RGB"
    assert np.array_equal(np.asarray(loaded.image), np.asarray(crop))
    assert loaded.name == "a"


def test_non_image_file_is_rejected_with_a_hint(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an image at all\n")
    with pytest.raises(InputImageError, match="notes.txt is not an image.*Decode tab"):
        load_input_image(path)
    assert issubclass(InputImageError, PkuAigiError)


def test_huge_image_is_rejected_before_decoding(tmp_path, crop):
    path = tmp_path / "big.png"
    crop.resize((400, 300)).save(path)
    with pytest.raises(InputImageError, match=r"400x300 = 0\.1 megapixels.*up to 0\.1.*resize"):
        load_input_image(path, limit=100_000)
    assert load_input_image(path, limit=120_000).image.size == (400, 300)


def test_pixel_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PKU_AIGI_DEMO_MAX_PIXELS", "1234")
    assert max_pixels() == 1234
    monkeypatch.setenv("PKU_AIGI_DEMO_MAX_PIXELS", "lots")
    with pytest.raises(InputImageError, match="not a number of pixels"):
        max_pixels()


def test_tiny_and_truncated_images_are_rejected(tmp_path, crop):
    tiny = tmp_path / "tiny.png"
    crop.crop((0, 0, 8, 40)).save(tiny)
    with pytest.raises(InputImageError, match="8x40: both sides must be at least 16"):
        load_input_image(tiny)
    buffer = io.BytesIO()
    crop.save(buffer, "PNG")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InputImageError, match="truncated or corrupt"):
        load_input_image(truncated)


def test_animated_gif_uses_the_first_frame(tmp_path, crop):
    frames = [crop.quantize(64), crop.transpose(Image.Transpose.ROTATE_180).quantize(64)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    loaded = load_input_image(path)
    assert any("2 frames: only the first frame" in note for note in loaded.notes)
    assert np.array_equal(np.asarray(loaded.image), np.asarray(frames[0].convert("RGB")))


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path, crop):
    path = tmp_path / "print.jpg"
    crop.convert("CMYK").save(path, quality=95)
    loaded = load_input_image(path)
    assert loaded.notes == ["CMYK image converted to RGB"]
    assert loaded.image.mode == "RGB"
    difference = np.abs(np.asarray(loaded.image, float) - np.asarray(crop, float)).mean()
    assert difference < 8  # the same picture, through a lossy CMYK round trip


def test_16bit_grayscale_is_reduced_to_8bit_rgb(tmp_path):
    import imagecodecs

    samples = (np.arange(64 * 32, dtype=np.uint32).reshape(32, 64) * 31).astype(np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(imagecodecs.png_encode(samples))
    loaded = load_input_image(path)
    assert loaded.notes[0].startswith("16-bit samples reduced to 8 bits")
    assert "grayscale image converted to RGB" in loaded.notes[1]
    rgb = np.asarray(loaded.image)
    assert np.array_equal(rgb[..., 0], np.rint(samples / 257).astype(np.uint8))
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


def test_16bit_rgb_png_is_noted(tmp_path, crop):
    import imagecodecs

    samples = np.asarray(crop).astype(np.uint16) * 257
    path = tmp_path / "deep-rgb.png"
    path.write_bytes(imagecodecs.png_encode(samples))
    loaded = load_input_image(path)
    assert loaded.notes == ["16-bit samples reduced to 8 bits (the codecs here take 8-bit RGB)"]
    assert np.array_equal(np.asarray(loaded.image), np.asarray(crop))


def test_grayscale_becomes_three_equal_channels(tmp_path, crop):
    path = tmp_path / "gray.png"
    crop.convert("L").save(path)
    loaded = load_input_image(path)
    assert loaded.notes == ["grayscale image converted to RGB (three equal channels)"]
    rgb = np.asarray(loaded.image)
    assert np.array_equal(rgb[..., 0], np.asarray(crop.convert("L")))
    assert np.array_equal(rgb[..., 0], rgb[..., 1])


def test_alpha_is_dropped_as_every_codec_drops_it(tmp_path, crop):
    rgba = crop.convert("RGBA")
    alpha = np.full((crop.height, crop.width), 255, np.uint8)
    alpha[:, :10] = 0  # a transparent strip
    rgba.putalpha(Image.fromarray(alpha))
    path = tmp_path / "cutout.png"
    rgba.save(path)
    loaded = load_input_image(path)
    assert loaded.notes == [
        "alpha channel dropped (the codecs and metrics compare RGB only; transparent "
        "pixels keep the colour stored under them)"
    ]
    assert np.array_equal(np.asarray(loaded.image), np.asarray(crop))  # colour under alpha
    assert np.array_equal(np.asarray(loaded.image), np.asarray(to_rgb(rgba)))  # the codecs' rule


def test_float_images_are_refused_as_by_every_codec(tmp_path):
    path = tmp_path / "depth.tif"
    Image.fromarray(np.linspace(0, 1, 32 * 48, dtype=np.float32).reshape(32, 48)).save(path)
    with pytest.raises(InputImageError, match="cannot be compressed.*float images"):
        load_input_image(path)


def test_palette_image_is_noted(tmp_path, crop):
    path = tmp_path / "palette.png"
    crop.quantize(16).save(path)
    loaded = load_input_image(path)
    assert loaded.notes == ["P image converted to RGB"]
    assert np.array_equal(np.asarray(loaded.image), np.asarray(crop.quantize(16).convert("RGB")))


def test_exif_orientation_is_applied(tmp_path, crop):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "phone.jpg"
    crop.save(path, quality=95, exif=exif)
    loaded = load_input_image(path)
    assert loaded.image.size == (crop.height, crop.width)
    assert any("EXIF orientation" in note for note in loaded.notes)
