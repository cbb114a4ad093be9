"""A member directory exported from the CRM (CSV) -> the members file sources.yaml names.

1. The bytes are decoded as UTF-8 (with or without a BOM), else as Windows-1252, what
   Excel writes in France; a file that is neither is refused.
2. The delimiter is the one the header row uses most: comma, semicolon or tab.
3. Header names are matched without case or accents: `name`/`nom`, `aliases`/`alias`,
   `website`/`site`, `city`/`ville`, `tags`, `joined`/`adhésion`, `left`/`sortie`.
   Other columns (phone numbers, contacts) are left out and reported.
4. Every row is checked: a bad file is refused as a whole, each problem with its line
   number, and nothing is written.
5. The rows are merged into the members file: new members are added; members already
   in the file take the directory's name, website, city, tags and dates and keep
   everything a person wrote (aliases, rules, context, exclusions); members written in
   sources.yaml itself are left exactly as they are. The result is validated as a whole
   configuration before anything is written, and files are replaced atomically.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from pipeline.errors import ConfigError
from pipeline.settings.config import (
    build_config,
    load_config,
    members_file_path,
    slugify,
)
from pipeline.settings.yamledit import append_lines, atomic_write, read_text, reads_back

DEFAULT_MEMBERS_FILE = "members.yaml"
MAX_PROBLEMS = 20  # a broken export lists the first ones, not ten thousand lines

# header (folded: lower case, no accents, single spaces) -> field
COLUMNS = {
    "name": "name",
    "nom": "name",
    "raison sociale": "name",
    "aliases": "aliases",
    "alias": "aliases",
    "website": "website",
    "site": "website",
    "site web": "website",
    "site internet": "website",
    "url": "website",
    "city": "city",
    "ville": "city",
    "tags": "tags",
    "tag": "tags",
    "joined": "joined",
    "adhesion": "joined",
    "date d'adhesion": "joined",
    "left": "left",
    "sortie": "left",
    "date de sortie": "left",
}
_LIST_SPLIT = {"aliases": re.compile(r"[;|]"), "tags": re.compile(r"[;|,]")}
# Legal forms written after a name: stripped from the id so that "Valneva SE" in one
# export and "Valneva" in the next are the same member.
LEGAL_SUFFIXES = (
    "SA",
    "SAS",
    "SASU",
    "SARL",
    "EURL",
    "SE",
    "SCA",
    "SCOP",
    "SCIC",
    "SNC",
    "GIE",
    "Inc",
    "Ltd",
    "Limited",
    "LLC",
    "GmbH",
    "AG",
    "BV",
    "NV",
    "SpA",
    "Srl",
    "Corp",
    "plc",
)
_LEGAL_SUFFIX = re.compile(
    r"[\s,]+(?:" + "|".join(r"\.?".join(s) for s in LEGAL_SUFFIXES) + r")\.?\s*$",
    re.IGNORECASE,
)


def without_legal_suffix(name: str) -> str:
    """ "Step Pharma SAS" -> "Step Pharma"; "Acme S.A." -> "Acme"; the name when nothing is left."""
    stripped = _LEGAL_SUFFIX.sub("", name).strip(" ,")
    return stripped if len(stripped) >= 2 else name


def member_id(name: str) -> str:
    return slugify(without_legal_suffix(name))


@dataclass(frozen=True, slots=True)
class DirectoryRow:
    line: int  # where the row starts in the file
    name: str
    aliases: tuple[str, ...] = ()
    website: str | None = None
    city: str | None = None
    tags: tuple[str, ...] = ()
    joined: date | None = None
    left: date | None = None

    @property
    def id(self) -> str:
        return member_id(self.name)


@dataclass(frozen=True, slots=True)
class Directory:
    path: str
    encoding: str  # "utf-8", "utf-8 with BOM" or "windows-1252"
    delimiter: str
    rows: tuple[DirectoryRow, ...]
    ignored_columns: tuple[str, ...] = ()
    columns: frozenset[str] = frozenset()  # the fields the file has a column for


def _fold_header(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(ascii_text.replace("’", "'").lower().replace("_", " ").split())


def _decode(data: bytes, path: str) -> tuple[str, str]:
    if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff") or b"\x00" in data[:4096]:
        raise ConfigError(
            ["line 1: UTF-16 or binary content; export the file as CSV UTF-8 or CSV (semicolon)"],
            path=path,
        )
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8 with BOM"
        except UnicodeDecodeError as exc:
            line = data[: exc.start + 3].count(b"\n") + 1
            raise ConfigError(
                [f"line {line}: not UTF-8 although the file starts with a UTF-8 BOM"], path=path
            ) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            [
                f"line {line}: neither UTF-8 nor Windows-1252 (byte 0x{data[exc.start]:02x}); "
                "export the file as CSV UTF-8"
            ],
            path=path,
        ) from None


def _delimiter(header: str) -> str:
    # the header row holds column names, never quoted delimiters in practice: count there
    counts = {d: header.count(d) for d in (";", ",", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _date(value: str) -> date:
    for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y"):
        try:
            return datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    raise ValueError(f"not a date: {value!r} (write 2025-03-01 or 01/03/2025)")


def _website(value: str) -> str:
    url = value if "://" in value else f"https://{value}"
    if not re.match(r"^https?://[^\s/]+\.[^\s/]+", url, re.IGNORECASE):
        raise ValueError(f"not a web address: {value!r}")
    return url


def read_directory(path: str | Path) -> Directory:
    """Read and check a directory export; raise ConfigError (with line numbers) if it is bad."""
    path = Path(path)
    label = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror or exc}"], path=label) from None
    text, encoding = _decode(data, label)
    first_line = text.split("\n", 1)[0]
    if not first_line.strip():
        raise ConfigError(["line 1: no header row (the first line is empty)"], path=label)
    delimiter = _delimiter(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    problems: list[str] = []
    try:
        header = next(reader)
    except (csv.Error, StopIteration) as exc:
        raise ConfigError([f"line 1: {exc}"], path=label) from None
    fields: dict[str, int] = {}
    ignored: list[str] = []
    for index, column in enumerate(header):
        key = COLUMNS.get(_fold_header(column))
        if key is None:
            if column.strip():
                ignored.append(column.strip())
        elif key in fields:
            problems.append(
                f"line 1: columns {header[fields[key]]!r} and {column!r} both give the {key}"
            )
        else:
            fields[key] = index
    if "name" not in fields:
        shown = ", ".join(repr(c) for c in header)
        raise ConfigError(
            [f"line 1: no name column (`name` or `nom`) in the header: {shown}", *problems],
            path=label,
        )
    rows: list[DirectoryRow] = []
    first_line_of: dict[str, int] = {}
    line = 2  # where the next record starts (a quoted field may span several lines)
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if len(problems) >= MAX_PROBLEMS:
                break
            if not any(cell.strip() for cell in record):
                continue  # blank lines, and the ";;;;" rows spreadsheets leave at the end
            if len(record) > len(header) and any(c.strip() for c in record[len(header) :]):
                problems.append(
                    f"line {start}: {len(record)} fields where the header has {len(header)} "
                    f"(is a value holding a {delimiter!r} without quotes?)"
                )
                continue
            row = _row(record, fields, start, problems)
            if row is None:
                continue
            if row.id in first_line_of:
                problems.append(
                    f"line {start}: duplicate name {row.name!r} "
                    f"(same member as line {first_line_of[row.id]})"
                )
                continue
            first_line_of[row.id] = start
            rows.append(row)
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: {exc}")
    if not rows and not problems:
        problems.append("no member: the file has a header row and nothing else")
    if problems:
        if len(problems) >= MAX_PROBLEMS:
            problems.append(f"(stopped after {MAX_PROBLEMS} problems)")
        raise ConfigError(problems, path=label)
    return Directory(
        path=label,
        encoding=encoding,
        delimiter=delimiter,
        rows=tuple(rows),
        ignored_columns=tuple(ignored),
        columns=frozenset(fields),
    )


def _row(
    record: list[str], fields: dict[str, int], line: int, problems: list[str]
) -> DirectoryRow | None:
    def cell(key: str) -> str:
        index = fields.get(key)
        if index is None or index >= len(record):
            return ""
        return " ".join(record[index].split())

    name = cell("name")
    if not name:
        problems.append(f"line {line}: empty name")
        return None
    if len(name) < 2 or not slugify(name):
        problems.append(f"line {line}: {name!r} is not a usable name (two letters at least)")
        return None
    values: dict[str, Any] = {}
    for key in ("aliases", "tags"):
        parts = [" ".join(p.split()) for p in _LIST_SPLIT[key].split(cell(key))]
        values[key] = tuple(dict.fromkeys(p for p in parts if p and p != name))
    for short in values["aliases"]:
        if len(short) < 2:
            problems.append(f"line {line}: alias {short!r} is too short (two characters at least)")
            return None
    try:
        if cell("website"):
            values["website"] = _website(cell("website"))
        for key in ("joined", "left"):
            if cell(key):
                values[key] = _date(cell(key))
    except ValueError as exc:
        problems.append(f"line {line}: {exc}")
        return None
    if values.get("joined") and values.get("left") and values["left"] <= values["joined"]:
        problems.append(f"line {line}: left ({values['left']}) is not after joined")
        return None
    return DirectoryRow(line=line, name=name, city=cell("city") or None, **values)


# ------------------------------------------------------------------ merging


@dataclass
class ImportReport:
    directory: Directory
    members_file: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    in_sources_yaml: list[str] = field(default_factory=list)  # left as written there
    not_in_directory: list[str] = field(default_factory=list)  # in the members file, kept
    wrote_members_file: bool = False
    wrote_config: bool = False
    would_change: bool = False  # something to write (a dry run writes nothing)

    @property
    def changed(self) -> bool:
        return self.wrote_members_file or self.wrote_config

    def summary(self) -> str:
        d = self.directory
        lines = [
            f"{d.path}: {len(d.rows)} members ({d.encoding}, {d.delimiter!r}-separated)",
            f"  added {len(self.added)}, updated {len(self.updated)}, "
            f"unchanged {len(self.unchanged)}, left as written in sources.yaml "
            f"{len(self.in_sources_yaml)}",
        ]
        if d.ignored_columns:
            lines.append(f"  columns not imported: {', '.join(d.ignored_columns)}")
        if self.not_in_directory:
            lines.append(
                f"  {len(self.not_in_directory)} member(s) of {self.members_file} are not in this "
                "file and were kept (set `left:` on a member that left the cluster)"
            )
        if self.changed:
            wrote = [self.members_file] if self.wrote_members_file else []
            if self.wrote_config:
                wrote.append("sources.yaml (members_file)")
            lines.append(f"  wrote {', '.join(wrote)}; run `veille members check` next")
        elif self.would_change:
            lines.append("  changes to write")
        else:
            lines.append("  nothing to change")
        return "\n".join(lines)


_HEADER = """\
# Members imported from the cluster's directory by `veille members import`; sources.yaml
# names this file (members_file). Edit it freely: a new import updates name, website,
# city, tags, joined and left from the directory and keeps everything else written here.
#   aliases: spellings the press uses; veille decides their evidence (`veille members check`)
#   {alias: X, case_sensitive: true, context: true}: a rule, used exactly as written
#   {alias: X, use: false}: a derived form never to match
#   context: evidence words; exclude: phrases naming someone else; derive: false
"""


def _yaml() -> YAML:
    yaml = YAML()  # round trip: the comments people write in the members file survive
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    return yaml


def _flow(items: tuple[str, ...] | list[Any]) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _plain(value: Any) -> Any:
    """Round-trip YAML nodes -> plain values, to compare before and after."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


