"""A small HTTP server on 127.0.0.1 for the zoo tests: checkpoints and a Hub that 404s.

It serves ``files`` (name -> bytes) under ``/files/NAME`` with HTTP Range support, can cut
the next response of a file short (``cut[name] = n``: announce the full length, send ``n``
bytes, close), answers every other path like the Hub answers a repo that does not exist
(404 with ``X-Error-Code: RepoNotFound``), and records each request. It binds to
127.0.0.1 only and shuts itself down after ``lifetime`` seconds at the latest.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ZooServer:
    def __init__(self, lifetime: float = 300.0):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body: bool):
                owner.requests.append((self.command, self.path, self.headers.get("Range")))
                name = self.path[len("/files/") :] if self.path.startswith("/files/") else None
                if name is None or name not in owner.files:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "RepoNotFound")
                    self.send_header("X-Error-Message", "Repository not found")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = owner.files[name]
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match:
                    start = int(match.group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if not body:
                    return
                cut = owner.cut.pop(name, None)
                self.wfile.write(data[start:] if cut is None else data[start : start + cut])
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    def __enter__(self) -> ZooServer:
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    def file_requests(self) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[1].startswith("/files/")]
