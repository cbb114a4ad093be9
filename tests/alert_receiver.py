"""A webhook receiver on 127.0.0.1 for alert tests, the demo and the crash trials.

    with AlertReceiver() as hook:
        env = {"VEILLE_ALERTS_COMMS": hook.apprise_url("comms")}   # json://127.0.0.1:port/comms
        hook.status = 500            # answer every post with 500 (until set back to 200)
        hook.delay = 0.5             # wait before answering (a slow destination)
        hook.on_post = fn            # called with each post as it arrives, before the answer
        ... hook.posts               # what arrived: path, headers and the parsed JSON body

Apprise's ``json://host:port/path`` posts ``{"version", "title", "message", "type"}``;
Mattermost's ``mmost://host:port/token`` posts ``{"text", ...}`` to ``/hooks/token``: both
land here, whatever the path, and are kept as they came. A threaded stdlib server: each
post is answered on its own thread, so a slow answer never holds the others.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int  # what the receiver answered

    @property
    def text(self) -> str:
        """The message as a person reads it (json:// title and message, or Mattermost's text)."""
        if "message" in self.body:
            return f"{self.body.get('title', '')}\n{self.body['message']}"
        return str(self.body.get("text", ""))


class AlertReceiver:
    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.status = 200
        self.delay = 0.0
        self.log: Any = None  # a callable given each accepted post (the demo prints them)
        self.on_post: Any = None  # a callable given each post before it is answered
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(min(length, 1_000_000))
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.status
                try:
                    body = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    body = {"raw": raw.decode("utf-8", "replace")}
                post = Post(
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body if isinstance(body, dict) else {"raw": body},
                    status=status,
                )
                with receiver._lock:
                    receiver.posts.append(post)
                if receiver.on_post:
                    receiver.on_post(post)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except (BrokenPipeError, ConnectionResetError):
                    return  # the sender was killed while waiting: the post still arrived
                if status < 400 and receiver.log:
                    receiver.log(post)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def apprise_url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    @property
    def accepted(self) -> list[Post]:
        """The posts answered with a success status (what a channel would show)."""
        with self._lock:
            return [p for p in self.posts if p.status < 400]

    def __enter__(self) -> AlertReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
