"""Shared helpers: result rows, the table, hubs on temporary databases, the Zoho emulator, invoices."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import requests

from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.models import Connection, Customer, Invoice
from integration_core.outbox import Outbound, OutboundSettings, TickStats, pending_work

CLIENT_ID = "1000.BENCHCLIENT"
CLIENT_SECRET = "bench-client-secret"
REDIRECT_URI = "http://127.0.0.1:9/callback"
WEBHOOK_SECRET = "benchsecret12345"


@attrs.define
class Row:
    """One line of the results table."""

    benchmark: str
    config: str
    value: float | int | str
    unit: str
    ratio: str = ""


def fmt(value: float | int | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(rows: list[Row]) -> str:
    """A Markdown table (readable in a terminal and pasteable into the docs)."""
    head = ("benchmark", "configuration", "value", "unit", "ratio")
    cells = [head, *[(r.benchmark, r.config, fmt(r.value), r.unit, r.ratio) for r in rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = []
    for n, c in enumerate(cells):
        lines.append("| " + " | ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


# --- hubs ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def temp_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ic-bench-") as d:
        yield Path(d)


def make_hub(directory: Path, database_url: str | None = None, **kwargs: Any) -> Hub:
    """A Hub on a fresh SQLite file in ``directory`` (or on ``database_url``) with its own key file."""
    url = database_url or f"sqlite:///{directory / 'bench.sqlite3'}"
    return Hub(Config(database_url=url, key_file=str(directory / "bench.key")), **kwargs)


def invoice(n: int, customer: Customer, currency: str = "USD", prefix: str = "INV") -> Invoice:
    return Invoice(
        id=f"{prefix}-{n}",
        number=f"{prefix}-{n}",
        customer=customer,
        currency=currency,
        issue_date=dt.date(2026, 1, 2),
        lines=[{"description": "Consulting", "amount": "120.00"}, {"description": "Support", "amount": "30.50"}],
    )


def customer(n: int, prefix: str = "cust") -> Customer:
    return Customer(id=f"{prefix}-{n}", name=f"Customer {prefix} {n}", email=f"{prefix}{n}@example.com")


# --- draining -----------------------------------------------------------------------------------------


def drain(hub: Hub, outbound: Outbound, timeout: float = 600.0) -> TickStats:
    """Tick in this thread until the outbox is idle."""
    totals = TickStats()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = outbound.tick()
        totals.add(stats)
        if stats.attempted == 0:
            if pending_work(hub) == 0:
                return totals
            time.sleep(0.01)
    raise TimeoutError(f"outbox not idle after {timeout}s ({totals})")


def drain_threads(hub: Hub, threads: int, settings: OutboundSettings, timeout: float = 600.0) -> TickStats:
    """``threads`` workers (one Outbound each, as ``scheduler.Worker(threads=n)``) tick until idle."""
    totals = TickStats()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            stats = drain(hub, Outbound(hub, f"bench-{uuid.uuid4().hex[:6]}-{i}", settings), timeout)
            with lock:
                totals.add(stats)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]
    return totals


def run_for(seconds: float, tick: Callable[[], TickStats], idle_sleep: float = 0.01) -> TickStats:
    """Tick repeatedly for ``seconds`` (rate-limit runs: the backlog outlasts the measurement)."""
    totals = TickStats()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        stats = tick()
        totals.add(stats)
        if stats.attempted == 0:
            time.sleep(idle_sleep)
    return totals


# --- the Zoho Books emulator ------------------------------------------------------------------------


class StatusCounts:
    """HTTP status codes the emulator answered, per organization (wraps its WSGI app)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter[tuple[str, int]] = collections.Counter()
        self.arrivals: list[tuple[str, int, float]] = []  # (org, status, time.time() when the request came in)

    def wrap(self, app: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            org = parse_qs(environ.get("QUERY_STRING", "")).get("organization_id", [""])[0]
            arrived = time.time()

            def recording(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                with self.lock:
                    self.counts[(org, int(status.split()[0]))] += 1
                    if org:
                        self.arrivals.append((org, int(status.split()[0]), arrived))
                return start_response(status, headers, exc_info)

            return app(environ, recording)

        return wrapped

    def get(self, org: str, status: int) -> int:
        with self.lock:
            return self.counts[(org, status)]

    def between(self, org: str, start: float, end: float, *, refused: bool = False) -> int:
        """Requests for ``org`` that arrived in ``[start, end)``: accepted ones, or with ``refused`` the 429s."""
        with self.lock:
            return sum(1 for o, status, at in self.arrivals
                       if o == org and start <= at < end and (status == 429) == refused)


def start_emulator(**kwargs: Any) -> tuple[Any, StatusCounts]:
    """A started emulator (daily limit lifted) with the bench OAuth client, and its status counters."""
    from zoho_books.emulator import Emulator

    kwargs.setdefault("daily_limit", 10**9)
    emulator = Emulator(**kwargs)
    statuses = StatusCounts()
    emulator.wsgi = statuses.wrap(emulator.wsgi)  # type: ignore[method-assign]
    emulator.start()
    emulator.add_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    return emulator, statuses


def zoho_connection(
    hub: Hub, emulator: Any, tenant: str, *, currency: str = "USD", settings: dict[str, str] | None = None,
    org_settings: dict[str, Any] | None = None,
) -> tuple[Connection, str]:
    """A Zoho Books connection to a new emulated organization, authorized through the Hub's OAuth flow."""
    org_id = emulator.add_organization(name=f"Org {tenant}", currency_code=currency, **(org_settings or {}))
    conn = hub.add_connection(
        tenant_id=tenant, environment_id="live", provider="zoho_books", name=f"Zoho {tenant}",
        values={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "organization_id": org_id,
                "accounts_server": emulator.base_url, "webhook_secret": WEBHOOK_SECRET, **(settings or {})},
    )
    url = hub.start_authorization(conn.id, REDIRECT_URI)
    location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    conn = hub.complete_authorization(params.pop("state"), params.pop("code"), params)
    return conn, org_id


def org_requests(emulator: Any, org_id: str) -> int:
    """Every Books API request the emulator saw for ``org_id`` (429s included)."""
    return sum(emulator.request_counts(org_id).values())
