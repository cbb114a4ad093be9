"""Main-text extraction: golden pages written for the purpose (navigation, cookie banners,
related articles, comments) -> the article's paragraphs and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.analysis.extract import detect_lang, extract_guarded, extract_html, normalise_lang
from pipeline.errors import ParseError
from tests.conftest import FIXTURES

ARTICLES = FIXTURES / "articles"
PAGES = sorted(p for p in ARTICLES.glob("*.html"))
CANONICAL = re.compile(rb'<link[^>]+rel="canonical"[^>]+href="([^"]+)"')


def squeeze(text: str) -> str:
    return " ".join(text.split())


def lines(path: Path) -> list[str]:
    return [squeeze(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_golden_set_has_at_least_ten_pages_in_both_languages() -> None:
    assert len(PAGES) >= 10
    assert {p.name[:2] for p in PAGES} == {"fr", "en"}


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_extracted_text_has_the_paragraphs_and_none_of_the_boilerplate(page: Path) -> None:
    html = page.read_bytes()
    match = CANONICAL.search(html)
    assert match, "every golden page declares its canonical URL"
    # fetched under another URL: the canonical must come from the page, not be echoed back
    extracted = extract_html(html, url="https://fetched.example/under/another/path?utm_source=rss")
    text = squeeze(extracted.text)
    for paragraph in lines(page.with_suffix(".expected.txt")):
        assert paragraph in text, f"missing paragraph: {paragraph[:80]}"
    for phrase in lines(page.with_suffix(".boilerplate.txt")):
        assert phrase not in text, f"boilerplate kept: {phrase}"
    assert extracted.lang == page.name[:2]
    assert extracted.canonical == match.group(1).decode()


def test_amp_variant_names_the_same_canonical_url() -> None:
    main = extract_html(
        (ARTICLES / "fr-01-ouest-sante.html").read_bytes(), url="https://a.example/x"
    )
    amp = extract_html(
        (ARTICLES / "fr-01-ouest-sante.amp.html").read_bytes(), url="https://a.example/x/amp"
    )
    assert main.canonical and main.canonical == amp.canonical


def test_metadata_comes_from_the_page() -> None:
    page = ARTICLES / "en-01-pharma-wire.html"
    extracted = extract_html(page.read_bytes(), url="https://x.example/")
    assert extracted.title and extracted.author
    assert extracted.published_at is not None and extracted.published_at.year == 2026


def test_og_url_alone_is_not_taken_for_a_canonical() -> None:
    body = "<p>" + " ".join(["Valneva annonce des résultats solides pour son vaccin."] * 6) + "</p>"
    html = (
        '<html lang="fr"><head><meta property="og:url" content="https://www.site.example/">'
        f"</head><body><article>{body}</article></body></html>"
    ).encode()
    assert extract_html(html, url="https://www.site.example/a/1.html").canonical is None


def test_a_page_without_an_article_is_an_error() -> None:
    with pytest.raises(ParseError, match="no article text"):
        extract_html(
            b"<html><body><nav><a href='/'>Accueil</a></nav></body></html>",
            url="https://x.example/",
        )


def test_extraction_runs_bounded_in_a_child() -> None:
    page = PAGES[0]
    assert extract_guarded(page.read_bytes(), url="https://x.example/").text


@pytest.mark.parametrize(
    ("code", "expected"), [("fr-FR", "fr"), ("EN", "en"), ("de", "other"), ("", None), ("12", None)]
)
def test_language_codes_become_fr_en_or_other(code: str, expected: str | None) -> None:
    assert normalise_lang(code) == expected


def test_language_is_detected_when_the_page_does_not_say() -> None:
    french = (
        "La société nantaise a annoncé que les essais de la phase deux sont terminés et que les résultats sont bons pour les patients. "
        * 2
    )
    english = (
        "The company said that the trial has met its primary endpoint and that it will file for approval with the agency this year. "
        * 2
    )
    german = (
        "Das Unternehmen hat heute bekannt gegeben, dass die Studie erfolgreich abgeschlossen wurde und weitere Schritte folgen werden. "
        * 2
    )
    assert detect_lang(french) == "fr"
    assert detect_lang(english) == "en"
    assert detect_lang(german) == "other"
    assert detect_lang("Valneva") is None
