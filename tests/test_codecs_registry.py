"""Codec names, file signatures, quality ladders and third-party codec plugins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import pku_aigi
from pku_aigi import codecs
from pku_aigi.cli import main
from pku_aigi.codecs import QualityLadder
from pku_aigi.errors import CodecError, ModelError

SRC = Path(pku_aigi.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photo(pku_examples) -> Image.Image:
    with Image.open(pku_examples / "sd21b" / "1.png") as image:
        return image.convert("RGB").crop((64, 64, 112, 96))


@pytest.mark.parametrize(
    "typed, name",
    [("JPEG", "jpeg"), ("jpg", "jpeg"), ("h265", "hevc"), ("H.266", "vvc"), (" WebP ", "webp")],
)
def test_names_ignore_case_and_accept_aliases(typed, name):
    assert codecs.canonical_name(typed) == name
    assert codecs.get(typed).name == name


def test_bench_takes_names_in_any_case():
    from pku_aigi.bench import presets

    assert presets.parse_qualities(["JPEG=20,50", "x265=30"]) == {"jpeg": (20, 50), "hevc": (30,)}
    runs, _ = presets.conventional_runs(["Jpg"], {"jpeg": (20, 50)})
    assert [(run.name, run.qualities) for run in runs] == [("jpeg", (20, 50))]


def test_unknown_names_suggest_the_closest():
    with pytest.raises(CodecError, match=r"unknown codec 'wepb': did you mean 'webp'\?"):
        codecs.get("wepb")
    with pytest.raises(CodecError, match=r"'jpegg'.*did you mean 'jpeg'"):
        codecs.codec_class("jpegg")
    with pytest.raises(CodecError, match="known codecs are jpeg, webp") as error:
        codecs.get("zzz")
    assert "did you mean" not in str(error.value)
    # Architectures use the same registry type: case-insensitive, with suggestions.
    assert pku_aigi.models.get_spec("MBT2018-Mean").name == "mbt2018-mean"
    assert pku_aigi.models.create("MBT2018-MEAN", quality=1, N=8, M=8).config["architecture"] == (
        "mbt2018-mean"
    )
    with pytest.raises(ModelError, match="did you mean 'mbt2018-mean'"):
        pku_aigi.models.get_spec("mbt2018-maen")


def test_every_codec_recognises_its_own_files_and_only_those(photo):
    streams = {}
    for name in codecs.names():
        codec = codecs.get(name)
        streams[name] = codec.encode(photo, codec.ladder.sweep[len(codec.ladder.sweep) // 2])
    for name, data in streams.items():
        assert codecs.identify(data) == [name], name
        assert codecs.identify(data[:-8]) == ([] if name in ("hevc", "vvc") else [name])
    assert codecs.identify(b"\x00\x01 nothing known") == []
    assert codecs.identify(b"\x00\x01", "x.JXL") == ["jpegxl"]  # the extension, as a hint


@pytest.mark.parametrize("name", ["hevc", "vvc"])
def test_annexb_streams_under_another_name_decompress_without_codec(name, photo, tmp_path, capsys):
    source = tmp_path / "in.png"
    photo.save(source)
    stream = tmp_path / "stream.bin"
    assert (
        main(
            ["compress", str(source), "-o", str(stream), "--codec", name.upper(), "--quality", "30"]
        )
        == 0
    )
    out = tmp_path / "out.png"
    assert main(["decompress", str(stream), "-o", str(out)]) == 0
    assert f": {name}, 48x32" in capsys.readouterr().out
    assert Image.open(out).size == photo.size


def test_misspelt_codec_on_the_command_line(photo, tmp_path, capsys):
    source = tmp_path / "in.png"
    photo.save(source)
    code = main(
        [
            "compress",
            str(source),
            "-o",
            str(tmp_path / "a.webp"),
            "--codec",
            "wepb",
            "--quality",
            "50",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "did you mean 'webp'" in err and len(err.strip().splitlines()) == 1


def test_ladders_declare_steps_direction_and_sweep():
    jpeg = codecs.get("jpeg").ladder
    assert jpeg.steps[0] == 1 and jpeg.steps[-1] == 100 and jpeg.integer
    hevc = codecs.get("hevc").ladder
    assert hevc.steps[0] == 51 and hevc.steps[-1] == 0 and not hevc.higher_is_better
    jxl = codecs.get("jpegxl").ladder
    assert jxl.continuous and jxl.steps[0] == 25.0 and jxl.steps[-1] == 0.05
    assert all(a > b for a, b in zip(jxl.steps, jxl.steps[1:]))  # growing rate
    assert codecs.get("jpegxl").check_quality(1.234) == 1.234
    assert codecs.get("vvc").default_qualities == codecs.get("vvc").ladder.sweep
    learned = QualityLadder.of((6, 1, 3))
    assert learned.steps == (1, 3, 6) and learned.check(3.0, "m", "one model per quality") == 3
    with pytest.raises(CodecError, match="quality 2 is not one of its qualities"):
        learned.check(2, "m", "one model per quality")
    with pytest.raises(ValueError, match="not on the ladder"):
        QualityLadder.integers(0, 10, sweep=(11,))


def test_rate_control_searches_only_ladder_steps(photo):
    class CountingJpeg(type(codecs.get("jpeg"))):
        ladder = QualityLadder.of((5, 20, 40, 80))
        tried: list = []

        def encode(self, image, quality, *, prompt=None):
            self.tried.append(quality)
            return super().encode(image, quality, prompt=prompt)

    from pku_aigi.codecs.rate_control import bits_per_pixel, encode_to_bpp

    codec = CountingJpeg()
    rates = {q: bits_per_pixel(codecs.get("jpeg").encode(photo, q), photo) for q in (5, 20, 40, 80)}
    target = (rates[20] + rates[40]) / 2
    quality, data = encode_to_bpp(codec, photo, target)
    assert quality == 20 and data == codecs.get("jpeg").encode(photo, 20)
    assert set(codec.tried) <= {5, 20, 40, 80} and len(codec.tried) <= 4


README = Path(__file__).resolve().parents[1] / "README.md"
# The plugin of the README, installed as is, plus a factory entry point.
PLUGIN = README.read_text().split("<!-- plugin example -->\n```python\n")[1].split("```")[0]
PLUGIN += '''

def coarse(**options):
    """A factory entry point: the same codec with a shorter ladder, under another name."""
    codec = PngBitsCodec(**options)
    codec.name = "png-coarse"
    codec.ladder = QualityLadder.integers(1, 3, sweep=(1, 2, 3))
    return codec
'''

CHECKS = """
import json, sys
from pku_aigi import codecs
from pku_aigi.space.catalog import Catalog
from pku_aigi.cli import main

