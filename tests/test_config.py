"""sources.yaml validation: the shapes that must load, and every mistake reported by path."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from pipeline.errors import ConfigError
from pipeline.settings import yamlcache
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


def large_config(sources: int = 600) -> str:
    """A sources.yaml past the cache's MIN_BYTES: many sources, as a cluster with news
    searches and outlets' feeds has."""
    lines = [MINIMAL.rstrip().rsplit("\nnetwork:", 1)[0]]
    for index in range(sources):
        lines.append(
            f'  - {{id: feed-{index}, kind: feed, name: "Outlet {index}: la lettre des biotechs'
            f' de l\'Ouest (actualités)", url: "https://outlet-{index}.example/rss.xml"}}'
        )
    lines.append("network: {allow_private: false}")
    return "\n".join(lines) + "\n"


def cached_files(cache: Path) -> list[Path]:
    return sorted((cache / "yaml").glob("*.pickle"))


def test_a_large_configuration_is_parsed_once_per_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("VEILLE_CACHE_DIR", str(cache))
    text = large_config()
    assert len(text) >= yamlcache.MIN_BYTES
    path = write(tmp_path, text)
    first = load_config(path)
    (entry,) = cached_files(cache)
    parsed: list[str] = []
    real = YAML.load

    def counted(self: YAML, stream: str) -> object:
        parsed.append(stream)
        return real(self, stream)

    monkeypatch.setattr(YAML, "load", counted)
    again = load_config(path)
    assert again == first and parsed == []  # the cache's data, not a second parse
    # an edit is a new content: read again, never the old data
    path.write_text(text.replace("feed-599", "feed-last"), encoding="utf-8")
    edited = load_config(path)
    assert edited.sources[-1].id == "feed-last" and len(parsed) == 1
    assert len(cached_files(cache)) == 2 and entry.exists()
    # a small file is never cached
    load_config(write(tmp_path, MINIMAL))
    assert len(cached_files(cache)) == 2 and len(parsed) == 2


def test_a_cache_entry_cut_short_or_not_ours_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("VEILLE_CACHE_DIR", str(cache))
    path = write(tmp_path, large_config())
    expected = load_config(path)
    (entry,) = cached_files(cache)
    payload = entry.read_bytes()
    entry.write_bytes(payload[: len(payload) // 2])
    assert load_config(path) == expected
    # a pickle that would run code is refused, not loaded
    marker = tmp_path / "ran"
    entry.write_bytes(pickle.dumps(_Touch(str(marker))))
    assert load_config(path) == expected
    assert not marker.exists()
    assert entry.read_bytes() == payload  # and written again, whole


class _Touch:
    """Unpickled, it creates a file: what a cache entry must never be able to do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def test_a_cache_that_cannot_be_written_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.setenv("VEILLE_CACHE_DIR", str(blocked))
    path = write(tmp_path, large_config())
    assert len(load_config(path).sources) == 601
    # and an invalid large file still says where, and is not cached
    monkeypatch.setenv("VEILLE_CACHE_DIR", str(tmp_path / "cache"))
    path.write_text(large_config() + "sources: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line"):
        load_config(path)
    assert cached_files(tmp_path / "cache") == []


def test_old_cache_entries_are_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("VEILLE_CACHE_DIR", str(cache))
    text = large_config()
    for version in range(yamlcache.KEEP + 3):
        load_config(write(tmp_path, text.replace("feed-599", f"feed-v{version}")))
    assert len(cached_files(cache)) == yamlcache.KEEP


def test_a_cache_directory_others_may_write_in_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry decides what the configuration says: in a directory another user may
    write in, it could have been planted there, so it is neither read nor written."""
    cache = tmp_path / "shared"
    monkeypatch.setenv("VEILLE_CACHE_DIR", str(cache))
    path = write(tmp_path, large_config())
    expected = load_config(path)
    (entry,) = cached_files(cache)
    assert (cache / "yaml").stat().st_mode & 0o777 == 0o700
    planted = pickle.loads(entry.read_bytes())
    planted["sources"][0]["url"] = "https://planted.example/rss.xml"
    entry.write_bytes(pickle.dumps(planted))
    (cache / "yaml").chmod(0o777)
    loaded = load_config(path)
    assert loaded == expected and "planted" not in str(loaded.sources[0].url)
