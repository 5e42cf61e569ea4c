"""The built-in CC0 sample: its files, `bench --sample`, the Space's examples."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from pku_aigi.cli import main
from pku_aigi.sample import sample_dir, sample_images
from pku_aigi.space.examples import DATA_DIR_ENV, EXAMPLES_DIR_ENV, find_examples

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_sample_is_eight_lossless_cc0_images_with_their_prompts(diffusiondb):
    folder = sample_dir()
    images = sorted(folder.glob("*.webp"))
    assert 1 <= len(images) <= 8
    assert "CC0 1.0 Universal" in (folder / "LICENSE").read_text()
    assert sum(p.stat().st_size for p in folder.iterdir()) < 4_000_000
    originals = {}
    for line in (diffusiondb / "metadata.jsonl").read_text().splitlines():
        row = json.loads(line)
        originals[row["file_name"].split("/")[-1]] = row
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    assert sorted(folder / row["file_name"] for row in rows) == images
    for row in rows:
        original = originals[row["original"]]
        assert row["prompt"] == original["prompt"] and row["source"] == original["source"]
        with Image.open(folder / row["file_name"]) as stored:
            assert stored.format == "WEBP" and stored.mode == "RGB"
            assert stored.size == (row["width"], row["height"])
            pixels = np.asarray(stored)
        with Image.open(diffusiondb / original["file_name"]) as png:
            assert np.array_equal(pixels, np.asarray(png.convert("RGB"))), row["file_name"]
    assert [path for path, _ in sample_images()] == images
    assert all(prompt.strip() for _, prompt in sample_images())


def test_bench_sample_runs_offline(tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["bench", "--sample", "--limit", "2", "--codecs", "jpeg", "--anchor", "jpeg",
            "--qualities", "jpeg=40,80", "--out", str(out), "--workers", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    with (out / "measurements.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2 * 2
    assert {r["subset"] for r in rows} == {"diffusiondb"}
    expected = {path.name: len(prompt) for path, prompt in sample_images()[:2]}
    assert {r["image"]: int(r["prompt_chars"]) for r in rows} == expected
    assert "the built-in sample (DiffusionDB, CC0 1.0" in (out / "report.md").read_text()


def test_sample_is_one_input_among_others(tmp_path, capsys):
    code = main(["bench", "--sample", "--images", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 2 and "choose one input" in capsys.readouterr().err


def test_offline_default_input_suggests_the_sample(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["bench", "--codecs", "jpeg", "--out", str(tmp_path / "o"),
                 "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    assert code == 2 and "--sample" in capsys.readouterr().err


def test_space_examples_default_to_the_sample(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.delenv(EXAMPLES_DIR_ENV, raising=False)
    examples, source = find_examples(None)
    assert "built-in sample" in source
    assert examples == [[str(path), prompt.strip()] for path, prompt in sample_images()]
