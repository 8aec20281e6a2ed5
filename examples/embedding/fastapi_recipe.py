"""FastAPI / Starlette: an async route that runs the entry in a worker thread (docs/embedding.md)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from a2wsgi import WSGIMiddleware
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from integration_core.hub import Hub
from integration_core.webhook_entry import WebhookResponse
from integration_core.webhooks import create_app


def _starlette_response(answer: WebhookResponse) -> Response:
    return Response(answer.body, status_code=answer.status, headers=dict(answer.headers))


async def raw_body(request: Request, limit: int) -> bytes:
    """The body as sent, at most ``limit`` + 1 bytes (one more than allowed: the entry answers 413)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            break
    return bytes(body)


def webhook_router(hub: Hub) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/webhooks/{provider}/{tenant_id}/{environment_id}")
    async def webhook(provider: str, tenant_id: str, environment_id: str, request: Request) -> Response:
        body = await raw_body(request, hub.config.max_webhook_bytes)  # bytes, never a parsed model
        # The entry does blocking database work and calls host hooks: run it off the event loop.
        answer = await run_in_threadpool(
            hub.handle_webhook, provider, tenant_id, environment_id, method=request.method,
            headers=request.headers.items(), query=request.scope.get("query_string", b""), body=body,
        )
        return _starlette_response(answer)

    @router.get("/v1/oauth/callback")
    async def oauth_callback(request: Request) -> Response:
        answer = await run_in_threadpool(hub.handle_oauth_callback, request.scope.get("query_string", b""))
        return _starlette_response(answer)

    return router


def mounted_app(hub: Hub) -> WSGIMiddleware:
    """The other way: the stock WSGI app through a2wsgi, ``app.mount("/integration", mounted_app(hub))``."""
    wsgi = create_app(hub)

    def terminated(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        # a2wsgi's wsgi.input ends where the ASGI body ends (chunked uploads too) but does not say so.
        environ.setdefault("wsgi.input_terminated", True)
        return wsgi(environ, start_response)

    return WSGIMiddleware(terminated)  # type: ignore[arg-type]
