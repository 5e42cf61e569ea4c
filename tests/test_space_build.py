"""`pku-aigi space build`: a Space folder whose requirements install offline.

The folder's requirements are installed into a fresh venv with no index; the heavy
dependencies (torch, gradio, ...) come from this interpreter's site-packages through a
.pth file, so pip resolves them as installed and only installs the built wheel. Then the
Space's app.py is imported from that venv, with this checkout off the path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from pku_aigi.cli import main
from pku_aigi.sample import SAMPLE_NAME
from pku_aigi.space.build import CPU_TORCH_LINES, build_space

ROOT = Path(__file__).resolve().parents[1]
MAX_WHEEL_BYTES = 6_000_000


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    outputs = [ROOT / "build", ROOT / "dist", ROOT / "src" / "pku_aigi.egg-info"]
    before = [path.exists() for path in outputs]
    folder = build_space(tmp_path_factory.mktemp("space") / "pku-aigi-space")
    assert [path.exists() for path in outputs] == before  # the build left the tree alone
    return folder


def the_wheel(folder: Path) -> Path:
    wheels = list(folder.glob("pku_aigi-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_folder_holds_app_card_wheel_and_requirements(space):
    wheel = the_wheel(space)
    assert {p.name for p in space.iterdir()} == {
        "app.py", "README.md", "requirements.txt", wheel.name,
    }  # fmt: skip
    assert (space / "app.py").read_bytes() == (ROOT / "space" / "app.py").read_bytes()
    card = (space / "README.md").read_text()
    assert card.startswith("---\n") and "sdk: gradio" in card and "app_file: app.py" in card
    requirements = [
        line.strip()
        for line in (space / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert requirements == [*CPU_TORCH_LINES, f"./{wheel.name}"]
    assert CPU_TORCH_LINES[0] == "--extra-index-url https://download.pytorch.org/whl/cpu"


def test_wheel_ships_the_sample_and_stays_small(space):
    wheel = the_wheel(space)
    assert wheel.stat().st_size < MAX_WHEEL_BYTES
    names = set(zipfile.ZipFile(wheel).namelist())
    sample = f"pku_aigi/sample/{SAMPLE_NAME}/"
    assert {sample + "metadata.jsonl", sample + "LICENSE", sample + "README.md"} <= names
    assert len([n for n in names if n.startswith(sample) and n.endswith(".webp")]) == 8
    assert "pku_aigi/models/zoo/zoo.json" in names and "pku_aigi/space/build.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_requirements_install_offline_and_the_app_imports(space, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    shared = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "shared-deps.pth").write_text("\n".join(sorted(shared)) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--no-index", "-r", "requirements.txt"],
        cwd=space, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    assert "Successfully installed pku-aigi" in install.stdout
    probe = (
        "import app, gradio, pku_aigi\n"
        "print(pku_aigi.__file__)\n"
        "assert isinstance(app.demo, gradio.Blocks)\n"
        "labels = [getattr(b, 'label', None) or '' for b in app.demo.blocks.values()]\n"
        "print([label for label in labels if label.startswith('Examples')])\n"
    )
    run = subprocess.run(
        [python, "-c", probe], cwd=space, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    where, examples = run.stdout.strip().splitlines()[-2:]
    assert where.startswith(purelib)  # the wheel's copy, not this checkout
    assert "built-in sample" in examples


def test_non_empty_out_needs_force_which_keeps_other_files(space, tmp_path, capsys):
    out = tmp_path / "my-space"
    (out / ".git").mkdir(parents=True)
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (out / "pku_aigi-0.0.1-py3-none-any.whl").write_bytes(b"old")
    wheel = the_wheel(space)
    code = main(["space", "build", str(out), "--wheel", str(wheel), "--local"])
    err = capsys.readouterr().err
    assert code == 2 and "not empty" in err and "--force" in err
    assert {p.name for p in out.iterdir()} == {".git", "pku_aigi-0.0.1-py3-none-any.whl"}
    assert main(["space", "build", str(out), "--wheel", str(wheel), "--force", "--local"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {
        ".git", "app.py", "README.md", "requirements.txt", wheel.name,
    }  # fmt: skip
    assert (out / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"


def test_space_id_requires_the_wheel_by_its_url(space, tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["space", "build", str(out), "--wheel", str(the_wheel(space))]
    assert main(argv + ["--space-id", "org/demo"]) == 0
    assert "hf upload org/demo" in capsys.readouterr().out
    wheel = the_wheel(out).name
    lines = (out / "requirements.txt").read_text().splitlines()
    assert lines[-3:] == [
        *CPU_TORCH_LINES,
        f"pku-aigi @ https://huggingface.co/spaces/org/demo/resolve/main/{wheel}",
    ]
    assert not [line for line in lines if line.startswith("./")]  # no path a Space lacks


def test_a_folder_that_is_not_pushable_is_refused_without_space_id(space, tmp_path, capsys):
    """A relative wheel path fails on a Space (requirements are installed before the
    repository's files are there): without --space-id the build asks for it."""
    argv = ["space", "build", str(tmp_path / "s"), "--wheel", str(the_wheel(space))]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--space-id ORG/NAME" in err and "--local" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_bad_arguments_are_one_error(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for argv, message in (
        ([str(tmp_path / "file"), "--local"], "is a file"),
        (
            [str(tmp_path / "o"), "--wheel", str(tmp_path / "file"), "--local"],
            "not a pku_aigi-*.whl",
        ),
        (["/proc/pku-aigi-space", "--local"], "/proc"),
    ):
        assert main(["space", "build", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_repo_space_requirements_pin_nothing_unresolvable():
    lines = (ROOT / "space" / "requirements.txt").read_text().splitlines()
    assert not [line for line in lines if line.strip() and not line.startswith("#")]
