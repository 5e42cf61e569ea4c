"""Every network failure becomes one PkuAigiError line; a host is tried once per process.

The Hub endpoint is a closed port on 127.0.0.1 (``HF_ENDPOINT``, read by every library
at import, hence a subprocess): the dataset loader, streaming, the CLIP text encoder,
``push_to_hub`` of a model and of a dataset export all fail at once with one line naming
what could not be reached and what to do. No address other than 127.0.0.1 is contacted.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import constants

from pku_aigi.train import publish

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import huggingface_hub.utils._http as hf_http
    sleeps = []
    hf_http.time.sleep = lambda seconds: sleeps.append(seconds)
    import pku_aigi
    from pku_aigi.errors import PkuAigiError
    from pku_aigi.models import create
    from pku_aigi.models.architectures import text_encoder
    from pku_aigi.data import export

    out = {}

    def attempt(name, call):
        start = time.perf_counter()
        try:
            call()
            out[name] = {"error": None}
        except PkuAigiError as error:
            out[name] = {"type": type(error).__name__, "error": str(error)}
        except Exception as error:
            out[name] = {"type": "RAW " + type(error).__name__, "error": str(error)}
        out[name]["seconds"] = time.perf_counter() - start

    attempt("dataset", lambda: pku_aigi.load_dataset("mj52", split="validation"))
    attempt("dataset_again", lambda: pku_aigi.load_dataset("mj52", split="validation"))
    attempt("stream", lambda: pku_aigi.load_dataset("mj52", split="train", streaming=True))
    attempt("clip", lambda: text_encoder.load_text_encoder("openai/clip-vit-base-patch32"))
    model = create("bmshj2018-factorized", quality=1, N=8, M=8)
    attempt("push_model", lambda: model.push_to_hub("someone/tiny"))
    attempt("push_dataset", lambda: export.push_to_hub(sys.argv[1], "someone/data"))
    out["sleeps"] = sleeps
    print(json.dumps(out))
    """
)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_every_network_failure_is_one_line_and_fails_fast(tmp_path):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_XET="1")
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "README.md").write_text("---\n---\n")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "export")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    host = endpoint.removeprefix("http://")
    assert results.pop("sleeps") == []  # no backoff anywhere
    for name, result in results.items():
        assert result["type"] in ("DatasetError", "ModelError", "NetworkError"), (name, result)
        message = result["error"]
        assert "\n" not in message and "Traceback" not in message, (name, message)
        assert f"cannot connect to {host}" in message, (name, message)
    assert "--data-dir" in results["dataset"]["error"]
    assert "--data-dir" in results["stream"]["error"]
    assert "CLIP text encoder" in results["clip"]["error"]
    assert "push model repo someone/tiny" in results["push_model"]["error"]
    assert "save_pretrained" in results["push_model"]["error"]
    assert "push dataset repo someone/data" in results["push_dataset"]["error"]
    assert "HF_HUB_OFFLINE" not in results["push_dataset"]["error"]  # nothing to read offline
    assert "HF_HUB_OFFLINE=1" in results["dataset"]["error"]
    assert "HF_HUB_OFFLINE=1" in results["stream"]["error"]
    # "No duplicated warning lines": the dataset's Hub warning appears once for two loads.
    assert done.stderr.count("cannot reach the Hub") <= 1, done.stderr[-3000:]


def test_streaming_offline_says_offline_not_missing(monkeypatch):
    from pku_aigi import load_dataset
    from pku_aigi.errors import DatasetError

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DatasetError, match="streaming reads the archives.*HF_HUB_OFFLINE=1") as e:
        load_dataset("sd21", split="train", streaming=True)
    assert "missing" not in str(e.value)


def test_train_push_prints_the_zoo_entry_to_add(tmp_path, monkeypatch, capsys):
    from pku_aigi.models import create, zoo

    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(repo_id)
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        calls.append(sorted(p.name for p in Path(folder_path).iterdir()))
        return f"https://huggingface.co/{repo_id}/commit/1"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    model = create("mbt2018-mean", quality=3, N=8, M=8)
    publish.push(model, "lab/mbt2018-mean-aigi-q3", "PKU-AIGI-500K sd21b train")
    printed = capsys.readouterr().out
    entry = json.loads(printed.strip().splitlines()[-1])
    assert entry == {
        "repo_id": "lab/mbt2018-mean-aigi-q3",
        "architecture": "mbt2018-mean",
        "quality": 3,
        "metric": "mse",
        "trained_on": "PKU-AIGI-500K sd21b train",
        "source": "https://huggingface.co/lab/mbt2018-mean-aigi-q3",
    }
    assert "PKU_AIGI_ZOO" in printed
    assert calls == ["lab/mbt2018-mean-aigi-q3", ["README.md", "config.json", "model.safetensors"]]
    extra = tmp_path / "zoo.json"
    extra.write_text(json.dumps({"models": [entry]}))
    monkeypatch.setenv("PKU_AIGI_ZOO", str(extra))
    assert zoo.repo_id("mbt2018-mean", 3, "mse") == "lab/mbt2018-mean-aigi-q3"
