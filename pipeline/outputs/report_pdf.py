"""The report as a PDF: the report's content and its SVG charts in, A4 pages out, with a
table of contents, page numbers ("page 3 of 8") and the PDF's outline.

reportlab's platypus lays the pages out (pip installs it alone, no system library:
WeasyPrint would need pango, xhtml2pdf is reportlab underneath with a CSS subset to
guess through); svglib turns matplotlib's SVG into reportlab drawings, so the charts stay
vectors; the font is matplotlib's DejaVu Sans (pipeline/outputs/report_fonts.py), so the
euro sign, the narrow spaces babel writes and every accent print.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    KeepTogether,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus.tableofcontents import TableOfContents
from svglib.fonts import register_font
from svglib.svglib import svg2rlg

from pipeline.outputs.report import HEADLINE_ORDER, Content, ReportFormatter, chart_unit
from pipeline.outputs.report_fonts import font_path

FONT = "DejaVu Sans"  # the name the charts' SVG text asks for, so svglib finds it
FONT_BOLD = "DejaVu Sans Bold"
ACCENT = colors.HexColor("#0e7490")
TEXT = colors.HexColor("#1f2937")
MUTED = colors.HexColor("#6b7280")
RULE = colors.HexColor("#d1d5db")
LIGHT = colors.HexColor("#f3f4f6")
MARGIN = 18 * mm
WIDTH = A4[0] - 2 * MARGIN


def _fonts() -> None:
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    pdfmetrics.registerFont(TTFont(FONT, str(font_path("normal"))))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, str(font_path("bold"))))
    pdfmetrics.registerFontFamily(
        FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD
    )
    register_font(FONT, rlgFontName=FONT)  # svglib: the charts' text in the same font
    register_font(FONT, weight="bold", rlgFontName=FONT_BOLD)


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=13, textColor=TEXT)
    return {
        "body": base,
        "kicker": ParagraphStyle("kicker", base, fontSize=8.5, textColor=ACCENT, spaceAfter=2),
        "title": ParagraphStyle("title", base, fontName=FONT_BOLD, fontSize=24, leading=29),
        "span": ParagraphStyle("span", base, fontSize=11, textColor=MUTED, spaceAfter=2),
        "h1": ParagraphStyle(
            "h1", base, fontName=FONT_BOLD, fontSize=15, leading=19, spaceBefore=10, spaceAfter=6
        ),
        "h2": ParagraphStyle(
            "h2", base, fontName=FONT_BOLD, fontSize=11.5, leading=15, spaceBefore=8, spaceAfter=4
        ),
        "small": ParagraphStyle("small", base, fontSize=8, leading=10.5, textColor=MUTED),
        "cell": ParagraphStyle("cell", base, fontSize=8.5, leading=10.5),
        "num": ParagraphStyle("num", base, fontSize=8.5, leading=10.5, alignment=TA_RIGHT),
        "head": ParagraphStyle("head", base, fontSize=8, leading=10, textColor=MUTED),
        "headnum": ParagraphStyle(
            "headnum", base, fontSize=8, leading=10, textColor=MUTED, alignment=TA_RIGHT
        ),
        "value": ParagraphStyle("value", base, fontName=FONT_BOLD, fontSize=16, leading=20),
        "story": ParagraphStyle("story", base, fontName=FONT_BOLD, fontSize=10, leading=13),
        "toc0": ParagraphStyle("toc0", base, fontSize=10, leading=15, leftIndent=0),
    }


class _Doc(BaseDocTemplate):
    """Headings of level 1 go to the table of contents and the PDF's outline."""

    def __init__(self, buffer: io.BytesIO, *, title: str, footer: str, page: str) -> None:
        super().__init__(
            buffer,
            pagesize=A4,
            leftMargin=MARGIN,
            rightMargin=MARGIN,
            topMargin=16 * mm,
            bottomMargin=18 * mm,
            title=title,
            author="veille",
            creator="veille",
        )
        self.footer = footer
        self.page_label = page
        frame = Frame(self.leftMargin, self.bottomMargin, self.width, self.height, id="body")
        self.addPageTemplates([PageTemplate(id="page", frames=[frame])])

    def afterFlowable(self, flowable: Flowable) -> None:
        if isinstance(flowable, Paragraph) and flowable.style.name == "h1":
            text = flowable.getPlainText()
            key = f"s{self.seq.nextf('heading')}"
            self.canv.bookmarkPage(key)
            self.canv.addOutlineEntry(text, key, level=0)
            self.notify("TOCEntry", (0, text, self.page, key))


