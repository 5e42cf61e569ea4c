"""The Space's limits: decoding only with listed models, upload and queue
sizes, per-request pixel limits, and Gradio's own refusals reaching the client."""

from __future__ import annotations

import json
import urllib.request

import gradio as gr
import pytest
import torch
from PIL import Image

from pku_aigi import models
from pku_aigi.codecs import from_model
from pku_aigi.codecs.learned import LearnedCodec
from pku_aigi.space import build_app, limits
from pku_aigi.space.catalog import Catalog, CodecOption, learned_options, registered_options
from pku_aigi.space.handlers import Handlers

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def foreign_aigic(tmp_path_factory) -> tuple:
    """An .aigic file whose header names a model folder the Space does not list."""
    folder = tmp_path_factory.mktemp("foreign") / "secret-model"
    torch.manual_seed(0)
    models.create("bmshj2018-factorized", quality=1, N=16, M=16).save_pretrained(folder)
    codec = LearnedCodec.from_pretrained(str(folder), device="cpu")
    path = folder.parent / "foreign.aigic"
    path.write_bytes(codec.encode(Image.new("RGB", (48, 40), (10, 200, 90))))
    return folder, path


def test_decode_tab_never_loads_the_model_an_upload_names(foreign_aigic, monkeypatch):
    """It used to load any local folder or Hub repo named in the header."""
    folder, path = foreign_aigic
    loaded = []
    real = LearnedCodec.from_pretrained.__func__
    monkeypatch.setattr(
        LearnedCodec,
        "from_pretrained",
        classmethod(lambda cls, source, **kw: loaded.append(source) or real(cls, source, **kw)),
    )
    handlers = Handlers(Catalog(registered_options()))
    with pytest.raises(gr.Error, match="which this Space does not offer"):
        handlers.decode(str(path))
    assert loaded == []


def test_listed_models_still_decode(foreign_aigic):
    folder, path = foreign_aigic
    codec = LearnedCodec.from_pretrained(str(folder), device="cpu")
    handlers = Handlers(Catalog([CodecOption("listed", codec)]))
    decoded, info = handlers.decode(str(path))
    assert Image.open(decoded).size == (48, 40)
    assert info.startswith("Decoded .aigic file of bmshj2018-factorized model")


def test_oversized_decode_uploads_are_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_DECODE_BYTES", 1000)
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8" + bytes(2000))
    with pytest.raises(gr.Error, match="more than the 1,000 this Space decodes"):
        Handlers(Catalog(registered_options())).decode(str(big))


def test_learned_codecs_get_the_space_pixel_limits(tmp_path, monkeypatch):
    folder = tmp_path / "org" / "mbt2018-tiny"
    torch.manual_seed(0)
    models.create("mbt2018", quality=1, N=16, M=16).save_pretrained(folder)
    options = [o for o in learned_options(tmp_path) if o.available and "mbt2018" in o.key]
    assert len(options) == 1
    codec = options[0].codec.codec(1)
    assert codec.max_sequential_pixels == limits.MAX_SEQUENTIAL_PIXELS == 1024 * 1024
    assert codec.max_pixels == 2048 * 2048
    data = from_model(codec.model, device="cpu").encode(Image.new("RGB", (1100, 1000)))
    with pytest.raises(Exception, match="decodes autoregressively"):
        codec.decode(data)


def test_queue_and_upload_limits(monkeypatch):
    demo = build_app(Catalog(registered_options()))
    assert demo._queue.max_size == limits.DEFAULT_QUEUE_SIZE
    assert limits.launch_options() == {"max_file_size": "25mb", "show_error": True}
    monkeypatch.setenv(limits.QUEUE_SIZE_ENV, "3")
    assert build_app(Catalog(registered_options()))._queue.max_size == 3


def test_a_refused_server_path_reaches_the_client_as_a_message():
    """Gradio refuses files outside its cache before the handler runs; the client used
    to get ``{"error": null}``."""
    demo = build_app(Catalog(registered_options()))
    demo.launch(prevent_thread_lock=True, **limits.launch_options())
    try:
        base = demo.local_url.rstrip("/") + "/gradio_api/call/decode"
        body = {"data": [{"path": "/etc/hostname", "meta": {"_type": "gradio.FileData"}}]}
        request = urllib.request.Request(
            base, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        event_id = json.loads(urllib.request.urlopen(request, timeout=30).read())["event_id"]
        stream = urllib.request.urlopen(f"{base}/{event_id}", timeout=60).read().decode()
    finally:
        demo.close()
    assert "event: error" in stream
    message = stream.split("event: error", 1)[1].split("data:", 1)[1].strip().splitlines()[0]
    assert message not in ("null", "") and "/etc/hostname" in message
