"""`veille members import`: a CRM export into the members file, every file rule, nothing
written on a bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings.config import load_config
from pipeline.settings.directory import import_directory, read_directory, without_legal_suffix
from tests.run_cli import veille

ROOT = Path(__file__).resolve().parent.parent
DIRECTORY = ROOT / "tests" / "fixtures" / "members" / "directory.csv"

SOURCES = """\
# the cluster's configuration; this comment must survive an import
cluster:
  name: Atlanpole Biotherapies
  aliases: [Atlanpole Biothérapies]   # an inline comment too

members:
  # hand-tuned: the import leaves it exactly as written
  - name: OSE Immunotherapeutics
    aliases: [{alias: OSE, case_sensitive: true, context: true}]
    context: [biotech, immunotherapy]

sources:
  - {id: labiotech, kind: feed, url: "https://www.labiotech.eu/feed/"}
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(SOURCES, encoding="utf-8")
    return path


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_a_220_row_csv_of_names_imports_in_one_command_and_check_passes(
    config_path: Path,
) -> None:
    result = veille("members", "import", str(DIRECTORY), "--config", str(config_path))
    assert result.returncode == 0, result.stderr
    assert "220 members" in result.stderr
    assert "added 219" in result.stderr and "left as written in sources.yaml 1" in result.stderr
    config = load_config(config_path)
    assert len(config.members) == 220
    assert config.members_file == str(config_path.parent / "members.yaml")
    # the hand-tuned member is the one of sources.yaml, its rule untouched
    ose = [m for m in config.members if m.slug == "ose-immunotherapeutics"]
    assert len(ose) == 1 and ose[0].context == ("biotech", "immunotherapy")
    check = veille("check", "--config", str(config_path))
    assert check.returncode == 0, check.stderr
    assert "members   220" in check.stdout


def test_a_second_import_changes_nothing(config_path: Path) -> None:
    import_directory(DIRECTORY, config_path=config_path)
    before = snapshot(config_path.parent)
    report = import_directory(DIRECTORY, config_path=config_path)
    assert not report.changed and not report.added and not report.updated
    assert len(report.unchanged) == 219
    assert snapshot(config_path.parent) == before


def test_comments_of_sources_yaml_survive_and_one_key_is_added(config_path: Path) -> None:
    import_directory(DIRECTORY, config_path=config_path)
    text = config_path.read_text(encoding="utf-8")
    assert text.startswith(SOURCES)  # every byte as it was, the key appended after
    assert text.count("members_file: members.yaml") == 1
    assert "# an inline comment too" in text


def test_a_semicolon_windows_1252_export_with_nom_imports_the_same_members(
    tmp_path: Path, config_path: Path
) -> None:
    names = DIRECTORY.read_text(encoding="utf-8").splitlines()[1:]
    excel = tmp_path / "annuaire.csv"
    rows = ["Nom;Ville;Téléphone"] + [f"{n};Nantes;02 40 00 00 00" for n in names]
    excel.write_bytes("\r\n".join(rows).encode("cp1252"))
    utf8 = import_directory(DIRECTORY, config_path=config_path, dry_run=True)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other_config = other_dir / "sources.yaml"
    other_config.write_text(SOURCES, encoding="utf-8")
    report = import_directory(excel, config_path=other_config)
    assert report.directory.encoding == "windows-1252" and report.directory.delimiter == ";"
    assert report.directory.ignored_columns == ("Téléphone",)
    assert sorted(report.added) == sorted(utf8.added)
    members = {m.slug: m for m in load_config(other_config).members}
    assert members["ceva-sante-animale"].name == "Ceva Santé Animale"  # accents decoded right
    assert members["vivalto-sante"].city == "Nantes"


