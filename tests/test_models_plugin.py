"""A third-party architecture, installed as a throw-away distribution from the README's
example, is first-class: create, save/load, .aigic files, decompress, listing, bench and
the Space."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

import pku_aigi
from pku_aigi.codecs import container

SRC = Path(pku_aigi.__file__).resolve().parents[1]
README = Path(__file__).resolve().parents[1] / "README.md"
PLUGIN = README.read_text().split("<!-- architecture plugin example -->\n```python\n")[1]
PLUGIN = PLUGIN.split("```")[0]

CHECKS = """
import json, sys
from pathlib import Path
import torch
from pku_aigi import models
from pku_aigi.space.catalog import Catalog

folder = Path(sys.argv[1]) / "local" / "tsf-q2"
model = models.create("three-step-factorized", quality=2)
model.save_pretrained(folder)
loaded = models.AutoCodec.from_pretrained(folder)
same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                             loaded.state_dict().values()))
option = Catalog.discover(sys.argv[1]).get("three-step-factorized (mse)")
print(json.dumps({
    "available": models.available(),
    "class": type(loaded).__name__,
    "same": same,
    "config": loaded.config,
    "space": [option.available, list(option.codec.ladder.steps)],
}))
"""


def test_plugin_architecture_is_first_class(tmp_path, pku_examples):
    site = tmp_path / "site"
    info = site / "aigi_three_step-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aigi-three-step\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[pku_aigi.architectures]\nthree-step-factorized = aigi_three_step:spec\n"
    )
    (site / "aigi_three_step.py").write_text(PLUGIN)
    models_dir = tmp_path / "models"
    env = {"PYTHONPATH": f"{site}:{SRC}", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}

    def run(*argv, cwd=tmp_path):
        done = subprocess.run(
            [sys.executable, *map(str, argv)],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    found = json.loads(run("-c", CHECKS, models_dir))
    assert "three-step-factorized" in found["available"]
    assert found["class"] == "ThreeStepFactorized" and found["same"]
    assert found["config"]["quality"] == 2 and (found["config"]["N"], found["config"]["M"]) == (
        48,
        64,
    )
    assert found["space"] == [True, [2]]

    listing = run("-m", "pku_aigi", "models", "list")
    assert "three-step-factorized" in listing

    image = tmp_path / "crop.png"
    with Image.open(pku_examples / "sd21b" / "1.png") as opened:
        opened.convert("RGB").crop((0, 0, 150, 70)).save(image)
    aigic = tmp_path / "crop.aigic"
    run("-m", "pku_aigi", "compress", image, "-o", aigic, "--model", models_dir / "local/tsf-q2")
    header = container.parse(aigic.read_bytes())
    assert header.architecture == "three-step-factorized" and header.model_id == "tsf-q2"
    assert header.coded_size == (152, 72) and header.latent_shape == (9, 19)  # y at 1/8
    # Decoded by the name in the header alone (the folder resolves from here).
    run(
        "-m", "pku_aigi", "decompress", aigic, "-o", tmp_path / "back.png", cwd=models_dir / "local"
    )
    with Image.open(tmp_path / "back.png") as back:
        assert back.size == (150, 70) and back.mode == "RGB"

    images = tmp_path / "images"
    images.mkdir()
    with Image.open(pku_examples / "sd21b" / "1.png") as opened:
        opened.convert("RGB").crop((0, 0, 192, 176)).save(images / "a.png")
    out = tmp_path / "bench"
    run("-m", "pku_aigi", "bench", "--images", images, "--model", models_dir / "local/tsf-q2",
        "--codecs", "jpeg", "--anchor", "jpeg", "--qualities", "jpeg=20,40,60,80", "--out", out,
        "--workers", "1", "--no-progress")  # fmt: skip
    rows = [json.loads(line) for line in (out / "measurements.jsonl").read_text().splitlines()]
    plugin_rows = [row for row in rows if row["codec"].startswith("three-step-factorized")]
    assert len(plugin_rows) == 1 and plugin_rows[0]["quality"] == 2 and plugin_rows[0]["bpp"] > 0
