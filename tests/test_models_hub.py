"""Hub round trips: save_pretrained / from_pretrained / push_to_hub, strict loading."""

from __future__ import annotations

import json
import shutil

import huggingface_hub
import pytest
import torch
from safetensors.torch import load_file, save_file

import pku_aigi
import pku_aigi.models as models
from pku_aigi.errors import ModelError
from pku_aigi.models.hub.card import write_model_card

X = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def tiny(arch: str = "mbt2018-mean", **hparams):
    torch.manual_seed(0)
    return models.create(arch, quality=2, **({"N": 16, "M": 24} | hparams)).eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny mbt2018-mean saved with save_pretrained, and the model itself."""
    model = tiny()
    folder = tmp_path_factory.mktemp("hub") / "mbt2018-mean-tiny"
    model.save_pretrained(folder)
    return model, folder


def test_saved_folder_has_safetensors_config_and_card(saved):
    model, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((folder / "config.json").read_text())
    assert config == {
        "architecture": "mbt2018-mean",
        "quality": 2,
        "metric": "mse",
        "lmbda": 0.0035,
        "N": 16,
        "M": 24,
    }
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: pku-aigi" in card
    assert "1809.02736" in card and "lambda = 0.0035" in card and "N=16, M=24" in card
    tensors = load_file(folder / "model.safetensors")
    assert tensors["gaussian_conditional._quantized_cdf"].numel() > 0  # coder tables saved


@pytest.mark.parametrize("loader", ["auto", "class", "package"])
def test_round_trip_is_bit_exact(saved, loader):
    model, folder = saved
    load = {
        "auto": models.AutoCodec.from_pretrained,
        "class": type(model).from_pretrained,
        "package": pku_aigi.AutoCodec.from_pretrained,
    }[loader]
    loaded = load(folder)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert not loaded.training
    expected, actual = model.state_dict(), loaded.state_dict()
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    with torch.no_grad():
        ours, theirs = model.compress(X), loaded.compress(X)
        assert ours == theirs
        assert torch.equal(model.decompress(**ours)["x_hat"], loaded.decompress(**theirs)["x_hat"])


def test_loaded_model_is_ready_without_update_even_if_tables_were_dropped(saved, tmp_path):
    model, folder = saved
    copy = tmp_path / "no-tables"
    shutil.copytree(folder, copy)
    tensors = load_file(folder / "model.safetensors")
    stripped = {k: v for k, v in tensors.items() if not k.endswith(("_cdf", "_offset", "_length"))}
    save_file(stripped, copy / "model.safetensors", metadata={"format": "pt"})
    loaded = models.AutoCodec.from_pretrained(copy)
    assert loaded.entropy_coder_ready()
    with torch.no_grad():
        assert loaded.compress(X)["strings"] == model.compress(X)["strings"]


def _edit_weights(folder, edit):
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda f: _edit_weights(f, lambda t: t.pop("g_a.0.weight")),
            "missing weights.*g_a.0.weight",
        ),
        (
            lambda f: _edit_weights(f, lambda t: t.update(extra=torch.zeros(2))),
            "unexpected weights.*extra",
        ),
        (
            lambda f: _edit_config(f, N=8),
            r"wrong shape.* \(16, 3, 1\) \(model needs \(8, 3, 1\)\).* more.*N=8",
        ),
        (
            lambda f: _edit_config(f, architecture="mbt2020"),
            "unknown architecture 'mbt2020'.*mbt2018-mean",
        ),
        (lambda f: _edit_config(f, architecture=None), "has no 'architecture'"),
        (lambda f: _edit_config(f, quality=12), "no quality 12"),
        (lambda f: _edit_config(f, K=2), "unknown key 'K': mbt2018-mean takes .* N, M"),
        (lambda f: (f / "config.json").write_text("{not json"), "cannot read .*config.json"),
        (lambda f: (f / "config.json").unlink(), "has no config.json: it is not a model saved"),
        (lambda f: (f / "model.safetensors").unlink(), "has no model.safetensors"),
        (lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 20), "cannot read weights"),
        (
            lambda f: (f / "model.safetensors").rename(f / "pytorch_model.bin"),
            "pickled weights.*never loaded",
        ),
    ],
    ids=[
        "missing-key",
        "unexpected-key",
        "wrong-shape",
        "unknown-arch",
        "no-arch",
        "bad-quality",
        "unknown-hparam",
        "bad-json",
        "no-config",
        "no-weights",
        "corrupt-weights",
        "pickle-only",
    ],
)
def test_strict_loading_errors(saved, tmp_path, damage, message):
    _, folder = saved
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    damage(copy)
    with pytest.raises(ModelError, match=message):
        models.AutoCodec.from_pretrained(copy)


def test_loading_another_architecture_through_a_subclass_fails(saved):
    _, folder = saved
    other = models.get_spec("bmshj2018-hyperprior").load_model_class()
    with pytest.raises(ModelError, match="is a 'mbt2018-mean', not a 'bmshj2018-hyperprior'"):
        other.from_pretrained(folder)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        models.AutoCodec.from_pretrained(tmp_path / "nothing")


@pytest.mark.parametrize("loader", ["auto", "class", "codec"])
def test_a_local_load_reads_config_json_once(saved, monkeypatch, loader):
    """One load, one read: the folder module reads and checks config.json, nobody else."""
    import builtins
    import io

    from pku_aigi.codecs.learned import LearnedCodec

    model, folder = saved
    reads = []

    def counting(real):
        def open_(file, *args, **kwargs):
            if str(file).endswith("config.json"):
                reads.append(str(file))
            return real(file, *args, **kwargs)

        return open_

    monkeypatch.setattr(builtins, "open", counting(builtins.open))
    monkeypatch.setattr(io, "open", counting(io.open))
    load = {
        "auto": models.AutoCodec.from_pretrained,
        "class": type(model).from_pretrained,
        "codec": lambda path: LearnedCodec.from_pretrained(path, device="cpu").model,
    }[loader]
    assert load(folder).config == model.config
    assert len(reads) == 1, reads


def _hub_cache(cache, repo_id, source, commit, refs=("main",)):
    """Lay out ``source``'s files as huggingface_hub's cache holds a downloaded repo."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(source, repo / "snapshots" / commit)
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(commit)


