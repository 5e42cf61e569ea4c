"""Latency of the Space: click on Compress -> results shown, measured in a real browser.

Starts the app (``pku_aigi.space.build_app``) on 127.0.0.1, drives headless Debian
Chromium with Playwright, uploads a 1024x1024 PKU-AIGI-500K image (MJ5.2) and compresses
it with JPEG, AVIF, VVC and one learned model (mbt2018-mean, quality 3). Times, measured
in the page from the click event:

- ``first result``: the metrics table first changes after the click (the Space streams:
  each codec's row, reconstruction and file appear as soon as that codec finishes);
- ``results``: the metrics table lists every codec and the request is done (slider and
  files are set in the same updates);
- ``shown``: the first animation frame in which both slider images are loaded;
- ``results (warm, codecs one after the other)``: the same, with the codecs of the request
  run one after the other (``engine.MAX_WORKERS = 1``), clicks interleaved with the
  concurrent ones (``--no-sequential`` skips them);
- ``plot``: click -> the RD plot is drawn (only with RD curves on: 6 extra encodes per
  conventional codec).

Reference, in the same run: the same work through the package API without the UI
(``engine.compress`` per codec in a loop: encode, decode, PSNR, MS-SSIM, before and after
the browser), and ``engine.compress_as_completed`` (the codecs concurrently, as the Space
runs them: the time to its first result and to all) right before each warm click: the machine's load changes by the minute, so each
click is divided by the API run next to it (``UI / API concurrent``, median and best of
the pairs), which is the cost of the UI.

Breakdown of each warm click: Gradio's own request traces (``GRADIO_PROFILING=1``: queue
wait, preprocess, handler, postprocess), the handler's phases (its DEBUG log: input,
codecs, CLIP, outputs), and in the browser (``performance.timeOrigin + now()``, the same
clock as the server's ``time.time()``): click until the server has the job, the server's
end until the table is rendered, until the previews are painted, the preview bytes
fetched, and the CPU seconds Chromium spent from the click to the plot (on 2 cores it
competes with the codecs).

The learned model is ``$PKU_AIGI_MODELS_DIR/pku-aigi/mbt2018-mean-mse-q3`` when present,
else an untrained mbt2018-mean of the real size (quality 3: N=128, M=192), whose coding
time is that of the trained one up to the entropy-coded length. Pinned to 2 CPU cores.

    python benchmarks/bench_space_latency.py [--repeats 3] [--rd] [--no-sequential]
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
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
    if (busy && hidden) {
      window[flag + '_at'] = performance.timeOrigin + performance.now();
      window[flag] = true;
      observer.disconnect();
      if (window[flag + '_then']) window[flag + '_then']();
    }
  });
  observer.observe(el, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


# Records the click time and, once the results are rendered, the first animation frame
# in which both slider images are loaded (measured in the page, not by polling from here).
MARK_CLICK = """() => {
  const now = () => performance.timeOrigin + performance.now();
  window.__click = null; window.__shown = null; window.__first = null;
  const table = document.querySelector('#metrics table');
  const first = new MutationObserver(() => {
    if (window.__click !== null && window.__first === null) {
      window.__first = now();
      first.disconnect();
    }
  });
  first.observe(table, {subtree: true, childList: true, characterData: true});
  document.querySelector('#compress-button').addEventListener(
    'click', () => { window.__click = now(); }, {capture: true, once: true});
  window.__results_then = () => {
    const frame = () => {
      const images = [...document.querySelectorAll('#slider img')];
      if (images.length >= 2 && images.every((img) => img.complete && img.naturalWidth > 0))
        window.__shown = now();
      else requestAnimationFrame(frame);
    };
    frame();
  };
}"""
FETCHED = """(since) => performance.getEntriesByType('resource')
  .filter((entry) => entry.name.includes('/file=') && entry.startTime + performance.timeOrigin >= since)
  .map((entry) => [entry.name, entry.transferSize, entry.encodedBodySize,
                   entry.startTime + performance.timeOrigin, entry.responseEnd + performance.timeOrigin])"""


class PhaseLog(logging.Handler):
    """Collects the handler's ``compress phases`` DEBUG records."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.phases: list[dict[str, float]] = []

    def emit(self, record):
        phases = getattr(record, "phases", None)
        if phases is not None:
            within = getattr(record, "within", {})  # overlapped with a phase, in threads
            self.phases.append({**phases, **{f"({name})": v for name, v in within.items()}})


def chromium_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process's Chromium descendants."""
    parents, names, ticks = {}, {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid], names[pid] = int(fields[1]), name
        ticks[pid] = int(fields[11]) + int(fields[12])
    total = 0
    for pid, name in names.items():
        if "chrom" not in name:
            continue
        ancestor = parents.get(pid)
        while ancestor and ancestor != os.getpid():
            ancestor = parents.get(ancestor)
        if ancestor == os.getpid():
            total += ticks[pid]
    return total / os.sysconf("SC_CLK_TCK")


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


