"""pku_aigi.load_dataset on a miniature replica of the Hub repo (tests/hub_replica.py)."""

from __future__ import annotations

import io
import shutil
import warnings

import datasets
import numpy as np
import pytest
from PIL import Image

import pku_aigi
from pku_aigi.errors import DatasetError
from pku_aigi.subsets import SUBSETS


def _pixels(source) -> np.ndarray:
    with Image.open(source) as image:
        return np.asarray(image.convert("RGB"))


def _check_examples(rows, expected):
    assert [r["file_name"] for r in rows] == [e.file_name for e in expected]
    for row, exp in zip(rows, expected):
        assert row["prompt_id"] == exp.prompt_id
        assert row["prompt"] == exp.prompt
        image = row["image"]
        assert (row["width"], row["height"]) == Image.open(exp.source).size == image.size
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), _pixels(exp.source))


@pytest.mark.parametrize("config", list(SUBSETS))
def test_train_split_matches_sources_pixel_exact(hub_replica, tmp_path, config):
    expected = hub_replica.expected[(config, "train")]
    if config == "sdxl":
        with pytest.warns(UserWarning, match="no prompt file") as record:
            ds = pku_aigi.load_dataset(
                config, "train", data_dir=hub_replica.root, cache_dir=tmp_path
            )
        assert len([w for w in record if "no prompt file" in str(w.message)]) == 1
    else:
        ds = pku_aigi.load_dataset(config, "train", data_dir=hub_replica.root, cache_dir=tmp_path)
    assert ds.num_rows == len(expected)
    assert set(ds.column_names) == {
        "image",
        "prompt",
        "prompt_id",
        "file_name",
        "subset",
        "width",
        "height",
    }
    assert set(ds["subset"]) == {config}
    _check_examples(list(ds), expected)
    # The stored bytes are the original PNG files, byte for byte.
    raw = ds.cast_column("image", datasets.Image(decode=False))
    for row, exp in zip(raw, expected):
        assert row["image"]["bytes"] == exp.source.read_bytes()


def test_validation_of_every_subset_and_missing_prompt_file(hub_replica, tmp_path):
    for config in SUBSETS:
        expected = hub_replica.expected[(config, "validation")]
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            ds = pku_aigi.load_dataset(
                config, "validation", data_dir=hub_replica.root, cache_dir=tmp_path
            )
        _check_examples(list(ds), expected)
        missing = [w for w in record if "no prompt file" in str(w.message)]
        assert len(missing) == (1 if config == "sdxl" else 0)


def test_all_splits_present_locally_and_local_test_split(hub_replica, tmp_path):
    dd = pku_aigi.load_dataset("mj52", data_dir=hub_replica.root, cache_dir=tmp_path)
    assert sorted(dd) == ["test", "train", "validation"]
    _check_examples(list(dd["test"]), hub_replica.expected[("mj52", "test")])
    assert dd["test"][1]["prompt"] == ""  # a blank prompt line stays an empty prompt


def test_streaming_yields_the_same_examples_in_the_same_order(hub_replica, tmp_path):
    ds = pku_aigi.load_dataset("sd21", "train", data_dir=hub_replica.root, cache_dir=tmp_path)
    stream_cache = tmp_path / "stream"
    stream = pku_aigi.load_dataset(
        "sd21", "train", data_dir=hub_replica.root, cache_dir=stream_cache, streaming=True
    )
    rows = list(stream)
    assert [r["file_name"] for r in rows] == ds["file_name"]
    assert [r["prompt"] for r in rows] == ds["prompt"]
    _check_examples(rows, hub_replica.expected[("sd21", "train")])
    assert not list(stream_cache.rglob("*.arrow"))  # streaming writes no Arrow files


def test_order_is_deterministic_and_cache_follows_the_files(hub_replica, tmp_path):
    local = tmp_path / "copy"
    local.mkdir()
    for name in ("MJ.zip", "MJ.txt"):
        shutil.copy(hub_replica.root / name, local / name)
    first = pku_aigi.load_dataset("mj52", "train", data_dir=local, cache_dir=tmp_path / "c")
    again = pku_aigi.load_dataset("mj52", "train", data_dir=local, cache_dir=tmp_path / "c")
    assert first["file_name"] == again["file_name"] == sorted(first["file_name"])
    # Changing a prompt file must not serve the stale cache.
    (local / "MJ.txt").write_text("new one\nnew two\nnew three")
    changed = pku_aigi.load_dataset("mj52", "train", data_dir=local, cache_dir=tmp_path / "c")
    assert changed["prompt"][0] == "new one"


