"""The Space's limits: decoding only with listed models, upload and queue
sizes, per-request pixel limits, and Gradio's own refusals reaching the client."""

from __future__ import annotations

import json
import urllib.error
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
    options = limits.launch_options()
    assert options["max_file_size"] == "25mb" and options["show_error"] is True
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


def test_malformed_requests_get_a_4xx_with_a_message():
    """A ``files`` part without a file name (what clients send for an empty name) and an
    unknown API name: Gradio answered both with HTTP 500 "Internal Server Error"."""
    demo = build_app(Catalog(registered_options()))
    demo.launch(prevent_thread_lock=True, **limits.launch_options())
    boundary = "pku-aigi-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"\r\n\r\n'
        f"not a file\r\n--{boundary}--\r\n"
    ).encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    request = urllib.request.Request(
        demo.local_url.rstrip("/") + "/gradio_api/upload", body, headers
    )
    unknown = urllib.request.Request(
        demo.local_url.rstrip("/") + "/gradio_api/call/no_such_api",
        json.dumps({"data": []}).encode(),
        {"Content-Type": "application/json"},
    )
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        with pytest.raises(urllib.error.HTTPError) as not_found:
            urllib.request.urlopen(unknown, timeout=30)
    finally:
        demo.close()
    assert refused.value.code == 400
    assert "file name" in json.loads(refused.value.read())["detail"]
    assert not_found.value.code == 404
    assert "no_such_api" in json.loads(not_found.value.read())["detail"]


@pytest.mark.parametrize(
    ("name", "quality"),
    [("jpeg", 50), ("webp", 50), ("jpeg2000", 20), ("avif", 50), ("jpegxl", 2.0)]
    + [("hevc", 40), ("vvc", 40)],
)
def test_decode_tab_applies_the_pixel_limit_to_every_format_before_decoding(
    name, quality, tmp_path, monkeypatch
):
    """Conventional codecs used to decode up to 64 MP here: a 3 KB JPEG 2000 declaring
    8000x8000 took 7-15 s of the single worker and 1.2 GB."""
    import imagecodecs
    from PIL import ImageFile

    from pku_aigi import codecs

    options = {"preset": "faster"} if name == "vvc" else {}
    path = tmp_path / f"image{codecs.get(name).file_extension}"
    path.write_bytes(codecs.get(name, **options).encode(Image.new("RGB", (400, 300)), quality))
    monkeypatch.setenv("PKU_AIGI_DEMO_MAX_PIXELS", str(300 * 300))
    handlers = Handlers(Catalog(registered_options()))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the header declares too many pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    monkeypatch.setattr(imagecodecs, "jpegxl_decode", no_decoding)
    with pytest.raises(gr.Error, match=r"declares a 400x300 image .*up to 0\.1 megapixels"):
        handlers.decode(str(path))


def test_api_endpoints_have_names_and_every_output_a_label():
    """The API page used to list /lambda (the mode toggle) and outputs named value_6,
    value_23 and value_34 (unlabelled Markdown)."""
    info = build_app(Catalog(registered_options())).get_api_info()
    assert set(info["named_endpoints"]) == {"/check_image", "/compress", "/rd_curves", "/decode"}
    assert not info["unnamed_endpoints"]
    labels = [
        item["label"]
        for endpoint in info["named_endpoints"].values()
        for item in endpoint["parameters"] + endpoint["returns"]
    ]
    assert not [label for label in labels if not label or label.startswith("value_")]
    returns = [item["label"] for item in info["named_endpoints"]["/compress"]["returns"]]
    assert returns[2:] == ["Metrics", "Notes", "Compressed files"]
