"""The zoo resolves ids to real weights: local, cache, Hub, then the source checkpoint.

A CompressAI-format checkpoint (random weights, small N/M) named with its own sha256
prefix is served by a local HTTP server on 127.0.0.1 (tests/zoo_server.py), which also
plays a Hub that has no such repo; an extra zoo (``PKU_AIGI_ZOO``) points at it. No
other address is ever contacted: the Hub endpoint is the local server.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import time
from urllib.parse import quote

import huggingface_hub
import pytest
import torch
from compressai.models import FactorizedPrior
from huggingface_hub import constants
from zoo_server import ZooServer

from pku_aigi import network
from pku_aigi.cli import main
from pku_aigi.errors import ModelError, NetworkError
from pku_aigi.models import AutoCodec, zoo

ARCH = "bmshj2018-factorized"
TINY = {"N": 8, "M": 8}


def _checkpoint_bytes(seed: int = 0) -> tuple[bytes, dict]:
    torch.manual_seed(seed)
    net = FactorizedPrior(**TINY)
    net.update()
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    return buffer.getvalue(), net.state_dict()


def _named(stem: str, data: bytes) -> str:
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}.pth.tar"


@pytest.fixture(scope="module")
def served():
    data, state = _checkpoint_bytes()
    with ZooServer() as server:
        server.files[_named("tiny-prior-1", data)] = data
        server.state = state
        server.good = _named("tiny-prior-1", data)
        yield server


@pytest.fixture
def zoo_env(served, tmp_path, monkeypatch):
    """Online, with the Hub and the checkpoints both served by ``served`` on 127.0.0.1."""
    served.requests.clear()
    served.cut.clear()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", served.url)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        served.url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("PKU_AIGI_MODELS_DIR", raising=False)
    network.forget_unreachable()
    huggingface_hub.close_session()
    extra = tmp_path / "extra-zoo.json"

    def entries(*items):
        extra.write_text(json.dumps({"models": list(items)}))
        monkeypatch.setenv("PKU_AIGI_ZOO", str(extra))

    entries(entry("test-org/tiny-q1", served.url + "/files/" + served.good))
    yield entries
    network.forget_unreachable()
    huggingface_hub.close_session()


def entry(repo_id: str, source: str, **extra) -> dict:
    return {
        "repo_id": repo_id,
        "architecture": ARCH,
        "quality": 1,
        "metric": "mse",
        "trained_on": "Vimeo-90k",
        "source": source,
        "hparams": TINY,
        "license": "cc-by-4.0",
        **extra,
    }


def _leftovers(root):
    """Files and partial folders in the zoo cache (lock files aside)."""
    return sorted(
        p.name
        for p in root.rglob("*")
        if ".locks" not in p.parts and (p.is_file() or p.name.endswith(".partial"))
    )


def test_source_is_downloaded_verified_converted_and_reloads_offline(served, zoo_env, monkeypatch):
    model = AutoCodec.from_pretrained("test-org/tiny-q1")
    assert torch.equal(model.g_a[0].weight, served.state["g_a.0.weight"])
    paths = [path for _, path, _ in served.requests]
    assert paths[0] == "/test-org/tiny-q1/resolve/main/config.json"  # the Hub first: 404
    assert paths[-1] == "/files/" + served.good and len(served.file_requests()) == 1

    folder = zoo.converted_folder("test-org/tiny-q1")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        zoo.SOURCE_RECORD,
    ]
    assert not list((zoo.cache_root() / "downloads").glob("*"))  # the checkpoint is not kept
    card = (folder / "README.md").read_text()
    digest = hashlib.sha256(served.files[served.good]).hexdigest()
    assert served.url + "/files/" + served.good in card and digest in card
    assert "license: cc-by-4.0" in card and "not on AI-generated images" in card
    assert json.loads((folder / zoo.SOURCE_RECORD).read_text())["sha256"] == digest

    served.requests.clear()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    again = AutoCodec.from_pretrained("test-org/tiny-q1")
    assert torch.equal(again.g_a[0].weight, model.g_a[0].weight)
    assert served.requests == []  # no network at all
    assert zoo.where("test-org/tiny-q1").startswith("cached (converted)")

    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert again.compress(x)["strings"] == model.compress(x)["strings"]


def test_cached_model_loads_online_without_touching_the_network(served, zoo_env):
    AutoCodec.from_pretrained("test-org/tiny-q1")
    served.requests.clear()
    AutoCodec.from_pretrained("test-org/tiny-q1")
    assert served.requests == []


@pytest.mark.parametrize("how", ["name prefix", "full sha256"])
def test_hash_mismatch_is_a_model_error_and_leaves_nothing(served, zoo_env, how):
    data = served.files[served.good]
    if how == "name prefix":
        wrong = "tiny-prior-1-0badc0de.pth.tar"
        served.files[wrong] = data
        zoo_env(entry("test-org/bad", f"{served.url}/files/{wrong}"))
    else:
        zoo_env(entry("test-org/bad", f"{served.url}/files/{served.good}", sha256="ab" * 32))
    with pytest.raises(ModelError, match="not the expected file: its sha256 is"):
        AutoCodec.from_pretrained("test-org/bad")
    assert _leftovers(zoo.cache_root()) == []


def test_truncated_download_is_an_error_then_resumes(served, zoo_env):
    size = len(served.files[served.good])
    served.cut[served.good] = size // 3
    with pytest.raises(ModelError, match=r"cut off after \d+ of \d+ bytes.*again to resume"):
        AutoCodec.from_pretrained("test-org/tiny-q1")
    assert not zoo.converted_folder("test-org/tiny-q1").exists()
    assert _leftovers(zoo.cache_root()) == [served.good + ".incomplete"]

    model = AutoCodec.from_pretrained("test-org/tiny-q1")
    assert torch.equal(model.g_a[0].weight, served.state["g_a.0.weight"])
    ranges = [r for _, _, r in served.file_requests()]
    assert ranges[0] is None and ranges[1] == f"bytes={size // 3}-"


def test_a_file_that_is_no_checkpoint_is_a_model_error_and_leaves_nothing(served, zoo_env):
    junk = b"<html>mirror login page</html>" * 10
    name = _named("tiny-prior-1", junk)
    served.files[name] = junk
    zoo_env(entry("test-org/junk", f"{served.url}/files/{name}"))
    with pytest.raises(ModelError, match="cannot read checkpoint"):
        AutoCodec.from_pretrained("test-org/junk")
    assert _leftovers(zoo.cache_root()) == []


def test_an_entry_without_any_hash_is_refused(served, zoo_env):
    zoo_env(entry("test-org/nohash", f"{served.url}/files/tiny.pth.tar"))
    with pytest.raises(ModelError, match="no 'sha256'.*no hash prefix"):
        AutoCodec.from_pretrained("test-org/nohash")
    assert served.file_requests() == []


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_host_is_tried_once_per_process(served, zoo_env, monkeypatch):
    port = _closed_port()
    zoo_env(entry("test-org/far", f"http://127.0.0.1:{port}/files/tiny-prior-1-12345678.pth.tar"))
    connects, sleeps = [], []
    real_connect = socket.create_connection

    def counting_connect(address, *args, **kwargs):
        connects.append(address[1])
        return real_connect(address, *args, **kwargs)

    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(socket, "create_connection", counting_connect)
    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: sleeps.append(seconds))
    for _ in range(2):
        with pytest.raises(ModelError, match="cannot connect to 127.0.0.1.*HF_HUB_OFFLINE=1"):
            AutoCodec.from_pretrained("test-org/far")
    assert connects.count(port) == 1  # the second lookup did not try again
    assert network.unreachable_reason(f"127.0.0.1:{port}") is not None
    assert sleeps == []


def _hub_at_closed_port(monkeypatch) -> int:
    """Point huggingface_hub's endpoint and file URLs at a closed port on 127.0.0.1."""
    port = _closed_port()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "ENDPOINT", url)
    return port


