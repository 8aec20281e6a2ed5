"""Zoho Accounts OAuth: authorize URL, code exchange, token refresh (collapsed per connection), revoke.

Secrets written to ``connection.secrets``: ``access_token``, ``refresh_token``, ``access_token_expires_at``
(epoch seconds). The API host from the token response goes to the ``api_domain`` setting.

Refresh outcomes:

* ``invalid_code`` / ``invalid_client`` / revoked grant → :class:`AuthError`: only a new consent helps,
  so the core marks the connection ``needs_reauth``.
* ``Access Denied`` "too many requests" (a refresh token mints at most 10 access tokens per 10 minutes)
  → :class:`RateLimitedError` with ``retry_after`` = ``refresh_throttle_retry_after`` (300 s): the grant
  is still valid, so pausing the connection for re-consent would be wrong; waiting fixes it.
* network errors and 5xx at the accounts server → :class:`TransientError`.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlencode

import requests

from integration_core.context import ProviderContext
from integration_core.errors import AuthError, ConfigurationError, RateLimitedError, TransientError

from .config import Settings, validate_settings
from .regions import api_domain_for, known_accounts_server, validate_api_domain

log = logging.getLogger(__name__)

SCOPES = (
    "ZohoBooks.contacts.ALL",
    "ZohoBooks.invoices.ALL",
    "ZohoBooks.customerpayments.ALL",
    "ZohoBooks.settings.READ",
    "ZohoBooks.settings.CREATE",  # creating items found missing (items.yml:39)
)
EXPIRES_AT = "access_token_expires_at"
DEFAULT_EXPIRES_IN = 3600


def settings_of(connection: ProviderContext) -> Settings:
    return validate_settings(connection.settings)


def authorization_url(connection: ProviderContext, redirect_uri: str, state: str) -> str:
    """Offline access with forced consent: the only way Zoho hands out a refresh token every time."""
    cfg = validate_settings(connection.settings, connection_secrets(connection))
    query = {
        "client_id": cfg.client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": ",".join(SCOPES),
        "access_type": "offline",
        "prompt": "consent",
        "state": state,
    }
    return f"{cfg.accounts_server}/oauth/v2/auth?{urlencode(query)}"


def connection_secrets(connection: ProviderContext) -> dict[str, str | None]:
    return {name: connection.secrets.get(name) for name in ("client_secret", "webhook_secret")}


def _token_request(connection: ProviderContext, cfg: Settings, accounts_server: str,
                   form: dict[str, str], what: str) -> dict[str, Any]:
    """POST the token endpoint; Zoho reports errors in the body, often with HTTP 200."""
    url = f"{accounts_server}/oauth/v2/token"
    try:
        response = connection.http.post(url, data=form, timeout=(cfg.connect_timeout, cfg.read_timeout))
    except requests.RequestException as exc:
        raise TransientError(f"Zoho accounts server unreachable during {what}: {type(exc).__name__}") from None
    if response.status_code >= 500 or response.status_code == 429:
        cls = RateLimitedError if response.status_code == 429 else TransientError
        raise cls(f"Zoho accounts server answered HTTP {response.status_code} during {what}",
                  code=response.status_code, retry_after=cfg.refresh_throttle_retry_after
                  if response.status_code == 429 else None)
    try:
        body = response.json()
    except ValueError:
        raise TransientError(f"Zoho accounts server sent a non-JSON answer (HTTP {response.status_code}) "
                             f"during {what}") from None
    if not isinstance(body, dict):
        raise TransientError(f"Zoho accounts server sent an unexpected answer during {what}")
    error = body.get("error")
    if error or response.status_code >= 400 or not body.get("access_token"):
        _raise_token_error(str(error or f"HTTP {response.status_code}"), str(body.get("error_description") or ""),
                           what, cfg)
    return body


def _raise_token_error(error: str, description: str, what: str, cfg: Settings) -> None:
    detail = f"{error}: {description}" if description else error
    if error.lower() == "access denied" and "too many" in description.lower():
        raise RateLimitedError(
            f"Zoho throttled the {what} (a refresh token mints at most 10 access tokens per 10 minutes); "
            f"retrying later", code=error, retry_after=cfg.refresh_throttle_retry_after)
    hints = {
        "invalid_code": "the code or refresh token is invalid, expired or revoked; authorize the connection again",
        "invalid_client": "client_id or client_secret is wrong, or the client belongs to another data centre",
        "invalid_redirect_uri": "the redirect URI does not match the one registered for the client",
        "invalid_client_secret": "client_secret is wrong",
    }
    hint = hints.get(error.lower(), "authorize the connection again")
    raise AuthError(f"Zoho refused the {what} ({detail}): {hint}", code=error)


def _store_tokens(connection: ProviderContext, cfg: Settings, body: dict[str, Any], *, initial: bool) -> str:
    access = str(body["access_token"])
    try:
        expires_in = float(body.get("expires_in") or DEFAULT_EXPIRES_IN)
    except (TypeError, ValueError):
        expires_in = DEFAULT_EXPIRES_IN
    values: dict[str, str | None] = {"access_token": access, EXPIRES_AT: f"{time.time() + expires_in:.3f}"}
    if body.get("refresh_token"):
        values["refresh_token"] = str(body["refresh_token"])
    connection.secrets.update(**values)
    api_domain = body.get("api_domain")
    if api_domain:
        try:
            domain = validate_api_domain(str(api_domain))
        except ConfigurationError as exc:
            raise AuthError(str(exc)) from None
        if domain != connection.settings.get("api_domain"):
            connection.update_settings(api_domain=domain)
    elif initial:  # no api_domain in the answer: the region table's host for this accounts server
        connection.update_settings(api_domain=api_domain_for(cfg.accounts_server))
    return access


def complete_authorization(connection: ProviderContext, code: str, redirect_uri: str, params: dict[str, str]) -> None:
    """Exchange the code at the accounts server that issued it.

    The redirect's ``accounts-server`` is honoured only when it is a Zoho server from the region table
    (a user may pick another data centre at consent); anything else keeps the configured server, since the
    client secret is sent there.
    """
    cfg = validate_settings(connection.settings, connection_secrets(connection))
    if params.get("error"):
        raise AuthError(f"Zoho authorization was not granted: {params['error']}", code=params["error"])
    if not code:
        raise AuthError("Zoho redirected back without an authorization code; start the authorization again")
    accounts_server = cfg.accounts_server
    redirected = known_accounts_server(params.get("accounts-server"))
    if redirected and redirected != accounts_server:
        log.info("zoho_books connection %s: user consented in data centre %s", connection.id, redirected)
        accounts_server = redirected
        connection.update_settings(accounts_server=redirected)
        cfg = validate_settings({**connection.settings, "api_domain": ""}, connection_secrets(connection))
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": cfg.client_id,
        "client_secret": connection.secrets.get("client_secret") or "",
        "redirect_uri": redirect_uri,
    }
    body = _token_request(connection, cfg, accounts_server, form, "authorization code exchange")
    if not body.get("refresh_token"):
        raise AuthError("Zoho issued no refresh token (offline access was not granted); authorize again")
    _store_tokens(connection, cfg, body, initial=True)


def _expires_at(connection: ProviderContext) -> float:
    try:
        return float(connection.secrets.get(EXPIRES_AT) or 0)
    except ValueError:
        return 0.0


def _fresh(connection: ProviderContext, cfg: Settings) -> str | None:
    token = connection.secrets.get("access_token")
    if token and _expires_at(connection) - cfg.refresh_margin > time.time():
        return token
    return None


def access_token(connection: ProviderContext, cfg: Settings) -> str:
    """A usable access token, refreshed shortly before it expires (``refresh_margin`` seconds)."""
    token = _fresh(connection, cfg)
    if token is not None:
        return token
    return refresh(connection, cfg, rejected=connection.secrets.get("access_token"))


def refresh(connection: ProviderContext, cfg: Settings, rejected: str | None) -> str:
    """Mint a new access token unless another thread or process already did.

    ``rejected`` is the token the caller found stale or Zoho refused; inside the exclusive section the
    secrets are re-read, and a different, unexpired token means someone else refreshed: use theirs.
    """
    with connection.exclusive("refresh"):
        connection.secrets.reload()
        current = connection.secrets.get("access_token")
        if current and current != rejected and _expires_at(connection) > time.time():
            return current
        refresh_token = connection.secrets.get("refresh_token")
        if not refresh_token:
            raise AuthError("the Zoho Books connection has no refresh token; authorize it")
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": cfg.client_id,
            "client_secret": connection.secrets.get("client_secret") or "",
        }
        try:
            body = _token_request(connection, cfg, cfg.accounts_server, form, "token refresh")
        except Exception:
            connection.note_token_refresh(False)
            raise
        connection.note_token_refresh(True)
        log.info("zoho_books connection %s: access token refreshed", connection.id)
        return _store_tokens(connection, cfg, body, initial=False)


def revoke(connection: ProviderContext) -> None:
    """Revoke the refresh token (and with it every access token it minted), then forget the tokens."""
    cfg = validate_settings(connection.settings)
    refresh_token = connection.secrets.get("refresh_token")
    if refresh_token:
        url = f"{cfg.accounts_server}/oauth/v2/token/revoke"
        try:
            # Zoho documents ``?token=`` in the query, but a URL ends up in access and debug logs
            # (urllib3 logs it at DEBUG). Its accounts endpoints take POST parameters form-encoded, as the
            # token endpoint does, so the token travels in the body.
            response = connection.http.post(url, data={"token": refresh_token},
                                            timeout=(cfg.connect_timeout, cfg.read_timeout))
        except requests.RequestException as exc:
            raise TransientError(f"Zoho accounts server unreachable while revoking: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise TransientError(f"Zoho accounts server answered HTTP {response.status_code} while revoking")
    connection.secrets.update(access_token=None, refresh_token=None, **{EXPIRES_AT: None})
