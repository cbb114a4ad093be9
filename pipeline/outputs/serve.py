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
import re
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


DESK_ACCOUNT = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
DESK_HASH_ENV = "VEILLE_DESK_HASH_"  # + the account's name in capitals: its password hash


def accounts_path(db_path: Path) -> Path:
    """The desk's accounts file, beside the database: storage/veille.db -> storage/veille.desk.json."""
    return db_path.with_name(f"{db_path.stem}.desk.json")


def load_accounts(path: Path) -> dict[str, str]:
    """Account name -> password hash (datasette-auth-passwords' PBKDF2 form); {} if no file."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError([f"cannot read the desk's accounts: {exc}"], path=str(path)) from None
    accounts = data.get("accounts") if isinstance(data, dict) else None
    if not isinstance(accounts, dict) or not all(
        isinstance(k, str)
        and DESK_ACCOUNT.match(k)
        and isinstance(v, str)
        and v.startswith("pbkdf2")
        for k, v in accounts.items()
    ):
        raise ConfigError(
            ['"accounts" must map names (a-z, 0-9, _) to password hashes'], path=str(path)
        )
    return dict(accounts)


def save_account(path: Path, name: str, password_hash: str) -> None:
    """Add or replace one account; the file is written whole, readable by its owner only."""
    if not DESK_ACCOUNT.match(name):
        raise ConfigError(
            [f"{name!r}: an account name is a-z, 0-9 and _, starting with a letter (at most 32)"],
            path="command line",
        )
    accounts = load_accounts(path)
    accounts[name] = password_hash
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"accounts": accounts}, out, indent=2, sort_keys=True)
    os.replace(tmp, path)


def desk_environment(accounts: dict[str, str]) -> dict[str, str]:
    """The environment that hands the accounts' hashes to Datasette (never its metadata,
    which /-/metadata shows)."""
    return {DESK_HASH_ENV + name.upper(): value for name, value in accounts.items()}


def metadata_for(
    db_path: Path,
    *,
    protect: bool,
    base: dict[str, Any] | None = None,
    config_path: Path | None = None,
    accounts: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The metadata with the database renamed after ``db_path``; when ``protect``, a login
    for everything; with ``config_path``, the desk, writable by ``accounts`` once logged in."""
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
    plugins = metadata.setdefault("plugins", {})
    desk_accounts = sorted(accounts or {})
    if config_path is not None:
        plugins["veille-desk"] = {
            "config": str(config_path.resolve()),
            "db": str(db_path.resolve()),
            "accounts": desk_accounts,
        }
    logins = {
        f"{name}_password_hash": {"$env": DESK_HASH_ENV + name.upper()} for name in desk_accounts
    }
    if protect:
        if not os.environ.get(PASSWORD_HASH_ENV):
            raise ConfigError(
                [
                    f"serving beyond loopback needs a password: set {PASSWORD_HASH_ENV} to a hash "
                    "made with `veille datasette --hash-password`"
                ],
                path="environment",
            )
        metadata["allow"] = {"id": [ANALYST, *desk_accounts] if desk_accounts else ANALYST}
        logins[f"{ANALYST}_password_hash"] = {"$env": PASSWORD_HASH_ENV}
    if logins:
        plugins["datasette-auth-passwords"] = logins
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
