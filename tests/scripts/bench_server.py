"""The benchmark's web server: an aiohttp server in its own process, on loopback only.

    python -m tests.scripts.bench_server ROOT --port P --sites N --latency 0.05

Serves ``ROOT/site-<n>/<path>`` on 127.0.0.<n+2>:P (one address per site, so that
veille's per-host limits apply per site as they would on the Internet), with an ETag
and a Last-Modified date; conditional requests get 304. Every answer waits
``latency`` seconds first (a distant server), without blocking the others. Bodies are
sent gzipped when the client accepts it (the .gz files beside each file).

    /_tiny          a 4 KB page (fetch-throughput measurements)
    /_stats         {"requests", "bytes", "not_modified", "statuses"} since the last reset
    /_reset         zero the counters

Bytes are counted as sent: status line, headers and body of every answer (the
counters' own requests excluded). The first line on stdout is "ready <port>".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from email.utils import formatdate
from pathlib import Path

from aiohttp import web

from tests.scripts.bench_corpus import etag

LAST_MODIFIED = formatdate(1_790_000_000, usegmt=True)
TINY = (b"<html><body><p>" + b"lorem ipsum dolor sit amet " * 150 + b"</p></body></html>")[:4096]
TYPES = {
    ".xml": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


class Served:
    def __init__(self, body: bytes, gz: bytes | None, kind: str) -> None:
        self.body = body
        self.gz = gz
        self.kind = kind
        self.etag = etag(body)


def load(root: Path) -> dict[tuple[int, str], Served]:
    files: dict[tuple[int, str], Served] = {}
    for site_dir in sorted(root.glob("site-*")):
        site = int(site_dir.name.split("-", 1)[1])
        for path in site_dir.rglob("*"):
            if not path.is_file() or path.suffix == ".gz":
                continue
            gz_path = path.with_name(path.name + ".gz")
            files[(site, path.relative_to(site_dir).as_posix())] = Served(
                path.read_bytes(),
                gz_path.read_bytes() if gz_path.exists() else None,
                TYPES.get(path.suffix, "application/octet-stream"),
            )
    return files


def make_app(files: dict[tuple[int, str], Served], latency: float) -> web.Application:
    stats: dict[str, object] = {}

    def reset() -> None:
        stats.update(requests=0, bytes=0, not_modified=0, statuses={})

    reset()

    def answer(status: int, body: bytes, headers: dict[str, str]) -> web.Response:
        # what goes on the wire: status line, our headers and aiohttp's (Date, Server,
        # Content-Length: about 90 bytes), the blank line, the body
        head = 17 + sum(len(k) + len(v) + 4 for k, v in headers.items()) + 90 + 2
        stats["requests"] = int(stats["requests"]) + 1  # type: ignore[call-overload]
        stats["bytes"] = int(stats["bytes"]) + head + len(body)  # type: ignore[call-overload]
        codes: dict[str, int] = stats["statuses"]  # type: ignore[assignment]
        codes[str(status)] = codes.get(str(status), 0) + 1
        if status == 304:
            stats["not_modified"] = int(stats["not_modified"]) + 1  # type: ignore[call-overload]
        return web.Response(status=status, body=body, headers=headers)

    async def handle(request: web.Request) -> web.Response:
        path = request.path.lstrip("/")
        if path == "_stats":
            return web.json_response(stats)
        if path == "_reset":
            reset()
            return web.json_response({"ok": True})
        if latency:
            await asyncio.sleep(latency)
        if path == "_tiny":
            return answer(200, TINY, {"Content-Type": "text/html; charset=utf-8"})
        host = (request.host or "").rsplit(":", 1)[0]
        try:
            site = int(host.rsplit(".", 1)[1]) - 2
        except (IndexError, ValueError):
            site = -1
        served = files.get((site, path))
        if served is None:
            return answer(404, b"not found", {"Content-Type": "text/plain"})
        validators = {"ETag": served.etag, "Last-Modified": LAST_MODIFIED}
        if request.headers.get("If-None-Match") == served.etag or (
            "If-None-Match" not in request.headers
            and request.headers.get("If-Modified-Since") == LAST_MODIFIED
        ):
            return answer(304, b"", validators)
        headers = {"Content-Type": served.kind, **validators, "Vary": "Accept-Encoding"}
        if served.gz is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return answer(200, served.gz, headers)
        return answer(200, served.body, headers)

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    return app


async def serve(root: Path, port: int, sites: int, latency: float) -> None:
    files = load(root)
    runner = web.AppRunner(make_app(files, latency), access_log=None)
    await runner.setup()
    addresses = ["127.0.0.1"] + [f"127.0.0.{n + 2}" for n in range(sites)]
    for address in addresses:
        await web.TCPSite(runner, address, port, backlog=1024, reuse_address=True).start()
    print(f"ready {port}", flush=True)
    await asyncio.Event().wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.root, args.port, args.sites, args.latency))
    except KeyboardInterrupt:
        sys.exit(0)


class ServerProcess:
    """``with ServerProcess(root, sites=20) as server: server.stats()``."""

    def __init__(self, root: Path, *, port: int, sites: int, latency: float = 0.05) -> None:
        self.root, self.port, self.sites, self.latency = root, port, sites, latency
        self.process: object = None

    def __enter__(self) -> ServerProcess:
        import subprocess

        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.scripts.bench_server",
                str(self.root),
                "--port",
                str(self.port),
                "--sites",
                str(self.sites),
                "--latency",
                str(self.latency),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        line = self.process.stdout.readline()  # type: ignore[attr-defined]
        if not line.startswith("ready"):
            raise RuntimeError(f"bench server did not start: {line!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()  # type: ignore[attr-defined]
        self.process.wait(10)  # type: ignore[attr-defined]

    @property
    def pid(self) -> int:
        return int(self.process.pid)  # type: ignore[attr-defined]

    def _get(self, path: str) -> dict[str, object]:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/{path}", timeout=10) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def stats(self) -> dict[str, object]:
        return self._get("_stats")

    def reset(self) -> None:
        self._get("_reset")


if __name__ == "__main__":
    main()
