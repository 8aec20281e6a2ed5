"""The little HTTP the console needs, on the stdlib: a parsed request and a response with the console's
security headers. (The webhook dispatcher is stdlib WSGI too; the console adds no web framework.)"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode

MAX_FORM_BYTES = 64 * 1024

StartResponse = Callable[..., Any]

# No script runs in the console (no JavaScript at all), styles come from our own file, nothing may frame it,
# and forms post only to the console itself.
SECURITY_HEADERS = [
    ("Content-Security-Policy",
     "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
     "base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),  # nothing leaves for other sites; Origin stays set for ours
    ("Cache-Control", "no-store"),
]


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Request:
    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        raw_path = str(environ.get("PATH_INFO", "") or "/")
        try:
            self.path = raw_path.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            raise BadRequest(400, "the path is not UTF-8") from None
        self.script_name = str(environ.get("SCRIPT_NAME", "")).rstrip("/")
        self.query = _flat(parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True))
        self._form: dict[str, str] | None = None
        self.cookies: dict[str, str] = {}
        try:
            jar = SimpleCookie(str(environ.get("HTTP_COOKIE", "")))
            self.cookies = {k: m.value for k, m in jar.items()}
        except CookieError:
            self.cookies = {}

    @property
    def secure(self) -> bool:
        return str(self.environ.get("wsgi.url_scheme", "http")) == "https"

    def url(self, path: str, **query: Any) -> str:
        """A console URL (``path`` relative to where the console is mounted)."""
        q = {k: v for k, v in query.items() if v not in (None, "")}
        return self.script_name + path + ("?" + urlencode(q) if q else "")

    def form(self) -> dict[str, str]:
        """The urlencoded body of a POST (at most ``MAX_FORM_BYTES``)."""
        if self._form is not None:
            return self._form
        ctype = str(self.environ.get("CONTENT_TYPE", "")).split(";", 1)[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            self._form = {}  # not one of our forms: no CSRF token either, so the action is refused
            return self._form
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise BadRequest(400, "bad Content-Length") from None
        if length > MAX_FORM_BYTES:
            raise BadRequest(413, "form too large")
        body = self.environ["wsgi.input"].read(length) if length > 0 else b""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(400, "the form is not UTF-8") from None
        self._form = _flat(parse_qs(text, keep_blank_values=True))
        return self._form

    def same_origin(self, also: tuple[str, ...] = ()) -> bool:
        """False when the browser says the request came from another site (``Origin`` or ``Sec-Fetch-Site``).
        ``also``: more accepted origins (the public URL, when a proxy rewrites the Host header)."""
        site = self.environ.get("HTTP_SEC_FETCH_SITE")
        if site and site not in ("same-origin", "none"):
            return False
        origin = self.environ.get("HTTP_ORIGIN")
        if not origin or origin == "null":
            return origin != "null"
        host = self.environ.get("HTTP_HOST") or ""
        scheme = self.environ.get("wsgi.url_scheme", "http")
        return origin == f"{scheme}://{host}" or origin in also


def _flat(values: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[0] for k, v in values.items()}


class Response:
    def __init__(self, body: str | bytes = "", status: int = 200, content_type: str = "text/html; charset=utf-8",
                 headers: list[tuple[str, str]] | None = None) -> None:
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.status = status
        self.headers = [("Content-Type", content_type), *(headers or [])]

    @classmethod
    def redirect(cls, location: str, status: int = 303) -> Response:
        return cls("", status, headers=[("Location", location)])

    def set_cookie(self, name: str, value: str, *, path: str, max_age: int | None, secure: bool) -> None:
        parts = [f"{name}={value}", f"Path={path or '/'}", "HttpOnly", "SameSite=Lax"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if secure:
            parts.append("Secure")
        self.headers.append(("Set-Cookie", "; ".join(parts)))

    def __call__(self, start_response: StartResponse) -> Iterable[bytes]:
        phrase = HTTPStatus(self.status).phrase
        start_response(f"{self.status} {phrase}",
                       [*self.headers, *SECURITY_HEADERS, ("Content-Length", str(len(self.body)))])
        return [self.body]
