"""`pku-aigi data export|list|info|script`: Parquet + card that plain datasets can load."""

from __future__ import annotations

import datasets

from pku_aigi.cli import main
from pku_aigi.data import export as export_module
from pku_aigi.data.card import render_card
from pku_aigi.data.script_generator import PACKAGE

PROJECT = PACKAGE.parents[1]


def test_export_loads_with_plain_datasets(hub_replica, tmp_path, capsys):
    out = tmp_path / "repo"
    argv = ["data", "export", "--config", "mj52", "--config", "sd21", "--split", "train"]
    argv += ["--split", "validation", "--data-dir", str(hub_replica.root), "--out", str(out)]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--max-shard-size", "4MB"]
    assert main(argv) == 0
    shards = sorted(p.name for p in (out / "data" / "sd21").iterdir())
    assert shards[0] == "train-00000-of-00002.parquet" and len(shards) == 3
    for config in ("mj52", "sd21"):
        dd = datasets.load_dataset(str(out), config, cache_dir=str(tmp_path / "plain"))
        assert sorted(dd) == ["train", "validation"]
        for split in dd:
            expected = hub_replica.expected[(config, split)]
            ds = dd[split]
            assert ds["file_name"] == [e.file_name for e in expected]
            assert ds["prompt"] == [e.prompt for e in expected]
            raw = ds.cast_column("image", datasets.Image(decode=False))
            assert [r["image"]["bytes"] for r in raw] == [e.source.read_bytes() for e in expected]
    card = (out / "README.md").read_text()
    assert "config_name: sd21" in card and "path: data/sd21/train-*.parquet" in card
    assert "| `mj52` | MJ5.2 | Midjourney 5.2 | 5 | 2 |" in card  # exported counts

    # Exporting again must not silently replace the shards.
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert main(argv + ["--force"]) == 0


def test_export_refuses_a_foreign_readme(hub_replica, tmp_path):
    (tmp_path / "README.md").write_text("my own notes")
    argv = ["data", "export", "--config", "mod", "--split", "validation"]
    argv += ["--data-dir", str(hub_replica.root), "--out", str(tmp_path)]
    assert main(argv + ["--cache-dir", str(tmp_path / "c")]) == 2
    assert (tmp_path / "README.md").read_text() == "my own notes"


def test_push_to_hub_uploads_the_folder(tmp_path, monkeypatch):
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create", repo_id, kwargs["repo_type"]))

        def upload_folder(self, **kwargs):
            calls.append(("upload", kwargs["repo_id"], kwargs["folder_path"]))
            return "commit-url"

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert export_module.push_to_hub(tmp_path, "me/pku") == "commit-url"
    assert calls == [("create", "me/pku", "dataset"), ("upload", "me/pku", str(tmp_path))]


def test_list_and_info(hub_replica, capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "sd21 " in out and "SD21.z01..SD21.zip" in out and "not on the Hub" in out
    assert main(["data", "info", "sdxl", "--data-dir", str(hub_replica.root)]) == 0
    out = capsys.readouterr().out
    assert "SD-XL.zip: 16 part(s)" in out and "5 PNG images" in out
    assert main(["data", "info", "sdxl", "--data-dir", str(hub_replica.root / "nope")]) == 2


def test_dataset_repo_card_is_current():
    committed = (PROJECT / "dataset_script" / "README.md").read_text()
    assert committed == render_card(), "run `pku-aigi data script` to regenerate"


def test_offline_push_names_a_command_that_works(tmp_path, monkeypatch):
    """It said "push it later with the same command", which then refused the shards."""
    import pytest
    from huggingface_hub import constants

    from pku_aigi.errors import PkuAigiError

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PkuAigiError) as raised:
        export_module.push_to_hub(tmp_path / "my export", "me/pku")
    message = str(raised.value)
    assert f"hf upload me/pku '{tmp_path}/my export' . --repo-type dataset" in message
    assert "same command" not in message