def test_guard_makes_one_line_of_a_network_failure(zoo_env, monkeypatch):
    port = _hub_at_closed_port(monkeypatch)
    with pytest.raises(NetworkError) as caught:
        with network.guard("the Hub to list repo test-org/other", "Pass a local folder"):
            huggingface_hub.HfApi().list_repo_files("test-org/other")
    message = str(caught.value)
    assert message.startswith(
        f"cannot reach the Hub to list repo test-org/other: cannot connect to 127.0.0.1:{port}"
    )
    assert "Pass a local folder." in message and "HF_HUB_OFFLINE=1" in message
    assert "\n" not in message


def test_hub_backoff_is_skipped_on_the_first_failure(zoo_env, monkeypatch):
    """Without the policy huggingface_hub retries a refused connection 5 times (~23 s)."""
    port = _hub_at_closed_port(monkeypatch)
    import huggingface_hub.utils._http as hf_http

    sleeps = []
    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: sleeps.append(seconds))
    with pytest.raises(ModelError, match=f"cannot connect to 127.0.0.1:{port}: .*HF_HUB_OFFLINE=1"):
        AutoCodec.from_pretrained("test-org/not-in-the-zoo")
    assert sleeps == []


def test_extra_zoo_adds_and_overrides_and_the_mirror_rewrites(tmp_path, monkeypatch):
    packaged = zoo.find_entry("pku-aigi/mbt2018-mean-mse-q3")
    assert packaged["source"].startswith(zoo.COMPRESSAI_BASE_URL)
    monkeypatch.setenv("PKU_AIGI_COMPRESSAI_URL", "https://mirror.example/cai/")
    mirrored = zoo.find_entry("pku-aigi/mbt2018-mean-mse-q3")["source"]
    assert mirrored == "https://mirror.example/cai/" + packaged["source"].rsplit("/", 1)[1]

    extra = tmp_path / "zoo.json"
    own = {**packaged, "source": "https://intranet.example/m3.pth.tar", "sha256": "0" * 64}
    new = entry("org/new", "https://intranet.example/new-12345678.pth.tar")
    extra.write_text(json.dumps({"models": [own, new]}))
    monkeypatch.setenv("PKU_AIGI_ZOO", str(extra))
    assert zoo.find_entry("pku-aigi/mbt2018-mean-mse-q3")["source"] == own["source"]
    assert zoo.find_entry("org/new") == new
    assert len(zoo.load_zoo()["models"]) == len(zoo.find_models()) == 89

    extra.write_text('{"models": [{"repo_id": "x"}]}')
    with pytest.raises(ModelError, match="PKU_AIGI_ZOO=.*entry 0 lacks architecture"):
        zoo.load_zoo()
    monkeypatch.setenv("PKU_AIGI_ZOO", str(tmp_path / "missing.json"))
    with pytest.raises(ModelError, match="no such file"):
        zoo.load_zoo()


