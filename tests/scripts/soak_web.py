"""The soak's web: thousands of loopback sources publishing news on a simulated clock.

    python -m tests.scripts.soak_web WORLD.json --port P

The world (``build_world``, a pure function of its seed) is written to JSON by the soak
driver (tests/scripts/soak.py) and read back here. Each source is a feed on one of the
loopback addresses 127.0.0.2 and up (one per site, so veille's per-host limits apply per
site), with the entries it publishes through the week: an entry is in the feed from the
simulated moment it is published, for ``WINDOW`` (at most ``MAX_ITEMS`` of them), with an
ETag and a Last-Modified date, and conditional requests get 304 while nothing new came.
Some sources misbehave on a schedule of their own:

    flap     500 during some hours of the week, 200 otherwise
    quiet    nothing new for days (every request in between is a 304), then a burst
    sticky   a cache that answers 304 to every conditional request for two days, new
             entries or not, then tells the truth again
    wrongtype  a good feed labelled text/html, text/plain or application/octet-stream

A source with ``pages`` links to article pages served here too (``/p/<source>/<n>.html``).

The server does not read the clock: the driver tells it the simulated time before each
pass (``/_soak/time?t=EPOCH``), so a feed shows what was published up to then. Control
paths, on 127.0.0.1 only:

    /_soak/time?t=EPOCH           the simulated time
    /_soak/calm?on=1              flap and sticky sources behave (the final pass)
    /_soak/arm?pgid=G&after=N&prefix=/f/   SIGKILL process group G at the N-th request
                                  whose path starts with the prefix (a kill in the fetch)
    /_soak/stats                  requests, statuses and kills so far (JSON)

The first line on stdout is "ready <port>".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import sys
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from pathlib import Path
from typing import Any

from aiohttp import web

WINDOW = 4 * 86400  # seconds an entry stays in its feed
MAX_ITEMS = 30  # newest entries a feed shows
SITES = 100  # loopback addresses 127.0.0.2 ... 127.0.0.101
HISTORY = 86400  # entries published this long before the soak starts (the first pass's backlog)

# ------------------------------------------------------------------ what the news says

CITIES = ["Nantes", "Angers", "Rennes", "Saint-Herblain", "Montaigu", "Brest", "Tours", "Laval"]
PARTNERS = ["Sanofi", "Bpifrance", "l'Inserm", "le CHU de Nantes", "Servier", "Ipsen", "Roche"]
FR_TITLES = [
    "{member} lève {amount} millions d'euros pour {product}",
    "{member} lance un essai clinique de phase {phase} avec {product}",
    "{member} signe un accord de licence avec {partner} sur {product}",
    "{member} inaugure une unité de production à {city}",
    "{member} publie des résultats précliniques sur {product}",
    "{member} recrute {people} collaborateurs à {city}",
    "{member} obtient le marquage CE pour {product}",
    "{member} nomme un nouveau directeur général",
]
EN_TITLES = [
    "{member} raises {amount} million euros for {product}",
    "{member} starts a phase {phase} clinical trial of {product}",
    "{member} signs a licensing agreement with {partner} for {product}",
    "{member} opens a manufacturing site in {city}",
    "{member} reports preclinical results for {product}",
    "{member} plans to hire {people} people in {city}",
    "{member} wins CE marking for {product}",
    "{member} appoints a new chief executive officer",
]
FR_PLAIN = [
    "Biothérapies : le marché européen progresse de {people} % à {city}",
    "Santé : {city} accueille un congrès sur {product}",
    "Bioproduction : {partner} investit à {city}",
    "Recherche : un consortium régional étudie {product}",
]
EN_PLAIN = [
    "Biotherapies: the European market grows {people} percent around {city}",
    "Health: {city} hosts a conference on {product}",
    "Bioproduction: {partner} invests in {city}",
    "Research: a regional consortium studies {product}",
]
FR_SUMMARY = [
    "La société basée à {city} précise que le programme {product} entre dans une nouvelle étape.",
    "Le financement servira à accélérer le développement clinique et industriel de {product}.",
    "Les premiers patients devraient être traités dans plusieurs centres autour de {city}.",
    "L'annonce a été faite ce {weekday} lors d'une conférence de presse.",
]
EN_SUMMARY = [
    "The company, based in {city}, says its {product} programme enters a new stage.",
    "The money will speed up the clinical and industrial development of {product}.",
    "The first patients are expected to be treated in several centres around {city}.",
    "The announcement was made on {weekday} at a press conference.",
]
WEEKDAYS = {"fr": ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"],
            "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]}  # fmt: skip

# the hostile matrix: paths of tests/fixture_server.py, served by it in the driver
HOSTILE = [
    "_/status/404", "_/status/410", "_/status/403", "_/status/500",
    "_/retry-after/503/3600", "_/retry-after/429/120", "_/redirect-loop",
    "_/redirect/8/_/feed/markup", "_/redirect/2/_/feed/markup", "_/big/12000000", "_/gzip-bomb", "_/truncated-gzip", "_/entity-bomb",
    "_/empty", "_/reset", "_/short-body", "_/encoding/br", "_/smuggle",
    "broken-html.rss", "broken-truncated.xml",
    "_/feed/invalid-xml", "_/feed/not-xml", "_/feed/billion-laughs", "_/feed/external-entity",
    "_/feed/parameter-entity", "_/feed/wrong-charset", "_/feed/utf16", "_/feed/nul",
    "_/feed/dup-guid", "_/feed/no-link", "_/feed/relative", "_/feed/bad-schemes",
    "_/feed/dates", "_/feed/regex-bomb", "_/feed/hostile-pages", "_/feed/control-chars",
    "_/feed/huge-title", "_/feed/markup",
]  # fmt: skip
# the slow ones hold a pass open until their timeouts: a few of each, not one in forty
SLOW = ["_/silence/4", "_/stall/4", "_/trickle"]
SLOW_SHARE = 75  # one source of each slow kind per 75 hostile sources


@dataclass
class Source:
    id: str
    kind: str  # normal, flap, quiet, sticky, wrongtype, hostile
    host: str
    path: str  # on the soak web, or on the fixture server for a hostile source
    interval: int  # minutes
    lang: str
    format: str = "rss"  # rss or atom
    pages: bool = False  # entries link to article pages veille fetches
    windows: list[tuple[int, int]] = field(default_factory=list)  # flap: 500; sticky: 304
    # (published epoch, title, summary, path of the entry's page)
    entries: list[tuple[int, str, str, str]] = field(default_factory=list)


@dataclass
class World:
    seed: int
    start: int  # epoch of the first pass
    end: int  # epoch of the last pass
    sources: list[Source]

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "start": self.start,
            "end": self.end,
            "sources": [vars(s) for s in self.sources],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> World:
        sources = []
        for raw in data["sources"]:
            raw = dict(raw)
            raw["windows"] = [tuple(w) for w in raw["windows"]]
            raw["entries"] = [tuple(e) for e in raw["entries"]]
            sources.append(Source(**raw))
        return cls(data["seed"], data["start"], data["end"], sources)

    def published(self, until: int) -> dict[str, tuple[str, str, int]]:
        """Every entry of a publishing source out by ``until`` and published during the
        soak: its URL path -> (source id, title, epoch)."""
        out: dict[str, tuple[str, str, int]] = {}
        for source in self.sources:
            if source.kind == "hostile":
                continue
            for when, title, _summary, path in source.entries:
                if self.start <= when <= until:
                    out[path] = (source.id, title, when)
        return out


def _fill(template: str, rng: random.Random, member: str, lang: str) -> str:
    code = "".join(rng.choice("ABCDEFGHKLMNPRSTVXZ") for _ in range(3))
    product = f"{code}-{rng.randint(100, 9999)}"
    return template.format(
        member=member,
        amount=rng.choice([2, 3, 5, 8, 12, 15, 20, 30, 45, 60]),
        product=product,
        phase=rng.choice(["1", "2", "3", "1/2"]),
        partner=rng.choice(PARTNERS),
        city=rng.choice(CITIES),
        people=rng.randint(8, 90),
        weekday=rng.choice(WEEKDAYS[lang]),
    )


def _news(rng: random.Random, members: list[str], lang: str) -> tuple[str, str]:
    """A headline (naming a member four times in ten) and a two-sentence summary."""
    fr = lang == "fr"
    # a few members are in the news far more often than the others, as in real life
    member = members[min(int(rng.expovariate(1 / 12)), len(members) - 1)]
    if rng.random() < 0.4:
        title = _fill(rng.choice(FR_TITLES if fr else EN_TITLES), rng, member, lang)
    else:
        title = _fill(rng.choice(FR_PLAIN if fr else EN_PLAIN), rng, member, lang)
    sentences = rng.sample(FR_SUMMARY if fr else EN_SUMMARY, 2)
    summary = " ".join(_fill(s, rng, member, lang) for s in sentences)
    return title, summary


def _times(rng: random.Random, per_day: float, start: int, end: int) -> list[int]:
    """Publication moments of a Poisson process of ``per_day``, busier by day than by night."""
    out: list[int] = []
    when = float(start)
    while True:
        when += rng.expovariate(per_day / 86400)
        if when > end:
            return out
        hour = (when // 3600 + 2) % 24  # about Paris time
        if 7 <= hour <= 21 or rng.random() < 0.3:
            out.append(int(when))


def build_world(*, members: list[str], seed: int, sources: int, start: int, end: int) -> World:
    """The sources, their misbehaviour and everything they publish from a day before
    ``start`` to ``end``: a pure function of its arguments."""
    rng = random.Random(seed)
    kinds: list[str] = []
    for kind, share in (("hostile", 0.05), ("flap", 0.03), ("quiet", 0.03), ("sticky", 0.01),
                        ("wrongtype", 0.01)):  # fmt: skip
        kinds += [kind] * max(1, round(sources * share))
    kinds += ["normal"] * (sources - len(kinds))
    rng.shuffle(kinds)
    out: list[Source] = []
    hostile = 0
    # wire stories: one release carried by several sources, each rewriting its headline a little
    wires: list[tuple[int, str, str, str]] = []
    for n, kind in enumerate(kinds):
        sid = f"s{n:04d}"
        lang = "fr" if rng.random() < 0.6 else "en"
        host = f"127.0.0.{2 + n % SITES}"
        interval = rng.randint(45, 600)
        if kind == "hostile":
            slow = len(SLOW) * max(1, round(kinds.count("hostile") / SLOW_SHARE))
            if hostile < slow:
                path = SLOW[hostile % len(SLOW)]
            else:
                path = HOSTILE[(hostile - slow) % len(HOSTILE)]
            hostile += 1
            # a query string keeps each source's URL its own (the server ignores it)
            out.append(
                Source(sid, kind, "127.0.0.1", f"/{path}?source={sid}", rng.randint(120, 720), lang)
            )
            continue
        source = Source(
            sid,
            kind,
            host,
            f"/f/{sid}.xml",
            interval,
            lang,
            format="atom" if rng.random() < 0.15 else "rss",
            pages=kind == "normal" and rng.random() < 0.1,
        )
        per_day = min(10.0, math.exp(rng.gauss(0.0, 0.8)))
        moments = _times(rng, per_day, start - HISTORY, end)
        if kind == "quiet":
            # silent for days, then a burst of news on one day
            burst = start + rng.randint(2, 5) * 86400
            moments = [m for m in moments if m < start] + sorted(
                burst + rng.randint(0, 8 * 3600) for _ in range(rng.randint(2, 6))
            )
        elif kind == "flap":
            first = start + rng.randint(0, 86400)
            while first < end:
                length = rng.randint(1, 6) * 3600
                source.windows.append((first, first + length))
                first += length + rng.randint(4, 30) * 3600
        elif kind == "sticky":
            first = start + rng.randint(1, 3) * 86400 + rng.randint(0, 86400)
            source.windows.append((first, first + 2 * 86400))
        for k, when in enumerate(moments):
            if wires and rng.random() < 0.08:
                # this source carries a wire story published elsewhere a little earlier
                w_when, w_lang, w_title, w_summary = rng.choice(wires[-40:])
                if w_lang == lang and w_when < when:
                    title = w_title if rng.random() < 0.5 else f"{w_title} ({rng.choice(CITIES)})"
                    source.entries.append((when, title, w_summary, f"/a/{sid}/{k}.html"))
                    continue
            title, summary = _news(rng, members, lang)
            if rng.random() < 0.05:
                wires.append((when, lang, title, summary))
            source.entries.append((when, title, summary, f"/a/{sid}/{k}.html"))
        source.entries.sort()
        out.append(source)
    return World(seed, start, end, out)


# ------------------------------------------------------------------ what the server sends


def _http_date(epoch: int) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, UTC), usegmt=True)


def _rss(source: Source, base: str, items: list[tuple[int, str, str, str]]) -> bytes:
    body = "".join(
        f"<item><title>{escape(title)}</title><link>{base}{path}</link>"
        f"<guid isPermaLink='true'>{base}{path}</guid>"
        f"<description>{escape(summary)}</description>"
        f"<pubDate>{_http_date(when)}</pubDate></item>"
        for when, title, summary, path in reversed(items)
    )
    return (
        f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>Source {source.id}</title><link>{base}/</link><language>{source.lang}</language>"
        f"{body}</channel></rss>"
    ).encode()


def _atom(source: Source, base: str, items: list[tuple[int, str, str, str]]) -> bytes:
    updated = datetime.fromtimestamp(items[-1][0] if items else 0, UTC).isoformat()
    body = "".join(
        f"<entry><title>{escape(title)}</title><link href='{base}{path}'/>"
        f"<id>{base}{path}</id><summary>{escape(summary)}</summary>"
        f"<updated>{datetime.fromtimestamp(when, UTC).isoformat()}</updated></entry>"
        for when, title, summary, path in reversed(items)
    )
    return (
        f"<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom' "
        f"xml:lang='{source.lang}'><title>Source {source.id}</title><id>{base}/</id>"
        f"<updated>{updated}</updated>{body}</feed>"
    ).encode()


def _page(source: Source, entry: tuple[int, str, str, str], members: list[str]) -> bytes:
    when, title, summary, path = entry
    rng = random.Random(path)
    lang = source.lang
    paragraphs = [summary] + [
        _fill(rng.choice(FR_SUMMARY if lang == "fr" else EN_SUMMARY), rng, "", lang)
        for _ in range(4)
    ]
    # the body names one more member than the headline, as articles often do
    other = members[rng.randrange(len(members))] if members else ""
    paragraphs.insert(2, f"{other} " + ("salue l'annonce." if lang == "fr" else "welcomed it."))
    text = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title>"
        f"<meta property='article:published_time' "
        f"content='{datetime.fromtimestamp(when, UTC).isoformat()}'></head><body>"
        f"<nav><a href='/'>Accueil</a></nav><article><h1>{escape(title)}</h1>{text}</article>"
        f"<footer>Tous droits réservés</footer></body></html>"
    ).encode()


class Web:
    def __init__(self, world: World, members: list[str], port: int) -> None:
        self.world = world
        self.members = members
        self.port = port
        self.now = world.start
        self.calm = False
        self.by_path = {s.path: s for s in world.sources if s.kind != "hostile"}
        self.moments = {s.id: [e[0] for e in s.entries] for s in world.sources}
        self.pages = {e[3]: (s, e) for s in world.sources for e in s.entries}
        self.stats: dict[str, Any] = {"requests": 0, "statuses": {}, "kills": []}
        self.armed: dict[str, Any] | None = None
        self._cache: dict[tuple[str, int, int], tuple[bytes, str]] = {}

    def _count(self, status: int) -> None:
        codes = self.stats["statuses"]
        codes[str(status)] = codes.get(str(status), 0) + 1

    def _maybe_kill(self, path: str) -> None:
        armed = self.armed
        if armed is None or not path.startswith(armed["prefix"]):
            return
        armed["seen"] += 1
        if armed["seen"] >= armed["after"]:
            self.armed = None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(armed["pgid"], signal.SIGKILL)
            self.stats["kills"].append({"path": path, "at": self.now, "pid": armed["pgid"]})

    def control(self, request: web.Request) -> web.Response:
        what = request.path.removeprefix("/_soak/")
        query = request.query
        if what == "time":
            self.now = int(query["t"])
        elif what == "calm":
            self.calm = query.get("on") == "1"
        elif what == "arm":
            self.armed = {
                "pgid": int(query["pgid"]),
                "after": int(query.get("after", "1")),
                "prefix": query.get("prefix", "/"),
                "seen": 0,
            }
        elif what == "disarm":
            self.armed = None
        return web.json_response(self.stats)

    def feed(self, source: Source, request: web.Request) -> web.Response:
        now = self.now
        if not self.calm and any(a <= now < b for a, b in source.windows):
            if source.kind == "flap":
                self._count(500)
                return web.Response(status=500, text="upstream error")
            if source.kind == "sticky" and (
                "If-None-Match" in request.headers or "If-Modified-Since" in request.headers
            ):
                self._count(304)
                return web.Response(status=304)
        moments = self.moments[source.id]
        hi = bisect_right(moments, now)
        lo = max(bisect_right(moments, now - WINDOW), hi - MAX_ITEMS)
        key = (source.id, lo, hi)
        cached = self._cache.get(key)
        if cached is None:
            base = f"http://{source.host}:{self.port}"
            items = source.entries[lo:hi]
            body = (_atom if source.format == "atom" else _rss)(source, base, items)
            cached = (body, f'"{source.id}-{lo}-{hi}"')
            self._cache[key] = cached
        body, etag = cached
        modified = _http_date(moments[hi - 1] if hi else self.world.start - HISTORY)
        headers = {"ETag": etag, "Last-Modified": modified}
        if request.headers.get("If-None-Match") == etag:
            self._count(304)
            return web.Response(status=304, headers=headers)
        content_type = "application/atom+xml" if source.format == "atom" else "application/rss+xml"
        if source.kind == "wrongtype":
            content_type = ["text/html; charset=utf-8", "text/plain", "application/octet-stream"][
                int(source.id[1:]) % 3
            ]
        self._count(200)
        return web.Response(body=body, headers={**headers, "Content-Type": content_type})

    def page(self, request: web.Request) -> web.Response:
        found = self.pages.get(request.path)  # /a/<source>/<n>.html
        if found is None:
            self._count(404)
            return web.Response(status=404, text="not found")
        source, entry = found
        if entry[0] > self.now:
            self._count(404)
            return web.Response(status=404, text="not published yet")
        self._count(200)
        return web.Response(
            body=_page(source, entry, self.members), content_type="text/html", charset="utf-8"
        )

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        if path.startswith("/_soak/"):
            return self.control(request)
        self.stats["requests"] += 1
        self._maybe_kill(path)
        source = self.by_path.get(path)
        if source is not None:
            return self.feed(source, request)
        if path.startswith("/a/"):
            return self.page(request)
        self._count(404)
        return web.Response(status=404, text="not found")


async def serve(world: World, members: list[str], port: int) -> None:
    site = Web(world, members, port)
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", site.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for n in range(1 + SITES):
        address = "127.0.0.1" if n == 0 else f"127.0.0.{n + 1}"
        await web.TCPSite(runner, address, port, backlog=1024, reuse_address=True).start()
    print(f"ready {port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("world", type=Path)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    data = json.loads(args.world.read_text(encoding="utf-8"))
    world = World.from_json(data["world"])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(world, data["members"], args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
