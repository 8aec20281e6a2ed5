"""Intuit OAuth 2.0 (QUICKBOOKS.md §1): consent URL, code exchange (the company id ``realmId`` comes in the
redirect), refresh with rotating refresh tokens, revoke.

Secrets written to ``ctx.secrets``: ``access_token``, ``refresh_token``, ``access_token_expires_at`` (epoch
seconds). The company id goes to the ``realm_id`` setting.

Rotation: a refresh may answer a new refresh token and the old one may stop working at once, so the
newest value is written through ``ctx.secrets.update`` right after the answer, inside the connection's
exclusive section; a second worker waiting on the section re-reads the secrets and uses the fresh access
token instead of refreshing with a superseded refresh token.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlencode

import requests

from integration_core.context import ProviderContext
from integration_core.errors import AuthError, TransientError

from .config import Settings, validate_settings

log = logging.getLogger(__name__)

SCOPE = "com.intuit.quickbooks.accounting"
EXPIRES_AT = "access_token_expires_at"
DEFAULT_EXPIRES_IN = 3600.0


def _secrets_view(ctx: ProviderContext) -> dict[str, str]:
    return {name: ctx.secrets.get(name) or "" for name in ("client_secret",)}


def authorization_url(ctx: ProviderContext, redirect_uri: str, state: str) -> str:
    cfg = validate_settings(ctx.settings)
    query = {"client_id": cfg.client_id, "response_type": "code", "scope": SCOPE, "redirect_uri": redirect_uri,
             "state": state}
    return cfg.oauth_url("authorize") + "?" + urlencode(query)


def _token_request(ctx: ProviderContext, cfg: Settings, form: dict[str, str], what: str) -> dict[str, Any]:
    """POST to the token endpoint with HTTP Basic client auth (§1 "Token request")."""
    secret = ctx.secrets.get("client_secret") or ""
    try:
        response = ctx.http.post(cfg.oauth_url("token"), data=form, auth=(cfg.client_id, secret),
                                 headers={"Accept": "application/json",
                                          "x-include-refresh-token-hard-expires-in": "true"},
                                 timeout=(cfg.connect_timeout, cfg.read_timeout))
    except requests.RequestException as exc:
        raise TransientError(f"Intuit token endpoint unreachable during the {what} ({type(exc).__name__})") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(f"Intuit token endpoint answered HTTP {response.status_code} during the {what}",
                             code=response.status_code)
    if response.status_code == 200 and isinstance(body, dict) and body.get("access_token"):
        return body
    error = str(body.get("error") or "") if isinstance(body, dict) else ""
    hints = {
        "invalid_grant": "the code or refresh token is invalid, expired, revoked or was rotated away; authorize the "
                         "connection again",
        "invalid_client": "client_id or client_secret is wrong (sandbox and production apps have different keys)",
    }
    hint = hints.get(error, "authorize the connection again")
    raise AuthError(f"Intuit refused the {what} ({error or 'HTTP ' + str(response.status_code)}): {hint}",
                    code=error or response.status_code)


def _store(ctx: ProviderContext, body: dict[str, Any]) -> str:
    access = str(body["access_token"])
    try:
        expires_in = float(body.get("expires_in") or DEFAULT_EXPIRES_IN)
    except (TypeError, ValueError):
        expires_in = DEFAULT_EXPIRES_IN
    values: dict[str, str | None] = {"access_token": access, EXPIRES_AT: f"{time.time() + expires_in:.3f}"}
    if body.get("refresh_token"):
        values["refresh_token"] = str(body["refresh_token"])  # §1: always store the latest one returned
    ctx.secrets.update(**values)
    return access


def complete_authorization(ctx: ProviderContext, code: str, redirect_uri: str, params: dict[str, str]) -> None:
    """Exchange the code; the redirect's ``realmId`` names the company (§1 "Redirect back")."""
    cfg = validate_settings(ctx.settings, _secrets_view(ctx))
    if params.get("error"):
        raise AuthError(f"QuickBooks authorization was not granted: {params['error']}", code=params["error"])
    if not code:
        raise AuthError("Intuit redirected back without an authorization code; start the authorization again")
    realm = str(params.get("realmId") or "").strip()
    if not realm.isdigit():
        raise AuthError("Intuit redirected back without a company id (realmId); authorize again and pick a company")
    if cfg.realm_id and cfg.realm_id != realm:
        raise AuthError(f"the user connected QuickBooks company {realm} but this connection is for company "
                        f"{cfg.realm_id}; authorize again and pick company {cfg.realm_id}")
    body = _token_request(ctx, cfg, {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
                          "authorization code exchange")
    if not body.get("refresh_token"):
        raise AuthError("Intuit issued no refresh token; authorize again")
    _store(ctx, body)
    if cfg.realm_id != realm:
        ctx.update_settings(realm_id=realm)


def _expires_at(ctx: ProviderContext) -> float:
    try:
        return float(ctx.secrets.get(EXPIRES_AT) or 0)
    except ValueError:
        return 0.0


def access_token(ctx: ProviderContext, cfg: Settings) -> str:
    token = ctx.secrets.get("access_token")
    if token and _expires_at(ctx) - cfg.refresh_margin > time.time():
        return token
    return refresh(ctx, cfg, rejected=token)


def refresh(ctx: ProviderContext, cfg: Settings, rejected: str | None) -> str:
    """A new access token unless another worker already got one (re-read inside the exclusive section)."""
    with ctx.exclusive("refresh"):
        ctx.secrets.reload()
        current = ctx.secrets.get("access_token")
        if current and current != rejected and _expires_at(ctx) - cfg.refresh_margin > time.time():
            return current
        refresh_token = ctx.secrets.get("refresh_token")
        if not refresh_token:
            raise AuthError("the QuickBooks connection has no refresh token; authorize it")
        try:
            body = _token_request(ctx, cfg, {"grant_type": "refresh_token", "refresh_token": refresh_token},
                                  "token refresh")
        except Exception:
            ctx.note_token_refresh(False)
            raise
        ctx.note_token_refresh(True)
        rotated = bool(body.get("refresh_token")) and body.get("refresh_token") != refresh_token
        token = _store(ctx, body)
        log.info("quickbooks connection %s: access token refreshed%s", ctx.id,
                 " (refresh token rotated)" if rotated else "")
        return token


def revoke(ctx: ProviderContext) -> None:
    """Revoke the grant (§1 revoke: JSON ``{"token": …}``, Basic auth), then forget the tokens."""
    cfg = validate_settings(ctx.settings)
    token = ctx.secrets.get("refresh_token") or ctx.secrets.get("access_token")
    if token:
        try:
            response = ctx.http.post(cfg.oauth_url("revoke"), json={"token": token},
                                     auth=(cfg.client_id, ctx.secrets.get("client_secret") or ""),
                                     headers={"Accept": "application/json"},
                                     timeout=(cfg.connect_timeout, cfg.read_timeout))
        except requests.RequestException as exc:
            raise TransientError(f"Intuit revoke endpoint unreachable ({type(exc).__name__})") from None
        if response.status_code >= 500:
            raise TransientError(f"Intuit revoke endpoint answered HTTP {response.status_code}")
    ctx.secrets.update(access_token=None, refresh_token=None, **{EXPIRES_AT: None})