def direct_api_seconds(catalog, image_path: Path) -> float:
    """The same compressions through the package API, no UI, one codec after the other
    (``engine.compress`` in a loop)."""
    from pku_aigi.space import engine
    from pku_aigi.space.upload import load_input_image

    start = time.perf_counter()
    image = load_input_image(image_path).image
    for key in CODECS:
        engine.compress(catalog.get(key), image, level=50)
    return time.perf_counter() - start


def direct_api_streamed(catalog, image_path: Path) -> tuple[float, float]:
    """(seconds to the first result, to all) of the codecs run concurrently through the
    package API as the Space runs them (``engine.compress_as_completed``), no UI."""
    from pku_aigi.space import engine
    from pku_aigi.space.upload import load_input_image

    start = time.perf_counter()
    image = load_input_image(image_path).image
    first = None
    options = [catalog.get(key) for key in CODECS]
    for _, outcome in engine.compress_as_completed(options, image, level=50):
        if isinstance(outcome, Exception):
            raise outcome
        first = first or time.perf_counter() - start
    return first, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm clicks measured")
    parser.add_argument("--rd", action="store_true", help="also time one click with RD curves")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per wait")
    parser.add_argument(
        "--no-sequential", action="store_true", help="skip the codecs-one-after-the-other clicks"
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ["GRADIO_PROFILING"] = "1"  # gradio's per-request traces (read before import)
    cores = pin_two_cores()
    from gradio.profiling import collector
    from playwright.sync_api import expect, sync_playwright

    from pku_aigi.space import build_app
    from pku_aigi.space.catalog import Catalog

    phase_log = PhaseLog()
    handler_logger = logging.getLogger("pku_aigi.space.handlers")
    handler_logger.addHandler(phase_log)
    handler_logger.setLevel(logging.DEBUG)

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

    from pku_aigi.space import engine

    one_after_other = not args.no_sequential
    load_before = os.getloadavg()
    before = direct_api_seconds(catalog, IMAGE)  # also warms the codecs up
    timings: dict[str, list[float]] = {
        "results (cold)": [],
        "first result (warm)": [],
        "results (warm)": [],
        "shown (warm)": [],
        "plot": [],
        "API concurrent (interleaved)": [],
        "API concurrent, first result (interleaved)": [],
    }
    breakdowns: list[dict[str, float]] = []
    if one_after_other:  # codecs one after the other, clicks interleaved with concurrent ones
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

            def click(rd: bool) -> dict[str, float]:
                page.locator("#draw-curves input").set_checked(rd)
                page.evaluate(WATCH, ["#metrics", "__results"])
                page.evaluate(WATCH, ["#rd-plot", "__plot"])
                page.evaluate(MARK_CLICK)
                collector._traces.clear()
                phases_before = len(phase_log.phases)
                cpu_before = chromium_cpu_seconds()
                start = time.perf_counter()
                page.click("#compress-button")
                try:
                    page.wait_for_function("() => window.__results")
                    page.wait_for_function("() => window.__shown")
                except Exception:
                    page.screenshot(path=str(ROOT / "test-artifacts" / "bench-space-failed.png"))
                    raise
                page.wait_for_function("() => window.__plot")  # before the next click
                plot = time.perf_counter() - start
                cpu = chromium_cpu_seconds() - cpu_before
                click_at, first_at, results_at, shown_at = (
                    value / 1000
                    for value in page.evaluate(
                        "() => [window.__click, window.__first, window.__results_at, "
                        "window.__shown]"
                    )
                )
                fetched = page.evaluate(FETCHED, click_at * 1000)
                # in the page: from the click event to the rendered table / painted previews
                out = {
                    "first result": first_at - click_at,
                    "results": results_at - click_at,
                    "shown": shown_at - click_at,
                }
                out["plot"] = plot
                traces = {trace["fn_name"]: trace for trace in collector.get_all()}
                compress = traces.get("compress")
                if compress is None:
                    return out
                picked = compress["timestamp"] - compress["queue_wait_ms"] / 1000
                server_end = compress["timestamp"] + compress["total_ms"] / 1000
                handler = phase_log.phases[-1] if len(phase_log.phases) > phases_before else {}
                fn_call = compress["fn_call_ms"] / 1000
                out["click -> server has the job"] = picked - click_at
                out["queue wait"] = compress["queue_wait_ms"] / 1000
                out["gradio preprocess"] = compress["preprocess_ms"] / 1000
                out["handler (total)"] = fn_call
                for name, value in handler.items():
                    out[f"  handler: {name}"] = value
                if handler:
                    serial = [value for name, value in handler.items() if name[0] != "("]
                    out["  handler: rest"] = fn_call - sum(serial)
                out["gradio postprocess"] = compress["postprocess_ms"] / 1000
                out["gradio other"] = (
                    compress["total_ms"]
                    - compress["preprocess_ms"]
                    - compress["fn_call_ms"]
                    - compress["postprocess_ms"]
                ) / 1000
                out["server end -> table rendered"] = results_at - server_end
                out["table rendered -> previews shown"] = shown_at - results_at
                out["preview bytes fetched (MB)"] = sum(entry[2] for entry in fetched) / 1e6
                out["Chromium CPU s (click to plot)"] = cpu
                if "codecs" in handler:  # everything but the codecs' work, end to end
                    out["UI's own time (shown - codecs)"] = out["shown"] - handler["codecs"]
                if "rd_plot" in traces:
                    out["plot event (server)"] = traces["rd_plot"]["total_ms"] / 1000
                return out

            timings["results (cold)"].append(click(False)["results"])
            for _ in range(args.repeats):
                # the API run next to each click: the machine's load changes by the minute
                first, many = direct_api_streamed(catalog, IMAGE)
                warm = click(False)
                timings["first result (warm)"].append(warm["first result"])
                timings["results (warm)"].append(warm["results"])
                timings["shown (warm)"].append(warm["shown"])
                timings["API concurrent (interleaved)"].append(many)
                timings["API concurrent, first result (interleaved)"].append(first)
                breakdowns.append(warm)
                if one_after_other:
                    engine.MAX_WORKERS = 1
                    timings["results (warm, codecs one after the other)"].append(
                        click(False)["results"]
                    )
                    engine.MAX_WORKERS = None
            if args.rd:
                timings["plot"].append(click(True)["plot"])
            page.screenshot(path=str(ROOT / "test-artifacts" / "bench-space.png"), full_page=True)
            browser.close()
    finally:
        demo.close()

    reference = min(before, direct_api_seconds(catalog, IMAGE))  # before and after the UI
    warm = timings["results (warm)"]
    shown = timings["shown (warm)"]
    print(f"image: {IMAGE.name} 1024x1024; codecs: {', '.join(CODECS)} at quality level 50")
    print(f"learned model: {learned}; CPU cores: {cores}; browser: Chromium (headless)")
    print(
        "load average (1, 5, 15 min) before: "
        + " ".join(f"{x:.2f}" for x in load_before)
        + "; after: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    for name, values in timings.items():
        if values:
            print(f"{name}: " + ", ".join(f"{v:.2f} s" for v in values))
    if breakdowns:
        print("breakdown of the warm clicks, seconds (median [each click]):")
        for name in breakdowns[0]:
            values = [b[name] for b in breakdowns if name in b]
            print(
                f"  {name:42s} {statistics.median(values):7.3f}  ["
                + ", ".join(f"{v:.3f}" for v in values)
                + "]"
            )
    print(f"direct API, one after the other: {reference:.2f} s (best of 2, no UI)")
    print(f"UI / direct API: {min(warm) / reference:.2f}x (best warm click vs best direct run)")
    many = timings["API concurrent (interleaved)"]
    if many:
        pairs = [ui / api for ui, api in zip(warm, many, strict=True)]
        shown_pairs = [ui / api for ui, api in zip(shown, many, strict=True)]
        print(
            "UI / API concurrent, each click over the API run just before it: "
            + ", ".join(f"{r:.2f}x" for r in pairs)
            + f"; median {statistics.median(pairs):.2f}x, best {min(pairs):.2f}x"
        )
        print(
            f"UI / API concurrent, best over best: {min(warm) / min(many):.2f}x "
            f"(results); {min(shown) / min(many):.2f}x (previews painted, median pair "
            f"{statistics.median(shown_pairs):.2f}x)"
        )
    firsts = timings["API concurrent, first result (interleaved)"]
    if firsts:
        ui_first = timings["first result (warm)"]
        pairs = [ui / api for ui, api in zip(ui_first, firsts, strict=True)]
        print(
            f"first result: UI {statistics.median(ui_first):.2f} s, API "
            f"{statistics.median(firsts):.2f} s (medians); UI / API per click: "
            + ", ".join(f"{r:.2f}x" for r in pairs)
            + f"; all results: UI {statistics.median(warm):.2f} s, API "
            f"{statistics.median(many):.2f} s"
        )
    own_key = "UI's own time (shown - codecs)"
    own = [b[own_key] for b in breakdowns if own_key in b]
    if own and many:
        print(
            f"UI's own time / API concurrent: {statistics.median(own) / statistics.median(many):.2f}"
            " (medians; the time the UI adds in series, without the CPU Chromium takes from"
            " the codecs)"
        )
    if one_after_other:
        one_by_one = min(timings["results (warm, codecs one after the other)"])
        print(f"UI one after the other / UI concurrent: {one_by_one / min(warm):.2f}x (best warm)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
