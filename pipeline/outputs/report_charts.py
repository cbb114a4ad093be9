"""The report's charts: its figures in, SVG text out (matplotlib, drawn offline).

matplotlib rather than hand-built SVG or Vega-Lite: it draws axes, ticks and labels
that stay readable at any size, writes SVG without a browser or a network (altair
needs vl-convert's bundled Deno engine for the same), and its SVG reads back into the
PDF as vectors (svglib). The figures are built with ``matplotlib.figure.Figure``, not
pyplot: no global state, so two reports can be drawn in two threads.

For a board that prints in grey and for colour-blind readers: one dark colour for the
period (the digest's teal), light grey with hatching or a dashed line with hollow markers
for the comparison, every bar labelled with its value, and at most the top 10 members
plus one bar for the others. Text stays text, in DejaVu Sans (report_fonts.py).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

matplotlib.use("Agg")  # no display, whatever the environment says

MAIN = "#0e7490"  # the digest's teal: dark in grey, safe for every colour vision
COMPARE = "#d1d5db"  # light grey, hatched
COMPARE_EDGE = "#4b5563"
OTHERS = "#9ca3af"
TEXT = "#1f2937"
WIDTH = 6.7  # inches: A4's text width at 2 cm margins
STYLE: Any = {  # rcParams, typed loosely: matplotlib types their keys as a Literal
    # text as text: selectable, small, and drawn in the report's own font (DejaVu Sans, the
    # page carries it inline and the PDF embeds it); outlines would cost the PDF seconds
    "svg.fonttype": "none",
    "svg.hashsalt": "veille-report",  # stable ids: the same figures give the same SVG
    "font.family": "DejaVu Sans",  # shipped with matplotlib; named alone, no fallback list
    "font.size": 9,
    "axes.edgecolor": "#9ca3af",
    "axes.labelcolor": TEXT,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": TEXT,
    "ytick.color": TEXT,
    "hatch.linewidth": 0.6,
    "legend.frameon": False,
}


def svg(fig: Figure) -> str:
    """The chart as an <svg> element, for the page and the PDF."""
    buffer = io.StringIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    # the XML prolog and DOCTYPE are for a file; inline in HTML the <svg> element is enough
    return text[text.index("<svg") :]


def png(fig: Figure, dpi: int = 144) -> bytes:
    """The chart as a PNG, for a mail's body: mail readers show no inline SVG."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _figure(height: float) -> Figure:
    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(WIDTH, height), layout="constrained")


def _label_bars(ax: object, bars: object, texts: Sequence[str]) -> None:
    ax.bar_label(bars, labels=list(texts), padding=3, fontsize=8, color=TEXT)  # type: ignore[attr-defined]


def timeline(
    labels: Sequence[str],
    values: Sequence[int],
    before: Sequence[int],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    legend: tuple[str, str],
) -> Figure:
    """Bars for the period, a dashed line with hollow markers for the comparison."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(2.8)
        ax = fig.subplots()
        positions = list(range(len(labels)))
        ax.bar(positions, values, color=MAIN, width=0.7, label=legend[0], zorder=2)
        shown = [v for v in before[: len(labels)]]
        if shown:
            ax.plot(
                positions[: len(shown)],
                shown,
                linestyle="--",
                color=COMPARE_EDGE,
                marker="o",
                markerfacecolor="white",
                markersize=4,
                linewidth=1.2,
                label=legend[1],
                zorder=3,
            )
        ax.set_xticks(positions, list(labels), fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(bottom=0, top=max([*values, *before[: len(labels)], 1]) * 1.08)
        ax.grid(axis="y", color="#e5e7eb", linewidth=0.6, zorder=0)
        handles, names = ax.get_legend_handles_labels()
        order = sorted(range(len(names)), key=lambda i: names[i] != legend[0])  # the period first
        ax.legend(
            [handles[i] for i in order],
            [names[i] for i in order],
            loc="upper left",
            bbox_to_anchor=(0, -0.22),
            ncols=2,
            fontsize=8,
        )
        return fig


def hbars(
    names: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    texts: Sequence[str],
    muted_last: bool = False,
) -> Figure:
    """Horizontal bars, largest on top, each labelled; the last one grey when it stands
    for "the others"."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(0.7 + 0.26 * max(1, len(names)))
        ax = fig.subplots()
        positions = list(range(len(names)))[::-1]
        colours = [MAIN] * len(names)
        if muted_last and names:
            colours[-1] = OTHERS
        bars = ax.barh(positions, values, color=colours, height=0.7, zorder=2)
        _label_bars(ax, bars, texts)
        ax.set_yticks(positions, [_short(n) for n in names], fontsize=8)
        ax.set_title(title, loc="left")
        ax.margins(x=0.18)
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        ax.xaxis.set_visible(False)
        ax.spines["bottom"].set_visible(False)
        return fig


def paired_hbars(
    names: Sequence[str],
    values: Sequence[int],
    before: Sequence[int],
    *,
    title: str,
    legend: tuple[str, str],
    number: Callable[[int], str] = str,
) -> Figure:
    """Two bars per row: the period (dark), the comparison (light grey, hatched)."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(0.9 + 0.42 * max(1, len(names)))
        ax = fig.subplots()
        rows = list(range(len(names)))[::-1]
        now = ax.barh(
            [r + 0.2 for r in rows], values, height=0.38, color=MAIN, label=legend[0], zorder=2
        )
        # the comparison: light grey, then its hatching on top (svglib draws no SVG
        # pattern, so the PDF keeps the grey; the page shows both)
        then = ax.barh(
            [r - 0.2 for r in rows],
            before,
            height=0.38,
            color=COMPARE,
            edgecolor=COMPARE_EDGE,
            linewidth=0.5,
            label=legend[1],
            zorder=2,
        )
        ax.barh(
            [r - 0.2 for r in rows],
            before,
            height=0.38,
            color="none",
            edgecolor=COMPARE_EDGE,
            linewidth=0.5,
            hatch="////",
            zorder=3,
        )
        _label_bars(ax, now, [number(v) for v in values])
        _label_bars(ax, then, [number(v) for v in before])
        ax.set_yticks(rows, [_short(n) for n in names], fontsize=8)
        ax.set_title(title, loc="left")
        ax.margins(x=0.12)
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        ax.xaxis.set_visible(False)
        ax.spines["bottom"].set_visible(False)
        ax.legend(loc="upper left", bbox_to_anchor=(0, 0), ncols=2, fontsize=8)
        return fig


def _short(name: str, limit: int = 34) -> str:
    return name if len(name) <= limit else name[: limit - 1].rstrip() + "…"