def test_weights_trained_on_ai_generated_images_are_preferred(tmp_path, monkeypatch):
    assert zoo.repo_id("mbt2018-mean", 3, "mse") == "pku-aigi/mbt2018-mean-mse-q3"
    ours = {
        "repo_id": "lab/mbt2018-mean-aigi-q3",
        "architecture": "mbt2018-mean",
        "quality": 3,
        "metric": "mse",
        "trained_on": "PKU-AIGI-500K",
        "source": "https://huggingface.co/lab/mbt2018-mean-aigi-q3",
    }
    extra = tmp_path / "zoo.json"
    extra.write_text(json.dumps({"models": [ours]}))
    monkeypatch.setenv("PKU_AIGI_ZOO", str(extra))
    assert zoo.repo_id("mbt2018-mean", 3, "mse") == "lab/mbt2018-mean-aigi-q3"
    assert zoo.repo_id("mbt2018-mean", 3, "mse", "Vimeo-90k") == "pku-aigi/mbt2018-mean-mse-q3"
    chosen = {(e["quality"]): e["repo_id"] for e in zoo.preferred_entries("mbt2018-mean", "mse")}
    assert chosen[3] == "lab/mbt2018-mean-aigi-q3" and chosen[2] == "pku-aigi/mbt2018-mean-mse-q2"


