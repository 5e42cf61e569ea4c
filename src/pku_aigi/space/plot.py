"""The demo's rate-distortion figure: PSNR against bpp on one image."""

from __future__ import annotations

from .engine import RDPoint


def rd_figure(curves: dict[str, list[RDPoint]], current: dict[str, RDPoint]):
    """A matplotlib figure: one line per codec over its RD grid, the current point starred."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), layout="constrained")
    ax = figure.subplots()
    colors = matplotlib.colormaps["tab10"]
    for index, key in enumerate(list(dict.fromkeys([*current, *curves]))):
        color = colors(index % 10)
        points = sorted(curves.get(key, []), key=lambda p: p.bpp)
        if points:
            ax.plot(
                [p.bpp for p in points],
                [p.psnr for p in points],
                "o-",
                color=color,
                markersize=4,
                label=key,
            )
        point = current.get(key)
        if point is not None:
            ax.plot(
                point.bpp,
                point.psnr,
                "*",
                color=color,
                markersize=16,
                markeredgecolor="black",
                label=None if points else key,
            )
    ax.set_xlabel("rate (bits per pixel)")
    ax.set_ylabel("PSNR (dB, RGB)")
    ax.set_title("Rate-distortion on this image (★ = current setting)")
    ax.grid(True, alpha=0.3)
    if curves or current:
        ax.legend(loc="lower right", fontsize="small")
    return figure
