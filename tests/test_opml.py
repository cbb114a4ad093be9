"""`veille sources import` and `export`: OPML files in, OPML out, sources.yaml edited in place.

Real files in tmp_path, a real local HTTP server for the external-DTD case, the real
command line in a subprocess; nothing reaches beyond loopback.
"""

from __future__ import annotations

import difflib
import email.utils
import os
import stat
import time
from pathlib import Path

import pytest
from lxml import etree

from pipeline.errors import ConfigError
from pipeline.settings.config import load_config
from pipeline.sources.opml import MAX_OPML_BYTES, export_opml, import_opml, read_opml
from tests.fixture_server import FixtureServer
from tests.run_cli import veille

ROOT = Path(__file__).resolve().parent.parent
ABONNEMENTS = ROOT / "tests" / "fixtures" / "opml" / "abonnements.opml"

SOURCES = """\
# veille, test configuration: the comments and the layout below must survive an import
cluster:
  name: Atlanpole Biotherapies
  aliases: [Atlanpole Biothérapies]

members:
  - name: Valneva
    aliases: [Valneva SE]   # the listed company

sources:
  # the feeds a person wrote, flow style, one wrapped over two lines
  - {id: labiotech, kind: feed, name: Labiotech.eu, lang: en,
     url: "https://www.labiotech.eu/feed/"}
  - {id: ouest-sante, kind: feed, name: Ouest Santé, url: "https://www.ouest-sante.example/a-la-une.rss"}
  - {id: news, kind: search, name: Actualités, url: "https://news.example/rss?q={query}"}
  - {id: annonces, kind: page, url: "https://www.atlanpole.example/annonces/", selector: "h2 a"}
  - {id: plan, kind: sitemap, url: "https://www.valneva.example/sitemap.xml"}

# how often and where the digest goes
schedule:
  run: "*/30 * * * *"   # every half hour

network:
  allow_private: true
"""

# what abonnements.opml adds to SOURCES: ids from titles, made unique against those there
ADDED = {
    "ouest-sante-economie": "https://www.ouest-sante.example/economie/feed.rss",
    "le-journal-des-entreprises-pays-de-la-loire": "https://www.lje-pdl.example/rss/actualites.xml",
    "nantes-metropole-actus": "https://metropole.nantes.example/actus.rss",
    "biotech-daily": "https://biotech-daily.example/feed.atom",
    "ouest-sante-2": "https://www.ouest-sante.example/sante/feed.rss",
    "pharma-wire-example": "https://pharma-wire.example/news.rss",
}


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(SOURCES, encoding="utf-8")
    return path


def opml(tmp_path: Path, body: str, *, name: str = "list.opml", head: str = "") -> Path:
    path = tmp_path / name
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n{head}<opml version="2.0">\n'
        f"<head><title>Test</title></head>\n<body>\n{body}\n</body>\n</opml>\n",
        encoding="utf-8",
    )
    return path


# ---------------------------------------------------------------- import


def test_import_adds_the_feeds_keeps_every_line_and_lists_the_duplicates(
    config_path: Path,
) -> None:
    report = import_opml(ABONNEMENTS, config_path=config_path)
    assert report.wrote
    assert {sid: feed.url for sid, feed in report.added} == ADDED
    # already configured (a tracking parameter aside), and the same feed twice (http, https)
    assert [(f.url, why) for f, why in report.duplicates] == [
        ("https://www.labiotech.eu/feed/?utm_source=freshrss", 'already the source "labiotech"'),
        ("http://biotech-daily.example/feed.atom", "the same feed as line 22 ('Biotech Daily')"),
    ]
    assert [s.split(": ", 1)[1] for s in report.opml.skipped] == [
        "type 'link', no xmlUrl",
        "type 'include', no xmlUrl",
    ]
    summary = report.summary()
    assert "6 to add, 2 already there" in summary
    assert (
        "= line 23 ('Labiotech.eu') https://www.labiotech.eu/feed/?utm_source=freshrss" in summary
    )

    text = config_path.read_text(encoding="utf-8")
    # every line of the file as written, the new ones added after the last source only
    diff = [
        d
        for d in difflib.ndiff(SOURCES.splitlines(), text.splitlines())
        if d.startswith(("+", "-"))
    ]
    assert all(d.startswith("+ ") for d in diff), diff
    assert len(diff) == len(ADDED) + 3  # one comment per folder, the first naming the file
    lines = text.splitlines()
    first_new = lines.index(diff[0][2:])
    assert lines[first_new - 1].startswith("  - {id: plan, kind: sitemap")
    assert lines[first_new].startswith("  # from abonnements.opml (veille sources import, ")
    assert lines[first_new].endswith("; folder: Presse régionale")
    assert "  # folder: Presse régionale / Nantes" in lines
    assert (
        "  - {id: biotech-daily, kind: feed, name: Biotech Daily, url: "
        "https://biotech-daily.example/feed.atom, site: https://biotech-daily.example}" in lines
    )

    config = load_config(config_path)  # what `veille check` reads
    by_id = {spec.id: spec for spec in config.specs}
    assert {sid: by_id[sid].url for sid in ADDED} == ADDED
    assert by_id["ouest-sante-economie"].name == "Ouest Santé — économie"  # title wins over text
    assert by_id["ouest-sante-economie"].site == "https://www.ouest-sante.example/economie/"
    assert by_id["pharma-wire-example"].name is None  # no title: the id from its host
    assert all(by_id[sid].kind == "feed" for sid in ADDED)


