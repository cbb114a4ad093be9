"""Large YAML files parsed once per content: the parsed data kept in the user's cache.

ruamel.yaml reads YAML 1.2 in pure Python, about 0.7 ms per source of a sources.yaml;
a file of 3,000 sources takes two seconds to read, on every run, though it rarely
changes. A file of at least ``MIN_BYTES`` is looked up by the SHA-256 of its text (and
of the parser's version) in ``$VEILLE_CACHE_DIR``, else ``$XDG_CACHE_HOME/veille/yaml``,
else ``~/.cache/veille/yaml``. A hit is the data the parser gave for that very text;
anything else (no such file, a file cut short or not ours, a directory that cannot be
written) reads the text as before. Nothing depends on the cache: removing it is safe.

The data is pickled. Loading it allows only what ruamel's safe loader builds: the
built-in containers and scalars, and dates, times and time zones; a pickle naming any
other class is refused as a miss. The directory is made for the user alone (0700); one
that is not the user's, or that others may write in, is neither read nor written.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import __version__ as ruamel_version

logger = logging.getLogger(__name__)

MIN_BYTES = 16 * 1024  # smaller files are read in a few tens of milliseconds
KEEP = 8  # parsed versions kept: older ones are removed when a new one is written
FORMAT = "1"  # bump when the cached data's shape changes
_ALLOWED = frozenset(
    {
        ("datetime", "date"),
        ("datetime", "datetime"),
        ("datetime", "time"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
    }
)


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not YAML data")


def cache_dir() -> Path:
    explicit = os.environ.get("VEILLE_CACHE_DIR")
    if explicit:
        return Path(explicit) / "yaml"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "veille" / "yaml"


def _entry(text: str) -> Path:
    digest = hashlib.sha256(f"{FORMAT}\x00{ruamel_version}\x00{text}".encode()).hexdigest()
    return cache_dir() / f"{digest}.pickle"


def _private(directory: Path) -> bool:
    """Whether ``directory`` is this user's own and no one else may write in it: a cache
    entry changes what the configuration says, so one another user could plant (in a
    shared $VEILLE_CACHE_DIR) is never read."""
    try:
        info = directory.stat()
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def load(text: str, parse: Callable[[str], Any]) -> Any:
    """``parse(text)``, or what it gave before for the same text. Errors of ``parse``
    (invalid YAML) are raised as they are, and never cached."""
    if len(text) < MIN_BYTES:
        return parse(text)
    entry = _entry(text)
    if entry.parent.exists() and not _private(entry.parent):
        logger.debug("YAML cache %s not used: others may write in it", entry.parent)
        return parse(text)
    try:
        with entry.open("rb") as handle:
            data = _SafeUnpickler(handle).load()
        with contextlib.suppress(OSError):
            os.utime(entry)  # recently used: the last to be pruned
        return data
    except FileNotFoundError:
        pass
    except Exception as exc:  # cut short, not ours, unreadable: read the text again
        logger.debug("YAML cache %s not used: %s", entry, exc)
    data = parse(text)
    _store(entry, data)
    return data


def _store(entry: Path, data: Any) -> None:
    partial: str | None = None
    try:
        payload = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
        _SafeUnpickler(io.BytesIO(payload)).load()  # only YAML's own types: never a miss later
        entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(entry.parent):
            return
        with tempfile.NamedTemporaryFile(dir=entry.parent, suffix=".part", delete=False) as tmp:
            partial = tmp.name
            tmp.write(payload)
        os.replace(partial, entry)  # whole or absent, even with two runs writing at once
        partial = None
        _prune(entry.parent)
    except Exception as exc:  # a read-only home, a full disk: the run goes on uncached
        logger.debug("YAML cache %s not written: %s", entry, exc)
        if partial is not None:
            with contextlib.suppress(OSError):
                os.unlink(partial)


def _prune(directory: Path) -> None:
    """Keep the ``KEEP`` most recently written versions (and no stray partial file)."""
    entries = sorted(
        (p for p in directory.iterdir() if p.suffix in (".pickle", ".part")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in entries[KEEP:]:
        with contextlib.suppress(OSError):
            old.unlink()
