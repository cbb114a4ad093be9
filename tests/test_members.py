"""Forms derived from bare names: legal suffixes and generic words dropped where what is
left is distinctive, evidence from word frequency, the longer name first, hand rules first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from pipeline.analysis.members import MemberForms, derive
from pipeline.analysis.mentions import Matcher
from pipeline.settings.config import Config, load_config

CLUSTER = {"name": "Atlanpole Biotherapies", "aliases": ["Atlanpole Biothérapies"]}


def configure(tmp_path: Path, members: list[dict[str, Any]]) -> Config:
    path = tmp_path / "sources.yaml"
    with path.open("w", encoding="utf-8") as handle:
        YAML().dump({"cluster": CLUSTER, "members": members}, handle)
    return load_config(path)


def forms_of(config: Config) -> dict[str, MemberForms]:
    return {f.member_id: f for f in derive(config.cluster, config.members)}


def rules(forms: MemberForms) -> dict[str, str]:
    """Each form's rule; the handle forms ("@NaogenPharma") have a test of their own."""
    return {f.alias: f.rule for f in forms.forms if not f.handle}


NAMES = [
    {"name": "Mablink Bioscience"},
    {"name": "Step Pharma SAS"},
    {"name": "Atlantic Bone Screen"},
    {"name": "Vital Ouest"},
    {"name": "Nova Cell"},
    {"name": "Nova Cell Therapeutics"},
    {"name": "OSE Immunotherapeutics"},
    {"name": "Kelia Diagnostics"},
    {"name": "Kelia Therapeutics"},
    {"name": "Fast Track Diagnostics"},
    {"name": "Biomarkers Ouest"},
    {"name": "In-Cell-Art"},
    {"name": "EFS Pays de la Loire"},
    {"name": "Valneva SE"},
]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return configure(tmp_path, NAMES)


@pytest.fixture
def matcher(config: Config) -> Matcher:
    return Matcher.from_config(config)


def test_legal_suffix_and_generic_word_are_dropped_where_the_rest_is_distinctive(
    config: Config,
) -> None:
    forms = forms_of(config)
    assert rules(forms["mablink-bioscience"]) == {
        "Mablink Bioscience": "plain",
        "Mablink": "plain",
    }
    assert rules(forms["valneva-se"]) == {"Valneva SE": "plain", "Valneva": "plain"}
    step = forms["step-pharma-sas"]
    assert rules(step) == {
        "Step Pharma SAS": "capitals",
        "Step Pharma": "capitals",
        "StepPharma": "plain",  # the two words together are no word: no capitals needed
        "Step": "not used",
    }
    (dropped,) = [f for f in step.forms if f.alias == "Step"]
    assert "common word" in dropped.reason and "step 3.4/5.1" in dropped.reason


def test_names_made_of_common_words_need_their_capitals(config: Config) -> None:
    forms = forms_of(config)
    assert rules(forms["atlantic-bone-screen"]) == {"Atlantic Bone Screen": "capitals"}
    # "ouest" is 2.2 in English: "vital ouest" is ordinary text in French only
    assert rules(forms["vital-ouest"]) == {
        "Vital Ouest": "capitals in fr",
        "VitalOuest": "plain",
        "Vital": "not used",
    }
    # the hyphens dropped, the name is a word of its own: no capitals needed
    assert rules(forms["in-cell-art"]) == {"In-Cell-Art": "capitals", "InCellArt": "plain"}


def test_an_acronym_left_by_a_shortening_is_not_used(config: Config) -> None:
    # "OSE" of OSE Immunotherapeutics is also a French verb, "ARC" the cancer charity,
    # "MGI" a sequencing company: a person writes the rule when it is wanted (sources.yaml)
    ose = forms_of(config)["ose-immunotherapeutics"]
    assert rules(ose)["OSE"] == "not used"
    assert "acronym left by a shortening" in next(f.reason for f in ose.forms if f.alias == "OSE")
    assert ose.derived_context and "biotech" in ose.context


