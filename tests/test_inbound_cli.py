"""Operator commands: events list/show/retry, connections webhook-url."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from integration_core import inbound
from integration_core.cli import main
from integration_core.config import Config
from integration_core.hub import Hub

from .test_inbound_support import RecordingHost, ledger_connection


def _env(config: Config) -> dict[str, str]:
    return {"IC_DATABASE_URL": config.database_url, "IC_KEY_FILE": config.key_file,
            "IC_PUBLIC_URL": "https://billing.example.com/"}


def _request(body: bytes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    from integration_core.models import WebhookRequest

    return WebhookRequest(method="POST", path="/", query={}, headers={k.lower(): v for k, v in headers.items()},
                          body=body)


def _deliver(hub: Hub, setup, body: bytes, headers: dict[str, str]) -> list[inbound.EventOutcome]:  # type: ignore[no-untyped-def]
    provider = hub.provider("ledger")
    events = provider.parse_event(ctx=hub.context(setup.conn), request=_request(body, headers))
    return inbound.apply(hub, setup.conn, events)


def test_webhook_url_uses_the_public_url(hub: Hub, config: Config) -> None:
    setup = ledger_connection(hub, "acme", "prod")
    result = CliRunner().invoke(main, ["connections", "webhook-url", setup.conn.id], env=_env(config))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "https://billing.example.com/v1/webhooks/ledger/acme/prod"


def test_events_list_show_and_retry(hub: Hub, config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    host = RecordingHost()
    host.fail_payments = 1
    hub.plugins.set_host(host)
    setup = ledger_connection(hub, "acme", "prod")
    body, headers = setup.book.pay(setup.secret, setup.remote_invoice)
    (failed,) = _deliver(hub, setup, body, headers)
    assert failed.status == "failed"
    vbody, vheaders = setup.book.new_contact(setup.secret, "Paper", "p@example.com", kind="vendor")
    (ignored,) = _deliver(hub, setup, vbody, vheaders)
    runner = CliRunner()
    env = _env(config)

    out = runner.invoke(main, ["events", "list"], env=env)
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert lines[0].startswith(f"{ignored.event_id}\tignored\tignored\tx1\tcontact:")
    assert lines[0].endswith("contact is a vendor")
    assert lines[1].startswith(f"{failed.event_id}\tfailed\tinvoice_paid\tx1\tpayment:")

    out = runner.invoke(main, ["events", "list", "--status", "failed", "--connection", setup.conn.id, "--json"],
                        env=env)
    rows = json.loads(out.output)
    assert [r["id"] for r in rows] == [failed.event_id]

    out = runner.invoke(main, ["events", "show", str(failed.event_id)], env=env)
    shown = json.loads(out.output)
    assert shown["status"] == "failed" and shown["deliveries"] == 1
    assert shown["payload"]["remote_invoice_id"] == setup.remote_invoice
    assert [h["action"] for h in shown["history"]] == ["received", "failed"]
    assert "host database is locked" in shown["reason"]

    # The CLI builds its own Hub: the host comes from IC_HOST / --host-app. Point it at our recording host.
    import tests.test_inbound_cli as this

    this.CLI_HOST = host  # type: ignore[attr-defined]
    retry_args = ["events", "retry", str(failed.event_id), "--host-app", "tests.test_inbound_cli:CLI_HOST"]
    out = runner.invoke(main, retry_args, env=env)
    assert out.exit_code == 0, out.output
    assert out.output.strip() == f"event {failed.event_id} applied"
    assert len(host.payments) == 1
    out = runner.invoke(main, ["events", "retry", str(failed.event_id)], env=env)
    assert "already applied" in out.output
    history = [h["action"] for h in inbound.get_event(hub, failed.event_id)["history"]]
    assert history == ["received", "failed", "retried", "applied"]
    assert runner.invoke(main, ["events", "show", "999999"], env=env).exit_code == 1


def test_retry_without_a_host_keeps_the_event_failed(hub: Hub, config: Config) -> None:
    setup = ledger_connection(hub, "acme", "prod")
    body, headers = setup.book.pay(setup.secret, setup.remote_invoice)
    (failed,) = _deliver(hub, setup, body, headers)
    assert failed.status == "failed" and "no host application" in (failed.reason or "")
    out = CliRunner().invoke(main, ["events", "retry", str(failed.event_id)], env=_env(config))
    assert out.exit_code == 1 and "failed: no host application implements record_payment" in out.output
