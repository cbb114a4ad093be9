"""OPML subscription lists <-> the feeds of sources.yaml (`veille sources import` and `export`).

Import:
1. The file is untrusted XML: at most MAX_OPML_BYTES, parsed by lxml with entity
   expansion, DTD loading and the network off; a file with a DOCTYPE (where entity
   declarations and external DTDs live) is refused, never half-read.
2. Every outline with an ``xmlUrl`` is a feed; an outline without one that holds outlines
   is a folder, at any depth. veille has no use for folders: their feeds are imported
   like the others, under a comment naming the folder. Outlines that are neither (links,
   includes, empty ones) are skipped and listed; an ``include`` is never fetched.
3. Every problem is listed with its line and outline (an xmlUrl that is not http(s), a
   URL too long), and a file with any problem is refused as a whole.
4. A feed whose canonical URL (pipeline/sources/dedupe.py; http and https count as one) is
   already a source, or came earlier in the file, is skipped and listed.
5. The id comes from the title, slugified like any source id, made unique with -2, -3
   ...: the same file imported into the same sources.yaml gives the same ids.
6. New entries are spliced after the last source (pipeline/settings/yamledit.py): the file's
   comments, layout and line endings stay; the result is validated as a whole
   configuration before it replaces sources.yaml atomically.

Export: every ``kind: feed`` source (disabled ones too) as an OPML 2.0 outline with
type="rss", text, title, xmlUrl and htmlUrl (from its ``site:``). News searches (one
feed per member, generated from a template), listing pages and sitemaps are not
subscriptions a feed reader can take: they are left out, and counted on stderr.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lxml import etree
from ruamel.yaml import YAML

from pipeline.errors import ConfigError
from pipeline.settings.config import (
    Config,
    SourceSpec,
    build_config,
    load_config,
    read_members_file,
    slugify,
)
from pipeline.settings.yamledit import (
    LayoutError,
    append_to_list,
    atomic_write,
    read_text,
    reads_back,
)
from pipeline.sources.dedupe import canonical_url

MAX_OPML_BYTES = 5_000_000  # a reader's export of a few thousand feeds is well under 1 MB
MAX_FEEDS = 5_000
MAX_PROBLEMS = 20
MAX_URL_LENGTH = 2048  # as sources.yaml's URLs
MAX_TITLE_LENGTH = 200
MAX_ID_BASE = 72  # source ids are at most 80 characters, suffix included
_CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    line: int  # of its outline in the file
    title: str | None
    url: str
    site: str | None = None  # htmlUrl, when it is an http(s) URL
    folder: str | None = None  # "Presse / Régionale" for nested folders

    def label(self) -> str:
        return f"line {self.line} ({self.title!r})" if self.title else f"line {self.line}"


@dataclass(frozen=True, slots=True)
class Opml:
    path: str
    title: str | None
    feeds: tuple[OpmlFeed, ...]
    skipped: tuple[str, ...] = ()  # outlines that are neither a feed nor a folder


def _clean(value: str | None, limit: int = MAX_TITLE_LENGTH) -> str | None:
    """Text of an attribute on one line, without control or direction characters."""
    if value is None:
        return None
    text = " ".join(_CONTROL.sub(" ", value).split())[:limit].strip()
    return text or None


def _localname(node: Any) -> str:
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def _http_url(value: str) -> str | None:
    """The URL when it is an absolute http(s) URL with a host, else None."""
    url = value.strip()
    if not url or any(c.isspace() for c in url) or _CONTROL.search(url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a port out of range
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


_DOCTYPE_REFUSED = (
    "a DOCTYPE (entity declarations, an external DTD) is refused: OPML needs none; remove it"
)
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)


def _parse(data: bytes, label: str) -> Any:
    # the plain-text look is for a clear message; the parser's settings are the guard
    # (a DOCTYPE in UTF-16 gets past this and is refused below, nothing expanded)
    found = _DOCTYPE.search(data)
    if found:
        line = data[: found.start()].count(b"\n") + 1
        raise ConfigError([f"line {line}: {_DOCTYPE_REFUSED}"], path=label)
    parser = etree.XMLParser(
        resolve_entities=False,  # no internal expansion (billion laughs), no external files
        load_dtd=False,
        no_network=True,
        dtd_validation=False,
        huge_tree=False,  # libxml2's own limits on depth and text size stay on
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = getattr(exc, "lineno", None) or 1
        message = str(getattr(exc, "msg", "") or exc).split(", line ")[0]
        raise ConfigError([f"line {line}: not well-formed XML: {message}"], path=label) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise ConfigError([f"line 1: {_DOCTYPE_REFUSED}"], path=label)
    return root


def read_opml(path: str | Path) -> Opml:
    """Read and check an OPML file; raise ConfigError (with line numbers) when it is bad."""
    path = Path(path)
    label = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_OPML_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror or exc}"], path=label) from None
    if len(data) > MAX_OPML_BYTES:
        raise ConfigError(
            [f"larger than {MAX_OPML_BYTES:,} bytes: not a list of subscriptions"], path=label
        )
    if not data.strip():
        raise ConfigError(["the file is empty"], path=label)
    root = _parse(data, label)
    if _localname(root) != "opml":
        raise ConfigError(
            [f"line {root.sourceline}: the document is <{_localname(root)}>, not <opml>"],
            path=label,
        )
    head = next((n for n in root if _localname(n) == "head"), None)
    body = next((n for n in root if _localname(n) == "body"), None)
    if body is None:
        raise ConfigError([f"line {root.sourceline}: <opml> has no <body>"], path=label)
    title = None
    if head is not None:
        title_node = next((n for n in head if _localname(n) == "title"), None)
        title = _clean(title_node.text) if title_node is not None else None
    feeds: list[OpmlFeed] = []
    skipped: list[str] = []
    problems: list[str] = []
    for node in body.iter():
        if len(problems) >= MAX_PROBLEMS:
            problems.append(f"(stopped after {MAX_PROBLEMS} problems)")
            break
        if _localname(node) != "outline":
            continue
        attrs = {str(k).lower(): str(v) for k, v in node.attrib.items() if "}" not in str(k)}
        name = _clean(attrs.get("title")) or _clean(attrs.get("text"))
        where = f"line {node.sourceline}" + (f", outline {name!r}" if name else "")
        xml_url = attrs.get("xmlurl", "").strip()
        if not xml_url:
            if not any(_localname(child) == "outline" for child in node):
                kind = _clean(attrs.get("type"), 40)
                skipped.append(f"{where}: {f'type {kind!r}, ' if kind else ''}no xmlUrl")
            continue
        url = _http_url(xml_url)
        if url is None:
            problems.append(f"{where}: xmlUrl {_clean(xml_url, 100)!r} is not an http(s) URL")
            continue
        if len(url) > MAX_URL_LENGTH:
            problems.append(f"{where}: xmlUrl longer than {MAX_URL_LENGTH} characters")
            continue
        folders = [
            _clean(a.get("title")) or _clean(a.get("text")) or "(untitled)"
            for a in reversed(list(node.iterancestors()))
            if _localname(a) == "outline"
        ]
        site = _http_url(attrs.get("htmlurl", ""))
        feeds.append(
            OpmlFeed(
                line=node.sourceline or 0,
                title=name,
                url=url,
                site=site if site and len(site) <= MAX_URL_LENGTH else None,
                folder=" / ".join(folders) or None,
            )
        )
    if len(feeds) > MAX_FEEDS:
        problems.append(f"{len(feeds)} feeds: more than {MAX_FEEDS} is not a reader's list")
    if not feeds and not problems:
        problems.append("no feed: no outline has an xmlUrl")
    if problems:
        raise ConfigError(problems, path=label)
    return Opml(path=label, title=title, feeds=tuple(feeds), skipped=tuple(skipped))


# ------------------------------------------------------------------ import


def feed_key(url: str) -> str:
    """What two URLs of one feed share: the canonical URL without its scheme."""
    try:
        canonical = canonical_url(url)
    except ValueError:
        canonical = url.strip()
    return canonical.split("://", 1)[-1]


def new_id(feed: OpmlFeed, taken: set[str]) -> str:
    """A source id from the feed's title (else its host), unique among ``taken``."""
    host = (urlsplit(feed.url).hostname or "").removeprefix("www.")
    base = slugify(feed.title or "") or slugify(host) or "feed"
    base = base[:MAX_ID_BASE].rstrip("-")
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}-{number}", number + 1
    return candidate