def test_a_listed_word_left_by_a_shortening_needs_capitals_context_and_nothing_after_it(
    tmp_path: Path,
) -> None:
    config = configure(
        tmp_path,
        [{"name": "Astatine Pharma"}, {"name": "Lucine Therapeutics"}, {"name": "Curium Ouest"}],
    )
    forms = forms_of(config)
    # astatine: zipf 1.5 in English, a chemical element as often as a company
    assert rules(forms["astatine-pharma"]) == {
        "Astatine Pharma": "plain",
        "Astatine": "capitals + context",
    }
    (astatine,) = [f for f in forms["astatine-pharma"].forms if f.alias == "Astatine"]
    assert "a listed word" in astatine.reason and "ends the name" in astatine.reason
    matcher = Matcher.from_config(config)
    found = [
        "Astatine Pharma lève 5 M€.",
        "Astatine lève 5 M€ pour sa plateforme.",
        "Lucine dosed its first patient in a phase 1 trial.",
        "Curium et un laboratoire nantais s'allient à Nantes.",
    ]
    for text in found:
        assert len(matcher.find(text)) == 1, text
    missed = [
        "Astatine-211 is an alpha emitter made in a cyclotron for targeted therapy.",
        "L'astatine est un halogène, utile en thérapie.",  # no capitals
        "Lucine Martin, CEO of a Paris start-up, spoke at the event.",  # a person
        "Curium Pharma rachète un laboratoire belge.",  # another company
        "Lucine presented a painting at the gallery.",  # no context word
        "Curium et un laboratoire s'allient.",  # the group: the member's region is not named
    ]
    for text in missed:
        assert matcher.find(text) == [], text


def test_shortened_phrases_of_common_words_and_trailing_function_words_are_not_used(
    config: Config,
) -> None:
    forms = forms_of(config)
    assert rules(forms["fast-track-diagnostics"])["Fast Track"] == "not used"
    assert rules(forms["biomarkers-ouest"])["Biomarkers"] == "capitals + context + a place"
    assert set(rules(forms["efs-pays-de-la-loire"])) == {"EFS Pays de la Loire"}


def test_a_longer_name_is_not_also_the_shorter_member_inside_it(
    config: Config, matcher: Matcher
) -> None:
    therapeutics = forms_of(config)["nova-cell-therapeutics"]
    (nova_cell,) = [f for f in therapeutics.forms if f.alias == "Nova Cell"]
    assert not nova_cell.used and "Nova Cell" in nova_cell.reason
    found = matcher.find("Nova Cell Therapeutics rachète une usine ; Nova Cell recrute.")
    assert [m.member_id for m in found] == ["nova-cell-therapeutics", "nova-cell"]


def test_a_form_two_members_share_is_used_by_neither(config: Config, matcher: Matcher) -> None:
    forms = forms_of(config)
    for member in ("kelia-diagnostics", "kelia-therapeutics"):
        (kelia,) = [f for f in forms[member].forms if f.alias == "Kelia"]
        assert not kelia.used and kelia.reason.startswith("shared with Kelia")
    assert matcher.find("Kelia lève 4 millions d'euros.") == []
    assert [m.member_id for m in matcher.find("Kelia Therapeutics lève 4 M€.")] == [
        "kelia-therapeutics"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("La biotech Mablink lève 30 millions d'euros.", ["mablink-bioscience"]),
        ("Step Pharma doses its first patient.", ["step-pharma-sas"]),
        ("STEP PHARMA LÈVE DES FONDS", ["step-pharma-sas"]),
        ("The next step: pharma companies must adapt.", []),
        ("Each step pharma teams take is audited.", []),
        ("Atlantic Bone Screen signe avec un laboratoire.", ["atlantic-bone-screen"]),
        ("An atlantic bone screen of the cod population.", []),
        ("Vital Ouest ouvre un site à Nantes.", ["vital-ouest"]),
        ("Un enjeu vital ouest-africain.", []),
        ("Il ose tout, même sans biotech.", []),
        ("La biotech OSE publie ses résultats.", []),
        ("OSE Immunotherapeutics publie ses résultats.", ["ose-immunotherapeutics"]),
        ("OSE ! Le festival revient.", []),
        ("Fast Track designation granted by the FDA.", []),
        ("Biomarkers are measured in blood.", []),
    ],
)
def test_derived_forms_in_text(matcher: Matcher, text: str, expected: list[str]) -> None:
    assert [m.member_id for m in matcher.find(text)] == expected


