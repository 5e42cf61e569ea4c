"""The Space's Leaderboard tab: published benchmark runs ranked by BD-rate against VVC.

Reads the results datasets named in ``PKU_AIGI_RESULTS`` (comma-separated Hub dataset ids
or folders; see :mod:`pku_aigi.results.leaderboard`) the first time the tab is opened,
not at start-up, and again on Reload. The measured table (per subset and over all
images, sortable by any column) and the RD curves come from the runs' own measurements;
the paper's reference rows are a table of their own.
"""

from __future__ import annotations

import threading

import gradio as gr

METRICS = {"PSNR": "psnr", "MS-SSIM dB": "ms_ssim_db"}
INTRO = """Codecs of published `pku-aigi bench` runs (Hub datasets made with `pku-aigi results
publish`, named in `PKU_AIGI_RESULTS`), ranked by their BD-rate against the run's VVC
(VVenC) anchor: negative means fewer bits for the same quality. Click a column to sort.
Reference rows are the paper's own numbers against VTM, kept apart: they were not
measured here and their anchor differs."""


class Leaderboard:
    """The tab's state: the board, read once (lazily) and again on reload."""

    def __init__(self, sources: list[str] | None = None):
        self._sources = sources
        self._board = None
        self._lock = threading.Lock()

    def board(self, reload: bool = False):
        from ..results.leaderboard import build_board, sources_from_env

        with self._lock:
            if self._board is None or reload:
                sources = self._sources if self._sources is not None else sources_from_env()
                self._board = build_board(sources)
            return self._board

    def view(self, group: str | None, metric: str, reload: bool = False):
        """(subset choices, measured table, RD figure, reference table, notes)."""
        import pandas as pd

        from ..results.leaderboard import COLUMNS, group_rows
        from ..results.reference import COLUMNS as REFERENCE_COLUMNS

        board = self.board(reload)
        groups = board.groups
        if group not in groups:
            group = groups[0] if groups else None
        measured = pd.DataFrame(group_rows(board, group) if group else [], columns=list(COLUMNS))
        reference = pd.DataFrame(board.reference, columns=list(REFERENCE_COLUMNS)).rename(
            columns={"bd_rate": "BD-rate %"}
        )
        figure = rd_figure(board.curves.get(group, {}), METRICS.get(metric, "psnr"), group)
        return (
            gr.update(choices=groups, value=group),
            measured,
            figure,
            reference,
            notes_markdown(board),
        )

    def reload(self, group, metric):
        return self.view(group, metric, reload=True)


def notes_markdown(board) -> str:
    lines = []
    if board.runs:
        lines.append(f"Runs: {', '.join(board.runs)}.")
    else:
        lines.append(
            "No measured run: set `PKU_AIGI_RESULTS` to Hub dataset ids or folders made "
            "with `pku-aigi results publish`."
        )
    lines += [f"- **cannot read** {error}" for error in board.errors]
    lines += [f"- {note}" for note in board.notes]
    return "\n".join(lines)


def rd_figure(curves: dict[str, list[dict]], metric: str, group: str | None):
    """RD curves of every codec of every run in one group (matplotlib figure)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), layout="constrained")
    ax = figure.subplots()
    for label, points in sorted(curves.items()):
        anchor = label.split(" · ")[0] == "vvc"
        ax.plot(
            [p["bpp"] for p in points],
            [p[metric] for p in points],
            "o--" if anchor else "o-",
            markersize=3,
            label=label,
        )
    ax.set_xlabel("rate (bits per pixel)")
    ax.set_ylabel("PSNR (dB, RGB)" if metric == "psnr" else "MS-SSIM (dB)")
    ax.set_title(f"Rate-distortion, {group or 'no run'} (mean over images)")
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend(loc="lower right", fontsize="small")
    return figure


def leaderboard_tab(leaderboard: Leaderboard | None = None) -> Leaderboard:
    """Add the Leaderboard tab to the enclosing ``gr.Blocks``; its data loads when opened."""
    leaderboard = leaderboard or Leaderboard()
    with gr.Tab("Leaderboard", id="leaderboard") as tab:
        gr.Markdown(INTRO)
        with gr.Row():
            group = gr.Dropdown(choices=[], label="Subset", elem_id="lb-subset", scale=2)
            metric = gr.Radio(list(METRICS), value="PSNR", label="RD curves", scale=2)
            reload = gr.Button("Reload", elem_id="lb-reload", scale=1)
        measured = gr.Dataframe(  # columns come with the data: nothing is imported at start-up
            interactive=False,
            wrap=True,
            label="Measured: BD-rate against VVC",
            elem_id="lb-measured",
        )
        plot = gr.Plot(label="RD curves", elem_id="lb-plot")
        reference = gr.Dataframe(
            interactive=False,
            wrap=True,
            label="Reference: the paper's BD-rates against VTM (not measured here)",
            elem_id="lb-reference",
        )
        notes = gr.Markdown(elem_id="lb-notes")
    outputs = [group, measured, plot, reference, notes]
    for event in (tab.select, group.input, metric.input):
        event(leaderboard.view, inputs=[group, metric], outputs=outputs, api_visibility="private")
    reload.click(
        leaderboard.reload, inputs=[group, metric], outputs=outputs, api_visibility="private"
    )
    return leaderboard
