"""3. The webhook dispatcher under gunicorn vs a bare WSGI hello-world with the same settings and load.

Also counted, in-process through ``Hub.handle_webhook`` (the path the WSGI dispatcher takes): the SQL
statements and transactions one webhook costs (SQLAlchemy ``before_cursor_execute`` and ``begin``
events; SQLite's ``BEGIN IMMEDIATE`` is the transaction start, not counted as a statement), for the first
delivery to a connection this process has not seen yet (cold context cache) and for the next ones, and the
pool's liveness pings per webhook (a round trip each on PostgreSQL; pinged only after a connection rested).

Each request is a distinct, validly signed ``invoice.paid`` webhook of the ``ledger`` stub provider for a
linked invoice: connection lookup, secret decryption, HMAC check, parse, inbox insert (dedupe key; the same
statement checks the cached connection context and reads the invoice's mapping), host hook (a no-op host),
and the audit rows. Load: a Python client, one
``requests.Session`` per thread, closed loop, on the same machine as the server.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from integration_core import mapping
from integration_core.providers.ledger import SIGNATURE_HEADER, sign
from integration_core.store import create_engine_for
from integration_core.store.db import PING_AFTER_IDLE
from integration_core.store.schema import inbox_events
from integration_core.testing import create_database, free_port, postgres_server

from .apps import NullHost
from .common import Row, make_hub, temp_dir

NAME = "webhook dispatcher"
ROOT = Path(__file__).resolve().parents[1]
GUNICORN = Path(sys.executable).with_name("gunicorn")
SECRET = "bench-webhook-secret"
TENANT, ENV = "acme", "prod"
REMOTE_INVOICE = "I-1000"


def _setup(directory: Path, database_url: str | None) -> dict[str, str]:
    """A ledger connection with one linked invoice; the environment for the gunicorn workers."""
    hub = make_hub(directory, database_url)
    conn = hub.add_connection(tenant_id=TENANT, environment_id=ENV, provider="ledger", name="bench",
                              values={"account": "bench", "api_key": "k", "webhook_secret": SECRET})
    with hub.engine.begin() as db:
        mapping.link(db, conn.id, mapping.INVOICE, "INV-1", REMOTE_INVOICE)
    url = str(hub.engine.url.render_as_string(hide_password=False))
    hub.engine.dispose()
    return {"IC_DATABASE_URL": url.replace("postgresql+psycopg://", "postgresql://"),
            "IC_KEY_FILE": str(directory / "bench.key"), "IC_HOST": "bench.apps:NullHost"}


def _gunicorn(app: str, env: dict[str, str], workers: int, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [str(GUNICORN), "-w", str(workers), "--threads", str(threads), "-b", f"127.0.0.1:{port}",
           "--log-level", "warning", "--backlog", "512", app]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            requests.get(url + "/healthz", timeout=1)
            return proc, url
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("gunicorn did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _body(thread: int, n: int, run: int = 0) -> tuple[bytes, dict[str, str]]:
    data = {"invoice_id": REMOTE_INVOICE, "amount": "150.50", "currency": "USD", "paid_on": "2026-01-15",
            "payment_id": f"P-{run}-{thread}-{n}"}
    body = json.dumps({"type": "invoice.paid", "data": data}, sort_keys=True).encode()
    return body, {SIGNATURE_HEADER: sign(SECRET, body), "Content-Type": "application/json"}


_RUNS = itertools.count(1)


def _run(url: str, clients: int, seconds: float, tag: str) -> tuple[list[float], float, int]:
    """Closed-loop load for ``seconds``: (latencies in s, elapsed s, non-200 answers)."""
    run = next(_RUNS)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = threading.Event()
    start_barrier = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        session = requests.Session()
        n = 0
        start_barrier.wait()
        while not stop.is_set():
            n += 1
            body, headers = _body(i, n, run)  # distinct in every run: no run repeats a warm-up's event
            t0 = time.perf_counter()
            response = session.post(url, data=body, headers={**headers, "X-Bench": tag}, timeout=30)
            latencies[i].append(time.perf_counter() - t0)
            if response.status_code != 200:
                errors[i] += 1
        session.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start_barrier.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return [x for per in latencies for x in per], time.perf_counter() - began, sum(errors)


def _stats(runs: list[tuple[list[float], float, int]]) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, non-200 answers) over several runs."""
    all_latencies = sorted(x for run in runs for x in run[0])
    count = len(all_latencies)
    p50 = all_latencies[count // 2] * 1000
    p99 = all_latencies[min(count - 1, int(count * 0.99))] * 1000
    return count / sum(run[1] for run in runs), p50, p99, sum(run[2] for run in runs)


def load(url: str, clients: int, seconds: float, tag: str) -> tuple[float, float, float, int]:
    """Closed-loop load for ``seconds``: (requests/s, p50 ms, p99 ms, non-200 answers)."""
    return _stats([_run(url, clients, seconds, tag)])


SLICES = 4  # the two apps take turns this many times each: both meet the same background load


def _pair(env: dict[str, str], workers: int, threads: int, clients: int, seconds: float,
          label: str) -> list[Row]:
    apps = (("hello", "bench.apps:hello", "/hello"),
            ("dispatcher", "integration_core.webhooks:app_from_env()", f"/v1/webhooks/ledger/{TENANT}/{ENV}"))
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    runs: dict[str, list[tuple[list[float], float, int]]] = {kind: [] for kind, _, _ in apps}
    try:
        for kind, app, path in apps:  # both up at once (the idle one costs nothing), loaded in turns
            proc, url = _gunicorn(app, env, workers, threads)
            servers[kind] = (proc, url + path)
        for kind, (_, url) in servers.items():
            load(url, clients, min(1.0, seconds / 3), f"warmup-{kind}")
        for turn in range(SLICES):
            order = list(servers) if turn % 2 == 0 else list(reversed(servers))
            for kind in order:
                runs[kind].append(_run(servers[kind][1], clients, seconds / SLICES, kind))
    finally:
        for proc, _ in servers.values():
            _stop(proc)
    hello, disp = _stats(runs["hello"]), _stats(runs["dispatcher"])
    applied = _statuses(env["IC_DATABASE_URL"])
    config = (f"{label}; gunicorn -w {workers} --threads {threads}, {clients} client threads, {seconds:g} s "
              f"in {SLICES} turns")
    return [
        Row(NAME, f"signed webhooks, {config}", disp[0], "requests/s", f"{disp[0] / hello[0]:.2f}x hello"),
        Row(NAME, "  same run: latency p50 / p99", f"{disp[1]:.1f} / {disp[2]:.1f}", "ms",
            f"{disp[1] / hello[1]:.1f}x / {disp[2] / hello[2]:.1f}x hello"),
        Row(NAME, "  same run: non-200 answers", disp[3], "responses", "must be 0"),
        Row(NAME, "  same run: inbox events by status", ", ".join(f"{k} {v}" for k, v in applied.items()), ""),
        Row(NAME, f"bare WSGI hello-world, {config}", hello[0], "requests/s", "1.00x"),
        Row(NAME, "  same run: latency p50 / p99", f"{hello[1]:.1f} / {hello[2]:.1f}", "ms"),
    ]


def _statuses(url: str) -> dict[str, int]:
    engine = create_engine_for(url)
    with engine.connect() as db:
        c = inbox_events.c
        rows = db.execute(sa.select(c.status, sa.func.count()).group_by(c.status)).all()
    engine.dispose()
    return {status: n for status, n in rows}


def sql_per_webhook(directory: Path, database_url: str | None, n: int = 200) -> dict[str, tuple[float, float]]:
    """(statements, transactions) for a cold-cache first webhook and, averaged over ``n``, warm ones; and
    the core's time per webhook in-process, one thread, no HTTP (``"ms"``: median of 5 runs of n/5)."""
    env = _setup(directory, database_url)
    hub = make_hub(directory, database_url, host=NullHost())
    counts = {"statements": 0, "transactions": 0}

    @sa.event.listens_for(hub.engine, "before_cursor_execute")
    def _statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith("BEGIN"):
            counts["statements"] += 1

    @sa.event.listens_for(hub.engine, "begin")
    def _transaction(conn: Any) -> None:
        counts["transactions"] += 1

    pings = [0]
    ping = hub.engine.dialect.do_ping

    def counted_ping(dbapi_conn: Any) -> bool:  # the pool's liveness round trip (PostgreSQL: after idle only)
        pings[0] += 1
        return ping(dbapi_conn)

    hub.engine.dialect.do_ping = counted_ping  # type: ignore[method-assign]

    def deliver(i: int) -> None:
        body, headers = _body(999, i)
        answer = hub.handle_webhook("ledger", TENANT, ENV, headers=headers, body=body)
        if answer.status != 200 or answer.json()["applied"] != 1:
            raise RuntimeError(f"webhook not applied: {answer.status} {answer.body[:200]!r}")

    result = {}
    deliver(0)  # cold: the connection is read and its secrets decrypted
    result["cold"] = (counts["statements"], counts["transactions"])
    counts.update(statements=0, transactions=0)
    timings = []
    for run in range(5):
        t0 = time.perf_counter()
        for i in range(1 + run * n // 5, 1 + (run + 1) * n // 5):
            deliver(i)
        timings.append((time.perf_counter() - t0) / (n // 5) * 1000)
    result["warm"] = (counts["statements"] / n, counts["transactions"] / n)
    result["pings"] = (pings[0] / n, 0.0)
    result["ms"] = (sorted(timings)[2], 0.0)
    hub.engine.dispose()
    del env
    return result


def _count_rows(label: str, counts: dict[str, tuple[float, float]]) -> list[Row]:
    (cs, ct), (ws, wt) = counts["cold"], counts["warm"]
    return [
        Row(NAME, f"SQL per webhook, {label}: statements / transactions (context cached; n=200)",
            f"{ws:g} / {wt:g}", "per webhook", "was 4 / 1 (7 / 4 at first)"),
        Row(NAME, f"  pool pings per webhook, {label} (pre-ping only after {PING_AFTER_IDLE:g} s idle)",
            counts["pings"][0], "round trips", "was 1 on PostgreSQL"),
        Row(NAME, f"  core time per webhook, {label}: in-process, one thread, no HTTP (median of 5 x 40)",
            counts["ms"][0], "ms"),
        Row(NAME, f"SQL per webhook, {label}: first webhook of a connection in a process (cache cold)",
            f"{cs:g} / {ct:g}", "per webhook"),
    ]


def run(quick: bool = False) -> list[Row]:
    workers, threads, clients = os.cpu_count() or 2, 4, 8
    seconds = 1.5 if quick else 10.0
    rows: list[Row] = []
    with temp_dir() as d:
        rows += _count_rows("SQLite", sql_per_webhook(d, None))
    with temp_dir() as d:
        rows += _pair(_setup(d, None), workers, threads, clients, seconds, "SQLite")
    if not quick:
        with temp_dir() as d, postgres_server() as admin:
            rows += _count_rows("PostgreSQL", sql_per_webhook(d, create_database(admin)))
            rows += _pair(_setup(d, create_database(admin)), workers, threads, clients, seconds, "PostgreSQL")
    return rows
