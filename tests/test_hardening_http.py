"""``serve`` refuses a body cut short and a repeated Content-Length, storing nothing (issue 12, bug 6).

Raw sockets, so no client library fixes the request on the way. ``serve`` runs on waitress, which hands
the app only complete requests: a body the client cut short never reaches the dispatcher. Under gunicorn,
which streams the body, the dispatcher itself answers 400 when the body ends before its Content-Length.
"""

from __future__ import annotations

import socket
import subprocess
import time

import sqlalchemy as sa

from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.store.schema import inbox_events
from integration_core.testing import free_port

from .test_server_gunicorn import BIN, ROOT, _env, _stop, _wait_healthy, billing_setup  # noqa: F401


def exchange(port: int, head: bytes, body: bytes, *, cut: bool) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + body)
        if cut:
            s.shutdown(socket.SHUT_WR)  # the client goes away before the announced length
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
                if not cut:
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def request_head(path: str, headers: dict[str, str], lengths: list[int]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
    lines += [f"Content-Length: {n}" for n in lengths]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def inbox_count(hub: Hub) -> int:
    with hub.engine.connect() as db:
        return int(db.execute(sa.select(sa.func.count()).select_from(inbox_events)).scalar_one())


def check_server(hub: Hub, port: int, setup: object, remote_id: str, *, truncated_status: bytes | None) -> None:
    body, headers = setup.book.pay(setup.secret, remote_id)  # type: ignore[attr-defined]
    path = setup.path()  # type: ignore[attr-defined]
    # a correctly signed body, announced 50 bytes longer than it is, then the client closes
    answer = exchange(port, request_head(path, headers, [len(body) + 50]), body, cut=True)
    if truncated_status is None:
        assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    else:
        assert answer.startswith(truncated_status), answer[:100]
    # two Content-Length headers, conflicting and equal
    for lengths in ([len(body), len(body) + 1], [len(body), len(body)]):
        answer = exchange(port, request_head(path, headers, lengths), body, cut=False)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    time.sleep(0.3)
    assert inbox_count(hub) == 0
    # the same body, delivered whole, is applied: the refusals above were about the framing only
    answer = exchange(port, request_head(path, headers, [len(body)]), body, cut=False)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
    assert inbox_count(hub) == 1


def test_serve_refuses_truncated_bodies_and_repeated_content_length(
    hub: Hub, config: Config, billing_setup  # noqa: F811
) -> None:  # type: ignore[no-untyped-def]
    billing, setup, remote_id = billing_setup
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "integration-core"), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-scheduler"],
        cwd=ROOT, env=_env(config, billing.path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc)
        check_server(hub, port, setup, remote_id, truncated_status=None)
    finally:
        _stop(proc)
    assert len(billing.payments()) == 1


def test_gunicorn_answers_400_to_a_truncated_body(hub: Hub, config: Config, billing_setup) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    billing, setup, remote_id = billing_setup
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}", "integration_core.webhooks:gunicorn_app"],
        cwd=ROOT, env=_env(config, billing.path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc)
        check_server(hub, port, setup, remote_id, truncated_status=b"HTTP/1.1 400")
    finally:
        _stop(proc)
    assert len(billing.payments()) == 1


