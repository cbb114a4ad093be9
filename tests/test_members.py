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
    return {f.alias: f.rule for f in forms.forms}


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
        "Step": "not used",
    }
    (dropped,) = [f for f in step.forms if f.alias == "Step"]
    assert "common word" in dropped.reason and "step 3.4/5.1" in dropped.reason


def test_names_made_of_common_words_need_their_capitals(config: Config) -> None:
    forms = forms_of(config)
    assert rules(forms["atlantic-bone-screen"]) == {"Atlantic Bone Screen": "capitals"}
    assert rules(forms["vital-ouest"]) == {"Vital Ouest": "capitals", "Vital": "not used"}
    # the hyphens dropped, the name is a word of its own: no capitals needed
    assert rules(forms["in-cell-art"]) == {"In-Cell-Art": "capitals", "InCellArt": "plain"}


def test_an_acronym_left_by_a_shortening_is_not_used(config: Config) -> None:
    # "OSE" of OSE Immunotherapeutics is also a French verb, "ARC" the cancer charity,
    # "MGI" a sequencing company: a person writes the rule when it is wanted (sources.yaml)
    ose = forms_of(config)["ose-immunotherapeutics"]
    assert rules(ose)["OSE"] == "not used"
    assert "acronym left by a shortening" in next(f.reason for f in ose.forms if f.alias == "OSE")
    assert ose.derived_context and "biotech" in ose.context


def test_a_listed_word_left_by_a_shortening_is_not_used(tmp_path: Path) -> None:
    config = configure(tmp_path, [{"name": "Astatine Pharma"}, {"name": "Organoid Factory"}])
    forms = forms_of(config)
    # astatine: zipf 1.5 in English, a chemical element before it is a company
    assert rules(forms["astatine-pharma"]) == {
        "Astatine Pharma": "capitals",
        "Astatine": "not used",
    }
    assert rules(forms["organoid-factory"]) == {"Organoid Factory": "capitals"}
    matcher = Matcher.from_config(config)
    assert matcher.find("Astatine-211 is an alpha emitter made in a cyclotron.") == []
    assert matcher.find("The lab is an organoid factory.") == []
    assert [m.member_id for m in matcher.find("Astatine Pharma lève 5 M€.")] == ["astatine-pharma"]


def test_shortened_phrases_of_common_words_and_trailing_function_words_are_not_used(
    config: Config,
) -> None:
    forms = forms_of(config)
    assert rules(forms["fast-track-diagnostics"])["Fast Track"] == "not used"
    assert rules(forms["biomarkers-ouest"])["Biomarkers"] == "capitals + context"
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
        "Vital Ouest": "capitals",
        "Vital": "capitals + context",
        "VitalOuest": "plain",
    }


def test_the_projects_sixteen_members_keep_their_tuned_rules() -> None:
    config = load_config(Path(__file__).resolve().parent.parent / "sources.yaml")
    forms = forms_of(config)
    assert rules(forms["ose-immunotherapeutics"])["OSE"] == "capitals + context"
    assert rules(forms["clean-cells"])["Clean Cells"] == "capitals"
    assert rules(forms["ng-biotech"])["NG"] == "not used"


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
    for path in (CLUSTER_TUNING, CLUSTER_HELDOUT):
        passages = load_passages(path)
        assert len(passages) >= 250
        for passage in passages:  # offsets point at the text as written
            text = str(passage["text"])
            for mention in matcher.find(text):
                assert text[mention.start : mention.end] == mention.alias
        total = totals(evaluate(matcher, passages))
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
