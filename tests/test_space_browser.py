"""The Space in a real browser: headless Debian Chromium driven by Playwright.

Uploads a dataset image, compresses it with JPEG, WebP and a tiny learned model saved in
a local Hub-like folder, checks the slider, metrics table and RD plot, downloads a file,
decodes it in the Decode tab, and checks the message for a non-image upload.
Screenshots go to test-artifacts/. Without Chromium or Playwright the tests are skipped,
in CI (CI=true) they fail (the ``chromium`` fixture in conftest.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from pathlib import Path

import pytest
from PIL import Image

# chromium first: without a browser, skip (or fail in CI) before the app is built
pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("chromium")]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 120_000
# SHA-256 of an <img>'s RGB pixels as the browser decoded them (drawn on a canvas)
PIXELS_SHA256 = """async (img) => {
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const context = canvas.getContext('2d', {colorSpace: 'srgb'});
  context.drawImage(img, 0, 0);
  const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const rgb = new Uint8Array((rgba.length / 4) * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2];
  }
  const digest = await crypto.subtle.digest('SHA-256', rgb);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, shared_data):
    import pku_aigi
    from pku_aigi.space import build_app
    from pku_aigi.space.catalog import Catalog

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    models_dir = tmp_path_factory.mktemp("hub")
    model = pku_aigi.models.create("bmshj2018-factorized", quality=1, N=16, M=16)
    model.save_pretrained(models_dir / "local" / "tiny-factorized-q1")
    demo = build_app(
        catalog=Catalog.discover(models_dir), examples_dir=shared_data / "diffusiondb-sample"
    )
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
    )
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app_url)
    page.wait_for_selector("#compress-button")
    yield page
    context.close()


def test_compress_download_and_decode(page, pku_examples, artifacts_dir, tmp_path):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    page.locator("#input-image input[type=file]").set_input_files(
        str(pku_examples / "sd21b" / "1.png")
    )
    expect(page.locator("#input-notes")).to_contain_text("512x512 RGB image, ready to compress")
    page.locator("#prompt textarea").fill("fruit crates in front of a shop")
    codecs = page.locator("#codecs")
    expect(codecs.get_by_label("jpeg", exact=True)).to_be_checked()
    expect(codecs.get_by_label("webp", exact=True)).to_be_checked()
    codecs.get_by_label("bmshj2018-factorized (mse)", exact=True).check()
    page.click("#compress-button")

    metrics = page.locator("#metrics")
    for name in ("jpeg", "webp", "bmshj2018-factorized (mse)"):
        expect(metrics).to_contain_text(name)
    expect(page.locator("#slider img")).to_have_count(2)
    expect(page.locator("#rd-plot img")).to_be_visible()
    expect(page.locator("#result-notes")).to_contain_text("CLIP")
    page.screenshot(path=str(artifacts_dir / "space-compress.png"), full_page=True)

    link = page.locator("#downloads a[download$='-jpeg-q47.jpg']")
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.suffix == ".jpg"
    with Image.open(saved) as image:
        assert image.format == "JPEG" and image.size == (512, 512)
    expect(metrics).to_contain_text(f"{saved.stat().st_size:,}")  # the table's file size

    # The slider shows exactly what the downloaded file decodes to (Chromium's pixels of
    # the lossless preview), served from the handler's folder without a gradio copy.
    preview = page.locator("#slider img[src*='reconstruction-jpeg']").first
    expect(preview).to_have_attribute("src", re.compile(r"/file=/.*/pku-aigi-demo-[^/]+/"))
    shown = page.evaluate(PIXELS_SHA256, preview.element_handle())
    with Image.open(saved) as image:
        decoded = image.convert("RGB").tobytes()
    assert shown == hashlib.sha256(decoded).hexdigest()

    page.get_by_role("tab", name="Decode").click()
    page.locator("#decode-file input[type=file]").set_input_files(str(saved))
    page.click("#decode-button")
    expect(page.locator("#decode-info")).to_contain_text("Decoded jpeg file")
    expect(page.locator("#decode-info")).to_contain_text("512x512 RGB")
    expect(page.locator("#decoded-image img")).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "space-decode.png"), full_page=True)


def test_non_image_upload_shows_a_clear_message(page, artifacts_dir, tmp_path):
    from playwright.sync_api import expect

    bogus = tmp_path / "report.png"  # named like an image, but it is text
    bogus.write_text("quarterly report, not an image\n")
    page.locator("#input-image input[type=file]").set_input_files(str(bogus))
    toast = page.get_by_test_id("toast-body").filter(has_text="report.png is not an image")
    expect(toast.first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#input-notes")).to_contain_text("Cannot use this file")
    page.screenshot(path=str(artifacts_dir / "space-error.png"), full_page=True)


def test_chromium_is_debian_s(browser, chromium):
    # the system's package, not a browser that `playwright install` downloaded
    assert "ms-playwright" not in str(Path(chromium).resolve())
    assert browser.version