def test_importing_the_same_file_again_changes_nothing(config_path: Path) -> None:
    import_opml(ABONNEMENTS, config_path=config_path)
    once = config_path.read_bytes()
    again = import_opml(ABONNEMENTS, config_path=config_path)
    assert not again.added and not again.wrote and len(again.duplicates) == 8
    assert "nothing to change" in again.summary()
    assert config_path.read_bytes() == once


def test_ids_are_stable_unique_and_follow_the_source_id_rules(
    tmp_path: Path, config_path: Path
) -> None:
    long_title = "Actualités de la recherche biomédicale en Pays de la Loire " * 3
    path = opml(
        tmp_path,
        '<outline text="Labiotech" xmlUrl="https://other.example/labiotech.rss"/>\n'
        '<outline text="  LABIOTECH " xmlUrl="https://third.example/labiotech.rss"/>\n'
        '<outline text="生物技术新闻" xmlUrl="https://www.cn-bio.example/rss"/>\n'
        '<outline text="!!!" xmlUrl="https://127.0.0.1:8080/x.rss"/>\n'
        f'<outline text="{long_title}" xmlUrl="https://long.example/rss"/>\n'
        '<outline text="News" xmlUrl="https://n.example/rss"/>',
    )
    copy = tmp_path / "copy.yaml"
    copy.write_text(SOURCES, encoding="utf-8")
    first = import_opml(path, config_path=config_path)
    second = import_opml(path, config_path=copy)
    ids = [sid for sid, _ in first.added]
    assert ids == [sid for sid, _ in second.added]  # the same file, the same ids
    assert ids[:4] == ["labiotech-2", "labiotech-3", "cn-bio-example", "127-0-0-1"]
    assert ids[5] == "news-2"  # "news" is the search template's id
    assert len(ids[4]) <= 72 and ids[4].startswith("actualites-de-la-recherche-biomedicale")
    assert not ids[4].endswith("-")
    assert {s.id for s in load_config(config_path).specs} >= set(ids)


def test_dry_run_lists_what_would_be_added_and_writes_nothing(config_path: Path) -> None:
    before = config_path.read_bytes()
    report = import_opml(ABONNEMENTS, config_path=config_path, dry_run=True)
    assert len(report.added) == 6 and not report.wrote
    assert "dry run: nothing written" in report.summary(dry_run=True)
    assert config_path.read_bytes() == before


def test_windows_line_endings_permissions_and_a_block_style_list_are_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sources.yaml"
    text = (
        "cluster:\r\n  name: Atlanpole Biotherapies\r\nsources:\r\n"
        "-   id: labiotech\r\n    kind: feed\r\n    url: https://www.labiotech.eu/feed/\r\n"
        "\r\n# the network, for tests\r\nnetwork:\r\n  allow_private: true\r\n"
    )
    path.write_bytes(text.encode())
    os.chmod(path, 0o640)
    feeds = opml(tmp_path, '<outline text="Biotech Daily" xmlUrl="https://bd.example/f.atom"/>')
    import_opml(feeds, config_path=path)
    written = path.read_bytes().decode()
    assert "\n" not in written.replace("\r\n", "")  # every line ends in CRLF
    assert written.startswith(text.split("\r\n\r\n")[0])
    assert written.endswith(
        "\r\n\r\n# the network, for tests\r\nnetwork:\r\n  allow_private: true\r\n"
    )
    assert "-   id: biotech-daily\r\n    kind: feed\r\n    name: Biotech Daily\r\n" in written
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [s.id for s in load_config(path).specs] == ["labiotech", "biotech-daily"]