def _numbered(footer: str, label: str) -> type[Canvas]:
    """A canvas that writes "page n of N" once it knows N (reportlab's two-pass idiom)."""

    class NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self._footer(total)
                super().showPage()
            super().save()

        def _footer(self, total: int) -> None:
            self.saveState()
            self.setFont(FONT, 7.5)
            self.setFillColor(MUTED)
            self.setStrokeColor(RULE)
            self.line(MARGIN, 12 * mm, A4[0] - MARGIN, 12 * mm)
            self.drawString(MARGIN, 8 * mm, footer)
            self.drawRightString(
                A4[0] - MARGIN, 8 * mm, label.format(n=self._pageNumber, total=total)
            )
            self.restoreState()

    return NumberedCanvas


def _chart(svg: str | None) -> Flowable | None:
    if not svg:
        return None
    drawing = svg2rlg(io.BytesIO(svg.encode("utf-8")))
    if drawing is None:
        return None
    scale = min(1.0, WIDTH / drawing.width) if drawing.width else 1.0
    scale = WIDTH / drawing.width if drawing.width > WIDTH * 0.9 else scale
    drawing.width, drawing.height = drawing.width * scale, drawing.height * scale
    drawing.scale(scale, scale)
    drawing.hAlign = "LEFT"
    return drawing


def _table(
    rows: Sequence[Sequence[str]],
    widths: Sequence[float],
    styles: dict[str, ParagraphStyle],
    *,
    numeric: Sequence[int] = (),
    emphasis_last: bool = False,
    muted_last: bool = False,
) -> Table:
    """A table of plain texts (escaped here), its first row the header."""
    cells = []
    for index, row in enumerate(rows):
        cells.append(
            [
                Paragraph(
                    text if "<a " in text else escape(text),
                    styles[
                        ("headnum" if col in numeric else "head")
                        if index == 0
                        else ("num" if col in numeric else "cell")
                    ],
                )
                for col, text in enumerate(row)
            ]
        )
    table = Table(cells, colWidths=[w * WIDTH for w in widths], repeatRows=1, hAlign="LEFT")
    commands: list[tuple[Any, ...]] = [
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, RULE),
        ("LINEBELOW", (0, 1), (-1, -1), 0.3, LIGHT),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if emphasis_last:
        commands.append(("LINEABOVE", (0, -1), (-1, -1), 0.6, RULE))
    if muted_last:
        commands.append(("BACKGROUND", (0, -1), (-1, -1), LIGHT))
    table.setStyle(TableStyle(commands))
    return table


def _link(url: str | None, text: str) -> str:
    if not url:
        return escape(text)
    return f'<a href="{escape(url, {chr(34): "&quot;"})}" color="#0e7490">{escape(text)}</a>'