def test_hand_written_rules_override_derived_ones(tmp_path: Path) -> None:
    config = configure(
        tmp_path,
        [
            # a person says: "Step" alone, in capitals with context, is Step Pharma
            {
                "name": "Step Pharma",
                "aliases": [{"alias": "Step", "case_sensitive": True, "context": True}],
                "context": ["nucleoside", "Romainville"],
            },
            # and "Mablink" alone is not to be trusted
            {"name": "Mablink Bioscience", "aliases": [{"alias": "Mablink", "use": False}]},
            # and this one is matched only as written
            {"name": "Kelia Therapeutics", "derive": False},
        ],
    )
    forms = forms_of(config)
    step = forms["step-pharma"]
    assert rules(step)["Step"] == "capitals + context"
    assert step.context == ("nucleoside", "Romainville") and not step.derived_context
    assert rules(forms["mablink-bioscience"])["Mablink"] == "not used"
    assert rules(forms["kelia-therapeutics"]) == {"Kelia Therapeutics": "plain"}
    matcher = Matcher.from_config(config)
    assert [m.member_id for m in matcher.find("Step lance un essai (nucleoside).")] == [
        "step-pharma"
    ]
    assert matcher.find("Mablink lève des fonds.") == []
    assert matcher.find("Kelia lève des fonds.") == []


def test_plain_aliases_from_the_directory_get_derived_evidence(tmp_path: Path) -> None:
    config = configure(tmp_path, [{"name": "Vital Ouest", "aliases": ["Vital", "VitalOuest"]}])
    assert rules(forms_of(config)["vital-ouest"]) == {
        "Vital Ouest": "capitals in fr",
        "Vital": "capitals + context",
        "VitalOuest": "plain",
    }


def test_the_projects_sixteen_members_keep_their_tuned_rules() -> None:
    config = load_config(Path(__file__).resolve().parent.parent / "sources.yaml")
    forms = forms_of(config)
    assert rules(forms["ose-immunotherapeutics"])["OSE"] == "capitals + context"
    assert rules(forms["clean-cells"])["Clean Cells"] == "capitals"
    assert rules(forms["ng-biotech"])["NG"] == "not used"


# ------------------------------------------------------------------ as the press writes them


def test_a_phrase_with_a_rare_word_needs_no_capitals(tmp_path: Path) -> None:
    config = configure(tmp_path, [{"name": "KRN Immunotherapeutics"}, {"name": "Organoid Factory"}])
    forms = forms_of(config)
    (krn,) = [f for f in forms["krn-immunotherapeutics"].forms if f.origin == "name"]
    assert krn.rule == "plain" and "'krn' is rare" in krn.reason
    matcher = Matcher.from_config(config)
    for text in (
        "Krn Immunotherapeutics signe une licence.",
        "KRN IMMUNOTHERAPEUTICS LÈVE 30 M€",
        # the price: the phrase of a rare word and a common one, written as ordinary text
        "Visit to organoid factory in Nantes.",
    ):
        assert len(matcher.find(text)) == 1, text
    # but after "a", "an", "un", "une" and in lower case, it is a thing
    assert matcher.find("The lab is an organoid factory.") == []
    assert len(matcher.find("The lab is an Organoid Factory partner.")) == 1


def test_a_phrase_needs_capitals_only_in_the_language_it_is_ordinary_text_in(
    tmp_path: Path,
) -> None:
    config = configure(tmp_path, [{"name": "Pure Cells"}])
    (name,) = [f for f in forms_of(config)["pure-cells"].used if f.origin == "name"]
    # "cells" is 2.6 in French, 4.8 in English
    assert name.rule == "capitals in en" and "ordinary text in en only" in name.reason
    matcher = Matcher.from_config(config)
    assert len(matcher.find("La start-up pure cells lève 4 millions d'euros.")) == 1
    assert matcher.find("The pure cells were sorted before sequencing.") == []
    # the language given wins over the guess
    assert matcher.find("pure cells, 4 M€", lang="en") == []
    assert len(matcher.find("pure cells, 4 M€", lang="fr")) == 1


def test_a_phrase_in_other_capitals_is_found_where_the_capitals_are_the_names(
    tmp_path: Path,
) -> None:
    config = configure(tmp_path, [{"name": "ARC Therapeutics"}, {"name": "Good Cells"}])
    matcher = Matcher.from_config(config)
    found = [
        "The deal makes Arc Therapeutics the first French company in the field.",
        "Investors backed Good cells in a seed round.",  # the first capital is the name's
        "GOOD CELLS RAISES €5M",
    ]
    for text in found:
        assert len(matcher.find(text)) == 1, text
    missed = [
        "Good cells make good science, says the laboratory manager.",  # a sentence's capital
        "The lab keeps good cells and discards the rest.",
        "The arc of therapeutics bends towards biologics.",
    ]
    for text in missed:
        assert matcher.find(text) == [], text


