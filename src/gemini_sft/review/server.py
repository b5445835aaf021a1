"""The review web server: the page, the next pair to rate, saving a rating, CSV export.

It listens on 127.0.0.1 by default. On any other address it requires a token
(sent as ``?token=`` or the ``X-Review-Token`` header), since the ratings
decide what goes to production. On loopback it only answers requests whose
Host header names the loopback address (a web page elsewhere cannot reach it
through a DNS name pointing at 127.0.0.1).

Routes: ``GET /`` (the page), ``GET /api/state`` (progress, the next pair,
the win rate), ``POST /api/rate`` (``{"example_id", "choice", "note"}``;
saved durably before the answer), ``GET /export.csv``.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gemini_sft.errors import ConfigError
from gemini_sft.review.items import ReviewItem, find_predictions, load_items
from gemini_sft.review.page import render_page
from gemini_sft.review.ratings import (
    CHOICES,
    TIE_POLICY,
    Rating,
    RatingsFile,
    latest_by_example,
    ratings_csv,
    ratings_path_for,
    summarize,
)
from gemini_sft.vertex_client import is_loopback_endpoint

log = logging.getLogger(__name__)

MAX_NOTE_CHARS = 4000
MAX_BODY_BYTES = 64 * 1024
TOKEN_HEADER = "X-Review-Token"


class ReviewSession:
    """The pairs of one evaluation and their ratings file; thread-safe."""

    def __init__(self, predictions: Path, ratings_path: Path | None = None) -> None:
        self.predictions = predictions
        self.items, self.left_out = load_items(predictions)
        self.by_id: dict[str, ReviewItem] = {item.example_id: item for item in self.items}
        self.ratings = RatingsFile(ratings_path or ratings_path_for(predictions))
        self._lock = threading.Lock()

    @classmethod
    def open(cls, location: str | Path, ratings_path: Path | None = None) -> "ReviewSession":
        """The session of a run folder, evaluation folder or predictions file (see ``items.find_predictions``)."""
        return cls(find_predictions(location), ratings_path)

    def state(self) -> dict[str, Any]:
        """Progress, the first prompt without a rating (None when all are rated) and the summary."""
        ratings = self.ratings.read()
        rated = latest_by_example(ratings)
        pending = next((item for item in self.items if item.example_id not in rated), None)
        summary = summarize(r for r in ratings if r.example_id in self.by_id)
        return {
            "total": len(self.items),
            "done": sum(1 for item in self.items if item.example_id in rated),
            "left_out": self.left_out,
            "item": None if pending is None else {
                "example_id": pending.example_id,
                "prompt": pending.prompt,
                "answers": list(pending.shown_answers()),
            },
            "summary": summary.to_dict(),
            "tie_policy": TIE_POLICY,
            "ratings_file": str(self.ratings.path),
        }

    def rate(self, example_id: str, choice: str, note: str = "") -> Rating:
        """Save one rating (durably); ValueError for an unknown prompt or choice, or a note too long."""
        item = self.by_id.get(example_id)
        if item is None:
            raise ValueError("unknown example_id")
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {', '.join(CHOICES)}")
        if len(note) > MAX_NOTE_CHARS:
            raise ValueError(f"the note is longer than {MAX_NOTE_CHARS} characters")
        rating = Rating.make(example_id, choice, item.shown, note.strip())
        with self._lock:
            self.ratings.append(rating)
        return rating

    def csv(self) -> str:
        return ratings_csv(self.ratings.read(), self.by_id)


@dataclass
class ReviewServer:
    """Serves a :class:`ReviewSession` over HTTP in a background thread.

    Args:
        session: the pairs and ratings.
        host: address to listen on; anything but loopback requires ``token``.
        port: 0 picks a free port.
        token: required on every request when set (made here for a non-loopback host when empty).
    """

    session: ReviewSession
    host: str = "127.0.0.1"
    port: int = 0
    token: str = ""

    def __post_init__(self) -> None:
        self.loopback = is_loopback_endpoint(f"http://{self.host}")
        if not self.loopback and not self.token:
            self.token = secrets.token_urlsafe(18)
        try:
            self._server = _Server((self.host, self.port), _Handler, self)
        except OSError as exc:
            raise ConfigError(f"Cannot listen on {self.host}:{self.port} ({exc}); choose another --port.") from exc
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address (with the token when one is required)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def start(self) -> "ReviewServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="review-server", daemon=True)
        self._thread.start()
        log.info("review server listening on %s:%d", self.host, self.port)
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def allowed(self, headers: Any, query: dict[str, str]) -> tuple[bool, str]:
        """Whether a request may be answered: token when required, loopback Host header on loopback."""
        if self.token:
            given = headers.get(TOKEN_HEADER) or query.get("token", "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return False, "a valid token is required (open the address the review command printed)"
        if self.loopback:
            host = (headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            if host not in ("127.0.0.1", "localhost", "::1", self.host):
                return False, "requests must be addressed to the loopback address"
        return True, ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], review: ReviewServer) -> None:
        self.review = review
        if ":" in address[0]:
            import socket

            self.address_family = socket.AF_INET6
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "gemini-sft-review"
    sys_version = ""

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _route(self, method: str) -> None:
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query))
        review = self.server.review
        ok, why = review.allowed(self.headers, query)
        if not ok:
            self._json(403, {"error": why})
            return
        session = review.session
        if method == "GET" and split.path == "/":
            nonce = secrets.token_urlsafe(16)
            policy = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                      "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
            self._send(200, render_page(nonce).encode("utf-8"), "text/html; charset=utf-8",
                       {"Content-Security-Policy": policy})
        elif method == "GET" and split.path == "/api/state":
            self._json(200, session.state())
        elif method == "POST" and split.path == "/api/rate":
            self._rate(session)
        elif method == "GET" and split.path == "/export.csv":
            self._send(200, session.csv().encode("utf-8"), "text/csv; charset=utf-8",
                       {"Content-Disposition": 'attachment; filename="human_ratings.csv"'})
        else:
            self._json(404, {"error": "not found"})

    def _rate(self, session: ReviewSession) -> None:
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            self._json(415, {"error": "send JSON"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY_BYTES:
            self._json(413 if length > 0 else 400, {"error": "body missing or too large"})
            return
        try:
            body = json.loads(self.rfile.read(length))
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            session.rate(str(body.get("example_id", "")), str(body.get("choice", "")), str(body.get("note", "")))
        except ValueError as exc:
            self._json(400, {"error": str(exc)})
            return
        except OSError as exc:
            log.error("rating not saved: %s", exc)
            self._json(500, {"error": "the rating could not be saved"})
            return
        self._json(200, session.state())

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        log.debug("review http: " + format, *args)