def test_a_file_without_sources_gets_the_list_at_its_end(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("cluster:\n  name: Atlanpole Biotherapies  # the cluster\n", "utf-8")
    feeds = opml(tmp_path, '<outline text="Valneva" xmlUrl="https://valneva.example/news.rss"/>')
    import_opml(feeds, config_path=path)
    assert path.read_text("utf-8").startswith("cluster:\n  name: Atlanpole Biotherapies  # the")
    assert [s.url for s in load_config(path).specs] == ["https://valneva.example/news.rss"]


def test_the_members_file_a_configuration_names_is_read_with_it(tmp_path: Path) -> None:
    (tmp_path / "members.yaml").write_text(
        "members:\n  - {name: Valneva}\n  - {name: Xenothera}\n", "utf-8"
    )
    path = tmp_path / "sources.yaml"
    text = (
        "cluster:\n  name: Atlanpole Biotherapies\nsources:\n"
        "  - {id: valneva, kind: feed, url: 'https://valneva.example/news.rss'}\n"
        "members_file: members.yaml   # the directory\n"
    )
    path.write_text(text, "utf-8")
    feeds = opml(tmp_path, '<outline text="Valneva" xmlUrl="https://valneva.example/en.rss"/>')
    import_opml(feeds, config_path=path)
    written = path.read_text("utf-8")
    assert written.endswith(
        "  - {id: valneva-2, kind: feed, name: Valneva, url: https://valneva.example/en.rss}\n"
        "members_file: members.yaml   # the directory\n"
    )
    config = load_config(path)
    assert [s.id for s in config.specs] == ["valneva", "valneva-2"] and len(config.members) == 2


def test_a_list_written_inline_is_refused_and_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "cluster: {name: Atlanpole Biotherapies}\n"
        "sources: [{id: a, kind: feed, url: 'https://a.example/rss'}]\n",
        "utf-8",
    )
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="written inline"):
        import_opml(ABONNEMENTS, config_path=path)
    assert path.read_bytes() == before