def test_compressai_card_states_source_licence_and_training_data():
    packaged = zoo.find_entry("pku-aigi/mbt2018-mean-mse-q3")
    text = zoo.source_text(packaged, "f" * 64)
    assert packaged["source"] in text and "f" * 64 in text
    assert "BSD 3-Clause Clear" in text and "CompressAI/blob/master/LICENSE" in text
    assert "natural images (Vimeo-90k" in text and "not on AI-generated images" in text
    assert zoo.default_license(packaged) == "bsd-3-clause-clear"


def test_cli_pull_and_list_zoo(served, zoo_env, capsys):
    assert main(["models", "list", "--zoo", "--arch", ARCH, "--no-hub-check"]) == 0
    out = capsys.readouterr().out
    assert "test-org/tiny-q1" in out and f"source: {served.url}/files/{served.good}" in out
    assert served.requests == []  # listing downloads nothing

    assert main(["models", "pull", "test-org/tiny-q1"]) == 0
    assert str(zoo.converted_folder("test-org/tiny-q1")) in capsys.readouterr().out
    assert main(["models", "list", "--zoo", "--json"]) == 0
    rows = {row["repo_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["test-org/tiny-q1"]["loads_from"].startswith("cached (converted)")

    assert main(["models", "pull", "nobody/nothing"]) == 2
    assert "not in the zoo: nobody/nothing" in capsys.readouterr().err
    assert main(["models", "pull"]) == 2
    assert "name zoo ids" in capsys.readouterr().err


def test_offline_a_mirror_folder_still_converts_and_failures_print_once(
    served, zoo_env, monkeypatch, tmp_path, capsys
):
    """Offline, the hints never named the two ways to get weights without the Hub, and
    `models pull` repeated the same long message once per model."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / served.good).write_bytes(served.files[served.good])
    digest = hashlib.sha256(served.files[served.good]).hexdigest()
    zoo_env(
        entry("test-org/tiny-q1", f"file://{mirror}/{served.good}", sha256=digest),
        entry("test-org/tiny-q2", served.url + "/files/" + served.good, quality=2),
        entry("test-org/tiny-q3", served.url + "/files/" + served.good, quality=3),
    )
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    code = main(["models", "pull", "test-org/tiny-q1", "test-org/tiny-q2", "test-org/tiny-q3"])
    captured = capsys.readouterr()
    assert code == 2 and served.requests == []
    assert str(zoo.converted_folder("test-org/tiny-q1")) in captured.out  # from the folder
    failed = captured.err.strip().splitlines()
    assert failed[0].startswith("test-org/tiny-q2, test-org/tiny-q3: failed: these models are")
    assert "PKU_AIGI_COMPRESSAI_URL" in failed[0] and "convert-compressai" in failed[0]
    assert failed[1:] == ["pku-aigi models: error: 2 of 3 models could not be pulled (see above)"]
    with pytest.raises(ModelError, match="convert-compressai bmshj2018-factorized FILE "
                       "--quality 2 --metric mse --out DIR"):  # fmt: skip
        zoo.resolve("test-org/tiny-q2")


def test_space_and_bench_families_come_from_the_zoo(served, zoo_env, monkeypatch, tmp_path):
    from pku_aigi.codecs.families import discover_families

    source = served.url + "/files/" + served.good
    zoo_env(entry("test-org/tiny-q1", source, trained_on="PKU-AIGI-500K (test)"))
    AutoCodec.from_pretrained("test-org/tiny-q1")  # fetched and converted once
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    served.requests.clear()

    found = discover_families()
    family = found["bmshj2018-factorized (mse)"]  # preferred over CompressAI's q1
    assert family.sources == {1: "test-org/tiny-q1"}  # q2-q8: not cached, left out
    assert found["mbt2018-mean (mse)"].startswith(  # one message for the eight models
        "8 models (pku-aigi/mbt2018-mean-mse-q1 ... pku-aigi/mbt2018-mean-mse-q8): these "
        "models are not in the local cache and HF_HUB_OFFLINE=1 is set. Get them once"
    )
    image = torch.rand(3, 192, 192).mul(255).byte().permute(1, 2, 0).numpy()
    from PIL import Image

    picture = Image.fromarray(image)
    assert family.decode(family.encode(picture, 1)).size == picture.size

    images = tmp_path / "images"
    images.mkdir()
    picture.save(images / "a.png")
    argv = ["bench", "--images", str(images), "--codecs", "jpeg,bmshj2018-factorized"]
    argv += ["--qualities", "bmshj2018-factorized=1", "--anchor", "jpeg", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "bench")]) == 0
    assert served.requests == []  # all from the cache
    results = (tmp_path / "bench").rglob("*.json")
    assert any("bmshj2018-factorized" in path.read_text() for path in results)


# ---------------------------------------------------------------------- hostile sources
@pytest.mark.parametrize(
    ("route", "extra", "message"),
    [
        ("endless", {}, r"went past 1048576 bytes \(the limit set by PKU_AIGI_MAX_DOWNLOAD_MB"),
        ("huge", {}, r"is 10000000000 bytes, more than 1048576 bytes"),
        ("files", {"size": 1000}, r"is \d+ bytes, more than 1000 bytes \(the size its zoo entry"),
        ("file:///dev/zero", {"sha256": "0" * 64}, r"/dev/zero is not a regular file"),
    ],
)
def test_every_download_is_bounded_and_leaves_nothing(
    served, zoo_env, monkeypatch, route, extra, message
):
    """An endless body, a 10 GB announcement, more than the entry's size, /dev/zero."""
    monkeypatch.setenv("PKU_AIGI_MAX_DOWNLOAD_MB", "1")
    source = route if ":" in route else f"{served.url}/{route}/{served.good}"
    zoo_env(entry("test-org/big", source, **extra))
    with pytest.raises(ModelError, match=message):
        AutoCodec.from_pretrained("test-org/big")
    assert _leftovers(zoo.cache_root()) == []


def test_a_slow_drip_is_cut_off_at_the_deadline(served, zoo_env, monkeypatch):
    """One byte every 0.2 s never trips the read timeout: the deadline ends it."""
    monkeypatch.setattr(network, "DEADLINE_BASE_S", 0.5)
    zoo_env(entry("test-org/slow", f"{served.url}/drip/0.2/20/{served.good}"))
    started = time.monotonic()
    with pytest.raises(ModelError, match=r"did not finish within its deadline of 1.2 s"):
        AutoCodec.from_pretrained("test-org/slow")
    assert time.monotonic() - started < 3
    # What arrived is kept, to be resumed (the drip is only the first bytes).
    model = AutoCodec.from_pretrained("test-org/slow")
    assert torch.equal(model.g_a[0].weight, served.state["g_a.0.weight"])


@pytest.mark.parametrize(
    ("route", "message", "requests"),
    [
        (
            f"to/{quote('file:///dev/zero', safe='')}",
            r"redirects to 'file:///dev/zero'; only http",
            1,
        ),
        ("loop", r"more than 5 redirects \(a redirect loop\?\)", 6),
        ("416", r"the server answered HTTP 416", 1),  # nothing to restart: an error
        ("status/302", r"redirects to ''; only http\(s\) redirects are followed", 1),
    ],
)
def test_redirects_and_416_end_in_one_clear_error(served, zoo_env, route, message, requests):
    zoo_env(entry("test-org/odd", f"{served.url}/{route}/{served.good}"))
    with pytest.raises(ModelError, match=message):
        AutoCodec.from_pretrained("test-org/odd")
    assert len(served.file_requests()) == requests


def test_http_redirects_are_followed_and_416_restarts_once(served, zoo_env):
    zoo_env(
        entry("test-org/moved", f"{served.url}/redirect/5/{served.good}"),
        entry("test-org/resumed", f"{served.url}/416-on-resume/{served.good}"),
    )
    AutoCodec.from_pretrained("test-org/moved")
    part = zoo.download_folder("test-org/resumed") / (served.good + ".incomplete")
    part.parent.mkdir(parents=True)
    offset = len(served.files[served.good]) + 5  # a part that cannot be resumed
    part.write_bytes(b"\0" * offset)
    served.requests.clear()
    model = AutoCodec.from_pretrained("test-org/resumed")
    assert torch.equal(model.g_a[0].weight, served.state["g_a.0.weight"])
    assert [r for _, _, r in served.file_requests()] == [f"bytes={offset}-", None]


def test_two_ids_sharing_a_file_name_pull_at_once(served, zoo_env):
    """Each download has its own file, under its model's lock."""
    source = f"{served.url}/delay/0.5/{served.good}"
    zoo_env(entry("test-org/twin-a", source), entry("test-org/twin-b", source))
    results = {}

    def pull(repo):
        try:
            results[repo] = zoo.resolve(repo)
        except BaseException as error:  # noqa: BLE001 - reported below
            results[repo] = error

    threads = [
        threading.Thread(target=pull, args=(r,)) for r in ("test-org/twin-a", "test-org/twin-b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {
        "test-org/twin-a": zoo.converted_folder("test-org/twin-a"),
        "test-org/twin-b": zoo.converted_folder("test-org/twin-b"),
    }
    assert _leftovers(zoo.cache_root() / "downloads") == []


# ---------------------------------------------------------------------- entry checks
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hparams": {"N": "abc"}}, r"zoo entry 'test-org/e': 'N' must be an integer, not 'abc'"),
        ({"hparams": {"N": 8, "M": 5000}}, r"'M' = 5000 is out of range 1\.\.4096"),
        ({"hparams": "abc"}, r"'hparams' must be a JSON object"),
        ({"hparams": {"quality": 2}}, r"'hparams' must be free of quality"),
        ({"repo_id": "not a repo id!"}, r"entry 0: 'repo_id' must be a valid Hub repo id"),
        ({"sha256": "SHORT"}, r"'sha256' must be the full sha256 of the source file \(64 hex"),
        ({"size": "70000"}, r"'size' must be the size of the source file in bytes"),
        ({"quality": "1"}, r"'quality' must be an integer, not '1'"),
        ({"source": "ftp://host/x-12345678.pth.tar"}, r"'source' must be an http\(s\) or file"),
        ({"source": "http://host/"}, r"'source' must be a URL ending in a file name"),
    ],
)
def test_zoo_entries_are_checked_like_config_json(served, zoo_env, change, message):
    good = entry("test-org/e", f"{served.url}/files/{served.good}")
    if change.get("sha256") == "SHORT":  # one hex digit of the right sha256: not a checksum
        change = {"sha256": hashlib.sha256(served.files[served.good]).hexdigest()[:1]}
    bad = {**good, **change}
    zoo_env(bad)
    with pytest.raises(ModelError, match=message):
        AutoCodec.from_pretrained(bad["repo_id"])
    assert served.file_requests() == []  # refused before any download


def test_hparams_wider_than_the_checkpoint_are_refused_before_building(served, zoo_env):
    """N=1024 (4096 would build a ~10 GB model) on a checkpoint whose widest tensor is 8."""
    zoo_env(
        entry("test-org/wide", f"{served.url}/files/{served.good}", hparams={"N": 1024, "M": 8})
    )
    with pytest.raises(ModelError, match=r"'N' = 1024 is more than 8, the largest tensor"):
        AutoCodec.from_pretrained("test-org/wide")
    assert _leftovers(zoo.cache_root()) == []
