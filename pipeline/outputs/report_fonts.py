"""The report's font: DejaVu Sans, as matplotlib ships it, in (a subset for) the HTML page
and registered for the PDF.

One font for the charts, the page and the PDF, installed by pip with matplotlib (no
system font package): the page carries only the glyphs it uses (fontTools' subsetter,
WOFF, about 20 KB a face) so it opens offline and looks the same everywhere; the PDF
embeds it through reportlab.
"""

from __future__ import annotations

import base64
import io
from functools import cache
from pathlib import Path

FAMILY = "DejaVu Sans"  # the name the charts' SVG text asks for
FACES = {"normal": "DejaVuSans.ttf", "bold": "DejaVuSans-Bold.ttf"}


@cache
def font_path(weight: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / FACES[weight]


def _subset(path: Path, text: str) -> bytes:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.flavor = "woff"  # zlib: no brotli needed
    options.name_IDs = ["*"]  # the licence and the names stay with the font
    options.notdef_outline = True
    options.drop_tables = [*options.drop_tables, "FFTM"]  # FontForge's timestamps
    font = TTFont(str(path))
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=text)
    subsetter.subset(font)
    buffer = io.BytesIO()
    font.flavor = "woff"
    font.save(buffer)
    return buffer.getvalue()


def font_faces(page: str) -> str:
    """@font-face rules with the glyphs ``page`` uses (its text, markup included: a
    few more glyphs, no HTML parse), inline as data: URIs."""
    characters = "".join(sorted(set(page) | set("0123456789 %€+−=.,:;()…")))
    rules = []
    for weight in FACES:
        data = base64.b64encode(_subset(font_path(weight), characters)).decode("ascii")
        rules.append(
            f'@font-face {{ font-family: "{FAMILY}"; font-weight: {weight}; '
            f'src: url(data:font/woff;base64,{data}) format("woff"); }}'
        )
    return "\n".join(rules)