def _apply(entry: CommentedMap, row: DirectoryRow, columns: frozenset[str]) -> None:
    """The directory's fields onto a member entry. The directory owns name, website, city,
    tags, joined and left: where it has a column, an empty cell clears the field. Aliases
    are added to those a person wrote, never removed; everything else is kept."""
    entry["name"] = row.name
    existing = list(entry.get("aliases") or [])
    written = {a if isinstance(a, str) else a.get("alias") for a in existing}
    new = [a for a in row.aliases if a not in written]
    if new:
        entry["aliases"] = _flow(existing + new)
    values: dict[str, Any] = {
        "website": row.website,
        "city": row.city,
        "tags": _flow(row.tags) if row.tags else None,
        "joined": row.joined.isoformat() if row.joined else None,
        "left": row.left.isoformat() if row.left else None,
    }
    for key, value in values.items():
        if value:
            entry[key] = value
        elif key in columns:
            entry.pop(key, None)


def _new_entry(row: DirectoryRow, columns: frozenset[str]) -> CommentedMap:
    entry = CommentedMap()
    entry["id"] = row.id
    _apply(entry, row, columns)
    return entry


def _config_with_members_file(config_text: str, members_file: str) -> str:
    """sources.yaml with a `members_file:` key appended: lines of text added at the end of
    the top-level mapping, so every comment and layout of the file stays as it was."""
    return append_lines(
        config_text,
        [
            "# Members imported from the cluster's directory (`veille members import`): a file",
            "# of their own, so this one stays short; see the README, section Members.",
            f"members_file: {members_file}",
        ],
    )


