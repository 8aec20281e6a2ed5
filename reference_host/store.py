"""A tiny billing store on its own SQLite file, and the host hooks over it."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from integration_core.hookspecs import hookimpl
from integration_core.models import Customer, Invoice, LineItem, Payment

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, environment_id TEXT NOT NULL,
    name TEXT NOT NULL, email TEXT, company_name TEXT, origin TEXT NOT NULL DEFAULT 'host'
);
CREATE INDEX IF NOT EXISTS ix_customers_email ON customers (tenant_id, environment_id, email);
CREATE TABLE IF NOT EXISTS invoices (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, environment_id TEXT NOT NULL, number TEXT NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id), currency TEXT NOT NULL, issue_date TEXT NOT NULL,
    due_date TEXT, total TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open'
);
CREATE TABLE IF NOT EXISTS invoice_lines (
    invoice_id TEXT NOT NULL REFERENCES invoices (id), position INTEGER NOT NULL,
    description TEXT NOT NULL, amount TEXT NOT NULL,
    detail TEXT,  -- the whole line as JSON (quantity, unit price, discount, tax), when it has more
    PRIMARY KEY (invoice_id, position)
);
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY AUTOINCREMENT, payment_key TEXT NOT NULL UNIQUE, invoice_id TEXT NOT NULL,
    amount TEXT NOT NULL, currency TEXT, paid_on TEXT NOT NULL, recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reversals (
    reversal_key TEXT PRIMARY KEY, payment_key TEXT NOT NULL, invoice_id TEXT NOT NULL, amount TEXT NOT NULL,
    reason TEXT NOT NULL, recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class UnknownInvoice(LookupError):
    """A hook named an invoice this store does not have (for that tenant/environment)."""


class ReferenceHost:
    """Customers, invoices and payments in one SQLite file; thread-safe (a connection per call)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
        finally:
            db.close()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    def _next_id(self, db: sqlite3.Connection, prefix: str) -> str:
        db.execute("INSERT INTO counters (name, value) VALUES (?, 1) "
                   "ON CONFLICT (name) DO UPDATE SET value = value + 1", (prefix,))
        value = db.execute("SELECT value FROM counters WHERE name = ?", (prefix,)).fetchone()[0]
        return f"{prefix}_{value:04d}"

    # --- host hooks (what integration-core calls) ---------------------------------------------------

    @hookimpl
    def record_payment(
        self,
        tenant_id: str,
        environment_id: str,
        invoice_id: str,
        amount: Decimal,
        currency: str | None,
        paid_on: dt.date,
        payment_key: str,
    ) -> int:
        """Once per ``payment_key``; the invoice becomes ``paid`` when payments reach its total."""
        with self._db() as db:
            inv = self._invoice_row(db, tenant_id, environment_id, invoice_id)
            existing = db.execute("SELECT id FROM payments WHERE payment_key = ?", (payment_key,)).fetchone()
            if existing is not None:
                return int(existing["id"])
            if currency and currency != inv["currency"]:
                raise ValueError(f"payment in {currency} for invoice {invoice_id} in {inv['currency']}")
            cur = db.execute(
                "INSERT INTO payments (payment_key, invoice_id, amount, currency, paid_on, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (payment_key, invoice_id, str(amount), currency, paid_on.isoformat(),
                 dt.datetime.now(dt.UTC).isoformat()),
            )
            self._settle(db, inv)
            return int(cur.lastrowid or 0)

    @hookimpl
    def reverse_payment(
        self,
        tenant_id: str,
        environment_id: str,
        invoice_id: str,
        payment_key: str,
        amount: Decimal,
        reason: str,
        reversal_key: str,
    ) -> None:
        """Once per ``reversal_key``. A deletion takes the whole payment back; for a refund ``amount`` is what
        has been refunded of that payment so far, so the largest one counts (order does not matter)."""
        with self._db() as db:
            inv = self._invoice_row(db, tenant_id, environment_id, invoice_id)
            db.execute(
                "INSERT INTO reversals (reversal_key, payment_key, invoice_id, amount, reason, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (reversal_key) DO NOTHING",
                (reversal_key, payment_key, invoice_id, str(amount), reason, dt.datetime.now(dt.UTC).isoformat()),
            )
            self._settle(db, inv)

    def _settle(self, db: sqlite3.Connection, inv: Any) -> None:
        """The invoice's status from what is paid (unless it is void)."""
        if inv["status"] == "void":
            return
        paid = self._paid(db, inv["id"])
        status = "paid" if paid >= Decimal(inv["total"]) else "partially_paid" if paid > 0 else "open"
        db.execute("UPDATE invoices SET status = ? WHERE id = ?", (status, inv["id"]))

    @hookimpl
    def void_invoice(self, tenant_id: str, environment_id: str, invoice_id: str) -> None:
        with self._db() as db:
            self._invoice_row(db, tenant_id, environment_id, invoice_id)
            db.execute("UPDATE invoices SET status = 'void' WHERE id = ?", (invoice_id,))

    @hookimpl
    def find_customer_by_email(self, tenant_id: str, environment_id: str, email: str) -> str | None:
        with self._db() as db:
            row = db.execute(
                "SELECT id FROM customers WHERE tenant_id = ? AND environment_id = ? AND lower(email) = lower(?) "
                "ORDER BY id LIMIT 1",
                (tenant_id, environment_id, email.strip()),
            ).fetchone()
        return None if row is None else str(row["id"])

    @hookimpl
    def create_customer(self, tenant_id: str, environment_id: str, name: str, email: str | None) -> str:
        return self.add_customer(tenant_id, environment_id, name, email, origin="accounting").id

    # --- the billing side (what the host's own UI/API would do) ------------------------------------

    def add_customer(
        self, tenant_id: str, environment_id: str, name: str, email: str | None,
        company_name: str | None = None, *, origin: str = "host",
    ) -> Customer:
        with self._db() as db:
            cid = self._next_id(db, "cus")
            db.execute(
                "INSERT INTO customers (id, tenant_id, environment_id, name, email, company_name, origin) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cid, tenant_id, environment_id, name, (email or None) and email.strip().lower(), company_name,
                 origin),
            )
        return Customer(id=cid, name=name, email=email, company_name=company_name)

    def add_invoice(
        self,
        tenant_id: str,
        environment_id: str,
        customer_id: str,
        lines: Sequence[tuple[str, str | Decimal] | LineItem],
        *,
        currency: str = "USD",
        issue_date: dt.date | str | None = None,
        due_date: dt.date | str | None = None,
        number: str | None = None,
    ) -> Invoice:
        """Create a finalized invoice; returns the :class:`Invoice` to give ``hub.submit_invoice``."""
        issue = dt.date.fromisoformat(str(issue_date)) if issue_date else dt.date.today()
        due = dt.date.fromisoformat(str(due_date)) if due_date else None
        items = [x if isinstance(x, LineItem) else LineItem(description=x[0], amount=Decimal(str(x[1])))
                 for x in lines]
        # the invoice's own rules (quantities, discounts, taxes, the currency's precision) give the total
        probe = Invoice(id="probe", number="probe", customer=Customer(id="probe", name="probe"), currency=currency,
                        issue_date=issue, lines=items)
        items, total = list(probe.lines), probe.total
        with self._db() as db:
            if db.execute("SELECT 1 FROM customers WHERE id = ?", (customer_id,)).fetchone() is None:
                raise LookupError(f"no customer {customer_id}")
            iid = self._next_id(db, "inv")
            number = number or f"H-{iid.split('_')[1]}"
            db.execute(
                "INSERT INTO invoices (id, tenant_id, environment_id, number, customer_id, currency, issue_date, "
                "due_date, total) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (iid, tenant_id, environment_id, number, customer_id, currency.upper(), issue.isoformat(),
                 due and due.isoformat(), str(total)),
            )
            for pos, item in enumerate(items):
                db.execute("INSERT INTO invoice_lines VALUES (?, ?, ?, ?, ?)",
                           (iid, pos, item.description, str(item.amount), json.dumps(item.to_dict())))
        return self.invoice_model(iid)

    def invoice_model(self, invoice_id: str) -> Invoice:
        """The core's value type for one host invoice."""
        with self._db() as db:
            inv = db.execute("SELECT * FROM invoices WHERE id = ?", (invoice_id,)).fetchone()
            if inv is None:
                raise UnknownInvoice(f"no invoice {invoice_id}")
            cust = db.execute("SELECT * FROM customers WHERE id = ?", (inv["customer_id"],)).fetchone()
            lines = db.execute("SELECT description, amount, detail FROM invoice_lines WHERE invoice_id = ? "
                               "ORDER BY position", (invoice_id,)).fetchall()
        return Invoice(
            id=inv["id"], number=inv["number"],
            customer=Customer(id=cust["id"], name=cust["name"], email=cust["email"],
                              company_name=cust["company_name"]),
            currency=inv["currency"], issue_date=inv["issue_date"], due_date=inv["due_date"],
            lines=[LineItem.from_dict(json.loads(r["detail"])) if r["detail"] else
                   LineItem(description=r["description"], amount=Decimal(r["amount"])) for r in lines],
        )

    def add_payment(
        self, tenant_id: str, environment_id: str, invoice_id: str, amount: Decimal | str, *,
        method: str | None = None, reference: str | None = None, paid_on: dt.date | None = None,
    ) -> Payment:
        """Record a payment made on the billing side (a card charge, a matched transfer); returns the
        ``Payment`` to hand to ``hub.submit_payment``. Its id is its ``payment_key`` here."""
        with self._db() as db:
            inv = self._invoice_row(db, tenant_id, environment_id, invoice_id)
            payment = Payment(id=self._next_id(db, "pay"), invoice_id=invoice_id, amount=Decimal(str(amount)),
                              currency=inv["currency"], paid_on=paid_on or dt.date.today(), method=method,
                              reference=reference)
            db.execute(
                "INSERT INTO payments (payment_key, invoice_id, amount, currency, paid_on, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (payment.id, invoice_id, str(payment.amount), payment.currency, payment.paid_on.isoformat(),
                 dt.datetime.now(dt.UTC).isoformat()),
            )
            self._settle(db, inv)
        return payment

    def void(self, tenant_id: str, environment_id: str, invoice_id: str) -> None:
        """Void an invoice on the billing side (then ``hub.submit_void`` voids it in the accounting system)."""
        self.void_invoice(tenant_id, environment_id, invoice_id)

    # --- reading (the demo's summary, tests) --------------------------------------------------------

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        with self._db() as db:
            row = db.execute("SELECT * FROM invoices WHERE id = ?", (invoice_id,)).fetchone()
            if row is None:
                raise UnknownInvoice(f"no invoice {invoice_id}")
            data = dict(row)
            data["paid"] = self._paid(db, invoice_id)
        return data

    def invoices(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT id FROM invoices WHERE ? IS NULL OR tenant_id = ? ORDER BY id",
                              (tenant_id, tenant_id)).fetchall()
        return [self.invoice(r["id"]) for r in rows]

    def customers(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM customers WHERE ? IS NULL OR tenant_id = ? ORDER BY id",
                              (tenant_id, tenant_id)).fetchall()
        return [dict(r) for r in rows]

    def payments(self, invoice_id: str | None = None) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM payments WHERE ? IS NULL OR invoice_id = ? ORDER BY id",
                              (invoice_id, invoice_id)).fetchall()
        return [dict(r) for r in rows]

    # --- internals ------------------------------------------------------------------------------------

    def _invoice_row(self, db: sqlite3.Connection, tenant_id: str, environment_id: str, invoice_id: str) -> Any:
        row = db.execute("SELECT * FROM invoices WHERE id = ? AND tenant_id = ? AND environment_id = ?",
                         (invoice_id, tenant_id, environment_id)).fetchone()
        if row is None:
            raise UnknownInvoice(f"no invoice {invoice_id} for tenant {tenant_id}/{environment_id}")
        return row

    @staticmethod
    def _paid(db: sqlite3.Connection, invoice_id: str) -> Decimal:
        """Payments less what was taken back: a deleted payment entirely, a refunded one by its largest
        refunded total."""
        amounts = db.execute("SELECT payment_key, amount FROM payments WHERE invoice_id = ?", (invoice_id,)).fetchall()
        paid = {r["payment_key"]: Decimal(r["amount"]) for r in amounts}
        back: dict[str, Decimal] = {}
        for r in db.execute("SELECT payment_key, amount, reason FROM reversals WHERE invoice_id = ?", (invoice_id,)):
            key = r["payment_key"]
            amount = paid.get(key, Decimal(r["amount"])) if r["reason"] == "deleted" else Decimal(r["amount"])
            back[key] = max(back.get(key, Decimal(0)), amount)
        return sum(paid.values(), Decimal("0")) - sum(back.values(), Decimal("0"))

    def reversals(self, invoice_id: str | None = None) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM reversals WHERE ? IS NULL OR invoice_id = ? ORDER BY recorded_at",
                              (invoice_id, invoice_id)).fetchall()
        return [dict(r) for r in rows]


def from_env() -> ReferenceHost:
    """For ``IC_HOST=reference_host:from_env``: the store file from ``REFERENCE_HOST_DB``."""
    return ReferenceHost(os.environ.get("REFERENCE_HOST_DB", "reference-host.sqlite3"))
