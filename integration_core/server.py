"""``integration-core serve``: the embedded default worker, one process.

waitress (a production WSGI server, pure Python) runs the dispatcher (webhooks, OAuth callback, health)
and the console and, next to it, the outbound scheduler pushes the outbox. For more throughput, run the
same app under gunicorn (``integration_core.webhooks:gunicorn_app``) and schedulers in as many processes as you like on
PostgreSQL; this module is only the batteries-included way to run both in one.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import create_server

from .console import ConsoleApp, mount
from .hub import Hub
from .metrics import with_metrics
from .scheduler import Worker, start_scheduler
from .webhooks import create_app

log = logging.getLogger(__name__)

NO_HOST_WARNING = (
    "WARNING: no host application (--host-app or IC_HOST): webhooks are accepted but every payment, void and "
    "customer event fails (503, stored failed) until one is configured; see docs/host-hooks.md"
)

REQUEST_TIMEOUT_SECONDS = 30.0
THREADS = 8


_TRUNCATED_BODY = b'{"error": "body shorter than content-length"}'
_TRUNCATED = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(_TRUNCATED_BODY)).encode() + b"\r\n\r\n" + _TRUNCATED_BODY
)


class _Parser(HTTPRequestParser):
    def parse_header(self, header_plus: bytes) -> None:
        try:
            super().parse_header(header_plus)
        except ValueError:  # a Content-Length of over 4300 digits: Python's int() refuses it
            raise ParsingError("Content-Length is invalid") from None


class _Channel(HTTPChannel):
    """waitress's channel, plus an answer to a client that stops before the body it announced: 400, as
    for any malformed request (waitress alone would close without a word). Nothing reaches the app."""

    parser_class = _Parser

    def handle_close(self) -> None:
        request = self.request
        if request is not None and request.headers_finished and not request.completed and self.socket is not None:
            try:
                self.socket.send(_TRUNCATED)
            except OSError:
                pass
        super().handle_close()


class RunningServer:
    """A started server; ``url`` is its base URL, ``stop()`` shuts it (and its scheduler) down."""

    def __init__(self, httpd: Any, thread: threading.Thread, scheduler: Worker | None) -> None:
        self.httpd = httpd
        self.thread = thread
        self.scheduler = scheduler

    @property
    def port(self) -> int:
        return int(self.httpd.effective_port)

    @property
    def url(self) -> str:
        host = str(self.httpd.effective_host)
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        httpd = self.httpd
        httpd.task_dispatcher.shutdown()
        httpd.close()
        for channel in list(httpd._map.values()):  # open client connections: the loop ends with the last
            channel.close()
        self.thread.join(timeout=10)


def start(
    hub: Hub, host: str = "127.0.0.1", port: int = 0, *, scheduler: bool = True, console: bool = True
) -> RunningServer:
    """Start the WSGI server (and the outbound scheduler) in background threads; the operator console
    is under ``/console`` unless ``console=False``."""
    app = create_app(hub)
    if console:
        app = mount(app, ConsoleApp(hub))
    app = with_metrics(app, hub)
    # waitress parses HTTP (chunked bodies, Content-Length) and hands the app only complete requests: a body
    # cut short never reaches the dispatcher, and a malformed or repeated Content-Length is its 400.
    httpd = create_server(
        app,
        host=host,
        port=port,
        threads=THREADS,
        channel_timeout=int(REQUEST_TIMEOUT_SECONDS),
        max_request_body_size=max(int(hub.config.max_webhook_bytes), 1 << 20) * 4,
        ident="integration-core",
        clear_untrusted_proxy_headers=True,
        expose_tracebacks=False,
    )
    httpd.channel_class = _Channel
    thread = threading.Thread(target=_run, args=(httpd,), name="integration-core-http", daemon=True)
    thread.start()
    sched = start_scheduler(hub) if scheduler else None
    return RunningServer(httpd, thread, sched)


def serve(
    hub: Hub, host: str = "127.0.0.1", port: int = 8080, *, scheduler: bool = True, console: bool = True
) -> None:
    """Run until SIGINT/SIGTERM: webhooks, OAuth callback, health and the console on ``host:port``, plus
    the scheduler."""
    if not hub.plugins.has_host_hook("record_payment"):
        log.warning("%s", NO_HOST_WARNING)
    running = start(hub, host, port, scheduler=scheduler, console=console)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _on_signal)
    log.warning("integration-core serving on %s (scheduler %s)", running.url, "on" if running.scheduler else "off")
    worker = running.scheduler
    try:
        while not stop.wait(0.5):
            if worker is not None and worker.fatal is not None:
                break  # the database file changed under us: stop serving (the CLI prints why)
    finally:
        running.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if worker is not None and worker.fatal is not None:
        raise worker.fatal


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


def _run(httpd: Any) -> None:
    try:
        httpd.run()
    except (OSError, ValueError):  # the sockets were closed by stop()
        pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
