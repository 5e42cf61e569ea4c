"""`pku-aigi models list|convert-compressai|info` and the zoo manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from compressai.models import FactorizedPrior
from compressai.zoo.image import model_urls

from pku_aigi.cli import main
from pku_aigi.errors import ModelError
from pku_aigi.models import zoo

ROOT = Path(__file__).resolve().parents[1]


def test_models_list(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "q1-8" in lines["mbt2018-mean"] and "1809.02736" in lines["mbt2018-mean"]
    assert "q1-6" in lines["cheng2020-attn"] and "CVPR 2020" in lines["cheng2020-attn"]
    assert main(["models", "list", "--json"]) == 0
    rows = {row["architecture"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["bmshj2018-hyperprior"]["qualities"] == list(range(1, 9))
    assert rows["bmshj2018-hyperprior"]["metrics"] == ["ms-ssim", "mse"]


def test_models_without_action_lists_the_architectures(capsys):
    """`pku-aigi models` alone (where `train --help` points) printed usage and exit 2."""
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert main(["models", "list"]) == 0
    assert listed == capsys.readouterr().out and "tcm-large" in listed


LIGHT_PROBE = """
import sys
from pku_aigi.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as error:  # argparse's own errors
    code = error.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"torch", "compressai", "gradio"})
print("HEAVY", heavy, code, file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["models"], 0),
        (["models", "list", "--json"], 0),
        (["models", "list", "--zoo", "--no-hub-check"], 0),
        (["models", "info", "pku-aigi/mbt2018-mean-mse-q3"], 2),  # not cached, offline
        (["train", "--lr", "x"], 2),
        (["train", "--arch", "mbt2018-man", "--lmbda", "0.01", "--images", ".", "--out", "o"], 2),
        (["train", "--arch", "mbt2018-mean", "--lmbda", "0.01", "--out", "o"], 2),  # no data
        (
            ["train", "--arch", "catc", "--lmbda", "0.01", "--images", ".", "--out", "o"]
            + ["--quality", "9"],
            2,
        ),  # fmt: skip
        (["bench", "--codecs", "jpgg"], 2),
    ],
)
def test_listings_and_argument_errors_import_no_model_code(argv, code, tmp_path):
    """They took 9-12 s because every model-related command imported CompressAI (and
    torch_geometric through it); the fixed table and the argument checks need neither."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [sys.executable, "-c", LIGHT_PROBE, *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stderr.strip().splitlines()[-1] == f"HEAVY [] {code}", result.stderr[-2000:]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A CompressAI bmshj2018-factorized quality-1 checkpoint (N=128, M=192)."""
    torch.manual_seed(0)
    net = FactorizedPrior(128, 192)
    net.update()
    path = tmp_path_factory.mktemp("ckpt") / "bmshj2018-factorized-prior-1.pth.tar"
    torch.save({"state_dict": net.state_dict(), "epoch": 1}, path)
    return path


def test_convert_then_info(checkpoint, tmp_path, capsys):
    out = tmp_path / "bmshj2018-factorized-mse-q1"
    args = ["models", "convert-compressai", "bmshj2018-factorized", "--quality", "1"]
    assert main([*args, "--metric", "mse", str(checkpoint), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out

    assert main([*args, str(checkpoint), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("pku-aigi models: error:") and "already exists" in err and "--force" in err
    )
    assert main([*args, str(checkpoint), "--out", str(out), "--force"]) == 0
    capsys.readouterr()

    assert main(["models", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "architecture: bmshj2018-factorized" in info and "lmbda: 0.0018" in info
    assert "entropy_coder_ready: True" in info
    # A training checkpoint says nothing about its data: the card claims nothing either.
    assert "training checkpoint" in info and "epoch 1" in info
    assert "Vimeo-90k" not in info and "pre-trained" not in info
    card = (out / "README.md").read_text()
    assert "Vimeo-90k" not in card and "CompressAI's pre-trained" not in card
    assert main(["models", "info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["M"] == 192


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mbt2018-mean", "--quality", "1"], "wrong shape"),
        (
            ["bmshj2018-factorized", "--quality", "7"],
            "bmshj2018-factorized-prior-1.pth.tar does not hold bmshj2018-factorized quality 7 "
            "(N=192, M=320) weights: the checkpoint's shapes fit quality 1-5 (N=128, M=192), "
            "not quality 7",
        ),
        (["bmshj2018-factorized", "--quality", "9"], "no quality 9"),
        (["nope", "--quality", "1"], "unknown architecture 'nope'"),
    ],
)
def test_convert_errors_exit_2(checkpoint, tmp_path, capsys, argv, message):
    code = main(
        ["models", "convert-compressai", *argv, str(checkpoint), "--out", str(tmp_path / "o")]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_convert_missing_checkpoint_and_info_missing_model(tmp_path, capsys):
    argv = ["models", "convert-compressai", "mbt2018", "--quality", "1"]
    assert main([*argv, str(tmp_path / "no.pth.tar"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["models", "info", str(tmp_path)]) == 2
    assert "has no config.json" in capsys.readouterr().err


def test_zoo_manifest_lists_every_compressai_model():
    manifest = zoo.load_zoo()
    entries = manifest["models"]
    assert len({e["repo_id"] for e in entries}) == len(entries)
    for arch, metrics in model_urls.items():
        for metric, urls in metrics.items():
            for quality, url in urls.items():
                repo = zoo.repo_id(arch, quality, metric)
                assert repo == f"pku-aigi/{arch}-{metric}-q{quality}"
                [entry] = zoo.find_models(arch, quality=quality, metric=metric)
                assert entry["source"] == url and entry["trained_on"] == "Vimeo-90k"


def test_repo_root_manifest_is_the_package_data():
    root = ROOT / "models" / "zoo.json"
    assert root.is_symlink()
    assert root.resolve() == (ROOT / "src" / "pku_aigi" / "models" / "zoo" / "zoo.json").resolve()
    assert json.loads(root.read_text()) == zoo.load_zoo()


def test_zoo_lookup_error_names_what_exists():
    with pytest.raises(ModelError, match=r"no cheng2020-anchor quality 8 mse.*\(1, 'ms-ssim'\)"):
        zoo.repo_id("cheng2020-anchor", 8, "mse")
