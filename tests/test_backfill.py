"""Backfill from JSON Lines: streamed, idempotent, bad lines reported with their number and reason."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from integration_core.backfill import backfill
from integration_core.cli import main
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.models import TaskStatus
from integration_core.providers import ledger as ledger_mod
from integration_core.scheduler import drain_until_idle
from tests.workers.helpers import FAST, add_connection, invoice, tasks


def write_file(path: Path, n: int = 6) -> Path:
    lines = [json.dumps(invoice(i, customer=i % 2).to_dict()) for i in range(n)]
    lines.insert(2, '{"id": "broken" "x"}')  # line 3
    lines.insert(4, "")  # line 5: blank, skipped
    lines.append(json.dumps({**invoice(99).to_dict(), "currency": None}))
    no_currency = invoice(98).to_dict()
    del no_currency["currency"]
    lines.append(json.dumps(no_currency))
    floaty = invoice(97).to_dict()
    floaty["lines"][0]["amount"] = 12.5
    lines.append(json.dumps(floaty))
    lines.append("[1, 2]")
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe\n")
    return path


def test_backfill_reports_bad_lines_and_queues_the_rest(hub: Hub, tmp_path: Path) -> None:
    conn, account = add_connection(hub)
    path = write_file(tmp_path / "invoices.jsonl")
    with path.open("rb") as fh:
        report = backfill(hub, fh, "t1", "prod")
    assert report.invoices == 6 and report.outcomes["queued"] == 6
    reasons = {b.line: b.reason for b in report.bad}
    assert reasons[3].startswith("invalid JSON")
    assert reasons[9] == "invalid invoice: currency must be an ISO 4217 currency code such as 'USD', got None"
    assert reasons[10] == "missing field 'currency'"
    assert "floats" in reasons[11]
    assert reasons[12] == "expected a JSON object, got list"
    assert reasons[13].startswith("not UTF-8")
    assert len(reasons) == 6
    # a second run queues nothing again
    with path.open("rb") as fh:
        again = backfill(hub, fh, "t1", "prod")
    assert again.outcomes["unchanged"] == 6 and "queued" not in again.outcomes
    drain_until_idle(hub, 20, settings=FAST)
    assert len(ledger_mod.ledger(account).invoices) == 6
    assert {t.status for t in tasks(hub, conn.id)} == {TaskStatus.DONE}
    with path.open("rb") as fh:
        synced = backfill(hub, fh, "t1", "prod")
    assert synced.outcomes["already_synced"] == 6
    assert "6 already synced" in synced.summary()


def test_backfill_cli(hub: Hub, config: Config, tmp_path: Path) -> None:
    add_connection(hub)
    path = write_file(tmp_path / "invoices.jsonl")
    env = {"IC_DATABASE_URL": config.database_url, "IC_KEY_FILE": config.key_file}
    result = CliRunner().invoke(
        main, ["invoices", "backfill", str(path), "--tenant", "t1", "--environment", "prod"], env=env
    )
    assert result.exit_code == 1, result.output
    assert "line 3: invalid JSON" in result.output
    assert "line 10: missing field 'currency'" in result.output
    assert "6 invoice(s) read, 6 queued, 0 unchanged" in result.output
    assert "6 bad" in result.output
    assert len(tasks(hub)) == 6
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(invoice(1).to_dict()) + "\n")
    result = CliRunner().invoke(
        main, ["invoices", "backfill", str(good), "--tenant", "t1", "--environment", "prod", "--quiet"], env=env
    )
    assert result.exit_code == 0 and "1 invoice(s) read, 0 queued, 1 unchanged, 0 bad" in result.output


def test_backfill_streams_large_file(hub: Hub, tmp_path: Path) -> None:
    """Lines are consumed one at a time (a generator that would fail if read ahead)."""
    add_connection(hub)
    consumed: list[int] = []

    def lines():  # type: ignore[no-untyped-def]
        for i in range(200):
            consumed.append(i)
            assert len(consumed) == i + 1
            yield json.dumps(invoice(i).to_dict()).encode()

    report = backfill(hub, lines(), "t1", "prod")
    assert report.invoices == 200 and report.outcomes["queued"] == 200 and not report.bad