def import_directory(
    csv_path: str | Path, *, config_path: str | Path, dry_run: bool = False
) -> ImportReport:
    """Merge a directory export into the members file of ``config_path`` (see the module)."""
    config_path = Path(config_path)
    directory = read_directory(csv_path)
    config = load_config(config_path)  # a broken configuration is refused before any change
    safe = YAML(typ="safe", pure=True)
    config_text = read_text(config_path)  # line endings kept
    data = safe.load(config_text)
    members_name = data.get("members_file") or DEFAULT_MEMBERS_FILE
    members_path = members_file_path(config_path, members_name)
    yaml = _yaml()
    if members_path.exists():
        document = yaml.load(members_path.read_text(encoding="utf-8"))
        if document is None:
            document = CommentedMap()
        if "members" not in document or document["members"] is None:
            document["members"] = CommentedSeq()
    else:
        document = CommentedMap()
        document["members"] = CommentedSeq()
    entries: CommentedSeq = document["members"]
    before = _plain(entries)

    report = ImportReport(directory=directory, members_file=str(members_path))
    inline = {m.slug for m in config.members[: len(data.get("members") or [])]}
    inline_names = {
        member_id(m.name): m.slug for m in config.members[: len(data.get("members") or [])]
    }
    by_id: dict[str, CommentedMap] = {}
    for entry in entries:
        if isinstance(entry, CommentedMap) and isinstance(entry.get("name"), str):
            by_id[str(entry.get("id") or slugify(entry["name"]))] = entry
            by_id.setdefault(member_id(entry["name"]), entry)
    seen: set[int] = set()
    for row in directory.rows:
        if row.id in inline or row.id in inline_names or slugify(row.name) in inline:
            report.in_sources_yaml.append(row.name)
            continue
        existing = by_id.get(row.id) or by_id.get(slugify(row.name))
        if existing is None:
            entries.append(_new_entry(row, directory.columns))
            report.added.append(row.name)
            continue
        seen.add(id(existing))
        old = _plain(existing)
        _apply(existing, row, directory.columns)
        (report.updated if _plain(existing) != old else report.unchanged).append(row.name)
    report.not_in_directory = [
        str(e.get("name")) for e in entries if isinstance(e, dict) and id(e) not in seen
    ]
    report.not_in_directory = [n for n in report.not_in_directory if n not in report.added]

    members_changed = _plain(entries) != before or not members_path.exists()
    needs_key = not data.get("members_file")
    if not members_changed and not needs_key:
        return report
    # the whole configuration as it will be, validated before anything is written
    new_data = {**data, "members_file": members_name}
    build_config(new_data, path=config_path, file_members=_plain(entries))
    new_config_text = config_text
    if needs_key:
        new_config_text = _config_with_members_file(config_text, members_name)
        # the text as it will be written must read as that configuration too
        if not reads_back(new_config_text, new_data):
            raise ConfigError(
                [
                    "cannot add `members_file:` at the end of this file (does it end its YAML "
                    "document with `...`, or set `members_file:` empty?): add the line yourself"
                ],
                path=str(config_path),
            )
    report.would_change = True
    if dry_run:
        return report
    if members_changed:
        buffer = io.StringIO()
        yaml.dump(document, buffer)
        body = buffer.getvalue()
        if not members_path.exists():
            body = _HEADER + body
        atomic_write(members_path, body)
        report.wrote_members_file = True
    if needs_key:
        atomic_write(config_path, new_config_text)
        report.wrote_config = True
    load_config(config_path)  # what was written reads back
    return report