@dataclass
class SourcesImport:
    opml: Opml
    config_path: str
    added: list[tuple[str, OpmlFeed]] = field(default_factory=list)  # (new id, feed)
    duplicates: list[tuple[OpmlFeed, str]] = field(default_factory=list)  # (feed, whose copy)
    wrote: bool = False

    def summary(self, *, dry_run: bool = False) -> str:
        lines = [
            f"{self.opml.path}: {len(self.opml.feeds)} feeds; {len(self.added)} to add, "
            f"{len(self.duplicates)} already there"
        ]
        lines += [f"  + {sid}: {feed.url}" for sid, feed in self.added]
        lines += [f"  = {feed.label()} {feed.url}: {what}" for feed, what in self.duplicates]
        if self.opml.skipped:
            lines.append(f"  {len(self.opml.skipped)} outline(s) skipped (not feeds):")
            lines += [f"    {s}" for s in self.opml.skipped[:MAX_PROBLEMS]]
        if self.wrote:
            lines.append(f"  wrote {self.config_path}; `veille check --probe` fetches them once")
        elif self.added and dry_run:
            lines.append("  dry run: nothing written")
        elif not self.added:
            lines.append("  nothing to change")
        return "\n".join(lines)


def _entry(source_id: str, feed: OpmlFeed) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": source_id, "kind": "feed"}
    if feed.title:
        entry["name"] = feed.title
    entry["url"] = feed.url
    if feed.site:
        entry["site"] = feed.site
    return entry