def test_an_institutional_prefix_is_dropped_where_the_rest_is_distinctive(tmp_path: Path) -> None:
    config = configure(
        tmp_path,
        [
            {"name": "Groupe Vetalis"},
            {"name": "Laboratoires Gaudin"},
            {"name": "Institut de la Vision Ouest"},
            {"name": "GIP Cyclotope"},
        ],
    )
    forms = forms_of(config)
    (vetalis,) = [f for f in forms["groupe-vetalis"].forms if f.alias == "Vetalis"]
    assert vetalis.rule == "plain" and vetalis.origin == 'without prefix "Groupe"'
    # a surname is a common word: not used alone
    assert rules(forms["laboratoires-gaudin"])["Gaudin"] == "not used"
    # "de la Vision Ouest" is no name
    assert not any(
        f.origin.startswith("without prefix") for f in forms["institut-de-la-vision-ouest"].forms
    )
    matcher = Matcher.from_config(config)
    assert [m.member_id for m in matcher.find("Vetalis rachète un laboratoire.")] == [
        "groupe-vetalis"
    ]
    assert [m.alias for m in matcher.find("Le GIP Cyclotope et Cyclotope.")] == [
        "GIP Cyclotope",
        "Cyclotope",
    ]
    assert matcher.find("Le maire, Jean Gaudin, inaugure la médiathèque.") == []


def test_a_legal_prefix_is_dropped_and_what_is_left_is_the_members_name(tmp_path: Path) -> None:
    config = configure(tmp_path, [{"name": "SAS Kerolia"}, {"name": "Kerolia Diagnostics"}])
    forms = forms_of(config)
    assert rules(forms["sas-kerolia"]) == {"SAS Kerolia": "plain", "Kerolia": "plain"}
    (short,) = [f for f in forms["kerolia-diagnostics"].forms if f.alias == "Kerolia"]
    assert not short.used and short.reason == "the name or an alias of SAS Kerolia"
    matcher = Matcher.from_config(config)
    assert [m.member_id for m in matcher.find("Kerolia et Kerolia Diagnostics.")] == [
        "sas-kerolia",
        "kerolia-diagnostics",
    ]


def test_generic_trailing_words_the_press_drops_are_dropped(tmp_path: Path) -> None:
    names = [
        "Marigen Ingredients",
        "Novaflux Technics",
        "Protelia Expression",
        "Kerascan Scientific",
    ]
    config = configure(tmp_path, [{"name": n} for n in names])
    forms = forms_of(config)
    for name in names:
        short, dropped = name.split()
        (form,) = [f for f in forms[f"{short.lower()}-{dropped.lower()}"].forms if f.alias == short]
        assert form.rule == "plain" and form.origin == f'without "{dropped}"'


def test_a_name_with_symbols_is_found_written_several_ways(tmp_path: Path) -> None:
    config = configure(tmp_path, [{"name": "Mab<>Lab"}, {"name": "Onco.Path"}])
    forms = forms_of(config)
    assert {(f.alias, f.origin) for f in forms["mab-lab"].forms} == {
        ("Mab<>Lab", "name"),
        ("MabLab", "symbols dropped"),
        ("Mab Lab", "symbols as spaces"),
    }
    matcher = Matcher.from_config(config)
    for text in ("Mab<>Lab lève 2 M€.", "Mab-Lab recrute.", "MabLab signs.", "MABLAB", "Mab Lab"):
        assert [m.member_id for m in matcher.find(text)] == ["mab-lab"], text
    assert [m.member_id for m in matcher.find("OncoPath et Onco-Path")] == ["onco-path"] * 2
    assert matcher.find("The mab lab at the university.") == []
    # a name the directory writes in lower case is written with capitals by the press
    lower = Matcher.from_config(configure(tmp_path, [{"name": "x<>lab"}]))
    for text in ("x<>lab lève 2 M€.", "X-Lab recrute.", "XLab signs.", "X Lab"):
        assert len(lower.find(text)) == 1, text
    assert lower.find("an x lab in the basement") == []


def test_a_name_in_capitals_or_with_its_acronym_in_brackets_is_found_as_the_press_writes_it(
    tmp_path: Path,
) -> None:
    config = configure(
        tmp_path,
        [{"name": "HORIZON"}, {"name": "Institut du Thorax (ITX)"}, {"name": "Kerbio (SAS)"}],
    )
    forms = forms_of(config)
    assert rules(forms["horizon"]) == {"HORIZON": "capitals + context"}
    assert rules(forms["institut-du-thorax-itx"]) == {
        "Institut du Thorax (ITX)": "plain",
        "Institut du Thorax": "capitals",
        "ITX": "capitals",
    }
    assert rules(forms["kerbio-sas"]) == {"Kerbio (SAS)": "plain", "Kerbio": "plain"}
    matcher = Matcher.from_config(config)
    for text in (
        "La biotech Horizon lève 3 M€.",  # HORIZON in the directory, a name to the press
        "l'Institut du Thorax recrute",
        "l'ITX publie",
    ):
        assert len(matcher.find(text)) == 1, text
    assert matcher.find("À l'horizon 2030, la biotech lèvera des fonds.") == []
    assert matcher.find("Le thorax et l'institut.") == []
    assert matcher.find("Itx ou itx") == []  # an acronym keeps its capitals


