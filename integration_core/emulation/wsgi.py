"""The HTTP half of an emulator: a real server on 127.0.0.1 (the standard library's WSGI server with a
thread per request) that can also break a connection on purpose, so clients meet the lost and dropped
answers of :mod:`.faults` as real sockets show them; and the small request/response types the emulators'
handlers share (money as JSON numbers, as the accounting APIs write it)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from socketserver import ThreadingMixIn
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server

from ..config import Config
from ..webhooks import callback_url

MAX_BODY = 5 * 1024 * 1024
SOCKET_KEY = "emulator.socket"
LOST_KEY = "emulator.lost"
REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 302: "Found", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent  # 'n', 'N' or 'F' for NaN and infinity
        whole = isinstance(exponent, int) and exponent >= 0 and value == value.to_integral_value()
        return int(value) if whole else float(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(payload: Any) -> bytes:
    """Compact JSON with Decimal money rendered as JSON numbers."""
    return json.dumps(payload, default=_json_default, ensure_ascii=False, separators=(",", ":")).encode()


def jsonable(payload: Any) -> Any:
    """The same value after a round trip through the wire format (Decimals become numbers)."""
    return json.loads(dumps(payload))


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lowercase names
    body: bytes
    environ: dict[str, Any] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def form(self) -> dict[str, str]:
        if self.content_type == "application/x-www-form-urlencoded":
            return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))
        return {}


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    lost: bool = False  # close the socket instead of answering normally
    partial: bool = True  # when lost: send the head and half the body first

    @classmethod
    def json(cls, status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Self:
        return cls(status, dumps(payload), [("Content-Type", "application/json;charset=UTF-8"), *(headers or [])])

    def status_line(self) -> str:
        return f"{self.status} {REASONS.get(self.status, 'Unknown')}"


RequestT = TypeVar("RequestT", bound=Request)


def read_request(environ: dict[str, Any], too_large: Callable[[], Exception],
                 request_class: type[RequestT] = Request) -> RequestT:  # type: ignore[assignment]
    """The WSGI request as a ``request_class``; a body over :data:`MAX_BODY` raises ``too_large()``, the
    service's own 413 error."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        raise too_large()
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    return request_class(environ["REQUEST_METHOD"].upper(), environ.get("PATH_INFO", "/") or "/", query, headers,
                         body, environ)


def send(environ: dict[str, Any], start_response: Any, response: Response) -> Iterable[bytes]:
    """Answer ``response`` (or, when it is ``lost``, break the connection as the fault asks)."""
    if response.lost:
        _break_connection(environ, response)
        start_response(response.status_line(), [])
        return []
    start_response(response.status_line(), [*response.headers, ("Content-Length", str(len(response.body)))])
    return [response.body]


def _break_connection(environ: dict[str, Any], response: Response) -> None:
    """Send the head and half the body (or nothing), then close: the client sees a broken answer."""
    sock: socket.socket | None = environ.get(SOCKET_KEY)
    environ[LOST_KEY] = True
    if sock is None:
        return
    head = [f"HTTP/1.1 {response.status_line()}", f"Content-Length: {len(response.body)}"]
    head += [f"{k}: {v}" for k, v in response.headers]
    try:
        if response.partial:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + response.body[: len(response.body) // 2])
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class _ServerHandler(ServerHandler):
    """Skips writing when the app already broke the connection on purpose (lost-response fault)."""

    def finish_response(self) -> None:
        if self.environ.get(LOST_KEY):  # type: ignore[attr-defined]
            self.close()
            return
        super().finish_response()


class _RequestHandler(WSGIRequestHandler):
    """Exposes the client socket to the app and keeps the test output quiet."""

    verbose = False

    def get_environ(self) -> dict[str, Any]:
        env = super().get_environ()
        env[SOCKET_KEY] = self.connection
        return env

    def log_message(self, format: str, *args: Any) -> None:
        if self.verbose:
            super().log_message(format, *args)

    def handle(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _ServerHandler(self.rfile, self.wfile, self.get_stderr(), self.get_environ(),  # type: ignore[arg-type]
                                 multithread=True)
        handler.request_handler = self  # type: ignore[attr-defined]
        try:
            handler.run(self.server.get_app())  # type: ignore[attr-defined]
        except OSError:
            pass


class LoopbackEmulator:
    """The lifecycle of an emulator: ``start()`` a server thread on a loopback port, ``stop()``, use it as a
    context manager, or block in ``serve_forever_started()`` (the CLI). Subclasses set ``thread_name`` and
    implement ``wsgi``; ``verbose`` logs every request."""

    thread_name = "emulator"
    verbose = False

    _server: _ThreadingWSGIServer | None = None
    _thread: threading.Thread | None = None
    _base_url = ""

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise NotImplementedError

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Listen on ``host:port`` (0: any free port) in a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        handler = type("_Handler", (_RequestHandler,), {"verbose": self.verbose})
        server = make_server(host, port, self.wsgi, server_class=_ThreadingWSGIServer, handler_class=handler)
        self._server = server
        self._base_url = f"http://{host}:{server.server_port}"
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=self.thread_name,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def serve_forever(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start and block in the calling thread (CLI use); Ctrl-C stops it."""
        self.start(host, port)
        self.serve_forever_started()

    def serve_forever_started(self) -> None:
        """Block until Ctrl-C or ``stop()`` from another thread, for an already started emulator."""
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Self:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if not self._base_url:
            raise RuntimeError("emulator not started")
        return self._base_url


EmulatorT = TypeVar("EmulatorT", bound=LoopbackEmulator)


@contextmanager
def emulator_factory(cls: type[EmulatorT]) -> Iterator[Callable[..., EmulatorT]]:
    """``make(**kwargs)`` builds and starts ``cls(**kwargs)``; every one made is stopped on exit (the body of
    an emulator's pytest factory fixture)."""
    started: list[EmulatorT] = []

    def make(**kwargs: Any) -> EmulatorT:
        emu = cls(**kwargs)
        emu.start()
        started.append(emu)
        return emu

    try:
        yield make
    finally:
        for emu in started:
            emu.stop()


def default_redirect_uri() -> str:
    """Where ``integration-core serve`` receives the OAuth callback, ``<IC_PUBLIC_URL>/v1/oauth/callback``: the
    redirect URI an emulator's demo app registers."""
    try:
        return callback_url(Config.from_env().public_url)
    except Exception:  # a malformed IC_* variable: the documented default public URL
        return callback_url(Config().public_url)