def test_utf8_with_a_bom_and_commas_reads_the_header(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(
        b"\xef\xbb\xbfName,Aliases,Website,City,Tags\r\n"
        b'Mablink Bioscience,Mablink|MabLink,mablink.example,Lyon,"ADC; oncology"\r\n'
        b"\xc3\x89lixir Sant\xc3\xa9 SAS,,,Angers,\r\n"
    )
    directory = read_directory(path)
    assert directory.encoding == "utf-8 with BOM" and directory.delimiter == ","
    mablink, elixir = directory.rows
    assert mablink.aliases == ("Mablink", "MabLink")
    assert mablink.website == "https://mablink.example" and mablink.tags == ("ADC", "oncology")
    assert (elixir.name, elixir.id, elixir.city) == ("Élixir Santé SAS", "elixir-sante", "Angers")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"ville;site\nNantes;x.example\n", "line 1: no name column"),
        (b"name\nStep Pharma\n\n  \nAtlantic Bone Screen\n,\nVital Ouest\n", None),
        (b"name;city\nStep Pharma;Nantes\n;Angers\n", "line 3: empty name"),
        (b"name\nStep Pharma\nVital Ouest\nStep Pharma SAS\n", "line 4: duplicate name"),
        (b"name\nStep Pharma\nVital Ouest\nstep pharma\n", "line 4: duplicate name"),
        (b"name;joined\nStep Pharma;le 3 mars\n", "line 2: not a date"),
        (b"name;site\nStep Pharma;not a site\n", "line 2: not a web address"),
        (b'name;city\n"Step Pharma\nSAS";Nantes\nVital Ouest;Nantes;extra\n', "line 4: 3 fields"),
        (b"name\nStep Pharma\n\x81\x8d\x8f\x90\x9d\n", "line 3: neither UTF-8 nor Windows-1252"),
        ("name\nStep Pharma\n".encode("utf-16"), "UTF-16"),
    ],
)
def test_bad_files_are_refused_with_the_line_and_nothing_is_written(
    tmp_path: Path, config_path: Path, content: bytes, message: str | None
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    before = snapshot(tmp_path)
    if message is None:  # blank rows and a row of empty cells are not members, nor problems
        assert [r.name for r in read_directory(path).rows] == [
            "Step Pharma",
            "Atlantic Bone Screen",
            "Vital Ouest",
        ]
        return
    with pytest.raises(ConfigError) as caught:
        import_directory(path, config_path=config_path)
    assert message in str(caught.value)
    assert snapshot(tmp_path) == before
    result = veille("members", "import", str(path), "--config", str(config_path))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert snapshot(tmp_path) == before


def test_a_member_already_in_the_file_keeps_what_a_person_wrote(config_path: Path) -> None:
    tmp = config_path.parent
    first = tmp / "v1.csv"
    first.write_text("name;city\nStep Pharma SAS;Nantes\nKerlis SA;Brest\n", encoding="utf-8")
    import_directory(first, config_path=config_path)
    members_file = tmp / "members.yaml"
    text = members_file.read_text(encoding="utf-8")
    # a person tunes Step Pharma by hand, with a comment
    text = text.replace(
        "  - id: step-pharma\n",
        "  - id: step-pharma\n    # the press writes STEP in capitals\n"
        "    aliases: [{alias: STEP, case_sensitive: true, context: true}]\n"
        "    context: [cancer, Nantes]\n",
    )
    members_file.write_text(text, encoding="utf-8")
    second = tmp / "v2.csv"
    second.write_text(
        "name;city;aliases\nStep Pharma;Saint-Herblain;Step\nVital Ouest;Nantes;\n",
        encoding="utf-8",
    )
    report = import_directory(second, config_path=config_path)
    assert report.added == ["Vital Ouest"] and report.updated == ["Step Pharma"]
    assert report.not_in_directory == ["Kerlis SA"]  # kept: an export may be partial
    members = {m.slug: m for m in load_config(config_path).members}
    step = members["step-pharma"]
    assert step.city == "Saint-Herblain" and step.name == "Step Pharma"
    assert step.context == ("cancer", "Nantes")
    assert [a if isinstance(a, str) else a.alias for a in step.aliases] == ["STEP", "Step"]
    assert "# the press writes STEP in capitals" in members_file.read_text(encoding="utf-8")
    assert "kerlis" in members


def test_an_invalid_configuration_is_refused_before_any_change(
    tmp_path: Path, config_path: Path
) -> None:
    config_path.write_text(SOURCES.replace("kind: feed", "kind: fed"), encoding="utf-8")
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match=r"sources\[0\]\.kind"):
        import_directory(DIRECTORY, config_path=config_path)
    assert snapshot(tmp_path) == before


