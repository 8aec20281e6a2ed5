"""`/_emulator/...` control endpoints, so another process (demo, benchmark) can drive the emulator.

All bodies and answers are JSON. These endpoints are not rate limited, not faulted and not counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import ZohoError
from .httpio import Request, Response, jsonable
from .state import ORG_SETTINGS
from .webhooks import WebhookDelivery

if TYPE_CHECKING:
    from .server import Emulator

Action = Callable[["Emulator", dict[str, Any], dict[str, str], Request], Any]


def _delivery(d: WebhookDelivery | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"url": d.url, "status": d.status, "signature": d.signature, "error": d.error,
            "body": d.body.decode("utf-8", "replace")}


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _faults(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    emu.faults.add(
        str(body.get("kind", "error")), int(body.get("count", 1)), body.get("method"), body.get("path_prefix"),
        int(body.get("status", 500)),
    )
    return emu.faults.snapshot()


def _latency(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    emu.set_latency(body.get("seconds"), body.get("min"), body.get("max"))
    return emu.faults.snapshot()


def _random(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    latency = body.get("latency")
    emu.random_faults(body.get("rates"), body.get("seed"), tuple(latency) if latency else None)
    return emu.faults.snapshot()


def _clear(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    emu.clear_faults()
    return emu.faults.snapshot()


def _config(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    lim, oa = emu.limiter.config, emu.oauth.config
    for key, target, attr, conv in (
        ("rate_limit_per_minute", lim, "per_minute", int),
        ("rate_window_seconds", lim, "window_seconds", float),
        ("daily_limit", lim, "daily", _opt_int),
        ("max_concurrent", lim, "concurrent", _opt_int),
        ("retry_after", lim, "retry_after", _opt_int),
        ("access_token_ttl", oa, "access_token_ttl", int),
        ("refresh_limit", oa, "refresh_limit", int),
        ("refresh_window_seconds", oa, "refresh_window_seconds", float),
        ("enforce_scopes", oa, "enforce_scopes", bool),
    ):
        if key in body:
            setattr(target, attr, conv(body[key]))
    return {
        "rate_limit_per_minute": lim.per_minute, "rate_window_seconds": lim.window_seconds,
        "daily_limit": lim.daily, "max_concurrent": lim.concurrent, "retry_after": lim.retry_after,
        "access_token_ttl": oa.access_token_ttl, "refresh_limit": oa.refresh_limit,
        "refresh_window_seconds": oa.refresh_window_seconds, "enforce_scopes": oa.enforce_scopes,
    }


def _add_org(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    settings = {k: body[k] for k in ORG_SETTINGS if k in body}
    org_id = emu.add_organization(
        body.get("org_id"), body.get("name", "Emulated Org"), body.get("currency_code", "USD"),
        body.get("plan", "premium"), body.get("daily_limit"), body.get("max_concurrent"), **settings,
    )
    return {"org_id": org_id}


def _org_settings(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    return emu.configure_organization(params["org_id"], **body)


def _custom_field(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    return emu.add_custom_field(params["org_id"], body["module"], body["api_name"], body.get("label", ""),
                                body.get("data_type", "string"))


def _tax(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    if body.get("taxes"):  # a group of existing tax ids
        return emu.add_tax_group(params["org_id"], body["tax_group_name"], body["taxes"])
    extra = {k: v for k, v in body.items() if k not in ("tax_name", "tax_percentage")}
    return emu.add_tax(params["org_id"], body["tax_name"], body.get("tax_percentage", 0), **extra)


def _add_client(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    emu.add_client(body["client_id"], body["client_secret"], body.get("redirect_uris", []))
    return {"client_id": body["client_id"]}


def _add_currency(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    return emu.add_currency(params["org_id"], body["code"], body.get("exchange_rate", 0))


def _tokens(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    kwargs = {"scopes": body["scopes"]} if body.get("scopes") else {}
    return emu.issue_tokens(body["client_id"], *[str(o) for o in body.get("org_ids", [])], **kwargs)


def _expire(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    return {"expired": emu.expire_tokens()}


def _counters(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    return {"counts": emu.request_counts(req.query.get("org_id") or None)}


def _records(kind: str) -> Action:
    def action(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
        return {kind: getattr(emu, kind)(params["org_id"])}
    return action


def _pay(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    hook = body.get("webhook") or {}
    payment, delivery = emu.record_payment(
        params["org_id"], params["invoice_id"], body.get("amount"), body.get("payment_mode", "banktransfer"),
        body.get("date"), hook.get("url"), hook.get("secret"),
    )
    return {"payment": payment, "webhook": _delivery(delivery)}


def _void(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    hook = body.get("webhook") or {}
    record, delivery = emu.void_invoice(params["org_id"], params["invoice_id"], hook.get("url"), hook.get("secret"))
    return {"invoice": record, "webhook": _delivery(delivery)}


def _contact(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    hook = body.get("webhook") or {}
    contact, delivery = emu.create_contact(
        params["org_id"], body["contact_name"], body.get("contact_type", "customer"), body.get("email"),
        hook.get("url"), hook.get("secret"),
    )
    return {"contact": contact, "webhook": _delivery(delivery)}


def _send_webhook(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    module = body.get("module", "invoice")
    record = body.get("record")
    if record is None:
        org_id, record_id = str(body["org_id"]), str(body["record_id"])
        record = emu.contact_webhook(org_id, record_id) if module == "contact" else emu.invoice_webhook(
            org_id, record_id)
    delivery = emu.send_webhook(body["url"], module, record, body.get("secret"), body.get("query"), body.get("form"))
    return {"webhook": _delivery(delivery)}


def _reset(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    emu.reset()
    return {"reset": True}


def _health(emu: Emulator, body: dict[str, Any], params: dict[str, str], req: Request) -> Any:
    return {"status": "ok", "base_url": emu.base_url, "faults": emu.faults.snapshot()}


ROUTES: list[tuple[str, re.Pattern[str], Action]] = [
    (m, re.compile("^/_emulator" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", t) + "/?$"), a)
    for m, t, a in (
        ("GET", "/health", _health),
        ("POST", "/reset", _reset),
        ("GET", "/config", _config),
        ("POST", "/config", _config),
        ("GET", "/faults", lambda e, b, p, r: e.faults.snapshot()),
        ("POST", "/faults", _faults),
        ("DELETE", "/faults", _clear),
        ("POST", "/faults/latency", _latency),
        ("POST", "/faults/random", _random),
        ("POST", "/tokens/expire", _expire),
        ("POST", "/tokens", _tokens),
        ("POST", "/clients", _add_client),
        ("POST", "/orgs", _add_org),
        ("POST", "/orgs/{org_id}/currencies", _add_currency),
        ("POST", "/orgs/{org_id}/settings", _org_settings),
        ("POST", "/orgs/{org_id}/customfields", _custom_field),
        ("POST", "/orgs/{org_id}/taxes", _tax),
        ("GET", "/orgs/{org_id}/items", _records("items")),
        ("GET", "/counters", _counters),
        ("GET", "/orgs/{org_id}/invoices", _records("invoices")),
        ("GET", "/orgs/{org_id}/contacts", _records("contacts")),
        ("GET", "/orgs/{org_id}/payments", _records("payments")),
        ("POST", "/orgs/{org_id}/contacts", _contact),
        ("POST", "/orgs/{org_id}/invoices/{invoice_id}/pay", _pay),
        ("POST", "/orgs/{org_id}/invoices/{invoice_id}/void", _void),
        ("POST", "/webhooks/send", _send_webhook),
    )
]


# The keys each action reads: anything else is refused with this list, so a misspelt key (``webhook_url``
# for ``webhook: {url, secret}``) is an error instead of a silent no-op. Extend it with the action.
_HOOK = frozenset({"url", "secret"})
ACCEPTED_KEYS: dict[Action, frozenset[str]] = {
    _faults: frozenset({"kind", "count", "method", "path_prefix", "status"}),
    _latency: frozenset({"seconds", "min", "max"}),
    _random: frozenset({"rates", "seed", "latency"}),
    _clear: frozenset(),
    _config: frozenset({"rate_limit_per_minute", "rate_window_seconds", "daily_limit", "max_concurrent", "retry_after",
                        "access_token_ttl", "refresh_limit", "refresh_window_seconds", "enforce_scopes"}),
    _add_org: frozenset({"org_id", "name", "currency_code", "plan", "daily_limit", "max_concurrent", *ORG_SETTINGS}),
    _org_settings: frozenset(ORG_SETTINGS),
    _custom_field: frozenset({"module", "api_name", "label", "data_type"}),
    _add_client: frozenset({"client_id", "client_secret", "redirect_uris"}),
    _add_currency: frozenset({"code", "exchange_rate"}),
    _tokens: frozenset({"client_id", "org_ids", "scopes"}),
    _expire: frozenset(),
    _pay: frozenset({"amount", "payment_mode", "date", "webhook"}),
    _void: frozenset({"webhook"}),
    _contact: frozenset({"contact_name", "contact_type", "email", "webhook"}),
    _send_webhook: frozenset({"module", "record", "org_id", "record_id", "url", "secret", "query", "form"}),
    _reset: frozenset(),
}


def _unknown_keys(action: Action, body: dict[str, Any]) -> str | None:
    accepted = ACCEPTED_KEYS.get(action)
    if accepted is None:
        return None
    unknown = sorted(set(body) - accepted)
    if unknown:
        return f"unknown key(s) {', '.join(unknown)}; accepted: {', '.join(sorted(accepted)) or 'none'}"
    hook = body.get("webhook")
    if isinstance(hook, dict) and set(hook) - _HOOK:
        return f"unknown webhook key(s) {', '.join(sorted(set(hook) - _HOOK))}; accepted: secret, url"
    return None


def handle_control(emu: Emulator, req: Request) -> Response:
    matched = False
    for method, pattern, action in ROUTES:
        m = pattern.match(req.path)
        if not m:
            continue
        matched = True
        if method != req.method:
            continue
        try:
            body = json.loads(req.body) if req.body.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            problem = _unknown_keys(action, body)
            if problem:
                return Response.json(400, {"error": "unknown_keys", "message": problem})
            return Response.json(200, jsonable(action(emu, body, m.groupdict(), req)))
        except ZohoError as err:
            return Response.error(err)
        except (KeyError, TypeError, ValueError) as err:
            return Response.json(400, {"error": "bad_request", "message": f"{type(err).__name__}: {err}"})
    if matched:
        return Response.json(405, {"error": "method_not_allowed"})
    return Response.json(404, {"error": "not_found", "message": f"no control endpoint {req.method} {req.path}"})