catalog = Catalog.discover(models_dir=sys.argv[1])
coarse = codecs.get("PNG-Coarse")
print(json.dumps({
    "names": codecs.names(),
    "space": catalog.available_keys,
    "coarse": [coarse.name, list(coarse.ladder.steps)],
}))
sys.exit(main(sys.argv[2:]))
"""


def test_plugin_codec_appears_in_cli_bench_and_space(tmp_path, pku_examples):
    site = tmp_path / "site"
    (site / "aigi_png_bits-0.1.dist-info").mkdir(parents=True)
    (site / "aigi_png_bits-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: aigi-png-bits\nVersion: 0.1\n"
    )
    (site / "aigi_png_bits-0.1.dist-info" / "entry_points.txt").write_text(
        "[pku_aigi.codecs]\npng-bits = aigi_png_bits:PngBitsCodec\n"
        "png-coarse = aigi_png_bits:coarse\nbroken = aigi_png_bits:missing\n"
    )
    (site / "aigi_png_bits.py").write_text(PLUGIN)
    images = tmp_path / "images"
    images.mkdir()
    with Image.open(pku_examples / "sd21b" / "1.png") as image:
        image.convert("RGB").crop((0, 0, 192, 176)).save(images / "a.png")
    env = {"PYTHONPATH": f"{site}:{SRC}", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}

    def run(*argv):
        return subprocess.run(
            [sys.executable, "-c", CHECKS, str(tmp_path / "no-models"), *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )

    listed = run("codecs", "--json")
    assert listed.returncode == 0, listed.stderr
    first, rest = listed.stdout.split("\n", 1)
    found = json.loads(first)
    assert found["names"][-2:] == ["png-bits", "png-coarse"]
    assert {"png-bits", "png-coarse"} <= set(found["space"])
    assert found["coarse"] == ["png-coarse", [1, 2, 3]]
    rows = {row["name"]: row for row in json.loads(rest)}
    assert rows["png-bits"]["default_qualities"] == [2, 3, 4, 6] and rows["png-bits"]["available"]
    assert "aigi_png_bits:missing" in listed.stderr  # a broken entry point: one warning

    out = tmp_path / "bench"
    bench = run("bench", "--images", str(images), "--codecs", "png-bits,jpeg", "--anchor", "jpeg",
                "--qualities", "jpeg=20,40,60,80", "--out", str(out), "--workers", "1", "--no-progress")  # fmt: skip
    assert bench.returncode == 0, bench.stderr
    measured = [json.loads(line) for line in (out / "measurements.jsonl").read_text().splitlines()]
    bits = sorted((row["quality"], row["bpp"]) for row in measured if row["codec"] == "png-bits")
    assert [quality for quality, _ in bits] == [2, 3, 4, 6]
    assert all(a[1] < b[1] for a, b in zip(bits, bits[1:]))  # more bits, more rate
