"""The first things a person opens: Swaparoony's own Swagger UI page at `/`, and the document it reads.

BentoML's page loads Google Tag Manager and badge images from the internet (a booth may be
air-gapped, and uploads are faces) and says "BentoML Prediction Service". This page loads only the
Swagger UI assets BentoML serves from this server, under `/static_content/`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Hashable
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
      // Swagger UI ticks "Send empty value" for every optional form field, so a face_map left empty went out as
      // face_map=: leave it unticked, and the field unsent, until the person ticks it. It also gives every operation
      // of an OpenAPI 3.1 document a Servers box with the one choice "/": this page's server is the only one.
      const FrontDoor = () => ({wrapComponents: {
        ParameterIncludeEmpty: (Original, system) => (props) => system.React.createElement(Original,
          Object.assign({}, props, {isIncludedOptions: Object.assign({}, props.isIncludedOptions, {defaultValue: false})})),
        OperationServers: () => () => null,
      }});
      window.onload = function () {
        window.ui = SwaggerUIBundle({
          url: "./docs.json",
          dom_id: "#swagger-ui",
          deepLinking: true,
          displayRequestDuration: true,
          defaultModelsExpandDepth: -1,
          presets: [SwaggerUIBundle.presets.apis],
          plugins: [FrontDoor],
          layout: "BaseLayout",
        });
      };
    </script>
  </body>
</html>
"""

logger = logging.getLogger("swaparoony")
Rewrite = Callable[[dict[str, Any]], dict[str, Any]]
Version = Callable[[], Hashable]
"""What the rewritten document depends on that can change (the gallery's destination names): equal, same document."""


class FrontDoorMiddleware:
    """Serves the page at GET / and BentoML's GET /docs.json passed through `rewrite`, built once per `version`.

    Building it (BentoML's generation, the rewrite, JSON both ways) costs about 26 ms of the event loop's CPU:
    32 clients reading it at once held /livez for seconds. Without `version` it is built on every GET.
    """

    def __init__(self, app: ASGIApp, rewrite: Rewrite, version: Version | None = None) -> None:
        self.app = app
        self.rewrite = rewrite
        self.version = version
        self._built: tuple[Hashable, bytes] | None = None
        self._building = asyncio.Lock()  # 32 clients at once build it once, not 32 times

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
        if self.version is None:
            status, body = await self._build(scope, receive)
            await send_body(send, status, "application/json", body)
            return
        async with self._building:
            version = self.version()
            if self._built is None or self._built[0] != version:
                status, body = await self._build(scope, receive)
                if status != 200:  # not kept: the next GET tries again
                    await send_body(send, status, "application/json", body)
                    return
                self._built = (version, body)
                logger.info("OpenAPI document (/docs.json) built: %d bytes", len(body))
            body = self._built[1]
        await send_body(send, 200, "application/json", body)

    async def _build(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        """BentoML's document, rewritten; or BentoML's answer as it is when that is not a 200."""
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
        return status, body
