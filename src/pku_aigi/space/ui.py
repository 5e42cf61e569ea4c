"""The Space's layout: Compress and Decode tabs wired to :class:`Handlers`, and the
Leaderboard tab (:mod:`.leaderboard`)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..subsets import HUB_REPO_ID
from .catalog import Catalog
from .examples import find_examples
from .handlers import METRIC_HEADERS, MODE_BPP, MODE_LEVEL, Handlers, session_root
from .leaderboard import leaderboard_tab
from .upload import max_pixels

DEFAULT_CODECS = ("jpeg", "webp")
INTRO = """# PKU-AIGI-500K: compress an AI-generated image
Compare conventional codecs and learned codecs (Hub models of the
[PKU-AIGI-500K](https://huggingface.co/datasets/{dataset}) benchmark) on any
image: drop, paste or pick one, choose codecs and a quality, and compare the reconstruction,
the rate (bits per pixel) and the quality (PSNR, MS-SSIM, CLIP score). Images up to
{megapixels:.1f} megapixels; animated images use their first frame; alpha is dropped
(as every codec here drops it).
"""


def raw_image(**kwargs) -> gr.Image:
    """A ``gr.Image`` that hands the uploaded file to the handler untouched.

    ``gr.Image`` opens uploads with Pillow before any handler runs, so a non-image file
    would fail with a generic error; this one passes the path through and
    :func:`~pku_aigi.space.upload.load_input_image` explains what is wrong. (The method is
    replaced on the instance: subclassing a gradio component makes gradio write a .pyi
    file next to this module.)
    """
    image = gr.Image(**kwargs)
    default = image.preprocess

    def preprocess(payload):
        if payload is None or payload.path is None:
            return default(payload)
        return str(payload.path)

    image.preprocess = preprocess
    return image


def build_blocks(catalog: Catalog, examples_dir: Path | None = None) -> gr.Blocks:
    """The gr.Blocks app over ``catalog`` (queue not configured yet)."""
    handlers = Handlers(catalog)
    choices = catalog.available_keys
    default = [key for key in DEFAULT_CODECS if key in choices] or choices[:1]
    examples, examples_source = find_examples(examples_dir)
    # The handlers' output folders are served as they are: gradio neither copies nor
    # hashes the previews and files of each request (each folder has a random name);
    # session_root() registers its folder as a static path.
    session_root()

    with gr.Blocks(title="PKU-AIGI-500K codecs", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO.format(megapixels=max_pixels() / 1e6, dataset=HUB_REPO_ID))
        with gr.Tab("Compress", id="compress"):
            with gr.Row():
                with gr.Column(scale=2, min_width=320):
                    image = raw_image(
                        label="Image (drop, paste or click to upload)",
                        type="filepath",
                        image_mode=None,
                        sources=["upload", "clipboard"],
                        height=300,
                        elem_id="input-image",
                    )
                    input_notes = gr.Markdown(label="Input notes", elem_id="input-notes")
                    prompt = gr.Textbox(
                        label="Prompt (optional)",
                        placeholder="the text the image was generated from",
                        lines=2,
                        elem_id="prompt",
                    )
                    codecs = gr.CheckboxGroup(
                        choices=choices,
                        value=default,
                        label="Codecs",
                        info="conventional codecs first, then learned models (architecture, metric)",
                        elem_id="codecs",
                    )
                    with gr.Accordion("Unavailable codecs", open=False):
                        gr.Markdown(handlers.unavailable_markdown(), elem_id="unavailable")
                    mode = gr.Radio([MODE_LEVEL, MODE_BPP], value=MODE_LEVEL, label="Rate control")
                    level = gr.Slider(
                        0,
                        100,
                        value=50,
                        step=1,
                        label="Quality level",
                        info="0 = lowest rate of each codec's range, 100 = highest; the table shows "
                        "each codec's own quality value",
                        elem_id="level",
                    )
                    target = gr.Number(
                        value=0.5, minimum=0.01, label="Target bpp", visible=False, elem_id="target"
                    )
                    draw_curves = gr.Checkbox(
                        value=True,
                        label="RD curves over each codec's quality range (slower)",
                        elem_id="draw-curves",
                    )
                    run = gr.Button("Compress", variant="primary", elem_id="compress-button")
                    if examples:
                        gr.Examples(
                            examples,
                            inputs=[image, prompt],
                            label=f"Examples ({examples_source})",
                            examples_per_page=6,
                        )
                with gr.Column(scale=3, min_width=420):
                    shown = gr.Dropdown(
                        choices=[], label="Reconstruction shown", elem_id="shown-codec"
                    )
                    slider = gr.ImageSlider(
                        label="Original | reconstruction (drag to compare, scroll to zoom)",
                        type="filepath",
                        format="png",
                        max_height=600,
                        elem_id="slider",
                    )
                    table = gr.Dataframe(
                        headers=METRIC_HEADERS,
                        datatype="str",
                        interactive=False,
                        label="Metrics",
                        elem_id="metrics",
                    )
                    notes = gr.Markdown(label="Notes", elem_id="result-notes")
                    plot = gr.Plot(label="Rate-distortion on this image", elem_id="rd-plot")
                    files = gr.File(
                        label="Compressed files", file_count="multiple", elem_id="downloads"
                    )
            state = gr.State()

        with gr.Tab("Decode", id="decode"):
            gr.Markdown(
                "Upload a file saved from the Compress tab (or any file of these codecs: "
                f"{', '.join(choices)}) to decode it. An .aigic file names its model; "
                "it decodes when that model is available here."
            )
            with gr.Row():
                with gr.Column():
                    encoded = gr.File(label="Compressed file", elem_id="decode-file")
                    decode_button = gr.Button("Decode", variant="primary", elem_id="decode-button")
                    decode_info = gr.Markdown(label="About the file", elem_id="decode-info")
                with gr.Column():
                    decoded = gr.Image(
                        label="Decoded image",
                        type="filepath",
                        format="png",
                        interactive=False,
                        elem_id="decoded-image",
                    )

        leaderboard_tab()  # reads PKU_AIGI_RESULTS when first opened

        image.upload(
            handlers.on_upload,
            inputs=image,
            outputs=[image, input_notes],
            concurrency_limit=4,
            concurrency_id="light",
            api_name="check_image",
        )
        mode.change(
            lambda m: (gr.update(visible=m == MODE_LEVEL), gr.update(visible=m == MODE_BPP)),
            inputs=mode,
            outputs=[level, target],
            queue=False,
            api_visibility="private",
        )
        run.click(
            handlers.compress,
            inputs=[image, prompt, codecs, mode, level, target],
            outputs=[slider, shown, table, notes, files, state],
            concurrency_id="codecs",
            api_name="compress",
            show_progress="minimal",
        ).success(
            handlers.rd_plot,
            inputs=[state, draw_curves],
            outputs=plot,
            concurrency_id="codecs",
            api_name="rd_curves",
        )
        shown.change(
            handlers.show,
            inputs=[shown, state],
            outputs=slider,
            queue=False,
            api_visibility="private",
        )
        decode_button.click(
            handlers.decode,
            inputs=encoded,
            outputs=[decoded, decode_info],
            concurrency_id="codecs",
            api_name="decode",
        )
    return demo
