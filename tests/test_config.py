"""sources.yaml validation: the shapes that must load, and every mistake reported by path."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings.config import load_config, slugify
from tests.run_cli import veille

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """\
cluster: {name: Atlanpole Biotherapies, aliases: [Atlanpole Biothérapies]}
members:
  - {name: GoLiver Therapeutics, aliases: [GoLiver]}
sources:
  - {id: labiotech, kind: feed, url: "https://www.labiotech.eu/feed/"}
network: {allow_private: false}
"""

THREE_MISTAKES = """\
cluster: {name: Atlanpole Biotherapies}
members:
  - {name: GoLiver Therapeutics, alias: [GoLiver]}
sources:
  - {id: labiotech, kind: feed, url: "https://www.labiotech.eu/feed/"}
  - {id: labiotech, kind: feed, url: "https://www.fiercebiotech.com/rss/xml"}
  - {id: ose-press, kind: feed, url: "ftp://ose-immuno.example/news"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_shape_from_the_issue_loads_as_written(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.cluster.aliases == ("Atlanpole Biothérapies",)
    assert [m.slug for m in config.members] == ["goliver-therapeutics"]
    assert [(s.id, s.kind, s.url) for s in config.sources] == [
        ("labiotech", "feed", "https://www.labiotech.eu/feed/")
    ]
    assert config.network.allow_private is False
    assert "veille/" in config.network.agent and config.network.contact in config.network.agent


def test_three_mistakes_are_all_reported_with_their_paths_and_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, THREE_MISTAKES)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert len(problems) == 3
    assert any(p.startswith("members[0].alias: unknown key") for p in problems)
    assert any(p.startswith('sources[1].id: duplicate "labiotech"') for p in problems)
    assert any(p.startswith("sources[2].url: not an http(s) URL") for p in problems)
    result = veille("check", "--config", str(path))
    assert result.returncode == 2
    assert "3 problems" in result.stderr
    for fragment in ("members[0].alias", "sources[1].id", "sources[2].url"):
        assert fragment in result.stderr


def test_yaml_errors_give_a_line_number(tmp_path: Path) -> None:
    path = write(tmp_path, "cluster: {name: Atlanpole\nsources: [\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(path)


def test_missing_file_and_wrong_types(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match=r"network.concurrency"):
        load_config(write(tmp_path, MINIMAL.replace("allow_private: false", "concurrency: 0")))
    with pytest.raises(ConfigError, match="cluster: required key is missing"):
        load_config(write(tmp_path, "sources: []\n"))


def test_yaml_1_2_keeps_no_and_times_as_written(tmp_path: Path) -> None:
    text = MINIMAL + "digest: {from: 'veille@example.org', recipients: [a@example.org]}\n"
    text = text.replace("[GoLiver]", "[GoLiver, no]")
    config = load_config(write(tmp_path, text))
    assert config.members[0].aliases == ("GoLiver", "no")


def test_schedule_is_cron_in_a_time_zone(tmp_path: Path) -> None:
    text = MINIMAL + "schedule: {run: '*/15 8-19 * * mon-fri', digest: '0 8 * * mon'}\n"
    config = load_config(write(tmp_path, text))
    assert config.schedule.timezone == "Europe/Paris"
    assert config.schedule.run_interval().total_seconds() == 15 * 60
    fire = config.schedule.trigger("digest").get_next_fire_time(
        None, datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    )
    assert fire is not None
    assert fire.isoformat() == "2026-11-30T08:00:00+01:00"


def test_digest_addresses_are_checked(tmp_path: Path) -> None:
    good = MINIMAL + (
        "digest: {from: 'Veille Atlanpole <veille@atlanpole.example>', "
        "recipients: [communication@atlanpole.example]}\n"
    )
    assert load_config(write(tmp_path, good)).digest.from_ == (
        "Veille Atlanpole <veille@atlanpole.example>"
    )
    bad = MINIMAL + "digest: {from: veille, recipients: ['a@b.example', 'not an address']}\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, bad))
    message = str(caught.value)
    assert "digest.from: not an e-mail address: 'veille'" in message
    assert "digest.recipients[1]: not an e-mail address" in message


def test_schedule_mistakes_are_reported(tmp_path: Path) -> None:
    text = MINIMAL + (
        "schedule: {run: '*/30 * * *', digest: '30 7 * * 1', timezone: Europe/Nantes}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    message = str(caught.value)
    assert "schedule.run" in message and "5 fields" in message
    assert "schedule.digest" in message and "days of the week as names" in message
    assert "schedule.timezone" in message and "unknown time zone" in message


def test_duplicate_yaml_keys_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="duplicate"):
        load_config(write(tmp_path, MINIMAL + "network: {allow_private: true}\n"))


def test_search_sources_expand_to_one_feed_per_member_and_the_cluster(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "  - {id: labiotech",
        '  - {id: gnews, kind: search, url: "https://news.example/rss?q={query}&hl=fr"}\n  - {id: labiotech',
    )
    config = load_config(write(tmp_path, text))
    search = {s.id: s for s in config.sources if s.kind == "search"}
    assert set(search) == {"gnews:atlanpole-biotherapies", "gnews:goliver-therapeutics"}
    assert (
        search["gnews:goliver-therapeutics"].url
        == "https://news.example/rss?q=%22GoLiver+Therapeutics%22&hl=fr"
    )
    assert search["gnews:goliver-therapeutics"].member_id == "goliver-therapeutics"


def test_search_source_without_placeholder_is_refused(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        'kind: feed, url: "https://www.labiotech.eu/feed/"',
        'kind: search, url: "https://news.example/rss"',
    )
    with pytest.raises(ConfigError, match=r"sources\[0\].url: a search source needs"):
        load_config(write(tmp_path, text))


def test_shipped_configuration_names_the_cluster_and_its_members() -> None:
    config = load_config(ROOT / "sources.yaml")
    assert config.cluster.name == "Atlanpole Biotherapies"
    assert {"Atlanpole Biothérapies", "Atlantic Biotherapies"} <= set(config.cluster.aliases)
    assert "Atlanpole" not in config.cluster.aliases  # the technopole, not the cluster
    names = {m.name for m in config.members}
    for required in (
        "GoLiver Therapeutics",
        "NG Biotech",
        "Clean Cells",
        "AlgoSource",
        "Naogen Pharma",
        "OSE Immunotherapeutics",
        "Valneva",
        "Xenothera",
        "Lemer Pax",
        "GIP Arronax",
        "Clean Biologics",
        "Naobios",
        "Biofortis",
        "Ceva Santé Animale",
        "Affilogic",
        "GlioCure",
    ):
        assert required in names
    ng = next(m for m in config.members if m.name == "NG Biotech")
    assert {"NG-Biotech", "NG BIOTECH"} <= set(ng.aliases)
    langs = {s.lang for s in config.specs if s.kind == "feed"}
    assert {"fr", "en"} <= langs
    assert any(s.kind == "search" for s in config.specs)
    assert config.network.allow_private is False
    assert all(s.url.startswith("https://") for s in config.sources)


def test_check_prints_a_summary_and_lists_sources_to_confirm() -> None:
    result = veille("check")
    assert result.returncode == 0, result.stderr
    assert "sources.yaml: valid" in result.stdout
    assert "members   16" in result.stdout
    assert "to confirm with --probe" in result.stdout


def test_slugify_folds_accents() -> None:
    assert slugify("Ceva Santé Animale") == "ceva-sante-animale"
    assert slugify("  GIP  Arronax ") == "gip-arronax"


def test_the_run_deadline_defaults_to_half_the_run_interval_and_must_stay_below_it(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.run_deadline() == 15 * 60  # runs every 30 minutes by default
    assert (config.network.source_timeout, config.network.analysis_timeout) == (300, 60)
    hourly = MINIMAL.replace(
        "network: {allow_private: false}",
        'schedule: {run: "0 * * * *"}\nnetwork: {run_timeout: 1200}',
    )
    assert load_config(write(tmp_path, hourly)).run_deadline() == 1200
    overlapping = MINIMAL.replace("{allow_private: false}", "{run_timeout: 1800}")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, overlapping))
    assert caught.value.problems == [
        "network.run_timeout: 1800 s is not below the 1800 s between two "
        "scheduled runs (schedule.run)"
    ]
