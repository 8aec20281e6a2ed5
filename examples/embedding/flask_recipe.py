"""Flask: a blueprint (docs/embedding.md). ``app.register_blueprint(webhook_blueprint(hub), url_prefix=...)``."""

from __future__ import annotations

from flask import Blueprint, Response, request

from integration_core.hub import Hub
from integration_core.webhook_entry import WebhookResponse


def _flask_response(answer: WebhookResponse) -> Response:
    return Response(answer.body, status=answer.status, headers=list(answer.headers))


def webhook_blueprint(hub: Hub) -> Blueprint:
    bp = Blueprint("integration_core", __name__)

    @bp.post("/v1/webhooks/<provider>/<tenant_id>/<environment_id>")
    def webhook(provider: str, tenant_id: str, environment_id: str) -> Response:
        # ``request.stream`` is the raw body, unread and unparsed, as long as nothing touched
        # request.form / request.get_json() before. The entry reads at most max_webhook_bytes + 1 of it.
        answer = hub.handle_webhook(provider, tenant_id, environment_id, method=request.method,
                                    headers=request.headers, query=request.query_string, body=request.stream)
        return _flask_response(answer)

    @bp.get("/v1/oauth/callback")
    def oauth_callback() -> Response:
        return _flask_response(hub.handle_oauth_callback(request.query_string))

    return bp