# ---------------------------------------------------------------- broken and hostile files

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE opml [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
 <!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
]>
<opml version="2.0"><head><title>&g;</title></head>
<body><outline text="&g;" title="&g;" xmlUrl="https://laughs.example/&g;"/></body></opml>
"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE opml [ <!ENTITY secret SYSTEM "file:///etc/passwd"> ]>
<opml version="2.0"><body>
<outline text="&secret;" xmlUrl="https://xxe.example/rss"/>
</body></opml>
"""

BROKEN = {
    "truncated": (
        '<?xml version="1.0"?>\n<opml version="2.0"><body>\n'
        '<outline text="Valneva" xmlUrl="https://valneva.example/rss"/>\n<outline text="Coupé'
    ),
    "not-opml": '<?xml version="1.0"?>\n<rss version="2.0"><channel/></rss>',
    "no-body": '<?xml version="1.0"?>\n<opml version="2.0"><head/></opml>',
    "no-feed": '<opml version="2.0"><body><outline text="Dossier vide"/></body></opml>',
    "empty": "",
    "undefined-entity": '<opml><body><outline text="&nbsp;" xmlUrl="https://a.example/"/></body></opml>',
    "billion-laughs": BILLION_LAUGHS,
    "external-entity": EXTERNAL_ENTITY,
    "bad-schemes": (
        '<opml version="2.0"><body>\n'
        '<outline text="Bon" xmlUrl="https://ok.example/rss"/>\n'
        '<outline text="Ancien lecteur" xmlUrl="feed://old.example/rss"/>\n'
        '<outline text="Piège" xmlUrl="javascript:alert(document.cookie)"/>\n'
        '<outline text="Local" xmlUrl="file:///etc/passwd"/>\n'
        '<outline text="Relatif" xmlUrl="/rss.xml"/>\n'
        "</body></opml>"
    ),
}
EXPECTED = {
    "truncated": "line 4: not well-formed XML",
    "not-opml": "line 2: the document is <rss>, not <opml>",
    "no-body": "<opml> has no <body>",
    "no-feed": "no feed: no outline has an xmlUrl",
    "empty": "the file is empty",
    "undefined-entity": "line 1: not well-formed XML: Entity 'nbsp' not defined",
    "billion-laughs": "line 2: a DOCTYPE (entity declarations, an external DTD) is refused",
    "external-entity": "line 2: a DOCTYPE",
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_or_hostile_opml_is_refused_with_its_line_and_changes_nothing(
    kind: str, tmp_path: Path, config_path: Path
) -> None:
    path = tmp_path / f"{kind}.opml"
    path.write_text(BROKEN[kind], encoding="utf-8")
    before = config_path.read_bytes()
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        import_opml(path, config_path=config_path)
    assert time.monotonic() - started < 5  # refused, not expanded
    assert config_path.read_bytes() == before
    message = str(caught.value)
    assert str(path) in message and "root:" not in message  # nothing of /etc/passwd
    if kind == "bad-schemes":
        assert message.count("is not an http(s) URL") == 4 and "line 2" not in message
        assert "line 3, outline 'Ancien lecteur': xmlUrl 'feed://old.example/rss'" in message
        assert "line 4, outline 'Piège': xmlUrl 'javascript:alert(document.cookie)'" in message
        assert "line 5, outline 'Local'" in message and "line 6, outline 'Relatif'" in message
    else:
        assert EXPECTED[kind] in message


def test_the_parser_itself_expands_nothing_when_a_doctype_gets_past_the_first_look(
    tmp_path: Path,
) -> None:
    # UTF-16: "<!DOCTYPE" is not in the bytes as ASCII; the parser's settings refuse it
    for name, document in (("laughs", BILLION_LAUGHS), ("xxe", EXTERNAL_ENTITY)):
        path = tmp_path / f"{name}.opml"
        path.write_bytes(
            document.replace('"1.0"?>', '"1.0" encoding="UTF-16"?>', 1).encode("utf-16")
        )
        started = time.monotonic()
        with pytest.raises(ConfigError) as caught:
            read_opml(path)
        assert time.monotonic() - started < 5
        assert "root:" not in str(caught.value) and "aaaaaaaaaa" not in str(caught.value)


def test_an_external_dtd_is_never_fetched(tmp_path: Path, config_path: Path) -> None:
    with FixtureServer(tmp_path) as server:
        (tmp_path / "evil.dtd").write_text('<!ENTITY x "pwned">', encoding="utf-8")
        for head in (
            f'<!DOCTYPE opml SYSTEM "{server.url("evil.dtd")}">\n',
            f'<!DOCTYPE opml [<!ENTITY % remote SYSTEM "{server.url("evil.dtd")}"> %remote;]>\n',
        ):
            path = opml(tmp_path, '<outline text="&x;" xmlUrl="https://a.example/"/>', head=head)
            with pytest.raises(ConfigError, match="a DOCTYPE"):
                import_opml(path, config_path=config_path)
            path.write_bytes(path.read_text("utf-8").encode("utf-16"))
            with pytest.raises(ConfigError):
                import_opml(path, config_path=config_path)
        assert server.requests == []
    assert config_path.read_text(encoding="utf-8") == SOURCES


def test_a_file_over_the_size_limit_is_not_read(tmp_path: Path, config_path: Path) -> None:
    outline = '<outline text="Flux" xmlUrl="https://bulk.example/rss"/>\n'
    path = opml(tmp_path, outline * (MAX_OPML_BYTES // len(outline) + 10))
    with pytest.raises(ConfigError, match="larger than 5,000,000 bytes"):
        import_opml(path, config_path=config_path)
    assert config_path.read_text(encoding="utf-8") == SOURCES


def test_a_broken_configuration_is_refused_before_the_opml_is_used(
    config_path: Path,
) -> None:
    config_path.write_text(SOURCES.replace("kind: page", "kind: pages"), encoding="utf-8")
    before = config_path.read_bytes()
    with pytest.raises(ConfigError, match=r"sources\[3\]\.kind"):
        import_opml(ABONNEMENTS, config_path=config_path)
    assert config_path.read_bytes() == before


# ---------------------------------------------------------------- export


def test_import_then_export_gives_back_the_same_feeds(tmp_path: Path, config_path: Path) -> None:
    imported = import_opml(ABONNEMENTS, config_path=config_path)
    exported = export_opml(load_config(config_path))
    out = tmp_path / "veille.opml"
    out.write_text(exported.text, encoding="utf-8")
    again = read_opml(out)  # what a reader gets back, read as veille reads an OPML file
    written = {(f.title, f.url, f.site) for _, f in imported.added}
    configured = {
        ("Labiotech.eu", "https://www.labiotech.eu/feed/", None),
        ("Ouest Santé", "https://www.ouest-sante.example/a-la-une.rss", None),
    }
    names = {sid: f.title for sid, f in imported.added}
    assert names["pharma-wire-example"] is None
    written = {
        (t or "pharma-wire-example", u, s) for t, u, s in written
    }  # a feed without a title is named by its id
    assert {(f.title, f.url, f.site) for f in again.feeds} == written | configured
    assert exported.feeds == len(again.feeds) == 8
    # and importing the export into the same file finds every feed there already
    assert not import_opml(out, config_path=config_path).added


def test_export_is_opml_2_with_what_readers_need_and_says_what_it_leaves_out(
    config_path: Path,
) -> None:
    config = load_config(config_path)
    exported = export_opml(config)
    assert exported.text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    root = etree.fromstring(exported.text.encode())
    assert root.get("version") == "2.0"
    assert root.findtext("head/title") == "veille: Atlanpole Biotherapies"
    created = email.utils.parsedate_to_datetime(root.findtext("head/dateCreated") or "")
    assert created.tzinfo is not None
    outlines = root.findall("body/outline")
    assert [dict(o.attrib) for o in outlines] == [
        {
            "type": "rss",
            "text": "Labiotech.eu",
            "title": "Labiotech.eu",
            "xmlUrl": "https://www.labiotech.eu/feed/",
        },
        {
            "type": "rss",
            "text": "Ouest Santé",
            "title": "Ouest Santé",
            "xmlUrl": "https://www.ouest-sante.example/a-la-une.rss",
        },
    ]
    searches = sum(1 for s in config.sources if s.kind == "search")
    assert exported.left_out == (
        f'news search "news" ({searches} feeds, one per member)',
        "listing pages: annonces",
        "sitemaps: plan",
    )


def test_a_name_with_control_characters_is_exported_without_them(config_path: Path) -> None:
    config_path.write_text(
        SOURCES.replace("name: Ouest Santé,", 'name: "Ouest\\a Santé\\x1b[31m",'), "utf-8"
    )
    config = load_config(config_path)
    assert config.specs[1].name == "Ouest\a Santé\x1b[31m"
    root = etree.fromstring(export_opml(config).text.encode())
    assert root.findall("body/outline")[1].get("title") == "Ouest Santé [31m"


# ---------------------------------------------------------------- the command line


def test_the_sources_commands_import_export_and_still_show_the_state(
    tmp_path: Path, config_path: Path
) -> None:
    dry = veille("sources", "import", str(ABONNEMENTS), "--config", str(config_path), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "6 to add, 2 already there" in dry.stderr and "dry run: nothing written" in dry.stderr
    assert config_path.read_text(encoding="utf-8") == SOURCES

    done = veille("sources", "import", str(ABONNEMENTS), "--config", str(config_path))
    assert done.returncode == 0 and f"wrote {config_path}" in done.stderr
    check = veille("check", "--config", str(config_path))
    assert check.returncode == 0 and "valid" in check.stdout, check.stdout + check.stderr

    exported = veille("sources", "export", "--config", str(config_path))
    assert exported.returncode == 0
    assert exported.stdout.count('<outline type="rss"') == 8
    assert "exported 8 feeds as OPML 2.0" in exported.stderr
    assert "not exported: news search" in exported.stderr

    broken = tmp_path / "broken.opml"
    broken.write_text(BROKEN["bad-schemes"], encoding="utf-8")
    before = config_path.read_bytes()
    refused = veille("sources", "import", str(broken), "--config", str(config_path))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith(f"veille: {broken}: 4 problems")
    assert config_path.read_bytes() == before

    # `veille sources` alone (and `list`) still shows the state of each source
    db = tmp_path / "none.db"
    for args in (("sources", "--db", str(db)), ("sources", "list", "--db", str(db))):
        shown = veille(*args)
        assert shown.returncode == 2 and "no database at" in shown.stderr, args
