"""`pku-aigi results`: bench runs published as Hub datasets, compared, and on the Leaderboard.

Two small bench runs (module fixtures, on 256x192 crops of the dataset's images) share
three of their four images: A runs VVC and WebP; B runs VVC, JPEG and two tiny learned
models saved in a Hub-cache layout (so their rows name a repo and a revision). The
datasets are read back with plain ``datasets``, ``pyarrow`` and ``huggingface_hub`` (a
Hub id from a local cache), and the Leaderboard tab is checked in Debian's Chromium.
"""

from __future__ import annotations

import csv
import json
import shutil
import socket

import pytest
from PIL import Image

from pku_aigi import __version__
from pku_aigi.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REVISION = "0123456789abcdef0123456789abcdef01234567"
VVC = ["--qualities", "vvc=42,37,32,27"]


def crop(source, target, box=(0, 0, 256, 192)):
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("RGB").crop(box).save(target)


def tiny_model_folder(root, quality: int):
    """A tiny untrained model at ``quality``, saved as a Hub cache snapshot."""
    import torch

    from pku_aigi import models

    torch.manual_seed(quality)
    model = models.create("bmshj2018-factorized", quality=quality, N=16, M=16)
    with torch.no_grad():
        [m for m in model.g_a.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight.mul_(10)
    model.update(force=True)
    folder = root / f"models--local--tiny-q{quality}" / "snapshots" / REVISION
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def runs(pku_examples, tmp_path_factory):
    """Bench output folders A and B (3 images in common)."""
    root = tmp_path_factory.mktemp("results")
    for run, mod in (("A", (1, 2)), ("B", (1, 3))):
        for name in ("sd21b/1", "sd21b/2", *(f"mod/{n}" for n in mod)):
            crop(pku_examples / f"{name}.png", root / f"images-{run}" / f"{name}.png")
    models = [tiny_model_folder(root / "hub", q) for q in (1, 2)]
    common = ["--workers", "2", "--no-progress"]
    argv_a = ["bench", "--images", str(root / "images-A"), "--codecs", "vvc,webp", *VVC,
              "--qualities", "webp=10,40,70,95", "--out", str(root / "A"), *common]  # fmt: skip
    argv_b = ["bench", "--images", str(root / "images-B"), "--codecs", "vvc,jpeg", *VVC,
              "--qualities", "jpeg=10,30,60,90", "--model", str(models[0]), "--model",
              str(models[1]), "--bd-range", "full", "--out", str(root / "B"), *common]  # fmt: skip
    assert main(argv_a) == 0
    assert main(argv_b) == 0
    return root


@pytest.fixture(scope="module")
def published(runs):
    """Results datasets of A and B, made by the command line."""
    for run in ("A", "B"):
        out = runs / "published" / run
        assert main(["results", "publish", str(runs / run), "--out", str(out), "--name", run]) == 0
    return runs / "published"


def error_line(capsys) -> str:
    """The one line a failed command printed to stderr."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def read_csv(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_run_json_describes_the_finished_run(runs):
    info = json.loads((runs / "A" / "run.json").read_text())
    assert info["format"] == 1 and info["pku-aigi"] == __version__
    assert info["images_per_subset"] == {"mod": 2, "sd21b": 2}
    assert [(c["name"], c["qualities"], c["learned"]) for c in info["codecs"]] == [
        ("vvc", [42, 37, 32, 27], False),
        ("webp", [10, 40, 70, 95], False),
    ]
    assert info["anchor"] == "vvc" and info["failures"] == 0 and info["device"] == "cpu"


def test_published_dataset_loads_with_plain_datasets(runs, published, tmp_path):
    import datasets

    folder = published / "A"
    assert {p.name for p in folder.iterdir()} == {"README.md", "run.json", "data", "plots"}
    rows = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path))
    assert rows.num_rows == 4 * 2 * 4  # images x codecs x qualities
    bench_rows = read_csv(runs / "A" / "measurements.csv")
    by_key = {(r["image_key"], r["codec"], float(r["quality"])): r for r in bench_rows}
    for row in rows:
        bench = by_key[(row["image_key"], row["codec"], row["quality"])]
        assert row["bpp"] == float(bench["bpp"]) and row["psnr"] == float(bench["psnr"])
        assert row["ms_ssim_db"] == float(bench["ms_ssim_db"])
        assert row["bytes"] == int(bench["bytes"]) and row["width"] == 256
        assert row["codec_version"] == bench["codec_version"] and row["image"] == bench["image"]
        assert row["run"] == "A" and row["source"] == "measured" and row["learned"] is False
        assert row["package_version"] == __version__ and row["protocol"] == "custom"
        assert row["device"] == "cpu" and row["clip_score"] is None
        assert row["encode_s"] > 0 and row["decode_s"] > 0
    # the bd config holds the bench report's BD values
    bd = datasets.load_dataset(str(folder), "bd", split="train", cache_dir=str(tmp_path))
    bench_bd = json.loads((runs / "A" / "bd.json").read_text())["tables"]
    assert {(r["subset"], r["codec"]) for r in bd} == {("all", "webp"), ("sd21b", "webp"),
                                                        ("mod", "webp")}  # fmt: skip
    for row in bd:
        expected = bench_bd[row["subset"]]["webp"]
        assert row["bd_rate_psnr"] == pytest.approx(expected["bd_rate_psnr"]["value"])
        assert row["bd_rate_ms_ssim_db"] == pytest.approx(expected["bd_rate_ms_ssim_db"]["value"])
        assert row["anchor"] == "vvc"
    # the card: YAML configs, the report's BD table, the plots it shows
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "config_name: measurements" in card
    webp = bench_bd["all"]["webp"]["bd_rate_psnr"]["value"]
    assert f"| webp | {webp:+.2f} % over" in card
    for plot in ("rd_psnr_all.png", "rd_ms_ssim_db_mod.png"):
        assert f"](plots/{plot})" in card and (folder / "plots" / plot).stat().st_size > 10_000


def test_learned_rows_name_their_model_repo_and_revision(published):
    from pku_aigi.results import open_results

    results = open_results(str(published / "B"))
    assert results.name == "B" and len(results.rows) == 4 * 4 * 2 + 4 * 2  # vvc, jpeg; 2 models
    learned = [r for r in results.rows if r["learned"]]
    assert {r["codec"] for r in learned} == {"bmshj2018-factorized"}
    for row in learned:
        assert row["model_repo"] == f"local/tiny-q{int(row['quality'])}"
        assert row["model_revision"] == REVISION
        assert row["payload_bytes"] < row["bytes"]
    assert all(r["model_repo"] is None for r in results.rows if not r["learned"])


def test_compare_two_runs_on_the_images_they_share(published, tmp_path, capsys):
    from pku_aigi.bench import bdrate
    from pku_aigi.results import open_results

    a, b = str(published / "A"), str(published / "B")
    assert main(["results", "compare", a, b, "--bd-range", "full"]) == 0
    out = capsys.readouterr().out
    assert "3 image(s) measured by every run (images per run: A: 4, B: 4)" in out
    assert "per subset: sd21b 2, mod 1" in out
    assert "- **anchor**: vvc (A)" in out and "anchor: vvc (A), the first of" in out
    # WebP against VVC of A on the 3 shared images, from means computed here
    rows = open_results(a).rows
    shared = {r["image_key"] for r in rows} & {r["image_key"] for r in open_results(b).rows}

    def curve(codec, metric):
        qualities = sorted({r["quality"] for r in rows if r["codec"] == codec})
        points = []
        for q in qualities:
            group = [r for r in rows if (r["codec"], r["quality"]) == (codec, q)]
            group = [r for r in group if r["image_key"] in shared]
            assert len(group) == 3
            points.append(tuple(sum(r[k] for r in group) / 3 for k in ("bpp", metric)))
        return points

    expected = bdrate.bd_rate(curve("vvc", "psnr"), curve("webp", "psnr")).value
    assert f"| webp | {expected:+.2f} %" in out
    for codec in ("jpeg", "bmshj2018-factorized", "vvc (B)"):
        assert f"| {codec} |" in out
    # --out writes the report, and never over a file without --force
    report = tmp_path / "compare.md"
    assert main(["results", "compare", a, b, "--out", str(report)]) == 0
    assert "# pku-aigi results compare" in report.read_text()
    assert main(["results", "compare", a, b, "--out", str(report)]) == 2
    assert "already exists: pass --force" in error_line(capsys)


def copy_with_rows(folder, target, change):
    """A copy of a results dataset whose measurement table went through ``change``."""
    import pyarrow.parquet as pq

    shutil.copytree(folder, target)
    path = target / "data" / "measurements.parquet"
    pq.write_table(change(pq.read_table(path)), path)
    return target


def test_compare_refuses_runs_without_a_shared_image(published, tmp_path, capsys):
    import pyarrow as pa

    def other_images(table):
        keys = [f"x{key}" for key in table.column("image_key").to_pylist()]
        return table.set_column(table.column_names.index("image_key"), "image_key", pa.array(keys))

    other = copy_with_rows(published / "B", tmp_path / "other", other_images)
    assert main(["results", "compare", str(published / "A"), str(other)]) == 2
    line = error_line(capsys)
    assert "the runs share no image (0 image(s) measured by every run" in line
    assert "run bench on the same images" in line


def test_results_dataset_with_missing_columns(published, tmp_path, capsys):
    broken = copy_with_rows(
        published / "A", tmp_path / "broken", lambda t: t.drop_columns(["psnr", "ms_ssim_db"])
    )
    assert main(["results", "compare", str(broken), str(published / "B")]) == 2
    line = error_line(capsys)
    assert "lacks the column(s) psnr, ms_ssim_db of a pku-aigi results dataset" in line
    assert "republish" in line


def test_non_dataset_folders(runs, published, tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    shutil.copy(runs / "images-A" / "mod" / "1.png", tmp_path / "photos" / "1.png")
    assert main(["results", "compare", str(tmp_path / "photos"), str(published / "A")]) == 2
    line = error_line(capsys)
    assert "photos is not a results dataset (no data/measurements*.parquet)" in line
    assert main(["results", "compare", str(runs / "A"), str(published / "B")]) == 2
    assert "it is a bench output: publish it first" in error_line(capsys)
    assert main(["results", "publish", str(tmp_path / "photos"), "--out", str(tmp_path / "o")]) == 2
    assert "photos is not a bench output folder" in error_line(capsys)


def test_bench_folder_from_another_version(runs, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(runs / "A", old)
    info = json.loads((old / "run.json").read_text())
    (old / "run.json").write_text(json.dumps({**info, "pku-aigi": "0.0.1"}))
    assert main(["results", "publish", str(old), "--out", str(tmp_path / "out")]) == 2
    line = error_line(capsys)
    assert f"was written by pku-aigi 0.0.1 (run.json format 1), this is {__version__}" in line
    assert "rerun `pku-aigi bench --codecs vvc,webp" in line
    assert not (tmp_path / "out").exists()
    # a folder of a pku-aigi without run.json: its report names the version
    (old / "run.json").unlink()
    report = (
        (old / "report.md")
        .read_text()
        .replace(f"**pku-aigi**: {__version__}", "**pku-aigi**: 0.0.1")
    )
    (old / "report.md").write_text(report)
    assert main(["results", "publish", str(old), "--out", str(tmp_path / "out")]) == 2
    assert "was written by pku-aigi 0.0.1 (no run.json)" in error_line(capsys)


def test_incomplete_run_is_refused_and_named(runs, tmp_path, capsys):
    cut = tmp_path / "cut"
    shutil.copytree(runs / "A", cut)
    rows = read_csv(cut / "measurements.csv")
    kept = [
        r
        for r in rows
        if not (r["codec"] == "webp" and r["quality"] == "40" and r["image"] == "mod/2.png")
    ]
    with (cut / "measurements.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    assert main(["results", "publish", str(cut), "--out", str(tmp_path / "out")]) == 2
    line = error_line(capsys)
    assert "is an incomplete run: webp q=40 on mod: 1 of 2 images" in line
    (cut / "run.json").unlink()  # an interrupted run: run.json is written last
    assert main(["results", "publish", str(cut), "--out", str(tmp_path / "out")]) == 2
    assert "holds no finished bench run" in error_line(capsys)


def test_publish_never_overwrites_without_force(runs, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["results", "publish", str(runs / "A"), "--out", str(out)]) == 2
    assert "is not empty (it holds files): pass --force" in error_line(capsys)
    (out / "data").mkdir()
    (out / "data" / "measurements-old.parquet").write_text("stale")
    assert main(["results", "publish", str(runs / "A"), "--out", str(out), "--force"]) == 0
    assert (out / "notes.txt").read_text() == "mine"  # files of yours stay
    assert not (out / "data" / "measurements-old.parquet").exists()  # stale data does not
    assert main(["results", "publish", str(runs / "A"), "--out", str(runs / "A" / "x")]) == 2
    assert "inside the bench folder" in error_line(capsys)


def test_push_offline_says_how_to_push_later(runs, tmp_path, capsys):
    out = tmp_path / "pushed"
    argv = ["results", "publish", str(runs / "A"), "--out", str(out), "--push-to-hub", "org/run"]
    assert main(argv) == 2
    line = error_line(capsys)
    assert "cannot push dataset repo org/run: HF_HUB_OFFLINE=1 is set" in line
    assert f"hf upload org/run {out} . --repo-type dataset" in line
    assert 'load_dataset("org/run", split="train")' in (out / "README.md").read_text()


def hub_cache_with(published, tmp_path, repo_id: str):
    """A Hugging Face cache holding ``repo_id`` as huggingface_hub lays out a download."""
    cache = tmp_path / "hf-cache"
    repo = cache / f"datasets--{repo_id.replace('/', '--')}"
    shutil.copytree(published / "A", repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return cache


def test_hub_ids_read_the_cache_offline_and_fail_in_one_line(published, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from pku_aigi.errors import PkuAigiError
    from pku_aigi.results import open_results

    monkeypatch.setattr(
        constants, "HF_HUB_CACHE", str(hub_cache_with(published, tmp_path, "org/a"))
    )
    results = open_results("org/a")
    assert results.name == "A" and len(results.rows) == 32 and results.source == "org/a"
    with pytest.raises(PkuAigiError) as error:
        open_results("org/not-cached")
    assert "org/not-cached" in str(error.value) and "HF_HUB_OFFLINE=1" in str(error.value)
    assert len(str(error.value).splitlines()) == 1


def test_leaderboard_rows_per_source(runs, published, tmp_path):
    from pku_aigi.results.leaderboard import build_board, group_rows

    missing = str(tmp_path / "nowhere")
    board = build_board([str(published / "A"), "org/not-cached", str(published / "B"), missing])
    assert board.runs == ["A", "B"]
    twice = build_board([str(published / "A"), str(published / "A")])
    assert twice.runs == ["A", "A #2"] and "webp · A #2" in twice.curves["all"]
    assert [e.split(":")[0] for e in board.errors] == ["org/not-cached", missing]
    assert board.groups == ["all", "sd21b", "mod"]
    webp = next(r for r in group_rows(board, "all") if r["codec"] == "webp")
    bench_bd = json.loads((runs / "A" / "bd.json").read_text())["tables"]["all"]["webp"]
    assert webp["BD-rate PSNR %"] == round(bench_bd["bd_rate_psnr"]["value"], 2)
    assert webp["version / model"].startswith("webp (libwebp")
    learned = next(r for r in group_rows(board, "all") if r["codec"] == "bmshj2018-factorized")
    assert (
        learned["version / model"]
        == f"local/tiny-q1@{REVISION[:12]}, local/tiny-q2@{REVISION[:12]}"
    )
    anchors = [r for r in board.measured if r["codec"] == "vvc"]
    assert {r["run"] for r in anchors} == {"A", "B"} and all(
        r["note"] == "the anchor" for r in anchors
    )
    assert board.reference and all(r["source"] == "reference" for r in board.reference)
    assert all(r["accuracy"] and r["anchor"].startswith("VTM") for r in board.reference)
    assert not any(r["source"] == "reference" for r in board.measured)


# ------------------------------------------------------------------ the Space, in Chromium


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def leaderboard_url(published, tmp_path, monkeypatch):
    from pku_aigi.space import build_app
    from pku_aigi.space.catalog import Catalog

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    sources = [str(published / "A"), str(published / "B"), "org/not-cached"]
    monkeypatch.setenv("PKU_AIGI_RESULTS", ",".join(sources))
    (tmp_path / "models").mkdir()
    demo = build_app(catalog=Catalog.discover(tmp_path / "models"))
    port = free_port()
    demo.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
        ssr_mode=False,
    )  # fmt: skip
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.mark.browser
def test_leaderboard_tab_in_chromium(chromium, leaderboard_url, runs, artifacts_dir):
    from playwright.sync_api import expect, sync_playwright
    from test_space_browser import CHROMIUM_ARGS, TIMEOUT_MS

    expect.set_options(timeout=TIMEOUT_MS)
    bench_bd = json.loads((runs / "A" / "bd.json").read_text())["tables"]

    def webp(group: str) -> str:  # as the table shows it: a number rounded to 0.01
        return str(round(bench_bd[group]["webp"]["bd_rate_psnr"]["value"], 2))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(leaderboard_url)
        page.get_by_role("tab", name="Leaderboard").click()
        measured = page.locator("#lb-measured")
        for text in ("webp", "jpeg", "bmshj2018-factorized", f"local/tiny-q2@{REVISION[:12]}",
                     "the anchor", "libvvenc"):  # fmt: skip
            expect(measured).to_contain_text(text)
        expect(measured).to_contain_text(webp("all"))
        reference = page.locator("#lb-reference")
        for text in ("catc", "-30.09", "VTM", "exact, quoted from the paper's abstract"):
            expect(reference).to_contain_text(text)
        expect(page.locator("#lb-plot img, #lb-plot svg").first).to_be_visible()
        notes = page.locator("#lb-notes")
        expect(notes).to_contain_text("Runs: A, B.")
        expect(notes).to_contain_text("cannot read org/not-cached")
        page.screenshot(path=str(artifacts_dir / "space-leaderboard.png"), full_page=True)
        # sortable: best first as served, worst first after "Sort descending"
        grid = page.get_by_role("grid", name="Measured: BD-rate against VVC")

        def first_codec():
            return grid.get_by_role("row").nth(1).get_by_role("gridcell").nth(3)

        expect(first_codec()).to_have_text("webp")
        header = grid.get_by_role("columnheader", name="BD-rate PSNR %")
        header.click()
        header.get_by_role("button", name="Open cell menu").click()
        page.get_by_text("Sort descending").first.click()
        expect(first_codec()).to_have_text("jpeg")
        # one subset: its own BD-rates
        page.locator("#lb-subset input").click()
        page.get_by_role("option", name="mod", exact=True).click()
        expect(measured).to_contain_text(webp("mod"))
        expect(measured).not_to_contain_text(webp("all"))
        browser.close()