def apply_form_rules(
    config_path: str | Path, rules: list[tuple[str, dict[str, object]]]
) -> list[str]:
    """Write each (member id, rule) into that member's `aliases` in the members file: the
    rule replaces any written for the same alias. Validated as a whole before it is
    written (atomically); a member written in sources.yaml itself is left to a person.
    One line per rule says what was done."""
    config_path = Path(config_path)
    load_config(config_path)  # a broken configuration is refused before any change
    data = YAML(typ="safe", pure=True).load(read_text(config_path))
    members_name = data.get("members_file")
    said: list[str] = []
    if not members_name:
        return [f"{m}: no members file; add {r} to its aliases in {config_path}" for m, r in rules]
    members_path = members_file_path(config_path, members_name)
    yaml = _yaml()
    document = yaml.load(members_path.read_text(encoding="utf-8")) or CommentedMap()
    entries = document.get("members") or CommentedSeq()
    by_id: dict[str, CommentedMap] = {}
    for entry in entries:
        if isinstance(entry, CommentedMap) and isinstance(entry.get("name"), str):
            by_id[str(entry.get("id") or slugify(entry["name"]))] = entry
    changed = False
    for member, rule in rules:
        entry = by_id.get(member)
        if entry is None:
            said.append(f"{member}: not in {members_path.name}; add {rule} to its aliases by hand")
            continue
        aliases = entry.get("aliases")
        if aliases is None:
            aliases = CommentedSeq()
            entry["aliases"] = aliases
        spec = CommentedMap(rule)
        spec.fa.set_flow_style()
        for index, old in enumerate(aliases):
            written = old.get("alias") if isinstance(old, dict) else old
            if written == rule["alias"]:
                aliases[index] = spec
                break
        else:
            aliases.append(spec)
        changed = True
        said.append(f"{member}: {_plain(spec)} written to {members_path.name}")
    if changed:
        build_config(data, path=config_path, file_members=_plain(entries))
        buffer = io.StringIO()
        yaml.dump(document, buffer)
        atomic_write(members_path, buffer.getvalue())
        load_config(config_path)  # what was written reads back
    return said
