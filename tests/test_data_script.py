"""The legacy loading script (datasets < 4) is generated from the package and yields the same."""

from __future__ import annotations

import importlib.util
import re
import sys

import datasets
import pytest

from pku_aigi.data.builder import PkuAigi500K
from pku_aigi.data.script_generator import PACKAGE, SCRIPT_NAME, render_script

SCRIPT = PACKAGE.parents[1] / "dataset_script" / SCRIPT_NAME


def test_script_is_generated_from_the_current_package():
    assert SCRIPT.read_text() == render_script(), "run `pku-aigi data script` to regenerate"


@pytest.fixture(scope="module")
def script_module():
    spec = importlib.util.spec_from_file_location("pku_aigi_500k_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as datasets does: dataclasses look the module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_script_does_not_need_the_package():
    lines = SCRIPT.read_text().splitlines()
    assert not [line for line in lines if re.match(r"\s*(from|import) (pku_aigi|\.)", line)]


def _rows(builder, split):
    builder.download_and_prepare()
    ds = builder.as_dataset(split=split).cast_column("image", datasets.Image(decode=False))
    return [dict(r, image=r["image"]["bytes"]) for r in ds]


@pytest.mark.parametrize("config,split", [("sd21", "train"), ("mod", "validation")])
def test_script_and_package_builder_yield_the_same_examples(
    hub_replica, tmp_path, script_module, config, split
):
    package = PkuAigi500K(
        config_name=config, data_dir=str(hub_replica.root), cache_dir=str(tmp_path / "a")
    )
    # Script mode, as on the Hub with datasets < 4: files come from the download manager.
    script = script_module.PkuAigi500K(
        config_name=config,
        base_path=str(hub_replica.root),
        cache_dir=str(tmp_path / "b"),
        splits=(split,),
    )
    expected = _rows(package, split)
    assert len(expected) == len(hub_replica.expected[(config, split)])
    assert _rows(script, split) == expected


def test_generator_refuses_relative_imports_it_cannot_rewrite():
    from pku_aigi.data.script_generator import strip_sibling_imports
    from pku_aigi.errors import DatasetError

    source = "from ..errors import DatasetError\nfrom .prompts import (\n    a,\n    b,\n)\nX = 1\n"
    assert strip_sibling_imports("data/builder.py", source) == "X = 1\n"
    with pytest.raises(DatasetError, match=r"data/builder.py, line 1: .*image_input.py"):
        strip_sibling_imports("data/builder.py", "from ..image_input import to_rgb\n")
    inside = "def load():\n    from .prompts import lookup_prompt\n"
    with pytest.raises(DatasetError, match=r"line 2: the relative import of data/prompts.py"):
        strip_sibling_imports("data/builder.py", inside)
