"""`pku-aigi bench --dry-run`: the measurements per codec and setting, what is cached,
a CPU estimate that says its source; nothing coded or written, and exactly the
measurements the real run then makes."""

from __future__ import annotations

import json
import sys
from collections import Counter

import pytest
from PIL import Image

from pku_aigi.bench import images_from_folder
from pku_aigi.bench.dry_run import dry_run
from pku_aigi.bench.sweep import CACHE_FILE, CodecRun
from pku_aigi.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folder(pku_examples, tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for subset, n in (("mod", 1), ("mod", 2), ("sd21b", 1)):
        (root / subset).mkdir(exist_ok=True)
        with Image.open(pku_examples / subset / f"{n}.png") as image:
            image.convert("RGB").crop((0, 0, 192, 176)).save(root / subset / f"{n}.png")
    return root


def bench(folder, out, codecs: str, *qualities: str, dry: bool = False) -> list[str]:
    argv = ["bench", "--images", str(folder), "--codecs", codecs, "--anchor", "jpeg",
            "--out", str(out), "--workers", "1", "--no-progress"]  # fmt: skip
    for grid in qualities:
        argv += ["--qualities", grid]
    return argv + (["--dry-run"] if dry else [])


def table(text: str) -> dict[tuple[str, str], dict]:
    """The dry run's table: ``{(codec, quality): {column: value}}``."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[1:]:
        row = dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
        rows[(row["codec"], row["quality"])] = row
    return rows


def new_rows(out, before: int) -> Counter:
    lines = (out / CACHE_FILE).read_text().splitlines()[before:]
    return Counter((row["codec"], format(row["quality"], "g")) for row in map(json.loads, lines))


def test_dry_run_counts_what_the_run_then_makes_and_writes_nothing(folder, tmp_path, capsys):
    out = tmp_path / "results"
    argv = bench(folder, out, "jpeg,webp", "jpeg=20,60", "webp=50", dry=True)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert not out.exists()  # nothing written, not even the folder
    rows = table(text)
    assert set(rows) == {("jpeg", "20"), ("jpeg", "60"), ("webp", "50")}
    assert all(
        (r["measurements"], r["cached"], r["to make"]) == ("3", "0", "3") for r in rows.values()
    )
    assert "total: 9 measurements, 0 cached, 9 to make" in text
    assert "estimate: from the seconds-per-megapixel table" in text  # says where it comes from
    assert "not a calibration on this machine" in text

    # A first run of part of the work, then the dry run of a larger one.
    assert main(bench(folder, out, "jpeg", "jpeg=20,60")) == 0
    capsys.readouterr()
    cache = out / CACHE_FILE
    cached = cache.read_bytes()
    cache.write_bytes(cached + b'{"key": "torn')  # an interrupted run's last line
    argv = bench(folder, out, "jpeg,webp", "jpeg=20,60,90", "webp=50", dry=True)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert cache.read_bytes() == cached + b'{"key": "torn'  # read, never changed
    rows = table(text)
    assert rows[("jpeg", "20")]["cached"] == "3" and rows[("jpeg", "20")]["to make"] == "0"
    assert rows[("jpeg", "90")]["to make"] == "3" and rows[("webp", "50")]["to make"] == "3"
    assert "total: 12 measurements, 6 cached, 6 to make" in text
    assert f"cached in {cache}: 6 of 12 measurements (50 %)" in text

    before = len(cached.splitlines())
    assert main(argv[:-1]) == 0  # the same command without --dry-run
    assert "bench: 12 measurements (6 new)" in capsys.readouterr().out
    made = new_rows(out, before)
    planned = {key: int(row["to make"]) for key, row in rows.items() if row["to make"] != "0"}
    assert made == planned


def test_the_estimate_follows_the_speed_setting(folder, tmp_path):
    images = images_from_folder(folder)
    runs = [
        CodecRun("vvc", (37,), options={"preset": "slower"}, label="vvc slower"),
        CodecRun("vvc", (37,), label="vvc fast"),
        CodecRun("jpeg", (37,)),
    ]
    plan = dry_run(images, runs, tmp_path / "none", workers=2)
    slower, fast, jpeg = plan.groups
    assert (slower.setting, fast.setting, jpeg.setting) == ("preset=slower", "preset=fast", "-")
    assert slower.cpu_to_make > 10 * fast.cpu_to_make > 10 * jpeg.cpu_to_make > 0
    assert plan.per_codec() == {"vvc slower": 3, "vvc fast": 3, "jpeg": 3}
    assert not (tmp_path / "none").exists()


def test_workers_below_one_is_one_clear_error(folder, tmp_path, capsys):
    argv = bench(folder, tmp_path / "out", "jpeg", "jpeg=50")
    assert main([*argv[:-3], "--workers", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "pku-aigi bench: error: --workers 0: expected 1 or more"
    assert not (tmp_path / "out").exists()


def test_executor_ray_without_ray_names_the_extra(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    argv = bench(folder, tmp_path / "out", "jpeg", "jpeg=50") + ["--executor", "ray"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pku-aigi bench: error: --executor ray needs Ray")
    assert err.endswith("install it with: pip install 'pku-aigi[ray]'")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
    assert main([*argv, "--dry-run"]) == 0  # planning needs no Ray
    assert "total: 3 measurements, 0 cached, 3 to make" in capsys.readouterr().out