def write_pdf(content: Content, charts: dict[str, str], *, language: str, zone: str) -> bytes:
    """The report as PDF bytes."""
    _fonts()
    fmt = ReportFormatter(language)
    s = _styles()
    t = fmt.t
    title = f"{t('title')} {content.cluster} · {fmt.period_name(content.period)}"
    buffer = io.BytesIO()
    doc = _Doc(buffer, title=title, footer=title, page=fmt.labels["page"])
    story: list[Flowable] = []

    def h1(key: str) -> None:
        story.append(Paragraph(escape(t(key)), s["h1"]))

    def add(flowable: Flowable | None) -> None:
        if flowable is not None:
            story.append(flowable)

    # the cover: title, periods, contents
    story += [
        Paragraph(escape(f"{t('title')} · {content.cluster}").upper(), s["kicker"]),
        Paragraph(escape(fmt.period_name(content.period)), s["title"]),
        Paragraph(escape(fmt.span(content.period)), s["span"]),
        Paragraph(escape(f"{fmt.compared(content)} ({fmt.span(content.compared)})"), s["small"]),
        Spacer(1, 4 * mm),
    ]
    toc = TableOfContents()
    toc.levelStyles = [s["toc0"]]
    toc.dotsMinLevel = 0
    story += [Paragraph(escape(t("contents")), s["h2"]), toc, Spacer(1, 4 * mm)]

    # 1. headline figures
    h1("s_headline")
    if content.empty:
        story.append(Paragraph(escape(t("nothing")), s["body"]))
    cards = []
    for name in HEADLINE_ORDER:
        fig = content.headline[name]
        cards.append(
            [
                Paragraph(escape(fmt.figure(name, fig.value)), s["value"]),
                Paragraph(escape(t(name)), s["small"]),
                Paragraph(
                    escape(f"{t('previous', value=fmt.figure(name, fig.previous))} · ")
                    + f"<b>{escape(fmt.change(fig))}</b>",
                    s["small"],
                ),
            ]
        )
    grid = Table([cards], colWidths=[WIDTH / 5] * 5, hAlign="LEFT")
    grid.setStyle(
        TableStyle(
            [
                ("LINEABOVE", (0, 0), (-1, 0), 2, ACCENT),
                ("BOX", (0, 0), (-1, -1), 0.3, RULE),
                ("INNERGRID", (0, 0), (-1, -1), 0.3, RULE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story.append(grid)
    if content.other_currencies:
        amounts = fmt.other_amounts(content.other_currencies)
        story.append(Paragraph(escape(t("funding_other_note", amounts=amounts)), s["small"]))
    quiet = (
        t("quiet_count", n=fmt.number(len(content.quiet)), total=fmt.number(content.members_total))
        + " "
        + t("quiet_see")
        if content.quiet
        else t("quiet_none")
    )
    story += [Spacer(1, 2 * mm), Paragraph(escape(quiet), s["body"])]

    # 2. coverage over time
    unit = chart_unit(content)
    story.append(CondPageBreak(90 * mm))
    h1("s_timeline")
    add(_chart(charts.get("timeline")))
    story.append(Paragraph(escape(t("timeline_note", unit=t(f"unit_{unit}"))), s["small"]))

    # 3. share of voice
    story.append(PageBreak())
    h1("s_share")
    if content.shares:
        add(_chart(charts.get("share")))
        rows = [[t("rank"), t("member"), t("stories"), t("share"), t("compared_period")]]
        for index, share in enumerate(content.shares, start=1):
            rows.append(
                [
                    str(index),
                    share.name,
                    fmt.number(share.stories),
                    fmt.percent(share.share),
                    fmt.number(share.previous_stories),
                ]
            )
        if content.others:
            rows.append(
                [
                    "",
                    t("others", n=content.others.name),
                    fmt.number(content.others.stories),
                    fmt.percent(content.others.share),
                    fmt.number(content.others.previous_stories),
                ]
            )
        story.append(
            _table(
                rows,
                [0.08, 0.5, 0.14, 0.14, 0.14],
                s,
                numeric=(0, 2, 3, 4),
                muted_last=content.others is not None,
            )
        )
    else:
        story.append(Paragraph(escape(t("nothing")), s["body"]))
    story.append(Paragraph(escape(t("share_note")), s["small"]))

    # 4. outlets and tiers
    story.append(PageBreak())
    h1("s_outlets")
    add(_chart(charts.get("outlets")))
    if content.outlets:
        rows = [[t("outlet"), t("tier"), t("stories"), t("articles")]]
        rows += [
            [o.name, fmt.tier(o.tier), fmt.number(o.stories), fmt.number(o.articles)]
            for o in content.outlets
        ]
        story.append(_table(rows, [0.52, 0.2, 0.14, 0.14], s, numeric=(2, 3)))
    if content.tiers:
        block: list[Flowable] = [Paragraph(escape(t("s_tiers")), s["h2"])]
        chart = _chart(charts.get("tiers"))
        if chart is not None:
            block.append(chart)
        rows = [[t("tier"), t("outlets"), t("stories"), t("articles"), t("compared_period")]]
        rows += [
            [
                fmt.tier(r.tier),
                fmt.number(r.outlets),
                fmt.number(r.stories),
                fmt.number(r.articles),
                fmt.number(r.previous_stories),
            ]
            for r in content.tiers
        ]
        block.append(_table(rows, [0.36, 0.16, 0.16, 0.16, 0.16], s, numeric=(1, 2, 3, 4)))
        story.append(KeepTogether(block))

    # 5. themes
    story.append(CondPageBreak(80 * mm))
    h1("s_themes")
    if content.themes:
        add(_chart(charts.get("themes")))
    else:
        story.append(Paragraph(escape(t("nothing")), s["body"]))

    # 6. funding
    story.append(PageBreak())
    h1("s_funding")
    if content.deals:
        total = t(
            "funding_total", total=fmt.eur(content.funding_eur), n=fmt.number(len(content.deals))
        )
        if content.other_currencies:
            total += " ; " + t("funding_other", amounts=fmt.other_amounts(content.other_currencies))
        story.append(Paragraph(f"<b>{escape(total)}</b>", s["body"]))
        add(_chart(charts.get("funding")))
        rows = [[t("round"), t("deals"), t("amount")]]
        rows += [
            [fmt.round_name(r.key), fmt.number(r.deals), fmt.eur(r.amount_eur)]
            for r in content.by_round
        ]
        rows.append(
            [
                t("total"),
                fmt.number(sum(r.deals for r in content.by_round)),
                fmt.eur(content.funding_eur),
            ]
        )
        story.append(_table(rows, [0.6, 0.2, 0.2], s, numeric=(1, 2), emphasis_last=True))
        heading = t("deals")
        if content.more_deals:
            heading += " · " + t("deals_largest", n=len(content.listed_deals))
        story.append(Paragraph(escape(heading), s["h2"]))
        rows = [[t("date"), t("member"), t("amount"), t("round"), t("source")]]
        for deal in content.listed_deals:
            rows.append(
                [
                    fmt.day(deal.date),
                    deal.member,
                    fmt.money(deal.amount, deal.currency),
                    fmt.round_name(deal.round),
                    _link(deal.url, deal.title),
                ]
            )
        story.append(_table(rows, [0.12, 0.2, 0.12, 0.14, 0.42], s, numeric=(2,)))
        if content.more_deals:
            more = t("more_deals", n=fmt.number(content.more_deals))
            story.append(Paragraph(escape(more), s["small"]))
    else:
        story.append(Paragraph(escape(t("funding_none")), s["body"]))

    # 7. the most covered stories
    story.append(PageBreak())
    h1("s_stories")
    if not content.top_stories:
        story.append(Paragraph(escape(t("nothing")), s["body"]))
    for index, top in enumerate(content.top_stories, start=1):
        where = t("in_outlet") if len(top.outlets) == 1 else t("in_outlets", n=len(top.outlets))
        meta = (
            f"{fmt.day(top.date)} · {where} ({', '.join(top.outlets)}) · {', '.join(top.members)}"
        )
        block = [
            Paragraph(f"{index}. {_link(top.url, top.title)}", s["story"]),
            Paragraph(escape(meta), s["small"]),
        ]
        if top.line:
            block.append(Paragraph(escape(top.line), s["body"]))
        block.append(Spacer(1, 2.5 * mm))
        story.append(KeepTogether(block))

    # annex: members never covered, in three columns
    story.append(PageBreak())
    h1("s_quiet")
    if content.quiet:
        story.append(
            Paragraph(
                escape(
                    t(
                        "quiet_count",
                        n=fmt.number(len(content.quiet)),
                        total=fmt.number(content.members_total),
                    )
                ),
                s["body"],
            )
        )
        columns = 3
        per = -(-len(content.quiet) // columns)
        grid_rows = []
        for row in range(per):
            grid_rows.append(
                [
                    Paragraph(escape(content.quiet[col * per + row].name), s["cell"])
                    if col * per + row < len(content.quiet)
                    else ""
                    for col in range(columns)
                ]
            )
        annex = Table(grid_rows, colWidths=[WIDTH / columns] * columns, hAlign="LEFT")
        annex.setStyle(
            TableStyle(
                [("TOPPADDING", (0, 0), (-1, -1), 0.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 0.5)]
            )
        )
        story.append(annex)
    else:
        story.append(Paragraph(escape(t("quiet_none")), s["body"]))
    # how to read it
    story.append(CondPageBreak(50 * mm))
    h1("s_method")
    for item in fmt.method(zone):
        story.append(Paragraph("• " + escape(item), s["body"]))

    story.append(Spacer(1, 4 * mm))
    story.append(
        Paragraph(escape(t("generated", when=fmt.stamp(content.generated_at))), s["small"])
    )

    doc.multiBuild(story, canvasmaker=_numbered(title, fmt.labels["page"]))
    return buffer.getvalue()
