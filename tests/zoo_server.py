"""A small HTTP server on 127.0.0.1 for the zoo tests: checkpoints and a Hub that 404s.

It serves ``files`` (name -> bytes) under ``/files/NAME`` with HTTP Range support, can cut
the next response of a file short (``cut[name] = n``: announce the full length, send ``n``
bytes, close), answers every other path like the Hub answers a repo that does not exist
(404 with ``X-Error-Code: RepoNotFound``), and records each request. It binds to
127.0.0.1 only and shuts itself down after ``lifetime`` seconds at the latest.

Hostile answers, for the download bounds (each path ends in the file name it stands for,
``NAME``, a key of ``files`` where it serves one):

- ``/endless/NAME``: a chunked body of zeros without end (stops after ``endless_cap``
  bytes, so that a client without a bound still ends);
- ``/huge/NAME``: announces ``Content-Length: 10**10``, then zeros (as ``/endless/``);
- ``/drip/SECONDS/COUNT/NAME``: the file's first COUNT bytes one every SECONDS, then the
  rest (a resume at once);
- ``/delay/SECONDS/NAME``: the file after SECONDS;
- ``/cut/COUNT/NAME``: the file's full length announced, COUNT bytes sent, then closed;
- ``/redirect/N/NAME``: N redirects, then ``/files/NAME``;
- ``/loop/NAME``: a redirect to itself;
- ``/to/URL/NAME``: a redirect to URL (percent-encoded), e.g. ``file:///dev/zero``;
- ``/status/CODE/NAME``: that status, empty body (no Location for a 3xx);
- ``/416/NAME``: 416 to every request; ``/416-on-resume/NAME``: 416 to every Range request.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

CHUNK = 64 << 10


class _QuietServer(ThreadingHTTPServer):
    """Keeps a handler's error (a client hanging up on a hostile route) in ``errors``
    instead of printing it: the server thread shares the process's stderr with the code
    under test, which may be capturing it at that moment."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.errors: list[str] = []

    def handle_error(self, request, client_address):
        import sys

        self.errors.append(repr(sys.exc_info()[1]))


class ZooServer:
    def __init__(self, lifetime: float = 300.0, endless_cap: int = 64 << 20):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range)
        self.endless_cap = endless_cap
        self.stopping = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def end_headers(self):
                self.send_header("Connection", "close")  # one request per connection
                super().end_headers()

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body: bool):
                owner.requests.append((self.command, self.path, self.headers.get("Range")))
                self.close_connection = True
                parts = self.path.lstrip("/").split("/")
                route = getattr(self, "_r" + parts[0].replace("-", "_"), None)
                if route is not None and len(parts) > 1:
                    try:
                        return route(parts[1:], body)
                    except ConnectionError:  # the client hung up (a bound, a deadline)
                        return
                if parts[0] == "files" and len(parts) == 2 and parts[1] in owner.files:
                    return self._file(parts[1], body)
                self.send_response(404)
                self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("X-Error-Message", "Repository not found")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _file(self, name: str, body: bool, drip: tuple[float, int] | None = None):
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
                data = data[start:] if cut is None else data[start : start + cut]
                if drip is not None and not start:  # a resume is served at once
                    seconds, count = drip
                    for index in range(min(count, len(data))):
                        self.wfile.write(data[index : index + 1])
                        self.wfile.flush()
                        if owner.stopping.wait(seconds):
                            return
                    data = data[count:]
                self.wfile.write(data)
                self.wfile.flush()

            def _redirect(self, location: str):
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _zeros(self, chunked: bool):
                sent = 0
                try:
                    while sent < owner.endless_cap and not owner.stopping.is_set():
                        chunk = bytes(CHUNK)
                        if chunked:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        else:
                            self.wfile.write(chunk)
                        sent += len(chunk)
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client hung up: what a bound does
                    pass

            def _rendless(self, parts, body):
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if body:
                    self._zeros(chunked=True)

            def _rhuge(self, parts, body):
                self.send_response(200)
                self.send_header("Content-Length", str(10**10))
                self.end_headers()
                if body:
                    self._zeros(chunked=False)

            def _rdrip(self, parts, body):
                self._file(parts[2], body, drip=(float(parts[0]), int(parts[1])))

            def _rcut(self, parts, body):
                owner.cut[parts[1]] = int(parts[0])
                self._file(parts[1], body)

            def _rdelay(self, parts, body):
                if not owner.stopping.wait(float(parts[0])):
                    self._file(parts[1], body)

            def _rredirect(self, parts, body):
                count = int(parts[0])
                self._redirect(
                    f"/redirect/{count - 1}/{parts[1]}" if count > 1 else f"/files/{parts[1]}"
                )

            def _rloop(self, parts, body):
                self._redirect(self.path)

            def _rto(self, parts, body):
                self._redirect(unquote(parts[0]))

            def _rstatus(self, parts, body):
                self.send_response(int(parts[0]))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _r416(self, parts, body):
                self._rstatus(["416"], body)

            def _r416_on_resume(self, parts, body):
                if self.headers.get("Range"):
                    return self._rstatus(["416"], body)
                self._file(parts[0], body)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
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
        self.stopping.set()
        self._timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    def file_requests(self) -> list[tuple[str, str, str | None]]:
        """The requests for checkpoints (every path but the Hub's)."""
        return [r for r in self.requests if "/resolve/" not in r[1] and "/api/" not in r[1]]