def test_members_check_shows_why_each_form_the_press_writes_is_used(tmp_path: Path) -> None:
    from tests.run_cli import veille

    config = configure(
        tmp_path,
        [
            {"name": "Groupe Vetalis"},
            {"name": "SAS Kerolia"},
            {"name": "Marigen Ingredients"},
            {"name": "Lucine Therapeutics"},
            {"name": "Mab<>Lab"},
            {"name": "Pure Cells"},
            {"name": "KRN Immunotherapeutics"},
            {"name": "Institut du Thorax (ITX)"},
        ],
    )
    result = veille("members", "check", "--config", config.path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()

    def line(alias: str) -> str:
        (found,) = [x for x in lines if x.strip().startswith(repr(alias))]
        return " ".join(found.split())

    assert line("Vetalis") == (
        "'Vetalis' plain without prefix \"Groupe\": not a word (zipf fr/en vetalis 0.0/0.0)"
    )
    assert 'without legal prefix "SAS"' in line("Kerolia")
    assert 'without "Ingredients"' in line("Marigen")
    assert "capitals + context" in line("Lucine") and "ends the name" in line("Lucine")
    assert "symbols dropped" in line("MabLab") and "symbols as spaces" in line("Mab Lab")
    assert "capitals in en" in line("Pure Cells") and "ordinary text in en only" in line(
        "Pure Cells"
    )
    assert "'krn' is rare" in line("KRN Immunotherapeutics")
    assert "without brackets" in line("Institut du Thorax") and "in brackets" in line("ITX")


# ------------------------------------------------------------------ veille members check

VITAL_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Presse santé</title><link>http://127.0.0.1/</link>
<description>test</description>
{items}
</channel></rss>
"""
VITAL_ITEM = """<item><title>{title}</title><link>http://127.0.0.1/a/{n}</link>
<guid isPermaLink="false">vital-{n}</guid><pubDate>Mon, 30 Nov 2026 08:00:00 +0100</pubDate>
<description>{text}</description></item>"""


def test_members_check_shows_forms_rules_reasons_and_counts_from_the_store(
    server: Any, feed_dir: Path, write_config: Any, db_path: Path
) -> None:
    import subprocess
    import sys

    from pipeline.run import run

    texts = [
        ("Vital : la biotech nantaise recrute", "Vital, start-up de Nantes, embauche."),
        ("Vital signe un accord", "Vital et un laboratoire lyonnais, biotech."),
        ("Vital ouvre un site", "Vital agrandit son laboratoire, biotech en croissance."),
        ("Vital au salon", "Vital présente sa biotech."),
        ("Vital lève 3 M€", "Vital, jeune biotech, lève des fonds."),
        ("Xenothera recrute", "Xenothera, biotech nantaise."),
    ]
    items = "\n".join(VITAL_ITEM.format(n=n, title=t, text=d) for n, (t, d) in enumerate(texts))
    (feed_dir / "vital.rss").write_text(VITAL_FEED.format(items=items), encoding="utf-8")
    config = write_config(
        sources=[
            {"id": "ouest-sante", "kind": "feed", "url": server.url("ouest-sante.rss")},
            {"id": "vital", "kind": "feed", "url": server.url("vital.rss")},
        ],
        members=[
            {"name": "Xenothera"},
            {"name": "Valneva SE"},
            {"name": "GoLiver Therapeutics"},
            {"name": "Step Pharma SAS"},
            {"name": "Vital Ouest", "aliases": ["Vital"]},
        ],
    )
    run(config, db_path=db_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "members",
            "check",
            "--config",
            config.path,
            "--db",
            str(db_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "12 articles first seen in the last 8 weeks" in out
    never = out.split("never found in 8 weeks: ")[1].split("\n\n")[0]
    assert never.startswith("1 members") and "step-pharma-sas" in never
    silent = out.split("forms that never matched")[1].split("\n\n")[0]
    assert "valneva-se: 'Valneva SE' [plain]" in silent  # the press writes "Valneva"
    odd = out.split("forms matching suspiciously often")[1].split("\n\n")[0]
    assert "vital-ouest: 'Vital' in 5 articles [capitals + context]" in odd
    step = out.split("Step Pharma SAS (step-pharma-sas) — 0 article(s)")[1].split("\n\n")[0]
    assert "'Step'" in step and "not used" in step and "step 3.4/5.1" in step
    valneva = out.split("Valneva SE (valneva-se) — ")[1].split("\n")
    assert valneva[0].startswith("1 article")
    assert any(line.strip().startswith("1  'Valneva'") for line in valneva[1:3])
    assert "context (derived): biotech" in out
    one = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "members",
            "check",
            "--member",
            "nobody",
            "--config",
            config.path,
            "--db",
            str(db_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert one.returncode == 2 and "no member with id 'nobody'" in one.stderr


# ------------------------------------------------------------------ the whole cluster


def test_the_220_member_directory_meets_the_targets_on_tuning_and_held_out_passages() -> None:
    from tests.scripts.eval_mentions import (
        CLUSTER_HELDOUT,
        CLUSTER_TUNING,
        DIRECTORY,
        PRESS_FORMS,
        PRESS_FORMS_DIRECTORY,
        TARGET_PRECISION,
        TARGET_RECALL,
        cluster_config,
        evaluate,
        load_passages,
        totals,
    )

    config = cluster_config()
    assert sum(1 for m in config.members if m.kind == "member") == 220
    matcher = Matcher.from_config(config)
    press = Matcher.from_config(cluster_config(DIRECTORY, PRESS_FORMS_DIRECTORY))
    for path, on, least in (
        (CLUSTER_TUNING, matcher, 250),
        (CLUSTER_HELDOUT, matcher, 250),
        (PRESS_FORMS, press, 60),
    ):
        passages = load_passages(path)
        assert len(passages) >= least
        for passage in passages:  # offsets point at the text as written
            text = str(passage["text"])
            for mention in on.find(text):
                assert text[mention.start : mention.end] == mention.alias
        total = totals(evaluate(on, passages))
        assert total.precision >= TARGET_PRECISION, path.name
        assert total.recall >= TARGET_RECALL, path.name


def test_a_form_a_person_turned_off_takes_it_from_no_other_member(tmp_path: Path) -> None:
    config = configure(
        tmp_path,
        [
            {"name": "Mablink Bioscience"},
            {"name": "Other Co", "aliases": [{"alias": "Mablink", "use": False}]},
        ],
    )
    (mablink,) = [f for f in forms_of(config)["mablink-bioscience"].forms if f.alias == "Mablink"]
    assert mablink.used, mablink.reason


def test_an_acronym_then_a_word_in_lower_case_is_not_the_name(tmp_path: Path) -> None:
    """ "ABS bio-sourcé" is a plastic, not ABS Bio; the name in its own capitals still is."""
    found = Matcher.from_config(
        configure(tmp_path, [{"name": "ABS Bio SAS"}, {"name": "Good Cells"}])
    )
    ids = lambda text: [m.member_id for m in found.find(text)]  # noqa: E731
    assert ids("Le plastique ABS bio-sourcé gagne du terrain dans l'emballage.") == []
    assert ids("La start-up ABS Bio lève 2 millions d'euros.") == ["abs-bio-sas"]
    # a name whose first word is not an acronym keeps the looser spelling
    assert ids("Une levée chez Good cells, à Nantes.") == ["good-cells"]


def test_names_written_apart_together_or_abbreviated_are_found(tmp_path: Path) -> None:
    config = configure(
        tmp_path,
        [
            {"name": "GoLiver Therapeutics"},
            {"name": "AlgoSource"},
            {"name": "Breizh Cell"},
            {"name": "Ar Mor Therapeutics"},
            {"name": "IRS2 Nantes"},
            {"name": "Sea4Health"},
            {"name": "Saint-Nazaire Bioprocess"},
        ],
    )
    forms = forms_of(config)
    origins = {f.alias: f.origin for m in forms.values() for f in m.used}
    assert origins["Go Liver Therapeutics"] == "parts of a word apart"
    assert origins["Sea 4 Health"] == "digits apart"
    assert origins["BreizhCell"] == '"Breizh Cell" together'
    assert origins["St-Nazaire Bioprocess"] == '"Saint" as "St"'
    matcher = Matcher.from_config(config)
    for text, member in (
        ("mis au point par Go- Liver Therapeutics, à Nantes", "goliver-therapeutics"),
        ("Algo Source, a Saint-Nazaire producer, grows spirulina.", "algosource"),
        ("BreizhCell produit des cellules souches à Rennes.", "breizh-cell"),
        ("ArMor Therapeutics has in-licensed a peptide.", "ar-mor-therapeutics"),
        ("IRS-2 Nantes, a contract research lab", "irs2-nantes"),
        ("8Sea-4-Health, Concarneau, France", "sea4health"),
        ("St-Nazaire Bioprocess a doublé sa capacité.", "saint-nazaire-bioprocess"),
        ("St. Nazaire Bioprocess doubles its capacity.", "saint-nazaire-bioprocess"),
    ):
        assert [m.member_id for m in matcher.find(text)] == [member], text
    # the words apart keep their capitals where the words are common: "go liver" is not it
    assert matcher.find("Ar mor therapeutics") == []
    assert matcher.find("the go liver therapeutics market") == []


def test_a_name_inside_another_name_is_not_the_member(tmp_path: Path) -> None:
    config = configure(
        tmp_path,
        [
            {"name": "Biodiversa"},
            {"name": "Immunoqure Santé"},
            {"name": "Erytech Ouest"},
            {"name": "Mablink Bioscience"},
        ],
    )
    matcher = Matcher.from_config(config)
    for text in (
        "Le partenariat européen Biodiversa+ lance un appel à projets.",
        "La société allemande ImmunoQure AG développe des anticorps.",
        "Erytech Pharma, the Lyon-based company, merged in 2023.",
    ):
        assert matcher.find(text) == [], text
    for text, member in (
        ("Biodiversa, start-up nantaise, lève des fonds.", "biodiversa"),
        ("Immunoqure ouvre un laboratoire à Nantes.", "immunoqure-sante"),
        ("Erytech recrute à Nantes.", "erytech-ouest"),
        # the same generic word, written otherwise: the member still
        ("Mablink Biosciences signs a licence.", "mablink-bioscience"),
    ):
        assert [m.member_id for m in matcher.find(text)] == [member], text


def test_an_acronym_spelled_out_or_in_a_headline_in_capitals_is_no_evidence() -> None:
    matcher = Matcher.from_config(load_config(Path(__file__).parents[1] / "sources.yaml"))
    assert (
        matcher.find(
            "The FDA's Office of Surveillance and Epidemiology (OSE) reviewed the cancer trial."
        )
        == []
    )
    assert matcher.find("IL OSE LE TOUR DE FRANCE POUR LA RECHERCHE CONTRE LE CANCER") == []
    # the name itself in a headline in capitals, and the acronym in a sentence, still are
    found = matcher.find("OSE IMMUNOTHERAPEUTICS LÈVE 20 M€ POUR SON ESSAI")
    assert [m.member_id for m in found] == ["ose-immunotherapeutics"]
    found = matcher.find("L'essai de OSE (immuno-oncologie) avance.")
    assert [m.member_id for m in found] == ["ose-immunotherapeutics"]


def test_a_name_shortened_past_a_place_is_the_member_where_the_region_is_named(
    tmp_path: Path,
) -> None:
    config = configure(
        tmp_path,
        [{"name": "Cellectis Nantes"}, {"name": "Erytech Ouest", "city": "Angers"}],
    )
    forms = forms_of(config)
    (cellectis,) = [f for f in forms["cellectis-nantes"].forms if f.alias == "Cellectis"]
    assert cellectis.rule.endswith("a place") and "a place dropped" in cellectis.reason
    matcher = Matcher.from_config(config)
    for text in (
        "Cellectis, the Paris gene-editing company, is also listed on Nasdaq.",
        "La biotech lyonnaise Erytech a longtemps été une valeur phare de la Bourse.",
    ):
        assert matcher.find(text) == [], text
    for text, member in (
        ("Cellectis ouvre un laboratoire à Saint-Herblain.", "cellectis-nantes"),
        ("Erytech recrute dix chercheurs dans son site d'Angers.", "erytech-ouest"),
        ("Cellectis Nantes recrute.", "cellectis-nantes"),  # the name itself needs nothing
    ):
        assert [m.member_id for m in matcher.find(text)] == [member], text
    # the place may be anywhere in the article
    found = matcher.find("Cellectis recrute.", evidence="Cellectis recrute.\nÀ Nantes, le site...")
    assert [m.member_id for m in found] == ["cellectis-nantes"]


def test_a_name_that_starts_with_a_place_keeps_its_capitals(tmp_path: Path) -> None:
    config = configure(
        tmp_path, [{"name": "Nantes Biotech Services"}, {"name": "Loire Valley Biotech"}]
    )
    (name,) = [f for f in forms_of(config)["nantes-biotech-services"].forms if f.origin == "name"]
    assert name.rule == "capitals" and "starts with a place" in name.reason
    matcher = Matcher.from_config(config)
    for text in (
        "Nantes biotech services firms reported a busy year.",
        "The Loire Valley biotech scene is growing fast.",
        "Les entreprises de la Loire valley biotech recrutent.",
    ):
        assert matcher.find(text) == [], text
    for text in ("Nantes Biotech Services recrute.", "LOIRE VALLEY BIOTECH LÈVE 2 M€"):
        assert len(matcher.find(text)) == 1, text


def test_the_cluster_may_name_its_own_region(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    with path.open("w", encoding="utf-8") as handle:
        YAML().dump(
            {
                "cluster": {**CLUSTER, "region": ["Lyon", "Auvergne-Rhône-Alpes"]},
                "members": [{"name": "Erytech Ouest"}],
            },
            handle,
        )
    matcher = Matcher.from_config(load_config(path))
    assert [m.member_id for m in matcher.find("Erytech recrute à Lyon.")] == ["erytech-ouest"]
    assert matcher.find("Erytech recrute à Nantes.") == []


def test_ordinary_words_as_a_name_end_it_and_an_acronym_word_keeps_its_capitals(
    tmp_path: Path,
) -> None:
    config = configure(tmp_path, [{"name": "Open Health"}, {"name": "ERA Biologics"}])
    forms = forms_of(config)
    (era,) = [f for f in forms["era-biologics"].forms if f.origin == "name"]
    assert era.rule == "capitals" and "an acronym and a word" in era.reason
    matcher = Matcher.from_config(config)
    for text in (
        "The university hospital's Open Health Day drew 3,000 visitors.",
        "Nantes accueille le « Open Health Hackathon » : quarante équipes planchent.",
        "In the post-pandemic era biologics manufacturers added capacity.",
    ):
        assert matcher.find(text) == [], text
    for text in (
        "Open Health Raises $5M To Scale Its Platform",  # a title in capitals, not a name
        "Open Health lève 5 M€.",
        "Era Biologics signs with a CDMO.",
    ):
        assert len(matcher.find(text)) == 1, text


def test_the_people_of_a_city_name_the_region_and_quotes_do_not_hide_an_article(
    tmp_path: Path,
) -> None:
    config = configure(tmp_path, [{"name": "Cellectis Nantes"}, {"name": "Organoid Factory"}])
    matcher = Matcher.from_config(config)
    found = matcher.find("Cellectis cède son site nantais à un façonnier pharmaceutique.")
    assert [m.member_id for m in found] == ["cellectis-nantes"]
    assert matcher.find("An 'organoid factory' producing brain organoids was built.") == []
    assert matcher.find("Une « organoid factory » à Leyde.") == []


def test_a_handle_or_a_hashtag_writes_the_words_together(tmp_path: Path) -> None:
    """ "@NaogenPharma", "#TBFGenieTissulaire": the name's words together count right after
    an "@" or a "#" only; an "@" that starts a word is a handle, not an e-mail address."""
    config = configure(
        tmp_path,
        [
            {"name": "Naogen Pharma"},
            {"name": "TBF Génie Tissulaire"},
            {"name": "Smart Immune SAS"},
            {"name": "Kerbio"},
        ],
    )
    forms = forms_of(config)
    (handle,) = [f for f in forms["tbf-genie-tissulaire"].used if f.handle]
    assert (handle.alias, handle.rule) == ("TBFGénieTissulaire", "after @ or #")
    # "SmartImmune" is already a spelling of its own, found anywhere: no handle form
    assert not [f for f in forms["smart-immune-sas"].forms if f.handle]
    matcher = Matcher.from_config(config)
    ids = lambda text: [m.member_id for m in matcher.find(text)]  # noqa: E731
    assert ids("Ravie de rejoindre @SmartImmune et #TBFGenieTissulaire !") == [
        "smart-immune-sas",
        "tbf-genie-tissulaire",
    ]
    assert ids("Merci à @Kerbio pour l'accueil") == ["kerbio"]
    # the words together without an @ or a # are another word, an e-mail is an address
    assert ids("a tbfgenietissulaire protocol") == []
    assert ids("Candidatures : rh@kerbio.fr, ou rh@Kerbio en interne") == []