def test_repo_id_resolves_offline_from_the_hub_cache(saved, tmp_path, monkeypatch):
    model, folder = saved
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cache = tmp_path / "hub-cache"
    old, new = "a" * 40, "b" * 40
    _hub_cache(cache, "pku-aigi/tiny", folder, new)
    previous = tmp_path / "previous"
    shutil.copytree(folder, previous)
    _edit_config(previous, lmbda=0.5)
    _hub_cache(cache, "pku-aigi/tiny", previous, old, refs=("v0",))

    latest = models.AutoCodec.from_pretrained("pku-aigi/tiny", cache_dir=cache)
    assert latest.config == model.config
    with torch.no_grad():
        assert latest.compress(X) == model.compress(X)
    tagged = models.AutoCodec.from_pretrained("pku-aigi/tiny", revision="v0", cache_dir=cache)
    assert tagged.config["lmbda"] == 0.5
    by_commit = models.AutoCodec.from_pretrained("pku-aigi/tiny", revision=old, cache_dir=cache)
    assert by_commit.config["lmbda"] == 0.5
    with pytest.raises(ModelError, match="revision v9.*not in the local Hugging Face cache"):
        models.AutoCodec.from_pretrained("pku-aigi/tiny", revision="v9", cache_dir=cache)
    with pytest.raises(ModelError, match="'pku-aigi/other'.*not in the local"):
        models.AutoCodec.from_pretrained("pku-aigi/other", cache_dir=cache)


def test_push_to_hub_uploads_weights_config_and_card(saved, monkeypatch):
    model, _ = saved
    uploaded = {}

    def create_repo(self, repo_id, **kwargs):
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        uploaded["repo_id"] = repo_id
        uploaded["kwargs"] = kwargs
        uploaded["files"] = {p.name: p.read_bytes() for p in folder_path.iterdir()}
        return "https://huggingface.co/pku-aigi/tiny/commit/1"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(model, "card_info", {"source": "trained by the unit test"}, raising=False)
    assert model.push_to_hub("pku-aigi/tiny") == "https://huggingface.co/pku-aigi/tiny/commit/1"
    files = uploaded["files"]
    assert uploaded["repo_id"] == "pku-aigi/tiny" and uploaded["kwargs"]["repo_type"] == "model"
    assert sorted(files) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads(files["config.json"])["architecture"] == "mbt2018-mean"
    assert b"trained by the unit test" in files["README.md"]


def test_model_card_records_training_rd_points_and_survives_a_reload(tmp_path):
    model = tiny("bmshj2018-factorized", N=8, M=8)
    model.save_pretrained(tmp_path / "a")
    training = {"data": "PKU-AIGI-500K sd21b train", "steps": 1000, "batch_size": 8}
    points = [{"dataset": "mj52 validation", "bpp": 0.3125, "psnr": 31.25}]
    write_model_card(model, tmp_path / "a", training=training, rd_points=points, source="test run")
    card = (tmp_path / "a" / "README.md").read_text()
    assert "- Training data: PKU-AIGI-500K sd21b train" in card and "- Steps: 1000" in card
    assert "| dataset | bpp | psnr |" in card and "| mj52 validation | 0.3125 | 31.25 |" in card
    assert "test run" in card and "Forerunner/PKU-AIGI-500K" in card.split("---")[1]
    model.save_pretrained(tmp_path / "b")
    loaded = models.AutoCodec.from_pretrained(tmp_path / "b")
    assert loaded.card_info == {"training": training, "rd_points": points, "source": "test run"}
    loaded.save_pretrained(tmp_path / "c")
    assert (tmp_path / "c" / "README.md").read_text() == card
