"""The member matcher, the mentions it stores, topics and funding events."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.analysis.analyse import Analyser, find_amounts, parse_number
from pipeline.analysis.folding import fold
from pipeline.analysis.mentions import Matcher, guess_language, snippet
from pipeline.run import remention, run
from pipeline.settings.config import Config, load_config
from tests.conftest import WriteConfig
from tests.fixture_server import FixtureServer
from tests.scripts.eval_mentions import TARGET_PRECISION, TARGET_RECALL, evaluate, load_passages

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "sources.yaml")


@pytest.fixture(scope="module")
def matcher(config: Config) -> Matcher:
    return Matcher.from_config(config)


@pytest.mark.parametrize(
    ("text", "member_id", "alias"),
    [
        ("Le fabricant NG-Biotech recrute.", "ng-biotech", "NG-Biotech"),
        ("Les microalgues d’AlgoSource séduisent.", "algosource", "AlgoSource"),
        (
            "Les résultats d'OSE\nImmunotherapeutics sont attendus.",
            "ose-immunotherapeutics",
            "OSE\nImmunotherapeutics",
        ),
        ("Chez NG\u00a0Biotech, on innove.", "ng-biotech", "NG\u00a0Biotech"),
        ("GOLIVER THERAPEUTICS LÈVE DES FONDS", "goliver-therapeutics", "GOLIVER THERAPEUTICS"),
        ("OSE Immunotherapeutics’ antibody", "ose-immunotherapeutics", "OSE Immunotherapeutics"),
        ("OSE Immunotherapeutics's board", "ose-immunotherapeutics", "OSE Immunotherapeutics"),
        ("Xénothera et ses anticorps", "xenothera", "Xénothera"),
        ("la biotech OSE, cotée sur Euronext", "ose-immunotherapeutics", "OSE"),
        ("le pôle Atlanpole Biothérapies", "atlanpole-biotherapies", "Atlanpole Biothérapies"),
    ],
)
def test_the_spellings_the_press_uses_are_found(
    matcher: Matcher, text: str, member_id: str, alias: str
) -> None:
    (mention,) = matcher.find(text)
    assert (mention.member_id, mention.alias) == (member_id, alias)
    assert text[mention.start : mention.end] == alias


@pytest.mark.parametrize(
    "text",
    [
        "Il ose tout.",
        "A dedicated incubator keeps clean cells separated from cultures under quarantine.",
        "Clean cells are the foundation of any reproducible assay.",
        "OSE ! Le festival des cultures urbaines revient à Nantes.",
        "La technopole Atlanpole accueille trois startups.",
        "NG Biotechnology Ltd opens a lab in Cambridge.",
        "Voir https://www.valneva.example/news et www.goliver.example pour plus d'informations.",
        "Écrire à contact@xenothera.example pour un rendez-vous.",
        "Plus d'informations sur valneva.com et ose-immuno.fr/actualites.",
        "Le milieu de terrain Cevallos a prolongé son contrat.",
        "In the novel, the smuggler Arronax hides his cargo.",
        "CEVA Logistics ouvre un entrepôt près de Libourne pour ses vaccins clients.",
    ],
)
def test_hard_negatives_are_not_mentions(matcher: Matcher, text: str) -> None:
    assert matcher.find(text) == []


def test_offsets_point_at_the_original_text_in_every_labelled_passage(matcher: Matcher) -> None:
    for passage in load_passages():
        text = str(passage["text"])
        for mention in matcher.find(text):
            assert text[mention.start : mention.end] == mention.alias


def test_precision_and_recall_on_the_labelled_passages_meet_the_targets(matcher: Matcher) -> None:
    passages = load_passages()
    assert len(passages) >= 150
    scores = evaluate(matcher, passages)
    right = sum(s.right for s in scores.values())
    found = sum(s.found for s in scores.values())
    expected = sum(s.expected for s in scores.values())
    assert right / found >= TARGET_PRECISION
    assert right / expected >= TARGET_RECALL


def test_longest_alias_wins_where_aliases_overlap(matcher: Matcher) -> None:
    mentions = matcher.find("Le cyclotron Arronax et OSE Immunotherapeutics SA.")
    assert [m.alias for m in mentions] == ["cyclotron Arronax", "OSE Immunotherapeutics SA"]


def test_folding_keeps_an_offset_for_every_folded_character() -> None:
    folded = fold("Ceva  Santé\u00a0Animale’s")
    assert folded.text == "ceva sante animale's"
    assert len(folded.offsets) == len(folded.text) + 1


@pytest.mark.parametrize("keep_case", [False, True])
def test_folding_takes_the_same_road_for_plain_and_rare_characters(keep_case: bool) -> None:
    # text that is plain ASCII once its common accents are replaced folds over bytes; one
    # rare character sends the whole text through the table instead: both say the same
    text = "L’ÉTAT «aide» Clean-Cells…\tÀ Nantes,\r\nThera-\nvax `x` Ça"
    plain = fold(text, keep_case=keep_case)
    rare = fold(text + " Ǆ", keep_case=keep_case)
    assert rare.text.startswith(plain.text)
    assert plain.text == (
        "l'etat \"aide\" clean cells. a nantes, theravax 'x' ca"
        if not keep_case
        else "L'ETAT \"aide\" Clean Cells. A Nantes, Theravax 'x' Ca"
    )
    assert plain.offsets is not None and rare.offsets is not None
    assert list(plain.offsets[:-1]) == list(rare.offsets[: len(plain.text)])


def test_snippets_are_about_200_characters_cut_at_words() -> None:
    words = " ".join(f"mot{i}" for i in range(200))
    text = f"{words} Valneva {words}"
    start = text.index("Valneva")
    piece = snippet(text, start, start + 7)
    assert "Valneva" in piece and 150 <= len(piece) <= 210
    assert piece.startswith("…mot") and piece.endswith("…")


def test_veille_match_prints_one_json_object_per_mention(tmp_path: Path) -> None:
    article = tmp_path / "article.txt"
    article.write_text(
        "Il ose tout.\nNG-Biotech et d’AlgoSource signent un accord.", encoding="utf-8"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "match", str(article), "-"],
        input="Chez GOLIVER THERAPEUTICS.",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["file"], r["member"], r["alias"]) for r in records] == [
        (str(article), "NG Biotech", "NG-Biotech"),
        (str(article), "AlgoSource", "AlgoSource"),
        ("-", "GoLiver Therapeutics", "GOLIVER THERAPEUTICS"),
    ]
    first = records[0]
    assert set(first) >= {"file", "member", "member_id", "alias", "start", "end", "snippet"}
    text = article.read_text(encoding="utf-8")
    assert text[first["start"] : first["end"]] == "NG-Biotech"


# ------------------------------------------------------------------ topics and fundings


@pytest.mark.parametrize(
    ("sentence", "amount", "currency"),
    [
        ("Xenothera lève 12 millions d'euros.", 12e6, "EUR"),
        ("GlioCure raised €3.5M in a seed round.", 3.5e6, "EUR"),
        ("NG Biotech boucle un tour de 1,5 M€.", 1.5e6, "EUR"),
        ("Affilogic closes a $25 million Series A.", 25e6, "USD"),
        ("Naobios obtient 300 000 euros de la région.", 300e3, "EUR"),
        ("Naobios obtient 300\u202f000 € de la région.", 300e3, "EUR"),
        ("Valneva signe un contrat de 2,3 milliards d’euros.", 2.3e9, "EUR"),
        ("AlgoSource secures EUR 4.2 million.", 4.2e6, "EUR"),
        ("Lemer Pax vend pour 1.250.000 €.", 1.25e6, "EUR"),
    ],
)
def test_money_amounts_as_the_press_writes_them(
    sentence: str, amount: float, currency: str
) -> None:
    ((_, _, value, found_currency),) = find_amounts(sentence)
    assert (value, found_currency) == (pytest.approx(amount), currency)


def test_numbers_without_currency_are_not_money() -> None:
    assert find_amounts("Le site de 12 000 m2 emploie 300 personnes depuis 2019.") == []
    assert parse_number("1,500", has_multiplier=False) == 1500
    assert parse_number("1,5", has_multiplier=True) == 1.5


def test_funding_is_tied_to_the_member_in_the_same_sentence(config: Config) -> None:
    analyser = Analyser(config)
    text = (
        "Valneva publie ses résultats trimestriels. Xenothera lève 12 millions d'euros auprès "
        "de Loire Innovation Partners. Le pôle Atlanpole Biotherapies gère 38 millions d'euros de projets."
    )
    analysis = analyser.analyse(title="Levée de fonds", summary="", text=text)
    assert [(f.member_id, f.amount, f.currency, f.amount_eur) for f in analysis.fundings] == [
        ("xenothera", 12e6, "EUR", 12e6)
    ]
    assert "funding" in analysis.topics


def test_topics_need_a_title_keyword_or_two_in_the_body(config: Config) -> None:
    analyser = Analyser(config)
    assert analyser.topics(title="Essai clinique de phase 2 pour Valneva", body="") == (
        "clinical-trial",
    )
    assert analyser.topics(title="Valneva", body="Une usine.") == ()
    assert analyser.topics(title="Valneva", body="Une usine, un site de production.") == (
        "manufacturing",
    )


# ------------------------------------------------------------------ in the store


def test_run_stores_mentions_fundings_and_topics_of_new_articles(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    config = write_config(
        sources=[{"id": "ouest-sante", "kind": "feed", "url": server.url("ouest-sante.rss")}],
        members=[{"name": "Xenothera"}, {"name": "GoLiver Therapeutics", "aliases": ["Goliver"]}],
        topics={"funding": {"fr": ["lève", "levée de fonds"], "en": ["raises"]}},
    )
    run(config, db_path=db_path)
    conn = sqlite3.connect(db_path)
    rows = conn.execute(
        "SELECT a.title, m.member_id, m.alias, m.count, m.in_title, m.snippet FROM mentions m "
        "JOIN articles a ON a.id = m.article_id WHERE m.member_id = 'xenothera'"
    ).fetchall()
    ((title, _, alias, count, in_title, snip),) = rows
    assert (
        title.startswith("Xenothera lève") and alias == "Xenothera" and in_title == 1 and count >= 2
    )
    assert "Xenothera" in snip and len(snip) <= 215
    assert conn.execute("SELECT member_id, amount_eur FROM fundings").fetchall() == [
        ("xenothera", 12e6)
    ]
    topics = conn.execute("SELECT topics FROM articles WHERE title LIKE 'Xenothera%'").fetchone()[0]
    assert "funding" in json.loads(topics)
    conn.close()


def test_remention_finds_new_aliases_and_drops_stale_mentions(
    server: FixtureServer, write_config: WriteConfig, db_path: Path
) -> None:
    source = [{"id": "ouest-sante", "kind": "feed", "url": server.url("ouest-sante.rss")}]
    before = write_config(sources=source, members=[{"name": "Xenothera"}, {"name": "Valneva"}])
    run(before, db_path=db_path)

    def mentioned() -> set[str]:
        conn = sqlite3.connect(db_path)
        try:
            return {r[0] for r in conn.execute("SELECT DISTINCT member_id FROM mentions")}
        finally:
            conn.close()

    assert "goliver-therapeutics" not in mentioned() and "xenothera" in mentioned()
    # the registry changes: GoLiver (written "Goliver" in this feed) is added, Xenothera is gone
    after = write_config(
        sources=source,
        members=[{"name": "GoLiver Therapeutics", "aliases": ["Goliver"]}, {"name": "Valneva"}],
        name="after.yaml",
    )
    report = remention(after, db_path=db_path)
    assert report.articles == 6
    assert "goliver-therapeutics" in mentioned() and "xenothera" not in mentioned()


def test_the_amount_goes_to_the_member_named_before_it(config: Config) -> None:
    analyser = Analyser(config)
    sentence = (
        "Des entreprises plus jeunes tenaient un stand : Xenothera, qui prépare un essai après une "
        "levée de 12 millions d'euros, et GoLiver Therapeutics, engagée dans un programme d'accélération."
    )
    assert [(f.member_id, f.amount) for f in analyser.fundings(sentence)] == [("xenothera", 12e6)]
    after = "Une enveloppe de 3 millions d'euros pour Naobios et son usine de Saint-Herblain."
    assert [(f.member_id, f.amount) for f in analyser.fundings(after)] == [("naobios", 3e6)]


def test_context_words_count_anywhere_in_the_article(config: Config) -> None:
    analyser = Analyser(config)
    analysis = analyser.analyse(
        title="OSE lève 10 M€",
        summary="",
        text="La biotech nantaise spécialisée en immunothérapie finance son essai de phase 2.",
    )
    ((mention,),) = [[m for m in analysis.mentions if m.member_id == "ose-immunotherapeutics"]]
    assert mention.in_title
    assert [(f.member_id, f.amount) for f in analysis.fundings] == [
        ("ose-immunotherapeutics", 10e6)
    ]


def test_thin_spaces_and_us_dollars_after_the_number() -> None:
    assert find_amounts("Naobios obtient 300\u2009000 euros.")[0][2:] == (300e3, "EUR")
    assert find_amounts("Affilogic lève 25 millions US$.")[0][2:] == (25e6, "USD")


@pytest.mark.parametrize(
    ("text", "member_id"),
    [
        ("Xe\u0301nothera recrute.", "xenothera"),  # accent typed as a combining mark
        ("Chez Lemer\u00adPax, on innove.", "lemer-pax"),  # soft hyphen inside the name
        ("NG\u200bBiotech exporte.", "ng-biotech"),  # zero-width space inside the name
    ],
)
def test_invisible_characters_inside_names_do_not_hide_them(
    matcher: Matcher, text: str, member_id: str
) -> None:
    (mention,) = matcher.find(text)
    assert mention.member_id == member_id
    assert text[mention.start : mention.end] == mention.alias


@pytest.mark.parametrize(
    ("text", "member_id", "alias"),
    [
        ("Les anticorps de Xeno-\nthera sont testés.", "xenothera", "Xeno-\nthera"),
        (
            "Researchers at Nao- bios made the batches.",
            "naobios",
            "Nao- bios",
        ),  # break made a space
        ("La société Affi-\r\n  logic recrute.", "affilogic", "Affi-\r\n  logic"),
        ("Chez Gli\u00ad\nocure, on innove.", "gliocure", "Gli\u00ad\nocure"),  # soft hyphen
        (
            "GoLi-\nver Therapeutics entre en phase 1.",
            "goliver-therapeutics",
            "GoLi-\nver Therapeutics",
        ),
    ],
)
def test_a_name_hyphenated_across_a_line_break_is_found(
    matcher: Matcher, text: str, member_id: str, alias: str
) -> None:
    (mention,) = matcher.find(text)
    assert (mention.member_id, mention.alias) == (member_id, alias)
    assert text[mention.start : mention.end] == alias


def test_folding_joins_a_word_broken_at_a_line_break_and_keeps_its_offsets() -> None:
    text = "Thera- vax et Xeno-\nthera, In-Cell-\nArt, pré- et post-opératoire, Saint-\n\nNazaire"
    folded = fold(text)
    assert folded.text == (
        "theravax et xenothera, in cell art, preet post operatoire, saint nazaire"
    )
    assert folded.offsets is not None and len(folded.offsets) == len(folded.text) + 1
    start = folded.text.index("xenothera")
    end = start + len("xenothera")
    assert text[folded.original(start) : folded.original(end - 1) + 1] == "Xeno-\nthera"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "J. Martin1\n1Xenothera, Nantes, France; 2Naobios, Saint-Herblain",
            ["xenothera", "naobios"],
        ),
        ("Affiliations: ³Affilogic, Nantes; ⁴GlioCure, Angers.", ["affilogic", "gliocure"]),
        ("Funding was provided by Valneva¹ and the region.", ["valneva"]),
        ("*Xenothera, Nantes ; †Naobios, Saint-Herblain", ["xenothera", "naobios"]),
        # longer numbers and shorter names glued to digits are other things
        ("Xenothera2026 est un nom de code.", []),
        ("Les lots 12Naobios34 sont prêts.", []),
    ],
)
def test_a_name_glued_to_an_affiliation_number_or_symbol_is_found(
    matcher: Matcher, text: str, expected: list[str]
) -> None:
    assert [m.member_id for m in matcher.find(text)] == expected


def test_a_short_name_glued_to_a_digit_is_not_a_mention() -> None:
    from pipeline.analysis.mentions import AliasRule

    matcher = Matcher([AliasRule("arc", "ARC", "ARC"), AliasRule("tau", "Tau", "Tau")])
    assert matcher.find("ARC1 and tau2 were elevated.") == []
    assert [m.member_id for m in matcher.find("ARC and Tau were elevated.")] == ["arc", "tau"]


def test_the_article_language_is_guessed_from_its_commonest_words() -> None:
    assert guess_language(fold("La biotech lève des fonds pour son essai.").text) == "fr"
    assert guess_language(fold("The biotech raised funds for its trial.").text) == "en"
    assert guess_language(fold("Valneva, 12 M€").text) is None
