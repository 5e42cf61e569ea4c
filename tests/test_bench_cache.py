"""The bench cache and --out: a torn line never swallows the next row, two runs
never share an --out, and a run with other codecs keeps the earlier codecs' rows."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from PIL import Image

from pku_aigi.bench.sweep import CACHE_FILE, MeasurementCache
from pku_aigi.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def row(n: int) -> dict:
    return {"key": f"img{n}|jpeg|v|50", "codec": "jpeg", "image_key": f"img{n}", "bpp": n / 10}


def test_a_torn_last_line_is_discarded_not_glued_to_the_next_row(tmp_path):
    path = tmp_path / CACHE_FILE
    path.write_text(json.dumps(row(1)) + "\n" + json.dumps(row(2))[:25])  # killed mid-write
    cache = MeasurementCache(path)
    assert list(cache.rows) == [row(1)["key"]]
    cache.add(row(3))
    again = MeasurementCache(path)
    assert list(again.rows) == [row(1)["key"], row(3)["key"]]
    assert path.read_text().splitlines() == [json.dumps(row(1)), json.dumps(row(3))]


def test_lines_that_are_not_measurements_are_skipped(tmp_path):
    path = tmp_path / CACHE_FILE
    path.write_text("[1, 2]\n" + json.dumps({"no": "key"}) + "\n" + json.dumps(row(4)) + "\n")
    assert list(MeasurementCache(path).rows) == [row(4)["key"]]


@pytest.fixture(scope="module")
def folder(pku_examples, tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for n in (1, 2):
        (root / "mod").mkdir(exist_ok=True)
        with Image.open(pku_examples / "mod" / f"{n}.png") as image:
            image.convert("RGB").crop((0, 0, 192, 176)).save(root / "mod" / f"{n}.png")
    return root


def bench(folder, out, codec, qualities):
    return main(["bench", "--images", str(folder), "--codecs", codec, "--anchor", "jpeg",
                 "--qualities", f"{codec}={qualities}", "--out", str(out), "--workers", "1",
                 "--no-progress"])  # fmt: skip


def test_a_run_with_other_codecs_keeps_the_earlier_rows(folder, tmp_path, capsys):
    out = tmp_path / "results"
    assert bench(folder, out, "jpeg", "20,50,80") == 0
    assert bench(folder, out, "webp", "30,60,90") == 0
    with open(out / "measurements.csv", newline="") as file:
        codecs = [r["codec"] for r in csv.DictReader(file)]
    assert codecs.count("jpeg") == 6 and codecs.count("webp") == 6
    report = (out / "report.md").read_text()
    assert "kept from earlier runs" in report and "| webp" in report
    assert "measurements (6 new)" in capsys.readouterr().out


def test_a_second_run_into_the_same_out_stops_at_once(folder, tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    holder = subprocess.Popen(  # another bench process holding the folder's lock
        [sys.executable, "-c", "import sys, time; from pku_aigi.bench.sweep import "
         "out_dir_lock\nwith out_dir_lock(sys.argv[1]):\n print('held', flush=True); "
         "time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert bench(folder, out, "jpeg", "50") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert f"another benchmark (process {holder.pid}) is writing into" in err[0]
        assert not (out / CACHE_FILE).exists()  # nothing measured twice
    finally:
        holder.kill()
        holder.wait()
    assert bench(folder, out, "jpeg", "50") == 0  # the lock goes with its process
