"""storage/metadata.yml + a database -> the Datasette settings that serve it.

Datasette names a database after its file ("veille.db" -> "veille"); the metadata is
written for "veille", so it is renamed here for any other file (storage/demo.db).
Outside loopback the analysts log in (datasette-auth-passwords); the password hash
comes from the environment, never from a file in the repository.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from pipeline.errors import ConfigError

METADATA_PATH = Path(__file__).resolve().parents[2] / "storage" / "metadata.yml"
METADATA_DB_NAME = "veille"
PASSWORD_HASH_ENV = "VEILLE_DATASETTE_PASSWORD_HASH"
ANALYST = "analyst"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_metadata(path: Path = METADATA_PATH) -> dict[str, Any]:
    data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ConfigError(["the metadata file must be a mapping"], path=str(path))
    return data


def metadata_for(
    db_path: Path, *, protect: bool, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The metadata with the database renamed after ``db_path`` and, when ``protect``, a login."""
    metadata = copy.deepcopy(base if base is not None else load_metadata())
    name = db_path.stem
    databases = metadata.get("databases", {})
    if METADATA_DB_NAME in databases and name != METADATA_DB_NAME:
        databases[name] = databases.pop(METADATA_DB_NAME)
        _rename_links(metadata, name)
    dashboards = metadata.get("plugins", {}).get("datasette-dashboards", {})
    for dashboard in dashboards.values():
        for chart in dashboard.get("charts", {}).values():
            if chart.get("db") == METADATA_DB_NAME:
                chart["db"] = name
    if protect:
        if not os.environ.get(PASSWORD_HASH_ENV):
            raise ConfigError(
                [
                    f"serving beyond loopback needs a password: set {PASSWORD_HASH_ENV} to a hash "
                    "made with `veille datasette --hash-password`"
                ],
                path="environment",
            )
        metadata["allow"] = {"id": ANALYST}
        metadata.setdefault("plugins", {})["datasette-auth-passwords"] = {
            f"{ANALYST}_password_hash": {"$env": PASSWORD_HASH_ENV}
        }
    return metadata


def _rename_links(metadata: dict[str, Any], name: str) -> None:
    """The descriptions' links into the database (the Atom feeds) follow its new name."""
    old, new = f'href="/{METADATA_DB_NAME}/', f'href="/{name}/'
    holders: list[dict[str, Any]] = [metadata]
    for database in metadata.get("databases", {}).values():
        holders.append(database)
        holders += list(database.get("tables", {}).values())
    for holder in holders:
        if isinstance(holder.get("description_html"), str):
            holder["description_html"] = holder["description_html"].replace(old, new)


def datasette_command(db_path: Path, *, metadata_file: Path, host: str, port: int) -> list[str]:
    """The `datasette serve` command line: mutable (not immutable) so a run can write meanwhile."""
    return [
        "-m",
        "datasette",
        "serve",
        str(db_path),
        "--metadata",
        str(metadata_file),
        "--host",
        host,
        "--port",
        str(port),
        "--setting",
        "sql_time_limit_ms",
        "5000",
        "--setting",
        "facet_time_limit_ms",
        "1000",
    ]


def write_metadata(metadata: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(metadata, ensure_ascii=False, indent=2), encoding="utf-8")
    return path
