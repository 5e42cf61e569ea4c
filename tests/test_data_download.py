"""Downloads through huggingface_hub, offline, from a Hugging Face cache laid out like the Hub's."""

from __future__ import annotations

import pytest
from datasets import Image
from hub_replica import build_hub_cache

import pku_aigi
from pku_aigi.data.download import download_files, sha256_file
from pku_aigi.errors import DatasetError


def test_load_without_data_dir_reads_the_hub_files(hub_replica, tmp_path):
    build_hub_cache(hub_replica.root, tmp_path, ["vaild.zip", "MJ.zip", "MJ.txt"])
    dd = pku_aigi.load_dataset("mj52", cache_dir=tmp_path)
    assert sorted(dd) == ["train", "validation"]
    for split in ("train", "validation"):
        expected = hub_replica.expected[("mj52", split)]
        assert dd[split]["file_name"] == [e.file_name for e in expected]
        assert dd[split]["prompt"] == [e.prompt for e in expected]
    raw = dd["train"].cast_column("image", Image(decode=False))
    sources = [e.source.read_bytes() for e in hub_replica.expected[("mj52", "train")]]
    assert [r["image"]["bytes"] for r in raw] == sources


def test_download_checks_sha256_once_and_names_a_corrupt_file(hub_replica, tmp_path):
    repo = build_hub_cache(hub_replica.root, tmp_path, ["vaild.zip", "SD21.txt"], copy=True)
    folder = download_files("Forerunner/PKU-AIGI-500K", ["vaild.zip"], cache_dir=tmp_path / "hub")
    assert sorted(p.name for p in folder.iterdir()) == ["SD21.txt", "vaild.zip"]
    blob = (folder / "vaild.zip").resolve()
    assert sha256_file(blob) == blob.name
    assert list((repo / "pku_aigi-verified").iterdir())  # hashed once, remembered

    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"vaild\.zip is corrupt: its sha256"):
        pku_aigi.load_dataset("sd21", "validation", cache_dir=tmp_path)


def test_file_missing_from_cache_offline_is_a_clear_error(hub_replica, tmp_path):
    build_hub_cache(hub_replica.root, tmp_path, ["vaild.zip"])
    with pytest.raises(DatasetError, match=r"cannot download SD-2_1-B-part1\.zip.*data_dir"):
        pku_aigi.load_dataset("sd21b", "train", cache_dir=tmp_path)


def test_only_the_files_of_the_requested_split_are_fetched(hub_replica, tmp_path, monkeypatch):
    from pku_aigi.data import download

    requested = []

    def recording(repo_id, files, *args, **kwargs):
        requested.append(list(files))
        return download_files(repo_id, files, *args, **kwargs)

    monkeypatch.setattr(download, "download_files", recording)
    names = ["vaild.zip", "SD-2_1-B-part1.zip", "SD-2_1-B-part2.zip", "SD-2_1-B.txt"]
    build_hub_cache(hub_replica.root, tmp_path, names)
    pku_aigi.load_dataset("sd21b", "validation", cache_dir=tmp_path)
    dd = pku_aigi.load_dataset("sd21b", cache_dir=tmp_path)
    assert requested == [["vaild.zip"], sorted(names)]
    assert dd["train"]["file_name"] == [
        e.file_name for e in hub_replica.expected[("sd21b", "train")]
    ]
