"""A recording HTTP pass-through between the router and a real server: what was asked, what came back.

``RecordingProxy(upstream)`` listens on 127.0.0.1 and a free port and forwards every request
byte for byte to ``upstream`` (a base URL such as ``http://127.0.0.1:8123``), returning the
upstream's status, headers and body unchanged. It answers nothing itself: it only keeps each
exchange (:class:`Exchange`) so a test can compare what the server reported (``usage``,
``finish_reason``, error bodies) with what the platform recorded.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "accept-encoding"}


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


@dataclass
class Exchange:
    method: str
    path: str
    request_raw: bytes
    status: int  # 0: no HTTP answer (connection refused or reset, timeout)
    response_raw: bytes

    @property
    def request(self) -> Any:
        return _json(self.request_raw)

    @property
    def response(self) -> Any:
        return _json(self.response_raw)

    @property
    def model(self) -> str | None:
        """The model id the client asked for."""
        return (self.request or {}).get("model") if isinstance(self.request, dict) else None

    @property
    def usage(self) -> tuple[int, int] | None:
        """(prompt_tokens, completion_tokens) the server reported, None without a usage block."""
        body = self.response
        usage = body.get("usage") if isinstance(body, dict) else None
        if not isinstance(usage, dict):
            return None
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)

    @property
    def content(self) -> str | None:
        body = self.response
        choices = body.get("choices") if isinstance(body, dict) else None
        return ((choices[0].get("message") or {}).get("content")) if choices else None

    @property
    def finish_reason(self) -> str | None:
        body = self.response
        choices = body.get("choices") if isinstance(body, dict) else None
        return choices[0].get("finish_reason") if choices else None

    def summary(self, chars: int = 1500) -> str:
        """One exchange, readable in a failure message (the request's messages elided)."""
        req = dict(self.request) if isinstance(self.request, dict) else {"raw": self.request_raw[:200].decode("utf-8", "replace")}
        if "messages" in req:
            req["messages"] = f"<{len(req['messages'])} messages>"
        return (f"{self.method} {self.path} -> {self.status}\nrequest: {json.dumps(req)[:chars]}\n"
                f"response: {self.response_raw[:chars].decode('utf-8', 'replace')}")


class RecordingProxy:
    def __init__(self, upstream: str, timeout_s: float = 120.0):
        self.upstream = upstream.rstrip("/")
        self.timeout_s = timeout_s
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The proxy's ``/v1`` base URL."""
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def chat(self) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if e.path.endswith("/chat/completions")]

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # the test reads the exchanges, not stderr
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                req = urllib.request.Request(proxy.upstream + self.path, data=body or None, headers=headers,
                                             method=self.command)
                try:
                    with urllib.request.urlopen(req, timeout=proxy.timeout_s) as resp:
                        status, out_headers, raw = resp.status, resp.headers.items(), resp.read()
                except urllib.error.HTTPError as err:
                    status, out_headers, raw = err.code, err.headers.items(), err.read()
                except OSError as err:  # the server is gone or hung: the client sees a dropped connection, as without us
                    with proxy._lock:
                        proxy.exchanges.append(Exchange(self.command, self.path, body, 0, repr(err).encode()))
                    self.close_connection = True
                    return
                with proxy._lock:
                    proxy.exchanges.append(Exchange(self.command, self.path, body, status, raw))
                self.send_response(status)
                for key, value in out_headers:
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _forward

        return Handler

    def __enter__(self) -> "RecordingProxy":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="recording-proxy", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
