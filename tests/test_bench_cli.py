"""`pku-aigi bench` end to end: folder and dataset inputs, outputs, errors, resume."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import pytest
from PIL import Image

from pku_aigi.cli import main

ZIP = shutil.which("zip")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def crop(source, target, box=(0, 0, 256, 192)):
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("RGB").crop(box).save(target)


@pytest.fixture(scope="module")
def folder(pku_examples, tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for subset in ("sd21b", "mod"):
        for n in (1, 2):
            crop(pku_examples / subset / f"{n}.png", root / subset / f"{n}.png")
    return root


@pytest.fixture(scope="module")
def bench_run(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results"
    argv = ["bench", "--images", str(folder), "--codecs", "jpeg,webp", "--anchor", "jpeg",
            "--qualities", "jpeg=10,30,60,90", "--qualities", "webp=10,40,70,95",
            "--out", str(out), "--workers", "2", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    return argv, out


def test_outputs_are_written(bench_run):
    _, out = bench_run
    names = {p.name for p in out.iterdir()}
    assert {"measurements.jsonl", "measurements.csv", "report.md", "bd.json", "compressai"} <= names
    assert {
        "rd_psnr_all.png",
        "rd_ms_ssim_db_all.png",
        "rd_psnr_sd21b.png",
        "rd_ms_ssim_db_mod.png",
    } <= names
    with (out / "measurements.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 4 * 2 * 4  # images x codecs x qualities
    assert {r["subset"] for r in rows} == {"sd21b", "mod"}
    for row in rows:
        assert float(row["bpp"]) == pytest.approx(int(row["bytes"]) * 8 / (256 * 192))


def test_compressai_json_is_the_mean_of_the_csv_and_compressai_plots_it(bench_run, tmp_path):
    _, out = bench_run
    data = json.loads((out / "compressai" / "webp.json").read_text())
    assert data["name"] == "webp" and data["results"]["quality"] == [10, 40, 70, 95]
    with (out / "measurements.csv").open() as file:
        rows = [r for r in csv.DictReader(file) if r["codec"] == "webp" and r["quality"] == "40"]
    assert data["results"]["bpp"][1] == pytest.approx(sum(float(r["bpp"]) for r in rows) / 4)
    assert data["results"]["psnr-rgb"][1] == pytest.approx(sum(float(r["psnr"]) for r in rows) / 4)
    assert set(data["subsets"]) == {"sd21b", "mod"}
    import matplotlib

    matplotlib.use("Agg")
    from compressai.utils.plot.__main__ import main as compressai_plot

    files = [str(out / "compressai" / "jpeg.json"), str(out / "compressai" / "webp.json")]
    for metric in ("psnr", "ms-ssim"):  # the same entry point as python -m compressai.utils.plot
        png = tmp_path / f"{metric}.png"
        compressai_plot(["-f", *files, "-m", metric, "-o", str(png)])
        assert png.stat().st_size > 10_000


def test_report_has_bd_tables_and_settings(bench_run):
    _, out = bench_run
    report = (out / "report.md").read_text()
    for text in ("## All images", "## Subset sd21b", "## Subset mod", "akima interpolation",
                 "anchor **jpeg**", "| webp |", "**command**: pku-aigi bench --codecs jpeg,webp",
                 "--qualities webp=10,40,70,95 --anchor jpeg --images"):  # fmt: skip
        assert text in report
    bd = json.loads((out / "bd.json").read_text())
    assert bd["anchor"] == "jpeg" and bd["interpolation"] == "akima"
    overall = bd["tables"]["all"]["webp"]
    assert overall["bd_rate_psnr"]["value"] < 0  # WebP beats JPEG on these images
    assert overall["bd_psnr"]["value"] > 0
    assert f"{overall['bd_rate_psnr']['value']:+.2f} %" in report


def test_anchor_preset_cost_and_bd_intervals_are_in_the_report(folder, tmp_path):
    from pku_aigi.bench import presets

    out = tmp_path / "anchor"
    argv = ["bench", "--images", str(folder), "--codecs", "hevc,jpeg", "--anchor", "hevc",
            "--anchor-preset", "medium", "--qualities", "hevc=47,42,37,32,27,22",
            "--qualities", "jpeg=5,30,60,95", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    text = (out / "report.md").read_text()
    medium = next(r for r in presets.anchor_costs()["codecs"]["hevc"] if r["preset"] == "medium")
    assert (
        "**anchor**: hevc, preset medium, not the strongest (placebo): it needs "
        f"{medium['bd_rate_psnr_protocol']:+.1f} % bits"
    ) in text
    assert "preset=medium" in text  # the codec's version string
    bd = json.loads((out / "bd.json").read_text())
    results = json.loads((out / "compressai" / "hevc.json").read_text())["results"]
    hevc = [b for q, b in zip(results["quality"], results["bpp"], strict=True) if 27 <= q <= 42]
    assert bd["bd_range"]["all"]["bpp"] == pytest.approx([min(hevc), max(hevc)])
    assert "the anchor's protocol points" in bd["bd_range"]["all"]["chosen"]
    jpeg = bd["tables"]["all"]["jpeg"]["bd_psnr"]
    low, high = jpeg["bpp_interval"]  # the range, narrowed to where the curves overlap
    assert min(hevc) <= low < high <= max(hevc)
    assert jpeg["full_overlap"]["value"] != pytest.approx(jpeg["value"])
    assert "| BD-PSNR | BD-PSNR, full overlap |" in text
    assert f"{jpeg['value']:+.3f} dB over {low:.3f}-{high:.3f} bpp" in text

    assert main(argv + ["--bd-range", "full"]) == 0  # every measurement from the cache
    text = (out / "report.md").read_text()
    assert "full overlap |" not in text and "BD values over the full overlap" in text
    bd = json.loads((out / "bd.json").read_text())
    assert bd["tables"]["all"]["jpeg"]["bd_psnr"]["value"] == pytest.approx(
        jpeg["full_overlap"]["value"]
    )


def test_plain_folder_is_one_group_named_after_the_folder(pku_examples, tmp_path):
    """Images directly in a folder are reported once, not again as "all"."""
    folder = tmp_path / "my_pngs"
    for n in (1, 2):
        crop(pku_examples / "mod" / f"{n}.png", folder / f"{n}.png")
    out = tmp_path / "results"
    argv = ["bench", "--images", str(folder), "--codecs", "jpeg,webp", "--anchor", "jpeg",
            "--qualities", "jpeg=10,40,80", "--qualities", "webp=10,40,80",
            "--out", str(out), "--workers", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    report = (out / "report.md").read_text()
    assert report.count("\n## ") == 2  # settings + the one group
    assert "## All images (my_pngs)" in report and "## Subset" not in report
    plots = sorted(p.name for p in out.glob("rd_*.png"))
    assert plots == ["rd_ms_ssim_db_my_pngs.png", "rd_psnr_my_pngs.png"]
    bd = json.loads((out / "bd.json").read_text())
    assert set(bd["tables"]) == set(bd["bd_range"]) == {"my_pngs"}
    assert bd["tables"]["my_pngs"]["webp"]["bd_rate_psnr"]["value"] < 0
    with (out / "measurements.csv").open() as file:
        rows = [r for r in csv.DictReader(file) if r["codec"] == "webp" and r["quality"] == "40"]
    data = json.loads((out / "compressai" / "webp.json").read_text())
    assert data["results"]["bpp"][1] == pytest.approx(sum(float(r["bpp"]) for r in rows) / 2)
    assert data["subsets"]["my_pngs"]["bpp"] == data["results"]["bpp"]


def test_reusing_out_with_other_images_leaves_no_stale_plots(folder, pku_examples, tmp_path):
    """The plots and CompressAI files of an earlier run's subsets and codecs stayed."""
    out = tmp_path / "results"
    argv = ["--anchor", "jpeg", "--out", str(out), "--workers", "1", "--no-progress"]
    first = ["--images", str(folder), "--codecs", "jpeg,webp"]
    first += ["--qualities", "jpeg=30,70", "--qualities", "webp=30,70"]
    assert main(["bench", *first, *argv]) == 0
    assert (out / "rd_psnr_sd21b.png").is_file() and (out / "compressai" / "webp.json").is_file()
    (out / "notes.txt").write_text("mine")
    other = tmp_path / "mj_only"
    crop(pku_examples / "mj52" / "1.png", other / "1.png")
    assert main(["bench", "--images", str(other), "--codecs", "jpeg",
                 "--qualities", "jpeg=30,70", *argv]) == 0  # fmt: skip
    assert sorted(p.name for p in out.glob("rd_*.png")) == [
        "rd_ms_ssim_db_mj_only.png", "rd_psnr_mj_only.png",
    ]  # fmt: skip
    assert sorted(p.name for p in (out / "compressai").iterdir()) == ["jpeg.json"]
    assert (out / "notes.txt").read_text() == "mine"


