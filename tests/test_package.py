"""The package skeleton: the subsets table, lazy public API and the CLI's error contract."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pku_aigi
from pku_aigi import cli, subsets
from pku_aigi.errors import DatasetError


def test_subsets_table_matches_hub_layout():
    assert subsets.CONFIGS == ("sd21b", "sd21", "sdxl", "mj52", "mod")
    sd21 = subsets.get_subset("sd21").train_archives[0]
    assert sd21.parts[0] == "SD21.z01" and sd21.parts[-2] == "SD21.z18"
    assert sd21.last_disk == "SD21.zip" and len(sd21.parts) == 19
    sdxl = subsets.get_subset("sdxl")
    assert sdxl.prompt_file is None and len(sdxl.train_archives[0].parts) == 16
    assert subsets.get_subset("mj52").hub_files("train") == ("MJ.zip", "MJ.txt")
    assert subsets.get_subset("sd21b").hub_files("train") == (
        "SD-2_1-B-part1.zip",
        "SD-2_1-B-part2.zip",
        "SD-2_1-B.txt",
    )
    assert subsets.get_subset("mod").hub_files("validation") == ("vaild.zip",)
    assert subsets.get_subset("mod").hub_files("test") == ()
    assert subsets.get_subset("mj52").validation_prompt_file == "vaild/MJ.txt"
    # The authors' README: 528k+ images in all (train + validation + test).
    total = sum(s.num_train + s.num_validation + s.num_test for s in subsets.SUBSETS.values())
    assert 528_000 < total < 529_000


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: subsets.get_subset("mj5"), "unknown config 'mj5'"),
        (lambda: subsets.check_split("dev"), "unknown split 'dev'"),
    ],
)
def test_bad_names_raise_clear_errors(call, message):
    with pytest.raises(DatasetError, match=message):
        call()


def test_lazy_public_api():
    assert pku_aigi.__version__
    assert pku_aigi.subsets is subsets
    with pytest.raises(AttributeError):
        pku_aigi.not_a_thing  # noqa: B018


def test_cli_without_command_prints_help_and_fails(capsys):
    assert cli.main([]) == cli.EXIT_USER_ERROR
    assert "usage: pku-aigi" in capsys.readouterr().out


def test_console_script_version():
    result = subprocess.run(
        [sys.executable, "-m", "pku_aigi", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"pku-aigi {pku_aigi.__version__}"


def test_every_area_registers_its_commands():
    parser = cli.build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)
    expected = {"data", "codecs", "compress", "decompress", "models", "bench", "train", "demo"}
    assert expected <= commands, f"missing commands: {expected - commands}"