def test_members_file_problems_name_the_file_and_the_member(config_path: Path) -> None:
    import_directory(DIRECTORY, config_path=config_path)
    members_file = config_path.parent / "members.yaml"
    text = members_file.read_text(encoding="utf-8")
    members_file.write_text(text.replace("name: Vital Ouest", "nom: Vital Ouest"), "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config_path)
    assert "members.yaml: members[" in str(caught.value) and "unknown key" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "stripped"),
    [
        ("Step Pharma SAS", "Step Pharma"),
        ("Valneva SE", "Valneva"),
        ("Acme Bio S.A.", "Acme Bio"),
        ("Kerlis, SARL", "Kerlis"),
        ("Biolumis Inc.", "Biolumis"),
        ("SAS", "SAS"),
        ("Sea Cells", "Sea Cells"),
    ],
)
def test_legal_suffixes_are_stripped_from_the_end_only(name: str, stripped: str) -> None:
    assert without_legal_suffix(name) == stripped


def test_a_field_emptied_in_the_directory_is_cleared_and_a_missing_column_kept(
    tmp_path: Path, config_path: Path
) -> None:
    export = tmp_path / "export.csv"
    export.write_text(
        "name,city,tags,left,aliases\nKerlis SA,Brest,chimie|CDMO,2026-06-30,Kerlis Chimie\n",
        encoding="utf-8",
    )
    import_directory(export, config_path=config_path)
    (kerlis,) = [m for m in load_config(config_path).members if m.name == "Kerlis SA"]
    assert (kerlis.city, kerlis.tags, str(kerlis.left)) == (
        "Brest",
        ("chimie", "CDMO"),
        "2026-06-30",
    )
    # the CRM empties the city, the tags and the date it left; aliases are never removed
    export.write_text("name,city,tags,left,aliases\nKerlis SA,,,,\n", encoding="utf-8")
    report = import_directory(export, config_path=config_path)
    assert report.updated == ["Kerlis SA"]
    (kerlis,) = [m for m in load_config(config_path).members if m.name == "Kerlis SA"]
    assert (kerlis.city, kerlis.tags, kerlis.left) == (None, (), None)
    assert "Kerlis Chimie" in kerlis.alias_names
    # a file without a city column says nothing about cities: a city written is kept
    export.write_text("name,city\nKerlis SA,Lannion\n", encoding="utf-8")
    import_directory(export, config_path=config_path)
    export.write_text("name\nKerlis SA\n", encoding="utf-8")
    assert import_directory(export, config_path=config_path).unchanged == ["Kerlis SA"]
    (kerlis,) = [m for m in load_config(config_path).members if m.name == "Kerlis SA"]
    assert kerlis.city == "Lannion"


def test_a_dry_run_says_what_it_would_change_and_writes_nothing(
    tmp_path: Path, config_path: Path
) -> None:
    before = snapshot(tmp_path)
    report = import_directory(DIRECTORY, config_path=config_path, dry_run=True)
    assert snapshot(tmp_path) == before
    assert len(report.added) == 220 - 1 and "changes to write" in report.summary()
    assert "nothing to change" not in report.summary()


def test_a_new_members_file_gets_the_usual_permissions(config_path: Path) -> None:
    import os

    umask = os.umask(0o022)
    try:
        import_directory(DIRECTORY, config_path=config_path)
    finally:
        os.umask(umask)
    assert (config_path.parent / "members.yaml").stat().st_mode & 0o777 == 0o644


def test_fifty_bad_rows_give_at_most_twenty_problems(tmp_path: Path) -> None:
    export = tmp_path / "bad.csv"
    export.write_text("name,joined\n" + "".join(f"M{i:02d} Bio,31/31/2026\n" for i in range(50)))
    with pytest.raises(ConfigError) as caught:
        read_directory(export)
    assert len(caught.value.problems) == 21  # twenty, then the line that says it stopped
    assert caught.value.problems[-1] == "(stopped after 20 problems)"


def test_a_sources_yaml_with_windows_line_endings_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_bytes(SOURCES.replace("\n", "\r\n").encode("utf-8"))
    before = path.read_bytes()
    import_directory(DIRECTORY, config_path=path)
    after = path.read_bytes()
    assert after.startswith(before.rstrip(b"\r\n"))  # the file as it was, then the new line
    assert b"\n" not in after.replace(b"\r\n", b"")
    assert b"members_file: members.yaml\r\n" in after
    assert len(load_config(path).members) == 220
