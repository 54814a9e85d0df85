"""`/readyz` answers 503 at once with the reason in the service's error shape, not BentoML's generic line."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .asgi import ASGIApp, Receive, Scope, Send, send_error

Reason = Callable[[], Awaitable[str | None]]
"""None when the service is ready, else one line saying why not; must not wait for start-up work."""


class ReadinessMiddleware:
    """Answers GET /readyz with 503 and the reason while the service is not ready; BentoML's probe otherwise."""

    def __init__(self, app: ASGIApp, reason: Reason) -> None:
        self.app = app
        self.reason = reason

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") == "/readyz":
            reason = await self.reason()
            if reason is not None:
                await send_error(send, 503, reason, "not_ready")
                return
        await self.app(scope, receive, send)
