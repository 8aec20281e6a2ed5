"""The operator console: a browser view of connections, the outbox and the inbox, with the operator
actions (retry, enable/disable, re-authorize). Server-rendered (Jinja2, autoescaped), no JavaScript.

``integration-core serve`` mounts it under ``/console``; :func:`mount` does the same for any WSGI app,
and :func:`app_from_env` / :func:`gunicorn_app` serve it on its own. Logins are set with
``integration-core console operator set NAME``. See docs/console.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from ..bootstrap import hub_from_env
from .app import ConsoleApp, create_console
from .http import StartResponse

PREFIX = "/console"

__all__ = ["PREFIX", "ConsoleApp", "app_from_env", "create_console", "gunicorn_app", "mount"]


def mount(app: Any, console: Any, prefix: str = PREFIX) -> Any:
    """A WSGI app that sends ``prefix`` and everything below it to ``console`` (``SCRIPT_NAME`` extended,
    ``PATH_INFO`` shortened, as WSGI mounting goes) and every other path to ``app``."""
    prefix = "/" + prefix.strip("/")

    def dispatch(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path == prefix or path.startswith(prefix + "/"):
            environ = dict(environ)
            environ["SCRIPT_NAME"] = str(environ.get("SCRIPT_NAME", "")).rstrip("/") + prefix
            rest = path[len(prefix):]
            if not rest:  # /console → /console/ (relative links and the cookie path need the slash)
                start_response("308 Permanent Redirect", [("Location", environ["SCRIPT_NAME"] + "/"),
                                                          ("Content-Length", "0")])
                return [b""]
            environ["PATH_INFO"] = rest
            return console(environ, start_response)
        return app(environ, start_response)

    return dispatch


def app_from_env() -> ConsoleApp:
    """The console alone, from ``IC_*`` variables (host hooks from ``IC_HOST``, for event retries)."""
    return ConsoleApp(hub_from_env())


_app: ConsoleApp | None = None
_lock = threading.Lock()


def gunicorn_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``gunicorn integration_core.console:gunicorn_app``: built on the first request of each worker."""
    global _app
    if _app is None:
        with _lock:
            if _app is None:
                _app = app_from_env()
    return _app(environ, start_response)
