"""The console's WSGI application: sessions, login, CSRF, routing; pages in :mod:`.views`, actions in
:mod:`.actions`.

Every request but the login page and the stylesheet needs a signed-in operator. Every POST needs the
session's CSRF token in its form (and, when the browser says where it came from, to come from here).
Actions run inside :func:`integration_core.actor.acting_as`, so the audit rows they write name the
operator. A tenant-limited operator reaches only its tenant's records; anything else is a 404.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any

import attrs
import jinja2

from .. import audit
from ..actor import acting_as
from ..errors import IntegrationError
from ..vault import load_keys
from . import actions, filters, views
from .http import BadRequest, Request, Response, StartResponse
from .operators import Operator, authenticate, operator_exists, session_operator
from .sessions import DEFAULT_TTL_SECONDS, Session, SessionCodec, derive_keys

if TYPE_CHECKING:
    from ..hub import Hub

log = logging.getLogger(__name__)

COOKIE = "ic_console"
LOGIN_FAILURES_ALLOWED = 10  # per name and per client address, within LOGIN_FAILURE_WINDOW seconds
LOGIN_FAILURE_WINDOW = 600.0

Handler = Callable[..., Response]
_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (method, re.compile("^" + pattern + "$"), handler)
    for method, pattern, handler in (
        ("GET", r"/", views.overview),
        ("GET", r"/connections", views.connections),
        ("GET", r"/connections/(?P<connection_id>[^/]+)", views.connection),
        ("POST", r"/connections/(?P<connection_id>[^/]+)/(?P<action>enable|disable|authorize|retry-failed)",
         actions.connection_action),
        ("GET", r"/tasks", views.tasks),
        ("GET", r"/tasks/(?P<task_id>[0-9]{1,18})", views.task),
        ("POST", r"/tasks/(?P<task_id>[0-9]{1,18})/retry", actions.retry_task),
        ("GET", r"/events", views.events),
        ("GET", r"/events/(?P<event_id>[0-9]{1,18})", views.event),
        ("POST", r"/events/(?P<event_id>[0-9]{1,18})/retry", actions.retry_event),
        ("GET", r"/search", views.search),
    )
]


@attrs.define
class Ctx:
    """One request as the pages see it."""

    app: ConsoleApp
    req: Request
    session: Session
    operator: Operator | None = None

    @property
    def hub(self) -> Any:
        return self.app.hub

    @property
    def tenant(self) -> str | None:
        return self.operator.tenant_id if self.operator else None

    def url(self, path: str, **query: Any) -> str:
        return self.req.url(path, **query)

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        page = self.app.templates.get_template(template).render(
            url=self.url, operator=self.operator, csrf=self.session.csrf, path=self.req.path, **values
        )
        return Response(page, status)


class ConsoleApp:
    """``ConsoleApp(hub)`` is a WSGI application; mount it anywhere (``integration-core serve`` puts it
    under ``/console``). Thread-safe."""

    def __init__(self, hub: Hub, *, session_ttl: int = DEFAULT_TTL_SECONDS) -> None:
        self.hub = hub
        keys = load_keys(hub.config.keys, hub.config.key_file, create=False)
        self.codec = SessionCodec(derive_keys(keys), ttl=session_ttl)
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader(__package__, "templates"),
            autoescape=True,  # every value is HTML-escaped unless a template says otherwise (none does)
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        filters.install(self.templates)
        public = str(hub.config.public_url).rstrip("/")
        self._origins = (public.split("/", 3)[0] + "//" + public.split("/", 3)[2],) if "://" in public else ()
        self._failures: dict[str, list[float]] = {}
        self._failures_lock = threading.Lock()
        self._css = resources.files(__package__).joinpath("static/console.css").read_bytes()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            req = Request(environ)
            response = self._handle(req)
        except BadRequest as exc:
            response = Response(exc.message, exc.status, "text/plain; charset=utf-8")
        except Exception as exc:  # never a traceback in a page
            log.error("console request failed: %s", type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
            response = Response("internal error (see the server log)", 500, "text/plain; charset=utf-8")
        return response(start_response)

    # --- request handling -------------------------------------------------------------------------

    def _handle(self, req: Request) -> Response:
        if req.path == "/static/console.css" and req.method == "GET":
            return Response(self._css, content_type="text/css; charset=utf-8")
        loaded = self.codec.loads(req.cookies.get(COOKIE))
        session = loaded or Session.anonymous()
        ctx = Ctx(self, req, session)
        if req.method == "POST":
            refused = self._refuse_forgery(ctx)
            if refused is not None:
                return refused
        if req.path == "/login":
            response = self._login(ctx)
        elif req.path == "/logout" and req.method == "POST":
            response = self._logout(ctx)
        else:
            response = self._authenticated(ctx)
        if ctx.session is not loaded:
            response.set_cookie(COOKIE, self.codec.dumps(ctx.session), path=req.script_name or "/",
                                max_age=self.codec.ttl, secure=req.secure)
        return response

    def _refuse_forgery(self, ctx: Ctx) -> Response | None:
        """Every POST carries the session's CSRF token and, if the browser names its origin, comes from here."""
        sent = ctx.req.form().get("csrf", "")
        if not ctx.req.same_origin(self._origins) or not sent or not hmac.compare_digest(
            sent.encode(), ctx.session.csrf.encode()
        ):
            log.warning("console: refused a %s to %s without a valid CSRF token", ctx.req.method, ctx.req.path)
            return ctx.render("error.html", 403, title="Refused",
                              message="This form was not sent from this console session (missing or stale "
                                      "CSRF token). Reload the page and try again.")
        return None

    def _authenticated(self, ctx: Ctx) -> Response:
        s = ctx.session
        operator = session_operator(self.hub.engine, s.operator, s.generation) if s.operator else None
        if operator is None:
            if ctx.req.method == "GET":
                return Response.redirect(ctx.url("/login", next=ctx.req.path if ctx.req.path != "/" else None))
            return ctx.render("error.html", 403, title="Signed out", message="Your session ended; sign in again.")
        ctx.operator = operator
        allowed = []
        for method, pattern, handler in _ROUTES:
            match = pattern.match(ctx.req.path)
            if match is None:
                continue
            if method != ctx.req.method:
                allowed.append(method)
                continue
            with acting_as(f"console:{operator.name}"):
                return handler(ctx, **match.groupdict())
        if allowed:
            return Response("method not allowed", 405, "text/plain; charset=utf-8",
                            headers=[("Allow", ", ".join(allowed))])
        return views.not_found(ctx)

    # --- login / logout ---------------------------------------------------------------------------

    def _login(self, ctx: Ctx) -> Response:
        next_path = _safe_next(ctx.req.query.get("next") or (ctx.req.form().get("next") if ctx.req.method == "POST"
                                                              else None))
        if ctx.req.method == "GET":
            return ctx.render("login.html", next=next_path, error=None, name="")
        if ctx.req.method != "POST":
            return Response("method not allowed", 405, "text/plain; charset=utf-8", headers=[("Allow", "GET, POST")])
        form = ctx.req.form()
        name, secret = form.get("name", "").strip()[:100], form.get("secret", "")
        client = str(ctx.req.environ.get("REMOTE_ADDR", "?"))
        if self._too_many_failures(name, client):
            return ctx.render("login.html", 429, next=next_path, name=name,
                              error="Too many failed sign-ins; wait a few minutes.")
        operator = authenticate(self.hub.engine, name, secret) if name and secret else None
        if operator is None:
            self._note_failure(name, client)
            # An unknown name is not recorded: it may be a password typed into the wrong field.
            known = bool(name) and operator_exists(self.hub.engine, name)
            with self.hub.engine.begin() as db, acting_as(None):
                audit.record(db, "operator", name if known else None, "login_failed",
                             f"from {client}" + ("" if known else " (unknown name)"))
            return ctx.render("login.html", 401, next=next_path, name=name, error="Wrong name or password/token.")
        ctx.session = ctx.session.signed_in(operator.name, operator.generation)
        ctx.operator = operator
        with self.hub.engine.begin() as db, acting_as(f"console:{operator.name}"):
            detail = f"from {client}" + (" (one-time login, now spent)" if operator.one_time else "")
            audit.record(db, "operator", operator.name, "login", detail)
        return Response.redirect(ctx.url(next_path or "/"))

    def _logout(self, ctx: Ctx) -> Response:
        if ctx.session.operator:
            with self.hub.engine.begin() as db, acting_as(f"console:{ctx.session.operator}"):
                audit.record(db, "operator", ctx.session.operator, "logout")
        ctx.session = Session.anonymous()
        return Response.redirect(ctx.url("/login"))

    def _too_many_failures(self, name: str, client: str) -> bool:
        now = time.monotonic()
        with self._failures_lock:
            for key in (f"n:{name}", f"c:{client}"):
                recent = [t for t in self._failures.get(key, []) if now - t < LOGIN_FAILURE_WINDOW]
                self._failures[key] = recent
                if len(recent) >= LOGIN_FAILURES_ALLOWED:
                    return True
        return False

    def _note_failure(self, name: str, client: str) -> None:
        with self._failures_lock:
            for key in (f"n:{name}", f"c:{client}"):
                self._failures.setdefault(key, []).append(time.monotonic())
            if len(self._failures) > 10_000:  # bounded memory under a spray of names
                self._failures.clear()


def _safe_next(value: str | None) -> str | None:
    """Only a path inside the console (no scheme, no host, no ``//``) is a place to go after login."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or ":" in value:
        return None
    return value


def create_console(hub: Hub, **kwargs: Any) -> ConsoleApp:
    return ConsoleApp(hub, **kwargs)


__all__ = ["COOKIE", "ConsoleApp", "IntegrationError", "create_console"]
