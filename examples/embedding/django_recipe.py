"""Django: one view and two URL patterns (docs/embedding.md). Add ``webhook_urls(hub)`` to your urlpatterns."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt

from integration_core.hub import Hub
from integration_core.webhook_entry import WebhookResponse


def _django_response(answer: WebhookResponse) -> HttpResponse:
    response = HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)
    for name, value in answer.headers:
        if name.lower() != "content-type":
            response[name] = value
    return response


def webhook_urls(hub: Hub, prefix: str = "integration/") -> list[URLPattern]:
    @csrf_exempt  # the provider signs its deliveries; it cannot send a CSRF token
    def webhook(request: HttpRequest, provider: str, tenant_id: str, environment_id: str) -> HttpResponse:
        # ``body=request``: the entry reads the raw bytes from the request itself (bounded by
        # max_webhook_bytes). Never touch request.POST before: Django would consume and parse the body.
        answer = hub.handle_webhook(provider, tenant_id, environment_id, method=request.method or "POST",
                                    headers=request.headers, query=request.META.get("QUERY_STRING", ""),
                                    body=request)
        return _django_response(answer)

    def oauth_callback(request: HttpRequest) -> HttpResponse:
        return _django_response(hub.handle_oauth_callback(request.META.get("QUERY_STRING", "")))

    return [
        path(f"{prefix}v1/webhooks/<str:provider>/<str:tenant_id>/<str:environment_id>", webhook),
        path(f"{prefix}v1/oauth/callback", oauth_callback),
    ]


def settings_for_tests(urlconf: str) -> dict[str, Any]:
    """The minimal settings the test app runs with (CSRF middleware on, as in a real project)."""
    return {
        "DEBUG": False,
        "SECRET_KEY": "embedding-test-only",
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost"],
        "ROOT_URLCONF": urlconf,
        "MIDDLEWARE": ["django.middleware.common.CommonMiddleware", "django.middleware.csrf.CsrfViewMiddleware"],
        "INSTALLED_APPS": [],
        "USE_TZ": True,
    }
