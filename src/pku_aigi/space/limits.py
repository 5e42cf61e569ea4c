"""What one request and the whole Space may cost: uploads, queue, decoding.

A public Space serves everyone from one CPU: a single upload, request or queued burst
must not be able to block it. Environment variables override the defaults:

- ``PKU_AIGI_DEMO_MAX_UPLOAD`` (default ``"25mb"``): Gradio's ``max_file_size``, checked
  before an upload is stored;
- ``PKU_AIGI_DEMO_QUEUE_SIZE`` (default 12): queued jobs beyond it are turned away, the
  browser shows "This application is currently busy. Please try again.";
- images above ``PKU_AIGI_DEMO_MAX_PIXELS`` are refused, on upload and in decoded
  .aigic headers; autoregressive models (mbt2018, cheng2020), which decode one latent
  position at a time, decode at most :data:`MAX_SEQUENTIAL_PIXELS` (1 MP, ~5 s on a CPU).
"""

from __future__ import annotations

import os

MAX_UPLOAD_ENV = "PKU_AIGI_DEMO_MAX_UPLOAD"
QUEUE_SIZE_ENV = "PKU_AIGI_DEMO_QUEUE_SIZE"
DEFAULT_MAX_UPLOAD = "25mb"
DEFAULT_QUEUE_SIZE = 12
MAX_SEQUENTIAL_PIXELS = 1024 * 1024
MAX_DECODE_BYTES = 25 * 2**20  # a compressed file of the Decode tab


def queue_size() -> int:
    return int(os.environ.get(QUEUE_SIZE_ENV) or DEFAULT_QUEUE_SIZE)


def launch_options() -> dict:
    """Keyword arguments of ``demo.launch`` for the Space and ``pku-aigi demo``.

    ``show_error``: errors Gradio raises itself before a handler runs (a refused server
    path, an oversized upload) reach the client as their message, not as ``null``.
    ``app_kwargs``: two malformed requests that Gradio's routes answer with a bare HTTP
    500 get a 4xx saying what is wrong: an upload whose ``files`` part is no file (it
    raises TypeError) and a call of an API name the app does not have.
    """
    from gradio.route_utils import FnIndexInferError

    handlers = {TypeError: _refuse_unnamed_upload, FnIndexInferError: _unknown_endpoint}
    return {
        "max_file_size": os.environ.get(MAX_UPLOAD_ENV) or DEFAULT_MAX_UPLOAD,
        "show_error": True,
        "app_kwargs": {"exception_handlers": handlers},
    }


async def _refuse_unnamed_upload(request, error: TypeError):
    from fastapi.responses import JSONResponse

    if not request.url.path.endswith("/upload"):
        raise error  # any other TypeError stays a server error
    return JSONResponse(
        {"detail": "each 'files' part of an upload must be a file with a file name"},
        status_code=400,
    )


async def _unknown_endpoint(request, error: Exception):
    from fastapi.responses import JSONResponse

    return JSONResponse(
        {"detail": f"{error}: see /gradio_api/info for this app's endpoints"}, status_code=404
    )
