"""Latency of the Space: click on Compress -> results shown, measured in a real browser.

Starts the app (``pku_aigi.demo.build_app``) on 127.0.0.1, drives headless Debian
Chromium with Playwright, uploads a 1024x1024 PKU-AIGI-500K image (MJ5.2) and compresses
it with JPEG, AVIF, VVC and one learned model (mbt2018-mean, quality 3). Times:

- ``results``: click -> the metrics table lists every codec (slider and files are set in
  the same response);
- ``results (warm, codecs one after the other)``: the same, with the codecs of the request
  run one after the other as before issue 14 (``engine.MAX_WORKERS = 1``), clicks
  interleaved with the concurrent ones;
- ``plot``: click -> the RD plot is drawn (only with RD curves on: 6 extra encodes per
  conventional codec).

Reference, in the same run: the same work through the package API without the UI
(``engine.compress`` per codec in a loop: encode, decode, PSNR, MS-SSIM), and, where the
package has it, the codecs run concurrently as the Space runs them
(``engine.compress_many``): that ratio is the cost of the UI (PNG writing, transfer,
rendering).

The learned model is ``$PKU_AIGI_MODELS_DIR/pku-aigi/mbt2018-mean-mse-q3`` when present,
else an untrained mbt2018-mean of the real size (quality 3: N=128, M=192), whose coding
time is that of the trained one up to the entropy-coded length. Pinned to 2 CPU cores.

    python benchmarks/bench_space_latency.py [--repeats 3] [--rd]
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT.parent / "shared" / "data" / "pku-examples" / "mj52" / "1.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LEARNED_REPO = "pku-aigi/mbt2018-mean-mse-q3"
CODECS = ["jpeg", "avif", "vvc", "mbt2018-mean (mse)"]
# Sets window[flag] once the component's status tracker has been busy and is hidden
# again, i.e. this request's response is rendered.
WATCH = """([selector, flag]) => {
  const el = document.querySelector(selector);
  const tracker = () => el.querySelector('[data-testid=status-tracker]');
  let busy = false;
  window[flag] = false;
  const observer = new MutationObserver(() => {
    const hidden = tracker().classList.contains('hide');
    busy = busy || !hidden;
    if (busy && hidden) { window[flag] = true; observer.disconnect(); }
  });
  observer.observe(el, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def pin_two_cores() -> str:
    cores = sorted(os.sched_getaffinity(0))[:2]
    os.sched_setaffinity(0, cores)
    import torch

    torch.set_num_threads(len(cores))
    return ",".join(map(str, cores))


def models_dir() -> tuple[Path, str]:
    configured = os.environ.get("PKU_AIGI_MODELS_DIR")
    if configured and (Path(configured) / LEARNED_REPO / "config.json").is_file():
        return Path(configured), f"trained {LEARNED_REPO} from {configured}"
    import pku_aigi

    folder = Path(tempfile.mkdtemp(prefix="bench-space-models-"))
    pku_aigi.models.create("mbt2018-mean", quality=3).save_pretrained(folder / LEARNED_REPO)
    return folder, "untrained mbt2018-mean q3 (N=128, M=192)"


def direct_api_seconds(catalog, image_path: Path, concurrent: bool = False) -> float:
    """The same compressions through the package API, no UI: one codec after the other
    (``engine.compress`` in a loop), or concurrently (``engine.compress_many``, as the
    Space does)."""
    from pku_aigi.demo import engine
    from pku_aigi.demo.upload import load_input_image

    start = time.perf_counter()
    image = load_input_image(image_path).image
    if concurrent:
        outcomes = engine.compress_many([catalog.get(key) for key in CODECS], image, level=50)
        failed = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
        if failed:
            raise failed[0]
    else:
        for key in CODECS:
            engine.compress(catalog.get(key), image, level=50)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm clicks measured")
    parser.add_argument("--rd", action="store_true", help="also time one click with RD curves")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per wait")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    cores = pin_two_cores()
    from playwright.sync_api import expect, sync_playwright

    from pku_aigi.demo import build_app
    from pku_aigi.demo.catalog import Catalog

    folder, learned = models_dir()
    catalog = Catalog.discover(folder)
    missing = [key for key in CODECS if key not in catalog.available_keys]
    if missing:
        raise SystemExit(f"codecs not available here: {missing}")
    demo = build_app(catalog=catalog)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
    )

    from pku_aigi.demo import engine

    concurrent = hasattr(engine, "compress_many")  # False on code before issue 14
    before = direct_api_seconds(catalog, IMAGE)  # also warms the codecs up
    before_many = direct_api_seconds(catalog, IMAGE, True) if concurrent else None
    timings: dict[str, list[float]] = {"results (cold)": [], "results (warm)": [], "plot": []}
    if concurrent:  # the Space as before issue 14, clicks interleaved with today's
        timings["results (warm, codecs one after the other)"] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(args.timeout * 1000)
            expect.set_options(timeout=args.timeout * 1000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#input-image input[type=file]").set_input_files(str(IMAGE))
            expect(page.locator("#input-notes")).to_contain_text("ready to compress")
            codecs = page.locator("#codecs")
            for box in codecs.get_by_role("checkbox").all():
                box.set_checked(box.get_attribute("name") in CODECS)

            def click(rd: bool) -> tuple[float, float | None]:
                page.locator("#draw-curves input").set_checked(rd)
                page.evaluate(WATCH, ["#metrics", "__results"])
                page.evaluate(WATCH, ["#rd-plot", "__plot"])
                start = time.perf_counter()
                page.click("#compress-button")
                try:
                    page.wait_for_function("() => window.__results")
                except Exception:
                    page.screenshot(path=str(ROOT / "test-artifacts" / "bench-space-failed.png"))
                    raise
                results = time.perf_counter() - start
                plot = None
                if rd:
                    page.wait_for_function("() => window.__plot")
                    plot = time.perf_counter() - start
                else:  # let the (curve-less) plot step finish before the next click
                    page.wait_for_function("() => window.__plot")
                return results, plot

            timings["results (cold)"].append(click(False)[0])
            for _ in range(args.repeats):
                timings["results (warm)"].append(click(False)[0])
                if concurrent:
                    engine.MAX_WORKERS = 1
                    timings["results (warm, codecs one after the other)"].append(click(False)[0])
                    engine.MAX_WORKERS = None
            if args.rd:
                results, plot = click(True)
                timings["plot"].append(plot)
            page.screenshot(path=str(ROOT / "test-artifacts" / "bench-space.png"), full_page=True)
            browser.close()
    finally:
        demo.close()

    reference = min(before, direct_api_seconds(catalog, IMAGE))  # before and after the UI
    warm = min(timings["results (warm)"])
    many = min(before_many, direct_api_seconds(catalog, IMAGE, True)) if concurrent else None
    print(f"image: {IMAGE.name} 1024x1024; codecs: {', '.join(CODECS)} at quality level 50")
    print(f"learned model: {learned}; CPU cores: {cores}; browser: Chromium (headless)")
    for name, values in timings.items():
        if values:
            print(f"{name}: " + ", ".join(f"{v:.2f} s" for v in values))
    print(f"direct API, one after the other: {reference:.2f} s (best of 2, no UI)")
    print(f"UI / direct API: {warm / reference:.2f}x (best warm click vs best direct run)")
    if many is not None:
        print(f"API concurrent: {many:.2f} s (best of 2, engine.compress_many)")
        print(f"UI / API concurrent: {warm / many:.2f}x (the UI's own cost)")
        one_by_one = min(timings["results (warm, codecs one after the other)"])
        print(f"UI one after the other / UI concurrent: {one_by_one / warm:.2f}x (best warm)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