def test_a_named_codec_that_cannot_run_ends_the_run_unless_skipped(
    folder, tmp_path, capsys, monkeypatch, caplog
):
    """`bench --codecs vvc,mbt2018-mean` offline without weights exited 0 without it."""
    import logging

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("PKU_AIGI_MODELS_DIR", raising=False)
    out = tmp_path / "o"
    argv = ["bench", "--images", str(folder), "--codecs", "jpeg,mbt2018-mean,bmshj2018-hyperprior",
            "--anchor", "jpeg", "--qualities", "jpeg=30,60,90", "--out", str(out),
            "--workers", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--skip-unavailable" in err
    # one message for both families (the same cause), naming the ways to get weights
    assert "mbt2018-mean, bmshj2018-hyperprior cannot run: these models are not in the" in err
    assert err.count("HF_HUB_OFFLINE=1") == 1
    assert "PKU_AIGI_COMPRESSAI_URL" in err and "convert-compressai" in err
    assert not out.exists()
    with caplog.at_level(logging.INFO, logger="pku_aigi.bench.sweep"):
        assert main([*argv, "--skip-unavailable"]) == 0
    assert "sweep: 12 measurements to make (jpeg 12), 0 cached; estimated" in caplog.text
    report = (out / "report.md").read_text()
    assert report.count("HF_HUB_OFFLINE=1") == 1
    assert "codecs mbt2018-mean, bmshj2018-hyperprior left out" in report


def test_rerun_reuses_every_measurement(bench_run, capsys):
    argv, out = bench_run
    assert main(argv) == 0
    assert "32 measurements (0 new)" in capsys.readouterr().out


def test_bad_input_is_one_clear_error(folder, tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("mine")
    cases = [
        (["--images", str(folder), "--codecs", "jpeg", "--out", str(busy)], "not a bench folder"),
        (["--images", str(folder), "--codecs", "jpgg"], "unknown codec 'jpgg'"),
        (
            ["--images", str(folder), "--codecs", "jpeg", "--qualities", "jpeg=low"],
            "expected CODEC=Q1,Q2",
        ),
        (["--images", str(folder), "--codecs", "jpeg", "--qualities", "jpeg=500"], "out of range"),
        (["--images", str(tmp_path / "nope"), "--codecs", "jpeg"], "not a folder"),
        (["--images", str(folder), "--config", "mj52", "--codecs", "jpeg"], "choose one input"),
        (["--config", "mj5", "--codecs", "jpeg"], "unknown config 'mj5'"),
        (
            [
                "--images",
                str(folder),
                "--codecs",
                "jpeg",
                "--anchor",
                "jpeg",
                "--anchor-preset",
                "x",
            ],
            "the anchor 'jpeg' has no speed setting",
        ),
        (
            ["--images", str(folder), "--codecs", "jpeg", "--codec-option", "vvc:preset=slow"],
            "--codec-option names codecs not in this run: vvc",
        ),
        (
            ["--images", str(folder), "--codecs", "hevc", "--codec-option", "hevc:speed=1"],
            "'hevc' has no option 'speed'",
        ),
        (["--images", str(folder), "--codecs", "jpeg", "--bd-range", "0.5,0.1"], "LOW,HIGH bpp"),
    ]
    for args, message in cases:
        code = main(["bench", *args] + ([] if "--out" in args else ["--out", str(tmp_path / "o")]))
        assert code == 2, args
        assert message in capsys.readouterr().err
    assert (busy / "thesis.tex").read_text() == "mine"


def test_default_input_offline_names_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["bench", "--codecs", "jpeg", "--out", str(tmp_path / "o"),
                 "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "--data-dir" in err and "--images" in err and "vaild.zip" in err


@pytest.mark.skipif(ZIP is None, reason="needs Info-ZIP zip")
def test_dataset_input_from_a_local_copy_of_the_hub_repo(pku_examples, tmp_path, capsys):
    work = tmp_path / "work"
    for n in (1, 2):
        crop(pku_examples / "mj52" / f"{n}.png", work / "vaild" / "MJ" / f"000{n}_1.png")
    (work / "vaild" / "MJ.txt").write_text("a red fox in snow\na lighthouse at dusk")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run([ZIP, "-q", "-r", str(repo / "vaild.zip"), "vaild"], cwd=work, check=True)
    out = tmp_path / "out"
    code = main(["bench", "--config", "mj52", "--data-dir", str(repo), "--codecs", "jpeg,webp",
                 "--qualities", "jpeg=20,80", "--qualities", "webp=20,80", "--anchor", "jpeg",
                 "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--workers", "1",
                 "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    with (out / "measurements.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2 * 2 * 2 and {r["subset"] for r in rows} == {"mj52"}
    assert sorted({int(r["prompt_chars"]) for r in rows}) == [17, 20]
    assert "mj52 / validation from" in (out / "report.md").read_text()


def test_help_shows_each_default_once(capsys):
    """`--workers` read "(default: all cores) (default: None)"."""
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "worker processes (default: all cores)" in text
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default: vvc)" in text and "seed of shuffled/swapped prompts (default: 0)" in text
