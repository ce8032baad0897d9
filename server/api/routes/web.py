"""The browser chat: `GET /` (every persona), `GET /chat/{persona}` (one) and their static files.

The page is plain HTML, CSS and JavaScript shipped in `server/web/`; it talks to the server only
through the public API (`/v1/personas`, `/v1/models`, `/v1/chat/completions`), as any client
does. These routes answer without an API key (the page asks for one when the API wants it) and
stay out of the OpenAPI document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Response, get
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath

from server.errors import NotFoundError
from server.state import ServerState

WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"
"""The page's files: index.html, chat.css, chat.js."""

ASSETS = {
    "chat.js": "text/javascript; charset=utf-8",
    "chat.css": "text/css; charset=utf-8",
}
"""The files `/web/{name}` serves, with their media types; nothing else in the folder is served."""

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Content-Security-Policy of the page: its own files only, so no markup can load anything."""

PUBLIC = {"public": True}
"""Route `opt` that lets the API key guard pass the page and its files."""


def _page() -> Response[bytes]:
    return Response(
        (WEB_DIR / "index.html").read_bytes(),
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": PAGE_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


@get("/", include_in_schema=False, opt=PUBLIC, sync_to_thread=False)
def chat_page() -> Response[bytes]:
    """The chat page with a persona picker."""
    return _page()


@get("/chat/{persona_id:str}", include_in_schema=False, opt=PUBLIC)
async def locked_page(persona_id: FromPath[str], state: ServerState) -> Response[bytes]:
    """The chat page for one persona: no picker, no settings; 404 for an unknown persona."""
    if state.catalog.get(persona_id) is None:
        raise NotFoundError(
            f"no persona named '{persona_id}'", param="persona_id", code="persona_not_found"
        )
    return _page()


@get("/web/{name:str}", include_in_schema=False, opt=PUBLIC, sync_to_thread=False)
def asset(name: FromPath[str]) -> Response[bytes]:
    """One of the page's own files."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFoundError(f"no file named '{name}'", param="name")
    return Response(
        (WEB_DIR / name).read_bytes(),
        media_type=media_type,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )


def web_routes(mode: str) -> list[Any]:
    """The page routes for a `web` setting: all of them, the locked page only, or none."""
    if mode == "on":
        return [chat_page, locked_page, asset]
    if mode == "locked":
        return [locked_page, asset]
    return []


def is_public(handler: BaseRouteHandler) -> bool:
    """Whether a route answers without an API key (the page and its files)."""
    return bool(handler.opt.get("public"))
