"""``/_emulator/...`` control endpoints, so another process (demo, benchmark) can drive the emulator.

JSON in and out; not rate limited, not faulted, not counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import OAuthError, QBOError
from .httpio import Request, Response, jsonable
from .webhooks import Delivery

if TYPE_CHECKING:
    from .server import Emulator

Action = Callable[["Emulator", dict[str, Any], dict[str, str]], Any]


def _delivery(d: Delivery) -> dict[str, Any]:
    return {"url": d.url, "status": d.status, "signature": d.signature, "error": d.error, "events": d.events,
            "body": d.body.decode("utf-8", "replace")}


def _config(emu: Emulator, body: dict[str, Any], params: dict[str, str]) -> Any:
    lim, oa, rules = emu.limiter.config, emu.oauth.config, emu.store.rules
    targets: dict[str, tuple[Any, str, Callable[[Any], Any]]] = {
        "rate_limit_per_minute": (lim, "per_minute", int), "rate_window_seconds": (lim, "window_seconds", float),
        "max_concurrent": (lim, "concurrent", int), "json_429": (lim, "json_429", bool),
        "retry_after": (lim, "retry_after", lambda v: None if v is None else int(v)),
        "access_token_ttl": (oa, "access_token_ttl", int), "rotate_after": (oa, "rotate_after", float),
        "old_refresh_grace": (oa, "old_refresh_grace", float), "code_ttl": (oa, "code_ttl", float),
        "replay_failed_requests": (rules, "replay_failed_requests", bool),
        "payment_bumps_invoice_synctoken": (rules, "payment_bumps_invoice_synctoken", bool),
        "duplicate_name_reports_id": (rules, "duplicate_name_reports_id", bool),
        "missing_exchange_rate_is_one": (rules, "missing_exchange_rate_is_one", bool),
        "cdc_max_objects": (rules, "cdc_max_objects", int),
        "discount_needs_preference": (rules, "discount_needs_preference", bool),
        "voided_payment_keeps_links": (rules, "voided_payment_keeps_links", bool),
    }
    for key, (target, attr, conv) in targets.items():
        if key in body:
            setattr(target, attr, conv(body[key]))
    return {key: getattr(target, attr) for key, (target, attr, _) in targets.items()}


def _company(emu: Emulator, body: dict[str, Any], params: dict[str, str]) -> Any:
    return {"realm_id": emu.add_company(body.pop("realm_id", None), currencies=body.pop("currencies", None), **body)}


def _app(emu: Emulator, body: dict[str, Any], params: dict[str, str]) -> Any:
    emu.add_app(body["client_id"], body["client_secret"], body.get("redirect_uris", []))
    if body.get("webhook_url"):
        emu.configure_webhooks(body["client_id"], body["webhook_url"], body["verifier_token"],
                               body.get("webhook_format", "classic"))
    return {"client_id": body["client_id"]}


def _webhooks(emu: Emulator, body: dict[str, Any], params: dict[str, str]) -> Any:
    emu.configure_webhooks(params["client_id"], body["url"], body["verifier_token"], body.get("format", "classic"))
    return {"pending": emu.webhooks.pending(params["client_id"])}


def _deliver(emu: Emulator, body: dict[str, Any], params: dict[str, str]) -> Any:
    return {"deliveries": [_delivery(d) for d in emu.deliver_webhooks(body.get("client_id"))]}


def _pay(emu: Emulator, body: dict[str, Any], params: dict[str, str]) -> Any:
    return {"payment": emu.record_payment(params["realm_id"], body["applications"], body.get("total"))}


def _void(emu: Emulator, body: dict[str, Any], params: dict[str, str]) -> Any:
    return {"invoice": emu.void_invoice(params["realm_id"], params["invoice_id"])}


def _payment_op(emu: Emulator, body: dict[str, Any], params: dict[str, str]) -> Any:
    if params["op"] == "void":
        return {"payment": emu.void_payment(params["realm_id"], params["payment_id"])}
    if params["op"] == "delete":
        return emu.delete_payment(params["realm_id"], params["payment_id"])
    raise ValueError(f"unknown payment operation {params['op']!r} (void or delete)")


def _records(emu: Emulator, body: dict[str, Any], params: dict[str, str]) -> Any:
    return {params["entity"]: emu.records(params["realm_id"], params["entity"])}


def _name(emu: Emulator, body: dict[str, Any], params: dict[str, str]) -> Any:
    return emu.add_name(params["realm_id"], body.get("entity", "Customer"), body["DisplayName"],
                        **{k: v for k, v in body.items() if k not in ("entity", "DisplayName")})


ROUTES: list[tuple[str, re.Pattern[str], Action]] = [
    (m, re.compile("^/_emulator" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", t) + "/?$"), a)
    for m, t, a in (
        ("GET", "/health", lambda e, b, p: {"status": "ok", "base_url": e.base_url, "faults": e.faults.snapshot()}),
        ("POST", "/reset", lambda e, b, p: (e.reset(), {"reset": True})[1]),
        ("GET", "/config", _config),
        ("POST", "/config", _config),
        ("GET", "/faults", lambda e, b, p: e.faults.snapshot()),
        ("POST", "/faults", lambda e, b, p: (e.faults.add(str(b.get("kind", "error")), int(b.get("count", 1)),
                                                          b.get("method"), b.get("path_prefix"),
                                                          int(b.get("status", 500))), e.faults.snapshot())[1]),
        ("DELETE", "/faults", lambda e, b, p: (e.clear_faults(), e.faults.snapshot())[1]),
        ("POST", "/faults/latency", lambda e, b, p: (e.set_latency(b.get("seconds"), b.get("min"), b.get("max")),
                                                     e.faults.snapshot())[1]),
        ("POST", "/faults/random", lambda e, b, p: (e.random_faults(b.get("rates"), b.get("seed"),
                                                                    tuple(b["latency"]) if b.get("latency")
                                                                    else None), e.faults.snapshot())[1]),
        ("POST", "/tokens/expire", lambda e, b, p: {"expired": e.expire_tokens()}),
        ("POST", "/tokens", lambda e, b, p: e.issue_tokens(b["client_id"], str(b["realm_id"]))),
        ("POST", "/consent", lambda e, b, p: (e.next_consent(b.get("realm_id"), bool(b.get("deny"))), {})[1]),
        ("POST", "/apps", _app),
        ("POST", "/apps/{client_id}/webhooks", _webhooks),
        ("POST", "/webhooks/deliver", _deliver),
        ("POST", "/companies", _company),
        ("POST", "/companies/{realm_id}/currencies", lambda e, b, p: (e.add_currency(p["realm_id"], b["code"],
                                                                                     b["rate"]), {})[1]),
        ("POST", "/companies/{realm_id}/names", _name),
        ("GET", "/companies/{realm_id}/records/{entity}", _records),
        ("POST", "/companies/{realm_id}/payments", _pay),
        ("POST", "/companies/{realm_id}/invoices/{invoice_id}/void", _void),
        ("POST", "/companies/{realm_id}/payments/{payment_id}/{op}", _payment_op),
        ("GET", "/counters", lambda e, b, p: {"counts": e.request_counts()}),
    )
]


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
            return Response.json(200, jsonable(action(emu, body, m.groupdict())))
        except QBOError as err:
            return Response.json(err.status, err.body())
        except OAuthError as err:
            return Response.json(err.status, err.body())
        except (KeyError, TypeError, ValueError) as err:
            return Response.json(400, {"error": "bad_request", "message": f"{type(err).__name__}: {err}"})
    if matched:
        return Response.json(405, {"error": "method_not_allowed"})
    return Response.json(404, {"error": "not_found", "message": f"no control endpoint {req.method} {req.path}"})