def test_unknown_config_and_split(hub_replica):
    with pytest.raises(DatasetError, match="unknown config 'mj5'.*mj52"):
        pku_aigi.load_dataset("mj5", data_dir=hub_replica.root)
    with pytest.raises(DatasetError, match="unknown split 'valid'.*validation"):
        pku_aigi.load_dataset("mj52", "valid", data_dir=hub_replica.root)


def test_test_split_is_not_on_the_hub(hub_replica, tmp_path):
    with pytest.raises(DatasetError, match="not on the Hugging Face Hub.*data_dir"):
        pku_aigi.load_dataset("sd21", "test", cache_dir=tmp_path)
    # A local copy without test images says the same, with the expected layout.
    with pytest.raises(DatasetError, match=r"not on the Hugging Face Hub.*test/SD21/<N>\.png"):
        pku_aigi.load_dataset("sd21", "test", data_dir=hub_replica.root, cache_dir=tmp_path)


def test_missing_archive_part_is_named(hub_replica, tmp_path):
    local = tmp_path / "copy"
    shutil.copytree(hub_replica.root, local, ignore=shutil.ignore_patterns("SD21.z07"))
    with pytest.raises(DatasetError, match=r"SD21\.z07.*missing"):
        pku_aigi.load_dataset("sd21", "train", data_dir=local, cache_dir=tmp_path)
    shutil.copytree(hub_replica.root, tmp_path / "b", ignore=shutil.ignore_patterns("MJ.zip"))
    with pytest.raises(DatasetError, match=r"MJ\.zip is missing"):
        pku_aigi.load_dataset("mj52", "train", data_dir=tmp_path / "b", cache_dir=tmp_path)


@pytest.mark.filterwarnings("ignore:.*no prompt file")
def test_corrupt_archive_part_is_named(hub_replica, tmp_path):
    local = tmp_path / "copy"
    shutil.copytree(hub_replica.root, local)
    part = local / "SD-XL.z04"
    data = bytearray(part.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # same size, bad content
    part.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"SD-XL\.z0[34].*corrupt"):
        pku_aigi.load_dataset("sdxl", "train", data_dir=local, cache_dir=tmp_path)
    truncated = local / "SD21.z05"
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(DatasetError, match=r"SD21\.z05 of SD21\.zip has the wrong size"):
        pku_aigi.load_dataset("sd21", "train", data_dir=local, cache_dir=tmp_path)
    (local / "MJ.zip").write_bytes((hub_replica.root / "MJ.zip").read_bytes()[:-100])
    with pytest.raises(DatasetError, match=r"MJ\.zip .*(truncated|corrupt)"):
        pku_aigi.load_dataset("mj52", "train", data_dir=local, cache_dir=tmp_path)


def test_prompt_line_that_does_not_exist(hub_replica, tmp_path):
    local = tmp_path / "copy"
    local.mkdir()
    shutil.copy(hub_replica.root / "MOD.zip", local)
    (local / "MOD.txt").write_text("only one line\n")  # images need lines 1 and 2
    with pytest.raises(DatasetError, match=r"needs line 2 of the prompt file MOD\.txt.*1 lines"):
        pku_aigi.load_dataset("mod", "train", data_dir=local, cache_dir=tmp_path)
    assert not list(tmp_path.rglob("*.arrow"))  # nothing half-written


def test_decoded_image_is_the_png_decoder_output(hub_replica, tmp_path):
    ds = pku_aigi.load_dataset("mod", "validation", data_dir=hub_replica.root, cache_dir=tmp_path)
    raw = ds.cast_column("image", datasets.Image(decode=False))[0]["image"]
    assert Image.open(io.BytesIO(raw["bytes"])).format == "PNG"
    assert ds[0]["width"] == 1408 and ds[0]["height"] == 640


def test_streaming_from_a_url_reads_the_parts_through_fsspec(hub_replica):
    # The code path of streaming from the Hub (hf://...), exercised with file:// URLs.
    url = hub_replica.root.as_uri()
    with pytest.warns(UserWarning, match="no prompt file"):
        stream = pku_aigi.load_dataset("sdxl", "validation", data_dir=url, streaming=True)
    _check_examples(list(stream), hub_replica.expected[("sdxl", "validation")])
    train = pku_aigi.load_dataset("sd21", "train", data_dir=url, streaming=True)
    _check_examples(list(train), hub_replica.expected[("sd21", "train")])
