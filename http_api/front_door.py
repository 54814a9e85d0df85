"""The first things a person opens: Swaparoony's own Swagger UI page at `/`, and the document it reads.

BentoML's page loads Google Tag Manager and badge images from the internet (a booth may be
air-gapped, and uploads are faces) and says "BentoML Prediction Service". This page loads only the
Swagger UI assets BentoML serves from this server, under `/static_content/`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .asgi import ASGIApp, Message, Receive, Scope, Send, send_body

INDEX_HTML = b"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Swaparoony</title>
    <link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css">
    <link rel="icon" type="image/png" href="./static_content/favicon-light-32x32.png" sizes="32x32">
    <style>body { margin: 0; background: #fafafa; } .swagger-ui .topbar { display: none; }</style>
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script>
      window.onload = function () {
        window.ui = SwaggerUIBundle({
          url: "./docs.json",
          dom_id: "#swagger-ui",
          deepLinking: true,
          displayRequestDuration: true,
          defaultModelsExpandDepth: -1,
          presets: [SwaggerUIBundle.presets.apis],
          layout: "BaseLayout",
        });
      };
    </script>
  </body>
</html>
"""

Rewrite = Callable[[dict[str, Any]], dict[str, Any]]


class FrontDoorMiddleware:
    """Serves the page at GET / and passes BentoML's GET /docs.json through `rewrite`."""

    def __init__(self, app: ASGIApp, rewrite: Rewrite) -> None:
        self.app = app
        self.rewrite = rewrite

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
        elif scope.get("path") == "/":
            await send_body(send, 200, "text/html; charset=utf-8", INDEX_HTML)
        elif scope.get("path") == "/docs.json":
            await self._document(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _document(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, chunks = 500, []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        if status == 200:
            body = json.dumps(self.rewrite(json.loads(body))).encode()
        await send_body(send, status, "application/json", body)