def import_opml(
    opml_path: str | Path,
    *,
    config_path: str | Path,
    dry_run: bool = False,
    today: date | None = None,
) -> SourcesImport:
    """Add the feeds of an OPML file to the sources of ``config_path`` (see the module).
    Raises ConfigError, and then nothing is written."""
    config_path = Path(config_path)
    opml = read_opml(opml_path)
    config = load_config(config_path)  # a broken configuration is refused before any change
    report = SourcesImport(opml=opml, config_path=str(config_path))
    known: dict[str, str] = {
        feed_key(spec.url): f'already the source "{spec.id}"'
        for spec in config.specs
        if spec.kind != "search"
    }
    taken = {spec.id for spec in config.specs}
    for feed in opml.feeds:
        key = feed_key(feed.url)
        if key in known:
            report.duplicates.append((feed, known[key]))
            continue
        source_id = new_id(feed, taken)
        taken.add(source_id)
        known[key] = f"the same feed as {feed.label()}"
        report.added.append((source_id, feed))
    if not report.added:
        return report
    # the text as it will be: the new entries spliced after the last source
    entries = [_entry(sid, feed) for sid, feed in report.added]
    name = _clean(Path(opml.path).name) or "an OPML file"
    comments = {0: f"from {name} (veille sources import, {today or date.today()})"}
    folder = None
    for index, (_, feed) in enumerate(report.added):
        if feed.folder != folder and feed.folder:
            note = f"folder: {feed.folder}"
            comments[index] = f"{comments[index]}; {note}" if index in comments else note
        folder = feed.folder
    report.wrote = splice_sources(config, entries, comments=comments, what="feeds", dry_run=dry_run)
    return report


def splice_sources(
    config: Config,
    entries: list[dict[str, Any]],
    *,
    comments: dict[int, str],
    what: str,
    dry_run: bool,
) -> bool:
    """Splice ``entries`` after the last source of ``config``'s file, every other line
    untouched; the configuration as it will be is validated as a whole before anything is
    written (atomically). True when written; ConfigError, and nothing written, on a problem.
    `veille sources import` and `veille members newsrooms --write` add sources this way."""
    config_path = Path(config.path)
    text = read_text(config_path)
    data = YAML(typ="safe", pure=True).load(text)
    try:
        new_text = append_to_list(text, "sources", entries, comments=comments)
    except LayoutError as exc:
        raise ConfigError([f"cannot add the {what}: {exc}"], path=str(config_path)) from None
    new_data = {**data, "sources": [*(data.get("sources") or []), *entries]}
    if not reads_back(new_text, new_data):
        raise ConfigError(
            [
                f"cannot add the {what} after the last source of this file's layout (does it "
                "end its YAML document with `...`?): add them yourself (--dry-run lists them)"
            ],
            path=str(config_path),
        )
    members = read_members_file(Path(config.members_file)) if config.members_file else []
    build_config(new_data, path=config_path, file_members=members)  # valid as a whole
    if dry_run:
        return False
    atomic_write(config_path, new_text)
    load_config(config_path)  # what was written reads back
    return True


# ------------------------------------------------------------------ export


@dataclass(frozen=True, slots=True)
class Exported:
    text: str  # the OPML document
    feeds: int
    left_out: tuple[str, ...]  # what was not exported, one line each

    def summary(self) -> str:
        lines = [f"exported {self.feeds} feeds as OPML 2.0"]
        if self.left_out:
            lines.append(f"  not exported: {'; '.join(self.left_out)}")
        return "\n".join(lines)


def _outline(spec: SourceSpec) -> dict[str, str]:
    # sources.yaml is trusted, but XML takes no control character: a name keeps its words
    name = _clean(spec.name) or spec.id
    attrs = {"type": "rss", "text": name, "title": name, "xmlUrl": spec.url}
    if spec.site:
        attrs["htmlUrl"] = spec.site
    return attrs


def export_opml(config: Config, *, now: datetime | None = None) -> Exported:
    """The configured feeds as an OPML 2.0 document (see the module for what is left out)."""
    now = now or datetime.now(UTC)
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = f"veille: {_clean(config.cluster.name)}"
    etree.SubElement(head, "dateCreated").text = email.utils.format_datetime(now, usegmt=True)
    etree.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = etree.SubElement(root, "body")
    feeds = [spec for spec in config.specs if spec.kind == "feed"]
    for spec in feeds:
        etree.SubElement(body, "outline", _outline(spec))
    left_out: list[str] = []
    for spec in config.specs:
        if spec.kind == "search":
            count = sum(1 for s in config.sources if s.template == spec.id)
            left_out.append(f'news search "{spec.id}" ({count} feeds, one per member)')
    for kind, label in (("page", "listing pages"), ("sitemap", "sitemaps")):
        ids = [spec.id for spec in config.specs if spec.kind == kind]
        if ids:
            left_out.append(f"{label}: {', '.join(ids)}")
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(
        root, encoding="unicode", pretty_print=True
    )
    return Exported(text=text, feeds=len(feeds), left_out=tuple(left_out))
