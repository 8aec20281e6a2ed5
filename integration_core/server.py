"""``integration-core serve``: the embedded default worker, one process.

A threaded stdlib WSGI server runs the dispatcher (webhooks, OAuth callback, health) and, next to it,
the outbound scheduler pushes the outbox. For more throughput, run the same app under gunicorn
(``integration_core.webhooks:gunicorn_app``) and schedulers in as many processes as you like on
PostgreSQL; this module is only the batteries-included way to run both in one.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from .console import ConsoleApp, mount
from .hub import Hub
from .scheduler import Worker, start_scheduler
from .webhooks import create_app

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 30.0
_MAX_CHUNK_LINE = 1024


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class _ChunkedReader:
    """Decodes a ``Transfer-Encoding: chunked`` body lazily, so the app can cap it while reading."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.left = 0
        self.done = False

    def _next_chunk(self) -> None:
        line = self.raw.readline(_MAX_CHUNK_LINE)
        size_text = line.split(b";", 1)[0].strip()
        try:
            self.left = int(size_text, 16)
        except ValueError:
            self.done = True
            raise ValueError("malformed chunked body") from None
        if self.left == 0:
            self.done = True
            while True:  # trailers, up to the empty line
                trailer = self.raw.readline(_MAX_CHUNK_LINE)
                if trailer in (b"\r\n", b"\n", b""):
                    break

    def read(self, size: int = -1) -> bytes:
        out: list[bytes] = []
        want = size if size is not None and size >= 0 else 1 << 62
        while want > 0 and not self.done:
            if self.left == 0:
                self._next_chunk()
                if self.done:
                    break
            piece = self.raw.read(min(want, self.left))
            if not piece:
                self.done = True
                break
            out.append(piece)
            self.left -= len(piece)
            want -= len(piece)
            if self.left == 0:
                self.raw.readline(_MAX_CHUNK_LINE)  # CRLF after the chunk data
        return b"".join(out)


class _Handler(WSGIRequestHandler):
    """Access log without query strings (the OAuth callback carries a code), chunked bodies, timeouts."""

    timeout = REQUEST_TIMEOUT_SECONDS

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # ``path`` is not set yet when the request line itself is malformed (the 400 for it is logged here too).
        path = str(getattr(self, "path", "")).split("?", 1)[0]
        log.info("%s %s %s", self.command, path[:200], code)

    def handle(self) -> None:
        """As wsgiref's, plus chunked request bodies (marked ``wsgi.input_terminated``)."""
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.requestline = ""
                self.request_version = ""
                self.command = ""
                self.send_error(414)
                return
            if not self.parse_request():
                return
            environ = self.get_environ()
            stdin: Any = self.rfile
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower() and not environ.get(
                "CONTENT_LENGTH"
            ):
                stdin = _ChunkedReader(self.rfile)  # ServerHandler puts its stdin in wsgi.input
                environ["wsgi.input_terminated"] = True
            handler = ServerHandler(
                stdin, self.wfile, self.get_stderr(), environ, multithread=True  # type: ignore[arg-type]
            )
            handler.request_handler = self  # type: ignore[attr-defined]
            handler.run(self.server.get_app())  # type: ignore[attr-defined]
        except (TimeoutError, ConnectionError, ValueError):
            self.close_connection = True


class RunningServer:
    """A started server; ``url`` is its base URL, ``stop()`` shuts it (and its scheduler) down."""

    def __init__(self, httpd: _ThreadingWSGIServer, thread: threading.Thread, scheduler: Worker | None) -> None:
        self.httpd = httpd
        self.thread = thread
        self.scheduler = scheduler

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.httpd.server_address[0]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def start(
    hub: Hub, host: str = "127.0.0.1", port: int = 0, *, scheduler: bool = True, console: bool = True
) -> RunningServer:
    """Start the WSGI server (and the outbound scheduler) in background threads; the operator console
    is under ``/console`` unless ``console=False``."""
    httpd = _ThreadingWSGIServer((host, port), _Handler, bind_and_activate=True)
    app = create_app(hub)
    if console:
        app = mount(app, ConsoleApp(hub))
    httpd.set_app(app)
    thread = threading.Thread(target=httpd.serve_forever, name="integration-core-http", daemon=True)
    thread.start()
    sched = start_scheduler(hub) if scheduler else None
    return RunningServer(httpd, thread, sched)


def serve(
    hub: Hub, host: str = "127.0.0.1", port: int = 8080, *, scheduler: bool = True, console: bool = True
) -> None:
    """Run until SIGINT/SIGTERM: webhooks, OAuth callback, health and the console on ``host:port``, plus
    the scheduler."""
    running = start(hub, host, port, scheduler=scheduler, console=console)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _on_signal)
    log.warning("integration-core serving on %s (scheduler %s)", running.url, "on" if running.scheduler else "off")
    try:
        stop.wait()
    finally:
        running.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def running(
    hub: Hub, host: str = "127.0.0.1", port: int = 0, *, scheduler: bool = False, console: bool = True
) -> Iterator[RunningServer]:
    """``with running(hub) as srv: requests.post(srv.url + ...)`` (tests and the demo)."""
    srv = start(hub, host, port, scheduler=scheduler, console=console)
    try:
        yield srv
    finally:
        srv.stop()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
